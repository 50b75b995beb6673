#!/usr/bin/env bash
# A switchover killed once its switch hook may have run (issue 12 item 6):
# the application may already write on the target, so a rerun of
# `ferry switchover` must finish forward (never unfreeze the source, never
# drop the reverse slot) and `ferry rollback` must be a real rollback that
# brings the target's writes back. Three ways to die: kill -9 inside the
# hook, a fault point just after it (before the phase is recorded), one just
# before it (after the intent is recorded). Each scenario is a migration of
# its own (--name mN into target database appN), cloned by `ferry start`
# which is then stopped: the switchover and rollback apply in-process.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers

# migrate N: migration mN into the target's database appN, following; sets F and TC
migrate() {
  QDB=postgres q target "CREATE DATABASE app$1" >/dev/null
  TC="host=$TARGET_SOCK port=$TARGET_PORT dbname=app$1 user=postgres"
  F=("$FERRY" --source "$SOURCE_CONN" --target "$TC" --name "m$1" --config "$TEST_TMP/ferry$1.yaml")
  "${F[@]}" start --jobs 2 >>"$TEST_TMP/out" 2>>"$TEST_TMP/err" &
  FP=$!
  QDB=app$1 wait_following "m$1" 60; ok $? "migration m$1 follows"
  kill -TERM "$FP"; wait "$FP"
}
tq() { QDB=app$1 q target "$2"; }                 # tq N SQL: on the target's appN
phase() { tq "$1" "SELECT phase FROM ferry.migration WHERE name = 'm$1'"; }
reverse_slot() { QDB=postgres q target "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'm$1_reverse'"; }
source_read_only() { q source "INSERT INTO kv VALUES ($1, 'frozen?', 0)" 2>&1; }

# 1. kill -9 while the switch hook runs
cat >"$TEST_TMP/ferry1.yaml" <<YAML
hooks:
  switch: "echo \$\$ >>$TEST_TMP/runs1; [ -f $TEST_TMP/go1 ] || sleep 60"
YAML
migrate 1
"${F[@]}" switchover --yes >/dev/null 2>"$TEST_TMP/e1a" &
SP=$!
for _ in $(seq 1 300); do [ -s "$TEST_TMP/runs1" ] && break; sleep 0.1; done
kill -KILL "$SP"; wait "$SP"; rc=$?
kill -KILL -- -"$(head -1 "$TEST_TMP/runs1")" 2>/dev/null   # the orphaned hook's process group
touch "$TEST_TMP/go1"
is "$rc" 137 "switchover killed inside its switch hook"
is "$(phase 1)" "switching" "phase switching is left behind"
like "$(source_read_only -101)" "read-only" "the source is still frozen"
tq 1 "INSERT INTO kv VALUES (-102, 'on the target after the crash', 0)" >/dev/null
ok $? "the application writes on the target"
q source "BEGIN READ WRITE; INSERT INTO kv VALUES (-103, 'slipped in on the source', 0); COMMIT" >/dev/null 2>&1
ok $? "with the fence gone, a BEGIN READ WRITE session writes on the source"
"${F[@]}" switchover --yes >/dev/null 2>"$TEST_TMP/e1b"; rc=$?
is "$rc" 0 "the rerun of switchover succeeds" || diag "$(tail -8 "$TEST_TMP/e1b")"
like "$(cat "$TEST_TMP/e1b")" "finishing it forward" "it finishes the interrupted switch forward"
unlike "$(cat "$TEST_TMP/e1b")" "undoing|aborted|accepts writes again" "without undoing it or unfreezing the source"
is "$(wc -l <"$TEST_TMP/runs1")" 2 "the switch hook ran again"
is "$(phase 1)" "switched" "phase switched"
like "$(source_read_only -104)" "read-only" "the source stays frozen"
is "$(reverse_slot 1)" 1 "the reverse slot is kept"
is "$(tq 1 "SELECT v FROM kv WHERE id = -103")" "slipped in on the source" "the source's write after the crash reached the target"
tq 1 "INSERT INTO kv VALUES (-105, 'on the target after the rerun', 0)" >/dev/null
"${F[@]}" rollback --yes >/dev/null 2>"$TEST_TMP/e1c"; rc=$?
is "$rc" 0 "rollback" || diag "$(tail -8 "$TEST_TMP/e1c")"
is "$(phase 1)" "rolled_back" "phase rolled_back"
is "$(q source "SELECT v FROM kv WHERE id = -102")" "on the target after the crash" "the target's write after the crash is on the source"
is "$(q source "SELECT v FROM kv WHERE id = -105")" "on the target after the rerun" "and the one after the rerun"

# 2. killed right after the switch hook, before the phase is recorded
cat >"$TEST_TMP/ferry2.yaml" <<YAML
hooks:
  switch: "echo run >>$TEST_TMP/runs2"
YAML
migrate 2
(FERRY_FAULT=switchover.after-switch-hook "${F[@]}" switchover --yes >/dev/null 2>"$TEST_TMP/e2a"; exit $?) 2>/dev/null; rc=$?
is "$rc" 137 "switchover killed after its switch hook"
is "$(phase 2)" "switching" "phase switching is left behind"
tq 2 "INSERT INTO kv VALUES (-202, 'on the target after the crash', 0)" >/dev/null
ok $? "the application writes on the target"
(FERRY_FAULT=switchover.resume-drained "${F[@]}" switchover --yes >/dev/null 2>"$TEST_TMP/e2r"; exit $?) 2>/dev/null; rc=$?
is "$rc" 137 "the rerun is killed too, after its drain"
is "$(phase 2)" "switching" "phase switching is still left behind"
is "$(reverse_slot 2)" 1 "the reverse slot is kept"
like "$(source_read_only -203)" "read-only" "the source is still frozen"
"${F[@]}" switchover --yes >/dev/null 2>"$TEST_TMP/e2b"; rc=$?
is "$rc" 0 "the rerun of switchover succeeds" || diag "$(tail -8 "$TEST_TMP/e2b")"
unlike "$(cat "$TEST_TMP/e2b")" "undoing|aborted|accepts writes again" "without undoing it or unfreezing the source"
is "$(wc -l <"$TEST_TMP/runs2")" 2 "the switch hook ran again"
is "$(phase 2)" "switched" "phase switched"
like "$(source_read_only -204)" "read-only" "the source stays frozen"
is "$(reverse_slot 2)" 1 "the reverse slot is kept"
"${F[@]}" rollback --yes >/dev/null 2>"$TEST_TMP/e2c"; rc=$?
is "$rc" 0 "rollback" || diag "$(tail -8 "$TEST_TMP/e2c")"
is "$(q source "SELECT v FROM kv WHERE id = -202")" "on the target after the crash" "the target's write after the crash is on the source"

# 3. killed once the intent is recorded, just before the hook; then rollback
cat >"$TEST_TMP/ferry3.yaml" <<YAML
hooks:
  switch: "echo run >>$TEST_TMP/runs3"
YAML
migrate 3
(FERRY_FAULT=switchover.before-switch-hook "${F[@]}" switchover --yes >/dev/null 2>"$TEST_TMP/e3a"; exit $?) 2>/dev/null; rc=$?
is "$rc" 137 "switchover killed just before its switch hook"
is "$(phase 3)" "switching" "phase switching is left behind"
ok "$([ ! -e "$TEST_TMP/runs3" ]; echo $?)" "the hook did not run"
tq 3 "INSERT INTO kv VALUES (-302, 'on the target after the crash', 0)" >/dev/null
ok $? "the application (partly pointed at the target) writes there"
"${F[@]}" rollback --yes >/dev/null 2>"$TEST_TMP/e3b"; rc=$?
is "$rc" 0 "rollback succeeds" || diag "$(tail -8 "$TEST_TMP/e3b")"
unlike "$(cat "$TEST_TMP/e3b")" "interrupted switchover: unfreezing" "it is a real rollback, not the undo of an interrupted switchover"
is "$(phase 3)" "rolled_back" "phase rolled_back"
is "$(q source "SELECT v FROM kv WHERE id = -302")" "on the target after the crash" "the target's write is on the source"
like "$(tq 3 "INSERT INTO kv VALUES (-303, 'x', 0)" 2>&1)" "read-only" "the target is frozen, as after any rollback"
is "$(reverse_slot 3)" 0 "the reverse slot is dropped once drained"
q source "INSERT INTO kv VALUES (-304, 'source again', 0)" >/dev/null 2>&1
ok $? "the source takes writes again"

unlike "$(cat "$TEST_TMP"/e*)" "runtime error|LeakSanitizer" "no sanitizer reports"
done_testing
