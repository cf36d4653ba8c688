package yamlread

import (
	"bytes"
	"errors"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func TestReadTree(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want any
	}{
		{"mapping", "a: 1\nb: [x, true, null]\n", map[string]any{"a": 1.0, "b": []any{"x", true, nil}}},
		{"json", `{"a": {"b": [1, "x"]}}`, map[string]any{"a": map[string]any{"b": []any{1.0, "x"}}}},
		{"anchors", "x: &h {k: v}\na: *h\nb: *h\n", map[string]any{
			"x": map[string]any{"k": "v"}, "a": map[string]any{"k": "v"}, "b": map[string]any{"k": "v"}}},
		{"merge keeps explicit keys", "base: &b {k: v, j: w}\nm: {<<: *b, k: own}\n", map[string]any{
			"base": map[string]any{"k": "v", "j": "w"}, "m": map[string]any{"k": "own", "j": "w"}}},
		{"scalar", "hello", "hello"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadTree([]byte(tt.doc), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

// laughs is a nested billion-laughs document: levels anchors of ten
// aliases each, about 10^levels values once expanded, in a few hundred
// bytes.
func laughs(levels int) []byte {
	var b strings.Builder
	b.WriteString("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i <= levels; i++ {
		p := "*l" + string(rune('0'+i-1))
		b.WriteString("l" + string(rune('0'+i)) + ": &l" + string(rune('0'+i)) + " [" + strings.Repeat(p+", ", 9) + p + "]\n")
	}
	return []byte(b.String())
}

// issueBody is the case measured in issue 10: one 2 KB anchor referenced
// 100k times in a 700 KB body (the ingress held it 9 s and grew by 1.4 GB).
func issueBody(refs int) []byte {
	var b bytes.Buffer
	b.WriteString("name: x\nversion: \"1\"\nx-a: &a \"" + strings.Repeat("A", 2048) + "\"\nsteps:\n")
	for i := 0; i < refs; i++ {
		b.WriteString("  - *a\n")
	}
	return b.Bytes()
}

func TestReadTreeRefuses(t *testing.T) {
	small := Limits{MaxBytes: 4096, MaxValues: 100, MaxDepth: 8}
	tests := []struct {
		name  string
		doc   string
		lim   Limits
		limit string // Error.Limit
		msg   string
	}{
		{"empty", " \n", Limits{}, "", "empty document"},
		{"comment only", "# nothing\n", Limits{}, "", "empty document"},
		{"syntax", "a: [", Limits{}, "", "syntax"},
		{"two documents", "a: 1\n---\nb: 2\n", Limits{}, "", "more than one YAML document"},
		{"duplicate key", "a: 1\na: 2\n", Limits{}, "", `line 2: key "a" defined twice`},
		{"duplicate key json", `{"a": 1, "a": 2}`, Limits{}, "", `key "a" defined twice`},
		{"non-string key", "[a]: 1\n", Limits{}, "", "mapping keys must be strings"},
		{"merge of a list", "a: &a [1]\nb: {<<: *a}\n", Limits{}, "", "<< must merge a mapping"},
		{"alias inside its anchor", "a: &a [x, *a]\n", Limits{}, "", "alias *a is used inside its own anchor"},
		{"unknown alias", "a: *nope\n", Limits{}, "", "syntax: unknown anchor 'nope' referenced"},
		{"non-finite", "a: .nan\n", Limits{}, "", "numbers must be finite"},
		{"utf-16", "\xff\xfea\x00:\x00 \x001\x00", Limits{}, "", "UTF-16"},
		{"bytes", strings.Repeat("a", 4097), small, LimitBytes, "larger than 4096 bytes"},
		{"depth", strings.Repeat("- ", 10) + "x\n", small, LimitDepth, "nested deeper than 8"},
		{"depth json", strings.Repeat(`{"a":`, 10) + "1" + strings.Repeat("}", 10), small, LimitDepth, "nested deeper than 8"},
		{"depth through aliases", "a: &a [[[[[x]]]]]\nb: &b [[[[*a]]]]\n", small, LimitDepth, "nested deeper than 8"},
		{"values json", "{" + strings.Repeat(`"a":1,`, 0) + `"l": [` + strings.Repeat("1,", 200) + "1]}", small, LimitValues, "more than 100 values"},
		{"values through aliases", string(laughs(9)), Limits{}, LimitValues, "more than 100000 values (YAML aliases count"},
		{"expanded bytes", "a: &a " + strings.Repeat("x", 1000) + "\nb: [*a, *a, *a, *a, *a, *a, *a, *a]\n", small, LimitExpandedBytes, "expands to more than 8192 bytes"},
		{"issue body", string(issueBody(100_000)), Limits{}, LimitValues, "too complex"},
		{"estimate", "[" + strings.Repeat("a,", 300) + "a]", small, LimitValues, "too complex"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadTree([]byte(tt.doc), tt.lim)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want an *Error", err)
			}
			if e.Limit != tt.limit || !strings.Contains(e.Msg, tt.msg) {
				t.Fatalf("got limit %q %q, want %q containing %q", e.Limit, e.Msg, tt.limit, tt.msg)
			}
			wantLarge := tt.limit == LimitBytes || tt.limit == LimitValues || tt.limit == LimitExpandedBytes
			if e.TooLarge() != wantLarge || errors.Is(err, ErrTooLarge) != wantLarge || errors.Is(err, ErrInvalid) == wantLarge {
				t.Fatalf("TooLarge %v, want %v", e.TooLarge(), wantLarge)
			}
		})
	}
}

func TestReadInto(t *testing.T) {
	type entry struct {
		ID    string   `yaml:"id"`
		Roles []string `yaml:"roles"`
	}
	type file struct {
		Keys []entry `yaml:"keys"`
	}
	var f file
	if err := ReadInto([]byte("keys:\n  - id: a\n    roles: &r [x, y]\n  - id: b\n    roles: *r\n"), Limits{}, &f); err != nil {
		t.Fatal(err)
	}
	if want := (file{Keys: []entry{{"a", []string{"x", "y"}}, {"b", []string{"x", "y"}}}}); !reflect.DeepEqual(f, want) {
		t.Fatalf("got %+v", f)
	}
	var empty file
	if err := ReadInto([]byte("# no keys yet\n"), Limits{}, &empty); err != nil || empty.Keys != nil {
		t.Fatalf("empty document: %v %+v", err, empty)
	}
	for _, tc := range []struct{ doc, msg string }{
		{"keys: []\nextra: 1\n", "field extra not found"},
		{"keys: {}\n", "cannot unmarshal"},
		{string(laughs(9)), "more than 100000 values"},
	} {
		var f file
		err := ReadInto([]byte(tc.doc), Limits{}, &f)
		var e *Error
		if !errors.As(err, &e) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%.30q: got %v, want %q", tc.doc, err, tc.msg)
		}
	}
}

// allocated runs fn and returns the bytes it allocated (TotalAlloc
// grows with every allocation, so this is an upper bound of heap growth).
func allocated(fn func()) uint64 {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// largestAccepted returns the largest flow sequence "[a,a,...]" the estimate
// lets through: the document that makes yaml.v3 allocate the most.
func largestAccepted() []byte {
	items := (EstimateFactor*DefaultMaxValues - 10) / 3 // "a," estimates 3
	return append(append([]byte("["), bytes.Repeat([]byte("a,"), items)...), 'x', ']')
}

// TestMemoryBounded feeds alias bombs and oversized token streams and
// checks what reading them allocates (TotalAlloc, so an upper bound of heap
// growth; a memory bound, not a timing). Refused documents allocate a
// small multiple of their size; the worst accepted one stays within 32×
// DefaultMaxBytes.
func TestMemoryBounded(t *testing.T) {
	flow := append(append([]byte("["), bytes.Repeat([]byte("a,"), DefaultMaxBytes/2-1)...), ']')
	tests := []struct {
		name   string
		doc    []byte
		refuse bool
		bound  uint64
	}{
		// Refused by the estimate before parsing: nothing is allocated.
		{"issue 10: 700 KB, one 2 KB anchor, 100k aliases", issueBody(100_000), true, 702_087},
		{"1 MiB flow sequence", flow, true, 1 << 20},
		// Parsed (the estimate allows it), refused by the walk: the
		// graph's nodes are allocated, the expansion is not.
		{"issue body within the estimate: 30k aliases", issueBody(30_000), true, 40 * 212_087},
		{"nested laughs: 10^9 values in 600 bytes", laughs(9), true, 1 << 20},
		{"largest accepted: a flow sequence of 66k values", largestAccepted(), false, 32 * DefaultMaxBytes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			alloc := allocated(func() { _, err = ReadTree(tt.doc, Limits{}) })
			if tt.refuse != errors.Is(err, ErrTooLarge) {
				t.Fatalf("got %v, want refused %v", err, tt.refuse)
			}
			t.Logf("%d bytes, allocated %d bytes (%.1f× the input)", len(tt.doc), alloc, float64(alloc)/float64(len(tt.doc)))
			if alloc > tt.bound {
				t.Fatalf("allocated %d bytes, want at most %d", alloc, tt.bound)
			}
		})
	}
}

// TestEstimateIsAnUpperBound checks the pre-scan against the nodes yaml.v3
// really builds, for documents that each stress one charge of it.
func TestEstimateIsAnUpperBound(t *testing.T) {
	for _, doc := range []string{
		"a: 1", "- - - a", "[[[a]]]", "{a, b, c}", "[a: b, c: d]", "[:, :, :]", "[?, ?]", "? a\n? b\n",
		"- \n- \n- \n", "a:\nb:\nc:\n", "{\"a\":b,\"c\":d}", "[*x]", "x: &x [1]\ny: [*x,*x,*x]\n",
		"a: |\n  text, with: punctuation - here\n", "'a': \"b\"\n", "!!str a: !!int 1\n", "a:\n  - b:\n    - c\n",
		"a\u0085b: c", "\ufeffa: b", "- ? : \n", "{? : }", "[-, -]",
	} {
		got, want := estimateNodes([]byte(doc)), sourceNodes(t, []byte(doc))
		if got < want {
			t.Errorf("%q: estimate %d < %d nodes", doc, got, want)
		}
	}
}
