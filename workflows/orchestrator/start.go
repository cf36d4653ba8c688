package orchestrator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/wire"
)

// MaxIdempotencyKey is the longest accepted Idempotency-Key.
const MaxIdempotencyKey = 255

// StartRequest asks for a new orchestration: either a published definition
// by name (and version, "" for the latest) or an inline definition.
type StartRequest struct {
	Definition string
	Version    string
	Inline     *definition.Definition
	// Input is a JSON value (normally an object) checked against the
	// definition's input schema.
	Input json.RawMessage
	// IdempotencyKey, when set, makes the start idempotent per tenant.
	IdempotencyKey string
	// Labels are copied into RunMeta and from there into every call record.
	Labels map[string]string
	// ID, when set, is the API id of the new run instead of a fresh one:
	// callers that derive ids (the catalogue names the consumer in the ids
	// of the runs it starts for them) set it. It is not combined with
	// IdempotencyKey; a run with this id already started is ErrConflict.
	ID string
}

// StartResult names the started (or already existing) orchestration.
type StartResult = wire.StartResult

// Start resolves the definition, validates the input and starts the
// orchestration workflow. With an idempotency key, the workflow id is
// derived from (tenant, key) and Temporal rejects a second start; the
// existing workflow is then returned when its memo holds the same body hash,
// else ErrConflict. Without a key the id is a fresh UUIDv7.
func (o *Orchestrator) Start(ctx context.Context, caller Caller, req StartRequest) (StartResult, error) {
	if err := checkCaller(caller); err != nil {
		return StartResult{}, err
	}
	if len(req.IdempotencyKey) > MaxIdempotencyKey {
		return StartResult{}, newError(ErrInvalid, "invalid_idempotency_key", "Idempotency-Key is longer than %d bytes", MaxIdempotencyKey)
	}
	hash, err := BodyHash(req)
	if err != nil {
		return StartResult{}, err
	}
	def, err := o.resolve(ctx, caller, req)
	if err != nil {
		return StartResult{}, err
	}
	input := req.Input
	if len(bytes.TrimSpace(input)) == 0 {
		input = json.RawMessage(`{}`)
	}
	if err := o.opts.ValidateInput(&def, input); err != nil {
		return StartResult{}, validationOr(err, "input", "validate input")
	}

	id := NewID()
	switch {
	case req.ID != "" && (req.IdempotencyKey != "" || !ValidID(req.ID)):
		return StartResult{}, newError(ErrInvalid, "invalid_request", "a run id must be a valid id and cannot be combined with an Idempotency-Key")
	case req.ID != "":
		id = req.ID
	case req.IdempotencyKey != "":
		id = IdempotentID(caller.Tenant, req.IdempotencyKey)
	}
	wid := WorkflowID(caller.Tenant, id)
	opts := client.StartWorkflowOptions{
		ID:                    wid,
		TaskQueue:             o.opts.TaskQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		// FAIL on a running duplicate too, so a retried request can never
		// attach to or start a second execution.
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		// The interpreter enforces the definition's own timeout and then runs
		// compensations; Temporal's limit is only a backstop beyond that.
		WorkflowExecutionTimeout: workflows.ExecutionTimeout(&def),
		TypedSearchAttributes: temporal.NewSearchAttributes(
			o.saTenant.ValueSet(caller.Tenant),
			o.saDefinition.ValueSet(def.Name),
			o.saVersion.ValueSet(def.Version),
		),
		// Fairness: the tenant is the fairness key of the workflow's
		// tasks and (inherited) of its activities, so that Temporal's
		// matching dispatches each tenant's backlog in turn and one
		// tenant's burst cannot queue ahead of every other tenant (on a
		// server with matching.enableFairness; see docs/SECURITY.md).
		Priority: temporal.Priority{FairnessKey: caller.Tenant},
		Memo: map[string]any{
			workflows.MemoRequestID:   caller.RequestID,
			workflows.MemoBodyHash:    hash,
			workflows.MemoSubmittedBy: caller.SubmittedBy(),
		},
	}
	if o.opts.ServiceDefaults != nil {
		// Workflow code cannot read the registry: the services' default
		// timeouts and retry policies are copied in with the definition.
		def = workflows.WithServiceDefaults(def, o.opts.ServiceDefaults)
	}
	limits := definition.DefaultRunLimits()
	if o.opts.RunLimits != nil {
		// Workflow code cannot read the configuration either: the
		// tenant's limits travel with the orchestration.
		limits = o.opts.RunLimits(caller.Tenant).Or(limits)
	}
	in := workflows.OrchestrationInput{
		Limits:     &limits,
		Definition: def,
		Input:      input,
		Meta: activities.RunMeta{
			Tenant:      caller.Tenant,
			KeyID:       caller.KeyID,
			SubmittedBy: caller.SubmittedBy(),
			RequestID:   caller.RequestID,
			Definition:  def.Name,
			Version:     def.Version,
			Labels:      req.Labels,
		},
	}
	run, err := o.c.ExecuteWorkflow(ctx, opts, workflows.OrchestrationWorkflow, in)
	if err == nil {
		return StartResult{ID: id, RunID: run.GetRunID(), Definition: def.Name, Version: def.Version, Created: true}, nil
	}
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if req.ID != "" && errors.As(err, &started) {
		return StartResult{}, newError(ErrConflict, "run_exists", "a run with id %s exists", id)
	}
	if req.IdempotencyKey == "" || !errors.As(err, &started) {
		return StartResult{}, temporalError(err, "start workflow "+id)
	}
	return o.existing(ctx, caller, id, hash)
}

// existing answers an idempotent retry: the workflow started under the key
// is returned when it was started with the same body, else ErrConflict.
func (o *Orchestrator) existing(ctx context.Context, caller Caller, id, hash string) (StartResult, error) {
	desc, err := o.describe(ctx, caller, id)
	if err != nil {
		return StartResult{}, err
	}
	var prev string
	if p := desc.Memo.GetFields()[workflows.MemoBodyHash]; p != nil {
		if err := o.opts.DataConverter.FromPayload(p, &prev); err != nil {
			return StartResult{}, fmt.Errorf("decode memo of %s: %w", id, err)
		}
	}
	if prev != hash {
		return StartResult{}, newError(ErrConflict, "idempotency_conflict",
			"Idempotency-Key was already used for a different request (workflow %s)", id)
	}
	def, _ := desc.TypedSearchAttributes.GetKeyword(o.saDefinition)
	ver, _ := desc.TypedSearchAttributes.GetKeyword(o.saVersion)
	return StartResult{ID: id, RunID: desc.WorkflowExecution.RunID, Definition: def, Version: ver}, nil
}

// resolve returns the definition to run: a published one, or the inline one
// when the tenant allows it; either must validate for the tenant.
func (o *Orchestrator) resolve(ctx context.Context, caller Caller, req StartRequest) (definition.Definition, error) {
	if req.Inline != nil {
		if req.Definition != "" || req.Version != "" {
			return definition.Definition{}, newError(ErrInvalid, "invalid_request", "give either an inline definition or a definition name and version, not both")
		}
		if o.opts.Policies == nil || !o.opts.Policies.AllowInline(caller.Tenant) {
			return definition.Definition{}, newError(ErrForbidden, "inline_not_allowed", "tenant %q may not submit inline definitions", caller.Tenant)
		}
		def := *req.Inline
		if def.Name == "" {
			def.Name = "inline"
		}
		if def.Version == "" {
			def.Version = "0"
		}
		if err := o.opts.ValidateDefinition(caller.Tenant, &def); err != nil {
			return definition.Definition{}, validationOr(err, "definition", "validate inline definition")
		}
		return def, nil
	}
	if !ValidName(req.Definition) {
		return definition.Definition{}, problems{{Path: "definition", Message: "must be a definition name"}}.err("request")
	}
	if req.Version != "" && !ValidVersion(req.Version) {
		return definition.Definition{}, problems{{Path: "version", Message: "must be a version"}}.err("request")
	}
	def, err := o.opts.Definitions.Get(ctx, caller.Tenant, req.Definition, req.Version)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			ref := req.Definition
			if req.Version != "" {
				ref += "@" + req.Version
			}
			return definition.Definition{}, newError(ErrNotFound, "definition_not_found", "definition %s not found", ref)
		}
		return definition.Definition{}, fmt.Errorf("resolve definition %s: %w", req.Definition, err)
	}
	if err := o.opts.ValidateDefinition(caller.Tenant, &def); err != nil {
		return definition.Definition{}, validationOr(err, "definition "+def.Ref(), "validate definition "+def.Ref())
	}
	return def, nil
}

// validationOr returns err when it is a *definition.ValidationError (kept
// as is for its problem list), else wraps it as ErrInvalid.
func validationOr(err error, subject, what string) error {
	var ve *definition.ValidationError
	if errors.As(err, &ve) {
		if ve.Subject == "" {
			ve.Subject = subject
		}
		return ve
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnavailable) {
		return err
	}
	return newError(ErrInvalid, "invalid_"+subject, "%s: %v", what, err)
}

// BodyHash is the SHA-256 of the canonical form of a submission: the same
// request written with other whitespace or key order hashes the same.
func BodyHash(req StartRequest) (string, error) {
	canon := struct {
		Definition string            `json:"definition,omitempty"`
		Version    string            `json:"version,omitempty"`
		Inline     any               `json:"inline,omitempty"`
		Input      any               `json:"input,omitempty"`
		Labels     map[string]string `json:"labels,omitempty"`
	}{Definition: req.Definition, Version: req.Version, Labels: req.Labels}
	if req.Inline != nil {
		canon.Inline = req.Inline
	}
	if in := bytes.TrimSpace(req.Input); len(in) > 0 {
		v, err := canonical(in)
		if err != nil {
			return "", problems{{Path: "input", Message: "must be valid JSON"}}.err("request")
		}
		canon.Input = v
	}
	b, err := json.Marshal(canon)
	if err != nil {
		return "", fmt.Errorf("hash request: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// canonical decodes JSON keeping numbers exact; encoding/json then writes
// object keys sorted.
func canonical(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}
