#!/usr/bin/env bash
# Found by a red-team helper: a rollback that recorded rearm_lsn (the slot kept) but could not
# unfreeze the source (here a failing unfreeze hook; a kill there is the
# same) is rerun; the rerun aborts (here its target freeze hook fails): the
# migration is switched again, the target takes writes, but rearm_lsn stays
# set. The watch then takes the slot for a kept forward slot and no longer
# reads it (watch_poll_migration): a stale client's write on the old source
# is never reported, and the next rollback keeps the slot at the OLD
# position (rearm_forward: "an interrupted rollback kept it already")
# without checking ferry.source_writes. ferry start follows again from
# there and replays the stale write onto the target, after the newer change
# the target made to the same row: the sides end unequal.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
CFG="$TEST_TMP/ferry.yaml"
cat >"$CFG" <<YAML
hooks:
  freeze: "[ ! -e $TEST_TMP/failfreeze ] || exit 4"
  unfreeze: "if [ -e $TEST_TMP/failunfreeze ]; then rm -f $TEST_TMP/failunfreeze; exit 5; fi"
YAML
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
start_following
"${F[@]}" --config "$CFG" switchover --yes --max-lag 5 >"$TEST_TMP/sw1.out" 2>"$TEST_TMP/sw1.err"
is $? 0 "switchover (freeze hook): exit 0" || diag "$(tail -3 "$TEST_TMP/sw1.err")"
q target "INSERT INTO kv VALUES (-1, 'on the new primary', 0)" >/dev/null
for _ in $(seq 1 100); do [ "$(q source "SELECT count(*) FROM kv WHERE id = -1")" = 1 ] && break; sleep 0.1; done

# 1. the rollback keeps the slot, then cannot unfreeze the source
touch "$TEST_TMP/failunfreeze"
"${F[@]}" --config "$CFG" rollback --yes --max-lag 10 >"$TEST_TMP/rb1.out" 2>"$TEST_TMP/rb1.err"
is $? 1 "rollback 1 fails at the source's unfreeze" || diag "$(tail -3 "$TEST_TMP/rb1.err")"
like "$(cat "$TEST_TMP/rb1.err")" "kept replication slot ferry" "after keeping the slot"
X=$(q target "SELECT rearm_lsn FROM ferry.migration")
diag "rearm_lsn after rollback 1: $X, phase $(migration_phase)"
for _ in $(seq 1 100); do kill -0 "$FP" 2>/dev/null || break; sleep 0.1; done
kill -TERM "$FP" 2>/dev/null; wait "$FP"

# 2. the rerun aborts before it unfreezes anything: back to switched
touch "$TEST_TMP/failfreeze"
"${F[@]}" --config "$CFG" rollback --yes --max-lag 10 >"$TEST_TMP/rb2.out" 2>"$TEST_TMP/rb2.err"
is $? 1 "rollback 2 (rerun) aborts" || diag "$(tail -3 "$TEST_TMP/rb2.err")"
rm -f "$TEST_TMP/failfreeze"
is "$(migration_phase)" switched "phase switched again: the target is the primary"
is "$(q target "SELECT rearm_lsn IS NULL FROM ferry.migration")" t "no kept-slot position left on a switched migration"

# 3. switched again: reverse replication runs, a stale client writes on the old source
: >"$TEST_TMP/err"
ferry_start --jobs 2
sleep 3
q source "BEGIN READ WRITE; UPDATE kv SET v = 'stale' WHERE id = 30; COMMIT" >/dev/null
ok $? "a stale client commits on the old source"
for _ in $(seq 1 60); do
  [ "$(q target "SELECT COALESCE(sum(changes), 0) FROM ferry.source_writes" 2>/dev/null)" = 1 ] && break; sleep 0.1
done
is "$(q target "SELECT COALESCE(sum(changes), 0) FROM ferry.source_writes")" 1 "the watch reports it"
q target "UPDATE kv SET v = 'newer on the primary' WHERE id = 30" >/dev/null
for _ in $(seq 1 100); do [ "$(q source "SELECT v FROM kv WHERE id = 30")" = "newer on the primary" ] && break; sleep 0.1; done
is "$(q source "SELECT v FROM kv WHERE id = 30")" "newer on the primary" "reverse replication brought the primary's change"

# 4. rollback, ferry start follows again
"${F[@]}" --config "$CFG" rollback --yes --max-lag 10 >"$TEST_TMP/rb3.out" 2>"$TEST_TMP/rb3.err"
is $? 0 "rollback 3: exit 0" || diag "$(tail -3 "$TEST_TMP/rb3.err")"
for _ in $(seq 1 100); do kill -0 "$FP" 2>/dev/null || break; sleep 0.1; done
kill -TERM "$FP" 2>/dev/null; wait "$FP"
if [ "$(q target "SELECT rearm_lsn IS NOT NULL FROM ferry.migration")" = t ]; then
  : >"$TEST_TMP/err"
  ferry_start --jobs 2
  wait_following ferry 90; ok $? "ferry start follows again"
  q source "INSERT INTO kv VALUES (-94, 'while following again', 0)" >/dev/null
  wait_applied ferry 60; ok $? "and applies"
  is "$(q target "SELECT v FROM kv WHERE id = 30")" "$(q source "SELECT v FROM kv WHERE id = 30")" "row 30 the same on both sides"
  is "$(db_checksum target)" "$(db_checksum source)" "both sides equal while following again"
  kill -TERM "$FP" 2>/dev/null; wait "$FP"
else
  ok 0 "the rollback refused the retry (the stale write): fine"
fi
done_testing
