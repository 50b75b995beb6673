#!/usr/bin/env bash
# Found by a red-team helper: `ferry start` launched as soon as the rollback has recorded
# phase rolled_back (a supervisor restarting it once the reverse process
# exits, or an operator quick on the keys). The rollback still has work to
# do (it waits for the reverse slot on the target to be released, about a
# second while the old reverse ferry start notices), then asks rearmed():
# switchover_follow_again has meanwhile cleared rearm_lsn, so the rollback
# drops the forward slot the new ferry start follows from.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
start_following
OLDFP=$FP
"${F[@]}" switchover --yes --max-lag 5 >"$TEST_TMP/sw1.out" 2>"$TEST_TMP/sw1.err"
is $? 0 "first switchover: exit 0" || diag "$(tail -3 "$TEST_TMP/sw1.err")"
q target "INSERT INTO kv VALUES (-92, 'on the new primary', 0)" >/dev/null
sleep 2
"${F[@]}" rollback --yes --max-lag 10 >"$TEST_TMP/rb.out" 2>"$TEST_TMP/rb.err" &
RB=$!
for _ in $(seq 1 600); do [ "$(migration_phase)" = rolled_back ] && break; sleep 0.02; done
is "$(migration_phase)" rolled_back "the rollback recorded phase rolled_back"
ferry_start --jobs 2
wait_following ferry 90; ok $? "the new ferry start follows again"
for _ in $(seq 1 100); do [ "$(QDB=postgres q source "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'ferry' AND active")" = 1 ] && break; sleep 0.1; done
# the forward stream's connection drops once (a network blip) while the rollback is still finishing
if kill -0 "$RB" 2>/dev/null; then
  QDB=postgres q source "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'ferry' AND active" >/dev/null
  ok 0 "the forward stream's walsender ended while the rollback still runs"
else
  ok 0 "the rollback ended first"
fi
wait "$RB"; is $? 0 "rollback: exit 0" || diag "$(tail -3 "$TEST_TMP/rb.err")"
for _ in $(seq 1 100); do kill -0 "$OLDFP" 2>/dev/null || break; sleep 0.1; done
kill -TERM "$OLDFP" 2>/dev/null; wait "$OLDFP"
sleep 3
is "$(QDB=postgres q source "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'ferry'")" 1 "the forward slot it follows from still exists"
q source "INSERT INTO kv VALUES (-94, 'while following again', 0)" >/dev/null
wait_applied ferry 30; ok $? "and applies"
is "$(q target "SELECT count(*) FROM kv WHERE id = -94")" 1 "the target has what the source took since"
kill -TERM "$FP" 2>/dev/null; wait "$FP"
diag "$(grep -E 'ERROR|WARN' "$TEST_TMP/err" "$TEST_TMP/rb.err" | cut -c1-300 | tail -6)"
done_testing
