#!/usr/bin/env bash
# Red team: after the switchover, with ferry start following in reverse
# and the watch polled, UPDATE and DELETE of a table without a key on the
# old source are committed there and never reported. The watch
# (src/watch.c watch_poll) peeks the forward slot through the forward
# publications; a keyless table is in NAME_insert_only (publish = 'insert,
# truncate', src/publication.c), so its UPDATEs and DELETEs are not
# decoded at all and the watch cannot see them. Those changes are not on
# the new primary and status exits 0.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
q source "INSERT INTO log_nokey (msg) SELECT 'row ' || g FROM generate_series(1, 50) g" >/dev/null
start_following
"${F[@]}" switchover --yes >"$TEST_TMP/sw.out" 2>"$TEST_TMP/sw.err"
is "$?" 0 "switchover exits 0" || diag "$(tail -5 "$TEST_TMP/sw.err")"
sleep 3
is "$(q target "SELECT count(*) FROM log_nokey")" 50 "the keyless table is on the new primary"
# a stale client on the old source: its UPDATE and DELETE of the keyless
# table are refused (the watch could not see them), its INSERT is reported
out=$(q source "BEGIN READ WRITE; DELETE FROM log_nokey WHERE msg IN ('row 1', 'row 2', 'row 3'); COMMIT" 2>&1)
isnt "$?" 0 "the old source refuses a DELETE of a keyless table"
like "$out" "does not have a replica identity and publishes deletes" "with PostgreSQL's reason"
out=$(q source "BEGIN READ WRITE; UPDATE log_nokey SET msg = 'changed on the old source' WHERE msg = 'row 4'; COMMIT" 2>&1)
isnt "$?" 0 "and an UPDATE"
is "$(q source "SELECT count(*) FROM log_nokey WHERE msg IN ('row 1', 'row 2', 'row 3', 'row 4')")" 4 "the old source kept those rows"
q source "BEGIN READ WRITE; INSERT INTO log_nokey (msg) VALUES ('inserted on the old source'); COMMIT" >/dev/null
ok $? "an INSERT into it commits"
for _ in $(seq 1 100); do
  [ "$(q target "SELECT COALESCE(sum(changes), 0) FROM ferry.source_writes" 2>/dev/null)" = 1 ] && break; sleep 0.1
done
"${F[@]}" status >"$TEST_TMP/st" 2>&1; rc=$?
is "$rc" 1 "status exits 1: a write reached the old source after the switch"
like "$(cat "$TEST_TMP/st")" "LOST\? +1 changes were committed on the OLD SOURCE" "status prints a LOST? line"
like "$(cat "$TEST_TMP/st")" "\"public\".\"log_nokey\": 1, the last" "for the keyless table"
"${F[@]}" rollback --yes >"$TEST_TMP/rb.out" 2>"$TEST_TMP/rb.err"
is "$?" 0 "rollback (its re-copy of keyless tables into the source) still works" || diag "$(tail -5 "$TEST_TMP/rb.err")"
is "$(q source "SELECT count(*) FROM log_nokey")" "$(q target "SELECT count(*) FROM log_nokey")" "the keyless table equal after the rollback"
q source "DELETE FROM log_nokey WHERE msg = 'row 5'" >/dev/null
ok $? "and the source takes deletes of it again"
kill -TERM "$FP" 2>/dev/null; wait "$FP" 2>/dev/null
done_testing
