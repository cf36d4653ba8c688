package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/auth"
)

// fixedAccess routes every call to one target.
type fixedAccess struct{ t Target }

func (a fixedAccess) Route(context.Context, auth.Principal, string, string) (Target, error) {
	return a.t, nil
}

// TestTargetHeadersOnAnswers checks that the lifecycle fields of a
// deprecated version (two Link values among them) reach the client whole,
// whether or not the upstream sends Link values of its own, on forwarded
// and on cached answers.
func TestTargetHeadersOnAnswers(t *testing.T) {
	const (
		successor = `</v1/catalog/orders?version=2>; rel="successor-version"`
		entry     = `</v1/catalog/orders>; rel="deprecation"; type="application/json"`
		next      = `</orders?page=2>; rel="next"`
	)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("link") != "" {
			w.Header().Set("Link", next)
		}
		w.Header().Set("Cache-Control", "max-age=60")
		_, _ = w.Write([]byte("{}"))
	}))
	defer up.Close()
	reg, err := sysconfig.NewStatic(sysconfig.Config{Services: map[string]sysconfig.Service{"orders": {BaseURL: up.URL, Owner: "acme"}}})
	if err != nil {
		t.Fatal(err)
	}
	target := Target{API: "orders", Version: "1", Service: "orders", Owner: "acme", Consumer: Consumer{Tenant: "beta"},
		Headers: []Header{{"Deprecation", "@1700000000"}, {"Link", successor}, {"Link", entry}, {"Sunset", "Tue, 01 Jun 2100 00:00:00 GMT"}},
		Cache:   &CachePolicy{Enabled: true, MaxTTL: time.Minute, MaxEntryBytes: 1 << 20}}
	p, err := New(Options{Access: fixedAccess{target}, Config: reg, WriteError: func(w http.ResponseWriter, _ *http.Request, err error) int {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return http.StatusInternalServerError
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	for _, tc := range []struct {
		name, query, cacheStatus string
		want                     []string
	}{
		{"forwarded", "", "gateflow; fwd=miss; stored", []string{successor, entry}},
		{"cached", "", "gateflow; hit", []string{successor, entry}},
		{"upstream links, forwarded", "?link=1", "gateflow; fwd=miss; stored", []string{next, successor, entry}},
		{"upstream links, cached", "?link=1", "gateflow; hit", []string{next, successor, entry}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/gw/orders/list"+tc.query, nil)
			r.SetPathValue("api", "orders")
			r = r.WithContext(api.WithInfo(r.Context(), &api.RequestInfo{RequestID: "r1", Principal: &auth.Principal{Tenant: "beta"}}))
			w := httptest.NewRecorder()
			p.ServeHTTP(w, r)
			h := w.Result().Header
			if w.Code != http.StatusOK || !slices.Equal(h.Values("Link"), tc.want) || h.Get("Deprecation") != "@1700000000" || h.Get("Sunset") == "" {
				t.Fatalf("%d, header %v; want Link %q and the lifecycle fields", w.Code, h, tc.want)
			}
			if got := h.Get(HeaderCacheStatus); len(got) < len(tc.cacheStatus) || got[:len(tc.cacheStatus)] != tc.cacheStatus {
				t.Fatalf("Cache-Status %q, want %q", got, tc.cacheStatus)
			}
		})
	}
}

// TestOwnerAccessOwns: Owns names exactly the services Route serves the
// caller (the catalogue keeps them from being shadowed).
func TestOwnerAccessOwns(t *testing.T) {
	reg, err := sysconfig.NewStatic(sysconfig.Config{Services: map[string]sysconfig.Service{
		"orders": {BaseURL: "http://127.0.0.1:1", Owner: "acme"}, "echo": {BaseURL: "http://127.0.0.1:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		unowned, tenant, api string
		want                 bool
	}{
		{"", "acme", "orders", true},
		{"", "beta", "orders", false},
		{"", "acme", "missing", false},
		{"", "acme", "echo", false},
		{"dev", "dev", "echo", true},
		{"dev", "acme", "echo", false},
	} {
		a := OwnerAccess{Config: reg, UnownedTenant: tc.unowned}
		caller := auth.Principal{Tenant: tc.tenant}
		_, err := a.Route(context.Background(), caller, tc.api, "")
		if got := a.Owns(caller, tc.api); got != tc.want || (err == nil) != tc.want {
			t.Errorf("%+v: Owns %v, Route error %v", tc, got, err)
		}
	}
}
