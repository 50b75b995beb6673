#!/usr/bin/env bash
# A write that reaches the old source after the switchover is detected and
# reported loudly, never dropped in silence (issue 12 item 2): the forward
# slot stays on the old source as a watch, ferry start (in reverse) reads
# it, and what reverse replication did not write there is recorded: an
# ERROR in the log, status (text, --json, exit 1), the metric. Reverse
# replication's own writes there, and the rollback's re-copy, are not.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
MPORT=$(free_port) || bail "no free port"
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
ferry_start --jobs 2 --metrics-listen "127.0.0.1:$MPORT"
wait_following ferry 60; ok $? "ferry start follows"
"${F[@]}" switchover --yes >"$TEST_TMP/sw.out" 2>"$TEST_TMP/sw.err"
is "$?" 0 "switchover exits 0" || diag "$(tail -5 "$TEST_TMP/sw.err")"
like "$(cat "$TEST_TMP/sw.err")" "kept replication slot ferry on the old source as a watch" "the forward slot stays as the watch"

# reverse replication's own writes on the old source: not reported
q target "INSERT INTO kv VALUES (-1, 'on the new primary', 0); UPDATE kv SET n = n + 1 WHERE id <= 20" >/dev/null
q target "INSERT INTO log_nokey (msg) VALUES ('new primary')" >/dev/null
for _ in $(seq 1 100); do [ "$(q source "SELECT count(*) FROM kv WHERE id = -1")" = 1 ] && break; sleep 0.1; done
is "$(q source "SELECT v FROM kv WHERE id = -1")" "on the new primary" "reverse replication brings the new primary's writes to the old source"
sleep 5
"${F[@]}" status >"$TEST_TMP/st0" 2>&1; rc=$?
is "$rc" 0 "status exits 0: nothing but reverse replication wrote on the old source"
unlike "$(cat "$TEST_TMP/st0")" "OLD SOURCE" "and says nothing of it"

# a client that writes to the old source anyway (BEGIN READ WRITE beats the read-only default)
q source "BEGIN READ WRITE; INSERT INTO kv VALUES (-2, 'stale client', 0); UPDATE kv SET v = 'stale' WHERE id = 30; COMMIT" >/dev/null
ok $? "a stale client commits on the old source"
LSN=$(q source "SELECT pg_current_wal_lsn()")
for _ in $(seq 1 100); do
  [ "$(q target "SELECT COALESCE(sum(changes), 0) FROM ferry.source_writes" 2>/dev/null)" = 2 ] && break; sleep 0.1
done
"${F[@]}" status >"$TEST_TMP/st1" 2>&1; rc=$?
is "$rc" 1 "status exits 1"
like "$(cat "$TEST_TMP/st1")" "LOST\?    2 changes were committed on the OLD SOURCE after the switchover and are NOT on the new primary" "status says so, loudly"
like "$(cat "$TEST_TMP/st1")" "\"public\".\"kv\": 2, the last in the source transaction committed at" "naming the table"
is "$("${F[@]}" --json status 2>/dev/null | /usr/bin/python3 -c 'import json,sys; print([(w["table"], w["changes"]) for w in json.load(sys.stdin)["source_writes_after_switch"]])')" \
  "[('\"public\".\"kv\"', 2)]" "status --json lists them"
like "$(cat "$TEST_TMP/err")" "ERROR: a write reached the old source after the switchover: 2 changes to \"public\".\"kv\"" "ferry start logs an error"
is "$(curl -s --max-time 5 "http://127.0.0.1:$MPORT/metrics" | grep -F 'ferry_source_writes_after_switch_total{migration="ferry"} ' | awk '{print $NF}')" 2 "the metric counts them"
is "$(QDB=postgres q source "SELECT confirmed_flush_lsn >= '$LSN'::pg_lsn FROM pg_replication_slots WHERE slot_name = 'ferry'")" t \
  "the watch moved past them: it retains no WAL for them"
sleep 3
is "$(q target "SELECT sum(changes) FROM ferry.source_writes")" 2 "each is reported once"

# rollback: the re-copy of keyless tables into the source is ferry's own
"${F[@]}" rollback --yes >"$TEST_TMP/rb.out" 2>"$TEST_TMP/rb.err"
is "$?" 0 "rollback exits 0" || diag "$(tail -5 "$TEST_TMP/rb.err")"
is "$(q target "SELECT sum(changes) FROM ferry.source_writes")" 2 "the rollback's re-copy is not taken for a stray write"
# the watch goes: with writes on the old source that the target lacks, it is not kept for a retry (207, 210)
is "$(QDB=postgres q source "SELECT count(*) FROM pg_replication_slots")" 0 "the watch slot is gone after the rollback"
is "$(q target "SELECT rearm_lsn IS NULL FROM ferry.migration WHERE name = 'ferry'")" t "no slot is kept for a retry: the sides are not equal"
like "$(cat "$TEST_TMP/rb.err")" "no replication slot kept on the source for a retry: the old source took 2 changes after the switchover" "the rollback says why"
kill -TERM "$FP" 2>/dev/null; wait "$FP"
unlike "$(cat "$TEST_TMP/err" "$TEST_TMP/sw.err" "$TEST_TMP/rb.err")" "runtime error|LeakSanitizer" "no sanitizer reports"
done_testing
