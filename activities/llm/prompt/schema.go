package prompt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/gateflow/gateflow/workflows/definition"
)

// maxProblems bounds the problems reported for one value.
const maxProblems = 50

// schemaLoc names the one resource of a compiled schema; it is removed from
// messages.
const schemaLoc = "gateflow:prompt-schema.json"

// compileSchema compiles a JSON Schema (draft 2020-12 unless it names
// another). External references are refused: a prompt API's schemas are
// self-contained, and loading them never reads files or the network.
func compileSchema(raw json.RawMessage) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("not valid JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{})
	if err := c.AddResource(schemaLoc, doc); err != nil {
		return nil, schemaError(err)
	}
	s, err := c.Compile(schemaLoc)
	if err != nil {
		return nil, schemaError(err)
	}
	return s, nil
}

func schemaError(err error) error {
	msg := strings.ReplaceAll(err.Error(), schemaLoc, "")
	return fmt.Errorf("invalid JSON Schema: %s", strings.ReplaceAll(msg, "\n", "; "))
}

// noLoader refuses every external reference.
type noLoader struct{}

func (noLoader) Load(u string) (any, error) {
	return nil, fmt.Errorf("external schema references are not allowed (%s)", u)
}

// validate checks raw JSON against s and returns the problems, located
// from root ("variables.city", "output.items[2].sku"); nil when valid.
func validate(s *jsonschema.Schema, raw []byte, root string) []definition.Problem {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return []definition.Problem{{Path: root, Message: "not valid JSON: " + err.Error()}}
	}
	return validateValue(s, inst, root)
}

// validateValue checks a value decoded by jsonschema.UnmarshalJSON.
func validateValue(s *jsonschema.Schema, inst any, root string) []definition.Problem {
	err := s.Validate(inst)
	if err == nil {
		return nil
	}
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return []definition.Problem{{Path: root, Message: err.Error()}}
	}
	var out []definition.Problem
	seen := map[definition.Problem]bool{}
	for _, u := range verr.BasicOutput().Errors {
		if u.Error == nil {
			continue
		}
		msg := u.Error.String()
		// Summaries of nested failures repeat their causes.
		if strings.HasPrefix(msg, "validation failed") || strings.HasPrefix(msg, "allOf failed") {
			continue
		}
		p := definition.Problem{Path: instancePath(inst, u.InstanceLocation, root), Message: msg}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
		if len(out) >= maxProblems {
			break
		}
	}
	if len(out) == 0 {
		out = append(out, definition.Problem{Path: root, Message: strings.ReplaceAll(err.Error(), "\n", "; ")})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// instancePath turns a JSON pointer into "root.a.b[2]", using the instance
// to tell array indexes from object keys.
func instancePath(inst any, ptr, root string) string {
	path := root
	if ptr == "" {
		return path
	}
	cur := inst
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		if c, ok := cur.([]any); ok {
			if i, err := strconv.Atoi(tok); err == nil && i >= 0 && i < len(c) {
				path += "[" + tok + "]"
				cur = c[i]
				continue
			}
		}
		path = join(path, tok)
		if m, ok := cur.(map[string]any); ok {
			cur = m[tok]
		} else {
			cur = nil
		}
	}
	return path
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
