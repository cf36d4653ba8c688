package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/gateflow/gateflow/analytics/record"
)

// EmbeddingRequest is an OpenAI embeddings request (POST /v1/embeddings).
type EmbeddingRequest struct {
	// Model is an alias or "provider/model".
	Model string `json:"model"`
	// Input is a string, an array of strings, an array of token ids, or an
	// array of arrays of token ids (token ids only for OpenAI-compatible
	// providers).
	Input json.RawMessage `json:"input"`
	// EncodingFormat is "float" (default) or "base64"; the gateway always
	// returns floats, the ingress encodes base64 answers.
	EncodingFormat string `json:"encoding_format,omitempty"`
	// Dimensions asks for shorter vectors where the model supports it.
	Dimensions *int   `json:"dimensions,omitempty"`
	User       string `json:"user,omitempty"`
	// InputType tells providers that embed queries and documents
	// differently what the inputs are: "search_document" (default),
	// "search_query", "classification" or "clustering" (Cohere's
	// input_type, Vertex AI's task_type; an extension of OpenAI's API).
	InputType string `json:"input_type,omitempty"`
}

// EmbeddingResponse is an OpenAI embeddings answer.
type EmbeddingResponse struct {
	Object string      `json:"object"` // "list"
	Data   []Embedding `json:"data"`
	// Model is the "provider/model" that answered.
	Model string         `json:"model"`
	Usage EmbeddingUsage `json:"usage"`
	// Cache says whether the response cache answered (not part of the
	// JSON answer).
	Cache *CacheInfo `json:"-"`
}

// Embedding is one input's vector.
type Embedding struct {
	Object    string    `json:"object"` // "embedding"
	Index     int       `json:"index"`
	Embedding []float32 `json:"embedding"`
}

// EmbeddingUsage counts the input tokens and their cost.
type EmbeddingUsage struct {
	PromptTokens int64 `json:"prompt_tokens"`
	TotalTokens  int64 `json:"total_tokens"`
	// CostUSD is the cost at the registry's prices (Gateflow extension).
	CostUSD float64 `json:"cost_usd,omitempty"`
}

// Object names of embedding answers.
const (
	ObjectList      = "list"
	ObjectEmbedding = "embedding"
)

// MaxEmbeddingInputs bounds the inputs of one request (OpenAI's limit).
const MaxEmbeddingInputs = 2048

// embeddingInputs is a parsed Input: texts, or token id arrays.
type embeddingInputs struct {
	texts  []string
	tokens [][]int64
}

func (in embeddingInputs) len() int {
	if in.tokens != nil {
		return len(in.tokens)
	}
	return len(in.texts)
}

// parseEmbeddingInput reads the four forms of an embeddings input.
func parseEmbeddingInput(raw json.RawMessage) (embeddingInputs, error) {
	raw = bytes.TrimSpace(raw)
	var in embeddingInputs
	if len(raw) == 0 || string(raw) == "null" {
		return in, badRequest("input is required")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		in.texts = []string{s}
	} else if err := json.Unmarshal(raw, &in.texts); err != nil {
		in.texts = nil
		var one []int64
		if err := json.Unmarshal(raw, &one); err == nil {
			in.tokens = [][]int64{one}
		} else if err := json.Unmarshal(raw, &in.tokens); err != nil {
			return in, badRequest("input must be a string, an array of strings, an array of token ids or an array of token id arrays")
		}
	}
	n := in.len()
	switch {
	case n == 0:
		return in, badRequest("input must not be empty")
	case n > MaxEmbeddingInputs:
		return in, badRequest("input has %d items; at most %d per request", n, MaxEmbeddingInputs)
	}
	for i, t := range in.texts {
		if t == "" {
			return in, badRequest("input[%d] is empty", i)
		}
	}
	for i, t := range in.tokens {
		if len(t) == 0 {
			return in, badRequest("input[%d] is empty", i)
		}
	}
	return in, nil
}

// measure sizes the inputs for estimates and the context check.
func (in embeddingInputs) measure() (total promptSize, longest int64) {
	for _, t := range in.texts {
		total.textBytes += int64(len(t))
		longest = max(longest, int64(len(t))/lowerBytesPerToken)
	}
	for _, t := range in.tokens {
		// A token id array is exactly its length in tokens; count it so
		// that both bounds give that length.
		total.textBytes += int64(len(t)) * upperBytesPerToken
		longest = max(longest, int64(len(t)))
	}
	return total, longest
}

// embedCall is one provider request of an embeddings attempt (most
// providers take the whole batch in one; Bedrock's Titan takes one input
// per call).
type embedCall struct {
	url  string
	body []byte
}

// embedder is implemented by adapters whose providers serve embeddings.
type embedder interface {
	// embedCalls encodes the requests of an attempt.
	embedCalls(t *target, req *EmbeddingRequest, in embeddingInputs) ([]embedCall, error)
	// decodeEmbeddings turns the answers (one per call, in order) into the
	// unified answer; usage is zero when the provider reports none.
	decodeEmbeddings(t *target, bodies [][]byte, n int) (*EmbeddingResponse, error)
}

// Embed creates embeddings through the gateway: routing, balancing,
// fallbacks and retries, budget, response cache (embeddings are
// deterministic, so cached unless the caller says otherwise), records and
// cost.
func (g *Gateway) Embed(ctx context.Context, req *EmbeddingRequest, opts CallOptions) (*EmbeddingResponse, error) {
	if req == nil {
		return nil, badRequest("no request")
	}
	rt := g.routes.Load()
	p, err := rt.resolve(req.Model)
	if err != nil {
		return nil, err
	}
	if err := g.checkAccess(&opts, req.Model); err != nil {
		return nil, err
	}
	in, err := parseEmbeddingInput(req.Input)
	if err != nil {
		return nil, err
	}
	if f := req.EncodingFormat; f != "" && f != "float" && f != "base64" {
		return nil, badRequest("encoding_format %q is not float or base64", f)
	}
	if req.Dimensions != nil && *req.Dimensions <= 0 {
		return nil, badRequest("dimensions must be positive")
	}
	c := g.newCall(ctx, rt, p, req.Model, &opts, false)
	c.emb = req
	var longest int64
	c.size, longest = in.measure()
	g.prepareCache(c, rt.cache, true, func() (cacheKey, error) {
		r := *req
		r.EncodingFormat = "" // the same vectors either way
		b, err := json.Marshal(&r)
		return newCacheKey("embeddings", opts.Tenant, req.Model, b), err
	})
	if e := g.cacheLookup(c); e != nil && e.emb != nil {
		out := cloneEmbeddings(e.emb)
		out.Cache = &CacheInfo{Status: CacheHit, Age: g.clock.Now().Sub(e.stored)}
		g.hitRecord(c, e)
		return out, nil
	}
	if err := g.reserve(ctx, c); err != nil {
		return nil, err
	}
	defer c.settleOnce()
	var resp *EmbeddingResponse
	err = g.run(ctx, c, func(_ int, t *target) error {
		r, err := g.attemptEmbed(ctx, c, t, in, longest)
		resp = r
		return err
	})
	if err != nil {
		return nil, err
	}
	if c.cacheKey != nil {
		size := int64(entryOverhead)
		for _, d := range resp.Data {
			size += int64(len(d.Embedding))*4 + 64
		}
		if size <= c.cacheMax {
			now := g.clock.Now()
			g.cache.put(&cacheEntry{key: *c.cacheKey, tenant: opts.Tenant, emb: cloneEmbeddings(resp), target: resp.Model,
				cost: resp.Usage.CostUSD, stored: now, expires: now.Add(c.cacheTTL), size: size})
		}
	}
	resp.Cache = &CacheInfo{Status: c.cacheStatus}
	return resp, nil
}

// attemptEmbed makes one embeddings attempt on t.
func (g *Gateway) attemptEmbed(ctx context.Context, c *call, t *target, in embeddingInputs, longest int64) (*EmbeddingResponse, error) {
	c.attempts++
	start := g.clock.Now()
	r := c.newRecord(t.name, start)
	emb, ok := t.prov.adapter.(embedder)
	if !ok || !t.prov.embeddings {
		e := &Error{Class: ClassModelUnavailable, Target: t.name, Message: fmt.Sprintf("provider %q (kind %s) serves no embeddings", t.prov.name, t.prov.kind)}
		c.rejectRecord(&r, start, e)
		return nil, e
	}
	if limit := int64(t.model.ContextTokens); limit > 0 && longest > limit {
		e := &Error{Class: ClassContext, Target: t.name, Message: fmt.Sprintf(
			"an input of at least %d tokens (estimated) exceeds the model's limit of %d tokens", longest, limit)}
		c.rejectRecord(&r, start, e)
		return nil, e
	}
	t.state.inflight.Add(1)
	resp, err := g.doEmbed(ctx, c, t, emb, in, &r)
	t.state.inflight.Add(-1)
	c.observe(t, err, g.clock.Now().Sub(start))
	if err != nil {
		c.finishRecord(&r, start, err)
		return nil, err
	}
	r.TokensIn = resp.Usage.PromptTokens
	r.CostUSD = resp.Usage.CostUSD
	c.used += resp.Usage.PromptTokens
	c.finishRecord(&r, start, nil)
	return resp, nil
}

func (g *Gateway) doEmbed(ctx context.Context, c *call, t *target, emb embedder, in embeddingInputs, r *record.Record) (*EmbeddingResponse, error) {
	actx, cancel := context.WithTimeoutCause(ctx, c.timeout(t), errAttemptTimeout)
	defer cancel()
	calls, err := emb.embedCalls(t, c.emb, in)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{Class: ClassBadRequest, Message: err.Error()}
		}
		e.Target = t.name
		return nil, e
	}
	bodies := make([][]byte, 0, len(calls))
	secret := ""
	for _, call := range calls {
		p, err := g.newProviderRequest(actx, c, t, call.url, call.body, false)
		if err != nil {
			return nil, err
		}
		secret = p.secret
		r.ReqBytes += p.bytes
		resp, err := g.send(ctx, actx, p, t, r)
		if err != nil {
			return nil, err
		}
		body, err := readCapped(resp.Body, maxResponseBody)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		r.RespBytes += int64(len(body))
		if err != nil {
			if errors.Is(err, errBodyTooLarge) {
				return nil, &Error{Class: ClassTooLarge, Target: t.name, Status: resp.StatusCode, Message: err.Error()}
			}
			return nil, g.transportError(ctx, actx, t, err)
		}
		bodies = append(bodies, body)
	}
	out, err := emb.decodeEmbeddings(t, bodies, in.len())
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{Class: ClassServer, Message: err.Error()}
		}
		e.Target = t.name
		e.Message = redact(e.Message, secret)
		return nil, e
	}
	if len(out.Data) != in.len() {
		return nil, &Error{Class: ClassServer, Target: t.name, Message: fmt.Sprintf("%d embeddings for %d inputs", len(out.Data), in.len())}
	}
	out.Object = ObjectList
	out.Model = t.name
	for i := range out.Data {
		out.Data[i].Object = ObjectEmbedding
	}
	if out.Usage.PromptTokens == 0 {
		out.Usage.PromptTokens = (c.size.textBytes + upperBytesPerToken - 1) / upperBytesPerToken
		r.Labels["usage"] = "estimated"
	}
	out.Usage.TotalTokens = out.Usage.PromptTokens
	out.Usage.CostUSD = cost(t.model, Usage{PromptTokens: out.Usage.PromptTokens})
	return out, nil
}

// openaiEmbeddingRequest is OpenAI's POST /embeddings body.
type openaiEmbeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format,omitempty"`
	Dimensions     *int            `json:"dimensions,omitempty"`
	User           string          `json:"user,omitempty"`
}

type openaiEmbeddingResponse struct {
	Data []struct {
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	} `json:"data"`
	Usage struct {
		PromptTokens int64 `json:"prompt_tokens"`
	} `json:"usage"`
	Error json.RawMessage `json:"error,omitempty"`
}

func (openaiAdapter) embedCalls(t *target, req *EmbeddingRequest, _ embeddingInputs) ([]embedCall, error) {
	return openaiEmbedCalls(t, req, t.prov.baseURL+"/embeddings")
}

func (openaiAdapter) decodeEmbeddings(t *target, bodies [][]byte, n int) (*EmbeddingResponse, error) {
	return decodeOpenAIEmbeddings(bodies[0], n)
}

// openaiEmbedCalls is the one request of an OpenAI-compatible provider.
func openaiEmbedCalls(t *target, req *EmbeddingRequest, url string) ([]embedCall, error) {
	body := openaiEmbeddingRequest{Model: t.upstream, Input: req.Input, EncodingFormat: "float", Dimensions: req.Dimensions, User: req.User}
	if t.prov.quirks != nil && t.prov.quirks.drop["user"] {
		body.User = ""
	}
	b, err := json.Marshal(&body)
	if err != nil {
		return nil, err
	}
	return []embedCall{{url: url, body: b}}, nil
}

// decodeOpenAIEmbeddings reads an OpenAI embeddings answer, in input
// order whatever the order of its data.
func decodeOpenAIEmbeddings(body []byte, n int) (*EmbeddingResponse, error) {
	var r openaiEmbeddingResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, &Error{Class: ClassServer, Message: "malformed embeddings answer: " + err.Error()}
	}
	if len(r.Error) > 0 && string(r.Error) != "null" {
		code, msg := openaiErrorFields(r.Error)
		return nil, &Error{Class: ClassServer, Code: code, Message: msg}
	}
	out := &EmbeddingResponse{Data: make([]Embedding, n)}
	seen := 0
	for _, d := range r.Data {
		if d.Index < 0 || d.Index >= n || out.Data[d.Index].Embedding != nil {
			return nil, &Error{Class: ClassServer, Message: fmt.Sprintf("embeddings answer with index %d for %d inputs", d.Index, n)}
		}
		out.Data[d.Index] = Embedding{Index: d.Index, Embedding: d.Embedding}
		seen++
	}
	out.Data = out.Data[:seen]
	out.Usage.PromptTokens = r.Usage.PromptTokens
	return out, nil
}
