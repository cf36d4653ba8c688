package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"

	"github.com/gateflow/gateflow/activities/llm"
	"github.com/gateflow/gateflow/activities/llm/prompt"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/orchestrator"
	"github.com/gateflow/gateflow/workflows/wire"
)

// Calls of orchestration, prompt and model APIs (service APIs are served
// by the proxy, which uses Authorize alone). A call runs as the OWNER: its
// definition, prompt API or model is the owner's, validated against what
// the owner may use, on the owner's budgets, its records under the owner's
// tenant labelled with the consumer; an orchestration's approval steps are
// decided by the owner's approvers. The consumer follows an orchestration
// run at /v1/catalog/{api}/calls/{id}: its id names the consumer
// ("cat-<consumer>.<uuid>"), which is what lets the consumer read it.

// Orchestrations starts and reads runs; *orchestrator.Orchestrator
// implements it.
type Orchestrations interface {
	Start(ctx context.Context, c orchestrator.Caller, req orchestrator.StartRequest) (orchestrator.StartResult, error)
	Status(ctx context.Context, c orchestrator.Caller, id string) (orchestrator.Status, error)
}

// PromptRunner runs prompt APIs; *prompt.Runner implements it.
type PromptRunner interface {
	Run(ctx context.Context, c prompt.Call) (*prompt.Result, error)
}

// ChatModels answers chat completions; *llm.Gateway implements it.
type ChatModels interface {
	Chat(ctx context.Context, req *llm.ChatRequest, opts llm.CallOptions) (*llm.ChatResponse, error)
}

// Runners are what Call uses per kind; a nil one makes such APIs answer
// 404 on this replica.
type Runners struct {
	Orchestrations Orchestrations
	Prompts        PromptRunner
	Models         ChatModels
}

// Labels written on the records of the owner-side work of a call.
const (
	LabelAPI         = "catalog.api"
	LabelAPIVersion  = "catalog.api_version"
	LabelConsumer    = "catalog.consumer"
	LabelConsumerApp = "catalog.consumer_app"
)

func callLabels(acc *Access) map[string]string {
	l := map[string]string{LabelAPI: acc.API.Name, LabelAPIVersion: acc.Version.Version, LabelConsumer: acc.Consumer}
	if acc.ConsumerApp != "" {
		l[LabelConsumerApp] = acc.ConsumerApp
	}
	return l
}

// callIDPrefix starts the ids of the runs a consumer started.
func callIDPrefix(consumer string) string { return "cat-" + consumer + "." }

// Call runs an authorized call with the request body: an orchestration
// starts (async=true, the answer is a wire.CatalogCall), a prompt API or a
// model answers (a *prompt.Result or *llm.ChatResponse).
func (s *Service) Call(ctx context.Context, r Runners, acc *Access, c Caller, body json.RawMessage) (out any, async bool, err error) {
	t := acc.Version.Target
	owner := acc.API.Owner
	switch acc.API.Kind {
	case wire.APIKindOrchestration:
		if r.Orchestrations == nil {
			break
		}
		if in := bytes.TrimSpace(body); len(in) > 0 && in[0] != '{' {
			return nil, false, invalid(definition.Problem{Path: "input", Message: "must be a JSON object (the definition's input)"})
		}
		id := callIDPrefix(c.Tenant) + orchestrator.NewID()
		res, err := r.Orchestrations.Start(ctx, orchestrator.Caller{Tenant: owner, KeyID: c.KeyID, User: c.By() + "@" + c.Tenant, RequestID: c.RequestID},
			orchestrator.StartRequest{ID: id, Definition: t.Definition, Version: t.DefinitionVersion, Input: body, Labels: callLabels(acc)})
		if err != nil {
			return nil, false, err
		}
		return wire.CatalogCall{API: acc.API.Name, Version: acc.Version.Version, ID: res.ID, RunID: res.RunID, Definition: res.Definition + "@" + res.Version,
			StatusURL: "/v1/catalog/" + url.PathEscape(acc.API.Name) + "/calls/" + url.PathEscape(res.ID)}, true, nil
	case wire.APIKindPrompt:
		if r.Prompts == nil {
			break
		}
		res, err := r.Prompts.Run(ctx, prompt.Call{Tenant: owner, KeyID: c.KeyID, RequestID: c.RequestID, Name: t.Prompt, Version: t.PromptVersion,
			Variables: body, Labels: callLabels(acc)})
		if errors.Is(err, prompt.ErrNotFound) {
			return nil, false, newError(ErrNotFound, "api_not_found", "API %s: its prompt API %s@%s is no longer available", acc.API.Name, t.Prompt, t.PromptVersion)
		}
		return res, false, err
	case wire.APIKindModel:
		if r.Models == nil {
			break
		}
		var req llm.ChatRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, false, invalid(definition.Problem{Path: "", Message: "must be a chat completion request: " + err.Error()})
		}
		if req.Stream {
			return nil, false, invalid(definition.Problem{Path: "stream", Message: "streaming is not served through the catalogue; leave it out"})
		}
		if len(req.Messages) == 0 {
			return nil, false, invalid(definition.Problem{Path: "messages", Message: "is required"})
		}
		req.Model = t.Model
		res, err := r.Models.Chat(ctx, &req, llm.CallOptions{Tenant: owner, KeyID: c.KeyID, RequestID: c.RequestID, Labels: callLabels(acc)})
		return res, false, err
	case wire.APIKindService:
		return nil, false, newError(ErrNotFound, "not_callable_here", "API %s is a service API: call it through the proxy, not /call", acc.API.Name)
	}
	return nil, false, newError(ErrNotFound, "not_callable_here", "%s APIs are not served by this replica", acc.API.Kind)
}

// CallStatus returns the status of a run a consumer started through the
// API (or, for the owner, any run of the API's definitions).
func (s *Service) CallStatus(ctx context.Context, r Runners, c Caller, name, id string) (orchestrator.Status, error) {
	notFound := newError(ErrNotFound, "call_not_found", "no call %q of API %s", id, name)
	a, err := s.lookup(c, name)
	if err != nil {
		return orchestrator.Status{}, err
	}
	if a.Kind != wire.APIKindOrchestration || r.Orchestrations == nil {
		return orchestrator.Status{}, notFound
	}
	if a.Owner != c.Tenant && !strings.HasPrefix(id, callIDPrefix(c.Tenant)) {
		return orchestrator.Status{}, notFound
	}
	st, err := r.Orchestrations.Status(ctx, orchestrator.Caller{Tenant: a.Owner, RequestID: c.RequestID}, id)
	if err != nil {
		if errors.Is(err, orchestrator.ErrNotFound) {
			return orchestrator.Status{}, notFound
		}
		return orchestrator.Status{}, err
	}
	for _, v := range a.Versions {
		if v.Target.Definition == st.Definition {
			return st, nil
		}
	}
	return orchestrator.Status{}, notFound
}
