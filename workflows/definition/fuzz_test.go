package definition

import (
	"os"
	"testing"
)

// FuzzParse feeds random documents to Parse, Validate and EvalTemplate: no
// input may panic. Run: go test ./workflows/definition -run '^$' -fuzz FuzzParse -fuzztime 1m
func FuzzParse(f *testing.F) {
	for _, file := range exampleFiles(f) {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("name: t\nversion: '1'\nsteps: [{id: a, kind: wait, until: \"${{ 1 }}\"}]"))
	f.Add([]byte("a: &a [*a]"))
	f.Add([]byte(`{"name":"t","version":"1","steps":[{"id":"a","kind":"http","url":"http://h/${{ {a: '}}'} }}"}]}`))
	env := Env{"input": map[string]any{"a": 1.0, "s": "x", "l": []any{1.0, "b"}}, "steps": map[string]any{}, "vars": map[string]any{}}
	f.Fuzz(func(t *testing.T, data []byte) {
		def, err := Parse(data)
		if err != nil {
			return
		}
		_ = def.Validate(fakeCatalog{})
		_ = def.ValidateInput([]byte(`{"a": 1}`))
		_, _ = EvalTemplate(def.Output, env)
		_, _ = EvalTemplate(def.Vars, env)
		def.Walk(func(_ string, s *Step) bool {
			_, _ = EvalTemplate(s.Body, env)
			_, _ = EvalString(s.URL, env)
			if s.When != "" {
				_, _ = EvalCondition(s.When, env)
			}
			if s.Items != "" {
				_, _ = EvalList(s.Items, env)
			}
			return true
		})
	})
}

// FuzzEval feeds random expressions to the evaluator.
func FuzzEval(f *testing.F) {
	for _, s := range []string{"input.a > 1", "map(input.l, # + 1)", "repeat(input.s, 3)", "let x = [1]; x + x", "input.a % 0", "toJSON(input)", "date('2024-01-01').Unix()"} {
		f.Add(s)
	}
	env := Env{"input": map[string]any{"a": 1.0, "s": "x", "l": []any{1.0, 2.0}}, "steps": map[string]any{}, "vars": map[string]any{}}
	f.Fuzz(func(t *testing.T, src string) {
		_, _ = EvalValue(src, env)
		_, _ = EvalTemplate("${{ "+src+" }}", env)
	})
}
