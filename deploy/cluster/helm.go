package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
)

// Chart is the Helm chart, relative to this package's directory. It is
// the one source of the Kubernetes manifests: kubernetes/base/gateflow.yaml
// and kubernetes/overlays/durable-spool/statefulsets.yaml are rendered from
// it (see README.md).
const Chart = "helm/gateflow"

// RequireHelmEnv names the variable that makes the chart's tests fail
// instead of skip when no helm binary is found; CI (.ci/run) sets it.
const RequireHelmEnv = "GATEFLOW_REQUIRE_HELM"

// FindHelm returns the helm binary: the one on PATH, else the one .ci/run
// installs with `go install` into $(go env GOPATH)/bin.
func FindHelm() (string, error) {
	if p, err := exec.LookPath("helm"); err == nil {
		return p, nil
	}
	for _, dir := range filepath.SplitList(build.Default.GOPATH) {
		p := filepath.Join(dir, "bin", "helm")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", errors.New("helm not found on PATH nor in $(go env GOPATH)/bin (install: go install helm.sh/helm/v4/cmd/helm@v4.3.2)")
}

// Examples returns the values files of the chart's examples/ folder,
// sorted; chartDir is the chart's directory.
func Examples(chartDir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(chartDir, "examples", "values-*.yaml"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s/examples: no values-*.yaml", chartDir)
	}
	sort.Strings(files)
	return files, nil
}

// Render runs `helm template gateflow chartDir -f values... --set sets...`
// and returns the manifests; helm's own message on failure.
func Render(ctx context.Context, helm, chartDir string, values []string, sets ...string) ([]byte, error) {
	args := []string{"template", "gateflow", chartDir, "--namespace", "gateflow"}
	for _, v := range values {
		args = append(args, "-f", v)
	}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, helm, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("helm %v: %w\n%s", args, err, stderr.String())
	}
	return out, nil
}
