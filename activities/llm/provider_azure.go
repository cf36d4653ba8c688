package llm

import (
	"io"
	"net/http"
	"net/url"
)

// azureAdapter speaks Azure OpenAI: OpenAI's chat completions and
// embeddings bodies at deployment URLs,
//
//	POST {endpoint}/openai/deployments/{deployment}/chat/completions?api-version={version}
//
// authenticated with the api-key header. The model key (or its name) is
// the deployment name; api_version selects the data-plane version
// (default DefaultAzureAPIVersion). api_version "v1" uses the version-less
// v1 API instead ({endpoint}/openai/v1/chat/completions, the deployment in
// the body's model field). Errors, streams and tool calls are OpenAI's.
type azureAdapter struct{ sseAccept }

// azureURL is the URL of operation ("chat/completions", "embeddings") on
// t's deployment.
func azureURL(t *target, operation string) string {
	if t.prov.apiVersion == "v1" {
		return t.prov.baseURL + "/openai/v1/" + operation
	}
	return t.prov.baseURL + "/openai/deployments/" + url.PathEscape(t.upstream) + "/" + operation +
		"?api-version=" + url.QueryEscape(t.prov.apiVersion)
}

func (azureAdapter) endpoint(t *target, _ bool) string { return azureURL(t, "chat/completions") }

func (azureAdapter) setHeaders(h http.Header, t *target) { h.Set("Accept", "application/json") }

func (azureAdapter) encodeRequest(t *target, req *ChatRequest, stream bool) ([]byte, error) {
	return encodeOpenAIRequest(t, req, stream)
}

func (a azureAdapter) decodeResponse(t *target, body []byte) (*ChatResponse, error) {
	return openaiAdapter{}.decodeResponse(t, body)
}

func (azureAdapter) newDecoder(t *target, body io.Reader) chunkDecoder {
	return &openaiDecoder{sse: newSSEReader(body)}
}

func (azureAdapter) decodeError(status int, h http.Header, body []byte) *Error {
	return openaiAdapter{}.decodeError(status, h, body)
}

func (azureAdapter) embedCalls(t *target, req *EmbeddingRequest, _ embeddingInputs) ([]embedCall, error) {
	return openaiEmbedCalls(t, req, azureURL(t, "embeddings"))
}

func (azureAdapter) decodeEmbeddings(t *target, bodies [][]byte, n int) (*EmbeddingResponse, error) {
	return decodeOpenAIEmbeddings(bodies[0], n)
}
