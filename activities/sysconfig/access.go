package sysconfig

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gateflow/gateflow/workflows/definition"
)

// This file is who may use what. Every service, MCP server, model and
// config-dir definition of the configuration is reachable by a tenant only
// when the tenant owns it (services and MCP servers have an owner) or lists
// it in its uses; a tenant with no list reaches none of them. Everything a
// tenant may not use is answered exactly like something that does not exist
// ("unknown service"), at validation, at start and again by the activities
// at call time, so that a reload that withdraws a grant applies to the next
// attempt of a running orchestration.

// All, as the only entry of a uses list, grants everything of that kind.
const All = "*"

// Uses lists what a tenant may call besides what it owns. Entries are names
// as definitions write them; "*" grants every one. Models accept aliases,
// "provider/model" and "provider/*" (every model of a provider).
type Uses struct {
	Services    []string `json:"services,omitempty"`
	MCPServers  []string `json:"mcp_servers,omitempty"`
	Models      []string `json:"models,omitempty"`
	Definitions []string `json:"definitions,omitempty"`
}

// usesProblems checks that every entry of a uses list names something the
// configuration has (a typo would otherwise silently grant nothing).
func (c *Config) usesProblems(path string, u Uses) []definition.Problem {
	var ps []definition.Problem
	check := func(field string, list []string, exists func(string) bool, what string) {
		for i, name := range list {
			if name == All || exists(name) {
				continue
			}
			ps = append(ps, definition.Problem{Path: fmt.Sprintf("%s.%s[%d]", path, field, i), Message: fmt.Sprintf("no %s %q in this configuration", what, name)})
		}
	}
	check("services", u.Services, func(n string) bool { _, ok := c.Services[n]; return ok }, "service")
	check("mcp_servers", u.MCPServers, func(n string) bool { _, ok := c.MCPServers[n]; return ok }, "MCP server")
	check("models", u.Models, func(n string) bool {
		if prov, ok := strings.CutSuffix(n, "/*"); ok {
			_, has := c.Models.Providers[prov]
			return has
		}
		return c.Models.Has(n)
	}, "model, alias or provider")
	for i, name := range u.Definitions {
		if name != All && !definition.NamePattern.MatchString(name) {
			ps = append(ps, definition.Problem{Path: fmt.Sprintf("%s.definitions[%d]", path, i), Message: "not a definition name"})
		}
	}
	return ps
}

func listed(list []string, name string) bool {
	return slices.Contains(list, All) || slices.Contains(list, name)
}

// MayUseService reports whether the tenant may call the service: it exists
// and the tenant owns it or lists it.
func (s *Snapshot) MayUseService(tenant, name string) bool {
	svc, ok := s.cfg.Services[name]
	return ok && tenant != "" && (svc.Owner == tenant || listed(s.Tenant(tenant).Uses.Services, name))
}

// MayUseMCPServer reports whether the tenant may call the MCP server.
func (s *Snapshot) MayUseMCPServer(tenant, name string) bool {
	m, ok := s.cfg.MCPServers[name]
	return ok && tenant != "" && (m.Owner == tenant || listed(s.Tenant(tenant).Uses.MCPServers, name))
}

// MayUseModel reports whether the tenant may call the model, an alias or
// "provider/model" as requested (an alias grants its targets through the
// alias only).
func (s *Snapshot) MayUseModel(tenant, name string) bool {
	if tenant == "" || !s.cfg.Models.Has(name) {
		return false
	}
	list := s.Tenant(tenant).Uses.Models
	if listed(list, name) {
		return true
	}
	if prov, _, ok := strings.Cut(name, "/"); ok {
		return slices.Contains(list, prov+"/*")
	}
	return false
}

// MayUseDefinition reports whether the tenant may start the config-dir
// definition name (definitions published through the API belong to their
// tenant and are not governed by this list).
func (s *Snapshot) MayUseDefinition(tenant, name string) bool {
	return tenant != "" && listed(s.Tenant(tenant).Uses.Definitions, name)
}

// ModelsFor lists the models the tenant may call (aliases and
// "provider/model"), sorted.
func (s *Snapshot) ModelsFor(tenant string) []string {
	var out []string
	for _, n := range s.cfg.Models.Names() {
		if s.MayUseModel(tenant, n) {
			out = append(out, n)
		}
	}
	return out
}

// CatalogFor is the catalogue a tenant's definitions are validated against:
// what the tenant may not use is unknown to it.
func (s *Snapshot) CatalogFor(tenant string) definition.Catalog { return tenantCatalog{s, tenant} }

type tenantCatalog struct {
	s      *Snapshot
	tenant string
}

func (c tenantCatalog) HasService(name string) bool   { return c.s.MayUseService(c.tenant, name) }
func (c tenantCatalog) HasModel(name string) bool     { return c.s.MayUseModel(c.tenant, name) }
func (c tenantCatalog) HasMCPServer(name string) bool { return c.s.MayUseMCPServer(c.tenant, name) }

// ValidateFor validates a definition as the tenant may run it, against the
// current snapshot: its services, models and MCP servers must be ones the
// tenant may use, and it must fit the tenant's run limits where they can
// be checked before a run.
func (r *Registry) ValidateFor(tenant string, d *definition.Definition) error {
	s := r.Current()
	return d.ValidateWithin(s.CatalogFor(tenant), s.RunLimits(tenant))
}

// RunLimits are the tenant's run limits: its own, the "*" entry's for
// those it leaves unset, then the defaults.
func (s *Snapshot) RunLimits(tenant string) definition.RunLimits {
	return s.Tenant(tenant).Limits.Or(s.cfg.Tenants["*"].Limits).Or(definition.DefaultRunLimits())
}

// RunLimits are the tenant's run limits on the current snapshot; the
// orchestrator copies them into each orchestration it starts.
func (r *Registry) RunLimits(tenant string) definition.RunLimits {
	return r.Current().RunLimits(tenant)
}

// MayUseModel implements the model gateway's access check on the current
// snapshot.
func (r *Registry) MayUseModel(tenant, name string) bool {
	return r.Current().MayUseModel(tenant, name)
}

// ModelsFor lists the models the tenant may call, on the current snapshot.
func (r *Registry) ModelsFor(tenant string) []string { return r.Current().ModelsFor(tenant) }
