#!/usr/bin/env bash
# Found by a red-team helper (held): the arc twice under pgbench load that straddles every edge:
# load on the source into the switchover, on the target into the rollback
# (its freeze), on the source again from the moment the rollback unfreezes
# it (retried until it takes writes) through ferry start following again.
# Keyed tables, REPLICA IDENTITY FULL, TRUNCATE, PK changes, partitions.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
start_following
S="$SQL/load"
load() {  # load SIDE SECONDS
  local sock port
  if [ "$1" = source ]; then sock=$SOURCE_SOCK port=$SOURCE_PORT; else sock=$TARGET_SOCK port=$TARGET_PORT; fi
  "$(pg_bin source)/pgbench" -n -T "$2" -c 2 -h "$sock" -p "$port" -U postgres -f "$S/churn.sql@5" -f "$S/truncate.sql@1" app >>"$TEST_TMP/load" 2>&1
}
# retry_load SIDE UNTIL_PID: pgbench runs of 1 s while UNTIL_PID lives (errors while frozen: rerun), then 3 s more
retry_load() { while kill -0 "$2" 2>/dev/null; do load "$1" 1; done; load "$1" 3; }
same() { is "$(db_checksum target)" "$(db_checksum source)" "$1"; }
for arc in 1 2; do
  load source 6 & LP=$!
  sleep 2
  "${F[@]}" switchover --yes --max-lag 5 --timeout 60 >"$TEST_TMP/sw$arc.out" 2>"$TEST_TMP/sw$arc.err"
  is $? 0 "arc $arc: switchover" || diag "$(tail -3 "$TEST_TMP/sw$arc.err")"
  wait "$LP"
  same "arc $arc: equal after the switchover"
  load target 3
  load target 6 & LP=$!
  sleep 2
  "${F[@]}" rollback --yes --timeout 60 >"$TEST_TMP/rb$arc.out" 2>"$TEST_TMP/rb$arc.err" & RB=$!
  retry_load source "$RB" & SL=$!
  wait "$RB"; is $? 0 "arc $arc: rollback" || diag "$(tail -3 "$TEST_TMP/rb$arc.err")"
  wait "$LP"
  for _ in $(seq 1 100); do kill -0 "$FP" 2>/dev/null || break; sleep 0.1; done
  kill -TERM "$FP" 2>/dev/null; wait "$FP"
  ferry_start --jobs 2
  wait "$SL"
  wait_following ferry 90; ok $? "arc $arc: follows again"
  wait_applied ferry 60; ok $? "arc $arc: caught up"
  same "arc $arc: equal while following again" || diag "$(grep -E 'ERROR|WARN' "$TEST_TMP/err" | tail -5)"
  is "$(q target "SELECT count(*) FROM ferry.unmatched")" 0 "arc $arc: nothing unmatched"
done
kill -TERM "$FP" 2>/dev/null; wait "$FP"
"${F[@]}" cleanup >"$TEST_TMP/cl.out" 2>&1; is $? 0 "cleanup"
is "$(slot_count source) $(slot_count target)" "0 0" "no slot left"
done_testing
