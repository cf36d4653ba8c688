// Package schema holds the ClickHouse schema of the call records as
// versioned SQL migrations (migrations/NNNN_name.sql, embedded) and applies
// them. Every statement is idempotent (IF NOT EXISTS), each applied version
// is recorded in the schema_migrations table with the SHA-256 of its file,
// and several sinks starting at once may all run Migrate. An applied
// migration whose file changed afterwards is refused (ErrChanged): edit the
// schema with a new migration, never by rewriting an applied one.
package schema

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Table names, for code that queries them.
const (
	TableCalls        = "calls"
	TableKafkaOffsets = "calls_kafka_offsets"
	TableSinkBatches  = "calls_sink_batches"
	TableCalls1m      = "calls_1m"
	TableCalls1h      = "calls_1h"
	TableCalls1d      = "calls_1d"
	TableApprovals1m  = "approvals_1m"
	TableApprovals1h  = "approvals_1h"
	TableApprovals1d  = "approvals_1d"
	TableModelCache1m = "model_cache_1m"
	TableModelCache1h = "model_cache_1h"
	TableModelCache1d = "model_cache_1d"
	TableTriggers1m   = "triggers_1m"
	TableTriggers1h   = "triggers_1h"
	TableTriggers1d   = "triggers_1d"
	TableAPICalls1m   = "api_calls_1m"
	TableAPICalls1h   = "api_calls_1h"
	TableAPICalls1d   = "api_calls_1d"
	TableProxy1m      = "proxy_1m"
	TableProxy1h      = "proxy_1h"
	TableProxy1d      = "proxy_1d"
	TableMigrations   = "schema_migrations"
)

// Tables lists every table the migrations create, raw table first.
var Tables = []string{TableCalls, TableKafkaOffsets, TableSinkBatches, TableCalls1m, TableCalls1h, TableCalls1d,
	TableApprovals1m, TableApprovals1h, TableApprovals1d, TableModelCache1m, TableModelCache1h, TableModelCache1d,
	TableTriggers1m, TableTriggers1h, TableTriggers1d, TableAPICalls1m, TableAPICalls1h, TableAPICalls1d,
	TableProxy1m, TableProxy1h, TableProxy1d}

// ErrChanged means an applied migration's file differs from what was
// applied: the database was made by another schema (e.g. a pre-release
// build) and this build cannot safely use it.
var ErrChanged = errors.New("applied schema migration changed")

// DefaultTTLDays is how long raw call records are kept.
const DefaultTTLDays = 90

// Migration is one versioned SQL file.
type Migration struct {
	Version    int
	Name       string
	Statements []string
	// Checksum is the hex SHA-256 of the file.
	Checksum string
}

// Migrations returns the embedded migrations in version order.
func Migrations() ([]Migration, error) {
	ents, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []Migration
	for _, e := range ents {
		name := e.Name()
		num, rest, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(name, ".sql") {
			return nil, fmt.Errorf("migration %s: want NNNN_name.sql", name)
		}
		b, err := migrationFS.ReadFile(path.Join("migrations", name))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		sum := sha256.Sum256(b)
		out = append(out, Migration{Version: v, Name: strings.TrimSuffix(rest, ".sql"),
			Statements: SplitStatements(string(b)), Checksum: hex.EncodeToString(sum[:])})
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("two migrations with version %d", out[i].Version)
		}
	}
	return out, nil
}

// SplitStatements cuts a SQL file into statements at semicolons that end a
// line, dropping "--" comment lines. Migration files keep semicolons out of
// string literals and line ends.
func SplitStatements(sql string) []string {
	var out []string
	var cur strings.Builder
	for line := range strings.SplitSeq(sql, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		if strings.HasSuffix(trimmed, ";") {
			cur.WriteString(strings.TrimSuffix(trimmed, ";"))
			if s := strings.TrimSpace(cur.String()); s != "" {
				out = append(out, s)
			}
			cur.Reset()
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

// Options tune Migrate.
type Options struct {
	// TTLDays is how long raw records are kept; 0 means DefaultTTLDays,
	// a negative value keeps them forever.
	TTLDays int
	// Cluster lays the schema out on a ClickHouse cluster (replicated
	// local tables, Distributed tables under the usual names); the zero
	// value is a single server, where the files run exactly as written.
	Cluster Cluster
}

// Migrate applies the migrations not yet recorded, in order, then makes the
// raw table's TTL match opts.TTLDays. It refuses (ErrChanged) to run on a
// database where an applied migration differs from this build's file.
func Migrate(ctx context.Context, conn driver.Conn, opts Options) error {
	migs, err := Migrations()
	if err != nil {
		return err
	}
	if err := opts.Cluster.Validate(); err != nil {
		return err
	}
	var all []string
	for _, m := range migs {
		all = append(all, m.Statements...)
	}
	tables := TablesCreated(all)
	// The applied versions are recorded on the connected node only (a
	// plain table, also on a cluster): another node's first Migrate runs
	// the migrations again, which is harmless because every statement is
	// idempotent (see docs/ANALYTICS.md, "ClickHouse cluster").
	if err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+TableMigrations+` (
    version    UInt32,
    name       String,
    checksum   String DEFAULT '',
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree ORDER BY version`); err != nil {
		return fmt.Errorf("create %s: %w", TableMigrations, err)
	}
	// Tables made before checksums were recorded lack the column; their
	// rows then read '' and fail the check below.
	if err := conn.Exec(ctx, `ALTER TABLE `+TableMigrations+` ADD COLUMN IF NOT EXISTS checksum String DEFAULT '' AFTER name`); err != nil {
		return fmt.Errorf("upgrade %s: %w", TableMigrations, err)
	}
	applied, err := AppliedMigrations(ctx, conn)
	if err != nil {
		return err
	}
	if err := checkApplied(migs, applied); err != nil {
		return err
	}
	for _, m := range migs {
		if _, ok := applied[m.Version]; ok {
			continue
		}
		stmts, err := opts.Cluster.Rewrite(m.Statements, tables)
		if err != nil {
			return fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
		}
		for i, stmt := range stmts {
			if err := conn.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("migration %04d_%s statement %d: %w", m.Version, m.Name, i+1, err)
			}
		}
		if err := conn.Exec(ctx, `INSERT INTO `+TableMigrations+` (version, name, checksum) VALUES (?, ?, ?)`,
			uint32(m.Version), m.Name, m.Checksum); err != nil {
			return fmt.Errorf("record migration %04d: %w", m.Version, err)
		}
	}
	if err := checkLayout(ctx, conn, opts.Cluster); err != nil {
		return err
	}
	return SetClusterTTL(ctx, conn, opts.TTLDays, opts.Cluster)
}

// checkApplied compares the recorded migrations with the files. Versions
// beyond the files' (applied by a newer build) are accepted: migrations only
// add.
func checkApplied(migs []Migration, applied map[int]Applied) error {
	for _, m := range migs {
		a, ok := applied[m.Version]
		if !ok {
			continue
		}
		if a.Name != m.Name || a.Checksum != m.Checksum {
			return fmt.Errorf("%w: migration %04d was applied as %q (checksum %.12s) but this build has %04d_%s (checksum %.12s); "+
				"the database was created by another (pre-release) schema: drop its tables (for gateflow dev, delete the data dir's clickhouse directory) and start again",
				ErrChanged, m.Version, a.Name, a.Checksum, m.Version, m.Name, m.Checksum)
		}
	}
	return nil
}

// TablesExist reports an error naming the tables of Tables that the
// connected database lacks: before the first sink has applied the
// migrations, the analytics routes and the model budgets (which read the
// rollups) cannot answer, so a process that reads them is not ready. It
// checks the tables rather than the recorded versions because on a
// cluster the versions are recorded on the node that migrated only.
func TablesExist(ctx context.Context, conn driver.Conn) error {
	rows, err := conn.Query(ctx, `SELECT name FROM system.tables WHERE database = currentDatabase() AND name IN ?`, Tables)
	if err != nil {
		return fmt.Errorf("list the analytics tables: %w", err)
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return fmt.Errorf("list the analytics tables: %w", err)
		}
		have[n] = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list the analytics tables: %w", err)
	}
	var missing []string
	for _, t := range Tables {
		if !have[t] {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%d of %d analytics tables missing (%s); a sink applies the migrations when it starts",
			len(missing), len(Tables), strings.Join(missing, ", "))
	}
	return nil
}

// Applied is a recorded migration.
type Applied struct {
	Name     string
	Checksum string
}

// AppliedMigrations returns the recorded migrations by version.
func AppliedMigrations(ctx context.Context, conn driver.Conn) (map[int]Applied, error) {
	rows, err := conn.Query(ctx, `SELECT version, any(name), any(checksum) FROM `+TableMigrations+` GROUP BY version ORDER BY version`)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", TableMigrations, err)
	}
	defer rows.Close()
	out := map[int]Applied{}
	for rows.Next() {
		var v uint32
		var a Applied
		if err := rows.Scan(&v, &a.Name, &a.Checksum); err != nil {
			return nil, fmt.Errorf("read %s: %w", TableMigrations, err)
		}
		out[int(v)] = a
	}
	return out, rows.Err()
}

var ttlDaysRE = regexp.MustCompile(`TTL toDateTime\(ts\) \+ toIntervalDay\((\d+)\)`)

// TTLDays reads the raw table's current TTL in days (-1: none).
func TTLDays(ctx context.Context, conn driver.Conn) (int, error) {
	return ClusterTTLDays(ctx, conn, Cluster{})
}

// ClusterTTLDays is TTLDays on the cluster c, where the TTL is on the local
// raw table (read on the connected node).
func ClusterTTLDays(ctx context.Context, conn driver.Conn, c Cluster) (int, error) {
	var create string
	if err := conn.QueryRow(ctx, `SELECT create_table_query FROM system.tables WHERE database = currentDatabase() AND name = ?`,
		c.Local(TableCalls)).Scan(&create); err != nil {
		return 0, fmt.Errorf("read %s definition: %w", c.Local(TableCalls), err)
	}
	m := ttlDaysRE.FindStringSubmatch(create)
	if m == nil {
		return -1, nil
	}
	return strconv.Atoi(m[1])
}

// SetTTL changes the raw table's TTL when it differs from days (0: the
// default, negative: none). ClickHouse applies a changed TTL to existing
// parts in the background (a mutation).
func SetTTL(ctx context.Context, conn driver.Conn, days int) error {
	return SetClusterTTL(ctx, conn, days, Cluster{})
}

// SetClusterTTL is SetTTL on the cluster c: the local raw tables of every
// node change (ON CLUSTER).
func SetClusterTTL(ctx context.Context, conn driver.Conn, days int, c Cluster) error {
	if days == 0 {
		days = DefaultTTLDays
	}
	if days < 0 {
		days = -1
	}
	cur, err := ClusterTTLDays(ctx, conn, c)
	if err != nil {
		return err
	}
	if cur == days {
		return nil
	}
	table := c.Local(TableCalls) + c.onCluster()
	stmt := `ALTER TABLE ` + table + ` REMOVE TTL`
	if days > 0 {
		// days is an int: formatting it is not an injection risk, and DDL
		// takes no query parameters here.
		stmt = `ALTER TABLE ` + table + ` MODIFY TTL toDateTime(ts) + toIntervalDay(` + strconv.Itoa(days) + `)`
	}
	if err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("set raw TTL to %d days: %w", days, err)
	}
	return nil
}
