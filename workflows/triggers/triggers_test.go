package triggers

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/analytics/record/recordtest"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/events"
	"github.com/gateflow/gateflow/workflows/orchestrator"
)

// fakeStarter starts at most one orchestration per idempotency key, like
// the orchestrator on Temporal; refuse makes it refuse inputs.
type fakeStarter struct {
	mu     sync.Mutex
	byKey  map[string]orchestrator.StartRequest
	starts []orchestrator.StartRequest
	refuse error
}

func (f *fakeStarter) Start(_ context.Context, c orchestrator.Caller, req orchestrator.StartRequest) (orchestrator.StartResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse != nil {
		return orchestrator.StartResult{}, f.refuse
	}
	if f.byKey == nil {
		f.byKey = map[string]orchestrator.StartRequest{}
	}
	id := orchestrator.IdempotentID(c.Tenant, req.IdempotencyKey)
	if prev, ok := f.byKey[req.IdempotencyKey]; ok {
		if string(prev.Input) != string(req.Input) {
			return orchestrator.StartResult{}, &orchestrator.Error{Kind: orchestrator.ErrConflict, Message: "conflict"}
		}
		return orchestrator.StartResult{ID: id, Definition: req.Definition}, nil
	}
	f.byKey[req.IdempotencyKey] = req
	f.starts = append(f.starts, req)
	return orchestrator.StartResult{ID: id, Definition: req.Definition, Created: true}, nil
}

type fakeSender struct {
	mu   sync.Mutex
	sent []events.Event
}

func (f *fakeSender) Send(_ context.Context, _ string, e events.Event) (string, error) {
	if err := e.Check(); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, e)
	return e.ID, nil
}

func TestMessageInput(t *testing.T) {
	in, err := messageInput(kafka.Message{Topic: "orders", Partition: 2, Offset: 7, Key: []byte("k"),
		Headers: []kafka.Header{{Key: "type", Value: []byte("order.created")}}, Value: []byte(`{"id": "o-1", "amount": 3}`)})
	if err != nil {
		t.Fatal(err)
	}
	ok, err := definition.EvalCondition(`input.headers.type == "order.created" && input.value.amount > 2 && input.partition == 2 && input.key == "k"`,
		definition.Env{definition.EnvInput: in})
	if err != nil || !ok {
		t.Errorf("filter over the message: %v, %v", ok, err)
	}
	if _, err := messageInput(kafka.Message{Value: []byte(`{not json`)}); !errors.Is(err, ErrPoison) {
		t.Errorf("bad JSON: %v", err)
	}
	if in, err := messageInput(kafka.Message{}); err != nil || in["value"] != nil {
		t.Errorf("empty value: %v %v", in, err)
	}
}

func TestFire(t *testing.T) {
	in := map[string]any{"value": map[string]any{"id": "o-1", "n": 2.0}}
	start := action{kind: "topic", tenant: "acme", name: "orders", dflt: "input.value",
		start: &sysconfig.StartAction{Definition: "order", Input: map[string]any{"order": "${{ input.value.id }}"}}}
	st, es := &fakeStarter{}, &fakeSender{}

	o, err := start.fire(context.Background(), st, es, in, "orders/0/1", nil)
	if err != nil || o.result != ResultStarted {
		t.Fatalf("first: %+v %v", o, err)
	}
	again, err := start.fire(context.Background(), st, es, in, "orders/0/1", nil)
	if err != nil || again.result != ResultDuplicate || again.workflowID != o.workflowID {
		t.Errorf("redelivery: %+v %v", again, err)
	}
	other := map[string]any{"value": map[string]any{"id": "o-2"}}
	if o, err := start.fire(context.Background(), st, es, other, "orders/0/1", nil); err != nil || o.result != ResultDuplicate {
		t.Errorf("same key, other content: %+v %v", o, err)
	}
	if len(st.starts) != 1 || string(st.starts[0].Input) != `{"order":"o-1"}` || st.starts[0].Labels["trigger"] != "topic:orders" {
		t.Errorf("starts %+v", st.starts)
	}

	bad := start
	bad.start = &sysconfig.StartAction{Definition: "order", Input: map[string]any{"x": "${{ input.value.id.nope() }}"}}
	if _, err := bad.fire(context.Background(), st, es, in, "orders/0/2", nil); !errors.Is(err, ErrPoison) {
		t.Errorf("failing mapping: %v", err)
	}
	refusing := &fakeStarter{refuse: &definition.ValidationError{Problems: []definition.Problem{{Path: "input.order", Message: "required"}}}}
	if _, err := start.fire(context.Background(), refusing, es, in, "orders/0/3", nil); !errors.Is(err, ErrPoison) {
		t.Errorf("refused input: %v", err)
	}
	down := &fakeStarter{refuse: errors.New("connection refused")}
	if _, err := start.fire(context.Background(), down, es, in, "orders/0/4", nil); err == nil || errors.Is(err, ErrPoison) {
		t.Errorf("Temporal down is transient: %v", err)
	}

	ev := action{kind: "topic", tenant: "acme", name: "shipments", dflt: "input.value",
		event: &sysconfig.EventAction{Name: "shipping.shipped", Key: "${{ input.value.id }}"}}
	o1, err := ev.fire(context.Background(), st, es, in, "s/0/1", nil)
	o2, _ := ev.fire(context.Background(), st, es, in, "s/0/1", nil)
	if err != nil || o1.result != ResultEvent || o1.eventID != o2.eventID {
		t.Errorf("events: %+v %+v %v", o1, o2, err)
	}
	if len(es.sent) != 2 || es.sent[0].Key != "o-1" || string(es.sent[0].Payload) != `{"id":"o-1","n":2}` || es.sent[0].Source != "topic:shipments" {
		t.Errorf("sent %+v", es.sent)
	}
}

// hookConfig is a configuration with one webhook of each scheme.
func hookConfig(t *testing.T) Snapshots {
	t.Helper()
	t.Setenv("GATEFLOW_TEST_HOOK_SECRET", "s3cret")
	reg, err := sysconfig.NewStatic(sysconfig.Config{Webhooks: map[string]sysconfig.Webhook{
		"gh": {Tenant: "acme", Scheme: "github", Secret: "${env:GATEFLOW_TEST_HOOK_SECRET}", Filter: `input.headers["x-github-event"] != "ping"`,
			Start: &sysconfig.StartAction{Definition: "deploy", Input: map[string]any{"ref": "${{ input.body.ref }}"}}},
		"ship": {Tenant: "acme", Scheme: "hmac", Secret: "${env:GATEFLOW_TEST_HOOK_SECRET}", Header: "X-Sig", MaxBodyBytes: 64,
			Event: &sysconfig.EventAction{Name: "shipping.shipped", Key: "${{ input.body.order }}"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func signGitHub(body string) string {
	m := hmac.New(sha256.New, []byte("s3cret"))
	m.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func TestWebhookReceive(t *testing.T) {
	st, es, recs := &fakeStarter{}, &fakeSender{}, &recordtest.Sink{}
	h := NewHooks(hookConfig(t), st, es, recs)
	body := `{"ref": "main"}`
	hdr := http.Header{"X-Hub-Signature-256": {signGitHub(body)}, "X-Github-Delivery": {"d-1"}, "X-Github-Event": {"push"}}

	res, err := h.Receive(context.Background(), "gh", hdr, []byte(body))
	if err != nil || res.Action != ResultStarted || res.DeliveryID != "d-1" || res.WorkflowID == "" {
		t.Fatalf("delivery: %+v %v", res, err)
	}
	replay, err := h.Receive(context.Background(), "gh", hdr, []byte(body))
	if err != nil || replay.Action != ResultDuplicate || replay.WorkflowID != res.WorkflowID {
		t.Errorf("replayed delivery: %+v %v", replay, err)
	}
	if len(st.starts) != 1 || string(st.starts[0].Input) != `{"ref":"main"}` {
		t.Errorf("starts %+v", st.starts)
	}

	forged := http.Header{"X-Hub-Signature-256": {signGitHub(`{"ref": "evil"}`)}, "X-Github-Delivery": {"d-2"}}
	if _, err := h.Receive(context.Background(), "gh", forged, []byte(body)); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("bad signature: %v", err)
	}
	if _, err := h.Receive(context.Background(), "gh", http.Header{}, []byte(body)); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("no signature: %v", err)
	}
	ping := http.Header{"X-Hub-Signature-256": {signGitHub(body)}, "X-Github-Delivery": {"d-3"}, "X-Github-Event": {"ping"}}
	if res, err := h.Receive(context.Background(), "gh", ping, []byte(body)); err != nil || res.Action != ResultFiltered {
		t.Errorf("filtered: %+v %v", res, err)
	}
	if len(st.starts) != 1 {
		t.Errorf("%d starts after refused and filtered deliveries, want 1", len(st.starts))
	}
	if _, err := h.Receive(context.Background(), "nope", hdr, []byte(body)); !errors.Is(err, ErrUnknownHook) {
		t.Errorf("unknown hook: %v", err)
	}
	long := strings.Repeat("x", 65)
	if _, err := h.Receive(context.Background(), "ship", http.Header{}, []byte(long)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too large: %v", err)
	}

	ship := `{"order": "o-9"}`
	m := hmac.New(sha256.New, []byte("s3cret"))
	m.Write([]byte(ship))
	res, err = h.Receive(context.Background(), "ship", http.Header{"X-Sig": {hex.EncodeToString(m.Sum(nil))}}, []byte(ship))
	if err != nil || res.Action != ResultEvent || len(es.sent) != 1 || es.sent[0].Key != "o-9" {
		t.Errorf("event: %+v %v %+v", res, err, es.sent)
	}

	var results []string
	for _, r := range recs.All() {
		if r.Tenant != "acme" || r.Kind != "webhook" {
			t.Errorf("record %+v", r)
		}
		if raw, _ := json.Marshal(r); strings.Contains(string(raw), "s3cret") {
			t.Errorf("a record holds the secret: %s", raw)
		}
		results = append(results, r.Labels["result"]+"/"+string(r.Outcome))
	}
	want := "started/ok duplicate/ok rejected/rejected rejected/rejected filtered/ok rejected/error event/ok"
	if got := strings.Join(results, " "); got != want {
		t.Errorf("records %s\nwant    %s", got, want)
	}
}

// BenchmarkHookReceive is the cost of a webhook delivery apart from the
// Temporal start: signature check, delivery id, input mapping and start
// request (a fake starter), for a 2 KiB GitHub-signed body.
func BenchmarkHookReceive(b *testing.B) {
	b.Setenv("GATEFLOW_TEST_HOOK_SECRET", "s3cret")
	reg, err := sysconfig.NewStatic(sysconfig.Config{Webhooks: map[string]sysconfig.Webhook{
		"gh": {Tenant: "acme", Scheme: "github", Secret: "${env:GATEFLOW_TEST_HOOK_SECRET}",
			Start: &sysconfig.StartAction{Definition: "deploy", Input: map[string]any{"ref": "${{ input.body.ref }}"}}},
	}})
	if err != nil {
		b.Fatal(err)
	}
	h := NewHooks(reg, &nopStarter{}, &fakeSender{}, nil)
	body := []byte(`{"ref": "main", "pad": "` + strings.Repeat("x", 2000) + `"}`)
	hdr := http.Header{"X-Hub-Signature-256": {signGitHub(string(body))}, "X-Github-Delivery": {"d-1"}}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Receive(context.Background(), "gh", hdr, body); err != nil {
			b.Fatal(err)
		}
	}
}

// nopStarter accepts every start.
type nopStarter struct{}

func (nopStarter) Start(_ context.Context, c orchestrator.Caller, req orchestrator.StartRequest) (orchestrator.StartResult, error) {
	return orchestrator.StartResult{ID: orchestrator.IdempotentID(c.Tenant, req.IdempotencyKey), Created: true}, nil
}
