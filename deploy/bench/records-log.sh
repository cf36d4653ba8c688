#!/usr/bin/env bash
# What the durable record log costs (issue 15; docs/BENCHMARKS.md, "What
# the durable record log costs"): the gateway's /gw route with its records
# written to the local log before the answer (the default) vs queued in
# memory first (--records-durable=false), in the same alternating rounds
# (loadcmp), each process's own CPU time per request. With BASE_BIN set, the
# same pair of a second binary (e.g. main's, built elsewhere) joins the same
# rounds, so a change is priced before and after under the same load.
#
#   deploy/bench/records-log.sh [seconds per run (5)] [rounds (4)] [connections (1 64)]
#
# Needs wrk and loadcmp (LOADCMP, default /work/shared/tools/loadcmp); the
# processes listen on 127.0.0.1:27281-27287 and 27292 (gateway.sh uses
# 2718x and 27192, so both can be run one after the other without clashes).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-5}
rounds=${2:-4}
conns=("${@:3}")
[ ${#conns[@]} -gt 0 ] || conns=(1 64)
loadcmp=${LOADCMP:-/work/shared/tools/loadcmp}
bin=${GATEFLOW_BIN:-bin/gateflow}
[ -n "${GATEFLOW_BIN:-}" ] || go build -o "$bin" ./cmd/gateflow
base=${BASE_BIN:-}

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT
"$bin" ingress bench-proxy --role upstream --listen 127.0.0.1:27281 --listen2 127.0.0.1:27283 --kafka 127.0.0.1:27292 & pids+=($!)
sleep 1
ups=http://127.0.0.1:27281,http://127.0.0.1:27283
targets=()
gateway() { # name binary port flags...
  local name=$1 b=$2 port=$3
  shift 3
  "$b" ingress bench-proxy --role gateway --listen "127.0.0.1:$port" --kafka 127.0.0.1:27292 --upstream "$ups" "$@" & pids+=($!)
  targets+=("$name=http://127.0.0.1:$port/gw/bench/items/42@$!")
}
gateway durable "$bin" 27284
gateway memory "$bin" 27285 --records-durable=false
if [ -n "$base" ]; then
  gateway base-durable "$base" 27286
  gateway base-memory "$base" 27287 --records-durable=false
fi
sleep 1
for pid in "${pids[@]}"; do
  kill -0 "$pid" 2>/dev/null || { echo "a benchmark process exited (port 27281-27287 or 27292 in use?)" >&2; exit 1; }
done
key=gf_b3c400000001_benchsecretbenchsecretbenchsecret0
for t in "${targets[@]}"; do
  url=${t#*=}
  url=${url%@*}
  for _ in $(seq 50); do
    curl -fsS -o /dev/null -H "Authorization: Bearer $key" "$url" && break
    sleep 0.2
  done
done
for c in "${conns[@]}"; do
  echo "== $c connections"
  "$loadcmp" -c "$c" -d "$secs" -r "$rounds" -H "Authorization: Bearer $key" "${targets[@]}"
done
