#!/usr/bin/env bash
# Outside attack: the watch after a rollback. The reverse follower (ferry
# start) stops once the rollback marks the reverse stream drained, and reads
# the watch (the forward slot on the old source) one last time as it stops;
# but the rollback unfreezes the source right after that mark, so the
# application's first writes back on the source were recorded as writes that
# "reached the old source after the switchover ... NOT on the new primary"
# (ferry.source_writes: status shows them, cleanup refuses to drop them
# without --force). Here the rollback hook itself writes on the source as the
# returning application would, then waits for the follower to stop.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
cat >"$TEST_TMP/ferry.yaml" <<YAML
hooks:
  rollback: "$PGBIN/psql -XAtq -h $SOURCE_SOCK -p $SOURCE_PORT -U postgres -d app -c \"INSERT INTO kv VALUES (-2, 'the application back on the source', 0)\" && sleep 2"
YAML
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" --config "$TEST_TMP/ferry.yaml")
"${F[@]}" start --jobs 2 >>"$TEST_TMP/out" 2>>"$TEST_TMP/err" &
FP=$!
wait_following; ok $? "ferry start follows"
"${F[@]}" switchover --yes --max-lag 5 --timeout 60 >/dev/null 2>"$TEST_TMP/sw.err"
is "$?" 0 "switchover exits 0" || diag "$(tail -8 "$TEST_TMP/sw.err")"
q target "INSERT INTO kv VALUES (-1, 'on the new primary', 0)" >/dev/null
sleep 3
"${F[@]}" rollback --yes --timeout 60 >/dev/null 2>"$TEST_TMP/rb.err"; rc=$?
is "$rc" 0 "rollback exits 0" || diag "$(tail -8 "$TEST_TMP/rb.err")"
is "$(q source "SELECT v FROM kv WHERE id = -2")" "the application back on the source" "the hook wrote on the source after the rollback"
for _ in $(seq 1 50); do kill -0 "$FP" 2>/dev/null || break; sleep 0.1; done
wait "$FP"; is "$?" 0 "ferry start ended its reverse replication by itself"
is "$(q target "SELECT count(*) FROM ferry.source_writes")" 0 "no write on the old source was recorded"
unlike "$(cat "$TEST_TMP/err")" "a write reached the old source" "none was logged"
"${F[@]}" cleanup >"$TEST_TMP/cl.out" 2>&1
is "$?" 0 "cleanup exits 0 (without --force)" || diag "$(tail -3 "$TEST_TMP/cl.out")"
is "$(slot_count source) $(slot_count target)" "0 0" "no slot left on either side"
unlike "$(cat "$TEST_TMP/err" "$TEST_TMP"/*.err)" "runtime error|LeakSanitizer" "no sanitizer reports"
done_testing
