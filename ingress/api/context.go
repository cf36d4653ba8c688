package api

import (
	"context"

	"github.com/gateflow/gateflow/ingress/auth"
)

// RequestInfo is what the ingress knows about a request while it runs. The
// ingress creates it before any handler; handlers (and route groups) add
// what they learn (the workflow concerned) so that it reaches the call
// record and the access log.
type RequestInfo struct {
	RequestID string
	// Route is the route pattern, e.g. "/v1/workflows/{id}".
	Route string
	// Principal is set once the key is authenticated.
	Principal *auth.Principal
	// WorkflowID, Definition and Version name the orchestration concerned.
	WorkflowID string
	Definition string
	Version    string
	// API and APIVersion name the catalogue API a request called;
	// Consumer and ConsumerApp who was served (set only once the call was
	// admitted). APIState is the version's lifecycle state.
	API         string
	APIVersion  string
	APIState    string
	Consumer    string
	ConsumerApp string
	// Err is the error answered, for the access log.
	Err error
	// Recorded is set by a handler that emitted the request's call record
	// itself (the gateway's proxy records); the ingress then emits none.
	Recorded bool
	// Upstream names the instance a proxied call went to, for the access
	// log.
	Upstream string
	// Streams admits long-lived responses (OpenStream); nil outside the
	// ingress.
	Streams StreamGate
}

type infoKey struct{}

// WithInfo returns ctx carrying info.
func WithInfo(ctx context.Context, info *RequestInfo) context.Context {
	return context.WithValue(ctx, infoKey{}, info)
}

// Info returns the request info, or nil outside the ingress.
func Info(ctx context.Context) *RequestInfo {
	info, _ := ctx.Value(infoKey{}).(*RequestInfo)
	return info
}

// RequestID returns the request id ("" outside the ingress).
func RequestID(ctx context.Context) string {
	if info := Info(ctx); info != nil {
		return info.RequestID
	}
	return ""
}

// Caller returns the authenticated principal of the request.
func Caller(ctx context.Context) (auth.Principal, bool) {
	if info := Info(ctx); info != nil && info.Principal != nil {
		return *info.Principal, true
	}
	return auth.FromContext(ctx)
}

// SetAPI names the catalogue API (and version, and its state) a request
// calls, for its call record.
func SetAPI(ctx context.Context, api, version, state string) {
	if info := Info(ctx); info != nil {
		info.API, info.APIVersion, info.APIState = api, version, state
	}
}

// SetConsumer names who a catalogue call was admitted for: the consumer
// tenant and the app of its grant.
func SetConsumer(ctx context.Context, tenant, app string) {
	if info := Info(ctx); info != nil {
		info.Consumer, info.ConsumerApp = tenant, app
	}
}

// SetWorkflow names the orchestration a request concerns, for its call
// record.
func SetWorkflow(ctx context.Context, id, definition, version string) {
	if info := Info(ctx); info != nil {
		info.WorkflowID, info.Definition, info.Version = id, definition, version
	}
}
