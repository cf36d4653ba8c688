package main

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/grpc"
)

// stallingFrontend answers the Temporal client's connection check and
// holds ListSearchAttributes until the caller gives up, telling the test
// when the worker is inside that call.
type stallingFrontend struct {
	workflowservice.UnimplementedWorkflowServiceServer
	operatorservice.UnimplementedOperatorServiceServer
	listing chan struct{}
}

func (stallingFrontend) GetSystemInfo(context.Context, *workflowservice.GetSystemInfoRequest) (*workflowservice.GetSystemInfoResponse, error) {
	return &workflowservice.GetSystemInfoResponse{}, nil
}

func (f stallingFrontend) ListSearchAttributes(ctx context.Context, _ *operatorservice.ListSearchAttributesRequest) (*operatorservice.ListSearchAttributesResponse, error) {
	close(f.listing)
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestWorkerStoppedWhileListingSearchAttributes is what failed
// TestDevLifecycle in CI: a stop that lands while the worker lists the
// namespace's search attributes cuts a Temporal call, which fails with
// serviceerror.Canceled rather than context.Canceled. That is a clean stop:
// runWorker returns nil (exit status 0), not the cut call's error.
func TestWorkerStoppedWhileListingSearchAttributes(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	front := stallingFrontend{listing: make(chan struct{})}
	srv := grpc.NewServer()
	workflowservice.RegisterWorkflowServiceServer(srv, front)
	operatorservice.RegisterOperatorServiceServer(srv, front)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)

	dir := t.TempDir()
	cfg := flagDefaults((*workerConfig).bind)
	cfg.Temporal.HostPort = l.Addr().String()
	cfg.ConfigDir = t.TempDir()
	cfg.SpoolDir = filepath.Join(dir, "spool")
	cfg.MetricsListen = ""
	cfg.Triggers = false

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- runWorker(ctx, cfg, slog.New(slog.DiscardHandler)) }()
	select {
	case <-front.listing:
	case err := <-done:
		t.Fatalf("worker returned before listing search attributes: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not list search attributes within 30s")
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("worker stopped during startup returned %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("worker still running 30s after the stop")
	}
}
