#!/usr/bin/env bash
# Apply does not wait for a batch's COMMIT before sending the next batch down
# the pipeline. A COMMIT that fails on the target (here a deferred trigger,
# which only fires at commit) must stop everything behind it: no later source
# transaction may be applied, the position must not move past the failed
# batch, and the slot must not be confirmed past what the target has. Once
# the cause is gone, a new `ferry start` applies everything exactly once.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
start_following

# on the target only, and ENABLE ALWAYS so that it fires in apply's replica
# mode: fails at COMMIT, half a second late, so that the transactions behind
# it are already sent when the failure comes back
q target "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS \$\$
          BEGIN
            IF NEW.v = 'boom' THEN PERFORM pg_sleep(0.5); RAISE EXCEPTION 'boom at commit'; END IF;
            RETURN NULL;
          END \$\$;
          CREATE CONSTRAINT TRIGGER boom AFTER INSERT ON kv DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION boom();
          ALTER TABLE kv ENABLE ALWAYS TRIGGER boom" >/dev/null || bail "trigger failed"
q source "INSERT INTO kv VALUES (7000001, 'before', 0)" >/dev/null
wait_applied ferry 60; ok $? "a transaction before the failure is applied"
# then 28 transactions 5 ms apart, one session, each flushed at commit (the
# test servers run with synchronous_commit off). They go down the pipeline
# while the failing COMMIT still runs: apply holds a batch while a COMMIT is
# in flight, but for at most APPLY_BATCH_MS (200 ms), less than the 0.5 s the
# failing COMMIT takes (a sync between batches would let them commit after
# the failure). The first line out is a WAL position inside the failing
# transaction: its commit lies beyond it.
sql="SET synchronous_commit = on; BEGIN; INSERT INTO kv VALUES (7000002, 'boom', 0) RETURNING pg_current_wal_insert_lsn(); COMMIT;"
for i in $(seq 3 30); do
  sql="$sql SELECT pg_sleep(0.005); BEGIN; INSERT INTO kv VALUES ($((7000000 + i)), 'after', 0); COMMIT;"
done
boom_in=$(q source "$sql" | head -n 1)
for _ in $(seq 1 300); do kill -0 "$FP" 2>/dev/null || break; sleep 0.1; done
wait "$FP"; is $? 1 "ferry start stops with an error"
like "$(cat "$TEST_TMP/err")" "could not apply to the target while committing: .*boom at commit" "the error names the failed commit and its cause"
is "$(q target "SELECT count(*) FROM kv WHERE id BETWEEN 7000002 AND 7000030")" 0 \
   "neither the failed transaction nor any transaction behind it reached the target"
is "$(q target "SELECT count(*) FROM kv WHERE id = 7000001")" 1 "the transaction before it stays applied"
is "$(q target "SELECT '$(applied_position)'::pg_lsn <= '$boom_in'::pg_lsn")" t \
   "the applied position is before the failed transaction"
slot=$(QDB=postgres q source "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'ferry'")
is "$(q target "SELECT '$slot'::pg_lsn <= '$(applied_position)'::pg_lsn")" t "the slot is not confirmed past the target"

q target "DROP TRIGGER boom ON kv" >/dev/null
ferry_start --jobs 2
wait_applied ferry 60; ok $? "with the trigger gone, ferry start catches up"
is "$(db_checksum target)" "$(db_checksum source)" "contents equal: every transaction applied exactly once"

# a statement (not the COMMIT) that fails: the error names what was being
# done and to which table (put together only when an error comes)
q target "ALTER TABLE kv ADD CONSTRAINT n_small CHECK (n < 1000)" >/dev/null || bail "constraint failed"
q source "UPDATE kv SET n = 5000 WHERE id = 7000001" >/dev/null
for _ in $(seq 1 300); do kill -0 "$FP" 2>/dev/null || break; sleep 0.1; done
wait "$FP"; is $? 1 "a failed update stops ferry start with an error"
like "$(cat "$TEST_TMP/err")" 'could not apply to the target while updating "public"\."kv": .*n_small' \
   "the error names the statement's kind, its table and the cause"
is "$(q target "SELECT n FROM kv WHERE id = 7000001")" 0 "the failed update is not applied"
q target "ALTER TABLE kv DROP CONSTRAINT n_small" >/dev/null
ferry_start --jobs 2
wait_applied ferry 60; ok $? "with the constraint gone, ferry start catches up again"
is "$(db_checksum target)" "$(db_checksum source)" "contents equal after the second failure"
stop_cleanly
done_testing
