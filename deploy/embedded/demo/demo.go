// Package demo runs the demo services that `gateflow dev` starts on
// loopback so that every example definition (deploy/examples) runs end to
// end on a fresh machine: stand-ins for the echo, inventory, payments,
// shipping and notifications services, a "catalog" MCP server, and a tiny
// OpenAI-compatible model.
//
// They are demo stand-ins with canned, deterministic behaviour, not a
// product feature: no persistence, no real payments, no real model. Point
// the config at real services (or turn them off with
// `gateflow dev --demo-services=false`) for anything else.
package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// DefaultPortBase is where the demo services listen by default: each one
// on DefaultPortBase plus its offset. The example gateflow.yaml and
// definitions point at these ports (a test checks it).
const DefaultPortBase = 9800

// Offsets of each service from the port base.
const (
	EchoOffset      = 1
	InventoryOffset = 2
	// EchoBOffset is the second instance of the echo service, so that the
	// gateway's balancing and ejection can be watched (/gw/echo/...).
	EchoBOffset         = 5
	PaymentsOffset      = 3
	ShippingOffset      = 4
	NotificationsOffset = 10
	CatalogOffset       = 20
	ModelOffset         = 30
)

// MaxOffset is the largest offset: a port base must leave room for it.
const MaxOffset = ModelOffset

// Service names, as used by Addr and in errors.
const (
	Echo          = "echo"
	EchoB         = "echo-b"
	Inventory     = "inventory"
	Payments      = "payments"
	Shipping      = "shipping"
	Notifications = "notifications"
	Catalog       = "catalog"
	Model         = "model"
)

// PaymentsTokenEnv is the environment variable the example payments
// service's Authorization header refers to (${env:PAYMENTS_TOKEN}).
// gateflow dev sets it to DemoPaymentsToken when it is unset, so the
// example runs without a secret; the demo payments service accepts any
// non-empty bearer token.
const (
	PaymentsTokenEnv  = "PAYMENTS_TOKEN"
	DemoPaymentsToken = "demo-payments-token"
)

// Ports are the ports of the demo services; 0 picks a free port.
type Ports struct {
	Echo, Inventory, Payments, Shipping, Notifications, Catalog, Model int
	// EchoB is the echo service's second instance.
	EchoB int
}

// PortsAt returns the ports of the services for a port base.
func PortsAt(base int) Ports {
	return Ports{
		Echo:          base + EchoOffset,
		EchoB:         base + EchoBOffset,
		Inventory:     base + InventoryOffset,
		Payments:      base + PaymentsOffset,
		Shipping:      base + ShippingOffset,
		Notifications: base + NotificationsOffset,
		Catalog:       base + CatalogOffset,
		Model:         base + ModelOffset,
	}
}

// NamedPort is one service's port.
type NamedPort struct {
	Name string
	Port int
}

// List returns the ports by service, in a fixed order.
func (p Ports) List() []NamedPort {
	return []NamedPort{
		{Echo, p.Echo}, {EchoB, p.EchoB}, {Inventory, p.Inventory}, {Payments, p.Payments}, {Shipping, p.Shipping},
		{Notifications, p.Notifications}, {Catalog, p.Catalog}, {Model, p.Model},
	}
}

// Options configure Start.
type Options struct {
	// Host is the address to listen on (default 127.0.0.1).
	Host string
	// Ports of the services; the zero value means PortsAt(DefaultPortBase).
	// A single 0 port in a non-zero Ports picks a free port for that service.
	Ports Ports
	// Logger gets one debug line per request and the serve errors.
	Logger *slog.Logger
	// PortHint is added to the error when a port is taken: how to move or
	// turn off the demo services (gateflow dev names its flags).
	PortHint string
	// StreamDelay is the pause between the demo model's stream chunks, so
	// that streaming is visible in a terminal (default 15ms; negative: none).
	StreamDelay time.Duration
}

// Demo is the running demo services.
type Demo struct {
	addrs   map[string]string
	servers []*http.Server
	log     *slog.Logger
	failed  chan error
	once    sync.Once
	closeMu sync.Mutex
	closed  bool
	wg      sync.WaitGroup
}

// Start listens on every port (failing, with nothing left running, if one
// is taken) and serves the demo services until Close. ctx is the base
// context of their requests: cancelling it ends requests in flight (model
// streams).
func Start(ctx context.Context, opts Options) (*Demo, error) {
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Ports == (Ports{}) {
		opts.Ports = PortsAt(DefaultPortBase)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.StreamDelay == 0 {
		opts.StreamDelay = 15 * time.Millisecond
	}
	handlers := map[string]http.Handler{
		Echo:          newEcho("a"),
		EchoB:         newEcho("b"),
		Inventory:     newInventory(),
		Payments:      newPayments(),
		Shipping:      newShipping(),
		Notifications: newNotifications(),
		Catalog:       newCatalog(opts.Logger),
		Model:         newModel(max(opts.StreamDelay, 0)),
	}
	d := &Demo{addrs: map[string]string{}, log: opts.Logger, failed: make(chan error, 1)}
	var listeners []net.Listener
	for _, np := range opts.Ports.List() {
		addr := net.JoinHostPort(opts.Host, strconv.Itoa(np.Port))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			msg := fmt.Sprintf("demo %s service: cannot listen on %s: %v", np.Name, addr, rootCause(err))
			if opts.PortHint != "" {
				msg += ": " + opts.PortHint
			}
			return nil, errors.New(msg)
		}
		listeners = append(listeners, l)
		d.addrs[np.Name] = l.Addr().String()
	}
	for i, np := range opts.Ports.List() {
		srv := &http.Server{
			Handler:           logRequests(opts.Logger, np.Name, handlers[np.Name]),
			ReadHeaderTimeout: 5 * time.Second,
			BaseContext:       func(net.Listener) context.Context { return ctx },
			ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug),
		}
		d.servers = append(d.servers, srv)
		l := listeners[i]
		d.wg.Go(func() {
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				opts.Logger.Error("demo service stopped", "service", np.Name, "err", err)
				d.once.Do(func() { d.failed <- fmt.Errorf("demo %s service: %w", np.Name, err) })
			}
		})
	}
	return d, nil
}

// Addr returns the host:port a service listens on ("" for an unknown name).
func (d *Demo) Addr(service string) string { return d.addrs[service] }

// URL returns the base URL of a service: http://host:port, plus /mcp for
// the catalog and /v1 for the model (what gateflow.yaml names).
func (d *Demo) URL(service string) string {
	u := "http://" + d.addrs[service]
	switch service {
	case Catalog:
		u += "/mcp"
	case Model:
		u += "/v1"
	}
	return u
}

// Failed delivers the error of a service that stopped serving on its own.
func (d *Demo) Failed() <-chan error { return d.failed }

// Close stops every service: requests in flight get up to half a second,
// then connections are closed (an HTTP client may hold a connection on
// which it never sent a request, which a graceful shutdown would wait 5 s
// for). It is idempotent.
func (d *Demo) Close() error {
	d.closeMu.Lock()
	defer d.closeMu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), closeGrace)
	defer cancel()
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, srv := range d.servers {
		wg.Go(func() {
			if srv.Shutdown(ctx) == nil {
				return
			}
			if err := srv.Close(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	d.wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop demo services: %w", err)
	}
	return nil
}

// closeGrace is how long Close lets requests in flight finish.
const closeGrace = 500 * time.Millisecond

// rootCause is the innermost error ("address already in use").
func rootCause(err error) error {
	for {
		inner := errors.Unwrap(err)
		if inner == nil {
			return err
		}
		err = inner
	}
}

// statusWriter remembers the status for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets the model stream through the wrapper.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func logRequests(log *slog.Logger, service string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		began := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		log.Debug("demo request", "service", service, "method", r.Method, "path", r.URL.Path,
			"status", sw.status, "took", time.Since(began))
	})
}
