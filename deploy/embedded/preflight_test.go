package embedded

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckPortsFree(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freeAddr := free.Addr().String()
	free.Close()

	if err := CheckPortsFree([]Port{{Name: "A", Flag: "--a-port", Addr: freeAddr}}); err != nil {
		t.Fatalf("free port: %v", err)
	}
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	tests := []struct {
		name  string
		ports []Port
		want  []string
	}{
		{"one busy", []Port{
			{Name: "Kafka", Flag: "--kafka-port", Addr: l.Addr().String()},
			{Name: "A", Flag: "--a-port", Addr: freeAddr},
		}, []string{"--kafka-port", "Kafka", "address already in use", "sport = :"}},
		{"two busy", []Port{
			{Name: "Kafka", Flag: "--kafka-port", Addr: l.Addr().String()},
			{Name: "UI", Flag: "--ui-port", Addr: l2.Addr().String()},
		}, []string{"--kafka-port, --ui-port", "(Kafka)", "(UI)", "address already in use"}},
		{"duplicate", []Port{
			{Name: "A", Flag: "--a-port", Addr: freeAddr},
			{Name: "B", Flag: "--b-port", Addr: freeAddr},
		}, []string{"A and B both want", "--b-port"}},
	}
	for _, tt := range tests {
		err := CheckPortsFree(tt.ports)
		if err == nil {
			t.Errorf("%s: want error", tt.name)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error has several lines: %q", tt.name, err)
		}
		for _, want := range tt.want {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q does not mention %q", tt.name, err, want)
			}
		}
	}
}

func TestCheckDirWritable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "dir")
	if err := CheckDirWritable(dir, "--data-dir"); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("check left files: %v", entries)
	}
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := CheckDirWritable(filepath.Join(f, "sub"), "--data-dir")
	if err == nil || !strings.Contains(err.Error(), "--data-dir") || !strings.Contains(err.Error(), "not writable") {
		t.Fatalf("err = %v", err)
	}
}

func TestLockDataDir(t *testing.T) {
	dir := t.TempDir()
	unlock, err := LockDataDir(dir, "--data-dir")
	if err != nil {
		t.Fatal(err)
	}
	_, err = LockDataDir(dir, "--data-dir")
	if err == nil || !strings.Contains(err.Error(), "in use by process") {
		t.Fatalf("second lock: err = %v", err)
	}
	unlock()
	unlock2, err := LockDataDir(dir, "--data-dir")
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlock2()
}
