package schema

import (
	"errors"
	"strings"
	"testing"
)

func TestMigrationsParse(t *testing.T) {
	migs, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(migs) < 4 || migs[0].Checksum == "" {
		t.Fatalf("%d migrations", len(migs))
	}
	for i, m := range migs {
		if m.Version != i+1 {
			t.Fatalf("migration %d has version %d: versions must be 1..n without gaps", i, m.Version)
		}
		if len(m.Statements) == 0 {
			t.Fatalf("migration %d has no statement", m.Version)
		}
		for _, s := range m.Statements {
			// Setting a table setting again to its value is idempotent too.
			if !strings.Contains(s, "IF NOT EXISTS") && !strings.Contains(s, " MODIFY SETTING ") {
				t.Fatalf("migration %d: statement is not idempotent: %.60s", m.Version, s)
			}
			if strings.HasSuffix(s, ";") {
				t.Fatalf("statement keeps its semicolon: %.60s", s)
			}
		}
	}
}

func TestSplitStatements(t *testing.T) {
	got := SplitStatements("-- comment\nCREATE TABLE a (x Int8);\n\n-- c2\nCREATE VIEW b AS\nSELECT 1;\nSELECT 2")
	want := []string{"CREATE TABLE a (x Int8)", "CREATE VIEW b AS\nSELECT 1", "SELECT 2"}
	if len(got) != len(want) {
		t.Fatalf("got %q", got)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("statement %d: got %q want %q", i, got[i], want[i])
		}
	}
}

func TestTTLRegexp(t *testing.T) {
	q := "CREATE TABLE default.calls (...) ENGINE = ReplacingMergeTree(inserted_at) PARTITION BY toYYYYMM(ts) ORDER BY (tenant) TTL toDateTime(ts) + toIntervalDay(30) SETTINGS index_granularity = 8192"
	m := ttlDaysRE.FindStringSubmatch(q)
	if m == nil || m[1] != "30" {
		t.Fatalf("got %v", m)
	}
}

func TestCheckApplied(t *testing.T) {
	migs, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	same := map[int]Applied{1: {migs[0].Name, migs[0].Checksum}, 99: {"from_a_newer_build", "x"}}
	if err := checkApplied(migs, same); err != nil {
		t.Fatalf("unchanged migrations refused: %v", err)
	}
	for name, a := range map[string]Applied{
		"content changed": {migs[0].Name, "0000"},
		"renamed":         {"calls_1m", migs[0].Checksum},
		"no checksum":     {migs[0].Name, ""},
	} {
		if err := checkApplied(migs, map[int]Applied{1: a}); !errors.Is(err, ErrChanged) {
			t.Errorf("%s: want ErrChanged, got %v", name, err)
		}
	}
}

// TestRollupsCascade: every rollup level has its view, created after the
// level above it (so no block reaches a level whose parent view is
// missing), and the tables list knows every table.
func TestRollupsCascade(t *testing.T) {
	migs, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, m := range migs {
		all = append(all, m.Statements...)
	}
	pos := func(prefix string) int {
		for i, s := range all {
			if strings.HasPrefix(s, prefix) {
				return i
			}
		}
		t.Fatalf("no statement %q", prefix)
		return -1
	}
	for _, fam := range []string{"calls", "approvals", "model_cache"} {
		d, h, m := pos("CREATE MATERIALIZED VIEW IF NOT EXISTS "+fam+"_1d_mv"), pos("CREATE MATERIALIZED VIEW IF NOT EXISTS "+fam+"_1h_mv"),
			pos("CREATE MATERIALIZED VIEW IF NOT EXISTS "+fam+"_1m_mv")
		if !(d < h && h < m) {
			t.Errorf("%s views created in order 1d=%d 1h=%d 1m=%d; want coarsest first", fam, d, h, m)
		}
	}
	for _, tbl := range Tables {
		pos("CREATE TABLE IF NOT EXISTS " + tbl + "\n")
	}
}
