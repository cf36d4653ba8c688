package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/gateflow/gateflow/analytics/record"
)

// testKey is the credential every fake provider expects. The OpenAI auth
// error fixture echoes it, as OpenAI does with a wrong key.
const testKey = "sk-test-SECRET-abcdef123456"

// capturedRequest is what a fake provider received.
type capturedRequest struct {
	Method   string
	Path     string
	RawQuery string
	Header   http.Header
	Body     []byte
}

// fakeProvider is a local server speaking a provider's wire format. respond
// gets the 0-based index of the request.
type fakeProvider struct {
	*httptest.Server
	mu      sync.Mutex
	reqs    []capturedRequest
	respond func(n int, w http.ResponseWriter, r *http.Request)
}

func newFakeProvider(t testing.TB, respond func(n int, w http.ResponseWriter, r *http.Request)) *fakeProvider {
	f := &fakeProvider{respond: respond}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		n := len(f.reqs)
		f.reqs = append(f.reqs, capturedRequest{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
		f.mu.Unlock()
		f.respond(n, w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeProvider) requests() []capturedRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]capturedRequest(nil), f.reqs...)
}

// replyJSON answers status with body and header pairs.
func replyJSON(status int, body []byte, headers ...string) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, status, body, headers...)
	}
}

func writeJSON(w http.ResponseWriter, status int, body []byte, headers ...string) {
	for i := 0; i+1 < len(headers); i += 2 {
		w.Header().Set(headers[i], headers[i+1])
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// replySSE streams body as text/event-stream, flushing after every event.
func replySSE(body []byte) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) {
		writeSSE(w, body)
	}
}

func writeSSE(w http.ResponseWriter, body []byte) {
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

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// assertJSONEqual compares two JSON documents semantically.
func assertJSONEqual(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("want is not JSON: %v\n%s", err, want)
	}
	if !reflect.DeepEqual(g, w) {
		gi, _ := json.MarshalIndent(g, "", "  ")
		wi, _ := json.MarshalIndent(w, "", "  ")
		t.Fatalf("JSON differs\n got: %s\nwant: %s", gi, wi)
	}
}

// fakeClock advances only when the gateway sleeps.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	c.mu.Unlock()
	return ctx.Err()
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// recordSink collects emitted call records.
type recordSink struct {
	mu   sync.Mutex
	recs []record.Record
}

func (s *recordSink) Emit(r record.Record) {
	s.mu.Lock()
	s.recs = append(s.recs, r)
	s.mu.Unlock()
}

func (s *recordSink) all() []record.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]record.Record(nil), s.recs...)
}

// testEnv is a gateway wired to fakes.
type testEnv struct {
	gw    *Gateway
	clock *fakeClock
	recs  *recordSink
	logs  *bytes.Buffer
}

// newTestGateway builds a gateway whose providers read testKey from the
// environment variable KEY.
func newTestGateway(t testing.TB, cfg Config, budget BudgetChecker) *testEnv {
	t.Helper()
	env := &testEnv{clock: newFakeClock(), recs: &recordSink{}, logs: &bytes.Buffer{}}
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: env.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	gw, err := NewGateway(cfg, Deps{
		HTTP:      NewHTTPClient(),
		Clock:     env.clock,
		Budget:    budget,
		Recorder:  env.recs,
		Log:       logger,
		LookupEnv: func(k string) (string, bool) { return map[string]string{"KEY": testKey}[k], k == "KEY" },
	})
	if err != nil {
		t.Fatal(err)
	}
	env.gw = gw
	return env
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// oneProvider is a config with a single provider "p" of kind at url,
// holding the given models.
func oneProvider(kind, url string, models map[string]Model) Config {
	return Config{Providers: map[string]Provider{"p": {Kind: kind, BaseURL: url, APIKeyEnv: "KEY", Models: models}}}
}

func userRequest(model, text string) *ChatRequest {
	return &ChatRequest{Model: model, Messages: []Message{TextMessage("user", text)}}
}

func loadRequest(t testing.TB, name, model string) *ChatRequest {
	t.Helper()
	var req ChatRequest
	if err := json.Unmarshal(fixture(t, name), &req); err != nil {
		t.Fatal(err)
	}
	req.Model = model
	return &req
}

// readAll drains a stream.
func readAll(t testing.TB, s *Stream) []*ChatChunk {
	t.Helper()
	var out []*ChatChunk
	for {
		c, err := s.Recv()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("recv: %v", err)
		}
		out = append(out, c)
	}
}
