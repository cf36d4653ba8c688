package sysconfig

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/workflows/definition"
)

const examplesDir = "../../deploy/examples"

// copyDir copies the example config into a temporary directory.
func copyExamples(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, DefinitionsDir), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{ConfigFile} {
		copyFile(t, filepath.Join(examplesDir, rel), filepath.Join(dir, rel))
	}
	files, _ := filepath.Glob(filepath.Join(examplesDir, DefinitionsDir, "*"))
	for _, f := range files {
		copyFile(t, f, filepath.Join(dir, DefinitionsDir, filepath.Base(f)))
	}
	return dir
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func problemsOf(t *testing.T, err error) []string {
	t.Helper()
	var ve *definition.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %T (%v), want *definition.ValidationError", err, err)
	}
	var out []string
	for _, p := range ve.Problems {
		out = append(out, p.String())
	}
	return out
}

func TestLoadExamples(t *testing.T) {
	s, err := Load(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	defs := s.Definitions()
	if len(defs) < 3 {
		t.Fatalf("%d definitions", len(defs))
	}
	if !s.HasService("payments") || s.HasService("nope") || !s.HasModel("default") || !s.HasModel("local/llama3.2") || !s.HasMCPServer("catalog") {
		t.Fatal("catalog")
	}
	svc, ok := s.Service("payments")
	if !ok || svc.Name != "payments" || svc.Headers["Authorization"] != "Bearer ${env:PAYMENTS_TOKEN}" || svc.Timeout != "10s" {
		t.Fatalf("service: %+v", svc)
	}
	if d, ok := s.Definition("order-fulfilment", ""); !ok || d.Version != "1" {
		t.Fatal("latest definition")
	}
	if s.DefinitionFile("hello", "1") != "definitions/hello.json" {
		t.Fatal(s.DefinitionFile("hello", "1"))
	}
	dev := s.Tenant("dev")
	if dev.Name != "dev" || !dev.AllowInlineDefinitions || !dev.AllowLoopback || dev.TokenBudget.Daily != 2000000 {
		t.Fatalf("dev tenant: %+v", dev)
	}
	other := s.Tenant("acme")
	if other.Name != "acme" || other.AllowInlineDefinitions || other.RateLimit.RPS != 50 {
		t.Fatalf("default tenant: %+v", other)
	}
}

func TestDefaultTenantWithoutStar(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, ConfigFile), "services: {}\n")
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Tenant("x"); got.RateLimit != (RateLimit{RPS: 50, Burst: 100}) || got.MaxPublished() != DefaultMaxPublished || got.AllowURLs {
		t.Fatalf("%+v", got)
	}
}

func TestLoadProblems(t *testing.T) {
	dir := copyExamples(t)
	writeFile(t, filepath.Join(dir, ConfigFile), `
services:
  good: {base_url: "http://127.0.0.1:1"}
  bad:
    base_url: ftp://x
    basse: 1
tenants:
  t1: {allowed_hosts: ["bad host"], rate_limit: {rps: -1}}
mcp_servers:
  m: {url: "http://x/mcp", headers: {X: "${vault:abc}"}}
`)
	_, err := Load(dir)
	got := problemsOf(t, err)
	if len(got) != 1 || !strings.Contains(got[0], "gateflow.yaml: services.bad.basse: unknown field") {
		t.Fatalf("unknown field first: %v", got)
	}
	writeFile(t, filepath.Join(dir, ConfigFile), `
services:
  echo: {base_url: "http://127.0.0.1:1"}
  bad: {base_url: ftp://x, headers: {"a b": x}, timeout: 5x, retry: {max_attempts: -1}}
tenants:
  t1: {allowed_hosts: ["bad host"], rate_limit: {rps: -1}}
mcp_servers:
  m: {url: "http://x/mcp", headers: {X: "${vault:abc}"}}
models:
  providers: {p: {kind: nope, models: {}}}
`)
	writeFile(t, filepath.Join(dir, DefinitionsDir, "copy.yaml"), "name: hello\nversion: '1'\nsteps: [{id: a, kind: wait, duration: 1s}]\n")
	writeFile(t, filepath.Join(dir, DefinitionsDir, "broken.yaml"), "name: broken\nversion: '1'\nsteps: [{id: a, kind: http, service: nope}]\n")
	_, err = Load(dir)
	got = problemsOf(t, err)
	want := []string{
		"definitions/hello.json: hello@1 is also defined in definitions/copy.yaml",
		"gateflow.yaml: mcp_servers.m.headers.X: bad secret reference ${vault:abc}",
		"gateflow.yaml: models: provider \"p\": kind \"nope\"",
		"gateflow.yaml: services.bad.base_url: must be an absolute http:// or https:// URL",
		`gateflow.yaml: services.bad.headers["a b"]: not a valid header name`,
		"gateflow.yaml: services.bad.retry.max_attempts: must be at least 1",
		"gateflow.yaml: services.bad.timeout: must be a duration",
		`gateflow.yaml: tenants.t1.allowed_hosts[0]: "bad host" is not a host name`,
		"gateflow.yaml: tenants.t1.rate_limit.rps: must not be negative",
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || strings.Contains(g, w)
		}
		if !found {
			t.Errorf("missing %q in:\n%s", w, strings.Join(got, "\n"))
		}
	}
	// With a valid gateflow.yaml, definitions are checked against its catalog.
	writeFile(t, filepath.Join(dir, ConfigFile), "services: {echo: {base_url: 'http://127.0.0.1:1'}}\n")
	_ = os.Remove(filepath.Join(dir, DefinitionsDir, "copy.yaml"))
	_, err = Load(dir)
	got = problemsOf(t, err)
	for _, w := range []string{`definitions/broken.yaml: steps[0].service: unknown service "nope"`, `definitions/order-fulfilment.yaml: steps[1].service: unknown service "payments"`} {
		found := false
		for _, g := range got {
			found = found || g == w
		}
		if !found {
			t.Errorf("missing %q in:\n%s", w, strings.Join(got, "\n"))
		}
	}
}

func TestReload(t *testing.T) {
	dir := copyExamples(t)
	r, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	first := r.Current()
	// A valid change swaps the snapshot.
	writeFile(t, filepath.Join(dir, DefinitionsDir, "hello2.yaml"), "name: hello\nversion: '2'\nsteps: [{id: a, kind: http, service: echo}]\n")
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if d, ok := r.Current().Definition("hello", ""); !ok || d.Version != "2" {
		t.Fatal("reload did not swap")
	}
	if _, ok := first.Definition("hello", "2"); ok {
		t.Fatal("old snapshot changed")
	}
	// An invalid change keeps the previous snapshot.
	good := r.Current()
	writeFile(t, filepath.Join(dir, DefinitionsDir, "bad.yaml"), "name: bad\nversion: '1'\nsteps: [{id: a, kind: http, service: missing}]\n")
	err = r.Reload()
	if err == nil || !strings.Contains(err.Error(), `unknown service "missing"`) {
		t.Fatalf("invalid reload: %v", err)
	}
	if r.Current() != good {
		t.Fatal("invalid reload replaced the snapshot")
	}
}

func TestWatchSIGHUP(t *testing.T) {
	dir := copyExamples(t)
	r, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		r.WatchSIGHUP(ctx, slog.New(slog.DiscardHandler))
		close(done)
	}()
	defer func() {
		cancel()
		<-done
	}()
	time.Sleep(50 * time.Millisecond) // let signal.Notify register
	writeFile(t, filepath.Join(dir, DefinitionsDir, "hello3.yaml"), "name: hello\nversion: '3'\nsteps: [{id: a, kind: http, service: echo}]\n")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if d, ok := r.Current().Definition("hello", ""); ok && d.Version == "3" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP did not reload")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAllowURL(t *testing.T) {
	dev := Tenant{Name: "dev", AllowURLs: true, AllowLoopback: true, AllowedHosts: []string{"*.example.com", "api.test:8443"}}
	prod := Tenant{Name: "prod", AllowURLs: true, AllowedHosts: []string{"api.example.com", "127.0.0.1", "10.0.0.5"}}
	none := Tenant{Name: "none", AllowedHosts: []string{"api.example.com"}}
	tests := []struct {
		t   Tenant
		url string
		ok  bool
	}{
		{dev, "http://127.0.0.1:9000/x", true},
		{dev, "http://localhost/x", true},
		{dev, "http://[::1]:80/", true},
		{dev, "https://a.example.com/x", true},
		{dev, "https://example.com/x", false},
		{dev, "https://api.test:8443/", true},
		{dev, "https://api.test/", false},
		{dev, "ftp://a.example.com/", false},
		{dev, "https://user:pw@a.example.com/", false},
		{prod, "https://api.example.com/v1", true},
		{prod, "https://API.EXAMPLE.COM/v1", true},
		{prod, "http://127.0.0.1/", false},
		{prod, "http://169.254.169.254/latest/meta-data", false},
		{prod, "http://10.0.0.5/", true},
		{prod, "http://0.0.0.0/", false},
		{none, "https://api.example.com/", false},
	}
	for _, tt := range tests {
		err := tt.t.AllowURL(tt.url)
		if (err == nil) != tt.ok {
			t.Errorf("%s %s: %v", tt.t.Name, tt.url, err)
		}
		if err != nil && !errors.Is(err, activities.ErrURLNotAllowed) {
			t.Errorf("%s: error does not wrap ErrURLNotAllowed", tt.url)
		}
	}
}

func TestRegistryImplementsInterfaces(t *testing.T) {
	r, err := New(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	var _ definition.Catalog = r
	var _ definition.Catalog = r.Current()
	var _ activities.Services = r
	ep, err := r.Resolve("dev", "inventory")
	if err != nil || ep.BaseURL != "http://127.0.0.1:9802" || ep.Timeout != 5*time.Second {
		t.Fatalf("%+v %v", ep, err)
	}
	if _, err := r.Resolve("dev", "nope"); !errors.Is(err, activities.ErrUnknownService) {
		t.Fatal(err)
	}
	if ep, err := r.Resolve("dev", "payments"); err != nil || ep.MaxResponseBytes != 1048576 {
		t.Fatalf("payments: %+v %v", ep, err)
	}
	if to, retry, ok := r.ServiceDefaults("inventory"); !ok || to != "5s" || retry == nil || retry.MaxAttempts != 3 {
		t.Fatalf("inventory defaults: %q %+v %v", to, retry, ok)
	}
	if _, _, ok := r.ServiceDefaults("nope"); ok {
		t.Fatal("defaults of an unknown service")
	}
	if d, m := r.BudgetFor("dev"); d != 2000000 || m != 20000000 {
		t.Fatal(d, m)
	}
	if !r.AllowInline("dev") || r.AllowInline("other") {
		t.Fatal("AllowInline")
	}
}

func TestCheckFieldsPaths(t *testing.T) {
	_, ps := decodeConfig([]byte("tenants: {a: {rate_limit: {rsp: 1}}}\nmodels: {providers: {p: {kind: openai, modles: {}}}}\n"))
	var got []string
	for _, p := range ps {
		got = append(got, p.String())
	}
	want := "models.providers.p.modles: unknown field,tenants.a.rate_limit.rsp: unknown field"
	if strings.Join(got, ",") != want {
		t.Fatalf("got %v", got)
	}
}
