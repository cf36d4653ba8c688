package llm

import "encoding/json"

// The unified format is OpenAI chat-completions shaped, so that OpenAI SDKs
// can talk to Gateflow unchanged. Provider adapters translate to and from it.

// ChatRequest is a chat completion request in the unified format.
type ChatRequest struct {
	Model       string    `json:"model"`
	Messages    []Message `json:"messages"`
	Temperature *float64  `json:"temperature,omitempty"`
	TopP        *float64  `json:"top_p,omitempty"`
	// MaxTokens bounds the completion; MaxCompletionTokens is the newer
	// OpenAI name for the same bound and wins when both are set.
	MaxTokens           *int            `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int            `json:"max_completion_tokens,omitempty"`
	Stop                []string        `json:"stop,omitempty"`
	Tools               []Tool          `json:"tools,omitempty"`
	ToolChoice          json.RawMessage `json:"tool_choice,omitempty"`
	ResponseFormat      *ResponseFormat `json:"response_format,omitempty"`
	Stream              bool            `json:"stream,omitempty"`
	StreamOptions       *StreamOptions  `json:"stream_options,omitempty"`
	User                string          `json:"user,omitempty"`
	// Sampling and tool options OpenAI clients commonly send; passed to
	// OpenAI-compatible servers as is and translated where the provider
	// has an equivalent (Gemini: seed and penalties; Anthropic:
	// parallel_tool_calls false disables parallel tool use).
	Seed              *int64   `json:"seed,omitempty"`
	PresencePenalty   *float64 `json:"presence_penalty,omitempty"`
	FrequencyPenalty  *float64 `json:"frequency_penalty,omitempty"`
	ParallelToolCalls *bool    `json:"parallel_tool_calls,omitempty"`
}

// Message is one chat message. Content is a string or, for multi-part
// messages, an array of parts; Text returns the text either way.
type Message struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content,omitempty"`
	Name       string          `json:"name,omitempty"`
	ToolCalls  []ToolCall      `json:"tool_calls,omitempty"`
	ToolCallID string          `json:"tool_call_id,omitempty"`
}

// TextMessage returns a message whose content is the string text.
func TextMessage(role, text string) Message {
	b, _ := json.Marshal(text)
	return Message{Role: role, Content: b}
}

// Text returns the message's text: the string content, or the text parts of
// an array content joined.
func (m Message) Text() string {
	if len(m.Content) == 0 {
		return ""
	}
	var s string
	if err := json.Unmarshal(m.Content, &s); err == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(m.Content, &parts); err != nil {
		return ""
	}
	out := ""
	for _, p := range parts {
		if p.Type == "text" {
			out += p.Text
		}
	}
	return out
}

// Tool is a function the model may call.
type Tool struct {
	Type     string       `json:"type"` // "function"
	Function FunctionDecl `json:"function"`
}

// FunctionDecl declares a callable function with a JSON Schema for its
// arguments.
type FunctionDecl struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
}

// ToolCall is a model's request to call a function.
type ToolCall struct {
	Index    *int         `json:"index,omitempty"` // set in stream deltas
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type,omitempty"` // "function"
	Function FunctionCall `json:"function"`
}

// FunctionCall names the function and carries its JSON-encoded arguments.
type FunctionCall struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

// ResponseFormat asks for plain text or JSON output.
type ResponseFormat struct {
	Type       string          `json:"type"` // "text", "json_object" or "json_schema"
	JSONSchema json.RawMessage `json:"json_schema,omitempty"`
}

// StreamOptions asks for usage in the last stream chunk.
type StreamOptions struct {
	IncludeUsage bool `json:"include_usage,omitempty"`
}

// ChatResponse is a non-streaming chat completion.
type ChatResponse struct {
	ID      string   `json:"id"`
	Object  string   `json:"object"` // "chat.completion"
	Created int64    `json:"created"`
	Model   string   `json:"model"`
	Choices []Choice `json:"choices"`
	Usage   Usage    `json:"usage"`
	// Cache says whether the answer came from the response cache (not
	// part of the JSON answer; the ingress sends it as a header).
	Cache *CacheInfo `json:"-"`
}

// Choice is one completion alternative.
type Choice struct {
	Index        int     `json:"index"`
	Message      Message `json:"message"`
	FinishReason string  `json:"finish_reason"`
}

// Usage counts tokens.
type Usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
	// PromptTokensDetails counts the prompt tokens read from the
	// provider's prompt cache (OpenAI's field; filled from Anthropic,
	// Gemini and Bedrock usage too), priced at the cached input price.
	PromptTokensDetails *PromptTokensDetails `json:"prompt_tokens_details,omitempty"`
	// CostUSD is what the call cost at the registry's prices, set by the
	// gateway (an extension field; OpenAI SDKs ignore it).
	CostUSD float64 `json:"cost_usd,omitempty"`
}

// PromptTokensDetails breaks prompt tokens down.
type PromptTokensDetails struct {
	CachedTokens int64 `json:"cached_tokens"`
}

// cachedTokens is the prompt tokens read from the provider's cache.
func (u Usage) cachedTokens() int64 {
	if u.PromptTokensDetails == nil {
		return 0
	}
	return u.PromptTokensDetails.CachedTokens
}

// ChatChunk is one event of a streamed chat completion, shaped like
// OpenAI's "chat.completion.chunk" so that it can be written to clients as
// an SSE `data:` line unchanged. The last chunk of a gateway stream has no
// choices and carries Usage.
type ChatChunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"` // "chat.completion.chunk"
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []ChunkChoice `json:"choices"`
	Usage   *Usage        `json:"usage,omitempty"`
}

// ChunkChoice is the delta of one completion alternative.
type ChunkChoice struct {
	Index int   `json:"index"`
	Delta Delta `json:"delta"`
	// FinishReason is null until the choice's last chunk.
	FinishReason *string `json:"finish_reason"`
}

// Delta is what a chunk adds to the message: the role (first chunk), a
// piece of content, or pieces of tool calls (keyed by ToolCall.Index; the
// first piece of a call carries its id and name, later pieces append to
// its arguments).
type Delta struct {
	Role      string     `json:"role,omitempty"`
	Content   *string    `json:"content,omitempty"`
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
}

// Object names of the unified format.
const (
	ObjectChatCompletion      = "chat.completion"
	ObjectChatCompletionChunk = "chat.completion.chunk"
)

// Finish reasons of the unified format; provider stop reasons are mapped
// onto these.
const (
	FinishStop          = "stop"
	FinishLength        = "length"
	FinishToolCalls     = "tool_calls"
	FinishContentFilter = "content_filter"
)
