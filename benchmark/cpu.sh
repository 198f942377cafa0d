#!/usr/bin/env bash
# CPU time of the app process per request (perf's task-clock), for the apps in APPS on the
# scenarios in SCENARIOS (default B, C and D; A is /plain), under the same wrk load as run.sh. Requests/s on a 2-core machine that
# also runs wrk and the database measure the scheduler as much as the app; CPU per request is
# what the app itself costs. Run benchmark/run.sh once first (it builds the binaries).
#
#   env=$(bash .ci/services.sh start --bench) && eval "$env"   # for STORE=redis | postgres
#   STORE=redis benchmark/cpu.sh          # APPS="floor project" by default
#   APPS="/tmp/old_bench_server /tmp/new_bench_server" benchmark/cpu.sh   # two builds
set -euo pipefail
cd "$(dirname "$0")"
HERE=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HERE/../target/benchmark}
read -ra APPS <<<"${APPS:-floor project}"
read -ra SCENARIOS <<<"${SCENARIOS:-B C D}"
STORE=${STORE:-memory} DUR=${DUR:-4} CONNS=${CONNS:-32} PORT=${PORT:-3000}
SERVER_CPU=${SERVER_CPU:-0} CLIENT_CPU=${CLIENT_CPU:-1}
URL=http://127.0.0.1:$PORT
for tool in curl perf taskset wrk; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done
# A server store needs its server: .ci/services.sh starts them and prints their URLs.
need_url() {
  [[ -n ${!1:-} ]] && return
  echo "STORE=$STORE needs $1: env=\$(bash .ci/services.sh start --bench) && eval \"\$env\"" >&2
  exit 1
}
case ${STORE:-memory} in redis) need_url REDIS_URL ;; postgres | caching) need_url DATABASE_URL ;; esac

bin_path() {  # app (or the path of a server binary: to compare builds, say)
  if [[ $1 == */* ]]; then
    echo "$1"
  elif [[ $1 == project || $1 == project_wrapped ]]; then
    echo "$CARGO_TARGET_DIR/release/examples/bench_server"
  else
    echo "$CARGO_TARGET_DIR/release/$1"
  fi
}

TMP=$(mktemp -d)
trap 'kill "${PID:-}" 2>/dev/null || true; rm -rf "$TMP"' EXIT

# app route cookie(0|1) -> "requests cpu_ms"
measure() {
  local app=$1 route=$2 with_cookie=$3 cookie=
  [[ -x $(bin_path "$app") ]] || { echo "no $(bin_path "$app"): run benchmark/run.sh first" >&2; exit 1; }
  local wrap=0; [[ $app == project_wrapped ]] && wrap=1   # the layer around the whole router
  WRAP_ROUTER=$wrap STORE=$STORE PORT=$PORT WORKERS=1 SQLITE_URL="sqlite://$TMP/${app//\//_}.db?mode=rwc" \
    taskset -c "$SERVER_CPU" "$(bin_path "$app")" >"$TMP/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 100); do curl -s -o /dev/null "$URL/plain" && break; sleep 0.05; done
  if ((with_cookie)); then
    cookie=$(curl -s -D - -o /dev/null "$URL/write" | tr -d '\r' |
      sed -nE 's/^set-cookie: *([^;]+).*/\1/Ip' | head -1)
  fi
  local args=(-t1 -c"$CONNS")
  [[ -n $cookie ]] && args+=(-H "Cookie: $cookie")
  taskset -c "$CLIENT_CPU" wrk "${args[@]}" -d1s "$URL$route" >/dev/null # warm up
  perf stat -e task-clock -x, -p "$PID" -o "$TMP/stat" -- sleep "$DUR" &
  local stat=$!
  local requests
  requests=$(taskset -c "$CLIENT_CPU" wrk "${args[@]}" -d"${DUR}s" "$URL$route" |
    sed -nE 's/^ *([0-9]+) requests in.*/\1/p')
  wait "$stat"
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
  echo "$requests $(grep task-clock "$TMP/stat" | cut -d, -f1)"
}

ROUNDS=${ROUNDS:-3}
echo "STORE=$STORE, wrk -t1 -c$CONNS -d${DUR}s, server WORKERS=1 on CPU $SERVER_CPU, $ROUNDS rounds (apps interleaved); median µs of app CPU per request"
for round in $(seq "$ROUNDS"); do
  for name in "${SCENARIOS[@]}"; do
    case $name in
      A) route=/plain cookie=0 ;; B) route=/read cookie=1 ;;
      C) route=/write cookie=1 ;; D) route=/write cookie=0 ;;
      *) echo "unknown scenario $name (A, B, C or D)" >&2; exit 1 ;;
    esac
    for app in "${APPS[@]}"; do
      read -r requests cpu_ms <<<"$(measure "$app" "$route" "$cookie")"
      echo "$name $app $requests $cpu_ms" >>"$TMP/results"
    done
  done
done
python3 - "$TMP/results" "${SCENARIOS[*]}" "${APPS[@]}" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
scenarios = sys.argv[2].split()
apps = sys.argv[3:]
print("| scenario | " + " | ".join(apps) + " |" + (" ÷ " + apps[0] + " |" if len(apps) == 2 else ""))
print("|---|" + "---:|" * (len(apps) + (len(apps) == 2)))
routes = {"A": "/plain", "B": "/read", "C": "/write", "D": "/write, new session"}
for name in scenarios:
    route = routes[name]
    medians = [statistics.median(float(ms) * 1000 / int(n) for s, a, n, ms in rows if s == name and a == app) for app in apps]
    ratio = f" {medians[1] / medians[0]:.2f} |" if len(apps) == 2 else ""
    print(f"| {name} {route} | " + " | ".join(f"{m:.1f}" for m in medians) + " |" + ratio)
PY
