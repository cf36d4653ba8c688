package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The processes of a fault run: each part is this binary's subcommand in a
// process of its own, started, killed and restarted on the same data.

// part is one process of the fault run.
type part struct {
	name string // ingress-1, worker-2, clickhouse, ...
	kind string // ingress, worker, sink, clickhouse, temporal, kafka
	exe  string
	args []string
	log  string
	// ready answers nil once the part serves.
	ready func(ctx context.Context) error

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	// restarts counts starts after the part exited on its own.
	restarts atomic.Int64
	// cpuEnded is the CPU time (user + system) of the part's processes
	// that have ended, killed ones included.
	cpuEnded atomic.Int64
}

// cpu is the CPU time the part's processes used so far: those that ended
// (from their rusage) and the running one (from /proc).
func (p *part) cpu() time.Duration {
	d := time.Duration(p.cpuEnded.Load())
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return d
	}
	select {
	case <-done:
		return d
	default:
	}
	return d + procCPU(cmd.Process.Pid)
}

// procCPU reads a running process's user + system time from
// /proc/PID/stat (fields 14 and 15, in clock ticks of 1/100 s, Linux's
// USER_HZ); 0 when it cannot be read.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: fields are counted
	// after its closing parenthesis, which is field 3's start minus 2.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// start runs the part's process; its output is appended to its log file.
// It does nothing while the process runs: a part killed by one fault may be
// restarted by whoever notices first (the fault's own restart, or a wait
// for readiness during another fault), and a second copy would run
// untracked on the same data.
func (p *part) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done != nil {
		select {
		case <-p.done:
		default:
			return nil
		}
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "\n=== %s start %s\n", time.Now().Format(time.RFC3339Nano), p.name)
	cmd := exec.Command(p.exe, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	// The kernel kills the part if the fault run dies; its own process
	// group keeps a terminal's Ctrl-C to the fault run, which stops the
	// parts in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		if st := cmd.ProcessState; st != nil {
			p.cpuEnded.Add(int64(st.UserTime() + st.SystemTime()))
		}
		f.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	return nil
}

// signal sends sig to the running process and, for SIGKILL, waits for it
// to be gone.
func (p *part) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	if sig == syscall.SIGKILL {
		<-done
	}
}

// stop ends the process with SIGTERM, then SIGKILL after grace.
func (p *part) stop(grace time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
	}
}

// exited reports whether the process has ended (crashed, if not killed).
func (p *part) exited() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// waitReady polls ready every 50 ms until it answers nil or timeout.
func (p *part) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if p.exited() {
			// As a supervisor would (Kubernetes, systemd): a part that
			// exits at start, e.g. because Temporal is down too, is
			// started again.
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s exited and did not come back within %s (see %s)", p.name, timeout, p.log)
			case <-time.After(time.Second):
			}
			p.restarts.Add(1)
			if err := p.start(); err != nil {
				return err
			}
			continue
		}
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
		last = p.ready(rctx)
		rcancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %v (see %s)", p.name, timeout, last, p.log)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// httpReady is a readiness check: GET url answers 200.
func httpReady(url string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	}
}

// tcpReady is a readiness check: addr accepts connections.
func tcpReady(addr string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// portBlock returns n consecutive free loopback ports (the embedded
// Temporal server wants its four together only by default; the fault run
// passes them one by one, but consecutive ports keep its log readable).
func portBlock(rng *rand.Rand, n int) ([]int, error) {
	for range 200 {
		base := 20000 + rng.IntN(40000)
		var lns []net.Listener
		ok := true
		for i := range n {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+i))
			if err != nil {
				ok = false
				break
			}
			lns = append(lns, l)
		}
		for _, l := range lns {
			l.Close()
		}
		if ok {
			ports := make([]int, n)
			for i := range ports {
				ports[i] = base + i
			}
			return ports, nil
		}
	}
	return nil, errors.New("no block of free ports found")
}

// partsDir is where a part keeps its data and log.
func partsDir(root, name string) string { return filepath.Join(root, name) }
