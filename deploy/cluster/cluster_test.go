package cluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/gateflow/gateflow/activities/llm/prompt"
	"github.com/gateflow/gateflow/activities/sysconfig"
)

// doc is one YAML document of a manifest file.
type doc struct {
	file string // relative to the package dir
	m    map[string]any
}

func (d doc) kind() string { return str(d.m, "kind") }
func (d doc) name() string { return str(d.m, "metadata", "name") }
func (d doc) String() string {
	return fmt.Sprintf("%s: %s %s", d.file, d.kind(), d.name())
}

// get walks nested maps; nil when a step is missing.
func get(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func str(v any, path ...string) string {
	s, _ := get(v, path...).(string)
	return s
}

func list(v any, path ...string) []any {
	l, _ := get(v, path...).([]any)
	return l
}

func maps(v any, path ...string) []map[string]any {
	var out []map[string]any
	for _, e := range list(v, path...) {
		if m, ok := e.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// parseDocs returns the YAML documents of one file or render.
func parseDocs(file string, b []byte) ([]doc, error) {
	var docs []doc
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for i := 0; ; i++ {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, i+1, err)
		}
		if m == nil {
			continue
		}
		docs = append(docs, doc{file: file, m: m})
	}
	return docs, nil
}

// loadDocs reads every YAML document under dir (relative to the package).
func loadDocs(t *testing.T, dir string) []doc {
	t.Helper()
	var docs []doc
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		more, err := parseDocs(filepath.ToSlash(path), b)
		docs = append(docs, more...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) == 0 {
		t.Fatalf("no manifests under %s", dir)
	}
	return docs
}

func isKustomization(d doc) bool {
	return d.kind() == "Kustomization" || d.kind() == "Component"
}

func isWorkload(d doc) bool {
	return d.kind() == "Deployment" || d.kind() == "StatefulSet"
}

// complete reports whether a workload document is a whole object rather
// than a patch (patches carry no selector).
func complete(d doc) bool { return get(d.m, "spec", "selector") != nil }

func TestManifestsParse(t *testing.T) {
	for _, d := range loadDocs(t, "kubernetes") {
		if str(d.m, "apiVersion") == "" || d.kind() == "" {
			t.Errorf("%s: apiVersion and kind are required", d.file)
		}
		if !isKustomization(d) && d.name() == "" {
			t.Errorf("%s: %s without metadata.name", d.file, d.kind())
		}
	}
}

// TestKustomizationsReferenceExistingFiles checks every path a
// kustomization or component names.
func TestKustomizationsReferenceExistingFiles(t *testing.T) {
	n := 0
	for _, d := range loadDocs(t, "kubernetes") {
		if !isKustomization(d) {
			continue
		}
		n++
		dir := filepath.Dir(d.file)
		var paths []string
		for _, key := range []string{"resources", "components"} {
			for _, r := range list(d.m, key) {
				paths = append(paths, r.(string))
			}
		}
		for _, p := range maps(d.m, "patches") {
			if s := str(p, "path"); s != "" {
				paths = append(paths, s)
			}
		}
		for _, g := range maps(d.m, "configMapGenerator") {
			for _, f := range list(g, "files") {
				s := f.(string)
				if _, file, ok := strings.Cut(s, "="); ok {
					s = file
				}
				paths = append(paths, s)
			}
		}
		for _, p := range paths {
			if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
				t.Errorf("%s names %s: %v", d.file, p, err)
			}
		}
	}
	if n < 5 {
		t.Errorf("found %d kustomizations, want the base, 2 components and 2 overlays", n)
	}
}

// configMaps returns the ConfigMaps among docs, by name, with their keys.
func configMaps(docs []doc) map[string][]string {
	out := map[string][]string{}
	for _, d := range docs {
		if d.kind() != "ConfigMap" {
			continue
		}
		data, _ := get(d.m, "data").(map[string]any)
		keys := []string{}
		for k := range data {
			keys = append(keys, k)
		}
		out[d.name()] = keys
	}
	return out
}

// generated returns the ConfigMaps a kustomization generates, by name,
// with their keys.
func generated(t *testing.T, file string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var k map[string]any
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, g := range maps(k, "configMapGenerator") {
		name := str(g, "name")
		for _, l := range list(g, "literals") {
			key, _, _ := strings.Cut(l.(string), "=")
			out[name] = append(out[name], key)
		}
		for _, f := range list(g, "files") {
			s := f.(string)
			if key, _, ok := strings.Cut(s, "="); ok {
				out[name] = append(out[name], key)
				continue
			}
			out[name] = append(out[name], filepath.Base(s))
		}
	}
	return out
}

// secretKeys returns the keys of each Secret of the template, including
// the commented-out ones ("# key: value" inside stringData).
func secretKeys(t *testing.T) map[string][]string {
	t.Helper()
	const file = "kubernetes/base/secret.example.yaml"
	out := map[string][]string{}
	for _, d := range loadDocs(t, "kubernetes/base") {
		if d.file != file {
			continue
		}
		m, _ := get(d.m, "stringData").(map[string]any)
		for k := range m {
			out[d.name()] = append(out[d.name()], k)
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	commented := regexp.MustCompile(`(?m)^  # ([a-z0-9-]+): "`)
	for _, m := range commented.FindAllStringSubmatch(string(b), -1) {
		out["gateflow-secrets"] = append(out["gateflow-secrets"], m[1])
	}
	return out
}

// externalSecrets are Secrets that components expect the operator to create
// with kubectl (named in their kustomization comments).
var externalSecrets = map[string][]string{
	"gateflow-temporal-tls": {"tls.crt", "tls.key", "ca.crt"},
	"gateflow-kafka-tls":    {"ca.crt"},
}

func TestWorkloads(t *testing.T) {
	docs := loadDocs(t, "kubernetes")
	cms := configMaps(docs)
	for k, v := range generated(t, "kubernetes/base/kustomization.yaml") {
		cms[k] = v
	}
	secrets := secretKeys(t)
	for k, v := range externalSecrets {
		secrets[k] = v
	}
	if len(secrets["gateflow-secrets"]) < 5 || len(secrets["gateflow-keys"]) != 1 {
		t.Fatalf("secret.example.yaml: keys %v", secrets)
	}
	checkWorkloads(t, docs, cms, secrets, true)
}

// checkWorkloads checks every workload of docs: pods, volumes, containers.
// With secrets nil the Secrets' keys are not checked (a chart render names
// Secrets the operator creates); placeholderImage wants the image
// "gateflow" that Kustomize overlays replace.
func checkWorkloads(t *testing.T, docs []doc, cms, secrets map[string][]string, placeholderImage bool) {
	t.Helper()
	monitored := slices.ContainsFunc(docs, func(d doc) bool { return d.kind() == "ServiceMonitor" })
	var workloads int
	for _, d := range docs {
		if !isWorkload(d) {
			continue
		}
		workloads++
		pod := get(d.m, "spec", "template", "spec")
		if pod == nil {
			t.Errorf("%s: no pod template", d)
			continue
		}
		volumes := map[string]bool{}
		for _, v := range maps(pod, "volumes") {
			volumes[str(v, "name")] = true
			checkVolume(t, d, v, cms, secrets)
		}
		for _, v := range maps(d.m, "spec", "volumeClaimTemplates") {
			volumes[str(v, "metadata", "name")] = true
		}
		if complete(d) {
			labels, _ := get(d.m, "spec", "template", "metadata", "labels").(map[string]any)
			sel, _ := get(d.m, "spec", "selector", "matchLabels").(map[string]any)
			if len(sel) == 0 || !subset(sel, labels) {
				t.Errorf("%s: selector %v does not select the template's labels %v", d, sel, labels)
			}
			if get(pod, "terminationGracePeriodSeconds") == nil {
				t.Errorf("%s: terminationGracePeriodSeconds must be explicit (the shutdown timeouts depend on it)", d)
			}
			if get(pod, "securityContext", "runAsNonRoot") != true {
				t.Errorf("%s: pod must run as non-root", d)
			}
			if len(maps(pod, "containers")) != 1 {
				t.Errorf("%s: want exactly one container", d)
			}
		}
		for _, c := range maps(pod, "containers") {
			checkContainer(t, d, c, volumes, cms, secrets, placeholderImage, monitored)
		}
	}
	if workloads < 3 {
		t.Errorf("found %d workloads", workloads)
	}
}

func subset(sub, of map[string]any) bool {
	for k, v := range sub {
		if of[k] != v {
			return false
		}
	}
	return true
}

func checkVolume(t *testing.T, d doc, v map[string]any, cms, secrets map[string][]string) {
	t.Helper()
	checkCM := func(src map[string]any) {
		name := str(src, "name")
		keys, ok := cms[name]
		if !ok {
			t.Errorf("%s: volume %s: ConfigMap %q is not part of the manifests", d, str(v, "name"), name)
		}
		for _, it := range maps(src, "items") {
			if !slices.Contains(keys, str(it, "key")) {
				t.Errorf("%s: volume %s: ConfigMap %s has no key %q (has %v)", d, str(v, "name"), name, str(it, "key"), keys)
			}
		}
	}
	checkSecret := func(name string, src map[string]any) {
		if secrets == nil {
			return
		}
		keys, ok := secrets[name]
		if !ok {
			t.Errorf("%s: volume %s: Secret %q is neither in secret.example.yaml nor a component's", d, str(v, "name"), name)
		}
		for _, it := range maps(src, "items") {
			if !slices.Contains(keys, str(it, "key")) {
				t.Errorf("%s: volume %s: Secret %s has no key %q", d, str(v, "name"), name, str(it, "key"))
			}
		}
	}
	if src, ok := get(v, "configMap").(map[string]any); ok {
		checkCM(src)
	}
	if src, ok := get(v, "secret").(map[string]any); ok {
		checkSecret(str(src, "secretName"), src)
	}
	for _, s := range maps(v, "projected", "sources") {
		if src, ok := get(s, "configMap").(map[string]any); ok {
			checkCM(src)
		}
		if src, ok := get(s, "secret").(map[string]any); ok {
			checkSecret(str(src, "name"), src)
		}
	}
	if ed, ok := get(v, "emptyDir").(map[string]any); ok && str(ed, "sizeLimit") == "" {
		t.Errorf("%s: emptyDir %s without sizeLimit", d, str(v, "name"))
	}
}

func checkContainer(t *testing.T, d doc, c map[string]any, volumes map[string]bool, cms, secrets map[string][]string, placeholderImage, monitored bool) {
	t.Helper()
	name := str(c, "name")
	if !slices.Contains([]string{"ingress", "worker", "sink"}, name) {
		t.Errorf("%s: container %q: name it after its subcommand (ingress, worker, sink)", d, name)
	}
	for _, m := range maps(c, "volumeMounts") {
		if !volumes[str(m, "name")] {
			t.Errorf("%s: container %s mounts unknown volume %q", d, name, str(m, "name"))
		}
	}
	for _, e := range maps(c, "env") {
		if ref, ok := get(e, "valueFrom", "configMapKeyRef").(map[string]any); ok {
			if !slices.Contains(cms[str(ref, "name")], str(ref, "key")) {
				t.Errorf("%s: %s: ConfigMap %s has no key %q", d, str(e, "name"), str(ref, "name"), str(ref, "key"))
			}
		}
		if ref, ok := get(e, "valueFrom", "secretKeyRef").(map[string]any); ok && secrets != nil {
			if !slices.Contains(secrets[str(ref, "name")], str(ref, "key")) {
				t.Errorf("%s: %s: Secret %s has no key %q in secret.example.yaml", d, str(e, "name"), str(ref, "name"), str(ref, "key"))
			}
		}
	}
	if len(maps(c, "envFrom")) > 0 {
		t.Errorf("%s: container %s: use explicit env entries (cmd/gateflow's test checks each name against the flags)", d, name)
	}
	if !complete(d) {
		return // a patch
	}
	if image, _, _ := strings.Cut(str(c, "image"), ":"); placeholderImage && image != "gateflow" {
		t.Errorf("%s: image %q: want gateflow[:tag] (overlays set the real one with `images:`)", d, str(c, "image"))
	}
	for _, r := range []string{"requests/cpu", "requests/memory", "limits/memory"} {
		a, b, _ := strings.Cut(r, "/")
		if str(c, "resources", a, b) == "" {
			t.Errorf("%s: container %s: resources.%s.%s missing", d, name, a, b)
		}
	}
	sc := get(c, "securityContext")
	if get(sc, "readOnlyRootFilesystem") != true || get(sc, "allowPrivilegeEscalation") != false {
		t.Errorf("%s: container %s: want readOnlyRootFilesystem and no privilege escalation", d, name)
	}
	// Every process serves /healthz, /readyz and /metrics (the ingress on
	// its API port, worker and sink on --metrics-listen): each container
	// declares that port and probes it.
	ports := maps(c, "ports")
	if len(ports) != 1 {
		t.Errorf("%s: container %s: want exactly one named port (the one serving /healthz, /readyz, /metrics), got %d", d, name, len(ports))
	}
	for _, p := range ports {
		port := str(p, "name")
		for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
			if str(c, probe, "httpGet", "path") != path || str(c, probe, "httpGet", "port") != port {
				t.Errorf("%s: container %s: %s must be GET %s on port %s", d, name, probe, path, port)
			}
		}
		if sp := get(c, "startupProbe"); sp != nil && (str(sp, "httpGet", "path") != "/healthz" || str(sp, "httpGet", "port") != port) {
			t.Errorf("%s: container %s: startupProbe must be GET /healthz on port %s", d, name, port)
		}
		checkScrapeAnnotations(t, d, p, monitored)
	}
}

// checkScrapeAnnotations wants the pod template's prometheus.io annotations
// to point at the container port that serves /metrics, unless
// ServiceMonitors scrape the pods and there are none.
func checkScrapeAnnotations(t *testing.T, d doc, port map[string]any, monitored bool) {
	t.Helper()
	ann, _ := get(d.m, "spec", "template", "metadata", "annotations").(map[string]any)
	if _, ok := ann["prometheus.io/scrape"]; monitored && !ok {
		return
	}
	want := map[string]string{
		"prometheus.io/scrape": "true",
		"prometheus.io/port":   fmt.Sprint(get(port, "containerPort")),
		"prometheus.io/path":   "/metrics",
	}
	for k, v := range want {
		if got, _ := ann[k].(string); got != v {
			t.Errorf("%s: pod annotation %s = %q, want %q", d, k, got, v)
		}
	}
}

// TestServicesAndBudgetsSelectPods checks that every Service and
// PodDisruptionBudget of each rendering selects a workload's pods and that
// Services target a named container port.
func TestServicesAndBudgetsSelectPods(t *testing.T) {
	checkSelectors(t, loadDocs(t, "kubernetes"))
}

// checkSelectors wants every Service, PodDisruptionBudget,
// HorizontalPodAutoscaler and ServiceMonitor of docs to find what it
// names.
func checkSelectors(t *testing.T, docs []doc) {
	t.Helper()
	type pods struct {
		labels map[string]any
		ports  []string
	}
	var all []pods
	for _, d := range docs {
		if !isWorkload(d) || !complete(d) {
			continue
		}
		p := pods{}
		p.labels, _ = get(d.m, "spec", "template", "metadata", "labels").(map[string]any)
		for _, c := range maps(d.m, "spec", "template", "spec", "containers") {
			for _, port := range maps(c, "ports") {
				p.ports = append(p.ports, str(port, "name"))
			}
		}
		all = append(all, p)
	}
	budgets := map[string]bool{}
	for _, d := range docs {
		var sel map[string]any
		switch d.kind() {
		case "Service":
			sel, _ = get(d.m, "spec", "selector").(map[string]any)
		case "PodDisruptionBudget":
			sel, _ = get(d.m, "spec", "selector", "matchLabels").(map[string]any)
			budgets[str(sel, "app.kubernetes.io/component")] = true
		default:
			continue
		}
		var match *pods
		for i := range all {
			if len(sel) > 0 && subset(sel, all[i].labels) {
				match = &all[i]
			}
		}
		if match == nil {
			t.Errorf("%s: selector %v selects no pods", d, sel)
			continue
		}
		if d.kind() == "Service" {
			for _, p := range maps(d.m, "spec", "ports") {
				if tp := str(p, "targetPort"); !slices.Contains(match.ports, tp) {
					t.Errorf("%s: targetPort %q is not a named port of its pods %v", d, tp, match.ports)
				}
			}
		}
	}
	for _, c := range []string{"ingress", "worker", "sink"} {
		if !budgets[c] {
			t.Errorf("no PodDisruptionBudget for the %s", c)
		}
	}
	checkScalersAndMonitors(t, docs)
}

// checkScalersAndMonitors wants each HorizontalPodAutoscaler to target a
// workload that leaves its replica count to it, and each ServiceMonitor to
// select a Service by its labels and name one of its ports.
func checkScalersAndMonitors(t *testing.T, docs []doc) {
	t.Helper()
	for _, d := range docs {
		switch d.kind() {
		case "HorizontalPodAutoscaler":
			kind, name := str(d.m, "spec", "scaleTargetRef", "kind"), str(d.m, "spec", "scaleTargetRef", "name")
			found := false
			for _, w := range docs {
				if w.kind() == kind && w.name() == name && complete(w) {
					found = true
					if get(w.m, "spec", "replicas") != nil {
						t.Errorf("%s: %s %s sets replicas, which fights the autoscaler", d, kind, name)
					}
				}
			}
			if !found {
				t.Errorf("%s: targets %s %s, which is not rendered", d, kind, name)
			}
			if len(maps(d.m, "spec", "metrics")) == 0 {
				t.Errorf("%s: no metrics", d)
			}
		case "ServiceMonitor":
			sel, _ := get(d.m, "spec", "selector", "matchLabels").(map[string]any)
			var ports []string
			for _, svc := range docs {
				labels, _ := get(svc.m, "metadata", "labels").(map[string]any)
				if svc.kind() == "Service" && len(sel) > 0 && subset(sel, labels) {
					for _, p := range maps(svc.m, "spec", "ports") {
						ports = append(ports, str(p, "name"))
					}
				}
			}
			for _, e := range maps(d.m, "spec", "endpoints") {
				if !slices.Contains(ports, str(e, "port")) || str(e, "path") != "/metrics" {
					t.Errorf("%s: endpoint %v: want /metrics on a port of the selected Services %v", d, e, ports)
				}
			}
		}
	}
}

// configVolume returns the projected config volume of a workload.
func configVolume(t *testing.T, docs []doc, kind, name string) map[string]any {
	t.Helper()
	for _, d := range docs {
		if d.kind() == kind && d.name() == name && complete(d) {
			for _, v := range maps(d.m, "spec", "template", "spec", "volumes") {
				if str(v, "name") == "config" {
					return v
				}
			}
		}
	}
	t.Fatalf("%s %s: no config volume", kind, name)
	return nil
}

// chartConfigDir is the chart's example config dir, the default of
// config.files (what the committed Kustomize files carry).
const chartConfigDir = Chart + "/files/config"

// TestConfigVolumeListsEveryFile checks that the ingress and the worker
// mount the same config dir and that it lists every file of the chart's
// config dir.
func TestConfigVolumeListsEveryFile(t *testing.T) {
	docs := loadDocs(t, "kubernetes")
	ingress := configVolume(t, docs, "Deployment", "gateflow-ingress")
	worker := configVolume(t, docs, "Deployment", "gateflow-worker")
	if !reflect.DeepEqual(ingress, worker) {
		t.Errorf("the ingress and the worker must mount the same config dir:\ningress %v\nworker  %v", ingress, worker)
	}
	var want, got []string
	err := filepath.WalkDir(chartConfigDir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			want = append(want, filepath.ToSlash(strings.TrimPrefix(path, chartConfigDir+"/")))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range maps(ingress, "projected", "sources") {
		for _, it := range maps(s, "configMap", "items") {
			got = append(got, str(it, "path"))
			if strings.ReplaceAll(str(it, "path"), "/", "_") != str(it, "key") {
				t.Errorf("item %v: the key must be the path with / replaced by _", it)
			}
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(want, got) {
		t.Errorf("config volume items %v, files under %s %v: regenerate the Kustomize files from the chart", got, chartConfigDir, want)
	}
}

// assembleConfigDir lays out the config dir of a workload as its
// projected volume does, from the ConfigMaps among docs, and loads it the
// way the ingress does (with prompt APIs).
func assembleConfigDir(t *testing.T, docs []doc, kind, name string) *sysconfig.Snapshot {
	t.Helper()
	vol := configVolume(t, docs, kind, name)
	data := map[string]map[string]any{}
	for _, d := range docs {
		if d.kind() == "ConfigMap" {
			data[d.name()], _ = get(d.m, "data").(map[string]any)
		}
	}
	dir := t.TempDir()
	for _, s := range maps(vol, "projected", "sources") {
		cm := str(s, "configMap", "name")
		for _, it := range maps(s, "configMap", "items") {
			content, ok := data[cm][str(it, "key")].(string)
			if !ok {
				t.Fatalf("%s %s: ConfigMap %s has no key %s", kind, name, cm, str(it, "key"))
			}
			target := filepath.Join(dir, filepath.FromSlash(str(it, "path")))
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(target, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	snap, err := sysconfig.Load(dir, prompt.Extension())
	if err != nil {
		t.Fatalf("the config dir of %s %s does not load: %v", kind, name, err)
	}
	return snap
}

// TestConfigDirLoads loads the config dir of the committed manifests.
func TestConfigDirLoads(t *testing.T) {
	snap := assembleConfigDir(t, loadDocs(t, "kubernetes"), "Deployment", "gateflow-ingress")
	if _, ok := snap.Definition("reserve-and-charge", "1"); !ok {
		t.Error("definition reserve-and-charge@1 not loaded")
	}
}

// TestStatefulSetsMatchDeployments keeps the durable-spool overlay's pod
// templates equal to the base Deployments' (but for the spool volume).
func TestStatefulSetsMatchDeployments(t *testing.T) {
	docs := loadDocs(t, "kubernetes")
	find := func(kind, name string) map[string]any {
		for _, d := range docs {
			if d.kind() == kind && d.name() == name && complete(d) {
				return d.m
			}
		}
		t.Fatalf("no %s %s", kind, name)
		return nil
	}
	for _, c := range []string{"ingress", "worker"} {
		dep := find("Deployment", "gateflow-"+c)
		sts := find("StatefulSet", "gateflow-"+c)
		dt, _ := get(dep, "spec", "template").(map[string]any)
		st, _ := get(sts, "spec", "template").(map[string]any)
		dt, st = clone(dt), clone(st)
		// The Deployment's spool is an emptyDir, the StatefulSet's a claim.
		dpod := dt["spec"].(map[string]any)
		var kept []any
		for _, v := range list(dpod, "volumes") {
			if str(v, "name") != "spool" {
				kept = append(kept, v)
			}
		}
		dpod["volumes"] = kept
		if !reflect.DeepEqual(dt, st) {
			t.Errorf("%s: the StatefulSet's pod template differs from the Deployment's: make the same change in overlays/durable-spool/statefulsets.yaml as in base/%s.yaml", c, c)
		}
		if !reflect.DeepEqual(get(dep, "spec", "selector"), get(sts, "spec", "selector")) {
			t.Errorf("%s: selectors differ", c)
		}
		claims := maps(sts, "spec", "volumeClaimTemplates")
		if len(claims) != 1 || str(claims[0], "metadata", "name") != "spool" {
			t.Errorf("%s: want one volumeClaimTemplate named spool", c)
		}
	}
}

func clone(m map[string]any) map[string]any {
	b, err := yaml.Marshal(m)
	if err != nil {
		panic(err)
	}
	var out map[string]any
	if err := yaml.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

// TestKustomizeBuild renders the base, each overlay and each overlay with
// both components through `kubectl kustomize` when kubectl is installed,
// and checks that every ConfigMap a workload names was generated.
func TestKustomizeBuild(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed; the other tests check the manifests without it")
	}
	abs, err := filepath.Abs("kubernetes")
	if err != nil {
		t.Fatal(err)
	}
	withComponents := func(overlay string) string {
		dir := t.TempDir()
		rel, err := filepath.Rel(dir, abs)
		if err != nil {
			t.Fatal(err)
		}
		k := fmt.Sprintf("resources:\n  - %s/overlays/%s\ncomponents:\n  - %s/components/temporal-mtls\n  - %s/components/kafka-sasl-tls\n",
			rel, overlay, rel, rel)
		if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	targets := map[string]string{
		"base":                     filepath.Join(abs, "base"),
		"example":                  filepath.Join(abs, "overlays/example"),
		"durable-spool":            filepath.Join(abs, "overlays/durable-spool"),
		"example+components":       withComponents("example"),
		"durable-spool+components": withComponents("durable-spool"),
	}
	for name, dir := range targets {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, kubectl, "kustomize", dir)
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr.String())
			}
			checkRendered(t, out, strings.HasSuffix(name, "+components"))
		})
	}
}

func checkRendered(t *testing.T, out []byte, components bool) {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(out))
	configMaps := map[string]bool{}
	var referenced []string
	workloads := 0
	var envs []string
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		d := doc{m: m}
		if d.kind() == "ConfigMap" {
			configMaps[d.name()] = true
		}
		if !isWorkload(d) {
			continue
		}
		workloads++
		pod := get(m, "spec", "template", "spec")
		for _, v := range maps(pod, "volumes") {
			for _, s := range maps(v, "projected", "sources") {
				if n := str(s, "configMap", "name"); n != "" {
					referenced = append(referenced, n)
				}
			}
		}
		for _, c := range maps(pod, "containers") {
			for _, e := range maps(c, "env") {
				envs = append(envs, str(e, "name"))
				if n := str(e, "valueFrom", "configMapKeyRef", "name"); n != "" {
					referenced = append(referenced, n)
				}
			}
		}
	}
	if workloads != 3 {
		t.Errorf("rendered %d workloads, want 3", workloads)
	}
	for _, n := range referenced {
		if !configMaps[n] {
			t.Errorf("ConfigMap %s is referenced but not rendered", n)
		}
	}
	if components && !slices.Contains(envs, "GATEFLOW_KAFKA_SASL_PASSWORD") {
		t.Error("the kafka-sasl-tls component did not apply")
	}
}

// TestSystemdUnits checks the units' structure; cmd/gateflow's test checks
// their variables against the flags.
func TestSystemdUnits(t *testing.T) {
	for _, c := range []string{"ingress", "worker", "sink"} {
		unit := filepath.Join("systemd", "gateflow-"+c+".service")
		kv := readUnit(t, unit)
		if got, want := kv["ExecStart"], []string{"/usr/local/bin/gateflow " + c}; !slices.Equal(got, want) {
			t.Errorf("%s: ExecStart %v, want %v", unit, got, want)
		}
		if len(kv["TimeoutStopSec"]) != 1 || kv["KillSignal"][0] != "SIGTERM" {
			t.Errorf("%s: want TimeoutStopSec and KillSignal=SIGTERM", unit)
		}
		files := kv["EnvironmentFile"]
		if len(files) != 2 {
			t.Errorf("%s: want gateflow.env and %s.env, got %v", unit, c, files)
		}
		for _, f := range files {
			local := filepath.Join("systemd", filepath.Base(strings.TrimPrefix(f, "-")))
			if !strings.HasPrefix(f, "/etc/gateflow/") {
				t.Errorf("%s: EnvironmentFile %s: want it under /etc/gateflow", unit, f)
			}
			readEnvFile(t, local)
		}
		if (c == "sink") != (len(kv["ExecReload"]) == 0) {
			t.Errorf("%s: ingress and worker reload on SIGHUP, the sink does not", unit)
		}
	}
}

// readUnit returns the values of each key of a unit file, in order.
func readUnit(t *testing.T, file string) map[string][]string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("%s:%d: not key=value: %q", file, n, line)
			continue
		}
		out[k] = append(out[k], v)
	}
	return out
}

// readEnvFile parses KEY=VALUE lines; commented-out assignments count too,
// so that the examples an operator uncomments are valid.
func readEnvFile(t *testing.T, file string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	assign := regexp.MustCompile(`^#?([A-Z][A-Z0-9_]*)=(.*)$`)
	out := map[string]string{}
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if m := assign.FindStringSubmatch(line); m != nil {
			out[m[1]] = m[2]
			continue
		}
		if line != "" && line[0] != '#' {
			t.Errorf("%s:%d: not KEY=VALUE: %q", file, n+1, line)
		}
	}
	return out
}
