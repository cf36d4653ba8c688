package ingress

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/orchestrator"
)

// fakeOrch is an in-memory Orchestrator. It checks that everything reaching
// it is well-formed (the ingress must never pass anything invalid) and
// reports violations through t.
type fakeOrch struct {
	t  testing.TB
	mu sync.Mutex
	// workflows by tenant/id
	wf    map[string]*fakeWF
	calls map[string]int
	// watch is the script of Watch: statuses sent before the channel closes;
	// block keeps the stream open until ctx ends.
	watch      []orchestrator.Status
	watchBlock bool
	// statusDelay slows Status (graceful shutdown test).
	statusDelay time.Duration
	// decideErr is returned by Decide when set.
	decideErr error
	// panicOn makes a method panic (recovery test).
	panicOn string
	defs    map[string]definition.Definition
}

type fakeWF struct {
	id, hash, def, ver string
	state              workflows.RunState
}

func newFake(t testing.TB) *fakeOrch {
	return &fakeOrch{t: t, wf: map[string]*fakeWF{}, calls: map[string]int{}, defs: map[string]definition.Definition{
		"order@1": {Name: "order", Version: "1", Steps: []definition.Step{{ID: "a", Kind: "wait", Duration: "1s"}}},
	}}
}

func (f *fakeOrch) call(name string, c orchestrator.Caller) {
	f.mu.Lock()
	f.calls[name]++
	f.mu.Unlock()
	if !orchestrator.ValidTenant(c.Tenant) || c.KeyID == "" || c.RequestID == "" {
		f.t.Errorf("%s: bad caller %+v", name, c)
	}
	if f.panicOn == name {
		panic("boom in " + name)
	}
}

func (f *fakeOrch) count(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[name]
}

func (f *fakeOrch) checkID(name, id string) {
	if !orchestrator.ValidID(id) {
		f.t.Errorf("%s: invalid id %q reached the orchestrator", name, id)
	}
}

func (f *fakeOrch) Start(ctx context.Context, c orchestrator.Caller, req orchestrator.StartRequest) (orchestrator.StartResult, error) {
	f.call("Start", c)
	switch {
	case req.Inline == nil && !orchestrator.ValidName(req.Definition):
		f.t.Errorf("Start: invalid definition name %q", req.Definition)
	case req.Inline != nil && (req.Definition != "" || req.Version != ""):
		f.t.Errorf("Start: inline definition with name/version")
	case req.Version != "" && !orchestrator.ValidVersion(req.Version):
		f.t.Errorf("Start: invalid version %q", req.Version)
	}
	if len(req.Input) > 0 {
		var m map[string]any
		if err := json.Unmarshal(req.Input, &m); err != nil {
			f.t.Errorf("Start: input is not a JSON object: %q", req.Input)
		}
	}
	if len(req.Labels) > maxLabels {
		f.t.Errorf("Start: %d labels", len(req.Labels))
	}
	if req.IdempotencyKey != "" && !validIdempotencyKey(req.IdempotencyKey) {
		f.t.Errorf("Start: bad idempotency key %q", req.IdempotencyKey)
	}
	if req.Inline == nil {
		ref := req.Definition + "@" + req.Version
		if req.Version == "" {
			ref = req.Definition + "@1"
		}
		if _, ok := f.defs[ref]; !ok {
			return orchestrator.StartResult{}, &orchestrator.Error{Kind: orchestrator.ErrNotFound, Code: "definition_not_found", Message: "definition " + ref + " not found"}
		}
	}
	hash, err := orchestrator.BodyHash(req)
	if err != nil {
		return orchestrator.StartResult{}, err
	}
	id := orchestrator.NewID()
	if req.IdempotencyKey != "" {
		id = orchestrator.IdempotentID(c.Tenant, req.IdempotencyKey)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if w, ok := f.wf[c.Tenant+"/"+id]; ok {
		if w.hash != hash {
			return orchestrator.StartResult{}, &orchestrator.Error{Kind: orchestrator.ErrConflict, Code: "idempotency_conflict", Message: "key reused"}
		}
		return orchestrator.StartResult{ID: id, RunID: "run-" + id, Definition: w.def, Version: w.ver}, nil
	}
	def, ver := req.Definition, "1"
	if req.Inline != nil {
		def, ver = "inline", "0"
	}
	f.wf[c.Tenant+"/"+id] = &fakeWF{id: id, hash: hash, def: def, ver: ver, state: workflows.RunRunning}
	return orchestrator.StartResult{ID: id, RunID: "run-" + id, Definition: def, Version: ver, Created: true}, nil
}

func (f *fakeOrch) get(c orchestrator.Caller, id string) (*fakeWF, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w, ok := f.wf[c.Tenant+"/"+id]
	if !ok {
		return nil, &orchestrator.Error{Kind: orchestrator.ErrNotFound, Code: "workflow_not_found", Message: fmt.Sprintf("workflow %q not found", id)}
	}
	return w, nil
}

func (f *fakeOrch) Status(ctx context.Context, c orchestrator.Caller, id string) (orchestrator.Status, error) {
	f.call("Status", c)
	f.checkID("Status", id)
	if f.statusDelay > 0 {
		select {
		case <-time.After(f.statusDelay):
		case <-ctx.Done():
			return orchestrator.Status{}, ctx.Err()
		}
	}
	w, err := f.get(c, id)
	if err != nil {
		return orchestrator.Status{}, err
	}
	return orchestrator.Status{ID: id, RunID: "run-" + id, Status: workflows.Status{
		Definition: w.def, Version: w.ver, Tenant: c.Tenant, State: w.state, Steps: []workflows.StepStatus{},
	}}, nil
}

func (f *fakeOrch) List(ctx context.Context, c orchestrator.Caller, flt orchestrator.ListFilter) (orchestrator.Page, error) {
	f.call("List", c)
	if err := orchestrator.CheckListFilter(flt); err != nil {
		f.t.Errorf("List: invalid filter reached the orchestrator: %+v: %v", flt, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	page := orchestrator.Page{Items: []orchestrator.Summary{}}
	for key, w := range f.wf {
		if id, ok := orchestrator.APIID(c.Tenant, key); ok {
			page.Items = append(page.Items, orchestrator.Summary{ID: id, Definition: w.def, Version: w.ver, State: w.state})
		}
	}
	return page, nil
}

func (f *fakeOrch) Watch(ctx context.Context, c orchestrator.Caller, id string) (<-chan orchestrator.Update, error) {
	f.call("Watch", c)
	f.checkID("Watch", id)
	if _, err := f.get(c, id); err != nil {
		return nil, err
	}
	ch := make(chan orchestrator.Update)
	go func() {
		defer close(ch)
		for _, st := range f.watch {
			select {
			case ch <- orchestrator.Update{Status: st}:
			case <-ctx.Done():
				return
			}
		}
		if f.watchBlock {
			<-ctx.Done()
		}
	}()
	return ch, nil
}

func (f *fakeOrch) Input(ctx context.Context, c orchestrator.Caller, id string) (orchestrator.RunInput, error) {
	f.call("Input", c)
	f.checkID("Input", id)
	w, err := f.get(c, id)
	if err != nil {
		return orchestrator.RunInput{}, err
	}
	return orchestrator.RunInput{ID: id, RunID: "r1", Input: json.RawMessage(`{"amount":1}`), Definition: f.defs[w.def+"@"+w.ver], SubmittedBy: c.SubmittedBy()}, nil
}

func (f *fakeOrch) Cancel(ctx context.Context, c orchestrator.Caller, id string) error {
	f.call("Cancel", c)
	f.checkID("Cancel", id)
	w, err := f.get(c, id)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if w.state != workflows.RunRunning {
		return &orchestrator.Error{Kind: orchestrator.ErrConflict, Code: "workflow_closed", Message: "closed"}
	}
	w.state = workflows.RunCancelled
	return nil
}

func (f *fakeOrch) Decide(ctx context.Context, c orchestrator.Caller, id string, req orchestrator.DecideRequest) (workflows.DecisionResult, error) {
	f.call("Decide", c)
	f.checkID("Decide", id)
	if err := orchestrator.CheckDecideRequest(req); err != nil {
		f.t.Errorf("Decide: invalid decision reached the orchestrator: %+v", req)
	}
	if _, err := f.get(c, id); err != nil {
		return workflows.DecisionResult{}, err
	}
	if f.decideErr != nil {
		return workflows.DecisionResult{}, f.decideErr
	}
	return workflows.DecisionResult{StepID: req.StepID, Accepted: true, Resolved: true, Outcome: "approved", Votes: 1, Quorum: 1}, nil
}

func (f *fakeOrch) PendingApprovals(ctx context.Context, c orchestrator.Caller) (orchestrator.Approvals, error) {
	f.call("PendingApprovals", c)
	return orchestrator.Approvals{Items: []orchestrator.Approval{}}, nil
}

func (f *fakeOrch) ListDefinitions(ctx context.Context, c orchestrator.Caller) ([]orchestrator.DefinitionInfo, error) {
	f.call("ListDefinitions", c)
	return []orchestrator.DefinitionInfo{{Name: "order", Version: "1", Source: "file"}}, nil
}

func (f *fakeOrch) GetDefinition(ctx context.Context, c orchestrator.Caller, name, version string) (definition.Definition, error) {
	f.call("GetDefinition", c)
	d, ok := f.defs[name+"@"+version]
	if !ok {
		return definition.Definition{}, &orchestrator.Error{Kind: orchestrator.ErrNotFound, Code: "definition_not_found", Message: "no"}
	}
	return d, nil
}

func (f *fakeOrch) PublishDefinition(ctx context.Context, c orchestrator.Caller, name, version string, def definition.Definition) (orchestrator.DefinitionInfo, error) {
	f.call("PublishDefinition", c)
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.defs[name+"@"+version]; ok {
		return orchestrator.DefinitionInfo{}, &orchestrator.Error{Kind: orchestrator.ErrConflict, Code: "version_exists", Message: "exists"}
	}
	if len(def.Steps) == 0 {
		return orchestrator.DefinitionInfo{}, &definition.ValidationError{Subject: "definition", Problems: []definition.Problem{{Path: "steps", Message: "at least one step"}}}
	}
	f.defs[name+"@"+version] = def
	return orchestrator.DefinitionInfo{Name: name, Version: version, Source: "api"}, nil
}

// Test keys: one per role in tenant acme, one admin in tenant other.
var testKeys = map[string]struct {
	token  string
	tenant string
	roles  []string
	user   string
}{
	"submitter": {"gf_a00000000001_submittersecretsubmittersecret", "acme", []string{"submitter"}, ""},
	"approver":  {"gf_a00000000002_approversecretapproversecret00", "acme", []string{"approver", "finance"}, "alice"},
	"analyst":   {"gf_a00000000003_analystsecretanalystsecret0000", "acme", []string{"analyst"}, ""},
	"admin":     {"gf_a00000000004_adminsecretadminsecretadmin000", "acme", []string{"admin"}, "root"},
	"other":     {"gf_b00000000001_othersecretothersecretother000", "other", []string{"admin"}, ""},
	"tiny":      {"gf_c00000000001_tinysecrettinysecrettinysecret0", "tiny", []string{"submitter"}, ""},
	"scoped":    {"gf_d00000000001_scopedsecretscopedsecretscoped", "scoped", []string{"admin"}, ""},
	// Other submitters of acme: one without a user, two keys of one user.
	"submitter2": {"gf_a00000000006_submitter2secretsubmitter2sec", "acme", []string{"submitter"}, ""},
	"bob1":       {"gf_a00000000007_bob1secretbob1secretbob1secret0", "acme", []string{"submitter"}, "bob"},
	"bob2":       {"gf_a00000000008_bob2secretbob2secretbob2secret0", "acme", []string{"submitter"}, "bob"},
}

func testStore(t testing.TB) *auth.Store {
	var keys []auth.Key
	for _, k := range testKeys {
		keys = append(keys, auth.EntryFor(k.token, k.tenant, k.roles, k.user))
	}
	st, err := auth.NewStore("", keys...)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
