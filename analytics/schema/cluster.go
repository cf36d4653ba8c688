package schema

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Cluster says how the migrations lay the schema out on a ClickHouse
// cluster. The zero value is a single server: the migrations run exactly as
// written.
//
// On a cluster the migration files are not edited: each statement is
// rewritten when it is applied (see Rewrite), so that a migration added
// later needs no cluster variant as long as it uses the statement shapes
// Rewrite knows, and one that does not fails loudly in TestClusterRewrite.
// Every table T of the files becomes
//
//   - T_local: the data, on every node, with the Replicated variant of T's
//     engine (ReplacingMergeTree -> ReplicatedReplacingMergeTree, ...) and
//     the Keeper path /clickhouse/tables/{shard}/{database}/T_local with
//     replica '{replica}' (the servers' <macros>);
//   - T: a Distributed table over T_local on every shard, sharded by a hash
//     of T's sorting key, so that rows that replace or merge into each other
//     (one call record stored twice) meet on one shard. The sink inserts
//     into it and the queries read it under the names they always used.
//
// Materialized views are attached to the local tables on every node (a
// view fires on the node that takes an insert, and replication copies the
// parts it wrote, not the insert, so every row is aggregated once), and
// read and write T_local. FINAL on a Distributed table is applied by each
// shard to its local table, which is exact because duplicates share a
// shard. DDL carries ON CLUSTER Name.
type Cluster struct {
	// Name is the cluster in the servers' <remote_servers>; "" means a
	// single server.
	Name string
	// ShardsOnly keeps every engine as written (no Replicated engines,
	// no Keeper) and omits ON CLUSTER: for shards without replicas whose
	// migrations are run on each node, and for the tests on libchdb's
	// clickhouse-local, which can neither run distributed DDL nor activate
	// replicated tables.
	ShardsOnly bool
}

// LocalSuffix names the local table under a Distributed table on a
// cluster: calls is read and written through calls, stored in calls_local.
const LocalSuffix = "_local"

// ErrLayout means the database was laid out for a single server and is
// opened as a cluster, or the other way round.
var ErrLayout = errors.New("ClickHouse schema layout does not match --clickhouse-cluster")

// ErrClusterRewrite means a migration statement has a shape that Rewrite
// cannot lay out on a cluster; the statement (or Rewrite) must change.
var ErrClusterRewrite = errors.New("statement cannot be rewritten for a ClickHouse cluster")

var clusterNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate refuses names that would need quoting in DDL.
func (c Cluster) Validate() error {
	if c.Name != "" && !clusterNameRE.MatchString(c.Name) {
		return fmt.Errorf("ClickHouse cluster %q: want letters, digits and underscores, not starting with a digit", c.Name)
	}
	if c.Name == "" && c.ShardsOnly {
		return errors.New("ClickHouse cluster: ShardsOnly without a cluster name")
	}
	return nil
}

// Enabled reports whether c is a cluster (not a single server).
func (c Cluster) Enabled() bool { return c.Name != "" }

// Local is the name of the table that stores table's rows: table itself
// on a single server, table+LocalSuffix on a cluster.
func (c Cluster) Local(table string) string {
	if !c.Enabled() {
		return table
	}
	return table + LocalSuffix
}

// onCluster is the " ON CLUSTER name" clause, or "" when DDL runs on the
// connected node only.
func (c Cluster) onCluster() string {
	if !c.Enabled() || c.ShardsOnly {
		return ""
	}
	return " ON CLUSTER " + c.Name
}

var (
	createTableRE = regexp.MustCompile(`(?is)^CREATE\s+TABLE\s+(IF\s+NOT\s+EXISTS\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*(\(.*)$`)
	createMVRE    = regexp.MustCompile(`(?is)^CREATE\s+MATERIALIZED\s+VIEW\s+(IF\s+NOT\s+EXISTS\s+)?([A-Za-z_][A-Za-z0-9_]*)\s+TO\s+([A-Za-z_][A-Za-z0-9_]*)\s+AS\s+(.*)$`)
	alterTableRE  = regexp.MustCompile(`(?is)^ALTER\s+TABLE\s+([A-Za-z_][A-Za-z0-9_]*)\s+(.*)$`)
	dropRE        = regexp.MustCompile(`(?is)^DROP\s+(TABLE|VIEW)\s+(IF\s+EXISTS\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*$`)
	engineRE      = regexp.MustCompile(`(?is)\bENGINE\s*=\s*([A-Za-z]*MergeTree)\b`)
	orderByRE     = regexp.MustCompile(`(?is)\bORDER\s+BY\s+`)
	// fromJoinRE finds the tables a view's SELECT reads.
	fromJoinRE = regexp.MustCompile(`(?i)\b(FROM|JOIN)(\s+)([A-Za-z_][A-Za-z0-9_]*)\b`)
	// columnCmdRE says which ALTER commands change columns: those apply to
	// the Distributed table too, which must show the same columns.
	columnCmdRE = regexp.MustCompile(`(?is)^(ADD|DROP|MODIFY|RENAME|COMMENT)\s+COLUMN\b`)
)

// Rewrite lays the statements of migrations out on the cluster c (see
// Cluster); on a single server it returns them unchanged. tables are the
// names of every table the migrations create (TablesCreated), so that
// views and ALTERs are pointed at the local tables.
func (c Cluster) Rewrite(stmts []string, tables map[string]bool) ([]string, error) {
	if !c.Enabled() {
		return stmts, nil
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var out []string
	for i, s := range stmts {
		r, err := c.rewrite(s, tables)
		if err != nil {
			return nil, fmt.Errorf("statement %d: %w", i+1, err)
		}
		out = append(out, r...)
	}
	return out, nil
}

// TablesCreated returns the names of the tables that the statements create
// (materialized views are not tables).
func TablesCreated(stmts []string) map[string]bool {
	out := map[string]bool{}
	for _, s := range stmts {
		if m := createTableRE.FindStringSubmatch(strings.TrimSpace(s)); m != nil {
			out[m[2]] = true
		}
	}
	return out
}

func (c Cluster) rewrite(stmt string, tables map[string]bool) ([]string, error) {
	stmt = strings.TrimSpace(stmt)
	if m := createTableRE.FindStringSubmatch(stmt); m != nil {
		return c.createTable(m[1], m[2], m[3])
	}
	if m := createMVRE.FindStringSubmatch(stmt); m != nil {
		return c.createView(m[1], m[2], m[3], m[4], tables)
	}
	if m := alterTableRE.FindStringSubmatch(stmt); m != nil {
		return c.alterTable(m[1], m[2], tables)
	}
	if m := dropRE.FindStringSubmatch(stmt); m != nil {
		what, ifExists, name := strings.ToUpper(m[1]), m[2], m[3]
		if what == "VIEW" || !tables[name] {
			return []string{"DROP " + what + " " + ifExists + name + c.onCluster()}, nil
		}
		// The Distributed table first: nothing reads the local one then.
		return []string{
			"DROP TABLE " + ifExists + name + c.onCluster(),
			"DROP TABLE " + ifExists + c.Local(name) + c.onCluster(),
		}, nil
	}
	return nil, fmt.Errorf("%w: %.60q (known: CREATE TABLE ... ENGINE = *MergeTree, CREATE MATERIALIZED VIEW ... TO ..., ALTER TABLE, DROP TABLE|VIEW)",
		ErrClusterRewrite, stmt)
}

// createTable makes the local table (replicated engine) and the
// Distributed table over it.
func (c Cluster) createTable(ifNotExists, name, body string) ([]string, error) {
	local := c.Local(name)
	em := engineRE.FindStringSubmatchIndex(body)
	if em == nil {
		return nil, fmt.Errorf("%w: table %s: only *MergeTree engines are laid out on a cluster", ErrClusterRewrite, name)
	}
	engine := body[em[2]:em[3]]
	rest := body[em[1]:]
	var args string
	if strings.HasPrefix(rest, "(") {
		inner, ok := parenthesized(rest)
		if !ok {
			return nil, fmt.Errorf("%w: table %s: unbalanced engine arguments", ErrClusterRewrite, name)
		}
		args = strings.TrimSpace(inner[1 : len(inner)-1])
		rest = rest[len(inner):]
	}
	newEngine := engine
	if args != "" {
		newEngine += "(" + args + ")"
	}
	if !c.ShardsOnly {
		if strings.HasPrefix(engine, "Replicated") {
			return nil, fmt.Errorf("%w: table %s is already replicated", ErrClusterRewrite, name)
		}
		zk := "'/clickhouse/tables/{shard}/{database}/" + local + "', '{replica}'"
		if args != "" {
			zk += ", " + args
		}
		newEngine = "Replicated" + engine + "(" + zk + ")"
	}
	key, err := shardingKey(name, rest)
	if err != nil {
		return nil, err
	}
	localStmt := "CREATE TABLE " + ifNotExists + local + c.onCluster() + "\n" + body[:em[0]] + "ENGINE = " + newEngine + rest
	distStmt := "CREATE TABLE " + ifNotExists + name + c.onCluster() + " AS " + local +
		"\nENGINE = Distributed(" + c.Name + ", currentDatabase(), " + local + ", " + key + ")"
	return []string{localStmt, distStmt}, nil
}

// shardingKey hashes the sorting key, which is what ReplacingMergeTree
// collapses and AggregatingMergeTree merges on: rows that must meet do.
func shardingKey(table, afterEngine string) (string, error) {
	loc := orderByRE.FindStringIndex(afterEngine)
	if loc == nil {
		return "", fmt.Errorf("%w: table %s has no ORDER BY to shard by", ErrClusterRewrite, table)
	}
	rest := afterEngine[loc[1]:]
	if strings.HasPrefix(strings.ToLower(rest), "tuple()") {
		return "", fmt.Errorf("%w: table %s: ORDER BY tuple() has nothing to shard by", ErrClusterRewrite, table)
	}
	if strings.HasPrefix(rest, "(") {
		key, ok := parenthesized(rest)
		if !ok {
			return "", fmt.Errorf("%w: table %s: unbalanced ORDER BY", ErrClusterRewrite, table)
		}
		inner := strings.TrimSpace(key[1 : len(key)-1])
		if inner == "" {
			return "", fmt.Errorf("%w: table %s: ORDER BY tuple() has nothing to shard by", ErrClusterRewrite, table)
		}
		return "cityHash64(" + inner + ")", nil
	}
	end := strings.IndexFunc(rest, func(r rune) bool { return r == ' ' || r == '\n' || r == '\t' || r == '\r' })
	if end < 0 {
		end = len(rest)
	}
	return "cityHash64(" + rest[:end] + ")", nil
}

// parenthesized returns the prefix of s (which starts with "(") up to its
// matching ")", skipping parentheses inside single-quoted strings.
func parenthesized(s string) (string, bool) {
	end := -1
	scanUnquoted(s, func(i, depth int) bool {
		if s[i] == ')' && depth == 0 {
			end = i
			return false
		}
		return true
	})
	if end < 0 {
		return "", false
	}
	return s[:end+1], true
}

// scanUnquoted calls visit with the index of each character of s outside
// single-quoted strings (backslash escapes honoured) and the nesting depth
// of parentheses and brackets after it, until visit returns false. It is
// the one scanner of the rewrite's small SQL parsing.
func scanUnquoted(s string, visit func(i, depth int) bool) {
	depth, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case quoted:
			if ch == '\\' {
				i++
			} else if ch == '\'' {
				quoted = false
			}
			continue
		case ch == '\'':
			quoted = true
			continue
		case ch == '(' || ch == '[':
			depth++
		case ch == ')' || ch == ']':
			depth--
		}
		if !visit(i, depth) {
			return
		}
	}
}

// createView attaches the view to the local tables: it reads the local
// table it is triggered by and writes the local target table.
func (c Cluster) createView(ifNotExists, name, to, query string, tables map[string]bool) ([]string, error) {
	if !tables[to] {
		return nil, fmt.Errorf("%w: view %s writes %s, which no migration creates", ErrClusterRewrite, name, to)
	}
	// A FROM before a name no migration creates is left alone: it is
	// EXTRACT(DAY FROM ts) or the like, not a table.
	known := 0
	query = fromJoinRE.ReplaceAllStringFunc(query, func(m string) string {
		sub := fromJoinRE.FindStringSubmatch(m)
		if !tables[sub[3]] {
			return m
		}
		known++
		return sub[1] + sub[2] + c.Local(sub[3])
	})
	if known == 0 {
		return nil, fmt.Errorf("%w: view %s reads no table that the migrations create", ErrClusterRewrite, name)
	}
	return []string{"CREATE MATERIALIZED VIEW " + ifNotExists + name + c.onCluster() + " TO " + c.Local(to) + " AS " + query}, nil
}

// alterTable applies the ALTER to the local table, and its column commands
// to the Distributed table too.
func (c Cluster) alterTable(name, commands string, tables map[string]bool) ([]string, error) {
	if !tables[name] {
		return nil, fmt.Errorf("%w: ALTER TABLE %s, which no migration creates", ErrClusterRewrite, name)
	}
	out := []string{"ALTER TABLE " + c.Local(name) + c.onCluster() + " " + commands}
	var colCmds []string
	for _, cmd := range splitTopLevel(commands) {
		if columnCmdRE.MatchString(cmd) {
			colCmds = append(colCmds, cmd)
		}
	}
	if len(colCmds) > 0 {
		out = append(out, "ALTER TABLE "+name+c.onCluster()+" "+strings.Join(colCmds, ",\n    "))
	}
	return out, nil
}

// splitTopLevel cuts an ALTER's command list at commas outside parentheses
// and quotes.
func splitTopLevel(s string) []string {
	var out []string
	start := 0
	scanUnquoted(s, func(i, depth int) bool {
		if s[i] == ',' && depth == 0 {
			out = append(out, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
		return true
	})
	if rest := strings.TrimSpace(s[start:]); rest != "" {
		out = append(out, rest)
	}
	return out
}

// checkLayout refuses a database whose raw table is not what c expects: a
// Distributed table on a cluster, a MergeTree on a single server. Turning
// --clickhouse-cluster on for an existing single-server database (or off
// for a cluster) would otherwise find every migration applied and insert
// into the wrong kind of table.
func checkLayout(ctx context.Context, conn driver.Conn, c Cluster) error {
	var engine string
	if err := conn.QueryRow(ctx, `SELECT engine FROM system.tables WHERE database = currentDatabase() AND name = ?`,
		TableCalls).Scan(&engine); err != nil {
		return fmt.Errorf("read %s engine: %w", TableCalls, err)
	}
	if (engine == "Distributed") != c.Enabled() {
		want := "a single server"
		if c.Enabled() {
			want = "cluster " + c.Name
		}
		return fmt.Errorf("%w: table %s is %s but the schema is opened for %s; moving a database between the two layouts is a data migration, not a flag",
			ErrLayout, TableCalls, engine, want)
	}
	return nil
}
