#!/usr/bin/env bash
# Side-by-side HTTP benchmark of axum session middlewares: bare axum, a hand-written floor,
# tower-sessions, axum_session and sessionware (the app `project`). See README.md.
set -euo pipefail
cd "$(dirname "$0")"
HERE=$PWD
# Build output and results stay under the repository's target/ (ignored by git).
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HERE/../target/benchmark}
RESULTS=${RESULTS:-$HERE/../target/benchmark-results}

read -ra APPS <<<"${APPS:-bare floor tower_sessions_app axum_session_app project}"
read -ra SCENARIOS <<<"${SCENARIOS:-A B C D}"
DUR=${DUR:-5} ROUNDS=${ROUNDS:-3} CONNS=${CONNS:-32} PORT=${PORT:-3000} WORKERS=${WORKERS:-1}
# The session apps' store (shown in the report); STORE, REDIS_URL and DATABASE_URL reach
# the servers through the environment, unset ones stay unset; SQLITE_URL, if unset, is a new
# file per app and run (see start_server).
STORE_SHOWN=${STORE:-memory}
SERVER_CPU=${SERVER_CPU:-0} CLIENT_CPU=${CLIENT_CPU:-1}
URL=http://127.0.0.1:$PORT

declare -A ROUTE=([A]=/plain [B]=/read [C]=/write [D]=/write)
declare -A WITH_COOKIE=([A]=0 [B]=1 [C]=1 [D]=0)
declare -A TITLE=([A]="A: /plain, no cookie" [B]="B: /read, cookie" [C]="C: /write, cookie"
                  [D]="D: /write, no cookie (churn)")

for tool in cargo curl taskset wrk; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done
# A server store needs its server: .ci/services.sh starts them and prints their URLs.
need_url() {
  [[ -n ${!1:-} ]] && return
  echo "STORE=$STORE needs $1: env=\$(bash .ci/services.sh start --bench) && eval \"\$env\"" >&2
  exit 1
}
case ${STORE:-memory} in redis) need_url REDIS_URL ;; postgres | caching) need_url DATABASE_URL ;; esac

TMP=$(mktemp -d)
SERVER_PID=
stop_server() {
  [[ -n $SERVER_PID ]] || return 0
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}
trap 'stop_server; rm -rf "$TMP"' EXIT

start_server() {  # app
  if curl -s -o /dev/null "$URL/"; then echo "port $PORT is already in use" >&2; exit 1; fi
  # Each app gets a SQLite file of its own, new for this run (kept across its rounds), unless
  # SQLITE_URL says otherwise: a file left by earlier runs would carry their rows and log.
  SQLITE_URL=${SQLITE_URL:-"sqlite://$TMP/$1.db?mode=rwc"} \
    WRAP_ROUTER=$(wrap_router "$1") PORT=$PORT WORKERS=$WORKERS taskset -c "$SERVER_CPU" "$(bin_path "$1")" &
  SERVER_PID=$!
  for _ in $(seq 200); do
    curl -s -o /dev/null "$URL/plain" && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "server $1 did not start" >&2
  exit 1
}

# GET path [cookie]: sets BODY and COOKIE ("a=1; b=2" from Set-Cookie, cleared cookies skipped).
req() {
  local args=(-s -D "$TMP/h" -o "$TMP/b")
  [[ -n ${2:-} ]] && args+=(-H "Cookie: $2")
  curl "${args[@]}" "$URL$1"
  BODY=$(<"$TMP/b")
  COOKIE=$(tr -d '\r' <"$TMP/h" | sed -nE 's/^set-cookie: *([^=;]+=[^;]+).*/\1/Ip' | paste -sd';' | sed 's/;/; /g')
}

# Functional check of an app's session behaviour; aborts the run if it is wrong.
verify() {  # app
  local app=$1 c1 c2 plain_cookie cycled=no old=-
  fail() { echo "  $app: FAILED: $*" >&2; exit 1; }
  expect() { [[ $BODY == "$1" ]] || fail "$2: expected '$1', got '$BODY'"; }
  start_server "$app"
  req /plain;        expect ok "/plain"; plain_cookie=${COOKIE:+yes}
  req /write;        expect 1 "/write without cookie"; c1=$COOKIE
  [[ -n $c1 ]] || fail "/write did not set a cookie"
  req /write "$c1";  expect 2 "second /write with cookie"
  req /read "$c1";   expect 2 "/read with cookie"
  req /write;        expect 1 "another /write without cookie"
  [[ -n $COOKIE && $COOKIE != "$c1" ]] || fail "cookieless /write did not create a new session"
  req /login "$c1";  expect ok "/login"; c2=${COOKIE:-$c1}
  req /read "$c2";   expect 2 "/read after /login"
  if [[ $c2 != "$c1" ]]; then cycled=yes; req /read "$c1"; old=$BODY; fi
  stop_server
  echo "  $app: ok (counter 1->2, /read 2, cookieless /write = new session;" \
       "login cycles id: $cycled, old id then reads: $old; /plain sets cookie: ${plain_cookie:-no})"
}

# wrk prints one tab-separated line: req/s, p50 us, p99 us, errors, completed requests.
cat >"$TMP/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT\t%.1f\t%d\t%d\t%d\t%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout, summary.requests))
end
EOF

# Raw line per run: scenario app round req/s p50_us p99_us errors requests peak_rss_kb counter
# (counter = the session's "counter" read back after the run, "-" without a cookie).
bench() {  # scenario app round
  local s=$1 app=$2 r=$3 cookie= hdr=() res rss counter=-
  start_server "$app"
  if (( WITH_COOKIE[$s] )); then
    req /write; cookie=$COOKIE
    [[ -n $cookie ]] && hdr=(-H "Cookie: $cookie")
  fi
  res=$(taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${DUR}s" -s "$TMP/report.lua" \
        "${hdr[@]}" "$URL${ROUTE[$s]}" | grep '^RESULT' | cut -f2-)
  rss=$(awk '/^VmHWM/ {print $2}' "/proc/$SERVER_PID/status")
  [[ -n $cookie ]] && { req /read "$cookie"; counter=$BODY; }
  stop_server
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$app" "$r" "$res" "$rss" "$counter" >>"$RAW"
  awk -F'\t' -v s="$s" -v r="$r" -v a="$app" -v rss="$rss" -v c="$counter" '{
    printf "  %s round %s %-20s %9.0f req/s  p99 %6.2f ms  peak RSS %6.1f MiB  errors %d  requests %d  counter %s\n",
           s, r, a, $1, $3 / 1000, rss / 1024, $4, $5, c }' <<<"$res"
}

# Column c of the raw lines for scenario s and app a.
col() { awk -F'\t' -v s="$1" -v a="$2" -v c="$3" '$1==s && $2==a {print $c}' "$RAW"; }
median() { sort -g | awk '{v[NR]=$1} END {if (NR) print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }

report() {
  echo "# Session middleware benchmark ($STAMP)"
  echo
  echo "STORE=$STORE_SHOWN; wrk -t1 -c$CONNS -d${DUR}s, $ROUNDS rounds (apps interleaved), server WORKERS=$WORKERS" \
       "on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)."
  echo "Medians over rounds; peak RSS = max VmHWM over rounds; vs bare = req/s ratio to \`bare\`."
  echo
  echo '| scenario | app | req/s | vs bare | p50 ms | p99 ms | peak RSS MiB | errors |'
  echo '|---|---|---:|---:|---:|---:|---:|---:|'
  local s app base rps ratio
  for s in "${SCENARIOS[@]}"; do
    base=$(col "$s" bare 4 | median)
    for app in "${APPS[@]}"; do
      rps=$(col "$s" "$app" 4 | median)
      ratio=n/a; [[ -n $base ]] && ratio=$(awk -v a="$rps" -v b="$base" 'BEGIN {printf "%.2f", a/b}')
      printf '| %s | %s | %.0f | %s | %.2f | %.2f | %.1f | %d |\n' "${TITLE[$s]}" "$app" "$rps" "$ratio" \
        "$(col "$s" "$app" 5 | median | awk '{print $1/1000}')" \
        "$(col "$s" "$app" 6 | median | awk '{print $1/1000}')" \
        "$(col "$s" "$app" 9 | sort -n | tail -1 | awk '{print $1/1024}')" \
        "$(col "$s" "$app" 7 | awk '{t+=$1} END {print t}')"
    done
  done
  echo
  echo "Crates (direct dependencies, from Cargo.lock):"
  echo
  cargo tree -q -e normal --depth 1 --prefix none | tail -n +2 | sed 's/^/- /'
}

STAMP=$(date -u +%Y-%m-%dT%H-%M-%SZ)
mkdir -p "$RESULTS"
RAW=$RESULTS/$STAMP.tsv

# The app `project` is sessionware's examples/bench_server, built in PROJECT_DIR (default: the
# repository this folder is in) with every store's feature (one build serves every STORE).
# `project_wrapped` is the same binary with the layer around the whole router (WRAP_ROUTER=1)
# instead of added with `Router::layer`.
PROJECT_DIR=${PROJECT_DIR:-$HERE/..}
PROJECT_FEATURES=${PROJECT_FEATURES:-sqlite postgres redis}
bin_path() {  # app
  if [[ $1 == project* ]]; then echo "$PROJECT_BIN"; else echo "$CARGO_TARGET_DIR/release/$1"; fi
}
wrap_router() {  # app
  if [[ $1 == project_wrapped ]]; then echo 1; else echo 0; fi
}

bins=(); for app in "${APPS[@]}"; do [[ $app == project* ]] || bins+=(--bin "$app"); done
echo "== build (release): ${APPS[*]}"
(( ${#bins[@]} )) && cargo build -q --locked --release "${bins[@]}"
if [[ " ${APPS[*]} " == *" project"[\ _]* ]]; then
  [[ -f $PROJECT_DIR/Cargo.toml ]] || { echo "PROJECT_DIR=$PROJECT_DIR has no Cargo.toml" >&2; exit 1; }
  (cd "$PROJECT_DIR" && cargo build -q --release --example bench_server ${PROJECT_FEATURES:+--features "$PROJECT_FEATURES"})
  PROJECT_BIN=$(cd "$PROJECT_DIR" && cargo metadata -q --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/examples/bench_server
  [[ -x $PROJECT_BIN ]] || { echo "no bench_server binary at $PROJECT_BIN" >&2; exit 1; }
fi

echo "== verify sessions (STORE=$STORE_SHOWN)"
for app in "${APPS[@]}"; do [[ $app == bare ]] || verify "$app"; done

echo "== benchmark: scenarios ${SCENARIOS[*]}, $ROUNDS rounds x ${DUR}s"
for s in "${SCENARIOS[@]}"; do
  echo "${TITLE[$s]}"
  for r in $(seq "$ROUNDS"); do
    for app in "${APPS[@]}"; do bench "$s" "$app" "$r"; done
  done
done

report >"$RESULTS/$STAMP.md"
cp "$RESULTS/$STAMP.md" "$RESULTS/latest.md"
echo
cat "$RESULTS/latest.md"
echo
echo "total time: $((SECONDS / 60))m $((SECONDS % 60))s (raw: $RAW, table: $RESULTS/latest.md)"
