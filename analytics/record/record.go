// Package record defines the call record: one per ingress request and per
// activity attempt, streamed through Kafka into ClickHouse.
//
// The JSON form is the wire format (documented in docs/ANALYTICS.md). It is
// versioned by SchemaVersion; consumers accept every version they know and
// send the rest to the dead-letter topic.
package record

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/gateflow/gateflow/activities/calls"
)

// SchemaVersion is the version of the wire format written by this code.
const SchemaVersion = 1

// Outcome is how a call ended.
type Outcome string

// Outcomes.
const (
	OutcomeOK        Outcome = "ok"
	OutcomeError     Outcome = "error"
	OutcomeTimeout   Outcome = "timeout"
	OutcomeRejected  Outcome = "rejected"
	OutcomeCancelled Outcome = "cancelled"
)

// MaxErrorMessage is the length error messages are truncated to.
const MaxErrorMessage = 1024

// Record is one call. Zero values mean "not applicable" (e.g. Tokens for an
// HTTP call).
type Record struct {
	Schema int `json:"schema"`
	// ID is a UUIDv7: unique, and time-ordered so inserts stay sorted.
	ID string `json:"id"`
	// TS is when the call started, in Unix milliseconds.
	TS         int64      `json:"ts"`
	Tenant     string     `json:"tenant"`
	KeyID      string     `json:"key_id,omitempty"`
	Kind       calls.Kind `json:"kind"`
	Target     string     `json:"target"`
	WorkflowID string     `json:"workflow_id,omitempty"`
	RunID      string     `json:"run_id,omitempty"`
	Definition string     `json:"definition,omitempty"`
	Version    string     `json:"version,omitempty"`
	StepID     string     `json:"step_id,omitempty"`
	Attempt    int32      `json:"attempt,omitempty"`
	StatusCode int32      `json:"status_code,omitempty"`
	Outcome    Outcome    `json:"outcome"`
	LatencyMS  float64    `json:"latency_ms"`
	ReqBytes   int64      `json:"request_bytes,omitempty"`
	RespBytes  int64      `json:"response_bytes,omitempty"`
	TokensIn   int64      `json:"tokens_in,omitempty"`
	TokensOut  int64      `json:"tokens_out,omitempty"`
	// CostUSD is the cost of the call in US dollars, when known.
	CostUSD float64 `json:"cost_usd,omitempty"`
	// Cache is the response cache's part in a model call: "hit" (answered
	// from the cache, no provider call), "miss" (stored after), "refresh"
	// (caller asked for a fresh answer); empty when the call was not
	// eligible. CostSavedUSD is what a hit would have cost: the cost of
	// the answer it replays.
	Cache        string            `json:"cache,omitempty"`
	CostSavedUSD float64           `json:"cost_saved_usd,omitempty"`
	ErrorClass   string            `json:"error_class,omitempty"`
	ErrorMsg     string            `json:"error_message,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	// API and APIVersion name the catalogue API a call was made to;
	// Consumer and ConsumerApp who it served (the consumer tenant and the
	// app of its grant), set once the call was admitted. Empty for calls
	// outside the catalogue.
	API         string `json:"api,omitempty"`
	APIVersion  string `json:"api_version,omitempty"`
	Consumer    string `json:"consumer,omitempty"`
	ConsumerApp string `json:"consumer_app,omitempty"`
	// Gateway calls (kind proxy) also fill these: the upstream instance
	// (host:port), the client's method and the path after /gw/{api}, the
	// time to the upstream answer's headers (all tries), what the HTTP
	// cache did (hit, miss, revalidated, bypass; empty when not cached)
	// and the retries on another instance.
	Upstream          string  `json:"upstream,omitempty"`
	Method            string  `json:"method,omitempty"`
	Route             string  `json:"route,omitempty"`
	UpstreamLatencyMS float64 `json:"upstream_latency_ms,omitempty"`
	CacheStatus       string  `json:"cache_status,omitempty"`
	Retries           int32   `json:"retries,omitempty"`
	// TraceID and SpanID are the W3C trace context of the call (32 and
	// 16 lower-case hex digits): the ingress request's server span, or the
	// activity's span; empty when the call ran outside a trace. One
	// request's records share the trace id (docs/TRACING.md).
	TraceID string `json:"trace_id,omitempty"`
	SpanID  string `json:"span_id,omitempty"`
}

// New returns a record of the given kind started at start, with a fresh id
// and the current schema version.
func New(kind calls.Kind, start time.Time) Record {
	return Record{
		Schema: SchemaVersion,
		ID:     NewID(),
		TS:     start.UnixMilli(),
		Kind:   kind,
	}
}

// SetTrace fills TraceID and SpanID from the span in ctx; it leaves them
// empty when ctx holds no valid span.
func (r *Record) SetTrace(ctx context.Context) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return
	}
	r.TraceID, r.SpanID = sc.TraceID().String(), sc.SpanID().String()
}

// NewID returns a new UUIDv7 string.
func NewID() string {
	id, err := uuid.NewV7()
	if err != nil {
		// NewV7 fails only if the system's random source fails; fall back
		// to a v4 id, still unique.
		return uuid.NewString()
	}
	return id.String()
}

// SetError fills the error fields, truncating the message.
func (r *Record) SetError(class string, err error) {
	if err == nil {
		return
	}
	r.ErrorClass = class
	r.ErrorMsg = Truncate(err.Error(), MaxErrorMessage)
}

// Truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// Validate reports the first reason the record cannot be stored.
func (r *Record) Validate() error {
	_, err := r.validate()
	return err
}

// validate is Validate, returning the id parsed.
func (r *Record) validate() (uuid.UUID, error) {
	var err error
	switch {
	case r.Schema < 1 || r.Schema > SchemaVersion:
		err = fmt.Errorf("unsupported schema version %d", r.Schema)
	case r.ID == "":
		err = fmt.Errorf("missing id")
	case r.TS <= 0:
		err = fmt.Errorf("missing ts")
	case r.Kind == "":
		err = fmt.Errorf("missing kind")
	case r.Outcome == "":
		err = fmt.Errorf("missing outcome")
	}
	if err != nil {
		return uuid.UUID{}, err
	}
	id, err := uuid.Parse(r.ID)
	if err != nil {
		return uuid.UUID{}, fmt.Errorf("id %q: %w", r.ID, err)
	}
	return id, nil
}
