#!/usr/bin/env bash
# Measures `gateflow dev`: time to ready (new and existing data dir), RSS of
# the dev process and of the ClickHouse child after 5 s idle, and stop time
# after SIGTERM. Usage: deploy/embedded/bench/devbench.sh [path/to/gateflow] [runs]
set -euo pipefail
BIN=${1:-./bin/gateflow}
RUNS=${2:-3}
BASE=27233
ARGS=(--temporal-port $BASE --temporal-ui-port 28233 --kafka-port 29092
      --clickhouse-port 29000 --clickhouse-http-port 28123 --ingress-port 28080)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

rss() { awk '/VmRSS/ {print int($2/1024)}' "/proc/$1/status"; }

one() { # $1 = data dir, $2 = label
	local out="$WORK/out" err="$WORK/err" start pid child ready stop
	start=$(date +%s%N)
	"$BIN" dev --data-dir "$1" "${ARGS[@]}" >"$out" 2>"$err" &
	pid=$!
	until grep -q '^Press Ctrl-C' "$out" 2>/dev/null; do
		kill -0 "$pid" 2>/dev/null || { cat "$err"; exit 1; }
		sleep 0.05
	done
	ready=$(grep -o 'ready in [0-9.]*s' "$out" | head -1)
	sleep 5
	child=$(pgrep -P "$pid" | head -1 || true)
	local rss_dev rss_ch=-
	rss_dev=$(rss "$pid")
	[ -n "$child" ] && rss_ch=$(rss "$child")
	start=$(date +%s%N)
	kill -TERM "$pid"
	wait "$pid" || true
	stop=$(( ($(date +%s%N) - start) / 1000000 ))
	[ -n "$child" ] && [ -d "/proc/$child" ] && echo "ORPHAN child $child" >&2
	printf '%-9s %-16s parts: %-60s rss dev %4s MB, clickhouse %4s MB, stop %5d ms\n' \
		"$2" "$ready" "$(grep -o '[A-Za-z]* *ready in [0-9.]*s' "$err" | tr -s ' ' | paste -sd, -)" "$rss_dev" "$rss_ch" "$stop"
}

for i in $(seq "$RUNS"); do
	d="$WORK/data$i"
	one "$d" new
	one "$d" existing
done
