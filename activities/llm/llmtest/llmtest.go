// Package llmtest holds the one set of fake model providers of the tests: a
// local server that captures each request and answers through a responder,
// responders for JSON and Server-Sent Events, the recorded wire fixtures of
// activities/llm/testdata and a canned OpenAI chat answer. It imports
// nothing of the gateway, so the gateway's own tests and the ingress's
// tests share it. Only tests import it.
package llmtest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// ProviderKey is the credential fake providers are configured with. The
// OpenAI auth error fixture echoes it, as OpenAI does with a wrong key, so
// tests can check that it is redacted.
const ProviderKey = "sk-test-SECRET-abcdef123456"

// Responder answers the n-th (0-based) request a Provider receives.
type Responder func(n int, w http.ResponseWriter, r *http.Request)

// Captured is a request a Provider received.
type Captured struct {
	Method string
	Path   string
	// EscapedPath is the path as sent (percent-encoded).
	EscapedPath string
	RawQuery    string
	Header      http.Header
	Body        []byte
}

// Provider is a local server speaking whatever wire format its responder
// writes; it records every request.
type Provider struct {
	*httptest.Server
	mu      sync.Mutex
	reqs    []Captured
	respond Responder
}

// NewProvider starts a provider answering with respond until the test ends.
func NewProvider(t testing.TB, respond Responder) *Provider {
	t.Helper()
	p := &Provider{respond: respond}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		p.mu.Lock()
		n := len(p.reqs)
		p.reqs = append(p.reqs, Captured{Method: r.Method, Path: r.URL.Path, EscapedPath: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery,
			Header: r.Header.Clone(), Body: body})
		p.mu.Unlock()
		p.respond(n, w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

// Requests returns what the provider received so far.
func (p *Provider) Requests() []Captured {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Captured(nil), p.reqs...)
}

// JSON answers status with body and header pairs.
func JSON(status int, body []byte, headers ...string) Responder {
	return func(_ int, w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, status, body, headers...)
	}
}

// WriteJSON writes body as an application/json answer with header pairs.
func WriteJSON(w http.ResponseWriter, status int, body []byte, headers ...string) {
	for i := 0; i+1 < len(headers); i += 2 {
		w.Header().Set(headers[i], headers[i+1])
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// SSE streams body as text/event-stream, flushing after every event.
func SSE(body []byte) Responder {
	return func(_ int, w http.ResponseWriter, _ *http.Request) {
		WriteSSE(w, body)
	}
}

// WriteSSE writes body event by event (events end with a blank line),
// flushing after each, as providers stream.
func WriteSSE(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	for len(body) > 0 {
		i := bytes.Index(body, []byte("\n\n"))
		if i < 0 {
			i = len(body)
		} else {
			i += 2
		}
		_, _ = w.Write(body[:i])
		if fl != nil {
			fl.Flush()
		}
		body = body[i:]
	}
}

// Fixture reads a recorded wire fixture of activities/llm/testdata, e.g.
// "openai/chat_response.json".
func Fixture(t testing.TB, name string) []byte {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ChatAnswer is an OpenAI chat completion whose message content is text.
func ChatAnswer(text string) []byte {
	var b bytes.Buffer
	b.WriteString(`{"id":"chatcmpl-1","object":"chat.completion","created":1741569952,"model":"m1","choices":[{"index":0,"message":{"role":"assistant","content":`)
	q, _ := json.Marshal(text)
	b.Write(q)
	b.WriteString(`},"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29}}`)
	return b.Bytes()
}
