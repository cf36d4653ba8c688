package eventsapi

import (
	"net/http"

	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/workflows/wire"
)

func (h *handlers) routes() []api.Route {
	idParam := api.Param{Name: "id", In: "path", Required: true, Description: "Schedule id.", Schema: str()}
	errResp := func(desc string) api.Response { return api.Response{Description: desc, Schema: api.Ref("Error")} }
	schedule := func(desc string) api.Response { return api.Response{Description: desc, Schema: api.Ref("Schedule")} }
	route := func(method, path string, roles []auth.Role, status int, fn func(*http.Request, http.ResponseWriter, auth.Principal) (any, error), doc api.Operation) api.Route {
		return api.Route{Method: method, Path: path, Roles: roles, Handler: tenantHandler(status, fn), Doc: doc}
	}
	notFound := errResp("No such schedule in your tenant.")
	return []api.Route{
		route(http.MethodGet, "/v1/schedules", anyRole, http.StatusOK, h.listSchedules, api.Operation{
			ID: "listSchedules", Summary: "Your tenant's schedules with their next runs",
			Description: "Read from Temporal's visibility store, which may lag a second behind a create or delete.",
			Responses:   map[int]api.Response{200: {Description: "The schedules, by id.", Schema: api.Ref("Schedules")}},
		}),
		route(http.MethodPost, "/v1/schedules", admins, http.StatusCreated, h.createSchedule, api.Operation{
			ID: "createSchedule", Summary: "Create a schedule (a Temporal Schedule starting a definition)",
			Description: "Exactly one of `cron` and `interval`. The definition version (latest when omitted) is resolved now; " +
				"`input` is a template evaluated at each firing with input = {schedule, scheduled_time, scheduled_unix_ms}, " +
				"checked now against the definition's input schema with a sample firing.",
			Request: &api.Content{Required: true, Schema: api.Ref("ScheduleRequest")},
			Responses: map[int]api.Response{201: schedule("Created."), 404: errResp("No such definition."),
				409: errResp("A schedule with this id exists."), 422: errResp("The spec is invalid (e.g. the cron expression); details locate each problem.")},
		}),
		route(http.MethodGet, "/v1/schedules/{id}", anyRole, http.StatusOK, h.getSchedule, api.Operation{
			ID: "getSchedule", Summary: "One schedule: spec, state, next and recent runs", Params: []api.Param{idParam},
			Responses: map[int]api.Response{200: schedule("The schedule."), 404: notFound},
		}),
		route(http.MethodPut, "/v1/schedules/{id}", admins, http.StatusOK, h.updateSchedule, api.Operation{
			ID: "updateSchedule", Summary: "Replace a schedule's spec (re-resolving the definition)", Params: []api.Param{idParam},
			Request: &api.Content{Required: true, Schema: api.Ref("ScheduleSpec")},
			Responses: map[int]api.Response{200: schedule("Updated."), 404: notFound,
				409: errResp("The schedule is managed in gateflow.yaml."), 422: errResp("The spec is invalid.")},
		}),
		route(http.MethodDelete, "/v1/schedules/{id}", admins, http.StatusNoContent, h.deleteSchedule, api.Operation{
			ID: "deleteSchedule", Summary: "Delete a schedule (runs it started go on)", Params: []api.Param{idParam},
			Responses: map[int]api.Response{204: {Description: "Deleted."}, 404: notFound, 409: errResp("The schedule is managed in gateflow.yaml.")},
		}),
		route(http.MethodPost, "/v1/schedules/{id}/pause", admins, http.StatusOK, h.pauseSchedule, api.Operation{
			ID: "pauseSchedule", Summary: "Pause a schedule", Params: []api.Param{idParam},
			Request:   &api.Content{Schema: api.Ref("ScheduleAction")},
			Responses: map[int]api.Response{200: schedule("Paused."), 404: notFound},
		}),
		route(http.MethodPost, "/v1/schedules/{id}/resume", admins, http.StatusOK, h.resumeSchedule, api.Operation{
			ID: "resumeSchedule", Summary: "Resume a paused schedule", Params: []api.Param{idParam},
			Request:   &api.Content{Schema: api.Ref("ScheduleAction")},
			Responses: map[int]api.Response{200: schedule("Resumed."), 404: notFound},
		}),
		route(http.MethodPost, "/v1/schedules/{id}/trigger", submitters, http.StatusAccepted, h.triggerSchedule, api.Operation{
			ID: "triggerSchedule", Summary: "Start a run now (overlap allow_all unless given)", Params: []api.Param{idParam},
			Request:   &api.Content{Schema: api.Ref("ScheduleAction")},
			Responses: map[int]api.Response{202: {Description: "Triggered.", Schema: obj()}, 404: notFound},
		}),
		route(http.MethodPost, "/v1/schedules/{id}/backfill", admins, http.StatusAccepted, h.backfillSchedule, api.Operation{
			ID: "backfillSchedule", Summary: "Start at once the runs the schedule would have started in [from, to)",
			Description: "At most 1000 runs; overlap allow_all unless given, so every one of them starts.",
			Params:      []api.Param{idParam}, Request: &api.Content{Required: true, Schema: api.Ref("BackfillRequest")},
			Responses: map[int]api.Response{202: {Description: "Backfill requested; runs counts the firings in the range.", Schema: obj()},
				400: errResp("Bad range, or more than 1000 runs."), 404: notFound},
		}),
		route(http.MethodPost, "/v1/events", submitters, http.StatusAccepted, h.sendEvent, api.Operation{
			ID: "sendEvent", Summary: "Send an event to the event steps waiting for it (name and correlation key)",
			Description: "The event resumes the oldest step waiting for this name and key; when none waits it is kept " +
				"(default 24h, `ttl` up to 7 days) for the first step that does. With `strict`, it is delivered only to a " +
				"step waiting now, else 404 and nothing is kept. An `id` seen within the event's TTL is dropped as a duplicate.",
			Request: &api.Content{Required: true, Schema: api.Ref("EventRequest")},
			Responses: map[int]api.Response{202: {Description: "Accepted.", Schema: api.Ref("EventAccepted")},
				400: errResp("Bad name, key, payload or ttl."), 404: errResp("strict: no step waits for this event.")},
		}),
		route(http.MethodGet, "/v1/triggers", anyRole, http.StatusOK, h.listTriggers, api.Operation{
			ID: "listTriggers", Summary: "Your tenant's topic triggers and webhooks (from gateflow.yaml)",
			Responses: map[int]api.Response{200: {Description: "The triggers.", Schema: api.Ref("Triggers")}},
		}),
		{Method: http.MethodPost, Path: "/v1/hooks/{name}", Public: true, MaxBodyBytes: sysconfig.MaxWebhookBodyBytes,
			Handler: http.HandlerFunc(h.receiveHook), Doc: api.Operation{
				ID: "receiveWebhook", Summary: "Receive a signed webhook delivery (no API key: the signature authenticates it)",
				Description: "The raw body is verified with the webhook's scheme (github, stripe, standard, hmac) and secret, " +
					"timestamps within the tolerance; then the delivery starts its orchestration or sends its event, deduplicated " +
					"by the sender's delivery id. Answered once Temporal has accepted it.",
				Params:  []api.Param{{Name: "name", In: "path", Required: true, Description: "Webhook name (gateflow.yaml webhooks).", Schema: str()}},
				Request: &api.Content{Required: true, ContentType: "application/json", Schema: obj()},
				Responses: map[int]api.Response{202: {Description: "Accepted (started, duplicate, event or filtered).", Schema: api.Ref("HookAccepted")},
					401: errResp("Signature missing, wrong or stale; nothing started."), 404: errResp("No such webhook."),
					413: errResp("Body above the webhook's limit."), 422: errResp("The delivery cannot be handled (mapping failed, input refused)."),
					503: errResp("Temporal did not accept it now; retry.")},
			}},
		{Method: http.MethodPost, Path: "/v1/callbacks/{token}", Public: true, Handler: http.HandlerFunc(h.completeCallback), Doc: api.Operation{
			ID: "completeCallback", Summary: "Complete an asynchronous http step (the URL was given to the service)",
			Description: "Body: {\"output\": ...} (the step output's body; optional \"status\") or {\"error\": {\"message\", \"retryable\"}}.",
			Params:      []api.Param{{Name: "token", In: "path", Required: true, Description: "Signed callback token.", Schema: str()}},
			Request:     &api.Content{Schema: api.Ref("CallbackResult")},
			Responses: map[int]api.Response{200: {Description: "The step was completed.", Schema: api.Ref("CallbackAnswer")},
				401: errResp("The token is not valid."), 404: errResp("Nothing waits for it (completed already, timed out, retried)."),
				410: errResp("The callback URL has expired.")},
		}},
		{Method: http.MethodPost, Path: "/v1/callbacks/{token}/heartbeat", Public: true, Handler: http.HandlerFunc(h.heartbeatCallback), Doc: api.Operation{
			ID: "heartbeatCallback", Summary: "Tell a waiting asynchronous http step that the work goes on",
			Description: "Needed at least every callback.heartbeat when the step sets it. cancel_requested tells the service its orchestration no longer wants the result.",
			Params:      []api.Param{{Name: "token", In: "path", Required: true, Description: "Signed callback token.", Schema: str()}},
			Responses: map[int]api.Response{200: {Description: "Recorded.", Schema: api.Ref("CallbackAnswer")},
				401: errResp("The token is not valid."), 404: errResp("Nothing waits for it."), 410: errResp("Expired.")},
		}},
	}
}

func str() map[string]any { return map[string]any{"type": "string"} }
func obj() map[string]any { return map[string]any{"type": "object"} }

func props(required []string, p map[string]any) map[string]any {
	s := map[string]any{"type": "object", "properties": p, "additionalProperties": false}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

func schemas() map[string]any {
	dur := map[string]any{"type": "string", "description": "Go duration, e.g. 30s, 15m, 24h."}
	t := map[string]any{"type": "string", "format": "date-time"}
	overlap := map[string]any{"type": "string", "enum": wire.OverlapPolicies()}
	spec := map[string]any{
		"definition":     str(),
		"version":        map[string]any{"type": "string", "description": "Latest when omitted (resolved at create/update)."},
		"cron":           map[string]any{"type": "string", "description": "5-field cron or @hourly, @daily, ..."},
		"interval":       dur,
		"offset":         dur,
		"timezone":       map[string]any{"type": "string", "description": "IANA time zone of cron (UTC by default)."},
		"input":          map[string]any{"description": "Template; input = {schedule, scheduled_time, scheduled_unix_ms}."},
		"overlap":        overlap,
		"catchup_window": dur,
		"jitter":         dur,
		"paused":         map[string]any{"type": "boolean"},
		"note":           str(),
	}
	withID := map[string]any{"id": str()}
	for k, v := range spec {
		withID[k] = v
	}
	run := props(nil, map[string]any{"scheduled_at": t, "started_at": t, "workflow_id": str()})
	sched := map[string]any{"source": map[string]any{"type": "string", "enum": []string{wire.SourceAPI, wire.SourceConfig}},
		"resolved_version": str(), "paused_note": str(), "actions": map[string]any{"type": "integer"},
		"skipped_overlap": map[string]any{"type": "integer"}, "missed_catchup": map[string]any{"type": "integer"},
		"next_runs": map[string]any{"type": "array", "items": t}, "recent_runs": map[string]any{"type": "array", "items": run},
		"running": map[string]any{"type": "array", "items": str()}, "created_at": t, "updated_at": t}
	for k, v := range withID {
		sched[k] = v
	}
	trigger := props([]string{"name", "kind"}, map[string]any{"name": str(), "kind": map[string]any{"type": "string", "enum": []string{"topic", "webhook"}},
		"topic": str(), "path": str(), "scheme": str(), "starts": str(), "event": str(), "filter": str()})
	return map[string]any{
		"ScheduleSpec":    props([]string{"definition"}, spec),
		"ScheduleRequest": props([]string{"id", "definition"}, withID),
		"Schedule":        props([]string{"id", "definition", "source", "paused", "actions", "next_runs"}, sched),
		"Schedules":       props([]string{"items"}, map[string]any{"items": map[string]any{"type": "array", "items": api.Ref("Schedule")}}),
		"ScheduleAction":  props(nil, map[string]any{"note": str(), "overlap": overlap}),
		"BackfillRequest": props([]string{"from", "to"}, map[string]any{"from": t, "to": t, "overlap": overlap}),
		"EventRequest": props([]string{"name", "key"}, map[string]any{"name": str(), "key": str(),
			"payload": map[string]any{"description": "Any JSON value: the output of the step it resumes."},
			"id":      str(), "ttl": dur, "strict": map[string]any{"type": "boolean"}}),
		"EventAccepted": props([]string{"id"}, map[string]any{"id": str(), "delivered": map[string]any{"type": "boolean"},
			"duplicate": map[string]any{"type": "boolean"}, "workflow_id": str(), "step_id": str()}),
		"HookAccepted": props([]string{"hook", "delivery_id", "action"}, map[string]any{"hook": str(), "delivery_id": str(),
			"action": map[string]any{"type": "string", "enum": []string{"started", "duplicate", "event", "filtered"}}, "workflow_id": str(), "event_id": str()}),
		"Triggers": props([]string{"items"}, map[string]any{"items": map[string]any{"type": "array", "items": trigger}}),
		"CallbackResult": props(nil, map[string]any{"status": map[string]any{"type": "integer"}, "output": map[string]any{},
			"error": props([]string{"message"}, map[string]any{"message": str(), "retryable": map[string]any{"type": "boolean"}})}),
		"CallbackAnswer": props([]string{"step_id"}, map[string]any{"step_id": str(), "completed": map[string]any{"type": "boolean"},
			"cancel_requested": map[string]any{"type": "boolean"}}),
	}
}
