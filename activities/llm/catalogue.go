package llm

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// builtinCatalogue is catalogue.json: the figures of the models Gateflow's
// providers serve, each with its source and date. JSON (one entry per line)
// rather than YAML: it parses in a few milliseconds where the YAML took
// two hundred, and every process reads it at start.
//
//go:embed catalogue.json
var builtinCatalogue []byte

// Catalogue modes.
const (
	ModeChat      = "chat"
	ModeEmbedding = "embedding"
)

// CatalogueEntry describes a model in the catalogue: limits, prices in US
// dollars per million tokens, capabilities, and where the figures come
// from. Unset fields (nil) of an operator's entry keep the built-in value.
type CatalogueEntry struct {
	// Mode is "chat" (default) or "embedding".
	Mode               string   `yaml:"mode,omitempty" json:"mode,omitempty"`
	ContextTokens      *int     `yaml:"context_tokens,omitempty" json:"context_tokens,omitempty"`
	MaxOutputTokens    *int     `yaml:"max_output_tokens,omitempty" json:"max_output_tokens,omitempty"`
	Dimensions         *int     `yaml:"dimensions,omitempty" json:"dimensions,omitempty"`
	InputPerMTok       *float64 `yaml:"input_per_mtok,omitempty" json:"input_per_mtok,omitempty"`
	OutputPerMTok      *float64 `yaml:"output_per_mtok,omitempty" json:"output_per_mtok,omitempty"`
	CachedInputPerMTok *float64 `yaml:"cached_input_per_mtok,omitempty" json:"cached_input_per_mtok,omitempty"`
	// Capabilities: tool calls, JSON output (JSON mode or schemas), image
	// input.
	Tools  *bool `yaml:"tools,omitempty" json:"tools,omitempty"`
	JSON   *bool `yaml:"json,omitempty" json:"json,omitempty"`
	Vision *bool `yaml:"vision,omitempty" json:"vision,omitempty"`
	// Source is the URL the figures were read from, AsOf the date
	// (YYYY-MM-DD) of that source: the figures were current then.
	Source string `yaml:"source,omitempty" json:"source,omitempty"`
	AsOf   string `yaml:"as_of,omitempty" json:"as_of,omitempty"`
}

// merge returns e with the fields set in o replacing its own.
func (e CatalogueEntry) merge(o CatalogueEntry) CatalogueEntry {
	if o.Mode != "" {
		e.Mode = o.Mode
	}
	setPtr(&e.ContextTokens, o.ContextTokens)
	setPtr(&e.MaxOutputTokens, o.MaxOutputTokens)
	setPtr(&e.Dimensions, o.Dimensions)
	setPtr(&e.InputPerMTok, o.InputPerMTok)
	setPtr(&e.OutputPerMTok, o.OutputPerMTok)
	setPtr(&e.CachedInputPerMTok, o.CachedInputPerMTok)
	setPtr(&e.Tools, o.Tools)
	setPtr(&e.JSON, o.JSON)
	setPtr(&e.Vision, o.Vision)
	if o.Source != "" {
		e.Source = o.Source
	}
	if o.AsOf != "" {
		e.AsOf = o.AsOf
	}
	return e
}

func setPtr[T any](dst **T, v *T) {
	if v != nil {
		*dst = v
	}
}

// problems lists what is wrong with an entry.
func (e CatalogueEntry) problems() []string {
	var out []string
	if e.Mode != "" && e.Mode != ModeChat && e.Mode != ModeEmbedding {
		out = append(out, fmt.Sprintf("mode %q is not chat or embedding", e.Mode))
	}
	for name, v := range map[string]*int{"context_tokens": e.ContextTokens, "max_output_tokens": e.MaxOutputTokens, "dimensions": e.Dimensions} {
		if v != nil && *v < 0 {
			out = append(out, name+" must not be negative")
		}
	}
	for name, v := range map[string]*float64{"input_per_mtok": e.InputPerMTok, "output_per_mtok": e.OutputPerMTok, "cached_input_per_mtok": e.CachedInputPerMTok} {
		if v != nil && *v < 0 {
			out = append(out, name+" must not be negative")
		}
	}
	if e.AsOf != "" {
		if _, err := time.Parse(time.DateOnly, e.AsOf); err != nil {
			out = append(out, fmt.Sprintf("as_of %q is not a date (YYYY-MM-DD)", e.AsOf))
		}
	}
	sort.Strings(out)
	return out
}

// Catalogue is the model catalogue: the built-in entries with an
// operator's overrides applied (merged on lookup: the built-in map is
// shared, never copied). It is read-only once built.
type Catalogue struct {
	base      map[string]CatalogueEntry
	overrides map[string]CatalogueEntry
}

var (
	builtinOnce sync.Once
	builtinCat  map[string]CatalogueEntry
	builtinErr  error
)

// loadBuiltin parses catalogue.json once per process.
func loadBuiltin() (map[string]CatalogueEntry, error) {
	builtinOnce.Do(func() {
		var doc struct {
			Models map[string]CatalogueEntry `json:"models"`
		}
		if err := json.Unmarshal(builtinCatalogue, &doc); err != nil {
			builtinErr = fmt.Errorf("built-in model catalogue: %w", err)
			return
		}
		builtinCat = doc.Models
	})
	return builtinCat, builtinErr
}

// BuiltinCatalogue returns the catalogue shipped with this release.
func BuiltinCatalogue() (*Catalogue, error) {
	return NewCatalogue(nil)
}

// NewCatalogue returns the built-in catalogue with overrides applied:
// fields set in an override replace the built-in ones, unknown keys add
// models.
func NewCatalogue(overrides map[string]CatalogueEntry) (*Catalogue, error) {
	base, err := loadBuiltin()
	if err != nil {
		return nil, err
	}
	return &Catalogue{base: base, overrides: overrides}, nil
}

// Lookup returns the entry named "<catalogue>/<model>".
func (c *Catalogue) Lookup(key string) (CatalogueEntry, bool) {
	if c == nil {
		return CatalogueEntry{}, false
	}
	e, ok := c.base[key]
	if o, over := c.overrides[key]; over {
		return e.merge(o), true
	}
	return e, ok
}

// Keys lists the entries, sorted.
func (c *Catalogue) Keys() []string {
	keys := sortedKeys(c.base)
	for k := range c.overrides {
		if _, ok := c.base[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// Len is the number of entries.
func (c *Catalogue) Len() int { return len(c.Keys()) }

// ModelInfo is what the gateway knows of a routable model: its effective
// figures (configuration over catalogue) and capabilities, for
// GET /v1/models.
type ModelInfo struct {
	// ID is the alias or "provider/model".
	ID string `json:"id"`
	// Provider is the provider's name ("" for an alias).
	Provider string `json:"provider,omitempty"`
	// Targets are an alias's "provider/model" targets and fallbacks.
	Targets  []string `json:"targets,omitempty"`
	Strategy string   `json:"strategy,omitempty"`
	// Mode is "chat" or "embedding".
	Mode               string  `json:"mode,omitempty"`
	ContextTokens      int     `json:"context_window,omitempty"`
	MaxOutputTokens    int     `json:"max_output_tokens,omitempty"`
	Dimensions         int     `json:"dimensions,omitempty"`
	InputPerMTok       float64 `json:"input_per_mtok,omitempty"`
	OutputPerMTok      float64 `json:"output_per_mtok,omitempty"`
	CachedInputPerMTok float64 `json:"cached_input_per_mtok,omitempty"`
	// Capabilities, when known: "tools", "json", "vision".
	Capabilities []string `json:"capabilities,omitempty"`
	// Catalogue is the catalogue entry the figures come from, with its
	// source and date.
	Catalogue string `json:"catalogue,omitempty"`
	Source    string `json:"source,omitempty"`
	AsOf      string `json:"as_of,omitempty"`
}

// capabilities lists the capabilities an entry claims.
func (e CatalogueEntry) capabilities() []string {
	var out []string
	for _, c := range []struct {
		name string
		v    *bool
	}{{"tools", e.Tools}, {"json", e.JSON}, {"vision", e.Vision}} {
		if c.v != nil && *c.v {
			out = append(out, c.name)
		}
	}
	return out
}

// catalogueKeyOf is the catalogue key of a provider's model: the model's
// explicit catalogue, else "<provider catalogue>/<upstream name>", "" when
// the provider has no catalogue (a local server).
func catalogueKeyOf(provCatalogue string, m Model, upstream string) string {
	if m.Catalogue != "" {
		return m.Catalogue
	}
	if provCatalogue == "" {
		return ""
	}
	return provCatalogue + "/" + strings.TrimPrefix(upstream, "models/")
}
