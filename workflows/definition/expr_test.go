package definition

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// testEnv builds an environment the way the interpreter does: from JSON,
// so numbers are float64.
func testEnv(t testing.TB) Env {
	t.Helper()
	var env Env
	err := json.Unmarshal([]byte(`{
		"input": {"amount": 150, "count": 3, "name": "Ada", "tags": ["a","b"], "ratio": 0.5,
		          "items": [{"id": "x", "price": 5}, {"id": "y", "price": 20}], "nested": {"deep": {"v": true}},
		          "when": "2024-05-01T10:00:00Z", "empty": null},
		"steps": {"charge": {"state": "succeeded", "output": {"status": 200, "body": {"id": "ch_1", "ok": true}}}},
		"vars": {"limit": 100, "prefix": "ord-"},
		"item": {"sku": "s1", "qty": 2},
		"index": 1
	}`), &env)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func TestEvalValue(t *testing.T) {
	env := testEnv(t)
	tests := []struct {
		expr string
		want any
	}{
		{"input.amount", 150.0},
		{"input.amount > 100", true},
		{"input.amount >= 150 && input.amount <= 150", true},
		{"input.amount == 150", true},
		{"input.count == 3", true},
		{"input.count != 3.0", false},
		{"input.amount + 1", 151.0},
		{"input.amount * 2 - 50", 250.0},
		{"input.amount / 4", 37.5},
		{"input.count % 2", 1},
		{"input.count % 2 == 1", true},
		{"7 % 3", 1},
		{"input.ratio % 0.2 > 0.09", true},
		{"input.amount > vars.limit", true},
		{"input.items[1].price", 20.0},
		{"input.items[input.count - 2].id", "y"},
		{"len(input.items)", 1 + 1},
		{"map(input.items, .id)", []any{"x", "y"}},
		{"filter(input.items, .price > 10)[0].id", "y"},
		{"sum(map(input.items, .price))", 25.0},
		{"input.name + '!'", "Ada!"},
		{"vars.prefix + string(index)", "ord-1"},
		{"upper(input.name)", "ADA"},
		{"'a' in input.tags", true},
		{"'z' not in input.tags", true},
		{"input.name startsWith 'A'", true},
		{"input.name matches '^A.a$'", true},
		{"steps.charge.output.body.id", "ch_1"},
		{"steps['charge'].state", "succeeded"},
		{"steps.charge.output.status == 200", true},
		{"steps?.missing?.output ?? 'none'", "none"},
		{"input.empty ?? 'default'", "default"},
		{"item.qty * 2", 4.0},
		{"index + 1", 2.0},
		{"input.nested.deep.v ? 'yes' : 'no'", "yes"},
		{"keys(input.nested)", []any{"deep"}},
		{"keys({b: 1, a: 2, c: 3})", []any{"a", "b", "c"}},
		{"values({b: 1, a: 2, c: 3})", []any{2, 1, 3}},
		{"toPairs({b: 1, a: 2})", []any{[]any{"a", 2}, []any{"b", 1}}},
		{"join(input.tags, ',')", "a,b"},
		{"join(split('x-y', '-'), '+')", "x+y"},
		{"replace('aXbX', 'X', '-')", "a-b-"},
		{"repeat('ab', input.count)", "ababab"},
		{"date(input.when).Year()", 2024},
		{"date(input.when) < date('2025-01-01')", true},
		{"date('01/02/2024', '01/02/2006').Day() == 2", true},
		{"1..3", []any{1, 2, 3}},
		{"let x = input.amount; x > 100 ? 'big' : 'small'", "big"},
		{"toJSON({a: 1})", "{\n  \"a\": 1\n}"},
		{"fromJSON('{\"a\": [1]}').a[0]", 1.0},
		{"sortBy(input.items, .price, 'desc')[0].id", "y"},
		{"groupBy(input.items, .price > 10)", map[string]any{"false": []any{map[string]any{"id": "x", "price": 5.0}}, "true": []any{map[string]any{"id": "y", "price": 20.0}}}},
		{"int(input.amount)", 150},
		{"abs(-input.amount)", 150.0},
		{"{id: item.sku, n: item.qty}", map[string]any{"id": "s1", "n": 2.0}},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			got, err := EvalValue(tt.expr, env)
			if err != nil {
				t.Fatalf("EvalValue: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v (%T), want %#v (%T)", got, got, tt.want, tt.want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		expr, want string
	}{
		{"", "empty expression"},
		{"input.", "unexpected"},
		{"inptu.amount", "unknown name inptu"},
		{"now()", "unknown name now"},
		{"timezone('Europe/Paris')", "unknown name timezone"},
		{"date('2024-01-01').Local()", "method Local is not available"},
		{"date('2024-01-01').In(input.tz)", "method In is not available"},
		{"__b", "reserved"},
		{"__shallow(__b, 1)", "reserved"},
		{"$env.input", "$env is not available"},
		{"'a' + 1", "mismatched types"},
		{"date('x', 'y', 'Europe/Paris')", "date"},
		{strings.Repeat("1 + ", 3000) + "1", "longer than"},
	}
	for _, tt := range tests {
		t.Run(truncate(tt.expr, 40), func(t *testing.T) {
			_, err := CompileExpr(tt.expr)
			if err == nil {
				t.Fatal("compiled; want an error")
			}
			var ee *ExprError
			if !errors.As(err, &ee) {
				t.Fatalf("error %T, want *ExprError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), "expression ") {
				t.Fatalf("error %q does not name the expression", err)
			}
		})
	}
}

func TestMaxNodes(t *testing.T) {
	src := strings.Repeat("input.a + ", MaxExprNodes/2) + "1"
	if len(src) > MaxExprLength {
		src = strings.Repeat("a+", MaxExprNodes) + "a"
		src = "let a = 1; " + src
	}
	if _, err := CompileExpr(src); err == nil {
		t.Fatal("an expression above MaxExprNodes compiled")
	}
}

func TestCompileInfo(t *testing.T) {
	tests := []struct {
		expr    string
		steps   []string
		dynamic bool
		item    bool
	}{
		{"input.a", nil, false, false},
		{"steps.a.output.x + steps['b'].output.y", []string{"a", "b"}, false, false},
		{"steps?.c?.output", []string{"c"}, false, false},
		{"steps[input.which].output", nil, true, false},
		{"keys(steps)", nil, true, false},
		{"item.x + index", nil, false, true},
		{"map(input.l, steps.z.output[#])", []string{"z"}, false, false},
	}
	for _, tt := range tests {
		info, err := CompileExpr(tt.expr)
		if err != nil {
			t.Fatalf("%s: %v", tt.expr, err)
		}
		if !reflect.DeepEqual(info.Steps, tt.steps) || info.DynamicSteps != tt.dynamic || info.UsesItem != tt.item {
			t.Errorf("%s: got %+v", tt.expr, info)
		}
	}
}

func TestEvalCondition(t *testing.T) {
	env := testEnv(t)
	ok, err := EvalCondition("input.amount > 100 and steps.charge.output.body.ok", env)
	if err != nil || !ok {
		t.Fatalf("got %v, %v", ok, err)
	}
	_, err = EvalCondition("input.amount", env)
	if err == nil || !strings.Contains(err.Error(), "want true or false") {
		t.Fatalf("non-bool condition: %v", err)
	}
	_, err = EvalCondition("input.missing.field", env)
	if err == nil || !strings.Contains(err.Error(), `expression "input.missing.field"`) {
		t.Fatalf("runtime error should name the expression: %v", err)
	}
}

func TestEvalList(t *testing.T) {
	env := testEnv(t)
	l, err := EvalList("input.tags", env)
	if err != nil || !reflect.DeepEqual(l, []any{"a", "b"}) {
		t.Fatalf("got %v, %v", l, err)
	}
	l, err = EvalList("split('a,b,c', ',')", env)
	if err != nil || !reflect.DeepEqual(l, []any{"a", "b", "c"}) {
		t.Fatalf("got %#v, %v", l, err)
	}
	l, err = EvalList("1..input.count", env)
	if err != nil || len(l) != 3 {
		t.Fatalf("got %#v, %v", l, err)
	}
	if _, err := EvalList("input.name", env); err == nil || !strings.Contains(err.Error(), "want a list") {
		t.Fatalf("string as list: %v", err)
	}
	if _, err := EvalList("input.empty", env); err == nil {
		t.Fatal("null as list: no error")
	}
}

func TestEvalTemplate(t *testing.T) {
	env := testEnv(t)
	tmpl := map[string]any{
		"amount":   "${{ input.amount }}",
		"spaced":   "  ${{ input.count }}\n",
		"text":     "Order ${{ vars.prefix }}${{ index }} for ${{ input.name }}: ${{ input.amount * 2 }}",
		"obj":      "${{ {a: input.count, b: [1, 2]} }}",
		"objText":  "x=${{ {a: 1} }}",
		"brace":    "${{ '}}' + 'x' }}",
		"escaped":  "$${{ not evaluated }}",
		"nullText": "[${{ input.empty }}]",
		"list":     []any{"${{ input.tags }}", 1, true, nil},
		"nested":   map[string]any{"id": "${{ steps.charge.output.body.id }}"},
		"plain":    "no expressions",
		"num":      42.0,
	}
	got, err := EvalTemplate(tmpl, env)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"amount":   150.0,
		"spaced":   3.0,
		"text":     "Order ord-1 for Ada: 300",
		"obj":      map[string]any{"a": 3.0, "b": []any{1, 2}},
		"objText":  `x={"a":1}`,
		"brace":    "}}x",
		"escaped":  "${{ not evaluated }}",
		"nullText": "[]",
		"list":     []any{[]any{"a", "b"}, 1, true, nil},
		"nested":   map[string]any{"id": "ch_1"},
		"plain":    "no expressions",
		"num":      42.0,
	}
	if !reflect.DeepEqual(got, want) {
		gj, _ := json.MarshalIndent(got, "", " ")
		t.Fatalf("got %s", gj)
	}
	// The template itself is not modified.
	if tmpl["amount"] != "${{ input.amount }}" {
		t.Fatal("template mutated")
	}
	if s, err := EvalString("${{ input.amount }}", env); err != nil || s != "150" {
		t.Fatalf("EvalString: %q, %v", s, err)
	}
	if _, err := EvalTemplate("${{ input.amount", env); err == nil || !strings.Contains(err.Error(), "unterminated") {
		t.Fatalf("unterminated: %v", err)
	}
	if _, err := EvalTemplate("${{   }}", env); err == nil {
		t.Fatal("empty expression accepted")
	}
	// Errors come in sorted key order, so they are deterministic.
	_, err = EvalTemplate(map[string]any{"b": "${{ b.x }}", "a": "${{ a.x }}"}, env)
	if err == nil || !strings.Contains(err.Error(), `"a.x"`) {
		t.Fatalf("want the error of key a first: %v", err)
	}
}

func TestCompileTemplate(t *testing.T) {
	info, err := CompileTemplate(map[string]any{
		"x": "${{ steps.b.output }} and ${{ steps.a.output }}",
		"y": []any{"${{ item }}"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(info.Steps, []string{"a", "b"}) || !info.UsesItem {
		t.Fatalf("got %+v", info)
	}
	if _, err := CompileTemplate(map[string]any{"x": "${{ nope }}"}); err == nil {
		t.Fatal("unknown name accepted")
	}
}

func TestBudget(t *testing.T) {
	env := testEnv(t)
	env["input"].(map[string]any)["big"] = strings.Repeat("x", 1<<20)
	tests := []string{
		// Doubling a string with let bindings.
		"let a = input.big; let b = a + a; let c = b + b; let d = c + c; let e = d + d; let f = e + e; let g = f + f; let h = g + g; let i = h + h; h + i",
		// Amplification through a loop.
		"map(1..100000, upper(input.big))",
		"repeat(input.big, 1000)",
		"repeat('x', 1000000000)",
		"replace(input.big, 'x', input.big)",
		"join(map(1..1000, input.big), '')",
		"join(map(1..100000, 'x'), input.big)",
		// Shared sub-values with an exponential logical size.
		"let a = [input.big, input.big]; let b = [a, a]; let c = [b, b]; let d = [c, c]; let e = [d, d]; let f = [e, e]; let g = [f, f]; let h = [g, g]; let i = [h, h]; let j = [i, i]; let k = [j, j]; k",
		"let a = [input.big, input.big]; let b = [a, a]; let c = [b, b]; let d = [c, c]; let e = [d, d]; let f = [e, e]; let g = [f, f]; let h = [g, g]; let i = [h, h]; let j = [i, i]; let k = [j, j]; toJSON(k)",
		"let a = [input.big, input.big]; let b = [a, a]; let c = [b, b]; let d = [c, c]; let e = [d, d]; let f = [e, e]; let g = [f, f]; let h = [g, g]; let i = [h, h]; let j = [i, i]; let k = [j, j]; k == k",
		// The VM's own memory budget.
		"len(1..100000000)",
		"map(1..2000, map(1..2000, #))",
		// Quadratic accumulation.
		"reduce(1..100000, #acc + input.big[0:1000], '')",
	}
	for _, src := range tests {
		t.Run(truncate(src, 50), func(t *testing.T) {
			_, err := EvalValue(src, env)
			if !errors.Is(err, ErrExprBudget) {
				t.Fatalf("got %v, want ErrExprBudget", err)
			}
		})
	}
}

func TestNonFinite(t *testing.T) {
	env := testEnv(t)
	if _, err := EvalValue("input.amount / 0", env); err == nil || !strings.Contains(err.Error(), "not finite") {
		t.Fatalf("got %v", err)
	}
	if _, err := EvalValue("input.count % 0", env); err == nil {
		t.Fatal("modulo by zero accepted")
	}
}

func TestFormatValue(t *testing.T) {
	tests := []struct {
		v    any
		want string
	}{
		{nil, ""},
		{"s", "s"},
		{true, "true"},
		{150.0, "150"},
		{1e6, "1000000"},
		{0.25, "0.25"},
		{3, "3"},
		{[]any{1.0, "a"}, `[1,"a"]`},
		{map[string]any{"b": 1.0, "a": "<x>"}, `{"a":"<x>","b":1}`},
	}
	for _, tt := range tests {
		got, err := FormatValue(tt.v)
		if err != nil || got != tt.want {
			t.Errorf("FormatValue(%#v) = %q, %v; want %q", tt.v, got, err, tt.want)
		}
	}
}

func TestConcurrentEval(t *testing.T) {
	env := testEnv(t)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				v, err := EvalValue("input.amount * 2 + len(input.tags)", env)
				if err != nil || v != 302.0 {
					t.Errorf("got %v, %v", v, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestLRUBounded(t *testing.T) {
	c := newLRU[int, int](3)
	for i := 0; i < 10; i++ {
		c.put(i, i)
	}
	if _, ok := c.get(0); ok {
		t.Fatal("oldest entry kept")
	}
	if v, ok := c.get(9); !ok || v != 9 {
		t.Fatal("newest entry lost")
	}
	if len(c.items) != 3 {
		t.Fatalf("%d entries", len(c.items))
	}
}

func BenchmarkEvalCondition(b *testing.B) {
	env := testEnv(b)
	for b.Loop() {
		if _, err := EvalCondition("input.amount > 100 && steps.charge.output.status == 200", env); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEvalConditionBareExpr is the same expression run by expr without
// our sandbox guards, for comparison.
func BenchmarkEvalConditionBareExpr(b *testing.B) {
	env := map[string]any(testEnv(b))
	p, err := compileBare("input.amount > 100 && steps.charge.output.status == 200")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := runBare(p, env); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEvalTemplate(b *testing.B) {
	env := testEnv(b)
	tmpl := map[string]any{"amount": "${{ input.amount }}", "text": "Order ${{ vars.prefix }}${{ index }} for ${{ input.name }}", "list": []any{"${{ input.tags }}"}}
	for b.Loop() {
		if _, err := EvalTemplate(tmpl, env); err != nil {
			b.Fatal(err)
		}
	}
}
