package schema

import (
	"strings"
	"testing"
)

func TestMigrationsParse(t *testing.T) {
	migs, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(migs) < 4 {
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
			if !strings.Contains(s, "IF NOT EXISTS") {
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
