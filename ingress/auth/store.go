package auth

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
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
	App      string    `yaml:"app,omitempty"`
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
	if k.App != "" && !appRe.MatchString(k.App) {
		errs = append(errs, fmt.Errorf("key %s: app %q: want lowercase letters, digits, - or _", k.ID, k.App))
	}
	if k.RPS < 0 || k.Burst < 0 {
		errs = append(errs, fmt.Errorf("key %s: rps and burst must not be negative", k.ID))
	}
	return errors.Join(errs...)
}

type entry struct {
	digest [sha256.Size]byte
	p      Principal
	// fromFile marks keys of the keys file (not static ones).
	fromFile bool
}

type keyset map[string]entry

// Store authenticates bearer tokens against the keys file plus static keys
// (e.g. the dev key), and the keys created through the API that reach this
// replica through the replicated keys topic (PutReplicated). It is safe
// for concurrent use; Reload swaps the file's set atomically. A key id of
// the file shadows the same id among the replicated keys (the file is the
// operator's).
type Store struct {
	path   string
	static []Key
	cur    atomic.Pointer[keyset]
	files  atomic.Pointer[[]Key] // every key of the last load, disabled ones too
	mu     sync.Mutex            // serialises Reload
	last   atomic.Pointer[ReloadStatus]

	dynMu sync.RWMutex
	dyn   keyset
}

// ReloadStatus is the outcome of the last load of the keys file.
type ReloadStatus struct {
	At time.Time
	// Err lists what was wrong (nil: the whole file applied). With
	// Applied the valid entries and every disabled one were applied
	// nonetheless.
	Err     error
	Applied bool
	// Invalid counts the entries that were skipped.
	Invalid int
}

// NewStore loads the keys file at path ("" for none; a missing file counts
// as empty so that `gateflow keys create` can create it later) plus the
// static keys, which survive reloads. At start the file must be valid as
// a whole.
func NewStore(path string, static ...Key) (*Store, error) {
	s := &Store{path: path, static: static, dyn: keyset{}}
	s.cur.Store(&keyset{})
	s.files.Store(&[]Key{})
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload reads the keys file again, entry by entry (issue 10 item 9):
//
//   - valid entries are applied, and ids no longer in the file are removed;
//   - an entry with `disabled: true` disables its id always, even when
//     something else in it or elsewhere in the file is wrong;
//   - an invalid entry is reported and its id keeps its previous state;
//   - a file that is not valid YAML as a whole is read item by item: valid
//     and disabled items are applied, but no id is removed (which ids the
//     file still lists is unknown);
//   - a file that cannot be read, or is over the reader's bounds, changes
//     nothing.
//
// It returns an error listing every problem; LastReload tells whether the
// rest was applied.
func (s *Store) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := *s.cur.Load()
	status := &ReloadStatus{At: time.Now()}
	defer func() { s.last.Store(status) }()

	var (
		entries   []fileEntry
		wholeFile = true
		errs      []error
	)
	if s.path != "" {
		data, err := os.ReadFile(s.path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			status.Err = fmt.Errorf("read keys file: %w", err)
			return status.Err
		default:
			var perr error
			entries, wholeFile, perr = readEntries(data)
			if perr != nil {
				if entries == nil {
					status.Err = fmt.Errorf("keys file %s: %w", s.path, perr)
					return status.Err
				}
				errs = append(errs, perr)
			}
		}
	}

	set := make(keyset, len(s.static)+len(entries))
	files := append([]Key(nil), s.static...)
	seen := map[string]bool{}
	for _, e := range entries {
		if e.Err == nil {
			files = append(files, e.Key)
			seen[e.Key.ID] = true
		}
	}
	if !wholeFile {
		for _, k := range *s.files.Load() {
			if !seen[k.ID] && !slices.ContainsFunc(s.static, func(st Key) bool { return st.ID == k.ID }) {
				files = append(files, k)
			}
		}
	}
	for _, k := range s.static {
		if err := k.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := set[k.ID]; dup {
			errs = append(errs, fmt.Errorf("key %s: duplicate id", k.ID))
			continue
		}
		if !k.Disabled {
			set[k.ID] = entryOf(k, false)
		}
	}
	disabled := map[string]bool{}
	for _, e := range entries {
		if e.Disabled && e.ID != "" {
			disabled[e.ID] = true
			if e.Err != nil {
				status.Invalid++
				errs = append(errs, fmt.Errorf("%w (key %s disabled nonetheless)", e.Err, e.ID))
			}
			continue
		}
		err := e.Err
		if err == nil {
			if verr := e.Key.Validate(); verr != nil {
				err = fmt.Errorf("entry at line %d: %w", e.Line, verr)
			} else if _, dup := set[e.Key.ID]; dup {
				err = fmt.Errorf("entry at line %d: key %s: duplicate id", e.Line, e.Key.ID)
			}
		}
		if err != nil {
			status.Invalid++
			errs = append(errs, err)
			if old, ok := prev[e.ID]; ok && e.ID != "" && old.fromFile {
				set[e.ID] = old // not what the entry says, but what it said last
			}
			continue
		}
		set[e.Key.ID] = entryOf(e.Key, true)
	}
	if !wholeFile {
		// Ids of unreadable parts are unknown: keep what is not
		// mentioned rather than remove keys the file may still hold.
		for id, old := range prev {
			if _, ok := set[id]; !ok && old.fromFile {
				set[id] = old
			}
		}
	}
	for id := range disabled {
		if e, ok := set[id]; ok && e.fromFile {
			delete(set, id)
		}
	}
	s.cur.Store(&set)
	s.files.Store(&files)
	status.Applied = true
	if err := errors.Join(errs...); err != nil {
		status.Err = fmt.Errorf("keys file %s: %w", s.path, err)
	}
	return status.Err
}

// LastReload is the outcome of the last Reload (or of NewStore's load).
func (s *Store) LastReload() ReloadStatus {
	if st := s.last.Load(); st != nil {
		return *st
	}
	return ReloadStatus{}
}

func entryOf(k Key, fromFile bool) entry {
	d, _ := parseHash(k.Hash)
	return entry{digest: d, fromFile: fromFile, p: Principal{
		KeyID: k.ID, Tenant: k.Tenant, User: k.User, App: k.App,
		Roles: append([]string(nil), k.Roles...), RPS: k.RPS, Burst: k.Burst,
	}}
}

// PutReplicated applies a key created through the API, as the replicated
// keys topic delivers it: a disabled key is removed at once (the next
// request with it is refused), an enabled one is accepted from now on.
func (s *Store) PutReplicated(k Key) error {
	if k.Disabled {
		s.dynMu.Lock()
		delete(s.dyn, k.ID)
		s.dynMu.Unlock()
		return nil
	}
	if err := k.Validate(); err != nil {
		return err
	}
	s.dynMu.Lock()
	s.dyn[k.ID] = entryOf(k, false)
	s.dynMu.Unlock()
	return nil
}

// Has reports whether a key id is taken, in the file or among the
// replicated keys (enabled ones).
func (s *Store) Has(id string) bool {
	if _, ok := (*s.cur.Load())[id]; ok {
		return true
	}
	for _, k := range *s.files.Load() {
		if k.ID == id {
			return true
		}
	}
	s.dynMu.RLock()
	defer s.dynMu.RUnlock()
	_, ok := s.dyn[id]
	return ok
}

// FileKeys returns the keys of the keys file (and the static keys) of a
// tenant, disabled ones included, as last loaded.
func (s *Store) FileKeys(tenant string) []Key {
	var out []Key
	for _, k := range *s.files.Load() {
		if k.Tenant == tenant {
			out = append(out, k)
		}
	}
	return out
}

// Len returns the number of enabled keys of the file and static keys.
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
		s.dynMu.RLock()
		e, ok = s.dyn[id]
		s.dynMu.RUnlock()
	}
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
	if err := yamlread.ReadInto(b, keysLimits, &f); err != nil {
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
