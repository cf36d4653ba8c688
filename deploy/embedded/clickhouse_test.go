package embedded

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestCHDBChildArgsRoundTrip(t *testing.T) {
	in := CHDBChildArgs{LibPath: "/c/libchdb.so", DataDir: "/d/ch", TCPPort: 19000, HTTPPort: 18123}
	out, err := ParseCHDBChildArgs(in.Args())
	if err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Fatalf("round trip: got %+v, want %+v", out, in)
	}
}

func TestCHDBChildArgsValidate(t *testing.T) {
	tests := []struct {
		name string
		args CHDBChildArgs
		want string
	}{
		{"no lib", CHDBChildArgs{DataDir: "/d", TCPPort: 1, HTTPPort: 2}, "--lib"},
		{"no path", CHDBChildArgs{LibPath: "/l", TCPPort: 1, HTTPPort: 2}, "--path"},
		{"bad port", CHDBChildArgs{LibPath: "/l", DataDir: "/d", TCPPort: 70000, HTTPPort: 2}, "--tcp-port"},
		{"same ports", CHDBChildArgs{LibPath: "/l", DataDir: "/d", TCPPort: 5, HTTPPort: 5}, "must differ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.args.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestCHDBCmdline(t *testing.T) {
	// ClickHouse's own native port is the relay's inner one, not TCPPort.
	got := CHDBChildArgs{LibPath: "/l", DataDir: "/d", TCPPort: 9000, HTTPPort: 8123}.cmdline(40123)
	want := []string{
		"clickhouse", "--path=/d", "--listen_host=127.0.0.1", "--tcp_port=40123", "--http_port=8123",
		"--logger.console=1", "--log-level=fatal",
		"--query_id=gateflow-serve", "--query", serveQuery,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("cmdline:\n got %q\nwant %q", got, want)
	}
}

func TestCArgvLayout(t *testing.T) {
	args := []string{"clickhouse", "--path=/x", ""}
	argv, free, err := cArgv(args)
	if err != nil {
		t.Fatal(err)
	}
	defer free()
	got := readCArgv(argv)
	if !reflect.DeepEqual(got, args) {
		t.Fatalf("argv = %q, want %q", got, args)
	}
}

func TestParseClickHouseVersion(t *testing.T) {
	tests := []struct {
		out          string
		version      string
		major, minor int
		ok           bool
	}{
		{"ClickHouse local version 25.8.1.5101 (official build).", "25.8.1.5101", 25, 8, true},
		{"ClickHouse client version 18.16.1.", "18.16.1.", 18, 16, true},
		{"ClickHouse server version 26.7.2.1 (official build).\n", "26.7.2.1", 26, 7, true},
		{"garbage", "", 0, 0, false},
	}
	for _, tt := range tests {
		v, ma, mi, ok := parseClickHouseVersion(tt.out)
		if v != tt.version || ma != tt.major || mi != tt.minor || ok != tt.ok {
			t.Errorf("parse(%q) = %q %d %d %v, want %q %d %d %v", tt.out, v, ma, mi, ok, tt.version, tt.major, tt.minor, tt.ok)
		}
	}
}

func TestExtractTarMember(t *testing.T) {
	dir := t.TempDir()
	tgz := filepath.Join(dir, "pkg.tgz")
	writeTGZ(t, tgz, map[string]string{
		"package/package.json": `{"name":"x"}`,
		"package/libchdb.so":   "ELF-not-really",
	})
	dst := filepath.Join(dir, "out", "libchdb.so")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := extractTarMember(tgz, libCHDBMember, dst); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dst)
	if err != nil || string(b) != "ELF-not-really" {
		t.Fatalf("extracted %q, %v", b, err)
	}
	if st, _ := os.Stat(dst); st.Mode().Perm()&0o100 == 0 {
		t.Errorf("extracted file not executable: %v", st.Mode())
	}
	if _, err := os.Stat(dst + ".part"); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
	if err := extractTarMember(tgz, "package/missing.so", dst+"2"); err == nil || !strings.Contains(err.Error(), "no member") {
		t.Errorf("missing member: err = %v", err)
	}
	if err := os.WriteFile(tgz, []byte("not gzip"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := extractTarMember(tgz, libCHDBMember, dst+"3"); err == nil {
		t.Error("corrupt tarball: want error")
	}
}

func TestEnsureLibCHDBUsesCache(t *testing.T) {
	dir := t.TempDir()
	lib := LibCHDBPath(dir)
	if err := os.MkdirAll(filepath.Dir(lib), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lib, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", "") // npm must not be needed
	got, err := EnsureLibCHDB(t.Context(), dir, nil)
	if err != nil || got != lib {
		t.Fatalf("EnsureLibCHDB = %q, %v; want %q", got, err, lib)
	}
}

func TestEnsureLibCHDBWithoutNPM(t *testing.T) {
	t.Setenv("PATH", "")
	_, err := EnsureLibCHDB(t.Context(), t.TempDir(), nil)
	if err != ErrNPMMissing {
		t.Fatalf("err = %v, want ErrNPMMissing", err)
	}
}

func TestDefaultCacheDir(t *testing.T) {
	t.Setenv("GATEFLOW_CACHE_DIR", "/explicit")
	if d, _ := DefaultCacheDir(); d != "/explicit" {
		t.Errorf("GATEFLOW_CACHE_DIR: got %s", d)
	}
	t.Setenv("GATEFLOW_CACHE_DIR", "")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if d, _ := DefaultCacheDir(); d != "/xdg/gateflow" {
		t.Errorf("XDG_CACHE_HOME: got %s", d)
	}
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "/home/u")
	if d, _ := DefaultCacheDir(); d != "/home/u/.cache/gateflow" {
		t.Errorf("HOME: got %s", d)
	}
}

func TestTailBuffer(t *testing.T) {
	tb := &tailBuffer{max: 5}
	for _, s := range []string{"abc", "defg", "h"} {
		if _, err := tb.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if got := tb.String(); got != "defgh" {
		t.Fatalf("tail = %q", got)
	}
}

func writeTGZ(t *testing.T, path string, files map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFindClickHouseBinary(t *testing.T) {
	tests := []struct {
		name    string
		output  string
		wantErr error
		version string
	}{
		{"debian 18.16", "ClickHouse client version 18.16.1.", ErrClickHouseTooOld, "18.16.1."},
		{"25.3", "ClickHouse local version 25.3.2.1 (official build).", ErrClickHouseTooOld, "25.3.2.1"},
		{"25.8", "ClickHouse local version 25.8.1.5101 (official build).", nil, "25.8.1.5101"},
		{"26.7", "ClickHouse local version 26.7.2.1 (official build).", nil, "26.7.2.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			script := "#!/bin/sh\necho '" + tt.output + "'\n"
			if err := os.WriteFile(filepath.Join(dir, "clickhouse"), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			t.Setenv("PATH", dir)
			path, version, err := FindClickHouseBinary(t.Context())
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if path != filepath.Join(dir, "clickhouse") || version != tt.version {
				t.Fatalf("got %q %q", path, version)
			}
		})
	}
	t.Run("none", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		if _, _, err := FindClickHouseBinary(t.Context()); !errors.Is(err, exec.ErrNotFound) {
			t.Fatalf("err = %v, want exec.ErrNotFound", err)
		}
	})
}

func TestServerConfigFile(t *testing.T) {
	dir := t.TempDir()
	o := ClickHouseOptions{DataDir: dir + "/a&b", ServerBinary: "/usr/bin/clickhouse", TCPPort: 19000, HTTPPort: 18123}
	if err := o.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	argv, err := o.argv()
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.TrimPrefix(argv[2], "--config-file=")
	if argv[0] != "/usr/bin/clickhouse" || argv[1] != "server" || cfg == argv[2] {
		t.Fatalf("argv = %q", argv)
	}
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<tcp_port>19000</tcp_port>", "<http_port>18123</http_port>",
		"<listen_host>127.0.0.1</listen_host>", "a&amp;b/</path>"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("config lacks %q:\n%s", want, b)
		}
	}
}
