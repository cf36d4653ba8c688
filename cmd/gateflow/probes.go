package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// serveProbes serves /healthz, /readyz and /metrics of a process without an
// API of its own (sink, worker) on a small listener (no framework: three
// handlers). ready returns each dependency's error by name; any error
// answers 503. It returns a function that shuts the listener down.
func serveProbes(addr, process string, reg *prometheus.Registry, ready func(context.Context) map[string]error,
	log *slog.Logger) (stop func(), err error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		checks := ready(ctx)
		status := http.StatusOK
		var body strings.Builder
		for _, name := range slices.Sorted(maps.Keys(checks)) {
			if err := checks[name]; err != nil {
				status = http.StatusServiceUnavailable
				fmt.Fprintf(&body, "%s: unreachable: %v\n", name, err)
				continue
			}
			fmt.Fprintf(&body, "%s: ok\n", name)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body.String())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(process+" metrics listener", "err", err)
		}
	}()
	log.Info(process+": probes and metrics", "addr", l.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// serveAdmin serves the ingress's admin listener (--admin-listen): /metrics
// and /healthz, on an address operators keep off the public network. It
// returns a function that shuts the listener down.
func serveAdmin(addr string, metrics http.Handler, onListen func(string), log *slog.Logger) (stop func(), err error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /metrics", metrics)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--admin-listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("ingress admin listener", "err", err)
		}
	}()
	log.Info("ingress: admin listener (/metrics, /healthz)", "addr", l.Addr().String())
	if onListen != nil {
		onListen(l.Addr().String())
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
