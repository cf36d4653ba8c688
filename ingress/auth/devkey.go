package auth

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// Dev tenant and user of `gateflow dev`.
const (
	DevTenant  = "dev"
	DevUser    = "dev"
	DevKeyFile = "dev-key"
)

// Bounds of a hand-picked GATEFLOW_DEV_KEY: it stands for an admin of the
// dev tenant, whose workflows may reach loopback services.
const (
	minDevKeyLen = 32
	// minDevKeyBits is the least estimated entropy (Shannon, from the
	// key's own character frequencies): 32 random base64 or hex
	// characters have about 190 and 118; "devdevdev..." has 51.
	minDevKeyBits = 100
)

// checkDevKey refuses a hand-picked dev key that is short or predictable.
func checkDevKey(k string) error {
	const hint = " (use `gateflow keys create`, or `head -c 32 /dev/urandom | base64`)"
	switch {
	case strings.ContainsAny(k, " \t\r\n"):
		return errors.New("GATEFLOW_DEV_KEY: must not contain spaces" + hint)
	case len(k) < minDevKeyLen:
		return fmt.Errorf("GATEFLOW_DEV_KEY: want at least %d characters, got %d%s", minDevKeyLen, len(k), hint)
	case entropyBits(k) < minDevKeyBits:
		return fmt.Errorf("GATEFLOW_DEV_KEY: too predictable (about %.0f bits; want %d)%s", entropyBits(k), minDevKeyBits, hint)
	}
	return nil
}

// entropyBits estimates the entropy of s from its character frequencies:
// length × Shannon entropy per character. It only catches the obvious
// (repeats, small alphabets); the bound on length does the rest.
func entropyBits(s string) float64 {
	counts := map[rune]int{}
	n := 0
	for _, r := range s {
		counts[r]++
		n++
	}
	var h float64
	for _, c := range counts {
		p := float64(c) / float64(n)
		h -= p * math.Log2(p)
	}
	return h * float64(n)
}

// EnsureDevKey returns the admin key of the dev tenant: envKey when set
// (GATEFLOW_DEV_KEY, refused when short or predictable; nothing is
// written), else the key stored in <dataDir>/dev-key, else a new key
// written there with mode 0600. A stored key readable by others is made
// private again (0600) with a warning to warn. created tells the caller to
// print the key (once).
func EnsureDevKey(dataDir, envKey string, warn io.Writer) (key string, created bool, err error) {
	if envKey = strings.TrimSpace(envKey); envKey != "" {
		if err := checkDevKey(envKey); err != nil {
			return "", false, err
		}
		return envKey, false, nil
	}
	path := filepath.Join(dataDir, DevKeyFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if k := strings.TrimSpace(string(b)); k != "" {
			if err := keepPrivate(path, warn); err != nil {
				return "", false, err
			}
			return k, false, nil
		}
	case !errors.Is(err, fs.ErrNotExist):
		return "", false, fmt.Errorf("read dev key: %w", err)
	}
	key, err = NewToken()
	if err != nil {
		return "", false, err
	}
	if err := writeFileAtomic(path, []byte(key+"\n")); err != nil {
		return "", false, fmt.Errorf("save dev key: %w", err)
	}
	return key, true, nil
}

// keepPrivate makes the dev key file readable by its owner only, warning
// when it was not: the key is an admin key of the dev tenant.
func keepPrivate(path string, warn io.Writer) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("dev key: %w", err)
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("dev key %s is readable by other users (mode %04o) and could not be made private: %w", path, fi.Mode().Perm(), err)
	}
	if warn != nil {
		fmt.Fprintf(warn, "warning: the dev key %s was readable by other users (mode %04o); it is now 0600. Anyone who read it holds an admin key of the dev tenant: delete the file to get a new key.\n",
			path, fi.Mode().Perm())
	}
	return nil
}

// SetupDevKey is what `gateflow dev` does for its newcomer: EnsureDevKey,
// printing the key to out when it was just created (the only time it is
// shown), and the static keys entry to put in the key store (e.g. in the
// ingress config's extra keys).
func SetupDevKey(dataDir, envKey string, out io.Writer) (Key, string, error) {
	key, created, err := EnsureDevKey(dataDir, envKey, out)
	if err != nil {
		return Key{}, "", err
	}
	if created {
		fmt.Fprintf(out, "dev API key (tenant %q, every role), saved in %s:\n  %s\n",
			DevTenant, filepath.Join(dataDir, DevKeyFile), key)
	}
	return DevKey(key), key, nil
}

// DevKey is the keys entry of the dev key: tenant "dev", every built-in
// role, user "dev". Pass it to NewStore as a static key.
func DevKey(token string) Key {
	roles := make([]string, len(BuiltinRoles))
	for i, r := range BuiltinRoles {
		roles[i] = string(r)
	}
	k := EntryFor(token, DevTenant, roles, DevUser)
	k.Note = "gateflow dev"
	return k
}

// ReadKeyFile returns the key stored in a dev-key file, for clients that
// default to it.
func ReadKeyFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
