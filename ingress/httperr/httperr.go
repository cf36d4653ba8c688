// Package httperr is the one mapping from errors to HTTP statuses and
// codes of the Gateflow REST API, and the writer of the one error shape
// (api.Body). Handlers and route groups return or pass errors here; no other
// code chooses a status for a domain error. Domain packages (workflows,
// analytics, the model gateway) stay free of HTTP: their sentinel errors and
// typed errors are mapped here.
package httperr

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gateflow/gateflow/activities/callback"
	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/proxy"
	"github.com/gateflow/gateflow/workflows/catalog"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/definition/yamlread"
	"github.com/gateflow/gateflow/workflows/events"
	"github.com/gateflow/gateflow/workflows/orchestrator"
	"github.com/gateflow/gateflow/workflows/schedules"
	"github.com/gateflow/gateflow/workflows/triggers"
)

// FromError maps any error to the API error. This is the ONE place where
// error kinds become HTTP statuses; handlers return errors, and the ingress
// (and route groups through Write) answer with FromError.
func FromError(err error) *api.Error {
	if err == nil {
		return nil
	}
	var (
		ae  *api.Error
		ve  *definition.ValidationError
		oe  *orchestrator.Error
		ce  *catalog.Error
		mbe *http.MaxBytesError
		rle *proxy.RateLimitError
		ye  *yamlread.Error
	)
	switch {
	case errors.As(err, &ae):
		if ae.Details == nil {
			ae.Details = []api.Detail{}
		}
		return ae
	case errors.As(err, &ve):
		e := &api.Error{Status: http.StatusUnprocessableEntity, Code: "validation_failed", Message: ve.Error(), Details: []api.Detail{}}
		if ve.Subject != "" {
			e.Message = ve.Subject + " is invalid"
		}
		for _, p := range ve.Problems {
			e.Details = append(e.Details, api.Detail{Path: p.Path, Message: p.Message})
		}
		return e
	case errors.As(err, &mbe):
		return &api.Error{Status: http.StatusRequestEntityTooLarge, Code: "payload_too_large",
			Message: fmt.Sprintf("request body is larger than %d bytes", mbe.Limit), Details: []api.Detail{}}
	case errors.As(err, &ye):
		// A document the bounded reader refused: too large once its
		// aliases are expanded (413), or malformed (400).
		if ye.TooLarge() {
			return &api.Error{Status: http.StatusRequestEntityTooLarge, Code: "payload_too_large", Message: ye.Msg,
				Details: []api.Detail{{Path: "", Message: ye.Msg}}}
		}
		return &api.Error{Status: http.StatusBadRequest, Code: "invalid_yaml", Message: ye.Msg,
			Details: []api.Detail{{Path: "", Message: ye.Msg}}}
	case errors.As(err, &ce):
		return catalogError(ce)
	case errors.As(err, &oe):
		e := kindError(oe.Kind, oe.Message)
		if oe.Code != "" {
			e.Code = oe.Code
		}
		for _, p := range oe.Details {
			e.Details = append(e.Details, api.Detail{Path: p.Path, Message: p.Message})
		}
		return e
	case errors.As(err, &rle):
		retry := max(1, int((rle.RetryAfter+time.Second-1)/time.Second))
		return &api.Error{Status: http.StatusTooManyRequests, Code: "rate_limited",
			Message: fmt.Sprintf("%s; retry in %d s", rle.Error(), retry), Details: []api.Detail{},
			Header: http.Header{"Retry-After": {strconv.Itoa(retry)}}}
	case errors.Is(err, proxy.ErrNotFound):
		return &api.Error{Status: http.StatusNotFound, Code: "api_not_found", Message: err.Error(), Details: []api.Detail{}}
	case errors.Is(err, proxy.ErrForbidden):
		return &api.Error{Status: http.StatusForbidden, Code: "forbidden", Message: err.Error(), Details: []api.Detail{}}
	case errors.Is(err, proxy.ErrNoHealthyUpstream):
		return &api.Error{Status: http.StatusServiceUnavailable, Code: "no_healthy_upstream", Message: err.Error(), Details: []api.Detail{}}
	case errors.Is(err, proxy.ErrUpstreamTimeout):
		return &api.Error{Status: http.StatusGatewayTimeout, Code: "upstream_timeout", Message: err.Error(), Details: []api.Detail{}}
	case errors.Is(err, proxy.ErrUpstreamUnreachable):
		return &api.Error{Status: http.StatusBadGateway, Code: "upstream_unreachable", Message: err.Error(), Details: []api.Detail{}}
	case errors.Is(err, proxy.ErrOnlyIfCached):
		return &api.Error{Status: http.StatusGatewayTimeout, Code: "not_in_cache", Message: err.Error(), Details: []api.Detail{}}
	case errors.Is(err, context.DeadlineExceeded):
		return &api.Error{Status: http.StatusGatewayTimeout, Code: "timeout", Message: "the request took too long; it may still complete (check its status)", Details: []api.Detail{}}
	case errors.Is(err, context.Canceled):
		return &api.Error{Status: api.StatusClientClosed, Code: "client_closed_request", Message: "the client went away", Details: []api.Detail{}}
	}
	if e := eventError(err); e != nil {
		return e
	}
	for _, kind := range []error{orchestrator.ErrNotFound, orchestrator.ErrConflict, orchestrator.ErrForbidden, orchestrator.ErrInvalid, orchestrator.ErrUnavailable} {
		if errors.Is(err, kind) {
			return kindError(kind, err.Error())
		}
	}
	return &api.Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error", Details: []api.Detail{}}
}

// catalogStatus maps the catalogue's error kinds.
var catalogStatus = map[error]struct {
	status int
	code   string
}{
	catalog.ErrNotFound:             {http.StatusNotFound, "not_found"},
	catalog.ErrGone:                 {http.StatusGone, "gone"},
	catalog.ErrConflict:             {http.StatusConflict, "conflict"},
	catalog.ErrInvalid:              {http.StatusUnprocessableEntity, "validation_failed"},
	catalog.ErrForbidden:            {http.StatusForbidden, "forbidden"},
	catalog.ErrSubscriptionRequired: {http.StatusForbidden, "subscription_required"},
	catalog.ErrQuotaExceeded:        {http.StatusTooManyRequests, "quota_exceeded"},
	catalog.ErrRateLimited:          {http.StatusTooManyRequests, "rate_limited"},
	catalog.ErrUnavailable:          {http.StatusServiceUnavailable, "unavailable"},
}

// catalogError answers a catalogue error with its headers (lifecycle
// headers of a deprecated or retired version, Retry-After).
func catalogError(ce *catalog.Error) *api.Error {
	m, ok := catalogStatus[ce.Kind]
	if !ok {
		return &api.Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error", Details: []api.Detail{}}
	}
	e := &api.Error{Status: m.status, Code: ce.Code, Message: ce.Message, Details: []api.Detail{}, Header: ce.Header.Clone()}
	if e.Code == "" {
		e.Code = m.code
	}
	for _, p := range ce.Details {
		e.Details = append(e.Details, api.Detail{Path: p.Path, Message: p.Message})
	}
	return e
}

func kindError(kind error, msg string) *api.Error {
	e := &api.Error{Message: msg, Details: []api.Detail{}}
	switch kind {
	case orchestrator.ErrNotFound:
		e.Status, e.Code = http.StatusNotFound, "not_found"
	case orchestrator.ErrConflict:
		e.Status, e.Code = http.StatusConflict, "conflict"
	case orchestrator.ErrForbidden:
		e.Status, e.Code = http.StatusForbidden, "forbidden"
	case orchestrator.ErrInvalid:
		e.Status, e.Code = http.StatusBadRequest, "invalid_request"
	case orchestrator.ErrUnavailable:
		e.Status, e.Code = http.StatusServiceUnavailable, "unavailable"
	default:
		e.Status, e.Code, e.Message = http.StatusInternalServerError, "internal", "internal error"
	}
	return e
}

// ForClient is e as a client may see it (issue 10 item 9): the message of
// a server-side failure (5xx) loses any address left in it (Temporal's,
// a provider's, a service's: calls.RedactAddresses) and names the request
// id, so that an operator finds the whole error in the access log. e is
// not modified.
func ForClient(e *api.Error, requestID string) *api.Error {
	if e == nil || e.Status < 500 {
		return e
	}
	c := *e
	c.Message = calls.RedactAddresses(c.Message)
	if requestID != "" && !strings.Contains(c.Message, requestID) {
		c.Message += " (request id " + requestID + ")"
	}
	if len(e.Details) > 0 {
		c.Details = make([]api.Detail, len(e.Details))
		for i, d := range e.Details {
			c.Details[i] = api.Detail{Path: d.Path, Message: calls.RedactAddresses(d.Message)}
		}
	}
	return &c
}

// Write answers err in the API error shape; route groups call it. The
// original error is kept in the request info for the access log.
func Write(w http.ResponseWriter, r *http.Request, err error) {
	e := ForClient(FromError(err), api.RequestID(r.Context()))
	if info := api.Info(r.Context()); info != nil {
		info.Err = err
	}
	for k, v := range e.Header {
		w.Header()[k] = v
	}
	api.WriteJSON(w, e.Status, api.Body{Error: e})
}

// eventErrors map the sentinels of schedules, webhooks, events and
// callbacks. Public messages (webhooks, callbacks) say what is wrong
// without configuration details.
var eventErrors = []struct {
	err    error
	status int
	code   string
	// msg replaces the error's own message when set.
	msg string
}{
	{schedules.ErrNotFound, http.StatusNotFound, "schedule_not_found", ""},
	{schedules.ErrExists, http.StatusConflict, "schedule_exists", ""},
	{schedules.ErrManaged, http.StatusConflict, "managed_by_config", ""},
	{schedules.ErrInvalid, http.StatusBadRequest, "invalid_request", ""},
	{triggers.ErrUnknownHook, http.StatusNotFound, "hook_not_found", ""},
	{triggers.ErrUnauthorized, http.StatusUnauthorized, "invalid_signature", ""},
	{triggers.ErrTooLarge, http.StatusRequestEntityTooLarge, "payload_too_large", ""},
	{triggers.ErrHookMisconfigured, http.StatusInternalServerError, "internal", "internal error"},
	{triggers.ErrUnavailable, http.StatusServiceUnavailable, "unavailable", "the delivery could not be accepted now; retry it"},
	{triggers.ErrPoison, http.StatusUnprocessableEntity, "delivery_not_handled", ""},
	{events.ErrNoWaiter, http.StatusNotFound, "no_waiting_step", ""},
	{events.ErrInvalid, http.StatusBadRequest, "invalid_event", ""},
	{callback.ErrInvalidToken, http.StatusUnauthorized, "invalid_callback", "the callback URL is not valid"},
	{callback.ErrExpired, http.StatusGone, "callback_expired", "the callback URL has expired"},
	{callback.ErrNotFound, http.StatusNotFound, "callback_not_found", "nothing waits for this callback: it was completed already, or its step timed out or was retried"},
	{callback.ErrNotConfigured, http.StatusNotFound, "callback_not_found", "callbacks are not configured"},
}

func eventError(err error) *api.Error {
	for _, m := range eventErrors {
		if errors.Is(err, m.err) {
			msg := m.msg
			if msg == "" {
				msg = err.Error()
			}
			return &api.Error{Status: m.status, Code: m.code, Message: msg, Details: []api.Detail{}}
		}
	}
	return nil
}
