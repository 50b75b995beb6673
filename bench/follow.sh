#!/usr/bin/env bash
# follow.sh: ferry's change streaming (`ferry start`) against PostgreSQL's
# native logical replication, on the same pgbench database.
#
# Usage: bench/follow.sh [SCALE] [--scale N] [--duration SECS] [--rounds N]
#                        [--clients N] [--jobs N] [--big-rows N]
#                        [--tools LIST] [--timeout SECS] [--logs DIR]
# Each option also has an environment variable: SCALE (pgbench scale, default
# 10), DURATION (seconds of each pgbench load, 60), ROUNDS (3), CLIENTS
# (pgbench clients, 4), JOBS (ferry's clone --jobs, 2), BIG_ROWS (rows of the
# big transaction, 1000000), TOOLS ("ferry native"), TIMEOUT (longest wait
# for any catch-up, 1800 s), SAMPLE_S (seconds between lag samples, 0.2),
# LOGS (keep every run's logs in this directory), LIVE_ONLY (1: only the
# sync and live phases, for quick lag experiments),
# FERRY (build/ferry; copied at start so a rebuild cannot swap it mid-run),
# PGBIN (/usr/lib/postgresql/15/bin), TMPDIR (where the servers live).
#
# Two fresh servers (bench/lib.sh, identical settings; the target also has
# track_commit_timestamp = on); the source gets `pgbench -i -s SCALE` and an
# empty table big (id int PRIMARY KEY, v text). Every round runs each tool
# once (order rotated each round), from the same starting point (history and
# big emptied, VACUUM ANALYZE, fresh empty target database, CHECKPOINT):
#   ferry    ferry --name bench start --jobs JOBS (clone, then follow)
#   native   CREATE PUBLICATION benchpub FOR ALL TABLES; the schema with
#            pg_dump --schema-only | psql; CREATE SUBSCRIPTION benchsub ...
#            WITH (copy_data = true)
# and measures, after the initial sync (sync):
#   live_n, live_tpcb  pgbench -N, then the TPC-B script, CLIENTS clients for
#            DURATION s with replication running; lag sampled every SAMPLE_S s;
#            then the catch-up time after the load ends. These saturate a
#            small machine (load, both servers and the tool share its cores)
#   live_rate  the same with pgbench -N -R RATE (default 1000 tx/s, 0 skips
#            it): a steady load that leaves CPU idle, as on a production
#            source that is not at its limit
#   drain    replication stopped (ferry: SIGTERM; native: ALTER SUBSCRIPTION
#            DISABLE), pgbench TPC-B for DURATION s builds a backlog, the
#            source goes idle, replication restarts: time until caught up,
#            backlog transactions / that time = drain rate
#   big      one INSERT of BIG_ROWS rows into big: time from its commit until
#            the target has it, and ferry's peak RSS during it
# After each phase the target is checked against the source (row count and
# balance sums of the 4 pgbench tables, row count of big): FAIL otherwise.
#
# Lag (bench/README.md has the exact SQL), read the same way for both: bytes
# = source pg_current_wal_lsn() - the target's applied position (the tool's
# replication origin's remote_lsn), seconds = now() - source commit time of
# the last applied transaction (the target's commit timestamp, which records
# the origin's timestamp); for native also pg_stat_replication's
# replay_lsn and replay_lag. Sampled by one psql session in the source's
# postgres database (CREATE EXTENSION dblink there). Catch-up times two ways:
# LSN (the applied position reaches the source's end-of-load LSN) and rows
# (the target has all pgbench_history rows: every transaction).
#
# Output: progress on stderr; on stdout a table (medians over the rounds,
# ferry/native ratios) and one JSON line per measurement. Exit status: 0 all
# ok, 1 setup error, 2 usage error, 3 some phase failed or did not match.
set -uo pipefail
# shellcheck disable=SC2317,SC2086  # per-tool functions are called as "${tool}_..."; $DB is a plain word

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

ALL_TOOLS="ferry native"
SCALE=${SCALE:-10}
DURATION=${DURATION:-60}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-4}
JOBS=${JOBS:-2}
BIG_ROWS=${BIG_ROWS:-1000000}
RATE=${RATE:-1000}
TOOLS=${TOOLS:-$ALL_TOOLS}
TIMEOUT=${TIMEOUT:-1800}
SAMPLE_S=${SAMPLE_S:-0.2}
LOGS=${LOGS:-}
FERRY=${FERRY:-$ROOT/build/ferry}

usage() { sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --scale) SCALE=$2; shift 2 ;;        --scale=*) SCALE=${1#*=}; shift ;;
    --duration) DURATION=$2; shift 2 ;;  --duration=*) DURATION=${1#*=}; shift ;;
    --rounds) ROUNDS=$2; shift 2 ;;      --rounds=*) ROUNDS=${1#*=}; shift ;;
    --clients) CLIENTS=$2; shift 2 ;;    --clients=*) CLIENTS=${1#*=}; shift ;;
    --jobs) JOBS=$2; shift 2 ;;          --jobs=*) JOBS=${1#*=}; shift ;;
    --big-rows) BIG_ROWS=$2; shift 2 ;;  --big-rows=*) BIG_ROWS=${1#*=}; shift ;;
    --rate) RATE=$2; shift 2 ;;          --rate=*) RATE=${1#*=}; shift ;;
    --tools) TOOLS=$2; shift 2 ;;        --tools=*) TOOLS=${1#*=}; shift ;;
    --timeout) TIMEOUT=$2; shift 2 ;;    --timeout=*) TIMEOUT=${1#*=}; shift ;;
    --logs) LOGS=$2; shift 2 ;;          --logs=*) LOGS=${1#*=}; shift ;;
    -h|--help) usage; exit 0 ;;
    [0-9]*) SCALE=$1; shift ;;
    *) echo "follow.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
TOOLS=$(echo "$TOOLS" | tr ',' ' ')
for v in SCALE DURATION ROUNDS CLIENTS JOBS BIG_ROWS TIMEOUT; do
  case "${!v}" in ''|*[!0-9]*|0) echo "follow.sh: $v must be a positive integer" >&2; exit 2 ;; esac
done
for t in $TOOLS; do
  case " $ALL_TOOLS " in *" $t "*) ;; *) echo "follow.sh: unknown tool $t (known: $ALL_TOOLS)" >&2; exit 2 ;; esac
done
case "$RATE" in ''|*[!0-9]*) echo "follow.sh: RATE must be a number of transactions per second (0: no live_rate phase)" >&2; exit 2 ;; esac
case "$SAMPLE_S" in ''|*[!0-9.]*|*.*.*) echo "follow.sh: SAMPLE_S must be a number of seconds" >&2; exit 2 ;; esac
case "$FERRY" in /*) ;; *) FERRY="$PWD/$FERRY" ;; esac

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

for b in psql pg_dump pgbench; do
  [ -x "$PGBIN/$b" ] || bench_die "$PGBIN/$b not found (set PGBIN)"
done
case " $TOOLS " in *" ferry "*)
  [ -x "$FERRY" ] || bench_die "$FERRY not found or not executable (run make)"
  cp "$FERRY" "$BENCH_TMP/ferry" || bench_die "could not copy $FERRY"
  FERRY_ORIG=$FERRY; FERRY="$BENCH_TMP/ferry" ;;
esac
need_mb=$(( SCALE * 16 * 4 + BIG_ROWS / 1000 * 2 + 800 ))
free_mb=$(df -Pm "$BENCH_TMP" | awk 'NR==2 {print $4}')
[ "$free_mb" -ge "$need_mb" ] || bench_die "need ~${need_mb} MB free in $BENCH_TMP, have ${free_mb} MB"
if [ -n "$LOGS" ]; then mkdir -p "$LOGS" || bench_die "cannot create $LOGS"; LOGS=$(cd "$LOGS" && pwd); fi
NCPU=$(nproc)
PGB_THREADS=$(( CLIENTS < NCPU ? CLIENTS : NCPU ))

# ---------------------------------------------------------------- helpers
now_ns() { date +%s%N; }
secs_since() { awk -v a="$1" -v b="${2:-$(now_ns)}" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }

# run_bg LOG CMD...: run CMD in its own process group (killed on exit), wait
# for it; its status in RUN_RC. The wait is interruptible by signals.
run_bg() {
  local log=$1 pid; shift
  setsid "$@" >"$log" 2>&1 &
  pid=$!
  bench_track "$pid"
  wait "$pid"; RUN_RC=$?
  bench_untrack "$pid"
}

# ----------------------------------------------------------------- servers
bench_log "starting source and target servers in $BENCH_TMP"
bench_start source
bench_start target "track_commit_timestamp = on"
DB=bench
SRC=$(bench_conninfo source $DB)
TGT=$(bench_conninfo target $DB)
bq source postgres "CREATE DATABASE $DB" || bench_die "create source database"
PGB=(pgbench -h "$SOURCE_SOCK" -p "$SOURCE_PORT" -U postgres)

bench_log "pgbench -i -s $SCALE on the source"
"${PGB[@]}" -i -s "$SCALE" -q "$DB" >"$BENCH_TMP/pgbench-init.log" 2>&1 \
  || { tail -n 20 "$BENCH_TMP/pgbench-init.log" >&2; bench_die "pgbench -i failed"; }
bq source $DB "CREATE TABLE big (id int PRIMARY KEY, v text)" || bench_die "create table big"
# the lag sampler runs in the source's postgres database (not the migrated
# one) and reads the target through dblink: both positions in one query
# one sample the dblink connection t: the target's applied position and lag
# seconds as query Q returns them, between two reads of the source's WAL
# position (the lag in bytes is taken from their midpoint, so the ~1 ms that
# the remote read takes does not count as lag)
bq source postgres "CREATE EXTENSION IF NOT EXISTS dblink" >/dev/null \
  || bench_die "the dblink extension (PostgreSQL contrib) is needed on the source"
bq source postgres "CREATE FUNCTION bench_sample(q text, OUT lag_bytes bigint, OUT lag_s float8, OUT window_bytes bigint)
LANGUAGE plpgsql AS \$f\$
DECLARE l1 pg_lsn; l2 pg_lsn; applied pg_lsn;
BEGIN
  l1 := pg_current_wal_lsn();
  SELECT a.l, a.s INTO applied, lag_s FROM dblink('t', q) AS a(l pg_lsn, s float8);
  l2 := pg_current_wal_lsn();
  lag_bytes := greatest((pg_wal_lsn_diff(l1, applied) + pg_wal_lsn_diff(l2, applied)) / 2, 0);
  window_bytes := pg_wal_lsn_diff(l2, l1);
END \$f\$" >/dev/null || bench_die "could not create the sampling function"
PGVER=$(bq source postgres "SHOW server_version")
DB_SIZE=$(bq source $DB "SELECT pg_database_size('$DB')")
mb() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }

# the data that both sides must agree on after every phase
CHECK_SQL="SELECT concat_ws(' ',
  'accounts=' || (SELECT count(*) || '/' || sum(abalance) FROM pgbench_accounts),
  'tellers=' || (SELECT count(*) || '/' || sum(tbalance) FROM pgbench_tellers),
  'branches=' || (SELECT count(*) || '/' || sum(bbalance) FROM pgbench_branches),
  'history=' || (SELECT count(*) || '/' || COALESCE(sum(delta), 0) FROM pgbench_history),
  'big=' || (SELECT count(*) FROM big))"
# prints nothing when the target matches the source
check_target() {
  local s t
  s=$(bq source $DB "$CHECK_SQL" 2>&1); t=$(bq target $DB "$CHECK_SQL" 2>&1)
  [ "$s" = "$t" ] || echo "source [$s] target [$t]"
}

# --------------------------------------------------------- tool: ferry
FERRY_PID=""
FERRY_PEAK_KB=0     # VmHWM over every ferry process of this tool run
FERRY_ERRS=0
FERRY_BAD_EXITS=0
# pgbench_history has no primary key: ferry says so, as it should
FERRY_EXPECTED='tables have no primary key or replica identity'
FERRY_N=0
ferry_hwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$FERRY_PID/status" 2>/dev/null; }
ferry_note_hwm() {
  local k; k=$(ferry_hwm)
  [ -n "$k" ] && [ "$k" -gt "$FERRY_PEAK_KB" ] && FERRY_PEAK_KB=$k
}
ferry_launch() {
  FERRY_N=$(( FERRY_N + 1 ))
  setsid "$FERRY" --source "$SRC" --target "$TGT" --name bench start --jobs "$JOBS" \
    >"$RUN_DIR/ferry-$FERRY_N.log" 2>&1 &
  FERRY_PID=$!
  bench_track "$FERRY_PID"
}
ferry_stop() {  # returns ferry's exit status (0 expected)
  local i rc
  [ -n "$FERRY_PID" ] || return 0
  ferry_note_hwm
  kill -TERM "$FERRY_PID" 2>/dev/null
  for (( i = 0; i < 1200; i++ )); do kill -0 "$FERRY_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$FERRY_PID" 2>/dev/null; then
    bench_log "  WARNING: ferry did not stop within 120 s of SIGTERM; killing it"
    kill -KILL -- "-$FERRY_PID" 2>/dev/null
  fi
  wait "$FERRY_PID" 2>/dev/null; rc=$?
  bench_untrack "$FERRY_PID"
  [ "$rc" -eq 0 ] || { bench_log "  WARNING: ferry exited with status $rc (expected 0 after SIGTERM)"; FERRY_BAD_EXITS=$(( FERRY_BAD_EXITS + 1 )); }
  FERRY_PID=""
  return "$rc"
}
ferry_alive() { [ -n "$FERRY_PID" ] && kill -0 "$FERRY_PID" 2>/dev/null; }
ferry_setup() {
  FERRY_PEAK_KB=0; FERRY_N=0
  ferry_launch
}
ferry_synced() {  # the clone is done and ferry is streaming (2: ferry died)
  ferry_alive || { bench_log "  ferry is no longer running"; return 2; }
  # (whether the state exists first: a query on a missing table logs an ERROR)
  [ "$(bq target $DB "SELECT to_regclass('ferry.apply_progress') IS NOT NULL" 2>/dev/null)" = t ] \
    && [ "$(bq target $DB "SELECT phase FROM ferry.migration WHERE name = 'bench'" 2>/dev/null)" = following ]
}
ferry_applied_ge() {  # LSN: t when ferry has applied everything up to it (its origin, as for lag)
  bq target $DB "SELECT remote_lsn >= '$1' FROM pg_replication_origin_status WHERE external_id = 'bench'" 2>/dev/null
}
# pids of the pipeline, "client walsender target-backends": ferry's process
# (native has none), the source walsender of the slot, and the target
# backends that apply (ferry's connections are named ferry; native's apply
# worker)
ferry_pids() {
  echo "$FERRY_PID"
  bq source $DB "SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'bench'" 2>/dev/null
  bq target $DB "SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE application_name = 'ferry' AND datname = '$DB'" 2>/dev/null
}
# ferry's own report once caught up and idle: following, running, every
# table's source and target row counts equal
FERRY_STATUS=""
ferry_status_check() {
  local out bad
  out=$("$FERRY" --source "$SRC" --target "$TGT" --name bench --json status 2>&1)
  if ! command -v jq >/dev/null; then FERRY_STATUS="$FERRY_STATUS skipped"; return; fi
  bad=$(echo "$out" | jq -r '[ (if .phase != "following" then "phase \(.phase)" else empty end),
          (if .running != true then "not running" else empty end),
          (.tables[] | select(.delta != 0) | "\(.name) delta \(.delta)") ] | join(", ")' 2>&1)
  if [ -z "$bad" ]; then FERRY_STATUS="$FERRY_STATUS ok"
  else FERRY_STATUS="$FERRY_STATUS mismatch"; bench_log "  ferry status --json disagrees: $bad"; fi
}
ferry_pause() { ferry_stop; }
ferry_resume() { ferry_launch; }
ferry_teardown() {
  ferry_stop
  bq target postgres "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
  bq source $DB "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'bench' AND active_pid IS NOT NULL" >/dev/null 2>&1
  sleep 0.5
  bq source $DB "SELECT pg_drop_replication_slot('bench') FROM pg_replication_slots WHERE slot_name = 'bench'" >/dev/null \
    || bench_log "  WARNING: could not drop replication slot bench on the source"
  bq source $DB "DROP PUBLICATION IF EXISTS bench, bench_insert_only" >/dev/null 2>&1
}
# sampler query (source, postgres database; dblink connection t = target),
# the same for both tools: time, lag bytes, lag seconds, replay_lsn lag
# bytes, replay_lag seconds (of walsender APPNAME, when given), bytes the
# source wrote while the sample was taken. The target's applied position is
# the tool's replication origin ORIGIN (remote_lsn: end LSN of the last
# source transaction committed on the target; ferry's origin is named after
# the migration and advances with every target transaction, its
# ferry.apply_progress row only every 25 ms under load). Lag seconds: with
# track_commit_timestamp on the target, both tools' commits record the
# source's commit time (the origin timestamp); read only when the target's
# last commit is the tool's. For native also the walsender's view:
# pg_stat_replication replay_lsn (as the apply worker last reported it) and
# replay_lag.
origin_sample_sql() {
  local origin=$1 app=${2:-}
  cat <<SQL
SELECT round(extract(epoch FROM clock_timestamp())::numeric, 3), s.lag_bytes,
       round(s.lag_s::numeric, 4),
       (SELECT greatest(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::bigint
          FROM pg_stat_replication WHERE application_name = '$app'),
       (SELECT round(COALESCE(extract(epoch FROM replay_lag), 0)::numeric, 4)
          FROM pg_stat_replication WHERE application_name = '$app'),
       s.window_bytes
  FROM bench_sample('SELECT (SELECT remote_lsn FROM pg_replication_origin_status
                              WHERE external_id = ''$origin''),
                            (SELECT extract(epoch FROM now() - x.timestamp)
                               FROM pg_last_committed_xact() x
                               JOIN pg_replication_origin o ON o.roident = x.roident
                              WHERE o.roname = ''$origin'')') s
SQL
}
ferry_sample_sql() { origin_sample_sql bench; }
ferry_slot_active() { bq source $DB "SELECT active FROM pg_replication_slots WHERE slot_name = 'bench'" 2>/dev/null; }

# --------------------------------------------------------- tool: native
NATIVE_ORIGIN=""
native_setup() {
  local conn
  bq target postgres "CREATE DATABASE $DB" >/dev/null || return 1
  pg_dump --schema-only -d "$SRC" | psql -X -q -v ON_ERROR_STOP=1 -d "$TGT" >"$RUN_DIR/schema.log" 2>&1 \
    || { bench_log "  schema restore failed: $(tail -n 3 "$RUN_DIR/schema.log" | tr '\n' ' ')"; return 1; }
  bq source $DB "CREATE PUBLICATION benchpub FOR ALL TABLES" >/dev/null || return 1
  conn="host=$SOURCE_SOCK port=$SOURCE_PORT dbname=$DB user=postgres"
  bq target $DB "CREATE SUBSCRIPTION benchsub CONNECTION '$conn' PUBLICATION benchpub WITH (copy_data = true)" >/dev/null || return 1
  NATIVE_ORIGIN=$(bq target $DB "SELECT 'pg_' || oid FROM pg_subscription WHERE subname = 'benchsub'")
}
native_synced() {  # every table copied (ready) and the apply worker streaming
  [ "$(bq target $DB "SELECT count(*) FILTER (WHERE srsubstate <> 'r') = 0 AND count(*) > 0 FROM pg_subscription_rel" 2>/dev/null)" = t ] \
    && [ "$(bq source $DB "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'benchsub'" 2>/dev/null)" = 1 ]
}
native_applied_ge() {  # reported by the apply worker to its walsender
  bq source $DB "SELECT replay_lsn >= '$1' FROM pg_stat_replication WHERE application_name = 'benchsub'" 2>/dev/null
}
native_pause() {
  local i
  bq target $DB "ALTER SUBSCRIPTION benchsub DISABLE" >/dev/null || return 1
  for (( i = 0; i < 600; i++ )); do   # the apply worker and its walsender gone
    [ "$(bq target $DB "SELECT count(*) FROM pg_stat_subscription WHERE subname = 'benchsub' AND pid IS NOT NULL" 2>/dev/null)" = 0 ] \
      && [ "$(bq source $DB "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'benchsub' AND active" 2>/dev/null)" = 0 ] && return 0
    sleep 0.1
  done
  bench_log "  WARNING: the subscription's worker did not stop within 60 s"
  return 1
}
native_pids() {
  echo "-"
  bq source $DB "SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'benchsub'" 2>/dev/null
  bq target $DB "SELECT string_agg(pid::text, ',') FROM pg_stat_subscription WHERE subname = 'benchsub' AND relid IS NULL" 2>/dev/null
}
native_resume() { bq target $DB "ALTER SUBSCRIPTION benchsub ENABLE" >/dev/null; }
native_teardown() {
  bq target $DB "DROP SUBSCRIPTION IF EXISTS benchsub" >/dev/null 2>&1 \
    || bench_log "  WARNING: DROP SUBSCRIPTION failed"
  bq target postgres "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
  # leftovers (a failed drop, table sync slots)
  bq source $DB "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE active_pid IS NOT NULL" >/dev/null 2>&1
  sleep 0.5
  bq source $DB "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots" >/dev/null 2>&1
  bq source $DB "DROP PUBLICATION IF EXISTS benchpub" >/dev/null 2>&1
}
native_sample_sql() { origin_sample_sql "$NATIVE_ORIGIN" benchsub; }
native_slot_active() { bq source $DB "SELECT active FROM pg_replication_slots WHERE slot_name = 'benchsub'" 2>/dev/null; }

# --------------------------------------------------------------- phases
# sampler_start TOOL FILE: one psql session on the source writes a sample
# every SAMPLE_S seconds into FILE ("time lag_bytes lag_s replay_lsn_lag_bytes replay_lag_s
# window_bytes", "-" when unknown), the first after one second of load;
# sampler_stop FILE ends it
sampler_start() {
  {
    echo '\pset null -'
    echo "\\pset fieldsep ' '"
    echo "SELECT dblink_connect('t', 'host=$TARGET_SOCK port=$TARGET_PORT dbname=$DB user=postgres') \\gset"
    echo 'SELECT pg_sleep(1) \gset'
    "${1}_sample_sql"; echo " \\watch $SAMPLE_S"
  } > "$2.sql"
  setsid psql -XAtq -h "$SOURCE_SOCK" -p "$SOURCE_PORT" -U postgres -d postgres -f "$2.sql" > "$2" 2> "$2.err" &
  SAMPLER_PID=$!
  bench_track "$SAMPLER_PID"
}
sampler_stop() {
  kill -TERM "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null
  bench_untrack "$SAMPLER_PID"
  [ -s "$1.err" ] && bench_log "  sampler: $(head -n 3 "$1.err" | tr '\n' ' ')"
}
# cpu_snapshot TOOL: "client walsender target" CPU seconds used so far
# (utime + stime) by the tool's pipeline processes ("-" when none)
CLK_TCK=$(getconf CLK_TCK)
cpu_of() {  # comma-separated pids -> seconds, or -
  local p total="" v
  for p in ${1//,/ }; do
    v=$(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null) || continue
    [ -n "$v" ] && total=$(( ${total:-0} + v ))
  done
  [ -n "$total" ] && awk -v t="$total" -v h="$CLK_TCK" 'BEGIN { printf "%.2f", t / h }' || echo -
}
cpu_snapshot() {
  local c w t
  { read -r c; read -r w; read -r t; } <<< "$("${1}_pids")"
  echo "$(cpu_of "${c:--}") $(cpu_of "${w:--}") $(cpu_of "${t:--}")"
}
cpu_add() {  # cpu_add TOOL MEAS "BEFORE" "AFTER": record the differences
  local tool=$1 meas=$2 before after name i
  read -r -a before <<< "$3"; read -r -a after <<< "$4"
  i=0
  for name in cpu_client_s cpu_walsender_s cpu_target_s; do
    if [ "${after[$i]:--}" != - ]; then
      add "$tool" "$meas" "$name" "$(awk -v a="${before[$i]:--}" -v b="${after[$i]}" 'BEGIN { if (a == "-") a = 0; printf "%.2f", b - a }')"
    fi
    i=$(( i + 1 ))
  done
}

# stats FILE COLUMN [DECIMALS]: "max mean n" over the known values
median() {  # numbers on stdin -> median or empty
  tr ' ' '\n' | grep -E '^-?[0-9.]+$' | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) exit; if (NR % 2) printf "%s", v[(NR + 1) / 2]; else printf "%.6g", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
stats() {
  awk -v c="$2" -v d="${3:-3}" '$c != "-" && $c != "" { n++; s += $c; if (n == 1 || $c + 0 > m + 0) m = $c }
    END { if (n) printf "%s %.*f %d", m, d, s / n, n; else printf "- - 0" }' "$1" 2>/dev/null
}

# wait_caught_up TOOL LSN ROWS_SQL ROWS_EXPECTED T0: polls (every ~0.1 s) until
# the tool reports the LSN applied (CU_LSN) and the target's ROWS_SQL returns
# ROWS_EXPECTED (CU_ROWS), both in seconds since T0 (ns); 1 on timeout.
# CU_ACTIVE: when the replication slot was first seen in use.
wait_caught_up() {
  local tool=$1 lsn=$2 sql=$3 exp=$4 t0=$5 t v deadline
  CU_LSN=""; CU_ROWS=""; CU_ACTIVE=""
  deadline=$(( $(now_ns) + TIMEOUT * 1000000000 ))
  # each check is timed from just before its own query (whose snapshot is
  # taken right after); one round of checks takes ~50 ms
  while :; do
    if [ -z "$CU_ACTIVE" ]; then
      t=$(now_ns); v=$("${tool}_slot_active"); [ "$v" = t ] && CU_ACTIVE=$(secs_since "$t0" "$t")
    fi
    if [ -z "$CU_ROWS" ]; then
      t=$(now_ns); v=$(bq target $DB "$sql" 2>/dev/null); [ "$v" = "$exp" ] && CU_ROWS=$(secs_since "$t0" "$t")
    fi
    if [ -z "$CU_LSN" ]; then
      t=$(now_ns); v=$("${tool}_applied_ge" "$lsn"); [ "$v" = t ] && CU_LSN=$(secs_since "$t0" "$t")
    fi
    [ -n "$CU_ROWS" ] && [ -n "$CU_LSN" ] && return 0
    if [ "$tool" = ferry ] && ! ferry_alive; then bench_log "  ferry is no longer running"; return 1; fi
    [ "$t" -lt "$deadline" ] || { bench_log "  timed out after ${TIMEOUT}s (rows: ${CU_ROWS:-no}, lsn: ${CU_LSN:-no})"; return 1; }
    sleep 0.05
  done
}
wait_for() {  # wait_for SECS CMD...: poll until CMD succeeds (gives up if it returns 2)
  local secs=$1 deadline rc; shift
  deadline=$(( $(now_ns) + secs * 1000000000 ))
  while :; do
    "$@"; rc=$?
    [ "$rc" -eq 0 ] && return 0
    [ "$rc" -eq 2 ] && return 1
    [ "$(now_ns)" -lt "$deadline" ] || { bench_log "  timed out after ${secs}s"; return 1; }
    sleep 0.2
  done
}

declare -A VAL CHK
add() { VAL["$1|$2|$3"]="${VAL["$1|$2|$3"]:-} $4"; }          # tool meas metric value
chk() { CHK["$1|$2"]="${CHK["$1|$2"]:-} $3"; }                  # tool meas ok|FAIL

# phase_check TOOL MEAS: compare the target with the source, record ok/FAIL
phase_check() {
  local why; why=$(check_target)
  if [ -z "$why" ]; then chk "$1" "$2" ok; return 0; fi
  chk "$1" "$2" FAIL; bench_log "  $1 $2: target does not match: $why"; return 1
}

HIST_SQL="SELECT count(*) FROM pgbench_history"
END_SQL="SELECT pg_current_wal_lsn(), (SELECT count(*) FROM pgbench_history)"
pgbench_load() {  # pgbench_load NAME [pgbench options]: sets PGB_TXNS PGB_TPS
  local name=$1; shift
  run_bg "$RUN_DIR/pgbench-$name.log" "${PGB[@]}" -n -c "$CLIENTS" -j "$PGB_THREADS" -T "$DURATION" "$@" "$DB"
  PGB_TXNS=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$RUN_DIR/pgbench-$name.log")
  PGB_TPS=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$RUN_DIR/pgbench-$name.log" | awk '{ printf "%.1f", $1 }')
  if [ "$RUN_RC" -ne 0 ] || [ -z "$PGB_TXNS" ]; then
    bench_log "  pgbench $name failed ($RUN_RC): $(tail -n 3 "$RUN_DIR/pgbench-$name.log" | tr '\n' ' ')"
    PGB_TXNS=""; return 1
  fi
}

phase_live() {  # phase_live TOOL MEAS [pgbench options]
  local tool=$1 meas=$2 f t_end lsn hist st; shift 2
  f="$RUN_DIR/samples-$meas"
  sampler_start "$tool" "$f"
  pgbench_load "$meas" "$@"
  t_end=$(now_ns)
  IFS='|' read -r lsn hist <<< "$(bq source $DB "$END_SQL")"
  sampler_stop "$f"
  [ -n "$PGB_TXNS" ] || { chk "$tool" "$meas" FAIL; return 1; }
  add "$tool" "$meas" txns "$PGB_TXNS"; add "$tool" "$meas" tps "$PGB_TPS"
  read -r mx mean n <<< "$(stats "$f" 2 0)"
  add "$tool" "$meas" lag_max_bytes "$mx"; add "$tool" "$meas" lag_mean_bytes "$mean"
  read -r mx mean n <<< "$(stats "$f" 3 4)"
  add "$tool" "$meas" lag_max_s "$mx"; add "$tool" "$meas" lag_mean_s "$mean"
  add "$tool" "$meas" lag_median_s "$(awk '$3 != "-" && $3 != "" { print $3 }' "$f" | median | awk '{ printf "%.4f", $1 }')"
  add "$tool" "$meas" samples "$n"
  if [ "$tool" = native ]; then
    read -r mx mean n <<< "$(stats "$f" 4 0)"
    add "$tool" "$meas" replay_lsn_lag_max_bytes "$mx"; add "$tool" "$meas" replay_lsn_lag_mean_bytes "$mean"
    read -r mx mean n <<< "$(stats "$f" 5 4)"
    add "$tool" "$meas" replay_lag_max_s "$mx"; add "$tool" "$meas" replay_lag_mean_s "$mean"
  fi
  [ -n "$LOGS" ] && cp "$f" "$LOGS/r${ROUND}-${tool}-samples-${meas}.txt"
  if ! wait_caught_up "$tool" "$lsn" "$HIST_SQL" "$hist" "$t_end"; then chk "$tool" "$meas" FAIL; return 1; fi
  add "$tool" "$meas" catchup_s "$CU_LSN"; add "$tool" "$meas" catchup_rows_s "$CU_ROWS"
  phase_check "$tool" "$meas"; st=$?
  bench_log "  $tool $meas: $PGB_TXNS txns ($PGB_TPS tps), lag max $(stats "$f" 2 | cut -d' ' -f1) B / $(stats "$f" 3 | cut -d' ' -f1) s, caught up after ${CU_ROWS} s (rows) / ${CU_LSN} s (LSN)"
  return $st
}

phase_drain() {
  local tool=$1 meas=drain t0 lsn hist rate rate2
  "${tool}_pause" || { chk "$tool" "$meas" FAIL; return 1; }
  pgbench_load "$meas" || { "${tool}_resume"; chk "$tool" "$meas" FAIL; return 1; }
  IFS='|' read -r lsn hist <<< "$(bq source $DB "$END_SQL")"
  add "$tool" "$meas" txns "$PGB_TXNS"; add "$tool" "$meas" tps "$PGB_TPS"
  add "$tool" "$meas" backlog_bytes "$(bq source $DB "SELECT pg_wal_lsn_diff('$lsn', confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = '$([ "$tool" = ferry ] && echo bench || echo benchsub)'")"
  bq source postgres "CHECKPOINT" >/dev/null; bq target postgres "CHECKPOINT" >/dev/null
  t0=$(now_ns)
  "${tool}_resume"
  if ! wait_caught_up "$tool" "$lsn" "$HIST_SQL" "$hist" "$t0"; then chk "$tool" "$meas" FAIL; return 1; fi
  # the pipeline's processes started with the resume: their totals are the drain's
  cpu_add "$tool" "$meas" "" "$(cpu_snapshot "$tool")"
  rate=$(awk -v n="$PGB_TXNS" -v s="$CU_ROWS" 'BEGIN { if (s > 0) printf "%.1f", n / s }')
  add "$tool" "$meas" drain_s "$CU_ROWS"; add "$tool" "$meas" drain_lsn_s "$CU_LSN"; add "$tool" "$meas" rate_tps "$rate"
  add "$tool" "$meas" connect_s "${CU_ACTIVE:--}"
  rate2=$(awk -v n="$PGB_TXNS" -v s="$CU_ROWS" -v c="${CU_ACTIVE:-0}" 'BEGIN { if (s - c > 0) printf "%.1f", n / (s - c) }')
  add "$tool" "$meas" rate_streaming_tps "${rate2:--}"
  bench_log "  $tool drain: backlog $PGB_TXNS txns, streaming again after ${CU_ACTIVE:-?} s, caught up after ${CU_ROWS} s (rows) / ${CU_LSN} s (LSN): $rate txn/s (${rate2:-?} txn/s once streaming)"
  phase_check "$tool" "$meas"
}

phase_big() {
  local tool=$1 meas=big t0 t1 lsn rss="" cpu0
  if [ "$tool" = ferry ]; then
    ferry_note_hwm
    # reset VmHWM to the current RSS, so that it reads the peak during this phase
    echo 5 > "/proc/$FERRY_PID/clear_refs" 2>/dev/null || bench_log "  WARNING: cannot reset ferry's VmHWM"
  fi
  cpu0=$(cpu_snapshot "$tool")
  t0=$(now_ns)
  bq source $DB "INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, $BIG_ROWS) g" >/dev/null \
    || { chk "$tool" "$meas" FAIL; return 1; }
  t1=$(now_ns)
  lsn=$(bq source $DB "SELECT pg_current_wal_lsn()")
  add "$tool" "$meas" insert_s "$(secs_since "$t0" "$t1")"
  if ! wait_caught_up "$tool" "$lsn" "SELECT count(*) FROM big WHERE id = $BIG_ROWS" 1 "$t1"; then
    chk "$tool" "$meas" FAIL; return 1
  fi
  add "$tool" "$meas" apply_s "$CU_ROWS"; add "$tool" "$meas" apply_lsn_s "$CU_LSN"
  cpu_add "$tool" "$meas" "$cpu0" "$(cpu_snapshot "$tool")"
  if [ "$tool" = ferry ]; then rss=$(ferry_hwm); add "$tool" "$meas" rss_kb "${rss:--}"; ferry_note_hwm; fi
  bench_log "  $tool big: inserted in $(secs_since "$t0" "$t1") s, on the target ${CU_ROWS} s after the commit (LSN ${CU_LSN} s)${rss:+, ferry VmHWM $(( rss / 1024 )) MB}"
  phase_check "$tool" "$meas"
}

reset_source() {
  bq source $DB "TRUNCATE pgbench_history, big" >/dev/null && bq source $DB "VACUUM ANALYZE" >/dev/null
}

run_tool() {  # run_tool TOOL ROUND
  local tool=$1 t0 lsn hist
  RUN_DIR="$BENCH_TMP/run-$tool"; rm -rf "$RUN_DIR"; mkdir -p "$RUN_DIR"
  reset_source || bench_die "could not reset the source"
  bq target postgres "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
  [ "$tool" = ferry ] && bq target postgres "CREATE DATABASE $DB" >/dev/null
  bq source postgres "CHECKPOINT" >/dev/null; bq target postgres "CHECKPOINT" >/dev/null; sync
  bench_log " $tool: initial sync"
  t0=$(now_ns)
  if ! "${tool}_setup" || ! wait_for "$TIMEOUT" "${tool}_synced"; then
    bench_log "  $tool: initial sync failed"; chk "$tool" sync FAIL
  else
    IFS='|' read -r lsn hist <<< "$(bq source $DB "$END_SQL")"
    if wait_caught_up "$tool" "$lsn" "$HIST_SQL" "$hist" "$t0"; then
      add "$tool" sync sync_s "$(secs_since "$t0")"
      phase_check "$tool" sync
      bench_log "  $tool: synced after $(secs_since "$t0") s"
      bq source postgres "CHECKPOINT" >/dev/null; bq target postgres "CHECKPOINT" >/dev/null
      phase_live "$tool" live_n -N
      phase_live "$tool" live_tpcb
      [ "$RATE" -gt 0 ] && phase_live "$tool" live_rate -N -R "$RATE"
      if [ -z "${LIVE_ONLY:-}" ]; then  # LIVE_ONLY=1: only the live phases (quick lag experiments)
        phase_drain "$tool"
        phase_big "$tool"
      fi
      [ "$tool" = ferry ] && ferry_status_check
    else
      chk "$tool" sync FAIL
    fi
  fi
  "${tool}_teardown"
  if [ "$tool" = ferry ]; then
    [ "$FERRY_PEAK_KB" -gt 0 ] && add ferry rss peak_rss_kb "$FERRY_PEAK_KB"
    local n; n=$(cat "$RUN_DIR"/ferry-*.log 2>/dev/null | grep -E ' (ERROR|WARNING): ' | grep -cv "$FERRY_EXPECTED")
    FERRY_ERRS=$(( FERRY_ERRS + n ))
    if [ "$n" -gt 0 ]; then
      bench_log "  ferry logged $n ERROR/WARNING lines:"
      cat "$RUN_DIR"/ferry-*.log | grep -E ' (ERROR|WARNING): ' | grep -v "$FERRY_EXPECTED" | head -n 10 | sed 's/^/      /' >&2
    fi
  fi
  if [ -n "$LOGS" ]; then for f in "$RUN_DIR"/*.log; do [ -e "$f" ] && cp "$f" "$LOGS/r${ROUND}-${tool}-$(basename "$f")"; done; fi
  rm -rf "$RUN_DIR"
}

bench_log "source: $(mb "$DB_SIZE") MB; loads of ${DURATION}s with $CLIENTS clients; big transaction $BIG_ROWS rows"
read -r -a TOOL_ARR <<< "$TOOLS"
NT=${#TOOL_ARR[@]}
for (( ROUND = 1; ROUND <= ROUNDS; ROUND++ )); do
  order=()
  for (( i = 0; i < NT; i++ )); do order+=("${TOOL_ARR[$(( (i + ROUND - 1) % NT ))]}"); done
  bench_log "round $ROUND/$ROUNDS: ${order[*]}"
  for t in "${order[@]}"; do run_tool "$t"; done
done
# server logs: errors other than the expected ones (workers that DROP
# SUBSCRIPTION or a slot drop terminates)
BENIGN='terminating logical replication worker due to administrator command|terminating connection due to administrator command'
for s in source target; do
  if [ $s = source ]; then d=$SOURCE_DATA; else d=$TARGET_DATA; fi
  n=$(grep -E '(ERROR|FATAL|PANIC):' "$d/server.log" 2>/dev/null | grep -cvE "$BENIGN")
  if [ "$n" -gt 0 ]; then
    bench_log "$s server log has $n ERROR/FATAL lines:"
    grep -E '(ERROR|FATAL|PANIC):' "$d/server.log" | grep -vE "$BENIGN" | head -n 10 | sed 's/^/      /' >&2
  fi
  [ -n "$LOGS" ] && cp "$d/server.log" "$LOGS/server-$s.log"
done

# ---------------------------------------------------------------- report
ratio() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b }'; }
med() { echo "${VAL["$1|$2|$3"]:-}" | median; }
status() {  # tool meas -> ok / FAIL / - (not run)
  local c=${CHK["$1|$2"]:-}
  if [ -z "$c" ]; then echo -; elif [[ " $c " == *" FAIL "* ]]; then echo FAIL; else echo ok; fi
}
has() { case " $TOOLS " in *" $1 "*) return 0 ;; esac; return 1; }

# rows: measurement|metric|label|scale (1 or 1024 for KB->MB)|ratio?
LIVE_ROWS='live|tps|source tps|1|
live|lag_max_bytes|lag max (bytes)|1|r
live|lag_mean_bytes|lag mean (bytes)|1|r
live|lag_max_s|lag max (s)|1|r
live|lag_mean_s|lag mean (s)|1|r
live|lag_median_s|lag median (s)|1|r
live|replay_lsn_lag_max_bytes|replay_lsn lag max (bytes)|1|
live|replay_lsn_lag_mean_bytes|replay_lsn lag mean (bytes)|1|
live|replay_lag_max_s|replay_lag max (s)|1|
live|replay_lag_mean_s|replay_lag mean (s)|1|
live|catchup_s|catch-up, LSN (s)|1|r
live|catchup_rows_s|catch-up, rows (s)|1|r'
ROWS="sync|sync_s|initial sync (s)|1|
$(for m in live_n live_tpcb live_rate; do echo "${LIVE_ROWS//live|/$m|}"; done)
drain|txns|backlog (txns)|1|
drain|backlog_bytes|backlog (WAL bytes)|1|
drain|drain_s|drain time, rows (s)|1|r
drain|drain_lsn_s|drain time, LSN (s)|1|r
drain|connect_s|streaming again after (s)|1|r
drain|rate_tps|drain rate (txn/s)|1|r
drain|rate_streaming_tps|drain rate once streaming (txn/s)|1|r
drain|cpu_client_s|CPU s, ferry process|1|
drain|cpu_walsender_s|CPU s, source walsender|1|r
drain|cpu_target_s|CPU s, target apply backend(s)|1|r
big|insert_s|insert on source (s)|1|
big|apply_s|commit -> applied, rows (s)|1|r
big|apply_lsn_s|commit -> applied, LSN (s)|1|r
big|cpu_client_s|CPU s, ferry process|1|
big|cpu_walsender_s|CPU s, source walsender|1|r
big|cpu_target_s|CPU s, target apply backend(s)|1|r
big|rss_kb|ferry VmHWM during (MB)|1024|
rss|peak_rss_kb|ferry peak RSS, whole run (MB)|1024|"

fmt() {  # value scale
  [ -n "$1" ] || { echo -; return; }
  if [ "$2" = 1024 ]; then awk -v v="$1" 'BEGIN { printf "%.1f", v / 1024 }'; else echo "$1"; fi
}

echo "ferry follow benchmark: pgbench scale $SCALE (database $(mb "$DB_SIZE") MB), loads of ${DURATION}s x $CLIENTS clients, big transaction $BIG_ROWS rows"
echo "rounds $ROUNDS (medians), ferry --jobs $JOBS, PostgreSQL $PGVER, $NCPU CPUs, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "both servers: $(printf '%s\n' "${BENCH_PG_SETTINGS[@]}" | grep -v '^log' | sed 's/ = /=/' | paste -sd' '); target also track_commit_timestamp=on"
has ferry && echo "ferry: ${FERRY_ORIG:-$FERRY} (sha256 $(sha256sum "$FERRY" | cut -c1-12))"
echo
hdr=$(printf '%-10s %-32s %14s %14s %13s' measurement metric ferry native ferry/native)
echo "$hdr"; echo "${hdr//?/-}"
prev=""
while IFS='|' read -r meas metric label sc rt; do
  f=$(has ferry && med ferry "$meas" "$metric"); n=$(has native && med native "$meas" "$metric")
  [ -z "$f" ] && [ -z "$n" ] && continue
  r=""; [ "$rt" = r ] && r=$(ratio "$f" "$n")
  m=$meas; [ "$meas" = "$prev" ] && m=""
  if [ "$meas" != "$prev" ] && [ "$meas" != rss ]; then
    printf '%-10s %-32s %14s %14s\n' "$meas" "check" "$(status ferry "$meas")" "$(status native "$meas")"; m=""
  fi
  printf '%-10s %-32s %14s %14s %13s\n' "$m" "$label" "$(fmt "$f" "$sc")" "$(fmt "$n" "$sc")" "${r:--}"
  prev=$meas
done <<< "$ROWS"
echo
echo "ratios are ferry/native: below 1 ferry lags less / catches up faster, except drain rate (above 1: ferry drains faster)"
echo "lag (bytes): source pg_current_wal_lsn() - the target's applied position (the tool's replication origin's remote_lsn)"
echo "lag (s): now() - source commit time of the last applied transaction (the target's commit timestamp of the tool's last commit)"
echo "replay_lsn / replay_lag: the subscription's walsender in pg_stat_replication (native only; as the apply worker reported it)"
echo "catch-up / drain / apply times: LSN = the tool's applied position (native: replay_lsn) reached the source's LSN at the end; rows = every transaction visible on the target"
echo

json_arr() { echo "${VAL["$1|$2|$3"]:-}" | xargs | sed 's/ /,/g; s/\(^\|,\)-\(,\|$\)/\1null\2/g; s/\(^\|,\)-\(,\|$\)/\1null\2/g'; }
for meas in sync live_n live_tpcb live_rate drain big rss; do
  j="{\"bench\":\"follow\",\"measurement\":\"$meas\",\"scale\":$SCALE,\"duration_s\":$DURATION,\"clients\":$CLIENTS,\"rounds\":$ROUNDS"
  [ "$meas" = big ] && j="$j,\"big_rows\":$BIG_ROWS"
  metrics=$(echo "$ROWS" | awk -F'|' -v m="$meas" '$1 == m { print $2 }')
  for meas2 in live_n live_tpcb live_rate; do [ "$meas" = "$meas2" ] && metrics="$metrics txns samples"; done
  [ "$meas" = drain ] && metrics="$metrics tps"
  for tool in $TOOLS; do
    j="$j,\"$tool\":{\"status\":\"$(status "$tool" "$meas" | sed 's/FAIL/failed/; s/^-$/n\/a/')\""
    for metric in $metrics; do
      v=$(med "$tool" "$meas" "$metric"); [ -n "${VAL["$tool|$meas|$metric"]:-}" ] || continue
      j="$j,\"$metric\":${v:-null},\"${metric}_runs\":[$(json_arr "$tool" "$meas" "$metric")]"
    done
    j="$j}"
  done
  [ "$meas" = rss ] && has ferry && j="$j,\"ferry_unexpected_log_lines\":$FERRY_ERRS,\"ferry_bad_exits\":$FERRY_BAD_EXITS,\"ferry_status_checks\":[$(echo $FERRY_STATUS | sed 's/[a-z]*/"&"/g; s/ /,/g')]"
  if has ferry && has native; then
    rj=""
    while IFS='|' read -r m2 metric label sc rt; do
      [ "$m2" = "$meas" ] && [ "$rt" = r ] || continue
      r=$(ratio "$(med ferry "$meas" "$metric")" "$(med native "$meas" "$metric")")
      rj="$rj,\"$metric\":${r:-null}"
    done <<< "$ROWS"
    [ -n "$rj" ] && j="$j,\"ferry_over_native\":{${rj#,}}"
  fi
  echo "$j}"
done

any_fail=0
for k in "${!CHK[@]}"; do [[ " ${CHK[$k]} " == *" FAIL "* ]] && any_fail=1; done
has ferry && [ "$FERRY_ERRS" -gt 0 ] && bench_log "ferry logged $FERRY_ERRS unexpected ERROR/WARNING lines in total (see above; LOGS=DIR keeps them)"
has ferry && [ "$FERRY_BAD_EXITS" -gt 0 ] && { bench_log "ferry exited with a non-zero status $FERRY_BAD_EXITS times after SIGTERM"; any_fail=1; }
case " $FERRY_STATUS " in *" mismatch "*) any_fail=1 ;; esac
bench_log "done; stopping servers"
[ "$any_fail" -eq 0 ] || exit 3
exit 0
