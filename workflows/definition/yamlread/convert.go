package yamlread

import (
	"bytes"
	"encoding/json"
	"io"
	"math"

	"gopkg.in/yaml.v3"
)

// convert turns a checked node graph into generic values. The checker has
// bounded values and depth with every alias expanded, so the recursion and
// the values built here are bounded too; aliases of one scalar share its
// string.
func convert(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, invalidf("empty document")
		}
		return convert(n.Content[0])
	case yaml.AliasNode:
		return convert(n.Alias)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, e := range n.Content {
			v, err := convert(e)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		explicit := make(map[string]bool, len(n.Content)/2)
		var merges []map[string]any
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				return nil, invalidf("line %d: mapping keys must be strings", k.Line)
			}
			if k.ShortTag() == "!!merge" {
				m, err := merge(v)
				if err != nil {
					return nil, err
				}
				merges = append(merges, m...)
				continue
			}
			if explicit[k.Value] {
				return nil, invalidf("line %d: key %q defined twice", k.Line, k.Value)
			}
			val, err := convert(v)
			if err != nil {
				return nil, err
			}
			explicit[k.Value] = true
			out[k.Value] = val
		}
		// Merged keys never override explicit ones; earlier merges win.
		for _, m := range merges {
			for k, v := range m {
				if _, ok := out[k]; !ok {
					out[k] = v
				}
			}
		}
		return out, nil
	case yaml.ScalarNode:
		return scalar(n)
	}
	return nil, invalidf("line %d: unsupported YAML node", n.Line)
}

func merge(v *yaml.Node) ([]map[string]any, error) {
	nodes := []*yaml.Node{v}
	if v.Kind == yaml.SequenceNode {
		nodes = v.Content
	}
	var out []map[string]any
	for _, e := range nodes {
		val, err := convert(e)
		if err != nil {
			return nil, err
		}
		m, ok := val.(map[string]any)
		if !ok {
			return nil, invalidf("line %d: << must merge a mapping", e.Line)
		}
		out = append(out, m)
	}
	return out, nil
}

func scalar(n *yaml.Node) (any, error) {
	switch n.ShortTag() {
	case "!!str", "!!timestamp", "!!binary":
		return n.Value, nil
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, invalidf("line %d: %v", n.Line, err)
		}
		return b, nil
	case "!!int":
		var i int64
		if err := n.Decode(&i); err == nil {
			return float64(i), nil
		}
		fallthrough
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return nil, invalidf("line %d: %v", n.Line, err)
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, invalidf("line %d: numbers must be finite", n.Line)
		}
		return f, nil
	}
	return nil, invalidf("line %d: unsupported YAML tag %s", n.Line, n.Tag)
}

// readJSONTree reads a JSON document token by token, so that duplicate
// keys are reported like in YAML and values, text and depth are bounded.
func readJSONTree(data []byte, lim Limits) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	values := 0
	var value func(depth int) (any, error)
	value = func(depth int) (any, error) {
		values++
		if values > lim.MaxValues {
			return nil, limitf(LimitValues, "document has more than %d values", lim.MaxValues)
		}
		if depth > lim.MaxDepth {
			return nil, limitf(LimitDepth, "offset %d: nested deeper than %d", dec.InputOffset(), lim.MaxDepth)
		}
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonSyntax(err)
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				m := map[string]any{}
				for dec.More() {
					kt, err := dec.Token()
					if err != nil {
						return nil, jsonSyntax(err)
					}
					k, _ := kt.(string)
					if _, dup := m[k]; dup {
						return nil, invalidf("offset %d: key %q defined twice", dec.InputOffset(), k)
					}
					v, err := value(depth + 1)
					if err != nil {
						return nil, err
					}
					m[k] = v
				}
				if _, err := dec.Token(); err != nil {
					return nil, jsonSyntax(err)
				}
				return m, nil
			case '[':
				l := []any{}
				for dec.More() {
					v, err := value(depth + 1)
					if err != nil {
						return nil, err
					}
					l = append(l, v)
				}
				if _, err := dec.Token(); err != nil {
					return nil, jsonSyntax(err)
				}
				return l, nil
			}
			return nil, invalidf("offset %d: unexpected %q", dec.InputOffset(), t)
		case json.Number:
			f, err := t.Float64()
			if err != nil || math.IsInf(f, 0) {
				return nil, invalidf("offset %d: number %s out of range", dec.InputOffset(), t)
			}
			return f, nil
		default:
			return t, nil // string, bool, nil
		}
	}
	v, err := value(0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalidf("syntax: data after the JSON document")
	}
	return v, nil
}

func jsonSyntax(err error) error {
	if err == io.EOF {
		return invalidf("syntax: unexpected end of JSON")
	}
	return invalidf("syntax: %v", err)
}
