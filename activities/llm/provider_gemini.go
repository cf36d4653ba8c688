package llm

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// geminiAdapter speaks the Google Gemini API: POST
// {base}/models/{model}:generateContent, or :streamGenerateContent?alt=sse
// for streams, with the x-goog-api-key header, contents/parts,
// systemInstruction, functionDeclarations/functionCall/functionResponse and
// usageMetadata. The base URL includes the API version
// (https://generativelanguage.googleapis.com/v1beta).
type geminiAdapter struct{ sseAccept }

// Tool call ids. Gemini may or may not give function calls an id; when it
// does not, the gateway makes one (prefix geminiGeneratedID) and does not
// send it back. Gemini 3 also attaches a thought signature to function
// calls that must be returned with them; it travels inside the unified
// tool call id after geminiThoughtSep, the only field OpenAI clients echo
// back untouched.
const (
	geminiGeneratedID = "gfc_"
	geminiThoughtSep  = "__thought__"
)

type geminiRequest struct {
	Contents          []geminiContent   `json:"contents"`
	SystemInstruction *geminiContent    `json:"systemInstruction,omitempty"`
	Tools             []geminiTool      `json:"tools,omitempty"`
	ToolConfig        *geminiToolConfig `json:"toolConfig,omitempty"`
	GenerationConfig  *geminiGenConfig  `json:"generationConfig,omitempty"`
}

type geminiContent struct {
	Role  string       `json:"role,omitempty"`
	Parts []geminiPart `json:"parts"`
}

type geminiPart struct {
	Text             string                  `json:"text,omitempty"`
	Thought          bool                    `json:"thought,omitempty"`
	ThoughtSignature string                  `json:"thoughtSignature,omitempty"`
	InlineData       *geminiBlob             `json:"inlineData,omitempty"`
	FileData         *geminiFileData         `json:"fileData,omitempty"`
	FunctionCall     *geminiFunctionCall     `json:"functionCall,omitempty"`
	FunctionResponse *geminiFunctionResponse `json:"functionResponse,omitempty"`
}

type geminiBlob struct {
	MimeType string `json:"mimeType"`
	Data     string `json:"data"`
}

type geminiFileData struct {
	MimeType string `json:"mimeType,omitempty"`
	FileURI  string `json:"fileUri"`
}

type geminiFunctionCall struct {
	ID   string          `json:"id,omitempty"`
	Name string          `json:"name"`
	Args json.RawMessage `json:"args,omitempty"`
}

type geminiFunctionResponse struct {
	ID       string          `json:"id,omitempty"`
	Name     string          `json:"name"`
	Response json.RawMessage `json:"response"`
}

type geminiTool struct {
	FunctionDeclarations []geminiFunctionDecl `json:"functionDeclarations"`
}

type geminiFunctionDecl struct {
	Name                 string          `json:"name"`
	Description          string          `json:"description,omitempty"`
	ParametersJSONSchema json.RawMessage `json:"parametersJsonSchema,omitempty"`
}

type geminiToolConfig struct {
	FunctionCallingConfig geminiFunctionCallingConfig `json:"functionCallingConfig"`
}

type geminiFunctionCallingConfig struct {
	Mode                 string   `json:"mode"` // AUTO, ANY, NONE
	AllowedFunctionNames []string `json:"allowedFunctionNames,omitempty"`
}

type geminiGenConfig struct {
	Temperature        *float64        `json:"temperature,omitempty"`
	TopP               *float64        `json:"topP,omitempty"`
	MaxOutputTokens    int             `json:"maxOutputTokens,omitempty"`
	StopSequences      []string        `json:"stopSequences,omitempty"`
	ResponseMimeType   string          `json:"responseMimeType,omitempty"`
	ResponseJSONSchema json.RawMessage `json:"responseJsonSchema,omitempty"`
	Seed               *int64          `json:"seed,omitempty"`
	PresencePenalty    *float64        `json:"presencePenalty,omitempty"`
	FrequencyPenalty   *float64        `json:"frequencyPenalty,omitempty"`
}

type geminiResponse struct {
	Candidates     []geminiCandidate `json:"candidates"`
	PromptFeedback *struct {
		BlockReason string `json:"blockReason"`
	} `json:"promptFeedback"`
	UsageMetadata *geminiUsage     `json:"usageMetadata"`
	ModelVersion  string           `json:"modelVersion"`
	ResponseID    string           `json:"responseId"`
	Error         *geminiErrorInfo `json:"error"`
}

type geminiCandidate struct {
	Content      geminiContent `json:"content"`
	FinishReason string        `json:"finishReason"`
	Index        int           `json:"index"`
}

type geminiUsage struct {
	PromptTokenCount        int64 `json:"promptTokenCount"`
	CandidatesTokenCount    int64 `json:"candidatesTokenCount"`
	ThoughtsTokenCount      int64 `json:"thoughtsTokenCount"`
	TotalTokenCount         int64 `json:"totalTokenCount"`
	CachedContentTokenCount int64 `json:"cachedContentTokenCount"`
}

// usage converts: thinking tokens are billed as output; cached content
// tokens are part of the prompt tokens, priced at the cached price.
func (u *geminiUsage) usage() Usage {
	out := Usage{PromptTokens: u.PromptTokenCount, CompletionTokens: u.CandidatesTokenCount + u.ThoughtsTokenCount}
	out.TotalTokens = out.PromptTokens + out.CompletionTokens
	if u.CachedContentTokenCount > 0 {
		out.PromptTokensDetails = &PromptTokensDetails{CachedTokens: u.CachedContentTokenCount}
	}
	return out
}

type geminiErrorInfo struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Status  string `json:"status"`
	Details []struct {
		Type       string `json:"@type"`
		Reason     string `json:"reason"`
		RetryDelay string `json:"retryDelay"`
	} `json:"details"`
}

func (geminiAdapter) endpoint(t *target, stream bool) string {
	u := t.prov.baseURL + "/models/" + url.PathEscape(t.upstream)
	if stream {
		return u + ":streamGenerateContent?alt=sse"
	}
	return u + ":generateContent"
}

func (geminiAdapter) setHeaders(h http.Header, t *target) {
	h.Set("Accept", "application/json")
}

func (geminiAdapter) encodeRequest(t *target, req *ChatRequest, _ bool) ([]byte, error) {
	var out geminiRequest
	var system []geminiPart
	// Function responses need the function's name, which OpenAI tool
	// messages do not carry: find it from the call's id.
	callNames := map[string]string{}
	for i := range req.Messages {
		m := &req.Messages[i]
		var role string
		var parts []geminiPart
		switch m.Role {
		case "system", "developer":
			if s := contentText(m.Content); s != "" {
				system = append(system, geminiPart{Text: s})
			}
			continue
		case "user":
			role = "user"
			ps, err := geminiUserParts(m.Content)
			if err != nil {
				return nil, badRequest("message %d: %v", i, err)
			}
			parts = ps
		case "assistant":
			role = "model"
			if s := contentText(m.Content); s != "" {
				parts = append(parts, geminiPart{Text: s})
			}
			for _, tc := range m.ToolCalls {
				args, err := toolArguments(tc.Function.Arguments)
				if err != nil {
					return nil, badRequest("message %d: tool call %s: %v", i, tc.ID, err)
				}
				callNames[tc.ID] = tc.Function.Name
				id, sig := splitGeminiID(tc.ID)
				parts = append(parts, geminiPart{ThoughtSignature: sig, FunctionCall: &geminiFunctionCall{ID: id, Name: tc.Function.Name, Args: args}})
			}
		case "tool":
			role = "user"
			name := m.Name
			if name == "" {
				name = callNames[m.ToolCallID]
			}
			if name == "" {
				return nil, badRequest("message %d: tool result %q answers no earlier tool call", i, m.ToolCallID)
			}
			id, _ := splitGeminiID(m.ToolCallID)
			parts = []geminiPart{{FunctionResponse: &geminiFunctionResponse{ID: id, Name: name, Response: geminiToolResult(contentText(m.Content))}}}
		default:
			return nil, badRequest("message %d: unknown role %q", i, m.Role)
		}
		if len(parts) == 0 {
			continue
		}
		if n := len(out.Contents); n > 0 && out.Contents[n-1].Role == role {
			out.Contents[n-1].Parts = append(out.Contents[n-1].Parts, parts...)
		} else {
			out.Contents = append(out.Contents, geminiContent{Role: role, Parts: parts})
		}
	}
	if len(out.Contents) == 0 {
		return nil, badRequest("no user or assistant message")
	}
	if len(system) > 0 {
		out.SystemInstruction = &geminiContent{Parts: system}
	}
	if len(req.Tools) > 0 {
		decls := make([]geminiFunctionDecl, 0, len(req.Tools))
		for _, tool := range req.Tools {
			d := geminiFunctionDecl{Name: tool.Function.Name, Description: tool.Function.Description}
			if len(tool.Function.Parameters) > 0 && string(tool.Function.Parameters) != "null" {
				d.ParametersJSONSchema = tool.Function.Parameters
			}
			decls = append(decls, d)
		}
		out.Tools = []geminiTool{{FunctionDeclarations: decls}}
	}
	tc, err := parseToolChoice(req.ToolChoice)
	if err != nil {
		return nil, err
	}
	switch tc.mode {
	case "auto":
		out.ToolConfig = &geminiToolConfig{FunctionCallingConfig: geminiFunctionCallingConfig{Mode: "AUTO"}}
	case "none":
		out.ToolConfig = &geminiToolConfig{FunctionCallingConfig: geminiFunctionCallingConfig{Mode: "NONE"}}
	case "required":
		out.ToolConfig = &geminiToolConfig{FunctionCallingConfig: geminiFunctionCallingConfig{Mode: "ANY"}}
	case "function":
		out.ToolConfig = &geminiToolConfig{FunctionCallingConfig: geminiFunctionCallingConfig{Mode: "ANY", AllowedFunctionNames: []string{tc.name}}}
	}
	gc := geminiGenConfig{
		Temperature:      req.Temperature,
		TopP:             req.TopP,
		MaxOutputTokens:  requestedMaxTokens(req),
		StopSequences:    req.Stop,
		Seed:             req.Seed,
		PresencePenalty:  req.PresencePenalty,
		FrequencyPenalty: req.FrequencyPenalty,
	}
	if rf := req.ResponseFormat; rf != nil && (rf.Type == "json_object" || rf.Type == "json_schema") {
		gc.ResponseMimeType = "application/json"
		gc.ResponseJSONSchema = jsonSchemaOf(rf)
	}
	if gc.Temperature != nil || gc.TopP != nil || gc.MaxOutputTokens > 0 || len(gc.StopSequences) > 0 || gc.ResponseMimeType != "" ||
		gc.Seed != nil || gc.PresencePenalty != nil || gc.FrequencyPenalty != nil {
		out.GenerationConfig = &gc
	}
	return json.Marshal(&out)
}

// geminiUserParts converts a user content to parts. Images must be data
// URLs (inlineData); Gemini fetches no arbitrary URLs, only files it hosts
// (fileData with a gs:// or Files API URI).
func geminiUserParts(raw json.RawMessage) ([]geminiPart, error) {
	parts, err := parseContent(raw)
	if err != nil {
		return nil, err
	}
	out := make([]geminiPart, 0, len(parts))
	for _, p := range parts {
		switch p.Type {
		case "text":
			if p.Text != "" {
				out = append(out, geminiPart{Text: p.Text})
			}
		case "image_url":
			if mt, data, ok := parseDataURL(p.ImageURL); ok {
				out = append(out, geminiPart{InlineData: &geminiBlob{MimeType: mt, Data: data}})
				continue
			}
			if strings.HasPrefix(p.ImageURL, "gs://") || strings.Contains(p.ImageURL, "generativelanguage.googleapis.com/") {
				out = append(out, geminiPart{FileData: &geminiFileData{FileURI: p.ImageURL}})
				continue
			}
			return nil, errString("gemini takes images as data: URLs (or files it hosts), not " + truncateURL(p.ImageURL))
		default:
			return nil, errString("content part type " + p.Type + " is not supported")
		}
	}
	return out, nil
}

// geminiToolResult wraps a tool message's text as a functionResponse
// response object: a JSON object is passed as is, anything else goes under
// "output" (the key Gemini's documentation suggests).
func geminiToolResult(text string) json.RawMessage {
	trimmed := strings.TrimSpace(text)
	if strings.HasPrefix(trimmed, "{") && json.Valid([]byte(trimmed)) {
		return json.RawMessage(trimmed)
	}
	var value any = text
	if trimmed != "" && json.Valid([]byte(trimmed)) {
		value = json.RawMessage(trimmed)
	}
	b, _ := json.Marshal(map[string]any{"output": value})
	return b
}

// splitGeminiID separates the id to send back (none when the gateway made
// it) and the thought signature.
func splitGeminiID(id string) (callID, signature string) {
	callID, signature, _ = strings.Cut(id, geminiThoughtSep)
	if strings.HasPrefix(callID, geminiGeneratedID) {
		callID = ""
	}
	return callID, signature
}

// geminiToolCall converts a functionCall part to a unified tool call.
func geminiToolCall(p *geminiPart) ToolCall {
	id := p.FunctionCall.ID
	if id == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		id = geminiGeneratedID + hex.EncodeToString(b[:])
	}
	if p.ThoughtSignature != "" {
		id += geminiThoughtSep + p.ThoughtSignature
	}
	return ToolCall{ID: id, Type: "function", Function: FunctionCall{Name: p.FunctionCall.Name, Arguments: compactJSON(p.FunctionCall.Args)}}
}

// geminiFinish maps finishReason to finish_reason.
func geminiFinish(reason string, toolCalls bool) string {
	switch reason {
	case "MAX_TOKENS":
		return FinishLength
	case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE":
		return FinishContentFilter
	}
	if toolCalls {
		return FinishToolCalls
	}
	return FinishStop
}

func (geminiAdapter) decodeResponse(t *target, body []byte) (*ChatResponse, error) {
	var r geminiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, &Error{Class: ClassServer, Message: "malformed generateContent answer: " + err.Error()}
	}
	if r.Error != nil {
		return nil, geminiError(r.Error.Code, http.Header{}, r.Error)
	}
	msg := Message{Role: "assistant"}
	finish := FinishStop
	if len(r.Candidates) == 0 {
		if r.PromptFeedback != nil && r.PromptFeedback.BlockReason != "" {
			finish = FinishContentFilter
		} else {
			return nil, &Error{Class: ClassServer, Message: "generateContent answer without candidates"}
		}
	} else {
		c := &r.Candidates[0]
		var text strings.Builder
		for i := range c.Content.Parts {
			p := &c.Content.Parts[i]
			switch {
			case p.FunctionCall != nil:
				msg.ToolCalls = append(msg.ToolCalls, geminiToolCall(p))
			case p.Text != "" && !p.Thought:
				text.WriteString(p.Text)
			}
		}
		msg.Content = textContent(text.String(), len(msg.ToolCalls) > 0)
		finish = geminiFinish(c.FinishReason, len(msg.ToolCalls) > 0)
	}
	if msg.Content == nil {
		msg.Content = textContent("", false)
	}
	resp := &ChatResponse{
		ID:      r.ResponseID,
		Object:  ObjectChatCompletion,
		Choices: []Choice{{Index: 0, Message: msg, FinishReason: finish}},
	}
	if r.UsageMetadata != nil {
		resp.Usage = r.UsageMetadata.usage()
	}
	return resp, nil
}

func (geminiAdapter) newDecoder(t *target, body io.Reader) chunkDecoder {
	return &geminiDecoder{sse: newSSEReader(body)}
}

// geminiDecoder turns the SSE stream of partial GenerateContentResponses
// into unified chunks. Gemini sends no end marker: the stream ends after
// the event with a finishReason.
type geminiDecoder struct {
	sse      *sseReader
	id       string
	started  bool
	finished bool
	ntools   int
	usage    *geminiUsage
	pending  []*ChatChunk
	done     bool
}

func (d *geminiDecoder) chunk(delta Delta) *ChatChunk {
	return &ChatChunk{ID: d.id, Object: ObjectChatCompletionChunk, Choices: []ChunkChoice{{Delta: delta}}}
}

func (d *geminiDecoder) next() (*ChatChunk, error) {
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
			if !d.finished {
				return nil, &Error{Class: ClassConnection, Message: "stream ended before a finishReason", Err: io.ErrUnexpectedEOF}
			}
			d.done = true
			if d.usage != nil {
				u := d.usage.usage()
				return &ChatChunk{ID: d.id, Object: ObjectChatCompletionChunk, Choices: []ChunkChoice{}, Usage: &u}, nil
			}
			return nil, io.EOF
		}
		if err != nil {
			return nil, streamReadError(err)
		}
		data := bytes.TrimSpace(ev.Data)
		if len(data) == 0 {
			continue
		}
		var r geminiResponse
		if err := json.Unmarshal(data, &r); err != nil {
			return nil, &Error{Class: ClassServer, Message: "malformed stream event: " + err.Error()}
		}
		if r.Error != nil {
			return nil, geminiError(r.Error.Code, http.Header{}, r.Error)
		}
		if d.id == "" {
			d.id = r.ResponseID
		}
		if r.UsageMetadata != nil {
			d.usage = r.UsageMetadata
		}
		if !d.started {
			d.started = true
			d.pending = append(d.pending, d.chunk(Delta{Role: "assistant", Content: strPtr("")}))
		}
		if len(r.Candidates) == 0 {
			if r.PromptFeedback != nil && r.PromptFeedback.BlockReason != "" {
				d.finished = true
				fin := d.chunk(Delta{})
				fin.Choices[0].FinishReason = strPtr(FinishContentFilter)
				d.pending = append(d.pending, fin)
			}
			continue
		}
		c := &r.Candidates[0]
		for i := range c.Content.Parts {
			p := &c.Content.Parts[i]
			switch {
			case p.FunctionCall != nil:
				idx := d.ntools
				d.ntools++
				tc := geminiToolCall(p)
				tc.Index = &idx
				d.pending = append(d.pending, d.chunk(Delta{ToolCalls: []ToolCall{tc}}))
			case p.Text != "" && !p.Thought:
				d.pending = append(d.pending, d.chunk(Delta{Content: strPtr(p.Text)}))
			}
		}
		if c.FinishReason != "" && !d.finished {
			d.finished = true
			fin := d.chunk(Delta{})
			fin.Choices[0].FinishReason = strPtr(geminiFinish(c.FinishReason, d.ntools > 0))
			d.pending = append(d.pending, fin)
		}
	}
}

func (geminiAdapter) decodeError(status int, h http.Header, body []byte) *Error {
	var b struct {
		Error *geminiErrorInfo `json:"error"`
	}
	err := json.Unmarshal(body, &b)
	if err != nil {
		// Some Gemini endpoints answer errors as a one-element array.
		var arr []struct {
			Error *geminiErrorInfo `json:"error"`
		}
		if json.Unmarshal(body, &arr) == nil && len(arr) > 0 {
			b.Error, err = arr[0].Error, nil
		}
	}
	if err != nil || b.Error == nil {
		return statusError(status, h, "", string(bytes.TrimSpace(body)))
	}
	return geminiError(status, h, b.Error)
}

// geminiError classifies a google.rpc.Status error; RetryInfo's delay
// becomes RetryAfter (the gateway also reads the Retry-After header).
func geminiError(status int, h http.Header, info *geminiErrorInfo) *Error {
	e := statusError(status, h, info.Status, info.Message)
	switch info.Status {
	case "INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE":
		e.Class = ClassBadRequest
		if looksLikeContextError("", info.Message) {
			e.Class = ClassContext
		}
	case "NOT_FOUND":
		// The model (or, on Vertex AI, the publisher model in this
		// project and location) does not exist for this target.
		e.Class = ClassModelUnavailable
	case "UNAUTHENTICATED", "PERMISSION_DENIED":
		e.Class = ClassAuth
	case "RESOURCE_EXHAUSTED":
		e.Class = ClassRateLimit
	case "UNAVAILABLE":
		e.Class = ClassOverloaded
	case "INTERNAL", "UNKNOWN", "ABORTED":
		e.Class = ClassServer
	case "DEADLINE_EXCEEDED":
		e.Class = ClassTimeout
	}
	for _, d := range info.Details {
		switch {
		case d.Reason == "API_KEY_INVALID" || d.Reason == "API_KEY_SERVICE_BLOCKED":
			e.Class = ClassAuth
		case strings.HasSuffix(d.Type, "google.rpc.RetryInfo") && d.RetryDelay != "":
			if dur, err := time.ParseDuration(d.RetryDelay); err == nil && dur > e.RetryAfter {
				e.RetryAfter = dur
			}
		}
	}
	return e
}

type errString string

func (e errString) Error() string { return string(e) }

// truncateURL shortens a URL for an error message.
func truncateURL(u string) string {
	if len(u) > 64 {
		return u[:64] + "..."
	}
	return u
}
