#!/usr/bin/env bash
# Red team: a stray write on the old source shortly before the operator
# stops ferry start (SIGTERM) and runs ferry cleanup is never reported:
# the watch is polled only every 2 s by the reverse follower
# (src/follow.c watch_tick), not at its shutdown; ferry status reads only
# ferry.source_writes (src/cli_status.c) and never peeks the watch slot;
# ferry cleanup (src/cli_cleanup.c) drops the watch slot without reading
# it. The write is not on the new primary and nothing ever said so.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
start_following
"${F[@]}" switchover --yes >"$TEST_TMP/sw.out" 2>"$TEST_TMP/sw.err"
is "$?" 0 "switchover exits 0" || diag "$(tail -5 "$TEST_TMP/sw.err")"
sleep 4
q source "BEGIN READ WRITE; INSERT INTO kv VALUES (-424242, 'stray, just before the stop', 0); COMMIT" >/dev/null
ok $? "a stale client commits on the old source"
kill -TERM "$FP"; wait "$FP"; is $? 0 "ferry start stops"
"${F[@]}" status >"$TEST_TMP/st" 2>&1; rc=$?
is "$rc" 1 "status exits 1: the watch slot holds a write on the old source"
like "$(cat "$TEST_TMP/st")" "LOST\?" "status says LOST?"
"${F[@]}" cleanup >"$TEST_TMP/cl.out" 2>"$TEST_TMP/cl.err"; rc=$?
isnt "$rc" 0 "cleanup refuses (or at least reports) while the watch holds an unreported write"
like "$(cat "$TEST_TMP/cl.out" "$TEST_TMP/cl.err")" "1 changes were committed on the old source after the switchover.*cleanup --force" "cleanup names the write and the fix"
diag "cleanup: $(tail -3 "$TEST_TMP/cl.err") $(cat "$TEST_TMP/cl.out" | head -5)"
is "$(q target "SELECT sum(changes) FROM ferry.source_writes")" 1 "cleanup recorded it before refusing"
is "$(QDB=postgres q source "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'ferry'")" 1 "and kept the watch"
"${F[@]}" cleanup --force >"$TEST_TMP/cl2.out" 2>"$TEST_TMP/cl2.err"
is "$?" 0 "cleanup --force goes ahead"
done_testing
