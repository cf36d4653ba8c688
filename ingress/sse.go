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
// Events until it closes, the client goes away, the stream reaches its
// maximum age or the server shuts down (the last two end with a
// "shutdown" event: reconnect).
func (s *Server) watchWorkflow(c echo.Context) error {
	id, err := workflowID(c)
	if err != nil {
		return err
	}
	if err := noQuery(c); err != nil {
		return err
	}
	r := c.Request()
	api.SetWorkflow(r.Context(), id, "", "")
	// The slot is taken before any Temporal work: a caller at its cap
	// costs nothing.
	st, err := api.OpenStream(c.Response(), r)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx := st.Context()
	updates, err := s.deps.Orchestrator.Watch(ctx, caller(c), id)
	if err != nil {
		return err // answered as JSON: nothing was streamed yet
	}

	w := st.W
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	flush(w)

	heartbeat := time.NewTicker(s.cfg.SSEHeartbeat)
	defer heartbeat.Stop()
	last := ""
	for {
		select {
		case u, ok := <-updates:
			if !ok {
				switch {
				case s.streams.Err() != nil:
					return writeEvent(w, EventShutdown, "", shutdownEvent{Reason: "server_shutdown", Message: "server shutting down; reconnect"})
				case st.Expired():
					return writeEvent(w, EventShutdown, "", shutdownEvent{Reason: "max_age",
						Message: fmt.Sprintf("the stream reached its maximum age (%s); reconnect", st.MaxAge())})
				case ctx.Err() != nil:
					return nil // client gone or request ended
				default:
					return writeEvent(w, EventEnd, "", map[string]string{"state": last})
				}
			}
			if u.Err != nil {
				if err := writeEvent(w, EventError, "", api.Body{Error: httperr.ForClient(httperr.FromError(u.Err), api.RequestID(r.Context()))}); err != nil {
					return nil
				}
				continue
			}
			last = string(u.Status.State)
			api.SetWorkflow(r.Context(), id, u.Status.Definition, u.Status.Version)
			if err := writeEvent(w, EventStatus, strconv.FormatInt(u.Status.Seq, 10), u.Status); err != nil {
				return nil // the client went away or stopped reading
			}
		case <-heartbeat.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return nil
			}
			if err := flush(w); err != nil {
				return nil
			}
		}
	}
}

// shutdownEvent is the data of a "shutdown" event.
type shutdownEvent struct {
	// Reason is "server_shutdown" or "max_age".
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// flush sends what was written (through the stream's write deadline).
func flush(w http.ResponseWriter) error {
	return http.NewResponseController(w).Flush()
}

// writeEvent writes one SSE event with a JSON data line.
func writeEvent(w http.ResponseWriter, event, id string, v any) error {
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
	return flush(w)
}
