package auth

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gateflow/gateflow/workflows/definition"
	"gopkg.in/yaml.v3"

	"github.com/gateflow/gateflow/workflows/definition/yamlread"
)

// Key is one entry of the keys file. Only the hash of the secret is kept.
type Key struct {
	ID       string    `yaml:"id"`
	Hash     string    `yaml:"hash"`
	Tenant   string    `yaml:"tenant"`
	Roles    []string  `yaml:"roles"`
	User     string    `yaml:"user,omitempty"`
	Created  time.Time `yaml:"created,omitempty"`
	Disabled bool      `yaml:"disabled,omitempty"`
	// RPS and Burst override the default per-key rate limit when > 0.
	RPS   float64 `yaml:"rps,omitempty"`
	Burst int     `yaml:"burst,omitempty"`
	// Note is free text for operators (who asked for the key, why).
	Note string `yaml:"note,omitempty"`
}

// File is the keys file:
//
//	keys:
//	  - id: 3f9a0c1b2d4e
//	    hash: sha256:9b74c9897bac770ffc029102a200c5de...
//	    tenant: acme
//	    roles: [submitter, approver]
//	    user: alice
type File struct {
	Keys []Key `yaml:"keys"`
}

// Validate reports every problem of a key entry.
func (k Key) Validate() error {
	var errs []error
	if !keyIDRe.MatchString(k.ID) {
		errs = append(errs, fmt.Errorf("id %q: want 4-32 lowercase letters or digits", k.ID))
	}
	if _, err := parseHash(k.Hash); err != nil {
		errs = append(errs, fmt.Errorf("key %s: %w", k.ID, err))
	}
	if !definition.TenantPattern.MatchString(k.Tenant) {
		errs = append(errs, fmt.Errorf("key %s: tenant %q: want lowercase letters, digits, - or _", k.ID, k.Tenant))
	}
	if len(k.Roles) == 0 {
		errs = append(errs, fmt.Errorf("key %s: at least one role is needed", k.ID))
	}
	for _, r := range k.Roles {
		if !roleRe.MatchString(r) {
			errs = append(errs, fmt.Errorf("key %s: role %q: want lowercase letters, digits, - or _", k.ID, r))
		}
	}
	if k.User != "" && !userRe.MatchString(k.User) {
		errs = append(errs, fmt.Errorf("key %s: user %q: want letters, digits and ._@+-", k.ID, k.User))
	}
	if k.RPS < 0 || k.Burst < 0 {
		errs = append(errs, fmt.Errorf("key %s: rps and burst must not be negative", k.ID))
	}
	return errors.Join(errs...)
}

type entry struct {
	digest [sha256.Size]byte
	p      Principal
}

type keyset map[string]entry

// Store authenticates bearer tokens against the keys file plus static keys
// (e.g. the dev key). It is safe for concurrent use; Reload swaps the whole
// set atomically and keeps the old one when the file is invalid.
type Store struct {
	path   string
	static []Key
	cur    atomic.Pointer[keyset]
	mu     sync.Mutex // serialises Reload
}

// NewStore loads the keys file at path ("" for none; a missing file counts
// as empty so that `gateflow keys create` can create it later) plus the
// static keys, which survive reloads.
func NewStore(path string, static ...Key) (*Store, error) {
	s := &Store{path: path, static: static}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload reads the keys file again. On error the previous keys stay in use.
func (s *Store) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := append([]Key(nil), s.static...)
	if s.path != "" {
		f, err := ReadFile(s.path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		keys = append(keys, f.Keys...)
	}
	set := make(keyset, len(keys))
	var errs []error
	for _, k := range keys {
		if err := k.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := set[k.ID]; dup {
			errs = append(errs, fmt.Errorf("key %s: duplicate id", k.ID))
			continue
		}
		if k.Disabled {
			continue
		}
		d, _ := parseHash(k.Hash)
		set[k.ID] = entry{digest: d, p: Principal{
			KeyID: k.ID, Tenant: k.Tenant, User: k.User,
			Roles: append([]string(nil), k.Roles...), RPS: k.RPS, Burst: k.Burst,
		}}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("keys file %s: %w", s.path, err)
	}
	s.cur.Store(&set)
	return nil
}

// Len returns the number of enabled keys.
func (s *Store) Len() int { return len(*s.cur.Load()) }

// dummy makes an unknown key id cost the same hash and compare as a known
// one (the id is not secret, but the timing of the check stays uniform).
var dummy [sha256.Size]byte

// Authenticate returns the principal of a bearer token, or ErrBadKey.
func (s *Store) Authenticate(token string) (Principal, error) {
	if token == "" {
		return Principal{}, ErrNoKey
	}
	if len(token) > 512 {
		return Principal{}, ErrBadKey
	}
	id, secret := ParseToken(token)
	e, ok := (*s.cur.Load())[id]
	if !ok {
		compare(secret, dummy)
		return Principal{}, ErrBadKey
	}
	if !compare(secret, e.digest) {
		return Principal{}, ErrBadKey
	}
	return e.p, nil
}

// ReadFile parses a keys file through the one bounded YAML reader, with
// room for about 30k keys (some 15 values each). An empty file is an empty
// key list.
func ReadFile(path string) (File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return File{}, fmt.Errorf("read keys file: %w", err)
	}
	var f File
	if err := yamlread.ReadInto(b, yamlread.Limits{MaxBytes: 16 << 20, MaxValues: 500_000}, &f); err != nil {
		return File{}, fmt.Errorf("keys file %s: %w", path, err)
	}
	return f, nil
}

// AddKey appends k to the keys file at path, creating it (mode 0600) when
// missing. The file is replaced atomically so that a concurrent reload never
// reads half of it.
func AddKey(path string, k Key) error {
	if err := k.Validate(); err != nil {
		return err
	}
	f, err := ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, old := range f.Keys {
		if old.ID == k.ID {
			return fmt.Errorf("key %s already exists in %s", k.ID, path)
		}
	}
	f.Keys = append(f.Keys, k)
	out, err := yaml.Marshal(f)
	if err != nil {
		return fmt.Errorf("encode keys file: %w", err)
	}
	return writeFileAtomic(path, out)
}

func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
