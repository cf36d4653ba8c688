package definition

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// schemaCache holds compiled input schemas by the SHA-256 of their text.
// It lives outside Definition so that definitions stay plain serializable
// values; compilation is pure, so a cached schema equals a fresh one.
var schemaCache = newLRU[[32]byte, *jsonschema.Schema](1024)

// MaxInputProblems bounds the problems reported for one input.
const MaxInputProblems = 50

// compileInputSchema compiles a definition's input schema (JSON Schema
// 2020-12 unless it names another draft). References to other documents
// are refused: a schema must be self-contained, and compiling it must never
// read files or the network.
func compileInputSchema(raw json.RawMessage) (*jsonschema.Schema, error) {
	key := sha256.Sum256(raw)
	if s, ok := schemaCache.get(key); ok {
		return s, nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("not valid JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{})
	const loc = "gateflow:input-schema.json"
	if err := c.AddResource(loc, doc); err != nil {
		return nil, schemaError(err)
	}
	s, err := c.Compile(loc)
	if err != nil {
		return nil, schemaError(err)
	}
	schemaCache.put(key, s)
	return s, nil
}

func schemaError(err error) error {
	msg := err.Error()
	msg = strings.ReplaceAll(msg, "gateflow:input-schema.json", "")
	msg = strings.ReplaceAll(msg, "\n", "; ")
	return fmt.Errorf("invalid JSON Schema: %s", msg)
}

// noLoader refuses every external reference.
type noLoader struct{}

// Load implements jsonschema.URLLoader by refusing.
func (noLoader) Load(u string) (any, error) {
	return nil, fmt.Errorf("external schema references are not allowed (%s)", u)
}

// ValidateInput checks an orchestration input against the definition's
// input_schema. Problems are reported with paths such as "input.amount" or
// "input.items[2].sku". A definition without a schema accepts any JSON
// value; an empty input counts as null.
func (d *Definition) ValidateInput(input json.RawMessage) error {
	ve := &ValidationError{Subject: "input"}
	raw := bytes.TrimSpace(input)
	if len(raw) == 0 {
		raw = []byte("null")
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		ve.Errorf("input", "not valid JSON: %v", err)
		return ve
	}
	if len(d.InputSchema) == 0 {
		return nil
	}
	s, err := compileInputSchema(d.InputSchema)
	if err != nil {
		ve.Errorf("input_schema", "definition %s: %v", d.Ref(), err)
		return ve
	}
	err = s.Validate(inst)
	if err == nil {
		return nil
	}
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		ve.Errorf("input", "%v", err)
		return ve
	}
	out := verr.BasicOutput()
	seen := map[Problem]bool{}
	for _, u := range out.Errors {
		if u.Error == nil {
			continue
		}
		msg := u.Error.String()
		// Summaries of nested failures repeat their causes.
		if strings.HasPrefix(msg, "validation failed") || strings.HasPrefix(msg, "allOf failed") {
			continue
		}
		p := Problem{Path: instancePath(inst, u.InstanceLocation), Message: msg}
		if !seen[p] {
			seen[p] = true
			ve.Problems = append(ve.Problems, p)
		}
		if len(ve.Problems) >= MaxInputProblems {
			break
		}
	}
	if len(ve.Problems) == 0 {
		ve.Errorf("input", "%s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	ve.Problems = sortProblems(ve.Problems)
	return ve
}

// instancePath turns a JSON pointer into "input.a.b[2]", using the instance
// to tell array indexes from object keys.
func instancePath(inst any, ptr string) string {
	path := "input"
	if ptr == "" {
		return path
	}
	cur := inst
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case []any:
			i, err := strconv.Atoi(tok)
			if err == nil && i >= 0 && i < len(c) {
				path += "[" + tok + "]"
				cur = c[i]
				continue
			}
			path = joinPath(path, tok)
			cur = nil
		case map[string]any:
			path = joinPath(path, tok)
			cur = c[tok]
		default:
			path = joinPath(path, tok)
			cur = nil
		}
	}
	return path
}
