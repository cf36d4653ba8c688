package main

// Checks that keep docs/OPERATIONS.md and deploy/cluster true to the real
// flags: the tables of GATEFLOW_* variables are generated from the command
// tree (go test ./cmd/gateflow -run TestOperationsDoc -update-docs rewrites
// them), every GATEFLOW_* name the doc mentions exists, and every variable,
// argument and shutdown budget in the Kubernetes manifests and systemd
// units matches a flag of the process it configures. Nothing is started.

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite the generated tables of docs/OPERATIONS.md")

const (
	operationsDoc = "../../docs/OPERATIONS.md"
	clusterDir    = "../../deploy/cluster"
	// producerCloseTimeout mirrors the bound runIngress and runWorker give
	// the call-record producer on shutdown; a termination grace period
	// must leave room for it.
	producerCloseTimeout = 10 * time.Second
)

// productionProcesses are the subcommands operators run on clusters.
var productionProcesses = []string{"ingress", "worker", "sink"}

// nonFlagVariables are GATEFLOW_* variables read directly, not through a
// flag (gateflow dev's key, the libchdb cache, test switches).
var nonFlagVariables = []string{"GATEFLOW_DEV_KEY", "GATEFLOW_CACHE_DIR", "GATEFLOW_LIBCHDB", "GATEFLOW_SKIP_CLICKHOUSE"}

func subcommand(t *testing.T, root *cobra.Command, name string) *cobra.Command {
	t.Helper()
	cmd, _, err := root.Find([]string{name})
	if err != nil || cmd == root || cmd.Name() != name {
		t.Fatalf("no subcommand %q", name)
	}
	return cmd
}

// flagOfEnv returns the flag of cmd that variable sets, or nil.
func flagOfEnv(cmd *cobra.Command, variable string) *pflag.Flag {
	name, ok := strings.CutPrefix(variable, envPrefix)
	if !ok {
		return nil
	}
	name = strings.ToLower(strings.ReplaceAll(name, "_", "-"))
	if f := cmd.Flags().Lookup(name); f != nil {
		return f
	}
	return cmd.InheritedFlags().Lookup(name)
}

// flagGroup orders the tables: connections first, logs last.
func flagGroup(name string) int {
	switch {
	case strings.HasPrefix(name, "temporal-"):
		return 0
	case strings.HasPrefix(name, "kafka-"):
		return 1
	case strings.HasPrefix(name, "clickhouse-"):
		return 2
	case strings.HasPrefix(name, "log-"):
		return 4
	}
	return 3
}

func flagDefault(f *pflag.Flag) string {
	v := f.DefValue
	if strings.HasSuffix(f.Value.Type(), "Slice") {
		v = strings.TrimSuffix(strings.TrimPrefix(v, "["), "]")
	}
	if v == "" {
		return "(empty)"
	}
	return "`" + v + "`"
}

func mdCell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// flagsTable renders the flags of cmds as a Markdown table; with several
// commands a column names the processes that have each flag, and values
// that differ between them are listed per process.
func flagsTable(cmds []*cobra.Command) string {
	type row struct {
		name            string
		procs           []string
		defaults, usage map[string]string // process -> value
	}
	rows := map[string]*row{}
	for _, c := range cmds {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if f.Hidden || f.Name == "help" {
				return
			}
			r := rows[f.Name]
			if r == nil {
				r = &row{name: f.Name, defaults: map[string]string{}, usage: map[string]string{}}
				rows[f.Name] = r
			}
			r.procs = append(r.procs, c.Name())
			r.defaults[c.Name()] = flagDefault(f)
			r.usage[c.Name()] = f.Usage
		})
	}
	names := make([]string, 0, len(rows))
	for n := range rows {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		if ga, gb := flagGroup(a), flagGroup(b); ga != gb {
			return ga - gb
		}
		return strings.Compare(a, b)
	})
	merged := func(r *row, vals map[string]string) string {
		first := vals[r.procs[0]]
		same := true
		for _, p := range r.procs {
			same = same && vals[p] == first
		}
		if same {
			return mdCell(first)
		}
		parts := make([]string, len(r.procs))
		for i, p := range r.procs {
			parts[i] = p + ": " + mdCell(vals[p])
		}
		return strings.Join(parts, "<br>")
	}
	var b strings.Builder
	if len(cmds) > 1 {
		b.WriteString("| Variable | Flag | Default | Processes | Meaning |\n|---|---|---|---|---|\n")
	} else {
		b.WriteString("| Variable | Flag | Default | Meaning |\n|---|---|---|---|\n")
	}
	for _, n := range names {
		r := rows[n]
		fmt.Fprintf(&b, "| `%s` | `--%s` | %s |", envName(n), n, merged(r, r.defaults))
		if len(cmds) > 1 {
			fmt.Fprintf(&b, " %s |", strings.Join(r.procs, ", "))
		}
		fmt.Fprintf(&b, " %s |\n", merged(r, r.usage))
	}
	return b.String()
}

// replaceGenerated swaps the text between the begin and end markers of a
// generated section.
func replaceGenerated(doc, section, content string) (string, error) {
	begin := "<!-- BEGIN GENERATED " + section + " -->\n"
	end := "<!-- END GENERATED " + section + " -->"
	i := strings.Index(doc, begin)
	j := strings.Index(doc, end)
	if i < 0 || j < i {
		return "", fmt.Errorf("markers %q ... %q not found", strings.TrimSpace(begin), end)
	}
	return doc[:i+len(begin)] + content + doc[j:], nil
}

// TestOperationsDoc keeps the variable tables of docs/OPERATIONS.md equal
// to the flags of ingress, worker, sink and dev.
func TestOperationsDoc(t *testing.T) {
	root := newRootCmd()
	var procs []*cobra.Command
	for _, p := range productionProcesses {
		procs = append(procs, subcommand(t, root, p))
	}
	b, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	sections := []struct{ name, table string }{
		{"flags of ingress, worker, sink", flagsTable(procs)},
		{"flags of dev", flagsTable([]*cobra.Command{subcommand(t, root, "dev")})},
	}
	want := doc
	for _, s := range sections {
		if want, err = replaceGenerated(want, s.name, s.table); err != nil {
			t.Fatalf("%s: %v", operationsDoc, err)
		}
	}
	if want == doc {
		return
	}
	if *updateDocs {
		if err := os.WriteFile(operationsDoc, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the generated tables of %s", operationsDoc)
		return
	}
	got, exp := strings.Split(doc, "\n"), strings.Split(want, "\n")
	line := 0
	for line < len(got) && line < len(exp) && got[line] == exp[line] {
		line++
	}
	var gotLine, expLine string
	if line < len(got) {
		gotLine = got[line]
	}
	if line < len(exp) {
		expLine = exp[line]
	}
	t.Errorf("%s:%d: the table of variables differs from the flags.\n doc:   %s\n flags: %s\n"+
		"Regenerate it: go test ./cmd/gateflow -run TestOperationsDoc -update-docs", operationsDoc, line+1, gotLine, expLine)
}

// knownVariables returns every GATEFLOW_* variable a flag of any command
// reads, plus the ones read directly.
func knownVariables(root *cobra.Command) map[string]bool {
	known := map[string]bool{}
	for _, v := range nonFlagVariables {
		known[v] = true
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		add := func(f *pflag.Flag) { known[envName(f.Name)] = true }
		c.Flags().VisitAll(add)
		c.PersistentFlags().VisitAll(add)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return known
}

// TestOperationsDocNamesRealVariables fails on a GATEFLOW_* name in
// docs/OPERATIONS.md that nothing reads (a renamed or removed flag).
func TestOperationsDocNamesRealVariables(t *testing.T) {
	known := knownVariables(newRootCmd())
	b, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(string(b), "\n") {
		for _, v := range regexp.MustCompile(`GATEFLOW_[A-Z0-9_]*[A-Z0-9]`).FindAllString(line, -1) {
			if !known[v] {
				t.Errorf("%s:%d: %s is neither a flag's variable nor read by the code", operationsDoc, i+1, v)
			}
		}
	}
}

// manifestDoc is one YAML document of deploy/cluster/kubernetes.
type manifestDoc struct {
	file string
	m    map[string]any
}

func yget(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func ystr(v any, path ...string) string {
	s, _ := yget(v, path...).(string)
	return s
}

func ymaps(v any, path ...string) []map[string]any {
	l, _ := yget(v, path...).([]any)
	var out []map[string]any
	for _, e := range l {
		if m, ok := e.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// parseManifests returns the YAML documents of one file or render.
func parseManifests(file string, b []byte) ([]manifestDoc, error) {
	var docs []manifestDoc
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if m != nil {
			docs = append(docs, manifestDoc{file: file, m: m})
		}
	}
	return docs, nil
}

func loadManifests(t *testing.T) []manifestDoc {
	t.Helper()
	var docs []manifestDoc
	err := filepath.WalkDir(filepath.Join(clusterDir, "kubernetes"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		more, err := parseManifests(path, b)
		docs = append(docs, more...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

// processSettings are the values a container or unit gives a process.
type processSettings struct {
	where string
	cmd   *cobra.Command
	env   map[string]string // GATEFLOW_* variables with literal values ("" when from a Secret or ConfigMap)
}

// value returns a flag's value: the variable when set, else the default.
func (p processSettings) value(t *testing.T, flagName string) string {
	t.Helper()
	if v, ok := p.env[envName(flagName)]; ok && v != "" {
		return v
	}
	f := p.cmd.Flags().Lookup(flagName)
	if f == nil {
		t.Fatalf("%s: %s has no --%s", p.where, p.cmd.Name(), flagName)
	}
	return f.DefValue
}

func (p processSettings) duration(t *testing.T, flagName string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(p.value(t, flagName))
	if err != nil {
		t.Fatalf("%s: --%s: %v", p.where, flagName, err)
	}
	return d
}

// checkVariables fails on a GATEFLOW_* variable that is no flag of the
// process, or whose literal value the flag refuses.
func (p processSettings) checkVariables(t *testing.T) {
	t.Helper()
	for name, v := range p.env {
		f := flagOfEnv(p.cmd, name)
		if f == nil {
			t.Errorf("%s: %s is not a variable of `gateflow %s` (no flag --%s)", p.where, name, p.cmd.Name(),
				strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, envPrefix), "_", "-")))
			continue
		}
		if v == "" {
			continue
		}
		// Parse the value with a fresh flag of the same kind.
		fresh := subcommandFresh(p.cmd.Name()).Flags().Lookup(f.Name)
		if err := fresh.Value.Set(v); err != nil {
			t.Errorf("%s: %s=%q: %v", p.where, name, v, err)
		}
	}
}

// subcommandFresh returns the named subcommand of a new command tree, so
// that setting its flags does not touch the tree other checks read.
func subcommandFresh(name string) *cobra.Command {
	cmd, _, _ := newRootCmd().Find([]string{name})
	return cmd
}

// checkShutdownBudget fails when the time a process may take to stop is
// above what its supervisor waits before SIGKILL.
func (p processSettings) checkShutdownBudget(t *testing.T, grace, preStop time.Duration) {
	t.Helper()
	var need time.Duration
	switch p.cmd.Name() {
	case "ingress":
		need = preStop + p.duration(t, "shutdown-timeout") + producerCloseTimeout
	case "worker":
		need = p.duration(t, "stop-timeout") + producerCloseTimeout
	default:
		return
	}
	if grace < need {
		t.Errorf("%s: the process may take %s to stop but is killed after %s", p.where, need, grace)
	}
}

// checkReachableListener fails when a listener probes or clients must
// reach stays on the loopback default.
func (p processSettings) checkReachableListener(t *testing.T) {
	t.Helper()
	flagName := map[string]string{"ingress": "listen", "worker": "metrics-listen", "sink": "metrics-listen"}[p.cmd.Name()]
	if flagName == "" {
		return
	}
	host, _, err := net.SplitHostPort(p.value(t, flagName))
	if err != nil {
		t.Errorf("%s: --%s: %v", p.where, flagName, err)
		return
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		t.Errorf("%s: --%s listens on %s: probes and other pods cannot reach it; set %s", p.where, flagName, host, envName(flagName))
	}
}

// connectionFlags name where the clusters are; their defaults are for one
// machine (loopback), so a deployment must set each one its process has.
var connectionFlags = []string{"temporal-host", "kafka-brokers", "clickhouse-dsn"}

// checkConnections fails when a process would connect to a loopback
// default: a connection variable missing (set from a Secret or ConfigMap
// counts as set).
func (p processSettings) checkConnections(t *testing.T) {
	t.Helper()
	for _, f := range connectionFlags {
		if p.cmd.Flags().Lookup(f) == nil {
			continue
		}
		if _, ok := p.env[envName(f)]; !ok {
			t.Errorf("%s: %s is not set: `gateflow %s` would use its default %s", p.where, envName(f), p.cmd.Name(),
				p.cmd.Flags().Lookup(f).DefValue)
		}
	}
}

// TestClusterManifestsUseRealFlags checks every Gateflow container of the
// Kubernetes manifests (whole workloads and patches) against its process's
// flags.
func TestClusterManifestsUseRealFlags(t *testing.T) {
	if n := checkManifestFlags(t, loadManifests(t)); n < 8 {
		t.Errorf("checked %d containers; the manifests moved?", n)
	}
}

// checkManifestFlags checks every Gateflow container of docs against its
// process's flags and returns how many it checked.
func checkManifestFlags(t *testing.T, docs []manifestDoc) int {
	t.Helper()
	root := newRootCmd()
	containers := 0
	for _, d := range docs {
		kind := ystr(d.m, "kind")
		if kind != "Deployment" && kind != "StatefulSet" {
			continue
		}
		whole := yget(d.m, "spec", "selector") != nil
		pod := yget(d.m, "spec", "template", "spec")
		for _, c := range ymaps(pod, "containers") {
			containers++
			name := ystr(c, "name")
			where := fmt.Sprintf("%s: %s %s, container %s", d.file, kind, ystr(d.m, "metadata", "name"), name)
			if !slices.Contains(productionProcesses, name) {
				t.Errorf("%s: name the container after its subcommand (%v)", where, productionProcesses)
				continue
			}
			p := processSettings{where: where, cmd: subcommand(t, root, name), env: map[string]string{}}
			if cmdLine, ok := yget(c, "command").([]any); ok && (len(cmdLine) != 1 || cmdLine[0] != "/gateflow") {
				t.Errorf("%s: command %v: leave it to the image's entrypoint (/gateflow)", where, cmdLine)
			}
			args, _ := yget(c, "args").([]any)
			if whole && (len(args) == 0 || args[0] != name) {
				t.Errorf("%s: args %v: want [%s ...]", where, args, name)
			}
			for _, a := range args[min(1, len(args)):] {
				s, _ := a.(string)
				flagName, _, _ := strings.Cut(strings.TrimPrefix(s, "--"), "=")
				if !strings.HasPrefix(s, "--") || p.cmd.Flags().Lookup(flagName) == nil {
					t.Errorf("%s: argument %q is no flag of `gateflow %s`", where, s, name)
				}
			}
			for _, e := range ymaps(c, "env") {
				if n := ystr(e, "name"); strings.HasPrefix(n, envPrefix) {
					p.env[n] = ystr(e, "value")
				}
			}
			p.checkVariables(t)
			if !whole {
				continue
			}
			p.checkReachableListener(t)
			p.checkConnections(t)
			grace, ok := yget(pod, "terminationGracePeriodSeconds").(int)
			if !ok {
				t.Errorf("%s: terminationGracePeriodSeconds missing", where)
				continue
			}
			preStop := 0
			if s, ok := yget(c, "lifecycle", "preStop", "sleep", "seconds").(int); ok {
				preStop = s
			}
			p.checkShutdownBudget(t, time.Duration(grace)*time.Second, time.Duration(preStop)*time.Second)
		}
	}
	return containers
}

// TestSystemdUnitsUseRealFlags checks the units' ExecStart and every
// variable of their environment files (commented-out examples included)
// against the flags of their process.
func TestSystemdUnitsUseRealFlags(t *testing.T) {
	root := newRootCmd()
	dir := filepath.Join(clusterDir, "systemd")
	for _, name := range productionProcesses {
		unit := filepath.Join(dir, "gateflow-"+name+".service")
		b, err := os.ReadFile(unit)
		if err != nil {
			t.Fatal(err)
		}
		p := processSettings{where: unit, cmd: subcommand(t, root, name), env: map[string]string{}}
		var stop time.Duration
		for _, line := range strings.Split(string(b), "\n") {
			key, val, ok := strings.Cut(strings.TrimSpace(line), "=")
			if !ok || strings.HasPrefix(key, "#") {
				continue
			}
			switch key {
			case "ExecStart":
				fields := strings.Fields(val)
				if len(fields) < 2 || filepath.Base(fields[0]) != "gateflow" || fields[1] != name {
					t.Errorf("%s: ExecStart=%s: want gateflow %s", unit, val, name)
				}
				for _, a := range fields[min(2, len(fields)):] {
					flagName, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
					if p.cmd.Flags().Lookup(flagName) == nil {
						t.Errorf("%s: argument %q is no flag of `gateflow %s`", unit, a, name)
					}
				}
			case "Environment":
				k, v, _ := strings.Cut(val, "=")
				if strings.HasPrefix(k, envPrefix) {
					p.env[k] = v
				}
			case "EnvironmentFile":
				readEnvInto(t, filepath.Join(dir, filepath.Base(strings.TrimPrefix(val, "-"))), p.env)
			case "TimeoutStopSec":
				if stop, err = time.ParseDuration(val); err != nil {
					t.Errorf("%s: TimeoutStopSec=%s: %v", unit, val, err)
				}
			}
		}
		p.checkVariables(t)
		p.checkConnections(t)
		p.checkShutdownBudget(t, stop, 0)
	}
}

// readEnvInto adds the GATEFLOW_* assignments of an environment file,
// commented-out ones included, to env.
func readEnvInto(t *testing.T, file string, env map[string]string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	assign := regexp.MustCompile(`^#?(` + envPrefix + `[A-Z0-9_]+)=(.*)$`)
	for _, line := range strings.Split(string(b), "\n") {
		if m := assign.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			v := m[2]
			if u, err := strconv.Unquote(v); err == nil {
				v = u
			}
			env[m[1]] = v
		}
	}
}
