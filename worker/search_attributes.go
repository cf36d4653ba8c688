package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/gateflow/gateflow/workflows"
)

// SearchAttributes are the Keyword search attributes orchestrations are
// started with. Every custom attribute, with its type, is in
// workflows.SearchAttributeTypes (which adds the KeywordList
// GateflowAwaiting that the workflow itself upserts).
var SearchAttributes = []string{workflows.SearchAttrTenant, workflows.SearchAttrDefinition, workflows.SearchAttrVersion}

// ErrSearchAttributesUnverified is returned when the operator API refuses
// to list the namespace's search attributes (e.g. a cloud namespace key
// without that right): they may well exist, so callers warn and go on.
var ErrSearchAttributesUnverified = errors.New("cannot verify search attributes")

// EnsureSearchAttributes registers the search attributes of orchestrations
// (workflows.SearchAttributeTypes) in the namespace when they are missing.
// It is idempotent and safe to run from several processes at once; it
// fails when an attribute exists with another type. Without
// GateflowAwaiting a worker's orchestrations stop at their first approval
// step (Temporal refuses the upsert and retries the workflow task) until
// it is registered.
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	ops := c.OperatorService()
	resp, err := ops.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		var denied *serviceerror.PermissionDenied
		var unimplemented *serviceerror.Unimplemented
		if errors.As(err, &denied) || errors.As(err, &unimplemented) {
			return fmt.Errorf("%w: list search attributes of namespace %s: %w", ErrSearchAttributesUnverified, namespace, err)
		}
		return fmt.Errorf("list search attributes of namespace %s: %w", namespace, err)
	}
	want := workflows.SearchAttributeTypes()
	missing := map[string]enumspb.IndexedValueType{}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		t, ok := resp.GetCustomAttributes()[name]
		if !ok {
			t, ok = resp.GetSystemAttributes()[name]
		}
		switch {
		case !ok:
			missing[name] = want[name]
		case t != want[name]:
			return fmt.Errorf("search attribute %s exists in namespace %s with type %s, want %s", name, namespace, t, want[name])
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = ops.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: missing})
	var exists *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("add search attributes to namespace %s: %w", namespace, err)
	}
	return nil
}
