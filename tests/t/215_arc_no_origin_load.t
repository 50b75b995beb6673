#!/usr/bin/env bash
# A red-team helper's attack (held): the arc twice without a superuser on
# either side (no replication origin anywhere: marks only), under the
# application's load (issue 13).
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
q source "GRANT app_owner TO migrator; GRANT SET ON PARAMETER session_replication_role TO migrator" >/dev/null
q target "GRANT SET ON PARAMETER session_replication_role TO migrator; GRANT app_owner TO migrator;
          GRANT pg_read_all_stats, pg_signal_backend TO migrator; ALTER ROLE migrator REPLICATION" >/dev/null
"${F[@]}" start --jobs 2 >>"$TEST_TMP/out" 2>>"$TEST_TMP/err" &
FP=$!
wait_following ferry 90; r=$?; ok $r "ferry start follows as migrator"
[ "$r" = 0 ] || { diag "$(tail -8 "$TEST_TMP/err")"; bail "ferry start does not follow"; }
for arc in 1 2; do
  app_load source 6 &
  LP=$!
  sleep 2
  "${F[@]}" switchover --yes --max-lag 5 --timeout 60 >"$TEST_TMP/sw$arc.out" 2>"$TEST_TMP/sw$arc.err"
  is "$?" 0 "arc $arc: switchover" || diag "$(tail -5 "$TEST_TMP/sw$arc.err")"
  wait "$LP"
  same "arc $arc: equal after the switchover"
  app_load target 4
  q target "INSERT INTO kv VALUES (-91$arc, 'last on the new primary', 0)" >/dev/null
  app_load target 3 &
  LP=$!
  sleep 1
  "${F[@]}" rollback --yes --timeout 60 >"$TEST_TMP/rb$arc.out" 2>"$TEST_TMP/rb$arc.err"
  is "$?" 0 "arc $arc: rollback" || diag "$(tail -5 "$TEST_TMP/rb$arc.err")"
  wait "$LP"
  same "arc $arc: equal after the rollback"
  like "$(cat "$TEST_TMP/rb$arc.err")" "kept replication slot ferry on the source" "arc $arc: the rollback re-armed"
  for _ in $(seq 1 100); do kill -0 "$FP" 2>/dev/null || break; sleep 0.1; done
  kill -TERM "$FP" 2>/dev/null; wait "$FP"
  app_load source 8 >/dev/null 2>&1 &
  LP=$!
  sleep 1
  "${F[@]}" start --jobs 2 >>"$TEST_TMP/out" 2>>"$TEST_TMP/err" &
  FP=$!
  wait_following ferry 90; ok $? "arc $arc: follows again"
  wait "$LP"
  wait_applied ferry 60; ok $? "arc $arc: caught up"
  same "arc $arc: equal while following again" || diag "$(grep -E 'ERROR|WARN' "$TEST_TMP/err" | tail -5)"
  is "$(q target "SELECT count(*) FROM ferry.unmatched")" 0 "arc $arc: nothing unmatched"
done
kill -TERM "$FP" 2>/dev/null; wait "$FP"
"${F[@]}" cleanup >"$TEST_TMP/cl.out" 2>&1; rc=$?
is "$rc" 0 "cleanup exits 0" || diag "$(tail -5 "$TEST_TMP/cl.out")"
is "$(slot_count source) $(slot_count target)" "0 0" "no replication slot left on either side"
unlike "$(cat "$TEST_TMP/err" "$TEST_TMP/sw1.err" "$TEST_TMP/rb1.err")" "runtime error|LeakSanitizer" "no sanitizer reports"
done_testing
