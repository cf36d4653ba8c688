package llm

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gateflow/gateflow/activities/calls"
)

// adapter translates between the unified format and one provider's wire
// format. Adapters are stateless; everything per call is an argument.
type adapter interface {
	// endpoint is the URL of a chat call to t.
	endpoint(t *target, stream bool) string
	// setHeaders sets the format headers (Content-Type, the request id
	// header and the credential are set by the gateway).
	setHeaders(h http.Header, t *target)
	// encodeRequest returns the provider request body.
	encodeRequest(t *target, req *ChatRequest, stream bool) ([]byte, error)
	// decodeResponse turns a 2xx body into a unified response.
	decodeResponse(t *target, body []byte) (*ChatResponse, error)
	// newDecoder reads the provider's SSE stream body.
	newDecoder(t *target, body io.Reader) chunkDecoder
	// decodeError classifies a non-2xx answer.
	decodeError(status int, h http.Header, body []byte) *Error
	// streamAccept is the Accept header of stream requests.
	streamAccept() string
}

// sseAccept is the Accept of the adapters that stream server-sent events.
type sseAccept struct{}

func (sseAccept) streamAccept() string { return "text/event-stream" }

// chunkDecoder yields unified chunks from a provider stream, io.EOF after
// the last. When the provider reports usage the decoder ends with a chunk
// that has no choices and carries it.
type chunkDecoder interface {
	next() (*ChatChunk, error)
}

// classifyStatus is the class of an HTTP status when the body says nothing
// more precise.
func classifyStatus(status int) string {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return ClassAuth
	case status == http.StatusRequestTimeout || status == http.StatusGatewayTimeout:
		return ClassTimeout
	case status == http.StatusTooManyRequests:
		return ClassRateLimit
	case status == http.StatusServiceUnavailable || status == 529:
		return ClassOverloaded
	case status == http.StatusConflict || status >= 500:
		// 409 is a lock timeout at OpenAI, retried by its SDKs.
		return ClassServer
	case status == http.StatusNotFound:
		// Every provider answers 404 for a model it does not serve
		// (OpenAI model_not_found, Ollama "not found, try pulling it",
		// Anthropic not_found_error, Gemini NOT_FOUND); a wrong base_url
		// gets 404 too. Either way it is this target's problem.
		return ClassModelUnavailable
	case status >= 400:
		return ClassBadRequest
	}
	return ClassServer
}

// contextErrorHints are phrases providers use when a prompt exceeds the
// context window (OpenAI, vLLM, llama.cpp, Ollama, Anthropic, Gemini).
var contextErrorHints = []string{
	"context_length_exceeded",
	"context length",
	"context window",
	"maximum context",
	"prompt is too long",
	"too many tokens",
	"exceeds the maximum number of tokens",
	"input token count",
	"input is too long",
	"exceed_context_size",
}

// looksLikeContextError reports whether a bad-request error is about the
// context window.
func looksLikeContextError(code, msg string) bool {
	s := strings.ToLower(code + " " + msg)
	for _, h := range contextErrorHints {
		if strings.Contains(s, h) {
			return true
		}
	}
	return false
}

// parseRetryAfter reads the provider's requested delay: Retry-After-Ms
// (OpenAI), then Retry-After as seconds or an HTTP date.
func parseRetryAfter(h http.Header, now time.Time) time.Duration {
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// shouldRetryHeader reads OpenAI/Anthropic's x-should-retry override.
func shouldRetryHeader(h http.Header) (retry, set bool) {
	switch h.Get("X-Should-Retry") {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

// statusError builds the error for a non-2xx answer from the parts an
// adapter extracted, applying the common rules.
func statusError(status int, h http.Header, code, msg string) *Error {
	e := &Error{Class: classifyStatus(status), Status: status, Code: code, Message: msg}
	switch {
	case e.Class == ClassBadRequest && code == "model_not_found":
		// OpenAI-compatible servers that say so with another 4xx.
		e.Class = ClassModelUnavailable
	case e.Class == ClassBadRequest && looksLikeContextError(code, msg):
		e.Class = ClassContext
	}
	if retry, set := shouldRetryHeader(h); set {
		if !retry {
			e.noRetry = true
		} else if !calls.Retryable(e.Class) {
			e.Class = ClassServer
		}
	}
	return e
}

// strPtr returns a pointer to s.
func strPtr(s string) *string { return &s }
