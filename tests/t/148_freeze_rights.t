#!/usr/bin/env bash
# A freeze that cannot see or end the application's sessions, or cannot hold
# their writes, refuses before anything is frozen (issue 12 item 2b). As the
# README's non-superuser `migrator` without pg_read_all_stats, other roles'
# sessions read backend_type NULL in pg_stat_activity: the old freeze "ended 0
# application sessions", the application kept committing through the freeze
# and switchover reported success. Each missing right is named with its GRANT;
# with all of them the non-superuser switchover loses nothing. (migrator owns
# the tables here, as ferry check asks for the publication, so the fence's
# lock right is not exercised here; may set session_replication_role, which
# reverse replication applying on the source needs: test 175.)
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
for side in source target; do
  q "$side" "CREATE ROLE app_rw LOGIN" >/dev/null
  [ "$side" = target ] && q target "CREATE ROLE migrator LOGIN REPLICATION" >/dev/null
done
q source "CREATE TABLE orders (id bigint PRIMARY KEY, writer text NOT NULL, at timestamptz NOT NULL DEFAULT now());
          GRANT SELECT, INSERT ON orders TO app_rw;
          CREATE ROLE migrator LOGIN REPLICATION; GRANT SELECT ON ALL TABLES IN SCHEMA public TO migrator;
          ALTER DATABASE app OWNER TO migrator; GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO migrator;
          GRANT SET ON PARAMETER session_replication_role TO migrator;
          DO \$\$ DECLARE r record; BEGIN
            FOR r IN SELECT c.oid::regclass AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') LOOP
              EXECUTE format('ALTER TABLE %s OWNER TO migrator', r.t);
            END LOOP; END \$\$" >/dev/null
echo "host=$SOURCE_SOCK port=$SOURCE_PORT dbname=app user=app_rw" >"$TEST_TMP/conn"
cat >"$TEST_TMP/ferry.yaml" <<YAML
hooks:
  switch: "echo 'host=$TARGET_SOCK port=$TARGET_PORT dbname=app user=app_rw' > $TEST_TMP/conn"
YAML
SOURCE_CONN="host=$SOURCE_SOCK port=$SOURCE_PORT dbname=app user=migrator" ferry_start --jobs 2
wait_following; ok $? "ferry start follows" || tail -5 "$TEST_TMP/err" >&2
MIG=("$FERRY" --source "host=$SOURCE_SOCK port=$SOURCE_PORT dbname=app user=migrator" --target "$TARGET_CONN"
     --config "$TEST_TMP/ferry.yaml")

APP=/usr/bin/python3
"$APP" "$(dirname "$0")/../lib/pool_app.py" "$TEST_TMP/conn" "$TEST_TMP/acked0" 4 2 >/dev/null 2>&1 &
AP=$!
sleep 1
try_switch() {  # try_switch N: a switchover as migrator that must be refused; sets OUT
  "${MIG[@]}" switchover --yes --timeout 20 >"$TEST_TMP/o$1" 2>"$TEST_TMP/e$1"; RC=$?
  OUT=$(cat "$TEST_TMP/e$1")
  is "$RC" 1 "refused ($1)"
  is "$(q source "SELECT count(*) FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = 'app')")" 0 \
    "nothing was frozen ($1)"
  is "$(migration_phase)" following "phase stays following ($1)"
}
try_switch see
like "$OUT" "cannot see the application's sessions.*GRANT pg_read_all_stats, pg_signal_backend TO migrator" "names the rights it lacks, with the GRANT"
unlike "$OUT" "freezing writes" "before the freeze step"
q source "GRANT pg_read_all_stats TO migrator" >/dev/null
try_switch end
like "$OUT" "cannot end the application's sessions.*GRANT pg_signal_backend TO migrator" "then the right to end them"
q source "GRANT pg_signal_backend TO migrator" >/dev/null
wait "$AP"
is "$(q source "SELECT count(*) FROM orders")" "$(wc -l <"$TEST_TMP/acked0")" "the application wrote on the source all along"

"$APP" "$(dirname "$0")/../lib/pool_app.py" "$TEST_TMP/conn" "$TEST_TMP/acked" 7 4 >"$TEST_TMP/app.out" 2>&1 &
AP=$!
sleep 2
"${MIG[@]}" switchover --yes --timeout 60 >"$TEST_TMP/o.ok" 2>"$TEST_TMP/e.ok"; rc=$?
is "$rc" 0 "with those rights the non-superuser switchover succeeds" || cat "$TEST_TMP/e.ok" >&2
like "$(cat "$TEST_TMP/e.ok")" "holding every write to the published tables on the source" "the fence held the writes"
wait "$AP"
diag "application: $(cat "$TEST_TMP/app.out")"
order_ids source >"$TEST_TMP/src_ids"
order_ids target >"$TEST_TMP/tgt_ids"
sort "$TEST_TMP/acked0" "$TEST_TMP/acked" >"$TEST_TMP/all_acked"
is "$(comm -23 "$TEST_TMP/all_acked" "$TEST_TMP/tgt_ids" | wc -l)" 0 "every acknowledged write is on the new primary"
is "$(comm -23 "$TEST_TMP/src_ids" "$TEST_TMP/tgt_ids" | wc -l)" 0 "nothing committed on the old source is missing there"
kill -TERM "$FP" 2>/dev/null; wait "$FP" 2>/dev/null
done_testing
