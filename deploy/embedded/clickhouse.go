package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MinClickHouseVersion is the oldest `clickhouse` binary on PATH that dev
// uses; older ones (Debian ships 18.16) lack what the analytics schema and
// clickhouse-go v2 need.
var MinClickHouseVersion = [2]int{25, 8}

// ErrClickHouseTooOld is returned by FindClickHouseBinary for a binary older
// than MinClickHouseVersion.
var ErrClickHouseTooOld = errors.New("clickhouse binary on PATH is too old")

// ClickHouseOptions configures StartClickHouse. Exactly one engine is used:
// ServerBinary if set (a `clickhouse` binary, run as `clickhouse server`),
// else LibPath (libchdb in a child process started with Command).
type ClickHouseOptions struct {
	// DataDir holds the databases; created if missing.
	DataDir string
	// TCPPort (native protocol) and HTTPPort listen on 127.0.0.1.
	TCPPort  int
	HTTPPort int
	// LibPath is libchdb.so (see EnsureLibCHDB).
	LibPath string
	// ServerBinary is a ClickHouse >= 25.8 binary (see FindClickHouseBinary);
	// when set, LibPath and Command are ignored.
	ServerBinary string
	// Command is the executable and leading arguments that run
	// RunCHDBChild; CHDBChildArgs.Args() is appended. Default:
	// os.Executable() followed by "clickhouse-child".
	Command []string
	// Env is added to the child's environment.
	Env []string
	// LogFile receives the child's stdout and stderr when Output is nil.
	// Default: DataDir/clickhouse-child.log (appended to).
	LogFile string
	// Output, if set, receives the child's stdout and stderr instead of
	// LogFile.
	Output io.Writer
	// ReadyTimeout bounds the wait for HTTP `SELECT 1`. Default 60 s.
	ReadyTimeout time.Duration
	// Logger receives lifecycle lines. Default: discard.
	Logger *slog.Logger
	// ConfigFile is a ClickHouse config file for the libchdb child, read on
	// top of the flags (tests of a cluster layout); ignored with
	// ServerBinary.
	ConfigFile string
}

// ClickHouse is a running ClickHouse child process.
type ClickHouse struct {
	opts    ClickHouseOptions
	cmd     *exec.Cmd
	logFile *os.File
	tail    *tailBuffer
	exited  chan struct{}
	waitErr error
	stop    sync.Once
	stopErr error
}

// StartClickHouse starts ClickHouse as a child process and waits until it
// answers HTTP `SELECT 1`. The child is in its own process group and gets
// SIGKILL if this process dies, so it never outlives it. If the child exits
// before it is ready, the error carries the tail of its log.
func StartClickHouse(ctx context.Context, opts ClickHouseOptions) (*ClickHouse, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create ClickHouse data dir: %w", err)
	}
	argv, err := opts.argv()
	if err != nil {
		return nil, err
	}
	ch := &ClickHouse{opts: opts, tail: &tailBuffer{max: 8 << 10}, exited: make(chan struct{})}
	var out io.Writer = opts.Output
	if out == nil {
		if err := os.MkdirAll(filepath.Dir(opts.LogFile), 0o755); err != nil {
			return nil, fmt.Errorf("create log dir: %w", err)
		}
		f, err := os.OpenFile(opts.LogFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open ClickHouse log: %w", err)
		}
		ch.logFile, out = f, f
	}
	out = io.MultiWriter(out, ch.tail)

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = opts.DataDir
	cmd.Env = append(os.Environ(), opts.Env...)
	cmd.Stdout, cmd.Stderr = out, out
	// Own process group: a terminal's Ctrl-C reaches only us, and we stop the
	// child in order. Pdeathsig: the kernel kills the child if we die.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	ch.cmd = cmd

	// Pdeathsig fires when the *thread* that forked the child exits, so fork
	// from a locked thread that lives exactly as long as the child.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		ch.waitErr = cmd.Wait()
		if ch.logFile != nil {
			ch.logFile.Close()
		}
		close(ch.exited)
	}()
	if err := <-started; err != nil {
		if ch.logFile != nil {
			ch.logFile.Close()
		}
		return nil, fmt.Errorf("start ClickHouse child %s: %w", argv[0], err)
	}
	opts.Logger.Debug("clickhouse child started", "pid", cmd.Process.Pid, "argv", argv)
	if err := ch.waitReady(ctx); err != nil {
		stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ch.Stop(stopCtx)
		return nil, err
	}
	return ch, nil
}

func (o *ClickHouseOptions) setDefaults() error {
	if o.DataDir == "" {
		return errors.New("ClickHouse: DataDir is required")
	}
	abs, err := filepath.Abs(o.DataDir)
	if err != nil {
		return err
	}
	o.DataDir = abs
	if o.TCPPort == 0 {
		o.TCPPort = 9000
	}
	if o.HTTPPort == 0 {
		o.HTTPPort = 8123
	}
	if o.ServerBinary == "" && o.LibPath == "" {
		return errors.New("ClickHouse: LibPath or ServerBinary is required")
	}
	if o.ServerBinary == "" && len(o.Command) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("locate own executable: %w", err)
		}
		o.Command = []string{exe, "clickhouse-child"}
	}
	if o.LogFile == "" {
		o.LogFile = filepath.Join(o.DataDir, "clickhouse-child.log")
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 60 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// argv is the child's command line.
func (o ClickHouseOptions) argv() ([]string, error) {
	if o.ServerBinary != "" {
		cfg, err := writeServerConfig(o)
		if err != nil {
			return nil, err
		}
		return []string{o.ServerBinary, "server", "--config-file=" + cfg}, nil
	}
	args := CHDBChildArgs{LibPath: o.LibPath, DataDir: o.DataDir, TCPPort: o.TCPPort, HTTPPort: o.HTTPPort, ConfigFile: o.ConfigFile}
	if err := args.Validate(); err != nil {
		return nil, err
	}
	return append(append([]string(nil), o.Command...), args.Args()...), nil
}

// writeServerConfig writes a minimal config.xml for `clickhouse server`:
// loopback only, the two ports, the data dir, a passwordless default user.
func writeServerConfig(o ClickHouseOptions) (string, error) {
	const tmpl = `<clickhouse>
    <logger>
        <level>information</level>
        <console>1</console>
    </logger>
    <path>%[1]s/</path>
    <tmp_path>%[1]s/tmp/</tmp_path>
    <user_files_path>%[1]s/user_files/</user_files_path>
    <format_schema_path>%[1]s/format_schemas/</format_schema_path>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>%[2]d</tcp_port>
    <http_port>%[3]d</http_port>
    <mark_cache_size>268435456</mark_cache_size>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
            <access_management>1</access_management>
        </default>
    </users>
    <profiles><default/></profiles>
    <quotas><default/></quotas>
</clickhouse>
`
	p := filepath.Join(o.DataDir, "gateflow-server-config.xml")
	body := fmt.Sprintf(tmpl, xmlEscape(o.DataDir), o.TCPPort, o.HTTPPort)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		return "", fmt.Errorf("write ClickHouse config: %w", err)
	}
	return p, nil
}

func xmlEscape(s string) string {
	var b bytes.Buffer
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// waitReady polls HTTP `SELECT 1` until it answers, the child exits, ctx is
// done or ReadyTimeout passes.
func (c *ClickHouse) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.ReadyTimeout)
	defer cancel()
	// No keep-alive: an idle connection would delay ClickHouse's shutdown.
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	u := c.HTTPURL() + "/?query=" + url.QueryEscape("SELECT 1")
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if resp, err := client.Do(req); err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.TrimSpace(string(body)) == "1" {
				return nil
			}
		}
		select {
		case <-c.exited:
			return fmt.Errorf("ClickHouse child exited before it was ready (%v); log %s ends with:\n%s",
				c.waitErr, c.logName(), c.tail.String())
		case <-ctx.Done():
			return fmt.Errorf("ClickHouse not ready on %s after %s: %w; log %s ends with:\n%s",
				c.HTTPURL(), c.opts.ReadyTimeout, ctx.Err(), c.logName(), c.tail.String())
		case <-tick.C:
		}
	}
}

func (c *ClickHouse) logName() string {
	if c.opts.Output != nil {
		return "output"
	}
	return c.opts.LogFile
}

// NativeAddr is the native-protocol host:port.
func (c *ClickHouse) NativeAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.opts.TCPPort))
}

// HTTPURL is the HTTP interface base URL, without a trailing slash.
func (c *ClickHouse) HTTPURL() string {
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(c.opts.HTTPPort))
}

// DSN is a clickhouse-go DSN for the default database.
func (c *ClickHouse) DSN() string {
	return "clickhouse://" + c.NativeAddr() + "/default"
}

// LogFile is the file that receives the child's output ("" when Output was
// given).
func (c *ClickHouse) LogFile() string {
	if c.opts.Output != nil {
		return ""
	}
	return c.opts.LogFile
}

// Pid is the child's process id.
func (c *ClickHouse) Pid() int { return c.cmd.Process.Pid }

// Exited is closed when the child process has exited, for whatever reason.
func (c *ClickHouse) Exited() <-chan struct{} { return c.exited }

// ExitErr is the child's exit status once Exited is closed.
func (c *ClickHouse) ExitErr() error {
	select {
	case <-c.exited:
		return c.waitErr
	default:
		return nil
	}
}

// LogTail returns the last few KB the child wrote.
func (c *ClickHouse) LogTail() string { return c.tail.String() }

// Stop sends SIGTERM, waits up to 5 s (or until ctx is done), then kills the
// whole process group. It returns once the child has exited; it is safe to
// call more than once.
func (c *ClickHouse) Stop(ctx context.Context) error {
	c.stop.Do(func() { c.stopErr = c.doStop(ctx) })
	return c.stopErr
}

func (c *ClickHouse) doStop(ctx context.Context) error {
	pid := c.cmd.Process.Pid
	select {
	case <-c.exited:
		return nil
	default:
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	grace := time.NewTimer(5 * time.Second)
	defer grace.Stop()
	select {
	case <-c.exited:
		return nil
	case <-grace.C:
	case <-ctx.Done():
	}
	c.opts.Logger.Warn("ClickHouse child did not stop on SIGTERM, killing it", "pid", pid)
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	select {
	case <-c.exited:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("ClickHouse child %d did not exit after SIGKILL", pid)
	}
}

// FindClickHouseBinary looks for a `clickhouse` binary on PATH and returns
// it with its version. It returns ErrClickHouseTooOld (wrapped, with the
// version) for binaries older than MinClickHouseVersion and exec.ErrNotFound
// when there is none.
func FindClickHouseBinary(ctx context.Context) (path, version string, err error) {
	path, err = exec.LookPath("clickhouse")
	if err != nil {
		return "", "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").CombinedOutput()
	if err != nil {
		return "", "", fmt.Errorf("%s --version: %w", path, err)
	}
	version, major, minor, ok := parseClickHouseVersion(string(out))
	if !ok {
		return "", "", fmt.Errorf("%s --version: cannot read version from %q", path, strings.TrimSpace(string(out)))
	}
	if major < MinClickHouseVersion[0] || (major == MinClickHouseVersion[0] && minor < MinClickHouseVersion[1]) {
		return path, version, fmt.Errorf("%w: %s is %s, need >= %d.%d", ErrClickHouseTooOld, path, version,
			MinClickHouseVersion[0], MinClickHouseVersion[1])
	}
	return path, version, nil
}

var versionRE = regexp.MustCompile(`version (\d+)\.(\d+)[.\d]*`)

// parseClickHouseVersion reads "ClickHouse local version 25.8.1.5101
// (official build)." and similar.
func parseClickHouseVersion(out string) (version string, major, minor int, ok bool) {
	m := versionRE.FindStringSubmatch(out)
	if m == nil {
		return "", 0, 0, false
	}
	major, _ = strconv.Atoi(m[1])
	minor, _ = strconv.Atoi(m[2])
	return strings.TrimPrefix(m[0], "version "), major, minor, true
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
