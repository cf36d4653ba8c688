package definition

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

type fakeCatalog struct{}

func (fakeCatalog) HasService(n string) bool {
	return n == "inventory" || n == "payments" || n == "echo" || n == "shipping"
}
func (fakeCatalog) HasModel(n string) bool     { return n == "default" || n == "local/llama" }
func (fakeCatalog) HasMCPServer(n string) bool { return n == "catalog" }

func problems(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %T (%v), want *ValidationError", err, err)
	}
	var out []string
	for _, p := range ve.Problems {
		out = append(out, p.String())
	}
	return out
}

// TestValidateProblems lists, for small documents, the exact problems
// expected (each must appear; no other problem may).
func TestValidateProblems(t *testing.T) {
	const head = "name: t\nversion: \"1\"\n"
	tests := []struct {
		name string
		doc  string
		want []string
	}{
		{"ok", head + `steps: [{id: a, kind: wait, duration: 1s}]`, nil},
		{"syntax", "name: [", []string{"syntax"}},
		{"not an object", "[1, 2]", []string{"must be an object, not a list"}},
		{"empty", "", []string{"empty document"}},
		{"two documents", head + "steps: []\n---\nname: x\n", []string{"more than one YAML document"}},
		{"duplicate key", head + "name: u\nsteps: []", []string{"defined twice"}},
		{"duplicate key json", `{"name": "t", "version": "1", "name": "u", "steps": []}`, []string{"defined twice"}},
		{"bad json", `{"name": "t",`, []string{"syntax"}},
		{"trailing json", `{"name": "t"} x`, []string{"syntax"}},
		{"deep json", strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100), []string{"nested deeper than 64"}},
		{"name version steps", "name: 'a b'\nversion: ''\nsteps: []", []string{
			"name: must be 1-100", "steps: at least one step is required", "version: required"}},
		{"unknown field and typo", head + `steps: [{id: a, kidn: wait, kind: wait, duration: 1s}]
extra: 1`, []string{`extra: unknown field`, `steps[0].kidn: unknown field (did you mean "kind"?)`}},
		{"not allowed for kind", head + `steps: [{id: a, kind: http, service: echo, model: m, items: x}]`, []string{
			"steps[0].items: not allowed for kind http", "steps[0].model: not allowed for kind http"}},
		{"wrong types", head + `steps: [{id: a, kind: http, service: echo, timeout: 5, success_statuses: x, retry: {max_attempts: 1.5}}]`, []string{
			"steps[0].retry.max_attempts: must be an integer", "steps[0].success_statuses: must be a list", "steps[0].timeout: must be a string"}},
		{"unknown kind", head + `steps: [{id: a, kind: htp}, {id: b}]`, []string{
			`steps[0].kind: unknown step kind "htp"`, "steps[1].kind: required"}},
		{"ids", head + `steps: [{id: 1a, kind: wait, duration: 1s}, {id: in, kind: wait, duration: 1s}, {kind: wait, duration: 1s}]`, []string{
			"steps[0].id: must be an identifier", `steps[1].id: "in" is a reserved word`, "steps[2].id: required"}},
		{"duplicate ids nested and compensation", head + `steps:
  - {id: a, kind: http, service: echo, compensate: {id: b, kind: http, service: echo}}
  - {id: p, kind: parallel, branches: [{steps: [{id: a, kind: wait, duration: 1s}]}, {steps: [{id: b, kind: wait, duration: 1s}]}]}`, []string{
			`steps[1].branches[0].steps[0].id: duplicate step id "a" (first used at steps[0])`,
			`steps[1].branches[1].steps[0].id: duplicate step id "b" (first used at steps[0].compensate)`}},
		{"retry bounds", head + `steps: [{id: a, kind: http, service: echo, retry: {max_attempts: 0, backoff_coefficient: 0.5, initial_interval: 10s, max_interval: 1s, non_retryable_statuses: [99, 600], non_retryable_errors: [nope]}}]`, []string{
			"steps[0].retry.backoff_coefficient: must be at least 1",
			"steps[0].retry.max_attempts: must be at least 1",
			"steps[0].retry.max_interval: must not be shorter than initial_interval",
			"steps[0].retry.non_retryable_errors[0]: unknown error class",
			"steps[0].retry.non_retryable_statuses[0]: must be at least 100",
			"steps[0].retry.non_retryable_statuses[1]: must be at most 599"}},
		{"retry attempts too many", head + `steps: [{id: a, kind: http, service: echo, retry: {max_attempts: 1000}}]`, []string{
			"steps[0].retry.max_attempts: must be at most 100"}},
		{"http", head + `steps:
  - {id: a, kind: http}
  - {id: b, kind: http, service: echo, url: "http://x/"}
  - {id: c, kind: http, url: "ftp://x/y"}
  - {id: d, kind: http, url: "${{ input.u }}"}
  - {id: e, kind: http, url: "https://u:p@x/"}
  - {id: f, kind: http, url: "https://h/a", path: /b, method: FETCH}
  - {id: g, kind: http, service: echo, path: "x", headers: {"bad header": v}}
  - {id: h, kind: http, service: nope}
  - {id: i, kind: http, service: echo, success_statuses: [700]}`, []string{
			"steps[0].service: an http step needs service or url",
			"steps[1].url: set service or url, not both",
			"steps[2].url: must be an absolute http:// or https:// URL",
			"steps[3].url: must be an absolute http:// or https:// URL",
			"steps[4].url: must not hold credentials",
			"steps[5].method: must be one of",
			"steps[5].path: only with service",
			`steps[6].headers["bad header"]: not a valid header name`,
			"steps[6].path: must start with /",
			`steps[7].service: unknown service "nope"`,
			"steps[8].success_statuses[0]: must be at most 599"}},
		{"url with template after host", head + `steps: [{id: a, kind: http, url: "https://api.example.com/orders/${{ input.id }}"}, {id: b, kind: http, url: "https://api.example.com${{ input.p }}"}]`, []string{
			"steps[1].url: the scheme and host must be literal"}},
		{"model", head + `steps:
  - {id: a, kind: model}
  - {id: b, kind: model, model: default, prompt: hi, messages: [{role: user, content: x}]}
  - {id: c, kind: model, model: nope, messages: [{role: robot, content: ""}], temperature: 3, max_tokens: 0, response_format: xml}`, []string{
			"steps[0].model: required",
			"steps[0].prompt: a model step needs prompt or messages",
			"steps[1].messages: set prompt or messages, not both",
			"steps[2].max_tokens: must be at least 1",
			"steps[2].messages[0].content: required",
			"steps[2].messages[0].role: must be one of system, user, assistant",
			`steps[2].model: unknown model "nope"`,
			"steps[2].response_format: must be text or json",
			"steps[2].temperature: must be at most 2"}},
		{"approval", head + `steps:
  - {id: a, kind: approval}
  - {id: b, kind: approval, approvers: {users: [ann, bob, ann]}, quorum: 3}
  - {id: c, kind: approval, approvers: {roles: [manager]}, quorum: 3, on_timeout: escalate, timeout: 1h}
  - {id: d, kind: approval, approvers: {roles: [m]}, on_timeout: later, escalate_to: {users: [x]}, escalation_timeout: 1h}
  - {id: e, kind: approval, approvers: {roles: [""]}, on_timeout: approve, timeout: -1s}
  - {id: f, kind: approval, approvers: {users: [x]}, on_reject: maybe}
  - {id: g, kind: wait, duration: 1s, on_reject: continue}
  - {id: h, kind: approval, approvers: {users: [x]}, on_reject: continue, allow_self_approval: true}
  - {id: i, kind: approval, approvers: {users: [x]}, allow_self_approval: "yes"}
  - {id: j, kind: wait, duration: 1s, allow_self_approval: true}`, []string{
			"steps[0].approvers: at least one role or user is required",
			"steps[1].quorum: 3 is more than the 2 users who may approve",
			"steps[2].escalate_to: required when on_timeout is escalate",
			"steps[3].escalate_to: only with on_timeout: escalate",
			"steps[3].escalation_timeout: only with on_timeout: escalate",
			"steps[3].on_timeout: must be one of reject, approve, escalate",
			"steps[3].timeout: required when on_timeout is set",
			"steps[4].approvers.roles[0]: must not be empty",
			"steps[4].timeout: must be positive",
			"steps[5].on_reject: must be fail or continue",
			"steps[6].on_reject: not allowed for kind wait",
			"steps[8].allow_self_approval: must be true or false, not a string",
			"steps[9].allow_self_approval: not allowed for kind wait"}},
		{"control kinds", head + `steps:
  - {id: a, kind: parallel, branches: [{name: x, steps: []}, {name: x, steps: [{id: a1, kind: wait, duration: 1s}]}]}
  - {id: b, kind: foreach, concurrency: 1000}
  - {id: c, kind: switch, cases: [{steps: [{id: c1, kind: wait, duration: 1s}]}]}
  - {id: d, kind: wait}
  - {id: e, kind: wait, duration: 1s, until: "input.t"}
  - {id: f, kind: mcp}
  - {id: g, kind: mcp, server: nope, tool: t}`, []string{
			`steps[0].branches[1].name: duplicate branch name "x"`,
			"steps[0].branches[0].steps: at least one step is required",
			"steps[1].concurrency: must be at most 100",
			"steps[1].items: required",
			"steps[1].steps: at least one step is required",
			"steps[2].cases[0].when: required",
			"steps[3].duration: a wait step needs duration or until",
			"steps[4].until: set duration or until, not both",
			"steps[5].server: required",
			"steps[5].tool: required",
			`steps[6].server: unknown MCP server "nope"`}},
		{"compensation rules", head + `steps:
  - id: a
    kind: http
    service: echo
    compensate: {id: undo, kind: approval, approvers: {roles: [x]}, compensate: {id: z, kind: http, service: echo}}
  - {id: b, kind: http, service: echo, body: "${{ steps.undo.output }}"}`, []string{
			"steps[0].compensate.compensate: a compensation cannot have its own compensation",
			"steps[0].compensate.kind: a compensation must be one of http, model, mcp, not approval",
			`steps[1].body: expression "steps.undo.output": refers to compensation step "undo"`}},
		{"expressions", head + `vars: {a: "${{ vars.b }}", b: "${{ steps.x.output }}", c: "${{ vars.a }}${{ vars.zz }}"}
steps:
  - {id: x, kind: http, service: echo, when: "input.a >", body: {k: ["${{ nope }}"]}}
  - {id: y, kind: http, service: echo, query: {q: "${{ steps[input.k].output }}"}, path: "/${{ item }}"}
  - {id: z, kind: wait, duration: 1s, when: "steps.z.state == 'x'"}
output: "${{ steps.y.output.body }} ${{ $env }}"`, []string{
			`$env is not available`,
			`steps[0].body.k[0]: expression "nope"`,
			`steps[0].when: expression "input.a >"`,
			`steps[1].path: expression "item": item and index are only available inside a foreach`,
			`steps[1].query.q: expression "steps[input.k].output": steps must be indexed by a literal step id`,
			`steps[2].when: expression "steps.z.state == 'x'": refers to its own step "z"`,
			`vars.a: expression "vars.b": refers to var "b", which is evaluated later`,
			`vars.b: expression "steps.x.output": vars are evaluated before any step runs`,
			`vars.c: expression "vars.zz": refers to unknown var "zz"`}},
		{"references", head + `steps:
  - {id: a, kind: http, service: echo, body: "${{ steps.b.output }}"}
  - {id: b, kind: parallel, branches: [{steps: [{id: b1, kind: wait, duration: 1s}]}, {steps: [{id: b2, kind: wait, until: "steps.b1.output.until"}]}]}
  - {id: c, kind: foreach, items: "steps.c1.output", steps: [{id: c1, kind: http, service: echo, body: "${{ [item, index, steps.b1.output, steps.c.output] }}"}]}
  - {id: d, kind: switch, cases: [{when: "steps.d1.state == 'x'", steps: [{id: d1, kind: wait, duration: 1s}]}, {when: "true", steps: [{id: d2, kind: wait, until: "steps.d1.output.until"}]}]}
  - {id: e, kind: http, service: echo, body: "${{ [steps.b1.output, steps.b2.output, steps.d1?.output, steps.c.output, steps.c1.output, steps.zz.output] }}"}`, []string{
			`steps[0].body: expression "steps.b.output": refers to step "b", which runs later (steps[1]): a forward reference would be a cycle`,
			`steps[1].branches[1].steps[0].until: expression "steps.b1.output.until": refers to step "b1" in another branch of parallel "b"`,
			`steps[2].items: expression "steps.c1.output": refers to step "c1" in the body of foreach "c"`,
			`steps[2].steps[0].body: expression "[item, index, steps.b1.output, steps.c.output]": refers to step "c" that contains it`,
			`steps[3].cases[0].when: expression "steps.d1.state == 'x'": refers to step "d1", which runs later`,
			`steps[3].cases[1].steps[0].until: expression "steps.d1.output.until": refers to step "d1" in another case of switch "d"`,
			`steps[4].body: expression "[steps.b1.output, steps.b2.output, steps.d1?.output, steps.c.output, steps.c1.output, steps.zz.output]": refers to step "c1" in the body of foreach "c"`,
			`steps[4].body: expression "[steps.b1.output, steps.b2.output, steps.d1?.output, steps.c.output, steps.c1.output, steps.zz.output]": refers to unknown step "zz"`}},
		{"durations and schema", head + `timeout: 10000h
input_schema: {type: strng}
steps: [{id: a, kind: wait, duration: 0s}, {id: b, kind: http, service: echo, timeout: 1y}]`, []string{
			"input_schema: invalid JSON Schema",
			"steps[0].duration: must be positive",
			`steps[1].timeout: must be a duration`,
			"timeout: must be at most 8784h"}},
		{"yaml aliases bounded", "a: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n", []string{
			"more than 100000 values"}},
		{"yaml merge and anchors", head + `x-retry: &retry {max_attempts: 3}
steps: [{id: a, kind: http, service: echo, retry: *retry}]`, nil},
		{"non-finite number", head + `steps: [{id: a, kind: model, model: default, prompt: x, temperature: .nan}]`, []string{"numbers must be finite"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load([]byte(tt.doc), fakeCatalog{})
			got := problems(t, err)
			for _, w := range tt.want {
				found := false
				for _, g := range got {
					if strings.Contains(g, w) {
						found = true
					}
				}
				if !found {
					t.Errorf("missing problem %q", w)
				}
			}
			for _, g := range got {
				matched := false
				for _, w := range tt.want {
					matched = matched || strings.Contains(g, w)
				}
				if !matched {
					t.Errorf("unexpected problem %q", g)
				}
			}
		})
	}
}

func TestProblemsSortedByPath(t *testing.T) {
	var steps []string
	for i := 0; i < 12; i++ {
		steps = append(steps, `{id: a, kind: wait}`)
	}
	_, err := Load([]byte("name: t\nversion: '1'\nsteps: ["+strings.Join(steps, ",")+"]"), nil)
	ps := problems(t, err)
	if len(ps) < 12 || !strings.HasPrefix(ps[0], "steps[0]") || !strings.HasPrefix(ps[len(ps)-1], "steps[11]") {
		t.Fatalf("not sorted by path: %v", ps)
	}
	if !pathLess("steps[2].x", "steps[10].x") || pathLess("steps[10]", "steps[9]") {
		t.Fatal("pathLess orders numbers as text")
	}
}

func TestParseJSONAndYAMLAgree(t *testing.T) {
	y := []byte("name: t\nversion: '1'\nsteps:\n  - id: a\n    kind: http\n    service: echo\n    body: {n: 1, s: x}\n")
	j := []byte(`{"name":"t","version":"1","steps":[{"id":"a","kind":"http","service":"echo","body":{"n":1,"s":"x"}}]}`)
	dy, err := Load(y, fakeCatalog{})
	if err != nil {
		t.Fatal(err)
	}
	dj, err := Load(j, fakeCatalog{})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(dy)
	b, _ := json.Marshal(dj)
	if string(a) != string(b) {
		t.Fatalf("YAML %s != JSON %s", a, b)
	}
	// Tabs in JSON are fine.
	if _, err := Load([]byte("{\n\t\"name\": \"t\",\n\t\"version\": \"1\",\n\t\"steps\": [{\"id\": \"a\", \"kind\": \"wait\", \"duration\": \"1s\"}]\n}"), nil); err != nil {
		t.Fatal(err)
	}
}

func TestParseTooLarge(t *testing.T) {
	_, err := Parse(make([]byte, MaxDefinitionBytes+1))
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("got %v", err)
	}
}

func TestValidateInput(t *testing.T) {
	data, err := os.ReadFile(examplesDir + "/order-fulfilment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	def, err := Load(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	ok := `{"order_id": "o1", "amount": 12.5, "customer": {"email": "a@example.com"}, "items": [{"sku": "s", "qty": 1}]}`
	if err := def.ValidateInput(json.RawMessage(ok)); err != nil {
		t.Fatal(err)
	}
	bad := `{"order_id": "", "amount": -1, "customer": {"email": "nope"}, "items": [{"sku": "s", "qty": 0}, {"qty": 1}], "x": 1}`
	got := problems(t, def.ValidateInput(json.RawMessage(bad)))
	for _, w := range []string{"input: additional properties 'x'", "input.amount: minimum", "input.customer.email: 'nope' is not valid email",
		"input.items[0].qty: minimum", "input.items[1]: missing property 'sku'", "input.order_id: minLength"} {
		found := false
		for _, g := range got {
			found = found || strings.HasPrefix(g, w)
		}
		if !found {
			t.Errorf("missing %q in %v", w, got)
		}
	}
	if got := problems(t, def.ValidateInput(json.RawMessage(`{`))); len(got) != 1 || !strings.Contains(got[0], "not valid JSON") {
		t.Fatalf("bad JSON: %v", got)
	}
	noSchema := &Definition{Name: "x", Version: "1"}
	if err := noSchema.ValidateInput(nil); err != nil {
		t.Fatal(err)
	}
}

func TestInputSchemaNoExternalRefs(t *testing.T) {
	for _, s := range []string{`{"$ref": "file:///etc/passwd"}`, `{"$ref": "https://example.com/s.json"}`} {
		d := &Definition{Name: "x", Version: "1", InputSchema: json.RawMessage(s), Steps: []Step{{ID: "a", Kind: KindWait, Duration: "1s"}}}
		got := problems(t, d.Validate(nil))
		if len(got) != 1 || !strings.Contains(got[0], "external schema references are not allowed") {
			t.Errorf("%s: %v", s, got)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	ordered := [][]string{
		{"1", "2", "9", "10", "100"},
		{"1.0", "1.2", "1.2.1", "1.10", "2.0.0"},
		{"v1.2.0-alpha", "v1.2.0-beta", "1.2.0", "1.2.1"},
		{"1.0.0-rc.2", "1.0.0"},
		{"alpha", "beta", "1"},
		{"2024-01-05", "2024-02-01"},
	}
	for _, seq := range ordered {
		for i := 0; i+1 < len(seq); i++ {
			if c := CompareVersions(seq[i], seq[i+1]); c != -1 {
				t.Errorf("CompareVersions(%q, %q) = %d, want -1", seq[i], seq[i+1], c)
			}
			if c := CompareVersions(seq[i+1], seq[i]); c != 1 {
				t.Errorf("CompareVersions(%q, %q) = %d, want 1", seq[i+1], seq[i], c)
			}
		}
	}
	if CompareVersions("3", "3") != 0 || CompareVersions("1.0", "1") == 0 {
		t.Error("equality")
	}
	if got := LatestVersion([]string{"2", "10", "9"}); got != "10" {
		t.Errorf("LatestVersion = %q", got)
	}
}

func TestWalkAndHelpers(t *testing.T) {
	data, err := os.ReadFile(examplesDir + "/catalog-enrichment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	def, err := Load(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	def.Walk(func(p string, s *Step) bool {
		paths = append(paths, p+"="+s.ID)
		return true
	})
	want := "steps[0]=enrich steps[0].steps[0]=lookup steps[0].steps[0].branches[0].steps[0]=stock steps[0].steps[0].branches[1].steps[0]=tags steps[0].steps[1]=summary steps[1]=publish"
	if strings.Join(paths, " ") != want {
		t.Fatalf("walk: %v", paths)
	}
	s := Step{}
	if s.HTTPMethod() != "GET" || s.ForeachConcurrency() != DefaultForeachConcurrency || s.ApprovalQuorum() != 1 {
		t.Fatal("defaults")
	}
}

func BenchmarkParseValidate(b *testing.B) {
	for _, f := range exampleFiles(b) {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(strings.TrimPrefix(f, examplesDir+"/"), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := Load(data, fakeCatalog{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeOnly is the bare alternative: decoding the same documents
// into the Go types with yaml.v3 → JSON → encoding/json, no checks.
func BenchmarkDecodeOnly(b *testing.B) {
	for _, f := range exampleFiles(b) {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(strings.TrimPrefix(f, examplesDir+"/"), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				tree, err := decodeTree(data)
				if err != nil {
					b.Fatal(err)
				}
				raw, _ := json.Marshal(tree)
				var d Definition
				if err := json.Unmarshal(raw, &d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParseValidateCold is Parse+Validate of a definition never seen
// before: the compiled-expression and schema caches are emptied each time.
func BenchmarkParseValidateCold(b *testing.B) {
	for _, f := range exampleFiles(b) {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(strings.TrimPrefix(f, examplesDir+"/"), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				exprCache = newLRU[string, *program](exprCacheSize)
				schemaCache = newLRU[[32]byte, *jsonschema.Schema](1024)
				if _, err := Load(data, fakeCatalog{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
