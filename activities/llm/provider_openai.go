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
type openaiAdapter struct{}

func (openaiAdapter) endpoint(t *target, _ bool) string {
	return t.prov.baseURL + "/chat/completions"
}

func (openaiAdapter) setHeaders(h http.Header, t *target, key string) {
	if key != "" {
		h.Set("Authorization", "Bearer "+key)
	}
	h.Set("Accept", "application/json")
}

func (openaiAdapter) encodeRequest(t *target, req *ChatRequest, stream bool) ([]byte, error) {
	r := *req
	r.Model = t.upstream
	r.Stream = stream
	r.StreamOptions = nil
	if stream {
		// Always ask for usage: it is what cost accounting and budgets
		// settle on. The gateway ends every stream with a usage chunk.
		r.StreamOptions = &StreamOptions{IncludeUsage: true}
	}
	// Send one completion bound: max_completion_tokens wins when both are
	// set (the unified format's rule); older servers only know max_tokens.
	if r.MaxCompletionTokens != nil {
		r.MaxTokens = nil
	}
	return json.Marshal(&r)
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
