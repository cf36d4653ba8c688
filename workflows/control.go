package workflows

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/gateflow/gateflow/workflows/definition"
)

// parallel runs its branches concurrently in the current scope and joins
// them. The first failure cancels the other branches; the step fails with
// that first error once every branch has stopped. Output: branch name ->
// {step id: output} of the branch's top-level steps.
func (r *run) parallel(ctx workflow.Context, sc *scope, st *definition.Step, _ string) (stepOutcome, error) {
	r.enforcesLimits(ctx)
	bctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	var firstErr error
	running := len(st.Branches)
	for i := range st.Branches {
		b := &st.Branches[i]
		workflow.Go(bctx, func(gctx workflow.Context) {
			defer func() { running-- }()
			if err := r.execSteps(gctx, sc, b.Steps); err != nil && firstErr == nil {
				firstErr = err
				cancel()
			}
		})
	}
	// Wait for every branch, even after a failure or cancellation, so that
	// the compensation stack is complete before anything unwinds.
	waitCtx, _ := workflow.NewDisconnectedContext(ctx)
	_ = workflow.Await(waitCtx, func() bool { return running == 0 })
	if firstErr != nil {
		return stepOutcome{}, firstErr
	}
	out := make(map[string]any, len(st.Branches))
	for i := range st.Branches {
		b := &st.Branches[i]
		name := b.Name
		if name == "" {
			name = strconv.Itoa(i)
		}
		out[name] = stepsOutputs(sc, b.Steps)
	}
	return stepOutcome{output: out}, nil
}

// execSteps runs steps in order in a scope, stopping at the first error.
func (r *run) execSteps(ctx workflow.Context, sc *scope, steps []definition.Step) error {
	for i := range steps {
		if err := r.execStep(ctx, sc, &steps[i]); err != nil {
			return err
		}
	}
	return nil
}

// stepsOutputs collects the outputs of steps from a scope, by id.
func stepsOutputs(sc *scope, steps []definition.Step) map[string]any {
	out := make(map[string]any, len(steps))
	for i := range steps {
		if res, ok := sc.get(steps[i].ID); ok {
			out[steps[i].ID] = res.Output
		}
	}
	return out
}

// foreachResume is a top-level foreach interrupted by continue-as-new: the
// items (evaluated once), the next item to start and the results of the
// items before it.
type foreachResume struct {
	StatusID string `json:"status_id"`
	Items    []any  `json:"items"`
	Next     int    `json:"next"`
	Results  []any  `json:"results"`
}

// foreach runs its body once per item, at most Concurrency items at once,
// each item in its own scope (item, index, and the body's results; status
// ids "<id>[i].<step>"). The first failure stops new items, cancels the
// running ones, and fails the step. Output: one {step id: output} object
// per item, in item order.
//
// A top-level foreach is a continue-as-new point: when the history grows
// too long it stops starting items, lets the running ones finish, and
// continues as new from the next item.
func (r *run) foreach(ctx workflow.Context, sc *scope, st *definition.Step, id string) (stepOutcome, error) {
	var (
		items   []any
		results []any
		next    int
	)
	if res := r.resume; res != nil && res.StatusID == id {
		r.enforcesLimits(ctx)
		items, next = res.Items, res.Next
		results = make([]any, len(items))
		copy(results, res.Results)
		r.resume = nil
	} else {
		list, err := evalList(st.Items, sc.env(r))
		if err != nil {
			return stepOutcome{}, fmt.Errorf("items: %w", err)
		}
		if err := r.checkItems(ctx, len(list)); err != nil {
			return stepOutcome{}, err
		}
		norm, err := normalize(list)
		if err != nil {
			return stepOutcome{}, fmt.Errorf("items: %w", err)
		}
		items, _ = norm.([]any)
		results = make([]any, len(items))
	}
	limit := st.Concurrency
	if limit <= 0 {
		limit = DefaultForeachConcurrency
	}
	canPoint := sc == r.root

	ictx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	waitCtx, _ := workflow.NewDisconnectedContext(ctx)
	var firstErr error
	running, finished, seen := 0, 0, 0
	stopForCAN := false
	for {
		for firstErr == nil && !stopForCAN && running < limit && next < len(items) && ctx.Err() == nil {
			if canPoint && finished > 0 && r.shouldContinueAsNew(ctx) {
				stopForCAN = true
				break
			}
			i := next
			next++
			running++
			isc := itemScope(sc, st.ID, i, items[i])
			r.status.addPending(isc.prefix, st.Steps)
			workflow.Go(ictx, func(gctx workflow.Context) {
				err := r.execSteps(gctx, isc, st.Steps)
				results[i] = isc.outputs()
				running--
				finished++
				if err != nil && firstErr == nil {
					firstErr = err
					cancel()
				}
			})
		}
		if running == 0 {
			break
		}
		_ = workflow.Await(waitCtx, func() bool { return finished > seen })
		seen = finished
	}
	if firstErr != nil {
		return stepOutcome{}, firstErr
	}
	if err := ctx.Err(); err != nil {
		return stepOutcome{}, err
	}
	if next < len(items) {
		// Only reached when stopping for continue-as-new.
		return stepOutcome{}, &continueAsNewError{foreach: &foreachResume{
			StatusID: id, Items: items, Next: next, Results: results[:next],
		}}
	}
	return stepOutcome{output: results}, nil
}

// switchStep runs the steps of the first case whose condition is true,
// else the default steps. Steps of the arms not taken are skipped.
// Output: {"case": index of the case taken, or -1 for default/none}.
func (r *run) switchStep(ctx workflow.Context, sc *scope, st *definition.Step, _ string) (stepOutcome, error) {
	chosen := -1
	for i := range st.Cases {
		ok, err := evalCondition(st.Cases[i].When, sc.env(r))
		if err != nil {
			return stepOutcome{}, fmt.Errorf("cases[%d].when: %w", i, err)
		}
		if ok {
			chosen = i
			break
		}
	}
	now := workflow.Now(ctx)
	for i := range st.Cases {
		if i != chosen {
			r.skipList(sc.prefix, st.Cases[i].Steps, now)
		}
	}
	steps := st.Default
	if chosen >= 0 {
		r.skipList(sc.prefix, st.Default, now)
		steps = st.Cases[chosen].Steps
	}
	if err := r.execSteps(ctx, sc, steps); err != nil {
		return stepOutcome{}, err
	}
	return stepOutcome{output: map[string]any{"case": float64(chosen), "default": chosen < 0 && len(st.Default) > 0}}, nil
}

func (r *run) skipList(prefix string, steps []definition.Step, now time.Time) {
	for i := range steps {
		r.status.skip(prefix+steps[i].ID, steps[i].Kind, now)
		r.skipNested(prefix, &steps[i], now)
	}
}

// wait sleeps on a durable timer: for Duration, or until the time Until
// gives (RFC 3339 text or Unix milliseconds). A time in the past does not
// wait. Output: {"until": RFC 3339 time}.
func (r *run) wait(ctx workflow.Context, sc *scope, st *definition.Step, id string) (stepOutcome, error) {
	now := workflow.Now(ctx)
	var until time.Time
	if st.Until != "" {
		v, err := evalValue(st.Until, sc.env(r))
		if err != nil {
			return stepOutcome{}, fmt.Errorf("until: %w", err)
		}
		if until, err = toTime(v); err != nil {
			return stepOutcome{}, fmt.Errorf("until: %w", err)
		}
	} else {
		until = now.Add(st.Duration.Std())
	}
	if d := until.Sub(now); d > 0 {
		r.events += timerEvents
		if err := workflow.NewTimerWithOptions(ctx, d, workflow.TimerOptions{Summary: "wait " + id}).Get(ctx, nil); err != nil {
			return stepOutcome{}, err
		}
	}
	return stepOutcome{output: map[string]any{"until": until.UTC().Format(time.RFC3339Nano)}}, nil
}

// toTime reads a time from an expression result.
func toTime(v any) (time.Time, error) {
	switch x := v.(type) {
	case time.Time:
		return x, nil
	case string:
		t, err := time.Parse(time.RFC3339Nano, x)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time", x)
		}
		return t, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return time.Time{}, fmt.Errorf("%v is not a time", x)
		}
		return time.UnixMilli(int64(x)), nil
	case int:
		return time.UnixMilli(int64(x)), nil
	case int64:
		return time.UnixMilli(x), nil
	default:
		return time.Time{}, fmt.Errorf("got %T, want an RFC 3339 time or Unix milliseconds", v)
	}
}
