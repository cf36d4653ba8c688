//go:build integration

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gateflow/gateflow/deploy/embedded/demo"
)

// TestDevLifecycle runs the built binary as a user would: `gateflow dev` in
// a temp dir on free ports, waits for the summary, writes into ClickHouse,
// stops it with SIGTERM (checking every child exited), and starts it again
// on the same data dir.
func TestDevLifecycle(t *testing.T) {
	bin := buildGateflow(t)
	dir := t.TempDir()
	ports := devFreePorts(t)

	d := startDev(t, bin, dir, ports)
	chHTTP := "http://127.0.0.1:" + strconv.Itoa(ports.chHTTP)
	chQuery(t, chHTTP, "CREATE TABLE IF NOT EXISTS dev_probe (n UInt64) ENGINE = MergeTree ORDER BY n")
	chQuery(t, chHTTP, "INSERT INTO dev_probe VALUES (42)")

	// A second dev on the same data dir is refused with a clear line.
	out, err := exec.Command(bin, append([]string{"dev"}, ports.args(dir)...)...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use by process") {
		t.Errorf("second dev: err=%v output=%s", err, out)
	}
	d.stop(t)

	d2 := startDev(t, bin, dir, ports)
	if got := chQuery(t, chHTTP, "SELECT sum(n) FROM dev_probe"); strings.TrimSpace(got) != "42" {
		t.Errorf("after restart: sum = %q, want 42", got)
	}
	d2.stop(t)
}

func TestDevPortInUse(t *testing.T) {
	bin := buildGateflow(t)
	ports := devFreePorts(t)
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(ports.kafka))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	out, err := exec.Command(bin, append([]string{"dev"}, ports.args(t.TempDir())...)...).CombinedOutput()
	if err == nil {
		t.Fatalf("dev started with its Kafka port taken: %s", out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "--kafka-port") {
		t.Fatalf("want one line naming --kafka-port, got:\n%s", out)
	}
}

func TestDevDataDirNotWritable(t *testing.T) {
	bin := buildGateflow(t)
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "dev", "--data-dir", filepath.Join(f, "sub")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not writable") || !strings.Contains(string(out), "--data-dir") {
		t.Fatalf("err=%v output=%s", err, out)
	}
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// buildGateflow builds the binary once per test run, always to the same
// path so that runs do not pile up binaries in the temp dir.
func buildGateflow(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir := filepath.Join(os.TempDir(), "gateflow-devtest-bin")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "gateflow")
		out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

type devPorts struct{ temporal, kafka, ch, chHTTP, ingress, demoBase int }

func (p devPorts) args(dataDir string) []string {
	return []string{
		"--data-dir", dataDir,
		"--temporal-port", strconv.Itoa(p.temporal), "--temporal-ui-port", "0",
		"--kafka-port", strconv.Itoa(p.kafka),
		"--clickhouse-port", strconv.Itoa(p.ch), "--clickhouse-http-port", strconv.Itoa(p.chHTTP),
		"--ingress-port", strconv.Itoa(p.ingress),
		"--demo-port-base", strconv.Itoa(p.demoBase),
	}
}

// devFreePorts picks dev's ports: one random block of free ports outside
// the kernel's ephemeral range (Temporal's four consecutive ports, Kafka,
// ClickHouse's two, the ingress, then the demo services' base and their
// ports up to demo.MaxOffset above it). Ports from the ephemeral range, even
// ones seen free, are handed to outgoing connections (of tests running in
// parallel, of dev itself while it starts) before dev gets to listen on
// them: CI failed with "demo inventory service: cannot listen on
// 127.0.0.1:55742: address already in use". Outside that range only another
// explicit bind can take a port.
func devFreePorts(t *testing.T) devPorts {
	t.Helper()
	lo, hi := devPortWindow(t)
	for range 200 {
		b := lo + rand.IntN(hi-lo-devPortBlock)
		p := devPorts{temporal: b, kafka: b + 4, ch: b + 5, chHTTP: b + 6, ingress: b + 7, demoBase: b + 8}
		if allFree(p.list()) {
			return p
		}
	}
	t.Fatalf("no block of %d free ports in %d..%d", devPortBlock, lo, hi)
	return devPorts{}
}

// devPortBlock is how many ports devFreePorts' block spans: up to the last
// demo service (demoBase + demo.MaxOffset).
const devPortBlock = 8 + demo.MaxOffset + 1

// list is every port dev listens on with these flags.
func (p devPorts) list() []int {
	ports := []int{p.temporal, p.temporal + 1, p.temporal + 2, p.temporal + 3, p.kafka, p.ch, p.chHTTP, p.ingress}
	for _, np := range demo.PortsAt(p.demoBase).List() {
		ports = append(ports, np.Port)
	}
	return ports
}

// devPortWindow is the larger run of ports from 10000 up that is outside
// the ephemeral range (/proc/sys/net/ipv4/ip_local_port_range, by default
// 32768..60999, leaving 10000..32767).
func devPortWindow(t *testing.T) (lo, hi int) {
	eLo, eHi := 32768, 60999
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if _, err := fmt.Sscan(string(b), &eLo, &eHi); err != nil {
			t.Logf("ip_local_port_range %q: %v; assuming %d..%d", b, err, eLo, eHi)
		}
	}
	below, above := [2]int{10000, eLo}, [2]int{eHi + 1, 65536}
	w := below
	if above[1]-above[0] > below[1]-below[0] {
		w = above
	}
	if w[1]-w[0] < 20*devPortBlock {
		t.Logf("ephemeral ports %d..%d leave no room: dev's ports may collide with outgoing connections", eLo, eHi)
		return 10000, 65536
	}
	return w[0], w[1]
}

// allFree reports whether every port can be listened on right now.
func allFree(ports []int) bool {
	for _, port := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

type devProc struct {
	cmd    *exec.Cmd
	stderr *lockedWriter
	done   chan struct{}
}

func startDev(t *testing.T, bin, dir string, ports devPorts) *devProc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"dev"}, ports.args(dir)...)...)
	cmd.Dir = dir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &devProc{cmd: cmd, stderr: &lockedWriter{}, done: make(chan struct{})}
	cmd.Stderr = d.stderr
	began := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-d.done
		}
	})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "Press Ctrl-C") {
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() { _ = cmd.Wait(); close(d.done) }()
	select {
	case <-ready:
		t.Logf("dev ready in %s", time.Since(began))
	case <-d.done:
		t.Fatalf("dev exited before ready: %v\n%s", cmd.ProcessState, d.stderr)
	case <-time.After(90 * time.Second):
		t.Fatalf("dev not ready after 90s:\n%s", d.stderr)
	}
	return d
}

// stop sends SIGTERM and checks that dev and every child exit in time.
func (d *devProc) stop(t *testing.T) {
	t.Helper()
	children := childPids(d.cmd.Process.Pid)
	if len(children) == 0 {
		t.Errorf("no child process (ClickHouse) found")
	}
	began := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("dev did not stop within 15s:\n%s", d.stderr)
	}
	t.Logf("dev stopped in %s", time.Since(began))
	if !d.cmd.ProcessState.Success() {
		t.Errorf("dev exit: %v\n%s", d.cmd.ProcessState, d.stderr)
	}
	for _, pid := range children {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			t.Errorf("child %d still running after dev stopped", pid)
		}
	}
}

// childPids lists the children of pid from /proc.
func childPids(pid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			out = append(out, n)
		}
	}
	return out
}

func chQuery(t *testing.T, base, q string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/?query="+url.QueryEscape(q), nil)
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s: %s", q, resp.Status, body)
	}
	return string(body)
}

// lockedWriter collects a child's output for error messages.
type lockedWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
