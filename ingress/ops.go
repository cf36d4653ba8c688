package ingress

import (
	"context"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// HealthResponse answers /healthz.
type HealthResponse struct {
	Status string `json:"status"`
}

// ReadyResponse answers /readyz: every check by name.
type ReadyResponse struct {
	Status string                `json:"status"` // "ready" or "unready"
	Checks map[string]CheckState `json:"checks"`
}

// CheckState is the result of one readiness check.
type CheckState struct {
	OK        bool    `json:"ok"`
	Error     string  `json:"error,omitempty"`
	LatencyMS float64 `json:"latency_ms"`
}

// readyTimeout bounds each readiness check.
const readyTimeout = 2 * time.Second

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, HealthResponse{Status: "ok"})
}

// readyz runs every check concurrently; 503 names the ones that failed.
func (s *Server) readyz(c echo.Context) error {
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
			st := CheckState{OK: err == nil, LatencyMS: float64(time.Since(start).Microseconds()) / 1000}
			if err != nil {
				st.Error = err.Error()
			}
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
		if !res.Checks[n].OK {
			res.Status, status = "unready", http.StatusServiceUnavailable
		}
	}
	return c.JSON(status, res)
}

func (s *Server) metricsHandler() echo.HandlerFunc {
	h := promhttp.HandlerFor(s.deps.Metrics, promhttp.HandlerOpts{})
	return echo.WrapHandler(h)
}

func (s *Server) openAPI(c echo.Context) error {
	return c.JSON(http.StatusOK, s.OpenAPI())
}
