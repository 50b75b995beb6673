#!/usr/bin/env bash
# ferry switchover when things go wrong: a failing or hanging hook, the
# target going down, a drain that times out, too much lag, a kill -9 in the
# freeze window. Each time the source takes writes again, replication keeps
# running and nothing is lost. Also: hooks' environment (never a password),
# files carried along, --freeze revoke, --verify and --no-reverse without a
# running ferry start.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

pg_start source "max_prepared_transactions = 5"
pg_start target
qf source "$SQL/follow_schema.sql" >/dev/null || bail "schema failed"
SRC="$SOURCE_CONN password=sekrit-pw"
F=("$FERRY" --source "$SRC" --target "$TARGET_CONN")
CFG="$TEST_TMP/ferry.yaml"
PSQL_T="$PGBIN/psql -XAtq -h $TARGET_SOCK -p $TARGET_PORT -U postgres -d app"
PSQL_S="$PGBIN/psql -XAtq -h $SOURCE_SOCK -p $SOURCE_PORT -U postgres -d app"


"${F[@]}" start --jobs 2 >"$TEST_TMP/start.out" 2>"$TEST_TMP/start.err" &
FP=$!
wait_following ferry 60
is "$(migration_phase)" "following" "ferry start follows"

# 1. a failing pre_freeze hook: nothing frozen
cat >"$CFG" <<YAML
hooks:
  pre_freeze: "exit 3"
YAML
"${F[@]}" --config "$CFG" switchover --yes >"$TEST_TMP/o1" 2>"$TEST_TMP/e1"; rc=$?
is "$rc" 1 "a failing pre_freeze hook fails the switchover"
like "$(cat "$TEST_TMP/e1")" "the pre_freeze hook failed \(exit status 3\)" "naming the hook and its status"
source_writable; ok $? "the source takes writes and replication runs"
is "$(migration_phase)" "following" "phase stays following"

# 1b. a transaction prepared after the checks, before the freeze (here by the pre_freeze hook):
# it would commit after the drain and never reach the target, so the frozen source is checked again
cat >"$CFG" <<YAML
hooks:
  pre_freeze: "$PSQL_S -c \"BEGIN; INSERT INTO kv VALUES (-7777, 'prepared', 0); PREPARE TRANSACTION 'late'\""
YAML
"${F[@]}" --config "$CFG" switchover --yes >"$TEST_TMP/o1b" 2>"$TEST_TMP/e1b"; rc=$?
is "$rc" 1 "a transaction prepared just before the freeze fails the switchover"
like "$(cat "$TEST_TMP/e1b")" "the source database has 1 prepared transactions" "naming the prepared transaction"
like "$(cat "$TEST_TMP/e1b")" "switchover aborted" "and it is aborted"
q source "ROLLBACK PREPARED 'late'" >/dev/null
source_writable; ok $? "the source takes writes again and replication runs"
is "$(migration_phase)" "following" "phase back to following"

# 2. a failing switch hook, after freeze, drain, sequences, reverse slot: all undone
cat >"$CFG" <<YAML
hooks:
  switch: "env > $TEST_TMP/hook.env; exit 1"
YAML
"${F[@]}" --config "$CFG" switchover --yes >"$TEST_TMP/o2" 2>"$TEST_TMP/e2"; rc=$?
is "$rc" 1 "a failing switch hook fails the switchover"
like "$(cat "$TEST_TMP/e2")" "switchover aborted" "and says it is aborted"
like "$(cat "$TEST_TMP/o2")" "FAILED: put back" "the report says everything was put back"
source_writable; ok $? "the source takes writes again and replication runs"
is "$(migration_phase)" "following" "phase back to following"
is "$(QDB=postgres q target "SELECT count(*) FROM pg_replication_slots")" "0" "the reverse slot is dropped"
is "$(q target "SELECT count(*) FROM pg_publication")" "0" "the reverse publications are dropped"
is "$(q source "SELECT count(*) FROM pg_db_role_setting")" "0" "the source database has no read-only setting left"
like "$(cat "$TEST_TMP/hook.env")" "FERRY_NAME=ferry" "hooks get FERRY_NAME"
like "$(cat "$TEST_TMP/hook.env")" "FERRY_PHASE=switch" "hooks get FERRY_PHASE"
like "$(cat "$TEST_TMP/hook.env")" "FERRY_TARGET_PORT=$TARGET_PORT" "hooks get the target's port"
like "$(cat "$TEST_TMP/hook.env")" "FERRY_SOURCE_DBNAME=app" "hooks get the source's database"
unlike "$(cat "$TEST_TMP/hook.env")" "sekrit-pw" "hooks never see the password"
unlike "$(cat "$TEST_TMP"/e* "$TEST_TMP"/o*)" "sekrit-pw" "no output shows the password"

# 3. a hanging hook is stopped at --hook-timeout
cat >"$CFG" <<YAML
hooks:
  pre_freeze: "sleep 30"
YAML
t0=$(date +%s)
"${F[@]}" --config "$CFG" switchover --yes --hook-timeout 2 >/dev/null 2>"$TEST_TMP/e3"; rc=$?
is "$rc" 1 "a hook that hangs fails the switchover"
like "$(cat "$TEST_TMP/e3")" "did not finish within 2 s" "after --hook-timeout"
ok "$([ $(( $(date +%s) - t0 )) -lt 15 ] && echo 0 || echo 1)" "without waiting for the hook"

# 4. too much lag: nothing is frozen
$PSQL_T -c "BEGIN; LOCK TABLE kv IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(8); COMMIT" >/dev/null 2>&1 &
HP=$!
sleep 0.5
q source "INSERT INTO kv VALUES (-1000, 'stuck', 0)" >/dev/null
"${F[@]}" switchover --yes --max-lag 1 --timeout 3 >/dev/null 2>"$TEST_TMP/e4"; rc=$?
is "$rc" 1 "switchover refuses while replication lags"
like "$(cat "$TEST_TMP/e4")" "lag stayed above --max-lag 1 s" "saying the lag is the problem"
wait "$HP"
source_writable; ok $? "the source was never frozen and replication catches up"

# 5. the drain times out (the target's table is locked inside the freeze window)
cat >"$CFG" <<YAML
hooks:
  pre_freeze: "($PSQL_T -c 'BEGIN; LOCK TABLE kv IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(10); COMMIT' >/dev/null 2>&1 &) ; sleep 0.5; $PSQL_S -c \"INSERT INTO kv VALUES (-2000, 'in flight', 0)\""
YAML
"${F[@]}" --config "$CFG" switchover --yes --timeout 4 >/dev/null 2>"$TEST_TMP/e5"; rc=$?
is "$rc" 1 "a drain that does not finish within --timeout fails the switchover"
like "$(cat "$TEST_TMP/e5")" "did not apply the last changes within --timeout 4 s" "saying so"
source_writable; ok $? "the source takes writes again and nothing is lost"
is "$(q target "SELECT v FROM kv WHERE id = -2000")" "in flight" "the change in flight during the freeze arrived"

# 6. the target goes down during the switchover
cat >"$CFG" <<YAML
hooks:
  pre_freeze: "runuser -u postgres -- $PGBIN/pg_ctl -D $TARGET_DATA -m immediate -w stop >/dev/null 2>&1 || $PGBIN/pg_ctl -D $TARGET_DATA -m immediate -w stop"
YAML
"${F[@]}" --config "$CFG" switchover --yes --timeout 4 >/dev/null 2>"$TEST_TMP/e6"; rc=$?
is "$rc" 1 "switchover fails when the target goes down"
q source "INSERT INTO kv VALUES (-3000, 'while target down', 0)" >/dev/null 2>&1
ok $? "the source takes writes while the target is down"
pg_restart target 2>/dev/null || as_pg "$PGBIN/pg_ctl" -D "$TARGET_DATA" -l "$TARGET_DATA/server.log" -w -t 60 start >/dev/null
wait_applied ferry 90; ok $? "replication carries on once the target is back"
is "$(q target "SELECT v FROM kv WHERE id = -3000")" "while target down" "with the write made meanwhile"

# 7. kill -9 inside the freeze window: cleanup refuses, rollback unfreezes
(FERRY_FAULT=switchover.after-freeze "${F[@]}" switchover --yes >/dev/null 2>&1; exit $?) 2>/dev/null; rc=$?
is "$rc" 137 "switchover killed inside the freeze window"
is "$(migration_phase)" "switching" "phase switching is left behind"
out=$(q source "INSERT INTO kv VALUES (-4000, 'x', 0)" 2>&1)
like "$out" "read-only" "the source is still frozen"
"${F[@]}" cleanup >/dev/null 2>"$TEST_TMP/e7"; rc=$?
is "$rc" 1 "cleanup refuses a half-done switchover"
like "$(cat "$TEST_TMP/e7")" "half done.*ferry rollback" "and names the fix"
"${F[@]}" rollback --yes >/dev/null 2>"$TEST_TMP/e7b"; rc=$?
is "$rc" 0 "rollback undoes the interrupted switchover" || diag "$(tail -5 "$TEST_TMP/e7b")"
is "$(migration_phase)" "following" "phase following again"
source_writable; ok $? "the source takes writes again and replication runs"

# 7a. check must pass: an application role missing on the target stops the switchover before the freeze
q source "CREATE ROLE appuser LOGIN; GRANT INSERT, SELECT, UPDATE ON kv TO appuser" >/dev/null
"${F[@]}" switchover --yes >/dev/null 2>"$TEST_TMP/e7a"; rc=$?
is "$rc" 1 "switchover refuses while ferry check finds a blocking problem"
like "$(cat "$TEST_TMP/e7a")" "check, target, roles: .*appuser.*Fix: CREATE ROLE appuser" "naming the problem and its fix"
like "$(cat "$TEST_TMP/e7a")" "nothing was frozen" "before freezing anything"
source_writable; ok $? "the source takes writes and replication runs"

# 7b. --freeze revoke: the application role loses LOGIN and gets it back on abort
q target "CREATE ROLE appuser LOGIN; GRANT INSERT, SELECT, UPDATE ON kv TO appuser" >/dev/null   # the application needs its role on the new server too (ferry check)
cat >"$CFG" <<YAML
hooks:
  switch: "$PGBIN/psql -XAtq -h $SOURCE_SOCK -p $SOURCE_PORT -U appuser -d app -c 'SELECT 1' >$TEST_TMP/login.out 2>&1; exit 1"
YAML
"${F[@]}" --config "$CFG" switchover --yes --freeze revoke --freeze-role appuser >/dev/null 2>"$TEST_TMP/e7c"; rc=$?
is "$rc" 1 "switchover with --freeze revoke aborted by the switch hook"
like "$(cat "$TEST_TMP/login.out")" "not permitted to log in" "while frozen the application role could not log in"
is "$(q source "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'appuser'")" "t" "the abort gave the role its LOGIN back"
source_writable; ok $? "the source takes writes and replication runs"

# 8. no ferry start: switchover applies in-process; --verify, --no-reverse, files
kill -TERM "$FP"; wait "$FP"
mkdir -p "$TEST_TMP/up" "$TEST_TMP/up-new"
echo "hello" >"$TEST_TMP/up/a.txt"
cat >"$CFG" <<YAML
files:
  - {from: "$TEST_TMP/up/", to: "$TEST_TMP/up-new/"}
YAML
pgload 3 2 "$SQL/load/mixed.sql" >/dev/null 2>&1
echo "late" >"$TEST_TMP/up/b.txt"
# an application session that calls itself ferry is not taken for one of ferry's own
PGAPPNAME=ferry-impostor "$PGBIN/psql" -XAtq -h "$SOURCE_SOCK" -p "$SOURCE_PORT" -U appuser -d app \
  -c "SELECT pg_sleep(120)" >"$TEST_TMP/impostor.out" 2>&1 &
IMP=$!
sleep 0.5
"${F[@]}" --config "$CFG" switchover --yes --verify --no-reverse >"$TEST_TMP/o8" 2>"$TEST_TMP/e8"; rc=$?
is "$rc" 0 "switchover without ferry start running, with --verify" || diag "$(tail -10 "$TEST_TMP/e8")"
kill "$IMP" 2>/dev/null; wait "$IMP" 2>/dev/null
like "$(cat "$TEST_TMP/impostor.out")" "terminating connection" "the freeze ended an application session named ferry-impostor too"
like "$(cat "$TEST_TMP/e8")" "ferry start is not running" "it applied the changes itself"
like "$(cat "$TEST_TMP/o8")" "identical" "verify ran while frozen"
is "$(cat "$TEST_TMP/up-new/a.txt" "$TEST_TMP/up-new/b.txt" 2>&1)" "hello
late" "files are synced inside the freeze window"
is "$(db_checksum target | grep -v '^ferry\.')" "$(db_checksum source | grep -v '^ferry\.')" "every table equal"
is "$(QDB=postgres q target "SELECT count(*) FROM pg_replication_slots") $(QDB=postgres q source "SELECT count(*) FROM pg_replication_slots")" "0 0" "--no-reverse: no reverse slot; the forward slot is dropped"
"${F[@]}" rollback --yes >/dev/null 2>"$TEST_TMP/e9"; rc=$?
is "$rc" 1 "rollback is refused without reverse replication"
like "$(cat "$TEST_TMP/e9")" "no-reverse" "saying why"
unlike "$(cat "$TEST_TMP"/start.err "$TEST_TMP"/e*)" "runtime error|LeakSanitizer" "no sanitizer reports"
done_testing
