package auth

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/gateflow/gateflow/workflows/definition/yamlread"
)

// A keys file is read entry by entry (issue 10 item 9), so that a typo in
// one entry cannot keep a revoked key alive: every entry is decoded and
// checked on its own, an entry with `disabled: true` disables its id even
// when something else in it (or elsewhere in the file) is wrong, and a file
// that is not valid YAML as a whole is split at its list items and each
// read separately.

// keysLimits bound a keys file: room for about 30k keys (some 15 values
// each).
var keysLimits = yamlread.Limits{MaxBytes: 16 << 20, MaxValues: 500_000}

// fileEntry is one entry of the keys file as read.
type fileEntry struct {
	// Line is where the entry starts (1-based).
	Line int
	// Key holds what could be decoded; valid only when Err is nil.
	Key Key
	// ID is the entry's id when it could be read ("" otherwise).
	ID string
	// Disabled is set when the entry says `disabled: true`, whatever else
	// is wrong with it.
	Disabled bool
	// Err is what is wrong with the entry.
	Err error
}

// readEntries parses a keys file entry by entry. wholeFile reports whether
// the file parsed as one document (so that the entries are every entry of
// the file); an error means no entry could be found at all.
func readEntries(data []byte) (entries []fileEntry, wholeFile bool, err error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, true, nil
	}
	var doc struct {
		Keys []yaml.Node `yaml:"keys"`
	}
	werr := yamlread.ReadInto(data, keysLimits, &doc)
	if werr == nil {
		for i := range doc.Keys {
			entries = append(entries, decodeEntry(&doc.Keys[i], 0))
		}
		return entries, true, nil
	}
	var ye *yamlread.Error
	if errors.As(werr, &ye) && ye.TooLarge() {
		return nil, false, werr // nothing is read from a document over its bounds
	}
	// Not valid YAML as a whole (or with unknown top-level fields): read
	// each list item of keys on its own.
	chunks := splitEntries(data)
	if len(chunks) == 0 {
		return nil, false, werr
	}
	for _, c := range chunks {
		var one struct {
			Keys []yaml.Node `yaml:"keys"`
		}
		err := yamlread.ReadInto([]byte("keys:\n"+c.text), keysLimits, &one)
		switch {
		case err == nil && len(one.Keys) == 1:
			entries = append(entries, decodeEntry(&one.Keys[0], c.line-2))
		default:
			if err == nil {
				err = errors.New("not one list item")
			}
			e := fileEntry{Line: c.line, Err: fmt.Errorf("entry at line %d: %w", c.line, err)}
			// What can still be read decides a revocation.
			if m := chunkID.FindStringSubmatch(c.text); m != nil {
				e.ID = m[1]
			}
			e.Disabled = chunkDisabled.MatchString(c.text)
			entries = append(entries, e)
		}
	}
	return entries, false, fmt.Errorf("keys file is not valid YAML as a whole (%v); its entries were read one by one", werr)
}

var (
	chunkID       = regexp.MustCompile(`(?m)^[\s-]*id:\s*["']?([a-z0-9]{1,64})["']?\s*(?:#.*)?$`)
	chunkDisabled = regexp.MustCompile(`(?m)^[\s-]*disabled:\s*["']?(?:true|True|TRUE|yes|on)["']?\s*(?:#.*)?$`)
	keyFields     = yamlFields(reflect.TypeFor[Key]())
)

// chunk is the text of one list item of the keys list.
type chunk struct {
	line int // 1-based line of its "- "
	text string
}

// splitEntries finds the items of the top-level `keys:` list by their
// indentation, without parsing: each starts with "- " at the indentation
// of the first item.
func splitEntries(data []byte) []chunk {
	lines := strings.Split(string(data), "\n")
	start := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "keys:") && strings.TrimSpace(strings.TrimPrefix(l, "keys:")) == "" {
			start = i + 1
			break
		}
	}
	if start < 0 {
		return nil
	}
	indent := -1
	var out []chunk
	for i := start; i < len(lines); i++ {
		l := lines[i]
		trimmed := strings.TrimLeft(l, " ")
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			if len(out) > 0 {
				out[len(out)-1].text += l + "\n"
			}
			continue
		}
		n := len(l) - len(trimmed)
		if n == 0 && !strings.HasPrefix(trimmed, "-") {
			break // the next top-level field
		}
		if indent < 0 && strings.HasPrefix(trimmed, "-") {
			indent = n
		}
		if n == indent && (trimmed == "-" || strings.HasPrefix(trimmed, "- ")) {
			out = append(out, chunk{line: i + 1})
		}
		if len(out) > 0 {
			// Re-indent so that the item sits under "keys:" at column 2.
			out[len(out)-1].text += "  " + strings.TrimPrefix(l, strings.Repeat(" ", max(indent, 0))) + "\n"
		}
	}
	return out
}

// decodeEntry decodes one list item strictly: unknown fields and wrong
// types are the entry's error. lineOffset corrects the line numbers of a
// chunk read on its own.
func decodeEntry(n *yaml.Node, lineOffset int) fileEntry {
	e := fileEntry{Line: n.Line + lineOffset}
	if n.Kind != yaml.MappingNode {
		e.Err = fmt.Errorf("entry at line %d: want a mapping (id, hash, tenant, roles, ...)", e.Line)
		return e
	}
	var problems []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case !keyFields[k.Value]:
			problems = append(problems, fmt.Sprintf("unknown field %q", k.Value))
		case k.Value == "id" && v.Kind == yaml.ScalarNode:
			e.ID = v.Value
		case k.Value == "disabled" && v.Kind == yaml.ScalarNode:
			var b bool
			if v.Decode(&b) == nil && b {
				e.Disabled = true
			}
		}
	}
	if err := n.Decode(&e.Key); err != nil {
		problems = append(problems, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(problems) > 0 {
		e.Err = fmt.Errorf("entry at line %d: %s", e.Line, strings.Join(problems, "; "))
	}
	return e
}

// yamlFields are the yaml names of a struct's fields.
func yamlFields(t reflect.Type) map[string]bool {
	m := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			m[name] = true
		}
	}
	return m
}
