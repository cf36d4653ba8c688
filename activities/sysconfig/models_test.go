package sysconfig

import (
	"strings"
	"testing"

	"github.com/gateflow/gateflow/activities/llm"
)

// The models section as operators write it: presets, native providers,
// aliases in both forms, catalogue overrides, cache and cool-downs, read
// with the config directory's strict decoding.
func TestModelsSection(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/"+ConfigFile, `
models:
  providers:
    groq:
      kind: groq
      models: {llama-3.3-70b-versatile: {}}
    bedrock:
      kind: bedrock
      region: us-east-1
      models: {claude: {name: "us.anthropic.claude-sonnet-4-5-20250929-v1:0"}}
    vertex:
      kind: vertex
      project: demo
      models: {gemini-2.5-flash: {}}
  aliases:
    ordered: [groq/llama-3.3-70b-versatile, bedrock/claude]
    spread:
      strategy: weighted
      targets: [{model: bedrock/claude, weight: 3}, vertex/gemini-2.5-flash]
      fallbacks: [groq/llama-3.3-70b-versatile]
      cache: true
  catalogue:
    groq/llama-3.3-70b-versatile: {input_per_mtok: 0.5, as_of: "2026-12-01", source: "https://example.com"}
  cache: {max_mb: 16, ttl: 5m}
  cooldown: {failures: 5}
`)
	snap, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := snap.Models()
	spread := m.Aliases["spread"]
	if spread.Strategy != llm.StrategyWeighted || len(spread.Targets) != 2 || spread.Targets[0].Weight != 3 || spread.Targets[1].Model != "vertex/gemini-2.5-flash" ||
		spread.Cache == nil || !spread.Cache.Enabled || strings.Join(spread.Names(), ",") != "bedrock/claude,vertex/gemini-2.5-flash,groq/llama-3.3-70b-versatile" {
		t.Errorf("spread %+v", spread)
	}
	if got := strings.Join(m.Aliases["ordered"].Names(), ","); got != "groq/llama-3.3-70b-versatile,bedrock/claude" {
		t.Errorf("ordered %s", got)
	}
	if *m.Catalogue["groq/llama-3.3-70b-versatile"].InputPerMTok != 0.5 || m.Cache.MaxMB != 16 || m.Cooldown.Failures != 5 {
		t.Errorf("models %+v", m)
	}
	if !snap.HasModel("spread") || !snap.HasModel("bedrock/claude") {
		t.Error("models not known to the snapshot")
	}

	// Mistakes are located like any other.
	writeFile(t, dir+"/"+ConfigFile, `
models:
  providers:
    groq: {kind: groq, models: {m: {}}}
  aliases:
    spread: {stratgy: weighted, targets: [{model: groq/m, wieght: 2}]}
`)
	_, err = Load(dir)
	got := strings.Join(problemsOf(t, err), "\n")
	for _, want := range []string{"models.aliases.spread.stratgy: unknown field", "models.aliases.spread.targets[0].wieght: unknown field"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
}
