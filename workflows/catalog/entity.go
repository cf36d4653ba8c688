package catalog

import (
	"errors"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/replicated"
	"github.com/gateflow/gateflow/workflows/wire"
)

// EntityInput starts (or continues) an owner's catalogue.
type EntityInput struct {
	Owner string `json:"owner"`
	// Topic is where changes are published (the outbox keeps it after the
	// first run).
	Topic string `json:"topic"`
	// State is the gzip-compressed JSON of savedState, set only by
	// continue-as-new.
	State []byte `json:"state,omitempty"`
	// ContinueAsNewAfter is the number of changes after which a run
	// continues as new (0: replicated.ContinueAsNewAfter); in the input,
	// not in the worker, so that a replay decides as the run did. Tests
	// lower it.
	ContinueAsNewAfter int `json:"continue_as_new_after,omitempty"`
}

// savedState is what a run hands to the next one.
type savedState struct {
	APIs   []API              `json:"apis"`
	Subs   []Subscription     `json:"subscriptions"`
	Outbox *replicated.Outbox `json:"outbox"`
}

// Result answers every Update of the entity: the changed value and the
// records it published, which the replica that asked applies to its read
// model at once (read-your-writes on that replica).
type Result struct {
	API          *API                `json:"api,omitempty"`
	Subscription *Subscription       `json:"subscription,omitempty"`
	Records      []replicated.Record `json:"records,omitempty"`
	// Published is false when the change was accepted but had not reached
	// the topic within replicated.PublishWait (it will).
	Published bool `json:"published"`
}

// Snapshot answers QuerySnapshot.
type Snapshot struct {
	APIs          []API          `json:"apis"`
	Subscriptions []Subscription `json:"subscriptions"`
	// Pending counts the records not yet on the topic.
	Pending int `json:"pending"`
}

// Entity is an owner's catalogue workflow. Its Updates are validated by
// the rules of model.go (validators do not run on replay and change
// nothing); the handlers apply the same rules, publish the changed
// records, and for a subscription that needs approval start its
// Subscription workflow (abandoned on continue-as-new: it applies its
// decision to whatever run is current then).
//
// Changes to this code that alter the commands of an existing history must
// be guarded with workflow.GetVersion; the replay test replays recorded
// histories (testdata/histories).
type Entity struct{}

// Run is the workflow function.
func (e *Entity) Run(ctx workflow.Context, in EntityInput) error {
	st := newState(in.Owner)
	out := replicated.NewOutbox(in.Topic)
	if len(in.State) > 0 {
		var saved savedState
		if err := gunzipJSON(in.State, &saved); err != nil {
			return temporal.NewNonRetryableApplicationError("catalogue state is unreadable", "BadState", err)
		}
		for i := range saved.APIs {
			st.apis[saved.APIs[i].Name] = &saved.APIs[i]
		}
		for i := range saved.Subs {
			st.subs[saved.Subs[i].ID] = &saved.Subs[i]
		}
		if saved.Outbox != nil {
			out = saved.Outbox
		}
	}
	if out.Topic == "" {
		out.Topic = DefaultTopic
	}
	handled := 0
	limit := in.ContinueAsNewAfter
	if limit <= 0 {
		limit = replicated.ContinueAsNewAfter
	}
	log := workflow.GetLogger(ctx)

	if err := workflow.SetQueryHandler(ctx, QuerySnapshot, func() (Snapshot, error) {
		return st.snapshot(len(out.Pending)), nil
	}); err != nil {
		return err
	}

	// publish records the new values of keys and waits (bounded) for them
	// to reach the topic.
	publish := func(ctx workflow.Context, res *Result) error {
		var keys []string
		if res.API != nil {
			st.apis[res.API.Name] = res.API
			rec, err := out.Put(apiKey(res.API.Name), res.API)
			if err != nil {
				return err
			}
			res.Records = append(res.Records, rec)
			keys = append(keys, rec.Key)
		}
		if res.Subscription != nil {
			st.subs[res.Subscription.ID] = res.Subscription
			rec, err := out.Put(subKey(res.Subscription.ID), res.Subscription)
			if err != nil {
				return err
			}
			res.Records = append(res.Records, rec)
			keys = append(keys, rec.Key)
		}
		handled++
		res.Published = out.AwaitPublished(ctx, replicated.PublishWait, keys...)
		return nil
	}

	register := func(name string, handler any, validator any) error {
		return workflow.SetUpdateHandlerWithOptions(ctx, name, handler, workflow.UpdateHandlerOptions{Validator: validator})
	}
	errs := []error{
		register(UpdateCreateAPI,
			func(ctx workflow.Context, in CreateAPIInput) (Result, error) {
				a, err := st.createAPI(in, workflow.Now(ctx).UTC())
				return st.apply(ctx, publish, Result{API: a}, err)
			},
			func(ctx workflow.Context, in CreateAPIInput) error {
				_, err := st.createAPI(in, workflow.Now(ctx).UTC())
				return appError(err)
			}),
		register(UpdateAddVersion,
			func(ctx workflow.Context, in AddVersionInput) (Result, error) {
				a, err := st.addVersion(in, workflow.Now(ctx).UTC())
				return st.apply(ctx, publish, Result{API: a}, err)
			},
			func(ctx workflow.Context, in AddVersionInput) error {
				_, err := st.addVersion(in, workflow.Now(ctx).UTC())
				return appError(err)
			}),
		register(UpdateUpdateAPI,
			func(ctx workflow.Context, in UpdateAPIInput) (Result, error) {
				a, err := st.updateAPI(in, workflow.Now(ctx).UTC())
				return st.apply(ctx, publish, Result{API: a}, err)
			},
			func(ctx workflow.Context, in UpdateAPIInput) error {
				_, err := st.updateAPI(in, workflow.Now(ctx).UTC())
				return appError(err)
			}),
		register(UpdateTransition,
			func(ctx workflow.Context, in TransitionInput) (Result, error) {
				a, err := st.transition(in, workflow.Now(ctx).UTC())
				return st.apply(ctx, publish, Result{API: a}, err)
			},
			func(ctx workflow.Context, in TransitionInput) error {
				_, err := st.transition(in, workflow.Now(ctx).UTC())
				return appError(err)
			}),
		register(UpdateSubscribe,
			func(ctx workflow.Context, in SubscribeInput) (Result, error) {
				_, existed := st.subs[in.ID]
				s, err := st.subscribe(in, workflow.Now(ctx).UTC())
				if err != nil || existed {
					return Result{Subscription: s, Published: true}, appError(err)
				}
				res, rerr := st.apply(ctx, publish, Result{Subscription: s}, nil)
				if rerr == nil && s.State == wire.SubscriptionPending {
					startApproval(ctx, st.apis[s.API], s)
				}
				return res, rerr
			},
			func(ctx workflow.Context, in SubscribeInput) error {
				_, err := st.subscribe(in, workflow.Now(ctx).UTC())
				return appError(err)
			}),
		register(UpdateDecide,
			func(ctx workflow.Context, in DecideInput) (Result, error) {
				s, err := st.decide(in, workflow.Now(ctx).UTC())
				return st.apply(ctx, publish, Result{Subscription: s}, err)
			},
			func(ctx workflow.Context, in DecideInput) error {
				_, err := st.decide(in, workflow.Now(ctx).UTC())
				return appError(err)
			}),
		register(UpdateRevoke,
			func(ctx workflow.Context, in EndInput) (Result, error) {
				return st.endSubscription(ctx, publish, in, false)
			},
			func(ctx workflow.Context, in EndInput) error {
				_, err := st.end(in, workflow.Now(ctx).UTC(), false)
				return appError(err)
			}),
		register(UpdateCancel,
			func(ctx workflow.Context, in EndInput) (Result, error) {
				return st.endSubscription(ctx, publish, in, true)
			},
			func(ctx workflow.Context, in EndInput) error {
				_, err := st.end(in, workflow.Now(ctx).UTC(), true)
				return appError(err)
			}),
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}

	workflow.Go(ctx, out.Run)
	_ = workflow.Await(ctx, func() bool {
		return handled >= limit || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
	})
	if err := replicated.DrainForContinueAsNew(ctx, out); err != nil {
		return err
	}
	saved := savedState{Outbox: out}
	snap := st.snapshot(0)
	saved.APIs, saved.Subs = snap.APIs, snap.Subscriptions
	state, err := gzipJSON(saved)
	if err != nil {
		return err
	}
	log.Info("catalogue continues as new", "owner", st.owner, "apis", len(st.apis), "subscriptions", len(st.subs), "pending", len(out.Pending))
	return workflow.NewContinueAsNewError(ctx, EntityWorkflow, EntityInput{Owner: st.owner, Topic: out.Topic, State: state, ContinueAsNewAfter: in.ContinueAsNewAfter})
}

// apply publishes the result of a rule that succeeded; a rule that failed
// in the handler (the state moved since the validator ran) fails the
// Update with the same error the validator would have given.
func (st *state) apply(ctx workflow.Context, publish func(workflow.Context, *Result) error, res Result, err *Error) (Result, error) {
	if err != nil {
		return Result{}, appError(err)
	}
	if perr := publish(ctx, &res); perr != nil {
		return Result{}, temporal.NewNonRetryableApplicationError(perr.Error(), "Internal", perr)
	}
	return res, nil
}

// endSubscription revokes or cancels, and stops a pending approval.
func (st *state) endSubscription(ctx workflow.Context, publish func(workflow.Context, *Result) error, in EndInput, cancel bool) (Result, error) {
	prev, _ := st.subs[in.ID]
	wasPending := prev != nil && prev.State == wire.SubscriptionPending
	s, err := st.end(in, workflow.Now(ctx).UTC(), cancel)
	res, rerr := st.apply(ctx, publish, Result{Subscription: s}, err)
	if rerr == nil && wasPending && s.WorkflowID != "" {
		// The approval is moot: stop it (its decision would be refused
		// anyway, the subscription no longer being pending).
		if cerr := workflow.RequestCancelExternalWorkflow(ctx, SubscriptionIDPrefix+s.ID, "").Get(ctx, nil); cerr != nil {
			workflow.GetLogger(ctx).Warn("approval of an ended subscription not cancelled", "subscription", s.ID, "error", cerr.Error())
		}
	}
	return res, rerr
}

// startApproval starts the subscription's approval workflow and waits
// until it has started; it is abandoned when this run closes.
func startApproval(ctx workflow.Context, a *API, s *Subscription) {
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            SubscriptionIDPrefix + s.ID,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		StaticSummary:         "approval of subscription " + s.ID + " to " + s.API,
	})
	in := SubscriptionInput{Subscription: *s, Approval: a.Approval, Title: a.Title}
	f := workflow.ExecuteChildWorkflow(cctx, SubscriptionWorkflow, in)
	if err := f.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Error("approval workflow of a subscription did not start", "subscription", s.ID, "error", err.Error())
	}
}

// snapshot lists the state sorted by name and id.
func (st *state) snapshot(pending int) Snapshot {
	out := Snapshot{APIs: []API{}, Subscriptions: []Subscription{}, Pending: pending}
	for _, n := range sortedKeys(st.apis) {
		out.APIs = append(out.APIs, *st.apis[n])
	}
	for _, id := range sortedKeys(st.subs) {
		out.Subscriptions = append(out.Subscriptions, *st.subs[id])
	}
	return out
}

// Application error type of every refusal of the catalogue's Updates; the
// details carry the kind, code and problems so the service rebuilds the
// *Error.
const errTypeCatalog = "CatalogRefused"

type errInfo struct {
	Kind    string               `json:"kind"`
	Code    string               `json:"code"`
	Details []definition.Problem `json:"details,omitempty"`
}

var kinds = map[string]error{
	"not_found": ErrNotFound, "gone": ErrGone, "conflict": ErrConflict, "invalid": ErrInvalid, "forbidden": ErrForbidden,
}

func kindName(k error) string {
	switch k {
	case ErrNotFound:
		return "not_found"
	case ErrGone:
		return "gone"
	case ErrInvalid:
		return "invalid"
	case ErrForbidden:
		return "forbidden"
	}
	return "conflict"
}

// appError turns a rule's refusal into the Update's error (nil stays nil).
func appError(e *Error) error {
	if e == nil {
		return nil
	}
	return temporal.NewApplicationErrorWithOptions(e.Message, errTypeCatalog, temporal.ApplicationErrorOptions{
		NonRetryable: true, Details: []any{errInfo{Kind: kindName(e.Kind), Code: e.Code, Details: e.Details}},
	})
}

// FromUpdateError rebuilds the *Error of a refused Update; other errors
// come back as they are.
func FromUpdateError(err error) error {
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != errTypeCatalog {
		return err
	}
	var info errInfo
	if app.HasDetails() {
		_ = app.Details(&info)
	}
	kind, ok := kinds[info.Kind]
	if !ok {
		kind = ErrConflict
	}
	return &Error{Kind: kind, Code: info.Code, Message: app.Message(), Details: info.Details}
}
