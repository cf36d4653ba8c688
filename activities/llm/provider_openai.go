package llm

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/gateflow/gateflow/activities/calls"
)

// openaiAdapter speaks OpenAI chat completions (POST {base}/chat/completions,
// Bearer auth), which OpenAI, Mistral, Groq, Together, vLLM, Ollama,
// llama.cpp server and LM Studio all serve. The unified format is this
// format, so requests pass through with the model name replaced.
type openaiAdapter struct{ sseAccept }

func (openaiAdapter) endpoint(t *target, _ bool) string {
	return t.prov.baseURL + "/chat/completions"
}

func (openaiAdapter) setHeaders(h http.Header, t *target) {
	h.Set("Accept", "application/json")
}

func (openaiAdapter) encodeRequest(t *target, req *ChatRequest, stream bool) ([]byte, error) {
	return encodeOpenAIRequest(t, req, stream)
}

// encodeOpenAIRequest is the OpenAI chat completions body of req for t,
// adapted to the provider's quirks.
func encodeOpenAIRequest(t *target, req *ChatRequest, stream bool) ([]byte, error) {
	q := t.prov.quirks
	r := *req
	r.Model = t.upstream
	r.Stream = stream
	r.StreamOptions = nil
	if stream && (q == nil || !q.noStreamOptions) {
		// Always ask for usage: it is what cost accounting and budgets
		// settle on. The gateway ends every stream with a usage chunk.
		r.StreamOptions = &StreamOptions{IncludeUsage: true}
	}
	// Send one completion bound: max_completion_tokens wins when both are
	// set (the unified format's rule); vendors that do not document it
	// get it as max_tokens.
	if r.MaxCompletionTokens != nil {
		if q != nil && q.legacyMaxTokens {
			r.MaxTokens, r.MaxCompletionTokens = r.MaxCompletionTokens, nil
		} else {
			r.MaxTokens = nil
		}
	}
	if q == nil {
		return json.Marshal(&r)
	}
	q.apply(&r)
	b, err := json.Marshal(&r)
	if err != nil || len(q.rename) == 0 {
		return b, err
	}
	return renameFields(b, q.rename)
}

// quirks adapt the OpenAI request to a vendor that is compatible but not
// identical (Preset).
type quirks struct {
	drop               map[string]bool
	rename             map[string]string
	legacyMaxTokens    bool
	noStreamOptions    bool
	noMessageName      bool
	toolChoiceRequired string
}

// newQuirks combines a preset's quirks with the provider's own
// drop_params; nil when there are none.
func newQuirks(pre *Preset, drop []string) *quirks {
	q := &quirks{drop: map[string]bool{}, rename: pre.Rename, legacyMaxTokens: pre.LegacyMaxTokens,
		noStreamOptions: pre.NoStreamOptions, noMessageName: pre.NoMessageName, toolChoiceRequired: pre.ToolChoiceRequired}
	for _, d := range pre.Drop {
		q.drop[d] = true
	}
	for _, d := range drop {
		q.drop[d] = true
	}
	if len(q.drop) == 0 && len(q.rename) == 0 && !q.legacyMaxTokens && !q.noStreamOptions && !q.noMessageName && q.toolChoiceRequired == "" {
		return nil
	}
	return q
}

// apply removes and rewrites the parameters of r the vendor refuses.
func (q *quirks) apply(r *ChatRequest) {
	for d := range q.drop {
		switch d {
		case "temperature":
			r.Temperature = nil
		case "top_p":
			r.TopP = nil
		case "max_tokens":
			r.MaxTokens = nil
		case "max_completion_tokens":
			r.MaxCompletionTokens = nil
		case "stop":
			r.Stop = nil
		case "tool_choice":
			r.ToolChoice = nil
		case "response_format":
			r.ResponseFormat = nil
		case "user":
			r.User = ""
		case "seed":
			r.Seed = nil
		case "presence_penalty":
			r.PresencePenalty = nil
		case "frequency_penalty":
			r.FrequencyPenalty = nil
		case "parallel_tool_calls":
			r.ParallelToolCalls = nil
		case "stream_options":
			r.StreamOptions = nil
		}
	}
	if q.noMessageName {
		for i := range r.Messages {
			if r.Messages[i].Name != "" {
				msgs := append([]Message(nil), r.Messages...)
				for j := range msgs {
					msgs[j].Name = ""
				}
				r.Messages = msgs
				break
			}
		}
	}
	if q.toolChoiceRequired != "" && string(bytes.TrimSpace(r.ToolChoice)) == `"required"` {
		r.ToolChoice, _ = json.Marshal(q.toolChoiceRequired)
	}
}

// renameFields renames top-level fields of a JSON object.
func renameFields(b []byte, rename map[string]string) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for from, to := range rename {
		if v, ok := m[from]; ok {
			delete(m, from)
			m[to] = v
		}
	}
	return json.Marshal(m)
}

// openaiResponse is a chat completion with the error field that some
// compatible servers put in a 200 answer.
type openaiResponse struct {
	ChatResponse
	Error json.RawMessage `json:"error,omitempty"`
}

func (a openaiAdapter) decodeResponse(t *target, body []byte) (*ChatResponse, error) {
	var r openaiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, &Error{Class: ClassServer, Message: "malformed chat completion: " + err.Error()}
	}
	if len(r.Error) > 0 && string(r.Error) != "null" {
		code, msg := openaiErrorFields(r.Error)
		return nil, &Error{Class: ClassServer, Code: code, Message: msg}
	}
	if len(r.Choices) == 0 {
		return nil, &Error{Class: ClassServer, Message: "chat completion without choices"}
	}
	resp := r.ChatResponse
	return &resp, nil
}

func (openaiAdapter) newDecoder(t *target, body io.Reader) chunkDecoder {
	return &openaiDecoder{sse: newSSEReader(body)}
}

// openaiDecoder passes chat.completion.chunk events through until
// `data: [DONE]`.
type openaiDecoder struct {
	sse  *sseReader
	done bool
}

// openaiChunk is a stream chunk, or the error object some servers (vLLM,
// OpenAI itself mid-stream) send as an event.
type openaiChunk struct {
	ChatChunk
	Error json.RawMessage `json:"error,omitempty"`
}

func (d *openaiDecoder) next() (*ChatChunk, error) {
	for {
		if d.done {
			return nil, io.EOF
		}
		ev, err := d.sse.next()
		if err == io.EOF {
			return nil, &Error{Class: ClassConnection, Message: "stream ended before [DONE]", Err: io.ErrUnexpectedEOF}
		}
		if err != nil {
			return nil, streamReadError(err)
		}
		data := bytes.TrimSpace(ev.Data)
		if bytes.Equal(data, []byte("[DONE]")) {
			d.done = true
			return nil, io.EOF
		}
		if len(data) == 0 {
			continue
		}
		var c openaiChunk
		if err := json.Unmarshal(data, &c); err != nil {
			return nil, &Error{Class: ClassServer, Message: "malformed stream chunk: " + err.Error()}
		}
		if len(c.Error) > 0 && string(c.Error) != "null" {
			code, msg := openaiErrorFields(c.Error)
			e := &Error{Class: ClassServer, Code: code, Message: msg}
			if code == "rate_limit_exceeded" {
				e.Class = ClassRateLimit
			}
			return nil, e
		}
		if len(c.Choices) == 0 && c.Usage == nil {
			// Azure's prompt_filter_results, keep-alive objects: nothing
			// of the unified format.
			continue
		}
		chunk := c.ChatChunk
		return &chunk, nil
	}
}

// openaiErrorBody is {"error": {...}} (OpenAI, Groq, Mistral, Together,
// llama.cpp), {"object":"error","message":...} (vLLM), or {"error": "..."}
// (Ollama).
type openaiErrorBody struct {
	Error   json.RawMessage `json:"error"`
	Message string          `json:"message"`
	Type    string          `json:"type"`
	Code    json.RawMessage `json:"code"`
}

func (openaiAdapter) decodeError(status int, h http.Header, body []byte) *Error {
	var b openaiErrorBody
	code, msg := "", ""
	if err := json.Unmarshal(body, &b); err == nil {
		if len(b.Error) > 0 {
			code, msg = openaiErrorFields(b.Error)
		} else {
			code, msg = firstNonEmpty(rawString(b.Code), b.Type), b.Message
		}
	} else {
		msg = string(bytes.TrimSpace(body))
	}
	e := statusError(status, h, code, msg)
	switch code {
	case "context_length_exceeded", "string_above_max_length":
		e.Class = ClassContext
	case "insufficient_quota":
		// Quota exhausted at the provider: retrying will not help, the next
		// target might.
		e.noRetry = true
	}
	return e
}

// openaiErrorFields reads the code and message of an "error" value, an
// object or a plain string.
func openaiErrorFields(raw json.RawMessage) (code, msg string) {
	var obj struct {
		Message string          `json:"message"`
		Type    string          `json:"type"`
		Code    json.RawMessage `json:"code"`
	}
	if err := json.Unmarshal(raw, &obj); err == nil {
		return firstNonEmpty(rawString(obj.Code), obj.Type), obj.Message
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return "", s
	}
	return "", string(raw)
}

// rawString returns a JSON string's value or a number's text, "" for null.
func rawString(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	return string(raw)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// streamReadError classifies a failure to read a stream body.
func streamReadError(err error) *Error {
	if errors.Is(err, errSSETooLarge) {
		return &Error{Class: ClassTooLarge, Message: err.Error(), Err: err}
	}
	return &Error{Class: ClassConnection, Message: "read stream: " + calls.DescribeNetError(err), Err: err}
}
