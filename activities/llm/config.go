// Package llm puts AI model providers behind one request/response format
// (OpenAI chat-completions shaped), with routing, fallbacks, budgets and
// token/cost accounting.
package llm

import (
	"sort"
	"strings"
)

// Config is the model registry: the `models:` section of gateflow.yaml.
type Config struct {
	// Providers by name; a model is addressed as "provider/model".
	Providers map[string]Provider `yaml:"providers" json:"providers"`
	// Aliases map a name to an ordered list of "provider/model" targets; the
	// second and later targets are fallbacks.
	Aliases map[string][]string `yaml:"aliases,omitempty" json:"aliases,omitempty"`
}

// Provider is one model provider endpoint.
type Provider struct {
	// Kind is the wire format: "openai" (any OpenAI-compatible server),
	// "anthropic" or "gemini".
	Kind    string `yaml:"kind" json:"kind"`
	BaseURL string `yaml:"base_url" json:"base_url"`
	// APIKeyEnv names the environment variable holding the credential;
	// APIKeyFile names a file holding it (a mounted secret). The value is
	// never logged nor written to records.
	APIKeyEnv  string `yaml:"api_key_env,omitempty" json:"api_key_env,omitempty"`
	APIKeyFile string `yaml:"api_key_file,omitempty" json:"api_key_file,omitempty"`
	// Timeout is a Go duration string such as "60s".
	Timeout string           `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	Models  map[string]Model `yaml:"models" json:"models"`
}

// Model describes one model of a provider.
type Model struct {
	// Prices in US dollars per million tokens.
	InputPerMTok  float64 `yaml:"input_per_mtok,omitempty" json:"input_per_mtok,omitempty"`
	OutputPerMTok float64 `yaml:"output_per_mtok,omitempty" json:"output_per_mtok,omitempty"`
	// ContextTokens is the context window; requests estimated above it are
	// refused before they are sent.
	ContextTokens int `yaml:"context_tokens,omitempty" json:"context_tokens,omitempty"`
}

// Has reports whether name is an alias or a known "provider/model".
func (c Config) Has(name string) bool {
	if _, ok := c.Aliases[name]; ok {
		return true
	}
	prov, model, ok := strings.Cut(name, "/")
	if !ok {
		return false
	}
	p, ok := c.Providers[prov]
	if !ok {
		return false
	}
	_, ok = p.Models[model]
	return ok
}

// Names lists every alias and "provider/model", sorted.
func (c Config) Names() []string {
	var out []string
	for a := range c.Aliases {
		out = append(out, a)
	}
	for pn, p := range c.Providers {
		for mn := range p.Models {
			out = append(out, pn+"/"+mn)
		}
	}
	sort.Strings(out)
	return out
}
