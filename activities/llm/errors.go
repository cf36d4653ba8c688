package llm

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gateflow/gateflow/activities/calls"
)

// Error classes, the gateway's names for those declared in activities/calls:
// they become the Type of the Temporal application errors the model
// activity returns and the error_class of call records.
const (
	ClassRateLimit  = calls.ClassRateLimit      // 429 from the provider
	ClassOverloaded = calls.ClassOverloaded     // 503/529: provider overloaded
	ClassServer     = calls.ClassStatus         // other 5xx, or a malformed provider answer
	ClassTimeout    = calls.ClassTimeout        // the attempt's deadline passed
	ClassConnection = calls.ClassConnection     // could not connect, reset, stream cut
	ClassAuth       = calls.ClassAuth           // credential missing or refused
	ClassBadRequest = calls.ClassBadRequest     // the request itself is invalid
	ClassContext    = calls.ClassContextTooLong // prompt + completion above the context window
	// ClassModelUnavailable: the target's provider does not serve its model
	// (404, code model_not_found: not pulled into Ollama, misspelt, not
	// available to this account) or has no such endpoint. It concerns that
	// target only, so the call falls back to the next one.
	ClassModelUnavailable = calls.ClassModelUnavailable
	ClassTooLarge         = calls.ClassTooLarge       // provider answer above the size cap
	ClassBudget           = calls.ClassBudgetExceeded // tenant token budget spent
	ClassInternal         = calls.ClassInternal       // gateway-side failure (e.g. budget store unreadable)
)

// Sentinel errors, matched with errors.Is against any gateway error of that
// class.
var (
	ErrRateLimited       = errors.New("rate limited")
	ErrOverloaded        = errors.New("provider overloaded")
	ErrServer            = errors.New("provider server error")
	ErrTimeout           = errors.New("model call timed out")
	ErrConnection        = errors.New("connection to provider failed")
	ErrAuth              = errors.New("provider credential missing or refused")
	ErrBadRequest        = errors.New("bad model request")
	ErrContextTooLong    = errors.New("context too long")
	ErrModelUnavailable  = errors.New("model not available at the provider")
	ErrTooLarge          = errors.New("provider answer too large")
	ErrBudgetExceeded    = errors.New("token budget exceeded")
	ErrInternal          = errors.New("model gateway internal error")
	ErrUnknownModel      = errors.New("unknown model")
	ErrBudgetUnavailable = errors.New("token budget unavailable")
	// ErrCoolingDown marks a target skipped because its provider asked to
	// wait (a Retry-After still running); its class is rate_limit.
	ErrCoolingDown = errors.New("deployment cooling down")
)

var classSentinels = map[string]error{
	ClassRateLimit:        ErrRateLimited,
	ClassOverloaded:       ErrOverloaded,
	ClassServer:           ErrServer,
	ClassTimeout:          ErrTimeout,
	ClassConnection:       ErrConnection,
	ClassAuth:             ErrAuth,
	ClassBadRequest:       ErrBadRequest,
	ClassContext:          ErrContextTooLong,
	ClassModelUnavailable: ErrModelUnavailable,
	ClassTooLarge:         ErrTooLarge,
	ClassBudget:           ErrBudgetExceeded,
	ClassInternal:         ErrInternal,
}

// Error is a failed model call attempt, classified. Message is the
// provider's own message with any credential redacted; it never carries a
// secret.
type Error struct {
	Class string
	// Target is the "provider/model" that failed ("" before routing).
	Target string
	// Status is the provider's HTTP status, 0 when there was no response.
	Status int
	// Code is the provider's error type or code ("rate_limit_error",
	// "context_length_exceeded", "RESOURCE_EXHAUSTED").
	Code    string
	Message string
	// RetryAfter is the provider's requested delay (Retry-After,
	// Retry-After-Ms, or Gemini's RetryInfo), zero when none was given.
	RetryAfter time.Duration
	// Err is the underlying cause (network error, sentinel).
	Err error
	// noRetry is set when the provider said not to retry (x-should-retry:
	// false).
	noRetry bool
}

// Error formats the error without any credential.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Target != "" {
		b.WriteString(e.Target)
		b.WriteString(": ")
	}
	b.WriteString(e.Class)
	if e.Status != 0 {
		b.WriteString(" (HTTP ")
		b.WriteString(strconv.Itoa(e.Status))
		b.WriteString(")")
	}
	if e.Code != "" {
		b.WriteString(" [")
		b.WriteString(e.Code)
		b.WriteString("]")
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	} else if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is matches the class's sentinel error.
func (e *Error) Is(target error) bool {
	s, ok := classSentinels[e.Class]
	return ok && s == target
}

// Retryable reports whether retrying the same target may succeed.
func (e *Error) Retryable() bool {
	if e.noRetry {
		return false
	}
	return calls.Retryable(e.Class)
}

// fallbackClass reports whether an error of class moves the call on to the
// next target of an alias: the spec's 429/5xx/timeouts/overloaded, plus
// context_too_long (the next model may have a larger window), auth (a
// credential problem is that provider's alone) and model_unavailable (so
// is a model the provider does not serve). A bad_request is the request's
// own fault and would fail on every target: it stops the call.
func fallbackClass(class string) bool {
	switch class {
	case ClassRateLimit, ClassOverloaded, ClassServer, ClassTimeout, ClassConnection, ClassContext, ClassAuth, ClassModelUnavailable:
		return true
	}
	return false
}

// ClassOf returns the error class of any error the gateway returns: the
// class of an *Error or *BudgetError, ClassTimeout for a passed deadline,
// "" for nil or a cancellation, ClassInternal otherwise.
func ClassOf(err error) string {
	if err == nil {
		return ""
	}
	var be *BudgetError
	if errors.As(err, &be) {
		return ClassBudget
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	switch {
	case errors.Is(err, context.Canceled):
		return ""
	case errors.Is(err, context.DeadlineExceeded):
		return ClassTimeout
	case errors.Is(err, ErrUnknownModel):
		return ClassBadRequest
	}
	return ClassInternal
}

// RetryAfterOf returns the delay the provider asked for, zero when none.
// (A *BudgetError carries its ResetAt instead.)
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// BudgetError refuses a call because the tenant's token budget for a period
// is spent. The ingress maps it to 429 with Retry-After until ResetAt.
type BudgetError struct {
	Tenant string
	// Period is "daily" or "monthly" (UTC days and months).
	Period string
	Limit  int64
	// Used counts the tokens spent plus those reserved by calls in flight.
	Used    int64
	ResetAt time.Time
}

// Error says which budget is spent and when it resets.
func (e *BudgetError) Error() string {
	return fmt.Sprintf("tenant %q: %s token budget of %d spent (%d used or reserved); it resets at %s",
		e.Tenant, e.Period, e.Limit, e.Used, e.ResetAt.UTC().Format(time.RFC3339))
}

// Is matches ErrBudgetExceeded.
func (e *BudgetError) Is(target error) bool { return target == ErrBudgetExceeded }

// redact removes every occurrence of secret from s. Short secrets are left
// alone: they would match ordinary text and are not real credentials.
func redact(s, secret string) string {
	if len(secret) < 6 || !strings.Contains(s, secret) {
		return s
	}
	return strings.ReplaceAll(s, secret, "[REDACTED]")
}
