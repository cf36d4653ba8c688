// Package schedules runs definitions on a calendar through Temporal
// Schedules: a schedule of a tenant is a Temporal Schedule (id
// "gateflow/<tenant>/<name>") whose action starts the orchestration
// workflow with the definition copied in, an input template the run
// evaluates when it starts (with the firing's scheduled time) and the
// trigger label that every call record of the run carries. Temporal keeps
// the calendar, the overlap policy, the catch-up window, pause state,
// manual triggers and backfills; this package maps the API's and the
// configuration's wire.ScheduleSpec onto it, and back.
//
// Schedules come from the API (source "api") or from gateflow.yaml
// (source "config", kept equal to the file by Reconcile; the API may only
// pause, resume, trigger and backfill those). Another tenant's schedule is
// simply not found: ids are built from the caller's tenant.
package schedules

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/wire"
)

// Sentinel errors; the ingress maps them to HTTP statuses.
var (
	// ErrNotFound: no such schedule for the tenant.
	ErrNotFound = errors.New("schedule not found")
	// ErrExists: a schedule with this id exists already.
	ErrExists = errors.New("schedule exists")
	// ErrManaged: the schedule is managed in gateflow.yaml; only pause,
	// resume, trigger and backfill apply.
	ErrManaged = errors.New("schedule is managed by the configuration")
	// ErrInvalid: the request cannot be applied (bad range, bad policy).
	ErrInvalid = errors.New("invalid schedule request")
)

// Bounds.
const (
	// MaxBackfillRuns bounds the runs one backfill may start.
	MaxBackfillRuns = 1000
	// maxListed bounds the schedules a tenant's list describes.
	maxListed = 500
	// listConcurrency bounds the describes of a list in flight.
	listConcurrency = 8
)

// IDPrefix starts the Temporal id of every Gateflow schedule.
const IDPrefix = "gateflow/"

// Memo keys of the schedule's action (updatable with the schedule, unlike
// the schedule's own memo).
const (
	memoSpec    = "gateflow_schedule"
	memoSource  = "gateflow_source"
	memoDigest  = "gateflow_digest"
	memoVersion = "gateflow_version"
	memoBy      = workflows.MemoSubmittedBy
)

// Definitions resolves definitions (the orchestrator's registry); errors
// wrap the orchestrator's ErrNotFound where they apply.
type Definitions interface {
	Get(ctx context.Context, tenant, name, version string) (definition.Definition, error)
}

// Options configure a Manager.
type Options struct {
	// TaskQueue is where the runs start (workflows.DefaultTaskQueue).
	TaskQueue string
	// ServiceDefaults are merged into http steps like at an API start.
	ServiceDefaults workflows.ServiceDefaults
	Log             *slog.Logger
}

// Manager creates and operates the schedules of tenants.
type Manager struct {
	c    client.Client
	sc   client.ScheduleClient
	defs Definitions
	opts Options
	log  *slog.Logger
}

// New returns a Manager on the Temporal client c.
func New(c client.Client, defs Definitions, opts Options) *Manager {
	if opts.TaskQueue == "" {
		opts.TaskQueue = workflows.DefaultTaskQueue
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{c: c, sc: c.ScheduleClient(), defs: defs, opts: opts, log: log}
}

// ScheduleID is the Temporal id of a tenant's schedule.
func ScheduleID(tenant, name string) string { return IDPrefix + tenant + "/" + name }

// WorkflowIDBase is the workflow id of a schedule's runs, before Temporal
// appends the scheduled time; its tenant prefix keeps runs in the
// tenant's id space.
func WorkflowIDBase(tenant, name string) string { return tenant + "/sched-" + name }

func checkName(name string) error {
	if !definition.NamePattern.MatchString(name) {
		return fmt.Errorf("%w %q", ErrNotFound, name)
	}
	return nil
}

// Create creates a schedule of the API. by names the caller.
func (m *Manager) Create(ctx context.Context, tenant string, req wire.ScheduleRequest, by string) (wire.Schedule, error) {
	if !definition.NamePattern.MatchString(req.ID) {
		return wire.Schedule{}, &definition.ValidationError{Subject: "schedule", Problems: []definition.Problem{{Path: "id", Message: "must be 1-100 letters, digits, '.', '_' or '-'"}}}
	}
	opts, err := m.options(ctx, tenant, req.ID, req.ScheduleSpec, wire.SourceAPI, by)
	if err != nil {
		return wire.Schedule{}, err
	}
	if _, err := m.sc.Create(ctx, opts); err != nil {
		if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
			return wire.Schedule{}, fmt.Errorf("%w: %s", ErrExists, req.ID)
		}
		return wire.Schedule{}, temporalError(err, req.ID)
	}
	return m.Get(ctx, tenant, req.ID)
}

// Update replaces the spec of an API schedule.
func (m *Manager) Update(ctx context.Context, tenant, name string, spec wire.ScheduleSpec, by string) (wire.Schedule, error) {
	if err := checkName(name); err != nil {
		return wire.Schedule{}, err
	}
	cur, err := m.describe(ctx, tenant, name)
	if err != nil {
		return wire.Schedule{}, err
	}
	if cur.source == wire.SourceConfig {
		return wire.Schedule{}, fmt.Errorf("%w: %s (edit gateflow.yaml)", ErrManaged, name)
	}
	if err := m.replace(ctx, tenant, name, spec, wire.SourceAPI, by); err != nil {
		return wire.Schedule{}, err
	}
	return m.Get(ctx, tenant, name)
}

// replace updates a schedule to spec (policies, state, action).
func (m *Manager) replace(ctx context.Context, tenant, name string, spec wire.ScheduleSpec, source, by string) error {
	opts, err := m.options(ctx, tenant, name, spec, source, by)
	if err != nil {
		return err
	}
	h := m.sc.GetHandle(ctx, ScheduleID(tenant, name))
	err = h.Update(ctx, client.ScheduleUpdateOptions{DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
		s := in.Description.Schedule
		s.Action = opts.Action
		s.Spec = &opts.Spec
		s.Policy = &client.SchedulePolicies{Overlap: opts.Overlap, CatchupWindow: opts.CatchupWindow}
		if s.State == nil {
			s.State = &client.ScheduleState{}
		}
		s.State.Paused, s.State.Note = opts.Paused, opts.Note
		return &client.ScheduleUpdate{Schedule: &s}, nil
	}})
	return temporalError(err, name)
}

// options builds the Temporal schedule of spec: it validates the spec,
// resolves the definition, and checks the input template against the
// definition's input schema with a sample firing.
func (m *Manager) options(ctx context.Context, tenant, name string, spec wire.ScheduleSpec, source, by string) (client.ScheduleOptions, error) {
	if ps := sysconfig.ScheduleProblems("", spec); len(ps) > 0 {
		return client.ScheduleOptions{}, &definition.ValidationError{Subject: "schedule " + name, Problems: ps}
	}
	def, err := m.defs.Get(ctx, tenant, spec.Definition, spec.Version)
	if err != nil {
		return client.ScheduleOptions{}, err
	}
	base := WorkflowIDBase(tenant, name)
	in := workflows.OrchestrationInput{
		Definition: workflows.WithServiceDefaults(def, m.opts.ServiceDefaults),
		Meta: activities.RunMeta{
			Tenant: tenant, KeyID: "schedule:" + name, SubmittedBy: by, Definition: def.Name, Version: def.Version,
			Labels: map[string]string{calls.LabelTrigger: activities.TriggerLabel(calls.KindSchedule, name)},
		},
		Trigger: &workflows.TriggerRef{Kind: string(calls.KindSchedule), Name: name, WorkflowIDBase: base},
	}
	if spec.Input != nil {
		sample, err := definition.EvalTemplate(spec.Input, definition.Env{definition.EnvInput: map[string]any{
			workflows.TriggerEnvSchedule: name, workflows.TriggerEnvScheduledTime: time.Now().UTC().Format(time.RFC3339),
			workflows.TriggerEnvScheduledUnixMS: float64(time.Now().UnixMilli()),
		}})
		if err != nil {
			return client.ScheduleOptions{}, &definition.ValidationError{Subject: "schedule " + name, Problems: []definition.Problem{{Path: "input", Message: err.Error()}}}
		}
		raw, err := json.Marshal(sample)
		if err == nil {
			err = def.ValidateInput(raw)
		}
		if err != nil {
			return client.ScheduleOptions{}, inputProblems(name, err)
		}
		in.InputTemplate = spec.Input
	} else {
		if err := def.ValidateInput(json.RawMessage(`{}`)); err != nil {
			return client.ScheduleOptions{}, inputProblems(name, err)
		}
		in.Input = json.RawMessage(`{}`)
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return client.ScheduleOptions{}, fmt.Errorf("encode schedule: %w", err)
	}
	// The digest covers the spec and the definition resolved now, so that
	// reconciling notices a newer "latest" or an edited definition file.
	defJSON, err := json.Marshal(def)
	if err != nil {
		return client.ScheduleOptions{}, fmt.Errorf("encode definition: %w", err)
	}
	digest := sha256.Sum256(append(append([]byte(nil), specJSON...), defJSON...))
	action := &client.ScheduleWorkflowAction{
		ID:                       base,
		Workflow:                 workflows.OrchestrationWorkflow,
		Args:                     []any{in},
		TaskQueue:                m.opts.TaskQueue,
		WorkflowExecutionTimeout: workflows.ExecutionTimeout(&def),
		TypedSearchAttributes: temporal.NewSearchAttributes(
			temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrTenant).ValueSet(tenant),
			temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrDefinition).ValueSet(def.Name),
			temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrVersion).ValueSet(def.Version),
		),
		Memo: map[string]any{
			memoSpec: string(specJSON), memoSource: source, memoVersion: def.Version,
			memoDigest: hex.EncodeToString(digest[:]), memoBy: "schedule:" + name,
		},
	}
	catchup := spec.CatchupWindow.Std()
	if catchup <= 0 {
		catchup = sysconfig.DefaultCatchupWindow
	}
	return client.ScheduleOptions{
		ID:            ScheduleID(tenant, name),
		Spec:          temporalSpec(spec),
		Action:        action,
		Overlap:       overlapPolicy(spec.Overlap, enumspb.SCHEDULE_OVERLAP_POLICY_SKIP),
		CatchupWindow: catchup,
		Paused:        spec.Paused,
		Note:          spec.Note,
		Memo:          map[string]any{memoSource: source},
	}, nil
}

func inputProblems(name string, err error) error {
	var ve *definition.ValidationError
	if errors.As(err, &ve) {
		out := &definition.ValidationError{Subject: "schedule " + name}
		for _, p := range ve.Problems {
			p.Path = "input" + strings.TrimPrefix(p.Path, "input")
			if !strings.HasPrefix(p.Path, "input") {
				p.Path = "input." + p.Path
			}
			out.Problems = append(out.Problems, p)
		}
		return out
	}
	return &definition.ValidationError{Subject: "schedule " + name, Problems: []definition.Problem{{Path: "input", Message: err.Error()}}}
}

// temporalSpec maps a spec onto Temporal's.
func temporalSpec(s wire.ScheduleSpec) client.ScheduleSpec {
	out := client.ScheduleSpec{Jitter: s.Jitter.Std()}
	if s.Cron != "" {
		out.CronExpressions = []string{s.Cron}
		out.TimeZoneName = s.Timezone
	} else {
		out.Intervals = []client.ScheduleIntervalSpec{{Every: s.Interval.Std(), Offset: s.Offset.Std()}}
	}
	return out
}

// overlapPolicy maps an overlap name (def when empty).
func overlapPolicy(name string, def enumspb.ScheduleOverlapPolicy) enumspb.ScheduleOverlapPolicy {
	switch name {
	case wire.OverlapSkip:
		return enumspb.SCHEDULE_OVERLAP_POLICY_SKIP
	case wire.OverlapBufferOne:
		return enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE
	case wire.OverlapBufferAll:
		return enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ALL
	case wire.OverlapCancelOther:
		return enumspb.SCHEDULE_OVERLAP_POLICY_CANCEL_OTHER
	case wire.OverlapTerminateOther:
		return enumspb.SCHEDULE_OVERLAP_POLICY_TERMINATE_OTHER
	case wire.OverlapAllowAll:
		return enumspb.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL
	}
	return def
}

func checkOverlap(name string) error {
	if name != "" && !slices.Contains(wire.OverlapPolicies(), name) {
		return fmt.Errorf("%w: overlap must be one of %s", ErrInvalid, strings.Join(wire.OverlapPolicies(), ", "))
	}
	return nil
}

// described is a schedule read back from Temporal.
type described struct {
	wire.Schedule
	source string
	digest string
}

func (m *Manager) describe(ctx context.Context, tenant, name string) (described, error) {
	d, err := m.sc.GetHandle(ctx, ScheduleID(tenant, name)).Describe(ctx)
	if err != nil {
		return described{}, temporalError(err, name)
	}
	return fromDescription(tenant, name, d), nil
}

// fromDescription maps Temporal's description back to the API's view.
func fromDescription(tenant, name string, d *client.ScheduleDescription) described {
	out := described{Schedule: wire.Schedule{ID: name, NextRuns: []time.Time{}}}
	if a, ok := d.Schedule.Action.(*client.ScheduleWorkflowAction); ok {
		var spec string
		memoString(a.Memo[memoSpec], &spec)
		if spec != "" {
			_ = json.Unmarshal([]byte(spec), &out.ScheduleSpec)
		}
		memoString(a.Memo[memoSource], &out.source)
		memoString(a.Memo[memoDigest], &out.digest)
		memoString(a.Memo[memoVersion], &out.ResolvedVersion)
	}
	out.Source = out.source
	if st := d.Schedule.State; st != nil {
		out.Paused, out.PausedNote = st.Paused, st.Note
	}
	info := d.Info
	out.Actions, out.Skipped, out.Missed = info.NumActions, info.NumActionsSkippedOverlap, info.NumActionsMissedCatchupWindow
	out.NextRuns = append(out.NextRuns, info.NextActionTimes...)
	for _, a := range info.RecentActions {
		r := wire.ScheduleRun{ScheduledAt: a.ScheduleTime, StartedAt: a.ActualTime}
		if a.StartWorkflowResult != nil {
			r.WorkflowID = strings.TrimPrefix(a.StartWorkflowResult.WorkflowID, tenant+"/")
		}
		out.RecentRuns = append(out.RecentRuns, r)
	}
	for _, w := range info.RunningWorkflows {
		out.RunningRuns = append(out.RunningRuns, strings.TrimPrefix(w.WorkflowID, tenant+"/"))
	}
	// Unset protobuf times come back as the Unix epoch.
	if t := info.CreatedAt; t.Unix() > 0 {
		out.CreatedAt = &t
	}
	if t := info.LastUpdateAt; t.Unix() > 0 {
		out.UpdatedAt = &t
	}
	return out
}

// memoString decodes a memo value (a payload once read back).
func memoString(v any, dst *string) {
	switch x := v.(type) {
	case string:
		*dst = x
	case *commonpb.Payload:
		_ = converter.GetDefaultDataConverter().FromPayload(x, dst)
	}
}

// Get returns one schedule of the tenant.
func (m *Manager) Get(ctx context.Context, tenant, name string) (wire.Schedule, error) {
	if err := checkName(name); err != nil {
		return wire.Schedule{}, err
	}
	d, err := m.describe(ctx, tenant, name)
	return d.Schedule, err
}

// List returns the tenant's schedules, by id, each with its next runs.
// Listing reads Temporal's visibility store, which may lag a second
// behind a create or delete.
func (m *Manager) List(ctx context.Context, tenant string) (wire.Schedules, error) {
	names, err := m.names(ctx, IDPrefix+tenant+"/")
	if err != nil {
		return wire.Schedules{}, err
	}
	if len(names) > maxListed {
		names = names[:maxListed]
	}
	items := make([]wire.Schedule, len(names))
	found := make([]bool, len(names))
	var wg sync.WaitGroup
	sem := make(chan struct{}, listConcurrency)
	var mu sync.Mutex
	var firstErr error
	for i, name := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			d, err := m.describe(ctx, tenant, name)
			switch {
			case err == nil:
				items[i], found[i] = d.Schedule, true
			case errors.Is(err, ErrNotFound):
			default:
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return wire.Schedules{}, firstErr
	}
	out := wire.Schedules{Items: []wire.Schedule{}}
	for i := range items {
		if found[i] {
			out.Items = append(out.Items, items[i])
		}
	}
	return out, nil
}

// names lists the schedule names under an id prefix, sorted.
func (m *Manager) names(ctx context.Context, prefix string) ([]string, error) {
	it, err := m.sc.List(ctx, client.ScheduleListOptions{PageSize: 1000})
	if err != nil {
		return nil, temporalError(err, "")
	}
	var out []string
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, temporalError(err, "")
		}
		if name, ok := strings.CutPrefix(e.ID, prefix); ok && !strings.Contains(name, "/") {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Delete deletes an API schedule (its running runs go on).
func (m *Manager) Delete(ctx context.Context, tenant, name string) error {
	cur, err := m.describeNamed(ctx, tenant, name)
	if err != nil {
		return err
	}
	if cur.source == wire.SourceConfig {
		return fmt.Errorf("%w: %s (remove it from gateflow.yaml)", ErrManaged, name)
	}
	return temporalError(m.sc.GetHandle(ctx, ScheduleID(tenant, name)).Delete(ctx), name)
}

func (m *Manager) describeNamed(ctx context.Context, tenant, name string) (described, error) {
	if err := checkName(name); err != nil {
		return described{}, err
	}
	return m.describe(ctx, tenant, name)
}

// Pause pauses a schedule (config ones too: until gateflow.yaml changes
// the entry).
func (m *Manager) Pause(ctx context.Context, tenant, name, note string) (wire.Schedule, error) {
	if _, err := m.describeNamed(ctx, tenant, name); err != nil {
		return wire.Schedule{}, err
	}
	if note == "" {
		note = "paused through the API"
	}
	if err := m.sc.GetHandle(ctx, ScheduleID(tenant, name)).Pause(ctx, client.SchedulePauseOptions{Note: note}); err != nil {
		return wire.Schedule{}, temporalError(err, name)
	}
	return m.Get(ctx, tenant, name)
}

// Resume unpauses a schedule.
func (m *Manager) Resume(ctx context.Context, tenant, name, note string) (wire.Schedule, error) {
	if _, err := m.describeNamed(ctx, tenant, name); err != nil {
		return wire.Schedule{}, err
	}
	if note == "" {
		note = "resumed through the API"
	}
	if err := m.sc.GetHandle(ctx, ScheduleID(tenant, name)).Unpause(ctx, client.ScheduleUnpauseOptions{Note: note}); err != nil {
		return wire.Schedule{}, temporalError(err, name)
	}
	return m.Get(ctx, tenant, name)
}

// Trigger starts a run now. The overlap policy defaults to allow_all (a
// manual run starts even while another runs).
func (m *Manager) Trigger(ctx context.Context, tenant, name, overlap string) error {
	if err := checkOverlap(overlap); err != nil {
		return err
	}
	if _, err := m.describeNamed(ctx, tenant, name); err != nil {
		return err
	}
	err := m.sc.GetHandle(ctx, ScheduleID(tenant, name)).Trigger(ctx, client.ScheduleTriggerOptions{
		Overlap: overlapPolicy(overlap, enumspb.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL),
	})
	return temporalError(err, name)
}

// Backfill starts, at once, the runs the schedule would have started in
// [from, to) (at most MaxBackfillRuns). The overlap policy defaults to
// allow_all, so every one of them starts.
func (m *Manager) Backfill(ctx context.Context, tenant, name string, req wire.BackfillRequest) (int, error) {
	if err := checkOverlap(req.Overlap); err != nil {
		return 0, err
	}
	if req.From.IsZero() || req.To.IsZero() || !req.From.Before(req.To) {
		return 0, fmt.Errorf("%w: from and to are required, from before to", ErrInvalid)
	}
	cur, err := m.describeNamed(ctx, tenant, name)
	if err != nil {
		return 0, err
	}
	n, err := CountRuns(cur.ScheduleSpec, req.From, req.To, MaxBackfillRuns+1)
	if err != nil {
		return 0, err
	}
	if n > MaxBackfillRuns {
		return 0, fmt.Errorf("%w: the range holds more than %d runs; backfill it in parts", ErrInvalid, MaxBackfillRuns)
	}
	// Temporal's backfill range includes its end: stop just before to.
	err = m.sc.GetHandle(ctx, ScheduleID(tenant, name)).Backfill(ctx, client.ScheduleBackfillOptions{Backfill: []client.ScheduleBackfill{{
		Start: req.From, End: req.To.Add(-time.Millisecond), Overlap: overlapPolicy(req.Overlap, enumspb.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL),
	}}})
	return n, temporalError(err, name)
}

// temporalError maps Temporal's errors to this package's sentinels.
func temporalError(err error, name string) error {
	var nf *serviceerror.NotFound
	var ia *serviceerror.InvalidArgument
	switch {
	case err == nil:
		return nil
	case errors.As(err, &nf):
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	case errors.As(err, &ia):
		return fmt.Errorf("%w: %s", ErrInvalid, ia.Message)
	}
	return fmt.Errorf("schedule %s: %w", name, err)
}
