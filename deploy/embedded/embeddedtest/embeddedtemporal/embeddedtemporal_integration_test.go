//go:build integration

package embeddedtemporal_test

import (
	"context"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/gateflow/gateflow/deploy/embedded/embeddedtest/embeddedtemporal"
	"github.com/gateflow/gateflow/workflows"
)

func echo(_ workflow.Context, s string) (string, error) { return s, nil }

// TestGateflowSearchAttributes checks that the embedded server (SQLite
// visibility) accepts and filters on Gateflow's three Keyword attributes.
func TestGateflowSearchAttributes(t *testing.T) {
	s := embeddedtemporal.StartTemporal(t)
	c := embeddedtemporal.Dial(t, s)
	w := worker.New(c, "tq", worker.Options{})
	w.RegisterWorkflow(echo)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	attrs := temporal.NewSearchAttributes(
		temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrTenant).ValueSet("acme"),
		temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrDefinition).ValueSet("onboarding"),
		temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrVersion).ValueSet("3"),
	)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: "tq", TypedSearchAttributes: attrs}, echo, "hi")
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	query := workflows.SearchAttrTenant + " = 'acme' AND " + workflows.SearchAttrDefinition + " = 'onboarding' AND " +
		workflows.SearchAttrVersion + " = '3'"
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: s.Namespace(), Query: query})
		if err == nil && len(resp.Executions) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("list %q: %v, %v", query, resp, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
