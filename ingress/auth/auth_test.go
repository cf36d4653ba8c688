package auth

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestTokenFormat(t *testing.T) {
	tok, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	id, secret := ParseToken(tok)
	if !strings.HasPrefix(tok, "gf_"+id+"_") || len(id) != 12 || len(secret) < 40 || strings.Contains(secret, "_") {
		t.Errorf("token %q parsed as %q %q", tok, id, secret)
	}
	// A hand-made token gets a derived id and is its own secret.
	id2, secret2 := ParseToken("my-own-dev-key-0123456789")
	if !strings.HasPrefix(id2, "h") || secret2 != "my-own-dev-key-0123456789" {
		t.Errorf("hand-made: %q %q", id2, secret2)
	}
	// A gf_ token with a bad id falls back too, without panicking.
	for _, s := range []string{"gf_", "gf__", "gf_ABC_secretsecretsecret", "gf_abcd_short"} {
		if id, _ := ParseToken(s); !strings.HasPrefix(id, "h") {
			t.Errorf("%q: id %q", s, id)
		}
	}
}

func TestStoreAuthenticate(t *testing.T) {
	tok, _ := NewToken()
	k := EntryFor(tok, "acme", []string{"submitter", "finance"}, "alice")
	disabledTok, _ := NewToken()
	d := EntryFor(disabledTok, "acme", []string{"admin"}, "")
	d.Disabled = true
	st, err := NewStore("", k, d)
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.Authenticate(tok)
	if err != nil || p.Tenant != "acme" || p.User != "alice" || p.KeyID != k.ID {
		t.Fatalf("%+v %v", p, err)
	}
	if !p.Has(RoleSubmitter) || p.Has(RoleApprover) || !p.HasAny(nil) || !p.HasAny([]Role{RoleAnalyst, RoleSubmitter}) {
		t.Errorf("roles of %+v", p)
	}
	if (Principal{Roles: []string{"admin"}}).Has(RoleApprover) != true {
		t.Error("admin must hold every role")
	}
	id, secret := ParseToken(tok)
	for _, bad := range []string{"", disabledTok, "gf_" + id + "_" + secret + "x", "gf_000000000000_" + secret, strings.Repeat("a", 600)} {
		if _, err := st.Authenticate(bad); err == nil {
			t.Errorf("%q authenticated", bad)
		}
	}
}

func TestKeysFileAndReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.yaml")
	st, err := NewStore(path) // missing file: empty
	if err != nil || st.Len() != 0 {
		t.Fatalf("missing file: %v %d", err, st.Len())
	}
	tok, _ := NewToken()
	if err := AddKey(path, EntryFor(tok, "acme", []string{"approver"}, "bob")); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), tok) || strings.Contains(string(b), strings.SplitN(tok, "_", 3)[2]) {
		t.Fatal("the keys file holds the secret")
	}
	if _, err := st.Authenticate(tok); err == nil {
		t.Fatal("key known before reload")
	}
	if err := st.Reload(); err != nil {
		t.Fatal(err)
	}
	if p, err := st.Authenticate(tok); err != nil || p.User != "bob" {
		t.Fatalf("after reload: %+v %v", p, err)
	}
	// A file that cannot be read as keys keeps the old keys; an alias bomb
	// (10^9 values in a few hundred bytes) is refused by the bounded
	// reader before expansion. A readable file whose entries are all
	// invalid lists none of the old keys: they are gone.
	bomb := "x: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
	for i := 1; i <= 9; i++ {
		p := fmt.Sprintf("*l%d", i-1)
		bomb += fmt.Sprintf("x%d: &l%d [%s%s]\n", i, i, strings.Repeat(p+", ", 9), p)
	}
	good, _ := os.ReadFile(path)
	for _, c := range []struct {
		bad  string
		kept bool
	}{
		{bomb, true}, {"nope: 1", true}, {"keys: [", true},
		{"keys: [{id: x}]", false},
		{"keys:\n  - id: abcd\n    hash: sha256:00\n", false},
		{"keys:\n  - id: abcd1234\n    hash: " + HashSecret("s") + "\n    tenant: acme\n    roles: [submitter]\n    extra: 1\n", false},
	} {
		if err := os.WriteFile(path, good, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := st.Reload(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(c.bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := st.Reload(); err == nil {
			t.Errorf("invalid file %q accepted", c.bad)
		} else if c.bad == bomb && !strings.Contains(err.Error(), "more than 500000 values") {
			t.Errorf("bomb: %v", err)
		}
		if _, err := st.Authenticate(tok); (err == nil) != c.kept {
			t.Errorf("after the invalid reload of %q: key kept=%v, want %v", c.bad, err == nil, c.kept)
		}
		if st.LastReload().Err == nil || st.LastReload().Applied == c.kept {
			t.Errorf("%q: last reload %+v", c.bad, st.LastReload())
		}
	}
	// Duplicate ids are refused.
	k := EntryFor(tok, "acme", []string{"approver"}, "")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := AddKey(path, k); err != nil {
		t.Fatal(err)
	}
	if err := AddKey(path, k); err == nil {
		t.Error("duplicate id accepted")
	}
}

func TestConcurrentReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.yaml")
	tok, _ := NewToken()
	if err := AddKey(path, EntryFor(tok, "acme", []string{"approver"}, "")); err != nil {
		t.Fatal(err)
	}
	st, err := NewStore(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				if _, err := st.Authenticate(tok); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for j := 0; j < 20; j++ {
		if err := st.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}

func TestEnsureDevKey(t *testing.T) {
	dir := t.TempDir()
	key, created, err := EnsureDevKey(dir, "", nil)
	if err != nil || !created || !strings.HasPrefix(key, "gf_") {
		t.Fatalf("%q %v %v", key, created, err)
	}
	fi, err := os.Stat(filepath.Join(dir, DevKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("dev-key file: %v %v", fi, err)
	}
	again, created, err := EnsureDevKey(dir, "", nil)
	if err != nil || created || again != key {
		t.Errorf("second call: %q %v %v", again, created, err)
	}
	const chosen = "Zq3v-9LxTb2Wm7Yk_Hc4Pn8Rf6Dg1Js5"
	env, created, err := EnsureDevKey(t.TempDir(), chosen, nil)
	if err != nil || created || env != chosen {
		t.Errorf("env: %q %v %v", env, created, err)
	}
	if _, _, err := EnsureDevKey(dir, "short", nil); err == nil {
		t.Error("short env key accepted")
	}
	st, err := NewStore("", DevKey(key), DevKey(env))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{key, env} {
		p, err := st.Authenticate(k)
		if err != nil || p.Tenant != DevTenant || !p.Has(RoleAdmin) || p.User != DevUser {
			t.Errorf("dev key %q: %+v %v", k, p, err)
		}
	}
	if got, err := ReadKeyFile(filepath.Join(dir, DevKeyFile)); err != nil || got != key {
		t.Errorf("ReadKeyFile %q %v", got, err)
	}
	var out strings.Builder
	dir2 := t.TempDir()
	k, tok, err := SetupDevKey(dir2, "", &out)
	if err != nil || !strings.Contains(out.String(), tok) || k.Tenant != DevTenant {
		t.Errorf("SetupDevKey: %+v %q %v", k, out.String(), err)
	}
	out.Reset()
	if _, tok2, _ := SetupDevKey(dir2, "", &out); tok2 != tok || out.Len() != 0 {
		t.Errorf("second SetupDevKey printed %q", out.String())
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	tok, _ := NewToken()
	st, _ := NewStore("", EntryFor(tok, "acme", []string{"submitter"}, ""))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := st.Authenticate(tok); err != nil {
			b.Fatal(err)
		}
	}
}

// TestReplicatedKeys: keys created through the API are accepted once put,
// refused once put disabled, and never shadow a key of the file.
func TestReplicatedKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.yaml")
	fileTok, _ := NewToken()
	if err := AddKey(path, EntryFor(fileTok, "acme", []string{"admin"}, "ann")); err != nil {
		t.Fatal(err)
	}
	s, err := NewStore(path)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := NewToken()
	k := EntryFor(tok, "beta", []string{"submitter"}, "")
	k.App = "mobile"
	if _, err := s.Authenticate(tok); !errors.Is(err, ErrBadKey) {
		t.Fatalf("before put: %v", err)
	}
	if err := s.PutReplicated(k); err != nil {
		t.Fatal(err)
	}
	p, err := s.Authenticate(tok)
	if err != nil || p.Tenant != "beta" || p.App != "mobile" || !s.Has(k.ID) {
		t.Fatalf("after put: %+v %v", p, err)
	}
	k.Disabled = true
	if err := s.PutReplicated(k); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(tok); !errors.Is(err, ErrBadKey) {
		t.Fatalf("after disable: %v", err)
	}
	// A replicated key with the id of a file key does not replace it.
	fileID, _ := ParseToken(fileTok)
	evil := EntryFor(tok, "beta", []string{"admin"}, "")
	evil.ID = fileID
	if err := s.PutReplicated(evil); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Authenticate(fileTok); err != nil || p.Tenant != "acme" {
		t.Fatalf("file key: %+v %v", p, err)
	}
	if len(s.FileKeys("acme")) != 1 || len(s.FileKeys("beta")) != 0 {
		t.Fatal("FileKeys")
	}
	bad := EntryFor(tok, "beta", []string{"submitter"}, "")
	bad.App = "Mobile App"
	if err := s.PutReplicated(bad); err == nil {
		t.Fatal("bad app accepted")
	}
}
