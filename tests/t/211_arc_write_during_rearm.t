#!/usr/bin/env bash
# Found by a red-team helper: a transaction open on the old source (BEGIN
# READ WRITE, a stale client) while the rollback keeps a slot for a retry.
# The first version created a new slot, whose creation waited for this
# transaction: it committed after the watch's last look and before the new
# slot's start, seen by neither, and was missing on the target after ferry
# start and a second switchover. Now the watch slot itself is kept (no gap):
# whatever the client was told is committed must end up on the target
# after ferry start; a transaction ended by the unfreeze (sessions that
# connected while frozen are ended) was never acknowledged and is nowhere.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
start_following
"${F[@]}" switchover --yes --max-lag 5 >"$TEST_TMP/sw1.out" 2>"$TEST_TMP/sw1.err"
is $? 0 "first switchover: exit 0" || diag "$(tail -3 "$TEST_TMP/sw1.err")"
q target "INSERT INTO kv VALUES (-92, 'on the new primary', 0)" >/dev/null
sleep 3
# the stale client: its transaction holds an xid, commits once the rollback creates the slot
PGAPPNAME=stale "$(pg_bin source)/psql" -XAtq -v ON_ERROR_STOP=1 -h "$SOURCE_SOCK" -p "$SOURCE_PORT" -U postgres app >"$TEST_TMP/stale.out" 2>&1 <<'SQL' &
BEGIN READ WRITE;
INSERT INTO kv VALUES (-3, 'committed while the rollback re-arms', 0);
DO $$
BEGIN
  FOR i IN 1..1200 LOOP
    PERFORM pg_catalog.pg_stat_clear_snapshot();
    EXIT WHEN EXISTS (SELECT 1 FROM pg_stat_activity
                       WHERE pid <> pg_backend_pid() AND query LIKE '%pg_create_logical_replication_slot%'
                         AND state = 'active');
    PERFORM pg_sleep(0.05);
  END LOOP;
  PERFORM pg_sleep(0.5);
END $$;
COMMIT;
SELECT 'committed';
SQL
STALE=$!
"${F[@]}" rollback --yes --max-lag 10 >"$TEST_TMP/rb.out" 2>"$TEST_TMP/rb.err"
is $? 0 "rollback: exit 0" || diag "$(tail -3 "$TEST_TMP/rb.err")"
wait "$STALE"
if grep -qx committed "$TEST_TMP/stale.out"; then STALE_OK=1; else STALE_OK=0; fi
diag "the stale client: $(tail -1 "$TEST_TMP/stale.out")"
for _ in $(seq 1 100); do kill -0 "$FP" 2>/dev/null || break; sleep 0.1; done
kill -TERM "$FP" 2>/dev/null; wait "$FP"
is "$(q source "SELECT count(*) FROM kv WHERE id = -3")" "$STALE_OK" "the source has the row exactly when the client was told it committed"
like "$(cat "$TEST_TMP/rb.err")" "kept replication slot ferry on the source" "the rollback kept the slot"
: >"$TEST_TMP/err"
ferry_start --jobs 2
wait_following ferry 90; ok $? "ferry start after the rollback follows again"
q source "INSERT INTO kv VALUES (-94, 'while following again', 0)" >/dev/null
wait_applied ferry 60; ok $? "and applies"
is "$(q target "SELECT count(*) FROM kv WHERE id = -3")" "$STALE_OK" "the target has it exactly when the client was told it committed"
"${F[@]}" switchover --yes --max-lag 5 >"$TEST_TMP/sw2.out" 2>"$TEST_TMP/sw2.err"
is $? 0 "second switchover: exit 0" || diag "$(tail -3 "$TEST_TMP/sw2.err")"
is "$(db_checksum target)" "$(db_checksum source)" "both sides equal by checksum after the second switchover"
kill -TERM "$FP" 2>/dev/null; wait "$FP"
done_testing
