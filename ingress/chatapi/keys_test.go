package chatapi

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestTopLevelKeys(t *testing.T) {
	cases := map[string][]string{
		`{}`: nil,
		`{"a":1,"b":{"c":2,"d":[{"e":3}]},"f":"g:h"}`: {"a", "b", "f"},
		` { "x" : "y\"}:" , "z"	:[":","{"] } `:        {"x", "z"},
		`{"stop":["a","b"],"n":null}`:                 {"stop", "n"},
		`null`:                                        nil,
	}
	for in, want := range cases {
		if got := topLevelKeys([]byte(in)); !slices.Equal(got, want) {
			t.Errorf("%s: %q, want %q", in, got, want)
		}
	}
}

// FuzzTopLevelKeys checks the scanner against a full decode.
func FuzzTopLevelKeys(f *testing.F) {
	f.Add(`{"model":"m","messages":[{"role":"user","content":"hi"}],"store":true}`)
	f.Add(`{"a\"b":{"c":"}"}}`)
	f.Fuzz(func(t *testing.T, s string) {
		var m map[string]json.RawMessage
		if json.Unmarshal([]byte(s), &m) != nil || m == nil {
			_ = topLevelKeys([]byte(s)) // must not panic
			return
		}
		got := topLevelKeys([]byte(s))
		for _, k := range got {
			var dk string
			if json.Unmarshal([]byte(`"`+k+`"`), &dk) != nil {
				continue // raw escaped key
			}
			if _, ok := m[dk]; !ok {
				t.Fatalf("%s: key %q is not a top-level key", s, k)
			}
		}
		if len(got) < len(m) {
			t.Fatalf("%s: %q misses keys of %v", s, got, m)
		}
	})
}
