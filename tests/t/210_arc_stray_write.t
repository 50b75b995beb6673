#!/usr/bin/env bash
# Found by a red-team helper: a write that reached the old source while switched (reported by
# the watch: ferry.source_writes) is on the source after the rollback but not
# on the target. The rollback re-arms anyway ("where both sides are equal"),
# ferry start follows again from past it, and the second switchover makes a
# target that lacks it: the sides end unequal, the write is lost on the new
# primary.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
start_following
"${F[@]}" switchover --yes --max-lag 5 >"$TEST_TMP/sw1.out" 2>"$TEST_TMP/sw1.err"
is $? 0 "first switchover: exit 0" || diag "$(tail -3 "$TEST_TMP/sw1.err")"
# reverse replication runs (the forward stream has stopped: the slot is the watch now), as in 158
q target "INSERT INTO kv VALUES (-1, 'on the new primary', 0)" >/dev/null
for _ in $(seq 1 100); do [ "$(q source "SELECT count(*) FROM kv WHERE id = -1")" = 1 ] && break; sleep 0.1; done
for _ in $(seq 1 100); do [ "$(QDB=postgres q source "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'ferry' AND NOT active")" = 1 ] && break; sleep 0.1; done
sleep 3
# a stale client writes on the old source (as in 158)
q source "BEGIN READ WRITE; INSERT INTO kv VALUES (-2, 'stale client', 0); UPDATE kv SET v = 'stale' WHERE id = 30; COMMIT" >/dev/null
ok $? "a stale client commits on the old source"
for _ in $(seq 1 100); do
  [ "$(q target "SELECT COALESCE(sum(changes), 0) FROM ferry.source_writes" 2>/dev/null)" = 2 ] && break; sleep 0.1
done
is "$(q target "SELECT COALESCE(sum(changes), 0) FROM ferry.source_writes")" 2 "the watch reports it"
"${F[@]}" rollback --yes --max-lag 10 >"$TEST_TMP/rb.out" 2>"$TEST_TMP/rb.err"
is $? 0 "rollback: exit 0" || diag "$(tail -3 "$TEST_TMP/rb.err")"
for _ in $(seq 1 100); do kill -0 "$FP" 2>/dev/null || break; sleep 0.1; done
kill -TERM "$FP" 2>/dev/null; wait "$FP"
if grep -q "kept replication slot ferry on the source" "$TEST_TMP/rb.err"; then
  : >"$TEST_TMP/err"
  ferry_start --jobs 2
  wait_following ferry 90; ok $? "ferry start after the rollback follows again"
  q source "INSERT INTO kv VALUES (-94, 'while following again', 0); UPDATE kv SET n = n + 1 WHERE id = 31" >/dev/null
  wait_applied ferry 60; ok $? "and applies"
  is "$(q target "SELECT count(*) FROM ferry.unmatched")" 0 "no update from the source matched nothing on the target" 
  is "$(db_checksum target)" "$(db_checksum source)" "both sides equal while following again (the promise of the re-arm)"
  "${F[@]}" switchover --yes --max-lag 5 >"$TEST_TMP/sw2.out" 2>"$TEST_TMP/sw2.err"
  is $? 0 "second switchover: exit 0" || diag "$(tail -3 "$TEST_TMP/sw2.err")"
  is "$(q target "SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM kv WHERE id IN (-2, 30)")" "-2:stale client,30:stale" \
    "the new primary has the write the old source took"
  is "$(db_checksum target)" "$(db_checksum source)" "both sides equal by checksum after the second switchover"
  kill -TERM "$FP" 2>/dev/null; wait "$FP"
else
  ok 0 "the rollback did not re-arm (refused the retry): fine"
fi
done_testing
