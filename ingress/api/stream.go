package api

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// Long-lived responses — SSE status streams, streamed chat completions, MCP
// requests — each hold a goroutine, a connection and often a Temporal long
// poll. A handler opens one with OpenStream before any expensive work; the
// ingress then bounds it (issue 10 item 7): how many a key and a tenant may
// hold at once (429 beyond), how long one may last (MaxAge, after which the
// handler ends it with its protocol's "shutdown" end), and how long one
// write may block (WriteTimeout per event, so that a client that stops
// reading frees the goroutine).

// StreamLimits bound the long-lived responses of the ingress.
type StreamLimits struct {
	// PerKey and PerTenant cap the streams open at once (0: no cap).
	PerKey    int
	PerTenant int
	// MaxAge ends a stream that lasted this long (0: no bound).
	MaxAge time.Duration
	// WriteTimeout bounds each write of an event, flush included (0: none).
	WriteTimeout time.Duration
}

// StreamGate admits streams; the ingress puts its own in every request's
// RequestInfo.
type StreamGate interface {
	// Acquire takes a stream slot of the principal's key and tenant, or
	// returns an *Error (429 with Retry-After) when either cap is reached.
	Acquire(tenant, keyID string) (release func(), err error)
	// Limits are the bounds of an admitted stream.
	Limits() StreamLimits
}

// ErrStreamMaxAge is the cause of a stream's context ending at MaxAge.
var ErrStreamMaxAge = errors.New("the stream reached its maximum age")

// Stream is one admitted long-lived response. Its handler writes through W
// and uses Context for the work it follows, and must Close it.
type Stream struct {
	// W is the response writer with a write deadline set before each
	// Write and Flush.
	W      http.ResponseWriter
	ctx    context.Context
	cancel context.CancelFunc
	limits StreamLimits
	// release gives the slot back.
	release func()
}

// OpenStream admits a long-lived response for the request's caller: it
// returns a 429 *Error when the caller's key or tenant holds as many
// streams as allowed. Outside the ingress (no gate) the stream is
// unbounded.
func OpenStream(w http.ResponseWriter, r *http.Request) (*Stream, error) {
	ctx := r.Context()
	var (
		gate    StreamGate
		release = func() {}
	)
	if info := Info(ctx); info != nil {
		gate = info.Streams
	}
	var lim StreamLimits
	if gate != nil {
		lim = gate.Limits()
		p, ok := Caller(ctx)
		if ok {
			rel, err := gate.Acquire(p.Tenant, p.KeyID)
			if err != nil {
				return nil, err
			}
			release = rel
		}
	}
	s := &Stream{limits: lim, release: release}
	if lim.MaxAge > 0 {
		s.ctx, s.cancel = context.WithTimeoutCause(ctx, lim.MaxAge, ErrStreamMaxAge)
	} else {
		s.ctx, s.cancel = context.WithCancel(ctx)
	}
	s.W = w
	if lim.WriteTimeout > 0 {
		s.W = &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), d: lim.WriteTimeout}
	}
	return s, nil
}

// Context ends when the client goes away, the server shuts down or MaxAge
// passes (then Expired is true).
func (s *Stream) Context() context.Context { return s.ctx }

// Expired reports whether the stream's context ended at MaxAge: the
// handler then ends with its protocol's shutdown event, so that the client
// reconnects.
func (s *Stream) Expired() bool { return context.Cause(s.ctx) == ErrStreamMaxAge }

// MaxAge is the stream's bound (0: none).
func (s *Stream) MaxAge() time.Duration { return s.limits.MaxAge }

// Close releases the stream's slot; it may be called more than once.
func (s *Stream) Close() {
	s.cancel()
	if s.release != nil {
		s.release()
		s.release = nil
	}
}

// deadlineWriter sets a write deadline before each Write and Flush: a
// client that stops reading makes the write fail once the connection's
// buffers are full, instead of blocking the handler for ever.
type deadlineWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

func (w *deadlineWriter) arm() {
	// ErrNotSupported (a test recorder) leaves the write unbounded.
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.d))
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.arm()
	return w.ResponseWriter.Write(p)
}

// Flush implements http.Flusher (the MCP SDK and SSE writers use it).
func (w *deadlineWriter) Flush() { _ = w.FlushError() }

// FlushError is what http.ResponseController calls.
func (w *deadlineWriter) FlushError() error {
	w.arm()
	return w.rc.Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
