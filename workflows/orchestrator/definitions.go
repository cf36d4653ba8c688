package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/gateflow/gateflow/workflows/definition"
)

// ListDefinitions returns every definition version visible to the caller's
// tenant, sorted by name and version.
func (o *Orchestrator) ListDefinitions(ctx context.Context, caller Caller) ([]DefinitionInfo, error) {
	if err := checkCaller(caller); err != nil {
		return nil, err
	}
	list, err := o.opts.Definitions.List(ctx, caller.Tenant)
	if err != nil {
		return nil, fmt.Errorf("list definitions: %w", err)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].Name != list[j].Name {
			return list[i].Name < list[j].Name
		}
		return definition.CompareVersions(list[i].Version, list[j].Version) < 0
	})
	if list == nil {
		list = []DefinitionInfo{}
	}
	return list, nil
}

// GetDefinition returns name@version ("" or "latest" for the latest).
func (o *Orchestrator) GetDefinition(ctx context.Context, caller Caller, name, version string) (definition.Definition, error) {
	if err := checkCaller(caller); err != nil {
		return definition.Definition{}, err
	}
	if version == "latest" {
		version = ""
	}
	if !ValidName(name) || (version != "" && !ValidVersion(version)) {
		return definition.Definition{}, newError(ErrNotFound, "definition_not_found", "definition %s@%s not found", name, version)
	}
	def, err := o.opts.Definitions.Get(ctx, caller.Tenant, name, version)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return definition.Definition{}, newError(ErrNotFound, "definition_not_found", "definition %s@%s not found", name, orDefault(version, "latest"))
		}
		return definition.Definition{}, fmt.Errorf("get definition %s: %w", name, err)
	}
	return def, nil
}

// PublishDefinition validates def and publishes it as name@version. The
// name and version in the body, when given, must match. Published versions
// are immutable: publishing an existing version again is ErrConflict
// unless the store treats an identical body as a no-op.
func (o *Orchestrator) PublishDefinition(ctx context.Context, caller Caller, name, version string, def definition.Definition) (DefinitionInfo, error) {
	if err := checkCaller(caller); err != nil {
		return DefinitionInfo{}, err
	}
	var p problems
	if !ValidName(name) {
		p.add("name", "must be a definition name")
	}
	if !ValidVersion(version) || version == "latest" {
		p.add("version", "must be a version (not \"latest\")")
	}
	if def.Name != "" && def.Name != name {
		p.add("body.name", fmt.Sprintf("is %q but the URL names %q", def.Name, name))
	}
	if def.Version != "" && def.Version != version {
		p.add("body.version", fmt.Sprintf("is %q but the URL names %q", def.Version, version))
	}
	if err := p.err("definition"); err != nil {
		return DefinitionInfo{}, err
	}
	def.Name, def.Version = name, version
	if err := o.opts.ValidateDefinition(caller.Tenant, &def); err != nil {
		return DefinitionInfo{}, validationOr(err, "definition "+def.Ref(), "validate definition")
	}
	info, err := o.opts.Definitions.Publish(ctx, caller.Tenant, def, caller.SubmittedBy())
	if err != nil {
		var ve *definition.ValidationError
		var oe *Error
		switch {
		case errors.As(err, &ve), errors.As(err, &oe):
			return DefinitionInfo{}, err
		case errors.Is(err, ErrConflict):
			return DefinitionInfo{}, newError(ErrConflict, "version_exists", "definition %s is already published with another content; publish a new version", def.Ref())
		}
		return DefinitionInfo{}, temporalError(err, "publish "+def.Ref())
	}
	return info, nil
}
