#!/usr/bin/env bash
# Outside attack: `ferry start` killed (kill -9, an OOM kill, a node lost)
# while its apply session waits on a lock on the target. The target backend
# lives on with the rest of the batch, COMMIT included, in its socket: when
# the lock goes it commits. A new ferry that read the applied position before
# that commit would apply the batch a second time, and a keyless table has no
# key to refuse the duplicate. The new ferry must end the orphan before it
# reads where to resume: each row arrives exactly once. With a replication
# origin the orphan's active origin already keeps a second apply out; the
# target here is what managed services give (the database owner, no
# EXECUTE on the pg_replication_origin_* functions), so only the fence does.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
q target "CREATE ROLE migrator LOGIN REPLICATION; ALTER DATABASE app OWNER TO migrator;
          GRANT SET ON PARAMETER session_replication_role TO migrator" >/dev/null
TARGET_CONN="host=$TARGET_SOCK port=$TARGET_PORT dbname=app user=migrator"
echo "no_owner: true" >"$TEST_TMP/ferry.yaml"
ferry_start --jobs 2 --config "$TEST_TMP/ferry.yaml"
wait_following ferry 60; ok $? "ferry start follows"
like "$(cat "$TEST_TMP/err")" "not using a replication origin" "ferry applies without an origin"
wait_applied ferry 60; ok $? "caught up before the attack"

# another migration of the same name into another database of the target
# server: its live apply session holds the same lock key there
PGAPPNAME=other_db_apply "$(pg_bin target)/psql" -XAtq -h "$TARGET_SOCK" -p "$TARGET_PORT" -U migrator postgres \
  -c "SELECT pg_advisory_lock(1718773363, hashtext('ferry')); SELECT pg_sleep(60)" >/dev/null 2>&1 &
OTHER=$!
lock_target_kv log_nokey
q source "INSERT INTO log_nokey (msg) VALUES ('written while the target was locked')" >/dev/null
is "$(apply_lock_waits)" 1 "apply waits for the lock on the target"
kill -9 "$FP"; wait "$FP" 2>/dev/null
is "$(q target "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'ferry%' AND wait_event_type = 'Lock'")" 1 \
  "the killed ferry's apply session still waits on the target"

ferry_start --jobs 2 --config "$TEST_TMP/ferry.yaml"
wait_following ferry 60; ok $? "a new ferry start follows again"
sleep 1
release_target_kv
q source "INSERT INTO log_nokey (msg) VALUES ('after the lock')" >/dev/null
wait_applied ferry 60; ok $? "and catches up once the lock is gone"
sleep 1
is "$(q target "SELECT count(*) FROM log_nokey WHERE msg = 'written while the target was locked'")" 1 \
  "the row written during the lock is on the target exactly once"
is "$(q target "SELECT count(*) FROM log_nokey")" "$(q source "SELECT count(*) FROM log_nokey")" "log_nokey has as many rows on both sides"
is "$(db_checksum target)" "$(db_checksum source)" "contents equal"
like "$(cat "$TEST_TMP/err")" "ended the apply session an earlier ferry left" "the log says the orphaned session was ended"
is "$(q target "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'other_db_apply'")" 1 \
  "the same lock key held in another database of the target (another migration) is left alone"
kill "$OTHER" 2>/dev/null
stop_cleanly
done_testing
