package schema

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// allStatements returns every statement of the embedded migrations.
func allStatements(t *testing.T) []string {
	t.Helper()
	migs, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, m := range migs {
		all = append(all, m.Statements...)
	}
	return all
}

// TestClusterRewriteSingleServer: without a cluster the files run exactly
// as written (existing single-server databases and their checksums).
func TestClusterRewriteSingleServer(t *testing.T) {
	all := allStatements(t)
	got, err := Cluster{}.Rewrite(all, TablesCreated(all))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, all) {
		t.Fatal("single-server statements changed")
	}
}

// TestClusterRewrite lays every migration (including ones added later)
// out on a cluster and checks the shape of the result: a migration with a
// statement Rewrite does not know fails here.
func TestClusterRewrite(t *testing.T) {
	all := allStatements(t)
	tables := TablesCreated(all)
	for _, name := range Tables {
		if !tables[name] {
			t.Fatalf("TablesCreated misses %s", name)
		}
	}
	for _, c := range []Cluster{{Name: "gf"}, {Name: "gf", ShardsOnly: true}} {
		got, err := c.Rewrite(all, tables)
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		onCluster := " ON CLUSTER gf"
		if c.ShardsOnly {
			onCluster = ""
		}
		dist := 0
		for _, s := range got {
			if strings.Contains(s, "ON CLUSTER") != !c.ShardsOnly {
				t.Fatalf("%+v: ON CLUSTER wrong in %.80q", c, s)
			}
			switch {
			case strings.Contains(s, "ENGINE = Distributed("):
				dist++
			case strings.HasPrefix(s, "CREATE TABLE"):
				if !regexp.MustCompile(`^CREATE TABLE IF NOT EXISTS \w+_local` + onCluster + `\n`).MatchString(s) {
					t.Fatalf("%+v: local table: %.80q", c, s)
				}
				if replicated := strings.Contains(s, "ENGINE = Replicated"); replicated == c.ShardsOnly {
					t.Fatalf("%+v: engine: %q", c, s)
				}
			case strings.HasPrefix(s, "CREATE MATERIALIZED VIEW"):
				for _, m := range fromJoinRE.FindAllStringSubmatch(s, -1) {
					if !strings.HasSuffix(m[3], LocalSuffix) {
						t.Fatalf("%+v: view reads %s, not a local table: %q", c, m[3], s)
					}
				}
				if !regexp.MustCompile(` TO \w+_local AS `).MatchString(s) {
					t.Fatalf("%+v: view writes a Distributed table: %.120q", c, s)
				}
			}
		}
		if dist != len(Tables) {
			t.Fatalf("%+v: %d Distributed tables, want %d", c, dist, len(Tables))
		}
	}
}

func TestClusterRewriteStatements(t *testing.T) {
	tables := map[string]bool{"calls": true, "calls_1m": true}
	c := Cluster{Name: "gf"}
	for _, tc := range []struct {
		name string
		in   string
		want []string
	}{
		{"raw table", "CREATE TABLE IF NOT EXISTS calls\n(\n    id UUID,\n    ts DateTime64(3, 'UTC')\n)\nENGINE = ReplacingMergeTree(inserted_at)\nPARTITION BY toDate(ts)\nORDER BY (tenant, ts, id)\nTTL toDateTime(ts) + toIntervalDay(90)",
			[]string{
				"CREATE TABLE IF NOT EXISTS calls_local ON CLUSTER gf\n(\n    id UUID,\n    ts DateTime64(3, 'UTC')\n)\nENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/calls_local', '{replica}', inserted_at)\nPARTITION BY toDate(ts)\nORDER BY (tenant, ts, id)\nTTL toDateTime(ts) + toIntervalDay(90)",
				"CREATE TABLE IF NOT EXISTS calls ON CLUSTER gf AS calls_local\nENGINE = Distributed(gf, currentDatabase(), calls_local, cityHash64(tenant, ts, id))",
			}},
		{"rollup without engine arguments", "CREATE TABLE IF NOT EXISTS calls_1m (minute DateTime, n UInt64) ENGINE = AggregatingMergeTree ORDER BY minute",
			[]string{
				"CREATE TABLE IF NOT EXISTS calls_1m_local ON CLUSTER gf\n(minute DateTime, n UInt64) ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/calls_1m_local', '{replica}') ORDER BY minute",
				"CREATE TABLE IF NOT EXISTS calls_1m ON CLUSTER gf AS calls_1m_local\nENGINE = Distributed(gf, currentDatabase(), calls_1m_local, cityHash64(minute))",
			}},
		{"view", "CREATE MATERIALIZED VIEW IF NOT EXISTS calls_1m_mv TO calls_1m AS\nSELECT toStartOfMinute(ts) AS minute, count() AS calls\nFROM calls\nGROUP BY minute",
			[]string{"CREATE MATERIALIZED VIEW IF NOT EXISTS calls_1m_mv ON CLUSTER gf TO calls_1m_local AS SELECT toStartOfMinute(ts) AS minute, count() AS calls\nFROM calls_local\nGROUP BY minute"}},
		{"view with EXTRACT", "CREATE MATERIALIZED VIEW v TO calls_1m AS SELECT extract(DAY FROM ts) AS d FROM calls JOIN calls_1m USING (x)",
			[]string{"CREATE MATERIALIZED VIEW v ON CLUSTER gf TO calls_1m_local AS SELECT extract(DAY FROM ts) AS d FROM calls_local JOIN calls_1m_local USING (x)"}},
		// The shape of a later migration adding a column (0010 trace_id).
		{"added column", "ALTER TABLE calls ADD COLUMN IF NOT EXISTS trace_id String DEFAULT '' AFTER run_id",
			[]string{
				"ALTER TABLE calls_local ON CLUSTER gf ADD COLUMN IF NOT EXISTS trace_id String DEFAULT '' AFTER run_id",
				"ALTER TABLE calls ON CLUSTER gf ADD COLUMN IF NOT EXISTS trace_id String DEFAULT '' AFTER run_id",
			}},
		{"setting and index only on the local table", "ALTER TABLE calls MODIFY SETTING non_replicated_deduplication_window = 1000",
			[]string{"ALTER TABLE calls_local ON CLUSTER gf MODIFY SETTING non_replicated_deduplication_window = 1000"}},
		{"mixed commands", "ALTER TABLE calls ADD COLUMN IF NOT EXISTS a String, ADD INDEX IF NOT EXISTS a_idx a TYPE bloom_filter(0.01) GRANULARITY 4, DROP COLUMN IF EXISTS b",
			[]string{
				"ALTER TABLE calls_local ON CLUSTER gf ADD COLUMN IF NOT EXISTS a String, ADD INDEX IF NOT EXISTS a_idx a TYPE bloom_filter(0.01) GRANULARITY 4, DROP COLUMN IF EXISTS b",
				"ALTER TABLE calls ON CLUSTER gf ADD COLUMN IF NOT EXISTS a String,\n    DROP COLUMN IF EXISTS b",
			}},
		{"drop table", "DROP TABLE IF EXISTS calls_1m",
			[]string{"DROP TABLE IF EXISTS calls_1m ON CLUSTER gf", "DROP TABLE IF EXISTS calls_1m_local ON CLUSTER gf"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.Rewrite([]string{tc.in}, tables)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func TestClusterRewriteRefuses(t *testing.T) {
	tables := map[string]bool{"calls": true}
	for _, in := range []string{
		"CREATE TABLE IF NOT EXISTS q (x Int8) ENGINE = Null",
		"CREATE MATERIALIZED VIEW v TO calls AS SELECT * FROM other",
		"ALTER TABLE other ADD COLUMN x Int8",
		"INSERT INTO calls SELECT 1",
		"CREATE TABLE t (x Int8) ENGINE = MergeTree ORDER BY tuple()",
	} {
		if _, err := (Cluster{Name: "gf"}).Rewrite([]string{in}, tables); !errors.Is(err, ErrClusterRewrite) {
			t.Errorf("%q: got %v, want ErrClusterRewrite", in, err)
		}
	}
	if err := (Cluster{Name: "a-b"}).Validate(); err == nil {
		t.Error("cluster name with a dash accepted")
	}
}
