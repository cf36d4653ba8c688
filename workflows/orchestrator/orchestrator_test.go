package orchestrator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/definition"
)

func TestIDs(t *testing.T) {
	a, b := IdempotentID("acme", "k1"), IdempotentID("acme", "k1")
	if a != b || a == IdempotentID("other", "k1") || a == IdempotentID("acme", "k2") || !ValidID(a) {
		t.Errorf("idempotent ids %q %q", a, b)
	}
	if id := NewID(); !ValidID(id) {
		t.Errorf("new id %q", id)
	}
	if wid := WorkflowID("acme", "x"); wid != "acme/x" {
		t.Errorf("%q", wid)
	}
	if id, ok := APIID("acme", "acme/x"); !ok || id != "x" {
		t.Error("APIID")
	}
	for _, wid := range []string{"other/x", "acme/", "acmex", "acm/x"} {
		if _, ok := APIID("acme", wid); ok {
			t.Errorf("APIID(%q) accepted", wid)
		}
	}
	for _, bad := range []string{"", "a/b", "../x", "x y", strings.Repeat("a", 129), "-x"} {
		if ValidID(bad) {
			t.Errorf("ValidID(%q)", bad)
		}
	}
}

func TestBodyHash(t *testing.T) {
	h1, _ := BodyHash(StartRequest{Definition: "d", Input: json.RawMessage(`{"a":1,"b":{"c":[1,2.50]}}`)})
	h2, _ := BodyHash(StartRequest{Definition: "d", Input: json.RawMessage(` { "b" : {"c":[1,2.50]}, "a":1 } `)})
	h3, _ := BodyHash(StartRequest{Definition: "d", Input: json.RawMessage(`{"a":1,"b":{"c":[1,2.5]}}`)})
	h4, _ := BodyHash(StartRequest{Definition: "d", Version: "2", Input: json.RawMessage(`{"a":1,"b":{"c":[1,2.50]}}`)})
	// The key is not part of the body.
	h5, _ := BodyHash(StartRequest{Definition: "d", IdempotencyKey: "k", Input: json.RawMessage(`{"a":1,"b":{"c":[1,2.50]}}`)})
	if h1 != h2 || h1 != h5 {
		t.Error("same body, different hash")
	}
	if h1 == h3 || h1 == h4 {
		t.Error("different bodies, same hash")
	}
	if _, err := BodyHash(StartRequest{Definition: "d", Input: json.RawMessage(`{`)}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad input: %v", err)
	}
}

func TestVisibilityQuery(t *testing.T) {
	o := &Orchestrator{}
	q := o.visibilityQuery("acme", ListFilter{
		State: workflows.RunFailed, Definition: "order",
		StartedAfter:  time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		StartedBefore: time.Date(2025, 2, 1, 0, 0, 0, 0, time.FixedZone("x", 3600)),
	})
	want := "WorkflowType = 'gateflow.Orchestration' AND GateflowTenant = 'acme' AND ExecutionStatus = 'Failed' AND " +
		"GateflowDefinition = 'order' AND StartTime >= '2025-01-01T00:00:00Z' AND StartTime < '2025-01-31T23:00:00Z'"
	if q != want {
		t.Errorf("query\n got %s\nwant %s", q, want)
	}
	if q := o.visibilityQuery("acme", ListFilter{}); q != "WorkflowType = 'gateflow.Orchestration' AND GateflowTenant = 'acme'" {
		t.Errorf("bare %s", q)
	}
	if quote("a'b") != "'ab'" {
		t.Error("quote")
	}
}

func TestCheckListFilter(t *testing.T) {
	ok := []ListFilter{{}, {State: workflows.RunRunning, Definition: "a.b-c_d", Limit: 100, Cursor: makeCursor("q", []byte{1, 2, 3})}}
	for _, f := range ok {
		if err := CheckListFilter(f); err != nil {
			t.Errorf("%+v: %v", f, err)
		}
	}
	now := time.Now()
	bad := []ListFilter{
		{State: "compensated"}, {State: "x' OR 1=1"}, {Definition: "a' OR '1'='1"}, {Limit: -1}, {Limit: 101},
		{Cursor: "!!"}, {Cursor: "AQID"}, {Cursor: "AQID.AQID"}, {Cursor: strings.Repeat("A", 5000)}, {StartedAfter: now, StartedBefore: now},
	}
	for _, f := range bad {
		err := CheckListFilter(f)
		var oe *Error
		if !errors.As(err, &oe) || !errors.Is(err, ErrInvalid) || len(oe.Details) == 0 {
			t.Errorf("%+v: %v", f, err)
		}
	}
}

func TestCursor(t *testing.T) {
	c := makeCursor("query-a", []byte("token"))
	tok, sum, err := splitCursor(c)
	if err != nil || string(tok) != "token" || !bytes.Equal(sum, cursorSum("query-a", tok)) {
		t.Fatalf("%q: %q %v", c, tok, err)
	}
	if bytes.Equal(sum, cursorSum("query-b", tok)) {
		t.Error("a cursor is valid for another query")
	}
}

func TestMayDecide(t *testing.T) {
	p := workflows.PendingApproval{StepID: "s", Approvers: workflows.Approvers{Roles: []string{"finance"}, Users: []string{"bob"}},
		Votes: []workflows.Vote{{By: workflows.Identity{KeyID: "k9", User: "carol"}}}}
	cases := []struct {
		c           Caller
		submittedBy string
		want        bool
	}{
		{Caller{KeyID: "k1", Roles: []string{"finance"}}, "k7", true},
		{Caller{KeyID: "k1", User: "bob", Roles: []string{"approver"}}, "k7", true},
		{Caller{KeyID: "k1", User: "alice", Roles: []string{"approver"}}, "k7", false},
		{Caller{KeyID: "k9", User: "dave", Roles: []string{"finance"}}, "k7", true},
		{Caller{KeyID: "k2", User: "carol", Roles: []string{"finance"}}, "k7", false},
		{Caller{KeyID: "k1", Roles: []string{"admin"}}, "k7", false},
		// Separation of duties: the submitter's key (no user), or its
		// user whatever key, may not vote.
		{Caller{KeyID: "k1", Roles: []string{"finance"}}, "k1", false},
		{Caller{KeyID: "k3", User: "bob", Roles: []string{"finance"}}, "bob", false},
		{Caller{KeyID: "k3", User: "bob", Roles: []string{"finance"}}, "k3", true},
	}
	for _, c := range cases {
		if got := MayDecide(c.c, p, c.submittedBy); got != c.want {
			t.Errorf("%+v submitted by %s: %v", c.c, c.submittedBy, got)
		}
	}
	self := p
	self.AllowSelfApproval = true
	if !MayDecide(Caller{KeyID: "k1", Roles: []string{"finance"}}, self, "k1") {
		t.Error("allow_self_approval does not let the submitter vote")
	}
	p.Votes = []workflows.Vote{{By: workflows.Identity{KeyID: "k9"}}}
	if MayDecide(Caller{KeyID: "k9", Roles: []string{"finance"}}, p, "") {
		t.Error("a key without user voted twice")
	}
	if !MayDecide(Caller{KeyID: "k1"}, workflows.PendingApproval{}, "") {
		t.Error("an approval without approvers admits anyone")
	}
}

func TestApprovalQueries(t *testing.T) {
	o := &Orchestrator{}
	q := o.approvalQueries(Caller{Tenant: "acme", KeyID: "k1", User: "alice", Roles: []string{"approver", "manager", "it's"}})
	running := "WorkflowType = 'gateflow.Orchestration' AND GateflowTenant = 'acme' AND ExecutionStatus = 'Running'"
	want := []string{
		running + " AND GateflowAwaiting IN ('any', 'role:approver', 'role:manager', 'user:alice')",
		running + " AND (TemporalChangeVersion IS NULL OR TemporalChangeVersion != 'gateflow.visibility-1')",
	}
	if len(q) != 2 || q[0] != want[0] || q[1] != want[1] {
		t.Errorf("queries\n got %q\nwant %q", q, want)
	}
	if q := o.approvalQueries(Caller{Tenant: "acme", KeyID: "k1"}); !strings.HasSuffix(q[0], "GateflowAwaiting IN ('any')") {
		t.Errorf("key without roles or user: %s", q[0])
	}
}

func TestClosedState(t *testing.T) {
	memo := func(v any) *commonpb.Memo {
		p, err := converter.GetDefaultDataConverter().ToPayload(v)
		if err != nil {
			t.Fatal(err)
		}
		return &commonpb.Memo{Fields: map[string]*commonpb.Payload{workflows.MemoState: p}}
	}
	cases := []struct {
		status enumspb.WorkflowExecutionStatus
		memo   *commonpb.Memo
		want   workflows.RunState
	}{
		{enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, memo("compensated"), workflows.RunCompensated},
		{enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED, memo("compensated"), workflows.RunCompensated},
		{enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, memo("timed-out"), workflows.RunTimedOut},
		{enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, nil, workflows.RunFailed},
		{enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, &commonpb.Memo{}, workflows.RunSucceeded},
		{enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED, nil, workflows.RunTerminated},
		{enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, memo("running"), workflows.RunFailed},
		{enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, memo(42), workflows.RunFailed},
		{enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, memo("compensated"), workflows.RunRunning},
	}
	o := &Orchestrator{opts: Options{DataConverter: converter.GetDefaultDataConverter()}}
	for _, c := range cases {
		if got := o.closedState(c.status, c.memo); got != c.want {
			t.Errorf("%s with memo %v: %s, want %s", c.status, c.memo, got, c.want)
		}
	}
}

func TestDecideErrorMapping(t *testing.T) {
	cases := []struct {
		typ  string
		kind error
		code string
	}{
		{workflows.ErrTypeUnknownStep, ErrNotFound, "step_not_found"},
		{workflows.ErrTypeStepNotWaiting, ErrConflict, "step_not_waiting"},
		{workflows.ErrTypeDuplicateVote, ErrConflict, "duplicate_vote"},
		{workflows.ErrTypeNotApprover, ErrForbidden, "not_approver"},
		{workflows.ErrTypeInvalidDecision, ErrInvalid, "invalid_decision"},
	}
	for _, c := range cases {
		err := decideError(fmt.Errorf("update: %w", temporal.NewApplicationError("msg", c.typ)), "w", "s")
		var oe *Error
		if !errors.As(err, &oe) || !errors.Is(err, c.kind) || oe.Code != c.code || oe.Message != "msg" {
			t.Errorf("%s: %v", c.typ, err)
		}
	}
	if err := decideError(serviceerror.NewNotFound("gone"), "w", "s"); !errors.Is(err, ErrConflict) {
		t.Errorf("closed: %v", err)
	}
	if err := temporalError(serviceerror.NewUnavailable("down"), "x"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("unavailable: %v", err)
	}
	if err := temporalError(serviceerror.NewNotFound("x"), "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("not found: %v", err)
	}
	if err := temporalError(context.DeadlineExceeded, "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline: %v", err)
	}
}

func TestCheckDecideRequest(t *testing.T) {
	if err := CheckDecideRequest(DecideRequest{StepID: "fanout[3].approve", Decision: "approve"}); err != nil {
		t.Error(err)
	}
	for _, r := range []DecideRequest{
		{StepID: "s", Decision: "yes"}, {StepID: "", Decision: "approve"}, {StepID: "a/b", Decision: "reject"},
		{StepID: "s", Decision: "reject", Comment: strings.Repeat("x", MaxComment+1)}, {StepID: "s", Decision: "reject", Comment: "\xff"},
	} {
		if err := CheckDecideRequest(r); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+.40v: %v", r, err)
		}
	}
}

// fakeDefs is a Definitions for Start's resolve path.
type fakeDefs struct{}

func (fakeDefs) Get(_ context.Context, _, name, version string) (definition.Definition, error) {
	if name == "order" {
		return definition.Definition{Name: "order", Version: "1", Steps: []definition.Step{{ID: "a", Kind: "wait"}}}, nil
	}
	return definition.Definition{}, fmt.Errorf("store: %w", ErrNotFound)
}
func (fakeDefs) List(context.Context, string) ([]DefinitionInfo, error) { return nil, nil }
func (fakeDefs) Publish(context.Context, string, definition.Definition, string) (DefinitionInfo, error) {
	return DefinitionInfo{}, nil
}

type allowAll bool

func (a allowAll) AllowInline(string) bool { return bool(a) }

func TestResolve(t *testing.T) {
	o := &Orchestrator{opts: Options{Definitions: fakeDefs{}, ValidateDefinition: func(_ string, d *definition.Definition) error {
		if len(d.Steps) == 0 {
			return &definition.ValidationError{Problems: []definition.Problem{{Path: "steps", Message: "empty"}}}
		}
		return nil
	}}}
	c := Caller{Tenant: "acme", KeyID: "k"}
	if d, err := o.resolve(context.Background(), c, StartRequest{Definition: "order"}); err != nil || d.Version != "1" {
		t.Errorf("%+v %v", d, err)
	}
	if _, err := o.resolve(context.Background(), c, StartRequest{Definition: "nope"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
	inline := &definition.Definition{Steps: []definition.Step{{ID: "a", Kind: "wait"}}}
	if _, err := o.resolve(context.Background(), c, StartRequest{Inline: inline}); !errors.Is(err, ErrForbidden) {
		t.Errorf("inline not allowed: %v", err)
	}
	o.opts.Policies = allowAll(true)
	if d, err := o.resolve(context.Background(), c, StartRequest{Inline: inline}); err != nil || d.Name != "inline" {
		t.Errorf("inline: %+v %v", d, err)
	}
	var ve *definition.ValidationError
	if _, err := o.resolve(context.Background(), c, StartRequest{Inline: &definition.Definition{}}); !errors.As(err, &ve) || ve.Subject != "definition" {
		t.Errorf("invalid inline: %v", err)
	}
}
