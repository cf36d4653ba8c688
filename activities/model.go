package activities

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/activities/llm"
)

// ModelGateway is what the model activity needs of *llm.Gateway.
type ModelGateway interface {
	Chat(ctx context.Context, req *llm.ChatRequest, opts llm.CallOptions) (*llm.ChatResponse, error)
}

// ModelOptions tunes the model activity; zero values take the defaults.
type ModelOptions struct {
	// HeartbeatInterval is how often a call in flight heartbeats; zero means
	// half the activity's heartbeat timeout, at most 5 s (10 s when the
	// workflow set none: heartbeats are also how a cancellation reaches a
	// long model call).
	HeartbeatInterval time.Duration
}

// ModelActivity runs the model steps of orchestrations through the same
// gateway as the ingress: fallbacks across alias targets happen inside one
// attempt, retries are Temporal's. Register it with Register (or its Call
// method under ModelCallActivity).
type ModelActivity struct {
	gw      ModelGateway
	hbEvery time.Duration
}

// NewModelActivity returns the model activity calling gw (an
// *llm.Gateway; the gateway emits the call records).
func NewModelActivity(gw ModelGateway, opts ModelOptions) *ModelActivity {
	return &ModelActivity{gw: gw, hbEvery: opts.HeartbeatInterval}
}

// Register registers Call under ModelCallActivity.
func (a *ModelActivity) Register(r worker.ActivityRegistry) {
	r.RegisterActivityWithOptions(a.Call, activity.RegisterOptions{Name: ModelCallActivity})
}

// Call makes one model call. The provider request id is derived from the
// workflow id, step id and attempt, so a replayed attempt sends the same id.
// Errors are Temporal application errors typed with the error classes;
// a provider's Retry-After becomes the next retry delay.
func (a *ModelActivity) Call(ctx context.Context, in ModelCallInput) (ModelCallOutput, error) {
	opts := llm.CallOptions{
		Tenant:     in.Meta.Tenant,
		KeyID:      in.Meta.KeyID,
		Definition: in.Meta.Definition,
		Version:    in.Meta.Version,
		StepID:     in.StepID,
		Labels:     in.Meta.Labels,
		Timeout:    in.Timeout,
		NoRetry:    true,
		Attempt:    1,
	}
	var hbTimeout time.Duration
	if activity.IsActivity(ctx) {
		info := activity.GetInfo(ctx)
		opts.WorkflowID = info.WorkflowExecution.ID
		opts.RunID = info.WorkflowExecution.RunID
		opts.Attempt = info.Attempt
		hbTimeout = info.HeartbeatTimeout
	}
	opts.RequestID = modelRequestID(opts.WorkflowID, in.StepID, opts.Attempt)

	req := in.Request
	req.Stream = false
	req.StreamOptions = nil

	stop := heartbeatWhileCalling(ctx, a.hbEvery, hbTimeout)
	resp, err := a.gw.Chat(ctx, &req, opts)
	stop()
	if err != nil {
		return ModelCallOutput{}, modelError(ctx, err, opts.Attempt)
	}
	out := ModelCallOutput{
		Model:   resp.Model,
		Usage:   resp.Usage,
		CostUSD: resp.Usage.CostUSD,
		Attempt: opts.Attempt,
	}
	if len(resp.Choices) > 0 {
		ch := resp.Choices[0]
		out.Content = ch.Message.Text()
		out.ToolCalls = ch.Message.ToolCalls
		out.FinishReason = ch.FinishReason
	}
	if rf := req.ResponseFormat; rf != nil && (rf.Type == "json_object" || rf.Type == "json_schema") && len(out.ToolCalls) == 0 {
		v, err := decodeJSONAnswer(out.Content)
		if err != nil {
			return ModelCallOutput{}, temporal.NewApplicationErrorWithOptions(
				"model "+resp.Model+" answered with invalid JSON: "+err.Error(), calls.ClassBadOutput,
				temporal.ApplicationErrorOptions{Details: []any{CallErrorDetails{Attempt: opts.Attempt}}})
		}
		out.JSON = v
	}
	return out, nil
}

// modelError turns a gateway error into what Temporal should see.
func modelError(ctx context.Context, err error, attempt int32) error {
	class := llm.ClassOf(err)
	if class == "" {
		// Cancelled: report the context error so that Temporal records a
		// cancellation, not a failure.
		if ctx.Err() != nil {
			return ctx.Err()
		}
		class = calls.ClassInternal
	}
	status := 0
	var le *llm.Error
	if errors.As(err, &le) {
		status = le.Status
	}
	return temporal.NewApplicationErrorWithOptions(err.Error(), class, temporal.ApplicationErrorOptions{
		// Classes not retryable fail the step at once: retrying the same
		// request cannot succeed (model_unavailable: every target of the
		// alias lacks the model, and a retry will not add it).
		NonRetryable:   !calls.Retryable(class),
		NextRetryDelay: llm.RetryAfterOf(err),
		Details:        []any{CallErrorDetails{Attempt: attempt, StatusCode: status}},
	})
}

// modelRequestID is a stable id for one attempt of one step of one
// workflow: a name-based UUID, so it carries no workflow data to the
// provider.
func modelRequestID(workflowID, stepID string, attempt int32) string {
	name := "gateflow/model/" + workflowID + "/" + stepID + "/" + strconv.Itoa(int(attempt))
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte(name)).String()
}

// decodeJSONAnswer decodes a model's JSON answer, tolerating a Markdown
// code fence around it (a habit of models without a JSON mode).
func decodeJSONAnswer(s string) (any, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "```") {
		s = strings.TrimPrefix(s, "```")
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:] // drop the info string ("json")
		}
		s = strings.TrimSuffix(strings.TrimSpace(s), "```")
	}
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, err
	}
	return v, nil
}
