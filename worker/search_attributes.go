package worker

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/gateflow/gateflow/workflows"
)

// SearchAttributes are the custom search attributes orchestrations are
// started with, all of type Keyword.
var SearchAttributes = []string{workflows.SearchAttrTenant, workflows.SearchAttrDefinition, workflows.SearchAttrVersion}

// EnsureSearchAttributes registers the Keyword search attributes of
// orchestrations in the namespace when they are missing. It is idempotent
// and safe to run from several processes at once; it fails when an
// attribute exists with another type.
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	ops := c.OperatorService()
	resp, err := ops.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes of namespace %s: %w", namespace, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for _, name := range SearchAttributes {
		t, ok := resp.GetCustomAttributes()[name]
		if !ok {
			t, ok = resp.GetSystemAttributes()[name]
		}
		switch {
		case !ok:
			missing[name] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
		case t != enumspb.INDEXED_VALUE_TYPE_KEYWORD:
			return fmt.Errorf("search attribute %s exists in namespace %s with type %s, want Keyword", name, namespace, t)
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
