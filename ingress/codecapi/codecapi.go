// Package codecapi serves Temporal's remote codec protocol on the ingress
// (POST /codec/decode and /codec/encode, each with a JSON body
// {"payloads": [...]} in protobuf JSON, answered in kind), so that the
// Temporal Web UI and CLI can show the payloads the payload codec
// encrypted. It is for operators: admin keys of one configured tenant only,
// and browsers only from the configured Web UI origin (CORS).
package codecapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/ingress/httperr"
)

// DefaultMaxBodyBytes bounds a request: the Web UI sends the payloads of a
// page of history at once, each up to Temporal's 2 MB payload limit.
const DefaultMaxBodyBytes = 8 << 20

// Options configure the endpoint.
type Options struct {
	// Tenant is the operators' tenant: only its admin keys may use the
	// endpoint (the codec opens every tenant's payloads). Required.
	Tenant string
	// AllowedOrigin is the Web UI's origin (scheme://host[:port]) allowed
	// to call the endpoint from a browser; empty allows no browser.
	AllowedOrigin string
	// MaxBodyBytes bounds a request (DefaultMaxBodyBytes when 0).
	MaxBodyBytes int64
}

// Routes returns the codec endpoint as a route group of the ingress.
func Routes(codec converter.PayloadCodec, opts Options) (api.Group, error) {
	if codec == nil {
		return api.Group{}, errors.New("codecapi: nil codec")
	}
	if opts.Tenant == "" {
		return api.Group{}, errors.New("codecapi: the operators' tenant is required")
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	h := &handler{codec: codec, opts: opts}
	payloads := map[string]any{"type": "object", "required": []string{"payloads"}, "properties": map[string]any{
		"payloads": map[string]any{"type": "array", "items": map[string]any{"type": "object", "properties": map[string]any{
			"metadata": map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string", "contentEncoding": "base64"}},
			"data":     map[string]any{"type": "string", "contentEncoding": "base64"},
		}}},
	}}
	op := func(verb string) api.Operation {
		return api.Operation{
			ID:      "codec" + verb,
			Summary: verb + " Temporal payloads with the payload codec (Temporal's remote codec protocol)",
			Description: "For the Temporal Web UI and CLI (--codec-endpoint <ingress>/codec --codec-auth 'Bearer <admin key>'). " +
				"Admin keys of the operators' tenant only.",
			Request:   &api.Content{Required: true, Schema: payloads},
			Responses: map[int]api.Response{200: {Description: "The payloads, " + verb + "d.", Schema: payloads}},
		}
	}
	preflight := api.Operation{
		Summary:   "CORS preflight of the Web UI",
		Responses: map[int]api.Response{204: {Description: "The configured Web UI origin may call the endpoint."}},
	}
	var routes []api.Route
	for _, verb := range []string{"decode", "encode"} {
		path := "/codec/" + verb
		routes = append(routes,
			api.Route{Method: http.MethodPost, Path: path, Roles: []auth.Role{auth.RoleAdmin}, MaxBodyBytes: opts.MaxBodyBytes,
				Handler: h.serve(verb), Doc: op(verb)},
			api.Route{Method: http.MethodOptions, Path: path, Public: true, Handler: http.HandlerFunc(h.preflight), Doc: preflight},
		)
	}
	return api.Group{Name: "codec", Description: "Temporal remote codec endpoint for operators.", Routes: routes}, nil
}

type handler struct {
	codec converter.PayloadCodec
	opts  Options
}

// cors answers whether the request may proceed, setting the CORS headers
// for the allowed origin. Requests without Origin (the CLI) proceed.
func (h *handler) cors(w http.ResponseWriter, r *http.Request) bool {
	w.Header().Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if h.opts.AllowedOrigin == "" || origin != h.opts.AllowedOrigin {
		return false
	}
	w.Header().Set("Access-Control-Allow-Origin", origin)
	w.Header().Set("Access-Control-Allow-Credentials", "true")
	return true
}

func (h *handler) preflight(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Origin") == "" || !h.cors(w, r) {
		httperr.Write(w, r, api.Errorf(http.StatusForbidden, "origin_not_allowed", "this origin may not call the codec endpoint"))
		return
	}
	w.Header().Set("Access-Control-Allow-Methods", "POST")
	w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Namespace")
	w.Header().Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) serve(verb string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.cors(w, r) {
			httperr.Write(w, r, api.Errorf(http.StatusForbidden, "origin_not_allowed", "this origin may not call the codec endpoint"))
			return
		}
		p, ok := api.Caller(r.Context())
		if !ok || p.Tenant != h.opts.Tenant {
			httperr.Write(w, r, api.Errorf(http.StatusForbidden, "forbidden", "only admin keys of the operators' tenant may use the codec endpoint"))
			return
		}
		body, err := io.ReadAll(r.Body) // bounded by the route's MaxBodyBytes
		if err != nil {
			httperr.Write(w, r, err)
			return
		}
		var in commonpb.Payloads
		if err := protojson.Unmarshal(body, &in); err != nil {
			httperr.Write(w, r, api.Errorf(http.StatusBadRequest, "invalid_json", "want {\"payloads\": [...]} in protobuf JSON: %v", err))
			return
		}
		var out []*commonpb.Payload
		if verb == "decode" {
			out, err = h.codec.Decode(in.GetPayloads())
		} else {
			out, err = h.codec.Encode(in.GetPayloads())
		}
		if err != nil {
			// Codec errors name key ids, never key material.
			httperr.Write(w, r, api.Errorf(http.StatusBadRequest, "codec_failed", "%s: %v", verb, err))
			return
		}
		b, err := protojson.Marshal(&commonpb.Payloads{Payloads: out})
		if err != nil {
			httperr.Write(w, r, fmt.Errorf("encode answer: %w", err))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
}
