// Package embedded runs the real parts Gateflow needs on one machine, for
// `gateflow dev` and for integration tests: a Kafka-protocol broker (kfake)
// in-process and a ClickHouse server as a child process (libchdb from npm, or
// a `clickhouse` binary on PATH). The embedded Temporal server lives in the
// subpackage temporalserver so that unit tests of this package stay light.
//
// Production subcommands must not import this package.
package embedded

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// LibCHDBPackage is the npm package (name@version) that carries ClickHouse
// 26.7 as a shared library.
const LibCHDBPackage = "@chdb/lib-linux-x64-gnu@26.7.3-stable.1"

// libCHDBDir is the versioned directory under the cache dir holding
// libchdb.so; a new package version gets a new directory.
const libCHDBDir = "chdb-26.7.3-stable.1"

// libCHDBMember is the tarball member extracted from the npm package.
const libCHDBMember = "package/libchdb.so"

// ErrNPMMissing is returned by EnsureLibCHDB when libchdb is not cached and
// npm is not installed.
var ErrNPMMissing = errors.New("npm not found on PATH: install Node.js and npm (e.g. `apt-get install npm`), " +
	"or put a ClickHouse >= 25.8 `clickhouse` binary on PATH, or pass --clickhouse-addr")

// DefaultCacheDir returns where downloads are cached: $GATEFLOW_CACHE_DIR,
// else $XDG_CACHE_HOME/gateflow, else ~/.cache/gateflow.
func DefaultCacheDir() (string, error) {
	if d := os.Getenv("GATEFLOW_CACHE_DIR"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "gateflow"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no cache dir: set GATEFLOW_CACHE_DIR (%w)", err)
	}
	return filepath.Join(home, ".cache", "gateflow"), nil
}

// LibCHDBPath returns where EnsureLibCHDB keeps libchdb.so in cacheDir.
func LibCHDBPath(cacheDir string) string {
	return filepath.Join(cacheDir, libCHDBDir, "libchdb.so")
}

// EnsureLibCHDB returns the path of libchdb.so in cacheDir, fetching it once
// with `npm pack` (a ~180 MB download, 566 MB unpacked) when it is missing.
// Progress lines and npm's own output go to progress. Concurrent callers
// (parallel test packages) wait for each other on a lock file, so the
// package is fetched once.
func EnsureLibCHDB(ctx context.Context, cacheDir string, progress io.Writer) (string, error) {
	if progress == nil {
		progress = io.Discard
	}
	lib := LibCHDBPath(cacheDir)
	if fileExists(lib) {
		return lib, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("create cache dir %s: %w (set GATEFLOW_CACHE_DIR to a writable dir)", cacheDir, err)
	}
	unlock, err := lockFile(ctx, filepath.Join(cacheDir, "libchdb.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if fileExists(lib) { // fetched by another process while we waited
		return lib, nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", ErrNPMMissing
	}
	tmp, err := os.MkdirTemp(cacheDir, "fetch-")
	if err != nil {
		return "", fmt.Errorf("create temp dir in %s: %w", cacheDir, err)
	}
	defer os.RemoveAll(tmp)

	fmt.Fprintf(progress, "Fetching ClickHouse 26.7 (npm package %s, ~180 MB, once) into %s ...\n", LibCHDBPackage, cacheDir)
	start := time.Now()
	cmd := exec.CommandContext(ctx, npm, "pack", "--silent", LibCHDBPackage)
	cmd.Dir = tmp
	cmd.Stderr = progress
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("npm pack %s: %w (check network access to the npm registry)", LibCHDBPackage, err)
	}
	tgz := filepath.Join(tmp, strings.TrimSpace(lastLine(string(out))))
	if !fileExists(tgz) {
		matches, _ := filepath.Glob(filepath.Join(tmp, "*.tgz"))
		if len(matches) != 1 {
			return "", fmt.Errorf("npm pack %s: no tarball in %s (output %q)", LibCHDBPackage, tmp, out)
		}
		tgz = matches[0]
	}
	fmt.Fprintf(progress, "Unpacking libchdb.so (566 MB) ...\n")
	staged := filepath.Join(tmp, "libchdb.so")
	if err := extractTarMember(tgz, libCHDBMember, staged); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(lib), 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", filepath.Dir(lib), err)
	}
	if err := os.Rename(staged, lib); err != nil {
		return "", fmt.Errorf("install libchdb into %s: %w", lib, err)
	}
	fmt.Fprintf(progress, "ClickHouse library ready in %s (%.1fs)\n", lib, time.Since(start).Seconds())
	return lib, nil
}

// extractTarMember copies member of the gzipped tarball tgz to dst (mode
// 0755), writing a temporary file first so that dst is either complete or
// absent.
func extractTarMember(tgz, member, dst string) error {
	f, err := os.Open(tgz)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("read %s: %w", tgz, err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: no member %s", tgz, member)
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", tgz, err)
		}
		if h.Name != member || h.Typeflag != tar.TypeReg {
			continue
		}
		return writeFileAtomic(dst, tr, h.Size)
	}
}

func writeFileAtomic(dst string, r io.Reader, size int64) error {
	tmp := dst + ".part"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	n, err := io.Copy(out, r)
	if err == nil && n != size {
		err = fmt.Errorf("short copy: %d of %d bytes", n, size)
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return os.Rename(tmp, dst)
}

// lockFile takes an exclusive flock on path, polling so that ctx can cancel
// the wait.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
