package sysconfig

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestFingerprintSeesEditsAdditionsRemovalsAndSymlinkSwaps(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mtime time.Time) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Unix(1_700_000_000, 0)
	write("gateflow.yaml", "a: 1\n", t0)
	write("definitions/x.yaml", "name: x\n", t0)
	fp := Fingerprint(dir)
	if Fingerprint(dir) != fp {
		t.Fatal("fingerprint not stable")
	}
	changed := func(what string) {
		t.Helper()
		next := Fingerprint(dir)
		if next == fp {
			t.Fatalf("%s: fingerprint unchanged", what)
		}
		fp = next
	}
	write("gateflow.yaml", "a: 2\n", t0.Add(time.Second))
	changed("edit")
	write("definitions/y.yaml", "name: y\n", t0)
	changed("addition")
	if err := os.Remove(filepath.Join(dir, "definitions/x.yaml")); err != nil {
		t.Fatal(err)
	}
	changed("removal")

	// A ConfigMap volume: files are symlinks into a directory that an
	// update replaces by swapping the ..data symlink.
	cm := t.TempDir()
	for _, v := range []string{"..v1", "..v2"} {
		if err := os.Mkdir(filepath.Join(cm, v), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.WriteFile(filepath.Join(cm, "..v1", "gateflow.yaml"), []byte("a: 1\n"), 0o644)
	_ = os.WriteFile(filepath.Join(cm, "..v2", "gateflow.yaml"), []byte("a: 2, b: 3\n"), 0o644)
	if err := os.Symlink("..v1", filepath.Join(cm, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/gateflow.yaml", filepath.Join(cm, "gateflow.yaml")); err != nil {
		t.Fatal(err)
	}
	before := Fingerprint(filepath.Join(cm, "gateflow.yaml"))
	_ = os.Remove(filepath.Join(cm, "..data"))
	if err := os.Symlink("..v2", filepath.Join(cm, "..data")); err != nil {
		t.Fatal(err)
	}
	if Fingerprint(filepath.Join(cm, "gateflow.yaml")) == before {
		t.Fatal("symlink swap not seen")
	}
}

func TestOnChangeCallsOncePerChange(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "keys.yaml")
	if err := os.WriteFile(file, []byte("keys: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	calls := make(chan string, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		OnChange(ctx, 10*time.Millisecond, []string{file}, func(trigger string) { calls <- trigger })
	}()
	time.Sleep(50 * time.Millisecond) // no change: no call
	if err := os.WriteFile(file, []byte("keys: [{id: a}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case trig := <-calls:
		if trig != TriggerChange {
			t.Fatalf("trigger %q", trig)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no reload after a change")
	}
	time.Sleep(50 * time.Millisecond) // unchanged since: no second call
	cancel()
	<-done
	if len(calls) != 0 {
		t.Fatalf("%d extra calls", len(calls))
	}
}

// BenchmarkFingerprint is what one poll costs on the example config dir,
// beside BenchmarkLoad, the reload it saves when nothing changed.
func BenchmarkFingerprint(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = Fingerprint(examplesDir)
	}
}

func BenchmarkLoad(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(examplesDir); err != nil {
			b.Fatal(err)
		}
	}
}
