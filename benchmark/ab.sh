#!/usr/bin/env bash
# A/B of bench_server builds on one scenario of the side-by-side benchmark (see the README's
# Performance section): each binary in turn per round (interleaved, so drift hits all alike),
# server and wrk pinned to their own CPUs. Prints every run, then the median req/s and p99 per
# binary. Services for the server stores: `env=$(bash .ci/services.sh start --bench) && eval "$env"`
# (without `--bench`: the tests' servers, a Redis that syncs every write and a PostgreSQL that
# never syncs).
#
#   cargo build --release --example bench_server --features postgres
#   cp target/release/examples/bench_server /tmp/before     # ... change, rebuild ...
#   STORE=postgres benchmark/ab.sh D /tmp/before target/release/examples/bench_server
#
# Scenarios: A /plain, B /read with a cookie, C /write with a cookie, D /write without one.
# Environment: ROUNDS (5), DUR (5 s), CONNS (32), PORT (3200), SERVER_CPU (0), CLIENT_CPU (1),
# and what bench_server reads (STORE, SQLITE_URL, DATABASE_URL, REDIS_URL). With STORE=sqlite
# and no SQLITE_URL, each binary gets its own fresh database file. Needs wrk, curl, taskset.
set -euo pipefail
scenario=${1:?usage: ab.sh <A|B|C|D> <bench_server binary>...}
shift
(($#)) || { echo "usage: ab.sh <A|B|C|D> <bench_server binary>..." >&2; exit 2; }
ROUNDS=${ROUNDS:-5} DUR=${DUR:-5} CONNS=${CONNS:-32} PORT=${PORT:-3200}
SERVER_CPU=${SERVER_CPU:-0} CLIENT_CPU=${CLIENT_CPU:-1}
case $scenario in
  A) route=/plain cookie=0 ;;
  B) route=/read cookie=1 ;;
  C) route=/write cookie=1 ;;
  D) route=/write cookie=0 ;;
  *) echo "scenario must be A, B, C or D" >&2; exit 2 ;;
esac
# A server store needs its server: .ci/services.sh starts them and prints their URLs.
need_url() {
  [[ -n ${!1:-} ]] && return
  echo "STORE=$STORE needs $1: env=\$(bash .ci/services.sh start --bench) && eval \"\$env\"" >&2
  exit 1
}
case ${STORE:-memory} in redis) need_url REDIS_URL ;; postgres | caching) need_url DATABASE_URL ;; esac
url=http://127.0.0.1:$PORT
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for round in $(seq "$ROUNDS"); do
  for i in $(seq $#); do
    bin=${!i}
    env=()
    if [[ ${STORE:-memory} == sqlite && -z ${SQLITE_URL:-} ]]; then
      env=(SQLITE_URL="sqlite://$work/$i.db?mode=rwc")
    fi
    env "${env[@]}" PORT=$PORT taskset -c "$SERVER_CPU" "$bin" & pid=$!
    for _ in $(seq 100); do curl -s -o /dev/null "$url/plain" && break; sleep 0.05; done
    header=()
    if ((cookie)); then
      value=$(curl -s -D - -o /dev/null "$url/write" | tr -d '\r' |
        sed -nE 's/^set-cookie: *([^;]+).*/\1/Ip')
      header=(-H "Cookie: $value")
    fi
    out=$(taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "${header[@]}" "$url$route")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    errors=$(grep -E "Socket errors|Non-2xx" <<<"$out" | tr -s ' \n' ' ' || true)
    echo "$scenario round $round binary $i ($bin): $rps req/s, p99 $p99 ${errors}"
    echo "$i $rps $p99" >>"$work/runs"
  done
done

echo "medians over $ROUNDS rounds:"
for i in $(seq $#); do
  python3 - "$work/runs" "$i" "${!i}" <<'EOF'
import statistics, sys
runs, want, name = sys.argv[1], sys.argv[2], sys.argv[3]
def ms(text):
    value = float(text.rstrip("msu"))
    return value * 1000 if text.endswith("s") and not text.endswith(("ms", "us")) else (
        value / 1000 if text.endswith("us") else value)
rows = [line.split() for line in open(runs) if line.split()[0] == want]
rps = statistics.median(float(r[1]) for r in rows)
p99 = statistics.median(ms(r[2]) for r in rows)
print(f"  binary {want} ({name}): {rps:,.0f} req/s, p99 {p99:.2f} ms")
EOF
done
