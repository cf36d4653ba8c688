// Package eventsapi is the REST face of event-driven starts and waits:
// schedules (/v1/schedules), events (POST /v1/events), the tenant's topic
// triggers and webhooks (GET /v1/triggers), webhook deliveries (POST
// /v1/hooks/{name}, authenticated by their signature instead of an API
// key) and callbacks of asynchronous http steps (POST
// /v1/callbacks/{token}, authenticated by the signed token). Each handler
// parses, calls one function of the package that owns the logic
// (workflows/schedules, workflows/triggers, activities/callback) and maps
// the result; errors go through ingress/httperr.
package eventsapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/gateflow/gateflow/activities/callback"
	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/ingress/httperr"
	"github.com/gateflow/gateflow/workflows/triggers"
	"github.com/gateflow/gateflow/workflows/wire"
)

// Schedules manages schedules (*schedules.Manager).
type Schedules interface {
	Create(ctx context.Context, tenant string, req wire.ScheduleRequest, by string) (wire.Schedule, error)
	Update(ctx context.Context, tenant, name string, spec wire.ScheduleSpec, by string) (wire.Schedule, error)
	Get(ctx context.Context, tenant, name string) (wire.Schedule, error)
	List(ctx context.Context, tenant string) (wire.Schedules, error)
	Delete(ctx context.Context, tenant, name string) error
	Pause(ctx context.Context, tenant, name, note string) (wire.Schedule, error)
	Resume(ctx context.Context, tenant, name, note string) (wire.Schedule, error)
	Trigger(ctx context.Context, tenant, name, overlap string) error
	Backfill(ctx context.Context, tenant, name string, req wire.BackfillRequest) (int, error)
}

// Events sends the API's events (*triggers.Events).
type Events interface {
	Send(ctx context.Context, tenant, keyID string, req wire.EventRequest) (wire.EventAccepted, error)
}

// Hooks receives webhook deliveries (*triggers.Hooks).
type Hooks interface {
	BodyLimit(name string) (int64, error)
	Receive(ctx context.Context, name string, header http.Header, body []byte) (wire.HookAccepted, error)
}

// Callbacks completes asynchronous http steps (*callback.Completer).
type Callbacks interface {
	Complete(ctx context.Context, token string, r callback.Result) (callback.Claims, error)
	Heartbeat(ctx context.Context, token string) (callback.Claims, bool, error)
}

// Snapshots gives the current configuration (*sysconfig.Registry).
type Snapshots interface {
	Current() *sysconfig.Snapshot
}

// Deps are what the routes call; all are required.
type Deps struct {
	Schedules Schedules
	Events    Events
	Hooks     Hooks
	Callbacks Callbacks
	Config    Snapshots
}

// MaxJSONDepth bounds the nesting of the JSON bodies of these routes.
const MaxJSONDepth = 32

// Routes returns the group; mount it with ingress.Server.Mount.
func Routes(d Deps) api.Group {
	h := &handlers{d: d}
	return api.Group{
		Name: "events",
		Description: "Event-driven starts and waits: schedules (Temporal Schedules), events for event steps, " +
			"topic triggers and webhooks, and the callbacks of asynchronous http steps. See docs/EVENTS.md.",
		Routes:  h.routes(),
		Schemas: schemas(),
	}
}

type handlers struct{ d Deps }

var (
	anyRole    []auth.Role
	submitters = []auth.Role{auth.RoleSubmitter}
	admins     = []auth.Role{auth.RoleAdmin}
)

// caller returns the authenticated principal (every non-public route has
// one; its absence is a wiring error).
func caller(r *http.Request) (auth.Principal, error) {
	p, ok := api.Caller(r.Context())
	if !ok || p.Tenant == "" {
		return auth.Principal{}, errors.New("events api: request without an authenticated tenant")
	}
	return p, nil
}

func by(p auth.Principal) string {
	if p.User != "" {
		return p.User
	}
	return p.KeyID
}

// decode reads a strict JSON body into dst (400 with located problems).
func decode(w http.ResponseWriter, r *http.Request, limit int64, dst any) error {
	body, err := api.ReadBody(w, r, limit)
	if err != nil {
		return err
	}
	return api.DecodeJSON(body, dst, MaxJSONDepth, "")
}

// tenantHandler runs fn for the caller's tenant and answers its result
// with status, or its error.
func tenantHandler(status int, fn func(r *http.Request, w http.ResponseWriter, p auth.Principal) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := caller(r)
		if err == nil {
			var res any
			if res, err = fn(r, w, p); err == nil {
				if res == nil {
					w.WriteHeader(status)
					return
				}
				api.WriteJSON(w, status, res)
				return
			}
		}
		httperr.Write(w, r, err)
	})
}

// bodyLimit is the limit of the small JSON bodies of these routes.
const bodyLimit = 1 << 20

func (h *handlers) listSchedules(r *http.Request, _ http.ResponseWriter, p auth.Principal) (any, error) {
	return h.d.Schedules.List(r.Context(), p.Tenant)
}

func (h *handlers) createSchedule(r *http.Request, w http.ResponseWriter, p auth.Principal) (any, error) {
	var req wire.ScheduleRequest
	if err := decode(w, r, bodyLimit, &req); err != nil {
		return nil, err
	}
	s, err := h.d.Schedules.Create(r.Context(), p.Tenant, req, by(p))
	if err == nil {
		w.Header().Set("Location", "/v1/schedules/"+s.ID)
	}
	return s, err
}

func (h *handlers) getSchedule(r *http.Request, _ http.ResponseWriter, p auth.Principal) (any, error) {
	return h.d.Schedules.Get(r.Context(), p.Tenant, r.PathValue("id"))
}

func (h *handlers) updateSchedule(r *http.Request, w http.ResponseWriter, p auth.Principal) (any, error) {
	var spec wire.ScheduleSpec
	if err := decode(w, r, bodyLimit, &spec); err != nil {
		return nil, err
	}
	return h.d.Schedules.Update(r.Context(), p.Tenant, r.PathValue("id"), spec, by(p))
}

func (h *handlers) deleteSchedule(r *http.Request, _ http.ResponseWriter, p auth.Principal) (any, error) {
	return nil, h.d.Schedules.Delete(r.Context(), p.Tenant, r.PathValue("id"))
}

// action decodes the optional body of pause, resume and trigger.
func action(w http.ResponseWriter, r *http.Request) (wire.ScheduleAction, error) {
	var a wire.ScheduleAction
	if r.ContentLength == 0 {
		return a, nil
	}
	body, err := api.ReadBody(w, r, bodyLimit)
	if err != nil || len(body) == 0 {
		return a, err
	}
	return a, api.DecodeJSON(body, &a, MaxJSONDepth, "")
}

func (h *handlers) pauseSchedule(r *http.Request, w http.ResponseWriter, p auth.Principal) (any, error) {
	a, err := action(w, r)
	if err != nil {
		return nil, err
	}
	return h.d.Schedules.Pause(r.Context(), p.Tenant, r.PathValue("id"), a.Note)
}

func (h *handlers) resumeSchedule(r *http.Request, w http.ResponseWriter, p auth.Principal) (any, error) {
	a, err := action(w, r)
	if err != nil {
		return nil, err
	}
	return h.d.Schedules.Resume(r.Context(), p.Tenant, r.PathValue("id"), a.Note)
}

func (h *handlers) triggerSchedule(r *http.Request, w http.ResponseWriter, p auth.Principal) (any, error) {
	a, err := action(w, r)
	if err != nil {
		return nil, err
	}
	if err := h.d.Schedules.Trigger(r.Context(), p.Tenant, r.PathValue("id"), a.Overlap); err != nil {
		return nil, err
	}
	return map[string]any{"id": r.PathValue("id"), "triggered": true}, nil
}

func (h *handlers) backfillSchedule(r *http.Request, w http.ResponseWriter, p auth.Principal) (any, error) {
	var req wire.BackfillRequest
	if err := decode(w, r, bodyLimit, &req); err != nil {
		return nil, err
	}
	n, err := h.d.Schedules.Backfill(r.Context(), p.Tenant, r.PathValue("id"), req)
	if err != nil {
		return nil, err
	}
	return map[string]any{"id": r.PathValue("id"), "runs": n}, nil
}

func (h *handlers) sendEvent(r *http.Request, w http.ResponseWriter, p auth.Principal) (any, error) {
	var req wire.EventRequest
	if err := decode(w, r, bodyLimit, &req); err != nil {
		return nil, err
	}
	return h.d.Events.Send(r.Context(), p.Tenant, p.KeyID, req)
}

func (h *handlers) listTriggers(_ *http.Request, _ http.ResponseWriter, p auth.Principal) (any, error) {
	return triggers.List(h.d.Config.Current(), p.Tenant), nil
}

// receiveHook serves POST /v1/hooks/{name}: the raw body (at most the
// webhook's limit, 413 beyond) goes to the receiver, which verifies its
// signature before anything else.
func (h *handlers) receiveHook(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	limit, err := h.d.Hooks.BodyLimit(name)
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	body, err := api.ReadBody(w, r, limit)
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	res, err := h.d.Hooks.Receive(r.Context(), name, r.Header, body)
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusAccepted, res)
}

// completeCallback serves POST /v1/callbacks/{token}.
func (h *handlers) completeCallback(w http.ResponseWriter, r *http.Request) {
	var res callback.Result
	body, err := api.ReadBody(w, r, bodyLimit)
	if err == nil && len(body) > 0 {
		err = api.DecodeJSON(body, &res, MaxJSONDepth, "")
	}
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	claims, err := h.d.Callbacks.Complete(r.Context(), r.PathValue("token"), res)
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, callbackAnswer{StepID: claims.StepID, Completed: true})
}

// heartbeatCallback serves POST /v1/callbacks/{token}/heartbeat.
func (h *handlers) heartbeatCallback(w http.ResponseWriter, r *http.Request) {
	claims, cancel, err := h.d.Callbacks.Heartbeat(r.Context(), r.PathValue("token"))
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, callbackAnswer{StepID: claims.StepID, CancelRequested: cancel})
}

// callbackAnswer answers the callback routes.
type callbackAnswer struct {
	StepID          string `json:"step_id"`
	Completed       bool   `json:"completed,omitempty"`
	CancelRequested bool   `json:"cancel_requested,omitempty"`
}
