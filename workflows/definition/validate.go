package definition

import (
	"errors"
	"fmt"
	"net/url"
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
	sub := func(kind string, arm int) []scopeLink {
		return append(slices.Clip(chain), scopeLink{id: s.ID, kind: kind, arm: arm})
	}
	for b := range s.Branches {
		v.indexSteps(s.Branches[b].Steps, fmt.Sprintf("%s.branches[%d].steps", path, b), sub(KindParallel, b), compensation)
	}
	if len(s.Steps) > 0 {
		v.indexSteps(s.Steps, path+".steps", sub(KindForeach, 0), compensation)
	}
	for c := range s.Cases {
		v.indexSteps(s.Cases[c].Steps, fmt.Sprintf("%s.cases[%d].steps", path, c), sub(KindSwitch, c), compensation)
	}
	if len(s.Default) > 0 {
		v.indexSteps(s.Default, path+".default", sub(KindSwitch, -1), compensation)
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
	allowed, known := kindAllows[s.Kind]
	switch {
	case s.Kind == "":
		v.errorf(path+".kind", "required (one of %s)", strings.Join(Kinds, ", "))
	case !known:
		v.errorf(path+".kind", "unknown step kind %q (want one of %s)", s.Kind, strings.Join(Kinds, ", "))
	}
	if known {
		for _, f := range stepSpec.fields {
			if !allowed[f.name] && stepFieldSet(s, f.name) {
				v.errorf(path+"."+f.name, "not allowed for kind %s", s.Kind)
			}
		}
	}
	if compensation {
		if known && !slices.Contains(CompensationKinds, s.Kind) {
			v.errorf(path+".kind", "a compensation must be one of %s, not %s", strings.Join(CompensationKinds, ", "), s.Kind)
		}
		if s.Compensate != nil {
			v.errorf(path+".compensate", "a compensation cannot have its own compensation")
		}
	}
	if s.When != "" {
		v.expr(path+".when", s.When, ctx)
	}
	if allowed["timeout"] {
		v.duration(path+".timeout", s.Timeout, maxStepTimeout)
	}
	if s.Retry != nil && allowed["retry"] {
		v.retry(path+".retry", s.Retry)
	}

	switch s.Kind {
	case KindHTTP:
		v.httpStep(s, path, ctx)
	case KindModel:
		v.modelStep(s, path, ctx)
	case KindApproval:
		v.approvalStep(s, path)
	case KindParallel:
		v.parallelStep(s, path, ctx)
	case KindForeach:
		v.foreachStep(s, path, ctx)
	case KindSwitch:
		v.switchStep(s, path, ctx)
	case KindWait:
		v.waitStep(s, path, ctx)
	case KindMCP:
		v.mcpStep(s, path, ctx)
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

func (v *validator) httpStep(s *Step, path string, ctx exprCtx) {
	switch {
	case s.Service == "" && s.URL == "":
		v.errorf(path+".service", "an http step needs service or url")
	case s.Service != "" && s.URL != "":
		v.errorf(path+".url", "set service or url, not both")
	}
	if s.Service != "" {
		v.name(path+".service", s.Service)
		if v.cat != nil && !strings.Contains(s.Service, "${{") && !v.cat.HasService(s.Service) {
			v.errorf(path+".service", "unknown service %q", s.Service)
		}
	}
	if s.URL != "" {
		if err := checkStepURL(s.URL); err != nil {
			v.errorf(path+".url", "%v", err)
		}
		v.templateString(path+".url", s.URL, ctx)
		if s.Path != "" {
			v.errorf(path+".path", "only with service (put the path in url)")
		}
	}
	if s.Method != "" && !slices.Contains(HTTPMethods, strings.ToUpper(s.Method)) {
		v.errorf(path+".method", "must be one of %s", strings.Join(HTTPMethods, ", "))
	}
	if s.Path != "" {
		if !strings.HasPrefix(s.Path, "/") && !strings.HasPrefix(s.Path, "${{") {
			v.errorf(path+".path", "must start with /")
		}
		v.templateString(path+".path", s.Path, ctx)
	}
	for _, k := range sortedKeys(s.Headers) {
		p := joinPath(path+".headers", k)
		if !headerNamePattern.MatchString(k) {
			v.errorf(p, "not a valid header name")
		}
		v.templateString(p, s.Headers[k], ctx)
	}
	for _, k := range sortedKeys(s.Query) {
		v.templateString(joinPath(path+".query", k), s.Query[k], ctx)
	}
	if s.Body != nil {
		v.template(path+".body", s.Body, ctx)
	}
	for i, st := range s.SuccessStatuses {
		v.bounds(fmt.Sprintf("%s.success_statuses[%d]", path, i), &statusBounds, float64(st))
	}
}

// checkStepURL requires an absolute http(s) URL whose scheme and host are
// literal (the host is checked against the tenant's allow-list at run time).
func checkStepURL(raw string) error {
	lit := raw
	if i := strings.Index(raw, "${{"); i >= 0 {
		lit = raw[:i]
	}
	u, err := url.Parse(lit)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an absolute http:// or https:// URL")
	}
	if lit != raw && (u.Path == "" && u.RawQuery == "" && !strings.HasSuffix(lit, "/")) {
		return errors.New("the scheme and host must be literal (expressions may follow in the path or query)")
	}
	if u.User != nil {
		return errors.New("must not hold credentials (use a service with secret headers instead)")
	}
	return nil
}

func (v *validator) modelStep(s *Step, path string, ctx exprCtx) {
	switch {
	case s.Model == "":
		v.errorf(path+".model", "required")
	default:
		v.name(path+".model", s.Model)
		if v.cat != nil && !v.cat.HasModel(s.Model) {
			v.errorf(path+".model", "unknown model %q", s.Model)
		}
	}
	switch {
	case s.Prompt == "" && len(s.Messages) == 0:
		v.errorf(path+".prompt", "a model step needs prompt or messages")
	case s.Prompt != "" && len(s.Messages) > 0:
		v.errorf(path+".messages", "set prompt or messages, not both")
	}
	if s.System != "" {
		v.templateString(path+".system", s.System, ctx)
	}
	if s.Prompt != "" {
		v.templateString(path+".prompt", s.Prompt, ctx)
	}
	for i, m := range s.Messages {
		p := fmt.Sprintf("%s.messages[%d]", path, i)
		if !slices.Contains(ModelRoles, m.Role) {
			v.errorf(p+".role", "must be one of %s", strings.Join(ModelRoles, ", "))
		}
		if m.Content == "" {
			v.errorf(p+".content", "required")
		} else {
			v.templateString(p+".content", m.Content, ctx)
		}
	}
	v.intField(path, "max_tokens", s.MaxTokens)
	if s.Temperature != nil {
		f, _ := stepSpec.field("temperature")
		v.bounds(path+".temperature", f, *s.Temperature)
	}
	if s.ResponseFormat != "" && s.ResponseFormat != "text" && s.ResponseFormat != "json" {
		v.errorf(path+".response_format", "must be text or json")
	}
}

func (v *validator) approvalStep(s *Step, path string) {
	possible := v.approvers(path+".approvers", s.Approvers, true)
	v.intField(path, "quorum", s.Quorum)
	if possible > 0 && s.Quorum > possible {
		v.errorf(path+".quorum", "%d is more than the %d users who may approve", s.Quorum, possible)
	}
	switch s.OnTimeout {
	case "", OnTimeoutReject, OnTimeoutApprove, OnTimeoutEscalate:
	default:
		v.errorf(path+".on_timeout", "must be one of %s, %s, %s", OnTimeoutReject, OnTimeoutApprove, OnTimeoutEscalate)
	}
	switch s.OnReject {
	case "", OnRejectFail, OnRejectContinue:
	default:
		v.errorf(path+".on_reject", "must be %s or %s", OnRejectFail, OnRejectContinue)
	}
	if s.OnTimeout != "" && s.Timeout == "" {
		v.errorf(path+".timeout", "required when on_timeout is set")
	}
	if s.OnTimeout == OnTimeoutEscalate {
		if s.EscalateTo == nil {
			v.errorf(path+".escalate_to", "required when on_timeout is escalate")
		} else {
			v.approvers(path+".escalate_to", s.EscalateTo, true)
		}
	} else {
		if s.EscalateTo != nil {
			v.errorf(path+".escalate_to", "only with on_timeout: escalate")
		}
		if s.EscalationTimeout != "" {
			v.errorf(path+".escalation_timeout", "only with on_timeout: escalate")
		}
	}
	v.duration(path+".escalation_timeout", s.EscalationTimeout, maxStepTimeout)
}

// approvers checks an approvers block and returns the number of distinct
// users when only users are listed (0 when roles make it open-ended).
func (v *validator) approvers(path string, a *Approvers, required bool) int {
	if a == nil || (len(a.Roles) == 0 && len(a.Users) == 0) {
		if required {
			v.errorf(path, "at least one role or user is required")
		}
		return 0
	}
	for i, r := range a.Roles {
		if strings.TrimSpace(r) == "" {
			v.errorf(fmt.Sprintf("%s.roles[%d]", path, i), "must not be empty")
		}
	}
	users := map[string]bool{}
	for i, u := range a.Users {
		if strings.TrimSpace(u) == "" {
			v.errorf(fmt.Sprintf("%s.users[%d]", path, i), "must not be empty")
		}
		users[u] = true
	}
	if len(a.Roles) > 0 {
		return 0
	}
	return len(users)
}

func (v *validator) parallelStep(s *Step, path string, ctx exprCtx) {
	if len(s.Branches) == 0 {
		v.errorf(path+".branches", "at least one branch is required")
	}
	names := map[string]int{}
	var added []map[string]bool
	for b := range s.Branches {
		br := &s.Branches[b]
		bp := fmt.Sprintf("%s.branches[%d]", path, b)
		if br.Name != "" {
			if first, dup := names[br.Name]; dup {
				v.errorf(bp+".name", "duplicate branch name %q (first used by branches[%d])", br.Name, first)
			} else {
				names[br.Name] = b
			}
		}
		if len(br.Steps) == 0 {
			v.errorf(bp+".steps", "at least one step is required")
		}
		bctx := ctx
		bctx.visible = copySet(ctx.visible)
		bctx.chain = append(slices.Clip(ctx.chain), scopeLink{id: s.ID, kind: KindParallel, arm: b})
		v.stepList(br.Steps, bp+".steps", bctx)
		added = append(added, bctx.visible)
	}
	// After the join every branch's steps have run.
	for _, m := range added {
		for id := range m {
			ctx.visible[id] = true
		}
	}
}

func (v *validator) foreachStep(s *Step, path string, ctx exprCtx) {
	if s.Items == "" {
		v.errorf(path+".items", "required")
	} else {
		v.expr(path+".items", s.Items, ctx)
	}
	if len(s.Steps) == 0 {
		v.errorf(path+".steps", "at least one step is required")
	}
	v.intField(path, "concurrency", s.Concurrency)
	bctx := ctx
	bctx.visible = copySet(ctx.visible)
	bctx.chain = append(slices.Clip(ctx.chain), scopeLink{id: s.ID, kind: KindForeach})
	bctx.inForeach = true
	v.stepList(s.Steps, path+".steps", bctx)
}

func (v *validator) switchStep(s *Step, path string, ctx exprCtx) {
	var added []map[string]bool
	if len(s.Cases) == 0 {
		v.errorf(path+".cases", "at least one case is required")
	}
	for c := range s.Cases {
		cs := &s.Cases[c]
		cp := fmt.Sprintf("%s.cases[%d]", path, c)
		if cs.When == "" {
			v.errorf(cp+".when", "required")
		} else {
			v.expr(cp+".when", cs.When, ctx)
		}
		if len(cs.Steps) == 0 {
			v.errorf(cp+".steps", "at least one step is required")
		}
		cctx := ctx
		cctx.visible = copySet(ctx.visible)
		cctx.chain = append(slices.Clip(ctx.chain), scopeLink{id: s.ID, kind: KindSwitch, arm: c})
		v.stepList(cs.Steps, cp+".steps", cctx)
		added = append(added, cctx.visible)
	}
	if len(s.Default) > 0 {
		dctx := ctx
		dctx.visible = copySet(ctx.visible)
		dctx.chain = append(slices.Clip(ctx.chain), scopeLink{id: s.ID, kind: KindSwitch, arm: -1})
		v.stepList(s.Default, path+".default", dctx)
		added = append(added, dctx.visible)
	}
	// The arms run in the switch's scope: after it, steps of the arm taken
	// hold results and the others are absent (null in expressions), which
	// expressions handle with ?. and ??.
	for _, m := range added {
		for id := range m {
			ctx.visible[id] = true
		}
	}
}

func (v *validator) waitStep(s *Step, path string, ctx exprCtx) {
	switch {
	case s.Duration == "" && s.Until == "":
		v.errorf(path+".duration", "a wait step needs duration or until")
	case s.Duration != "" && s.Until != "":
		v.errorf(path+".until", "set duration or until, not both")
	}
	v.duration(path+".duration", s.Duration, maxDefinitionTimeout)
	if s.Until != "" {
		v.expr(path+".until", s.Until, ctx)
	}
}

func (v *validator) mcpStep(s *Step, path string, ctx exprCtx) {
	if s.Server == "" {
		v.errorf(path+".server", "required")
	} else {
		v.name(path+".server", s.Server)
		if v.cat != nil && !v.cat.HasMCPServer(s.Server) {
			v.errorf(path+".server", "unknown MCP server %q", s.Server)
		}
	}
	if s.Tool == "" {
		v.errorf(path+".tool", "required")
	} else {
		v.name(path+".tool", s.Tool)
	}
	if s.Arguments != nil {
		v.template(path+".arguments", s.Arguments, ctx)
	}
}

func (v *validator) retry(path string, r *RetryPolicy) {
	v.intFieldOf(retrySpec, path, "max_attempts", r.MaxAttempts)
	if r.BackoffCoefficient != 0 {
		f, _ := retrySpec.field("backoff_coefficient")
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

func (v *validator) intField(path, name string, val int) {
	v.intFieldOf(stepSpec, path, name, val)
}

// intFieldOf checks a set (non-zero) integer against the field's bounds.
func (v *validator) intFieldOf(spec *objectSpec, path, name string, val int) {
	if val == 0 {
		return
	}
	f, _ := spec.field(name)
	v.bounds(path+"."+name, f, float64(val))
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

// stepFieldSet reports whether the named field of s holds a value.
func stepFieldSet(s *Step, name string) bool {
	switch name {
	case "id":
		return s.ID != ""
	case "kind":
		return s.Kind != ""
	case "name":
		return s.Name != ""
	case "when":
		return s.When != ""
	case "compensate":
		return s.Compensate != nil
	case "timeout":
		return s.Timeout != ""
	case "retry":
		return s.Retry != nil
	case "service":
		return s.Service != ""
	case "url":
		return s.URL != ""
	case "method":
		return s.Method != ""
	case "path":
		return s.Path != ""
	case "headers":
		return len(s.Headers) > 0
	case "query":
		return len(s.Query) > 0
	case "body":
		return s.Body != nil
	case "success_statuses":
		return len(s.SuccessStatuses) > 0
	case "model":
		return s.Model != ""
	case "system":
		return s.System != ""
	case "prompt":
		return s.Prompt != ""
	case "messages":
		return len(s.Messages) > 0
	case "max_tokens":
		return s.MaxTokens != 0
	case "temperature":
		return s.Temperature != nil
	case "response_format":
		return s.ResponseFormat != ""
	case "approvers":
		return s.Approvers != nil
	case "quorum":
		return s.Quorum != 0
	case "on_timeout":
		return s.OnTimeout != ""
	case "on_reject":
		return s.OnReject != ""
	case "escalate_to":
		return s.EscalateTo != nil
	case "escalation_timeout":
		return s.EscalationTimeout != ""
	case "branches":
		return len(s.Branches) > 0
	case "items":
		return s.Items != ""
	case "concurrency":
		return s.Concurrency != 0
	case "steps":
		return len(s.Steps) > 0
	case "cases":
		return len(s.Cases) > 0
	case "default":
		return len(s.Default) > 0
	case "duration":
		return s.Duration != ""
	case "until":
		return s.Until != ""
	case "server":
		return s.Server != ""
	case "tool":
		return s.Tool != ""
	case "arguments":
		return s.Arguments != nil
	}
	return false
}

// HTTPMethod is the method of an http step, upper case, GET by default.
func (s *Step) HTTPMethod() string {
	if s.Method == "" {
		return "GET"
	}
	return strings.ToUpper(s.Method)
}

// ForeachConcurrency is the number of items a foreach runs at once.
func (s *Step) ForeachConcurrency() int {
	if s.Concurrency <= 0 {
		return DefaultForeachConcurrency
	}
	return s.Concurrency
}

// ApprovalQuorum is the number of approvals an approval step needs (1 by
// default).
func (s *Step) ApprovalQuorum() int {
	if s.Quorum <= 0 {
		return 1
	}
	return s.Quorum
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
	for b := range s.Branches {
		if !walkSteps(s.Branches[b].Steps, fmt.Sprintf("%s.branches[%d].steps", path, b), fn) {
			return false
		}
	}
	if !walkSteps(s.Steps, path+".steps", fn) {
		return false
	}
	for c := range s.Cases {
		if !walkSteps(s.Cases[c].Steps, fmt.Sprintf("%s.cases[%d].steps", path, c), fn) {
			return false
		}
	}
	return walkSteps(s.Default, path+".default", fn)
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
