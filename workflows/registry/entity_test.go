package registry

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/workflows/definition"
)

// examplesDir is the example config directory.
const examplesDir = "../../deploy/examples"

func testDef(name, version, service string) definition.Definition {
	return definition.Definition{Name: name, Version: version, Description: "d " + version,
		Steps: []definition.Step{{ID: "a", Kind: definition.KindHTTP, Service: service}}}
}

type updateResult struct {
	rejected error
	entry    Entry
	err      error
	done     bool
}

func callback(r *updateResult) *testsuite.TestUpdateCallback {
	return &testsuite.TestUpdateCallback{
		OnReject: func(err error) { r.rejected, r.done = err, true },
		OnAccept: func() {},
		OnComplete: func(v any, err error) {
			r.done = true
			r.err = err
			if e, ok := v.(Entry); ok {
				r.entry = e
			}
		},
	}
}

func newEntityEnv(t *testing.T, e *Entity) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(e.Run, workflow.RegisterOptions{Name: RegistryWorkflow})
	return env
}

func TestEntityPublishAndQuery(t *testing.T) {
	reg, err := sysconfig.New(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	e := NewEntity(reg)
	e.ContinueAsNewAfter = 3
	env := newEntityEnv(t, e)
	var ok1, same, conflict, invalid, fileDup, ok2, ok3 updateResult
	var listed []Entry
	var got Published
	var missingErr error
	step := func(d time.Duration, fn func()) { env.RegisterDelayedCallback(fn, d) }
	step(1*time.Second, func() {
		env.UpdateWorkflow(PublishUpdate, "u1", callback(&ok1), PublishRequest{Definition: testDef("orders", "1", "echo"), By: "ann"})
	})
	step(2*time.Second, func() {
		env.UpdateWorkflow(PublishUpdate, "u2", callback(&same), PublishRequest{Definition: testDef("orders", "1", "echo"), By: "bob"})
	})
	step(3*time.Second, func() {
		d := testDef("orders", "1", "echo")
		d.Description = "changed"
		env.UpdateWorkflow(PublishUpdate, "u3", callback(&conflict), PublishRequest{Definition: d})
	})
	step(4*time.Second, func() {
		env.UpdateWorkflow(PublishUpdate, "u4", callback(&invalid), PublishRequest{Definition: testDef("orders", "2", "nope")})
	})
	step(5*time.Second, func() {
		env.UpdateWorkflow(PublishUpdate, "u5", callback(&fileDup), PublishRequest{Definition: testDef("hello", "1", "echo")})
	})
	step(6*time.Second, func() {
		env.UpdateWorkflow(PublishUpdate, "u6", callback(&ok2), PublishRequest{Definition: testDef("orders", "10", "echo")})
	})
	step(7*time.Second, func() {
		v, err := env.QueryWorkflow(ListQuery)
		if err != nil {
			t.Error(err)
			return
		}
		if err := v.Get(&listed); err != nil {
			t.Error(err)
		}
		v, err = env.QueryWorkflow(GetQuery, GetRequest{Name: "orders", Version: "10"})
		if err != nil {
			t.Error(err)
			return
		}
		if err := v.Get(&got); err != nil {
			t.Error(err)
		}
		_, missingErr = env.QueryWorkflow(GetQuery, GetRequest{Name: "orders", Version: "9"})
	})
	step(8*time.Second, func() {
		env.UpdateWorkflow(PublishUpdate, "u7", callback(&ok3), PublishRequest{Definition: testDef("billing", "1", "echo")})
	})
	env.ExecuteWorkflow(RegistryWorkflow, RegistryInput{Tenant: "dev"})

	if ok1.rejected != nil || ok1.err != nil || ok1.entry.Version != "1" || ok1.entry.PublishedBy != "ann" || ok1.entry.Source != SourceAPI || ok1.entry.Digest == "" {
		t.Fatalf("first publish: %+v", ok1)
	}
	if same.rejected != nil || same.err != nil || !same.entry.Existing || same.entry.PublishedBy != "ann" {
		t.Fatalf("idempotent republish: %+v", same)
	}
	assertAppError(t, "conflict", conflict.rejected, ErrTypeExists)
	assertAppError(t, "invalid", invalid.rejected, ErrTypeInvalid)
	var app *temporal.ApplicationError
	if errors.As(invalid.rejected, &app) {
		var ps []definition.Problem
		if err := app.Details(&ps); err != nil || len(ps) != 1 || ps[0].Path != "steps[0].service" {
			t.Fatalf("invalid details: %v %v", ps, err)
		}
	}
	assertAppError(t, "file collision", fileDup.rejected, ErrTypeExists)
	if ok2.rejected != nil || ok2.err != nil {
		t.Fatalf("second version: %+v", ok2)
	}
	if len(listed) != 2 || listed[0].Version != "1" || listed[1].Version != "10" {
		t.Fatalf("list: %+v", listed)
	}
	if got.Definition.Version != "10" || got.Digest == "" {
		t.Fatalf("get: %+v", got)
	}
	if missingErr == nil {
		t.Fatal("get of a missing version succeeded")
	}

	// The third publication triggers continue-as-new, carrying the state.
	if !ok3.done || ok3.err != nil {
		t.Fatalf("third publish: %+v", ok3)
	}
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("want continue-as-new, got %v", err)
	}
	var next RegistryInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if next.Tenant != "dev" || len(next.State) == 0 {
		t.Fatalf("continue-as-new input: %+v", next)
	}

	env2 := newEntityEnv(t, e)
	var again updateResult
	var listed2 []Entry
	env2.RegisterDelayedCallback(func() {
		v, err := env2.QueryWorkflow(ListQuery)
		if err == nil {
			err = v.Get(&listed2)
		}
		if err != nil {
			t.Error(err)
		}
		d := testDef("orders", "1", "echo")
		d.Description = "changed"
		env2.UpdateWorkflow(PublishUpdate, "u8", callback(&again), PublishRequest{Definition: d})
	}, time.Second)
	env2.RegisterDelayedCallback(func() { env2.CancelWorkflow() }, 2*time.Second)
	env2.ExecuteWorkflow(RegistryWorkflow, next)
	if len(listed2) != 3 || listed2[0].Name != "billing" || listed2[2].Version != "10" || listed2[1].PublishedBy != "ann" {
		t.Fatalf("state after continue-as-new: %+v", listed2)
	}
	assertAppError(t, "immutable after continue-as-new", again.rejected, ErrTypeExists)
}

func TestEntityLimit(t *testing.T) {
	reg, err := sysconfig.NewStatic(sysconfig.Config{Services: map[string]sysconfig.Service{"echo": {BaseURL: "http://127.0.0.1:1"}},
		Tenants: map[string]sysconfig.Tenant{"small": {MaxPublishedDefinitions: 1, Uses: sysconfig.Uses{Services: []string{"echo"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	env := newEntityEnv(t, NewEntity(reg))
	var a, b updateResult
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(PublishUpdate, "a", callback(&a), PublishRequest{Definition: testDef("x", "1", "echo")})
	}, time.Second)
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(PublishUpdate, "b", callback(&b), PublishRequest{Definition: testDef("x", "2", "echo")})
	}, 2*time.Second)
	env.RegisterDelayedCallback(func() { env.CancelWorkflow() }, 3*time.Second)
	env.ExecuteWorkflow(RegistryWorkflow, RegistryInput{Tenant: "small"})
	if a.rejected != nil || a.err != nil {
		t.Fatalf("first: %+v", a)
	}
	assertAppError(t, "limit", b.rejected, ErrTypeLimit)
}

func assertAppError(t *testing.T, what string, err error, typ string) {
	t.Helper()
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != typ {
		t.Fatalf("%s: got %v, want application error %s", what, err, typ)
	}
}

func TestPublishErrorMapping(t *testing.T) {
	inv := temporal.NewApplicationErrorWithOptions("bad", ErrTypeInvalid, temporal.ApplicationErrorOptions{
		Details: []any{[]definition.Problem{{Path: "steps[0].id", Message: "required"}}}})
	var ve *definition.ValidationError
	if err := publishError("x@1", inv); !errors.As(err, &ve) || ve.Problems[0].Path != "steps[0].id" {
		t.Fatalf("invalid: %v", err)
	}
	if err := publishError("x@1", temporal.NewApplicationError("m", ErrTypeExists)); !errors.Is(err, ErrExists) {
		t.Fatalf("exists: %v", err)
	}
	if err := publishError("x@1", temporal.NewApplicationError("m", ErrTypeLimit)); !errors.Is(err, ErrLimit) {
		t.Fatalf("limit: %v", err)
	}
}

func TestStateRoundTrip(t *testing.T) {
	pubs := []Published{{Definition: testDef("b", "1", "echo"), Digest: "x"}, {Definition: testDef("a", "2", "echo"), Digest: "y"}}
	b, err := encodeState(pubs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeState(b)
	if err != nil || len(got) != 2 || got[0].Definition.Name != "a" {
		t.Fatalf("%+v %v", got, err)
	}
}

// TestEntityTenantScope: a tenant publishes only definitions whose services
// it may use, and the config dir's definitions it may not use do not
// collide with its own.
func TestEntityTenantScope(t *testing.T) {
	reg, err := sysconfig.NewStatic(sysconfig.Config{
		Services: map[string]sysconfig.Service{"echo": {BaseURL: "http://127.0.0.1:1", Owner: "acme"}, "payments": {BaseURL: "http://127.0.0.1:2"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	env := newEntityEnv(t, NewEntity(reg))
	var own, other updateResult
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(PublishUpdate, "a", callback(&own), PublishRequest{Definition: testDef("x", "1", "echo")})
	}, time.Second)
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(PublishUpdate, "b", callback(&other), PublishRequest{Definition: testDef("y", "1", "payments")})
	}, 2*time.Second)
	env.RegisterDelayedCallback(func() { env.CancelWorkflow() }, 3*time.Second)
	env.ExecuteWorkflow(RegistryWorkflow, RegistryInput{Tenant: "acme"})
	if own.rejected != nil || own.err != nil {
		t.Errorf("own service refused: %+v", own)
	}
	assertAppError(t, "service not granted", other.rejected, ErrTypeInvalid)
	if other.rejected != nil && !strings.Contains(other.rejected.Error(), `unknown service "payments"`) {
		t.Errorf("message %v", other.rejected)
	}
}
