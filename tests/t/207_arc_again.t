#!/usr/bin/env bash
# The arc is repeatable: after a rollback the user tries again without
# recreating the target. `ferry start` after a rollback follows the source
# again (the target brought up to date: what the source took since the
# rollback arrives), and a second switchover succeeds with both sides equal
# by checksum and nothing lost.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
start_following
q source "INSERT INTO kv VALUES (-91, 'before the first switchover', 0)" >/dev/null
"${F[@]}" switchover --yes --max-lag 5 >"$TEST_TMP/sw1.out" 2>"$TEST_TMP/sw1.err"
is $? 0 "first switchover: exit 0" || diag "$(tail -3 "$TEST_TMP/sw1.err")"
q target "INSERT INTO kv VALUES (-92, 'on the new primary', 0)" >/dev/null
"${F[@]}" rollback --yes --max-lag 10 >"$TEST_TMP/rb.out" 2>"$TEST_TMP/rb.err"
is $? 0 "rollback: exit 0" || diag "$(tail -3 "$TEST_TMP/rb.err")"
for _ in $(seq 1 100); do kill -0 "$FP" 2>/dev/null || break; sleep 0.1; done
kill -TERM "$FP" 2>/dev/null; wait "$FP"
is "$(q source "SELECT count(*) FROM kv WHERE id IN (-91, -92)")" 2 "the source has both rows after the rollback"
q source "INSERT INTO kv VALUES (-93, 'after the rollback', 0)" >/dev/null
q source "UPDATE kv SET v = 'changed after the rollback' WHERE id = -91" >/dev/null

: >"$TEST_TMP/err"
ferry_start --jobs 2
wait_following ferry 90; ok $? "ferry start after the rollback follows again" || diag "$(grep -E 'ERROR|WARN' "$TEST_TMP/err" | tail -5)"
q source "INSERT INTO kv VALUES (-94, 'while following again', 0)" >/dev/null
wait_applied ferry 60; ok $? "and applies"
is "$(q target "SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM kv WHERE id IN (-94, -93, -92, -91)")" \
  "-94:while following again,-93:after the rollback,-92:on the new primary,-91:changed after the rollback" \
  "the target has what the source took since the rollback"
"${F[@]}" switchover --yes --max-lag 5 >"$TEST_TMP/sw2.out" 2>"$TEST_TMP/sw2.err"
is $? 0 "second switchover: exit 0" || diag "$(tail -3 "$TEST_TMP/sw2.err")"
is "$(migration_phase)" switched "phase switched"
is "$(db_checksum target)" "$(db_checksum source)" "both sides equal by checksum"
q target "INSERT INTO kv VALUES (-95, 'on the new primary, second time', 0)" >/dev/null
"${F[@]}" rollback --yes --max-lag 10 >"$TEST_TMP/rb2.out" 2>"$TEST_TMP/rb2.err"
is $? 0 "a second rollback: exit 0" || diag "$(tail -3 "$TEST_TMP/rb2.err")"
for _ in $(seq 1 100); do kill -0 "$FP" 2>/dev/null || break; sleep 0.1; done
kill -TERM "$FP" 2>/dev/null; wait "$FP"
is "$(q source "SELECT count(*) FROM kv WHERE id = -95")" 1 "what the new primary took is on the source again"
is "$(db_checksum target)" "$(db_checksum source)" "both sides equal by checksum after it"
like "$("${F[@]}" status 2>&1)" "replication slot ferry is kept on the source from .*ferry start follows again" "status says rolled back, and that the slot is kept for a retry"
is "$(slot_count source)" 1 "the slot for a retry is kept on the source"
"${F[@]}" cleanup >"$TEST_TMP/cl.out" 2>"$TEST_TMP/cl.err"
is $? 0 "cleanup: exit 0" || diag "$(tail -3 "$TEST_TMP/cl.err")"
is "$(slot_count source) $(slot_count target)" "0 0" "cleanup drops it: no slot left on either side"
done_testing
