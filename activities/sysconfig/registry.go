package sysconfig

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/activities/llm"
	"github.com/gateflow/gateflow/workflows/definition"
)

// Files and directories of a config directory.
const (
	ConfigFile     = "gateflow.yaml"
	DefinitionsDir = "definitions"
	// PromptsDir is read by the prompts Extension (owned by the models
	// package), not by Load itself.
	PromptsDir = "prompts"
)

// Extension loads one more part of the config directory into every
// snapshot (e.g. prompts/*.yaml). Load calls it after gateflow.yaml and the
// definitions are loaded and valid, with the snapshot being built (its
// catalog is usable); an error fails the load like any other config error.
type Extension struct {
	Name string
	Load func(dir string, snap *Snapshot) (any, error)
}

// Snapshot is one loaded, validated configuration. It never changes; a
// reload builds a new one.
type Snapshot struct {
	dir      string
	loadedAt time.Time
	cfg      Config
	defs     map[string]map[string]*definition.Definition // name -> version
	files    map[string]string                            // name@version -> file
	ext      map[string]any
	// defaultTenant applies to tenants not in cfg.Tenants.
	defaultTenant Tenant
}

// Load reads and validates a config directory. Every problem (in
// gateflow.yaml, in any definition, duplicate name@version across files, in
// an extension) is reported in one *definition.ValidationError whose paths
// start with the file, e.g. "definitions/order.yaml: steps[0].id".
func Load(dir string, exts ...Extension) (*Snapshot, error) {
	ve := &definition.ValidationError{Subject: "config directory " + dir}
	add := func(file string, ps ...definition.Problem) {
		for _, p := range ps {
			path := file
			if p.Path != "" {
				path += ": " + p.Path
			}
			ve.Problems = append(ve.Problems, definition.Problem{Path: path, Message: p.Message})
		}
	}
	s := &Snapshot{
		dir:      dir,
		loadedAt: time.Now(),
		defs:     map[string]map[string]*definition.Definition{},
		files:    map[string]string{},
		ext:      map[string]any{},
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("config directory: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("config directory %s is not a directory", dir)
	}

	data, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		// No gateflow.yaml: an empty config (definitions only).
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", ConfigFile, err)
	default:
		cfg, ps := decodeConfig(data)
		if len(ps) == 0 {
			ps = cfg.validate()
		}
		add(ConfigFile, ps...)
		s.cfg = cfg
	}
	s.defaultTenant = DefaultTenant("")
	if t, ok := s.cfg.Tenants["*"]; ok {
		s.defaultTenant = t
	}

	// With a broken gateflow.yaml the catalog is unknown: check definitions
	// without it rather than report every name as missing.
	var cat definition.Catalog = s
	if len(ve.Problems) > 0 {
		cat = nil
	}
	files, err := definitionFiles(dir)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		rel := filepath.ToSlash(filepath.Join(DefinitionsDir, filepath.Base(f)))
		data, err := os.ReadFile(f)
		if err != nil {
			add(rel, definition.Problem{Message: err.Error()})
			continue
		}
		def, err := definition.Load(data, cat)
		if err != nil {
			var dve *definition.ValidationError
			if errors.As(err, &dve) {
				add(rel, dve.Problems...)
			} else {
				add(rel, definition.Problem{Message: err.Error()})
			}
			continue
		}
		ref := def.Ref()
		if first, dup := s.files[ref]; dup {
			add(rel, definition.Problem{Message: fmt.Sprintf("%s is also defined in %s", ref, first)})
			continue
		}
		s.files[ref] = rel
		if s.defs[def.Name] == nil {
			s.defs[def.Name] = map[string]*definition.Definition{}
		}
		s.defs[def.Name][def.Version] = def
	}

	if len(ve.Problems) == 0 {
		for _, e := range exts {
			v, err := e.Load(dir, s)
			if err != nil {
				var dve *definition.ValidationError
				if errors.As(err, &dve) {
					add(e.Name, dve.Problems...)
				} else {
					add(e.Name, definition.Problem{Message: err.Error()})
				}
				continue
			}
			s.ext[e.Name] = v
		}
	}
	if len(ve.Problems) > 0 {
		sort.SliceStable(ve.Problems, func(i, j int) bool { return ve.Problems[i].Path < ve.Problems[j].Path })
		return nil, ve
	}
	return s, nil
}

func definitionFiles(dir string) ([]string, error) {
	var files []string
	for _, pat := range []string{"*.yaml", "*.yml", "*.json"} {
		m, err := filepath.Glob(filepath.Join(dir, DefinitionsDir, pat))
		if err != nil {
			return nil, err
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	return files, nil
}

// Dir is the directory the snapshot was loaded from.
func (s *Snapshot) Dir() string { return s.dir }

// LoadedAt is when the snapshot was loaded.
func (s *Snapshot) LoadedAt() time.Time { return s.loadedAt }

// Config returns the decoded gateflow.yaml. Callers must not modify it.
func (s *Snapshot) Config() Config { return s.cfg }

// HasService implements definition.Catalog.
func (s *Snapshot) HasService(name string) bool { _, ok := s.cfg.Services[name]; return ok }

// HasModel implements definition.Catalog: an alias or "provider/model".
func (s *Snapshot) HasModel(name string) bool { return s.cfg.Models.Has(name) }

// HasMCPServer implements definition.Catalog.
func (s *Snapshot) HasMCPServer(name string) bool { _, ok := s.cfg.MCPServers[name]; return ok }

// Service returns a registered service.
func (s *Snapshot) Service(name string) (Service, bool) {
	svc, ok := s.cfg.Services[name]
	return svc, ok
}

// Services lists the registered services, sorted by name.
func (s *Snapshot) Services() []Service {
	out := make([]Service, 0, len(s.cfg.Services))
	for _, k := range sortedKeys(s.cfg.Services) {
		out = append(out, s.cfg.Services[k])
	}
	return out
}

// MCPServer returns a registered MCP server.
func (s *Snapshot) MCPServer(name string) (MCPServer, bool) {
	m, ok := s.cfg.MCPServers[name]
	return m, ok
}

// Models returns the model registry configuration.
func (s *Snapshot) Models() llm.Config { return s.cfg.Models }

// Tenant returns the tenant's configuration; a tenant missing from
// gateflow.yaml gets the "*" entry or DefaultTenant.
func (s *Snapshot) Tenant(name string) Tenant {
	if t, ok := s.cfg.Tenants[name]; ok {
		return t
	}
	t := s.defaultTenant
	t.Name = name
	return t
}

// Definition returns a definition of the config directory; version ""
// means the latest (CompareVersions).
func (s *Snapshot) Definition(name, version string) (*definition.Definition, bool) {
	versions := s.defs[name]
	if version == "" {
		version = latestKey(versions)
	}
	d, ok := versions[version]
	return d, ok
}

// Definitions lists the definitions of the config directory, sorted by
// name then version (oldest first).
func (s *Snapshot) Definitions() []*definition.Definition {
	var out []*definition.Definition
	for _, name := range sortedKeys(s.defs) {
		vs := make([]string, 0, len(s.defs[name]))
		for v := range s.defs[name] {
			vs = append(vs, v)
		}
		sort.Slice(vs, func(i, j int) bool { return definition.CompareVersions(vs[i], vs[j]) < 0 })
		for _, v := range vs {
			out = append(out, s.defs[name][v])
		}
	}
	return out
}

// DefinitionFile returns the file (relative to the directory) that defines
// name@version.
func (s *Snapshot) DefinitionFile(name, version string) string { return s.files[name+"@"+version] }

// Extension returns what the named Extension loaded.
func (s *Snapshot) Extension(name string) any { return s.ext[name] }

func latestKey[V any](m map[string]V) string {
	best := ""
	for v := range m {
		if best == "" || definition.CompareVersions(v, best) > 0 {
			best = v
		}
	}
	return best
}

// Registry holds the current Snapshot. Readers take Current() once per
// operation, so a reload never changes what one operation sees.
type Registry struct {
	dir  string
	exts []Extension
	cur  atomic.Pointer[Snapshot]
	mu   sync.Mutex // serializes reloads
}

// New loads dir and returns a Registry holding it.
func New(dir string, exts ...Extension) (*Registry, error) {
	s, err := Load(dir, exts...)
	if err != nil {
		return nil, err
	}
	r := &Registry{dir: dir, exts: exts}
	r.cur.Store(s)
	return r, nil
}

// NewStatic returns a Registry holding a snapshot built from cfg and defs,
// for tests and embedded use; Reload re-reads nothing and fails.
func NewStatic(cfg Config, defs ...*definition.Definition) (*Registry, error) {
	s := &Snapshot{loadedAt: time.Now(), cfg: cfg, defs: map[string]map[string]*definition.Definition{}, files: map[string]string{}, ext: map[string]any{}}
	if ps := s.cfg.validate(); len(ps) > 0 {
		return nil, &definition.ValidationError{Subject: "config", Problems: ps}
	}
	s.defaultTenant = DefaultTenant("")
	if t, ok := s.cfg.Tenants["*"]; ok {
		s.defaultTenant = t
	}
	for _, d := range defs {
		if err := d.Validate(s); err != nil {
			return nil, err
		}
		if s.defs[d.Name] == nil {
			s.defs[d.Name] = map[string]*definition.Definition{}
		}
		s.defs[d.Name][d.Version] = d
	}
	r := &Registry{}
	r.cur.Store(s)
	return r, nil
}

// Current returns the current snapshot.
func (r *Registry) Current() *Snapshot { return r.cur.Load() }

// Reload loads the directory again. On success the new snapshot replaces
// the current one; on error the current one stays and the error says why.
func (r *Registry) Reload() error {
	if r.dir == "" {
		return errors.New("registry: static registry cannot reload")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s, err := Load(r.dir, r.exts...)
	if err != nil {
		return err
	}
	r.cur.Store(s)
	return nil
}

// WatchSIGHUP is Watch without polling: reloads on SIGHUP only.
func (r *Registry) WatchSIGHUP(ctx context.Context, log *slog.Logger) { r.Watch(ctx, log, 0) }

// HasService implements definition.Catalog on the current snapshot.
func (r *Registry) HasService(name string) bool { return r.Current().HasService(name) }

// HasModel implements definition.Catalog on the current snapshot.
func (r *Registry) HasModel(name string) bool { return r.Current().HasModel(name) }

// HasMCPServer implements definition.Catalog on the current snapshot.
func (r *Registry) HasMCPServer(name string) bool { return r.Current().HasMCPServer(name) }

// AllowInline reports whether the tenant may submit inline definitions.
func (r *Registry) AllowInline(tenant string) bool {
	return r.Current().Tenant(tenant).AllowInlineDefinitions
}

// BudgetFor implements llm.LimitSource: the tenant's daily and monthly
// token budgets (0 = unlimited).
func (r *Registry) BudgetFor(tenant string) (daily, monthly int64) {
	b := r.Current().Tenant(tenant).TokenBudget
	return b.Daily, b.Monthly
}

// Resolve implements activities.Services: the endpoint of a registered
// service, read at call time so that a reload applies to the next attempt.
//
// A service the tenant may not use is unknown to it (see access.go): the
// check runs again at every attempt, so a withdrawn grant stops the next
// call of a running orchestration.
func (r *Registry) Resolve(tenant, name string) (activities.Endpoint, error) {
	snap := r.Current()
	svc, ok := snap.Service(name)
	if !ok || !snap.MayUseService(tenant, name) {
		return activities.Endpoint{}, fmt.Errorf("%w %q", activities.ErrUnknownService, name)
	}
	return activities.Endpoint{
		Name:    svc.Name,
		BaseURL: svc.BaseURL,
		Headers: svc.Headers,
		Timeout: svc.Timeout.Std(),
		// 0 means the activity's default cap.
		MaxResponseBytes: svc.MaxResponseBytes,
	}, nil
}

// MCPServer implements activities.MCPServers: the endpoint of a registered
// MCP server the tenant may use, read at call time like Resolve.
func (r *Registry) MCPServer(tenant, name string) (activities.MCPEndpoint, error) {
	snap := r.Current()
	m, ok := snap.MCPServer(name)
	if !ok || !snap.MayUseMCPServer(tenant, name) {
		return activities.MCPEndpoint{}, fmt.Errorf("%w: %q", activities.ErrUnknownMCPServer, name)
	}
	return activities.MCPEndpoint{Name: name, URL: m.URL, Headers: m.Headers, Timeout: m.Timeout.Std()}, nil
}

// ServiceDefaults returns a service's default timeout and retry policy, in
// the shape of workflows.ServiceDefaults (without importing workflows).
func (r *Registry) ServiceDefaults(name string) (definition.Duration, *definition.RetryPolicy, bool) {
	svc, ok := r.Current().Service(name)
	if !ok {
		return "", nil, false
	}
	return svc.Timeout, svc.Retry, true
}

// AllowURL implements activities.Services: nil when the tenant may call
// rawURL directly. The host must match the tenant's allowed_hosts; loopback,
// link-local and unspecified addresses need allow_loopback (the dev tenant).
// The activity should also refuse a dial to a non-public address that a
// listed name resolves to, unless the address itself is allowed.
func (r *Registry) AllowURL(tenant, rawURL string) error {
	return r.Current().Tenant(tenant).AllowURL(rawURL)
}

// AllowURL reports whether the tenant may call rawURL (see
// Registry.AllowURL).
func (t Tenant) AllowURL(rawURL string) error {
	if !t.AllowURLs {
		return fmt.Errorf("%w: tenant %q may not call URLs, only registered services", activities.ErrURLNotAllowed, t.Name)
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: %q is not an absolute http(s) URL", activities.ErrURLNotAllowed, rawURL)
	}
	if u.User != nil {
		return fmt.Errorf("%w: URLs must not hold credentials", activities.ErrURLNotAllowed)
	}
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if isLoopbackHost(host) {
		if t.AllowLoopback {
			return nil
		}
		return fmt.Errorf("%w: loopback host %s is not allowed for tenant %q", activities.ErrURLNotAllowed, host, t.Name)
	}
	if ip := net.ParseIP(host); ip != nil && (ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified() || ip.IsMulticast()) {
		return fmt.Errorf("%w: address %s is not allowed", activities.ErrURLNotAllowed, host)
	}
	for _, p := range t.AllowedHosts {
		if hostMatches(strings.ToLower(p), host, port) {
			return nil
		}
	}
	return fmt.Errorf("%w: host %s is not in the allowed hosts of tenant %q", activities.ErrURLNotAllowed, u.Host, t.Name)
}

func isLoopbackHost(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func hostMatches(pattern, host, port string) bool {
	ph, pp := pattern, ""
	if h, p, err := net.SplitHostPort(pattern); err == nil {
		ph, pp = h, p
	}
	ph = strings.Trim(ph, "[]")
	if pp != "" && pp != port {
		return false
	}
	if rest, ok := strings.CutPrefix(ph, "*."); ok {
		return strings.HasSuffix(host, "."+rest)
	}
	return host == ph
}
