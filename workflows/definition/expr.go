package definition

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/checker/nature"
	"github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/optimizer"
	"github.com/expr-lang/expr/types"
	"github.com/expr-lang/expr/vm"
)

// Env is the data expressions see. Keys:
//   - input: the orchestration input (decoded JSON);
//   - steps: step id -> {"output": ..., "state": ...} for the steps that ran;
//   - vars: the definition's evaluated vars;
//   - item, index: the current element and its position, inside a foreach.
//
// Values crossing Temporal are decoded JSON, so numbers are float64;
// arithmetic and comparisons mix float64 and integer literals naturally
// (`input.amount > 100`, `input.n % 2 == 0`).
type Env map[string]any

// Names an expression may use at top level.
const (
	EnvInput = "input"
	EnvSteps = "steps"
	EnvVars  = "vars"
	EnvItem  = "item"
	EnvIndex = "index"
)

// Limits that keep expression evaluation cheap and bounded. Expressions run
// inside workflow code on shared workers, and inline definitions come from
// tenants, so no expression may use unbounded CPU or memory.
const (
	// MaxExprLength bounds the source of one expression, in bytes.
	MaxExprLength = 8 << 10
	// MaxExprNodes bounds the syntax tree of one expression (expr.MaxNodes).
	MaxExprNodes = 2000
	// ExprMemoryBudget is the expr VM's memory budget: roughly the number of
	// elements ranges, literals and loops (map, filter, ...) may allocate or
	// iterate in one evaluation.
	ExprMemoryBudget = 1_000_000
	// ExprCostBudget bounds the work of one evaluation (one EvalX call, all
	// expressions of a template together): every function argument and
	// comparison operand is charged its size (bytes of strings, elements of
	// lists and maps), and so is the result. Exceeding it fails the
	// evaluation with ErrExprBudget.
	ExprCostBudget = 32 << 20
	// MaxValueDepth bounds the nesting of values produced by expressions.
	MaxValueDepth = 512
	// exprCacheSize bounds the compiled-program cache.
	exprCacheSize = 4096
)

// ErrExprBudget is wrapped by evaluation errors caused by an expression
// using more than its evaluation budget (ExprCostBudget, ExprMemoryBudget or
// MaxValueDepth).
var ErrExprBudget = errors.New("expression exceeded its evaluation budget")

// ExprError is an expression that does not compile or failed to evaluate.
type ExprError struct {
	// Expr is the expression's source.
	Expr string
	// Message says what is wrong, without the source.
	Message string
	// Column is the 1-based position in Expr the message refers to, or 0.
	Column int
	// Err is the underlying error, when there is one (e.g. ErrExprBudget).
	Err error
}

// Error formats the problem with the expression it is about.
func (e *ExprError) Error() string {
	var b strings.Builder
	b.WriteString("expression ")
	b.WriteString(strconv.Quote(e.Expr))
	if e.Column > 0 {
		fmt.Fprintf(&b, " (column %d)", e.Column)
	}
	b.WriteString(": ")
	b.WriteString(e.Message)
	return b.String()
}

// Unwrap returns the underlying error.
func (e *ExprError) Unwrap() error { return e.Err }

// EvalCondition evaluates a bare expression that must give true or false.
func EvalCondition(src string, env Env) (bool, error) {
	b := newBudget()
	v, err := eval(src, env, b)
	if err != nil {
		return false, err
	}
	t, ok := v.(bool)
	if !ok {
		return false, &ExprError{Expr: src, Message: fmt.Sprintf("gave %s, want true or false", typeName(v))}
	}
	return t, nil
}

// EvalList evaluates a bare expression that must give a list (foreach
// items). Lists of any element type are returned as []any.
func EvalList(src string, env Env) ([]any, error) {
	b := newBudget()
	v, err := eval(src, env, b)
	if err != nil {
		return nil, err
	}
	l, ok := toList(v)
	if !ok {
		return nil, &ExprError{Expr: src, Message: fmt.Sprintf("gave %s, want a list", typeName(v))}
	}
	return l, nil
}

// EvalValue evaluates a bare expression and returns its value.
func EvalValue(src string, env Env) (any, error) {
	return eval(src, env, newBudget())
}

// EvalTemplate evaluates a template value: maps and lists are walked (map
// keys in sorted order, so that errors and budgets are deterministic) and
// rebuilt; every string holding ${{ expr }} is evaluated. A string that is
// exactly one ${{ expr }} (surrounding spaces allowed) becomes the
// expression's typed value; otherwise each result is formatted as text and
// interpolated. "$${{" writes a literal "${{". Other values are returned as
// they are. All expressions of one call share one evaluation budget.
func EvalTemplate(v any, env Env) (any, error) {
	b := newBudget()
	return evalTemplate(v, env, b, 0)
}

// EvalString evaluates a template string and always gives text: whole-string
// expressions are formatted like interpolated ones. Used for URLs, paths,
// headers and prompts.
func EvalString(s string, env Env) (string, error) {
	b := newBudget()
	parts, err := splitTemplate(s)
	if err != nil {
		return "", err
	}
	return interpolate(parts, env, b)
}

func evalTemplate(v any, env Env, b *budget, depth int) (any, error) {
	if depth > MaxValueDepth {
		return nil, fmt.Errorf("template nested deeper than %d: %w", MaxValueDepth, ErrExprBudget)
	}
	switch x := v.(type) {
	case string:
		return evalTemplateString(x, env, b)
	case map[string]any:
		out := make(map[string]any, len(x))
		for _, k := range sortedKeys(x) {
			r, err := evalTemplate(x[k], env, b, depth+1)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	case map[string]string:
		out := make(map[string]any, len(x))
		for _, k := range sortedKeys(x) {
			r, err := evalTemplateString(x[k], env, b)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			r, err := evalTemplate(e, env, b, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			r, err := evalTemplateString(e, env, b)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	default:
		return v, nil
	}
}

func evalTemplateString(s string, env Env, b *budget) (any, error) {
	if !strings.Contains(s, "${{") {
		return s, nil
	}
	parts, err := splitTemplate(s)
	if err != nil {
		return nil, err
	}
	if src, ok := wholeExpr(parts); ok {
		return eval(src, env, b)
	}
	return interpolate(parts, env, b)
}

func interpolate(parts []templatePart, env Env, b *budget) (string, error) {
	var sb strings.Builder
	for _, p := range parts {
		if !p.expr {
			sb.WriteString(p.text)
			continue
		}
		v, err := eval(p.text, env, b)
		if err != nil {
			return "", err
		}
		s, err := FormatValue(v)
		if err != nil {
			return "", &ExprError{Expr: p.text, Message: err.Error(), Err: err}
		}
		if err := b.charge(int64(len(s))); err != nil {
			return "", &ExprError{Expr: p.text, Message: err.Error(), Err: err}
		}
		sb.WriteString(s)
	}
	return sb.String(), nil
}

// FormatValue renders an expression result as text for interpolation:
// strings as they are, null as "", integral numbers without exponent or
// decimals, times in RFC 3339, lists and maps as compact JSON.
func FormatValue(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case float64:
		return formatFloat(x), nil
	case float32:
		return formatFloat(float64(x)), nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), nil
	case time.Duration:
		return x.String(), nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(rv.Uint(), 10), nil
	}
	return marshalCompact(v)
}

func formatFloat(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e21 {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// eval compiles (cached) and runs one expression, then checks the size of
// its result against the evaluation budget.
func eval(src string, env Env, b *budget) (any, error) {
	p, err := compileExpr(src)
	if err != nil {
		return nil, err
	}
	// The program sees the caller's environment plus the budget; the
	// caller's map is never modified (it may be shared).
	run := envPool.Get().(map[string]any)
	for k, v := range env {
		run[k] = v
	}
	run[budgetVar] = b
	machine := vmPool.Get().(*vm.VM)
	machine.MemoryBudget = ExprMemoryBudget
	out, err := machine.Run(p.program, run)
	// Drop references to the environment before pooling.
	machine.Stack, machine.Scopes, machine.Variables = nil, nil, nil
	vmPool.Put(machine)
	clear(run)
	envPool.Put(run)
	if err != nil {
		return nil, runtimeError(src, err)
	}
	if err := b.chargeDeep(out); err != nil {
		return nil, &ExprError{Expr: src, Message: err.Error(), Err: err}
	}
	return normalize(out, 0), nil
}

var (
	vmPool  = sync.Pool{New: func() any { return new(vm.VM) }}
	envPool = sync.Pool{New: func() any { return make(map[string]any, 8) }}
)

func runtimeError(src string, err error) error {
	var fe *file.Error
	msg := err.Error()
	col := 0
	if errors.As(err, &fe) {
		msg = fe.Message
		col = fe.Column + 1
	}
	var cause error
	if errors.Is(err, ErrExprBudget) || strings.Contains(msg, "memory budget exceeded") {
		cause = ErrExprBudget
		if !strings.Contains(msg, ErrExprBudget.Error()) {
			msg = ErrExprBudget.Error() + " (" + msg + ")"
		}
	}
	return &ExprError{Expr: src, Message: msg, Column: col, Err: cause}
}

// program is a compiled expression with what static analysis learned.
type program struct {
	program *vm.Program
	info    ExprInfo
}

// ExprInfo is what an expression refers to, found from its syntax tree.
type ExprInfo struct {
	// Steps lists the step ids named as steps.<id> or steps["<id>"], sorted,
	// without duplicates.
	Steps []string
	// DynamicSteps is true when steps is indexed by a computed value or used
	// as a whole, so that the referenced steps cannot be known statically.
	DynamicSteps bool
	// UsesItem is true when item or index appears (only valid in a foreach).
	UsesItem bool
	// Vars lists the vars named as vars.<name> or vars["<name>"], sorted.
	Vars []string
	// UsesEnv is true when input, steps, vars, item or index appears:
	// without them the expression gives the same value in every run.
	UsesEnv bool
}

// CompileExpr checks that a bare expression compiles (syntax, known names,
// types of literals, sandbox rules) and returns what it refers to. The
// compiled program is cached for later evaluation.
func CompileExpr(src string) (ExprInfo, error) {
	p, err := compileExpr(src)
	if err != nil {
		return ExprInfo{}, err
	}
	return p.info, nil
}

// CompileTemplate compiles every ${{ expr }} of a template value and returns
// the combined references.
func CompileTemplate(v any) (ExprInfo, error) {
	var info ExprInfo
	err := walkTemplateExprs(v, 0, func(src string) error {
		i, err := CompileExpr(src)
		if err != nil {
			return err
		}
		info = mergeInfo(info, i)
		return nil
	})
	return info, err
}

func walkTemplateExprs(v any, depth int, fn func(src string) error) error {
	if depth > MaxValueDepth {
		return fmt.Errorf("template nested deeper than %d", MaxValueDepth)
	}
	switch x := v.(type) {
	case string:
		if !strings.Contains(x, "${{") {
			return nil
		}
		parts, err := splitTemplate(x)
		if err != nil {
			return err
		}
		for _, p := range parts {
			if p.expr {
				if err := fn(p.text); err != nil {
					return err
				}
			}
		}
	case map[string]any:
		for _, k := range sortedKeys(x) {
			if err := walkTemplateExprs(x[k], depth+1, fn); err != nil {
				return err
			}
		}
	case map[string]string:
		for _, k := range sortedKeys(x) {
			if err := walkTemplateExprs(x[k], depth+1, fn); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range x {
			if err := walkTemplateExprs(e, depth+1, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

func mergeInfo(a, b ExprInfo) ExprInfo {
	a.DynamicSteps = a.DynamicSteps || b.DynamicSteps
	a.UsesItem = a.UsesItem || b.UsesItem
	a.UsesEnv = a.UsesEnv || b.UsesEnv
	a.Steps = mergeSorted(a.Steps, b.Steps)
	a.Vars = mergeSorted(a.Vars, b.Vars)
	return a
}

func mergeSorted(a, b []string) []string {
	if len(b) == 0 {
		return a
	}
	seen := make(map[string]bool, len(a)+len(b))
	var merged []string
	for _, s := range append(append([]string(nil), a...), b...) {
		if !seen[s] {
			seen[s] = true
			merged = append(merged, s)
		}
	}
	sortStrings(merged)
	return merged
}

// exprCache holds compiled programs by source. Compilation is pure, so a
// cached program is exactly what a fresh compilation would give.
var exprCache = newLRU[string, *program](exprCacheSize)

func compileExpr(src string) (*program, error) {
	if p, ok := exprCache.get(src); ok {
		return p, nil
	}
	p, err := compileUncached(src)
	if err != nil {
		return nil, err
	}
	exprCache.put(src, p)
	return p, nil
}

// compileEnv declares the names expressions may use. Values are untyped, so
// the checker allows any use of them and types are checked at run time.
func compileEnv() types.Map {
	return types.Map{
		EnvInput:  types.Any,
		EnvSteps:  types.Any,
		EnvVars:   types.Any,
		EnvItem:   types.Any,
		EnvIndex:  types.Any,
		budgetVar: types.TypeOf((*budget)(nil)),
	}
}

func exprOptions() []expr.Option {
	opts := []expr.Option{
		expr.Env(compileEnv()),
		expr.MaxNodes(MaxExprNodes),
		// Non-deterministic or host-dependent builtins.
		expr.DisableBuiltin("now"),
		expr.DisableBuiltin("timezone"),
	}
	return append(opts, safeFunctions()...)
}

// baseConfig is the compiler configuration shared by every compilation:
// building it (builtins and functions tables) costs more than compiling a
// small expression, so it is built once and only read afterwards.
var baseConfig = sync.OnceValue(func() *conf.Config {
	c := conf.CreateNew()
	for _, o := range exprOptions() {
		o(c)
	}
	for name := range c.Disabled {
		delete(c.Builtins, name)
	}
	return c
})

// newConfig returns a configuration for one compilation: the shared tables
// and the given visitors, with its own (mutable) type cache.
func newConfig(visitors ...ast.Visitor) *conf.Config {
	c := *baseConfig()
	c.NtCache = nature.Cache{}
	c.Visitors = visitors
	c.WithEnv(compileEnv())
	return &c
}

func compileUncached(src string) (*program, error) {
	if strings.TrimSpace(src) == "" {
		return nil, &ExprError{Expr: src, Message: "empty expression"}
	}
	if len(src) > MaxExprLength {
		return nil, &ExprError{Expr: truncate(src, 64), Message: fmt.Sprintf("longer than %d bytes", MaxExprLength)}
	}
	// First pass: parse and type-check the expression as written, so that
	// type errors in literals are reported at compile time (the guard
	// patches below make operands dynamic) and the sandbox rules are
	// checked on the user's own syntax tree (the analyzer is the first
	// visitor, so it sees the tree before any patch).
	a := analyzer{src: src}
	_, err := checker.ParseCheck(src, newConfig(&a, modPatcher{}))
	if a.err != nil {
		return nil, a.err
	}
	if err != nil {
		return nil, compileError(src, err)
	}
	// Second pass: the program that runs, with cost guards patched in (the
	// steps of expr.Compile).
	cfg := newConfig(guardPatcher{})
	tree, err := checker.ParseCheck(src, cfg)
	if err != nil {
		return nil, compileError(src, err)
	}
	if cfg.Optimize {
		if err := optimizer.Optimize(&tree.Node, cfg); err != nil {
			return nil, compileError(src, err)
		}
	}
	prog, err := compiler.Compile(tree, cfg)
	if err != nil {
		return nil, compileError(src, err)
	}
	return &program{program: prog, info: a.info()}, nil
}

func compileError(src string, err error) error {
	var fe *file.Error
	if errors.As(err, &fe) {
		return &ExprError{Expr: src, Message: fe.Message, Column: fe.Column + 1}
	}
	return &ExprError{Expr: src, Message: err.Error()}
}

// analyzer checks the sandbox rules on the user's syntax tree and collects
// step references.
type analyzer struct {
	src   string
	err   *ExprError
	steps map[string]bool
	vars  map[string]bool
	item  bool
	// env: one of the Env names appears.
	env bool
	// stepsUses counts identifier nodes "steps"; stepsMembers counts those
	// consumed by a literal member access. A difference means steps was used
	// as a whole or indexed dynamically.
	stepsUses, stepsMembers int
}

// forbiddenMethods are methods of values expr can produce (time.Time) that
// depend on the host (time zone database, local zone).
var forbiddenMethods = map[string]bool{"Local": true, "In": true}

func (a *analyzer) fail(n ast.Node, format string, args ...any) {
	if a.err != nil {
		return
	}
	a.err = &ExprError{Expr: a.src, Message: fmt.Sprintf(format, args...), Column: n.Location().From + 1}
}

// Visit implements ast.Visitor.
func (a *analyzer) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		switch {
		case n.Value == "$env":
			a.fail(n, "$env is not available (use input, steps, vars, item or index)")
		case strings.HasPrefix(n.Value, "__"):
			a.fail(n, "names starting with __ are reserved")
		case n.Value == EnvSteps:
			a.stepsUses++
		case n.Value == EnvItem || n.Value == EnvIndex:
			a.item = true
		}
		switch n.Value {
		case EnvInput, EnvSteps, EnvVars, EnvItem, EnvIndex:
			a.env = true
		}
	case *ast.MemberNode:
		if id, ok := n.Node.(*ast.IdentifierNode); ok && id.Value == EnvVars {
			if s, ok := n.Property.(*ast.StringNode); ok {
				if a.vars == nil {
					a.vars = map[string]bool{}
				}
				a.vars[s.Value] = true
			}
		}
		if id, ok := n.Node.(*ast.IdentifierNode); ok && id.Value == EnvSteps {
			if s, ok := n.Property.(*ast.StringNode); ok {
				a.stepsMembers++
				if a.steps == nil {
					a.steps = map[string]bool{}
				}
				a.steps[s.Value] = true
			}
		}
		if n.Method {
			if s, ok := n.Property.(*ast.StringNode); ok && forbiddenMethods[s.Value] {
				a.fail(n, "method %s is not available (it depends on the host's time zone)", s.Value)
			}
		}
	case *ast.CallNode:
		if m, ok := n.Callee.(*ast.MemberNode); ok {
			if s, ok := m.Property.(*ast.StringNode); ok && forbiddenMethods[s.Value] {
				a.fail(n, "method %s is not available (it depends on the host's time zone)", s.Value)
			}
		}
	}
}

func (a *analyzer) info() ExprInfo {
	info := ExprInfo{UsesItem: a.item, DynamicSteps: a.stepsUses > a.stepsMembers, UsesEnv: a.env}
	for s := range a.steps {
		info.Steps = append(info.Steps, s)
	}
	sortStrings(info.Steps)
	for s := range a.vars {
		info.Vars = append(info.Vars, s)
	}
	sortStrings(info.Vars)
	return info
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func toList(v any) ([]any, bool) {
	switch x := v.(type) {
	case []any:
		return x, true
	case nil:
		return nil, false
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return nil, false
	}
	out := make([]any, rv.Len())
	for i := range out {
		out[i] = rv.Index(i).Interface()
	}
	return out, true
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case float64, float32, int, int64, int32, uint, uint64:
		return "a number"
	case map[string]any:
		return "a map"
	case []any:
		return "a list"
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map:
		return "a map"
	}
	return fmt.Sprintf("a %T", v)
}
