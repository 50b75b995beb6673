#!/usr/bin/env bash
# Found by a red-team helper (held): a re-armed arc whose second switchover is --no-reverse: the
# rollback is refused, the sides are equal, the kept slot is gone, and
# cleanup leaves nothing (the first arc's reverse state included).
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
start_following
"${F[@]}" switchover --yes --max-lag 5 >"$TEST_TMP/sw1.out" 2>"$TEST_TMP/sw1.err"; is $? 0 "first switchover"
q target "INSERT INTO kv VALUES (-92, 'on the new primary', 0)" >/dev/null
"${F[@]}" rollback --yes >"$TEST_TMP/rb.out" 2>"$TEST_TMP/rb.err"; is $? 0 "rollback"
for _ in $(seq 1 100); do kill -0 "$FP" 2>/dev/null || break; sleep 0.1; done
kill -TERM "$FP" 2>/dev/null; wait "$FP"
ferry_start --jobs 2
wait_following ferry 90; ok $? "follows again"
q source "INSERT INTO kv VALUES (-93, 'after', 0)" >/dev/null
wait_applied ferry 60
"${F[@]}" switchover --yes --no-reverse --max-lag 5 >"$TEST_TMP/sw2.out" 2>"$TEST_TMP/sw2.err"; is $? 0 "second switchover --no-reverse" || diag "$(tail -3 "$TEST_TMP/sw2.err")"
for _ in $(seq 1 100); do kill -0 "$FP" 2>/dev/null || break; sleep 0.1; done
kill -TERM "$FP" 2>/dev/null; wait "$FP"
is "$(db_checksum target)" "$(db_checksum source)" "equal"
"${F[@]}" rollback --yes >"$TEST_TMP/rb2.out" 2>"$TEST_TMP/rb2.err"; is $? 1 "rollback refused"
like "$(cat "$TEST_TMP/rb2.err")" "no-reverse" "saying why"
is "$(slot_count source) $(slot_count target)" "0 0" "no slot retains WAL after a --no-reverse switchover"
"${F[@]}" start >"$TEST_TMP/st.out" 2>"$TEST_TMP/st.err"; rc=$?
diag "ferry start after it: rc $rc: $(tail -1 "$TEST_TMP/st.err" | cut -c1-200)"
is "$(slot_count source) $(slot_count target)" "0 0" "still no slot"
"${F[@]}" cleanup >"$TEST_TMP/cl.out" 2>"$TEST_TMP/cl.err"; is $? 0 "cleanup" || diag "$(tail -3 "$TEST_TMP/cl.err")"
is "$(q source "SELECT count(*) FROM pg_namespace WHERE nspname = 'ferry'") $(q target "SELECT count(*) FROM pg_namespace WHERE nspname = 'ferry'")" "0 0" "no state left"
is "$(QDB=postgres q source "SELECT count(*) FROM pg_replication_origin") $(QDB=postgres q target "SELECT count(*) FROM pg_replication_origin")" "0 0" "no origin left"
done_testing
