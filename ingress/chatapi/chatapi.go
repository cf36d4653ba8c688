// Package chatapi serves the model gateway's OpenAI-compatible unified
// endpoints on the ingress: POST /v1/chat/completions (plain and streamed as
// server-sent events), POST /v1/embeddings and GET /v1/models, so that
// OpenAI SDKs work against Gateflow by changing only their base URL and API
// key. Their errors have OpenAI's shape ({"error": {"message", "type",
// "param", "code"}}), the ingress's own included.
//
// Requests are authenticated, rate limited and recorded by the ingress like
// every route; the tenant comes from the API key, the gateway enforces the
// tenant's token budget and writes one `model` call record per provider
// attempt with the tenant, key and request id.
package chatapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gateflow/gateflow/activities/llm"
	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/ingress/httperr"
)

// Defaults of Options.
const (
	DefaultMaxBodyBytes = 16 << 20 // prompts may carry images
	DefaultTimeout      = 10 * time.Minute
)

// HeaderIgnoredParams lists the request parameters the endpoint accepted
// but ignored (OpenAI parameters the unified format has no equivalent for).
const HeaderIgnoredParams = "Gateflow-Ignored-Params"

// Response cache headers. A request may send HeaderCache "on" (cache this
// answer whatever its temperature), "off" (neither read nor store) or
// "refresh" (a fresh answer, stored); Cache-Control no-cache means refresh
// and no-store off. HeaderCacheTTL (seconds) overrides the entry's time to
// live. The answer's HeaderCache says "hit", "miss", "refresh" or
// "bypass"; a hit also has Age (seconds).
const (
	HeaderCache    = "Gateflow-Cache"
	HeaderCacheTTL = "Gateflow-Cache-Ttl"
)

// Gateway is what the endpoints need of *llm.Gateway.
type Gateway interface {
	Chat(ctx context.Context, req *llm.ChatRequest, opts llm.CallOptions) (*llm.ChatResponse, error)
	ChatStream(ctx context.Context, req *llm.ChatRequest, opts llm.CallOptions) (*llm.Stream, error)
	Embed(ctx context.Context, req *llm.EmbeddingRequest, opts llm.CallOptions) (*llm.EmbeddingResponse, error)
	// ModelsFor lists the models the tenant may call (for error hints).
	ModelsFor(tenant string) []string
	// ModelInfosFor describes the models the tenant may call.
	ModelInfosFor(tenant string) []llm.ModelInfo
}

// Options tune the endpoint; zero values take the defaults.
type Options struct {
	// MaxBodyBytes bounds a request body (default 16 MiB).
	MaxBodyBytes int64
	// MaxJSONDepth bounds the nesting of a request (default
	// api.DefaultMaxDepth).
	MaxJSONDepth int
	// Timeout bounds a non-streaming call, retries and fallbacks included
	// (default 10 min). Streams end when the client goes away, the
	// provider stalls beyond its idle timeout, or the server shuts down.
	Timeout time.Duration
	// Log receives debug logs of failed calls; nil discards them.
	Log *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxJSONDepth <= 0 {
		o.MaxJSONDepth = api.DefaultMaxDepth
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// handler serves the routes.
type handler struct {
	gw   Gateway
	opts Options
}

// Routes returns the route group to mount on the ingress.
func Routes(gw Gateway, opts Options) api.Group {
	h := &handler{gw: gw, opts: opts.withDefaults()}
	return withOpenAIErrors(api.Group{
		Name: "models",
		Description: "The model gateway, OpenAI-compatible: point an OpenAI SDK at `<ingress>/v1` with a Gateflow API key. " +
			"Models are `provider/model` names or aliases of the registry (balanced, with fallbacks); the tenant's token budget " +
			"applies. Errors of these routes have OpenAI's shape: `{\"error\": {\"message\", \"type\", \"param\", \"code\"}}`.",
		Routes: []api.Route{
			{
				Method: http.MethodPost, Path: "/v1/chat/completions", Roles: auth.ModelRoles,
				// Model calls outlive the ingress request timeout, and
				// streams need no write deadline; Options.Timeout bounds
				// non-streaming calls instead.
				Streaming:    true,
				MaxBodyBytes: h.opts.MaxBodyBytes,
				Handler:      http.HandlerFunc(h.chatCompletions),
				ErrorBody:    OpenAIErrorBody,
				Doc: api.Operation{
					ID: "createChatCompletion", Summary: "Chat completion (OpenAI-compatible), plain or streamed",
					Description: "The OpenAI chat completions request and response. With `stream: true` the answer is a stream of " +
						"`data: {chat.completion.chunk}` events ended by `data: [DONE]`; with `stream_options.include_usage` the " +
						"last chunk has no choices and carries `usage`. An error after the stream started is sent as " +
						"`data: {\"error\": {...}}` and ends the stream (code `stream_max_age` when the stream reached its maximum age). `usage.cost_usd` is the call's cost at the registry's " +
						"prices. Parameters the unified format has no equivalent for are ignored and listed in the `" +
						HeaderIgnoredParams + "` header; `n` > 1 and `logprobs` are refused.",
					Request: &api.Content{Required: true, Schema: api.Ref("ChatCompletionRequest")},
					Responses: map[int]api.Response{
						200: {Description: "The completion (or, with stream: true, a text/event-stream of chunks).", Schema: api.Ref("ChatCompletion"),
							Headers: map[string]string{HeaderIgnoredParams: "Request parameters that were ignored, comma-separated.",
								HeaderCache: "The response cache's part: hit, miss, refresh or bypass.", "Age": "Seconds since a cached answer was stored (hits)."}},
						400: errResp("Invalid request, or prompt longer than the model's context window (code context_length_exceeded)."),
						404: errResp("Unknown model (code model_not_found); the message lists known models."),
						429: errResp("Token budget of the tenant spent (budget_exceeded, Retry-After until it resets), " +
							"the provider rate limited every attempt (provider_rate_limited), or the ingress rate limit."),
						502: errResp("The provider failed: error status, unreachable, bad credential or malformed answer."),
						503: errResp("The provider is overloaded, or the token budget cannot be checked."),
						504: errResp("The provider did not answer in time."),
					},
				},
			},
			{
				Method: http.MethodPost, Path: "/v1/embeddings", Roles: auth.ModelRoles,
				Streaming:    true,
				MaxBodyBytes: h.opts.MaxBodyBytes,
				Handler:      http.HandlerFunc(h.embeddings),
				ErrorBody:    OpenAIErrorBody,
				Doc: api.Operation{
					ID: "createEmbedding", Summary: "Embeddings (OpenAI-compatible)",
					Description: "OpenAI's embeddings request and answer: `input` is a string, an array of strings, or token ids " +
						"(OpenAI-compatible providers only); `encoding_format` float or base64; `dimensions`; `input_type` " +
						"(search_document, search_query, classification, clustering) for providers that distinguish them. " +
						"Routing, budgets, call records, cost (`usage.cost_usd`) and the response cache as for chat completions.",
					Request: &api.Content{Required: true, Schema: api.Ref("EmbeddingRequest")},
					Responses: map[int]api.Response{
						200: {Description: "The embeddings.", Schema: api.Ref("EmbeddingList"),
							Headers: map[string]string{HeaderCache: "The response cache's part: hit, miss, refresh or bypass."}},
						400: errResp("Invalid request."),
						404: errResp("Unknown model (code model_not_found)."),
						429: errResp("Token budget spent, provider rate limited, or the ingress rate limit."),
						502: errResp("The provider failed or serves no embeddings."),
						503: errResp("The provider is overloaded, or the token budget cannot be checked."),
						504: errResp("The provider did not answer in time."),
					},
				},
			},
			{
				Method: http.MethodGet, Path: "/v1/models", Roles: auth.ModelRoles,
				Handler:   http.HandlerFunc(h.listModels),
				ErrorBody: OpenAIErrorBody,
				Doc: api.Operation{
					ID: "listModels", Summary: "Models and aliases (OpenAI-compatible list)",
					Description: "OpenAI's list of models, each with Gateflow's figures: context window, maximum output, prices per " +
						"million tokens, capabilities, and the catalogue entry (with its source and date) they come from; " +
						"aliases list their targets and balancing strategy.",
					Responses: map[int]api.Response{200: {Description: "The models.", Schema: api.Ref("ModelList")}},
				},
			},
		},
		Schemas: schemas(),
	})
}

// chatRequest is the body of POST /v1/chat/completions: the unified
// request plus the OpenAI parameters the endpoint checks but cannot honour.
type chatRequest struct {
	llm.ChatRequest
	N           *int  `json:"n,omitempty"`
	Logprobs    *bool `json:"logprobs,omitempty"`
	TopLogprobs *int  `json:"top_logprobs,omitempty"`
}

// knownParams are the top-level JSON fields of chatRequest; anything else
// is ignored and reported in HeaderIgnoredParams.
var knownParams = jsonFields(reflect.TypeFor[chatRequest]())

// jsonFields collects the JSON names of a struct's fields, embedded
// structs included.
func jsonFields(t reflect.Type) map[string]bool {
	m := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			for k := range jsonFields(f.Type) {
				m[k] = true
			}
			continue
		}
		if name != "" && name != "-" {
			m[name] = true
		}
	}
	return m
}

// decode reads and checks a request. It returns the parameters ignored.
func (h *handler) decode(w http.ResponseWriter, r *http.Request) (*chatRequest, []string, error) {
	body, err := api.ReadBody(w, r, h.opts.MaxBodyBytes)
	if err != nil {
		return nil, nil, err
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, nil, &api.Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: "a JSON body is required",
			Details: []api.Detail{{Path: "", Message: "is empty"}}}
	}
	if err := api.CheckDepth(body, h.opts.MaxJSONDepth); err != nil {
		return nil, nil, &api.Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: err.Error(), Details: []api.Detail{{Message: err.Error()}}}
	}
	req := &chatRequest{}
	if err := json.Unmarshal(body, req); err != nil {
		return nil, nil, h.locate(body, err)
	}
	var ignored []string
	for _, k := range topLevelKeys(body) {
		if !knownParams[k] {
			ignored = append(ignored, k)
		}
	}
	sort.Strings(ignored)
	var details []api.Detail
	if req.Model == "" {
		details = append(details, api.Detail{Path: "model", Message: "is required"})
	}
	if len(req.Messages) == 0 {
		details = append(details, api.Detail{Path: "messages", Message: "must hold at least one message"})
	}
	for i, m := range req.Messages {
		if m.Role == "" {
			details = append(details, api.Detail{Path: fmt.Sprintf("messages[%d].role", i), Message: "is required"})
		}
	}
	if req.N != nil && *req.N != 1 {
		details = append(details, api.Detail{Path: "n", Message: "only 1 is supported"})
	}
	if req.Logprobs != nil && *req.Logprobs {
		details = append(details, api.Detail{Path: "logprobs", Message: "is not supported"})
	}
	if req.TopLogprobs != nil && *req.TopLogprobs > 0 {
		details = append(details, api.Detail{Path: "top_logprobs", Message: "is not supported"})
	}
	if req.StreamOptions != nil && !req.Stream {
		details = append(details, api.Detail{Path: "stream_options", Message: "only allowed with stream: true"})
	}
	if len(details) > 0 {
		msg := details[0].Path + ": " + details[0].Message
		if len(details) > 1 {
			msg += fmt.Sprintf(" (and %d more problems)", len(details)-1)
		}
		return nil, nil, &api.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: msg, Details: details}
	}
	return req, ignored, nil
}

// topLevelKeys returns the keys of a JSON object already known to be valid,
// in one pass without decoding the values (a second full decode would cost
// as much as the first). Keys with escapes are returned raw: they are not
// parameter names anyway.
func topLevelKeys(b []byte) []string {
	var keys []string
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		case '"':
			j := i + 1
			for j < len(b) && b[j] != '"' {
				if b[j] == '\\' {
					j++
				}
				j++
			}
			if depth == 1 {
				// A string at depth 1 followed by ':' is a key.
				k := j + 1
				for k < len(b) && (b[k] == ' ' || b[k] == '\t' || b[k] == '\n' || b[k] == '\r') {
					k++
				}
				if k < len(b) && b[k] == ':' && j <= len(b) {
					keys = append(keys, string(b[i+1:min(j, len(b))]))
				}
			}
			i = j
		}
	}
	return keys
}

// locate reports a failed decode with precise paths ("messages[2].role"):
// the ingress's strict decoder walks the body against the request type;
// its unknown-field complaints are dropped (unknown parameters are
// ignored).
func (h *handler) locate(body []byte, err error) error {
	var ae *api.Error
	if errors.As(api.DecodeJSON(body, &chatRequest{}, h.opts.MaxJSONDepth, ""), &ae) {
		var details []api.Detail
		for _, d := range ae.Details {
			if d.Message != "unknown field" {
				details = append(details, d)
			}
		}
		if len(details) > 0 {
			msg := details[0].Message
			if details[0].Path != "" {
				msg = details[0].Path + ": " + msg
			}
			if len(details) > 1 {
				msg += fmt.Sprintf(" (and %d more problems)", len(details)-1)
			}
			return &api.Error{Status: http.StatusBadRequest, Code: ae.Code, Message: msg, Details: details}
		}
	}
	return jsonError(body, err)
}

// jsonError locates a decoding failure.
func jsonError(body []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		line, col := 1, 1
		for i := 0; i < int(se.Offset) && i < len(body); i++ {
			if body[i] == '\n' {
				line, col = line+1, 1
			} else {
				col++
			}
		}
		msg := fmt.Sprintf("invalid JSON at line %d, column %d: %s", line, col, strings.TrimPrefix(se.Error(), "json: "))
		return &api.Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: msg, Details: []api.Detail{{Message: msg}}}
	case errors.As(err, &te):
		path := strings.TrimPrefix(te.Field, "ChatRequest.") // the embedded struct's name
		if path == "" {
			path = "(body)"
		}
		msg := fmt.Sprintf("cannot be %s", te.Value)
		if te.Type != nil {
			msg = fmt.Sprintf("must be %s, not %s", kindName(te.Type.String()), te.Value)
		}
		return &api.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: path + ": " + msg,
			Details: []api.Detail{{Path: path, Message: msg}}}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &api.Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: "invalid JSON: unexpected end of input",
			Details: []api.Detail{{Message: "unexpected end of input"}}}
	}
	return &api.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: err.Error(), Details: []api.Detail{{Message: err.Error()}}}
}

// kindName names a Go type the way a JSON client understands it.
func kindName(t string) string {
	switch {
	case t == "string":
		return "a string"
	case t == "bool":
		return "a boolean"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"), strings.HasPrefix(t, "float"):
		return "a number"
	case strings.HasPrefix(t, "[]"):
		return "an array"
	case strings.HasPrefix(t, "map["):
		return "an object"
	}
	return "an object"
}

// callOptions are the gateway options of a request: who calls, for the
// budget and the call records.
func callOptions(r *http.Request) llm.CallOptions {
	ctx := r.Context()
	p, _ := api.Caller(ctx)
	return llm.CallOptions{
		Tenant:    p.Tenant,
		KeyID:     p.KeyID,
		RequestID: api.RequestID(ctx),
		Labels:    map[string]string{"api": "chat_completions"},
	}
}

func (h *handler) chatCompletions(w http.ResponseWriter, r *http.Request) {
	req, ignored, err := h.decode(w, r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if len(ignored) > 0 {
		w.Header().Set(HeaderIgnoredParams, strings.Join(ignored, ","))
	}
	opts := callOptions(r)
	if err := cacheOptions(r, &opts); err != nil {
		writeError(w, r, err)
		return
	}
	if req.Stream {
		h.stream(w, r, &req.ChatRequest, opts)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	resp, err := h.gw.Chat(ctx, &req.ChatRequest, opts)
	if err != nil {
		h.opts.Log.Debug("chat completion failed", "request_id", opts.RequestID, "model", req.Model, "class", llm.ClassOf(err), "err", err, "cause", causeOf(err))
		writeError(w, r, Error(err, func() []string { return h.gw.ModelsFor(opts.Tenant) }))
		return
	}
	setCacheHeaders(w, resp.Cache)
	api.WriteJSON(w, http.StatusOK, resp)
}

// cacheOptions reads the caller's response cache headers.
func cacheOptions(r *http.Request, opts *llm.CallOptions) error {
	switch v := strings.ToLower(strings.TrimSpace(r.Header.Get(HeaderCache))); v {
	case "":
		for _, d := range strings.Split(strings.ToLower(r.Header.Get("Cache-Control")), ",") {
			switch strings.TrimSpace(d) {
			case "no-store":
				opts.Cache = llm.CacheOff
			case "no-cache":
				if opts.Cache != llm.CacheOff {
					opts.Cache = llm.CacheRefreshOnly
				}
			}
		}
	case "on":
		opts.Cache = llm.CacheOn
	case "off":
		opts.Cache = llm.CacheOff
	case "refresh":
		opts.Cache = llm.CacheRefreshOnly
	default:
		return &api.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: HeaderCache + " must be on, off or refresh",
			Details: []api.Detail{{Path: "header:" + HeaderCache, Message: "must be on, off or refresh"}}}
	}
	if v := r.Header.Get(HeaderCacheTTL); v != "" {
		secs, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || secs <= 0 {
			return &api.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: HeaderCacheTTL + " must be a positive number of seconds",
				Details: []api.Detail{{Path: "header:" + HeaderCacheTTL, Message: "must be a positive number of seconds"}}}
		}
		opts.CacheTTL = time.Duration(secs) * time.Second
	}
	return nil
}

// setCacheHeaders tells the caller how the response cache took part.
func setCacheHeaders(w http.ResponseWriter, c *llm.CacheInfo) {
	if c == nil || c.Status == "" {
		return
	}
	w.Header().Set(HeaderCache, c.Status)
	if c.Status == llm.CacheHit {
		w.Header().Set("Age", strconv.Itoa(int(c.Age/time.Second)))
	}
}

// stream passes the gateway's chunks through as server-sent events. The
// gateway's last chunk (no choices, usage) is sent only when the client
// asked for usage, as OpenAI does.
func (h *handler) stream(w http.ResponseWriter, r *http.Request, req *llm.ChatRequest, opts llm.CallOptions) {
	includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	// A stream slot of the key and tenant (429 beyond their caps), a
	// maximum age and a write deadline per chunk (issue 10 item 7).
	st, err := api.OpenStream(w, r)
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	defer st.Close()
	ctx := st.Context()
	s, err := h.gw.ChatStream(ctx, req, opts)
	if err != nil {
		h.opts.Log.Debug("chat stream failed", "request_id", opts.RequestID, "model", req.Model, "class", llm.ClassOf(err), "err", err, "cause", causeOf(err))
		writeError(w, r, Error(err, func() []string { return h.gw.ModelsFor(opts.Tenant) }))
		return
	}
	defer s.Close()
	c := s.Cache()
	setCacheHeaders(w, &c)
	w = st.W
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	for {
		c, err := s.Recv()
		if err == io.EOF {
			_, _ = io.WriteString(w, llm.SSEDone)
			_ = rc.Flush()
			return
		}
		if err != nil {
			// The status is sent: report the error as an event, the way
			// OpenAI clients read it, and end the stream without [DONE].
			ae := httperr.ForClient(httperr.FromError(Error(err, nil)), opts.RequestID)
			if st.Expired() {
				ae = &api.Error{Status: http.StatusRequestTimeout, Code: "stream_max_age", Details: []api.Detail{},
					Message: fmt.Sprintf("the stream reached its maximum age (%s); send the request again", st.MaxAge())}
				err = ae
			}
			if info := api.Info(r.Context()); info != nil {
				info.Err = err
			}
			if r.Context().Err() == nil {
				b, _ := json.Marshal(OpenAIErrorBody(ae))
				_, _ = fmt.Fprintf(w, "data: %s\n\n", b)
				_ = rc.Flush()
			}
			return
		}
		if !includeUsage && len(c.Choices) == 0 && c.Usage != nil {
			continue
		}
		if err := llm.EncodeSSE(w, c); err != nil {
			return // the client went away; Close settles the call
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// causeOf is the underlying error of a model error, for logs: its message
// keeps provider addresses out of answers, the log keeps them.
func causeOf(err error) string {
	var le *llm.Error
	if errors.As(err, &le) && le.Err != nil {
		return le.Err.Error()
	}
	return ""
}

// modelList is the OpenAI list of models.
type modelList struct {
	Object string  `json:"object"`
	Data   []model `json:"data"`
}

// model is OpenAI's model object with Gateflow's figures (extension
// fields, which OpenAI SDKs keep as extra fields).
type model struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
	llm.ModelInfo
}

func (h *handler) listModels(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.Query()) > 0 {
		writeError(w, r, api.Errorf(http.StatusBadRequest, "invalid_request", "this endpoint takes no query parameters"))
		return
	}
	p, _ := api.Caller(r.Context())
	infos := h.gw.ModelInfosFor(p.Tenant)
	out := modelList{Object: "list", Data: make([]model, 0, len(infos))}
	for _, info := range infos {
		owner := "gateflow" // aliases
		if info.Provider != "" {
			owner = info.Provider
		}
		out.Data = append(out.Data, model{ID: info.ID, Object: "model", OwnedBy: owner, ModelInfo: info})
	}
	api.WriteJSON(w, http.StatusOK, out)
}

func errResp(desc string) api.Response {
	return api.Response{Description: desc, Schema: api.Ref("OpenAIError")}
}

// withOpenAIErrors documents the ingress's own errors of a route in
// OpenAI's shape (the ingress would otherwise document its one shape).
func withOpenAIErrors(g api.Group) api.Group {
	for i := range g.Routes {
		rs := g.Routes[i].Doc.Responses
		if rs == nil {
			rs = map[int]api.Response{}
		}
		for code, desc := range map[int]string{
			http.StatusBadRequest:            "Malformed request; param names the parameter at fault.",
			http.StatusUnauthorized:          "Missing or invalid API key.",
			http.StatusForbidden:             "The key lacks the role this route needs.",
			http.StatusTooManyRequests:       "Rate limit of the key or tenant exceeded; see Retry-After.",
			http.StatusRequestEntityTooLarge: "The body is larger than the limit.",
			http.StatusInternalServerError:   "Internal error.",
		} {
			if _, ok := rs[code]; !ok {
				rs[code] = errResp(desc)
			}
		}
		g.Routes[i].Doc.Responses = rs
	}
	return g
}

// schemas documents the OpenAI shapes the endpoint speaks (the parts the
// unified format models; OpenAI's own reference has every field).
func schemas() map[string]any {
	str := map[string]any{"type": "string"}
	num := map[string]any{"type": "number"}
	integer := map[string]any{"type": "integer"}
	message := map[string]any{
		"type": "object",
		"properties": map[string]any{
			"role":         map[string]any{"type": "string", "enum": []any{"system", "developer", "user", "assistant", "tool"}},
			"content":      map[string]any{"description": "A string, or an array of parts ({type: text, text} or {type: image_url, image_url: {url}})."},
			"name":         str,
			"tool_calls":   map[string]any{"type": "array", "items": map[string]any{"type": "object"}},
			"tool_call_id": str,
		},
		"required": []any{"role"},
	}
	usage := map[string]any{
		"type": "object",
		"properties": map[string]any{
			"prompt_tokens": integer, "completion_tokens": integer, "total_tokens": integer,
			"cost_usd": map[string]any{"type": "number", "description": "Cost at the registry's prices (Gateflow extension)."},
		},
	}
	return map[string]any{
		"ChatCompletionRequest": map[string]any{
			"type": "object",
			"properties": map[string]any{
				"model":                 map[string]any{"type": "string", "description": "An alias or provider/model of the registry (GET /v1/models)."},
				"messages":              map[string]any{"type": "array", "items": message, "minItems": 1},
				"temperature":           num,
				"top_p":                 num,
				"max_tokens":            integer,
				"max_completion_tokens": integer,
				"stop":                  map[string]any{"type": "array", "items": str},
				"tools":                 map[string]any{"type": "array", "items": map[string]any{"type": "object"}},
				"tool_choice":           map[string]any{},
				"response_format":       map[string]any{"type": "object", "properties": map[string]any{"type": map[string]any{"type": "string", "enum": []any{"text", "json_object", "json_schema"}}, "json_schema": map[string]any{"type": "object"}}},
				"stream":                map[string]any{"type": "boolean"},
				"stream_options":        map[string]any{"type": "object", "properties": map[string]any{"include_usage": map[string]any{"type": "boolean"}}},
				"user":                  str,
				"seed":                  integer,
				"presence_penalty":      num,
				"frequency_penalty":     num,
				"parallel_tool_calls":   map[string]any{"type": "boolean"},
				"n":                     map[string]any{"type": "integer", "enum": []any{1}},
			},
			"required": []any{"model", "messages"},
		},
		"ChatCompletion": map[string]any{
			"type": "object",
			"properties": map[string]any{
				"id": str, "object": map[string]any{"type": "string", "enum": []any{"chat.completion"}}, "created": integer,
				"model": map[string]any{"type": "string", "description": "The provider/model that answered."},
				"choices": map[string]any{"type": "array", "items": map[string]any{"type": "object", "properties": map[string]any{
					"index": integer, "message": message, "finish_reason": str,
				}}},
				"usage": usage,
			},
		},
		"ModelList": map[string]any{
			"type": "object",
			"properties": map[string]any{
				"object": map[string]any{"type": "string", "enum": []any{"list"}},
				"data": map[string]any{"type": "array", "items": map[string]any{"type": "object", "properties": map[string]any{
					"id": str, "object": str, "created": integer, "owned_by": str,
					"mode":                  map[string]any{"type": "string", "enum": []any{"chat", "embedding"}},
					"context_window":        integer,
					"max_output_tokens":     integer,
					"dimensions":            integer,
					"input_per_mtok":        map[string]any{"type": "number", "description": "US dollars per million prompt tokens."},
					"output_per_mtok":       map[string]any{"type": "number", "description": "US dollars per million completion tokens."},
					"cached_input_per_mtok": map[string]any{"type": "number", "description": "US dollars per million prompt tokens read from the provider's prompt cache."},
					"capabilities":          map[string]any{"type": "array", "items": map[string]any{"type": "string", "enum": []any{"tools", "json", "vision"}}},
					"catalogue":             map[string]any{"type": "string", "description": "The catalogue entry the figures come from."},
					"source":                map[string]any{"type": "string", "description": "Where the catalogue's figures were read."},
					"as_of":                 map[string]any{"type": "string", "description": "When they were read (YYYY-MM-DD)."},
					"targets":               map[string]any{"type": "array", "items": str, "description": "An alias's targets and fallbacks."},
					"strategy":              map[string]any{"type": "string", "description": "An alias's balancing strategy."},
				}}},
			},
		},
		"EmbeddingRequest": map[string]any{
			"type": "object",
			"properties": map[string]any{
				"model":           map[string]any{"type": "string", "description": "An alias or provider/model of the registry."},
				"input":           map[string]any{"description": "A string, an array of strings, an array of token ids or an array of token id arrays."},
				"encoding_format": map[string]any{"type": "string", "enum": []any{"float", "base64"}},
				"dimensions":      integer,
				"user":            str,
				"input_type":      map[string]any{"type": "string", "enum": []any{"search_document", "search_query", "classification", "clustering"}},
			},
			"required": []any{"model", "input"},
		},
		"EmbeddingList": map[string]any{
			"type": "object",
			"properties": map[string]any{
				"object": map[string]any{"type": "string", "enum": []any{"list"}},
				"data": map[string]any{"type": "array", "items": map[string]any{"type": "object", "properties": map[string]any{
					"object": str, "index": integer,
					"embedding": map[string]any{"description": "An array of numbers, or a base64 string of little-endian float32s."},
				}}},
				"model": map[string]any{"type": "string", "description": "The provider/model that answered."},
				"usage": map[string]any{"type": "object", "properties": map[string]any{
					"prompt_tokens": integer, "total_tokens": integer, "cost_usd": num,
				}},
			},
		},
		"OpenAIError": map[string]any{
			"type": "object",
			"properties": map[string]any{
				"error": map[string]any{"type": "object", "properties": map[string]any{
					"message": str,
					"type":    map[string]any{"type": "string", "description": "invalid_request_error, authentication_error, permission_error, rate_limit_error, insufficient_quota or server_error."},
					"param":   map[string]any{"type": []any{"string", "null"}, "description": "The request parameter at fault."},
					"code":    map[string]any{"type": "string", "description": "Gateflow's error code."},
				}, "required": []any{"message", "type", "param", "code"}},
			},
		},
	}
}
