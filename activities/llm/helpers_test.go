package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"golang.org/x/oauth2"

	"github.com/gateflow/gateflow/activities/llm/llmtest"
	"github.com/gateflow/gateflow/analytics/record/recordtest"
)

// testKey is the credential every fake provider expects.
const testKey = llmtest.ProviderKey

// Credentials of the Bedrock and Vertex fakes.
var testAWSCreds = aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}

const testGoogleToken = "ya29.test-access-token-0123456789"

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

// testEnv is a gateway wired to fakes.
type testEnv struct {
	gw    *Gateway
	clock *fakeClock
	recs  *recordtest.Sink
	logs  *bytes.Buffer
}

// newTestGateway builds a gateway whose providers read testKey from the
// environment variable KEY.
func newTestGateway(t testing.TB, cfg Config, budget BudgetChecker) *testEnv {
	t.Helper()
	env := &testEnv{clock: newFakeClock(), recs: &recordtest.Sink{}, logs: &bytes.Buffer{}}
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: env.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	gw, err := NewGateway(cfg, Deps{
		HTTP:      NewHTTPClient(),
		Clock:     env.clock,
		Budget:    budget,
		Recorder:  env.recs,
		Log:       logger,
		LookupEnv: func(k string) (string, bool) { return map[string]string{"KEY": testKey}[k], k == "KEY" },
		AWSCredentials: func(context.Context, string) (aws.CredentialsProvider, error) {
			return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return testAWSCreds, nil }), nil
		},
		GoogleTokenSource: func(context.Context) (oauth2.TokenSource, error) {
			return oauth2.StaticTokenSource(&oauth2.Token{AccessToken: testGoogleToken, Expiry: time.Now().Add(time.Hour)}), nil
		},
		Rand: rand.New(rand.NewPCG(1, 2)),
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
	if err := json.Unmarshal(llmtest.Fixture(t, name), &req); err != nil {
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
