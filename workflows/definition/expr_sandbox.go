package definition

import (
	"bytes"
	"container/list"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker/nature"
)

// budgetVar is the hidden environment entry holding the evaluation's
// *budget; guard calls patched into every program receive it.
const budgetVar = "__b"

// budget is the cost an evaluation may still spend (see ExprCostBudget).
type budget struct{ left int64 }

func newBudget() *budget { return &budget{left: ExprCostBudget} }

var errBudget = fmt.Errorf("%w (value too large, too costly to compute, or nested deeper than %d)", ErrExprBudget, MaxValueDepth)

func (b *budget) charge(n int64) error {
	b.left -= n
	if b.left < 0 {
		return errBudget
	}
	return nil
}

// chargeDeep charges the full size of v. The walk stops as soon as the
// budget is spent, so it costs at most the remaining budget even for values
// that share sub-values (whose logical size can be exponential). The
// outcome does not depend on map iteration order: the budget is a sum, and
// too-deep values and non-finite numbers are noted without stopping.
func (b *budget) chargeDeep(v any) error {
	w := sizeWalker{left: b.left}
	w.walk(v, 0)
	switch {
	case w.left < 0 || w.tooDeep:
		b.left = -1
		return errBudget
	case w.nonFinite:
		return errNonFinite
	}
	b.left = w.left
	return nil
}

type sizeWalker struct {
	left      int64
	tooDeep   bool
	nonFinite bool
}

func (w *sizeWalker) take(n int64) bool {
	w.left -= n
	return w.left >= 0
}

// walk returns false once the budget is spent.
func (w *sizeWalker) walk(v any, depth int) bool {
	if depth > MaxValueDepth {
		w.tooDeep = true
		return w.take(1)
	}
	switch x := v.(type) {
	case nil, bool, int, int64, time.Time, time.Duration:
		return w.take(1)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			w.nonFinite = true
		}
		return w.take(1)
	case string:
		return w.take(int64(len(x)) + 1)
	case []any:
		if !w.take(int64(len(x)) + 1) {
			return false
		}
		for _, e := range x {
			if !w.walk(e, depth+1) {
				return false
			}
		}
		return true
	case map[string]any:
		if !w.take(int64(len(x)) + 1) {
			return false
		}
		for k, e := range x {
			if !w.take(int64(len(k))) || !w.walk(e, depth+1) {
				return false
			}
		}
		return true
	case []string:
		if !w.take(int64(len(x)) + 1) {
			return false
		}
		for _, e := range x {
			if !w.take(int64(len(e))) {
				return false
			}
		}
		return true
	case []int, []float64:
		return w.take(int64(reflect.ValueOf(x).Len()) + 1)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		if !w.take(int64(rv.Len()) + 1) {
			return false
		}
		for i := 0; i < rv.Len(); i++ {
			if !w.walk(rv.Index(i).Interface(), depth+1) {
				return false
			}
		}
		return true
	case reflect.Map:
		if !w.take(int64(rv.Len()) + 1) {
			return false
		}
		it := rv.MapRange()
		for it.Next() {
			if !w.walk(it.Key().Interface(), depth+1) || !w.walk(it.Value().Interface(), depth+1) {
				return false
			}
		}
		return true
	case reflect.Float32:
		f := rv.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			w.nonFinite = true
		}
	}
	return w.take(1)
}

var errNonFinite = fmt.Errorf("gave a number that is not finite (division by zero?)")

// shallowSize is the cost of touching v once: bytes of a string, elements
// of a list or map, 1 for anything else.
func shallowSize(v any) int64 {
	switch x := v.(type) {
	case nil, bool, float64, int:
		return 1
	case string:
		return int64(len(x)) + 1
	case []any:
		return int64(len(x)) + 1
	case map[string]any:
		return int64(len(x)) + 1
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String, reflect.Slice, reflect.Array, reflect.Map:
		return int64(rv.Len()) + 1
	}
	return 1
}

// guardPatcher rewrites a program so that operands and arguments are charged
// to the evaluation budget before the operation runs, and makes % work on
// JSON numbers (float64).
type guardPatcher struct{}

// Builtins whose cost grows with the full (nested) size of their arguments.
var deepBuiltins = map[string]bool{"toJSON": true, "string": true, "flatten": true, "uniq": true, "sort": true}

// Functions of ours that take the budget as their first argument; the user
// writes them without it.
var budgetedFunctions = map[string]string{"repeat": "__repeat", "replace": "__replace", "join": "__join"}

// modPatcher makes % work on JSON numbers (float64) by calling modulo.
type modPatcher struct{}

// Visit implements ast.Visitor.
func (modPatcher) Visit(node *ast.Node) {
	if n, ok := (*node).(*ast.BinaryNode); ok && n.Operator == "%" {
		ast.Patch(node, &ast.CallNode{Callee: &ast.IdentifierNode{Value: "__mod"}, Arguments: []ast.Node{n.Left, n.Right}})
	}
}

func scalarLiteral(n ast.Node) bool {
	switch n.(type) {
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.NilNode:
		return true
	}
	return false
}

func guard(fn string, n ast.Node) ast.Node {
	c := &ast.CallNode{
		Callee:    &ast.IdentifierNode{Value: fn},
		Arguments: []ast.Node{&ast.IdentifierNode{Value: budgetVar}, n},
	}
	c.SetLocation(n.Location())
	return c
}

// Visit implements ast.Visitor.
func (guardPatcher) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.BinaryNode:
		switch n.Operator {
		case "%":
			modPatcher{}.Visit(node)
		case "==", "!=", "<", ">", "<=", ">=":
			// Comparing with a number, boolean or null literal costs O(1)
			// whatever the other side is: the common case stays unguarded.
			if scalarLiteral(n.Left) || scalarLiteral(n.Right) {
				return
			}
			fn := "__shallow"
			if n.Operator == "==" || n.Operator == "!=" {
				fn = "__deep"
			}
			n.Left, n.Right = guard(fn, n.Left), guard(fn, n.Right)
			n.SetNature(nature.Nature{})
		case "in":
			n.Left, n.Right = guard("__deep", n.Left), guard("__deep", n.Right)
			n.SetNature(nature.Nature{})
		case "+", "contains", "startsWith", "endsWith":
			n.Left, n.Right = guard("__shallow", n.Left), guard("__shallow", n.Right)
			n.SetNature(nature.Nature{})
		case "matches":
			n.Left = guard("__shallow", n.Left)
			if _, lit := n.Right.(*ast.StringNode); !lit {
				n.Right = guard("__shallow", n.Right)
			}
			n.SetNature(nature.Nature{})
		}
	case *ast.BuiltinNode:
		fn := "__shallow"
		if deepBuiltins[n.Name] {
			fn = "__deep"
		}
		for i, a := range n.Arguments {
			switch a.(type) {
			case *ast.PredicateNode, *ast.StringNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.NilNode:
				// Predicates are charged per operation inside them; literals
				// stay literal so the checker keeps their types (sortBy's
				// order, ...). Their size is bounded by the source length.
				continue
			}
			n.Arguments[i] = guard(fn, a)
		}
		n.SetNature(nature.Nature{})
	case *ast.CallNode:
		if id, ok := n.Callee.(*ast.IdentifierNode); ok {
			if strings.HasPrefix(id.Value, "__") {
				return // one of ours, patched already
			}
			if internal, ok := budgetedFunctions[id.Value]; ok {
				n.Callee = &ast.IdentifierNode{Value: internal}
				n.Arguments = append([]ast.Node{&ast.IdentifierNode{Value: budgetVar}}, n.Arguments...)
				n.SetNature(nature.Nature{})
				return
			}
		}
		for i, a := range n.Arguments {
			n.Arguments[i] = guard("__shallow", a)
		}
		n.SetNature(nature.Nature{})
	}
}

func budgetArg(args []any) *budget {
	if b, ok := args[0].(*budget); ok && b != nil {
		return b
	}
	// Only reachable if a program runs without eval's environment.
	return &budget{left: -1}
}

// safeFunctions are the functions added to or replacing expr's builtins:
// the guards, deterministic versions of builtins that iterate maps or read
// the host's time zone, and size-checked versions of builtins whose result
// can be much larger than their arguments.
func safeFunctions() []expr.Option {
	return []expr.Option{
		expr.Function("__shallow", func(args ...any) (any, error) {
			if err := budgetArg(args).charge(shallowSize(args[1])); err != nil {
				return nil, err
			}
			return args[1], nil
		}),
		expr.Function("__deep", func(args ...any) (any, error) {
			if err := budgetArg(args).chargeDeep(args[1]); err != nil {
				return nil, err
			}
			return args[1], nil
		}),
		expr.Function("__mod", func(args ...any) (any, error) { return modulo(args[0], args[1]) }),
		expr.Function("__repeat", func(args ...any) (any, error) {
			if len(args) != 3 {
				return nil, fmt.Errorf("repeat takes 2 arguments")
			}
			s, ok := args[1].(string)
			if !ok {
				return nil, fmt.Errorf("repeat: first argument must be a string, not %s", typeName(args[1]))
			}
			n, err := toInt(args[2])
			if err != nil || n < 0 {
				return nil, fmt.Errorf("repeat: count must be a non-negative integer")
			}
			if n > ExprCostBudget {
				return nil, errBudget
			}
			if err := budgetArg(args).charge(int64(len(s))*int64(n) + 1); err != nil {
				return nil, err
			}
			return strings.Repeat(s, n), nil
		}),
		expr.Function("__replace", func(args ...any) (any, error) {
			if len(args) != 4 && len(args) != 5 {
				return nil, fmt.Errorf("replace takes 3 or 4 arguments")
			}
			var ss [3]string
			for i := range ss {
				s, ok := args[i+1].(string)
				if !ok {
					return nil, fmt.Errorf("replace: argument %d must be a string, not %s", i+1, typeName(args[i+1]))
				}
				ss[i] = s
			}
			n := -1
			if len(args) == 5 {
				v, err := toInt(args[4])
				if err != nil {
					return nil, fmt.Errorf("replace: count must be an integer")
				}
				n = v
			}
			count := int64(len(ss[0]) + 1)
			if ss[1] != "" {
				count = int64(strings.Count(ss[0], ss[1]))
			}
			if n >= 0 && int64(n) < count {
				count = int64(n)
			}
			if err := budgetArg(args).charge(int64(len(ss[0])) + count*int64(len(ss[2])) + 1); err != nil {
				return nil, err
			}
			return strings.Replace(ss[0], ss[1], ss[2], n), nil
		}),
		expr.Function("__join", func(args ...any) (any, error) {
			if len(args) != 2 && len(args) != 3 {
				return nil, fmt.Errorf("join takes 1 or 2 arguments")
			}
			glue := ""
			if len(args) == 3 {
				g, ok := args[2].(string)
				if !ok {
					return nil, fmt.Errorf("join: separator must be a string")
				}
				glue = g
			}
			list, ok := toList(args[1])
			if !ok {
				return nil, fmt.Errorf("join: first argument must be a list of strings, not %s", typeName(args[1]))
			}
			strs := make([]string, len(list))
			size := int64(len(list)) * int64(len(glue))
			for i, e := range list {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("join: element %d is %s, not a string", i, typeName(e))
				}
				strs[i] = s
				size += int64(len(s))
			}
			if err := budgetArg(args).charge(size + 1); err != nil {
				return nil, err
			}
			return strings.Join(strs, glue), nil
		}),
		// User-facing names of the budgeted functions: the guard patch sends
		// calls to the __ versions; these give the checker their types.
		expr.Function("repeat", notPatched, new(func(string, int) string)),
		expr.Function("replace", notPatched, new(func(string, string, string) string), new(func(string, string, string, int) string)),
		expr.Function("join", notPatched, new(func([]any) string), new(func([]any, string) string),
			new(func([]string) string), new(func([]string, string) string)),
		// Deterministic replacements: map iteration order is random in Go.
		expr.Function("keys", func(args ...any) (any, error) {
			keys, _, err := sortedMap(args)
			return keys, err
		}),
		expr.Function("values", func(args ...any) (any, error) {
			_, values, err := sortedMap(args)
			return values, err
		}),
		expr.Function("toPairs", func(args ...any) (any, error) {
			keys, values, err := sortedMap(args)
			if err != nil {
				return nil, err
			}
			out := make([]any, len(keys))
			for i := range keys {
				out[i] = []any{keys[i], values[i]}
			}
			return out, nil
		}),
		// date parses in UTC only: the builtin can load any time zone from
		// the host's database, which differs between workers.
		expr.Function("date", parseDate, new(func(string) time.Time), new(func(string, string) time.Time)),
	}
}

func notPatched(...any) (any, error) {
	return nil, fmt.Errorf("internal error: unguarded call")
}

var dateLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02", time.RFC1123Z, time.RFC1123}

func parseDate(args ...any) (any, error) {
	if len(args) < 1 || len(args) > 2 {
		return nil, fmt.Errorf("date takes 1 or 2 arguments")
	}
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("date: argument must be a string, not %s", typeName(args[0]))
	}
	layouts := dateLayouts
	if len(args) == 2 {
		l, ok := args[1].(string)
		if !ok {
			return nil, fmt.Errorf("date: layout must be a string")
		}
		layouts = []string{l}
	}
	for _, l := range layouts {
		if t, err := time.ParseInLocation(l, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return nil, fmt.Errorf("date: cannot parse %q", truncate(s, 64))
}

func sortedMap(args []any) ([]any, []any, error) {
	if len(args) != 1 {
		return nil, nil, fmt.Errorf("takes 1 argument")
	}
	if m, ok := args[0].(map[string]any); ok {
		ks := sortedKeys(m)
		keys, values := make([]any, len(ks)), make([]any, len(ks))
		for i, k := range ks {
			keys[i], values[i] = k, m[k]
		}
		return keys, values, nil
	}
	rv := reflect.ValueOf(args[0])
	if rv.Kind() != reflect.Map {
		return nil, nil, fmt.Errorf("want a map, got %s", typeName(args[0]))
	}
	type kv struct {
		key   any
		text  string
		value any
	}
	entries := make([]kv, 0, rv.Len())
	it := rv.MapRange()
	for it.Next() {
		k := it.Key().Interface()
		text, _ := FormatValue(k)
		entries = append(entries, kv{key: k, text: text, value: it.Value().Interface()})
	}
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].text != entries[j].text {
			return entries[i].text < entries[j].text
		}
		// Keys of different types with the same text (1 and "1").
		return fmt.Sprintf("%T", entries[i].key) < fmt.Sprintf("%T", entries[j].key)
	})
	keys, values := make([]any, len(entries)), make([]any, len(entries))
	for i, e := range entries {
		keys[i], values[i] = e.key, e.value
	}
	return keys, values, nil
}

// modulo is % for JSON numbers: integers (including integral float64s) give
// an integer remainder; other numbers the floating-point remainder.
func modulo(a, b any) (any, error) {
	ai, aInt := integral(a)
	bi, bInt := integral(b)
	if aInt && bInt {
		if bi == 0 {
			return nil, fmt.Errorf("integer divide by zero")
		}
		return ai % bi, nil
	}
	af, aok := toFloat(a)
	bf, bok := toFloat(b)
	if !aok || !bok {
		return nil, fmt.Errorf("invalid operation: %s %% %s", typeName(a), typeName(b))
	}
	if bf == 0 {
		return nil, fmt.Errorf("divide by zero")
	}
	return math.Mod(af, bf), nil
}

func integral(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int(x), true
		}
		return 0, false
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return int(rv.Int()), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return int(rv.Uint()), true
	}
	return 0, false
}

func toFloat(v any) (float64, bool) {
	if i, ok := integral(v); ok {
		return float64(i), true
	}
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	}
	return 0, false
}

func toInt(v any) (int, error) {
	if i, ok := integral(v); ok {
		return i, nil
	}
	return 0, fmt.Errorf("want an integer, got %s", typeName(v))
}

// Template parsing.

type templatePart struct {
	text string
	expr bool
}

// splitTemplate cuts a template string into literal text and ${{ expr }}
// parts. The end of an expression is the first "}}" outside string literals
// and brackets, so map literals and strings containing "}}" work.
func splitTemplate(s string) ([]templatePart, error) {
	var parts []templatePart
	var text strings.Builder
	i := 0
	for i < len(s) {
		j := strings.Index(s[i:], "${{")
		if j < 0 {
			text.WriteString(s[i:])
			break
		}
		j += i
		if j > 0 && s[j-1] == '$' {
			// "$${{" is an escaped literal "${{".
			text.WriteString(s[i : j-1])
			text.WriteString("${{")
			i = j + 3
			continue
		}
		text.WriteString(s[i:j])
		end, err := exprEnd(s, j+3)
		if err != nil {
			return nil, err
		}
		src := strings.TrimSpace(s[j+3 : end])
		if src == "" {
			return nil, &ExprError{Expr: s[j : end+2], Message: "empty expression"}
		}
		if text.Len() > 0 {
			parts = append(parts, templatePart{text: text.String()})
			text.Reset()
		}
		parts = append(parts, templatePart{text: src, expr: true})
		i = end + 2
	}
	if text.Len() > 0 {
		parts = append(parts, templatePart{text: text.String()})
	}
	return parts, nil
}

func exprEnd(s string, start int) (int, error) {
	depth := 0
	var quote byte
	for k := start; k < len(s); k++ {
		c := s[k]
		if quote != 0 {
			switch {
			case c == '\\' && quote != '`':
				k++
			case c == quote:
				quote = 0
			}
			continue
		}
		switch c {
		case '"', '\'', '`':
			quote = c
		case '(', '[', '{':
			depth++
		case ')', ']':
			if depth > 0 {
				depth--
			}
		case '}':
			if depth == 0 && k+1 < len(s) && s[k+1] == '}' {
				return k, nil
			}
			if depth > 0 {
				depth--
			}
		}
	}
	return 0, &ExprError{Expr: truncate(s[start-3:], 64), Message: "unterminated ${{ (missing }})"}
}

// wholeExpr reports whether the parts are one expression with at most
// whitespace around it.
func wholeExpr(parts []templatePart) (string, bool) {
	src, found := "", false
	for _, p := range parts {
		if p.expr {
			if found {
				return "", false
			}
			src, found = p.text, true
		} else if strings.TrimSpace(p.text) != "" {
			return "", false
		}
	}
	return src, found
}

// Helpers.

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sortStrings(s []string) { sort.Strings(s) }

func marshalCompact(v any) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(normalize(v, 0)); err != nil {
		return "", err
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

// normalize converts maps with non-string keys (groupBy's result) into
// map[string]any so that values always encode as JSON. Values that need no
// change are returned as they are, without copying.
func normalize(v any, depth int) any {
	out, _ := normalizeValue(v, depth)
	return out
}

func normalizeValue(v any, depth int) (any, bool) {
	if depth > MaxValueDepth {
		return nil, true
	}
	switch x := v.(type) {
	case nil, bool, string, float64, int, time.Time:
		return v, false
	case map[string]any:
		var out map[string]any
		for _, k := range sortedKeys(x) {
			n, changed := normalizeValue(x[k], depth+1)
			if changed && out == nil {
				out = make(map[string]any, len(x))
				for k2, e := range x {
					out[k2] = e
				}
			}
			if out != nil {
				out[k] = n
			}
		}
		if out == nil {
			return v, false
		}
		return out, true
	case []any:
		var out []any
		for i, e := range x {
			n, changed := normalizeValue(e, depth+1)
			if changed && out == nil {
				out = append([]any(nil), x...)
			}
			if out != nil {
				out[i] = n
			}
		}
		if out == nil {
			return v, false
		}
		return out, true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Map:
		// Keys in a deterministic order; when two keys have the same text
		// the first in that order wins.
		keys, values, _ := sortedMap([]any{v})
		out := make(map[string]any, len(keys))
		for i, key := range keys {
			k, _ := FormatValue(key)
			if _, dup := out[k]; !dup {
				out[k], _ = normalizeValue(values[i], depth+1)
			}
		}
		return out, true
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			return []any{}, true
		}
		out := make([]any, rv.Len())
		for i := range out {
			out[i], _ = normalizeValue(rv.Index(i).Interface(), depth+1)
		}
		return out, true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return int(rv.Int()), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return int(rv.Uint()), true
	case reflect.Float32:
		return rv.Float(), true
	}
	return v, false
}

// lru is a bounded, concurrency-safe least-recently-used cache.
type lru[K comparable, V any] struct {
	mu    sync.Mutex
	max   int
	order *list.List
	items map[K]*list.Element
}

type lruEntry[K comparable, V any] struct {
	key K
	val V
}

func newLRU[K comparable, V any](max int) *lru[K, V] {
	return &lru[K, V]{max: max, order: list.New(), items: make(map[K]*list.Element)}
}

func (c *lru[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*lruEntry[K, V]).val, true
	}
	var zero V
	return zero, false
}

func (c *lru[K, V]) put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		e.Value.(*lruEntry[K, V]).val = v
		c.order.MoveToFront(e)
		return
	}
	c.items[k] = c.order.PushFront(&lruEntry[K, V]{key: k, val: v})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*lruEntry[K, V]).key)
	}
}
