package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWeakDevKeyRefused: a hand-picked GATEFLOW_DEV_KEY must be long and
// not predictable (issue 10 item 9); generated keys pass.
func TestWeakDevKeyRefused(t *testing.T) {
	generated, _ := NewToken()
	for key, ok := range map[string]bool{
		"chosen-by-hand-0123456789":                   false, // 25 characters
		strings.Repeat("dev", 12):                     false, // long, 3 symbols
		"aaaaaaaaaaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbbb":  false,
		"password1password1password1pass":             false, // 32, few symbols
		"with a space and long enough to pass length": false,
		"0f6c2a9be1d74c5a8b3e0d9f1a2b7c6e":            true, // 128 random bits in hex
		"Zq3v-9LxTb2Wm7Yk_Hc4Pn8Rf6Dg1Js5":            true,
		generated:                                     true,
	} {
		_, _, err := EnsureDevKey(t.TempDir(), key, nil)
		if (err == nil) != ok {
			t.Errorf("%q: %v (%.0f bits), want accepted=%v", key, err, entropyBits(key), ok)
		}
	}
}

// TestDevKeyFileMadePrivate: a dev key file readable by others is made
// 0600 again, with a warning.
func TestDevKeyFileMadePrivate(t *testing.T) {
	dir := t.TempDir()
	key, _, err := EnsureDevKey(dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, DevKeyFile)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	var warn strings.Builder
	again, _, err := EnsureDevKey(dir, "", &warn)
	if err != nil || again != key {
		t.Fatalf("%q %v", again, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o", fi.Mode().Perm())
	}
	if !strings.Contains(warn.String(), "readable by other users") || strings.Contains(warn.String(), key) {
		t.Errorf("warning %q", warn.String())
	}
	warn.Reset()
	if _, _, err := EnsureDevKey(dir, "", &warn); err != nil || warn.Len() != 0 {
		t.Errorf("a private file warned: %q %v", warn.String(), err)
	}
}
