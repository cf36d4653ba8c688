package orchestrator

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/definition"
)

// waitingClient is a Temporal client whose tenant "acme" has n running
// orchestrations, each waiting for a decision by the approver role; it
// counts the status queries it answers.
type waitingClient struct {
	client.Client
	n       int
	queries atomic.Int64
	// gate, when set, holds every status query until it is closed.
	gate chan struct{}
}

func (c *waitingClient) ListWorkflow(_ context.Context, req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
	if strings.Contains(req.Query, "TemporalChangeVersion") {
		return &workflowservice.ListWorkflowExecutionsResponse{}, nil // no runs of older workers
	}
	dc := converter.GetDefaultDataConverter()
	tenant, _ := dc.ToPayload("acme")
	by, _ := dc.ToPayload("k-submitter")
	from := 0
	if len(req.NextPageToken) > 0 {
		from, _ = strconv.Atoi(string(req.NextPageToken))
	}
	resp := &workflowservice.ListWorkflowExecutionsResponse{}
	for i := from; i < c.n && i < from+int(req.PageSize); i++ {
		resp.Executions = append(resp.Executions, &workflowpb.WorkflowExecutionInfo{
			Execution:        &commonpb.WorkflowExecution{WorkflowId: fmt.Sprintf("acme/w%04d", i), RunId: "r"},
			Status:           enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
			SearchAttributes: &commonpb.SearchAttributes{IndexedFields: map[string]*commonpb.Payload{workflows.SearchAttrTenant: tenant}},
			Memo:             &commonpb.Memo{Fields: map[string]*commonpb.Payload{workflows.MemoSubmittedBy: by}},
		})
	}
	if next := from + int(req.PageSize); next < c.n {
		resp.NextPageToken = []byte(strconv.Itoa(next))
	}
	return resp, nil
}

func (c *waitingClient) QueryWorkflow(ctx context.Context, _, _, _ string, _ ...any) (converter.EncodedValue, error) {
	c.queries.Add(1)
	if c.gate != nil {
		select {
		case <-c.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	st := workflows.Status{Pending: []workflows.PendingApproval{{StepID: "ok", Approvers: workflows.Approvers{Roles: []string{"approver"}}, Quorum: 1, Since: time.Unix(1, 0)}}}
	p, err := converter.GetDefaultDataConverter().ToPayloads(st)
	if err != nil {
		return nil, err
	}
	return client.NewValue(p), nil
}

func newWaitingOrchestrator(t *testing.T, c *waitingClient, opts Options) *Orchestrator {
	t.Helper()
	opts.Client, opts.Definitions = c, fakeDefs{}
	opts.ValidateDefinition = func(string, *definition.Definition) error { return nil }
	opts.ValidateInput = func(*definition.Definition, json.RawMessage) error { return nil }
	o, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestPendingApprovalsBounded: one list queries at most
// DefaultApprovalScanLimit workflows, however many wait for the caller,
// and says it is truncated; the caller's next list within the TTL, and
// lists asked for while one is being made, cost no query; the caller's
// vote drops its list; another caller gets its own.
func TestPendingApprovalsBounded(t *testing.T) {
	c := &waitingClient{n: 300}
	o := newWaitingOrchestrator(t, c, Options{ApprovalCacheTTL: time.Hour})
	alice := Caller{Tenant: "acme", KeyID: "k-alice", User: "alice", Roles: []string{"approver"}}
	a, err := o.PendingApprovals(context.Background(), alice)
	if err != nil {
		t.Fatal(err)
	}
	if q := c.queries.Load(); q > DefaultApprovalScanLimit || a.Scanned != int(q) || !a.Truncated || len(a.Items) != a.Scanned {
		t.Fatalf("%d queries for one list (bound %d): scanned %d, truncated %v, %d items", q, DefaultApprovalScanLimit, a.Scanned, a.Truncated, len(a.Items))
	}
	before := c.queries.Load()
	again, err := o.PendingApprovals(context.Background(), alice)
	if err != nil || len(again.Items) != len(a.Items) || c.queries.Load() != before {
		t.Fatalf("second list: %d items, %d more queries, %v", len(again.Items), c.queries.Load()-before, err)
	}
	// A vote drops the voter's list (Decide does this).
	o.approvals.forget(approvalCacheKey(alice))
	if _, err := o.PendingApprovals(context.Background(), alice); err != nil || c.queries.Load() == before {
		t.Fatalf("after a vote the list was not made again (%v)", err)
	}
	// Another caller (other roles) is another list.
	before = c.queries.Load()
	bob := Caller{Tenant: "acme", KeyID: "k-bob", Roles: []string{"approver", "finance"}}
	if _, err := o.PendingApprovals(context.Background(), bob); err != nil || c.queries.Load() == before {
		t.Fatalf("bob got alice's list (%v)", err)
	}
}

// TestPendingApprovalsOneListAtATime: concurrent requests of one caller
// share the list being made.
func TestPendingApprovalsOneListAtATime(t *testing.T) {
	c := &waitingClient{n: 20, gate: make(chan struct{})}
	o := newWaitingOrchestrator(t, c, Options{ApprovalCacheTTL: time.Hour})
	alice := Caller{Tenant: "acme", KeyID: "k-alice", User: "alice", Roles: []string{"approver"}}
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := o.PendingApprovals(context.Background(), alice)
			if err == nil && len(a.Items) != 20 {
				err = fmt.Errorf("%d items", len(a.Items))
			}
			errs <- err
		}()
	}
	// Let the first list start, then release its queries.
	for c.queries.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(c.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if q := c.queries.Load(); q != 20 {
		t.Errorf("%d status queries for 5 concurrent lists of 20 workflows, want 20", q)
	}
}

// TestPendingApprovalsDeadline: a list whose queries do not answer stops
// at ApprovalDeadline and says it is truncated.
func TestPendingApprovalsDeadline(t *testing.T) {
	c := &waitingClient{n: 30, gate: make(chan struct{})}
	defer close(c.gate)
	o := newWaitingOrchestrator(t, c, Options{ApprovalDeadline: 50 * time.Millisecond, ApprovalCacheTTL: -1})
	a, err := o.PendingApprovals(context.Background(), Caller{Tenant: "acme", KeyID: "k-alice", Roles: []string{"approver"}})
	if err != nil || !a.Truncated || len(a.Items) != 0 || a.Scanned > 30 {
		t.Fatalf("%+v %v", a, err)
	}
}
