#!/usr/bin/env bash
# Gateway benchmark (docs/BENCHMARKS.md, "Gateway data plane"): the same
# local upstream called (a) directly, (b) through a bare
# net/http/httputil.ReverseProxy with a tuned transport, (c) through
# Gateflow's /gw route with its whole chain (API key, owner access, key,
# tenant and per-API rate limits, round robin over two instances, proxy call
# records through the real producer to a Kafka-protocol broker, JSON access
# log), at 1 and 64 connections, in alternating rounds (loadcmp), each
# process's own CPU time per request; then cache hits against the same
# route uncached.
#
#   deploy/bench/gateway.sh [seconds per run (8)] [rounds (3)]
#
# Needs wrk (apt-get install -y wrk) and loadcmp (LOADCMP, default
# /work/shared/tools/loadcmp). The processes are `gateflow ingress
# bench-proxy --role upstream|bare|gateway` on 127.0.0.1:27181-27185 (two
# gateways: records durable before the answer, the default, and queued in
# memory).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-8}
rounds=${2:-3}
loadcmp=${LOADCMP:-/work/shared/tools/loadcmp}
bin=${GATEFLOW_BIN:-bin/gateflow}
[ -n "${GATEFLOW_BIN:-}" ] || go build -o "$bin" ./cmd/gateflow

"$bin" ingress bench-proxy --role upstream --listen 127.0.0.1:27181 --listen2 127.0.0.1:27183 --kafka 127.0.0.1:27192 & up=$!
"$bin" ingress bench-proxy --role bare --listen 127.0.0.1:27182 --upstream http://127.0.0.1:27181 & bare=$!
sleep 1
"$bin" ingress bench-proxy --role gateway --listen 127.0.0.1:27184 --kafka 127.0.0.1:27192 \
  --upstream http://127.0.0.1:27181,http://127.0.0.1:27183 & gw=$!
# The same gateway with its records queued in memory first: what the
# durable record log (written before each answer, issue 15) costs.
"$bin" ingress bench-proxy --role gateway --listen 127.0.0.1:27185 --kafka 127.0.0.1:27192 --records-durable=false \
  --upstream http://127.0.0.1:27181,http://127.0.0.1:27183 & gwmem=$!
trap 'kill $up $bare $gw $gwmem 2>/dev/null; wait 2>/dev/null' EXIT
sleep 1
for pid in $up $bare $gw $gwmem; do
  kill -0 "$pid" 2>/dev/null || { echo "a benchmark process exited (port 27181-27185 or 27192 in use?)" >&2; exit 1; }
done
key=gf_b3c400000001_benchsecretbenchsecretbenchsecret0
for _ in $(seq 50); do
  curl -fsS -o /dev/null -H "Authorization: Bearer $key" http://127.0.0.1:27184/gw/bench/x && break
  sleep 0.2
done
curl -fsS -H "Authorization: Bearer $key" http://127.0.0.1:27184/gw/bench/items/42 >/dev/null

for c in 64 1; do
  echo "== $c connections"
  "$loadcmp" -c "$c" -d "$secs" -r "$rounds" -H "Authorization: Bearer $key" \
    "bare=http://127.0.0.1:27182/items/42@$bare" \
    "direct=http://127.0.0.1:27181/items/42" \
    "gateflow=http://127.0.0.1:27184/gw/bench/items/42@$gw" \
    "gateflow-memory-records=http://127.0.0.1:27185/gw/bench/items/42@$gwmem"
done
echo "== cache: hits vs the same API uncached, 64 connections"
"$loadcmp" -c 64 -d "$secs" -r "$rounds" -H "Authorization: Bearer $key" \
  "uncached=http://127.0.0.1:27184/gw/bench/items/42@$gw" \
  "hits=http://127.0.0.1:27184/gw/benchcache/cached/42@$gw"
