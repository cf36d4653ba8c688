package catalog

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gateflow/gateflow/workflows/wire"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func orchestrationAPI(name string) wire.CreateAPIRequest {
	return wire.CreateAPIRequest{
		Name: name, Kind: wire.APIKindOrchestration, Title: "Invoices", Visibility: wire.VisibilityShared, Tags: []string{"billing"},
		Plans:   []Plan{{Name: "free", Quota: wire.Quota{Daily: 3}}, {Name: "gold", RateLimit: wire.RateLimit{RPS: 10, Burst: 20}}},
		Version: wire.APIVersionSpec{Version: "1", Target: wire.APITarget{Definition: "invoice", DefinitionVersion: "1"}},
	}
}

// mustCreate builds a state with one API whose version 1 is published.
func mustCreate(t *testing.T, req wire.CreateAPIRequest) *state {
	t.Helper()
	st := newState("acme")
	a, err := st.createAPI(CreateAPIInput{Request: req, By: "ann"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	st.apis[a.Name] = a
	a, err = st.transition(TransitionInput{API: a.Name, Version: "1", Request: wire.TransitionRequest{State: wire.StatePublished}, By: "ann"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	st.apis[a.Name] = a
	return st
}

func wantErr(t *testing.T, what string, err *Error, kind error, path string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: accepted", what)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("%s: %v (%s), want kind %v", what, err, err.Code, kind)
	}
	if path != "" && (len(err.Details) == 0 || err.Details[0].Path != path) {
		t.Fatalf("%s: details %+v, want path %q", what, err.Details, path)
	}
}

func TestCheckCreate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*wire.CreateAPIRequest)
		path string
	}{
		{"bad name", func(r *wire.CreateAPIRequest) { r.Name = "Bad_Name" }, "name"},
		{"bad kind", func(r *wire.CreateAPIRequest) { r.Kind = "graphql" }, "kind"},
		{"no title", func(r *wire.CreateAPIRequest) { r.Title = " " }, "title"},
		{"bad visibility", func(r *wire.CreateAPIRequest) { r.Visibility = "public" }, "visibility"},
		{"bad tag", func(r *wire.CreateAPIRequest) { r.Tags = []string{"OK"} }, "tags[0]"},
		{"duplicate plan", func(r *wire.CreateAPIRequest) { r.Plans = append(r.Plans, Plan{Name: "free"}) }, "plans[2].name"},
		{"negative quota", func(r *wire.CreateAPIRequest) { r.Plans[0].Quota.Daily = -1 }, "plans[0].quota.daily"},
		{"daily over monthly", func(r *wire.CreateAPIRequest) { r.Plans[0].Quota.Monthly = 2 }, "plans[0].quota.daily"},
		{"missing target", func(r *wire.CreateAPIRequest) { r.Version.Target.Definition = "" }, "version.target.definition"},
		{"foreign target field", func(r *wire.CreateAPIRequest) { r.Version.Target.Model = "m" }, "version.target.model"},
		{"no approvers", func(r *wire.CreateAPIRequest) { r.Approval = &wire.SubscriptionApproval{} }, "approval.approvers"},
		{"escalate without escalate_to", func(r *wire.CreateAPIRequest) {
			r.Approval = &wire.SubscriptionApproval{Approvers: wire.Approvers{Roles: []string{"admin"}}, OnTimeout: "escalate", Timeout: "1h"}
		}, "approval.escalate_to"},
		{"service without openapi", func(r *wire.CreateAPIRequest) {
			r.Kind, r.Version.Target = wire.APIKindService, wire.APITarget{Service: "billing"}
		}, "version.openapi"},
		{"openapi 2", func(r *wire.CreateAPIRequest) {
			r.Kind, r.Version.Target, r.Version.OpenAPI = wire.APIKindService, wire.APITarget{Service: "billing"}, []byte(`{"swagger":"2.0"}`)
		}, "version.openapi.openapi"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := orchestrationAPI("invoices")
			tc.edit(&r)
			wantErr(t, tc.name, CheckCreate(r), ErrInvalid, tc.path)
		})
	}
	if err := CheckCreate(orchestrationAPI("invoices")); err != nil {
		t.Fatalf("valid request refused: %v", err)
	}
}

func TestCreateDefaults(t *testing.T) {
	st := newState("acme")
	r := orchestrationAPI("invoices")
	r.Plans, r.Visibility, r.Approval = nil, "", nil
	a, err := st.createAPI(CreateAPIInput{Request: r, By: "ann"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if a.Visibility != wire.VisibilityPrivate || len(a.Plans) != 1 || a.Plans[0].Name != "default" ||
		a.Approval.None || a.Approval.Approvers.Roles[0] != "admin" || a.Versions[0].State != wire.StateDraft || a.Owner != "acme" {
		t.Fatalf("defaults: %+v", a)
	}
	if len(a.History) != 1 || a.History[0].By != "ann" || a.History[0].Action != wire.ActionCreated {
		t.Fatalf("history: %+v", a.History)
	}
	st.apis[a.Name] = a
	_, err = st.createAPI(CreateAPIInput{Request: r}, t0)
	wantErr(t, "duplicate", err, ErrConflict, "")
}

func TestLifecycle(t *testing.T) {
	st := newState("acme")
	a, _ := st.createAPI(CreateAPIInput{Request: orchestrationAPI("invoices")}, t0)
	st.apis[a.Name] = a
	move := func(version, to string, req wire.TransitionRequest) (*API, *Error) {
		req.State = to
		a, err := st.transition(TransitionInput{API: "invoices", Version: version, Request: req, By: "bob"}, t0.Add(time.Hour))
		if err == nil {
			st.apis[a.Name] = a
		}
		return a, err
	}
	_, err := move("1", wire.StateDeprecated, wire.TransitionRequest{})
	wantErr(t, "draft to deprecated", err, ErrConflict, "state")
	if !strings.Contains(err.Message, "is draft") || !strings.Contains(err.Message, "published or retired") {
		t.Errorf("message names the state and the moves: %s", err.Message)
	}
	if _, err := move("1", wire.StatePublished, wire.TransitionRequest{Reason: "GA"}); err != nil {
		t.Fatal(err)
	}
	_, err = move("1", wire.StateRetired, wire.TransitionRequest{})
	wantErr(t, "published to retired", err, ErrConflict, "state")
	v2, err := st.addVersion(AddVersionInput{API: "invoices", Spec: wire.APIVersionSpec{Version: "2", Target: wire.APITarget{Definition: "invoice", DefinitionVersion: "2"}}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	st.apis["invoices"] = v2
	_, err = move("1", wire.StateDeprecated, wire.TransitionRequest{Successor: "2"})
	wantErr(t, "successor in draft", err, ErrInvalid, "successor")
	if _, err := move("2", wire.StatePublished, wire.TransitionRequest{}); err != nil {
		t.Fatal(err)
	}
	past := t0.Add(-time.Hour)
	_, err = move("1", wire.StateDeprecated, wire.TransitionRequest{Successor: "2", Sunset: &past})
	wantErr(t, "sunset in the past", err, ErrInvalid, "sunset")
	a, err = move("1", wire.StateDeprecated, wire.TransitionRequest{Successor: "2", Reason: "v2 is out"})
	if err != nil {
		t.Fatal(err)
	}
	v := a.Version("1")
	if v.Sunset == nil || !v.Sunset.Equal(t0.Add(time.Hour+DefaultSunset)) || v.Successor != "2" || v.DeprecatedAt == nil {
		t.Fatalf("deprecated: %+v", v)
	}
	h := LifecycleHeaders(a, v)
	if h.Get("Deprecation") != "@"+strconv.FormatInt(t0.Add(time.Hour).Unix(), 10) || h.Get("Sunset") == "" || len(h.Values("Link")) != 2 ||
		!strings.Contains(h.Values("Link")[0], `</v1/catalog/invoices?version=2>; rel="successor-version"`) {
		t.Fatalf("headers: %v", h)
	}
	if _, err := move("1", wire.StateRetired, wire.TransitionRequest{Reason: "sunset reached"}); err != nil {
		t.Fatal(err)
	}
	_, err = move("1", wire.StatePublished, wire.TransitionRequest{})
	wantErr(t, "back from retired", err, ErrConflict, "state")
	if !strings.Contains(err.Message, "retired is final") {
		t.Errorf("message: %s", err.Message)
	}
	_, err = move("9", wire.StatePublished, wire.TransitionRequest{})
	wantErr(t, "unknown version", err, ErrNotFound, "")
	last := st.apis["invoices"].History
	if e := last[len(last)-1]; e.From != wire.StateDeprecated || e.To != wire.StateRetired || e.By != "bob" || e.Reason != "sunset reached" {
		t.Fatalf("history: %+v", e)
	}
}

func TestSubscribeRules(t *testing.T) {
	st := mustCreate(t, orchestrationAPI("invoices"))
	priv := orchestrationAPI("internal")
	priv.Visibility = wire.VisibilityPrivate
	a, _ := st.createAPI(CreateAPIInput{Request: priv}, t0)
	st.apis[a.Name] = a
	in := SubscribeInput{ID: "sub_0123456789", API: "invoices", Consumer: "beta", Plan: "free", By: "carl"}

	for _, tc := range []struct {
		name string
		edit func(*SubscribeInput)
		kind error
		path string
	}{
		{"unknown API", func(i *SubscribeInput) { i.API = "nope" }, ErrNotFound, ""},
		{"private API", func(i *SubscribeInput) { i.API = "internal" }, ErrNotFound, ""},
		{"own API", func(i *SubscribeInput) { i.Consumer = "acme" }, ErrConflict, ""},
		{"plan not offered", func(i *SubscribeInput) { i.Plan = "platinum" }, ErrInvalid, "plan"},
		{"bad app", func(i *SubscribeInput) { i.App = "Mobile App" }, ErrInvalid, "app"},
		{"bad id", func(i *SubscribeInput) { i.ID = "x" }, ErrInvalid, "id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i := in
			tc.edit(&i)
			_, err := st.subscribe(i, t0)
			wantErr(t, tc.name, err, tc.kind, tc.path)
		})
	}
	s, err := st.subscribe(in, t0)
	if err != nil {
		t.Fatal(err)
	}
	if s.State != wire.SubscriptionPending || s.WorkflowID != ApprovalRunID(in.ID) || s.Owner != "acme" {
		t.Fatalf("pending: %+v", s)
	}
	st.subs[s.ID] = s
	again, err := st.subscribe(in, t0)
	if err != nil || again != s {
		t.Fatalf("retried request: %v", err)
	}
	second := in
	second.ID = "sub_9999999999"
	_, err = st.subscribe(second, t0)
	wantErr(t, "second while pending", err, ErrConflict, "")
	if err.Code != "subscription_pending" {
		t.Errorf("code %s", err.Code)
	}
	app := second
	app.App = "mobile"
	if _, err := st.subscribe(app, t0); err != nil {
		t.Fatalf("an app of the same tenant may subscribe on its own: %v", err)
	}

	// Decision, revocation, cancellation.
	d, err := st.decide(DecideInput{ID: s.ID, Approved: true, By: "ann", Reason: "ok"}, t0)
	if err != nil || d.State != wire.SubscriptionActive || d.DecidedBy != "ann" {
		t.Fatalf("approve: %+v %v", d, err)
	}
	st.subs[s.ID] = d
	_, err = st.decide(DecideInput{ID: s.ID, Approved: false}, t0)
	wantErr(t, "decide twice", err, ErrConflict, "")
	_, err = st.end(EndInput{ID: s.ID, Consumer: "gamma"}, t0, true)
	wantErr(t, "cancel by another tenant", err, ErrNotFound, "")
	r, err := st.end(EndInput{ID: s.ID, By: "ann", Reason: "abuse"}, t0, false)
	if err != nil || r.State != wire.SubscriptionRevoked || r.EndedBy != "ann" || r.History[len(r.History)-1].Reason != "abuse" {
		t.Fatalf("revoke: %+v %v", r, err)
	}
	st.subs[s.ID] = r
	_, err = st.end(EndInput{ID: s.ID, Consumer: "beta"}, t0, true)
	wantErr(t, "cancel a revoked one", err, ErrConflict, "")

	// Approval none: active at once. Retired: gone.
	none := orchestrationAPI("open")
	none.Approval = &wire.SubscriptionApproval{None: true}
	st2 := mustCreate(t, none)
	s2, err := st2.subscribe(SubscribeInput{ID: "sub_aaaaaaaaaa", API: "open", Consumer: "beta", Plan: "gold"}, t0)
	if err != nil || s2.State != wire.SubscriptionActive || s2.WorkflowID != "" {
		t.Fatalf("approval none: %+v %v", s2, err)
	}
	for _, to := range []string{wire.StateDeprecated, wire.StateRetired} {
		a, err := st2.transition(TransitionInput{API: "open", Version: "1", Request: wire.TransitionRequest{State: to}}, t0)
		if err != nil {
			t.Fatal(err)
		}
		st2.apis["open"] = a
	}
	_, err = st2.subscribe(SubscribeInput{ID: "sub_bbbbbbbbbb", API: "open", Consumer: "gamma", Plan: "gold"}, t0)
	wantErr(t, "retired", err, ErrGone, "")
}

func TestUpdateKeepsHeldPlans(t *testing.T) {
	st := mustCreate(t, orchestrationAPI("invoices"))
	s, _ := st.subscribe(SubscribeInput{ID: "sub_0123456789", API: "invoices", Consumer: "beta", Plan: "free"}, t0)
	st.subs[s.ID] = s
	plans := []Plan{{Name: "gold"}}
	_, err := st.updateAPI(UpdateAPIInput{API: "invoices", Request: wire.UpdateAPIRequest{Plans: &plans}}, t0)
	wantErr(t, "drop a held plan", err, ErrConflict, "")
	title := "Invoices v2"
	a, err := st.updateAPI(UpdateAPIInput{API: "invoices", Request: wire.UpdateAPIRequest{Title: &title, Reason: "rename"}, By: "ann"}, t0)
	if err != nil || a.Title != title || !strings.Contains(a.History[len(a.History)-1].Reason, "changed title: rename") {
		t.Fatalf("update: %+v %v", a, err)
	}
}

func TestApprovalJSON(t *testing.T) {
	var a wire.SubscriptionApproval
	if err := a.UnmarshalJSON([]byte(`"none"`)); err != nil || !a.None {
		t.Fatalf("none: %+v %v", a, err)
	}
	if b, _ := a.MarshalJSON(); string(b) != `"none"` {
		t.Fatalf("marshal none: %s", b)
	}
	if err := a.UnmarshalJSON([]byte(`{"approvers": {"roles": ["admin"]}, "quorum": 2}`)); err != nil || a.None || a.Quorum != 2 {
		t.Fatalf("object: %+v %v", a, err)
	}
	if err := a.UnmarshalJSON([]byte(`{"approverz": {}}`)); err == nil {
		t.Fatal("unknown field accepted")
	}
	if err := a.UnmarshalJSON([]byte(`"some"`)); err == nil {
		t.Fatal(`"some" accepted`)
	}
}

// TestApprovalDefinitionIsValid: the built-in definition passes the
// definition rules for every approval an API may configure.
func TestApprovalDefinitionIsValid(t *testing.T) {
	for _, a := range []wire.SubscriptionApproval{
		{Approvers: wire.Approvers{Roles: []string{"admin"}}},
		{Approvers: wire.Approvers{Users: []string{"ann", "bob"}}, Quorum: 2, Timeout: "24h", OnTimeout: "approve"},
		{Approvers: wire.Approvers{Roles: []string{"approver"}}, Timeout: "1h", OnTimeout: "escalate",
			EscalateTo: &wire.Approvers{Roles: []string{"admin"}}, EscalationTimeout: "1h"},
	} {
		d := ApprovalDefinition(a)
		if err := d.Validate(nil); err != nil {
			t.Errorf("%+v: %v", a, err)
		}
	}
}
