package examples

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSeedWritesOnceAndNeverOverwrites(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "config")
	wrote, err := Seed(dir)
	if err != nil || !wrote {
		t.Fatalf("first seed: wrote=%v err=%v", wrote, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "gateflow.yaml")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "definitions", "hello.json")); err != nil {
		t.Fatal(err)
	}
	mine := filepath.Join(dir, "gateflow.yaml")
	if err := os.WriteFile(mine, []byte("# mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wrote, err = Seed(dir)
	if err != nil || wrote {
		t.Fatalf("second seed: wrote=%v err=%v", wrote, err)
	}
	if b, _ := os.ReadFile(mine); string(b) != "# mine\n" {
		t.Fatalf("seed overwrote the operator's file: %q", b)
	}
}
