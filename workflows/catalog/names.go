package catalog

import (
	"fmt"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/replicated"
)

// API names are unique across tenants, but each owner's catalogue is its
// own entity: before an API is created, its name is claimed for the owner
// in this one small entity (one Update per API creation). A claim is kept
// for good, retired APIs included, so that a name never comes to mean
// another owner's API to consumers who knew it.

// ClaimInput is the argument of UpdateClaimName.
type ClaimInput struct {
	Name  string `json:"name"`
	Owner string `json:"owner"`
}

// NamesInput starts (or continues) the name claims.
type NamesInput struct {
	// State is the gzip-compressed JSON of the claims (name -> owner), set
	// only by continue-as-new.
	State []byte `json:"state,omitempty"`
	// ContinueAsNewAfter: see EntityInput.
	ContinueAsNewAfter int `json:"continue_as_new_after,omitempty"`
}

// Names is the name-claims workflow.
type Names struct{}

func checkClaim(claims map[string]string, in ClaimInput) error {
	switch owner, taken := claims[in.Name]; {
	case !NamePattern.MatchString(in.Name):
		return appError(invalid(definition.Problem{Path: "name", Message: "API names are 2-63 lower-case letters, digits and '-', starting with a letter or digit"}))
	case !definition.TenantPattern.MatchString(in.Owner):
		return appError(invalid(definition.Problem{Path: "owner", Message: "must be a tenant"}))
	case taken && owner != in.Owner:
		return appError(newError(ErrConflict, "name_taken", "the API name %q is taken; choose another", in.Name))
	}
	return nil
}

// Run is the workflow function.
func (n *Names) Run(ctx workflow.Context, in NamesInput) error {
	claims := map[string]string{}
	if len(in.State) > 0 {
		if err := gunzipJSON(in.State, &claims); err != nil {
			return temporal.NewNonRetryableApplicationError("name claims are unreadable", "BadState", err)
		}
	}
	handled := 0
	limit := in.ContinueAsNewAfter
	if limit <= 0 {
		limit = replicated.ContinueAsNewAfter
	}
	if err := workflow.SetQueryHandler(ctx, QueryNames, func() (map[string]string, error) { return claims, nil }); err != nil {
		return err
	}
	err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateClaimName,
		func(ctx workflow.Context, in ClaimInput) (string, error) {
			if err := checkClaim(claims, in); err != nil {
				return "", err
			}
			if _, ok := claims[in.Name]; !ok {
				claims[in.Name] = in.Owner
				handled++
			}
			return in.Owner, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, in ClaimInput) error { return checkClaim(claims, in) }},
	)
	if err != nil {
		return err
	}
	_ = workflow.Await(ctx, func() bool {
		return handled >= limit || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
	})
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return err
	}
	state, err := gzipJSON(claims)
	if err != nil {
		return fmt.Errorf("encode name claims: %w", err)
	}
	return workflow.NewContinueAsNewError(ctx, NamesWorkflow, NamesInput{State: state, ContinueAsNewAfter: in.ContinueAsNewAfter})
}
