// Package api is the framework-neutral (net/http) toolkit of the Gateflow
// REST API: the one error shape, strict JSON decoding with located
// problems, the request context (request id, caller), and the Group/Route
// types through which the ingress's route groups (analytics, models,
// prompt APIs, MCP) add endpoints without importing Echo.
//
// It is a leaf: it knows nothing of workflows or analytics. The one
// mapping from errors to HTTP statuses lives in ingress/httperr.
package api

import (
	"encoding/json"
	"fmt"
	"net/http"
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
