#!/usr/bin/env bash
# Runs `gateflow ingress`, `worker` and `sink` as separate processes,
# configured only by the environment files of deploy/cluster/systemd (hosts
# rewritten to a `gateflow dev` started on other ports, whose Temporal,
# Kafka, ClickHouse and demo services stand in for the clusters), submits N
# orchestrations of the cluster config's reserve-and-charge definition (two
# HTTP steps each) through the API, and prints each process's CPU time and
# memory, then its stop time after SIGTERM.
#
#   go build -o bin/gateflow ./cmd/gateflow
#   deploy/cluster/bench/standalone.sh bin/gateflow [N=1000] [CONCURRENCY=16]
#
# Uses ports 27000-27999 and a temp dir; stops everything it started.
set -euo pipefail
bin=$(realpath "${1:?usage: standalone.sh path/to/gateflow [n] [concurrency]}")
n=${2:-1000}
conc=${3:-16}
repo=$(cd "$(dirname "$0")/../../.." && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done
	rm -rf "$work"
}
trap cleanup EXIT

"$bin" dev --data-dir "$work/dev" --temporal-port 27233 --temporal-ui-port 0 --kafka-port 27092 \
	--clickhouse-port 27900 --clickhouse-http-port 27123 --ingress-port 27080 --demo-port-base 27800 \
	>"$work/dev.out" 2>"$work/dev.err" &
pids+=($!)
for _ in $(seq 1 120); do grep -q "ready in" "$work/dev.out" 2>/dev/null && break; sleep 0.5; done
grep -q "ready in" "$work/dev.out" || { cat "$work/dev.err"; exit 1; }
curl -sf 'http://127.0.0.1:27123/' --data-binary 'CREATE DATABASE IF NOT EXISTS gfcluster' >/dev/null

# The cluster's config dir and env files, pointed at the stand-ins. The
# processes use their own task queue, consumer group and database, apart
# from the dev process's own worker and sink.
mkdir -p "$work/etc/keys"
cp -r "$repo/deploy/cluster/helm/gateflow/files/config" "$work/etc/config"
sed -i 's#http://inventory.shop.svc.cluster.local:8080#http://127.0.0.1:27802#; s#http://payments.shop.svc.cluster.local:8080#http://127.0.0.1:27803#' \
	"$work/etc/config/gateflow.yaml"
for f in gateflow ingress worker sink; do
	sed -e "s#^GATEFLOW_KAFKA_BROKERS=.*#GATEFLOW_KAFKA_BROKERS=127.0.0.1:27092#" \
		-e "s#^GATEFLOW_CLICKHOUSE_DSN=.*#GATEFLOW_CLICKHOUSE_DSN=clickhouse://127.0.0.1:27900/gfcluster?dial_timeout=5s#" \
		-e "s#^GATEFLOW_TEMPORAL_HOST=.*#GATEFLOW_TEMPORAL_HOST=127.0.0.1:27233#" \
		-e "s#^GATEFLOW_TEMPORAL_NAMESPACE=.*#GATEFLOW_TEMPORAL_NAMESPACE=default#" \
		-e "s#^GATEFLOW_TEMPORAL_TASK_QUEUE=.*#GATEFLOW_TEMPORAL_TASK_QUEUE=gateflow-cluster#" \
		-e "s#^GATEFLOW_CONFIG_DIR=.*#GATEFLOW_CONFIG_DIR=$work/etc/config#" \
		-e "s#^GATEFLOW_KEYS_FILE=.*#GATEFLOW_KEYS_FILE=$work/etc/keys/keys.yaml#" \
		-e "s#^GATEFLOW_LISTEN=.*#GATEFLOW_LISTEN=127.0.0.1:27180#" \
		-e "s#^GATEFLOW_METRICS_LISTEN=.*#GATEFLOW_METRICS_LISTEN=127.0.0.1:27464#" \
		-e "s#^GATEFLOW_SINK_GROUP=.*#GATEFLOW_SINK_GROUP=gateflow-sink-cluster#" \
		"$repo/deploy/cluster/systemd/$f.env" >"$work/etc/$f.env"
done
echo "PAYMENTS_TOKEN=demo" >>"$work/etc/worker.env"
key=$("$bin" keys create --keys-file "$work/etc/keys/keys.yaml" --tenant acme --roles submitter 2>/dev/null)

declare -A pid
for p in sink worker ingress; do
	(
		set -a
		. "$work/etc/gateflow.env"
		. "$work/etc/$p.env"
		GATEFLOW_SPOOL_DIR=$work/spool/$p # the unit's Environment=
		set +a
		exec "$bin" "$p" >"$work/$p.log" 2>&1
	) &
	pid[$p]=$!
	pids+=($!)
done
for _ in $(seq 1 60); do curl -sf 127.0.0.1:27180/readyz >/dev/null 2>&1 && break; sleep 0.5; done
curl -sf 127.0.0.1:27180/readyz >/dev/null || { tail -5 "$work"/*.log; exit 1; }
sleep 3

stats() { # name cpu_ms rss_mb anon_mb
	for p in ingress worker sink; do
		read -r -a s <"/proc/${pid[$p]}/stat"
		awk -v p="$p" -v t=$(((s[13] + s[14]) * 1000 / $(getconf CLK_TCK))) \
			'/^VmRSS/{r=$2} /^RssAnon/{a=$2} END{printf "%s %d %.0f %.0f\n", p, t, r/1024, a/1024}' "/proc/${pid[$p]}/status"
	done
}
stats >"$work/before"
echo "idle after start:"
awk '{printf "  %-8s RSS %4d MB (anonymous %3d MB)\n", $1, $3, $4}' "$work/before"

body='{"definition":"reserve-and-charge","input":{"order_id":"o-1","amount":12.5,"customer":"a@example.com","items":[{"sku":"sku-1","qty":1}]}}'
start=$(date +%s.%N)
seq 1 "$n" | xargs -P "$conc" -I{} curl -s -o /dev/null -w '%{http_code}\n' -X POST 127.0.0.1:27180/v1/workflows \
	-H "Authorization: Bearer $key" -H 'Content-Type: application/json' --data "$body" >"$work/codes"
submitted=$(date +%s.%N)
while :; do
	running=$(curl -s '127.0.0.1:27180/v1/workflows?status=running&limit=100' -H "Authorization: Bearer $key" |
		python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')
	[ "$running" = 0 ] && break
	sleep 1
done
done_at=$(date +%s.%N)
sleep 3 # the last records reach ClickHouse
stats >"$work/after"
echo "answers: $(sort "$work/codes" | uniq -c | tr -s ' \n' ' ')"
printf "submitted %d in %.1f s (%.1f/s), all closed after %.1f s\n" "$n" "$(echo "$submitted - $start" | bc)" \
	"$(echo "$n / ($submitted - $start)" | bc -l)" "$(echo "$done_at - $start" | bc)"
curl -s 'http://127.0.0.1:27123/?database=gfcluster' --data-binary \
	"SELECT 'records in ClickHouse: ' || toString(sum(c)) || ' (' || arrayStringConcat(groupArray(kind || ' ' || toString(c)), ', ') || ')' FROM (SELECT kind, count() AS c FROM calls GROUP BY kind) FORMAT TSVRaw" || true
echo "after $n orchestrations:"
join "$work/before" "$work/after" | awk -v n="$n" \
	'{printf "  %-8s CPU %6d ms (%.2f ms per orchestration)  RSS %4d MB (anonymous %3d MB)\n", $1, $5-$2, ($5-$2)/n, $6, $7}'
echo "stop after SIGTERM:"
for p in ingress worker sink; do
	s=$(date +%s.%N)
	kill -TERM "${pid[$p]}"
	while kill -0 "${pid[$p]}" 2>/dev/null; do sleep 0.02; done
	printf "  %-8s %.2f s\n" "$p" "$(echo "$(date +%s.%N) - $s" | bc)"
done
