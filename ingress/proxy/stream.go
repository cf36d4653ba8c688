package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Streaming both ways at constant memory, written once: bodies go through
// one pooled 32 KiB buffer per direction; event streams and bodies of
// unknown length are flushed after every read so that server-sent events
// arrive as they are written; a pause longer than the idle timeout in
// either direction ends the call; protocol upgrades (WebSocket) become a
// bidirectional byte pipe.

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// tryTimer bounds one try: first the wait for the answer's headers, then
// (idle) each pause in the bodies; progress of the request body restarts
// it, so a long upload is not a timeout. When it fires it cancels the try.
type tryTimer struct {
	t      *time.Timer
	d      atomic.Int64 // the duration touch restarts it with
	cancel context.CancelFunc
	mu     sync.Mutex
	done   bool // fired
}

func newTryTimer(d time.Duration, cancel context.CancelFunc) *tryTimer {
	tt := &tryTimer{cancel: cancel}
	d = max(d, 0)
	tt.d.Store(int64(d))
	tt.t = time.AfterFunc(d, tt.fire)
	return tt
}

func (tt *tryTimer) fire() {
	tt.mu.Lock()
	tt.done = true
	tt.mu.Unlock()
	tt.cancel()
}

// fired stops the timer and reports whether it had fired.
func (tt *tryTimer) fired() bool {
	if tt.t.Stop() {
		return false
	}
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return tt.done
}

// idle turns the stopped timer into the idle timeout d of the bodies.
func (tt *tryTimer) idle(d time.Duration) *tryTimer {
	tt.d.Store(int64(d))
	tt.t.Reset(d)
	return tt
}

// touch restarts the timer after progress.
func (tt *tryTimer) touch() {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if !tt.done {
		tt.t.Reset(time.Duration(tt.d.Load()))
	}
}

// stop stops the timer and reports whether it had fired.
func (tt *tryTimer) stop() bool { return tt.fired() }

// countingBody is the client's request body as forwarded: it counts the
// bytes read, enforces the API's body limit, keeps the idle timer going,
// and ignores Close, which the transport calls after every try, so that
// an unread body can be sent again by a retry.
type countingBody struct {
	r     io.Reader
	n     atomic.Int64 // read by the handler while the transport writes
	limit int64
	timer atomic.Pointer[tryTimer]
	err   error // the limit error, once hit (the transport's goroutine only)
}

// errBodyTooLarge carries the limit to the one error mapping (413).
type errBodyTooLarge struct{ limit int64 }

func (e *errBodyTooLarge) Error() string {
	return fmt.Sprintf("request body is larger than %d bytes", e.limit)
}

func (b *countingBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	read := b.n.Load()
	if rem := b.limit - read; int64(len(p)) > rem+1 {
		p = p[:rem+1]
	}
	n, err := b.r.Read(p)
	read = b.n.Add(int64(n))
	if t := b.timer.Load(); t != nil && n > 0 {
		t.touch()
	}
	if read > b.limit {
		b.err = &errBodyTooLarge{limit: b.limit}
		return 0, b.err
	}
	return n, err
}

func (b *countingBody) Close() error { return nil }

// clientWriteError is a failure to write to the client (it went away), as
// opposed to a failure to read the upstream.
type clientWriteError struct{ err error }

func (e *clientWriteError) Error() string { return "write to the client: " + e.err.Error() }
func (e *clientWriteError) Unwrap() error { return e.err }

// copyBody streams src to w, flushing after each read when flush is set,
// teeing into tee (when non-nil) and touching idle. It returns the bytes
// written and the first read error or *clientWriteError (io.EOF
// excluded).
func copyBody(w http.ResponseWriter, src io.Reader, flush bool, idle *tryTimer, tee *teeBuffer) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	rc := http.NewResponseController(w)
	var written int64
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if idle != nil {
				idle.touch()
			}
			if tee != nil {
				tee.write(buf[:n])
			}
			m, werr := w.Write(buf[:n])
			written += int64(m)
			if werr != nil {
				return written, &clientWriteError{werr}
			}
			if flush {
				if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
					return written, &clientWriteError{err}
				}
			}
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, rerr
		}
	}
}

// teeBuffer collects a body for the cache up to max bytes; beyond, it
// gives up (the answer streams on, uncached).
type teeBuffer struct {
	buf  []byte
	max  int64
	over bool
}

func (t *teeBuffer) write(p []byte) {
	if t.over {
		return
	}
	if int64(len(t.buf)+len(p)) > t.max {
		t.over, t.buf = true, nil
		return
	}
	t.buf = append(t.buf, p...)
}

// switchProtocols completes an upgrade (101 Switching Protocols): the
// client connection is taken over and bytes are copied both ways until
// either side closes or ctx ends. The answer's header is already in w.
func switchProtocols(ctx context.Context, w http.ResponseWriter, resp *http.Response) (in, out int64, err error) {
	backConn, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		return 0, 0, fmt.Errorf("upstream answered 101 without a writable body")
	}
	defer backConn.Close()
	rc := http.NewResponseController(w)
	w.WriteHeader(http.StatusSwitchingProtocols)
	conn, brw, err := rc.Hijack()
	if err != nil {
		return 0, 0, fmt.Errorf("take over the client connection: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Time{}) // the server's read and write timeouts end here
	if err := brw.Flush(); err != nil {
		return 0, 0, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close(); backConn.Close() })
	defer stop()
	type result struct {
		n   int64
		err error
	}
	up, down := make(chan result, 1), make(chan result, 1)
	go func() {
		// Bytes the server had already buffered from the client come first.
		n, err := io.Copy(backConn, io.MultiReader(io.LimitReader(brw.Reader, int64(brw.Reader.Buffered())), conn))
		up <- result{n, err}
	}()
	go func() {
		bp := bufPool.Get().(*[]byte)
		defer bufPool.Put(bp)
		n, err := io.CopyBuffer(conn, backConn, *bp)
		down <- result{n, err}
	}()
	var r result
	select {
	case r = <-up:
		in = r.n
		backConn.Close()
		out = (<-down).n
	case r = <-down:
		out = r.n
		conn.Close()
		in = (<-up).n
	}
	return in, out, nil
}
