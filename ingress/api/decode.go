package api

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// DefaultMaxDepth is the deepest JSON nesting accepted by default.
const DefaultMaxDepth = 32

// maxDetails caps the number of problems reported for one body.
const maxDetails = 50

// ReadBody reads the request body, at most limit bytes (413 beyond).
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, mbe
		}
		return nil, Errorf(http.StatusBadRequest, "bad_body", "could not read the request body: %v", err)
	}
	return b, nil
}

// DecodeJSON decodes body into dst (a pointer to a struct) strictly: the
// body must be one JSON value no deeper than maxDepth, and every field must
// exist in dst with the exact name and a compatible type. Every problem is
// reported with its path (e.g. "steps[2].retry.max_attempts") in one 400
// error. prefix is prepended to paths when decoding part of a larger body.
func DecodeJSON(body []byte, dst any, maxDepth int, prefix string) error {
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return &Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: "a JSON body is required",
			Details: []Detail{{Path: prefix, Message: "is empty"}}}
	}
	if err := CheckDepth(body, maxDepth); err != nil {
		return &Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: err.Error(), Details: []Detail{{Path: prefix, Message: err.Error()}}}
	}
	// Fast path: one strict decode. encoding/json matches field names
	// case-insensitively, so it is trusted only when no key of the body is
	// a known field name in another case; anything else (errors included)
	// takes the slow path, which locates every problem.
	if fastDecode(body, dst) {
		return nil
	}
	return slowDecode(body, dst, prefix)
}

// fastDecode decodes body into dst when it is valid and has exact field
// names; on false dst may be partly filled and must be decoded again.
func fastDecode(body []byte, dst any) bool {
	names := namesOf(reflect.TypeOf(dst).Elem())
	if names.slowOnly || !keysExact(body, names) {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return false
	}
	_, err := dec.Token()
	return err == io.EOF
}

// slowDecode decodes generically first, compares the value with dst's type
// to list every unknown field and type mismatch with its path, then
// decodes for real.
func slowDecode(body []byte, dst any, prefix string) error {
	var generic any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&generic); err != nil {
		return syntaxError(body, err, prefix)
	}
	if _, err := dec.Token(); err != io.EOF {
		return &Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the body must hold exactly one JSON value",
			Details: []Detail{{Path: prefix, Message: "unexpected data after the JSON value"}}}
	}
	var details []Detail
	checkValue(generic, reflect.TypeOf(dst).Elem(), prefix, &details)
	if len(details) > 0 {
		if len(details) > maxDetails {
			details = details[:maxDetails]
		}
		return &Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: summary(details), Details: details}
	}
	if err := json.Unmarshal(body, dst); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			p := joinPath(prefix, te.Field)
			return &Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: p + ": " + "has the wrong type",
				Details: []Detail{{Path: p, Message: "must be " + article(te.Type.Kind().String())}}}
		}
		return &Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: err.Error(), Details: []Detail{{Path: prefix, Message: err.Error()}}}
	}
	return nil
}

func summary(d []Detail) string {
	first := d[0].Message
	if d[0].Path != "" {
		first = d[0].Path + ": " + first
	}
	if len(d) == 1 {
		return first
	}
	return fmt.Sprintf("%s (and %d more problems)", first, len(d)-1)
}

func syntaxError(body []byte, err error, prefix string) error {
	var se *json.SyntaxError
	msg := err.Error()
	if errors.As(err, &se) {
		line, col := position(body, se.Offset)
		msg = fmt.Sprintf("invalid JSON at line %d, column %d: %s", line, col, strings.TrimPrefix(se.Error(), "json: "))
	} else if errors.Is(err, io.ErrUnexpectedEOF) {
		msg = "invalid JSON: unexpected end of input"
	}
	return &Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: msg, Details: []Detail{{Path: prefix, Message: msg}}}
}

func position(b []byte, off int64) (line, col int) {
	line, col = 1, 1
	for i := 0; i < int(off) && i < len(b); i++ {
		if b[i] == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// CheckDepth refuses JSON nested deeper than max, in one pass without
// allocating, before any decoder builds the value.
func CheckDepth(b []byte, max int) error {
	depth := 0
	inString, escaped := false, false
	for _, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > max {
				return fmt.Errorf("JSON is nested deeper than %d levels", max)
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	rawMessage      = reflect.TypeFor[json.RawMessage]()
)

// checkValue compares a generically decoded value with the Go type it will
// be decoded into, collecting unknown fields and type mismatches.
func checkValue(v any, t reflect.Type, path string, out *[]Detail) {
	if v == nil || len(*out) > maxDetails {
		return // null leaves a field unchanged
	}
	if reflect.PointerTo(t).Implements(jsonUnmarshaler) || t.Implements(jsonUnmarshaler) {
		// The type decides (time.Time, ...); try it alone to locate a
		// failure. json.RawMessage accepts everything.
		if t != rawMessage && t.Kind() != reflect.Interface {
			b, _ := json.Marshal(v)
			if err := json.Unmarshal(b, reflect.New(t).Interface()); err != nil {
				add(out, path, "is invalid: "+strings.TrimPrefix(err.Error(), "json: "))
			}
		}
		return
	}
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		if _, ok := v.(string); !ok {
			add(out, path, "must be a string")
		}
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		checkValue(v, t.Elem(), path, out)
	case reflect.Interface:
		// any value
	case reflect.String:
		if _, ok := v.(string); !ok {
			add(out, path, "must be a string")
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			add(out, path, "must be a boolean")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			add(out, path, "must be an integer")
			return
		}
		if _, err := strconv.ParseInt(string(n), 10, t.Bits()); err != nil {
			add(out, path, fmt.Sprintf("must be an integer of at most %d bits", t.Bits()))
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := v.(json.Number)
		if !ok {
			add(out, path, "must be a non-negative integer")
			return
		}
		if _, err := strconv.ParseUint(string(n), 10, t.Bits()); err != nil {
			add(out, path, "must be a non-negative integer")
		}
	case reflect.Float32, reflect.Float64:
		n, ok := v.(json.Number)
		if !ok {
			add(out, path, "must be a number")
			return
		}
		if _, err := strconv.ParseFloat(string(n), t.Bits()); err != nil {
			add(out, path, "must be a finite number")
		}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 && t.Kind() == reflect.Slice {
			if _, ok := v.(string); !ok {
				add(out, path, "must be a base64 string")
			}
			return
		}
		arr, ok := v.([]any)
		if !ok {
			add(out, path, "must be an array")
			return
		}
		if t.Kind() == reflect.Array && len(arr) > t.Len() {
			add(out, path, fmt.Sprintf("must have at most %d items", t.Len()))
		}
		for i, e := range arr {
			checkValue(e, t.Elem(), path+"["+strconv.Itoa(i)+"]", out)
		}
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			add(out, path, "must be an object")
			return
		}
		for _, k := range sortedKeys(obj) {
			checkValue(obj[k], t.Elem(), joinPath(path, k), out)
		}
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			add(out, path, "must be an object")
			return
		}
		fields := fieldsOf(t)
		for _, k := range sortedKeys(obj) {
			ft, ok := fields[k]
			if !ok {
				add(out, joinPath(path, k), "unknown field")
				continue
			}
			checkValue(obj[k], ft, joinPath(path, k), out)
		}
	default:
		add(out, path, "cannot be set")
	}
}

func add(out *[]Detail, path, msg string) {
	*out = append(*out, Detail{Path: path, Message: msg})
}

func joinPath(prefix, name string) string {
	if prefix == "" {
		return name
	}
	if name == "" {
		return prefix
	}
	return prefix + "." + name
}

func article(kind string) string {
	if strings.ContainsAny(kind[:1], "aeiou") {
		return "an " + kind
	}
	return "a " + kind
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// Deterministic problem order; insertion sort is fine for small objects.
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

// fieldNames are the JSON field names of a type tree: exact, and by lower
// case (to spot a key that encoding/json would match case-insensitively).
type fieldNames struct {
	exact map[string]bool
	lower map[string]bool
	// slowOnly marks types encoding/json decodes more loosely than
	// checkValue allows (fixed arrays drop extra items, []byte takes
	// number arrays): they always take the slow path.
	slowOnly bool
}

var namesCache sync.Map // reflect.Type -> *fieldNames

// namesOf collects the field names of every struct reachable from t.
func namesOf(t reflect.Type) *fieldNames {
	if n, ok := namesCache.Load(t); ok {
		return n.(*fieldNames)
	}
	n := &fieldNames{exact: map[string]bool{}, lower: map[string]bool{}}
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
			if t.Kind() == reflect.Array || (t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 && t != rawMessage) {
				n.slowOnly = true
			}
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		for name, ft := range fieldsOf(t) {
			n.exact[name] = true
			n.lower[strings.ToLower(name)] = true
			walk(ft)
		}
	}
	walk(t)
	namesCache.Store(t, n)
	return n
}

// keysExact reports whether every object key of body that matches a known
// field name case-insensitively matches it exactly. It scans the bytes once
// without allocating; keys with escapes, or keys of free-form parts that
// happen to look like field names, make it answer false (slow path).
func keysExact(body []byte, names *fieldNames) bool {
	var lower [64]byte
	for i := 0; i < len(body); i++ {
		if body[i] != '"' {
			continue
		}
		start := i + 1
		j := start
		escaped := false
		for ; j < len(body) && body[j] != '"'; j++ {
			if body[j] == '\\' {
				escaped = true
				j++
			}
		}
		if j >= len(body) {
			return false
		}
		i = j
		// A key is a string followed by ':'.
		k := j + 1
		for k < len(body) && (body[k] == ' ' || body[k] == '\t' || body[k] == '\n' || body[k] == '\r') {
			k++
		}
		if k >= len(body) || body[k] != ':' {
			continue
		}
		if escaped {
			return false
		}
		key := body[start:j]
		if len(key) > len(lower) {
			continue // longer than any field name we would confuse
		}
		for x, c := range key {
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			lower[x] = c
		}
		if names.lower[string(lower[:len(key)])] && !names.exact[string(key)] {
			return false
		}
	}
	return true
}

var fieldCache sync.Map // reflect.Type -> map[string]reflect.Type

// fieldsOf returns the JSON field names of a struct type with their types,
// following encoding/json's rules for tags and embedded structs (exact
// names only: the decoder's case-insensitive matching is refused here).
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := map[string]reflect.Type{}
	collectFields(t, m)
	fieldCache.Store(t, m)
	return m
}

func collectFields(t reflect.Type, m map[string]reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				collectFields(ft, m)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, dup := m[name]; !dup {
			m[name] = f.Type
		}
	}
}
