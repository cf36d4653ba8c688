package orchestrator

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
// started with; they must be registered on the namespace first.
var SearchAttributes = map[string]enumspb.IndexedValueType{
	workflows.SearchAttrTenant:     enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	workflows.SearchAttrDefinition: enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	workflows.SearchAttrVersion:    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
}

// EnsureSearchAttributes registers the missing SearchAttributes on the
// namespace (idempotent). It needs operator rights; in production an
// operator may register them once with the Temporal CLI instead.
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes of %s: %w", namespace, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range SearchAttributes {
		if _, ok := have.GetCustomAttributes()[name]; !ok {
			missing[name] = typ
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: namespace, SearchAttributes: missing,
	})
	var exists *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("register search attributes on %s: %w", namespace, err)
	}
	return nil
}
