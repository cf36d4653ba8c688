package llm

import (
	"encoding/json"
	"net/url"
	"strings"
)

// vertexAdapter speaks Gemini on Google Cloud Vertex AI: the Gemini API's
// request, answer and stream formats (geminiAdapter) at
//
//	POST https://{location}-aiplatform.googleapis.com/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent
//	     (https://aiplatform.googleapis.com/v1/... for location "global")
//	     :streamGenerateContent?alt=sse for streams
//
// with an OAuth2 access token from Application Default Credentials
// (golang.org/x/oauth2/google) instead of an API key. Errors are
// google.rpc.Status bodies, as on the Gemini API. Embeddings use the
// models' :predict method.
type vertexAdapter struct{ geminiAdapter }

// vertexBaseURL is the regional (or global) Vertex AI API root.
func vertexBaseURL(location string) string {
	if location == "" || location == "global" {
		return "https://aiplatform.googleapis.com/v1"
	}
	return "https://" + location + "-aiplatform.googleapis.com/v1"
}

// vertexModelURL is the URL of a method of t's model.
func vertexModelURL(t *target, method string) string {
	p := t.prov
	model := t.upstream
	if !strings.Contains(model, "/") {
		model = "publishers/google/models/" + url.PathEscape(model)
	}
	return p.baseURL + "/projects/" + url.PathEscape(p.project) + "/locations/" + url.PathEscape(p.location) + "/" + model + ":" + method
}

func (vertexAdapter) endpoint(t *target, stream bool) string {
	if stream {
		return vertexModelURL(t, "streamGenerateContent") + "?alt=sse"
	}
	return vertexModelURL(t, "generateContent")
}

// vertexTaskTypes maps the gateway's input types to Vertex AI task types.
var vertexTaskTypes = map[string]string{
	"search_document": "RETRIEVAL_DOCUMENT",
	"search_query":    "RETRIEVAL_QUERY",
	"classification":  "CLASSIFICATION",
	"clustering":      "CLUSTERING",
}

type vertexPredictRequest struct {
	Instances  []vertexInstance `json:"instances"`
	Parameters *struct {
		OutputDimensionality int `json:"outputDimensionality"`
	} `json:"parameters,omitempty"`
}

type vertexInstance struct {
	Content  string `json:"content"`
	TaskType string `json:"task_type,omitempty"`
}

func (vertexAdapter) embedCalls(t *target, req *EmbeddingRequest, in embeddingInputs) ([]embedCall, error) {
	if in.tokens != nil {
		return nil, badRequest("token id inputs are only accepted by OpenAI-compatible providers")
	}
	task := vertexTaskTypes[embedInputType(req)]
	encode := func(texts []string) ([]byte, error) {
		r := vertexPredictRequest{}
		for _, text := range texts {
			r.Instances = append(r.Instances, vertexInstance{Content: text, TaskType: task})
		}
		if req.Dimensions != nil {
			r.Parameters = &struct {
				OutputDimensionality int `json:"outputDimensionality"`
			}{*req.Dimensions}
		}
		return json.Marshal(&r)
	}
	u := vertexModelURL(t, "predict")
	batch := 250 // text-embedding-00x take up to 250 instances
	if strings.Contains(t.upstream, "gemini-embedding") {
		batch = 1 // Gemini embedding models take one input per request
	}
	var calls []embedCall
	for start := 0; start < len(in.texts); start += batch {
		b, err := encode(in.texts[start:min(start+batch, len(in.texts))])
		if err != nil {
			return nil, err
		}
		calls = append(calls, embedCall{url: u, body: b})
	}
	return calls, nil
}

func (vertexAdapter) decodeEmbeddings(t *target, bodies [][]byte, n int) (*EmbeddingResponse, error) {
	out := &EmbeddingResponse{}
	for _, body := range bodies {
		var r struct {
			Predictions []struct {
				Embeddings struct {
					Values     []float32 `json:"values"`
					Statistics struct {
						TokenCount float64 `json:"token_count"`
					} `json:"statistics"`
				} `json:"embeddings"`
			} `json:"predictions"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			return nil, &Error{Class: ClassServer, Message: "malformed predict answer: " + err.Error()}
		}
		for _, p := range r.Predictions {
			out.Data = append(out.Data, Embedding{Index: len(out.Data), Embedding: p.Embeddings.Values})
			out.Usage.PromptTokens += int64(p.Embeddings.Statistics.TokenCount)
		}
	}
	return out, nil
}

// geminiTaskTypes maps the gateway's input types to Gemini API task
// types.
var geminiTaskTypes = vertexTaskTypes

func (geminiAdapter) embedCalls(t *target, req *EmbeddingRequest, in embeddingInputs) ([]embedCall, error) {
	if in.tokens != nil {
		return nil, badRequest("token id inputs are only accepted by OpenAI-compatible providers")
	}
	type part struct {
		Text string `json:"text"`
	}
	type request struct {
		Model   string `json:"model"`
		Content struct {
			Parts []part `json:"parts"`
		} `json:"content"`
		TaskType             string `json:"taskType,omitempty"`
		OutputDimensionality *int   `json:"outputDimensionality,omitempty"`
	}
	model := "models/" + strings.TrimPrefix(t.upstream, "models/")
	body := struct {
		Requests []request `json:"requests"`
	}{}
	for _, text := range in.texts {
		r := request{Model: model, TaskType: geminiTaskTypes[embedInputType(req)], OutputDimensionality: req.Dimensions}
		r.Content.Parts = []part{{Text: text}}
		body.Requests = append(body.Requests, r)
	}
	b, err := json.Marshal(&body)
	if err != nil {
		return nil, err
	}
	return []embedCall{{url: t.prov.baseURL + "/" + model + ":batchEmbedContents", body: b}}, nil
}

func (geminiAdapter) decodeEmbeddings(t *target, bodies [][]byte, n int) (*EmbeddingResponse, error) {
	var r struct {
		Embeddings []struct {
			Values []float32 `json:"values"`
		} `json:"embeddings"`
	}
	if err := json.Unmarshal(bodies[0], &r); err != nil {
		return nil, &Error{Class: ClassServer, Message: "malformed batchEmbedContents answer: " + err.Error()}
	}
	out := &EmbeddingResponse{}
	for i, e := range r.Embeddings {
		out.Data = append(out.Data, Embedding{Index: i, Embedding: e.Values})
	}
	// The Gemini API reports no token counts for embeddings: the gateway
	// estimates them.
	return out, nil
}
