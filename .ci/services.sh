#!/usr/bin/env bash
# Throwaway PostgreSQL + Redis + Redis Cluster for the integration tests.
#
#   bash .ci/services.sh start   # prints `export ...` lines on stdout
#   bash .ci/services.sh stop
#
# Call it as `env=$(bash .ci/services.sh start); eval "$env"` rather than
# `eval "$(bash .ci/services.sh start)"`: the latter swallows a failed start,
# because eval of an empty string succeeds.
set -euo pipefail

# Absolute, because we cd / below (the postgres user may not be able to
# read the caller's cwd, which makes initdb/psql complain).
DIR=$(realpath -m "${SERVICES_DIR:-/tmp/sessionware-services}")
cd /
PG_PORT=${PG_PORT:-55432}
REDIS_PORT=${REDIS_PORT:-56379}
read -r -a CLUSTER_PORTS <<<"${CLUSTER_PORTS:-57001 57002 57003}"
TIMEOUT=30

# Keep stdout for the export lines only; everything else (apt, initdb,
# redis-cli chatter) goes to stderr so the caller can eval stdout.
exec 3>&1 1>&2

log() { echo "services.sh: $*"; }
die() { log "ERROR: $*"; exit 1; }

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
  # Durability is pointless for a throwaway cluster; turning it off makes
  # the test suite's many small transactions much cheaper.
  cat >>"$pg/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$pg/sock'
shared_preload_libraries = '$preload'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
  runuser -u postgres -- "$bin/pg_ctl" -D "$pg/data" -l "$pg/postgres.log" -t "$TIMEOUT" -w start >/dev/null \
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

# $1 = port, rest = extra config lines
start_redis() {
  local port=$1 d=$DIR/redis-$1; shift
  mkdir -p "$d"
  printf '%s\n' "port $port" "bind 127.0.0.1" "daemonize yes" "dir $d" "pidfile $d/redis.pid" \
    "logfile $d/redis.log" 'save ""' "appendonly no" "$@" >"$d/redis.conf"
  # Otherwise the readiness check below would happily talk to the old one.
  ! redis-cli -p "$port" ping >/dev/null 2>&1 || die "port $port is already used by another redis-server"
  redis-server "$d/redis.conf" || die "redis-server on $port refused its config"
  wait_for "redis:$port" "$d/redis.log" redis_ours "$port" "$d"
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
  start_redis "$REDIS_PORT"
  local p nodes=() urls=()
  for p in "${CLUSTER_PORTS[@]}"; do
    # The cluster bus defaults to port+10000, which overflows for ports
    # above 55535 (e.g. the default 5700x): Redis then refuses to start.
    start_redis "$p" "cluster-enabled yes" "cluster-config-file $DIR/redis-$p/nodes.conf" \
      "cluster-node-timeout 5000" "cluster-port $((p > 55535 ? p - 10000 : p + 10000))"
    nodes+=("127.0.0.1:$p"); urls+=("redis://127.0.0.1:$p")
  done
  log "creating redis cluster"
  local out; out=$(redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes 2>&1) \
    || { echo "$out"; die "redis-cli --cluster create failed"; }
  wait_for "redis cluster" "$DIR/redis-${CLUSTER_PORTS[0]}/redis.log" cluster_ok
  log "all services up in $DIR"
  local IFS=,
  cat >&3 <<EOF
export DATABASE_URL=postgres://sessionware:sessionware@127.0.0.1:$PG_PORT/sessionware
export REDIS_URL=redis://127.0.0.1:$REDIS_PORT
export REDIS_CLUSTER_URLS=${urls[*]}
EOF
}

case ${1:-} in
  start) start_all ;;
  stop) stop_all ;;
  *) die "usage: $0 start|stop" ;;
esac
