#!/usr/bin/env bash
# Outside attack (held): reverse replication under a real application's load,
# through faults, without replication-origin rights on the target. A pooled
# psycopg2 application (tests/lib/pool_app.py, BEGIN READ WRITE and all)
# writes all the time: on the source, through the switchover onto the new
# primary, through a kill -9 of `ferry start` (the reverse follower) and an
# immediate stop of the old source while the reverse stream applies there,
# then through the rollback back onto the source. The target's ferry role is
# a database owner that may not use pg_replication_origin_*, so the forward
# apply marks its transactions (pg_logical_emit_message 'ferry_apply') and
# the reverse stream must skip exactly those. Every acknowledged write must
# be on the source once, and nothing forward-applied may come back (no
# duplicate key, no conflict in the reverse apply).
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
for side in source target; do
  q "$side" "CREATE ROLE app_rw LOGIN" >/dev/null
done
q target "CREATE ROLE migrator LOGIN REPLICATION; ALTER DATABASE app OWNER TO migrator;
          GRANT SET ON PARAMETER session_replication_role TO migrator;
          GRANT pg_read_all_stats, pg_signal_backend TO migrator" >/dev/null
q source "CREATE TABLE orders (id bigint PRIMARY KEY, writer text NOT NULL, at timestamptz NOT NULL DEFAULT now());
          GRANT SELECT, INSERT ON orders TO app_rw" >/dev/null
TARGET_CONN="host=$TARGET_SOCK port=$TARGET_PORT dbname=app user=migrator"
SRC_APP="host=$SOURCE_SOCK port=$SOURCE_PORT dbname=app user=app_rw"
TGT_APP="host=$TARGET_SOCK port=$TARGET_PORT dbname=app user=app_rw"
echo "$SRC_APP" >"$TEST_TMP/conn"
cat >"$TEST_TMP/ferry.yaml" <<YAML
no_owner: true
hooks:
  switch: "echo '$TGT_APP' > $TEST_TMP/conn"
  rollback: "echo '$SRC_APP' > $TEST_TMP/conn"
YAML
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" --config "$TEST_TMP/ferry.yaml")
"${F[@]}" start --jobs 2 >>"$TEST_TMP/start.out" 2>>"$TEST_TMP/start.err" &
FP=$!
wait_following ferry 60; ok $? "ferry start follows"
# the apply session says so once it is set up, which can come after the phase reads following
for _ in $(seq 1 100); do grep -q "not using a replication origin" "$TEST_TMP/start.err" && break; sleep 0.1; done
like "$(cat "$TEST_TMP/start.err")" "not using a replication origin" "the forward apply runs without an origin"

/usr/bin/python3 "$(dirname "$0")/../lib/pool_app.py" "$TEST_TMP/conn" "$TEST_TMP/acked" 28 4 >"$TEST_TMP/app.out" 2>"$TEST_TMP/app.err" &
AP=$!
pgload 24 1 "$SQL/load/mixed.sql@10" >"$TEST_TMP/load1" 2>&1 &   # other tables on the source until the switch
LP=$!
sleep 3
"${F[@]}" switchover --yes --max-lag 5 --timeout 60 >/dev/null 2>"$TEST_TMP/sw.err"
is "$?" 0 "switchover exits 0" || diag "$(tail -8 "$TEST_TMP/sw.err")"
wait "$LP"   # pgbench's clients end at the freeze's read-only error
"$PGBIN/pgbench" -n -T 10 -c 1 -h "$TARGET_SOCK" -p "$TARGET_PORT" -U postgres -f "$SQL/load/mixed.sql" app >"$TEST_TMP/load2" 2>&1 &
LP=$!
sleep 2
kill -KILL "$FP"; wait "$FP" 2>/dev/null
sleep 1
"${F[@]}" start --jobs 2 >>"$TEST_TMP/start.out" 2>>"$TEST_TMP/start2.err" &
FP=$!
sleep 3
pg_stop source immediate
sleep 1
as_pg "$PGBIN/pg_ctl" -D "$SOURCE_DATA" -l "$SOURCE_DATA/server.log" -w -t 60 start >/dev/null || bail "source did not start"
wait "$LP"   # a superuser's session on the target would stop the rollback (the ferry role may not end it)
sleep 2
"${F[@]}" rollback --yes --timeout 90 >/dev/null 2>"$TEST_TMP/rb.err"; rc=$?
is "$rc" 0 "rollback exits 0" || diag "$(tail -8 "$TEST_TMP/rb.err")"
wait "$AP"
diag "application: $(cat "$TEST_TMP/app.out")"
is "$(cat "$TEST_TMP/conn")" "$SRC_APP" "the application is back on the source"
sort "$TEST_TMP/acked" >"$TEST_TMP/acked_sorted"
q source "SELECT id FROM orders" | sort >"$TEST_TMP/src_ids"
q target "SELECT id FROM orders" | sort >"$TEST_TMP/tgt_ids"
acked=$(wc -l <"$TEST_TMP/acked_sorted")
missing=$(comm -23 "$TEST_TMP/acked_sorted" "$TEST_TMP/src_ids" | wc -l)
tonly=$(comm -23 "$TEST_TMP/tgt_ids" "$TEST_TMP/src_ids" | wc -l)
diag "acknowledged $acked; on the source $(wc -l <"$TEST_TMP/src_ids"), on the target $(wc -l <"$TEST_TMP/tgt_ids"); acknowledged but missing on the source $missing, on the target only $tonly"
ok "$([ "$acked" -gt 1000 ]; echo $?)" "the application wrote all along ($acked acknowledged writes)"
is "$missing" 0 "every acknowledged write is on the source"
is "$tonly" 0 "every row the target took is on the source"
is "$(comm -13 "$TEST_TMP/acked_sorted" "$TEST_TMP/src_ids" | wc -l)" 0 "no row on the source that nobody acknowledged"
# the rollback froze the target: everything it holds must be on the source as it is there
is "$(db_checksum source | grep -v '^ferry\.' | grep -v '^public\.orders|')" "$(db_checksum target | grep -v '^ferry\.' | grep -v '^public\.orders|')" \
  "every other table equal on both servers"
unlike "$(cat "$TEST_TMP"/start*.err)" "duplicate key|conflict" "the reverse apply met no conflict (nothing echoed back)"
unlike "$(cat "$TEST_TMP"/start*.err)" "a write reached the old source" "the watch reports no write on the old source (the crash sent its slot back: 183)"
kill -TERM "$FP" 2>/dev/null; wait "$FP"
unlike "$(cat "$TEST_TMP"/start*.err "$TEST_TMP/sw.err" "$TEST_TMP/rb.err")" "runtime error|LeakSanitizer" "no sanitizer reports"
done_testing
