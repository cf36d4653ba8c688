package llm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// bedrockAdapter speaks the AWS Bedrock Converse API:
//
//	POST https://bedrock-runtime.{region}.amazonaws.com/model/{modelId}/converse
//	POST .../model/{modelId}/converse-stream   (application/vnd.amazon.eventstream)
//
// signed with SigV4 (service "bedrock") from the AWS SDK's credentials
// chain, or with a Bedrock API key as a Bearer token. The model id is a
// foundation model id, an inference profile ("us.anthropic...") or an ARN.
// Messages are content blocks (text, image, toolUse, toolResult), the
// system prompt a top-level list, sampling in inferenceConfig, tools in
// toolConfig; streams are AWS event streams of messageStart,
// contentBlockStart/Delta/Stop, messageStop and metadata (usage) events.
// Embeddings go through InvokeModel (Titan text, Cohere embed).
type bedrockAdapter struct{}

type bedrockRequest struct {
	Messages        []bedrockMessage   `json:"messages"`
	System          []bedrockText      `json:"system,omitempty"`
	InferenceConfig *bedrockInference  `json:"inferenceConfig,omitempty"`
	ToolConfig      *bedrockToolConfig `json:"toolConfig,omitempty"`
}

type bedrockText struct {
	Text string `json:"text"`
}

type bedrockMessage struct {
	Role    string         `json:"role"`
	Content []bedrockBlock `json:"content"`
}

// bedrockBlock is a content block; one field is set.
type bedrockBlock struct {
	Text       *string            `json:"text,omitempty"`
	Image      *bedrockImage      `json:"image,omitempty"`
	ToolUse    *bedrockToolUse    `json:"toolUse,omitempty"`
	ToolResult *bedrockToolResult `json:"toolResult,omitempty"`
}

type bedrockImage struct {
	Format string `json:"format"`
	Source struct {
		Bytes string `json:"bytes"`
	} `json:"source"`
}

type bedrockToolUse struct {
	ToolUseID string          `json:"toolUseId"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
}

type bedrockToolResult struct {
	ToolUseID string              `json:"toolUseId"`
	Content   []bedrockToolOutput `json:"content"`
}

type bedrockToolOutput struct {
	Text string          `json:"text,omitempty"`
	JSON json.RawMessage `json:"json,omitempty"`
}

type bedrockInference struct {
	MaxTokens     int      `json:"maxTokens,omitempty"`
	Temperature   *float64 `json:"temperature,omitempty"`
	TopP          *float64 `json:"topP,omitempty"`
	StopSequences []string `json:"stopSequences,omitempty"`
}

type bedrockToolConfig struct {
	Tools      []bedrockTool      `json:"tools"`
	ToolChoice *bedrockToolChoice `json:"toolChoice,omitempty"`
}

type bedrockTool struct {
	ToolSpec struct {
		Name        string `json:"name"`
		Description string `json:"description,omitempty"`
		InputSchema struct {
			JSON json.RawMessage `json:"json"`
		} `json:"inputSchema"`
	} `json:"toolSpec"`
}

type bedrockToolChoice struct {
	Auto *struct{} `json:"auto,omitempty"`
	Any  *struct{} `json:"any,omitempty"`
	Tool *struct {
		Name string `json:"name"`
	} `json:"tool,omitempty"`
}

type bedrockResponse struct {
	Output struct {
		Message *struct {
			Role    string `json:"role"`
			Content []struct {
				Text    *string         `json:"text"`
				ToolUse *bedrockToolUse `json:"toolUse"`
			} `json:"content"`
		} `json:"message"`
	} `json:"output"`
	StopReason string        `json:"stopReason"`
	Usage      *bedrockUsage `json:"usage"`
}

type bedrockUsage struct {
	InputTokens           int64 `json:"inputTokens"`
	OutputTokens          int64 `json:"outputTokens"`
	TotalTokens           int64 `json:"totalTokens"`
	CacheReadInputTokens  int64 `json:"cacheReadInputTokens"`
	CacheWriteInputTokens int64 `json:"cacheWriteInputTokens"`
}

// usage converts: like Anthropic's, input tokens exclude the prompt cache's
// reads and writes, which are billed too.
func (u *bedrockUsage) usage() Usage {
	r := Usage{PromptTokens: u.InputTokens + u.CacheReadInputTokens + u.CacheWriteInputTokens, CompletionTokens: u.OutputTokens}
	r.TotalTokens = r.PromptTokens + r.CompletionTokens
	if u.CacheReadInputTokens > 0 {
		r.PromptTokensDetails = &PromptTokensDetails{CachedTokens: u.CacheReadInputTokens}
	}
	return r
}

// awsPathEscape escapes a path segment the way AWS SDKs do: everything
// but unreserved characters (so ':' and '/' of model ids and ARNs too).
func awsPathEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

func (bedrockAdapter) endpoint(t *target, stream bool) string {
	u := t.prov.baseURL + "/model/" + awsPathEscape(t.upstream)
	if stream {
		return u + "/converse-stream"
	}
	return u + "/converse"
}

func (bedrockAdapter) setHeaders(h http.Header, t *target) { h.Set("Accept", "application/json") }

func (bedrockAdapter) streamAccept() string { return "application/vnd.amazon.eventstream" }

func (bedrockAdapter) encodeRequest(t *target, req *ChatRequest, _ bool) ([]byte, error) {
	var out bedrockRequest
	var system []string
	hasToolBlocks := false
	for i := range req.Messages {
		m := &req.Messages[i]
		var role string
		var blocks []bedrockBlock
		switch m.Role {
		case "system", "developer":
			if s := contentText(m.Content); s != "" {
				system = append(system, s)
			}
			continue
		case "user":
			role = "user"
			bs, err := bedrockUserBlocks(m.Content)
			if err != nil {
				return nil, badRequest("message %d: %v", i, err)
			}
			blocks = bs
		case "assistant":
			role = "assistant"
			if s := contentText(m.Content); s != "" {
				blocks = append(blocks, bedrockBlock{Text: &s})
			}
			for _, tc := range m.ToolCalls {
				input, err := toolArguments(tc.Function.Arguments)
				if err != nil {
					return nil, badRequest("message %d: tool call %s: %v", i, tc.ID, err)
				}
				blocks = append(blocks, bedrockBlock{ToolUse: &bedrockToolUse{ToolUseID: tc.ID, Name: tc.Function.Name, Input: input}})
				hasToolBlocks = true
			}
		case "tool":
			role = "user"
			text := contentText(m.Content)
			result := &bedrockToolResult{ToolUseID: m.ToolCallID, Content: []bedrockToolOutput{{Text: text}}}
			if trimmed := strings.TrimSpace(text); strings.HasPrefix(trimmed, "{") && json.Valid([]byte(trimmed)) {
				result.Content = []bedrockToolOutput{{JSON: json.RawMessage(trimmed)}}
			} else if text == "" {
				result.Content = []bedrockToolOutput{{Text: "(empty)"}}
			}
			blocks = []bedrockBlock{{ToolResult: result}}
			hasToolBlocks = true
		default:
			return nil, badRequest("message %d: unknown role %q", i, m.Role)
		}
		if len(blocks) == 0 {
			continue
		}
		// Consecutive turns of one role are merged: the results of a turn's
		// tool calls all belong in the one user turn that follows it.
		if n := len(out.Messages); n > 0 && out.Messages[n-1].Role == role {
			out.Messages[n-1].Content = append(out.Messages[n-1].Content, blocks...)
		} else {
			out.Messages = append(out.Messages, bedrockMessage{Role: role, Content: blocks})
		}
	}
	if len(out.Messages) == 0 {
		return nil, badRequest("no user or assistant message")
	}
	if instr := jsonInstruction(req.ResponseFormat); instr != "" {
		system = append(system, instr)
	}
	for _, s := range system {
		out.System = append(out.System, bedrockText{Text: s})
	}
	inf := bedrockInference{MaxTokens: requestedMaxTokens(req), Temperature: req.Temperature, TopP: req.TopP, StopSequences: req.Stop}
	if inf.MaxTokens > 0 || inf.Temperature != nil || inf.TopP != nil || len(inf.StopSequences) > 0 {
		out.InferenceConfig = &inf
	}
	tc, err := parseToolChoice(req.ToolChoice)
	if err != nil {
		return nil, err
	}
	if len(req.Tools) > 0 && (tc.mode != "none" || hasToolBlocks) {
		// Converse has no "none": without tool blocks in the conversation
		// the tools are left out; with them, toolConfig must stay (the
		// model may then call a tool anyway).
		cfg := &bedrockToolConfig{}
		for _, tool := range req.Tools {
			var bt bedrockTool
			bt.ToolSpec.Name = tool.Function.Name
			bt.ToolSpec.Description = tool.Function.Description
			bt.ToolSpec.InputSchema.JSON = tool.Function.Parameters
			if len(bt.ToolSpec.InputSchema.JSON) == 0 || string(bt.ToolSpec.InputSchema.JSON) == "null" {
				bt.ToolSpec.InputSchema.JSON = json.RawMessage(`{"type":"object","properties":{}}`)
			}
			cfg.Tools = append(cfg.Tools, bt)
		}
		switch tc.mode {
		case "auto":
			cfg.ToolChoice = &bedrockToolChoice{Auto: &struct{}{}}
		case "required":
			cfg.ToolChoice = &bedrockToolChoice{Any: &struct{}{}}
		case "function":
			cfg.ToolChoice = &bedrockToolChoice{Tool: &struct {
				Name string `json:"name"`
			}{Name: tc.name}}
		}
		out.ToolConfig = cfg
	}
	return json.Marshal(&out)
}

// bedrockUserBlocks converts a user content: text, and images as data
// URLs (Converse takes image bytes or S3 locations, not web URLs).
func bedrockUserBlocks(raw json.RawMessage) ([]bedrockBlock, error) {
	parts, err := parseContent(raw)
	if err != nil {
		return nil, fmt.Errorf("content: %v", err)
	}
	out := make([]bedrockBlock, 0, len(parts))
	for _, p := range parts {
		switch p.Type {
		case "text":
			if p.Text != "" {
				text := p.Text
				out = append(out, bedrockBlock{Text: &text})
			}
		case "image_url":
			mt, data, ok := parseDataURL(p.ImageURL)
			if !ok {
				return nil, fmt.Errorf("bedrock takes images as data: URLs, not %s", truncateURL(p.ImageURL))
			}
			format := strings.TrimPrefix(mt, "image/")
			switch format {
			case "png", "jpeg", "gif", "webp":
			case "jpg":
				format = "jpeg"
			default:
				return nil, fmt.Errorf("image type %s is not one of png, jpeg, gif, webp", mt)
			}
			img := &bedrockImage{Format: format}
			img.Source.Bytes = data
			out = append(out, bedrockBlock{Image: img})
		default:
			return nil, fmt.Errorf("content part type %q is not supported", p.Type)
		}
	}
	return out, nil
}

// bedrockFinish maps stopReason.
func bedrockFinish(reason string) string {
	switch reason {
	case "max_tokens", "model_context_window_exceeded":
		return FinishLength
	case "tool_use":
		return FinishToolCalls
	case "guardrail_intervened", "content_filtered":
		return FinishContentFilter
	}
	return FinishStop // end_turn, stop_sequence
}

func (bedrockAdapter) decodeResponse(t *target, body []byte) (*ChatResponse, error) {
	var r bedrockResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, &Error{Class: ClassServer, Message: "malformed Converse answer: " + err.Error()}
	}
	if r.Output.Message == nil {
		return nil, &Error{Class: ClassServer, Message: "Converse answer without a message"}
	}
	var text strings.Builder
	var calls []ToolCall
	for _, b := range r.Output.Message.Content {
		switch {
		case b.Text != nil:
			text.WriteString(*b.Text)
		case b.ToolUse != nil:
			calls = append(calls, ToolCall{ID: b.ToolUse.ToolUseID, Type: "function",
				Function: FunctionCall{Name: b.ToolUse.Name, Arguments: compactJSON(b.ToolUse.Input)}})
		}
		// reasoningContent and other blocks have no unified form.
	}
	msg := Message{Role: "assistant", ToolCalls: calls}
	msg.Content = textContent(text.String(), len(calls) > 0)
	resp := &ChatResponse{Object: ObjectChatCompletion,
		Choices: []Choice{{Index: 0, Message: msg, FinishReason: bedrockFinish(r.StopReason)}}}
	if r.Usage != nil {
		resp.Usage = r.Usage.usage()
	}
	return resp, nil
}

func (bedrockAdapter) newDecoder(t *target, body io.Reader) chunkDecoder {
	return &bedrockDecoder{r: body, dec: eventstream.NewDecoder(), tools: map[int]int{}}
}

// maxEventPayload bounds one event's payload (the SDK's own limit is 16
// MiB; an event carries a few tokens).
const maxEventPayload = 8 << 20

// bedrockDecoder turns a ConverseStream event stream into unified chunks.
type bedrockDecoder struct {
	r       io.Reader
	dec     *eventstream.Decoder
	buf     []byte
	tools   map[int]int // content block index -> tool call index
	ntools  int
	stopped bool
	pending []*ChatChunk
	done    bool
}

// bedrockEvent is the payload of any ConverseStream event.
type bedrockEvent struct {
	Role              string `json:"role"`
	ContentBlockIndex int    `json:"contentBlockIndex"`
	Start             *struct {
		ToolUse *struct {
			ToolUseID string `json:"toolUseId"`
			Name      string `json:"name"`
		} `json:"toolUse"`
	} `json:"start"`
	Delta *struct {
		Text    *string `json:"text"`
		ToolUse *struct {
			Input string `json:"input"`
		} `json:"toolUse"`
	} `json:"delta"`
	StopReason string        `json:"stopReason"`
	Usage      *bedrockUsage `json:"usage"`
	Message    string        `json:"message"`
}

func chunkOf(delta Delta) *ChatChunk {
	return &ChatChunk{Object: ObjectChatCompletionChunk, Choices: []ChunkChoice{{Delta: delta}}}
}

func (d *bedrockDecoder) next() (*ChatChunk, error) {
	for {
		if len(d.pending) > 0 {
			c := d.pending[0]
			d.pending = d.pending[1:]
			return c, nil
		}
		if d.done {
			return nil, io.EOF
		}
		msg, err := d.dec.Decode(d.r, d.buf[:0])
		if err == io.EOF {
			if !d.stopped {
				return nil, &Error{Class: ClassConnection, Message: "stream ended before messageStop", Err: io.ErrUnexpectedEOF}
			}
			d.done = true
			return nil, io.EOF
		}
		if err != nil {
			return nil, &Error{Class: ClassConnection, Message: "read event stream: " + err.Error(), Err: err}
		}
		if len(msg.Payload) > maxEventPayload {
			return nil, &Error{Class: ClassTooLarge, Message: "event stream message above the size cap"}
		}
		d.buf = msg.Payload
		header := func(name string) string {
			if v := msg.Headers.Get(name); v != nil {
				return v.String()
			}
			return ""
		}
		switch header(":message-type") {
		case "exception":
			var e bedrockEvent
			_ = json.Unmarshal(msg.Payload, &e)
			return nil, bedrockError(0, header(":exception-type"), e.Message)
		case "error":
			return nil, bedrockError(0, header(":error-code"), header(":error-message"))
		}
		var e bedrockEvent
		if err := json.Unmarshal(msg.Payload, &e); err != nil {
			return nil, &Error{Class: ClassServer, Message: "malformed stream event: " + err.Error()}
		}
		switch header(":event-type") {
		case "messageStart":
			return chunkOf(Delta{Role: "assistant", Content: strPtr("")}), nil
		case "contentBlockStart":
			if e.Start != nil && e.Start.ToolUse != nil {
				idx := d.ntools
				d.ntools++
				d.tools[e.ContentBlockIndex] = idx
				return chunkOf(Delta{ToolCalls: []ToolCall{{Index: &idx, ID: e.Start.ToolUse.ToolUseID, Type: "function",
					Function: FunctionCall{Name: e.Start.ToolUse.Name}}}}), nil
			}
		case "contentBlockDelta":
			if e.Delta == nil {
				continue
			}
			if e.Delta.Text != nil && *e.Delta.Text != "" {
				return chunkOf(Delta{Content: e.Delta.Text}), nil
			}
			if e.Delta.ToolUse != nil && e.Delta.ToolUse.Input != "" {
				idx, ok := d.tools[e.ContentBlockIndex]
				if !ok {
					continue
				}
				return chunkOf(Delta{ToolCalls: []ToolCall{{Index: &idx, Function: FunctionCall{Arguments: e.Delta.ToolUse.Input}}}}), nil
			}
		case "messageStop":
			d.stopped = true
			fin := chunkOf(Delta{})
			fin.Choices[0].FinishReason = strPtr(bedrockFinish(e.StopReason))
			return fin, nil
		case "metadata":
			if e.Usage != nil {
				u := e.Usage.usage()
				return &ChatChunk{Object: ObjectChatCompletionChunk, Choices: []ChunkChoice{}, Usage: &u}, nil
			}
		}
		// contentBlockStop and unknown events carry nothing.
	}
}

func (bedrockAdapter) decodeError(status int, h http.Header, body []byte) *Error {
	var b struct {
		Type     string `json:"__type"`
		Message  string `json:"message"`
		MessageU string `json:"Message"`
	}
	msg := string(bytes.TrimSpace(body))
	if err := json.Unmarshal(body, &b); err == nil {
		msg = firstNonEmpty(b.Message, b.MessageU, msg)
	}
	code := h.Get("X-Amzn-Errortype")
	if code == "" {
		code = b.Type
	}
	return bedrockErrorWith(status, h, code, msg)
}

// bedrockError classifies an exception of a stream.
func bedrockError(status int, code, msg string) *Error {
	return bedrockErrorWith(status, http.Header{}, code, msg)
}

// bedrockErrorWith classifies an AWS error by its type ("ThrottlingException",
// possibly with ":<namespace>" or "#" parts, in the X-Amzn-ErrorType
// header or __type field) and message.
func bedrockErrorWith(status int, h http.Header, code, msg string) *Error {
	code, _, _ = strings.Cut(code, ":")
	if i := strings.LastIndexByte(code, '#'); i >= 0 {
		code = code[i+1:]
	}
	e := statusError(status, h, code, msg)
	switch strings.ToLower(code) {
	case "throttlingexception", "servicequotaexceededexception", "modelnotreadyexception", "toomanyrequestsexception":
		e.Class = ClassRateLimit
	case "serviceunavailableexception":
		e.Class = ClassOverloaded
	case "modeltimeoutexception":
		e.Class = ClassTimeout
	case "internalserverexception", "modelerrorexception", "modelstreamerrorexception", "internalfailure":
		e.Class = ClassServer
	case "accessdeniedexception", "unrecognizedclientexception", "invalidsignatureexception", "expiredtokenexception",
		"incompletesignature", "missingauthenticationtoken", "invalidclienttokenid", "signaturedoesnotmatch":
		e.Class = ClassAuth
	case "resourcenotfoundexception":
		e.Class = ClassModelUnavailable
	case "validationexception":
		e.Class = ClassBadRequest
		if looksLikeContextError(code, msg) {
			e.Class = ClassContext
		}
	}
	return e
}

// bedrockInvokeURL is the InvokeModel URL of t.
func bedrockInvokeURL(t *target) string {
	return t.prov.baseURL + "/model/" + awsPathEscape(t.upstream) + "/invoke"
}

func (bedrockAdapter) embedCalls(t *target, req *EmbeddingRequest, in embeddingInputs) ([]embedCall, error) {
	if in.tokens != nil {
		return nil, badRequest("token id inputs are only accepted by OpenAI-compatible providers")
	}
	if strings.Contains(t.upstream, "cohere.embed") {
		b, err := json.Marshal(map[string]any{"texts": in.texts, "input_type": embedInputType(req)})
		if err != nil {
			return nil, err
		}
		return []embedCall{{url: bedrockInvokeURL(t), body: b}}, nil
	}
	// Titan text embeddings take one input per call.
	calls := make([]embedCall, 0, len(in.texts))
	for _, text := range in.texts {
		body := map[string]any{"inputText": text}
		if req.Dimensions != nil {
			body["dimensions"] = *req.Dimensions
		}
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		calls = append(calls, embedCall{url: bedrockInvokeURL(t), body: b})
	}
	return calls, nil
}

func (bedrockAdapter) decodeEmbeddings(t *target, bodies [][]byte, n int) (*EmbeddingResponse, error) {
	out := &EmbeddingResponse{}
	if strings.Contains(t.upstream, "cohere.embed") {
		var r struct {
			Embeddings json.RawMessage `json:"embeddings"`
		}
		if err := json.Unmarshal(bodies[0], &r); err != nil {
			return nil, &Error{Class: ClassServer, Message: "malformed embed answer: " + err.Error()}
		}
		var vectors [][]float32
		if err := json.Unmarshal(r.Embeddings, &vectors); err != nil {
			var typed struct {
				Float [][]float32 `json:"float"`
			}
			if err := json.Unmarshal(r.Embeddings, &typed); err != nil {
				return nil, &Error{Class: ClassServer, Message: "malformed embed answer: " + err.Error()}
			}
			vectors = typed.Float
		}
		for i, v := range vectors {
			out.Data = append(out.Data, Embedding{Index: i, Embedding: v})
		}
		return out, nil
	}
	for i, body := range bodies {
		var r struct {
			Embedding           []float32 `json:"embedding"`
			InputTextTokenCount int64     `json:"inputTextTokenCount"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			return nil, &Error{Class: ClassServer, Message: "malformed embedding answer: " + err.Error()}
		}
		out.Data = append(out.Data, Embedding{Index: i, Embedding: r.Embedding})
		out.Usage.PromptTokens += r.InputTextTokenCount
	}
	return out, nil
}
