#!/usr/bin/env bash
# No lost update on one key: two bench_server instances share one store and are driven
# together (16 connections each, 32 in all) on ONE session cookie for DUR seconds, half of
# them on `/incr` (`Session::update`, compare-and-set) against each instance. Then the counter
# must equal the number of 2xx answers to `/incr`. The same run on `/write` (read, then insert:
# the last write wins) shows how many increments a plain insert loses. Prints requests/s of
# both routes.
#
#   env=$(bash .ci/services.sh start) && eval "$env"   # for postgres and redis
#   STORE=sqlite benchmark/incr.sh       # sqlite | postgres | redis (shared by the two instances)
#
# Needs wrk and curl; server stores need their URL variables (see examples/bench_server.rs;
# for sqlite a file is used, $TMPDIR/sessionware-incr.db, so both instances share it).
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${STORE:-sqlite} DUR=${DUR:-5} CONNS=${CONNS:-16}
PORT_A=${PORT_A:-3101} PORT_B=${PORT_B:-3102}
features=${FEATURES:-$STORE}
# A server store needs its server: .ci/services.sh starts them and prints their URLs.
need_url() {
  [[ -n ${!1:-} ]] && return
  echo "STORE=$STORE needs $1: env=\$(bash .ci/services.sh start --bench) && eval \"\$env\"" >&2
  exit 1
}
case ${STORE:-memory} in redis) need_url REDIS_URL ;; postgres | caching) need_url DATABASE_URL ;; esac
cargo build -q --release --example bench_server --features "$features"
bin=${CARGO_TARGET_DIR:-target}/release/examples/bench_server
db=${TMPDIR:-/tmp}/sessionware-incr.db
[[ $STORE == sqlite ]] && rm -f "$db" "$db-wal" "$db-shm"
export SQLITE_URL=${SQLITE_URL:-sqlite://$db?mode=rwc}

pids=()
start() { # port
  SESSIONWARE_STORE=$STORE PORT=$1 "$bin" & pids+=($!)
  for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$1/plain" && return; sleep 0.05; done
  echo "bench_server on port $1 did not start" >&2; exit 1
}
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
start "$PORT_A"
start "$PORT_B"

# One wrk per instance, at the same time, on one cookie; prints "<2xx answers> <requests/s>".
drive() { # route cookie
  local out_a out_b
  out_a=$(mktemp) out_b=$(mktemp)
  wrk -t1 -c"$CONNS" -d"${DUR}s" --timeout 10s -H "Cookie: $2" "http://127.0.0.1:$PORT_A$1" >"$out_a" &
  local wa=$!
  wrk -t1 -c"$CONNS" -d"${DUR}s" --timeout 10s -H "Cookie: $2" "http://127.0.0.1:$PORT_B$1" >"$out_b" &
  wait "$wa" $!
  awk '
    /requests in/ { total += $1 }
    /Non-2xx/ { bad += $NF }
    /Requests\/sec/ { rate += $2 }
    /Socket errors/ { if ($0 ~ /timeout [1-9]/) print "wrk saw timeouts: " $0 > "/dev/stderr" }
    END { printf "%d %.0f\n", total - bad, rate }' "$out_a" "$out_b"
  rm -f "$out_a" "$out_b"
}
cookie_of() { # route
  curl -s -D - -o /dev/null "http://127.0.0.1:$PORT_A$1" | tr -d '\r' | sed -nE 's/^set-cookie: *([^;]+).*/\1/Ip'
}

# 1. Exact: N requests through curl, 32 at a time, alternating instances, each counted by its
#    status; the counter must equal the 2xx answers (wrk cuts requests in flight when it stops,
#    so it cannot count exactly).
N=${N:-2000}
cookie=$(cookie_of /incr)            # the session starts with hits = 1
codes=$(seq "$N" | xargs -P 32 -I{} sh -c '
  if [ $(({} % 2)) -eq 0 ]; then port='"$PORT_A"'; else port='"$PORT_B"'; fi
  curl -s -o /dev/null -w "%{http_code}\n" -H "Cookie: '"$cookie"'" "http://127.0.0.1:$port/incr"')
ok=$(grep -c '^2' <<<"$codes" || true)
final=$(( $(curl -s -H "Cookie: $cookie" "http://127.0.0.1:$PORT_B/incr") - 2 ))
echo "store=$STORE /incr, $N requests 32 at a time on one cookie: $ok answered 2xx ($(( N - ok )) not), counter $final"
[[ $final -eq $ok ]] || { echo "MISMATCH: /incr counted $final, $ok were acknowledged" >&2; exit 1; }

# 2. Throughput under contention: wrk on both instances, one cookie, 2 x CONNS connections.
cookie=$(cookie_of /incr)
read -r iok irate < <(drive /incr "$cookie")
wcookie=$(cookie_of /write)          # counter = 1
read -r wok wrate < <(drive /write "$wcookie")
wfinal=$(( $(curl -s -H "Cookie: $wcookie" "http://127.0.0.1:$PORT_B/read") - 1 ))
echo "store=$STORE contended (one cookie, $((2 * CONNS)) connections): /incr $irate requests/s; /write $wrate requests/s, $wok answered 2xx, counter $wfinal ($(( wok - wfinal )) increments lost)"

# 3. Without contention (one connection): what an update costs when nobody races it.
solo() { # route
  local c; c=$(cookie_of "$1")
  wrk -t1 -c1 -d"${DUR}s" -H "Cookie: $c" "http://127.0.0.1:$PORT_A$1" | awk '/Requests\/sec/ { printf "%.0f", $2 }'
}
echo "store=$STORE one connection: /incr $(solo /incr) requests/s, /write $(solo /write) requests/s"
