package catalog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/replicated"
	"github.com/gateflow/gateflow/workflows/wire"
)

// Service is the catalogue as the API sees it: reads come from the
// replica's ReadModel, changes go to the owner's entity (and the name
// claims) through validated Updates, and the records an Update returns are
// applied to the ReadModel at once so that the replica that made a change
// shows it.
type Service struct {
	c         client.Client
	taskQueue string
	topic     string
	rm        *ReadModel
	targets   TargetChecker
	access    *accessState
	log       *slog.Logger
}

// ServiceOptions configure a Service.
type ServiceOptions struct {
	// Client reaches Temporal; TaskQueue is where the entities run.
	Client    client.Client
	TaskQueue string
	// Topic is the catalogue's topic (DefaultTopic when empty).
	Topic string
	// ReadModel is this replica's copy of the catalogue. Required.
	ReadModel *ReadModel
	// Targets checks what a version runs and generates OpenAPI documents.
	// Required.
	Targets TargetChecker
	// Quotas enforces the plans' quotas; nil enforces none.
	Quotas *Quotas
	// Now is the clock of rate limits (nil: time.Now).
	Now func() time.Time
	Log *slog.Logger
}

// NewService returns a Service.
func NewService(o ServiceOptions) (*Service, error) {
	switch {
	case o.Client == nil:
		return nil, errors.New("catalog: Client is required")
	case o.ReadModel == nil:
		return nil, errors.New("catalog: ReadModel is required")
	case o.Targets == nil:
		return nil, errors.New("catalog: Targets is required")
	}
	if o.Topic == "" {
		o.Topic = DefaultTopic
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Service{c: o.Client, taskQueue: o.TaskQueue, topic: o.Topic, rm: o.ReadModel, targets: o.Targets,
		access: newAccessState(o.Quotas, o.Now), log: o.Log}, nil
}

// ReadModel returns the replica's read model.
func (s *Service) ReadModel() *ReadModel { return s.rm }

func (s *Service) ready() error {
	if !s.rm.Ready() {
		return newError(ErrUnavailable, "catalog_loading", "this replica is still loading the catalogue; retry in a moment")
	}
	return nil
}

// update sends an Update to an owner's entity and applies its records.
func (s *Service) update(ctx context.Context, owner, name string, arg any) (Result, error) {
	var res Result
	err := replicated.Update(ctx, s.c, entityRef(owner, s.taskQueue, s.topic), name, arg, &res)
	if err != nil {
		return Result{}, s.temporalError(err, name)
	}
	for _, r := range res.Records {
		s.rm.Apply(r)
	}
	if !res.Published {
		s.log.Warn("catalogue change accepted but not yet replicated (Kafka slow or down?)", "owner", owner, "update", name)
	}
	return res, nil
}

func (s *Service) temporalError(err error, what string) error {
	err = FromUpdateError(err)
	var ce *Error
	if errors.As(err, &ce) {
		return ce
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return err
	}
	var unavailable *serviceerror.Unavailable
	if errors.As(err, &unavailable) {
		return newError(ErrUnavailable, "unavailable", "%s: Temporal is unavailable; retry later", what)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// visible returns the API as the caller may see it: the owner sees
// everything; other tenants see a shared API with at least one version out
// of draft, without its drafts, the events of its drafts and the named
// approvers. ok=false means "not found" to the caller.
func visible(a *API, tenant string) (*API, bool) {
	if a.Owner == tenant {
		return a, true
	}
	if a.Visibility != wire.VisibilityShared {
		return nil, false
	}
	v := cloneAPI(a)
	drafts := map[string]bool{}
	v.Versions = slices.DeleteFunc(v.Versions, func(x APIVersion) bool {
		drafts[x.Version] = x.State == wire.StateDraft
		return x.State == wire.StateDraft
	})
	if len(v.Versions) == 0 {
		return nil, false
	}
	v.History = slices.DeleteFunc(v.History, func(e wire.APIEvent) bool { return e.Version != "" && drafts[e.Version] })
	v.Approval.Approvers.Users = nil
	if v.Approval.EscalateTo != nil {
		esc := *v.Approval.EscalateTo
		esc.Users = nil
		v.Approval.EscalateTo = &esc
	}
	return v, true
}

// lookup returns the API visible to the caller, or the not-found error.
func (s *Service) lookup(c Caller, name string) (*API, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	a, ok := s.rm.API(name)
	if ok {
		if v, ok := visible(a, c.Tenant); ok {
			return v, nil
		}
	}
	return nil, newError(ErrNotFound, "api_not_found", "API %q not found", name)
}

// owned returns the caller's own API, or an error: not found when the
// caller cannot see it, forbidden when it is another tenant's.
func (s *Service) owned(c Caller, name string) (*API, error) {
	a, err := s.lookup(c, name)
	if err != nil {
		return nil, err
	}
	if a.Owner != c.Tenant {
		return nil, newError(ErrForbidden, "not_owner", "only tenant %s, the owner of API %s, may change it", a.Owner, name)
	}
	return a, nil
}

// Filter selects APIs in Search. Empty fields match everything.
type Filter struct {
	// Text is searched, case-insensitively, in names, titles,
	// descriptions and tags.
	Text string
	// Tags must all be present.
	Tags  []string
	Kind  string
	Owner string
	// State matches APIs with a visible version in that state.
	State string
}

// CheckFilter validates a filter's enumerations.
func CheckFilter(f Filter) error {
	var p problems
	if f.Kind != "" && !slices.Contains(wire.APIKinds, f.Kind) {
		p.add("kind", "must be one of %s", strings.Join(wire.APIKinds, ", "))
	}
	if f.State != "" && !slices.Contains(wire.States, f.State) {
		p.add("state", "must be one of %s", strings.Join(wire.States, ", "))
	}
	if len(f.Text) > 200 {
		p.add("q", "must be at most 200 bytes")
	}
	if e := p.err(); e != nil {
		e.Kind, e.Code = ErrInvalid, "invalid_request"
		return e
	}
	return nil
}

// Search lists the APIs visible to the caller that match f, by name.
func (s *Service) Search(c Caller, f Filter) (wire.APIList, error) {
	if err := CheckFilter(f); err != nil {
		return wire.APIList{}, err
	}
	if err := s.ready(); err != nil {
		return wire.APIList{}, err
	}
	text := strings.ToLower(strings.TrimSpace(f.Text))
	out := wire.APIList{Items: []wire.APISummary{}}
	for _, full := range s.rm.APIs() {
		a, ok := visible(full, c.Tenant)
		if !ok || (f.Kind != "" && a.Kind != f.Kind) || (f.Owner != "" && a.Owner != f.Owner) {
			continue
		}
		if !hasTags(a.Tags, f.Tags) || !matches(a, text) {
			continue
		}
		sum := wire.APISummary{Name: a.Name, Owner: a.Owner, Kind: a.Kind, Title: a.Title, Description: a.Description,
			Tags: a.Tags, Visibility: a.Visibility, Versions: []wire.VersionState{}}
		stateOK := f.State == ""
		for _, v := range a.Versions {
			sum.Versions = append(sum.Versions, wire.VersionState{Version: v.Version, State: v.State})
			stateOK = stateOK || v.State == f.State
		}
		if !stateOK {
			continue
		}
		if live := s.liveSubscription(a.Name, c); live != nil {
			sum.Subscription = live
		}
		out.Items = append(out.Items, sum)
	}
	return out, nil
}

func hasTags(have, want []string) bool {
	for _, t := range want {
		if !slices.Contains(have, t) {
			return false
		}
	}
	return true
}

func matches(a *API, text string) bool {
	if text == "" {
		return true
	}
	for _, s := range append([]string{a.Name, a.Title, a.Description}, a.Tags...) {
		if strings.Contains(strings.ToLower(s), text) {
			return true
		}
	}
	return false
}

// liveSubscription returns the caller's pending or active subscription to
// api (its app's, else its tenant's).
func (s *Service) liveSubscription(api string, c Caller) *Subscription {
	var best *Subscription
	for _, sub := range s.rm.ConsumerSubscriptions(c.Tenant) {
		if sub.API != api || !sub.Live() || (sub.App != "" && sub.App != c.App) {
			continue
		}
		if best == nil || (sub.App != "" && best.App == "") {
			best = sub
		}
	}
	return best
}

// Get returns one API as the caller may see it, with the caller's
// subscriptions to it.
func (s *Service) Get(c Caller, name string) (wire.APIDetail, error) {
	a, err := s.lookup(c, name)
	if err != nil {
		return wire.APIDetail{}, err
	}
	d := wire.APIDetail{API: *a}
	for _, sub := range s.rm.ConsumerSubscriptions(c.Tenant) {
		if sub.API == name {
			d.Subscriptions = append(d.Subscriptions, *sub)
		}
	}
	return d, nil
}

// Create claims the name and creates the API with its first version (a
// draft) in the caller's catalogue.
func (s *Service) Create(ctx context.Context, c Caller, req wire.CreateAPIRequest) (*API, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	if e := CheckCreate(req); e != nil {
		return nil, e
	}
	// Names are global: a name known taken is refused before anything
	// else (the claim below decides races).
	if a, ok := s.rm.API(req.Name); ok {
		if a.Owner == c.Tenant {
			return nil, newError(ErrConflict, "api_exists", "API %q already exists", req.Name)
		}
		return nil, newError(ErrConflict, "name_taken", "the API name %q is taken; choose another", req.Name)
	}
	if err := s.checkTarget(ctx, c.Tenant, req.Name, req.Kind, "version", &req.Version); err != nil {
		return nil, err
	}
	names := replicated.Entity{ID: NamesWorkflowID, Type: NamesWorkflow, TaskQueue: s.taskQueue, Input: NamesInput{}}
	if err := replicated.Update(ctx, s.c, names, UpdateClaimName, ClaimInput{Name: req.Name, Owner: c.Tenant}, nil); err != nil {
		return nil, s.temporalError(err, "claim the API name")
	}
	res, err := s.update(ctx, c.Tenant, UpdateCreateAPI, CreateAPIInput{Request: req, By: c.By()})
	if err != nil {
		return nil, err
	}
	s.log.Info("API created", "api", req.Name, "owner", c.Tenant, "kind", req.Kind, "by", c.By())
	return res.API, nil
}

// checkTarget checks (and completes) a version spec for the owner.
func (s *Service) checkTarget(ctx context.Context, owner, api, kind, path string, spec *wire.APIVersionSpec) error {
	ps, err := s.targets.Check(ctx, owner, api, kind, spec)
	if err != nil {
		return err
	}
	if len(ps) > 0 {
		for i := range ps {
			ps[i].Path = strings.TrimPrefix(path+"."+ps[i].Path, ".")
		}
		return invalid(ps...)
	}
	return nil
}

// AddVersion adds a draft version to the caller's API.
func (s *Service) AddVersion(ctx context.Context, c Caller, name string, spec wire.APIVersionSpec) (*API, error) {
	a, err := s.owned(c, name)
	if err != nil {
		return nil, err
	}
	var p problems
	checkSpec(&p, "", a.Kind, &spec)
	if e := p.err(); e != nil {
		for i := range e.Details {
			e.Details[i].Path = strings.TrimPrefix(e.Details[i].Path, ".")
		}
		e.Message = strings.TrimPrefix(e.Message, ".")
		return nil, e
	}
	if err := s.checkTarget(ctx, c.Tenant, name, a.Kind, "", &spec); err != nil {
		return nil, err
	}
	res, err := s.update(ctx, c.Tenant, UpdateAddVersion, AddVersionInput{API: name, Spec: spec, By: c.By()})
	if err != nil {
		return nil, err
	}
	return res.API, nil
}

// Update changes the caller's API's description and terms.
func (s *Service) Update(ctx context.Context, c Caller, name string, req wire.UpdateAPIRequest) (*API, error) {
	if _, err := s.owned(c, name); err != nil {
		return nil, err
	}
	res, err := s.update(ctx, c.Tenant, UpdateUpdateAPI, UpdateAPIInput{API: name, Request: req, By: c.By()})
	if err != nil {
		return nil, err
	}
	return res.API, nil
}

// Transition moves a version of the caller's API through the lifecycle.
func (s *Service) Transition(ctx context.Context, c Caller, name, version string, req wire.TransitionRequest) (*API, error) {
	if _, err := s.owned(c, name); err != nil {
		return nil, err
	}
	res, err := s.update(ctx, c.Tenant, UpdateTransition, TransitionInput{API: name, Version: version, Request: req, By: c.By()})
	if err != nil {
		return nil, err
	}
	s.log.Info("API version moved", "api", name, "version", version, "state", req.State, "by", c.By(), "reason", req.Reason)
	return res.API, nil
}

// Subscribe requests a grant to a shared API for the caller's tenant (or
// its app req.App). With approval: none the grant is active at once;
// otherwise it is pending until the owner's approvers decide.
func (s *Service) Subscribe(ctx context.Context, c Caller, name string, req wire.SubscribeRequest) (*Subscription, error) {
	a, err := s.lookup(c, name)
	if err != nil {
		return nil, err
	}
	var p problems
	if req.Plan == "" {
		p.add("plan", "is required (offered: %s)", planNames(a))
	}
	if req.App != "" && !AppPattern.MatchString(req.App) {
		p.add("app", "app names are lower-case letters, digits, '_' and '-' (at most 63)")
	}
	if e := p.err(); e != nil {
		return nil, e
	}
	id, err := newSubscriptionID()
	if err != nil {
		return nil, err
	}
	res, err := s.update(ctx, a.Owner, UpdateSubscribe, SubscribeInput{ID: id, API: name, Consumer: c.Tenant, App: req.App,
		Plan: req.Plan, Reason: req.Reason, By: c.By()})
	if err != nil {
		return nil, err
	}
	s.log.Info("subscription requested", "api", name, "consumer", c.Tenant, "app", req.App, "plan", req.Plan, "state", res.Subscription.State, "by", c.By())
	return res.Subscription, nil
}

func planNames(a *API) string {
	names := make([]string, len(a.Plans))
	for i, p := range a.Plans {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}

func newSubscriptionID() (string, error) {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("subscription id: %w", err)
	}
	return "sub_" + hex.EncodeToString(b), nil
}

// Sides of ListSubscriptions.
const (
	AsConsumer = "consumer"
	AsOwner    = "owner"
)

// ListSubscriptions lists the caller's subscriptions (as consumer), or
// those to the caller's APIs (as owner), newest first; api narrows to one
// API and state to one state.
func (s *Service) ListSubscriptions(c Caller, as, api, state string) (wire.Subscriptions, error) {
	var p problems
	if as != AsConsumer && as != AsOwner {
		p.add("as", "must be consumer or owner")
	}
	if state != "" && !slices.Contains([]string{wire.SubscriptionPending, wire.SubscriptionActive, wire.SubscriptionRejected,
		wire.SubscriptionRevoked, wire.SubscriptionCancelled}, state) {
		p.add("state", "must be pending, active, rejected, revoked or cancelled")
	}
	if e := p.err(); e != nil {
		e.Code = "invalid_request"
		return wire.Subscriptions{}, e
	}
	if err := s.ready(); err != nil {
		return wire.Subscriptions{}, err
	}
	list := s.rm.ConsumerSubscriptions(c.Tenant)
	if as == AsOwner {
		list = s.rm.OwnerSubscriptions(c.Tenant)
	}
	out := wire.Subscriptions{Items: []Subscription{}}
	for _, sub := range list {
		if (api == "" || sub.API == api) && (state == "" || sub.State == state) {
			out.Items = append(out.Items, *sub)
		}
	}
	return out, nil
}

// GetSubscription returns a subscription the caller is owner or consumer
// of.
func (s *Service) GetSubscription(c Caller, id string) (*Subscription, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	sub, ok := s.rm.Subscription(id)
	if !ok || (sub.Owner != c.Tenant && sub.Consumer != c.Tenant) {
		return nil, newError(ErrNotFound, "subscription_not_found", "subscription %q not found", id)
	}
	return sub, nil
}

// Revoke ends a subscription to one of the caller's APIs.
func (s *Service) Revoke(ctx context.Context, c Caller, id, reason string) (*Subscription, error) {
	sub, err := s.GetSubscription(c, id)
	if err != nil {
		return nil, err
	}
	if sub.Owner != c.Tenant {
		return nil, newError(ErrForbidden, "not_owner", "only the owner of API %s revokes subscriptions; cancel yours instead", sub.API)
	}
	res, err := s.update(ctx, sub.Owner, UpdateRevoke, EndInput{ID: id, By: c.By(), Reason: reason})
	if err != nil {
		return nil, err
	}
	s.log.Info("subscription revoked", "subscription", id, "api", sub.API, "consumer", sub.Consumer, "by", c.By(), "reason", reason)
	return res.Subscription, nil
}

// Cancel ends one of the caller's subscriptions (pending or active).
func (s *Service) Cancel(ctx context.Context, c Caller, id, reason string) (*Subscription, error) {
	sub, err := s.GetSubscription(c, id)
	if err != nil {
		return nil, err
	}
	if sub.Consumer != c.Tenant {
		return nil, newError(ErrForbidden, "not_consumer", "only the consumer cancels a subscription; revoke it instead")
	}
	res, err := s.update(ctx, sub.Owner, UpdateCancel, EndInput{ID: id, Consumer: c.Tenant, By: c.By(), Reason: reason})
	if err != nil {
		return nil, err
	}
	s.log.Info("subscription cancelled", "subscription", id, "api", sub.API, "consumer", sub.Consumer, "by", c.By(), "reason", reason)
	return res.Subscription, nil
}

// Snapshot queries an owner's entity directly (tests, operators): its
// state, not the read model's.
func (s *Service) Snapshot(ctx context.Context, owner string) (Snapshot, error) {
	if !definition.TenantPattern.MatchString(owner) {
		return Snapshot{}, newError(ErrNotFound, "not_found", "no catalogue for %q", owner)
	}
	v, err := s.c.QueryWorkflow(ctx, EntityID(owner), "", QuerySnapshot)
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return Snapshot{APIs: []API{}, Subscriptions: []Subscription{}}, nil
		}
		return Snapshot{}, s.temporalError(err, "snapshot")
	}
	var snap Snapshot
	err = v.Get(&snap)
	return snap, err
}
