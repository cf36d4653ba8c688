package orchestrator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/wire"
)

// List page sizes.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
	// maxCursor bounds the size of a decoded cursor (Temporal page tokens
	// are small; anything larger is garbage).
	maxCursor = 4096
)

// ListFilter selects orchestrations of the caller's tenant. Zero fields do
// not filter.
type ListFilter struct {
	// State is one of running, succeeded, failed, cancelled, terminated,
	// timed-out.
	State         workflows.RunState
	Definition    string
	StartedAfter  time.Time
	StartedBefore time.Time
	// Limit is the page size, 1..MaxPageSize (DefaultPageSize when 0).
	Limit int
	// Cursor is the NextCursor of the previous page.
	Cursor string
}

// Summary is one orchestration in a list.
type Summary = wire.Summary

// Page is one page of a list; NextCursor is empty on the last page.
type Page = wire.Page

// executionStatus maps filterable API states to Temporal's visibility
// values. The filter is on Temporal's close status, while items show the
// orchestration's own final state (workflows.MemoState): "compensated" is
// not filterable (Temporal records it as failed or canceled, so
// status=failed also lists compensated runs, and status=cancelled a
// cancelled run that was compensated), and a run stopped by its
// definition's timeout is listed under failed, shown as timed-out.
var executionStatus = map[workflows.RunState]string{
	workflows.RunRunning:    "Running",
	workflows.RunSucceeded:  "Completed",
	workflows.RunFailed:     "Failed",
	workflows.RunCancelled:  "Canceled",
	workflows.RunTerminated: "Terminated",
	workflows.RunTimedOut:   "TimedOut",
}

// FilterableStates lists the states List accepts, in documentation order.
var FilterableStates = []workflows.RunState{
	workflows.RunRunning, workflows.RunSucceeded, workflows.RunFailed,
	workflows.RunCancelled, workflows.RunTerminated, workflows.RunTimedOut,
}

// CheckListFilter validates a filter; the ingress calls it before List so
// that nothing invalid reaches Temporal, and List calls it again.
func CheckListFilter(f ListFilter) error {
	var ve problems
	if f.State != "" {
		if _, ok := executionStatus[f.State]; !ok {
			ve.add("status", "must be one of running, succeeded, failed, cancelled, terminated, timed-out")
		}
	}
	if f.Definition != "" && !ValidName(f.Definition) {
		ve.add("definition", "must be a definition name")
	}
	if f.Limit < 0 || f.Limit > MaxPageSize {
		ve.add("limit", fmt.Sprintf("must be between 1 and %d", MaxPageSize))
	}
	if !f.StartedAfter.IsZero() && !f.StartedBefore.IsZero() && !f.StartedAfter.Before(f.StartedBefore) {
		ve.add("started_before", "must be after started_after")
	}
	if f.Cursor != "" {
		if _, _, err := splitCursor(f.Cursor); err != nil {
			ve.add("cursor", "is not a cursor returned by this API")
		}
	}
	return ve.err("query")
}

// List returns one page of the caller's orchestrations from Temporal
// visibility, in its order (running first, then the most recently
// closed). The query is always restricted to the caller's
// tenant; user values are validated and quoted, never spliced raw.
func (o *Orchestrator) List(ctx context.Context, caller Caller, f ListFilter) (Page, error) {
	if err := checkCaller(caller); err != nil {
		return Page{}, err
	}
	if err := CheckListFilter(f); err != nil {
		return Page{}, err
	}
	query := o.visibilityQuery(caller.Tenant, f)
	var token []byte
	if f.Cursor != "" {
		t, sum, _ := splitCursor(f.Cursor)
		if !bytes.Equal(sum, cursorSum(query, t)) {
			// Another tenant's or another filter's cursor, or garbage:
			// Temporal would stall on it.
			return Page{}, problems{{Path: "cursor", Message: "does not belong to this query (cursors are valid for the same filters only)"}}.err("query")
		}
		token = t
	}
	limit := f.Limit
	if limit == 0 {
		limit = DefaultPageSize
	}
	resp, err := o.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		PageSize:      int32(limit),
		NextPageToken: token,
		Query:         query,
	})
	if err != nil {
		return Page{}, temporalError(err, "list workflows")
	}
	page := Page{Items: make([]Summary, 0, len(resp.Executions))}
	for _, ex := range resp.Executions {
		if s, ok := o.summary(caller.Tenant, ex); ok {
			page.Items = append(page.Items, s)
		}
	}
	if len(resp.NextPageToken) > 0 {
		page.NextCursor = makeCursor(query, resp.NextPageToken)
	}
	return page, nil
}

// visibilityQuery builds the visibility query of a validated filter. Every
// value is either from a closed set or matches a strict pattern without
// quotes, and is quoted anyway.
func (o *Orchestrator) visibilityQuery(tenant string, f ListFilter) string {
	q := []string{
		fmt.Sprintf("WorkflowType = %s", quote(workflows.OrchestrationWorkflow)),
		fmt.Sprintf("%s = %s", workflows.SearchAttrTenant, quote(tenant)),
	}
	if f.State != "" {
		q = append(q, "ExecutionStatus = "+quote(executionStatus[f.State]))
	}
	if f.Definition != "" {
		q = append(q, fmt.Sprintf("%s = %s", workflows.SearchAttrDefinition, quote(f.Definition)))
	}
	if !f.StartedAfter.IsZero() {
		q = append(q, "StartTime >= "+quote(f.StartedAfter.UTC().Format(time.RFC3339Nano)))
	}
	if !f.StartedBefore.IsZero() {
		q = append(q, "StartTime < "+quote(f.StartedBefore.UTC().Format(time.RFC3339Nano)))
	}
	return strings.Join(q, " AND ")
}

func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "") + "'"
}

func (o *Orchestrator) summary(tenant string, ex *workflowpb.WorkflowExecutionInfo) (Summary, bool) {
	id, ok := APIID(tenant, ex.GetExecution().GetWorkflowId())
	if !ok {
		return Summary{}, false
	}
	fields := ex.GetSearchAttributes().GetIndexedFields()
	if keyword(fields[workflows.SearchAttrTenant]) != tenant {
		return Summary{}, false
	}
	s := Summary{
		ID:         id,
		RunID:      ex.GetExecution().GetRunId(),
		Definition: keyword(fields[workflows.SearchAttrDefinition]),
		Version:    keyword(fields[workflows.SearchAttrVersion]),
		State:      o.closedState(ex.GetStatus(), ex.GetMemo()),
		StartedAt:  ex.GetStartTime().AsTime(),
	}
	if ex.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING && ex.GetCloseTime() != nil {
		t := ex.GetCloseTime().AsTime()
		s.ClosedAt = &t
	}
	return s, true
}

func keyword(p *commonpb.Payload) string {
	if p == nil {
		return ""
	}
	var s string
	if err := converter.GetDefaultDataConverter().FromPayload(p, &s); err != nil {
		// A keyword search attribute may come back as a one-element list.
		var l []string
		if converter.GetDefaultDataConverter().FromPayload(p, &l) == nil && len(l) == 1 {
			return l[0]
		}
		return ""
	}
	return s
}

// A cursor is Temporal's page token bound to the visibility query it
// belongs to (which names the tenant and the filters):
// base64url(token) "." base64url(sha256(query, token)[:12]). A cursor of
// another query is refused before it reaches Temporal, where a foreign
// page token stalls the call until its deadline. (The sum has no secret:
// it stops mistakes and cross-query reuse, and a forged cursor can only
// page through the caller's own query.)
func makeCursor(query string, token []byte) string {
	return base64.RawURLEncoding.EncodeToString(token) + "." + base64.RawURLEncoding.EncodeToString(cursorSum(query, token))
}

func cursorSum(query string, token []byte) []byte {
	h := sha256.New()
	h.Write([]byte(query))
	h.Write([]byte{0})
	h.Write(token)
	return h.Sum(nil)[:12]
}

// splitCursor decodes a cursor's token and sum.
func splitCursor(c string) (token, sum []byte, err error) {
	if len(c) > maxCursor {
		return nil, nil, fmt.Errorf("cursor too long")
	}
	t, s, ok := strings.Cut(c, ".")
	if !ok {
		return nil, nil, fmt.Errorf("bad cursor")
	}
	token, err1 := base64.RawURLEncoding.DecodeString(t)
	sum, err2 := base64.RawURLEncoding.DecodeString(s)
	if err1 != nil || err2 != nil || len(token) == 0 || len(sum) != 12 {
		return nil, nil, fmt.Errorf("bad cursor")
	}
	return token, sum, nil
}
