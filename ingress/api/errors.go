// Package api is the framework-neutral (net/http) toolkit of the Gateflow
// REST API: the one error shape and the one mapping from errors to HTTP
// statuses, strict JSON decoding with located problems, the request
// context (request id, caller), and the Group/Route types through which
// other packages (analytics, models, prompt APIs, MCP) add endpoints to the
// ingress without importing Echo.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/definition/yamlread"
	"github.com/gateflow/gateflow/workflows/orchestrator"
)

// Error is every failure the API answers, written as
//
//	{"error": {"code": "...", "message": "...", "details": [{"path": "...", "message": "..."}]}}
type Error struct {
	Status  int      `json:"-"`
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Details []Detail `json:"details"`
	// Header holds extra response headers (Retry-After, WWW-Authenticate).
	Header http.Header `json:"-"`
}

// Detail locates one problem, e.g. {"path": "input.amount", "message": "must be >= 0"}.
type Detail struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// Body is the JSON envelope of an Error.
type Body struct {
	Error *Error `json:"error"`
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// Errorf returns an Error with a formatted message.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// StatusClientClosed is the (nginx) status recorded when the client went
// away before the answer; it is never actually sent.
const StatusClientClosed = 499

// FromError maps any error to the API error. This is the ONE place where
// error kinds become HTTP statuses; handlers return errors, and the ingress
// (and route groups through WriteError) answer with FromError.
func FromError(err error) *Error {
	if err == nil {
		return nil
	}
	var (
		ae  *Error
		ve  *definition.ValidationError
		oe  *orchestrator.Error
		mbe *http.MaxBytesError
		ye  *yamlread.Error
	)
	switch {
	case errors.As(err, &ae):
		if ae.Details == nil {
			ae.Details = []Detail{}
		}
		return ae
	case errors.As(err, &ve):
		e := &Error{Status: http.StatusUnprocessableEntity, Code: "validation_failed", Message: ve.Error(), Details: []Detail{}}
		if ve.Subject != "" {
			e.Message = ve.Subject + " is invalid"
		}
		for _, p := range ve.Problems {
			e.Details = append(e.Details, Detail{Path: p.Path, Message: p.Message})
		}
		return e
	case errors.As(err, &mbe):
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: "payload_too_large",
			Message: fmt.Sprintf("request body is larger than %d bytes", mbe.Limit), Details: []Detail{}}
	case errors.As(err, &ye):
		// A document the bounded reader refused: too large once its
		// aliases are expanded (413), or malformed (400).
		if ye.TooLarge() {
			return &Error{Status: http.StatusRequestEntityTooLarge, Code: "payload_too_large", Message: ye.Msg,
				Details: []Detail{{Path: "", Message: ye.Msg}}}
		}
		return &Error{Status: http.StatusBadRequest, Code: "invalid_yaml", Message: ye.Msg,
			Details: []Detail{{Path: "", Message: ye.Msg}}}
	case errors.As(err, &oe):
		e := kindError(oe.Kind, oe.Message)
		if oe.Code != "" {
			e.Code = oe.Code
		}
		for _, p := range oe.Details {
			e.Details = append(e.Details, Detail{Path: p.Path, Message: p.Message})
		}
		return e
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Status: http.StatusGatewayTimeout, Code: "timeout", Message: "the request took too long; it may still complete (check its status)", Details: []Detail{}}
	case errors.Is(err, context.Canceled):
		return &Error{Status: StatusClientClosed, Code: "client_closed_request", Message: "the client went away", Details: []Detail{}}
	}
	for _, kind := range []error{orchestrator.ErrNotFound, orchestrator.ErrConflict, orchestrator.ErrForbidden, orchestrator.ErrInvalid, orchestrator.ErrUnavailable} {
		if errors.Is(err, kind) {
			return kindError(kind, err.Error())
		}
	}
	return &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error", Details: []Detail{}}
}

func kindError(kind error, msg string) *Error {
	e := &Error{Message: msg, Details: []Detail{}}
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

// WriteError answers err in the API error shape; route groups call it. The
// original error is kept in the request info for the access log.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	e := FromError(err)
	if info := Info(r.Context()); info != nil {
		info.Err = err
	}
	for k, v := range e.Header {
		w.Header()[k] = v
	}
	WriteJSON(w, e.Status, Body{Error: e})
}

// WriteJSON answers v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"could not encode the response","details":[]}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
