#!/usr/bin/env bash
# An UPDATE or DELETE from the source that matches no row on the target is
# divergence, not a success (issue 12 item 8): counted per table, shown by
# status (text and JSON) and metrics, refused by switchover until a verify
# finds every table equal again; with stop_on_unmatched apply stops on it.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
MPORT=$(free_port) || bail "no free port"
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
ferry_start --jobs 2 --metrics-listen "127.0.0.1:$MPORT"
wait_following ferry 60; ok $? "ferry start follows"

# rows the target lost behind ferry's back
q target "DELETE FROM kv WHERE id IN (10, 11, 13)" >/dev/null
q source "UPDATE kv SET n = n + 1 WHERE id = 10" >/dev/null
q source "DELETE FROM kv WHERE id = 11" >/dev/null
# a transaction of plain updates: applied as one multi-row UPDATE, 27 of 28 rows found
q source "UPDATE kv SET v = v || 'x' WHERE id BETWEEN 13 AND 40" >/dev/null
q source "UPDATE kv SET v = 'fine' WHERE id = 50" >/dev/null
wait_applied ferry 60; ok $? "apply goes on"
for _ in $(seq 1 30); do
  [ "$(q target "SELECT COALESCE(sum(changes), 0) FROM ferry.unmatched" 2>/dev/null)" = 3 ] && break; sleep 0.2
done
st=$("${F[@]}" status 2>&1)
like "$st" "DIVERGED 3 updates/deletes from the source matched no row on the target" "status says the target diverged, loudly"
like "$st" "\"public\".\"kv\": 3, the last in the source transaction committed at" "per table"
is "$("${F[@]}" --json status 2>/dev/null | /usr/bin/python3 -c 'import json,sys; u=json.load(sys.stdin)["unmatched"]; print([(x["table"], x["changes"]) for x in u])')" \
  "[('\"public\".\"kv\"', 3)]" "status --json lists them"
is "$(curl -s --max-time 5 "http://127.0.0.1:$MPORT/metrics" | grep -F 'ferry_apply_unmatched_total{migration="ferry"} ' | awk '{print $NF}')" 3 \
  "the metric counts them"
like "$(cat "$TEST_TMP/err")" "WARNING: the target has diverged: (updating|deleting from) \"public\".\"kv\"" "the log warns"
is "$(q target "SELECT v FROM kv WHERE id = 50")" fine "later changes still apply"

"${F[@]}" switchover --yes --timeout 20 >"$TEST_TMP/sw.out" 2>"$TEST_TMP/sw.err"
is "$?" 1 "switchover is refused"
like "$(cat "$TEST_TMP/sw.err")" "the target has diverged: 3 updates/deletes from the source matched no row there \(\"public\".\"kv\"\); nothing was frozen" "naming the divergence"
is "$(migration_phase)" following "phase stays following"
source_writable; ok $? "the source was not frozen"

# repaired by hand from the source; a verify that finds every table equal forgets it
q source "COPY (SELECT * FROM kv WHERE id IN (10, 13)) TO STDOUT" | q target "COPY kv FROM STDIN" >/dev/null
"${F[@]}" verify >"$TEST_TMP/v.out" 2>"$TEST_TMP/v.err"
is "$?" 0 "verify finds every table equal" || diag "$(tail -5 "$TEST_TMP/v.out")"
like "$(cat "$TEST_TMP/v.err")" "forgot the 1 tables recorded as diverged" "and forgets the divergence"
unlike "$("${F[@]}" status 2>&1)" "DIVERGED" "status is clean again"
stop_cleanly

# stop_on_unmatched: the first such change stops apply
echo "stop_on_unmatched: true" >"$TEST_TMP/ferry.yaml"
q target "DELETE FROM kv WHERE id = 20" >/dev/null
"${F[@]}" --config "$TEST_TMP/ferry.yaml" start >"$TEST_TMP/o2" 2>"$TEST_TMP/e2" &
FP=$!
sleep 1
q source "UPDATE kv SET n = n + 1 WHERE id = 20" >/dev/null
for _ in $(seq 1 100); do kill -0 "$FP" 2>/dev/null || break; sleep 0.2; done
wait "$FP"; is "$?" 1 "ferry start stops with exit 1"
like "$(cat "$TEST_TMP/e2")" "ERROR: the target has diverged: updating \"public\".\"kv\" .*stopping \(stop_on_unmatched\)" "saying why"
unlike "$(cat "$TEST_TMP/err" "$TEST_TMP/e2")" "runtime error|LeakSanitizer" "no sanitizer reports"
done_testing
