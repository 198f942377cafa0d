#!/usr/bin/env bash
# PostgreSQL under writes: the share of in-place (HOT) updates and the table's growth over DUR
# seconds (default 600) of writes spread over N prefilled sessions (scale/run.sh's C mode),
# from pg_stat_user_tables and pg_total_relation_size. Runs on DATABASE_URL's server (empties
# the store's table first: throwaway servers only).
#
#   env=$(bash .ci/services.sh start --bench) && eval "$env"
#   N=100000 DUR=600 benchmark/scale/hot.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${DATABASE_URL:?needs DATABASE_URL (.ci/services.sh start --bench)}"
N=${N:-100000} DUR=${DUR:-600} CONNS=${CONNS:-32} PORT=${PORT:-3000}
SERVER_CPU=${SERVER_CPU:-0} CLIENT_CPU=${CLIENT_CPU:-1} MODE=${MODE:-write}
URL=http://127.0.0.1:$PORT
LOG=$(mktemp)
SERVER_PID=
trap '[[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null; rm -f "$LOG"' EXIT

cargo build -q --release --features postgres --example bench_server
BIN=$(cargo metadata -q --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/examples/bench_server
sql() { psql -qtA "$DATABASE_URL" -c "$1"; }

sql "DROP TABLE IF EXISTS sessionware_sessions, sessionware_sessions_moved" 2>/dev/null
STORE=postgres PREFILL=$N PREFILL_ONLY=1 "$BIN" 2>>"$LOG"
sql "VACUUM ANALYZE sessionware_sessions"
STORE=postgres PORT=$PORT taskset -c "$SERVER_CPU" "$BIN" 2>>"$LOG" &
SERVER_PID=$!
until curl -s -o /dev/null "$URL/plain"; do sleep 0.2; done
counters() {
  sql "SELECT n_tup_upd, n_tup_hot_upd, autovacuum_count FROM pg_stat_user_tables
       WHERE relname = 'sessionware_sessions'"
}
IFS='|' read -r upd0 hot0 av0 <<<"$(counters)"
size_before=$(sql "SELECT pg_total_relation_size('sessionware_sessions')")
res=$(MODE=$MODE N=$N taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${DUR}s" -s benchmark/scale/mix.lua "$URL" |
  grep '^RESULT' | cut -f2-)
sleep 1
# The statistics collector reports with a delay of up to half a second.
sleep 1
IFS='|' read -r upd1 hot1 av1 <<<"$(counters)"
upd=$((upd1 - upd0)) hot=$((hot1 - hot0)) autovacuums=$((av1 - av0))
dead=$(sql "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'sessionware_sessions'")
size_after=$(sql "SELECT pg_total_relation_size('sessionware_sessions')")
awk -F'\t' -v upd="$upd" -v hot="$hot" -v dead="$dead" -v av="$autovacuums" -v b="$size_before" -v a="$size_after" -v n="$N" -v d="$DUR" -v mode="$MODE" '{
  printf "%s s of %s over %d sessions: %.0f req/s, p99 %.2f ms\n", d, mode, n, $1, $3 / 1000
  printf "updates %d, HOT %d (%.1f%%), dead tuples left %d, autovacuum runs %d\n", upd, hot, upd ? 100 * hot / upd : 0, dead, av
  printf "table + indexes: %.1f MiB before, %.1f MiB after (%.2fx)\n", b / 1048576, a / 1048576, a / b
}' <<<"$res"
