package httperr

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/orchestrator"
)

func TestFromError(t *testing.T) {
	cases := []struct {
		err    error
		status int
		code   string
	}{
		{api.Errorf(418, "teapot", "short and stout"), 418, "teapot"},
		{&definition.ValidationError{Subject: "input", Problems: []definition.Problem{{Path: "amount", Message: "must be >= 0"}}}, 422, "validation_failed"},
		{fmt.Errorf("wrapped: %w", &orchestrator.Error{Kind: orchestrator.ErrConflict, Code: "duplicate_vote", Message: "x"}), 409, "duplicate_vote"},
		{fmt.Errorf("x: %w", orchestrator.ErrNotFound), 404, "not_found"},
		{fmt.Errorf("x: %w", orchestrator.ErrForbidden), 403, "forbidden"},
		{fmt.Errorf("x: %w", orchestrator.ErrInvalid), 400, "invalid_request"},
		{fmt.Errorf("x: %w", orchestrator.ErrUnavailable), 503, "unavailable"},
		{&http.MaxBytesError{Limit: 10}, 413, "payload_too_large"},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), 504, "timeout"},
		{context.Canceled, api.StatusClientClosed, "client_closed_request"},
		{errors.New("db password is hunter2"), 500, "internal"},
	}
	for _, c := range cases {
		e := FromError(c.err)
		if e.Status != c.status || e.Code != c.code || e.Details == nil {
			t.Errorf("%v: %+v", c.err, e)
		}
		if strings.Contains(e.Message, "hunter2") {
			t.Error("internal message leaked")
		}
	}
	e := FromError(&definition.ValidationError{Subject: "input", Problems: []definition.Problem{{Path: "amount", Message: "must be >= 0"}}})
	if len(e.Details) != 1 || e.Details[0].Path != "amount" {
		t.Errorf("details %+v", e.Details)
	}
	w := httptest.NewRecorder()
	Write(w, httptest.NewRequest("GET", "/", nil), api.Errorf(409, "conflict", "x"))
	if w.Code != 409 || !strings.Contains(w.Body.String(), `"details":[]`) {
		t.Errorf("WriteError: %d %s", w.Code, w.Body)
	}
}
