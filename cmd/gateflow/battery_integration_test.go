//go:build integration

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/workflows/wire"
)

// TestBadInputBattery is issue 10's bad-input battery, driven by the
// OpenAPI document the ingress serves: for every operation it sends no key,
// a wrong key, a key lacking the documented role, another tenant's ids,
// malformed, empty, oversized (declared and streamed), too deeply nested
// bodies, unknown fields, wrong types, bad query values and absurdly long
// ids, and checks each answer: a status the operation documents, never a
// 5xx, the one error shape (OpenAI's on the OpenAI-compatible routes), and
// a bounded heap across rounds. It runs the real ingress (runIngress) on
// the catalogue test's stack with one worker.
//
// Not covered: /gw/... (the upstream judges proxied bodies), the codec
// endpoint (mounted only with --codec-tenant), and the signature and token
// checks of webhooks and callbacks (none are configured here: they answer
// 404 before any signature is read).
func TestBadInputBattery(t *testing.T) {
	s := startCatalogStack(t, catalogStackOptions{NoReplicaB: true})
	b := &battery{s: s, base: s.a, client: &http.Client{Timeout: 30 * time.Second}, seen: map[string]map[string]map[int]bool{}}
	b.keys(t)
	f := b.fixtures(t)

	ops := b.operations(t)
	var skipped []string
	var run []batteryOp
	for _, op := range ops {
		if strings.HasPrefix(op.path, "/gw/") {
			skipped = append(skipped, op.label()) // proxied bodies are the upstream's to judge
			continue
		}
		run = append(run, op)
	}

	const rounds = 3
	heap := func() (uint64, int) {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc, runtime.NumGoroutine()
	}
	heap0, g0 := heap()
	heaps := []uint64{heap0}
	for round := 1; round <= rounds; round++ {
		for _, op := range run {
			for _, c := range b.cases(op, f) {
				b.check(op, c)
			}
		}
		h, _ := heap()
		heaps = append(heaps, h)
	}
	heap1, g1 := heap()

	// Bad input changed nothing: the owner's resources are as they were.
	b.fixturesIntact(t, f)

	t.Logf("battery: %d operations (%d skipped: %s), %d requests in %d rounds; heap after GC by round (MiB): %s; goroutines %d -> %d",
		len(run), len(skipped), strings.Join(skipped, ", "), b.requests, rounds, mib(heaps...), g0, g1)
	t.Log("statuses seen per operation and case:\n" + b.table(run))
	const heapBound = 64 << 20
	if heap1 > heap0 && heap1-heap0 > heapBound {
		t.Errorf("heap grew by %s MiB over the battery (bound %d MiB): %s", mib(heap1-heap0), heapBound>>20, mib(heaps...))
	}
	for i, msg := range b.failures {
		if i == 100 {
			t.Errorf("... and %d more failures", len(b.failures)-100)
			break
		}
		t.Error(msg)
	}
}

// allowUndocumented lists statuses an operation answers without
// documenting them, each with the reason it is accepted ("METHOD path
// status" -> why). Empty: every status seen is documented.
var allowUndocumented = map[string]string{}

// batteryCases is the order of the summary table's columns.
var batteryCases = []string{"nokey", "badkey", "role", "tenant", "tenant-list", "longid", "oddid", "badquery", "malformed", "empty",
	"toplevel", "unknown", "wrongtype", "deep", "oversize", "oversize-stream"}

// battery sends the cases and collects what it saw.
type battery struct {
	s      *catalogStack
	base   string
	client *http.Client
	// Keys: the owner (acme admin), the other tenants (beta and gamma
	// admins) and an acme key with no built-in role.
	owner, other, third, roleless string
	requests                      int
	failures                      []string
	seen                          map[string]map[string]map[int]bool // op -> case -> statuses
}

// batteryOp is one operation of the OpenAPI document.
type batteryOp struct {
	method, path, id string
	public           bool
	roles            []string
	query            []oaParam
	body             map[string]any // resolved request schema; nil: no body
	bodyRequired     bool
	documented       map[int]bool
	shape            errorShape
}

func (op batteryOp) label() string { return op.method + " " + op.path }

type errorShape int

const (
	shapeAPI    errorShape = iota // {"error": {"code", "message", "details"}}
	shapeOpenAI                   // {"error": {"message", "type", "param", "code"}}
	shapeAny                      // not checked (MCP's transport answers its own errors)
)

type oaParam struct {
	Name     string         `json:"name"`
	In       string         `json:"in"`
	Required bool           `json:"required"`
	Schema   map[string]any `json:"schema"`
}

type oaOperation struct {
	OperationID string    `json:"operationId"`
	Description string    `json:"description"`
	Security    *[]any    `json:"security"`
	Parameters  []oaParam `json:"parameters"`
	RequestBody *struct {
		Required bool `json:"required"`
		Content  map[string]struct {
			Schema map[string]any `json:"schema"`
		} `json:"content"`
	} `json:"requestBody"`
	Responses map[string]json.RawMessage `json:"responses"`
}

// rolesRe reads the roles the ingress writes into a description.
var rolesRe = regexp.MustCompile(`Roles: ([a-z0-9_, -]+) \(admin holds every role\)`)

// operations reads /v1/openapi.json (public) into the operations to test.
func (b *battery) operations(t *testing.T) []batteryOp {
	t.Helper()
	status, _, raw := b.s.do(b.base, "", http.MethodGet, "/v1/openapi.json", nil)
	if status != http.StatusOK {
		t.Fatalf("openapi.json: %d %s", status, raw)
	}
	var doc struct {
		Paths      map[string]map[string]oaOperation `json:"paths"`
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	var ops []batteryOp
	for path, item := range doc.Paths {
		for method, o := range item {
			op := batteryOp{method: strings.ToUpper(method), path: path, id: o.OperationID, documented: map[int]bool{}}
			op.public = o.Security != nil && len(*o.Security) == 0
			if m := rolesRe.FindStringSubmatch(o.Description); m != nil {
				for _, r := range strings.Split(m[1], ",") {
					op.roles = append(op.roles, strings.TrimSpace(r))
				}
			}
			for _, p := range o.Parameters {
				if p.In == "query" {
					op.query = append(op.query, p)
				}
			}
			if rb := o.RequestBody; rb != nil {
				op.bodyRequired = rb.Required
				op.body = map[string]any{}
				if c, ok := rb.Content["application/json"]; ok && c.Schema != nil {
					op.body = resolveSchema(c.Schema, doc.Components.Schemas)
				}
			}
			for code := range o.Responses {
				n, err := strconv.Atoi(code)
				if err != nil {
					t.Fatalf("%s %s: response %q is not a status", method, path, code)
				}
				op.documented[n] = true
			}
			switch {
			case path == "/mcp":
				op.shape = shapeAny
			case path == "/v1/chat/completions" || path == "/v1/embeddings" || path == "/v1/models":
				op.shape = shapeOpenAI
			}
			ops = append(ops, op)
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].label() < ops[j].label() })
	if len(ops) < 40 {
		t.Fatalf("only %d operations in the document", len(ops))
	}
	return ops
}

// resolveSchema follows a component $ref (one level is what the document
// uses for request bodies).
func resolveSchema(s map[string]any, components map[string]map[string]any) map[string]any {
	for range 4 {
		ref, ok := s["$ref"].(string)
		if !ok {
			return s
		}
		c, ok := components[strings.TrimPrefix(ref, "#/components/schemas/")]
		if !ok {
			return s
		}
		s = c
	}
	return s
}

// keys adds the battery's keys to the keys file: an acme key with only a
// custom role, and an admin of a third tenant (for subscriptions, which
// both acme and beta may see).
func (b *battery) keys(t *testing.T) {
	t.Helper()
	b.owner, b.other = b.s.acme, b.s.beta
	for _, k := range []struct {
		tenant string
		roles  []string
		token  *string
	}{{"acme", []string{"battery-auditor"}, &b.roleless}, {"gamma", []string{"admin"}, &b.third}} {
		tok, err := auth.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		if err := auth.AddKey(b.s.child.KeysFile, auth.EntryFor(tok, k.tenant, k.roles, "battery")); err != nil {
			t.Fatal(err)
		}
		*k.token = tok
	}
	for _, tok := range []string{b.roleless, b.third} {
		b.s.poll("the battery's keys loaded", 30*time.Second, func() bool {
			status, _, _ := b.s.do(b.base, tok, http.MethodGet, "/v1/me", nil)
			return status == http.StatusOK
		})
	}
}

// batteryFixtures are resources of tenant acme, requested by the others.
type batteryFixtures struct {
	workflow     string // a finished run
	approval     string // a run waiting on step "approve" (beta's subscription request)
	definition   string // published through the API, version 1
	privateAPI   string // a private catalogue API (draft version 1)
	call         string // a call of privateAPI by acme ("" when refused)
	subscription string // beta's pending subscription to acme's shared API
	schedule     string
	key          string // created through the API
}

func (b *battery) fixtures(t *testing.T) batteryFixtures {
	t.Helper()
	s := b.s
	// A fixture that cannot be made is an error, not the end of the
	// battery: the cases needing it are left out (its id stays empty).
	try := func(key string, want int, method, path string, body, out any) bool {
		t.Helper()
		status, _, raw := s.do(b.base, key, method, path, body)
		if status != want {
			t.Errorf("fixture %s %s: %d, want %d: %s", method, path, status, want, raw)
			return false
		}
		if out != nil {
			if err := json.Unmarshal(raw, out); err != nil {
				t.Errorf("fixture %s %s: %v: %s", method, path, err, raw)
				return false
			}
		}
		return true
	}
	var f batteryFixtures
	var started struct{ ID string }
	if try(b.owner, http.StatusCreated, http.MethodPost, "/v1/workflows", map[string]any{"definition": "ping"}, &started) {
		f.workflow = started.ID
	}
	if try(b.owner, http.StatusCreated, http.MethodPut, "/v1/definitions/battery-def/versions/1",
		json.RawMessage(`{"name": "battery-def", "version": "1", "steps": [{"id": "nap", "kind": "wait", "duration": "1ms"}]}`), nil) {
		f.definition = "battery-def"
	}
	target := wire.APIVersionSpec{Version: "1", Target: wire.APITarget{Definition: "ping", DefinitionVersion: "1"}}
	if try(b.owner, http.StatusCreated, http.MethodPost, "/v1/catalog",
		wire.CreateAPIRequest{Name: "battery-private", Kind: wire.APIKindOrchestration, Title: "Battery (private)", Version: target}, nil) {
		f.privateAPI = "battery-private"
		var call wire.CatalogCall
		if status, _, raw := s.do(b.base, b.owner, http.MethodPost, "/v1/catalog/battery-private/call", map[string]any{}); status == http.StatusAccepted && json.Unmarshal(raw, &call) == nil {
			f.call = call.ID
		} else {
			t.Logf("the owner's call of its draft API: %d %s (no call id for the cross-tenant case)", status, raw)
		}
	}
	const shared = "battery-shared"
	var sub wire.Subscription
	if try(b.owner, http.StatusCreated, http.MethodPost, "/v1/catalog",
		wire.CreateAPIRequest{Name: shared, Kind: wire.APIKindOrchestration, Title: "Battery (shared)", Visibility: wire.VisibilityShared, Version: target}, nil) &&
		try(b.owner, http.StatusOK, http.MethodPost, "/v1/catalog/"+shared+"/versions/1/lifecycle", wire.TransitionRequest{State: wire.StatePublished}, nil) &&
		try(b.other, http.StatusCreated, http.MethodPost, "/v1/catalog/"+shared+"/subscriptions", wire.SubscribeRequest{Plan: "default"}, &sub) {
		if sub.State != wire.SubscriptionPending || sub.WorkflowID == "" {
			t.Errorf("subscription: %+v", sub)
		} else {
			f.subscription = sub.ID
			// Its approval step waits before the battery decides on it
			// with bad bodies.
			deadline := time.Now().Add(30 * time.Second)
			for f.approval == "" && time.Now().Before(deadline) {
				var list wire.Approvals
				status, _, raw := s.do(b.base, b.owner, http.MethodGet, "/v1/approvals", nil)
				if status == http.StatusOK && json.Unmarshal(raw, &list) == nil &&
					slices.ContainsFunc(list.Items, func(a wire.Approval) bool { return a.WorkflowID == sub.WorkflowID }) {
					f.approval = sub.WorkflowID
				}
				time.Sleep(50 * time.Millisecond)
			}
			if f.approval == "" {
				t.Errorf("the subscription's approval %s never listed", sub.WorkflowID)
			}
		}
	}
	if try(b.owner, http.StatusCreated, http.MethodPost, "/v1/schedules",
		map[string]any{"id": "battery-schedule", "definition": "ping", "interval": "24h", "paused": true}, nil) {
		f.schedule = "battery-schedule"
	}
	var key wire.CreatedKey
	if try(b.owner, http.StatusCreated, http.MethodPost, "/v1/keys", map[string]any{"roles": []string{"submitter"}, "note": "battery"}, &key) {
		f.key = key.ID
	}
	return f
}

// fixturesIntact checks that the battery changed none of acme's resources.
func (b *battery) fixturesIntact(t *testing.T, f batteryFixtures) {
	t.Helper()
	s := b.s
	get := func(path string, out any) bool {
		status, _, raw := s.do(b.base, b.owner, http.MethodGet, path, nil)
		if status != http.StatusOK || json.Unmarshal(raw, out) != nil {
			t.Errorf("after the battery, GET %s: %d %s", path, status, raw)
			return false
		}
		return true
	}
	var sub wire.Subscription
	if f.subscription != "" && get("/v1/subscriptions/"+f.subscription, &sub) && sub.State != wire.SubscriptionPending {
		t.Errorf("the battery changed the subscription: %s", sub.State)
	}
	var sched struct{ Paused bool }
	if f.schedule != "" && get("/v1/schedules/"+f.schedule, &sched) && !sched.Paused {
		t.Errorf("the battery resumed the schedule")
	}
	var keys wire.APIKeys
	if f.key != "" && get("/v1/keys", &keys) && slices.ContainsFunc(keys.Items, func(k wire.APIKey) bool { return k.ID == f.key && k.Disabled }) {
		t.Errorf("the battery disabled the key")
	}
	var api wire.APIDetail
	if f.privateAPI != "" && get("/v1/catalog/"+f.privateAPI, &api) &&
		(len(api.Versions) != 1 || api.Versions[0].State != wire.StateDraft || api.Title != "Battery (private)") {
		t.Errorf("the battery changed the private API: %s, versions %+v", api.Title, api.Versions)
	}
}

// batteryCase is one request and what it may answer.
type batteryCase struct {
	name       string
	key        string
	path       string // with parameters filled in, and a query
	body       []byte // nil: none
	oversize   int    // 1: declared Content-Length beyond every limit; 2: streamed (chunked) beyond every limit
	want       []int  // the statuses accepted (each must also be documented); empty: any documented 4xx
	checkShape bool
	// leak lists acme's ids a successful answer must not contain.
	leak []string
}

// Bodies a route of acme's resources would accept, sent as another
// tenant: the answer must be 404 whatever the body.
var crossTenantBodies = map[string]string{
	"decide":             `{"decision": "approve"}`,
	"updateAPI":          `{"title": "taken over"}`,
	"addAPIVersion":      `{"version": "9", "target": {"definition": "ping"}}`,
	"moveAPIVersion":     `{"state": "published"}`,
	"callAPI":            `{}`,
	"subscribe":          `{"plan": "default"}`,
	"revokeSubscription": `{}`,
	"cancelSubscription": `{}`,
	"updateSchedule":     `{"definition": "ping", "interval": "1h"}`,
	"pauseSchedule":      `{}`,
	"resumeSchedule":     `{}`,
	"triggerSchedule":    `{}`,
	"backfillSchedule":   `{"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T01:00:00Z"}`,
	"disableKey":         `{}`,
}

// tenantListQuery completes the lists that need a parameter.
var tenantListQuery = map[string]string{"analyticsSlowestSteps": "definition=ping"}

// noCrossTenant are operations whose path names something the caller
// creates in its own tenant, not another tenant's resource.
var noCrossTenant = map[string]bool{"publishDefinition": true}

var paramRe = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// fill puts acme's ids into a path; all reports whether every parameter
// named one of acme's resources.
func (f batteryFixtures) fill(path string) (filled string, all bool) {
	all = true
	filled = paramRe.ReplaceAllStringFunc(path, func(m string) string {
		name := m[1 : len(m)-1]
		id := ""
		switch {
		case strings.HasPrefix(path, "/v1/workflows/{id}/approvals/"):
			id = map[string]string{"id": f.approval, "step": "approve"}[name]
		case strings.HasPrefix(path, "/v1/workflows/"):
			id = f.workflow
		case strings.HasPrefix(path, "/v1/definitions/"):
			id = map[string]string{"name": f.definition, "version": "1"}[name]
		case strings.HasPrefix(path, "/v1/catalog/"):
			id = map[string]string{"api": f.privateAPI, "version": "1", "id": f.call}[name]
		case strings.HasPrefix(path, "/v1/subscriptions/"):
			id = f.subscription
		case strings.HasPrefix(path, "/v1/schedules/"):
			id = f.schedule
		case strings.HasPrefix(path, "/v1/keys/"):
			id = f.key
		}
		if id == "" {
			all = false
			return "battery-nope"
		}
		return url.PathEscape(id)
	})
	return filled, all
}

// ids are acme's ids that no answer to another tenant may name
// (battery-shared and beta's subscription to it excepted: beta sees them,
// the id of the subscription's approval run included).
func (f batteryFixtures) ids() []string {
	var out []string
	for _, id := range []string{f.workflow, f.definition, f.privateAPI, f.call, f.schedule, f.key} {
		if id != "" {
			out = append(out, id)
		}
	}
	return out
}

// cases lists the requests of one operation.
func (b *battery) cases(op batteryOp, f batteryFixtures) []batteryCase {
	path, ownIDs := f.fill(op.path)
	hasParams := strings.Contains(op.path, "{")
	var cs []batteryCase
	add := func(c batteryCase) {
		if c.path == "" {
			c.path = path
		}
		cs = append(cs, c)
	}
	validBody := func() []byte {
		if s, ok := crossTenantBodies[op.id]; ok {
			return []byte(s)
		}
		if op.body != nil {
			return []byte(`{}`)
		}
		return nil
	}
	if op.path == "/mcp" {
		// JSON-RPC over streamable HTTP: the message's content is the
		// SDK's to judge; its size, syntax and depth are the ingress's.
		add(batteryCase{name: "nokey", body: []byte(`{}`), want: []int{401}, checkShape: true})
		add(batteryCase{name: "badkey", key: "gf_battery_notakey", body: []byte(`{}`), want: []int{401}, checkShape: true})
		add(batteryCase{name: "malformed", key: b.owner, body: []byte(`{"jsonrpc": "2.0", "id": 1,`), want: []int{400}, checkShape: true})
		add(batteryCase{name: "empty", key: b.owner, body: []byte{}, want: []int{400}, checkShape: true})
		add(batteryCase{name: "deep", key: b.owner, body: deepBody(200), want: []int{400}, checkShape: true})
		add(batteryCase{name: "oversize", key: b.owner, oversize: 1, want: []int{413}, checkShape: true})
		add(batteryCase{name: "oversize-stream", key: b.owner, oversize: 2, want: []int{413}, checkShape: true})
		return cs
	}
	if op.public {
		// Webhooks and callbacks authenticate by signature or token:
		// without a valid one they answer 401 or 404, nothing runs.
		if !hasParams {
			add(batteryCase{name: "nokey", checkShape: true}) // probes and this document
			return cs
		}
		add(batteryCase{name: "nokey", body: validBody(), want: []int{401, 404}, checkShape: true})
		add(batteryCase{name: "longid", path: longIDs(op.path), body: validBody(), want: []int{400, 401, 404}, checkShape: true})
		add(batteryCase{name: "oddid", path: oddIDs(op.path), body: validBody(), want: []int{400, 401, 404}, checkShape: true})
		if op.body != nil {
			add(batteryCase{name: "malformed", body: []byte(`{"output": `), want: []int{400, 401, 404}, checkShape: true})
			add(batteryCase{name: "oversize", oversize: 1, want: []int{413}, checkShape: true})
			// Streamed, the body is read only once the name and the
			// signature or token are known good.
			add(batteryCase{name: "oversize-stream", oversize: 2, want: []int{401, 404, 413}, checkShape: true})
		}
		return cs
	}
	add(batteryCase{name: "nokey", body: validBody(), want: []int{401}, checkShape: true})
	add(batteryCase{name: "badkey", key: "gf_battery_notakey", body: validBody(), want: []int{401}, checkShape: true})
	if len(op.roles) > 0 {
		add(batteryCase{name: "role", key: b.roleless, body: validBody(), want: []int{403}, checkShape: true})
	}
	if hasParams && ownIDs && !noCrossTenant[op.id] {
		other := b.other
		if strings.HasPrefix(op.path, "/v1/subscriptions/") {
			other = b.third // beta is the subscription's consumer
		}
		add(batteryCase{name: "tenant", key: other, body: validBody(), want: []int{404}, checkShape: true})
	}
	if !hasParams && op.method == http.MethodGet {
		// Lists as another tenant: none of acme's resources in them.
		leak := f.ids()
		if op.path == "/v1/approvals" && f.approval != "" {
			leak = append(leak, f.approval) // acme's approvers decide it, not beta's
		}
		lpath := path
		if q, ok := tenantListQuery[op.id]; ok {
			lpath += "?" + q
		}
		add(batteryCase{name: "tenant-list", key: b.other, path: lpath, want: []int{200}, leak: leak})
	}
	if hasParams {
		add(batteryCase{name: "longid", key: b.owner, path: longIDs(op.path), body: validBody(), want: []int{400, 404, 422}, checkShape: true})
		add(batteryCase{name: "oddid", key: b.owner, path: oddIDs(op.path), body: validBody(), want: []int{400, 404, 422}, checkShape: true})
	}
	if op.method == http.MethodGet {
		for _, p := range op.query {
			if bad, ok := badQueryValue(p.Schema); ok {
				add(batteryCase{name: "badquery", key: b.owner, path: path + "?" + url.Values{p.Name: {bad}}.Encode(), want: []int{400, 422}, checkShape: true})
			}
		}
	}
	if op.body == nil {
		return cs
	}
	badSyntax, badBody := []int{400}, []int{400, 422}
	if !ownIDs {
		// Nothing of that name (no prompt API is configured): a route may
		// look it up before it reads the body.
		badSyntax, badBody = []int{400, 404}, []int{400, 404, 422}
	}
	add(batteryCase{name: "malformed", key: b.owner, body: []byte(`{"a": [1, 2,`), want: badSyntax, checkShape: true})
	if op.bodyRequired {
		add(batteryCase{name: "empty", key: b.owner, body: []byte{}, want: badSyntax, checkShape: true})
	}
	add(batteryCase{name: "toplevel", key: b.owner, body: []byte(`[1, 2, 3]`), want: badBody, checkShape: true})
	if props, ok := op.body["properties"].(map[string]any); ok && len(props) > 0 {
		add(batteryCase{name: "unknown", key: b.owner, body: []byte(`{"battery_unknown_field": 1}`), want: badBody, checkShape: true})
		if field, value, ok := wrongType(props); ok {
			add(batteryCase{name: "wrongtype", key: b.owner, body: []byte(fmt.Sprintf(`{%q: %s}`, field, value)), want: badBody, checkShape: true})
		}
	}
	add(batteryCase{name: "deep", key: b.owner, body: deepBody(200), want: badSyntax, checkShape: true})
	add(batteryCase{name: "oversize", key: b.owner, oversize: 1, want: []int{413}, checkShape: true})
	add(batteryCase{name: "oversize-stream", key: b.owner, oversize: 2, want: []int{413}, checkShape: true})
	return cs
}

// longIDs fills every parameter with a 1500-character id (beyond
// Temporal's workflow id limit and any name rule).
func longIDs(path string) string {
	return paramRe.ReplaceAllString(path, strings.Repeat("x", 1500))
}

// oddIDs fills every parameter with an id of path tricks, a NUL, a
// control character and a bidi override.
func oddIDs(path string) string {
	return paramRe.ReplaceAllString(path, url.PathEscape("../x\x00y\x1b ☃\u202e%"))
}

// deepBody is an object nested depth levels deep.
func deepBody(depth int) []byte {
	return []byte(`{"battery": ` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`)
}

// badQueryValue is a value a typed query parameter must refuse.
func badQueryValue(schema map[string]any) (string, bool) {
	if _, ok := schema["enum"]; ok {
		return "battery-not-a-value", true
	}
	if schema["format"] == "date-time" {
		return "yesterday-ish", true
	}
	switch schema["type"] {
	case "integer", "number":
		return "many", true
	case "boolean":
		return "perhaps", true
	}
	return "", false
}

// wrongType picks a typed property (first by name) and a JSON value of
// another type.
func wrongType(props map[string]any) (field, value string, ok bool) {
	names := make([]string, 0, len(props))
	for n := range props {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p, _ := props[n].(map[string]any)
		switch p["type"] {
		case "string":
			return n, `12345`, true
		case "integer", "number":
			return n, `"twelve"`, true
		case "boolean":
			return n, `"yes"`, true
		case "array":
			return n, `{"not": "a list"}`, true
		case "object":
			return n, `"not an object"`, true
		}
	}
	return "", "", false
}

// check sends one case and records what is wrong with the answer.
func (b *battery) check(op batteryOp, c batteryCase) {
	status, body, err := b.send(op, c)
	b.requests++
	fail := func(format string, args ...any) {
		b.failures = append(b.failures, fmt.Sprintf("%s [%s]: ", op.label(), c.name)+fmt.Sprintf(format, args...))
	}
	if err != nil {
		fail("%v", err)
		return
	}
	if b.seen[op.label()] == nil {
		b.seen[op.label()] = map[string]map[int]bool{}
	}
	if b.seen[op.label()][c.name] == nil {
		b.seen[op.label()][c.name] = map[int]bool{}
	}
	b.seen[op.label()][c.name][status] = true
	excerpt := string(body)
	if len(excerpt) > 300 {
		excerpt = excerpt[:300] + "..."
	}
	probe := op.public && c.name == "nokey" && !strings.Contains(op.path, "{")
	switch {
	case status >= 500 && !(probe && op.documented[status]):
		fail("status %d: %s", status, excerpt)
		return
	case !op.documented[status] && allowUndocumented[fmt.Sprintf("%s %d", op.label(), status)] == "":
		fail("status %d is not documented (documented: %s): %s", status, statuses(op.documented), excerpt)
	case len(c.want) > 0 && !slices.Contains(c.want, status):
		fail("status %d, want %v: %s", status, c.want, excerpt)
	}
	if status < 300 {
		scanned := body
		if op.path == "/v1/analytics/calls" {
			scanned = withoutEchoedIDs(body)
		}
		for _, id := range c.leak {
			if bytes.Contains(scanned, []byte(id)) {
				fail("another tenant's answer names acme's %q: %s", id, excerpt)
			}
		}
	}
	if status >= 400 && c.checkShape {
		if err := checkErrorShape(op.shape, body); err != nil {
			fail("status %d: %v: %s", status, err, excerpt)
		}
	}
}

// withoutEchoedIDs is a calls listing without the workflow id of the
// caller's refused requests: the listing shows the caller's own requests,
// and in the battery's "tenant" case beta asks for acme's workflow ids,
// so beta's 404 records carry "beta/<the id beta sent>" — beta's own input
// under beta's prefix, not a leak. Anything else naming one of acme's ids
// still fails.
func withoutEchoedIDs(body []byte) []byte {
	var v map[string]any
	if json.Unmarshal(body, &v) != nil {
		return body
	}
	calls, _ := v["calls"].([]any)
	for _, c := range calls {
		if m, ok := c.(map[string]any); ok {
			if code, _ := m["status_code"].(float64); code >= 400 {
				delete(m, "workflow_id")
			}
		}
	}
	out, err := json.Marshal(v)
	if err != nil {
		return body
	}
	return out
}

// send sends a case: through the client, or, for oversized bodies, on a
// connection of its own, so that the answer is read whatever the server
// does with the rest of the body.
func (b *battery) send(op batteryOp, c batteryCase) (int, []byte, error) {
	if c.oversize != 0 {
		return b.sendOversize(op, c)
	}
	var rd io.Reader
	if c.body != nil {
		rd = bytes.NewReader(c.body)
	}
	req, err := http.NewRequest(op.method, b.base+c.path, rd)
	if err != nil {
		return 0, nil, err
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	if c.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, raw, err
}

// oversizeBytes is beyond every route's body limit (the largest is 16 MiB).
const oversizeBytes = 17 << 20

func (b *battery) sendOversize(op batteryOp, c batteryCase) (int, []byte, error) {
	host := strings.TrimPrefix(b.base, "http://")
	conn, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		return 0, nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	var hdr strings.Builder
	fmt.Fprintf(&hdr, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nConnection: close\r\n", op.method, c.path, host)
	if c.key != "" {
		fmt.Fprintf(&hdr, "Authorization: Bearer %s\r\n", c.key)
	}
	if c.oversize == 1 {
		fmt.Fprintf(&hdr, "Content-Length: %d\r\n", 2*oversizeBytes)
	} else {
		hdr.WriteString("Transfer-Encoding: chunked\r\n")
	}
	hdr.WriteString("\r\n")
	if _, err := io.WriteString(conn, hdr.String()); err != nil {
		return 0, nil, err
	}
	// The body: a JSON string that never ends, written until the server
	// has answered and stopped reading (its error ends the writer).
	go func() {
		chunk := bytes.Repeat([]byte("a"), 64<<10)
		var w io.Writer = conn
		if c.oversize == 2 {
			w = &chunkedWriter{w: conn}
		}
		if _, err := w.Write([]byte(`{"battery": "`)); err != nil {
			return
		}
		for sent := 0; sent < oversizeBytes; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, nil, fmt.Errorf("oversized body: no answer: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, raw, nil
}

// chunkedWriter writes HTTP/1.1 chunks.
type chunkedWriter struct{ w io.Writer }

func (c *chunkedWriter) Write(p []byte) (int, error) {
	if _, err := fmt.Fprintf(c.w, "%x\r\n", len(p)); err != nil {
		return 0, err
	}
	if _, err := c.w.Write(p); err != nil {
		return 0, err
	}
	_, err := io.WriteString(c.w, "\r\n")
	return len(p), err
}

// checkErrorShape checks an error body against the route's shape.
func checkErrorShape(shape errorShape, body []byte) error {
	if shape == shapeAny {
		return nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return fmt.Errorf("error body is not a JSON object: %v", err)
	}
	if len(top) != 1 || top["error"] == nil {
		return fmt.Errorf("error body must hold exactly the member \"error\"")
	}
	if shape == shapeOpenAI {
		var e map[string]json.RawMessage
		if err := json.Unmarshal(top["error"], &e); err != nil {
			return fmt.Errorf("error: %v", err)
		}
		for _, k := range []string{"message", "type", "param", "code"} {
			if _, ok := e[k]; !ok {
				return fmt.Errorf("OpenAI error without %q", k)
			}
		}
		var msg, typ string
		if json.Unmarshal(e["message"], &msg) != nil || json.Unmarshal(e["type"], &typ) != nil || msg == "" || typ == "" {
			return fmt.Errorf("OpenAI error: message and type must be non-empty strings")
		}
		return nil
	}
	var e struct {
		Code    *string           `json:"code"`
		Message *string           `json:"message"`
		Details *[]map[string]any `json:"details"`
	}
	dec := json.NewDecoder(bytes.NewReader(top["error"]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return fmt.Errorf("error: %v", err)
	}
	switch {
	case e.Code == nil || *e.Code == "":
		return fmt.Errorf("error without code")
	case e.Message == nil || *e.Message == "":
		return fmt.Errorf("error without message")
	case e.Details == nil:
		return fmt.Errorf("error without details (must be an array)")
	}
	for _, d := range *e.Details {
		_, okP := d["path"].(string)
		m, okM := d["message"].(string)
		if !okP || !okM || len(d) != 2 || m == "" {
			return fmt.Errorf("detail %v: want {path, message}", d)
		}
	}
	return nil
}

// table is the summary: operations × cases, the statuses seen.
func (b *battery) table(ops []batteryOp) string {
	var sb strings.Builder
	w := tabwriter.NewWriter(&sb, 0, 0, 1, ' ', 0)
	fmt.Fprintf(w, "operation\t%s\n", strings.Join(batteryCases, "\t"))
	for _, op := range ops {
		row := []string{op.label()}
		for _, c := range batteryCases {
			if seen := b.seen[op.label()][c]; len(seen) > 0 {
				row = append(row, statuses(seen))
			} else {
				row = append(row, ".")
			}
		}
		fmt.Fprintln(w, strings.Join(row, "\t"))
	}
	_ = w.Flush()
	return sb.String()
}

func statuses(set map[int]bool) string {
	var s []string
	for code := range set {
		s = append(s, strconv.Itoa(code))
	}
	sort.Strings(s)
	return strings.Join(s, "/")
}

func mib(v ...uint64) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64)
	}
	return strings.Join(s, " ")
}
