#!/usr/bin/env bash
# A stop while apply waits on the target must not confirm what it abandoned.
# Issue 12 item 1, from outside: a session on the target locks kv, ONE small
# INSERT on the source, SIGTERM to ferry start while apply waits on that
# lock, start again. The cancelled batch is rolled back on the target; the
# slot must not be confirmed past it (the old final status update confirmed
# the received position: the row was lost for good, 4 rounds in 5). Several
# rounds, since the race depended on timing.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

ROUNDS=${ROUNDS:-4}
follow_servers
start_following

for round in $(seq 1 "$ROUNDS"); do
  id=$((9000000 + round))
  lock_target_kv
  q source "INSERT INTO kv VALUES ($id, 'round $round', 0)" >/dev/null
  waiting=$(apply_lock_waits)
  is "$waiting" 1 "round $round: apply waits for the lock on the target"
  # vary the moment of the stop within the wait
  sleep "0.$((round * 2))"
  kill -TERM "$FP"
  for _ in $(seq 1 100); do kill -0 "$FP" 2>/dev/null || break; sleep 0.1; done
  wait "$FP"; rc=$?
  is "$rc" 0 "round $round: SIGTERM during the lock wait: exit 0"
  slot=$(QDB=postgres q source "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'ferry'")
  is "$(q target "SELECT '$slot'::pg_lsn <= '$(applied_position)'::pg_lsn")" t \
    "round $round: the slot is not confirmed past what the target applied ($slot)"
  release_target_kv
  ferry_start --jobs 2
  wait_applied ferry 60; ok $? "round $round: a new ferry start catches up"
  is "$(q target "SELECT count(*) FROM kv WHERE id = $id")" 1 "round $round: the row inserted during the lock wait is on the target, once"
done
is "$(db_checksum target)" "$(db_checksum source)" "contents equal after every round"
stop_cleanly
done_testing
