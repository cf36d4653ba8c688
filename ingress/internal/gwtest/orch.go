package gwtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/orchestrator"
)

// Orch is an in-memory orchestrator (ingress.Orchestrator and
// mcpserver.Orchestrator): definitions per tenant, workflows that stay
// running unless their definition is listed in Complete, scripted pending
// approvals.
type Orch struct {
	mu sync.Mutex
	// Defs are the definitions by tenant.
	Defs map[string][]definition.Definition
	// Complete makes workflows of these definitions succeed at once with
	// the given output.
	Complete map[string]json.RawMessage
	// Pending are the approvals PendingApprovals returns, by tenant.
	Pending map[string][]orchestrator.Approval
	// Decisions received, by workflow id.
	Decisions map[string][]orchestrator.DecideRequest
	// Starts received.
	Starts []orchestrator.StartRequest
	wf     map[string]*orchestrator.Status  // tenant/id
	inputs map[string]orchestrator.RunInput // tenant/id
	idem   map[string]string                // tenant/key -> id
	n      int
}

// NewOrch returns an empty orchestrator.
func NewOrch() *Orch {
	return &Orch{Defs: map[string][]definition.Definition{}, Complete: map[string]json.RawMessage{},
		Pending: map[string][]orchestrator.Approval{}, Decisions: map[string][]orchestrator.DecideRequest{},
		wf: map[string]*orchestrator.Status{}, inputs: map[string]orchestrator.RunInput{}, idem: map[string]string{}}
}

// AddDefinition parses a definition and makes it visible to tenant.
func (o *Orch) AddDefinition(tenant, yaml string) error {
	d, err := definition.Parse([]byte(yaml))
	if err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.Defs[tenant] = append(o.Defs[tenant], *d)
	return nil
}

func notFound(code, format string, args ...any) error {
	return &orchestrator.Error{Kind: orchestrator.ErrNotFound, Code: code, Message: fmt.Sprintf(format, args...)}
}

func (o *Orch) def(tenant, name, version string) (definition.Definition, bool) {
	var best *definition.Definition
	for i, d := range o.Defs[tenant] {
		if d.Name != name || (version != "" && d.Version != version) {
			continue
		}
		if best == nil || definition.CompareVersions(d.Version, best.Version) > 0 {
			best = &o.Defs[tenant][i]
		}
	}
	if best == nil {
		return definition.Definition{}, false
	}
	return *best, true
}

// Start implements the orchestrator operation.
func (o *Orch) Start(_ context.Context, c orchestrator.Caller, req orchestrator.StartRequest) (orchestrator.StartResult, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.Starts = append(o.Starts, req)
	d, ok := o.def(c.Tenant, req.Definition, req.Version)
	if !ok {
		return orchestrator.StartResult{}, notFound("definition_not_found", "definition %s not found", req.Definition)
	}
	in := req.Input
	if len(in) == 0 {
		in = json.RawMessage(`{}`)
	}
	if err := d.ValidateInput(in); err != nil {
		return orchestrator.StartResult{}, err
	}
	if req.IdempotencyKey != "" {
		if id, ok := o.idem[c.Tenant+"/"+req.IdempotencyKey]; ok {
			return orchestrator.StartResult{ID: id, RunID: "run-" + id, Definition: d.Name, Version: d.Version}, nil
		}
	}
	o.n++
	id := fmt.Sprintf("wf-%d", o.n)
	if req.IdempotencyKey != "" {
		o.idem[c.Tenant+"/"+req.IdempotencyKey] = id
	}
	st := &orchestrator.Status{ID: id, RunID: "run-" + id, Status: workflows.Status{
		Definition: d.Name, Version: d.Version, Tenant: c.Tenant, State: workflows.RunRunning,
		StartedAt: time.Now().UTC(), Steps: []workflows.StepStatus{}, Seq: 1,
	}}
	if out, ok := o.Complete[d.Name]; ok {
		st.State = workflows.RunSucceeded
		st.Output = out
		st.Seq = 2
	}
	o.wf[c.Tenant+"/"+id] = st
	o.inputs[c.Tenant+"/"+id] = orchestrator.RunInput{ID: id, RunID: st.RunID, Input: in, Definition: d, SubmittedBy: c.SubmittedBy(), Labels: req.Labels}
	return orchestrator.StartResult{ID: id, RunID: st.RunID, Definition: d.Name, Version: d.Version, Created: true}, nil
}

// Status implements the orchestrator operation.
func (o *Orch) Status(_ context.Context, c orchestrator.Caller, id string) (orchestrator.Status, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	st, ok := o.wf[c.Tenant+"/"+id]
	if !ok {
		return orchestrator.Status{}, notFound("workflow_not_found", "workflow %q not found", id)
	}
	return *st, nil
}

// List implements the orchestrator operation.
func (o *Orch) List(_ context.Context, c orchestrator.Caller, _ orchestrator.ListFilter) (orchestrator.Page, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	page := orchestrator.Page{Items: []orchestrator.Summary{}}
	for key, st := range o.wf {
		if id, ok := orchestrator.APIID(c.Tenant, key); ok {
			page.Items = append(page.Items, orchestrator.Summary{ID: id, Definition: st.Definition, Version: st.Version, State: st.State})
		}
	}
	return page, nil
}

// Watch sends the current status, then ends when the workflow is closed,
// or waits for ctx.
func (o *Orch) Watch(ctx context.Context, c orchestrator.Caller, id string) (<-chan orchestrator.Update, error) {
	st, err := o.Status(ctx, c, id)
	if err != nil {
		return nil, err
	}
	ch := make(chan orchestrator.Update, 1)
	ch <- orchestrator.Update{Status: st}
	go func() {
		defer close(ch)
		if st.State == workflows.RunRunning {
			<-ctx.Done()
		}
	}()
	return ch, nil
}

// Input implements the orchestrator operation.
func (o *Orch) Input(_ context.Context, c orchestrator.Caller, id string) (orchestrator.RunInput, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	in, ok := o.inputs[c.Tenant+"/"+id]
	if !ok {
		return orchestrator.RunInput{}, notFound("workflow_not_found", "workflow %q not found", id)
	}
	return in, nil
}

// Cancel implements the orchestrator operation.
func (o *Orch) Cancel(ctx context.Context, c orchestrator.Caller, id string) error {
	_, err := o.Status(ctx, c, id)
	return err
}

// Decide records the decision.
func (o *Orch) Decide(ctx context.Context, c orchestrator.Caller, id string, req orchestrator.DecideRequest) (workflows.DecisionResult, error) {
	if err := orchestrator.CheckDecideRequest(req); err != nil {
		return workflows.DecisionResult{}, err
	}
	if _, err := o.Status(ctx, c, id); err != nil {
		return workflows.DecisionResult{}, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.Decisions[id] = append(o.Decisions[id], req)
	outcome := "approved"
	if req.Decision == workflows.Reject {
		outcome = "rejected"
	}
	return workflows.DecisionResult{StepID: req.StepID, Accepted: true, Resolved: true, Outcome: outcome, Votes: 1, Quorum: 1}, nil
}

// PendingApprovals returns the scripted approvals of the tenant.
func (o *Orch) PendingApprovals(_ context.Context, c orchestrator.Caller) (orchestrator.Approvals, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return orchestrator.Approvals{Items: append([]orchestrator.Approval{}, o.Pending[c.Tenant]...)}, nil
}

// ListDefinitions implements the orchestrator operation.
func (o *Orch) ListDefinitions(_ context.Context, c orchestrator.Caller) ([]orchestrator.DefinitionInfo, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := []orchestrator.DefinitionInfo{}
	for _, d := range o.Defs[c.Tenant] {
		out = append(out, orchestrator.DefinitionInfo{Name: d.Name, Version: d.Version, Description: d.Description, Source: "file"})
	}
	return out, nil
}

// GetDefinition implements the orchestrator operation.
func (o *Orch) GetDefinition(_ context.Context, c orchestrator.Caller, name, version string) (definition.Definition, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	d, ok := o.def(c.Tenant, name, version)
	if !ok {
		return definition.Definition{}, notFound("definition_not_found", "definition %s not found", name)
	}
	return d, nil
}

// PublishDefinition is not supported.
func (o *Orch) PublishDefinition(context.Context, orchestrator.Caller, string, string, definition.Definition) (orchestrator.DefinitionInfo, error) {
	return orchestrator.DefinitionInfo{}, errors.New("not supported by the test orchestrator")
}
