package yamlread

import (
	"bytes"
	"errors"
	"testing"

	"gopkg.in/yaml.v3"
)

// sourceNodes counts the nodes yaml.v3 builds for data's documents,
// aliases not followed; -1 when it fails to parse.
func sourceNodes(t testing.TB, data []byte) int {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	total := 0
	for i := 0; i < 2; i++ { // the reader parses at most two documents
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			break
		}
		total += countNodes(&n)
	}
	return total
}

func countNodes(n *yaml.Node) int {
	c := 1
	for _, e := range n.Content {
		c += countNodes(e)
	}
	return c
}

// measure counts the values, text and depth of a generic tree.
func measure(v any, depth int) (values, text, maxDepth int) {
	values, maxDepth = 1, depth
	switch x := v.(type) {
	case string:
		text = len(x)
	case []any:
		for _, e := range x {
			n, b, d := measure(e, depth+1)
			values, text, maxDepth = values+n, text+b, max(maxDepth, d)
		}
	case map[string]any:
		for k, e := range x {
			n, b, d := measure(e, depth+1)
			values, text, maxDepth = values+n+1, text+b+len(k), max(maxDepth, d)
		}
	}
	return values, text, maxDepth
}

// FuzzReadTree: no input may panic, every refusal is an *Error, an accepted
// tree stays within the limits, and the pre-scan never estimates fewer
// nodes than yaml.v3 builds. Run:
//
//	go test ./workflows/definition/yamlread -run '^$' -fuzz FuzzReadTree -fuzztime 1m
func FuzzReadTree(f *testing.F) {
	for _, seed := range []string{
		"a: 1\nb: [x, true, null]\n", `{"a": {"b": [1, "x"]}}`, "x: &h {k: v}\na: *h\nb: *h\n",
		"base: &b {k: v}\nm: {<<: *b, k: own}\n", "a: &a [x, *a]\n", "[a: b, c: d]", "{? : }", "- \n- \n",
		"a: |\n  text\n", "a: >-\n  folded\n  text\n", "'a': \"b\\u0041\"\n", "a: 1\n---\nb: 2\n",
		string(laughs(4)), "!!binary aGk=", "a: !!float 1e999", "\ufeffa: b", "a\u2028b: c",
	} {
		f.Add([]byte(seed))
	}
	lim := Limits{MaxBytes: 1 << 14, MaxValues: 500, MaxExpandedBytes: 1 << 12, MaxDepth: 12}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > lim.MaxBytes {
			return
		}
		if n := sourceNodes(t, data); n > estimateNodes(data) {
			t.Fatalf("estimate %d < %d nodes built by yaml.v3", estimateNodes(data), n)
		}
		tree, err := ReadTree(data, lim)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v is not an *Error", err, err)
			}
			return
		}
		values, text, depth := measure(tree, 0)
		// Keys count once per mapping entry in measure, as in the walk;
		// merges can only drop values.
		if values > lim.MaxValues || text > lim.MaxExpandedBytes || depth > lim.MaxDepth {
			t.Fatalf("accepted %d values, %d bytes of text, depth %d: over %+v", values, text, depth, lim)
		}
	})
}
