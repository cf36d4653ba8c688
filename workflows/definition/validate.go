package definition

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Catalog answers whether names used by a definition exist in the registry.
// A nil Catalog skips these checks.
type Catalog interface {
	HasService(name string) bool
	HasModel(name string) bool
	HasMCPServer(name string) bool
}

// Name and id formats.
var (
	// NamePattern is the format of definition names.
	NamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)
	// VersionPattern is the format of definition versions.
	VersionPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,49}$`)
	// TenantPattern is the format of tenant names, wherever they appear:
	// API keys, gateflow.yaml's tenants and the owners of services, MCP
	// servers and catalogue APIs.
	TenantPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	// StepIDPattern is the format of step ids: identifiers, so that
	// steps.<id> works in expressions.
	StepIDPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
	// headerNamePattern is an HTTP header field name (RFC 9110 token).
	headerNamePattern = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

// reservedIDs are words of the expression language that cannot follow
// "steps." as a step id.
var reservedIDs = map[string]bool{
	"true": true, "false": true, "nil": true, "not": true, "and": true, "or": true, "in": true,
	"matches": true, "contains": true, "startsWith": true, "endsWith": true, "let": true, "if": true, "else": true,
}

// Upper bounds of durations.
const (
	maxStepTimeout       = 30 * 24 * time.Hour
	maxDefinitionTimeout = 366 * 24 * time.Hour
	maxRetryInterval     = 24 * time.Hour
)

// Validate checks the meaning of a definition: name and version formats,
// step kinds and the fields each kind needs or refuses, unique step ids
// (across nested steps and compensations), expressions that compile and
// only refer to steps guaranteed to have run before (no forward references,
// which would be cycles; no references across parallel branches, which
// would be races; foreach bodies and switch arms visible only inside),
// durations, retry bounds, approval rules, and — when cat is not nil — that
// services, models and MCP servers exist. It also compiles the input schema.
// Every problem is listed, sorted by path, in a *ValidationError.
func (d *Definition) Validate(cat Catalog) error {
	v := validator{def: d, cat: cat, ve: &ValidationError{Subject: "definition " + d.Ref()}, index: map[string]*stepInfo{}}
	v.run()
	v.ve.Problems = sortProblems(v.ve.Problems)
	return v.ve.OrNil()
}

// scopeLink is one container a step is nested in.
type scopeLink struct {
	id   string // container step id
	kind string
	arm  int // branch or case index; -1 for a switch default
}

type stepInfo struct {
	path         string
	chain        []scopeLink
	compensation bool
}

// exprCtx is what an expression may see where it appears.
type exprCtx struct {
	visible   map[string]bool
	chain     []scopeLink
	inForeach bool
	self      string
	// varsBefore, when not nil, restricts vars references (inside vars).
	varsBefore map[string]bool
	inVars     bool
}

type validator struct {
	def   *Definition
	cat   Catalog
	ve    *ValidationError
	index map[string]*stepInfo
	count int
}

func (v *validator) errorf(path, format string, args ...any) {
	v.ve.Errorf(path, format, args...)
}

func (v *validator) run() {
	d := v.def
	switch {
	case d.Name == "":
		v.errorf("name", "required")
	case !NamePattern.MatchString(d.Name):
		v.errorf("name", "must be 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	switch {
	case d.Version == "":
		v.errorf("version", "required")
	case !VersionPattern.MatchString(d.Version):
		v.errorf("version", "must be 1-50 letters, digits, '.', '_', '+' or '-', starting with a letter or digit")
	}
	v.duration("timeout", d.Timeout, maxDefinitionTimeout)
	if len(d.InputSchema) > 0 {
		if _, err := compileInputSchema(d.InputSchema); err != nil {
			v.errorf("input_schema", "%v", err)
		}
	}
	if len(d.Steps) == 0 {
		v.errorf("steps", "at least one step is required")
	}

	// Index every step first, so references can be explained.
	v.indexSteps(d.Steps, "steps", nil, false)
	if v.count > MaxSteps {
		v.errorf("steps", "more than %d steps (nested steps included)", MaxSteps)
	}

	// vars: evaluated at start in key order; each sees input and the
	// vars before it.
	before := map[string]bool{}
	for _, k := range sortedKeys(d.Vars) {
		ctx := exprCtx{visible: map[string]bool{}, varsBefore: before, inVars: true}
		v.template(joinPath("vars", k), d.Vars[k], ctx)
		before[k] = true
	}

	visible := map[string]bool{}
	v.stepList(d.Steps, "steps", exprCtx{visible: visible})
	if d.Output != nil {
		v.template("output", d.Output, exprCtx{visible: visible})
	}
}

func (v *validator) indexSteps(steps []Step, path string, chain []scopeLink, compensation bool) {
	for i := range steps {
		v.indexStep(&steps[i], fmt.Sprintf("%s[%d]", path, i), chain, compensation)
	}
}

func (v *validator) indexStep(s *Step, path string, chain []scopeLink, compensation bool) {
	v.count++
	if s.ID != "" {
		if first, dup := v.index[s.ID]; dup {
			v.errorf(path+".id", "duplicate step id %q (first used at %s)", s.ID, first.path)
		} else {
			v.index[s.ID] = &stepInfo{path: path, chain: chain, compensation: compensation}
		}
	}
	if s.Compensate != nil {
		v.indexStep(s.Compensate, path+".compensate", chain, true)
	}
	for _, a := range everyArm(s) {
		v.indexSteps(a.steps, path+a.path, append(slices.Clip(chain), scopeLink{id: s.ID, kind: a.kind, arm: a.index}), compensation)
	}
}

// stepList validates steps run in sequence and adds the ids that are
// guaranteed to have run after the list to ctx.visible.
func (v *validator) stepList(steps []Step, path string, ctx exprCtx) {
	for i := range steps {
		v.step(&steps[i], fmt.Sprintf("%s[%d]", path, i), ctx, false)
	}
}

func copySet(m map[string]bool) map[string]bool {
	out := make(map[string]bool, len(m)+4)
	for k := range m {
		out[k] = true
	}
	return out
}

func (v *validator) step(s *Step, path string, ctx exprCtx, compensation bool) {
	ctx.self = s.ID
	switch {
	case s.ID == "":
		v.errorf(path+".id", "required")
	case !StepIDPattern.MatchString(s.ID):
		v.errorf(path+".id", "must be an identifier (letters, digits, '_', not starting with a digit, at most 64)")
	case reservedIDs[s.ID]:
		v.errorf(path+".id", "%q is a reserved word of the expression language", s.ID)
	}
	k, known := kindsByName[s.Kind]
	switch {
	case s.Kind == "":
		v.errorf(path+".kind", "required (one of %s)", strings.Join(Kinds, ", "))
	case !known:
		v.errorf(path+".kind", "unknown step kind %q (want one of %s)", s.Kind, strings.Join(Kinds, ", "))
	}
	if known {
		for _, f := range stepFields {
			if !k.allowed[f.name] && f.set(s) {
				v.errorf(path+"."+f.name, "not allowed for kind %s", s.Kind)
			}
		}
	}
	if compensation {
		if known && !k.compensation {
			v.errorf(path+".kind", "a compensation must be one of %s, not %s", strings.Join(CompensationKinds, ", "), s.Kind)
		}
		if s.Compensate != nil {
			v.errorf(path+".compensate", "a compensation cannot have its own compensation")
		}
	}
	if s.When != "" {
		v.expr(path+".when", s.When, ctx)
	}
	if k.allowed["timeout"] {
		v.duration(path+".timeout", s.Timeout, maxStepTimeout)
	}
	if s.Retry != nil && k.allowed["retry"] {
		v.retry(path+".retry", s.Retry)
	}
	if known {
		k.check(v, s, path, ctx)
		v.arms(k, s, path, ctx)
	}

	if s.Compensate != nil && !compensation {
		cctx := ctx
		cctx.visible = copySet(ctx.visible)
		if s.ID != "" {
			cctx.visible[s.ID] = true
		}
		v.step(s.Compensate, path+".compensate", cctx, true)
	}
	if s.ID != "" && !compensation {
		ctx.visible[s.ID] = true
	}
}

// arms checks the step lists a container step nests, each in a scope of
// its own, and adds to ctx.visible the steps visible after the container.
func (v *validator) arms(k kindRules, s *Step, path string, ctx exprCtx) {
	if k.arms == nil {
		return
	}
	var added []map[string]bool
	for _, a := range k.arms(s) {
		actx := ctx
		actx.visible = copySet(ctx.visible)
		actx.chain = append(slices.Clip(ctx.chain), scopeLink{id: s.ID, kind: k.name, arm: a.index})
		if k.perItem {
			actx.inForeach = true
		}
		v.stepList(a.steps, path+a.path, actx)
		added = append(added, actx.visible)
	}
	if k.perItem {
		return
	}
	for _, m := range added {
		for id := range m {
			ctx.visible[id] = true
		}
	}
}

func (v *validator) retry(path string, r *RetryPolicy) {
	f, _ := retrySpec.field("max_attempts")
	v.intField(path, f, r.MaxAttempts)
	if r.BackoffCoefficient != 0 {
		f, _ = retrySpec.field("backoff_coefficient")
		v.bounds(path+".backoff_coefficient", f, r.BackoffCoefficient)
	}
	v.duration(path+".initial_interval", r.InitialInterval, maxRetryInterval)
	v.duration(path+".max_interval", r.MaxInterval, maxRetryInterval)
	if ii, mi := r.InitialInterval.Std(), r.MaxInterval.Std(); ii > 0 && mi > 0 && mi < ii {
		v.errorf(path+".max_interval", "must not be shorter than initial_interval")
	}
	for i, st := range r.NonRetryableStatuses {
		v.bounds(fmt.Sprintf("%s.non_retryable_statuses[%d]", path, i), &statusBounds, float64(st))
	}
	for i, c := range r.NonRetryableErrors {
		if !slices.Contains(ErrorClasses, c) {
			v.errorf(fmt.Sprintf("%s.non_retryable_errors[%d]", path, i), "unknown error class %q (want one of %s)", c, strings.Join(ErrorClasses, ", "))
		}
	}
}

// intField checks a set (non-zero) integer field of the object at path
// against the field's bounds.
func (v *validator) intField(path string, f *field, val int) {
	if val == 0 {
		return
	}
	v.bounds(path+"."+f.name, f, float64(val))
}

func (v *validator) bounds(path string, f *field, val float64) {
	if f.min != nil && val < *f.min {
		v.errorf(path, "must be at least %s", formatFloat(*f.min))
	}
	if f.max != nil && val > *f.max {
		v.errorf(path, "must be at most %s", formatFloat(*f.max))
	}
}

func (v *validator) duration(path string, d Duration, max time.Duration) {
	if d == "" {
		return
	}
	t, err := time.ParseDuration(string(d))
	switch {
	case err != nil:
		v.errorf(path, "must be a duration such as \"30s\", \"5m\" or \"1h30m\"")
	case t <= 0:
		v.errorf(path, "must be positive")
	case t > max:
		v.errorf(path, "must be at most %s", formatDuration(max))
	}
}

func formatDuration(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return strconv.Itoa(int(d/time.Hour)) + "h"
	}
	return d.String()
}

// name checks a literal registry name.
func (v *validator) name(path, s string) {
	if strings.Contains(s, "${{") {
		v.errorf(path, "must be a literal name, not an expression")
	}
}

// expr checks a bare expression.
func (v *validator) expr(path, src string, ctx exprCtx) {
	info, err := CompileExpr(src)
	if err != nil {
		v.errorf(path, "%v", err)
		return
	}
	v.refs(path, src, info, ctx)
}

// templateString checks a template string.
func (v *validator) templateString(path, s string, ctx exprCtx) {
	if !strings.Contains(s, "${{") {
		return
	}
	parts, err := splitTemplate(s)
	if err != nil {
		v.errorf(path, "%v", err)
		return
	}
	for _, p := range parts {
		if p.expr {
			v.expr(path, p.text, ctx)
		}
	}
}

// template checks a template value, reporting problems at the path of the
// string that holds them.
func (v *validator) template(path string, val any, ctx exprCtx) {
	switch x := val.(type) {
	case string:
		v.templateString(path, x, ctx)
	case map[string]any:
		for _, k := range sortedKeys(x) {
			v.template(joinPath(path, k), x[k], ctx)
		}
	case []any:
		for i, e := range x {
			v.template(fmt.Sprintf("%s[%d]", path, i), e, ctx)
		}
	}
}

func (v *validator) refs(path, src string, info ExprInfo, ctx exprCtx) {
	q := strconv.Quote(src)
	if info.UsesItem && !ctx.inForeach {
		v.errorf(path, "expression %s: item and index are only available inside a foreach", q)
	}
	if info.DynamicSteps {
		v.errorf(path, "expression %s: steps must be indexed by a literal step id (steps.<id> or steps[\"<id>\"]) so that references can be checked", q)
	}
	if ctx.inVars && len(info.Steps) > 0 {
		v.errorf(path, "expression %s: vars are evaluated before any step runs and cannot refer to steps", q)
	} else {
		for _, id := range info.Steps {
			if !ctx.visible[id] {
				v.errorf(path, "expression %s: %s", q, v.whyNotVisible(id, ctx))
			}
		}
	}
	for _, name := range info.Vars {
		if _, ok := v.def.Vars[name]; !ok {
			v.errorf(path, "expression %s: refers to unknown var %q", q, name)
		} else if ctx.varsBefore != nil && !ctx.varsBefore[name] {
			v.errorf(path, "expression %s: refers to var %q, which is evaluated later (vars are evaluated in key order)", q, name)
		}
	}
}

// whyNotVisible explains why a referenced step is not guaranteed to have
// run at this point.
func (v *validator) whyNotVisible(id string, ctx exprCtx) string {
	target, ok := v.index[id]
	if !ok {
		return fmt.Sprintf("refers to unknown step %q", id)
	}
	if id == ctx.self {
		return fmt.Sprintf("refers to its own step %q", id)
	}
	for _, link := range ctx.chain {
		if link.id == id {
			return fmt.Sprintf("refers to step %q that contains it, which has not finished yet", id)
		}
	}
	if target.compensation {
		return fmt.Sprintf("refers to compensation step %q, which only runs when the orchestration is undone", id)
	}
	for k, link := range target.chain {
		if k < len(ctx.chain) && ctx.chain[k] == link {
			continue
		}
		switch link.kind {
		case KindForeach:
			return fmt.Sprintf("refers to step %q in the body of foreach %q, which is only visible inside that body", id, link.id)
		case KindSwitch:
			if k < len(ctx.chain) && ctx.chain[k].id == link.id {
				return fmt.Sprintf("refers to step %q in another case of switch %q: only one case runs", id, link.id)
			}
		case KindParallel:
			if k < len(ctx.chain) && ctx.chain[k].id == link.id {
				return fmt.Sprintf("refers to step %q in another branch of parallel %q: branches run concurrently, so this would be a race", id, link.id)
			}
		}
		break
	}
	return fmt.Sprintf("refers to step %q, which runs later (%s): a forward reference would be a cycle", id, target.path)
}

// Walk calls fn for every step of the definition, nested ones and
// compensations included, depth first in document order, with its path
// (e.g. "steps[1].branches[0].steps[2]"). fn returning false stops the walk.
func (d *Definition) Walk(fn func(path string, s *Step) bool) {
	walkSteps(d.Steps, "steps", fn)
}

func walkSteps(steps []Step, path string, fn func(string, *Step) bool) bool {
	for i := range steps {
		if !walkStep(&steps[i], fmt.Sprintf("%s[%d]", path, i), fn) {
			return false
		}
	}
	return true
}

func walkStep(s *Step, path string, fn func(string, *Step) bool) bool {
	if !fn(path, s) {
		return false
	}
	if s.Compensate != nil && !walkStep(s.Compensate, path+".compensate", fn) {
		return false
	}
	for _, a := range everyArm(s) {
		if !walkSteps(a.steps, path+a.path, fn) {
			return false
		}
	}
	return true
}

// Problems checks a retry policy used outside a definition (a service's
// default policy) with the rules Validate applies, reporting paths under
// path.
func (r *RetryPolicy) Problems(path string) []Problem {
	v := validator{ve: &ValidationError{}, def: &Definition{}}
	v.retry(path, r)
	return v.ve.Problems
}

// DurationProblems checks a duration written in configuration: valid Go
// syntax, positive, at most max (0 = no upper bound).
func DurationProblems(path string, d Duration, max time.Duration) []Problem {
	if max <= 0 {
		max = time.Duration(1<<63 - 1)
	}
	v := validator{ve: &ValidationError{}, def: &Definition{}}
	v.duration(path, d, max)
	return v.ve.Problems
}

// CheckHTTPURL reports why raw is not an absolute http(s) URL without
// credentials, or nil.
func CheckHTTPURL(raw string) error {
	if strings.Contains(raw, "${{") {
		return errors.New("must not hold expressions")
	}
	return checkStepURL(raw)
}

// ValidHeaderName reports whether name is a valid HTTP header name.
func ValidHeaderName(name string) bool { return headerNamePattern.MatchString(name) }
