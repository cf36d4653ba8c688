package sysconfig

import (
	"errors"
	"strings"
	"testing"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/activities/llm"
	"github.com/gateflow/gateflow/workflows/definition"
)

// accessConfig: acme owns payments and the tools MCP server and uses the
// echo service, the alias smart and every model of provider cheap; beta
// uses nothing; dev uses everything.
func accessConfig(t *testing.T) *Registry {
	t.Helper()
	reg, err := NewStatic(Config{
		Services: map[string]Service{
			"payments": {BaseURL: "http://127.0.0.1:1", Owner: "acme", Headers: map[string]string{"X-Api-Key": "k"}},
			"echo":     {BaseURL: "http://127.0.0.1:2"},
		},
		MCPServers: map[string]MCPServer{"tools": {URL: "http://127.0.0.1:3/mcp", Owner: "acme"}},
		Models: llm.Config{
			Providers: map[string]llm.Provider{
				"cheap":  {Kind: "openai", BaseURL: "http://127.0.0.1:4/v1", Models: map[string]llm.Model{"a": {}, "b": {}}},
				"costly": {Kind: "openai", BaseURL: "http://127.0.0.1:5/v1", Models: map[string]llm.Model{"big": {}}},
			},
			Aliases: map[string][]string{"smart": {"costly/big"}},
		},
		Tenants: map[string]Tenant{
			"acme": {Uses: Uses{Services: []string{"echo"}, Models: []string{"smart", "cheap/*"}, Definitions: []string{"flow"}}},
			"beta": {},
			"dev":  {Uses: Uses{Services: []string{All}, MCPServers: []string{All}, Models: []string{All}, Definitions: []string{All}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func TestMayUse(t *testing.T) {
	snap := accessConfig(t).Current()
	cases := []struct {
		what, tenant, name string
		may                bool
	}{
		{"service", "acme", "payments", true}, // owned
		{"service", "acme", "echo", true},     // listed
		{"service", "beta", "payments", false},
		{"service", "beta", "echo", false},
		{"service", "dev", "payments", true},
		{"service", "dev", "nope", false},
		{"service", "", "echo", false},
		{"service", "stranger", "echo", false}, // not in gateflow.yaml, no "*" entry
		{"mcp", "acme", "tools", true},
		{"mcp", "beta", "tools", false},
		{"model", "acme", "smart", true},
		{"model", "acme", "costly/big", false}, // the alias grants its target only through the alias
		{"model", "acme", "cheap/a", true},
		{"model", "acme", "cheap/zzz", false},
		{"model", "beta", "smart", false},
		{"model", "dev", "costly/big", true},
		{"definition", "acme", "flow", true},
		{"definition", "acme", "other", false},
		{"definition", "beta", "flow", false},
		{"definition", "dev", "anything", true},
	}
	for _, c := range cases {
		var got bool
		switch c.what {
		case "service":
			got = snap.MayUseService(c.tenant, c.name)
		case "mcp":
			got = snap.MayUseMCPServer(c.tenant, c.name)
		case "model":
			got = snap.MayUseModel(c.tenant, c.name)
		case "definition":
			got = snap.MayUseDefinition(c.tenant, c.name)
		}
		if got != c.may {
			t.Errorf("%s %s may use %s %q: %v, want %v", c.what, c.tenant, c.what, c.name, got, c.may)
		}
	}
	if got := strings.Join(snap.ModelsFor("acme"), ","); got != "cheap/a,cheap/b,smart" {
		t.Errorf("models for acme: %s", got)
	}
	if got := snap.ModelsFor("beta"); len(got) != 0 {
		t.Errorf("models for beta: %v", got)
	}
}

// TestActivitiesRecheck: the registry is what the activities resolve
// through at call time; a service or MCP server the tenant may not use is
// unknown to it, exactly like one that does not exist.
func TestActivitiesRecheck(t *testing.T) {
	reg := accessConfig(t)
	if ep, err := reg.Resolve("acme", "payments"); err != nil || ep.Headers["X-Api-Key"] != "k" {
		t.Errorf("owner: %+v %v", ep, err)
	}
	_, notGranted := reg.Resolve("beta", "payments")
	_, missing := reg.Resolve("beta", "nope")
	if !errors.Is(notGranted, activities.ErrUnknownService) || !errors.Is(missing, activities.ErrUnknownService) {
		t.Fatalf("beta: %v / %v", notGranted, missing)
	}
	if strings.ReplaceAll(notGranted.Error(), "payments", "X") != strings.ReplaceAll(missing.Error(), "nope", "X") {
		t.Errorf("a service not granted reads differently from a missing one: %q vs %q", notGranted, missing)
	}
	if _, err := reg.MCPServer("acme", "tools"); err != nil {
		t.Errorf("owner MCP: %v", err)
	}
	if _, err := reg.MCPServer("beta", "tools"); !errors.Is(err, activities.ErrUnknownMCPServer) {
		t.Errorf("beta MCP: %v", err)
	}
}

// TestValidateForTenant: a definition is validated against what the tenant
// may use, with the path of each step that reaches further.
func TestValidateForTenant(t *testing.T) {
	reg := accessConfig(t)
	def := &definition.Definition{Name: "d", Version: "1", Steps: []definition.Step{
		{ID: "pay", Kind: "http", Service: "payments", Path: "/charge"},
		{ID: "ask", Kind: "model", Model: "smart", Prompt: "hi"},
		{ID: "tool", Kind: "mcp", Server: "tools", Tool: "t"},
	}}
	if err := reg.ValidateFor("acme", def); err != nil {
		t.Fatalf("acme: %v", err)
	}
	got := problemsOf(t, reg.ValidateFor("beta", def))
	want := []string{`steps[0].service: unknown service "payments"`, `steps[1].model: unknown model "smart"`, `steps[2].server: unknown MCP server "tools"`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("beta problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestUsesProblems(t *testing.T) {
	_, err := NewStatic(Config{
		Services: map[string]Service{"echo": {BaseURL: "http://127.0.0.1:2", Owner: "Not A Tenant"}},
		Tenants: map[string]Tenant{"acme": {Uses: Uses{
			Services: []string{"echo", "ehco"}, MCPServers: []string{"tools"}, Models: []string{"nope/*", "smart"}, Definitions: []string{"bad name"},
		}}},
	})
	got := strings.Join(problemsOf(t, err), "\n")
	for _, want := range []string{
		`services.echo.owner: must be a tenant name`,
		`tenants.acme.uses.services[1]: no service "ehco" in this configuration`,
		`tenants.acme.uses.mcp_servers[0]: no MCP server "tools" in this configuration`,
		`tenants.acme.uses.models[0]: no model, alias or provider "nope/*" in this configuration`,
		`tenants.acme.uses.models[1]: no model, alias or provider "smart" in this configuration`,
		`tenants.acme.uses.definitions[0]: not a definition name`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
}
