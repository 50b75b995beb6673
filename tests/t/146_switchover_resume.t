#!/usr/bin/env bash
# ferry switchover and rollback after an interrupted one (kill -9 inside the
# freeze window): the freeze record saved by the first run is what undoes
# the freeze, so a second run must not replace it with the frozen state it
# finds; reverse objects the first run left must not survive; --freeze
# revoke must record the roles before it takes their LOGIN.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
CFG="$TEST_TMP/ferry.yaml"


ferry_start --jobs 2
wait_following ferry 60
is "$(migration_phase)" "following" "ferry start follows"

# 1. killed once the reverse objects exist, before the switch hook, then a switchover that aborts
# (killed in or after the switch hook, a rerun finishes forward instead: 149)
(FERRY_FAULT=switchover.after-reverse "${F[@]}" switchover --yes >/dev/null 2>&1; exit $?) 2>/dev/null; rc=$?
is "$rc" 137 "switchover killed inside the freeze window"
is "$(migration_phase)" "switching" "phase switching is left behind"
cat >"$CFG" <<YAML
hooks:
  pre_freeze: "$PGBIN/psql -XAtq -h $TARGET_SOCK -p $TARGET_PORT -U postgres -d postgres -c \"SELECT slot_name FROM pg_replication_slots\" >$TEST_TMP/slots.out 2>&1"
  switch: "exit 1"
YAML
"${F[@]}" --config "$CFG" switchover --yes >/dev/null 2>"$TEST_TMP/e1"; rc=$?
is "$rc" 1 "the second switchover aborts at the switch hook"
unlike "$(cat "$TEST_TMP/slots.out")" "ferry_reverse" "the interrupted run's reverse slot is gone before the source is frozen again"
is "$(migration_phase)" "following" "phase following"
is "$(q source "SELECT count(*) FROM pg_db_role_setting")" "0" "the source database has no read-only setting left"
source_writable; ok $? "the source takes writes again" || diag "$(tail -5 "$TEST_TMP/e1")"
is "$(slot_count target)" "0" "no reverse slot is left on the target"

# 2. interrupted twice, then rollback: the first run's record unfreezes it
(FERRY_FAULT=switchover.after-freeze "${F[@]}" switchover --yes >/dev/null 2>&1) 2>/dev/null
(FERRY_FAULT=switchover.after-freeze "${F[@]}" switchover --yes >/dev/null 2>&1; exit $?) 2>/dev/null; rc=$?
is "$rc" 137 "a second switchover killed inside the freeze window"
"${F[@]}" rollback --yes >/dev/null 2>"$TEST_TMP/e2"; rc=$?
is "$rc" 0 "rollback undoes the interrupted switchover"
is "$(q source "SELECT count(*) FROM pg_db_role_setting")" "0" "the source database has no read-only setting left"
source_writable; ok $? "the source takes writes again" || diag "$(tail -5 "$TEST_TMP/e2")"

# 3. --freeze revoke killed after NOLOGIN, before anything else: rollback gives LOGIN back
q source "CREATE ROLE appuser LOGIN" >/dev/null
(FERRY_FAULT=freeze.after-revoke "${F[@]}" switchover --yes --freeze revoke --freeze-role appuser >/dev/null 2>&1; exit $?) 2>/dev/null; rc=$?
is "$rc" 137 "switchover --freeze revoke killed right after revoking"
is "$(q source "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'appuser'")" "f" "the role lost LOGIN"
"${F[@]}" rollback --yes >/dev/null 2>"$TEST_TMP/e3"; rc=$?
is "$rc" 0 "rollback undoes it"
is "$(q source "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'appuser'")" "t" "the role has LOGIN again"
is "$(migration_phase)" "following" "phase following"

# 4. a rollback killed inside its freeze window, then one that aborts: the target takes writes again
"${F[@]}" switchover --yes >/dev/null 2>"$TEST_TMP/e4"; rc=$?
is "$rc" 0 "switchover" || diag "$(tail -5 "$TEST_TMP/e4")"
(FERRY_FAULT=rollback.after-freeze "${F[@]}" rollback --yes >/dev/null 2>&1; exit $?) 2>/dev/null; rc=$?
is "$rc" 137 "rollback killed inside its freeze window"
is "$(migration_phase)" "rolling_back" "phase rolling_back is left behind"
# a write the frozen target took from a superuser, whose reverse apply waits for a lock on the source
$PGBIN/psql -XAtq -h $SOURCE_SOCK -p $SOURCE_PORT -U postgres -d app \
  -c "BEGIN; LOCK TABLE kv IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(10); COMMIT" >/dev/null 2>&1 &
HP=$!
sleep 0.5
q target "BEGIN READ WRITE; INSERT INTO kv VALUES (-5000, 'on target', 0); COMMIT" >/dev/null
ok $? "the frozen target takes a superuser's write"
"${F[@]}" rollback --yes --timeout 3 >/dev/null 2>"$TEST_TMP/e5"; rc=$?
is "$rc" 1 "a rollback whose drain times out fails"
is "$(migration_phase)" "switched" "phase switched again"
is "$(q target "SELECT count(*) FROM pg_db_role_setting")" "0" "the target database has no read-only setting left"
q target "INSERT INTO kv VALUES (-5001, 'on target again', 0)" >/dev/null 2>&1
ok $? "the target takes writes again" || diag "$(tail -5 "$TEST_TMP/e5")"
wait "$HP"

# 5. a rollback killed after the drain, before the source was unfrozen: its fence died with it, so the
# next one drains again (a BEGIN READ WRITE session may have written on the target since: 198)
for i in $(seq 1 100); do [ "$(q source "SELECT count(*) FROM kv WHERE id = -5001")" = 1 ] && break; sleep 0.1; done
(FERRY_FAULT=rollback.after-drain "${F[@]}" rollback --yes >/dev/null 2>&1; exit $?) 2>/dev/null; rc=$?
is "$rc" 137 "rollback killed between the drain and unfreezing the source"
out=$(q source "INSERT INTO kv VALUES (-6000, 'x', 0)" 2>&1)
like "$out" "read-only" "the source is still frozen"
"${F[@]}" rollback --yes >/dev/null 2>"$TEST_TMP/e6"; rc=$?
is "$rc" 0 "the next rollback finishes it" || diag "$(tail -5 "$TEST_TMP/e6")"
like "$(cat "$TEST_TMP/e6")" "fence died with it: draining again" "draining again"
is "$(migration_phase)" "rolled_back" "phase rolled_back"
q source "INSERT INTO kv VALUES (-6001, 'back on source', 0)" >/dev/null 2>&1
ok $? "the source takes writes"
is "$(q source "SELECT v FROM kv WHERE id = -5001")" "on target again" "with the target's writes on it"

kill -TERM "$FP"; wait "$FP"
unlike "$(cat "$TEST_TMP"/e*)" "runtime error|LeakSanitizer" "no sanitizer reports"
done_testing
