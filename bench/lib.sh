# shellcheck shell=bash
# lib.sh: throwaway PostgreSQL servers for the benchmarks (self-contained,
# does not use the test harness in tests/lib).
#
# Source it from a bench script. It makes a private work directory
# (BENCH_TMP), and bench_start NAME starts a fresh server in it: initdb is
# done once per machine into a cached template that is then copied; the
# server listens only on a private unix socket directory (no TCP, so no
# port to collide on), and runs as the `postgres` OS user when we are root.
# Every server gets the same settings (BENCH_PG_SETTINGS plus any extra
# lines given to bench_start). On exit, however the script exits, every
# process group registered with bench_track is killed, every server is
# stopped and BENCH_TMP is removed. Work directories left behind by a
# bench that was SIGKILLed are reaped (servers stopped) on the next start.
#
# After bench_start NAME: NAME_SOCK (socket dir = data dir), NAME_PORT,
# NAME_DATA. bq NAME DB SQL runs SQL and prints unaligned rows.

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
export PATH="$PGBIN:$PATH"
export PGCONNECT_TIMEOUT=10
unset PGHOST PGPORT PGDATABASE PGUSER PGPASSWORD PGSERVICE PGOPTIONS \
      FERRY_SOURCE FERRY_TARGET FERRY_NAME \
      PGCOPYDB_SOURCE_PGURI PGCOPYDB_TARGET_PGURI PGCOPYDB_TABLE_JOBS PGCOPYDB_INDEX_JOBS \
      PGCOPYDB_SPLIT_TABLES_LARGER_THAN PGCOPYDB_SNAPSHOT PGCOPYDB_DROP_IF_EXISTS

# Identical on every server: realistic production-ish settings, durability on.
BENCH_PG_SETTINGS=(
  "shared_buffers = 256MB"
  "max_wal_size = 4GB"
  "checkpoint_timeout = 30min"
  "wal_level = logical"
  "max_replication_slots = 10"
  "max_wal_senders = 10"
  "max_connections = 100"
  "fsync = on"
  "synchronous_commit = on"
  "full_page_writes = on"
  "log_min_messages = warning"
  "logging_collector = off"
)

bench_log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
bench_die() { bench_log "FATAL: $*"; exit 1; }

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Work directories of earlier runs that died without cleaning up (SIGKILL,
# machine reboot): stop their servers and remove them. Only our own
# directories (ferry-bench.*) whose owner process is gone are touched.
bench_reap_stale() {
  local d pid s g
  for d in "${TMPDIR:-/tmp}"/ferry-bench.*; do
    [ -d "$d" ] || continue
    pid=$(cat "$d/owner.pid" 2>/dev/null || echo)
    # alive and not a zombie (a SIGKILLed bench may linger as one)
    if [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] \
       && ! awk '{ exit ($3 == "Z" || $3 == "X") ? 0 : 1 }' "/proc/$pid/stat" 2>/dev/null; then
      continue
    fi
    bench_log "reaping stale bench directory $d"
    # shellcheck disable=SC2013
    for g in $(cat "$d/jobs.pgid" 2>/dev/null); do  # its tool runs, if still there
      grep -qF "$d" "/proc/$g/cmdline" 2>/dev/null && kill -KILL -- "-$g" 2>/dev/null
    done
    for s in "$d"/srv-*; do
      [ -f "$s/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$s" -m immediate -w stop >/dev/null 2>&1
    done
    rm -rf "$d"
  done
}

bench_reap_stale
BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench.XXXXXX")
echo $$ > "$BENCH_TMP/owner.pid"
chmod 755 "$BENCH_TMP"
[ "$(id -u)" -eq 0 ] && chown postgres: "$BENCH_TMP"
BENCH_SERVERS=""
BENCH_PGIDS=""

# bench_track PGID: kill this process group on exit if still running.
# (also kept in BENCH_TMP/jobs.pgid for bench_reap_stale)
bench_track() { BENCH_PGIDS="$BENCH_PGIDS $1"; echo "$BENCH_PGIDS" > "$BENCH_TMP/jobs.pgid"; }
bench_untrack() { BENCH_PGIDS=$(echo " $BENCH_PGIDS " | sed "s/ $1 / /"); echo "$BENCH_PGIDS" > "$BENCH_TMP/jobs.pgid"; }

bench_cleanup() {
  local rc=$? g s
  trap - EXIT INT TERM HUP
  case $rc in 0|3) ;; *) bench_log "exiting ($rc): stopping servers, removing $BENCH_TMP" ;; esac
  for g in $BENCH_PGIDS; do
    kill -TERM -- "-$g" 2>/dev/null && sleep 1 && kill -KILL -- "-$g" 2>/dev/null
  done
  for s in $BENCH_SERVERS; do
    as_pg "$PGBIN/pg_ctl" -D "$BENCH_TMP/srv-$s" -m immediate -w stop >/dev/null 2>&1 \
      || bench_log "WARNING: could not stop server $s"
  done
  rm -rf "$BENCH_TMP"
  exit "$rc"
}
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# The cached initdb template (our own, not the test harness's).
bench_template() {
  local t="${TMPDIR:-/tmp}/ferry-bench-pgtemplate-15"
  (
    flock 9
    if [ ! -f "$t/PG_VERSION" ]; then
      rm -rf "$t" && mkdir -p "$t" && chmod 700 "$t"
      [ "$(id -u)" -eq 0 ] && chown postgres: "$t"
      as_pg "$PGBIN/initdb" -D "$t" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >/dev/null \
        || { echo "initdb failed" >&2; rm -rf "$t"; exit 1; }
    fi
  ) 9>"${TMPDIR:-/tmp}/ferry-bench-pgtemplate-15.lock" || return 1
  echo "$t"
}

# bench_start NAME [extra postgresql.conf lines...]
bench_start() {
  local name=$1; shift
  local dir="$BENCH_TMP/srv-$name" tmpl l up
  tmpl=$(bench_template) || bench_die "could not initdb a template"
  cp -a "$tmpl" "$dir"
  {
    echo "port = 5432"
    echo "listen_addresses = ''"
    echo "unix_socket_directories = '$dir'"
    for l in "${BENCH_PG_SETTINGS[@]}" "$@"; do echo "$l"; done
  } > "$dir/postgresql.auto.conf"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir/postgresql.auto.conf"
  BENCH_SERVERS="$BENCH_SERVERS $name"
  if ! as_pg "$PGBIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 120 start >/dev/null 2>&1; then
    tail -n 30 "$dir/server.log" >&2
    bench_die "could not start server $name"
  fi
  up=$(echo "$name" | tr '[:lower:]' '[:upper:]')
  eval "${up}_PORT=5432 ${up}_SOCK='$dir' ${up}_DATA='$dir'"
}

# bq NAME DB SQL: rows unaligned, fields separated by |
bq() {
  local up sock port
  up=$(echo "$1" | tr '[:lower:]' '[:upper:]')
  eval "sock=\$${up}_SOCK port=\$${up}_PORT"
  PGOPTIONS="-c client_min_messages=warning" psql -XAtq -v ON_ERROR_STOP=1 -h "$sock" -p "$port" -U postgres -d "$2" -c "$3"
}

# bench_conninfo NAME DB: keyword conninfo; bench_uri NAME DB: URI form
bench_conninfo() {
  local up sock port
  up=$(echo "$1" | tr '[:lower:]' '[:upper:]')
  eval "sock=\$${up}_SOCK port=\$${up}_PORT"
  echo "host=$sock port=$port dbname=$2 user=postgres"
}
bench_uri() {
  local up sock port
  up=$(echo "$1" | tr '[:lower:]' '[:upper:]')
  eval "sock=\$${up}_SOCK port=\$${up}_PORT"
  echo "postgresql://postgres@/$2?host=$sock&port=$port"
}
