//go:build integration

package proxyapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/analytics/producer"
	"github.com/gateflow/gateflow/analytics/query"
	"github.com/gateflow/gateflow/analytics/sink"
	"github.com/gateflow/gateflow/deploy/embedded"
	"github.com/gateflow/gateflow/deploy/embedded/embeddedtest"
)

func TestMain(m *testing.M) { embeddedtest.Main(m) }

// Records of proxied calls go through the real producer, a Kafka-protocol
// broker and the sink into ClickHouse, with the gateway's fields, and
// analytics group them by API, consumer and upstream instance.
func TestProxyRecordsInClickHouse(t *testing.T) {
	const topic, dlq = "gateflow.calls", "gateflow.calls.dlq"
	dsn, _ := embeddedtest.StartClickHouse(t)
	brokers := embeddedtest.StartKafka(t, embedded.Topic{Name: topic, Partitions: 2}, embedded.Topic{Name: dlq, Partitions: 2})
	log := slog.New(slog.DiscardHandler)
	prod, err := producer.New(producer.Config{Brokers: []string{brokers}, Topic: topic, SpoolDir: t.TempDir(), BatchTimeout: 10 * time.Millisecond}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close(context.Background())
	chAddr := strings.SplitN(strings.TrimPrefix(dsn, "clickhouse://"), "/", 2)[0]
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{chAddr}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sk, err := sink.New(sink.Config{Brokers: []string{brokers}, Topic: topic, DLQTopic: dlq, GroupID: "proxytest",
		BatchRows: 1000, BatchInterval: 200 * time.Millisecond, RetryMin: 100 * time.Millisecond, RetryMax: time.Second}, conn, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sinkDone := make(chan error, 1)
	go func() { sinkDone <- sk.Run(ctx) }()
	defer func() { cancel(); <-sinkDone }()

	s, stop, err := newStack(prod)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	a, b := startUpstream(t, "a"), startUpstream(t, "b")
	s.cfg.set(t, map[string]sysconfig.Service{"orders": {
		Instances:   []sysconfig.Instance{{BaseURL: a.url(), Zone: "z1"}, {BaseURL: b.url(), Zone: "z2"}},
		Cache:       sysconfig.Cache{Enabled: true},
		RetryBudget: sysconfig.RetryBudget{MaxRetries: intp(1)},
	}})
	start := time.Now().Add(-time.Minute)
	for i := range 10 {
		key := "submitter"
		if i%2 == 1 {
			key = "admin"
		}
		if resp, body := s.do(t, key, "GET", fmt.Sprintf("/gw/orders/id?n=%d", i), nil); resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	}
	s.do(t, "submitter", "GET", "/gw/orders/cache/x?cc=max-age=60", nil)
	s.do(t, "submitter", "GET", "/gw/orders/cache/x?cc=max-age=60", nil)
	s.do(t, "submitter", "GET", "/gw/orders/status?code=503", nil) // retried once on the other instance

	var rows uint64
	deadline := time.Now().Add(60 * time.Second)
	var lastErr error
	for rows < 13 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 13 proxy records in ClickHouse (last error: %v)", rows, lastErr)
		}
		time.Sleep(200 * time.Millisecond)
		// The table exists once the sink has migrated the schema.
		lastErr = conn.QueryRow(ctx, "SELECT count() FROM calls FINAL WHERE kind = 'proxy'").Scan(&rows)
	}
	var (
		tenant, api, consumer, consumerApp, upstream, method, route, cacheStatus, outcome string
		status, retries                                                                   int32
		latency, upLatency                                                                float64
	)
	if err := conn.QueryRow(ctx, `SELECT tenant, api, consumer, consumer_app, upstream, method, route, cache_status, toString(outcome), status_code, retries,
			latency_ms, upstream_latency_ms FROM calls FINAL WHERE kind = 'proxy' AND route = '/status?code=503'`).
		Scan(&tenant, &api, &consumer, &consumerApp, &upstream, &method, &route, &cacheStatus, &outcome, &status, &retries, &latency, &upLatency); err != nil {
		t.Fatal(err)
	}
	if tenant != "acme" || api != "orders" || consumer != "acme" || consumerApp == "" || (upstream != a.addr+"@z1" && upstream != b.addr+"@z2") ||
		method != "GET" || status != 503 || retries != 1 || outcome != "error" || cacheStatus != "miss" || latency <= 0 || upLatency <= 0 {
		t.Fatalf("record: tenant %s api %s consumer %s/%s upstream %s method %s route %s cache %s outcome %s status %d retries %d latency %g/%g",
			tenant, api, consumer, consumerApp, upstream, method, route, cacheStatus, outcome, status, retries, latency, upLatency)
	}
	var hits uint64
	if err := conn.QueryRow(ctx, "SELECT countIf(cache_status = 'hit') FROM calls FINAL WHERE kind = 'proxy'").Scan(&hits); err != nil || hits != 1 {
		t.Fatalf("%d cache hits recorded (%v)", hits, err)
	}

	// A raw insert is visible a moment before its materialized views'
	// rows: poll the rollups too.
	q := query.New(conn)
	f := query.Filter{Tenant: "acme", From: start, To: time.Now().Add(time.Minute)}
	for dim, wantGroups := range map[query.Dimension]int{query.ByAPI: 1, query.ByConsumer: 1, query.ByConsumerApp: 2, query.ByUpstream: 2} {
		// The cache hit went to no instance.
		want := uint64(13)
		if dim == query.ByUpstream {
			want = 12
		}
		var items []query.Item
		var total uint64
		for deadline := time.Now().Add(30 * time.Second); ; {
			items, err = q.Top(ctx, query.TopRequest{Filter: f, By: dim, Metric: query.ByCalls, Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			total = 0
			for _, it := range items {
				total += it.Calls
			}
			if total >= want || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if len(items) != wantGroups || total != want {
			t.Fatalf("top by %s: %d groups, %d calls: %+v", dim, len(items), total, items)
		}
	}
}
