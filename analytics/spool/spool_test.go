package spool

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func entry(i int) Entry {
	return Entry{Key: fmt.Appendf(nil, "k%d", i%7), Value: fmt.Appendf(nil, `{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", i%50))}
}

// drain reads and acknowledges everything, returning the values in order.
func drain(t *testing.T, s *Spool, chunk int) []string {
	t.Helper()
	var out []string
	for {
		b, err := s.Peek(chunk)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Entries) == 0 && b.count == 0 {
			return out
		}
		for _, e := range b.Entries {
			out = append(out, string(e.Key)+"|"+string(e.Value))
		}
		if err := s.Ack(b); err != nil {
			t.Fatal(err)
		}
	}
}

func want(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		e := entry(i)
		out = append(out, string(e.Key)+"|"+string(e.Value))
	}
	return out
}

func open(t testing.TB, dir string, seg, max int64, drops *atomic.Int64) *Spool {
	t.Helper()
	s, err := Open(Options{Dir: dir, SegmentBytes: seg, MaxBytes: max, OnDrop: func(n int64, reason string) {
		if drops != nil {
			drops.Add(n)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOrderAcrossSegmentsAndRestart(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1024, 1<<20, nil)
	for i := range 500 {
		if err := s.Append(entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Append(entry(500), entry(501), entry(502)); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 503 {
		t.Fatalf("Len %d", s.Len())
	}
	// Read part, then restart: the rest comes back in order, once.
	first := drain1(t, s, 100)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, 1024, 1<<20, nil)
	defer s.Close()
	if s.Len() != 403 {
		t.Fatalf("Len after restart %d", s.Len())
	}
	got := append(first, drain(t, s, 37)...)
	if !slices.Equal(got, want(0, 503)) {
		t.Fatalf("order or content differ: got %d entries", len(got))
	}
	if s.Len() != 0 || s.Bytes() != 0 {
		t.Fatalf("not empty: %d records %d bytes", s.Len(), s.Bytes())
	}
	// Appends after draining still work.
	if err := s.Append(entry(1000)); err != nil {
		t.Fatal(err)
	}
	if got := drain(t, s, 10); !slices.Equal(got, want(1000, 1001)) {
		t.Fatalf("got %v", got)
	}
}

// drain1 acknowledges exactly n entries (n must be reachable).
func drain1(t *testing.T, s *Spool, n int) []string {
	t.Helper()
	var out []string
	for len(out) < n {
		b, err := s.Peek(n - len(out))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range b.Entries {
			out = append(out, string(e.Key)+"|"+string(e.Value))
		}
		if err := s.Ack(b); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestCursorAcrossRestart: the read progress survives a restart when the
// cursor was overwritten in place many times, when it is the checksum-less
// line earlier versions wrote, and a damaged cursor makes the spool read
// everything again rather than skip records.
func TestCursorAcrossRestart(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cursor func(t *testing.T, path string) // rewrites the cursor file after 60 of 100 acknowledged
		next   int                             // first entry read after the restart
	}{
		{name: "in place", cursor: func(*testing.T, string) {}, next: 60},
		{name: "earlier version's line", cursor: func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			f := strings.Fields(string(b))
			id, _ := strconv.ParseUint(f[0], 10, 64)
			off, _ := strconv.ParseInt(f[1], 10, 64)
			n, _ := strconv.ParseInt(f[2], 10, 64)
			if err := os.WriteFile(path, fmt.Appendf(nil, "%d %d %d\n", id, off, n), 0o640); err != nil {
				t.Fatal(err)
			}
		}, next: 60},
		{name: "damaged", cursor: func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)-15] ^= 1 // a digit of the record count
			if err := os.WriteFile(path, b, 0o640); err != nil {
				t.Fatal(err)
			}
		}, next: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, 1<<20, 1<<30, nil)
			for i := range 100 {
				if err := s.Append(entry(i)); err != nil {
					t.Fatal(err)
				}
			}
			for range 6 { // six Acks: the first renames, the others overwrite
				drain1(t, s, 10)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			tc.cursor(t, filepath.Join(dir, cursorFile))
			s = open(t, dir, 1<<20, 1<<30, nil)
			defer s.Close()
			if got := drain(t, s, 7); !slices.Equal(got, want(tc.next, 100)) {
				t.Fatalf("after restart read %d entries, want entries %d to 99", len(got), tc.next)
			}
		})
	}
}

func TestUnackedPeekIsReplayed(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1<<20, 1<<30, nil)
	for i := range 10 {
		_ = s.Append(entry(i))
	}
	b, _ := s.Peek(5)
	if len(b.Entries) != 5 {
		t.Fatalf("peek %d", len(b.Entries))
	}
	// Not acknowledged (Kafka write failed): the same entries come again.
	if got := drain(t, s, 100); !slices.Equal(got, want(0, 10)) {
		t.Fatalf("got %v", got)
	}
	_ = s.Close()
}

func TestDropOldestWhenFull(t *testing.T) {
	dir := t.TempDir()
	var drops atomic.Int64
	// ~60-110 byte frames, 2 KiB segments, 8 KiB bound.
	s := open(t, dir, 2048, 8192, &drops)
	defer s.Close()
	const n = 2000
	for i := range n {
		if err := s.Append(entry(i)); err != nil {
			t.Fatal(err)
		}
		if s.Bytes() > 8192 {
			t.Fatalf("bound exceeded: %d bytes", s.Bytes())
		}
	}
	if drops.Load() == 0 {
		t.Fatal("nothing dropped")
	}
	got := drain(t, s, 1000)
	if int64(len(got))+drops.Load() != n {
		t.Fatalf("kept %d + dropped %d != %d", len(got), drops.Load(), n)
	}
	// What is kept is the newest records, in order.
	if !slices.Equal(got, want(n-len(got), n)) {
		t.Fatalf("kept records are not the newest in order")
	}
}

func TestDropWhileReading(t *testing.T) {
	dir := t.TempDir()
	var drops atomic.Int64
	s := open(t, dir, 1024, 4096, &drops)
	defer s.Close()
	for i := range 30 {
		_ = s.Append(entry(i))
	}
	b, _ := s.Peek(5)
	// The segment being read is dropped before the ack.
	for i := 30; i < 300; i++ {
		_ = s.Append(entry(i))
	}
	if err := s.Ack(b); err != nil {
		t.Fatal(err)
	}
	got := drain(t, s, 1000)
	if int64(len(got))+drops.Load() != 300 {
		t.Fatalf("kept %d + dropped %d != 300", len(got), drops.Load())
	}
}

func TestPartialLastWriteIsTruncated(t *testing.T) {
	for _, cut := range []int{1, 4, 7, 9, 20} {
		t.Run(fmt.Sprint("cut", cut), func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, 1<<20, 1<<30, nil)
			for i := range 20 {
				_ = s.Append(entry(i))
			}
			_ = s.Close()
			// Simulate a crash in the middle of the last frame.
			segs, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
			last := segs[len(segs)-1]
			e := entry(19)
			frame := int64(frameHeader + 1 + len(e.Key) + len(e.Value))
			st, _ := os.Stat(last)
			if err := os.Truncate(last, st.Size()-frame+int64(cut)); err != nil {
				t.Fatal(err)
			}
			s = open(t, dir, 1<<20, 1<<30, nil)
			defer s.Close()
			if s.Len() != 19 {
				t.Fatalf("Len %d, want 19", s.Len())
			}
			if got := drain(t, s, 100); !slices.Equal(got, want(0, 19)) {
				t.Fatalf("got %d entries", len(got))
			}
			// Writing after the repair works and is read back.
			_ = s.Append(entry(50))
			if got := drain(t, s, 100); !slices.Equal(got, want(50, 51)) {
				t.Fatalf("got %v", got)
			}
		})
	}
}

func TestGarbageTailIsTruncated(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1<<20, 1<<30, nil)
	for i := range 5 {
		_ = s.Append(entry(i))
	}
	_ = s.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	f, _ := os.OpenFile(segs[len(segs)-1], os.O_APPEND|os.O_WRONLY, 0)
	// A header announcing 30 bytes with a wrong checksum, then the bytes.
	_, _ = f.Write([]byte{0, 0, 0, 30, 1, 2, 3, 4})
	_, _ = f.Write([]byte(strings.Repeat("z", 30)))
	_ = f.Close()
	s = open(t, dir, 1<<20, 1<<30, nil)
	defer s.Close()
	if got := drain(t, s, 100); !slices.Equal(got, want(0, 5)) {
		t.Fatalf("got %v", got)
	}
}

func TestCorruptionAfterOpenSkipsSegment(t *testing.T) {
	dir := t.TempDir()
	var drops atomic.Int64
	s := open(t, dir, 1<<20, 1<<30, &drops)
	for i := range 10 {
		_ = s.Append(entry(i))
	}
	_ = s.Close()
	s = open(t, dir, 1<<20, 1<<30, &drops)
	defer s.Close()
	// Damage a byte of the 3rd frame's payload on disk after the scan.
	segs, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	f, _ := os.OpenFile(segs[0], os.O_RDWR, 0)
	var off int64
	for i := range 2 {
		e := entry(i)
		off += int64(frameHeader + 1 + len(e.Key) + len(e.Value))
	}
	_, _ = f.WriteAt([]byte{'#'}, off+frameHeader+3)
	_ = f.Close()
	got := drain(t, s, 100)
	if !slices.Equal(got, want(0, 2)) || drops.Load() != 8 {
		t.Fatalf("got %d entries, dropped %d", len(got), drops.Load())
	}
	if s.Len() != 0 {
		t.Fatalf("Len %d", s.Len())
	}
}

func TestTooLarge(t *testing.T) {
	s := open(t, t.TempDir(), 1<<20, 1<<30, nil)
	defer s.Close()
	if err := s.Append(Entry{Value: make([]byte, MaxEntryBytes)}); err != ErrTooLarge {
		t.Fatalf("got %v", err)
	}
}

func TestLargeEntryBeyondReadWindow(t *testing.T) {
	s := open(t, t.TempDir(), 64<<20, 1<<30, nil)
	defer s.Close()
	big := Entry{Key: []byte("k"), Value: []byte(strings.Repeat("v", 5<<20))}
	_ = s.Append(entry(0), big, entry(1))
	var sizes []int
	for {
		b, err := s.Peek(10)
		if err != nil {
			t.Fatal(err)
		}
		if b.count == 0 {
			break
		}
		for _, e := range b.Entries {
			sizes = append(sizes, len(e.Value))
		}
		_ = s.Ack(b)
	}
	if len(sizes) != 3 || sizes[1] != 5<<20 {
		t.Fatalf("sizes %v", sizes)
	}
}

func BenchmarkAppend(b *testing.B) {
	s := open(b, b.TempDir(), 16<<20, 1<<30, nil)
	defer s.Close()
	e := Entry{Key: []byte("workflow-123"), Value: []byte(strings.Repeat("x", 400))}
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Append(e)
	}
}

// TestSecondOpenRefused: a directory holds one open spool at a time; the
// second opener learns which directory and what to do, and gets it once
// the first is closed.
func TestSecondOpenRefused(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1<<20, 1<<30, nil)
	if err := s.Append(entry(0)); err != nil {
		t.Fatal(err)
	}
	_, err := Open(Options{Dir: dir})
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second Open: err = %v, want ErrInUse", err)
	}
	for _, part := range []string{dir, fmt.Sprintf("process %d", os.Getpid()), "--spool-dir"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not name %q", err, part)
		}
	}
	// The refused opener changed nothing: the record is still there once
	// the directory is free.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, 1<<20, 1<<30, nil)
	defer s.Close()
	if got := drain(t, s, 10); !slices.Equal(got, want(0, 1)) {
		t.Fatalf("got %v", got)
	}
}

// TestConcurrentAppendsGroupCommit: many writers at once, a reader
// draining the segment being written meanwhile: every entry arrives once,
// and each writer's entries in its own order.
func TestConcurrentAppendsGroupCommit(t *testing.T) {
	for _, policy := range []FsyncPolicy{FsyncInterval, FsyncAlways, FsyncNever} {
		t.Run(policy.String(), func(t *testing.T) {
			s, err := Open(Options{Dir: t.TempDir(), SegmentBytes: 64 << 10, MaxBytes: 1 << 30, Fsync: policy})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			const writers, per = 16, 300
			var wg sync.WaitGroup
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range per {
						if err := s.Append(Entry{Key: fmt.Appendf(nil, "w%d", w), Value: fmt.Appendf(nil, "%d", i)}); err != nil {
							t.Error(err)
							return
						}
						if i%50 == 0 {
							if err := s.Sync(); err != nil {
								t.Error(err)
							}
						}
					}
				}()
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			next := map[string]int{}
			total := 0
			for finished := false; ; {
				select {
				case <-done:
					finished = true
				default:
				}
				b, err := s.Peek(97)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range b.Entries {
					if got, want := string(e.Value), fmt.Sprint(next[string(e.Key)]); got != want {
						t.Fatalf("writer %s: got entry %s, want %s", e.Key, got, want)
					}
					next[string(e.Key)]++
					total++
				}
				if err := s.Ack(b); err != nil {
					t.Fatal(err)
				}
				if finished && b.count == 0 && s.Len() == 0 {
					break
				}
			}
			if total != writers*per {
				t.Fatalf("read %d entries, want %d", total, writers*per)
			}
		})
	}
}

func TestParseFsyncPolicy(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want FsyncPolicy
		err  bool
	}{{"", FsyncInterval, false}, {"interval", FsyncInterval, false}, {"always", FsyncAlways, false},
		{"never", FsyncNever, false}, {"sometimes", 0, true}} {
		got, err := ParseFsyncPolicy(tc.in)
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("%q: got %v, %v", tc.in, got, err)
		}
	}
}

// TestAppendSurvivesSIGKILL: what Append acknowledged is in the spool after
// the process that appended was SIGKILLed mid-stream (no Close, no fsync:
// the page cache holds it). The writer is this test binary run again.
func TestAppendSurvivesSIGKILL(t *testing.T) {
	if dir := os.Getenv("SPOOL_TEST_CHILD_DIR"); dir != "" {
		s, err := Open(Options{Dir: dir, SegmentBytes: 32 << 10})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		for i := 0; ; i++ {
			if err := s.Append(entry(i)); err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			fmt.Println(i) // acknowledged
		}
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestAppendSurvivesSIGKILL$")
	cmd.Env = append(os.Environ(), "SPOOL_TEST_CHILD_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	acked := -1
	for sc.Scan() {
		n, err := strconv.Atoi(sc.Text())
		if err != nil {
			t.Fatalf("child: %s", sc.Text())
		}
		acked = n
		if n == 3000 {
			_ = cmd.Process.Kill()
			break
		}
	}
	_ = cmd.Wait()
	s := open(t, dir, 32<<10, 1<<30, nil)
	defer s.Close()
	got := drain(t, s, 500)
	if len(got) < acked+1 || !slices.Equal(got[:acked+1], want(0, acked+1)) {
		t.Fatalf("after SIGKILL: %d entries in the spool, %d acknowledged", len(got), acked+1)
	}
}
