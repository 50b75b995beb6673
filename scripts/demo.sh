#!/usr/bin/env bash
# demo.sh: `make demo`. Starts two throwaway PostgreSQL servers, loads a
# pgbench database into the source, runs a write load on it, and migrates it
# live with ferry: check, start (clone + continuous replication under the
# load), status, catch-up, verify, and a checksum of every table. Leaves
# nothing running. (switchover and rollback arrive with the next milestone.)
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${SCALE:-10}
. tests/lib/tap.sh
. tests/lib/pg.sh
FERRY=${FERRY_DEMO:-$PWD/build/ferry}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

say "starting two local PostgreSQL 15 servers (source and target)"
pg_start source
pg_start target
echo "source: $SOURCE_CONN"
echo "target: $TARGET_CONN"

say "loading a pgbench database (scale $SCALE) into the source"
"$PGBIN/pgbench" -i -q -s "$SCALE" -h "$SOURCE_SOCK" -p "$SOURCE_PORT" -U postgres app 2>&1 | tail -1

say "ferry check"
"$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" check || true

say "write load on the source (pgbench, 4 clients, 30 s) while ferry start clones and follows"
"$PGBIN/pgbench" -n -c 4 -T 30 -h "$SOURCE_SOCK" -p "$SOURCE_PORT" -U postgres app >"$TEST_TMP/pgbench.log" 2>&1 &
LOAD=$!
sleep 1
t0=$(now)
"$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" start --jobs 2 >"$TEST_TMP/start.out" 2>"$TEST_TMP/start.err" &
FERRY_PID=$!
until [ "$(q target "SELECT phase FROM ferry.migration" 2>/dev/null)" = following ]; do
  kill -0 "$FERRY_PID" 2>/dev/null || { cat "$TEST_TMP/start.err"; exit 1; }
  sleep 0.2
done
t1=$(now)
sleep 5
say "ferry status (while the load runs)"
"$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" status
wait "$LOAD" || true
t2=$(now)
wait_applied ferry 120
t3=$(now)

say "ferry status (load finished, caught up)"
"$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" status

say "ferry verify (full comparison, while replication runs)"
t4=$(now)
if "$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" verify --jobs 2 2>"$TEST_TMP/verify.err"; then
  verified="identical (ferry verify, $(secs "$t4" "$(now)") s)"
else
  verified="DIFFERENT (see above)"
fi
kill -TERM "$FERRY_PID"; wait "$FERRY_PID" || true

say "report"
same=$( [ "$(db_checksum source)" = "$(db_checksum target)" ] && echo "identical (checksum of every table)" || echo "DIFFERENT" )
printf '  rows moved             %s (%s transactions during the migration)\n' \
  "$(q target "SELECT sum(rows) FROM ferry.copy_item")" "$(grep -Eo 'processed: [0-9]+' "$TEST_TMP/pgbench.log" | grep -Eo '[0-9]+' || echo '?')"
printf '  copy time              %s s (clone under load, until streaming began)\n' "$(secs "$t0" "$t1")"
printf '  catch-up time          %s s (from the end of the load to fully applied)\n' "$(secs "$t2" "$t3")"
printf '  changes applied        %s\n' "$(q target "SELECT changes || ' in ' || txns || ' transactions' FROM ferry.apply_progress")"
printf '  source vs target       %s; %s\n' "$same" "$verified"
printf '  write downtime         n/a yet (switchover is the next milestone)\n'
say "stopping the servers"
