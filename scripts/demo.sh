#!/usr/bin/env bash
# demo.sh: `make demo`. Starts two throwaway PostgreSQL servers, loads a
# pgbench database into the source, runs a write load on it, and migrates it
# live with ferry: check, start (clone + continuous replication under the
# load), status, catch-up, then a switchover while an application (4 writer
# processes, bench/writer.c, connecting through a file the switch hook
# rewrites) keeps writing; ferry start turns around and replicates the
# target's writes back to the source; ferry verify compares every row; the
# report: rows moved, copy and catch-up time, write downtime as ferry and as
# the application saw it, verify result, lost writes. Leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${SCALE:-10}
. tests/lib/tap.sh
. tests/lib/pg.sh
FERRY=${FERRY_DEMO:-$PWD/build/ferry}
WRITER=${WRITER_DEMO:-$PWD/build/writer}

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
# the table the demo's application writes to during the switchover
q source "CREATE TABLE app_writes (id bigserial PRIMARY KEY, client int NOT NULL, at timestamptz DEFAULT clock_timestamp())" >/dev/null

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

say "switchover while the application writes (ferry start keeps running)"
echo "$SOURCE_CONN" > "$TEST_TMP/app.conn"
cat > "$TEST_TMP/ferry.yaml" <<YAML
hooks:
  switch: "echo '$TARGET_CONN' > $TEST_TMP/app.conn"
YAML
"$WRITER" "$TEST_TMP/app.conn" 4 100 10 app_writes > "$TEST_TMP/writes.log" 2>&1 &
WP=$!
sleep 3
"$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" --config "$TEST_TMP/ferry.yaml" switchover --yes \
  > "$TEST_TMP/switch.out" 2> "$TEST_TMP/switch.err" || { tail -20 "$TEST_TMP/switch.err"; exit 1; }
cat "$TEST_TMP/switch.out"
wait "$WP" || true
downtime=$(grep -Eo 'write downtime +[0-9.]+ s' "$TEST_TMP/switch.out" | grep -Eo '[0-9.]+ s')

say "ferry verify (after the switch: the application's new rows came back to the source through reverse replication)"
for i in $(seq 1 100); do
  [ "$(q source "SELECT count(*) FROM app_writes")" = "$(q target "SELECT count(*) FROM app_writes")" ] && break; sleep 0.1
done
t4=$(now)
if "$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" verify --jobs 2 2>"$TEST_TMP/verify.err"; then
  verified="identical (ferry verify, $(secs "$t4" "$(now)") s)"
else
  verified="DIFFERENT (see above)"
fi

say "ferry status (switched; ferry start now replicates the target back to the source for rollback)"
sleep 2
"$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" status | head -8
kill -TERM "$FERRY_PID"; wait "$FERRY_PID" || true

say "report"
read -r cw nok <<<"$(awk -v sp="$SOURCE_SOCK" -v tp="$TARGET_SOCK" '
  $2 == "fail" && ff == "" && ($3 == sp || $3 == "-") { ff = $1 }
  $2 == "ok" { n++; if ($3 == tp && fo == "") fo = $1 }
  END { printf "%.3f %d\n", (fo - ff) / 1e6, n }' "$TEST_TMP/writes.log")"
awk '$2 == "ok" { print $5 }' "$TEST_TMP/writes.log" | sort > "$TEST_TMP/ok.ids"
q target "SELECT id FROM app_writes" | sort > "$TEST_TMP/tgt.ids"
lost=$(comm -23 "$TEST_TMP/ok.ids" "$TEST_TMP/tgt.ids" | wc -l)
printf '  rows moved             %s by the copy, %s transactions during the migration\n' \
  "$(q target "SELECT sum(rows) FROM ferry.copy_item")" "$(grep -Eo 'processed: [0-9]+' "$TEST_TMP/pgbench.log" | grep -Eo '[0-9]+' || echo '?')"
printf '  copy time              %s s (clone under load, until streaming began)\n' "$(secs "$t0" "$t1")"
printf '  catch-up time          %s s (from the end of the load to fully applied)\n' "$(secs "$t2" "$t3")"
printf '  changes applied        %s\n' "$(q target "SELECT changes || ' in ' || txns || ' transactions' FROM ferry.apply_progress WHERE migration = 'ferry'")"
printf '  write downtime         %s (ferry: freeze to switch hook done); %s s as the application saw it\n' "$downtime" "$cw"
printf '  application writes     %s acknowledged, %s lost\n' "$nok" "$lost"
printf '  verify                 %s\n' "$verified"
"$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" cleanup > /dev/null 2>&1 && echo "  cleanup                done: no slot, publication, origin or ferry schema left"
say "stopping the servers"
