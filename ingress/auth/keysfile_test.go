package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// keyEntry renders one keys-file entry the way `gateflow keys create`
// writes it, with extra lines appended.
func keyEntry(k Key, extra ...string) string {
	s := "    - id: " + k.ID + "\n      hash: " + k.Hash + "\n      tenant: " + k.Tenant + "\n      roles:\n"
	for _, r := range k.Roles {
		s += "        - " + r + "\n"
	}
	for _, e := range extra {
		s += "      " + e + "\n"
	}
	return s
}

// TestReloadEntryByEntry: a typo elsewhere in the keys file no longer
// keeps a revoked key alive (issue 10 item 9): disabled entries always
// apply, invalid ones are reported and keep their previous state.
func TestReloadEntryByEntry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.yaml")
	tokens := map[string]string{}
	keys := map[string]Key{}
	for _, name := range []string{"alice", "bob", "carol", "dave"} {
		tok, _ := NewToken()
		tokens[name], keys[name] = tok, EntryFor(tok, "acme", []string{"submitter"}, name)
	}
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(path, []byte("keys:\n"+body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(keyEntry(keys["alice"]) + keyEntry(keys["bob"]) + keyEntry(keys["dave"]))
	st, err := NewStore(path)
	if err != nil {
		t.Fatal(err)
	}
	valid := func(name string) bool {
		_, err := st.Authenticate(tokens[name])
		return err == nil
	}

	cases := []struct {
		name                    string
		file                    string
		alice, bob, carol, dave bool
		errHas                  string
	}{
		{"disable alice while bob has a typo (unknown field); carol added; dave removed",
			keyEntry(keys["alice"], "disabled: true") + keyEntry(keys["bob"], "rols: [admin]") + keyEntry(keys["carol"]),
			false, true, true, false, `unknown field "rols"`},
		{"bob's typo kept his previous entry, not the new one", // (he never got admin)
			keyEntry(keys["alice"], "disabled: true") + keyEntry(keys["bob"], "rols: [admin]") + keyEntry(keys["carol"]),
			false, true, true, false, "entry at line"},
		{"an invalid entry with disabled: true is disabled nonetheless",
			keyEntry(keys["alice"]) + keyEntry(keys["bob"], "tenant: ACME", "disabled: true") + keyEntry(keys["carol"]),
			true, false, true, false, "disabled nonetheless"},
		{"a YAML syntax error elsewhere: the disabled entry applies, nothing is removed",
			keyEntry(keys["alice"], "disabled: true") + keyEntry(keys["bob"]) + "    - id: \"broken\n      hash: [\n",
			false, true, true, false, "not valid YAML as a whole"},
		{"a valid file again: everything as written",
			keyEntry(keys["alice"]) + keyEntry(keys["dave"]),
			true, false, false, true, ""},
	}
	for _, c := range cases {
		write(c.file)
		err := st.Reload()
		if c.errHas == "" && err != nil || c.errHas != "" && (err == nil || !strings.Contains(err.Error(), c.errHas)) {
			t.Errorf("%s: reload error %v, want one with %q", c.name, err, c.errHas)
		}
		got := [4]bool{valid("alice"), valid("bob"), valid("carol"), valid("dave")}
		if want := [4]bool{c.alice, c.bob, c.carol, c.dave}; got != want {
			t.Errorf("%s: alice, bob, carol, dave valid = %v, want %v", c.name, got, want)
		}
		if ls := st.LastReload(); !ls.Applied || (ls.Err != nil) != (c.errHas != "") {
			t.Errorf("%s: last reload %+v", c.name, ls)
		}
		if p, err := st.Authenticate(tokens["bob"]); err == nil && p.Has(RoleAdmin) {
			t.Errorf("%s: bob's invalid entry was applied", c.name)
		}
	}
}

func TestSplitEntries(t *testing.T) {
	got := splitEntries([]byte("# keys\nkeys:\n  - id: a\n    x: [\n\n  - id: b\n  -\n    id: c\nother: 1\n  - id: d\n"))
	if len(got) != 3 || got[0].line != 3 || got[1].line != 6 || got[2].line != 7 || !strings.Contains(got[2].text, "id: c") {
		t.Fatalf("%+v", got)
	}
}
