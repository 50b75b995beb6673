#!/usr/bin/env bash
# clone.sh: time `ferry clone` against its peers on the same pgbench database.
#
# Usage: bench/clone.sh [SCALE] [--scale N] [--rounds N] [--jobs N]
#                       [--split SIZE|auto] [--tools LIST] [--timeout SECS]
#                       [--logs DIR] [--dataset pgbench|many] [--tables N]
# Each option also has an environment variable: SCALE (default 50, about
# 750 MB), ROUNDS (3), JOBS (2), SPLIT (auto), TOOLS (all, see below),
# TIMEOUT (per run, 7200 s), LOGS (keep every run's output in this directory),
# FERRY (build/ferry), PGBIN (/usr/lib/postgresql/15/bin), DUMP_OPTS (extra
# pg_dump options for dump-restore, e.g. "-Z0"), TMPDIR (where the servers
# live; needs about 6x the database size free), DATASET (pgbench, or many:
# bench/dataset_many.sql, TABLES tables (300) in four schemas with a
# long-tailed size distribution, 2-5 secondary indexes each, foreign keys,
# jsonb, TOASTed text, partitioned and keyless tables; SCALE 1 is ~85 MB
# there, and copy-floor, which copies pgbench_accounts, is left out).
#
# Two fresh servers with identical settings (bench/lib.sh) are started; the
# source gets `pgbench -i -s SCALE`. Every round runs every tool once, in an
# order rotated each round so that drift and noise hit all tools alike; each
# run gets a freshly created, empty target database (and, for the floor, the
# empty table) and starts after a CHECKPOINT on both servers. Tools:
#   ferry            ferry clone --jobs JOBS --split-tables-larger-than 0
#   ferry-split      ferry clone --jobs JOBS --split-tables-larger-than SPLIT
#   pgcopydb         pgcopydb clone --table-jobs JOBS --index-jobs JOBS
#   pgcopydb-split   the same plus --split-tables-larger-than SPLIT
#   dump-restore     pg_dump -Fd -j JOBS, then pg_restore -j JOBS (timed together)
#   dump-psql        pg_dump | psql
#   copy-floor       psql COPY pgbench_accounts TO STDOUT (binary) | psql COPY
#                    FROM STDIN into a pre-created empty table: the floor
# SPLIT auto = pgbench_accounts' size / JOBS (rounded up to a MB), so that
# the big table is split into JOBS parts.
#
# After each run the target is checked (row counts of every table, number of
# indexes) against the source; a run that fails or does not match is
# reported as FAIL. ferry's replication slot (and publication) "bench" is
# dropped on the source after each ferry run.
#
# Output: progress on stderr; on stdout a table (median and every round's
# wall time, peak RSS, ferry's ratio to each tool = ferry median / tool
# median) and then one JSON line per tool. Peak RSS is the largest single
# process of the tool's process tree (GNU time %M), client side only.
# Exit status: 0 all runs ok, 1 setup error, 3 some runs failed.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

ALL_TOOLS="ferry ferry-split pgcopydb pgcopydb-split dump-restore dump-psql copy-floor"
SCALE=${SCALE:-50}
ROUNDS=${ROUNDS:-3}
JOBS=${JOBS:-2}
SPLIT=${SPLIT:-auto}
TOOLS=${TOOLS:-$ALL_TOOLS}
TIMEOUT=${TIMEOUT:-7200}
LOGS=${LOGS:-}
FERRY=${FERRY:-$ROOT/build/ferry}
DUMP_OPTS=${DUMP_OPTS:-}
DATASET=${DATASET:-pgbench}
NTABLES=${TABLES:-300}
PGCOPYDB=${PGCOPYDB:-/usr/bin/pgcopydb}

usage() { sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --dataset) DATASET=$2; shift 2 ;;
    --dataset=*) DATASET=${1#*=}; shift ;;
    --tables) TABLES=$2; NTABLES=$2; shift 2 ;;
    --tables=*) TABLES=${1#*=}; NTABLES=$TABLES; shift ;;
    --scale) SCALE=$2; shift 2 ;;
    --scale=*) SCALE=${1#*=}; shift ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --rounds=*) ROUNDS=${1#*=}; shift ;;
    --jobs) JOBS=$2; shift 2 ;;
    --jobs=*) JOBS=${1#*=}; shift ;;
    --split) SPLIT=$2; shift 2 ;;
    --split=*) SPLIT=${1#*=}; shift ;;
    --tools) TOOLS=$2; shift 2 ;;
    --tools=*) TOOLS=${1#*=}; shift ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    --timeout=*) TIMEOUT=${1#*=}; shift ;;
    --logs) LOGS=$2; shift 2 ;;
    --logs=*) LOGS=${1#*=}; shift ;;
    -h|--help) usage; exit 0 ;;
    [0-9]*) SCALE=$1; shift ;;
    *) echo "clone.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
TOOLS=$(echo "$TOOLS" | tr ',' ' ')
for v in SCALE ROUNDS JOBS TIMEOUT; do
  case "${!v}" in ''|*[!0-9]*|0) echo "clone.sh: $v must be a positive integer" >&2; exit 2 ;; esac
done
for t in $TOOLS; do
  case " $ALL_TOOLS " in *" $t "*) ;; *) echo "clone.sh: unknown tool $t (known: $ALL_TOOLS)" >&2; exit 2 ;; esac
done
case "$FERRY" in /*) ;; *) FERRY="$PWD/$FERRY" ;; esac
case "$DATASET" in
  pgbench) ;;
  many)
    case "$NTABLES" in ''|*[!0-9]*|0) echo "clone.sh: TABLES must be a positive integer" >&2; exit 2 ;; esac
    # the floor pre-creates and copies pgbench_accounts: not in this dataset
    TOOLS=$(echo " $TOOLS " | sed 's/ copy-floor / /g' | xargs) ;;
  *) echo "clone.sh: --dataset must be pgbench or many, not $DATASET" >&2; exit 2 ;;
esac

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

# GNU time for peak RSS
TIMEBIN=/usr/bin/time
if [ ! -x "$TIMEBIN" ] && [ "$(id -u)" -eq 0 ]; then
  bench_log "installing the 'time' package (peak RSS)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null 2>&1; }
fi
[ -x "$TIMEBIN" ] || { bench_log "WARNING: /usr/bin/time missing, no peak RSS"; TIMEBIN=""; }
for b in psql pg_dump pg_restore pgbench; do
  [ -x "$PGBIN/$b" ] || bench_die "$PGBIN/$b not found (set PGBIN)"
done
case " $TOOLS " in *" pgcopydb"*) [ -x "$PGCOPYDB" ] || bench_log "WARNING: $PGCOPYDB not found, pgcopydb runs will fail" ;; esac
case " $TOOLS " in *" ferry"*) [ -x "$FERRY" ] || bench_log "WARNING: $FERRY not found or not executable (run make), ferry runs will fail" ;; esac

# space, ~15 MB per scale unit for each of: source, target, a dump
# directory, and WAL on both servers (max_wal_size 4GB lets it pile up)
need_mb=$(( SCALE * 16 * 6 + 500 ))
free_mb=$(df -Pm "$BENCH_TMP" | awk 'NR==2 {print $4}')
[ "$free_mb" -ge "$need_mb" ] || bench_die "need ~${need_mb} MB free in $BENCH_TMP, have ${free_mb} MB"
if [ -n "$LOGS" ]; then mkdir -p "$LOGS" || bench_die "cannot create $LOGS"; LOGS=$(cd "$LOGS" && pwd); fi

# ---------------------------------------------------------------- servers
bench_log "starting source and target servers in $BENCH_TMP"
bench_start source
bench_start target
DB=bench
SRC=$(bench_conninfo source $DB)
TGT=$(bench_conninfo target $DB)
SRC_URI=$(bench_uri source $DB)
TGT_URI=$(bench_uri target $DB)
bq source postgres "CREATE DATABASE $DB" || bench_die "create source database"

t0=$(date +%s)
if [ "$DATASET" = many ]; then
  bench_log "bench/dataset_many.sql: $NTABLES tables, scale $SCALE, on the source"
  psql -X -q -v ON_ERROR_STOP=1 -v tables="$NTABLES" -v scale="$SCALE" -h "$SOURCE_SOCK" -p "$SOURCE_PORT" -U postgres \
    -d "$DB" -f "$HERE/dataset_many.sql" >"$BENCH_TMP/pgbench.log" 2>&1 \
    || { tail -n 20 "$BENCH_TMP/pgbench.log" >&2; bench_die "dataset_many.sql failed"; }
else
  bench_log "pgbench -i -s $SCALE on the source"
  pgbench -i -s "$SCALE" -q -h "$SOURCE_SOCK" -p "$SOURCE_PORT" -U postgres "$DB" >"$BENCH_TMP/pgbench.log" 2>&1 \
    || { tail -n 20 "$BENCH_TMP/pgbench.log" >&2; bench_die "pgbench -i failed"; }
fi
bench_log "dataset $DATASET done in $(( $(date +%s) - t0 )) s"
bq source postgres "CHECKPOINT" >/dev/null

# what every clone must reproduce
TABLES=$(bq source $DB "SELECT string_agg(format('%I.%I', schemaname, relname), ' ' ORDER BY schemaname, relname) FROM pg_stat_user_tables")
expected_counts() {  # SERVER: "table=rows ..." for every source table
  local t q=""
  for t in $TABLES; do q="$q UNION ALL SELECT '$t', count(*) FROM $t"; done
  bq "$1" $DB "SELECT string_agg(t || '=' || n, ' ' ORDER BY t) FROM (${q# UNION ALL}) s(t, n)"
}
N_INDEXES_SQL="SELECT count(*) FROM pg_indexes WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'ferry')"
EXP_COUNTS=$(expected_counts source)
EXP_INDEXES=$(bq source $DB "$N_INDEXES_SQL")
# the largest table (pgbench_accounts for pgbench): the floor copies it, auto split cuts it in JOBS parts
BIG=$(bq source $DB "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables ORDER BY pg_table_size(relid) DESC LIMIT 1")
EXP_ACCOUNTS=$(bq source $DB "SELECT count(*) FROM $BIG")
DB_SIZE=$(bq source $DB "SELECT pg_database_size('$DB')")
ACC_SIZE=$(bq source $DB "SELECT pg_table_size('$BIG')")
PGVER=$(bq source postgres "SHOW server_version")
if [ "$SPLIT" = auto ]; then
  SPLIT="$(( (ACC_SIZE / JOBS + 1048575) / 1048576 ))MB"
fi
mb() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
bench_log "source: database $(mb "$DB_SIZE") MB, largest table $BIG $(mb "$ACC_SIZE") MB ($EXP_ACCOUNTS rows); split threshold $SPLIT"
# warm the OS cache the same for everyone (pgbench just wrote it anyway)
bq source $DB "SELECT count(*) FROM $BIG" >/dev/null

# ------------------------------------------------------------------ runs
reset_target() {
  bq target postgres "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null \
    && bq target postgres "CREATE DATABASE $DB" >/dev/null
}

drop_ferry_leftovers() {
  bq source $DB "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'bench' AND active_pid IS NOT NULL" >/dev/null 2>&1
  bq source $DB "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'bench'" >/dev/null \
    || bench_log "WARNING: could not drop replication slot bench on the source"
  bq source $DB "DROP PUBLICATION IF EXISTS bench" >/dev/null 2>&1 || true
}

# tool_cmd TOOL RUNDIR: print the command (one shell string) to time
tool_cmd() {
  local tool=$1 dir=$2
  case "$tool" in
    ferry) printf '%q ' "$FERRY" --source "$SRC" --target "$TGT" --name bench clone --jobs "$JOBS" --split-tables-larger-than 0 ;;
    ferry-split) printf '%q ' "$FERRY" --source "$SRC" --target "$TGT" --name bench clone --jobs "$JOBS" --split-tables-larger-than "$SPLIT" ;;
    pgcopydb) printf '%q ' "$PGCOPYDB" clone --source "$SRC_URI" --target "$TGT_URI" --table-jobs "$JOBS" --index-jobs "$JOBS" --dir "$dir/work" ;;
    pgcopydb-split) printf '%q ' "$PGCOPYDB" clone --source "$SRC_URI" --target "$TGT_URI" --table-jobs "$JOBS" --index-jobs "$JOBS" --dir "$dir/work" --split-tables-larger-than "$SPLIT" ;;
    dump-restore)
      # shellcheck disable=SC2086
      printf '%q ' pg_dump -Fd -j "$JOBS" $DUMP_OPTS -f "$dir/dump" -d "$SRC"
      printf '&& '
      printf '%q ' pg_restore -j "$JOBS" -d "$TGT" "$dir/dump" ;;
    dump-psql)
      printf '%q ' pg_dump -d "$SRC"; printf '| '
      printf '%q ' psql -X -q -v ON_ERROR_STOP=1 -d "$TGT"; printf '>/dev/null' ;;
    copy-floor)
      printf '%q ' psql -X -q -d "$SRC" -c "COPY pgbench_accounts TO STDOUT (FORMAT binary)"; printf '| '
      printf '%q ' psql -X -q -v ON_ERROR_STOP=1 -d "$TGT" -c "COPY pgbench_accounts FROM STDIN (FORMAT binary)" ;;
  esac
}

# check_target TOOL: empty output when the target matches the source
check_target() {
  local got n
  if [ "$1" = copy-floor ]; then
    got=$(bq target $DB "SELECT count(*) FROM pgbench_accounts" 2>&1)
    [ "$got" = "$EXP_ACCOUNTS" ] || echo "pgbench_accounts has $got rows, expected $EXP_ACCOUNTS"
    return
  fi
  got=$(expected_counts target 2>&1)
  [ "$got" = "$EXP_COUNTS" ] || echo "row counts differ: got [$got] expected [$EXP_COUNTS]"
  n=$(bq target $DB "$N_INDEXES_SQL" 2>&1)
  [ "$n" = "$EXP_INDEXES" ] || echo "$n indexes on the target, expected $EXP_INDEXES"
}

declare -A RUNS RSS NFAIL
for t in $TOOLS; do RUNS[$t]=""; RSS[$t]=0; NFAIL[$t]=0; done

# run_one TOOL ROUND: prepare, time, check; appends to RUNS/RSS/NFAIL
run_one() {
  local tool=$1 round=$2 dir="$BENCH_TMP/run" log cmd rc t0 t1 secs rss why="" pid
  rm -rf "$dir" && mkdir -p "$dir"
  log="$dir/output.log"
  reset_target || bench_die "could not recreate the target database"
  if [ "$tool" = copy-floor ]; then
    pg_dump -s -t public.pgbench_accounts --section=pre-data -d "$SRC" | psql -X -q -v ON_ERROR_STOP=1 -d "$TGT" >/dev/null \
      || bench_die "could not pre-create pgbench_accounts on the target"
  fi
  bq source postgres "CHECKPOINT" >/dev/null; bq target postgres "CHECKPOINT" >/dev/null; sync
  cmd=$(tool_cmd "$tool" "$dir")
  echo "# $cmd" > "$log"
  if [ "${tool%-split}" = ferry ] && [ ! -x "$FERRY" ]; then
    rc=127; secs=0; rss=0; echo "$FERRY: not found or not executable" >> "$log"
  else
    t0=$(date +%s%N)
    # timeout puts the run in its own process group, which the EXIT trap kills
    local timer=()
    [ -n "$TIMEBIN" ] && timer=("$TIMEBIN" -f %M -o "$dir/rss")
    timeout -k 30 "$TIMEOUT" "${timer[@]}" bash -c "set -o pipefail; $cmd" >>"$log" 2>&1 &
    pid=$!
    bench_track "$pid"
    wait "$pid"; rc=$?
    bench_untrack "$pid"
    t1=$(date +%s%N)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
    rss=$(tail -n 1 "$dir/rss" 2>/dev/null | grep -E '^[0-9]+$' || echo 0)
  fi
  [ "${tool%-split}" = ferry ] && drop_ferry_leftovers
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then why="timed out after ${TIMEOUT}s"
  elif [ "$rc" -ne 0 ]; then why="exit status $rc"
  else why=$(check_target "$tool" | tr -s '\n ' '  ' | sed 's/ *$//'); fi
  if [ -n "$LOGS" ]; then cp "$log" "$LOGS/r${round}-${tool}.log"; fi
  if [ -z "$why" ]; then
    RUNS[$tool]="${RUNS[$tool]} $secs"
    [ "$rss" -gt "${RSS[$tool]}" ] && RSS[$tool]=$rss
    bench_log "  $tool: ${secs} s, peak RSS $(( rss / 1024 )) MB"
  else
    RUNS[$tool]="${RUNS[$tool]} FAIL"
    NFAIL[$tool]=$(( NFAIL[$tool] + 1 ))
    bench_log "  $tool: FAILED ($why) after ${secs} s; last output:"
    tail -n 8 "$log" | sed 's/^/      /' >&2
  fi
  rm -rf "$dir"
}

read -r -a TOOL_ARR <<< "$TOOLS"
NT=${#TOOL_ARR[@]}
for (( r = 1; r <= ROUNDS; r++ )); do
  order=()
  for (( i = 0; i < NT; i++ )); do order+=("${TOOL_ARR[$(( (i + r - 1) % NT ))]}"); done
  bench_log "round $r/$ROUNDS: ${order[*]}"
  for t in "${order[@]}"; do run_one "$t" "$r"; done
done
reset_target >/dev/null 2>&1

# --------------------------------------------------------------- report
median() {  # numbers on stdin (FAIL ignored) -> median or empty
  tr ' ' '\n' | grep -E '^[0-9.]+$' | sort -n | awk '{ v[NR] = $1 } END {
    if (NR == 0) exit; if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b }'; }
declare -A MED
for t in $TOOLS; do MED[$t]=$(echo "${RUNS[$t]}" | median); done
FERRY_TOOLS=""
for f in ferry ferry-split; do case " $TOOLS " in *" $f "*) FERRY_TOOLS="$FERRY_TOOLS $f" ;; esac; done

echo "ferry clone benchmark: dataset $DATASET$([ "$DATASET" = many ] && echo " ($NTABLES tables)"), scale $SCALE, database $(mb "$DB_SIZE") MB, largest table $BIG $(mb "$ACC_SIZE") MB ($EXP_ACCOUNTS rows)"
echo "jobs $JOBS, rounds $ROUNDS, split threshold $SPLIT, PostgreSQL $PGVER, $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "both servers: $(printf '%s\n' "${BENCH_PG_SETTINGS[@]}" | grep -v '^log' | sed 's/ = /=/' | paste -sd' ')"
echo
hdr=$(printf '%-15s %9s  %-28s %8s' tool median_s "runs_s (round 1..$ROUNDS)" rss_MB)
for f in $FERRY_TOOLS; do hdr="$hdr $(printf '%12s' "$f/tool")"; done
echo "$hdr"
echo "${hdr//?/-}"
for t in $TOOLS; do
  runs=$(echo "${RUNS[$t]}" | xargs)
  rssmb=-; [ "${RSS[$t]}" -gt 0 ] && rssmb=$(( RSS[$t] / 1024 ))
  line=$(printf '%-15s %9s  %-28s %8s' "$t" "${MED[$t]:-FAIL}" "$runs" "$rssmb")
  for f in $FERRY_TOOLS; do r=$(ratio "${MED[$f]}" "${MED[$t]}"); line="$line $(printf '%12s' "${r:-n/a}")"; done
  echo "$line"
done
echo
for t in $TOOLS; do
  ok=$(( ROUNDS - NFAIL[$t] ))
  if [ "$ok" -eq "$ROUNDS" ]; then st=ok; elif [ "$ok" -gt 0 ]; then st=partial; else st=failed; fi
  runs=$(echo "${RUNS[$t]}" | xargs | sed 's/FAIL/null/g; s/ /,/g')
  j="{\"bench\":\"clone\",\"tool\":\"$t\",\"status\":\"$st\",\"ok_runs\":$ok,\"rounds\":$ROUNDS"
  j="$j,\"median_s\":${MED[$t]:-null},\"runs_s\":[$runs],\"peak_rss_kb\":$([ "$ok" -gt 0 ] && echo "${RSS[$t]}" || echo null)"
  for f in $FERRY_TOOLS; do r=$(ratio "${MED[$f]}" "${MED[$t]}"); j="$j,\"${f//-/_}_ratio\":${r:-null}"; done
  j="$j,\"scale\":$SCALE,\"jobs\":$JOBS,\"split\":\"$SPLIT\",\"db_bytes\":$DB_SIZE}"
  echo "$j"
done

any_fail=0
for t in $TOOLS; do [ "${NFAIL[$t]}" -gt 0 ] && any_fail=1; done
bench_log "done; stopping servers"
[ "$any_fail" -eq 0 ] || exit 3
exit 0
