package proxy

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/analytics/record"
	"github.com/gateflow/gateflow/ingress/api"
)

// maxRouteBytes bounds the route (path and query) a record keeps.
const maxRouteBytes = 512

// emit sends the call record of a gateway call: kind proxy, under the
// API owner's tenant, naming the consumer, the instance, the cache status
// and the retries. The ingress emits no record of its own for the request.
func (p *Proxy) emit(r *http.Request, info *api.RequestInfo, cl *call) {
	if info != nil {
		info.Recorded = true
	}
	if p.opts.Recorder == nil {
		return
	}
	rec := record.New(calls.KindProxy, cl.start)
	rec.SetTrace(r.Context())
	t := cl.target
	rec.Tenant = t.Owner
	rec.Target = t.API
	// The catalogue's fields: who was served (tenant and app apart, as
	// every catalogue call records them) and the API's version; Version
	// keeps it too for the proxy rollups' version key.
	rec.API, rec.APIVersion, rec.Version = t.API, t.Version, t.Version
	rec.Consumer, rec.ConsumerApp = t.Consumer.Tenant, t.Consumer.App
	if caller, ok := api.Caller(r.Context()); ok {
		rec.KeyID = caller.KeyID
	}
	if cl.ep != nil {
		rec.Upstream = cl.ep.Name
	}
	rec.Method = r.Method
	rec.Route = record.Truncate(cl.route, maxRouteBytes)
	rec.StatusCode = int32(cl.status)
	rec.LatencyMS = float64(time.Since(cl.start).Microseconds()) / 1000
	rec.UpstreamLatencyMS = float64(cl.upstreamDur.Microseconds()) / 1000
	rec.ReqBytes, rec.RespBytes = cl.in, cl.out
	rec.CacheStatus = cl.cacheStatus
	rec.Retries = int32(cl.retries)
	rec.Attempt = int32(cl.tries)
	if info != nil {
		rec.Labels = map[string]string{"request_id": info.RequestID}
	}
	switch {
	case cl.status == api.StatusClientClosed || errors.Is(cl.err, context.Canceled):
		rec.Outcome = record.OutcomeCancelled
		rec.ErrorClass = calls.ClassCancelled
	case cl.status == http.StatusGatewayTimeout:
		rec.Outcome = record.OutcomeTimeout
		rec.ErrorClass = calls.ClassTimeout
	case cl.status >= 500:
		rec.Outcome = record.OutcomeError
		rec.ErrorClass = calls.ClassStatus
		if errors.Is(cl.err, ErrUpstreamUnreachable) || errors.Is(cl.err, ErrNoHealthyUpstream) {
			rec.ErrorClass = calls.ClassConnection
		}
	case cl.status == http.StatusTooManyRequests:
		rec.Outcome = record.OutcomeRejected
		rec.ErrorClass = calls.ClassRateLimit
	case cl.status >= 400:
		rec.Outcome = record.OutcomeRejected
		rec.ErrorClass = calls.ClassStatus
	default:
		rec.Outcome = record.OutcomeOK
	}
	if cl.err != nil {
		rec.ErrorMsg = record.Truncate(cl.err.Error(), record.MaxErrorMessage)
	}
	p.opts.Recorder.Emit(rec)
}
