package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/activities/llm"
	"github.com/gateflow/gateflow/workflows/definition"
)

// Activity defaults for call steps. A step's own timeout and retry policy
// win; service defaults from the registry are merged into the definition
// before it starts (see WithServiceDefaults), since the workflow only sees
// the definition.
const (
	// DefaultCallStartToClose bounds one attempt of an http or mcp step
	// without a timeout (the HTTP activity applies the service's own
	// timeout inside it).
	DefaultCallStartToClose = 5 * time.Minute
	// DefaultModelStartToClose bounds one attempt of a model step without
	// a timeout.
	DefaultModelStartToClose = 10 * time.Minute
	// callGrace is added to a step timeout for the attempt's
	// StartToClose, so the activity can report the timeout itself (with
	// its call record) before Temporal abandons it.
	callGrace = 5 * time.Second
	// httpHeartbeatTimeout lets a worker that dies during a long http,
	// model or mcp call be noticed quickly; those activities heartbeat at
	// half of it while the call is in flight. Without it a dead worker's
	// attempt ends only at its StartToClose: an mcp step without a timeout
	// stayed open 5 minutes after its worker was SIGKILLed (the fault
	// run's orchestration not closed within the settle bound, issue 15).
	httpHeartbeatTimeout = 10 * time.Second
)

// DefaultRetryPolicy applies to call steps without a retry policy.
var DefaultRetryPolicy = definition.RetryPolicy{
	MaxAttempts:        3,
	InitialInterval:    "1s",
	BackoffCoefficient: 2,
	MaxInterval:        "30s",
}

// retryPolicy maps a step's retry policy over the defaults.
func retryPolicy(rp *definition.RetryPolicy) *temporal.RetryPolicy {
	p := &temporal.RetryPolicy{
		InitialInterval:    DefaultRetryPolicy.InitialInterval.Std(),
		BackoffCoefficient: DefaultRetryPolicy.BackoffCoefficient,
		MaximumInterval:    DefaultRetryPolicy.MaxInterval.Std(),
		MaximumAttempts:    int32(DefaultRetryPolicy.MaxAttempts),
	}
	if rp == nil {
		return p
	}
	if rp.MaxAttempts > 0 {
		p.MaximumAttempts = int32(rp.MaxAttempts)
	}
	if d := rp.InitialInterval.Std(); d > 0 {
		p.InitialInterval = d
	}
	if rp.BackoffCoefficient >= 1 {
		p.BackoffCoefficient = rp.BackoffCoefficient
	}
	if d := rp.MaxInterval.Std(); d > 0 {
		p.MaximumInterval = d
	}
	if p.MaximumInterval < p.InitialInterval {
		p.MaximumInterval = p.InitialInterval
	}
	p.NonRetryableErrorTypes = append([]string(nil), rp.NonRetryableErrors...)
	return p
}

// callOptions builds the activity options of a call step (http, model,
// mcp: their activities all heartbeat while the call is in flight).
func callOptions(st *definition.Step, id string, defaultStartToClose time.Duration) workflow.ActivityOptions {
	stc := defaultStartToClose
	if t := st.Timeout.Std(); t > 0 {
		stc = t + callGrace
	}
	opts := workflow.ActivityOptions{
		StartToCloseTimeout: stc,
		RetryPolicy:         retryPolicy(st.Retry),
		Summary:             id,
	}
	if stc > 2*httpHeartbeatTimeout {
		opts.HeartbeatTimeout = httpHeartbeatTimeout
	}
	return opts
}

func (r *run) callHTTP(ctx workflow.Context, sc *scope, st *definition.Step, id string) (stepOutcome, error) {
	env := sc.env(r)
	in := activities.HTTPCallInput{
		StepRef:         r.ref(id),
		Service:         st.Service,
		Method:          st.Method,
		Timeout:         st.Timeout.Std(),
		SuccessStatuses: st.SuccessStatuses,
	}
	var err error
	if st.URL != "" {
		if in.URL, err = evalString(st.URL, env); err != nil {
			return stepOutcome{}, fmt.Errorf("url: %w", err)
		}
	}
	if st.Path != "" {
		if in.Path, err = r.renderPath(ctx, st.Path, env); err != nil {
			return stepOutcome{}, fmt.Errorf("path: %w", err)
		}
	}
	if in.Headers, err = evalStringMap(st.Headers, env, "headers"); err != nil {
		return stepOutcome{}, err
	}
	if in.Query, err = evalStringMap(st.Query, env, "query"); err != nil {
		return stepOutcome{}, err
	}
	if st.Body != nil {
		if in.Body, err = evalJSON(st.Body, env); err != nil {
			return stepOutcome{}, fmt.Errorf("body: %w", err)
		}
	}
	if st.Retry != nil {
		in.NonRetryableStatuses = st.Retry.NonRetryableStatuses
	}
	opts := callOptions(st, id, DefaultCallStartToClose)
	if cb := st.Callback; cb != nil {
		if r.eventsVersion(ctx) < eventsV1 {
			return stepOutcome{}, fmt.Errorf("http callbacks need a newer worker")
		}
		// The attempt lasts until the service completes it (or the
		// callback timeout); the worker does not heartbeat after the
		// call, so only the service's own heartbeats count.
		in.Callback = &activities.CallbackRequest{TTL: cb.Timeout.Std(), BodyField: cb.BodyField}
		opts.StartToCloseTimeout = cb.Timeout.Std() + callGrace
		opts.HeartbeatTimeout = cb.Heartbeat.Std()
	}
	actx := workflow.WithActivityOptions(ctx, opts)
	release, err := r.acquireCall(ctx)
	if err != nil {
		return stepOutcome{}, err
	}
	defer release()
	var raw json.RawMessage
	err = workflow.ExecuteActivity(actx, activities.HTTPCallActivity, in).Get(actx, &raw)
	r.events += activityEvents
	return callResult(raw, err, opts.RetryPolicy)
}

// pathEscapeChange is the workflow.GetVersion change id under which http
// step paths escape their interpolated values and refuse dot segments
// (definition.EvalPath). Version 1 is asked lazily, at the first path
// template of a run, so runs started before it take it at their next http
// call once replayed past their history, and histories without a path
// template gain no marker.
const (
	pathEscapeChange                  = "gateflow.path-escape"
	pathEscapeV1     workflow.Version = 1
)

// renderPath renders an http step's path: literal paths as written; path
// templates escaped (EvalPath) from pathEscapeV1 on, interpolated as text
// before (the replay of older histories).
func (r *run) renderPath(ctx workflow.Context, path string, env definition.Env) (string, error) {
	if !strings.Contains(path, "${{") {
		return evalString(path, env)
	}
	if !r.pathEscapeKnown {
		r.pathEscape = workflow.GetVersion(ctx, pathEscapeChange, workflow.DefaultVersion, pathEscapeV1)
		r.pathEscapeKnown = true
		if r.pathEscape >= pathEscapeV1 {
			r.events += versionEvents
		}
	}
	if r.pathEscape >= pathEscapeV1 {
		return evalPath(path, env)
	}
	return evalString(path, env)
}

func (r *run) callModel(ctx workflow.Context, sc *scope, st *definition.Step, id string) (stepOutcome, error) {
	env := sc.env(r)
	req := llm.ChatRequest{Model: st.Model, Temperature: st.Temperature}
	if st.System != "" {
		s, err := evalString(st.System, env)
		if err != nil {
			return stepOutcome{}, fmt.Errorf("system: %w", err)
		}
		req.Messages = append(req.Messages, textMessage("system", s))
	}
	for i, m := range st.Messages {
		s, err := evalString(m.Content, env)
		if err != nil {
			return stepOutcome{}, fmt.Errorf("messages[%d].content: %w", i, err)
		}
		req.Messages = append(req.Messages, textMessage(m.Role, s))
	}
	if st.Prompt != "" {
		s, err := evalString(st.Prompt, env)
		if err != nil {
			return stepOutcome{}, fmt.Errorf("prompt: %w", err)
		}
		req.Messages = append(req.Messages, textMessage("user", s))
	}
	if st.MaxTokens > 0 {
		n := st.MaxTokens
		req.MaxTokens = &n
	}
	if st.ResponseFormat == "json" {
		req.ResponseFormat = &llm.ResponseFormat{Type: "json_object"}
	}
	in := activities.ModelCallInput{StepRef: r.ref(id), Request: req, Timeout: st.Timeout.Std()}
	opts := callOptions(st, id, DefaultModelStartToClose)
	actx := workflow.WithActivityOptions(ctx, opts)
	release, err := r.acquireCall(ctx)
	if err != nil {
		return stepOutcome{}, err
	}
	defer release()
	var raw json.RawMessage
	err = workflow.ExecuteActivity(actx, activities.ModelCallActivity, in).Get(actx, &raw)
	r.events += activityEvents
	return callResult(raw, err, opts.RetryPolicy)
}

func (r *run) callMCP(ctx workflow.Context, sc *scope, st *definition.Step, id string) (stepOutcome, error) {
	in := activities.MCPCallInput{StepRef: r.ref(id), Server: st.Server, Tool: st.Tool, Timeout: st.Timeout.Std()}
	if st.Arguments != nil {
		args, err := evalJSON(st.Arguments, sc.env(r))
		if err != nil {
			return stepOutcome{}, fmt.Errorf("arguments: %w", err)
		}
		in.Arguments = args
	}
	// The heartbeat timeout only changes the command's attributes, which
	// replay does not compare: running orchestrations need no version
	// marker for it.
	opts := callOptions(st, id, DefaultCallStartToClose)
	actx := workflow.WithActivityOptions(ctx, opts)
	release, err := r.acquireCall(ctx)
	if err != nil {
		return stepOutcome{}, err
	}
	defer release()
	var raw json.RawMessage
	err = workflow.ExecuteActivity(actx, activities.MCPCallActivity, in).Get(actx, &raw)
	r.events += activityEvents
	return callResult(raw, err, opts.RetryPolicy)
}

// callResult turns an activity's JSON result into the step output, taking
// out the attempt number, or finds the failed attempt in the error.
func callResult(raw json.RawMessage, err error, rp *temporal.RetryPolicy) (stepOutcome, error) {
	if err != nil {
		return stepOutcome{attempts: failedAttempts(err, rp)}, err
	}
	var out any
	if len(raw) > 0 {
		if uerr := jsonUnmarshal(raw, &out); uerr != nil {
			return stepOutcome{}, fmt.Errorf("activity result is not JSON: %w", uerr)
		}
	}
	res := stepOutcome{output: out, attempts: 1}
	if m, ok := out.(map[string]any); ok {
		if a, ok := m["attempt"].(float64); ok && a >= 1 {
			res.attempts = int32(a)
		}
		delete(m, "attempt")
	}
	return res, nil
}

// failedAttempts finds how many attempts a failed call made: the attempt
// in the error details when the activity set them, else the retry
// policy's maximum when retries ran out, else at least one.
func failedAttempts(err error, rp *temporal.RetryPolicy) int32 {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) && ae.HasDetails() {
		var d activities.CallErrorDetails
		if ae.Details(&d) == nil && d.Attempt > 0 {
			return d.Attempt
		}
	}
	var act *temporal.ActivityError
	if errors.As(err, &act) && act.RetryState() == enumspb.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED && rp != nil && rp.MaximumAttempts > 0 {
		return rp.MaximumAttempts
	}
	return 1
}

// evalStringMap evaluates the templates of a string map in key order.
func evalStringMap(m map[string]string, env definition.Env, field string) (map[string]string, error) {
	if len(m) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(m))
	for _, k := range sortedKeys(m) {
		v, err := evalString(m[k], env)
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", field, k, err)
		}
		out[k] = v
	}
	return out, nil
}

// evalJSON evaluates a template value and encodes it as JSON.
func evalJSON(v any, env definition.Env) (json.RawMessage, error) {
	val, err := evalTemplate(v, env)
	if err != nil {
		return nil, err
	}
	b, err := jsonMarshal(val)
	if err != nil {
		return nil, fmt.Errorf("not representable as JSON: %w", err)
	}
	return b, nil
}

// Estimated history events per command, used with the real history length
// to decide on continue-as-new (the test environment has no history).
const (
	activityEvents      = 6 // scheduled, started, completed + a workflow task
	timerEvents         = 5 // started, fired + a workflow task
	localActivityEvents = 1 // marker
	upsertEvents        = 1 // search attributes or memo upserted
	versionEvents       = 2 // GetVersion's marker and its TemporalChangeVersion upsert
)
