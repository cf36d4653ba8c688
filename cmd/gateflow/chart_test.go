package main

// The Helm chart of deploy/cluster rendered with each of its values
// examples, checked against the real flags as the committed Kubernetes
// manifests are (docs_test.go). Needs helm (PATH or $(go env GOPATH)/bin);
// skips without it unless GATEFLOW_REQUIRE_HELM=1, as in CI.

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gateflow/gateflow/deploy/cluster"
)

// chartEnvSeen are variables some values example must render, so that the
// TLS, mTLS, SASL and payload-key templates are checked against the flags
// too and not only the defaults.
var chartEnvSeen = []string{
	"GATEFLOW_TEMPORAL_TLS", "GATEFLOW_TEMPORAL_TLS_CERT", "GATEFLOW_TEMPORAL_TLS_KEY", "GATEFLOW_TEMPORAL_TLS_CA",
	"GATEFLOW_TEMPORAL_TLS_SERVER_NAME", "GATEFLOW_KAFKA_SASL_MECHANISM", "GATEFLOW_KAFKA_SASL_USER",
	"GATEFLOW_KAFKA_SASL_PASSWORD", "GATEFLOW_KAFKA_TLS", "GATEFLOW_KAFKA_TLS_CA", "GATEFLOW_KAFKA_TLS_CERT",
	"GATEFLOW_KAFKA_TLS_KEY", "GATEFLOW_KAFKA_TLS_SERVER_NAME", "GATEFLOW_PAYLOAD_KEY_FILE",
}

func TestChartUsesRealFlags(t *testing.T) {
	helm, err := cluster.FindHelm()
	if err != nil {
		if os.Getenv(cluster.RequireHelmEnv) == "1" {
			t.Fatalf("%s=1: %v", cluster.RequireHelmEnv, err)
		}
		t.Skip(err)
	}
	chart := filepath.Join(clusterDir, cluster.Chart)
	examples, err := cluster.Examples(chart)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, values := range examples {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := cluster.Render(ctx, helm, chart, []string{values})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		docs, err := parseManifests(filepath.Base(values), out)
		if err != nil {
			t.Fatal(err)
		}
		if n := checkManifestFlags(t, docs); n != 3 {
			t.Errorf("%s: checked %d containers, want ingress, worker and sink", values, n)
		}
		for _, d := range docs {
			for _, c := range ymaps(yget(d.m, "spec", "template", "spec"), "containers") {
				for _, e := range ymaps(c, "env") {
					seen[ystr(e, "name")] = true
				}
			}
		}
	}
	var missing []string
	for _, v := range chartEnvSeen {
		if !seen[v] {
			missing = append(missing, v)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("no values example renders %s: add them to a values example (examples/values-*.yaml) so the flags check covers them",
			strings.Join(missing, ", "))
	}
}
