package llm

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func mustCatalogue(t testing.TB) *Catalogue {
	t.Helper()
	c, err := BuiltinCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Every figure of the built-in catalogue says where it comes from and
// when it was read; the entries are well-formed.
func TestCatalogueEntriesHaveSourceAndDate(t *testing.T) {
	c := mustCatalogue(t)
	if c.Len() < 100 {
		t.Fatalf("%d entries, want at least 100", c.Len())
	}
	chat, embeddings := 0, 0
	for _, key := range c.Keys() {
		e, _ := c.Lookup(key)
		prefix, model, ok := strings.Cut(key, "/")
		if !ok || prefix == "" || model == "" {
			t.Errorf("%s: key is not <catalogue>/<model>", key)
		}
		if u, err := url.Parse(e.Source); err != nil || u.Scheme != "https" || u.Host == "" {
			t.Errorf("%s: source %q is not an https URL", key, e.Source)
		}
		d, err := time.Parse(time.DateOnly, e.AsOf)
		if err != nil || d.Year() < 2024 {
			t.Errorf("%s: as_of %q is not a date", key, e.AsOf)
		}
		if p := e.problems(); len(p) > 0 {
			t.Errorf("%s: %v", key, p)
		}
		if e.InputPerMTok == nil {
			t.Errorf("%s: no input price", key)
		}
		switch e.Mode {
		case ModeEmbedding:
			embeddings++
			if e.Dimensions == nil {
				t.Errorf("%s: embedding model without dimensions", key)
			}
		default:
			chat++
			if e.ContextTokens == nil || *e.ContextTokens <= 0 || e.OutputPerMTok == nil || e.Tools == nil {
				t.Errorf("%s: chat model without context window, output price or capabilities", key)
			}
		}
	}
	if chat < 100 || embeddings < 3 {
		t.Errorf("%d chat and %d embedding models", chat, embeddings)
	}
	// The catalogue prefixes are provider kinds.
	for _, key := range c.Keys() {
		prefix, _, _ := strings.Cut(key, "/")
		if !knownKind(prefix) {
			t.Errorf("%s: prefix %q is not a provider kind", key, prefix)
		}
	}
}

// Operators override fields and add models without a release.
func TestCatalogueOverrides(t *testing.T) {
	price := 1.25
	ctx := 4096
	yes := true
	c, err := NewCatalogue(map[string]CatalogueEntry{
		"openai/gpt-4o":        {InputPerMTok: &price, Source: "https://example.com/contract", AsOf: "2026-12-01"},
		"vllm/my-finetune-8b":  {ContextTokens: &ctx, Tools: &yes},
		"openai/gpt-4o-mini-x": {},
	})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := c.Lookup("openai/gpt-4o")
	base, _ := mustCatalogue(t).Lookup("openai/gpt-4o")
	if *e.InputPerMTok != 1.25 || *e.OutputPerMTok != *base.OutputPerMTok || *e.ContextTokens != *base.ContextTokens || e.Source != "https://example.com/contract" {
		t.Errorf("merged %+v", e)
	}
	if e, ok := c.Lookup("vllm/my-finetune-8b"); !ok || *e.ContextTokens != 4096 {
		t.Errorf("added %+v", e)
	}
	// The built-in catalogue is untouched.
	if b, _ := mustCatalogue(t).Lookup("openai/gpt-4o"); *b.InputPerMTok == 1.25 {
		t.Error("override leaked into the built-in catalogue")
	}
	// Through the configuration: a model's own figures win, the catalogue
	// fills the rest.
	cfg := providerCfg(Provider{Kind: KindOpenAI, Models: map[string]Model{"gpt-4o": {OutputPerMTok: 99}, "o": {Name: "gpt-4o-mini"}}})
	cfg.Catalogue = map[string]CatalogueEntry{"openai/gpt-4o": {InputPerMTok: &price}}
	gw, err := NewGateway(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	tg := gw.routes.Load().targets["p/gpt-4o"]
	if tg.model.InputPerMTok != 1.25 || tg.model.OutputPerMTok != 99 || tg.model.ContextTokens != *base.ContextTokens {
		t.Errorf("effective model %+v", tg.model)
	}
	mini, _ := mustCatalogue(t).Lookup("openai/gpt-4o-mini")
	if o := gw.routes.Load().targets["p/o"]; o.model.InputPerMTok != *mini.InputPerMTok || o.info.Catalogue != "openai/gpt-4o-mini" {
		t.Errorf("model named gpt-4o-mini: %+v %+v", o.model, o.info)
	}
	// A local server has no catalogue: its models are free unless priced.
	local := providerCfg(Provider{Kind: KindOpenAI, BaseURL: "http://127.0.0.1:11434/v1", Models: map[string]Model{"gpt-4o": {}}})
	gw, _ = NewGateway(local, Deps{})
	if m := gw.routes.Load().targets["p/gpt-4o"].model; m.InputPerMTok != 0 {
		t.Errorf("local model priced %+v", m)
	}
}

func TestModelInfos(t *testing.T) {
	cfg := Config{
		Providers: map[string]Provider{"oa": {Kind: KindOpenAI, Models: map[string]Model{"gpt-4o": {}, "text-embedding-3-small": {}}}},
		Aliases:   map[string]Alias{"smart": {Strategy: StrategyLatency, Targets: []AliasTarget{{Model: "oa/gpt-4o"}}}},
	}
	gw, err := NewGateway(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	infos := gw.ModelInfos()
	if len(infos) != 3 || infos[0].ID != "oa/gpt-4o" || infos[2].ID != "smart" {
		t.Fatalf("infos %+v", infos)
	}
	if i := infos[0]; i.ContextTokens == 0 || i.InputPerMTok == 0 || !strings.Contains(strings.Join(i.Capabilities, ","), "tools") || i.Source == "" || i.AsOf == "" {
		t.Errorf("gpt-4o %+v", i)
	}
	if i := infos[1]; i.Mode != ModeEmbedding || i.Dimensions == 0 {
		t.Errorf("embedding %+v", i)
	}
	if i := infos[2]; i.Strategy != StrategyLatency || len(i.Targets) != 1 {
		t.Errorf("alias %+v", i)
	}
}
