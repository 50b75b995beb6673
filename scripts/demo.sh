#!/usr/bin/env bash
# demo.sh: `make demo`. Starts two throwaway PostgreSQL servers, loads a
# pgbench database into the source, runs a write load on it, clones it live
# with ferry, and prints a report. Leaves nothing running.
#
# Today ferry has `check` and `clone`; continuous replication (`start`) and
# `switchover` arrive with the next milestones, and this demo will grow with
# them. The clone here is consistent as of its slot's snapshot while writes
# continue; the slot it leaves is where `ferry start` will stream from.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${SCALE:-10}
. tests/lib/tap.sh
. tests/lib/pg.sh
FERRY=${FERRY_DEMO:-$PWD/build/ferry}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "starting two local PostgreSQL 15 servers (source and target)"
pg_start source
pg_start target
echo "source: $SOURCE_CONN"
echo "target: $TARGET_CONN"

say "loading a pgbench database (scale $SCALE) into the source"
"$PGBIN/pgbench" -i -q -s "$SCALE" -h "$SOURCE_SOCK" -p "$SOURCE_PORT" -U postgres app 2>&1 | tail -1

say "ferry check"
"$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" check || true

say "write load on the source (pgbench, 4 clients) while ferry clones"
"$PGBIN/pgbench" -n -c 4 -T 600 -h "$SOURCE_SOCK" -p "$SOURCE_PORT" -U postgres app >"$TEST_TMP/pgbench.log" 2>&1 &
LOAD=$!
sleep 1
start=$(date +%s.%N)
"$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" clone --jobs 2 --split-tables-larger-than 50MB
end=$(date +%s.%N)
kill "$LOAD" 2>/dev/null; wait "$LOAD" 2>/dev/null || true

say "report"
rows_src=$(q source "SELECT count(*) FROM pgbench_accounts")
rows_tgt=$(q target "SELECT count(*) FROM pgbench_accounts")
printf '  clone wall time        %.1f s\n' "$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')"
printf '  rows in target         %s (source now %s: writes continue after the snapshot)\n' "$rows_tgt" "$rows_src"
printf '  copied as of LSN       %s\n' "$(q target "SELECT start_lsn FROM ferry.migration")"
printf '  tables / parts         %s\n' "$(q target "SELECT count(DISTINCT relname) || ' / ' || count(*) FROM ferry.copy_item")"
printf '  slot on the source     %s\n' "$(QDB=postgres q source "SELECT slot_name || ' (' || pg_size_pretty(pg_current_wal_lsn() - restart_lsn) || ' of WAL retained)' FROM pg_replication_slots")"
echo
echo "  next milestones: ferry start (stream changes), status, verify, switchover"
say "stopping the servers"
