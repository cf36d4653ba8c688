package llm

import (
	"sort"
)

// Preset is an OpenAI-compatible vendor known by its kind, so that a
// provider is three lines of configuration:
//
//	groq:
//	  kind: groq                 # base URL, GROQ_API_KEY, quirks
//	  models: {llama-3.3-70b-versatile: {}}
//
// A preset brings the vendor's base URL, the environment variable its key
// is conventionally in, its catalogue prefix (prices and context windows
// come from the catalogue), and its quirks: parameters it refuses (dropped
// before sending) or names differently. Every field can still be set in
// the provider's configuration (base_url, api_key_env, drop_params,
// headers, catalogue).
type Preset struct {
	// Kind is the provider kind that selects the preset.
	Kind string
	// Vendor is the display name; Docs the vendor's API documentation,
	// where the base URL and quirks were read.
	Vendor string
	Docs   string
	// BaseURL is the vendor's OpenAI-compatible base URL (ending before
	// /chat/completions).
	BaseURL string
	// KeyEnv is the default api_key_env; "" for local servers that take no
	// key.
	KeyEnv string
	// Catalogue is the catalogue prefix of the vendor's models ("" for
	// local servers: their models are free).
	Catalogue string
	// Drop lists request parameters the vendor refuses (a 400 or 422 when
	// sent): they are removed from every request.
	Drop []string
	// Rename maps a request parameter to the vendor's name for it.
	Rename map[string]string
	// LegacyMaxTokens sends the completion bound as max_tokens: the vendor
	// does not document max_completion_tokens.
	LegacyMaxTokens bool
	// NoStreamOptions leaves stream_options out of stream requests: the
	// vendor refuses it and reports usage in its last chunk anyway.
	NoStreamOptions bool
	// NoMessageName removes messages[].name, which the vendor refuses.
	NoMessageName bool
	// ToolChoiceRequired is what tool_choice "required" is sent as, when
	// the vendor names it differently ("any" at Mistral).
	ToolChoiceRequired string
	// Embeddings reports whether the vendor serves POST /embeddings.
	Embeddings bool
	// RequestIDHeader carries the gateway's request id ("" for none).
	RequestIDHeader string
}

// presets are the OpenAI-compatible vendors known by kind. Base URLs and
// quirks were read from each vendor's documentation (Docs) and the
// models.dev provider registry (2026-07). Vendors change: every field can
// be overridden in the provider's configuration.
var presets = []Preset{
	{Kind: KindOpenAI, Vendor: "OpenAI", Docs: "https://platform.openai.com/docs/api-reference/chat",
		BaseURL: "https://api.openai.com/v1", KeyEnv: "OPENAI_API_KEY", Catalogue: "openai", Embeddings: true,
		RequestIDHeader: "X-Client-Request-Id"},
	{Kind: "groq", Vendor: "Groq", Docs: "https://console.groq.com/docs/openai",
		// "logprobs, logit_bias, top_logprobs, messages[].name ... will
		// result in a 400 error"; n must be 1 (the endpoint refuses n > 1).
		BaseURL: "https://api.groq.com/openai/v1", KeyEnv: "GROQ_API_KEY", Catalogue: "groq", NoMessageName: true},
	{Kind: "mistral", Vendor: "Mistral AI", Docs: "https://docs.mistral.ai/api/",
		// Unknown fields are refused (422 extra_forbidden); the seed is
		// random_seed, "required" tool choice is "any", and the last
		// stream chunk carries usage without stream_options.
		BaseURL: "https://api.mistral.ai/v1", KeyEnv: "MISTRAL_API_KEY", Catalogue: "mistral", Embeddings: true,
		Rename: map[string]string{"seed": "random_seed"}, LegacyMaxTokens: true, NoStreamOptions: true,
		ToolChoiceRequired: "any", Drop: []string{"user"}},
	{Kind: "deepseek", Vendor: "DeepSeek", Docs: "https://api-docs.deepseek.com/api/create-chat-completion",
		BaseURL: "https://api.deepseek.com", KeyEnv: "DEEPSEEK_API_KEY", Catalogue: "deepseek", LegacyMaxTokens: true},
	{Kind: "xai", Vendor: "xAI", Docs: "https://docs.x.ai/docs/api-reference",
		BaseURL: "https://api.x.ai/v1", KeyEnv: "XAI_API_KEY", Catalogue: "xai"},
	{Kind: "together", Vendor: "Together AI", Docs: "https://docs.together.ai/docs/openai-api-compatibility",
		BaseURL: "https://api.together.xyz/v1", KeyEnv: "TOGETHER_API_KEY", Catalogue: "together", Embeddings: true, LegacyMaxTokens: true},
	{Kind: "fireworks", Vendor: "Fireworks AI", Docs: "https://fireworks.ai/docs/tools-sdks/openai-compatibility",
		BaseURL: "https://api.fireworks.ai/inference/v1", KeyEnv: "FIREWORKS_API_KEY", Catalogue: "fireworks", Embeddings: true, LegacyMaxTokens: true},
	{Kind: "perplexity", Vendor: "Perplexity", Docs: "https://docs.perplexity.ai/api-reference/chat-completions-post",
		BaseURL: "https://api.perplexity.ai", KeyEnv: "PERPLEXITY_API_KEY", Catalogue: "perplexity", LegacyMaxTokens: true},
	{Kind: "cerebras", Vendor: "Cerebras", Docs: "https://inference-docs.cerebras.ai/resources/openai",
		// frequency_penalty, presence_penalty, logit_bias,
		// parallel_tool_calls and service_tier answer 400.
		BaseURL: "https://api.cerebras.ai/v1", KeyEnv: "CEREBRAS_API_KEY", Catalogue: "cerebras",
		Drop: []string{"frequency_penalty", "presence_penalty", "parallel_tool_calls"}},
	{Kind: "deepinfra", Vendor: "DeepInfra", Docs: "https://deepinfra.com/docs/openai_api",
		BaseURL: "https://api.deepinfra.com/v1/openai", KeyEnv: "DEEPINFRA_API_KEY", Catalogue: "deepinfra", Embeddings: true, LegacyMaxTokens: true},
	{Kind: "openrouter", Vendor: "OpenRouter", Docs: "https://openrouter.ai/docs/api-reference/overview",
		BaseURL: "https://openrouter.ai/api/v1", KeyEnv: "OPENROUTER_API_KEY", LegacyMaxTokens: true},
	{Kind: "nvidia", Vendor: "NVIDIA NIM", Docs: "https://docs.api.nvidia.com/nim/reference/llm-apis",
		BaseURL: "https://integrate.api.nvidia.com/v1", KeyEnv: "NVIDIA_API_KEY", Catalogue: "nvidia", Embeddings: true, LegacyMaxTokens: true},
	{Kind: "nebius", Vendor: "Nebius Token Factory", Docs: "https://docs.tokenfactory.nebius.com/",
		BaseURL: "https://api.tokenfactory.nebius.com/v1", KeyEnv: "NEBIUS_API_KEY", Catalogue: "nebius", Embeddings: true, LegacyMaxTokens: true},
	{Kind: "moonshot", Vendor: "Moonshot AI (Kimi)", Docs: "https://platform.moonshot.ai/docs/api/chat",
		BaseURL: "https://api.moonshot.ai/v1", KeyEnv: "MOONSHOT_API_KEY", Catalogue: "moonshot", LegacyMaxTokens: true},
	{Kind: "dashscope", Vendor: "Alibaba Cloud Model Studio (Qwen)", Docs: "https://www.alibabacloud.com/help/en/model-studio/compatibility-of-openai-with-dashscope",
		BaseURL: "https://dashscope-intl.aliyuncs.com/compatible-mode/v1", KeyEnv: "DASHSCOPE_API_KEY", Catalogue: "dashscope", Embeddings: true, LegacyMaxTokens: true},
	{Kind: "zai", Vendor: "Z.ai (GLM)", Docs: "https://docs.z.ai/api-reference/llm/chat-completion",
		BaseURL: "https://api.z.ai/api/paas/v4", KeyEnv: "ZHIPU_API_KEY", Catalogue: "zai", LegacyMaxTokens: true},
	{Kind: "sambanova", Vendor: "SambaNova Cloud", Docs: "https://docs.sambanova.ai/cloud/docs/capabilities/openai-compatibility",
		BaseURL: "https://api.sambanova.ai/v1", KeyEnv: "SAMBANOVA_API_KEY", Catalogue: "sambanova", LegacyMaxTokens: true},
	{Kind: "huggingface", Vendor: "Hugging Face Inference Providers", Docs: "https://huggingface.co/docs/inference-providers",
		BaseURL: "https://router.huggingface.co/v1", KeyEnv: "HF_TOKEN", LegacyMaxTokens: true},
	{Kind: "siliconflow", Vendor: "SiliconFlow", Docs: "https://docs.siliconflow.com/en/api-reference/chat-completions/chat-completions",
		BaseURL: "https://api.siliconflow.com/v1", KeyEnv: "SILICONFLOW_API_KEY", Embeddings: true, LegacyMaxTokens: true},
	{Kind: "novita", Vendor: "Novita AI", Docs: "https://novita.ai/docs/guides/llm-api",
		BaseURL: "https://api.novita.ai/openai", KeyEnv: "NOVITA_API_KEY", LegacyMaxTokens: true},
	{Kind: "github", Vendor: "GitHub Models", Docs: "https://docs.github.com/en/rest/models/inference",
		BaseURL: "https://models.github.ai/inference", KeyEnv: "GITHUB_TOKEN", LegacyMaxTokens: true},
	{Kind: "ollama", Vendor: "Ollama (local)", Docs: "https://github.com/ollama/ollama/blob/main/docs/openai.md",
		BaseURL: "http://127.0.0.1:11434/v1", Embeddings: true, LegacyMaxTokens: true},
	{Kind: "vllm", Vendor: "vLLM (local)", Docs: "https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html",
		BaseURL: "http://127.0.0.1:8000/v1", Embeddings: true, RequestIDHeader: "X-Request-Id"},
	{Kind: "lmstudio", Vendor: "LM Studio (local)", Docs: "https://lmstudio.ai/docs/app/api/endpoints/openai",
		BaseURL: "http://127.0.0.1:1234/v1", Embeddings: true, LegacyMaxTokens: true},
	{Kind: "llamacpp", Vendor: "llama.cpp server (local)", Docs: "https://github.com/ggml-org/llama.cpp/tree/master/tools/server",
		BaseURL: "http://127.0.0.1:8080/v1", Embeddings: true, LegacyMaxTokens: true},
}

// presetByKind indexes presets.
var presetByKind = func() map[string]*Preset {
	m := make(map[string]*Preset, len(presets))
	for i := range presets {
		m[presets[i].Kind] = &presets[i]
	}
	return m
}()

// Presets lists the OpenAI-compatible vendor presets, by kind.
func Presets() []Preset {
	out := append([]Preset(nil), presets...)
	sort.Slice(out, func(i, j int) bool { return out[i].Kind < out[j].Kind })
	return out
}

// droppableParams are the request parameters drop_params may name: the
// optional fields of the unified request.
var droppableParams = map[string]bool{
	"temperature": true, "top_p": true, "max_tokens": true, "max_completion_tokens": true, "stop": true,
	"tool_choice": true, "response_format": true, "user": true, "seed": true, "presence_penalty": true,
	"frequency_penalty": true, "parallel_tool_calls": true, "stream_options": true,
}
