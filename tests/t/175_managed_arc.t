#!/usr/bin/env bash
# The whole arc without a superuser on either side (issue 13), with the
# rights a managed service hands out, granted exactly as `ferry check`
# names them: check, start, status, verify, switchover under load by an
# application that is no superuser either, writes on the new primary,
# rollback, cleanup; source and target equal by checksum at each step,
# sequences past the source's, no slot left.
#   source: the application's objects belong to app_owner; migrator owns the
#           database (a managed service's admin user) and has REPLICATION,
#           SELECT, pg_read_all_stats and pg_signal_backend, nothing else
#   target: migrator owns the empty database, nothing else
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
q source "CREATE ROLE app_owner LOGIN; CREATE ROLE app_rw LOGIN;
          CREATE ROLE migrator LOGIN REPLICATION;
          ALTER DATABASE app OWNER TO migrator;
          GRANT SELECT ON ALL TABLES IN SCHEMA public TO migrator;
          GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO migrator;
          GRANT pg_read_all_stats, pg_signal_backend TO migrator;
          DO \$\$ DECLARE r record; BEGIN
            FOR r IN SELECT c.oid::regclass AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'S') LOOP
              EXECUTE format('ALTER TABLE %s OWNER TO app_owner', r.t);
            END LOOP;
            FOR r IN SELECT p.oid::regprocedure AS f FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                      WHERE n.nspname = 'public' LOOP
              EXECUTE format('ALTER FUNCTION %s OWNER TO app_owner', r.f);
            END LOOP; END \$\$;
          GRANT CREATE ON SCHEMA public TO app_owner;
          GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO app_rw;
          GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO app_rw" >/dev/null
q target "CREATE ROLE app_owner LOGIN; CREATE ROLE app_rw LOGIN; CREATE ROLE migrator LOGIN;
          ALTER DATABASE app OWNER TO migrator" >/dev/null
SRC="host=$SOURCE_SOCK port=$SOURCE_PORT dbname=app user=migrator"
TGT="host=$TARGET_SOCK port=$TARGET_PORT dbname=app user=migrator"
F=("$FERRY" --source "$SRC" --target "$TGT")
same() { is "$(db_checksum source | grep -v '^ferry\.')" "$(db_checksum target | grep -v '^ferry\.')" "$1"; }
app_load() {  # app_load SIDE SECONDS: the application (app_rw, no superuser) writes there
  local sock port
  if [ "$1" = source ]; then sock=$SOURCE_SOCK port=$SOURCE_PORT; else sock=$TARGET_SOCK port=$TARGET_PORT; fi
  "$PGBIN/pgbench" -n -T "$2" -c 2 -h "$sock" -p "$port" -U app_rw -f "$SQL/load/mixed.sql@10" app >>"$TEST_TMP/load" 2>&1
}

# 1. check names every right that is missing, each with its statement
"${F[@]}" check >"$TEST_TMP/check1" 2>&1; rc=$?
is "$rc" 3 "check: blocking problems without the grants"
c1=$(sed -e ':a;N;$!ba;s/\n  fix:/ fix:/g' "$TEST_TMP/check1")   # each row with its fix on one line
like "$c1" "FAIL +source +publication .* fix: .*GRANT app_owner TO migrator;" "source: the publication needs membership in the tables' owner"
like "$c1" "FAIL +target +apply role .* fix: as a superuser on the target: GRANT SET ON PARAMETER session_replication_role TO migrator;" \
  "target: setting session_replication_role, with its GRANT"
like "$c1" "WARN +target +replication origin .*GRANT EXECUTE ON FUNCTION pg_catalog.pg_replication_origin_create\(text\)" \
  "target: no replication origin is a warning, with its GRANT"
like "$c1" "WARN +target +rollback rights .*pg_read_all_stats, pg_signal_backend .*REPLICATION.* fix: GRANT pg_read_all_stats, pg_signal_backend TO migrator; ALTER ROLE migrator WITH REPLICATION;" \
  "target: what a rollback needs, with the GRANTs, before the day"
like "$c1" "FAIL +target +role membership .*GRANT app_owner TO migrator; on the target" "target: restoring ownership needs membership"
like "$c1" "ok +target +schema privileges" \
  "target: the owner's CREATE on public comes from the source's grant, restored before the objects (test 202)"

# the DBA runs what check said (and leaves the origin functions out: ferry degrades)
q source "GRANT app_owner TO migrator" >/dev/null
q target "GRANT SET ON PARAMETER session_replication_role TO migrator; GRANT app_owner TO migrator;
          GRANT pg_read_all_stats, pg_signal_backend TO migrator; ALTER ROLE migrator REPLICATION" >/dev/null
"${F[@]}" check >"$TEST_TMP/check2" 2>&1; rc=$?
is "$rc" 0 "check: nothing blocking once granted" || diag "$(grep -v '^ok' "$TEST_TMP/check2")"
like "$(sed -e ':a;N;$!ba;s/\n  fix:/ fix:/g' "$TEST_TMP/check2")" "WARN +source +switchover rights .*session_replication_role.* fix: as a superuser: GRANT SET ON PARAMETER session_replication_role TO migrator;" \
  "a warning remains: reverse replication could not apply on the source"
like "$(cat "$TEST_TMP/check2")" "ok +target +rollback rights" "and the rollback's"

# 2. start and follow, under the application's load
"${F[@]}" start --jobs 2 >>"$TEST_TMP/out" 2>>"$TEST_TMP/err" &
FP=$!
wait_following ferry 90; r=$?; ok $r "ferry start follows as migrator"
[ "$r" = 0 ] || { diag "$(tail -8 "$TEST_TMP/err")"; bail "ferry start does not follow"; }
app_load source 4
wait_applied ferry 60; ok $? "caught up"
same "source equals target while following"
"${F[@]}" status >"$TEST_TMP/st" 2>&1; is "$?" 0 "status exits 0"
"${F[@]}" verify >"$TEST_TMP/vf" 2>&1; is "$?" 0 "verify: identical" || diag "$(tail -5 "$TEST_TMP/vf")"

# 3. a switchover that could not start reverse replication is refused before the freeze
"${F[@]}" switchover --yes --max-lag 5 --timeout 30 >"$TEST_TMP/sw0.out" 2>"$TEST_TMP/sw0.err"
is "$?" 1 "switchover refused while reverse replication could not apply on the source"
like "$(cat "$TEST_TMP/sw0.err")" "may not set session_replication_role there; nothing was frozen. Fix: as a superuser on the source, GRANT SET ON PARAMETER session_replication_role TO migrator" \
  "naming the GRANT"
is "$(migration_phase)" following "phase stays following"
q source "INSERT INTO kv VALUES (-90, 'the source still takes writes', 0)" >/dev/null
ok $? "the source was not frozen"
q source "GRANT SET ON PARAMETER session_replication_role TO migrator" >/dev/null
"${F[@]}" check >"$TEST_TMP/check3" 2>&1
like "$(cat "$TEST_TMP/check3")" "ok +source +switchover rights" "with it, check finds every right the switchover needs"

# switchover while the application writes on the source
app_load source 8 &
LP=$!
sleep 3
"${F[@]}" switchover --yes --max-lag 5 --timeout 60 >"$TEST_TMP/sw.out" 2>"$TEST_TMP/sw.err"
is "$?" 0 "switchover as migrator exits 0" || diag "$(tail -20 "$TEST_TMP/sw.err")"
wait "$LP"
is "$(migration_phase)" switched "phase switched"
same "source equals target after the switchover"
is "$(q target "SELECT last_value >= (SELECT max(id) FROM kv) FROM kv_new_ids")" t "the target's sequence is past every id used"

# 4. the application moves to the target; reverse replication brings it back
app_load target 4
q target "INSERT INTO kv VALUES (-91, 'last on the new primary', 0)" >/dev/null
for _ in $(seq 1 150); do
  [ "$(q source "SELECT count(*) FROM kv WHERE id = -91")" = 1 ] && break; sleep 0.2
done
same "the old source follows the new primary (reverse replication)" || diag "$(grep -E "ERROR|WARN" "$TEST_TMP/err" | tail -5)"

# 5. rollback
"${F[@]}" rollback --yes --timeout 60 >"$TEST_TMP/rb.out" 2>"$TEST_TMP/rb.err"
is "$?" 0 "rollback as migrator exits 0" || diag "$(tail -20 "$TEST_TMP/rb.err")"
same "source equals target after the rollback"
q source "INSERT INTO kv VALUES (-92, 'the source writes again', 0)" >/dev/null
ok $? "the source takes writes again"
kill -TERM "$FP" 2>/dev/null; wait "$FP"

# 6. cleanup leaves no slot and no publication retaining WAL
"${F[@]}" cleanup >"$TEST_TMP/cl.out" 2>&1; rc=$?
is "$rc" 0 "cleanup exits 0" || diag "$(tail -5 "$TEST_TMP/cl.out")"
is "$(slot_count source) $(slot_count target)" "0 0" "no replication slot left on either side"
unlike "$(cat "$TEST_TMP/err" "$TEST_TMP/sw.err" "$TEST_TMP/rb.err")" "runtime error|LeakSanitizer" "no sanitizer reports"
done_testing
