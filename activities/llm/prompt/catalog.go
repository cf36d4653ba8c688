// Package prompt serves prompt APIs: a model (or alias), system and user
// templates, a JSON Schema of the variables and an optional JSON Schema of
// the output, published under a name and version. POST /v1/apis/{name}
// with the variables renders the templates, calls the model gateway, and
// returns the answer (parsed and validated against the output schema when
// there is one).
//
// Prompt APIs are files of the config directory, prompts/*.yaml, loaded
// with the rest of it: Extension plugs the loader into the registry, so a
// SIGHUP reload re-reads them and a bad prompt file refuses the whole
// reload with the path of the problem, like a bad definition.
//
// Templates use the ${{ expr }} syntax of orchestration definitions (the
// same expression language, sandbox and budgets), with the variables as
// `input`: one language to learn, checked when the file is loaded, bounded
// when it runs, and no Go text/template surprises (method calls, `{{` in
// JSON examples inside prompts).
package prompt

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/workflows/definition"
)

// ExtensionName is the registry extension that loads prompt APIs (and the
// prefix of its problems in a failed load).
const ExtensionName = "prompt-apis"

// MaxFileBytes bounds one prompt file.
const MaxFileBytes = 1 << 20

// NamePattern is the format of prompt API names: usable in a URL path and,
// prefixed, as an MCP tool name.
var NamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// API is one version of a prompt API, validated and compiled.
type API struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	Description string `json:"description,omitempty"`
	// Model is an alias or "provider/model" of the model registry.
	Model string `json:"model"`
	// System and User are templates: text with ${{ expr }} over `input`
	// (the variables).
	System      string   `json:"system,omitempty"`
	User        string   `json:"user"`
	Temperature *float64 `json:"temperature,omitempty"`
	MaxTokens   int      `json:"max_tokens,omitempty"`
	// ResponseFormat is "text" or "json"; "json" when Output is set.
	ResponseFormat string `json:"response_format,omitempty"`
	// Variables is the JSON Schema (2020-12) of the variables; always an
	// object schema.
	Variables json.RawMessage `json:"variables"`
	// Output, when set, is the JSON Schema the answer must satisfy.
	Output json.RawMessage `json:"output,omitempty"`
	// Tenants, when set, are the only tenants that see the API.
	Tenants []string `json:"tenants,omitempty"`
	// Timeout bounds one run (model calls and the output retry); 0 means
	// the runner's default.
	Timeout definition.Duration `json:"timeout,omitempty"`
	// File is where the API was loaded from (relative to the config dir).
	File string `json:"-"`

	vars     *jsonschema.Schema
	out      *jsonschema.Schema
	defaults map[string]json.RawMessage
}

// Ref returns "name@version".
func (a *API) Ref() string { return a.Name + "@" + a.Version }

// JSON reports whether the answer is JSON.
func (a *API) JSON() bool { return a.ResponseFormat == "json" }

// VisibleTo reports whether tenant may see and call the API.
func (a *API) VisibleTo(tenant string) bool {
	return len(a.Tenants) == 0 || slices.Contains(a.Tenants, tenant)
}

// ModelCatalog answers whether a model name is routable; the registry
// snapshot implements it.
type ModelCatalog interface {
	HasModel(name string) bool
}

// compile checks the API and prepares its schemas; problems are located by
// field.
func (a *API) compile(models ModelCatalog) []definition.Problem {
	var ps []definition.Problem
	add := func(path, format string, args ...any) {
		ps = append(ps, definition.Problem{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	switch {
	case a.Name == "":
		add("name", "is required")
	case !NamePattern.MatchString(a.Name):
		add("name", "must match %s", NamePattern)
	}
	switch {
	case a.Version == "":
		add("version", "is required")
	case !definition.VersionPattern.MatchString(a.Version):
		add("version", "must match %s", definition.VersionPattern)
	}
	switch {
	case a.Model == "":
		add("model", "is required")
	case models != nil && !models.HasModel(a.Model):
		add("model", "unknown model %q (not an alias nor a provider/model of the models section)", a.Model)
	}
	if strings.TrimSpace(a.User) == "" {
		add("user", "is required (the user message template)")
	}
	for field, tpl := range map[string]string{"system": a.System, "user": a.User} {
		if err := checkTemplate(tpl); err != nil {
			add(field, "%v", err)
		}
	}
	if a.Temperature != nil && (*a.Temperature < 0 || *a.Temperature > 2) {
		add("temperature", "must be between 0 and 2")
	}
	if a.MaxTokens < 0 {
		add("max_tokens", "must not be negative")
	}
	switch a.ResponseFormat {
	case "":
		a.ResponseFormat = "text"
		if len(a.Output) > 0 {
			a.ResponseFormat = "json"
		}
	case "text":
		if len(a.Output) > 0 {
			add("response_format", "must be json (or omitted) when output is set")
		}
	case "json":
	default:
		add("response_format", `must be "text" or "json"`)
	}
	if len(a.Variables) == 0 {
		a.Variables = json.RawMessage(`{"type":"object"}`)
	}
	if s, err := compileSchema(a.Variables); err != nil {
		add("variables", "%v", err)
	} else {
		a.vars = s
		var top struct {
			Type       any                                          `json:"type"`
			Properties map[string]struct{ Default json.RawMessage } `json:"properties"`
		}
		_ = json.Unmarshal(a.Variables, &top)
		if top.Type != "object" {
			add("variables", `must be an object schema (type: object): the variables are named`)
		}
		for name, p := range top.Properties {
			if len(p.Default) > 0 {
				if a.defaults == nil {
					a.defaults = map[string]json.RawMessage{}
				}
				a.defaults[name] = p.Default
			}
		}
	}
	if len(a.Output) > 0 {
		if s, err := compileSchema(a.Output); err != nil {
			add("output", "%v", err)
		} else {
			a.out = s
		}
	}
	for i, t := range a.Tenants {
		if t == "" {
			add(fmt.Sprintf("tenants[%d]", i), "must not be empty")
		}
	}
	if a.Timeout != "" {
		if d, err := time.ParseDuration(string(a.Timeout)); err != nil || d <= 0 {
			add("timeout", "must be a positive Go duration such as 2m")
		}
	}
	return ps
}

// checkTemplate compiles a template's expressions and refuses names a
// prompt API does not have (only `input` exists).
func checkTemplate(tpl string) error {
	info, err := definition.CompileTemplate(tpl)
	if err != nil {
		return err
	}
	if len(info.Steps) > 0 || info.DynamicSteps || len(info.Vars) > 0 || info.UsesItem {
		return errors.New("templates of a prompt API may only use input (the variables)")
	}
	return nil
}

// file is the YAML/JSON form of a prompt API.
type file struct {
	Name           string              `json:"name"`
	Version        string              `json:"version"`
	Description    string              `json:"description"`
	Model          string              `json:"model"`
	System         string              `json:"system"`
	User           string              `json:"user"`
	Temperature    *float64            `json:"temperature"`
	MaxTokens      int                 `json:"max_tokens"`
	ResponseFormat string              `json:"response_format"`
	Variables      json.RawMessage     `json:"variables"`
	Output         json.RawMessage     `json:"output"`
	Tenants        []string            `json:"tenants"`
	Timeout        definition.Duration `json:"timeout"`
}

// Parse reads one prompt API file (YAML or JSON) and checks it: unknown
// fields, types, templates, schemas and, when models is not nil, the
// model. Problems are located by field, e.g. "variables" or "user".
func Parse(data []byte, models ModelCatalog) (*API, error) {
	ve := &definition.ValidationError{Subject: "prompt API"}
	if len(data) > MaxFileBytes {
		ve.Errorf("", "larger than %d bytes", MaxFileBytes)
		return nil, ve
	}
	tree, err := definition.DecodeDocument(data)
	if err != nil {
		ve.Errorf("", "%v", err)
		return nil, ve
	}
	if m, ok := tree.(map[string]any); ok {
		// `version: 1` in YAML is a number; versions are strings.
		if v, ok := m["version"].(float64); ok {
			m["version"], _ = definition.FormatValue(v)
		}
	}
	var f file
	if ps := sysconfig.DecodeTree(tree, &f); len(ps) > 0 {
		ve.Problems = append(ve.Problems, ps...)
		return nil, ve
	}
	a := &API{
		Name: f.Name, Version: f.Version, Description: f.Description, Model: f.Model,
		System: f.System, User: f.User, Temperature: f.Temperature, MaxTokens: f.MaxTokens,
		ResponseFormat: f.ResponseFormat, Variables: f.Variables, Output: f.Output,
		Tenants: f.Tenants, Timeout: f.Timeout,
	}
	ve.Problems = append(ve.Problems, a.compile(models)...)
	if len(ve.Problems) > 0 {
		sort.SliceStable(ve.Problems, func(i, j int) bool { return ve.Problems[i].Path < ve.Problems[j].Path })
		return nil, ve
	}
	return a, nil
}

// Catalog holds the prompt APIs of one configuration. It never changes; a
// reload builds a new one.
type Catalog struct {
	byName map[string][]*API // versions, oldest first
}

// NewCatalog builds a catalog from APIs (tests and embedded use): each is
// checked like a loaded file; models may be nil.
func NewCatalog(models ModelCatalog, apis ...API) (*Catalog, error) {
	ve := &definition.ValidationError{Subject: "prompt APIs"}
	c := &Catalog{byName: map[string][]*API{}}
	for i := range apis {
		a := apis[i]
		for _, p := range a.compile(models) {
			ve.Errorf(a.Ref()+": "+p.Path, "%s", p.Message)
		}
		if err := c.add(&a); err != nil {
			ve.Errorf(a.Ref(), "%v", err)
		}
	}
	if len(ve.Problems) > 0 {
		return nil, ve
	}
	c.sort()
	return c, nil
}

func (c *Catalog) add(a *API) error {
	for _, o := range c.byName[a.Name] {
		if o.Version == a.Version {
			if o.File != "" {
				return fmt.Errorf("%s is also defined in %s", a.Ref(), o.File)
			}
			return fmt.Errorf("%s is defined twice", a.Ref())
		}
	}
	c.byName[a.Name] = append(c.byName[a.Name], a)
	return nil
}

func (c *Catalog) sort() {
	for _, vs := range c.byName {
		sort.Slice(vs, func(i, j int) bool { return definition.CompareVersions(vs[i].Version, vs[j].Version) < 0 })
	}
}

// Load reads the prompt APIs of a config directory (prompts/*.yaml, .yml,
// .json). A missing prompts directory is an empty catalog. Every problem
// of every file is reported in one *definition.ValidationError, located as
// "prompts/<file>: <field>".
func Load(dir string, models ModelCatalog) (*Catalog, error) {
	var files []string
	for _, pat := range []string{"*.yaml", "*.yml", "*.json"} {
		m, err := filepath.Glob(filepath.Join(dir, sysconfig.PromptsDir, pat))
		if err != nil {
			return nil, err
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	ve := &definition.ValidationError{Subject: "prompt APIs"}
	c := &Catalog{byName: map[string][]*API{}}
	for _, f := range files {
		rel := filepath.ToSlash(filepath.Join(sysconfig.PromptsDir, filepath.Base(f)))
		data, err := readFile(f)
		if err != nil {
			ve.Errorf(rel, "%v", err)
			continue
		}
		a, err := Parse(data, models)
		if err != nil {
			var pve *definition.ValidationError
			if errors.As(err, &pve) {
				for _, p := range pve.Problems {
					ve.Errorf(located(rel, p.Path), "%s", p.Message)
				}
			} else {
				ve.Errorf(rel, "%v", err)
			}
			continue
		}
		a.File = rel
		if err := c.add(a); err != nil {
			ve.Errorf(rel, "%v", err)
		}
	}
	if len(ve.Problems) > 0 {
		return nil, ve
	}
	c.sort()
	return c, nil
}

func readFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > MaxFileBytes {
		return nil, fmt.Errorf("larger than %d bytes", MaxFileBytes)
	}
	return os.ReadFile(path)
}

func located(file, path string) string {
	if path == "" {
		return file
	}
	return file + ": " + path
}

// Extension loads prompts/*.yaml into every registry snapshot, checking
// models against the snapshot's model registry: pass it to sysconfig.New
// (and to every process that serves prompt APIs).
func Extension() sysconfig.Extension {
	return sysconfig.Extension{
		Name: ExtensionName,
		Load: func(dir string, snap *sysconfig.Snapshot) (any, error) { return Load(dir, snap) },
	}
}

// FromSnapshot returns the catalog a snapshot loaded with Extension, or an
// empty one.
func FromSnapshot(s *sysconfig.Snapshot) *Catalog {
	if s != nil {
		if c, ok := s.Extension(ExtensionName).(*Catalog); ok && c != nil {
			return c
		}
	}
	return &Catalog{byName: map[string][]*API{}}
}

// FromRegistry returns a function giving the current snapshot's catalog,
// for NewRunner: each call sees the latest successful reload.
func FromRegistry(reg *sysconfig.Registry) func() *Catalog {
	return func() *Catalog { return FromSnapshot(reg.Current()) }
}

// Get returns name@version visible to tenant; version "" means the latest.
func (c *Catalog) Get(tenant, name, version string) (*API, bool) {
	vs := c.byName[name]
	for i := len(vs) - 1; i >= 0; i-- {
		a := vs[i]
		if (version == "" || a.Version == version) && a.VisibleTo(tenant) {
			return a, true
		}
	}
	return nil, false
}

// List returns every version visible to tenant, by name then version;
// tenant "*" lists every API.
func (c *Catalog) List(tenant string) []*API {
	var out []*API
	for _, name := range c.names() {
		for _, a := range c.byName[name] {
			if tenant == "*" || a.VisibleTo(tenant) {
				out = append(out, a)
			}
		}
	}
	return out
}

// Latest returns the latest version of each API visible to tenant, by
// name; tenant "*" means every API, and "" only the APIs open to every
// tenant.
func (c *Catalog) Latest(tenant string) []*API {
	var out []*API
	for _, name := range c.names() {
		vs := c.byName[name]
		for i := len(vs) - 1; i >= 0; i-- {
			a := vs[i]
			if tenant == "*" || (tenant == "" && len(a.Tenants) == 0) || (tenant != "" && a.VisibleTo(tenant)) {
				out = append(out, a)
				break
			}
		}
	}
	return out
}

// Len is the number of API versions.
func (c *Catalog) Len() int {
	n := 0
	for _, vs := range c.byName {
		n += len(vs)
	}
	return n
}

func (c *Catalog) names() []string {
	names := make([]string, 0, len(c.byName))
	for n := range c.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
