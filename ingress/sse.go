package ingress

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/httperr"
)

// SSE event names on /v1/workflows/{id}/events.
const (
	// EventStatus carries an orchestrator.Status (the whole status, so a
	// reconnecting client needs no replay).
	EventStatus = "status"
	// EventError carries an API error that did not end the stream.
	EventError = "error"
	// EventEnd is the last event when the workflow has closed.
	EventEnd = "end"
	// EventShutdown is the last event when the server shuts down; clients
	// reconnect (to another replica).
	EventShutdown = "shutdown"
)

// watchWorkflow streams the workflow's status changes as Server-Sent
// Events until it closes, the client goes away or the server shuts down.
func (s *Server) watchWorkflow(c echo.Context) error {
	id, err := workflowID(c)
	if err != nil {
		return err
	}
	if err := noQuery(c); err != nil {
		return err
	}
	ctx := c.Request().Context()
	api.SetWorkflow(ctx, id, "", "")
	updates, err := s.deps.Orchestrator.Watch(ctx, caller(c), id)
	if err != nil {
		return err // answered as JSON: nothing was streamed yet
	}
	s.metrics.streams.Inc()
	defer s.metrics.streams.Dec()

	w := c.Response()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	w.Flush()

	heartbeat := time.NewTicker(s.cfg.SSEHeartbeat)
	defer heartbeat.Stop()
	last := ""
	for {
		select {
		case u, ok := <-updates:
			if !ok {
				switch {
				case s.streams.Err() != nil:
					return writeEvent(w, EventShutdown, "", map[string]string{"reason": "server shutting down; reconnect"})
				case ctx.Err() != nil:
					return nil // client gone or request ended
				default:
					return writeEvent(w, EventEnd, "", map[string]string{"state": last})
				}
			}
			if u.Err != nil {
				if err := writeEvent(w, EventError, "", api.Body{Error: httperr.FromError(u.Err)}); err != nil {
					return nil
				}
				continue
			}
			last = string(u.Status.State)
			api.SetWorkflow(ctx, id, u.Status.Definition, u.Status.Version)
			if err := writeEvent(w, EventStatus, strconv.FormatInt(u.Status.Seq, 10), u.Status); err != nil {
				return nil
			}
		case <-heartbeat.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return nil
			}
			w.Flush()
		}
	}
}

// writeEvent writes one SSE event with a JSON data line.
func writeEvent(w *echo.Response, event, id string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if id != "" {
		if _, err := fmt.Fprintf(w, "id: %s\n", id); err != nil {
			return err
		}
	}
	if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
		return err
	}
	w.Flush()
	return nil
}
