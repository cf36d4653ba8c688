//go:build integration

package ingress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	ingclient "github.com/gateflow/gateflow/ingress/client"
	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/orchestrator"
)

// TestIntegrationApprovalDuties runs issue 10's approval items through a
// real ingress and Temporal: the submitter may not approve its own
// orchestration unless the step allows it (item 3), two approvers that
// send one X-Request-Id are two votes (item 3), and a caller's list of
// pending approvals is reused instead of querying every workflow again
// (item 8).
func TestIntegrationApprovalDuties(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx
	sub, alice, root := e.client("submitter"), e.client("approver"), e.client("admin")
	listed := func(c *ingclient.Client, id, step string) bool {
		t.Helper()
		a, err := c.Approvals(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range a.Items {
			if it.WorkflowID == id && it.StepID == step {
				return true
			}
		}
		return false
	}

	t.Run("submitter may not approve its own orchestration", func(t *testing.T) {
		// root (admin: every route) submits and is among the approvers.
		s, err := root.Submit(ctx, ingclient.SubmitRequest{Inline: &definition.Definition{Steps: []definition.Step{
			{ID: "ok", Kind: definition.KindApproval, Approvers: &definition.Approvers{Users: []string{"root", "alice"}}},
			{ID: "mine", Kind: definition.KindApproval, Approvers: &definition.Approvers{Users: []string{"root"}}, AllowSelfApproval: true},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		e.waitPending(root, s.ID, "ok")
		e.eventually("listed for alice", func() error {
			if !listed(alice, s.ID, "ok") {
				return fmt.Errorf("not listed")
			}
			return nil
		})
		if listed(root, s.ID, "ok") {
			t.Error("the submitter is offered its own step")
		}
		_, err = root.Decide(ctx, s.ID, "ok", "approve", "")
		if ce := (*ingclient.Error)(nil); !errors.As(err, &ce) || ce.StatusCode != 409 || ce.Code != "self_approval" {
			t.Fatalf("self-approval: %v, want 409 self_approval", err)
		}
		if res, err := alice.Decide(ctx, s.ID, "ok", "approve", ""); err != nil || !res.Resolved {
			t.Fatalf("alice: %+v %v", res, err)
		}
		// The next step allows self-approval: root sees it and decides it.
		e.waitPending(root, s.ID, "mine")
		e.eventually("listed for root", func() error {
			if !listed(root, s.ID, "mine") {
				return fmt.Errorf("not listed")
			}
			return nil
		})
		if res, err := root.Decide(ctx, s.ID, "mine", "approve", ""); err != nil || !res.Resolved {
			t.Fatalf("root on an allow_self_approval step: %+v %v", res, err)
		}
		if final, err := root.Watch(ctx, s.ID, nil); err != nil || final.State != workflows.RunSucceeded {
			t.Fatalf("final %+v %v", final, err)
		}
	})

	t.Run("two approvers, one request id, two votes", func(t *testing.T) {
		s, err := sub.Submit(ctx, ingclient.SubmitRequest{Inline: &definition.Definition{Steps: []definition.Step{
			{ID: "two", Kind: definition.KindApproval, Approvers: &definition.Approvers{Users: []string{"root", "alice"}}, Quorum: 2},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		e.waitPending(sub, s.ID, "two")
		var last workflows.DecisionResult
		for _, who := range []string{"admin", "approver"} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.url+"/v1/workflows/"+s.ID+"/approvals/two", strings.NewReader(`{"decision": "approve"}`))
			req.Header.Set("Authorization", "Bearer "+testKeys[who].token)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Request-Id", "one-request-id")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			err = json.NewDecoder(resp.Body).Decode(&last)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || err != nil {
				t.Fatalf("%s: %d %v", who, resp.StatusCode, err)
			}
		}
		if !last.Resolved || last.Votes != 2 {
			t.Fatalf("the second approver's vote was not counted: %+v", last)
		}
		if final, err := sub.Watch(ctx, s.ID, nil); err != nil || final.State != workflows.RunSucceeded {
			t.Fatalf("final %+v %v", final, err)
		}
	})

	t.Run("a caller's approvals list is reused", func(t *testing.T) {
		s, err := sub.Submit(ctx, ingclient.SubmitRequest{Inline: &definition.Definition{Steps: []definition.Step{
			{ID: "approve", Kind: definition.KindApproval, Approvers: &definition.Approvers{Roles: []string{"approver"}}},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		e.waitPending(sub, s.ID, "approve")
		cc := &queryCounter{Client: e.c}
		o, err := orchestrator.New(orchestrator.Options{Client: cc, TaskQueue: "ingress-it", Definitions: e.defs,
			ValidateDefinition: func(string, *definition.Definition) error { return nil },
			ValidateInput:      func(*definition.Definition, json.RawMessage) error { return nil }})
		if err != nil {
			t.Fatal(err)
		}
		caller := orchestrator.Caller{Tenant: "acme", KeyID: "a00000000002", User: "alice", Roles: []string{"approver", "finance"}}
		e.eventually("listed", func() error {
			o2, _ := orchestrator.New(orchestrator.Options{Client: e.c, Definitions: e.defs, ApprovalCacheTTL: -1,
				ValidateDefinition: func(string, *definition.Definition) error { return nil },
				ValidateInput:      func(*definition.Definition, json.RawMessage) error { return nil }})
			a, err := o2.PendingApprovals(ctx, caller)
			if err == nil && len(a.Items) == 0 {
				err = fmt.Errorf("nothing listed yet")
			}
			return err
		})
		first, err := o.PendingApprovals(ctx, caller)
		if err != nil || len(first.Items) == 0 || cc.n.Load() == 0 {
			t.Fatalf("first list: %+v %v (%d queries)", first, err, cc.n.Load())
		}
		n := cc.n.Load()
		for range 5 {
			again, err := o.PendingApprovals(ctx, caller)
			if err != nil || len(again.Items) != len(first.Items) {
				t.Fatalf("again: %+v %v", again, err)
			}
		}
		if extra := cc.n.Load() - n; extra != 0 {
			t.Errorf("5 more lists within the TTL cost %d more status queries, want 0", extra)
		}
		// The caller's vote drops its list: the next one is fresh.
		if _, err := o.Decide(ctx, caller, s.ID, orchestrator.DecideRequest{StepID: "approve", Decision: workflows.Approve}); err != nil {
			t.Fatal(err)
		}
		after, err := o.PendingApprovals(ctx, caller)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range after.Items {
			if it.WorkflowID == s.ID {
				t.Errorf("the decided step is still listed: %+v", it)
			}
		}
	})
}

// queryCounter counts the workflow queries (status queries) made through
// it.
type queryCounter struct {
	client.Client
	n atomic.Int64
}

func (c *queryCounter) QueryWorkflow(ctx context.Context, id, runID, name string, args ...any) (converter.EncodedValue, error) {
	c.n.Add(1)
	return c.Client.QueryWorkflow(ctx, id, runID, name, args...)
}
