package ingress

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gateflow/gateflow/ingress/client"
	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/orchestrator"
)

// TestClient drives every client call against the server with the fake
// orchestrator.
func TestClient(t *testing.T) {
	h := newHarness(t, nil)
	ts := httptest.NewServer(h.srv.Handler())
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sub, _ := client.New(ts.URL, testKeys["submitter"].token)
	appr, _ := client.New(ts.URL+"/", testKeys["approver"].token)
	admin, _ := client.New(ts.URL, testKeys["admin"].token)

	s, err := sub.Submit(ctx, client.SubmitRequest{Definition: "order", Input: map[string]any{"n": 1}, IdempotencyKey: "k", RequestID: "rid-1"})
	if err != nil || s.ID == "" || s.Replayed {
		t.Fatalf("submit: %+v %v", s, err)
	}
	again, err := sub.Submit(ctx, client.SubmitRequest{Definition: "order", Input: map[string]any{"n": 1}, IdempotencyKey: "k"})
	if err != nil || again.ID != s.ID || !again.Replayed {
		t.Errorf("replay: %+v %v", again, err)
	}
	_, err = sub.Submit(ctx, client.SubmitRequest{Definition: "order", Input: map[string]any{"n": 2}, IdempotencyKey: "k"})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.StatusCode != 409 || ce.Code != "idempotency_conflict" || ce.RequestID == "" {
		t.Errorf("conflict: %v", err)
	}
	_, err = sub.Submit(ctx, client.SubmitRequest{Definition: "order", Input: []int{1}})
	if !errors.As(err, &ce) || ce.StatusCode != 400 || len(ce.Details) != 1 || ce.Details[0].Path != "input" {
		t.Errorf("bad input: %v", err)
	}
	if st, err := sub.Status(ctx, s.ID); err != nil || st.ID != s.ID || st.State != workflows.RunRunning {
		t.Errorf("status: %+v %v", st, err)
	}
	if _, err := sub.Status(ctx, "no-such-id"); client.StatusCode(err) != 404 {
		t.Errorf("status of unknown: %v", err)
	}
	if p, err := sub.List(ctx, client.ListOptions{Status: "running", Limit: 10, StartedAfter: time.Now().Add(-time.Hour)}); err != nil || len(p.Items) != 1 {
		t.Errorf("list: %+v %v", p, err)
	}
	if _, err := sub.List(ctx, client.ListOptions{Status: "bogus"}); client.StatusCode(err) != 400 {
		t.Errorf("bad list: %v", err)
	}
	if a, err := appr.Approvals(ctx); err != nil || a.Items == nil {
		t.Errorf("approvals: %+v %v", a, err)
	}
	if _, err := sub.Approvals(ctx); client.StatusCode(err) != 403 {
		t.Errorf("approvals as submitter: %v", err)
	}
	if r, err := appr.Decide(ctx, s.ID, "check", "approve", "ok"); err != nil || !r.Accepted {
		t.Errorf("decide: %+v %v", r, err)
	}
	if defs, err := sub.Definitions(ctx); err != nil || len(defs) != 1 {
		t.Errorf("definitions: %+v %v", defs, err)
	}
	if d, err := sub.Definition(ctx, "order", "1"); err != nil || d.Name != "order" {
		t.Errorf("definition: %+v %v", d, err)
	}
	def := definition.Definition{Name: "new", Version: "2", Steps: []definition.Step{{ID: "w", Kind: "wait", Duration: "1s"}}}
	if info, err := admin.PublishDefinition(ctx, def); err != nil || info.Name != "new" {
		t.Errorf("publish: %+v %v", info, err)
	}
	if _, err := sub.PublishDefinition(ctx, def); client.StatusCode(err) != 403 {
		t.Errorf("publish as submitter: %v", err)
	}

	h.fake.watch = []orchestrator.Status{
		{ID: s.ID, Status: workflows.Status{State: workflows.RunRunning, Seq: 1}},
		{ID: s.ID, Status: workflows.Status{State: workflows.RunSucceeded, Seq: 5}},
	}
	var seen []int64
	final, err := sub.Watch(ctx, s.ID, func(st client.Status) error { seen = append(seen, st.Seq); return nil })
	if err != nil || final.State != workflows.RunSucceeded || len(seen) != 2 {
		t.Errorf("watch: %+v %v %v", final, seen, err)
	}
	if _, err := sub.Watch(ctx, "no-such-id", nil); client.StatusCode(err) != 404 {
		t.Errorf("watch unknown: %v", err)
	}
	if err := sub.Cancel(ctx, s.ID); err != nil {
		t.Errorf("cancel: %v", err)
	}
	if err := sub.Cancel(ctx, s.ID); client.StatusCode(err) != 409 {
		t.Errorf("cancel twice: %v", err)
	}
	bad, _ := client.New(ts.URL, "gf_ffffffffffff_nope-nope-nope-nope")
	if _, err := bad.Definitions(ctx); client.StatusCode(err) != 401 {
		t.Errorf("bad key: %v", err)
	}
	if _, err := client.New("ftp://x", ""); err == nil {
		t.Error("ftp URL accepted")
	}
}
