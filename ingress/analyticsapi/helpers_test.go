package analyticsapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gateflow/gateflow/ingress"
	"github.com/gateflow/gateflow/ingress/analyticsapi"
	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/ingress/client"
	"github.com/gateflow/gateflow/ingress/ratelimit"
	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/orchestrator"
)

// testKeys are the API keys of the tests by name.
var testKeys = map[string]struct {
	token, tenant string
	roles         []string
}{
	"analyst":       {"gf_a00000000001_analystsecretanalystsecret0001", "acme", []string{"analyst"}},
	"admin":         {"gf_a00000000002_adminsecretadminsecretadmin0002", "acme", []string{"admin"}},
	"submitter":     {"gf_a00000000003_submittersecretsubmittersecr03", "acme", []string{"submitter"}},
	"approver":      {"gf_a00000000004_approversecretapproversecret04", "acme", []string{"approver", "finance"}},
	"other-analyst": {"gf_b00000000001_otheranalystsecretotheranaly01", "globex", []string{"analyst"}},
}

// noOrchestrator is the ingress's required orchestrator; the analytics
// routes never call it.
type noOrchestrator struct{}

var errNoOrch = errors.New("not used by the analytics tests")

func (noOrchestrator) Start(context.Context, orchestrator.Caller, orchestrator.StartRequest) (orchestrator.StartResult, error) {
	return orchestrator.StartResult{}, errNoOrch
}
func (noOrchestrator) Status(context.Context, orchestrator.Caller, string) (orchestrator.Status, error) {
	return orchestrator.Status{}, errNoOrch
}
func (noOrchestrator) List(context.Context, orchestrator.Caller, orchestrator.ListFilter) (orchestrator.Page, error) {
	return orchestrator.Page{}, errNoOrch
}
func (noOrchestrator) Watch(context.Context, orchestrator.Caller, string) (<-chan orchestrator.Update, error) {
	return nil, errNoOrch
}
func (noOrchestrator) Cancel(context.Context, orchestrator.Caller, string) error { return errNoOrch }
func (noOrchestrator) Input(context.Context, orchestrator.Caller, string) (orchestrator.RunInput, error) {
	return orchestrator.RunInput{}, errNoOrch
}
func (noOrchestrator) Decide(context.Context, orchestrator.Caller, string, orchestrator.DecideRequest) (workflows.DecisionResult, error) {
	return workflows.DecisionResult{}, errNoOrch
}
func (noOrchestrator) PendingApprovals(context.Context, orchestrator.Caller) (orchestrator.Approvals, error) {
	return orchestrator.Approvals{}, errNoOrch
}
func (noOrchestrator) ListDefinitions(context.Context, orchestrator.Caller) ([]orchestrator.DefinitionInfo, error) {
	return nil, errNoOrch
}
func (noOrchestrator) GetDefinition(context.Context, orchestrator.Caller, string, string) (definition.Definition, error) {
	return definition.Definition{}, errNoOrch
}
func (noOrchestrator) PublishDefinition(context.Context, orchestrator.Caller, string, string, definition.Definition) (orchestrator.DefinitionInfo, error) {
	return orchestrator.DefinitionInfo{}, errNoOrch
}

// server is a real ingress server with the analytics group mounted, on a
// loopback port.
type server struct {
	url string
}

func startServer(t testing.TB, q analyticsapi.Querier, now func() time.Time) *server {
	t.Helper()
	var keys []auth.Key
	for _, k := range testKeys {
		keys = append(keys, auth.EntryFor(k.token, k.tenant, k.roles, ""))
	}
	store, err := auth.NewStore("", keys...)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ingress.New(ingress.Deps{Orchestrator: noOrchestrator{}, Keys: store, Log: slog.New(slog.DiscardHandler)},
		ingress.Config{KeyLimit: ratelimit.Limit{RPS: 1e6, Burst: 1e6}, TenantLimit: ratelimit.Limit{RPS: 1e6, Burst: 1e6}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Mount(analyticsapi.Routes(q, analyticsapi.Options{Now: now})); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ingress: %v", err)
		}
	})
	return &server{url: "http://" + ln.Addr().String()}
}

// get sends GET path with the named key ("" for none) and returns the
// status and body.
func (s *server) get(t testing.TB, key, path string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+testKeys[key].token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// client returns the Go client of the API with the named key.
func (s *server) client(t testing.TB, key string) *client.Client {
	t.Helper()
	c, err := client.New(s.url, testKeys[key].token)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// apiError decodes the error shape.
func apiError(t testing.TB, body []byte) api.Error {
	t.Helper()
	var b struct {
		Error *api.Error `json:"error"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.Error == nil || b.Error.Code == "" || b.Error.Details == nil {
		t.Fatalf("not the API error shape: %s", body)
	}
	return *b.Error
}
