package llm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// anthropicAdapter speaks the Anthropic Messages API: POST {base}/v1/messages
// with x-api-key and anthropic-version headers, the system prompt as a
// top-level field, content blocks (text, image, tool_use, tool_result) and
// the message_start / content_block_* / message_delta / message_stop
// stream events.
type anthropicAdapter struct{ sseAccept }

type anthropicRequest struct {
	Model         string               `json:"model"`
	MaxTokens     int                  `json:"max_tokens"`
	System        string               `json:"system,omitempty"`
	Messages      []anthropicMessage   `json:"messages"`
	Tools         []anthropicTool      `json:"tools,omitempty"`
	ToolChoice    *anthropicToolChoice `json:"tool_choice,omitempty"`
	StopSequences []string             `json:"stop_sequences,omitempty"`
	Temperature   *float64             `json:"temperature,omitempty"`
	TopP          *float64             `json:"top_p,omitempty"`
	Stream        bool                 `json:"stream,omitempty"`
	Metadata      *anthropicMetadata   `json:"metadata,omitempty"`
}

type anthropicMessage struct {
	Role    string           `json:"role"`
	Content []anthropicBlock `json:"content"`
}

// anthropicBlock is any content block; which fields are set depends on
// Type.
type anthropicBlock struct {
	Type      string           `json:"type"`
	Text      string           `json:"text,omitempty"`
	ID        string           `json:"id,omitempty"`
	Name      string           `json:"name,omitempty"`
	Input     json.RawMessage  `json:"input,omitempty"`
	ToolUseID string           `json:"tool_use_id,omitempty"`
	Content   json.RawMessage  `json:"content,omitempty"`
	IsError   bool             `json:"is_error,omitempty"`
	Source    *anthropicSource `json:"source,omitempty"`
}

type anthropicSource struct {
	Type      string `json:"type"` // "base64" or "url"
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

type anthropicTool struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InputSchema json.RawMessage `json:"input_schema"`
}

type anthropicToolChoice struct {
	Type                   string `json:"type"` // auto, any, tool, none
	Name                   string `json:"name,omitempty"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use,omitempty"`
}

type anthropicMetadata struct {
	UserID string `json:"user_id,omitempty"`
}

type anthropicResponse struct {
	ID         string           `json:"id"`
	Type       string           `json:"type"`
	Role       string           `json:"role"`
	Model      string           `json:"model"`
	Content    []anthropicBlock `json:"content"`
	StopReason string           `json:"stop_reason"`
	Usage      anthropicUsage   `json:"usage"`
}

type anthropicUsage struct {
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
}

// prompt counts every input token, cached or not (all are billed).
func (u anthropicUsage) prompt() int64 {
	return u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens
}

// usage converts; cache reads are priced at the cached input price.
func (u anthropicUsage) usage() Usage {
	r := Usage{PromptTokens: u.prompt(), CompletionTokens: u.OutputTokens}
	r.TotalTokens = r.PromptTokens + r.CompletionTokens
	if u.CacheReadInputTokens > 0 {
		r.PromptTokensDetails = &PromptTokensDetails{CachedTokens: u.CacheReadInputTokens}
	}
	return r
}

func (anthropicAdapter) endpoint(t *target, _ bool) string {
	return t.prov.baseURL + "/v1/messages"
}

func (anthropicAdapter) setHeaders(h http.Header, t *target) {
	h.Set("Anthropic-Version", t.prov.apiVersion)
	h.Set("Accept", "application/json")
}

func (anthropicAdapter) encodeRequest(t *target, req *ChatRequest, stream bool) ([]byte, error) {
	out := anthropicRequest{
		Model:         t.upstream,
		MaxTokens:     requestedMaxTokens(req),
		StopSequences: req.Stop,
		Temperature:   req.Temperature,
		TopP:          req.TopP,
		Stream:        stream,
	}
	if out.MaxTokens == 0 {
		out.MaxTokens = t.maxOutput
	}
	if req.User != "" {
		out.Metadata = &anthropicMetadata{UserID: req.User}
	}
	var system []string
	for i := range req.Messages {
		m := &req.Messages[i]
		var role string
		var blocks []anthropicBlock
		switch m.Role {
		case "system", "developer":
			// Anthropic has no system turns; every system message goes
			// into the top-level system prompt, in order.
			if s := contentText(m.Content); s != "" {
				system = append(system, s)
			}
			continue
		case "user":
			role = "user"
			bs, err := anthropicContent(m.Content)
			if err != nil {
				return nil, badRequest("message %d: %v", i, err)
			}
			blocks = bs
		case "assistant":
			role = "assistant"
			if s := contentText(m.Content); s != "" {
				blocks = append(blocks, anthropicBlock{Type: "text", Text: s})
			}
			for _, tc := range m.ToolCalls {
				input, err := toolArguments(tc.Function.Arguments)
				if err != nil {
					return nil, badRequest("message %d: tool call %s: %v", i, tc.ID, err)
				}
				blocks = append(blocks, anthropicBlock{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: input})
			}
		case "tool":
			role = "user"
			b := anthropicBlock{Type: "tool_result", ToolUseID: m.ToolCallID}
			if s := contentText(m.Content); s != "" {
				b.Content, _ = json.Marshal(s)
			}
			blocks = []anthropicBlock{b}
		default:
			return nil, badRequest("message %d: unknown role %q", i, m.Role)
		}
		if len(blocks) == 0 {
			continue
		}
		// Consecutive turns of one role are merged: tool results must all
		// sit in the user turn that follows the tool_use turn.
		if n := len(out.Messages); n > 0 && out.Messages[n-1].Role == role {
			out.Messages[n-1].Content = append(out.Messages[n-1].Content, blocks...)
		} else {
			out.Messages = append(out.Messages, anthropicMessage{Role: role, Content: blocks})
		}
	}
	if len(out.Messages) == 0 {
		return nil, badRequest("no user or assistant message")
	}
	if instr := jsonInstruction(req.ResponseFormat); instr != "" {
		// Anthropic has no JSON mode; the instruction is the documented
		// way to ask for JSON output.
		system = append(system, instr)
	}
	out.System = strings.Join(system, "\n\n")
	for _, tool := range req.Tools {
		schema := tool.Function.Parameters
		if len(schema) == 0 || string(schema) == "null" {
			schema = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		out.Tools = append(out.Tools, anthropicTool{Name: tool.Function.Name, Description: tool.Function.Description, InputSchema: schema})
	}
	tc, err := parseToolChoice(req.ToolChoice)
	if err != nil {
		return nil, err
	}
	switch tc.mode {
	case "auto":
		out.ToolChoice = &anthropicToolChoice{Type: "auto"}
	case "none":
		out.ToolChoice = &anthropicToolChoice{Type: "none"}
	case "required":
		out.ToolChoice = &anthropicToolChoice{Type: "any"}
	case "function":
		out.ToolChoice = &anthropicToolChoice{Type: "tool", Name: tc.name}
	}
	if p := req.ParallelToolCalls; p != nil && !*p && len(out.Tools) > 0 {
		if out.ToolChoice == nil {
			out.ToolChoice = &anthropicToolChoice{Type: "auto"}
		}
		if out.ToolChoice.Type != "none" {
			out.ToolChoice.DisableParallelToolUse = true
		}
	}
	return json.Marshal(&out)
}

// anthropicContent converts a user content to blocks.
func anthropicContent(raw json.RawMessage) ([]anthropicBlock, error) {
	parts, err := parseContent(raw)
	if err != nil {
		return nil, fmt.Errorf("content: %v", err)
	}
	blocks := make([]anthropicBlock, 0, len(parts))
	for _, p := range parts {
		switch p.Type {
		case "text":
			if p.Text != "" {
				blocks = append(blocks, anthropicBlock{Type: "text", Text: p.Text})
			}
		case "image_url":
			src := &anthropicSource{Type: "url", URL: p.ImageURL}
			if mt, data, ok := parseDataURL(p.ImageURL); ok {
				src = &anthropicSource{Type: "base64", MediaType: mt, Data: data}
			}
			blocks = append(blocks, anthropicBlock{Type: "image", Source: src})
		default:
			return nil, fmt.Errorf("content part type %q is not supported", p.Type)
		}
	}
	return blocks, nil
}

func (anthropicAdapter) decodeResponse(t *target, body []byte) (*ChatResponse, error) {
	var r anthropicResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, &Error{Class: ClassServer, Message: "malformed message: " + err.Error()}
	}
	if r.Type == "error" {
		return nil, &Error{Class: ClassServer, Message: "error object in a 2xx answer"}
	}
	var text strings.Builder
	var calls []ToolCall
	for _, b := range r.Content {
		switch b.Type {
		case "text":
			text.WriteString(b.Text)
		case "tool_use":
			calls = append(calls, ToolCall{ID: b.ID, Type: "function", Function: FunctionCall{Name: b.Name, Arguments: compactJSON(b.Input)}})
		}
		// thinking and server tool blocks have no unified form.
	}
	msg := Message{Role: "assistant", ToolCalls: calls}
	msg.Content = textContent(text.String(), len(calls) > 0)
	return &ChatResponse{
		ID:      r.ID,
		Object:  ObjectChatCompletion,
		Choices: []Choice{{Index: 0, Message: msg, FinishReason: anthropicFinish(r.StopReason)}},
		Usage:   r.Usage.usage(),
	}, nil
}

// anthropicFinish maps stop_reason to finish_reason.
func anthropicFinish(reason string) string {
	switch reason {
	case "max_tokens", "model_context_window_exceeded":
		return FinishLength
	case "tool_use":
		return FinishToolCalls
	case "refusal":
		return FinishContentFilter
	}
	// end_turn, stop_sequence, pause_turn
	return FinishStop
}

func (anthropicAdapter) newDecoder(t *target, body io.Reader) chunkDecoder {
	return &anthropicDecoder{sse: newSSEReader(body), tools: map[int]int{}}
}

// anthropicDecoder turns Messages stream events into unified chunks.
type anthropicDecoder struct {
	sse     *sseReader
	id      string
	usage   anthropicUsage
	stop    string
	tools   map[int]int // content block index -> tool call index
	ntools  int
	pending []*ChatChunk
	done    bool
}

// anthropicEvent is any stream event's data.
type anthropicEvent struct {
	Type         string             `json:"type"`
	Message      *anthropicResponse `json:"message"`
	Index        int                `json:"index"`
	ContentBlock *anthropicBlock    `json:"content_block"`
	Delta        *struct {
		Type        string `json:"type"`
		Text        string `json:"text"`
		PartialJSON string `json:"partial_json"`
		StopReason  string `json:"stop_reason"`
	} `json:"delta"`
	Usage *anthropicUsage     `json:"usage"`
	Error *anthropicErrorInfo `json:"error"`
}

type anthropicErrorInfo struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

func (d *anthropicDecoder) chunk(delta Delta) *ChatChunk {
	return &ChatChunk{ID: d.id, Object: ObjectChatCompletionChunk, Choices: []ChunkChoice{{Delta: delta}}}
}

func (d *anthropicDecoder) next() (*ChatChunk, error) {
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
			return nil, &Error{Class: ClassConnection, Message: "stream ended before message_stop", Err: io.ErrUnexpectedEOF}
		}
		if err != nil {
			return nil, streamReadError(err)
		}
		var e anthropicEvent
		if err := json.Unmarshal(ev.Data, &e); err != nil {
			return nil, &Error{Class: ClassServer, Message: "malformed stream event: " + err.Error()}
		}
		if e.Type == "" {
			e.Type = ev.Event
		}
		switch e.Type {
		case "message_start":
			if e.Message != nil {
				d.id = e.Message.ID
				d.usage = e.Message.Usage
			}
			return d.chunk(Delta{Role: "assistant", Content: strPtr("")}), nil
		case "content_block_start":
			if e.ContentBlock != nil && e.ContentBlock.Type == "tool_use" {
				idx := d.ntools
				d.tools[e.Index] = idx
				d.ntools++
				return d.chunk(Delta{ToolCalls: []ToolCall{{Index: &idx, ID: e.ContentBlock.ID, Type: "function",
					Function: FunctionCall{Name: e.ContentBlock.Name}}}}), nil
			}
			if e.ContentBlock != nil && e.ContentBlock.Type == "text" && e.ContentBlock.Text != "" {
				return d.chunk(Delta{Content: strPtr(e.ContentBlock.Text)}), nil
			}
		case "content_block_delta":
			if e.Delta == nil {
				continue
			}
			switch e.Delta.Type {
			case "text_delta":
				return d.chunk(Delta{Content: strPtr(e.Delta.Text)}), nil
			case "input_json_delta":
				idx, ok := d.tools[e.Index]
				if !ok || e.Delta.PartialJSON == "" {
					continue
				}
				return d.chunk(Delta{ToolCalls: []ToolCall{{Index: &idx, Function: FunctionCall{Arguments: e.Delta.PartialJSON}}}}), nil
			}
			// thinking_delta, signature_delta, citations_delta: no unified form.
		case "message_delta":
			if e.Delta != nil && e.Delta.StopReason != "" {
				d.stop = e.Delta.StopReason
			}
			if e.Usage != nil {
				// message_delta usage is cumulative; input counts appear
				// here too when server tools ran.
				d.usage.OutputTokens = e.Usage.OutputTokens
				if e.Usage.InputTokens > 0 {
					d.usage.InputTokens = e.Usage.InputTokens
				}
			}
		case "message_stop":
			d.done = true
			fin := &ChatChunk{ID: d.id, Object: ObjectChatCompletionChunk,
				Choices: []ChunkChoice{{Delta: Delta{}, FinishReason: strPtr(anthropicFinish(d.stop))}}}
			u := d.usage.usage()
			d.pending = append(d.pending, &ChatChunk{ID: d.id, Object: ObjectChatCompletionChunk, Choices: []ChunkChoice{}, Usage: &u})
			return fin, nil
		case "error":
			info := anthropicErrorInfo{}
			if e.Error != nil {
				info = *e.Error
			}
			return nil, anthropicError(0, nil, info)
		}
		// ping, content_block_stop and unknown events carry nothing.
	}
}

func (anthropicAdapter) decodeError(status int, h http.Header, body []byte) *Error {
	var b struct {
		Error anthropicErrorInfo `json:"error"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.Error.Type == "" {
		return statusError(status, h, "", string(bytes.TrimSpace(body)))
	}
	return anthropicError(status, h, b.Error)
}

// anthropicError classifies an Anthropic error object, in a response or a
// stream "error" event.
func anthropicError(status int, h http.Header, info anthropicErrorInfo) *Error {
	if h == nil {
		h = http.Header{}
	}
	e := statusError(status, h, info.Type, info.Message)
	switch info.Type {
	case "invalid_request_error", "request_too_large":
		e.Class = ClassBadRequest
		if looksLikeContextError(info.Type, info.Message) {
			e.Class = ClassContext
		}
	case "not_found_error":
		e.Class = ClassModelUnavailable
	case "authentication_error", "permission_error", "billing_error":
		e.Class = ClassAuth
	case "rate_limit_error":
		e.Class = ClassRateLimit
	case "overloaded_error":
		e.Class = ClassOverloaded
	case "api_error":
		e.Class = ClassServer
	case "timeout_error":
		e.Class = ClassTimeout
	}
	return e
}

// jsonInstruction is the system instruction asking for JSON output, for
// providers without a JSON mode; "" when no JSON was asked for.
func jsonInstruction(rf *ResponseFormat) string {
	if rf == nil {
		return ""
	}
	switch rf.Type {
	case "json_object":
		return "Respond with a single valid JSON object and nothing else: no prose, no code fences."
	case "json_schema":
		schema := jsonSchemaOf(rf)
		if len(schema) == 0 {
			return "Respond with a single valid JSON object and nothing else: no prose, no code fences."
		}
		return "Respond with a single valid JSON value that conforms to this JSON Schema, and nothing else (no prose, no code fences):\n" + compactJSON(schema)
	}
	return ""
}

// jsonSchemaOf extracts the schema of an OpenAI json_schema response
// format ({"name":..., "schema": {...}, "strict": true}).
func jsonSchemaOf(rf *ResponseFormat) json.RawMessage {
	if rf == nil || len(rf.JSONSchema) == 0 {
		return nil
	}
	var w struct {
		Schema json.RawMessage `json:"schema"`
	}
	if err := json.Unmarshal(rf.JSONSchema, &w); err != nil {
		return nil
	}
	return w.Schema
}

// toolChoice is a parsed OpenAI tool_choice.
type toolChoice struct {
	mode string // "", "auto", "none", "required", "function"
	name string
}

func parseToolChoice(raw json.RawMessage) (toolChoice, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return toolChoice{}, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		switch s {
		case "auto", "none", "required":
			return toolChoice{mode: s}, nil
		}
		return toolChoice{}, badRequest("tool_choice %q is not auto, none or required", s)
	}
	var obj struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Type != "function" || obj.Function.Name == "" {
		return toolChoice{}, badRequest("tool_choice must be a string or {\"type\":\"function\",\"function\":{\"name\":...}}")
	}
	return toolChoice{mode: "function", name: obj.Function.Name}, nil
}

// toolArguments parses a tool call's JSON arguments into an object.
func toolArguments(args string) (json.RawMessage, error) {
	if strings.TrimSpace(args) == "" {
		return json.RawMessage("{}"), nil
	}
	raw := json.RawMessage(args)
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("arguments are not a JSON object")
	}
	return raw, nil
}

// compactJSON returns raw compacted, "{}" when empty.
func compactJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "{}"
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

// textContent is the unified content of an assistant message: the text as
// a JSON string, or null when there is no text but tool calls (as OpenAI
// answers).
func textContent(text string, hasToolCalls bool) json.RawMessage {
	if text == "" && hasToolCalls {
		return json.RawMessage("null")
	}
	b, _ := json.Marshal(text)
	return b
}

// parseDataURL splits "data:image/png;base64,AAAA".
func parseDataURL(u string) (mediaType, data string, ok bool) {
	rest, found := strings.CutPrefix(u, "data:")
	if !found {
		return "", "", false
	}
	meta, data, found := strings.Cut(rest, ",")
	if !found {
		return "", "", false
	}
	mediaType, isB64 := strings.CutSuffix(meta, ";base64")
	if !isB64 || mediaType == "" {
		return "", "", false
	}
	return mediaType, data, true
}

// badRequest is a request the gateway refuses before sending it.
func badRequest(format string, args ...any) *Error {
	return &Error{Class: ClassBadRequest, Message: fmt.Sprintf(format, args...)}
}
