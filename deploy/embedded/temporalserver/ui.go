package temporalserver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uioptions "github.com/temporalio/ui-server/v2/server/server_options"
)

// uiServer is the Temporal Web UI (the same ui-server the Temporal CLI
// embeds), talking gRPC to the frontend.
type uiServer struct {
	srv  *uiserver.Server
	done chan struct{}
}

// startUI serves the UI on host:port and waits until it answers.
//
// ui-server's Start exits the process (echo's Logger.Fatal) when it cannot
// listen, and offers no way to hand it a listener; so the port is checked
// just before, leaving only a tiny race.
func startUI(host string, port int, frontend string, log *slog.Logger) (u *uiServer, err error) {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("temporal Web UI on %s: %w", addr, err)
	}
	l.Close()
	defer func() {
		// NewServer panics on a bad config; report it as an error.
		if r := recover(); r != nil {
			err = fmt.Errorf("temporal Web UI: %v", r)
		}
	}()
	srv := uiserver.NewServer(uioptions.WithConfigProvider(&uiconfig.Config{
		Host:                host,
		Port:                port,
		TemporalGRPCAddress: frontend,
		EnableUI:            true,
		DefaultNamespace:    "default",
		DisableNewsFetch:    true,
		CORS:                uiconfig.CORS{CookieInsecure: true},
		HideLogs:            true,
		Distribution:        "gateflow",
	}))
	u = &uiServer{srv: srv, done: make(chan struct{})}
	go func() {
		defer close(u.done)
		if err := srv.Start(); err != nil {
			log.Warn("temporal Web UI stopped", "err", err)
		}
	}()
	if err := waitHTTP(context.Background(), "http://"+addr+"/healthz", 10*time.Second); err != nil {
		u.stop()
		return nil, fmt.Errorf("temporal Web UI on %s: %w", addr, err)
	}
	return u, nil
}

func (u *uiServer) stop() {
	u.srv.Stop()
	select {
	case <-u.done:
	case <-time.After(5 * time.Second):
	}
}

func waitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not answering after %s: %w", timeout, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
