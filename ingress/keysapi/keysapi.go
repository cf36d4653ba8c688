// Package keysapi is the REST face of API keys (workflows/apikeys): a
// tenant's admins list its keys, create keys (the secret is shown once,
// only its hash is stored) and disable them. Keys created here live in the
// tenant's keys entity and reach every ingress replica through the
// replicated keys topic; keys of the keys file are listed beside them and
// stay the operator's to change. Every change is audited: the request's
// call record (who, when, which route) and an "audit" log line naming the
// key, the tenant and who acted.
package keysapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/ingress/httperr"
	"github.com/gateflow/gateflow/workflows/apikeys"
	"github.com/gateflow/gateflow/workflows/orchestrator"
	"github.com/gateflow/gateflow/workflows/wire"
)

// FileKeys is what the routes need of the key store (*auth.Store).
type FileKeys interface {
	FileKeys(tenant string) []auth.Key
	Has(id string) bool
}

// Keys is what the routes need of the API-created keys (*apikeys.Service).
type Keys interface {
	Create(ctx context.Context, k apikeys.Key, by string) (apikeys.Key, error)
	Disable(ctx context.Context, tenant, id, by, reason string) (apikeys.Key, error)
	ReadModel() *apikeys.ReadModel
}

type handlers struct {
	files FileKeys
	keys  Keys
	log   *slog.Logger
}

var admins = []auth.Role{auth.RoleAdmin}

// Routes returns the keys route group.
func Routes(files FileKeys, keys Keys, log *slog.Logger) api.Group {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handlers{files: files, keys: keys, log: log.With("audit", true)}
	idParam := api.Param{Name: "id", In: "path", Required: true, Description: "Key id (the public part of the key).", Schema: map[string]any{"type": "string"}}
	errResp := func(d string) api.Response { return api.Response{Description: d, Schema: api.Ref("Error")} }
	return api.Group{
		Name:        "keys",
		Description: "API keys of your tenant (admin role): list, create (the key is shown once; only its hash is stored) and disable.",
		Schemas:     schemas(),
		Routes: []api.Route{
			{Method: http.MethodGet, Path: "/v1/keys", Roles: admins, Handler: http.HandlerFunc(h.list), Doc: api.Operation{
				ID: "listKeys", Summary: "Your tenant's keys: those of the keys file and those created through the API (never secrets)",
				Responses: map[int]api.Response{200: {Description: "Keys, by id.", Schema: api.Ref("APIKeys")}},
			}},
			{Method: http.MethodPost, Path: "/v1/keys", Roles: admins, Handler: http.HandlerFunc(h.create), Doc: api.Operation{
				ID: "createKey", Summary: "Create a key for your tenant; the answer holds the key, shown only this once",
				Description: "It works on every ingress replica within the replication bound (docs/CATALOG.md); `app` groups keys for catalogue subscriptions.",
				Request:     &api.Content{Required: true, Schema: api.Ref("CreateKeyRequest")},
				Responses: map[int]api.Response{201: {Description: "Created.", Schema: api.Ref("CreatedKey")},
					400: errResp("Invalid roles, user or app; details locate each problem.")},
			}},
			{Method: http.MethodPost, Path: "/v1/keys/{id}/disable", Roles: admins, Handler: http.HandlerFunc(h.disable), Doc: api.Operation{
				ID: "disableKey", Summary: "Disable a key created through the API; every replica refuses it within the replication bound",
				Params: []api.Param{idParam}, Request: &api.Content{Schema: api.Ref("DisableKeyRequest")},
				Responses: map[int]api.Response{200: {Description: "Disabled.", Schema: api.Ref("APIKey")}, 404: errResp("No such key in your tenant."),
					409: errResp("Already disabled, or a key of the keys file (the operator's: change it there).")},
			}},
		},
	}
}

func schemas() map[string]any {
	str := map[string]any{"type": "string"}
	strs := map[string]any{"type": "array", "items": str}
	ts := map[string]any{"type": "string", "format": "date-time"}
	num := map[string]any{"type": "number"}
	integer := map[string]any{"type": "integer"}
	key := map[string]any{
		"id": str, "tenant": str, "roles": strs, "user": str, "app": str, "note": str, "rps": num, "burst": integer,
		"source":     map[string]any{"type": "string", "enum": []any{wire.KeySourceFile, wire.KeySourceAPI}},
		"created_at": ts, "created_by": str, "disabled": map[string]any{"type": "boolean"}, "disabled_at": ts, "disabled_by": str,
	}
	created := map[string]any{"key": map[string]any{"type": "string", "description": "The key, shown only in this answer."}}
	for k, v := range key {
		created[k] = v
	}
	return map[string]any{
		"APIKey":     map[string]any{"type": "object", "properties": key, "required": []any{"id", "tenant", "roles", "source"}},
		"APIKeys":    map[string]any{"type": "object", "properties": map[string]any{"items": map[string]any{"type": "array", "items": api.Ref("APIKey")}}, "required": []any{"items"}},
		"CreatedKey": map[string]any{"type": "object", "properties": created, "required": []any{"id", "tenant", "roles", "source", "key"}},
		"CreateKeyRequest": map[string]any{"type": "object", "required": []any{"roles"}, "properties": map[string]any{
			"roles": strs, "user": str, "app": str, "note": str, "rps": num, "burst": integer}},
		"DisableKeyRequest": map[string]any{"type": "object", "properties": map[string]any{"reason": str}},
	}
}

func fromFile(k auth.Key) wire.APIKey {
	out := wire.APIKey{ID: k.ID, Tenant: k.Tenant, Roles: k.Roles, User: k.User, App: k.App, Note: k.Note, RPS: k.RPS, Burst: k.Burst,
		Source: wire.KeySourceFile, Disabled: k.Disabled}
	if !k.Created.IsZero() {
		c := k.Created
		out.CreatedAt = &c
	}
	return out
}

func fromAPI(k apikeys.Key) wire.APIKey {
	c := k.CreatedAt
	return wire.APIKey{ID: k.ID, Tenant: k.Tenant, Roles: k.Roles, User: k.User, App: k.App, Note: k.Note, RPS: k.RPS, Burst: k.Burst,
		Source: wire.KeySourceAPI, CreatedAt: &c, CreatedBy: k.CreatedBy, Disabled: k.Disabled, DisabledAt: k.DisabledAt, DisabledBy: k.DisabledBy}
}

func by(p auth.Principal) string {
	if p.User != "" {
		return p.User
	}
	return p.KeyID
}

func (h *handlers) list(w http.ResponseWriter, r *http.Request) {
	p, _ := api.Caller(r.Context())
	out := wire.APIKeys{Items: []wire.APIKey{}}
	for _, k := range h.files.FileKeys(p.Tenant) {
		out.Items = append(out.Items, fromFile(k))
	}
	for _, k := range h.keys.ReadModel().Tenant(p.Tenant) {
		out.Items = append(out.Items, fromAPI(k))
	}
	sort.Slice(out.Items, func(i, j int) bool { return out.Items[i].ID < out.Items[j].ID })
	api.WriteJSON(w, http.StatusOK, out)
}

func (h *handlers) create(w http.ResponseWriter, r *http.Request) {
	var req wire.CreateKeyRequest
	body, err := api.ReadBody(w, r, 64<<10)
	if err == nil {
		err = api.DecodeJSON(body, &req, api.DefaultMaxDepth, "")
	}
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	p, _ := api.Caller(r.Context())
	var token string
	var k auth.Key
	for range 3 { // a fresh id colliding with a file key is improbable; retry anyway
		if token, err = auth.NewToken(); err != nil {
			httperr.Write(w, r, err)
			return
		}
		k = auth.EntryFor(token, p.Tenant, req.Roles, req.User)
		if !h.files.Has(k.ID) {
			break
		}
	}
	k.App, k.Note, k.RPS, k.Burst = req.App, req.Note, req.RPS, req.Burst
	if err := k.Validate(); err != nil {
		var details []api.Detail
		for _, line := range strings.Split(err.Error(), "\n") {
			details = append(details, api.Detail{Path: fieldOf(line), Message: strings.TrimPrefix(line, "key "+k.ID+": ")})
		}
		httperr.Write(w, r, &api.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: details[0].Path + ": " + details[0].Message, Details: details})
		return
	}
	if len(req.Note) > 1000 {
		httperr.Write(w, r, &api.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: "note: must be at most 1000 bytes",
			Details: []api.Detail{{Path: "note", Message: "must be at most 1000 bytes"}}})
		return
	}
	stored, err := h.keys.Create(r.Context(), apikeys.Key{ID: k.ID, Hash: k.Hash, Tenant: k.Tenant, Roles: k.Roles, User: k.User, App: k.App,
		Note: k.Note, RPS: k.RPS, Burst: k.Burst}, by(p))
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	h.log.Info("api key created", "tenant", p.Tenant, "key_id", stored.ID, "roles", strings.Join(stored.Roles, ","), "user", stored.User,
		"app", stored.App, "by", by(p), "by_key", p.KeyID, "request_id", api.RequestID(r.Context()), "at", stored.CreatedAt.Format(time.RFC3339))
	w.Header().Set("Location", "/v1/keys/"+stored.ID)
	api.WriteJSON(w, http.StatusCreated, wire.CreatedKey{APIKey: fromAPI(stored), Key: token})
}

// fieldOf names the request field an auth.Key validation line is about.
func fieldOf(line string) string {
	for _, f := range []string{"role", "user", "app", "rps"} {
		if strings.Contains(line, ": "+f) || strings.Contains(line, " "+f+" ") {
			if f == "role" {
				return "roles"
			}
			return f
		}
	}
	if strings.Contains(line, "at least one role") {
		return "roles"
	}
	return ""
}

func (h *handlers) disable(w http.ResponseWriter, r *http.Request) {
	var req wire.DisableKeyRequest
	body, err := api.ReadBody(w, r, 16<<10)
	if err == nil && len(strings.TrimSpace(string(body))) > 0 {
		err = api.DecodeJSON(body, &req, api.DefaultMaxDepth, "")
	}
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	p, _ := api.Caller(r.Context())
	id := r.PathValue("id")
	for _, k := range h.files.FileKeys(p.Tenant) {
		if k.ID == id {
			httperr.Write(w, r, &orchestrator.Error{Kind: orchestrator.ErrConflict, Code: "file_key",
				Message: fmt.Sprintf("key %s is in the keys file: the operator disables it there (disabled: true)", id)})
			return
		}
	}
	k, err := h.keys.Disable(r.Context(), p.Tenant, id, by(p), req.Reason)
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	h.log.Info("api key disabled", "tenant", p.Tenant, "key_id", id, "by", by(p), "by_key", p.KeyID, "reason", req.Reason,
		"request_id", api.RequestID(r.Context()))
	api.WriteJSON(w, http.StatusOK, fromAPI(k))
}
