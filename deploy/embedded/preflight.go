package embedded

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Port is a listen address that must be free before anything starts.
type Port struct {
	// Name says what listens there ("Temporal frontend").
	Name string
	// Flag is the flag that changes it ("--temporal-port").
	Flag string
	// Addr is host:port.
	Addr string
}

// CheckPortsFree tries to listen on every port and reports the ones that
// are taken (or given twice) in one error line naming the flags that move
// them.
func CheckPortsFree(ports []Port) error {
	var (
		dups []string
		busy []Port
		why  error
	)
	seen := map[string]Port{}
	for _, p := range ports {
		if prev, dup := seen[p.Addr]; dup {
			dups = append(dups, fmt.Sprintf("%s and %s both want %s (%s, %s)", prev.Name, p.Name, p.Addr, prev.Flag, p.Flag))
			continue
		}
		seen[p.Addr] = p
		l, err := net.Listen("tcp", p.Addr)
		if err != nil {
			busy, why = append(busy, p), rootCause(err)
			continue
		}
		l.Close()
	}
	if len(dups) > 0 {
		return fmt.Errorf("conflicting ports: %s: give each its own port", strings.Join(dups, "; "))
	}
	switch len(busy) {
	case 0:
		return nil
	case 1:
		p := busy[0]
		_, port, _ := net.SplitHostPort(p.Addr)
		return fmt.Errorf("port %s for %s is not available (%v): stop what uses it (see `ss -ltnp 'sport = :%s'`) or choose another with %s",
			p.Addr, p.Name, why, port, p.Flag)
	default:
		var names, flags []string
		for _, p := range busy {
			names = append(names, p.Addr+" ("+p.Name+")")
			if !slices.Contains(flags, p.Flag) {
				flags = append(flags, p.Flag)
			}
		}
		return fmt.Errorf("ports not available (%v): %s: is another gateflow dev running? Stop what uses them (see `ss -ltnp`) or choose others with %s",
			why, strings.Join(names, ", "), strings.Join(flags, ", "))
	}
}

func rootCause(err error) error {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err
	}
	return err
}

// CheckDirWritable creates dir if needed and checks that files can be
// created in it.
func CheckDirWritable(dir, flag string) error {
	fail := func(err error) error {
		return fmt.Errorf("data dir %s is not writable (%v): fix its permissions or choose another with %s", dir, rootCause(err), flag)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	f, err := os.CreateTemp(dir, ".write-check-")
	if err != nil {
		return fail(err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// LockDataDir takes an exclusive lock on dir for this process, so that two
// `gateflow dev` never share one data dir. The lock goes away with the
// process, whatever way it ends.
func LockDataDir(dir, flag string) (unlock func(), err error) {
	path := filepath.Join(dir, "gateflow.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		owner, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			who := "another process"
			if pid := strings.TrimSpace(string(owner)); pid != "" {
				who = "process " + pid
			}
			return nil, fmt.Errorf("data dir %s is in use by %s (another gateflow dev?): stop it or choose another dir with %s", dir, who, flag)
		}
		return nil, fmt.Errorf("lock data dir %s: %w", dir, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() {
		_ = f.Truncate(0)
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
