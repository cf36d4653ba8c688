package cluster

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

var updateKustomize = flag.Bool("update-kustomize", false, "rewrite the Kustomize files rendered from the Helm chart")

// helmOrSkip returns the helm binary, skipping the test without one
// unless GATEFLOW_REQUIRE_HELM=1 (CI) makes that a failure.
func helmOrSkip(t *testing.T) string {
	t.Helper()
	helm, err := FindHelm()
	if err != nil {
		if os.Getenv(RequireHelmEnv) == "1" {
			t.Fatalf("%s=1: %v", RequireHelmEnv, err)
		}
		t.Skip(err)
	}
	return helm
}

// kustomizeValues is the values file the Kustomize manifests are rendered
// with.
const kustomizeValues = Chart + "/examples/values-kustomize.yaml"

// kustomizeRenders are the committed files rendered from the chart, and
// which of the rendered objects each keeps.
var kustomizeRenders = []struct {
	file string
	sets []string
	keep func(kind, name string) bool
}{
	{"kubernetes/base/gateflow.yaml", nil, func(string, string) bool { return true }},
	{"kubernetes/overlays/durable-spool/statefulsets.yaml", []string{"spool.persistent=true"}, func(kind, name string) bool {
		return kind == "StatefulSet" || (kind == "Service" && strings.HasSuffix(name, "-pods"))
	}},
}

// helmOnlyLabel matches the labels that say Helm manages an object, wrong
// once Kustomize applies it.
var helmOnlyLabel = regexp.MustCompile(`(?m)^\s*(helm\.sh/chart|app\.kubernetes\.io/managed-by): .*\n`)

// kustomizeFile turns helm's output into a committed Kustomize file: the
// kept documents, without Helm's labels and trailing blanks, under a header.
func kustomizeFile(t *testing.T, rendered []byte, sets []string, keep func(kind, name string) bool) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("# GENERATED from the Helm chart deploy/cluster/helm/gateflow with\n")
	b.WriteString("# examples/values-kustomize.yaml")
	for _, s := range sets {
		b.WriteString(" --set " + s)
	}
	b.WriteString(". Do not edit: change the chart, then\n")
	b.WriteString("#   go test ./deploy/cluster -run TestKustomizeRenderedFromChart -update-kustomize\n")
	n := 0
	for _, part := range strings.Split(string(rendered), "\n---\n") {
		part = strings.TrimPrefix(part, "---\n")
		var m map[string]any
		if err := yaml.Unmarshal([]byte(part), &m); err != nil {
			t.Fatalf("rendered document: %v\n%s", err, part)
		}
		if m == nil || !keep(str(m, "kind"), str(m, "metadata", "name")) {
			continue
		}
		part = helmOnlyLabel.ReplaceAllString(part, "")
		lines := strings.Split(strings.TrimRight(part, "\n"), "\n")
		for i, l := range lines {
			lines[i] = strings.TrimRight(l, " \t")
		}
		b.WriteString("---\n" + strings.Join(lines, "\n") + "\n")
		n++
	}
	if n == 0 {
		t.Fatal("the render kept no document")
	}
	return b.Bytes()
}

// TestKustomizeRenderedFromChart fails when a committed Kustomize file is
// not the chart's current render (-update-kustomize rewrites them).
func TestKustomizeRenderedFromChart(t *testing.T) {
	helm := helmOrSkip(t)
	for _, r := range kustomizeRenders {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := Render(ctx, helm, Chart, []string{kustomizeValues}, r.sets...)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		want := kustomizeFile(t, out, r.sets, r.keep)
		got, err := os.ReadFile(r.file)
		if err != nil && !*updateKustomize {
			t.Fatal(err)
		}
		if bytes.Equal(got, want) {
			continue
		}
		if *updateKustomize {
			if err := os.WriteFile(r.file, want, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("rewrote %s", r.file)
			continue
		}
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		i := 0
		for i < len(gl) && i < len(wl) && gl[i] == wl[i] {
			i++
		}
		t.Errorf("%s:%d is not the chart's render (committed %q, chart %q): the chart is the source; regenerate with\n"+
			"  go test ./deploy/cluster -run TestKustomizeRenderedFromChart -update-kustomize",
			r.file, i+1, line(gl, i), line(wl, i))
	}
}

func line(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return "(end of file)"
}

// renderExamples renders the chart with each of its values examples.
func renderExamples(t *testing.T) map[string][]doc {
	t.Helper()
	helm := helmOrSkip(t)
	files, err := Examples(Chart)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]doc{}
	for _, f := range files {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		b, err := Render(ctx, helm, Chart, []string{f})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		docs, err := parseDocs(f, b)
		if err != nil {
			t.Fatal(err)
		}
		out[f] = docs
	}
	return out
}

// TestChartExamples renders every values example of the chart and checks
// the result as the committed manifests are checked: pods, volumes,
// probes, selectors, autoscalers, ServiceMonitors and the config dir,
// which must load. cmd/gateflow's TestChartUsesRealFlags checks the
// variables against the flags.
func TestChartExamples(t *testing.T) {
	for file, docs := range renderExamples(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			checkWorkloads(t, docs, configMaps(docs), nil, false)
			checkSelectors(t, docs)
			for _, d := range docs {
				if isWorkload(d) && d.name() == "gateflow-ingress" {
					assembleConfigDir(t, docs, d.kind(), d.name())
				}
			}
		})
	}
}

// TestChartRefusesBadValues: values the processes would refuse at start,
// or that would render a setting that does nothing, fail the render with
// a message naming the value.
func TestChartRefusesBadValues(t *testing.T) {
	helm := helmOrSkip(t)
	cases := []struct {
		name string
		sets []string
		want string
	}{
		{"client cert without tls", []string{"temporal.tls.clientCert=true", "temporal.tls.secretName=s"}, "temporal.tls: clientCert and ca need enabled: true"},
		{"ca without secret", []string{"kafka.tls.enabled=true", "kafka.tls.ca=true"}, "kafka.tls: clientCert and ca need secretName"},
		{"unknown sasl mechanism", []string{"kafka.sasl.mechanism=oauthbearer", "kafka.sasl.user=u"}, `kafka.sasl.mechanism "oauthbearer"`},
		{"sasl without user", []string{"kafka.sasl.mechanism=plain"}, "kafka.sasl.user is required"},
		{"autoscaling without cpu request", []string{"worker.autoscaling.enabled=true", "worker.resources.requests.cpu=null"}, "worker.autoscaling needs worker.resources.requests.cpu"},
		{"env that is no flag variable", []string{"sink.env.PATH=/x"}, "sink.env.PATH: only GATEFLOW_* variables"},
		{"config dir without gateflow.yaml", []string{"config.files.definitions/a\\.yaml=x"}, "gateflow.yaml is required"},
		{"created secret without dsn", []string{"secrets.create=true", "secrets.data.x=y"}, "secrets.data: clickhouse-dsn is required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err := Render(ctx, helm, Chart, nil, c.sets...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("--set %v: got %v, want an error containing %q", c.sets, err, c.want)
			}
		})
	}
}
