# pg.sh: throwaway PostgreSQL servers for the integration tests.
#
# Source it from a test (after tap.sh). pg_start NAME starts a fresh server
# (initdb is done once into a cached template, then copied), listening on a
# private unix socket directory and on 127.0.0.1 at a free port, as the
# `postgres` OS user when we are root (initdb and postgres refuse root).
# Every server is stopped and its directory removed when the test exits,
# however it exits. After pg_start NAME these are set:
#   NAME_PORT, NAME_SOCK (socket dir), NAME_DATA, NAME_CONN (a conninfo
#   for database "app" as user postgres over the socket) and NAME_PGBIN.
# q NAME SQL runs SQL in database app of that server and prints the rows.
#
# Each server may run its own major version: NAME_PGBIN set before pg_start
# NAME is the bin directory it runs from (e.g. SOURCE_PGBIN=$(pg_major_bin 13)
# for a PostgreSQL 13 source); unset, it is PGBIN, Debian's 15. Everything
# that talks to a server here (q, qf, db_checksum, pgload, pg_stop ...) uses
# that server's own programs.

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
FERRY=${FERRY:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/asan/ferry}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export PGCONNECT_TIMEOUT=10
unset PGHOST PGPORT PGDATABASE PGUSER PGPASSWORD FERRY_SOURCE FERRY_TARGET FERRY_NAME

SQL=$(cd "$(dirname "${BASH_SOURCE[0]}")/../sql" && pwd)   # tests/sql: fixtures and load scripts
TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/ferry-test.XXXXXX")
chmod 755 "$TEST_TMP"
PG_SERVERS=""

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ "$(id -u)" -eq 0 ]; then chown postgres: "$TEST_TMP"; fi

# pg_bin NAME: the bin directory server NAME runs from
pg_bin() {
  local up v; up=$(echo "$1" | tr '[:lower:]' '[:upper:]')
  eval "v=\${${up}_PGBIN:-}"
  echo "${v:-$PGBIN}"
}

pg_cleanup() {
  local s
  for s in $PG_SERVERS; do
    as_pg "$(pg_bin "$s")/pg_ctl" -D "$TEST_TMP/$s" -m immediate -w stop >/dev/null 2>&1 || true
  done
  # any ferry left running by a failed test
  pkill -KILL -f "$TEST_TMP" >/dev/null 2>&1 || true
  # FERRY_TEST_KEEP=DIR: keep the logs and outputs of a run there for a post-mortem
  if [ -n "${FERRY_TEST_KEEP:-}" ]; then
    mkdir -p "$FERRY_TEST_KEEP" && find "$TEST_TMP" -maxdepth 1 -type f -exec cp {} "$FERRY_TEST_KEEP/" \; 2>/dev/null
    for s in $PG_SERVERS; do cp "$TEST_TMP/$s/server.log" "$FERRY_TEST_KEEP/$s.log" 2>/dev/null; done
  fi
  rm -rf "$TEST_TMP"
}
trap pg_cleanup EXIT
trap 'exit 130' INT TERM

# pg_template [BINDIR]: a template data directory made by BINDIR's initdb
# (PGBIN's by default), once per machine and user: initdb is the slow part of
# starting a server. One per bin directory (PGBIN's keeps its old name).
pg_template() {
  local bin=${1:-$PGBIN} key t
  key=15
  [ "$bin" = /usr/lib/postgresql/15/bin ] || key=$(printf '%s' "$bin" | cksum | cut -d' ' -f1)
  t="${TMPDIR:-/tmp}/ferry-pgtemplate-$key"
  (
    flock 9
    if [ ! -f "$t/PG_VERSION" ]; then
      rm -rf "$t" && mkdir -p "$t" && chmod 700 "$t"
      [ "$(id -u)" -eq 0 ] && chown postgres: "$t"
      as_pg "$bin/initdb" -D "$t" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >/dev/null \
        || { echo "initdb failed" >&2; rm -rf "$t"; exit 1; }
    fi
  ) 9>"${TMPDIR:-/tmp}/ferry-pgtemplate-$key.lock"
  echo "$t"
}

free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$(( (RANDOM % 20000) + 20000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}

# pg_start NAME [postgresql.conf lines...]
pg_start() {
  local name=$1; shift
  local dir="$TEST_TMP/$name" tmpl port try bin
  bin=$(pg_bin "$name")
  tmpl=$(pg_template "$bin") || bail "could not initdb a template with $bin/initdb"
  cp -a "$tmpl" "$dir"
  for try in 1 2 3 4 5; do
    port=$(free_port) || bail "no free port"
    {
      echo "port = $port"
      echo "listen_addresses = '127.0.0.1'"
      echo "unix_socket_directories = '$dir'"
      echo "wal_level = logical"
      echo "max_replication_slots = 10"
      echo "max_wal_senders = 10"
      echo "fsync = off"
      echo "synchronous_commit = off"
      echo "full_page_writes = off"
      echo "shared_buffers = 64MB"
      echo "max_connections = 60"
      echo "log_min_messages = warning"
      echo "logging_collector = off"
      for l in "$@"; do echo "$l"; done
    } > "$dir/postgresql.auto.conf"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir/postgresql.auto.conf"
    if as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 start >/dev/null 2>&1; then
      PG_SERVERS="$PG_SERVERS $name"
      local up; up=$(echo "$name" | tr '[:lower:]' '[:upper:]')
      eval "${up}_PORT=$port ${up}_SOCK='$dir' ${up}_DATA='$dir' ${up}_PGBIN='$bin'"
      eval "${up}_CONN='host=$dir port=$port dbname=app user=postgres'"
      "$bin/psql" -XAtq -h "$dir" -p "$port" -U postgres -d postgres -c "CREATE DATABASE app" >/dev/null \
        || bail "could not create database app on $name"
      return 0
    fi
  done
  cat "$dir/server.log" >&2
  bail "could not start server $name"
}

pg_restart() {  # pg_restart NAME
  as_pg "$(pg_bin "$1")/pg_ctl" -D "$TEST_TMP/$1" -l "$TEST_TMP/$1/server.log" -w -t 60 restart >/dev/null
}

pg_stop() {  # pg_stop NAME [mode]
  as_pg "$(pg_bin "$1")/pg_ctl" -D "$TEST_TMP/$1" -m "${2:-fast}" -w stop >/dev/null
}

# q NAME SQL: rows unaligned, fields separated by |
q() {
  local up; up=$(echo "$1" | tr '[:lower:]' '[:upper:]')
  local sock port
  eval "sock=\$${up}_SOCK port=\$${up}_PORT"
  "$(pg_bin "$1")/psql" -XAtq -v ON_ERROR_STOP=1 -h "$sock" -p "$port" -U postgres -d "${QDB:-app}" -c "$2"
}

# qf NAME FILE: run an SQL file
qf() {
  local up; up=$(echo "$1" | tr '[:lower:]' '[:upper:]')
  local sock port
  eval "sock=\$${up}_SOCK port=\$${up}_PORT"
  "$(pg_bin "$1")/psql" -XAtq -v ON_ERROR_STOP=1 -h "$sock" -p "$port" -U postgres -d "${QDB:-app}" -f "$2"
}

# db_checksum NAME: one line per user table: name, row count, md5 of its rows
# sorted by their text form (so tables without a key compare too).
# BY_NAME=1: each row's text lists its columns by name, not in table order, so
# two tables with the same columns in another order compare equal (pg_dump
# itself reorders inherited columns, see tests/t/024_clone_regression.t).
db_checksum() {
  local up; up=$(echo "$1" | tr '[:lower:]' '[:upper:]')
  local sock port
  eval "sock=\$${up}_SOCK port=\$${up}_PORT"
  "$(pg_bin "$1")/psql" -XAtq -v ON_ERROR_STOP=1 -v by_name="${BY_NAME:-0}" -h "$sock" -p "$port" -U postgres -d "${QDB:-app}" <<'SQL'
SELECT format('SELECT %L, count(*), md5(coalesce(string_agg(r, E''\n'' ORDER BY r), '''')) FROM (SELECT %s AS r FROM ONLY %I.%I t) s',
              n.nspname || '.' || c.relname,
              CASE WHEN :by_name::int = 1
                   THEN format('ROW(%s)::text', (SELECT coalesce(string_agg(format('t.%I', a.attname), ', ' ORDER BY a.attname), '')
                                                   FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped))
                   ELSE 't::text' END,
              n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE (c.relkind = 'r' OR (c.relkind = 'm' AND c.relispopulated)) AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'ferry')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
ORDER BY n.nspname, c.relname
\gexec
SQL
}

# follow_servers [SOURCE_SETTING...]: a source with tests/sql/follow_schema.sql
# (started with those settings) and an empty target
follow_servers() {
  pg_start source "$@"
  pg_start target
  qf source "$SQL/follow_schema.sql" >/dev/null || bail "schema failed"
}

# ferry_start [OPTION...]: `ferry start OPTION...` in the background, its pid
# in FP, its output appended to $TEST_TMP/out and $TEST_TMP/err
ferry_start() {
  "$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" start "$@" >>"$TEST_TMP/out" 2>>"$TEST_TMP/err" &
  FP=$!
}

# start_following: ferry_start --jobs 2, and assert that it reaches "following"
start_following() {
  ferry_start --jobs 2
  wait_following ferry 60; ok $? "ferry start follows"
}

# stop_cleanly: SIGTERM to ferry start ($FP): exit 0, no sanitizer report in its log
stop_cleanly() {
  kill -TERM "$FP" 2>/dev/null; wait "$FP"; is $? 0 "ferry start stops cleanly"
  unlike "$(cat "$TEST_TMP/err")" "runtime error|LeakSanitizer" "no sanitizer reports"
}

# slot_count NAME: replication slots on that server
slot_count() { QDB=postgres q "$1" "SELECT count(*) FROM pg_replication_slots"; }

# wait_applied NAME_OF_MIGRATION [timeout_s]: wait until the target has
# applied everything the source had written when this was called.
wait_applied() {
  local name=${1:-ferry} timeout=${2:-60} lsn i
  lsn=$(q source "SELECT pg_current_wal_insert_lsn()")
  for i in $(seq 1 $((timeout * 10))); do
    if [ "$(q target "SELECT applied_lsn >= '$lsn'::pg_lsn FROM ferry.apply_progress WHERE migration = '$name'" 2>/dev/null)" = t ]; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

# applied_position [NAME]: what the target has applied: the later of
# ferry.apply_progress and the migration's replication origin (the origin
# advances with every target transaction, the row at most every 25 ms while
# changes flow, and as soon as apply is idle)
applied_position() {
  q target "SELECT GREATEST(p.applied_lsn, pg_replication_origin_progress(p.migration, false))
              FROM ferry.apply_progress p WHERE p.migration = '${1:-ferry}'"
}

# pgbench on the source: pgload SECONDS CLIENTS script[@weight]...
pgload() {
  local secs=$1 clients=$2; shift 2
  local args=()
  for s in "$@"; do args+=(-f "$s"); done
  "$(pg_bin source)/pgbench" -n -T "$secs" -c "$clients" -h "$SOURCE_SOCK" -p "$SOURCE_PORT" -U postgres "${args[@]}" app
}

# migration_phase [NAME]: the migration's phase in the target's state
migration_phase() { q target "SELECT phase FROM ferry.migration WHERE name = '${1:-ferry}'"; }

# wait_following [NAME] [TIMEOUT_S]: wait until the migration follows
wait_following() {
  local i
  for i in $(seq 1 $(( ${2:-60} * 5 ))); do
    [ "$(migration_phase "${1:-ferry}" 2>/dev/null)" = following ] && return 0
    sleep 0.2
  done
  return 1
}

# source_writable: a write on the source succeeds and reaches the target
# (table kv of tests/sql/follow_schema.sql; each call writes a new negative id)
SOURCE_WRITABLE_N=0
source_writable() {
  SOURCE_WRITABLE_N=$((SOURCE_WRITABLE_N + 1))
  local id=-$SOURCE_WRITABLE_N
  q source "INSERT INTO kv VALUES ($id, 'probe', 0)" >/dev/null 2>&1 || return 1
  wait_applied ferry 60 || return 2
  [ "$(q target "SELECT count(*) FROM kv WHERE id = $id")" = 1 ] || return 3
}

# lock_target_kv [TABLE]: a session on the target (application_name locker)
# holds TABLE (kv) IN ACCESS EXCLUSIVE MODE for 60 s; returns once the lock
# is granted.
# Its psql's pid is in LOCKER; end it with release_target_kv.
lock_target_kv() {
  PGAPPNAME=locker "$(pg_bin target)/psql" -XAtq -h "$TARGET_SOCK" -p "$TARGET_PORT" -U postgres app \
    -c "BEGIN; LOCK TABLE ${1:-kv} IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60); COMMIT;" >/dev/null 2>&1 &
  LOCKER=$!
  for _ in $(seq 1 50); do
    [ "$(q target "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'locker' AND l.mode = 'AccessExclusiveLock' AND l.granted")" = 1 ] && break
    sleep 0.1
  done
}
release_target_kv() {
  q target "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'locker'" >/dev/null
  wait "$LOCKER" 2>/dev/null
}
# apply_lock_waits: how many of ferry's target sessions wait for a lock
# (up to 10 s for one to)
apply_lock_waits() {
  local waiting=0
  for _ in $(seq 1 100); do
    waiting=$(q target "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'ferry%' AND wait_event_type = 'Lock'")
    [ "$waiting" -ge 1 ] && break
    sleep 0.1
  done
  echo "$waiting"
}
# order_ids SIDE: the ids in SIDE's orders table, sorted for comm
order_ids() { q "$1" "SELECT id FROM orders" | sort; }
