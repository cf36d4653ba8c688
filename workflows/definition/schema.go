package definition

import (
	"encoding/json"
)

// SchemaID is the $id of the definition JSON Schema.
const SchemaID = "https://gateflow.dev/schemas/definition.schema.json"

// JSONSchema returns a JSON Schema (draft 2020-12) of the definition format,
// generated from the same description Parse checks documents against. It is
// published as docs/definition.schema.json for editors, and can be served
// by the API. Expressions, durations and registry names are only checked
// for their type here; Validate checks their meaning.
func JSONSchema() []byte {
	defs := map[string]any{
		"expression": map[string]any{
			"type":        "string",
			"minLength":   1,
			"description": "A bare expr-lang expression over input, steps, vars (and item, index inside a foreach).",
		},
		"duration": map[string]any{
			"type":        "string",
			"pattern":     `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`,
			"description": "A Go duration such as \"30s\", \"5m\" or \"1h30m\".",
		},
		"template": map[string]any{
			"description": "Any JSON value; strings may embed ${{ expr }}. A string that is exactly one ${{ expr }} takes the expression's typed value.",
		},
	}
	for _, o := range objectSpecs(definitionSpec) {
		defs[o.name] = objectSchema(o)
	}
	step := defs[stepSpec.name].(map[string]any)
	var rules []any
	for _, k := range stepKinds {
		var allowed []string
		for _, f := range stepCommonFields {
			allowed = append(allowed, f.name)
		}
		for _, f := range k.fields {
			allowed = append(allowed, f.name)
		}
		then := map[string]any{"propertyNames": map[string]any{"enum": allowed}}
		if len(k.required) > 0 {
			then["required"] = k.required
		}
		if len(k.oneOf) > 0 {
			var alts []any
			for _, f := range k.oneOf {
				alts = append(alts, map[string]any{"required": []string{f}})
			}
			then["oneOf"] = alts
		}
		rules = append(rules, map[string]any{
			"if":   map[string]any{"properties": map[string]any{"kind": map[string]any{"const": k.name}}, "required": []string{"kind"}},
			"then": then,
		})
	}
	step["allOf"] = rules

	root := objectSchema(definitionSpec)
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["$id"] = SchemaID
	root["title"] = "Gateflow orchestration definition"
	root["$defs"] = defs
	root["patternProperties"] = map[string]any{"^x-": map[string]any{"description": "Ignored: a place for YAML anchors."}}
	out, err := json.MarshalIndent(root, "", "  ")
	if err != nil {
		panic(err) // only static data above
	}
	return append(out, '\n')
}

// objectSpecs returns the objects nested in o (steps included), each once:
// the $defs of the schema.
func objectSpecs(o *objectSpec) []*objectSpec {
	var out []*objectSpec
	seen := map[*objectSpec]bool{}
	var visitField func(f *field)
	visit := func(o *objectSpec) {
		if seen[o] {
			return
		}
		seen[o] = true
		if o != definitionSpec {
			out = append(out, o)
		}
		for i := range o.fields {
			visitField(&o.fields[i])
		}
	}
	visitField = func(f *field) {
		switch f.typ {
		case tObject:
			visit(f.obj)
		case tList:
			visitField(f.elem)
		case tStep, tStepList:
			visit(stepSpec)
		}
	}
	visit(o)
	return out
}

func objectSchema(o *objectSpec) map[string]any {
	props := map[string]any{}
	var required []string
	for i := range o.fields {
		f := &o.fields[i]
		props[f.name] = fieldSchema(f)
		if f.required {
			required = append(required, f.name)
		}
	}
	s := map[string]any{
		"type":                 "object",
		"additionalProperties": false,
		"properties":           props,
	}
	if o.desc != "" {
		s["description"] = o.desc
	}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

func fieldSchema(f *field) map[string]any {
	var s map[string]any
	switch f.typ {
	case tString:
		s = map[string]any{"type": "string"}
		if len(f.enum) > 0 {
			s["enum"] = f.enum
		}
	case tName:
		s = map[string]any{"type": "string", "minLength": 1}
	case tTemplateString:
		s = map[string]any{"type": "string"}
	case tExpr:
		s = map[string]any{"$ref": "#/$defs/expression"}
	case tDuration:
		s = map[string]any{"$ref": "#/$defs/duration"}
	case tInt, tNumber:
		t := "number"
		if f.typ == tInt {
			t = "integer"
		}
		s = map[string]any{"type": t}
		if f.min != nil {
			s["minimum"] = *f.min
		}
		if f.max != nil {
			s["maximum"] = *f.max
		}
	case tBool:
		s = map[string]any{"type": "boolean"}
	case tTemplate:
		s = map[string]any{"$ref": "#/$defs/template"}
	case tTemplateMap:
		s = map[string]any{"type": "object", "additionalProperties": map[string]any{"type": []string{"string", "number", "boolean"}}}
	case tValueMap:
		s = map[string]any{"type": "object", "additionalProperties": map[string]any{"$ref": "#/$defs/template"}}
	case tSchema:
		s = map[string]any{"type": []string{"object", "boolean"}}
	case tObject:
		s = map[string]any{"$ref": "#/$defs/" + f.obj.name}
	case tStep:
		s = map[string]any{"$ref": "#/$defs/step"}
	case tStepList:
		s = map[string]any{"type": "array", "items": map[string]any{"$ref": "#/$defs/step"}}
	case tList:
		s = map[string]any{"type": "array", "items": fieldSchema(f.elem)}
	}
	if f.minItems > 0 {
		s["minItems"] = f.minItems
	}
	if f.desc != "" {
		s["description"] = f.desc // beside $ref too: allowed in 2020-12
	}
	return s
}
