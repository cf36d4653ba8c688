// Package embeddedtemporal starts the embedded Temporal server for
// integration tests, as an alternative to go.temporal.io/server/temporaltest
// that behaves exactly like `gateflow dev` (same config, dynamic config and
// search attributes). It imports the Temporal server: use it only from
// `//go:build integration` tests.
package embeddedtemporal

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/gateflow/gateflow/deploy/embedded/embeddedtest"
	"github.com/gateflow/gateflow/deploy/embedded/temporalserver"
	"github.com/gateflow/gateflow/workflows"
)

// GateflowSearchAttributes are the search attributes Gateflow's workflows
// set, with their types (workflows.SearchAttributeTypes).
func GateflowSearchAttributes() map[string]enumspb.IndexedValueType {
	return workflows.SearchAttributeTypes()
}

// StartTemporal starts an in-memory Temporal server on free ports, with
// namespace "default" and Gateflow's search attributes registered, and stops
// it when the test ends.
func StartTemporal(t testing.TB) *temporalserver.Server {
	t.Helper()
	return StartTemporalIn(t, "")
}

// StartTemporalIn is StartTemporal persisting to the SQLite file dbPath
// (empty: in memory), to test restarts; the caller may Stop early (Stop is
// idempotent). The server's logs go to a file next to
// dbPath, or to a temp dir, and are not printed.
func StartTemporalIn(t testing.TB, dbPath string) *temporalserver.Server {
	t.Helper()
	ports := embeddedtest.FreePorts(t, 4)
	logFile := filepath.Join(t.TempDir(), "temporal.log")
	if dbPath != "" {
		logFile = filepath.Join(filepath.Dir(dbPath), "temporal.log")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := temporalserver.Start(ctx, temporalserver.Options{
		DBPath:           dbPath,
		FrontendPort:     ports[0],
		HistoryPort:      ports[1],
		MatchingPort:     ports[2],
		WorkerPort:       ports[3],
		SearchAttributes: GateflowSearchAttributes(),
		LogFile:          logFile,
	})
	if err != nil {
		t.Fatalf("start Temporal: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Logf("stop Temporal: %v", err)
		}
	})
	return s
}

// Dial returns a client of s's namespace, closed when the test ends.
func Dial(t testing.TB, s *temporalserver.Server) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: s.FrontendAddr(), Namespace: s.Namespace()})
	if err != nil {
		t.Fatalf("dial Temporal: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}
