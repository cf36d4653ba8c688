package embedded

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/ebitengine/purego"
)

// CHDBChildArgs configures the ClickHouse child process that serves the
// native and HTTP protocols from libchdb.
type CHDBChildArgs struct {
	// LibPath is the path of libchdb.so.
	LibPath string
	// DataDir is ClickHouse's --path: where databases live.
	DataDir string
	// TCPPort is the native-protocol port, HTTPPort the HTTP port; both
	// listen on 127.0.0.1.
	TCPPort  int
	HTTPPort int
	// ConfigFile, if set, is a ClickHouse config file (XML) read on top of
	// the flags: <remote_servers>, <macros>, <zookeeper> for tests of a
	// cluster layout.
	ConfigFile string
}

// Args renders a as the flags of the clickhouse-child subcommand (and of
// the test binary re-executed by embeddedtest); ParseCHDBChildArgs reads them
// back.
func (a CHDBChildArgs) Args() []string {
	args := []string{
		"--lib", a.LibPath,
		"--path", a.DataDir,
		"--tcp-port", strconv.Itoa(a.TCPPort),
		"--http-port", strconv.Itoa(a.HTTPPort),
	}
	if a.ConfigFile != "" {
		args = append(args, "--config-file", a.ConfigFile)
	}
	return args
}

// BindFlags registers the child's flags on a standard flag set.
func (a *CHDBChildArgs) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&a.LibPath, "lib", "", "path of libchdb.so")
	fs.StringVar(&a.DataDir, "path", "", "ClickHouse data dir")
	fs.IntVar(&a.TCPPort, "tcp-port", 9000, "native protocol port on 127.0.0.1")
	fs.IntVar(&a.HTTPPort, "http-port", 8123, "HTTP port on 127.0.0.1")
	fs.StringVar(&a.ConfigFile, "config-file", "", "ClickHouse config file read on top of the flags (optional)")
}

// ParseCHDBChildArgs parses the flags written by Args.
func ParseCHDBChildArgs(args []string) (CHDBChildArgs, error) {
	var a CHDBChildArgs
	fs := flag.NewFlagSet("clickhouse-child", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	a.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return a, err
	}
	return a, a.Validate()
}

// Validate reports missing or out-of-range values.
func (a CHDBChildArgs) Validate() error {
	var errs []error
	if a.LibPath == "" {
		errs = append(errs, errors.New("--lib: path of libchdb.so is required"))
	}
	if a.DataDir == "" {
		errs = append(errs, errors.New("--path: data dir is required"))
	}
	for name, p := range map[string]int{"--tcp-port": a.TCPPort, "--http-port": a.HTTPPort} {
		if p <= 0 || p > 65535 {
			errs = append(errs, fmt.Errorf("%s %d: want 1..65535", name, p))
		}
	}
	if a.TCPPort == a.HTTPPort {
		errs = append(errs, errors.New("--tcp-port and --http-port must differ"))
	}
	return errors.Join(errs...)
}

// serveQuery makes clickhouse-local open the server listeners, then keeps the
// query (and so the process) alive until it is cancelled; the sleep is the
// cancellation latency.
const serveQuery = "SYSTEM START LISTEN TCP; SYSTEM START LISTEN HTTP; " +
	"SELECT sleepEachRow(0.25) FROM system.numbers SETTINGS max_block_size=1 FORMAT Null"

// serveQueryID names the serving query so that the child can cancel it,
// which makes clickhouse-local shut down cleanly.
const serveQueryID = "gateflow-serve"

// cmdline returns the argv given to chdb_query_cmdline (clickhouse-local's
// main). ClickHouse's own native-protocol listener is on nativePort, behind
// the relay on a.TCPPort (see relayNative).
func (a CHDBChildArgs) cmdline(nativePort int) []string {
	var config []string
	if a.ConfigFile != "" {
		config = []string{"--config-file=" + a.ConfigFile}
	}
	return append(append([]string{"clickhouse"}, config...),
		"--path="+a.DataDir,
		"--listen_host=127.0.0.1",
		"--tcp_port="+strconv.Itoa(nativePort),
		"--http_port="+strconv.Itoa(a.HTTPPort),
		// Only fatal events (a crash: signal, stack trace) go to stderr,
		// i.e. the child's log: every failed client query would otherwise
		// log a stack trace.
		"--logger.console=1", "--log-level=fatal",
		"--query_id="+serveQueryID,
		"--query", serveQuery,
	)
}

// RunCHDBChild loads libchdb and serves ClickHouse until ctx is done, then
// cancels the serving query so that ClickHouse shuts down cleanly (flushing
// what it buffers), and returns. It must run in a process of its own:
// ClickHouse never unloads. It returns an error if ClickHouse stops by
// itself (bad data dir, port taken: the details are on stderr).
//
// The native-protocol port is served by a relay in this process (see
// relayNative), not by ClickHouse itself: clickhouse-local aborts when an
// idle native connection is reset.
func RunCHDBChild(ctx context.Context, a CHDBChildArgs) error {
	if err := a.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(a.DataDir, 0o755); err != nil {
		return fmt.Errorf("create ClickHouse data dir: %w", err)
	}
	// Take the public native port first, so that a port in use fails here,
	// with its name, before ClickHouse loads.
	native, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(a.TCPPort)))
	if err != nil {
		return fmt.Errorf("native protocol port: %w", err)
	}
	defer native.Close()
	lib, err := purego.Dlopen(a.LibPath, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return fmt.Errorf("load %s: %w", a.LibPath, err)
	}
	var (
		queryCmdline  func(argc int32, argv uintptr) uintptr
		resultError   func(result uintptr) string
		destroyResult func(result uintptr)
	)
	purego.RegisterLibFunc(&queryCmdline, lib, "chdb_query_cmdline")
	purego.RegisterLibFunc(&resultError, lib, "chdb_result_error")
	purego.RegisterLibFunc(&destroyResult, lib, "chdb_destroy_query_result")

	// Picked last, so that little time passes before ClickHouse binds it.
	innerPort, err := freeLoopbackPort()
	if err != nil {
		return fmt.Errorf("ClickHouse's own native port: %w", err)
	}
	go relayNative(native, net.JoinHostPort("127.0.0.1", strconv.Itoa(innerPort)))
	cmdline := a.cmdline(innerPort)
	argv, free, err := cArgv(cmdline)
	if err != nil {
		return err
	}
	done := make(chan string, 1)
	go func() {
		res := queryCmdline(int32(len(cmdline)), argv)
		msg := "no result"
		if res != 0 {
			msg = resultError(res)
			destroyResult(res)
		}
		done <- msg
	}()
	select {
	case msg := <-done:
		free()
		if msg == "" {
			msg = "see its output above"
		}
		return fmt.Errorf("ClickHouse stopped serving: %s", msg)
	case <-ctx.Done():
	}
	// No new native connections; open ones stay relayed until ClickHouse
	// closes them. Cancelling the serving query makes clickhouse-local shut
	// down in order: tables are flushed and closed.
	native.Close()
	if err := childQuery(a.HTTPPort, "KILL QUERY WHERE query_id = '"+serveQueryID+"' ASYNC"); err != nil {
		return fmt.Errorf("stop ClickHouse: %w", err)
	}
	select {
	case <-done:
		free()
		return nil
	case <-time.After(3 * time.Second):
		// Committed parts are on disk; what remains is waiting for client
		// connections, which ClickHouse itself abandons after 5 s.
		return errors.New("ClickHouse still waiting for open client connections after 3s; exiting")
	}
}

// freeLoopbackPort returns a TCP port free on 127.0.0.1 a moment ago, as
// the kernel hands out for a bind to port 0 (Linux prefers odd ports there
// and even ones for outgoing connections). Another process may still take
// it before ClickHouse binds it; ClickHouse then fails to start, with the
// reason in its log.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	return port, l.Close()
}

// relayNative accepts native-protocol clients on l and relays each to
// ClickHouse at inner, until l is closed.
//
// Why a relay: clickhouse-local (libchdb 26.7), unlike clickhouse-server,
// aborts the whole process ("Terminate called for uncaught exception: Code:
// 210 NetException: Connection reset by peer, while reading from socket")
// when a native connection that is idle between queries is reset. A client
// process that dies (SIGKILL, crash) resets its connections whenever
// unread data is left in them. The relay turns however a client goes away
// into an orderly end of stream towards ClickHouse, which clickhouse-local
// handles: TestNativeClientResetKeepsClickHouse. HTTP is not relayed: a
// reset HTTP connection does not abort it.
func relayNative(l net.Listener, inner string) {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient accept error (EMFILE): back off a little, like
			// net/http does.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go relayConn(c.(*net.TCPConn), inner)
	}
}

// relayConn relays one client connection. ClickHouse's side is only ever
// half-closed (FIN) and fully closed after ClickHouse closed it, so it never
// sees a reset: a reset comes from closing a socket with unread data in it,
// and the relay reads everything ClickHouse sends, even after the client
// has gone.
func relayConn(client *net.TCPConn, inner string) {
	defer client.Close()
	up, err := net.DialTimeout("tcp", inner, 5*time.Second)
	if err != nil {
		return
	}
	server := up.(*net.TCPConn)
	defer server.Close()
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		// Until the client closes or resets, or ClickHouse closed first
		// and the client's side was closed below.
		_, _ = io.Copy(server, client)
		_ = server.CloseWrite()
	}()
	if _, err := io.Copy(client, server); err != nil {
		// The client is gone (or ClickHouse's side failed): drain what
		// ClickHouse still sends until it closes, which it does once it
		// reads the end of stream.
		_, _ = io.Copy(io.Discard, server)
	}
	// ClickHouse closed: end the client's side too, which ends the copy
	// towards ClickHouse.
	_ = client.Close()
	<-sent
}

// childQuery runs q over the child's own HTTP port.
func childQuery(httpPort int, q string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		"http://127.0.0.1:"+strconv.Itoa(httpPort)+"/", strings.NewReader(q))
	if err != nil {
		return err
	}
	// No keep-alive: ClickHouse's shutdown waits for open HTTP connections.
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%q: %s: %s", q, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// cArgv lays out args as a NULL-terminated char** in memory mapped outside
// the Go heap, so that C may keep the pointers for as long as it likes.
func cArgv(args []string) (argv uintptr, free func(), err error) {
	ptrSize := int(unsafe.Sizeof(uintptr(0)))
	size := (len(args) + 1) * ptrSize
	for _, s := range args {
		size += len(s) + 1
	}
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return 0, nil, fmt.Errorf("mmap argv: %w", err)
	}
	base := uintptr(unsafe.Pointer(&mem[0]))
	off := (len(args) + 1) * ptrSize
	for i, s := range args {
		copy(mem[off:], s)
		mem[off+len(s)] = 0
		*(*uintptr)(unsafe.Pointer(&mem[i*ptrSize])) = base + uintptr(off)
		off += len(s) + 1
	}
	// The trailing NULL pointer is already zero (fresh anonymous mapping).
	return base, func() { _ = syscall.Munmap(mem) }, nil
}
