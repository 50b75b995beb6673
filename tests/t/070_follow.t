#!/usr/bin/env bash
# ferry start: every kind of change under concurrent load reaches the target
# exactly once, with a large transaction in the middle; triggers and foreign
# keys do not fire on the target; stop with SIGTERM is clean.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
# a replication origin named like the migration, left far ahead by something
# earlier on the target: a new migration must not resume from it
q target "SELECT pg_replication_origin_create('ferry'); SELECT pg_replication_origin_advance('ferry', 'FF/0')" >/dev/null

ferry_start --jobs 2
# load while the clone runs and after
pgload 6 4 "$SQL/load/mixed.sql@10" "$SQL/load/churn.sql@3" "$SQL/load/truncate.sql@1" >"$TEST_TMP/load1" 2>&1 &
LP=$!
sleep 2
# a large transaction, and interleaved open transactions
q source "BEGIN; INSERT INTO kv SELECT g, 'bulk', 0 FROM generate_series(20000001, 20200000) g; UPDATE kv SET n = n + 1 WHERE id BETWEEN 20000001 AND 20050000; DELETE FROM kv WHERE id BETWEEN 20150001 AND 20200000; COMMIT;" &
BP=$!
q source "BEGIN; INSERT INTO log_nokey (msg) VALUES ('one'); SELECT pg_sleep(1); INSERT INTO log_nokey (msg) VALUES ('two'); COMMIT;" >/dev/null &
IP=$!
wait "$LP" "$BP" "$IP"
like "$(cat "$TEST_TMP/load1")" "number of failed transactions: 0" "the load ran without errors"
wait_applied ferry 90
ok $? "the target catches up with the source"

diff <(db_checksum source) <(db_checksum target) >"$TEST_TMP/diff"
ok $? "every table equal by checksum after concurrent load"
[ -s "$TEST_TMP/diff" ] && diag "$(head -20 "$TEST_TMP/diff")"
is "$(q target "SELECT count(*) FROM kv WHERE v = 'rolled back'")" "0" "changes rolled back to a savepoint are not applied"
is "$(q target "SELECT count(*) FROM kv WHERE id < 0") -gt 0" "$(q source "SELECT count(*) FROM kv WHERE id < 0") -gt 0" "primary key changes are applied"
is "$(q target "SELECT count(*) FROM kv WHERE id BETWEEN 20000001 AND 20200000")" "150000" "the large transaction is applied"
is "$(q target "SELECT count(*) FROM trig_log")" "0" "user triggers did not fire on the target"
is "$(q target "SELECT count(*), sum(length(body)) FROM docs")" "$(q source "SELECT count(*), sum(length(body)) FROM docs")" \
   "TOASTed values left unchanged by updates keep the target's value"

# status while following
js=$("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" --json status --exact 2>/dev/null); rc=$?
is "$rc" 0 "status exits 0"
is "$(printf '%s' "$js" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["phase"], d["lag_bytes"] is not None, d["lag_seconds"] is not None, all(t["delta"] == 0 for t in d["tables"]), len(d["tables"]) > 5)')" \
   "following True True True True" "status --json --exact: phase, lag in bytes and seconds, a zero delta for every table"
is "$(printf '%s' "$js" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["row_counts"], [(t["name"], t["rows"], t["target_rows"]) for t in d["tables"] if t["rows"] != t["target_rows"] and t["rows_counted_under"] is None], sorted(set(t["rows_counted_under"] for t in d["tables"] if t["rows"] is None)))')" \
   "exact [] ['public.parts']" "ferry's own row count of every table (copied + inserted - deleted, without reading it) equals the exact count"

# the heartbeat keeps the slot moving on an idle source, and is applied
before=$(QDB=postgres q source "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'ferry'")
applied_before=$(q target "SELECT applied_lsn FROM ferry.apply_progress")
sleep 3
after=$(QDB=postgres q source "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'ferry'")
is "$(q source "SELECT '$after'::pg_lsn > '$before'::pg_lsn")" "t" "on an idle source the slot keeps advancing (heartbeats)"
is "$(q target "SELECT applied_lsn > '$applied_before'::pg_lsn FROM ferry.apply_progress")" "t" \
   "on an idle source the applied position keeps advancing too (heartbeat transactions are applied)"
is "$(q target "SELECT applied_lsn = pg_replication_origin_progress('ferry', false) FROM ferry.apply_progress")" "t" \
   "while apply is idle ferry.apply_progress is exactly where the replication origin is"

# a second ferry start for the same migration is refused (ferry start holds the migration's lock)
"$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" start >/dev/null 2>"$TEST_TMP/err-second"; rc=$?
is "$rc" 1 "a second ferry start for the same migration exits 1"
like "$(cat "$TEST_TMP/err-second")" "another ferry process is driving migration" "saying another process drives it"

kill -TERM "$FP"; wait "$FP"; rc=$?
is "$rc" 0 "SIGTERM stops ferry start with exit 0"
like "$(cat "$TEST_TMP/out")" "^replication stopped at [0-9A-F]+/[0-9A-F]+" "and it reports the position"
unlike "$(cat "$TEST_TMP/err")" "ERROR|runtime error|LeakSanitizer" "no errors or sanitizer reports"

# changes made while ferry is down are applied on the next start
pgload 2 2 "$SQL/load/mixed.sql" >/dev/null 2>&1
"$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" start >"$TEST_TMP/out2" 2>"$TEST_TMP/err2" &
FP=$!
wait_applied ferry 60
ok $? "a restarted ferry start catches up" || diag "$(tail -5 "$TEST_TMP/err2")"
is "$(db_checksum target)" "$(db_checksum source)" "contents equal after a stop and restart"
like "$(cat "$TEST_TMP/err2")" "already complete" "the restart does not clone again"
kill -TERM "$FP"; wait "$FP"
done_testing
