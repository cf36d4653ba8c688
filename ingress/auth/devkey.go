package auth

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
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

// EnsureDevKey returns the admin key of the dev tenant: envKey when set
// (GATEFLOW_DEV_KEY; nothing is written), else the key stored in
// <dataDir>/dev-key, else a new key written there with mode 0600. created
// tells the caller to print the key (once).
func EnsureDevKey(dataDir, envKey string) (key string, created bool, err error) {
	if envKey = strings.TrimSpace(envKey); envKey != "" {
		if len(envKey) < 16 || strings.ContainsAny(envKey, " \t\r\n") {
			return "", false, errors.New("GATEFLOW_DEV_KEY: want at least 16 characters without spaces (e.g. from `gateflow keys create`)")
		}
		return envKey, false, nil
	}
	path := filepath.Join(dataDir, DevKeyFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if k := strings.TrimSpace(string(b)); k != "" {
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

// SetupDevKey is what `gateflow dev` does for its newcomer: EnsureDevKey,
// printing the key to out when it was just created (the only time it is
// shown), and the static keys entry to put in the key store (e.g. in the
// ingress config's extra keys).
func SetupDevKey(dataDir, envKey string, out io.Writer) (Key, string, error) {
	key, created, err := EnsureDevKey(dataDir, envKey)
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
