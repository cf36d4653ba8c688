package prompt_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gateflow/gateflow/activities/llm/prompt"
	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/workflows/definition"
)

const gateflowYAML = `
models:
  providers:
    local:
      kind: openai
      base_url: http://127.0.0.1:1/v1
      models:
        m1: {}
  aliases:
    smart: [local/m1]
`

const summarizeYAML = `
name: summarize
version: "1"
description: Summarize a text.
model: smart
system: You write summaries of at most ${{ input.words }} words.
user: |
  Summarize:
  ${{ input.text }}
temperature: 0.2
max_tokens: 300
variables:
  type: object
  properties:
    text: {type: string, minLength: 1}
    words: {type: integer, minimum: 1, default: 50}
  required: [text]
  additionalProperties: false
`

const extractYAML = `
name: extract
version: "2"
model: local/m1
user: "Extract the city and the population from: ${{ input.text }}"
variables:
  type: object
  properties:
    text: {type: string}
  required: [text]
output:
  type: object
  properties:
    city: {type: string}
    population: {type: integer, minimum: 0}
  required: [city, population]
  additionalProperties: false
`

func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadThroughRegistry(t *testing.T) {
	dir := writeDir(t, map[string]string{
		"gateflow.yaml":          gateflowYAML,
		"prompts/summarize.yaml": summarizeYAML,
		"prompts/extract.yaml":   extractYAML,
	})
	reg, err := sysconfig.New(dir, prompt.Extension())
	if err != nil {
		t.Fatal(err)
	}
	cat := prompt.FromRegistry(reg)
	if cat().Len() != 2 {
		t.Fatalf("%d APIs", cat().Len())
	}
	a, ok := cat().Get("acme", "summarize", "")
	if !ok || a.Model != "smart" || a.JSON() || a.File != "prompts/summarize.yaml" {
		t.Errorf("summarize %+v", a)
	}
	if a, _ := cat().Get("acme", "extract", "2"); a == nil || !a.JSON() {
		t.Errorf("extract %+v", a)
	}

	// A broken file refuses the reload with its path; the previous
	// catalog stays.
	if err := os.WriteFile(filepath.Join(dir, "prompts", "bad.yaml"), []byte("name: bad\nversion: \"1\"\nmodel: nope/x\nuser: hi ${{ input. }}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = reg.Reload()
	var ve *definition.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("reload: %v", err)
	}
	paths := map[string]bool{}
	for _, p := range ve.Problems {
		paths[p.Path] = true
	}
	if !paths["prompt-apis: prompts/bad.yaml: model"] || !paths["prompt-apis: prompts/bad.yaml: user"] {
		t.Errorf("problems %v", ve.Problems)
	}
	if cat().Len() != 2 {
		t.Errorf("catalog changed after a failed reload")
	}
	// Fixed: the reload applies.
	if err := os.WriteFile(filepath.Join(dir, "prompts", "bad.yaml"), []byte("name: bad\nversion: 1\nmodel: smart\nuser: hi ${{ input.x }}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := reg.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, ok := cat().Get("acme", "bad", "1"); !ok {
		t.Errorf("reload did not apply")
	}
}

func TestParseProblems(t *testing.T) {
	models := modelSet{"smart": true}
	cases := []struct {
		name, yaml, path, msg string
	}{
		{"unknown field", "name: a\nversion: \"1\"\nmodel: smart\nuser: hi\nprompt: x\n", "prompt", "unknown field"},
		{"wrong type", "name: a\nversion: \"1\"\nmodel: smart\nuser: hi\nmax_tokens: many\n", "max_tokens", "integer"},
		{"missing user", "name: a\nversion: \"1\"\nmodel: smart\n", "user", "required"},
		{"bad name", "name: a b\nversion: \"1\"\nmodel: smart\nuser: hi\n", "name", "must match"},
		{"unknown model", "name: a\nversion: \"1\"\nmodel: gpt-9\nuser: hi\n", "model", "unknown model"},
		{"template syntax", "name: a\nversion: \"1\"\nmodel: smart\nuser: \"hi ${{ input.a + }}\"\n", "user", "expression"},
		{"template steps", "name: a\nversion: \"1\"\nmodel: smart\nsystem: \"${{ steps.x.output }}\"\nuser: hi\n", "system", "only use input"},
		{"bad schema", "name: a\nversion: \"1\"\nmodel: smart\nuser: hi\nvariables: {type: 7}\n", "variables", "invalid JSON Schema"},
		{"array variables", "name: a\nversion: \"1\"\nmodel: smart\nuser: hi\nvariables: {type: array}\n", "variables", "object schema"},
		{"external ref", "name: a\nversion: \"1\"\nmodel: smart\nuser: hi\noutput: {$ref: \"http://example.com/s.json\"}\n", "output", "not allowed"},
		{"text with output", "name: a\nversion: \"1\"\nmodel: smart\nuser: hi\nresponse_format: text\noutput: {type: object}\n", "response_format", "json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := prompt.Parse([]byte(tc.yaml), models)
			var ve *definition.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v", err)
			}
			for _, p := range ve.Problems {
				if p.Path == tc.path && strings.Contains(p.Message, tc.msg) {
					return
				}
			}
			t.Errorf("problems %v, want %s: ...%s...", ve.Problems, tc.path, tc.msg)
		})
	}
}

type modelSet map[string]bool

func (m modelSet) HasModel(name string) bool { return m[name] }
