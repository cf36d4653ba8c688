package callback

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/analytics/record"
)

// Issuer implements activities.CallbackIssuer from the configuration.
type Issuer struct {
	src Source
	now func() time.Time
}

// NewIssuer returns an issuer reading its settings from src at each use.
func NewIssuer(src Source) *Issuer { return &Issuer{src: src, now: time.Now} }

// Issue mints the URL of an attempt, valid for t.TTL.
func (i *Issuer) Issue(t activities.CallbackTicket) (string, time.Time, error) {
	s, err := i.src()
	if err != nil {
		return "", time.Time{}, err
	}
	if len(s.Keys) == 0 || s.BaseURL == "" {
		return "", time.Time{}, ErrNotConfigured
	}
	now := i.now()
	exp := now.Add(t.TTL)
	tok, err := Mint(s.Keys[0], Claims{
		Tenant: t.Tenant, WorkflowID: t.WorkflowID, StepID: t.StepID, Target: t.Target, Attempt: t.Attempt,
		TaskToken: t.TaskToken, IssuedAt: now.UnixMilli(), Expires: exp.UnixMilli(), Trigger: t.Trigger,
	})
	if err != nil {
		return "", time.Time{}, err
	}
	return s.URL(tok), exp, nil
}

// Result is what a service posts to a callback URL: an output, or an
// error.
type Result struct {
	// Status is reported as the step output's status (200 when zero).
	Status int `json:"status,omitempty"`
	// Output becomes the step output's body.
	Output any `json:"output,omitempty"`
	// Error, when set, fails the attempt.
	Error *ResultError `json:"error,omitempty"`
}

// ResultError is a failure reported by the service.
type ResultError struct {
	Message string `json:"message"`
	// Retryable lets the step's retry policy run the call again (false:
	// the step fails at once).
	Retryable bool `json:"retryable,omitempty"`
}

// Completer completes (and heartbeats) asynchronous http steps for the
// ingress.
type Completer struct {
	c   client.Client
	src Source
	rec activities.Recorder
	now func() time.Time
}

// NewCompleter returns a completer through the Temporal client c,
// verifying tokens with the keys of src and emitting one call record of
// kind callback per completion to rec (nil: none).
func NewCompleter(c client.Client, src Source, rec activities.Recorder) *Completer {
	if rec == nil {
		rec = activities.NopRecorder{}
	}
	return &Completer{c: c, src: src, rec: rec, now: time.Now}
}

func (c *Completer) verify(token string) (Claims, error) {
	s, err := c.src()
	if err != nil {
		return Claims{}, err
	}
	return Verify(s.Keys, token, c.now())
}

// Complete completes the attempt of token with r. It returns the
// workflow id and step of the attempt.
func (c *Completer) Complete(ctx context.Context, token string, r Result) (Claims, error) {
	claims, err := c.verify(token)
	if err != nil {
		return claims, err
	}
	status := r.Status
	if status == 0 {
		status = http.StatusOK
	}
	var cerr error
	var result any
	if r.Error != nil {
		msg := r.Error.Message
		if msg == "" {
			msg = "the service reported a failure"
		}
		cerr = temporal.NewApplicationErrorWithOptions(record.Truncate(msg, record.MaxErrorMessage), calls.ClassCallback, temporal.ApplicationErrorOptions{
			NonRetryable: !r.Error.Retryable,
			Details:      []any{activities.CallErrorDetails{Attempt: claims.Attempt}},
		})
	} else {
		result = activities.HTTPCallOutput{Status: status, Body: r.Output, Attempt: claims.Attempt}
	}
	start := time.UnixMilli(claims.IssuedAt)
	err = c.c.CompleteActivity(ctx, claims.TaskToken, result, cerr)
	rec := record.New(calls.KindCallback, start)
	rec.ID = activities.DerivedRecordID(start, claims.WorkflowID, claims.StepID, fmt.Sprint(claims.Attempt))
	rec.Tenant, rec.Target, rec.WorkflowID, rec.StepID, rec.Attempt = claims.Tenant, claims.Target, claims.WorkflowID, claims.StepID, claims.Attempt
	rec.LatencyMS = float64(c.now().Sub(start).Microseconds()) / 1000
	rec.StatusCode = int32(status)
	if claims.Trigger != "" {
		rec.Labels = map[string]string{calls.LabelTrigger: claims.Trigger}
	}
	switch {
	case err != nil:
		err = temporalError(err)
		if errors.Is(err, ErrNotFound) {
			return claims, err // not a completion: no record
		}
		rec.Outcome = record.OutcomeError
		rec.SetError(calls.ClassInternal, err)
	case r.Error != nil:
		rec.Outcome = record.OutcomeError
		rec.ErrorClass, rec.ErrorMsg = calls.ClassCallback, record.Truncate(r.Error.Message, record.MaxErrorMessage)
	default:
		rec.Outcome = record.OutcomeOK
	}
	c.rec.Emit(rec)
	return claims, err
}

// Heartbeat records a heartbeat of the attempt of token; cancelRequested
// tells the service that the orchestration no longer wants the result.
func (c *Completer) Heartbeat(ctx context.Context, token string) (claims Claims, cancelRequested bool, err error) {
	claims, err = c.verify(token)
	if err != nil {
		return claims, false, err
	}
	err = c.c.RecordActivityHeartbeat(ctx, claims.TaskToken)
	var canceled *temporal.CanceledError
	if errors.As(err, &canceled) {
		return claims, true, nil
	}
	if err != nil {
		return claims, false, temporalError(err)
	}
	return claims, false, nil
}

// temporalError maps Temporal's "no such activity" to ErrNotFound.
func temporalError(err error) error {
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return fmt.Errorf("%w: the step was already completed, timed out or retried", ErrNotFound)
	}
	return fmt.Errorf("complete callback: %w", err)
}
