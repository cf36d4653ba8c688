package llm

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// cohereAdapter speaks Cohere's v2 Chat API: POST {base}/v2/chat with a
// Bearer key (COHERE_API_KEY by default). Its messages are close to
// OpenAI's (system/user/assistant/tool roles, tool_calls with JSON string
// arguments, tool_call_id on tool results); the differences are the
// parameter names (p, stop_sequences), tool_choice (REQUIRED or NONE, no
// named function), the answer's content as an array of parts with a
// separate tool_plan, finish reasons (COMPLETE, MAX_TOKENS, STOP_SEQUENCE,
// TOOL_CALL, ERROR), usage as billed_units, and the stream's typed events
// (message-start, content-delta, tool-call-start/-delta, message-end).
// Embeddings: POST {base}/v2/embed.
type cohereAdapter struct{ sseAccept }

type cohereRequest struct {
	Model            string                `json:"model"`
	Messages         []cohereMessage       `json:"messages"`
	Tools            []Tool                `json:"tools,omitempty"`
	ToolChoice       string                `json:"tool_choice,omitempty"`
	Stream           bool                  `json:"stream"`
	MaxTokens        int                   `json:"max_tokens,omitempty"`
	Temperature      *float64              `json:"temperature,omitempty"`
	P                *float64              `json:"p,omitempty"`
	StopSequences    []string              `json:"stop_sequences,omitempty"`
	Seed             *int64                `json:"seed,omitempty"`
	FrequencyPenalty *float64              `json:"frequency_penalty,omitempty"`
	PresencePenalty  *float64              `json:"presence_penalty,omitempty"`
	ResponseFormat   *cohereResponseFormat `json:"response_format,omitempty"`
}

type cohereMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content,omitempty"`
	ToolCalls  []cohereToolRef `json:"tool_calls,omitempty"`
	ToolCallID string          `json:"tool_call_id,omitempty"`
}

// cohereToolRef is a tool call as Cohere takes and gives it (OpenAI's,
// without the stream index).
type cohereToolRef struct {
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type,omitempty"`
	Function FunctionCall `json:"function"`
}

type cohereResponseFormat struct {
	Type       string          `json:"type"`
	JSONSchema json.RawMessage `json:"json_schema,omitempty"`
}

type cohereResponse struct {
	ID           string `json:"id"`
	FinishReason string `json:"finish_reason"`
	Message      struct {
		Role    string `json:"role"`
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
		ToolPlan  string          `json:"tool_plan"`
		ToolCalls []cohereToolRef `json:"tool_calls"`
	} `json:"message"`
	Usage *cohereUsage `json:"usage"`
}

type cohereUsage struct {
	BilledUnits struct {
		InputTokens  float64 `json:"input_tokens"`
		OutputTokens float64 `json:"output_tokens"`
	} `json:"billed_units"`
	Tokens struct {
		InputTokens  float64 `json:"input_tokens"`
		OutputTokens float64 `json:"output_tokens"`
	} `json:"tokens"`
}

// usage converts: the billed units are what Cohere charges (the tokens
// count also includes the prompt Cohere adds itself).
func (u *cohereUsage) usage() Usage {
	in, out := u.BilledUnits.InputTokens, u.BilledUnits.OutputTokens
	if in == 0 && out == 0 {
		in, out = u.Tokens.InputTokens, u.Tokens.OutputTokens
	}
	r := Usage{PromptTokens: int64(in), CompletionTokens: int64(out)}
	r.TotalTokens = r.PromptTokens + r.CompletionTokens
	return r
}

func (cohereAdapter) endpoint(t *target, _ bool) string { return t.prov.baseURL + "/v2/chat" }

func (cohereAdapter) setHeaders(h http.Header, t *target) { h.Set("Accept", "application/json") }

func (cohereAdapter) encodeRequest(t *target, req *ChatRequest, stream bool) ([]byte, error) {
	out := cohereRequest{
		Model:            t.upstream,
		Stream:           stream,
		MaxTokens:        requestedMaxTokens(req),
		Temperature:      req.Temperature,
		P:                req.TopP,
		StopSequences:    req.Stop,
		Seed:             req.Seed,
		FrequencyPenalty: req.FrequencyPenalty,
		PresencePenalty:  req.PresencePenalty,
		Tools:            req.Tools,
	}
	for i := range req.Messages {
		m := &req.Messages[i]
		cm := cohereMessage{Role: m.Role, ToolCallID: m.ToolCallID}
		switch m.Role {
		case "developer":
			cm.Role = "system"
			cm.Content = textJSON(contentText(m.Content))
		case "system", "tool":
			cm.Content = textJSON(contentText(m.Content))
		case "user":
			cm.Content = m.Content
		case "assistant":
			if s := contentText(m.Content); s != "" {
				cm.Content = textJSON(s)
			}
			for _, tc := range m.ToolCalls {
				cm.ToolCalls = append(cm.ToolCalls, cohereToolRef{ID: tc.ID, Type: "function", Function: tc.Function})
			}
		default:
			return nil, badRequest("message %d: unknown role %q", i, m.Role)
		}
		out.Messages = append(out.Messages, cm)
	}
	tc, err := parseToolChoice(req.ToolChoice)
	if err != nil {
		return nil, err
	}
	switch tc.mode {
	case "none":
		out.ToolChoice = "NONE"
	case "required":
		out.ToolChoice = "REQUIRED"
	case "function":
		// No named choice: offer only that function, and require a call.
		out.ToolChoice = "REQUIRED"
		out.Tools = nil
		for _, tool := range req.Tools {
			if tool.Function.Name == tc.name {
				out.Tools = append(out.Tools, tool)
			}
		}
		if len(out.Tools) == 0 {
			return nil, badRequest("tool_choice names %q, which is not among the tools", tc.name)
		}
	}
	if rf := req.ResponseFormat; rf != nil && (rf.Type == "json_object" || rf.Type == "json_schema") {
		out.ResponseFormat = &cohereResponseFormat{Type: "json_object", JSONSchema: jsonSchemaOf(rf)}
	}
	return json.Marshal(&out)
}

// textJSON is s as a JSON string.
func textJSON(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// cohereFinish maps finish_reason.
func cohereFinish(reason string, toolCalls bool) string {
	switch reason {
	case "MAX_TOKENS":
		return FinishLength
	case "TOOL_CALL":
		return FinishToolCalls
	}
	if toolCalls {
		return FinishToolCalls
	}
	return FinishStop
}

func (cohereAdapter) decodeResponse(t *target, body []byte) (*ChatResponse, error) {
	var r cohereResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, &Error{Class: ClassServer, Message: "malformed chat answer: " + err.Error()}
	}
	var text strings.Builder
	for _, p := range r.Message.Content {
		if p.Type == "text" || p.Type == "" {
			text.WriteString(p.Text)
		}
	}
	var calls []ToolCall
	for _, tc := range r.Message.ToolCalls {
		calls = append(calls, ToolCall{ID: tc.ID, Type: "function", Function: tc.Function})
	}
	if r.FinishReason == "ERROR" && text.Len() == 0 && len(calls) == 0 {
		return nil, &Error{Class: ClassServer, Code: "ERROR", Message: "the model failed to generate an answer"}
	}
	msg := Message{Role: "assistant", ToolCalls: calls}
	msg.Content = textContent(text.String(), len(calls) > 0)
	resp := &ChatResponse{ID: r.ID, Object: ObjectChatCompletion,
		Choices: []Choice{{Index: 0, Message: msg, FinishReason: cohereFinish(r.FinishReason, len(calls) > 0)}}}
	if r.Usage != nil {
		resp.Usage = r.Usage.usage()
	}
	return resp, nil
}

func (cohereAdapter) newDecoder(t *target, body io.Reader) chunkDecoder {
	return &cohereDecoder{sse: newSSEReader(body), tools: map[int]int{}}
}

// cohereDecoder turns v2 chat stream events into unified chunks.
type cohereDecoder struct {
	sse     *sseReader
	id      string
	tools   map[int]int // event index -> tool call index
	ntools  int
	pending []*ChatChunk
	done    bool
}

// cohereDeltaMessage is the message part of a stream event's delta. Its
// content is an object in content deltas (an array in message-start) and
// its tool_calls an object in tool call events (an array in
// message-start): both are read only when they are objects.
type cohereDeltaMessage struct {
	Content   json.RawMessage `json:"content"`
	ToolCalls json.RawMessage `json:"tool_calls"`
}

// text is a content delta's text.
func (m *cohereDeltaMessage) text() string {
	var c struct {
		Text string `json:"text"`
	}
	if m == nil || len(m.Content) == 0 || m.Content[0] != '{' || json.Unmarshal(m.Content, &c) != nil {
		return ""
	}
	return c.Text
}

// toolCall is a tool call event's call.
func (m *cohereDeltaMessage) toolCall() *cohereToolRef {
	var tc cohereToolRef
	if m == nil || len(m.ToolCalls) == 0 || m.ToolCalls[0] != '{' || json.Unmarshal(m.ToolCalls, &tc) != nil {
		return nil
	}
	return &tc
}

// cohereEvent is any stream event.
type cohereEvent struct {
	Type  string `json:"type"`
	ID    string `json:"id"`
	Index int    `json:"index"`
	Delta *struct {
		Message      *cohereDeltaMessage `json:"message"`
		FinishReason string              `json:"finish_reason"`
		Usage        *cohereUsage        `json:"usage"`
		Error        string              `json:"error"`
	} `json:"delta"`
}

func (d *cohereDecoder) chunk(delta Delta) *ChatChunk {
	return &ChatChunk{ID: d.id, Object: ObjectChatCompletionChunk, Choices: []ChunkChoice{{Delta: delta}}}
}

func (d *cohereDecoder) next() (*ChatChunk, error) {
	for {
		if len(d.pending) > 0 {
			c := d.pending[0]
			d.pending = d.pending[1:]
			return c, nil
		}
		if d.done {
			return nil, io.EOF
		}
		ev, err := d.sse.next()
		if err == io.EOF {
			return nil, &Error{Class: ClassConnection, Message: "stream ended before message-end", Err: io.ErrUnexpectedEOF}
		}
		if err != nil {
			return nil, streamReadError(err)
		}
		data := bytes.TrimSpace(ev.Data)
		if len(data) == 0 {
			continue
		}
		var e cohereEvent
		if err := json.Unmarshal(data, &e); err != nil {
			return nil, &Error{Class: ClassServer, Message: "malformed stream event: " + err.Error()}
		}
		if e.Type == "" {
			e.Type = ev.Event
		}
		var msg *cohereDeltaMessage
		if e.Delta != nil {
			msg = e.Delta.Message
		}
		switch e.Type {
		case "message-start":
			d.id = e.ID
			return d.chunk(Delta{Role: "assistant", Content: strPtr("")}), nil
		case "content-delta":
			if text := msg.text(); text != "" {
				return d.chunk(Delta{Content: strPtr(text)}), nil
			}
		case "tool-call-start":
			tc := msg.toolCall()
			if tc == nil {
				continue
			}
			idx := d.ntools
			d.ntools++
			d.tools[e.Index] = idx
			return d.chunk(Delta{ToolCalls: []ToolCall{{Index: &idx, ID: tc.ID, Type: "function",
				Function: FunctionCall{Name: tc.Function.Name, Arguments: tc.Function.Arguments}}}}), nil
		case "tool-call-delta":
			idx, ok := d.tools[e.Index]
			tc := msg.toolCall()
			if !ok || tc == nil || tc.Function.Arguments == "" {
				continue
			}
			return d.chunk(Delta{ToolCalls: []ToolCall{{Index: &idx, Function: FunctionCall{Arguments: tc.Function.Arguments}}}}), nil
		case "message-end":
			d.done = true
			reason := ""
			if e.Delta != nil {
				reason = e.Delta.FinishReason
				if reason == "ERROR" && e.Delta.Error != "" {
					return nil, &Error{Class: ClassServer, Code: "ERROR", Message: e.Delta.Error}
				}
			}
			fin := d.chunk(Delta{})
			fin.Choices[0].FinishReason = strPtr(cohereFinish(reason, d.ntools > 0))
			if e.Delta != nil && e.Delta.Usage != nil {
				u := e.Delta.Usage.usage()
				d.pending = append(d.pending, &ChatChunk{ID: d.id, Object: ObjectChatCompletionChunk, Choices: []ChunkChoice{}, Usage: &u})
			}
			return fin, nil
		}
		// content-start/-end, tool-plan-delta, tool-call-end, citation
		// events carry nothing of the unified format.
	}
}

func (cohereAdapter) decodeError(status int, h http.Header, body []byte) *Error {
	var b struct {
		Message string `json:"message"`
	}
	msg := string(bytes.TrimSpace(body))
	if err := json.Unmarshal(body, &b); err == nil && b.Message != "" {
		msg = b.Message
	}
	e := statusError(status, h, "", msg)
	switch status {
	case 402, 498:
		// Payment required, invalid token.
		e.Class = ClassAuth
	case 499:
		// Cohere's "request cancelled"; retrying is its advice.
		e.Class = ClassServer
	}
	return e
}

// cohereEmbedRequest is POST /v2/embed.
type cohereEmbedRequest struct {
	Model           string   `json:"model"`
	Texts           []string `json:"texts"`
	InputType       string   `json:"input_type"`
	EmbeddingTypes  []string `json:"embedding_types"`
	OutputDimension *int     `json:"output_dimension,omitempty"`
}

type cohereEmbedResponse struct {
	Embeddings struct {
		Float [][]float32 `json:"float"`
	} `json:"embeddings"`
	Meta struct {
		BilledUnits struct {
			InputTokens float64 `json:"input_tokens"`
		} `json:"billed_units"`
	} `json:"meta"`
}

// embedInputType is the input type of a request, search_document by
// default.
func embedInputType(req *EmbeddingRequest) string {
	if req.InputType != "" {
		return req.InputType
	}
	return "search_document"
}

func (cohereAdapter) embedCalls(t *target, req *EmbeddingRequest, in embeddingInputs) ([]embedCall, error) {
	if in.tokens != nil {
		return nil, badRequest("token id inputs are only accepted by OpenAI-compatible providers")
	}
	b, err := json.Marshal(cohereEmbedRequest{Model: t.upstream, Texts: in.texts, InputType: embedInputType(req),
		EmbeddingTypes: []string{"float"}, OutputDimension: req.Dimensions})
	if err != nil {
		return nil, err
	}
	return []embedCall{{url: t.prov.baseURL + "/v2/embed", body: b}}, nil
}

func (cohereAdapter) decodeEmbeddings(t *target, bodies [][]byte, n int) (*EmbeddingResponse, error) {
	var r cohereEmbedResponse
	if err := json.Unmarshal(bodies[0], &r); err != nil {
		return nil, &Error{Class: ClassServer, Message: "malformed embed answer: " + err.Error()}
	}
	out := &EmbeddingResponse{}
	for i, v := range r.Embeddings.Float {
		out.Data = append(out.Data, Embedding{Index: i, Embedding: v})
	}
	out.Usage.PromptTokens = int64(r.Meta.BilledUnits.InputTokens)
	return out, nil
}
