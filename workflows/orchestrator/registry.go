package orchestrator

import (
	"context"
	"errors"
	"fmt"

	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/registry"
)

// RegistryDefinitions adapts the registry's Store (config-directory
// definitions plus those published through the API, kept in each tenant's
// registry workflow) to Definitions, mapping its sentinel errors.
func RegistryDefinitions(s *registry.Store) Definitions { return registryDefs{s} }

type registryDefs struct{ s *registry.Store }

func (r registryDefs) Get(ctx context.Context, tenant, name, version string) (definition.Definition, error) {
	d, err := r.s.Get(ctx, tenant, name, version)
	return d, registryError(err)
}

func (r registryDefs) List(ctx context.Context, tenant string) ([]DefinitionInfo, error) {
	entries, err := r.s.List(ctx, tenant)
	if err != nil {
		return nil, registryError(err)
	}
	out := make([]DefinitionInfo, len(entries))
	for i, e := range entries {
		out[i] = info(e)
	}
	return out, nil
}

func (r registryDefs) Publish(ctx context.Context, tenant string, def definition.Definition, by string) (DefinitionInfo, error) {
	e, err := r.s.Publish(ctx, tenant, def, by)
	if err != nil {
		return DefinitionInfo{}, registryError(err)
	}
	return info(e), nil
}

func info(e registry.Entry) DefinitionInfo {
	return DefinitionInfo{Name: e.Name, Version: e.Version, Description: e.Description, Source: e.Source,
		PublishedAt: e.PublishedAt, PublishedBy: e.PublishedBy, Existing: e.Existing}
}

func registryError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, registry.ErrNotFound):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.Is(err, registry.ErrExists):
		return fmt.Errorf("%w: %w", ErrConflict, err)
	case errors.Is(err, registry.ErrLimit):
		return &Error{Kind: ErrConflict, Code: "registry_full", Message: err.Error()}
	}
	// Temporal failures of the registry store are unavailable, not
	// internal, and never show their addresses.
	return temporalError(err, "definitions")
}
