#!/usr/bin/env bash
# Outside attack: the target crashes (immediate stop, as a power cut or an
# OOM kill of the postmaster does) just after the switch hook ran. ferry's
# record that the switch hook may have run (ferry.migration.switch_hook_at,
# "only forward from here", test 149) was committed asynchronously when the
# target runs with synchronous_commit = off (a common setting, and the one
# these tests use), so the crash can take it back: the rerun of `ferry
# switchover` then undid the switch (unfroze the source) while the
# application, pointed at the target by the hook, wrote there: both servers
# writable, the application on the target, its writes never coming back.
# wal_writer_delay is raised to make the window wide.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

pg_start source
pg_start target "wal_writer_delay = 10000ms"
qf source "$SQL/follow_schema.sql" >/dev/null || bail "schema failed"
is "$(q target "SHOW synchronous_commit")" "off" "the target commits asynchronously"
cat >"$TEST_TMP/ferry.yaml" <<YAML
hooks:
  switch: "echo run >>$TEST_TMP/runs"
YAML
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" --config "$TEST_TMP/ferry.yaml")
"${F[@]}" start --jobs 2 >>"$TEST_TMP/start.out" 2>>"$TEST_TMP/start.err" &
FP=$!
wait_following ferry 60; ok $? "ferry start follows"
sleep 11   # let the WAL writer flush what the clone wrote
(FERRY_FAULT=switchover.after-switch-hook "${F[@]}" switchover --yes >/dev/null 2>"$TEST_TMP/sw1.err"; exit $?) 2>/dev/null; rc=$?
is "$rc" 137 "switchover killed just after its switch hook"
pg_stop target immediate
as_pg "$PGBIN/pg_ctl" -D "$TARGET_DATA" -l "$TARGET_DATA/server.log" -w -t 60 start >/dev/null || bail "target did not start"
ok 0 "the target crashed and came back"
is "$(q target "SELECT phase, switch_hook_at IS NOT NULL FROM ferry.migration WHERE name = 'ferry'")" "switching|t" \
  "the switch intent survived the crash"
q target "INSERT INTO kv VALUES (-1, 'the application on the target after the crash', 0);
          INSERT INTO log_nokey (msg) VALUES ('keyless, on the target after the crash')" >/dev/null
ok $? "the application writes on the target"
"${F[@]}" switchover --yes >/dev/null 2>"$TEST_TMP/sw2.err"; rc=$?
diag "rerun: exit $rc; $(grep -E 'interrupted|undoing|finishing' "$TEST_TMP/sw2.err" | head -2 | cut -c 1-200)"
is "$rc" 0 "the rerun finishes the switch"
unlike "$(cat "$TEST_TMP/sw2.err")" "undoing|accepts writes again" "without unfreezing the source while the application writes on the target"
out=$(q source "INSERT INTO kv VALUES (-2, 'on the old source', 0)" 2>&1)
like "$out" "read-only" "the source is read-only"
is "$(migration_phase)" "switched" "phase switched"
is "$(q target "SELECT count(*) FROM log_nokey WHERE msg LIKE 'keyless, on the target%'")" 1 "the target's keyless write survived the rerun"
"${F[@]}" rollback --yes >/dev/null 2>"$TEST_TMP/rb.err"; rc=$?
is "$rc" 0 "rollback exits 0" || diag "$(tail -5 "$TEST_TMP/rb.err")"
is "$(q source "SELECT v FROM kv WHERE id = -1")" "the application on the target after the crash" "the target's write after the crash is on the source after the rollback"
kill -TERM "$FP" 2>/dev/null; wait "$FP"
unlike "$(cat "$TEST_TMP"/*.err)" "runtime error|LeakSanitizer" "no sanitizer reports"
done_testing
