package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockFile is the file in the spool directory that Open locks. It is never
// removed: deleting a lock file on release lets a waiter hold a lock on the
// unlinked file while a newcomer locks a new one.
const lockFile = "spool.lock"

// ErrInUse is returned by Open when another open spool (in this process or
// another one) holds the directory: two writers would interleave segments
// and replay each other's records.
var ErrInUse = errors.New("spool directory in use")

// lockDir takes an exclusive, non-blocking flock on dir's lock file and
// writes this process's id into it for the error another opener gets. The
// kernel releases the lock when the process ends, however it ends, so a
// crash never leaves a stale lock. Same approach as `gateflow dev`'s data
// dir (deploy/embedded.LockDataDir).
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("spool: lock %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		owner, _ := os.ReadFile(path)
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			who := "another process"
			if pid := strings.TrimSpace(string(owner)); pid != "" {
				who = "process " + pid
			}
			return nil, fmt.Errorf("%w: spool dir %s is used by %s (another gateflow ingress or worker?): give each process its own --spool-dir",
				ErrInUse, dir, who)
		}
		return nil, fmt.Errorf("spool: lock %s: %w", dir, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

// unlockDir releases a lock taken by lockDir.
func unlockDir(f *os.File) {
	if f == nil {
		return
	}
	_ = f.Truncate(0)
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	_ = f.Close()
}
