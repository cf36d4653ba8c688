package chatapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gateflow/gateflow/activities/llm"
	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/httperr"
)

// maxModelsInHint bounds the model names listed in an unknown-model error.
const maxModelsInHint = 20

// Error maps an error of the model gateway to the API error answered. It is
// the one place where model error classes become HTTP statuses; the chat
// endpoint, the prompt APIs and the MCP prompt tools all answer through it.
// models lists the known model names for the unknown-model hint (nil: no
// hint). Errors that are not the gateway's (cancellations, validation) are
// returned unchanged for api.FromError.
//
//	budget_exceeded   429 budget_exceeded (Retry-After until the reset, x-should-retry: false)
//	unknown model     404 model_not_found (with the known names)
//	rate_limit        429 provider_rate_limited (Retry-After when the provider gave one)
//	overloaded        503 provider_overloaded
//	timeout           504 provider_timeout
//	status            502 provider_error
//	connection        502 provider_unreachable
//	too_large         502 provider_answer_too_large
//	auth              502 provider_auth_failed (the gateway's credential, not the caller's)
//	model_unavailable 502 provider_model_unavailable (no target serves the configured model)
//	bad_request       400 invalid_request
//	context_too_long  400 context_length_exceeded
//	internal          503 budget_unavailable, else 500 internal
func Error(err error, models func() []string) error {
	if err == nil {
		return nil
	}
	var be *llm.BudgetError
	if errors.As(err, &be) {
		e := api.Errorf(http.StatusTooManyRequests, "budget_exceeded", "%s", be.Error())
		secs := int(time.Until(be.ResetAt).Seconds()) + 1
		if secs < 1 {
			secs = 1
		}
		// OpenAI SDKs retry 429s; retrying a spent budget before it resets
		// only burns requests.
		e.Header = http.Header{"Retry-After": {strconv.Itoa(secs)}, "X-Should-Retry": {"false"}}
		return e
	}
	if errors.Is(err, llm.ErrUnknownModel) {
		msg := err.Error()
		var le *llm.Error
		if errors.As(err, &le) && le.Message != "" {
			msg = le.Message
		}
		if models != nil {
			msg += "; " + modelHint(models())
		}
		return &api.Error{Status: http.StatusNotFound, Code: "model_not_found", Message: msg,
			Details: []api.Detail{{Path: "model", Message: "unknown model (GET /v1/models lists them)"}}}
	}
	class := llm.ClassOf(err)
	status, code := http.StatusInternalServerError, "internal"
	switch class {
	case "":
		return err // a cancellation: api.FromError answers 499
	case llm.ClassBudget:
		status, code = http.StatusTooManyRequests, "budget_exceeded"
	case llm.ClassRateLimit:
		status, code = http.StatusTooManyRequests, "provider_rate_limited"
	case llm.ClassOverloaded:
		status, code = http.StatusServiceUnavailable, "provider_overloaded"
	case llm.ClassTimeout:
		status, code = http.StatusGatewayTimeout, "provider_timeout"
	case llm.ClassServer:
		status, code = http.StatusBadGateway, "provider_error"
	case llm.ClassConnection:
		status, code = http.StatusBadGateway, "provider_unreachable"
	case llm.ClassTooLarge:
		status, code = http.StatusBadGateway, "provider_answer_too_large"
	case llm.ClassAuth:
		status, code = http.StatusBadGateway, "provider_auth_failed"
	case llm.ClassModelUnavailable:
		status, code = http.StatusBadGateway, "provider_model_unavailable"
	case llm.ClassBadRequest:
		status, code = http.StatusBadRequest, "invalid_request"
	case llm.ClassContext:
		status, code = http.StatusBadRequest, "context_length_exceeded"
	case llm.ClassInternal:
		if !errors.Is(err, llm.ErrBudgetUnavailable) {
			var le *llm.Error
			if !errors.As(err, &le) {
				return err // not the gateway's: api.FromError decides
			}
			return &api.Error{Status: http.StatusInternalServerError, Code: "internal", Message: "model gateway internal error", Details: []api.Detail{}}
		}
		status, code = http.StatusServiceUnavailable, "budget_unavailable"
	}
	e := &api.Error{Status: status, Code: code, Message: err.Error(), Details: []api.Detail{}}
	if ra := llm.RetryAfterOf(err); ra > 0 && (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) {
		e.Header = http.Header{"Retry-After": {strconv.Itoa(int((ra + time.Second - 1) / time.Second))}}
	}
	return e
}

// modelHint lists known model names, at most maxModelsInHint.
func modelHint(names []string) string {
	if len(names) == 0 {
		return "no model is configured"
	}
	if len(names) > maxModelsInHint {
		return fmt.Sprintf("known models include: %s (and %d more; GET /v1/models lists them)",
			strings.Join(names[:maxModelsInHint], ", "), len(names)-maxModelsInHint)
	}
	return "known models: " + strings.Join(names, ", ")
}

// OpenAIError is the error object of OpenAI's API, which OpenAI's SDKs
// read (the Go SDK's *openai.Error has Message, Type, Param and Code).
type OpenAIError struct {
	Message string `json:"message"`
	// Type is OpenAI's error type: invalid_request_error,
	// authentication_error, permission_error, rate_limit_error,
	// insufficient_quota (a spent token budget) or server_error.
	Type string `json:"type"`
	// Param names the request parameter at fault (null when none).
	Param *string `json:"param"`
	// Code is Gateflow's error code (model_not_found,
	// context_length_exceeded, provider_rate_limited, invalid_api_key...).
	Code string `json:"code"`
}

// OpenAIErrorBody is an API error in OpenAI's shape,
// {"error": {"message", "type", "param", "code"}}: the error answers of
// the OpenAI-compatible routes (api.Route.ErrorBody), the ingress's own
// included, and the error events of their streams. The status and code
// are those of the one mapping (Error, httperr.FromError).
func OpenAIErrorBody(e *api.Error) any {
	oe := OpenAIError{Message: e.Message, Type: openAIType(e), Code: e.Code}
	for _, d := range e.Details {
		if d.Path != "" && !strings.HasPrefix(d.Path, "header:") {
			p := d.Path
			oe.Param = &p
			break
		}
	}
	if oe.Param == nil && e.Code == "context_length_exceeded" {
		p := "messages" // as OpenAI answers
		oe.Param = &p
	}
	return struct {
		Error OpenAIError `json:"error"`
	}{oe}
}

// openAIType is OpenAI's error type of a status.
func openAIType(e *api.Error) string {
	switch {
	case e.Code == "budget_exceeded":
		return "insufficient_quota"
	case e.Status == http.StatusUnauthorized:
		return "authentication_error"
	case e.Status == http.StatusForbidden:
		return "permission_error"
	case e.Status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case e.Status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

// writeError answers err in OpenAI's shape through the one mapping.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := httperr.ForClient(httperr.FromError(err), api.RequestID(r.Context()))
	if info := api.Info(r.Context()); info != nil {
		info.Err = err
	}
	for k, v := range e.Header {
		w.Header()[k] = v
	}
	api.WriteJSON(w, e.Status, OpenAIErrorBody(e))
}
