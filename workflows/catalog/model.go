package catalog

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/wire"
)

// This file is the catalogue's rules as pure functions of the state: what
// a request may change and what the result is. The entity's Update
// validators and handlers both call them (validators discard the result),
// and unit tests call them without Temporal.

// Formats and bounds.
var (
	// NamePattern is an API name: unique across tenants, usable in a URL
	// path and in an MCP tool name.
	NamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,62}$`)
	// TagPattern is one tag.
	TagPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
	// PlanPattern is a plan name.
	PlanPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
	// AppPattern is an app name (a group of a tenant's keys).
	AppPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	// SubscriptionIDPattern is a subscription id.
	SubscriptionIDPattern = regexp.MustCompile(`^sub_[a-z0-9]{8,40}$`)
)

// Bounds of one API and of one owner's catalogue. The size bounds keep a
// record well under Kafka's default message size (1 MB) and an owner's
// whole state (carried across continue-as-new, compressed) under
// Temporal's payload limit.
const (
	MaxTitle         = 200
	MaxDescription   = 4000
	MaxDocs          = 64 << 10
	MaxOpenAPI       = 128 << 10
	MaxTags          = 20
	MaxPlans         = 20
	MaxVersions      = 50
	MaxHistory       = 200
	MaxReason        = 1000
	MaxAPIBytes      = 768 << 10
	MaxAPIsPerOwner  = 200
	MaxSubsPerOwner  = 10_000
	MaxStateBytes    = 16 << 20
	DefaultSunset    = 90 * 24 * time.Hour
	DefaultWait      = 7 * 24 * time.Hour
	MaxApprovalWait  = 30 * 24 * time.Hour
	subHistoryBounds = 50
)

// transitions are the lifecycle moves allowed from each state. Retiring
// needs a deprecation first (consumers get the Sunset header before the
// 410), a draft may be dropped (retired) at once, a deprecation may be
// taken back, and nothing leaves retired.
var transitions = map[string][]string{
	wire.StateDraft:      {wire.StatePublished, wire.StateRetired},
	wire.StatePublished:  {wire.StateDeprecated},
	wire.StateDeprecated: {wire.StatePublished, wire.StateRetired},
	wire.StateRetired:    nil,
}

// AllowedMoves returns the states a version in state may move to.
func AllowedMoves(state string) []string { return slices.Clone(transitions[state]) }

// problems collects located problems.
type problems []definition.Problem

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, definition.Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (p problems) err() *Error {
	if len(p) == 0 {
		return nil
	}
	return invalid(p...)
}

// state is one owner's catalogue.
type state struct {
	owner string
	apis  map[string]*API
	subs  map[string]*Subscription
}

func newState(owner string) *state {
	return &state{owner: owner, apis: map[string]*API{}, subs: map[string]*Subscription{}}
}

// CreateAPIInput is the argument of UpdateCreateAPI.
type CreateAPIInput struct {
	Request wire.CreateAPIRequest `json:"request"`
	By      string                `json:"by,omitempty"`
}

// AddVersionInput is the argument of UpdateAddVersion.
type AddVersionInput struct {
	API  string              `json:"api"`
	Spec wire.APIVersionSpec `json:"spec"`
	By   string              `json:"by,omitempty"`
}

// UpdateAPIInput is the argument of UpdateUpdateAPI.
type UpdateAPIInput struct {
	API     string                `json:"api"`
	Request wire.UpdateAPIRequest `json:"request"`
	By      string                `json:"by,omitempty"`
}

// TransitionInput is the argument of UpdateTransition.
type TransitionInput struct {
	API     string                 `json:"api"`
	Version string                 `json:"version"`
	Request wire.TransitionRequest `json:"request"`
	By      string                 `json:"by,omitempty"`
}

// SubscribeInput is the argument of UpdateSubscribe.
type SubscribeInput struct {
	ID       string `json:"id"`
	API      string `json:"api"`
	Consumer string `json:"consumer"`
	App      string `json:"app,omitempty"`
	Plan     string `json:"plan"`
	Reason   string `json:"reason,omitempty"`
	By       string `json:"by,omitempty"`
}

// DecideInput is the argument of UpdateDecide (from the approval).
type DecideInput struct {
	ID       string `json:"id"`
	Approved bool   `json:"approved"`
	By       string `json:"by,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// EndInput is the argument of UpdateRevoke (by the owner) and
// UpdateCancel (by the consumer, named so the entity checks it again).
type EndInput struct {
	ID       string `json:"id"`
	Consumer string `json:"consumer,omitempty"`
	By       string `json:"by,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// checkSpec checks a version spec for an API of kind.
func checkSpec(p *problems, path, kind string, s *wire.APIVersionSpec) {
	if !definition.VersionPattern.MatchString(s.Version) {
		p.add(path+".version", "must be a version (letters, digits, '.', '_', '+', '-'; at most 50)")
	}
	t := s.Target
	set := map[string]bool{"service": t.Service != "", "definition": t.Definition != "", "definition_version": t.DefinitionVersion != "",
		"prompt": t.Prompt != "", "prompt_version": t.PromptVersion != "", "model": t.Model != ""}
	var want []string
	switch kind {
	case wire.APIKindService:
		want = []string{"service"}
	case wire.APIKindOrchestration:
		want = []string{"definition", "definition_version"}
	case wire.APIKindPrompt:
		want = []string{"prompt", "prompt_version"}
	case wire.APIKindModel:
		want = []string{"model"}
	}
	for _, f := range []string{"service", "definition", "definition_version", "prompt", "prompt_version", "model"} {
		switch {
		case slices.Contains(want, f) && !set[f]:
			p.add(path+".target."+f, "is required for a %s API", kind)
		case !slices.Contains(want, f) && set[f]:
			p.add(path+".target."+f, "does not apply to a %s API", kind)
		}
	}
	if t.Definition != "" && !definition.NamePattern.MatchString(t.Definition) {
		p.add(path+".target.definition", "must be a definition name")
	}
	if t.DefinitionVersion != "" && !definition.VersionPattern.MatchString(t.DefinitionVersion) {
		p.add(path+".target.definition_version", "must be a version")
	}
	if len(s.Notes) > MaxDescription {
		p.add(path+".notes", "must be at most %d bytes", MaxDescription)
	}
	switch {
	case kind == wire.APIKindService && len(bytes.TrimSpace(s.OpenAPI)) == 0:
		p.add(path+".openapi", "is required for a service API (the OpenAPI document of what the service serves)")
	case len(s.OpenAPI) > MaxOpenAPI:
		p.add(path+".openapi", "must be at most %d bytes", MaxOpenAPI)
	case len(bytes.TrimSpace(s.OpenAPI)) > 0:
		var doc map[string]any
		if err := jsonUnmarshal(s.OpenAPI, &doc); err != nil {
			p.add(path+".openapi", "must be a JSON object (an OpenAPI document)")
		} else if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.") {
			p.add(path+".openapi.openapi", `must name an OpenAPI 3 version, e.g. "3.1.0"`)
		}
	}
}

func checkTags(p *problems, path string, tags []string) {
	if len(tags) > MaxTags {
		p.add(path, "must have at most %d tags", MaxTags)
	}
	for i, t := range tags {
		if !TagPattern.MatchString(t) {
			p.add(fmt.Sprintf("%s[%d]", path, i), "tags are lower-case letters, digits and '-' (at most 32)")
		}
	}
}

func checkPlans(p *problems, path string, plans []Plan) {
	if len(plans) == 0 {
		p.add(path, "must offer at least one plan")
	}
	if len(plans) > MaxPlans {
		p.add(path, "must have at most %d plans", MaxPlans)
	}
	seen := map[string]bool{}
	for i, pl := range plans {
		pp := fmt.Sprintf("%s[%d]", path, i)
		if !PlanPattern.MatchString(pl.Name) {
			p.add(pp+".name", "plan names are lower-case letters, digits, '_' and '-' (at most 32)")
		} else if seen[pl.Name] {
			p.add(pp+".name", "plan %q is offered twice", pl.Name)
		}
		seen[pl.Name] = true
		if len(pl.Description) > MaxDescription {
			p.add(pp+".description", "must be at most %d bytes", MaxDescription)
		}
		if pl.RateLimit.RPS < 0 {
			p.add(pp+".rate_limit.rps", "must not be negative")
		}
		if pl.RateLimit.Burst < 0 {
			p.add(pp+".rate_limit.burst", "must not be negative")
		}
		if pl.Quota.Daily < 0 {
			p.add(pp+".quota.daily", "must not be negative")
		}
		if pl.Quota.Monthly < 0 {
			p.add(pp+".quota.monthly", "must not be negative")
		}
		if pl.Quota.Daily > 0 && pl.Quota.Monthly > 0 && pl.Quota.Daily > pl.Quota.Monthly {
			p.add(pp+".quota.daily", "is more than the monthly quota (%d)", pl.Quota.Monthly)
		}
	}
}

func checkApprovers(p *problems, path string, a *wire.Approvers) {
	if a == nil || (len(a.Roles) == 0 && len(a.Users) == 0) {
		p.add(path, "must name at least one role or user")
		return
	}
	for i, r := range a.Roles {
		if !PlanPattern.MatchString(r) {
			p.add(fmt.Sprintf("%s.roles[%d]", path, i), "must be a role (lower-case letters, digits, '_', '-')")
		}
	}
	for i, u := range a.Users {
		if u == "" || len(u) > 128 || strings.ContainsAny(u, " \t\n") {
			p.add(fmt.Sprintf("%s.users[%d]", path, i), "must be a user name")
		}
	}
}

func checkApproval(p *problems, path string, a *wire.SubscriptionApproval) {
	if a.None {
		return
	}
	checkApprovers(p, path+".approvers", &a.Approvers)
	if a.Quorum < 0 || a.Quorum > 1000 {
		p.add(path+".quorum", "must be between 1 and 1000")
	} else if len(a.Approvers.Roles) == 0 && a.Quorum > len(a.Approvers.Users) {
		p.add(path+".quorum", "%d is more than the %d users who may approve", a.Quorum, len(a.Approvers.Users))
	}
	p2 := append(definition.DurationProblems(path+".timeout", a.Timeout, MaxApprovalWait),
		definition.DurationProblems(path+".escalation_timeout", a.EscalationTimeout, MaxApprovalWait)...)
	*p = append(*p, p2...)
	switch a.OnTimeout {
	case "", definition.OnTimeoutReject, definition.OnTimeoutApprove:
		if a.EscalateTo != nil {
			p.add(path+".escalate_to", `applies only with on_timeout: escalate`)
		}
	case definition.OnTimeoutEscalate:
		checkApprovers(p, path+".escalate_to", a.EscalateTo)
	default:
		p.add(path+".on_timeout", "must be reject, approve or escalate")
	}
}

// defaults fills in what a creation may leave out.
func withDefaults(r wire.CreateAPIRequest) wire.CreateAPIRequest {
	if r.Visibility == "" {
		r.Visibility = wire.VisibilityPrivate
	}
	if len(r.Plans) == 0 {
		r.Plans = []Plan{{Name: "default", Description: "No limits."}}
	}
	if r.Approval == nil {
		r.Approval = &wire.SubscriptionApproval{Approvers: wire.Approvers{Roles: []string{"admin"}}}
	}
	return r
}

// CheckCreate checks a creation request alone (the state is checked by
// the entity); the service calls it first to answer 422 without a round
// trip.
func CheckCreate(r wire.CreateAPIRequest) *Error {
	r = withDefaults(r)
	var p problems
	if !NamePattern.MatchString(r.Name) {
		p.add("name", "API names are 2-63 lower-case letters, digits and '-', starting with a letter or digit")
	}
	if !slices.Contains(wire.APIKinds, r.Kind) {
		p.add("kind", "must be one of %s", strings.Join(wire.APIKinds, ", "))
	}
	checkMeta(&p, &r.Title, &r.Description, &r.Docs, &r.Visibility, r.Tags)
	checkPlans(&p, "plans", r.Plans)
	checkApproval(&p, "approval", r.Approval)
	if slices.Contains(wire.APIKinds, r.Kind) {
		checkSpec(&p, "version", r.Kind, &r.Version)
	}
	return p.err()
}

func checkMeta(p *problems, title, desc, docs, visibility *string, tags []string) {
	if title != nil {
		if strings.TrimSpace(*title) == "" {
			p.add("title", "is required")
		} else if len(*title) > MaxTitle {
			p.add("title", "must be at most %d bytes", MaxTitle)
		}
	}
	if desc != nil && len(*desc) > MaxDescription {
		p.add("description", "must be at most %d bytes", MaxDescription)
	}
	if docs != nil && len(*docs) > MaxDocs {
		p.add("docs", "must be at most %d bytes of Markdown", MaxDocs)
	}
	if visibility != nil && *visibility != wire.VisibilityPrivate && *visibility != wire.VisibilityShared {
		p.add("visibility", "must be private or shared")
	}
	checkTags(p, "tags", tags)
}

func checkReason(p *problems, reason string) {
	if len(reason) > MaxReason {
		p.add("reason", "must be at most %d bytes", MaxReason)
	}
}

func (st *state) api(name string) (*API, *Error) {
	a, ok := st.apis[name]
	if !ok {
		return nil, newError(ErrNotFound, "api_not_found", "API %q not found", name)
	}
	return a, nil
}

// cloneAPI copies an API deeply enough to change it.
func cloneAPI(a *API) *API {
	c := *a
	c.Tags = slices.Clone(a.Tags)
	c.Plans = slices.Clone(a.Plans)
	c.Versions = slices.Clone(a.Versions)
	c.History = slices.Clone(a.History)
	return &c
}

func addEvent(a *API, e wire.APIEvent) {
	a.History = append(a.History, e)
	if n := len(a.History); n > MaxHistory {
		a.History = slices.Delete(a.History, 0, n-MaxHistory)
	}
	a.UpdatedAt = e.At
}

// checkSize refuses an API whose record would be too large to replicate.
func checkSize(a *API) *Error {
	b, err := jsonMarshal(a)
	if err != nil {
		return newError(ErrInvalid, "validation_failed", "API %s cannot be encoded: %v", a.Name, err)
	}
	if len(b) > MaxAPIBytes {
		return newError(ErrConflict, "api_too_large", "API %s would be %d bytes, more than the %d a catalogue entry may hold (shorten docs or OpenAPI documents, or retire old versions into a new API)", a.Name, len(b), MaxAPIBytes)
	}
	return nil
}

func (st *state) createAPI(in CreateAPIInput, now time.Time) (*API, *Error) {
	if err := CheckCreate(in.Request); err != nil {
		return nil, err
	}
	r := withDefaults(in.Request)
	if _, ok := st.apis[r.Name]; ok {
		return nil, newError(ErrConflict, "api_exists", "API %q already exists", r.Name)
	}
	if len(st.apis) >= MaxAPIsPerOwner {
		return nil, newError(ErrConflict, "catalog_full", "tenant %q owns %d APIs, its limit", st.owner, len(st.apis))
	}
	a := &API{
		Name: r.Name, Owner: st.owner, Kind: r.Kind, Title: r.Title, Description: r.Description,
		Tags: slices.Clone(r.Tags), Visibility: r.Visibility, Docs: r.Docs, Plans: slices.Clone(r.Plans),
		Approval: *r.Approval, CreatedAt: now, CreatedBy: in.By, UpdatedAt: now,
		Versions: []APIVersion{newVersion(r.Version, now, in.By)},
	}
	addEvent(a, wire.APIEvent{At: now, By: in.By, Action: wire.ActionCreated, Version: r.Version.Version, To: wire.StateDraft})
	return a, checkSize(a)
}

func newVersion(s wire.APIVersionSpec, now time.Time, by string) APIVersion {
	return APIVersion{Version: s.Version, State: wire.StateDraft, Target: s.Target, Notes: s.Notes, OpenAPI: s.OpenAPI, CreatedAt: now, CreatedBy: by}
}

func (st *state) addVersion(in AddVersionInput, now time.Time) (*API, *Error) {
	cur, err := st.api(in.API)
	if err != nil {
		return nil, err
	}
	var p problems
	checkSpec(&p, "", cur.Kind, &in.Spec)
	if e := p.err(); e != nil {
		for i := range e.Details {
			e.Details[i].Path = strings.TrimPrefix(e.Details[i].Path, ".")
		}
		e.Message = strings.TrimPrefix(e.Message, ".")
		return nil, e
	}
	if cur.Version(in.Spec.Version) != nil {
		return nil, newError(ErrConflict, "version_exists", "API %s already has version %s", in.API, in.Spec.Version)
	}
	if len(cur.Versions) >= MaxVersions {
		return nil, newError(ErrConflict, "too_many_versions", "API %s has %d versions, its limit", in.API, len(cur.Versions))
	}
	a := cloneAPI(cur)
	a.Versions = append(a.Versions, newVersion(in.Spec, now, in.By))
	slices.SortStableFunc(a.Versions, func(x, y APIVersion) int { return definition.CompareVersions(x.Version, y.Version) })
	addEvent(a, wire.APIEvent{At: now, By: in.By, Action: wire.ActionVersionAdded, Version: in.Spec.Version, To: wire.StateDraft})
	return a, checkSize(a)
}

func (st *state) updateAPI(in UpdateAPIInput, now time.Time) (*API, *Error) {
	cur, err := st.api(in.API)
	if err != nil {
		return nil, err
	}
	r := in.Request
	var p problems
	var tags []string
	if r.Tags != nil {
		tags = *r.Tags
	}
	checkMeta(&p, r.Title, r.Description, r.Docs, r.Visibility, tags)
	if r.Plans != nil {
		checkPlans(&p, "plans", *r.Plans)
	}
	if r.Approval != nil {
		checkApproval(&p, "approval", r.Approval)
	}
	checkReason(&p, r.Reason)
	if e := p.err(); e != nil {
		return nil, e
	}
	a := cloneAPI(cur)
	var changed []string
	set := func(field string, dst *string, v *string) {
		if v != nil && *v != *dst {
			*dst = *v
			changed = append(changed, field)
		}
	}
	set("title", &a.Title, r.Title)
	set("description", &a.Description, r.Description)
	set("docs", &a.Docs, r.Docs)
	set("visibility", &a.Visibility, r.Visibility)
	if r.Tags != nil && !slices.Equal(*r.Tags, a.Tags) {
		a.Tags = slices.Clone(*r.Tags)
		changed = append(changed, "tags")
	}
	if r.Plans != nil {
		// A plan that a live subscription holds cannot disappear: its
		// grant would lose its terms.
		for _, s := range st.subsOf(a.Name) {
			if s.Live() && !slices.ContainsFunc(*r.Plans, func(pl Plan) bool { return pl.Name == s.Plan }) {
				return nil, newError(ErrConflict, "plan_in_use", "plan %q is held by subscription %s (%s); keep it, or revoke the subscription first", s.Plan, s.ID, s.State)
			}
		}
		a.Plans = slices.Clone(*r.Plans)
		changed = append(changed, "plans")
	}
	if r.Approval != nil {
		a.Approval = *r.Approval
		changed = append(changed, "approval")
	}
	if len(changed) == 0 {
		return a, nil
	}
	reason := "changed " + strings.Join(changed, ", ")
	if r.Reason != "" {
		reason += ": " + r.Reason
	}
	addEvent(a, wire.APIEvent{At: now, By: in.By, Action: wire.ActionUpdated, Reason: reason})
	return a, checkSize(a)
}

func (st *state) transition(in TransitionInput, now time.Time) (*API, *Error) {
	cur, err := st.api(in.API)
	if err != nil {
		return nil, err
	}
	v := cur.Version(in.Version)
	if v == nil {
		return nil, newError(ErrNotFound, "version_not_found", "API %s has no version %q", in.API, in.Version)
	}
	r := in.Request
	var p problems
	if !slices.Contains(wire.States, r.State) {
		p.add("state", "must be one of %s", strings.Join(wire.States, ", "))
	}
	checkReason(&p, r.Reason)
	if e := p.err(); e != nil {
		return nil, e
	}
	if !slices.Contains(transitions[v.State], r.State) {
		msg := fmt.Sprintf("version %s of %s is %s and cannot move to %s", v.Version, in.API, v.State, r.State)
		if next := transitions[v.State]; len(next) > 0 {
			msg += fmt.Sprintf(" (from %s: %s)", v.State, strings.Join(next, " or "))
		} else {
			msg += " (" + v.State + " is final)"
		}
		return nil, &Error{Kind: ErrConflict, Code: "invalid_transition", Message: msg,
			Details: []definition.Problem{{Path: "state", Message: "current state: " + v.State}}}
	}
	if r.Successor != "" {
		s := cur.Version(r.Successor)
		switch {
		case r.Successor == v.Version:
			p.add("successor", "must be another version")
		case s == nil:
			p.add("successor", "API %s has no version %q", in.API, r.Successor)
		case s.State != wire.StatePublished:
			p.add("successor", "version %s is %s; a successor must be published", r.Successor, s.State)
		}
	}
	if r.Sunset != nil && r.State != wire.StateDeprecated {
		p.add("sunset", "applies only when deprecating")
	}
	if r.Sunset != nil && !r.Sunset.After(now) {
		p.add("sunset", "must be in the future")
	}
	if e := p.err(); e != nil {
		return nil, e
	}
	a := cloneAPI(cur)
	nv := a.Version(in.Version)
	at := now
	from := nv.State
	nv.State = r.State
	if r.Successor != "" {
		nv.Successor = r.Successor
	}
	switch r.State {
	case wire.StatePublished:
		nv.PublishedAt = &at
		nv.DeprecatedAt, nv.Sunset = nil, nil
	case wire.StateDeprecated:
		nv.DeprecatedAt = &at
		sunset := now.Add(DefaultSunset)
		if r.Sunset != nil {
			sunset = r.Sunset.UTC()
		}
		nv.Sunset = &sunset
	case wire.StateRetired:
		nv.RetiredAt = &at
	}
	addEvent(a, wire.APIEvent{At: now, By: in.By, Action: wire.ActionStateChanged, Version: nv.Version, From: from, To: r.State, Reason: r.Reason})
	return a, checkSize(a)
}

// subsOf lists the subscriptions to an API, by id.
func (st *state) subsOf(api string) []*Subscription {
	var out []*Subscription
	for _, id := range sortedKeys(st.subs) {
		if s := st.subs[id]; s.API == api {
			out = append(out, s)
		}
	}
	return out
}

// servable reports whether an API has a version consumers can reach, and
// whether every version is retired.
func servable(a *API) (live, allRetired bool) {
	allRetired = len(a.Versions) > 0
	for _, v := range a.Versions {
		if v.State == wire.StatePublished || v.State == wire.StateDeprecated {
			live = true
		}
		if v.State != wire.StateRetired {
			allRetired = false
		}
	}
	return live, allRetired
}

func (st *state) subscribe(in SubscribeInput, now time.Time) (*Subscription, *Error) {
	var p problems
	if !SubscriptionIDPattern.MatchString(in.ID) {
		p.add("id", "must be a subscription id")
	}
	if !definition.TenantPattern.MatchString(in.Consumer) {
		p.add("consumer", "must be a tenant")
	}
	if in.App != "" && !AppPattern.MatchString(in.App) {
		p.add("app", "app names are lower-case letters, digits, '_' and '-' (at most 63)")
	}
	checkReason(&p, in.Reason)
	if e := p.err(); e != nil {
		return nil, e
	}
	if s, ok := st.subs[in.ID]; ok {
		if s.API == in.API && s.Consumer == in.Consumer && s.App == in.App && s.Plan == in.Plan {
			return s, nil // a retried request
		}
		return nil, newError(ErrConflict, "subscription_exists", "subscription id %s is taken", in.ID)
	}
	a, ok := st.apis[in.API]
	if !ok || (a.Visibility != wire.VisibilityShared && in.Consumer != st.owner) {
		return nil, newError(ErrNotFound, "api_not_found", "API %q not found", in.API)
	}
	if in.Consumer == st.owner {
		return nil, newError(ErrConflict, "own_api", "tenant %s owns API %s and calls it without a subscription", in.Consumer, in.API)
	}
	live, allRetired := servable(a)
	switch {
	case allRetired:
		return nil, newError(ErrGone, "api_retired", "API %s is retired", in.API)
	case !live:
		return nil, newError(ErrNotFound, "api_not_found", "API %q not found", in.API)
	}
	if a.Plan(in.Plan) == nil {
		names := make([]string, len(a.Plans))
		for i, pl := range a.Plans {
			names[i] = pl.Name
		}
		return nil, invalid(definition.Problem{Path: "plan", Message: fmt.Sprintf("API %s offers no plan %q (offered: %s)", in.API, in.Plan, strings.Join(names, ", "))})
	}
	for _, s := range st.subsOf(in.API) {
		if s.Consumer == in.Consumer && s.App == in.App && s.Live() {
			who := "tenant " + s.Consumer
			if s.App != "" {
				who += " (app " + s.App + ")"
			}
			return nil, &Error{Kind: ErrConflict, Code: "subscription_" + s.State,
				Message: fmt.Sprintf("%s already has a %s subscription to %s: %s", who, s.State, in.API, s.ID),
				Details: []definition.Problem{{Path: "", Message: "current state: " + s.State}}}
		}
	}
	if len(st.subs) >= MaxSubsPerOwner {
		return nil, newError(ErrConflict, "catalog_full", "the APIs of tenant %s hold %d subscriptions, the limit", st.owner, len(st.subs))
	}
	s := &Subscription{ID: in.ID, API: in.API, Owner: st.owner, Consumer: in.Consumer, App: in.App, Plan: in.Plan,
		State: wire.SubscriptionPending, RequestedAt: now, RequestedBy: in.By, Reason: in.Reason}
	s.History = []wire.SubscriptionEvent{{At: now, By: in.By, To: wire.SubscriptionPending, Reason: in.Reason}}
	if a.Approval.None {
		setSubState(s, wire.SubscriptionActive, "", "approval: none", now)
		s.DecidedAt, s.DecidedBy = &now, "approval: none"
	} else {
		s.WorkflowID = ApprovalRunID(in.ID)
	}
	return s, nil
}

func cloneSub(s *Subscription) *Subscription {
	c := *s
	c.History = slices.Clone(s.History)
	return &c
}

func setSubState(s *Subscription, to, by, reason string, now time.Time) {
	s.History = append(s.History, wire.SubscriptionEvent{At: now, By: by, From: s.State, To: to, Reason: reason})
	if n := len(s.History); n > subHistoryBounds {
		s.History = slices.Delete(s.History, 0, n-subHistoryBounds)
	}
	s.State = to
}

func (st *state) sub(id string) (*Subscription, *Error) {
	s, ok := st.subs[id]
	if !ok {
		return nil, newError(ErrNotFound, "subscription_not_found", "subscription %q not found", id)
	}
	return s, nil
}

func notLive(s *Subscription, action string) *Error {
	return &Error{Kind: ErrConflict, Code: "subscription_" + s.State,
		Message: fmt.Sprintf("subscription %s is %s and cannot be %s", s.ID, s.State, action),
		Details: []definition.Problem{{Path: "", Message: "current state: " + s.State}}}
}

func (st *state) decide(in DecideInput, now time.Time) (*Subscription, *Error) {
	cur, err := st.sub(in.ID)
	if err != nil {
		return nil, err
	}
	if cur.State != wire.SubscriptionPending {
		return nil, notLive(cur, "decided")
	}
	s := cloneSub(cur)
	to := wire.SubscriptionRejected
	if in.Approved {
		to = wire.SubscriptionActive
	}
	setSubState(s, to, in.By, in.Reason, now)
	s.DecidedAt, s.DecidedBy = &now, in.By
	if !in.Approved {
		s.EndedAt, s.EndedBy = &now, in.By
	}
	return s, nil
}

func (st *state) end(in EndInput, now time.Time, cancel bool) (*Subscription, *Error) {
	cur, err := st.sub(in.ID)
	if err != nil {
		return nil, err
	}
	var p problems
	checkReason(&p, in.Reason)
	if e := p.err(); e != nil {
		return nil, e
	}
	action, to := "revoked", wire.SubscriptionRevoked
	if cancel {
		if cur.Consumer != in.Consumer {
			return nil, newError(ErrNotFound, "subscription_not_found", "subscription %q not found", in.ID)
		}
		action, to = "cancelled", wire.SubscriptionCancelled
	}
	if !cur.Live() {
		return nil, notLive(cur, action)
	}
	s := cloneSub(cur)
	setSubState(s, to, in.By, in.Reason, now)
	s.EndedAt, s.EndedBy = &now, in.By
	return s, nil
}
