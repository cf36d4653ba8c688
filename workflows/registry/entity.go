package registry

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/workflows/definition"
)

// Names registered with Temporal; part of the wire contract with running
// registry workflows. RegistryWorkflow equals workflows.RegistryWorkflow
// (not imported: package workflows depends on this one).
const (
	// RegistryWorkflow is the workflow type of the per-tenant registry.
	RegistryWorkflow = "gateflow.DefinitionRegistry"
	// PublishUpdate publishes a definition (PublishRequest → Entry).
	PublishUpdate = "publish"
	// ListQuery lists the published versions ([]Entry, without definitions).
	ListQuery = "list"
	// GetQuery returns one published version (GetRequest → Published).
	GetQuery = "get"
	// WorkflowIDPrefix is followed by the tenant in registry workflow ids.
	WorkflowIDPrefix = "gateflow-registry/"
)

// Application error types of refused publications, so callers can map
// them without parsing messages.
const (
	ErrTypeInvalid = "InvalidDefinition" // details: []definition.Problem
	ErrTypeExists  = "DefinitionExists"
	ErrTypeLimit   = "RegistryLimit"
)

// Bounds of the entity workflow.
const (
	// continueAsNewAfter is the number of publications after which a run
	// continues as new even if the server does not suggest it yet.
	continueAsNewAfter = 200
	// maxStateBytes bounds the uncompressed JSON of a tenant's published
	// definitions, so the state carried across continue-as-new stays well
	// under Temporal's payload limit once compressed.
	maxStateBytes = 4 << 20
)

// RegistryWorkflowID is the id of the tenant's registry workflow.
func RegistryWorkflowID(tenant string) string { return WorkflowIDPrefix + tenant }

// Entry describes one version: what lists show.
type Entry struct {
	Name        string     `json:"name"`
	Version     string     `json:"version"`
	Description string     `json:"description,omitempty"`
	Source      string     `json:"source"` // "file" or "api"
	PublishedAt *time.Time `json:"published_at,omitempty"`
	PublishedBy string     `json:"published_by,omitempty"`
	// Digest is the SHA-256 of the definition's canonical JSON.
	Digest string `json:"digest,omitempty"`
	// Existing is true when a publish found the same content already
	// published (an idempotent retry).
	Existing bool `json:"existing,omitempty"`
}

// Sources of entries.
const (
	SourceFile = "file"
	SourceAPI  = "api"
)

// Published is a definition published through the API.
type Published struct {
	Definition  definition.Definition `json:"definition"`
	PublishedAt time.Time             `json:"published_at"`
	PublishedBy string                `json:"published_by,omitempty"`
	Digest      string                `json:"digest"`
}

func (p *Published) entry() Entry {
	at := p.PublishedAt
	return Entry{Name: p.Definition.Name, Version: p.Definition.Version, Description: p.Definition.Description,
		Source: SourceAPI, PublishedAt: &at, PublishedBy: p.PublishedBy, Digest: p.Digest}
}

// PublishRequest is the argument of PublishUpdate.
type PublishRequest struct {
	Definition definition.Definition `json:"definition"`
	// By names who published (key id or user), for the catalogue.
	By string `json:"by,omitempty"`
}

// GetRequest is the argument of GetQuery.
type GetRequest struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// RegistryInput starts (or continues) a tenant's registry workflow.
type RegistryInput struct {
	Tenant string `json:"tenant"`
	// State is the gzip-compressed JSON of the published definitions
	// ([]Published), set only by continue-as-new.
	State []byte `json:"state,omitempty"`
}

// Digest returns the SHA-256 of a definition's canonical JSON (map keys
// sorted by encoding/json), used to tell an idempotent republish from a
// conflicting one.
func Digest(d *definition.Definition) (string, error) {
	raw, err := jsonMarshal(d)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:]), nil
}

// Entity is the registry workflow: it holds a tenant's published
// definitions. Its validator checks publications against the current config
// (the catalog and the config-file definitions); validators do not run on
// replay, so reading the config there is safe.
type Entity struct {
	reg *sysconfig.Registry
	// ContinueAsNewAfter is the number of publications after which a run
	// continues as new even when the server does not suggest it yet.
	ContinueAsNewAfter int
}

// NewEntity returns the registry workflow bound to the config registry it
// validates against (nil skips catalog checks).
func NewEntity(reg *sysconfig.Registry) *Entity {
	return &Entity{reg: reg, ContinueAsNewAfter: continueAsNewAfter}
}

// RegisterWorkflows registers the registry workflow on a worker:
// registry.RegisterWorkflows(w, reg).
func RegisterWorkflows(w worker.Registry, reg *sysconfig.Registry) {
	w.RegisterWorkflowWithOptions(NewEntity(reg).Run, workflow.RegisterOptions{Name: RegistryWorkflow})
}

type entityState struct {
	tenant    string
	published []Published // sorted by name, then version
	bytes     int
	handled   int // publications handled by this run
}

func (s *entityState) find(name, version string) int {
	i := sort.Search(len(s.published), func(i int) bool {
		d := &s.published[i].Definition
		return d.Name > name || (d.Name == name && d.Version >= version)
	})
	if i < len(s.published) && s.published[i].Definition.Name == name && s.published[i].Definition.Version == version {
		return i
	}
	return -1
}

// Run is the workflow function.
func (e *Entity) Run(ctx workflow.Context, in RegistryInput) error {
	st := &entityState{tenant: in.Tenant}
	if len(in.State) > 0 {
		pubs, err := gunzipState(in.State)
		if err != nil {
			return temporal.NewNonRetryableApplicationError("registry state is unreadable", "BadState", err)
		}
		st.published = pubs
		for i := range pubs {
			st.bytes += approxSize(&pubs[i].Definition)
		}
	}
	log := workflow.GetLogger(ctx)

	if err := workflow.SetQueryHandler(ctx, ListQuery, func() ([]Entry, error) {
		out := make([]Entry, len(st.published))
		for i := range st.published {
			out[i] = st.published[i].entry()
		}
		return out, nil
	}); err != nil {
		return err
	}
	if err := workflow.SetQueryHandler(ctx, GetQuery, func(req GetRequest) (Published, error) {
		if i := st.find(req.Name, req.Version); i >= 0 {
			return st.published[i], nil
		}
		return Published{}, temporal.NewApplicationError(fmt.Sprintf("%s@%s is not published", req.Name, req.Version), "NotFound")
	}); err != nil {
		return err
	}
	err := workflow.SetUpdateHandlerWithOptions(ctx, PublishUpdate,
		func(ctx workflow.Context, req PublishRequest) (Entry, error) {
			return st.publish(ctx, req)
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, req PublishRequest) error {
			return e.validateAgainstConfig(st, req)
		}},
	)
	if err != nil {
		return err
	}

	// Serve until the history should be cut, then carry the state over.
	// Waiting for AllHandlersFinished drains updates already accepted.
	_ = workflow.Await(ctx, func() bool {
		return st.handled >= e.ContinueAsNewAfter || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
	})
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return err
	}
	state, err := gzipState(st.published)
	if err != nil {
		return err
	}
	log.Info("registry continues as new", "tenant", st.tenant, "published", len(st.published), "handled", st.handled)
	return workflow.NewContinueAsNewError(ctx, RegistryWorkflow, RegistryInput{Tenant: st.tenant, State: state})
}

// validate refuses invalid definitions, versions that exist with another
// content, collisions with config-file definitions, and a full registry.
func (e *Entity) validate(st *entityState, req PublishRequest) error {
	d := &req.Definition
	var cat definition.Catalog
	var snap *sysconfig.Snapshot
	if e.reg != nil {
		snap = e.reg.Current()
		cat = snap.CatalogFor(st.tenant)
	}
	if err := d.Validate(cat); err != nil {
		var ve *definition.ValidationError
		if errors.As(err, &ve) {
			return temporal.NewApplicationErrorWithOptions(ve.Error(), ErrTypeInvalid, temporal.ApplicationErrorOptions{
				NonRetryable: true, Details: []any{ve.Problems},
			})
		}
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalid, nil)
	}
	if snap != nil && snap.MayUseDefinition(st.tenant, d.Name) {
		if _, ok := snap.Definition(d.Name, d.Version); ok {
			return temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("%s is defined in the config directory (%s)", d.Ref(), snap.DefinitionFile(d.Name, d.Version)), ErrTypeExists, nil)
		}
	}
	if i := st.find(d.Name, d.Version); i >= 0 {
		digest, err := Digest(d)
		if err != nil {
			return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalid, nil)
		}
		if digest != st.published[i].Digest {
			return temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("%s is already published with another content; published versions are immutable, publish a new version", d.Ref()), ErrTypeExists, nil)
		}
		return nil // same content: an idempotent retry
	}
	limit := sysconfig.DefaultMaxPublished
	if snap != nil {
		limit = snap.Tenant(st.tenant).MaxPublished()
	}
	if len(st.published) >= limit {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("tenant %q has published %d versions, its limit", st.tenant, len(st.published)), ErrTypeLimit, nil)
	}
	if st.bytes+approxSize(d) > maxStateBytes {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("tenant %q's published definitions would exceed %d bytes", st.tenant, maxStateBytes), ErrTypeLimit, nil)
	}
	return nil
}

// publish applies an accepted publication. It only reads workflow state
// (deterministic on replay); duplicates that slipped between validator and
// handler are refused here again.
func (st *entityState) publish(ctx workflow.Context, req PublishRequest) (Entry, error) {
	d := req.Definition
	digest, err := Digest(&d)
	if err != nil {
		return Entry{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalid, nil)
	}
	if i := st.find(d.Name, d.Version); i >= 0 {
		if st.published[i].Digest != digest {
			return Entry{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("%s is already published with another content", d.Ref()), ErrTypeExists, nil)
		}
		e := st.published[i].entry()
		e.Existing = true
		return e, nil
	}
	p := Published{Definition: d, PublishedAt: workflow.Now(ctx).UTC(), PublishedBy: req.By, Digest: digest}
	i := sort.Search(len(st.published), func(i int) bool {
		o := &st.published[i].Definition
		return o.Name > d.Name || (o.Name == d.Name && o.Version > d.Version)
	})
	st.published = append(st.published, Published{})
	copy(st.published[i+1:], st.published[i:])
	st.published[i] = p
	st.bytes += approxSize(&d)
	st.handled++
	return p.entry(), nil
}

func approxSize(d *definition.Definition) int {
	raw, err := jsonMarshal(d)
	if err != nil {
		return 0
	}
	return len(raw)
}

func encodeState(pubs []Published) ([]byte, error) {
	raw, err := json.Marshal(pubs)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func decodeState(b []byte) ([]Published, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(io.LimitReader(zr, 4*maxStateBytes))
	if err != nil {
		return nil, err
	}
	var pubs []Published
	if err := json.Unmarshal(raw, &pubs); err != nil {
		return nil, err
	}
	sort.Slice(pubs, func(i, j int) bool {
		a, b := &pubs[i].Definition, &pubs[j].Definition
		return a.Name < b.Name || (a.Name == b.Name && a.Version < b.Version)
	})
	return pubs, nil
}
