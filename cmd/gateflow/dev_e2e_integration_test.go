//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/gateflow/gateflow/deploy/embedded/demo"
)

// TestDevEndToEnd is issue 2's end-to-end test, run as a user would: the
// built binary, `gateflow dev` in a temp dir on free ports (demo services
// included), the CLI against it. It runs the examples through the worker
// (hello; order-fulfilment small, and large with two manager approvals;
// catalog-enrichment), reads their call records back from dev's ClickHouse
// with clickhouse-go, stops dev with SIGTERM (within 10 s, every child
// gone), starts it again on the same data dir and finds the workflows and
// records again, and completes an order that was left waiting for
// approval before the stop.
//
// Approvals: the order example wants `roles: [manager]`, quorum 2. The dev
// key (roles submitter, approver, analyst, admin; user dev) is not a
// manager — admin does not stand in for a role an approval step names —
// and one user votes once. So the test does what QUICKSTART.md tells a
// user: `gateflow keys create --roles approver,manager` twice (alice, bob)
// into the dev config dir's keys file, then SIGHUP.
func TestDevEndToEnd(t *testing.T) {
	e := startDevE2E(t)

	// hello: one http step against the demo echo service.
	hello := e.submitWatch("hello", `{"name":"Ada"}`)
	if hello.final.State != "succeeded" || !jsonEq(hello.final.Output, `{"greeting":"Hello, Ada!"}`) {
		t.Fatalf("hello: %+v", hello.final)
	}

	// order-fulfilment, small: no approval.
	small := e.submitWatch("order-fulfilment", order("S-1", 49.9))
	var out struct{ Charge, Shipment, Reference string }
	if small.final.State != "succeeded" || json.Unmarshal(small.final.Output, &out) != nil ||
		!strings.HasPrefix(out.Charge, "ch_") || out.Shipment != "shp-ord-S-1" {
		t.Fatalf("small order: %+v", small.final)
	}
	e.checkNotified(e.ports.demoBase, "ntf-S-1")

	// catalog-enrichment: foreach, parallel http + model (JSON), mcp.
	cat := e.submitWatch("catalog-enrichment", `{"products":[{"sku":"MUG-1","title":"Blue ceramic mug"},{"sku":"TEE-2","title":"Cotton shirt"}]}`)
	var catOut struct {
		Count     int `json:"count"`
		Published struct {
			Published int `json:"published"`
			Products  []struct {
				SKU  string   `json:"sku"`
				Tags []string `json:"tags"`
			} `json:"products"`
		} `json:"published"`
	}
	if cat.final.State != "succeeded" || json.Unmarshal(cat.final.Output, &catOut) != nil || catOut.Count != 2 ||
		catOut.Published.Published != 2 || len(catOut.Published.Products[0].Tags) == 0 {
		t.Fatalf("catalog-enrichment: %+v", cat.final)
	}

	// order-fulfilment, large: two manager approvals.
	large := e.submit("order-fulfilment", order("L-1", 2500))
	e.waitPending(large, "manager_approval")
	if _, stderr, err := e.cli(e.key, "approve", large, "manager_approval"); err == nil || !strings.Contains(stderr, "not_approver") {
		t.Fatalf("dev key approving a manager step: err=%v %s", err, stderr)
	}
	alice := e.createKey("alice")
	bob := e.createKey("bob")
	if err := e.dev.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	e.waitKeyLoaded(alice)
	if so, _ := e.mustCLI(alice, "approve", large, "manager_approval", "--comment", "fine"); !strings.Contains(so, "1 of 2 votes") {
		t.Fatalf("first vote: %s", so)
	}
	if _, stderr, err := e.cli(alice, "approve", large, "manager_approval"); err == nil || !strings.Contains(stderr, "duplicate_vote") {
		t.Fatalf("second vote by alice: err=%v %s", err, stderr)
	}
	if so, _ := e.mustCLI(bob, "approve", large, "manager_approval"); !strings.Contains(so, "approved (2 of 2 votes)") {
		t.Fatalf("second vote: %s", so)
	}
	if st := e.watch(large); st.State != "succeeded" {
		t.Fatalf("large order: %+v", st)
	}

	// Another large order, left waiting across the restart.
	waiting := e.submit("order-fulfilment", order("L-2", 5000))
	e.waitPending(waiting, "manager_approval")

	// Call records, through Kafka into ClickHouse, read with clickhouse-go.
	chAddr := "127.0.0.1:" + strconv.Itoa(e.ports.ch)
	wantKinds := map[string][]string{
		hello.id: {"http", "ingress"},
		small.id: {"http", "ingress", "model"},
		cat.id:   {"http", "ingress", "mcp", "model"},
		large:    {"approval", "http", "ingress", "model"},
		waiting:  {"http", "ingress"},
	}
	e.waitRecords(chAddr, wantKinds)
	e.checkModelRecords(chAddr, small.id)
	e.checkTrace(chAddr)

	e.checkMetrics()

	// The ClickHouse child dies (SIGKILL): dev restarts it on the same
	// ports and data, and records of calls made meanwhile arrive.
	chPid := clickHouseChild(t, e.dev.cmd.Process.Pid)
	if err := syscall.Kill(chPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	whileDown := e.submitWatch("hello", `{"name":"Grace"}`)
	if whileDown.final.State != "succeeded" {
		t.Fatalf("hello while ClickHouse restarts: %+v", whileDown.final)
	}
	wantKinds[whileDown.id] = []string{"http", "ingress"}
	before := e.waitRecords(chAddr, wantKinds)
	if now := clickHouseChild(t, e.dev.cmd.Process.Pid); now == chPid {
		t.Fatalf("ClickHouse child %d not replaced", chPid)
	}

	// SIGTERM: within 10 s, children gone, demo ports free.
	began := time.Now()
	e.dev.stop(t)
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("dev took %s to stop", took)
	}
	for _, p := range demo.PortsAt(e.ports.demoBase).List() {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p.Port))
		if err != nil {
			t.Errorf("demo %s port still taken after stop: %v", p.Name, err)
			continue
		}
		l.Close()
	}

	// Restart on the same data dir.
	e.dev = startDev(t, e.bin, e.dir, e.ports)
	e.waitReady()
	so, _ := e.mustCLI(e.key, "list", "--all", "--limit", "100", "-o", "json")
	var page struct {
		Items []struct{ ID, State string }
	}
	if err := json.Unmarshal([]byte(so), &page); err != nil {
		t.Fatalf("list: %v: %s", err, so)
	}
	states := map[string]string{}
	for _, it := range page.Items {
		states[it.ID] = it.State
	}
	for id := range wantKinds {
		if _, ok := states[id]; !ok {
			t.Errorf("workflow %s not listed after restart: %v", id, states)
		}
	}
	if states[waiting] != "running" {
		t.Errorf("waiting order after restart: %q", states[waiting])
	}
	after := e.countRecords(chAddr, slices.Collect(maps.Keys(wantKinds)))
	if after < before {
		t.Errorf("records after restart: %d, before: %d", after, before)
	}
	// An edit of the config dir applies without SIGHUP: a new version of
	// hello dropped into definitions/ is served and run.
	hello2 := `{"name": "hello", "version": "2", "steps": [{"id": "greet", "kind": "http", "service": "echo",
		"method": "POST", "path": "/echo", "body": {"greeting": "Hi, ${{ input.name }}!"}}],
		"output": "${{ steps.greet.output.body }}"}`
	if err := os.WriteFile(filepath.Join(e.dir, "config", "definitions", "hello-2.json"), []byte(hello2), 0o644); err != nil {
		t.Fatal(err)
	}
	e.poll("hello@2 loaded without SIGHUP", 30*time.Second, func() (bool, string) {
		req, _ := http.NewRequest(http.MethodGet, e.api+"/v1/definitions/hello/versions/2", nil)
		req.Header.Set("Authorization", "Bearer "+e.key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	if hi := e.submitWatch("hello", `{"name":"Lin"}`); hi.final.State != "succeeded" || !jsonEq(hi.final.Output, `{"greeting":"Hi, Lin!"}`) {
		t.Fatalf("hello@2: %+v", hi.final)
	}

	e.mustCLI(alice, "approve", waiting, "manager_approval")
	if so, _ := e.mustCLI(bob, "approve", waiting, "manager_approval"); !strings.Contains(so, "approved (2 of 2 votes)") {
		t.Fatalf("vote after restart: %s", so)
	}
	if st := e.watch(waiting); st.State != "succeeded" {
		t.Fatalf("waiting order after restart: %+v", st)
	}
	e.waitRecords(chAddr, map[string][]string{waiting: {"approval", "http", "ingress", "model"}})
	e.dev.stop(t)
}

// checkMetrics reads dev's /metrics (one registry for the process): the
// ingress's, the worker's producer (process="worker") and the Temporal
// SDK's worker metrics are all there.
func (e *e2e) checkMetrics() {
	e.t.Helper()
	resp, err := http.Get(e.api + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("/metrics: %s: %s", resp.Status, body)
	}
	for _, want := range []string{
		"gateflow_ingress_requests_total{",
		`gateflow_producer_records_emitted_total{process="worker"}`,
		`gateflow_producer_records_emitted_total{process="ingress"}`,
		"temporal_workflow_completed{",
		"temporal_activity_execution_latency_bucket{",
		"temporal_workflow_task_schedule_to_start_latency_bucket{",
		"go_goroutines ",
	} {
		if !bytes.Contains(body, []byte(want)) {
			e.t.Errorf("/metrics lacks %s", want)
		}
	}
}

// clickHouseChild is the pid of dev's ClickHouse child (the only child
// process dev runs).
func clickHouseChild(t *testing.T, devPid int) int {
	t.Helper()
	for _, pid := range childPids(devPid) {
		cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if bytes.Contains(cmdline, []byte("clickhouse")) {
			return pid
		}
	}
	t.Fatalf("no ClickHouse child of dev (pid %d)", devPid)
	return 0
}

func order(id string, amount float64) string {
	return fmt.Sprintf(`{"order_id":%q,"amount":%v,"customer":{"email":"ada@example.com","name":"Ada"},"items":[{"sku":"MUG-1","qty":2}]}`, id, amount)
}

// e2e drives one dev process with the CLI.
type e2e struct {
	t        *testing.T
	bin, dir string
	api, key string
	ports    devPorts
	dev      *devProc
}

// status is the part of a workflow status the test reads.
type status struct {
	ID      string          `json:"id"`
	State   string          `json:"state"`
	Output  json.RawMessage `json:"output"`
	Error   string          `json:"error"`
	Pending []struct {
		StepID string `json:"step_id"`
	} `json:"pending_approvals"`
}

type submitted struct {
	id    string
	final status
}

// cli runs the gateflow CLI (bounded to 90 s) with the given API key.
func (e *e2e) cli(key string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, args...)
	cmd.Dir = e.dir
	cmd.Env = append(os.Environ(), "GATEFLOW_API_URL="+e.api, "GATEFLOW_API_KEY="+key)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err = cmd.Run()
	return so.String(), se.String(), err
}

func (e *e2e) mustCLI(key string, args ...string) (string, string) {
	e.t.Helper()
	so, se, err := e.cli(key, args...)
	if err != nil {
		e.t.Fatalf("gateflow %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, so, se)
	}
	return so, se
}

// submitWatch runs `gateflow submit DEF --input ... --watch -o json` and
// returns the id and the last status printed.
func (e *e2e) submitWatch(def, input string) submitted {
	e.t.Helper()
	so, _ := e.mustCLI(e.key, "submit", def, "--input", input, "--watch", "-o", "json")
	dec := json.NewDecoder(strings.NewReader(so))
	var first struct{ ID string }
	if err := dec.Decode(&first); err != nil || first.ID == "" {
		e.t.Fatalf("submit %s: %v: %s", def, err, so)
	}
	s := submitted{id: first.ID}
	for {
		var st status
		if err := dec.Decode(&st); err == io.EOF {
			break
		} else if err != nil {
			e.t.Fatalf("watch %s: %v: %s", def, err, so)
		}
		s.final = st
	}
	e.t.Logf("%s %s: %s %s", def, s.id, s.final.State, s.final.Output)
	return s
}

func (e *e2e) submit(def, input string) string {
	e.t.Helper()
	so, _ := e.mustCLI(e.key, "submit", def, "--input", input, "-o", "json")
	var s struct{ ID string }
	if err := json.Unmarshal([]byte(so), &s); err != nil || s.ID == "" {
		e.t.Fatalf("submit %s: %v: %s", def, err, so)
	}
	return s.ID
}

func (e *e2e) watch(id string) status {
	e.t.Helper()
	so, _ := e.mustCLI(e.key, "watch", id, "-o", "json")
	var last status
	dec := json.NewDecoder(strings.NewReader(so))
	for {
		var st status
		if dec.Decode(&st) != nil {
			return last
		}
		last = st
	}
}

// poll calls f every 200 ms until it reports done, failing after limit.
func (e *e2e) poll(what string, limit time.Duration, f func() (bool, string)) {
	e.t.Helper()
	began := time.Now()
	deadline := began.Add(limit)
	for {
		done, state := f()
		if done {
			if took := time.Since(began); took > time.Second {
				e.t.Logf("%s: took %s", what, took.Round(time.Millisecond))
			}
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: not after %s (last: %s)", what, limit, state)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (e *e2e) waitReady() {
	e.t.Helper()
	e.poll("/readyz", 60*time.Second, func() (bool, string) {
		resp, err := http.Get(e.api + "/readyz?strict=true") // every dependency up
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body := string(b)
		named := strings.Contains(body, "temporal") && strings.Contains(body, "kafka") && strings.Contains(body, "clickhouse")
		return resp.StatusCode == http.StatusOK && named, resp.Status + " " + body
	})
}

func (e *e2e) waitPending(id, step string) {
	e.t.Helper()
	e.poll("approval "+step+" of "+id, 30*time.Second, func() (bool, string) {
		so, se, err := e.cli(e.key, "status", id, "-o", "json")
		if err != nil {
			return false, se
		}
		var st status
		_ = json.Unmarshal([]byte(so), &st)
		for _, p := range st.Pending {
			if p.StepID == step {
				return true, ""
			}
		}
		return false, so
	})
}

// createKey adds a manager key to dev's keys file with `gateflow keys create`.
func (e *e2e) createKey(user string) string {
	e.t.Helper()
	so, _ := e.mustCLI("", "keys", "create", "--tenant", "dev", "--roles", "approver,manager", "--user", user,
		"--keys-file", filepath.Join(e.dir, "config", "keys.yaml"))
	return strings.TrimSpace(so)
}

func (e *e2e) waitKeyLoaded(key string) {
	e.t.Helper()
	e.poll("key loaded after SIGHUP", 15*time.Second, func() (bool, string) {
		_, se, err := e.cli(key, "approvals")
		return err == nil, se
	})
}

// checkNotified reads the demo notifications service.
func (e *e2e) checkNotified(base int, id string) {
	e.t.Helper()
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(base+demo.NotificationsOffset) + "/notifications")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(b), `"`+id+`"`) || !strings.Contains(string(b), "demo model") {
		e.t.Errorf("notification %s not received: %s", id, b)
	}
}

func (e *e2e) clickhouse(addr string) clickhouse.Conn {
	e.t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: 5 * time.Second})
	if err != nil {
		e.t.Fatal(err)
	}
	return conn
}

// waitRecords waits until ClickHouse holds records of every wanted kind
// for every workflow, and returns how many records they have in all.
func (e *e2e) waitRecords(addr string, want map[string][]string) int {
	e.t.Helper()
	conn := e.clickhouse(addr)
	defer conn.Close()
	total := 0
	e.poll("call records in ClickHouse", 90*time.Second, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		total = 0
		var missing []string
		for id, kinds := range want {
			rows, err := conn.Query(ctx, "SELECT kind, count() FROM calls FINAL WHERE workflow_id = ? GROUP BY kind ORDER BY kind", "dev/"+id)
			if err != nil {
				return false, err.Error()
			}
			var got []string
			for rows.Next() {
				var kind string
				var n uint64
				if err := rows.Scan(&kind, &n); err != nil {
					rows.Close()
					return false, err.Error()
				}
				got = append(got, kind)
				total += int(n)
			}
			rows.Close()
			for _, k := range kinds {
				if !slices.Contains(got, k) {
					missing = append(missing, id+":"+k)
				}
			}
		}
		return len(missing) == 0, "missing " + strings.Join(missing, ", ")
	})
	return total
}

func (e *e2e) countRecords(addr string, ids []string) int {
	e.t.Helper()
	conn := e.clickhouse(addr)
	defer conn.Close()
	var wf []string
	for _, id := range ids {
		wf = append(wf, "dev/"+id)
	}
	var n uint64
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := conn.QueryRow(ctx, "SELECT count() FROM calls FINAL WHERE has(?, workflow_id)", wf).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return int(n)
}

// checkModelRecords: the thank-you note was answered by the demo model
// (after the local Ollama target, when none runs, failed with a
// connection error and the alias fell back), with tokens and a cost.
func (e *e2e) checkModelRecords(addr, id string) {
	e.t.Helper()
	conn := e.clickhouse(addr)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := conn.Query(ctx, `SELECT target, outcome, error_class, tokens_in, tokens_out, cost_usd FROM calls FINAL
		WHERE workflow_id = ? AND kind = 'model' ORDER BY ts`, "dev/"+id)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var seen []string
	ok := false
	for rows.Next() {
		var target, outcome, class string
		var in, out int64
		var cost float64
		if err := rows.Scan(&target, &outcome, &class, &in, &out, &cost); err != nil {
			e.t.Fatal(err)
		}
		seen = append(seen, fmt.Sprintf("%s %s %s in=%d out=%d cost=%g", target, outcome, class, in, out, cost))
		switch {
		case target == "demo/echo" && outcome == "ok" && in > 0 && out > 0 && cost > 0:
			ok = true
		case target == "local/llama3.2" && outcome == "ok":
			ok = true // a real local model answered
		case target == "local/llama3.2" && class != "connection":
			e.t.Errorf("local model failed with %q, not a connection error", class)
		}
	}
	e.t.Logf("model records of %s: %v", id, seen)
	if !ok {
		e.t.Errorf("no successful model record for %s: %v", id, seen)
	}
}

// dumpLogs prints dev's terminal output and the end of its log.
func (e *e2e) dumpLogs() {
	if e.dev != nil {
		e.t.Logf("dev stderr:\n%s", e.dev.stderr)
	}
	b, err := os.ReadFile(filepath.Join(e.dir, "logs", "gateflow.log"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		e.t.Logf("read log: %v", err)
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) > 300 {
		lines = lines[len(lines)-300:]
	}
	e.t.Logf("gateflow.log (last %d lines):\n%s", len(lines), strings.Join(lines, "\n"))
}

// jsonEq compares a JSON value with JSON text, ignoring formatting.
func jsonEq(got json.RawMessage, want string) bool {
	var a, b any
	if json.Unmarshal(got, &a) != nil || json.Unmarshal([]byte(want), &b) != nil {
		return false
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// TestDevDemoPortInUse: a taken demo port stops dev before anything starts,
// with one line naming the flags that move or turn off the demo services.
func TestDevDemoPortInUse(t *testing.T) {
	bin := buildGateflow(t)
	ports := devFreePorts(t)
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(ports.demoBase+demo.PaymentsOffset))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	out, err := exec.Command(bin, append([]string{"dev"}, ports.args(t.TempDir())...)...).CombinedOutput()
	if err == nil {
		t.Fatalf("dev started with a demo port taken: %s", out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "demo payments service") || !strings.Contains(lines[0], "--demo-services=false") {
		t.Fatalf("want one line naming the demo service and --demo-services=false, got:\n%s", out)
	}
}

// startDevE2E builds the binary, starts `gateflow dev` on free ports in a
// temporary dir, waits until it is ready and reads its dev key; the logs
// are printed if the test fails.
func startDevE2E(t *testing.T) *e2e {
	t.Helper()
	bin := buildGateflow(t)
	dir := t.TempDir()
	ports := devFreePorts(t)
	e := &e2e{t: t, bin: bin, dir: dir, api: "http://127.0.0.1:" + strconv.Itoa(ports.ingress), ports: ports}
	t.Cleanup(func() {
		if t.Failed() {
			e.dumpLogs()
		}
	})
	e.dev = startDev(t, bin, dir, ports)
	e.waitReady()
	key, err := os.ReadFile(filepath.Join(dir, "dev-key"))
	if err != nil {
		t.Fatal(err)
	}
	e.key = strings.TrimSpace(string(key))
	return e
}
