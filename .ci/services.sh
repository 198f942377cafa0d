#!/usr/bin/env bash
# Throwaway PostgreSQL + Redis + Redis Cluster on 127.0.0.1, for CI, the integration tests and
# the benchmarks (benchmark/README.md): the one services script of the repository.
#
#   bash .ci/services.sh start           # the tests' servers; prints `export ...` lines on stdout
#   bash .ci/services.sh start --bench   # the benchmarks' servers (below)
#   bash .ci/services.sh stop            # stops everything and wipes SERVICES_DIR
#
# Installs postgresql and redis-server (apt) if missing. Environment, all optional:
#   SERVICES_DIR   where everything lives (default /tmp/sessionware-services)
#   PG_PORT, REDIS_PORT, CLUSTER_PORTS   default 55432, 56379, "57001 57002 57003";
#                  CLUSTER_PORTS= (empty) starts no Redis Cluster
#   REDIS_DURABLE  1 (default): the standalone Redis appends every write to its log and syncs it
#                  (`appendonly yes`, `appendfsync always`), as tests/outage.rs needs;
#                  0: fast, nothing on disk (`appendonly no`, no snapshots)
#   PG_DURABLE     0 (default): fast, PostgreSQL never syncs (`fsync`, `synchronous_commit` and
#                  `full_page_writes` off), which the tests' many small transactions like;
#                  1: PostgreSQL's default durable commits
#   PG_OPTS        extra PostgreSQL server options, e.g. PG_OPTS='-c work_mem=64MB'
# `--bench` changes the defaults to REDIS_DURABLE=0 PG_DURABLE=1 CLUSTER_PORTS= : servers set
# up as a deployment would run them rather than for the tests (benchmark/RESULTS.md says which
# each run used); a variable set in the environment still wins. Either way PostgreSQL has
# pg_stat_statements loaded, and its database and user are `sessionware` (password
# `sessionware`): use the printed DATABASE_URL and REDIS_URL.
#
# For outage tests (tests/outage.rs), once started; the export lines set
# SERVICES_DIR and SESSIONWARE_SERVICES, so these act on the same instances:
#
#   bash "$SESSIONWARE_SERVICES" stop-postgres    # pg_ctl -m fast stop; data kept
#   bash "$SESSIONWARE_SERVICES" start-postgres
#   bash "$SESSIONWARE_SERVICES" stop-redis       # SHUTDOWN of the standalone Redis; AOF kept
#   bash "$SESSIONWARE_SERVICES" start-redis
#
# Those four are idempotent (stopping a stopped server or starting a running
# one does nothing) and return once the server is down, or up and answering.
# The standalone Redis persists every write (`appendonly yes`, `appendfsync
# always`), so it keeps its sessions across a stop/start; the cluster nodes
# persist nothing. With REDIS_DURABLE=0 (or --bench) a stop/start empties it.
#
# Call it as `env=$(bash .ci/services.sh start); eval "$env"` rather than
# `eval "$(bash .ci/services.sh start)"`: the latter swallows a failed start,
# because eval of an empty string succeeds.
set -euo pipefail

# Before the cd below: the export lines give tests this script's absolute path.
SELF=$(realpath "${BASH_SOURCE[0]}")
# Absolute, because we cd / below (the postgres user may not be able to
# read the caller's cwd, which makes initdb/psql complain).
DIR=$(realpath -m "${SERVICES_DIR:-/tmp/sessionware-services}")
cd /
TIMEOUT=30

log() { echo "services.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

COMMAND=${1:-}
shift $(($# > 0))
for arg; do
  case $arg in
    --bench)
      [[ $COMMAND == start ]] || die "--bench goes with start"
      : "${REDIS_DURABLE:=0}" "${PG_DURABLE:=1}" "${CLUSTER_PORTS=}" ;;
    *) die "unknown option '$arg'" ;;
  esac
done
PG_PORT=${PG_PORT:-55432}
REDIS_PORT=${REDIS_PORT:-56379}
# `-`, not `:-`: an empty CLUSTER_PORTS means no cluster.
read -r -a CLUSTER_PORTS <<<"${CLUSTER_PORTS-57001 57002 57003}"
REDIS_DURABLE=${REDIS_DURABLE:-1}
PG_DURABLE=${PG_DURABLE:-0}
[[ $REDIS_DURABLE == [01] ]] || die "REDIS_DURABLE must be 0 or 1, not '$REDIS_DURABLE'"
[[ $PG_DURABLE == [01] ]] || die "PG_DURABLE must be 0 or 1, not '$PG_DURABLE'"

# Poll until "$@" succeeds; on timeout show the service's log, which is where
# the real reason (port in use, bad config...) ends up.
wait_for() {
  local what=$1 logfile=$2 i; shift 2
  for ((i = 0; i < TIMEOUT * 5; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  log "$what did not come up within ${TIMEOUT}s; last lines of $logfile:"
  tail -n 30 "$logfile" 2>/dev/null || true
  die "$what failed to start"
}

redis_ours() { redis-cli -p "$1" config get dir 2>/dev/null | grep -qxF "$2"; }
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

install_packages() {
  [[ -n $(pg_bin) ]] && command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return 0
  log "installing postgresql and redis-server"
  # Stop the packages from starting their system-wide instances on
  # 5432/6379 on hosts with an init system: we only want our own.
  local policy=/usr/sbin/policy-rc.d added=
  [[ -e $policy ]] || { printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; added=1; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql redis-server
  [[ -z $added ]] || rm -f "$policy"
}

stop_all() {
  [[ -d $DIR ]] || return 0
  [[ $DIR != / && -n $DIR ]] || die "refusing to wipe SERVICES_DIR='$DIR'"
  local bin; bin=$(pg_bin)
  if [[ -f $DIR/pg/data/postmaster.pid && -n $bin ]]; then
    log "stopping postgres"
    runuser -u postgres -- "$bin/pg_ctl" -D "$DIR/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  # Ports come from the directory names, so stop works even if the caller's
  # *_PORT variables differ from the ones used at start. Only shut down a
  # server that is ours: after a failed start the port may belong to
  # another SERVICES_DIR's instance.
  local d port i
  for d in "$DIR"/redis-*/; do
    [[ -d $d ]] || continue
    d=${d%/}; port=${d##*-}
    redis_ours "$port" "$d" || continue
    log "stopping redis on $port"
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    # Wait for exit so the port is free for an immediate restart.
    for ((i = 0; i < 50; i++)); do redis-cli -p "$port" ping >/dev/null 2>&1 && sleep 0.1 || break; done
  done
  rm -rf "$DIR"
}

start_postgres() {
  local bin pg=$DIR/pg; bin=$(pg_bin)
  mkdir -p "$pg/data" "$pg/sock"; chown -R postgres: "$pg"; chmod 700 "$pg"
  # root cannot run postgres, and SERVICES_DIR must be reachable by it.
  runuser -u postgres -- test -w "$pg" || die "user postgres cannot write to $pg (check parent dir permissions)"
  log "initdb ($bin)"
  runuser -u postgres -- "$bin/initdb" -D "$pg/data" -U postgres -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 --no-sync >/dev/null
  local preload=pg_stat_statements
  [[ -f $bin/../lib/pg_stat_statements.so ]] \
    || { preload=; log "WARNING: pg_stat_statements not available; round-trip counting tests will not work"; }
  cat >>"$pg/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$pg/sock'
shared_preload_libraries = '$preload'
max_connections = 200
EOF
  if ((PG_DURABLE)); then
    log "postgres: default durable commits (PG_DURABLE=1)"
  else
    # Durability is pointless for a throwaway cluster; turning it off makes
    # the test suite's many small transactions much cheaper.
    printf '%s\n' "fsync = off" "synchronous_commit = off" "full_page_writes = off" >>"$pg/data/postgresql.conf"
  fi
  # Kept for start-postgres, which starts the same server again.
  printf '%s' "${PG_OPTS:-}" >"$pg/options"
  runuser -u postgres -- "$bin/pg_ctl" -D "$pg/data" -l "$pg/postgres.log" -t "$TIMEOUT" -o "${PG_OPTS:-}" -w start >/dev/null \
    || { tail -n 30 "$pg/postgres.log"; die "postgres failed to start"; }
  wait_for postgres "$pg/postgres.log" "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"
  local psql=(runuser -u postgres -- "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$pg/sock" -p "$PG_PORT" -U postgres)
  "${psql[@]}" -d postgres -c "CREATE ROLE sessionware LOGIN PASSWORD 'sessionware'" \
    -c "CREATE DATABASE sessionware OWNER sessionware"
  if [[ -n $preload ]]; then
    # Reset is superuser-only by default; tests need it to count round trips.
    "${psql[@]}" -d sessionware -c "CREATE EXTENSION pg_stat_statements" \
      -c "GRANT EXECUTE ON FUNCTION pg_stat_statements_reset TO sessionware" \
      -c "GRANT pg_read_all_stats TO sessionware"
  fi
}

# $1 = port, rest = extra config lines (a later line overrides an earlier one)
start_redis() {
  local port=$1 d=$DIR/redis-$1; shift
  mkdir -p "$d"
  printf '%s\n' "port $port" "bind 127.0.0.1" "daemonize yes" "dir $d" "pidfile $d/redis.pid" \
    "logfile $d/redis.log" 'save ""' "appendonly no" "$@" >"$d/redis.conf"
  launch_redis "$port"
}

# Starts the redis-server of the config start_redis wrote, and waits until it
# has loaded its data (PING answers PONG, not LOADING).
launch_redis() {
  local port=$1 d=$DIR/redis-$1
  # Otherwise the readiness check below would happily talk to the old one.
  ! redis-cli -p "$port" ping >/dev/null 2>&1 || die "port $port is already used by another redis-server"
  redis-server "$d/redis.conf" || die "redis-server on $port refused its config"
  wait_for "redis:$port" "$d/redis.log" redis_ready "$port" "$d"
}

redis_ready() { [[ $(redis-cli -p "$1" ping 2>/dev/null) == PONG ]] && redis_ours "$1" "$2"; }

# The standalone server's port: that of the redis-* directory whose config is
# not a cluster node's (from the directory, like stop_all, not REDIS_PORT).
standalone_redis_port() {
  local d
  for d in "$DIR"/redis-*/; do
    d=${d%/}
    [[ -f $d/redis.conf ]] && ! grep -qx 'cluster-enabled yes' "$d/redis.conf" || continue
    echo "${d##*-}"; return 0
  done
  die "no standalone redis in $DIR: run '$SELF start' first (with the same SERVICES_DIR)"
}

stop_redis() {
  local port i; port=$(standalone_redis_port)
  redis_ours "$port" "$DIR/redis-$port" || { log "redis on $port is not running"; return 0; }
  if grep -qx 'appendonly yes' "$DIR/redis-$port/redis.conf"; then
    log "stopping redis on $port (its data stays in the AOF)"
  else
    log "stopping redis on $port (no persistence: its data goes)"
  fi
  # With appendonly on, SHUTDOWN flushes and fsyncs the AOF before exiting.
  redis-cli -p "$port" shutdown >/dev/null 2>&1 || true
  for ((i = 0; i < TIMEOUT * 10; i++)); do
    redis-cli -p "$port" ping >/dev/null 2>&1 || return 0
    sleep 0.1
  done
  die "redis on $port did not stop within ${TIMEOUT}s"
}

start_redis_again() {
  local port; port=$(standalone_redis_port)
  if redis_ready "$port" "$DIR/redis-$port"; then log "redis on $port is already running"; return 0; fi
  log "starting redis on $port"
  launch_redis "$port"
}

pg_data() {
  [[ -f $DIR/pg/data/PG_VERSION ]] || die "no postgres in $DIR: run '$SELF start' first (with the same SERVICES_DIR)"
  echo "$DIR/pg/data"
}

pg_running() { runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$1" status >/dev/null 2>&1; }

stop_postgres() {
  local data; data=$(pg_data)
  pg_running "$data" || { log "postgres is not running"; return 0; }
  log "stopping postgres (fast: clients disconnected, data kept)"
  # A fast shutdown ends with a checkpoint, so every committed transaction
  # survives (even with fsync and synchronous_commit off).
  runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$data" -m fast -t "$TIMEOUT" -w stop >/dev/null \
    || die "postgres did not stop within ${TIMEOUT}s"
}

start_postgres_again() {
  local data port; data=$(pg_data)
  if pg_running "$data"; then
    log "postgres is already running"
  else
    log "starting postgres"
    runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$data" -l "$DIR/pg/postgres.log" -t "$TIMEOUT" \
      -o "$(cat "$DIR/pg/options" 2>/dev/null)" -w start >/dev/null \
      || { tail -n 30 "$DIR/pg/postgres.log"; die "postgres failed to start"; }
  fi
  port=$(sed -n 's/^port = //p' "$data/postgresql.conf" | tail -n 1)
  wait_for postgres "$DIR/pg/postgres.log" "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$port"
}

cluster_ok() {
  local p
  for p in "${CLUSTER_PORTS[@]}"; do
    redis-cli -p "$p" cluster info | grep -q '^cluster_state:ok' || return 1
  done
}

start_all() {
  install_packages
  stop_all
  mkdir -p "$DIR"
  start_postgres
  if ((REDIS_DURABLE)); then
    # The only persistent Redis: tests/outage.rs stops and restarts it and
    # expects every session back. `always` costs little at test volumes.
    start_redis "$REDIS_PORT" "appendonly yes" "appendfsync always"
  else
    log "redis on $REDIS_PORT: no persistence (REDIS_DURABLE=0)"
    start_redis "$REDIS_PORT"
  fi
  if ((${#CLUSTER_PORTS[@]} == 0)); then
    log "no redis cluster (CLUSTER_PORTS is empty)"
    log "all services up in $DIR"
    return 0
  fi
  local p nodes=()
  for p in "${CLUSTER_PORTS[@]}"; do
    # The cluster bus defaults to port+10000, which overflows for ports
    # above 55535 (e.g. the default 5700x): Redis then refuses to start.
    start_redis "$p" "cluster-enabled yes" "cluster-config-file $DIR/redis-$p/nodes.conf" \
      "cluster-node-timeout 5000" "cluster-port $((p > 55535 ? p - 10000 : p + 10000))"
    nodes+=("127.0.0.1:$p")
  done
  log "creating redis cluster"
  local out; out=$(redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes 2>&1) \
    || { echo "$out"; die "redis-cli --cluster create failed"; }
  wait_for "redis cluster" "$DIR/redis-${CLUSTER_PORTS[0]}/redis.log" cluster_ok
  log "all services up in $DIR"
}

print_exports() {
  local p urls=()
  for p in "${CLUSTER_PORTS[@]}"; do urls+=("redis://127.0.0.1:$p"); done
  local IFS=,
  echo "export DATABASE_URL=postgres://sessionware:sessionware@127.0.0.1:$PG_PORT/sessionware"
  echo "export REDIS_URL=redis://127.0.0.1:$REDIS_PORT"
  if ((${#urls[@]})); then echo "export REDIS_CLUSTER_URLS=${urls[*]}"; else echo "unset REDIS_CLUSTER_URLS"; fi
  echo "export SESSIONWARE_SERVICES=$SELF"
  echo "export SERVICES_DIR=$DIR"
}

# stdout carries only the export lines, so the caller can eval it; all the
# chatter (apt, initdb, redis-cli) goes to stderr. The redirection is per
# call rather than `exec 3>&1 1>&2`, because the daemons would inherit a
# copy of the caller's stdout pipe and `$(... start)` would never return.
case $COMMAND in
  start) start_all >&2; print_exports ;;
  stop) stop_all >&2 ;;
  stop-postgres) stop_postgres >&2 ;;
  start-postgres) start_postgres_again >&2 ;;
  stop-redis) stop_redis >&2 ;;
  start-redis) start_redis_again >&2 ;;
  *) die "usage: $0 start [--bench]|stop|stop-postgres|start-postgres|stop-redis|start-redis" ;;
esac
