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
	"strings"

	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/definition/yamlread"
	"github.com/gateflow/gateflow/workflows/orchestrator"
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
		mbe *http.MaxBytesError
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
	case errors.As(err, &oe):
		e := kindError(oe.Kind, oe.Message)
		if oe.Code != "" {
			e.Code = oe.Code
		}
		for _, p := range oe.Details {
			e.Details = append(e.Details, api.Detail{Path: p.Path, Message: p.Message})
		}
		return e
	case errors.Is(err, context.DeadlineExceeded):
		return &api.Error{Status: http.StatusGatewayTimeout, Code: "timeout", Message: "the request took too long; it may still complete (check its status)", Details: []api.Detail{}}
	case errors.Is(err, context.Canceled):
		return &api.Error{Status: api.StatusClientClosed, Code: "client_closed_request", Message: "the client went away", Details: []api.Detail{}}
	}
	for _, kind := range []error{orchestrator.ErrNotFound, orchestrator.ErrConflict, orchestrator.ErrForbidden, orchestrator.ErrInvalid, orchestrator.ErrUnavailable} {
		if errors.Is(err, kind) {
			return kindError(kind, err.Error())
		}
	}
	return &api.Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error", Details: []api.Detail{}}
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
