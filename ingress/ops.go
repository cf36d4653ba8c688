package ingress

import (
	"context"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gateflow/gateflow/activities/calls"
)

// HealthResponse answers /healthz.
type HealthResponse struct {
	Status string `json:"status"`
}

// ReadyResponse answers /readyz: every check by name.
type ReadyResponse struct {
	// Status is "ready", "degraded" (an optional dependency is down; still
	// 200) or "unready" (503).
	Status string                `json:"status"`
	Checks map[string]CheckState `json:"checks"`
}

// CheckState is the result of one readiness check.
type CheckState struct {
	OK bool `json:"ok"`
	// Optional checks do not make the server unready (see ReadyCheck).
	Optional  bool    `json:"optional,omitempty"`
	Error     string  `json:"error,omitempty"`
	LatencyMS float64 `json:"latency_ms"`
}

// readyTimeout bounds each readiness check.
const readyTimeout = 2 * time.Second

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, HealthResponse{Status: "ok"})
}

// readyz runs every check concurrently. A failed required check answers
// 503; a failed optional one answers 200 "degraded", unless the caller asks
// ?strict=true (every dependency up). The body names every check.
func (s *Server) readyz(c echo.Context) error {
	strict := c.QueryParam("strict") == "true" || c.QueryParam("strict") == "1"
	res := ReadyResponse{Status: "ready", Checks: make(map[string]CheckState, len(s.deps.Ready))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, chk := range s.deps.Ready {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(c.Request().Context(), readyTimeout)
			defer cancel()
			start := time.Now()
			err := chk.Check(ctx)
			st := CheckState{OK: err == nil, Optional: chk.Optional, LatencyMS: float64(time.Since(start).Microseconds()) / 1000}
			if err != nil {
				// /readyz is public: no dependency's address (issue 10
				// item 9); the log has the whole error.
				st.Error = calls.RedactAddresses(err.Error())
			}
			s.logReadiness(chk.Name, err)
			mu.Lock()
			res.Checks[chk.Name] = st
			mu.Unlock()
		}()
	}
	wg.Wait()
	names := make([]string, 0, len(res.Checks))
	for n := range res.Checks {
		names = append(names, n)
	}
	sort.Strings(names)
	status := http.StatusOK
	for _, n := range names {
		switch st := res.Checks[n]; {
		case st.OK:
		case st.Optional && !strict:
			if res.Status == "ready" {
				res.Status = "degraded"
			}
		default:
			res.Status, status = "unready", http.StatusServiceUnavailable
		}
	}
	return c.JSON(status, res)
}

// logReadiness logs a readiness check whose outcome changed (probes poll
// every few seconds: an unchanged failure is logged once).
func (s *Server) logReadiness(name string, err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	s.readyMu.Lock()
	prev, seen := s.readyLast[name]
	s.readyLast[name] = msg
	s.readyMu.Unlock()
	switch {
	case msg != "" && msg != prev:
		s.log.Warn("readiness check failed", "check", name, "err", msg)
	case msg == "" && seen && prev != "":
		s.log.Info("readiness check recovered", "check", name)
	}
}

func (s *Server) metricsHandler() echo.HandlerFunc {
	return echo.WrapHandler(s.MetricsHandler())
}

func (s *Server) openAPI(c echo.Context) error {
	return c.JSON(http.StatusOK, s.OpenAPI())
}
