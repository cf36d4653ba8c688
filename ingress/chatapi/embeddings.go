package chatapi

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"reflect"
	"sort"
	"strings"

	"github.com/gateflow/gateflow/activities/llm"
	"github.com/gateflow/gateflow/ingress/api"
)

// knownEmbeddingParams are the top-level fields of an embeddings request;
// others are ignored and named in HeaderIgnoredParams.
var knownEmbeddingParams = jsonFields(reflect.TypeFor[llm.EmbeddingRequest]())

// embeddings serves POST /v1/embeddings.
func (h *handler) embeddings(w http.ResponseWriter, r *http.Request) {
	body, err := api.ReadBody(w, r, h.opts.MaxBodyBytes)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := api.CheckDepth(body, h.opts.MaxJSONDepth); err != nil {
		writeError(w, r, &api.Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: err.Error(), Details: []api.Detail{{Message: err.Error()}}})
		return
	}
	var req llm.EmbeddingRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, r, jsonError(body, err))
		return
	}
	var details []api.Detail
	if req.Model == "" {
		details = append(details, api.Detail{Path: "model", Message: "is required"})
	}
	if len(req.Input) == 0 || string(req.Input) == "null" {
		details = append(details, api.Detail{Path: "input", Message: "is required"})
	}
	if len(details) > 0 {
		writeError(w, r, &api.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: details[0].Path + ": " + details[0].Message, Details: details})
		return
	}
	var ignored []string
	for _, k := range topLevelKeys(body) {
		if !knownEmbeddingParams[k] {
			ignored = append(ignored, k)
		}
	}
	if len(ignored) > 0 {
		sort.Strings(ignored)
		w.Header().Set(HeaderIgnoredParams, strings.Join(ignored, ","))
	}
	opts := callOptions(r)
	opts.Labels["api"] = "embeddings"
	if err := cacheOptions(r, &opts); err != nil {
		writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	resp, err := h.gw.Embed(ctx, &req, opts)
	if err != nil {
		var le *llm.Error
		if errors.As(err, &le) && le.Class == llm.ClassBadRequest && le.Target == "" && !errors.Is(err, llm.ErrUnknownModel) {
			// Refused before routing: the request's own parameters.
			param := "input"
			for _, p := range []string{"encoding_format", "dimensions"} {
				if strings.HasPrefix(le.Message, p) {
					param = p
				}
			}
			err = &api.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: le.Message,
				Details: []api.Detail{{Path: param, Message: le.Message}}}
		}
		h.opts.Log.Debug("embeddings failed", "request_id", opts.RequestID, "model", req.Model, "class", llm.ClassOf(err), "err", err)
		writeError(w, r, Error(err, func() []string { return h.gw.ModelsFor(opts.Tenant) }))
		return
	}
	setCacheHeaders(w, resp.Cache)
	if req.EncodingFormat != "base64" {
		api.WriteJSON(w, http.StatusOK, resp)
		return
	}
	api.WriteJSON(w, http.StatusOK, base64Embeddings(resp))
}

// base64Embeddings is an answer whose vectors are base64 strings of
// little-endian float32s, as OpenAI sends them with encoding_format base64
// (the default of OpenAI's Python SDK).
func base64Embeddings(resp *llm.EmbeddingResponse) any {
	type item struct {
		Object    string `json:"object"`
		Index     int    `json:"index"`
		Embedding string `json:"embedding"`
	}
	out := struct {
		Object string             `json:"object"`
		Data   []item             `json:"data"`
		Model  string             `json:"model"`
		Usage  llm.EmbeddingUsage `json:"usage"`
	}{Object: resp.Object, Model: resp.Model, Usage: resp.Usage}
	for _, d := range resp.Data {
		b := make([]byte, 4*len(d.Embedding))
		for i, f := range d.Embedding {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
		}
		out.Data = append(out.Data, item{Object: d.Object, Index: d.Index, Embedding: base64.StdEncoding.EncodeToString(b)})
	}
	return out
}
