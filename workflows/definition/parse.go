package definition

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/gateflow/gateflow/workflows/definition/yamlread"
)

// Parse reads a definition written in YAML or JSON (JSON is read as YAML,
// so both follow one schema). Top-level keys starting with "x-" are ignored
// (a place for YAML anchors). It first decodes a generic tree, bounded in
// size, node count (every YAML alias expansion counted) and depth, then
// checks the tree against the format: unknown fields, fields that do not
// belong to the step's kind and values of the wrong type, each reported with
// its path (e.g. "steps[0].kidn: unknown field (did you mean \"kind\"?)").
// When the tree has such problems, Parse also runs Validate without a
// catalog on what it could decode, so that one call lists every problem.
//
// A nil error means the document has the right shape; call Validate (or
// use Load) to check its meaning. Errors are *ValidationError.
func Parse(data []byte) (*Definition, error) {
	return parse(data, nil)
}

func parse(data []byte, cat Catalog) (*Definition, error) {
	ve := &ValidationError{Subject: "definition"}
	tree, err := decodeTree(data)
	if err != nil {
		ve.Errorf("", "%s", err.Error())
		return nil, ve
	}
	s := shaper{ve: ve}
	clean := s.object(definitionSpec, tree, "", 0)
	if clean == nil {
		return nil, ve.finish()
	}
	if s.steps > MaxSteps {
		ve.Errorf("steps", "more than %d steps (nested steps included)", MaxSteps)
	}
	raw, err := json.Marshal(clean)
	if err != nil {
		ve.Errorf("", "cannot encode: %v", err)
		return nil, ve.finish()
	}
	var def Definition
	if err := json.Unmarshal(raw, &def); err != nil {
		ve.Errorf("", "cannot decode: %v", err)
		return nil, ve.finish()
	}
	if len(ve.Problems) > 0 {
		if err := def.Validate(cat); err != nil {
			var more *ValidationError
			if errors.As(err, &more) {
				ve.Problems = append(ve.Problems, more.Problems...)
			}
		}
		if def.Name != "" {
			ve.Subject = "definition " + def.Ref()
		}
		return nil, ve.finish()
	}
	return &def, nil
}

// Load parses a definition and validates it against the catalog (nil skips
// the registry checks): what callers accepting a definition want.
func Load(data []byte, cat Catalog) (*Definition, error) {
	def, err := parse(data, cat)
	if err != nil {
		return nil, err
	}
	if err := def.Validate(cat); err != nil {
		return nil, err
	}
	return def, nil
}

// finish sorts problems by path and drops duplicates, then returns e or nil.
func (e *ValidationError) finish() error {
	sortProblems(e.Problems)
	return e.OrNil()
}

func sortProblems(ps []Problem) []Problem {
	sort.SliceStable(ps, func(i, j int) bool { return pathLess(ps[i].Path, ps[j].Path) })
	out := ps[:0]
	for i, p := range ps {
		if i > 0 && p == ps[i-1] {
			continue
		}
		out = append(out, p)
	}
	return out
}

// pathLess orders paths so that steps[2] comes before steps[10]: runs of
// digits compare by value.
func pathLess(a, b string) bool {
	for a != "" && b != "" {
		ca, cb := a[0], b[0]
		if isDigit(ca) && isDigit(cb) {
			i, j := digits(a), digits(b)
			na, _ := strconv.Atoi(a[:i])
			nb, _ := strconv.Atoi(b[:j])
			if na != nb {
				return na < nb
			}
			a, b = a[i:], b[j:]
			continue
		}
		if ca != cb {
			return ca < cb
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func digits(s string) int {
	i := 0
	for i < len(s) && isDigit(s[i]) && i < 9 {
		i++
	}
	return i
}

// decodeTree reads YAML (or JSON) into map[string]any / []any / string /
// float64 / bool / nil through the one bounded reader.
func decodeTree(data []byte) (any, error) {
	return yamlread.ReadTree(data, yamlread.Limits{
		MaxBytes:  MaxDefinitionBytes,
		MaxValues: MaxDefinitionNodes,
		MaxDepth:  MaxDefinitionDepth,
	})
}

// shaper checks a generic tree against the format and returns a copy
// holding only the fields of the right type.
type shaper struct {
	ve    *ValidationError
	steps int
}

func (s *shaper) object(spec *objectSpec, v any, path string, depth int) map[string]any {
	m, ok := v.(map[string]any)
	if !ok {
		s.ve.Errorf(path, "must be an object, not %s", typeName(v))
		return nil
	}
	out := make(map[string]any, len(m))
	for _, k := range sortedKeys(m) {
		f, known := spec.field(k)
		p := joinPath(path, k)
		if spec == definitionSpec && strings.HasPrefix(k, "x-") {
			// Top-level extension keys are ignored: a place for YAML
			// anchors shared by several steps.
			continue
		}
		if !known {
			s.ve.Errorf(p, "unknown field%s", suggest(k, spec))
			continue
		}
		if val, ok := s.value(f, m[k], p, depth); ok {
			out[k] = val
		}
	}
	return out
}

func (s *shaper) step(v any, path string, depth int) map[string]any {
	s.steps++
	m, ok := v.(map[string]any)
	if !ok {
		s.ve.Errorf(path, "must be an object (a step), not %s", typeName(v))
		return nil
	}
	kind, _ := m["kind"].(string)
	allowed := kindsByName[kind].allowed
	out := make(map[string]any, len(m))
	for _, k := range sortedKeys(m) {
		f, known := stepSpec.field(k)
		p := joinPath(path, k)
		switch {
		case !known:
			s.ve.Errorf(p, "unknown field%s", suggest(k, stepSpec))
			continue
		case allowed != nil && !allowed[k]:
			s.ve.Errorf(p, "not allowed for kind %s", kind)
			continue
		}
		if val, ok := s.value(f, m[k], p, depth); ok {
			out[k] = val
		}
	}
	return out
}

func (s *shaper) value(f *field, v any, path string, depth int) (any, bool) {
	if depth > MaxDefinitionDepth {
		s.ve.Errorf(path, "nested deeper than %d", MaxDefinitionDepth)
		return nil, false
	}
	switch f.typ {
	case tString, tName, tTemplateString, tExpr, tDuration:
		if _, ok := v.(string); !ok {
			s.ve.Errorf(path, "must be a string, not %s", typeName(v))
			return nil, false
		}
	case tInt, tNumber:
		n, ok := v.(float64)
		if !ok {
			s.ve.Errorf(path, "must be a number, not %s", typeName(v))
			return nil, false
		}
		if f.typ == tInt && (n != math.Trunc(n) || math.Abs(n) > 1<<53) {
			s.ve.Errorf(path, "must be an integer")
			return nil, false
		}
		// Zero means "not set" once decoded, so an explicit out-of-range
		// zero is reported here; Validate checks the other values.
		if n == 0 && f.min != nil && *f.min > 0 {
			s.ve.Errorf(path, "must be at least %s", formatFloat(*f.min))
			return nil, false
		}
	case tBool:
		if _, ok := v.(bool); !ok {
			s.ve.Errorf(path, "must be true or false, not %s", typeName(v))
			return nil, false
		}
	case tTemplate:
	case tSchema:
		switch v.(type) {
		case map[string]any, bool:
		default:
			s.ve.Errorf(path, "must be a JSON Schema (an object or a boolean), not %s", typeName(v))
			return nil, false
		}
	case tTemplateMap:
		m, ok := v.(map[string]any)
		if !ok {
			s.ve.Errorf(path, "must be an object of strings, not %s", typeName(v))
			return nil, false
		}
		out := make(map[string]any, len(m))
		for _, k := range sortedKeys(m) {
			switch x := m[k].(type) {
			case string:
				out[k] = x
			case float64, bool:
				// Headers and query values written as numbers or booleans
				// are sent as their text.
				out[k], _ = FormatValue(x)
			default:
				s.ve.Errorf(joinPath(path, k), "must be a string, not %s", typeName(x))
			}
		}
		return out, true
	case tValueMap:
		if _, ok := v.(map[string]any); !ok {
			s.ve.Errorf(path, "must be an object, not %s", typeName(v))
			return nil, false
		}
	case tObject:
		o := s.object(f.obj, v, path, depth+1)
		return o, o != nil
	case tStep:
		st := s.step(v, path, depth+1)
		return st, st != nil
	case tStepList, tList:
		l, ok := v.([]any)
		if !ok {
			s.ve.Errorf(path, "must be a list, not %s", typeName(v))
			return nil, false
		}
		out := make([]any, 0, len(l))
		for i, e := range l {
			p := fmt.Sprintf("%s[%d]", path, i)
			var val any
			var ok bool
			if f.typ == tStepList {
				st := s.step(e, p, depth+1)
				val, ok = st, st != nil
			} else {
				val, ok = s.value(f.elem, e, p, depth+1)
			}
			if ok {
				out = append(out, val)
			} else if f.typ == tStepList {
				// Keep list positions stable for later paths.
				out = append(out, map[string]any{})
			}
		}
		return out, true
	}
	return v, true
}

// identPath matches keys that can follow a dot in a path.
var identPath = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	if !identPath.MatchString(key) {
		return path + "[" + strconv.Quote(key) + "]"
	}
	return path + "." + key
}

// suggest names the closest known field, for typos.
func suggest(name string, spec *objectSpec) string {
	best, bestDist := "", 3
	for _, f := range spec.fields {
		if d := editDistance(strings.ToLower(name), f.name); d < bestDist {
			best, bestDist = f.name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the optimal-string-alignment distance: insertions,
// deletions, substitutions and transpositions of neighbours ("kidn").
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 100
	}
	rows := make([][]int, len(a)+1)
	for i := range rows {
		rows[i] = make([]int, len(b)+1)
		rows[i][0] = i
	}
	for j := range rows[0] {
		rows[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d := min(rows[i-1][j]+1, rows[i][j-1]+1, rows[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d = min(d, rows[i-2][j-2]+1)
			}
			rows[i][j] = d
		}
	}
	return rows[len(a)][len(b)]
}

// DecodeDocument reads a YAML or JSON document into generic values
// (map[string]any, []any, string, float64, bool, nil) with the same limits
// Parse applies (yamlread, the one bounded reader): size, value count and
// expanded text (YAML aliases counted at every use) and depth. The registry
// uses it for gateflow.yaml, the prompt catalog for prompt files. Errors
// are *yamlread.Error.
func DecodeDocument(data []byte) (any, error) {
	return decodeTree(data)
}
