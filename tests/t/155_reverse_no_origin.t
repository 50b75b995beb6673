#!/usr/bin/env bash
# Reverse replication without a replication origin (issue 12 item 3c). A
# target whose ferry role may not run the pg_replication_origin_* functions
# (a non-superuser database owner, as managed services give) applies the
# forward stream without an origin, so the reverse stream cannot tell
# ferry's own writes from the application's by origin. They must still not
# come back to the source (duplicate keys, a reverse apply that never
# catches up, a rollback that freezes the target and times out), and a
# broken reverse stream must be seen before anything is frozen.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
q target "CREATE ROLE migrator LOGIN REPLICATION; ALTER DATABASE app OWNER TO migrator;
          GRANT SET ON PARAMETER session_replication_role TO migrator;
          GRANT pg_read_all_stats, pg_signal_backend TO migrator" >/dev/null
is "$(q target "SELECT has_function_privilege('migrator', 'pg_replication_origin_create(text)', 'EXECUTE')")" f \
  "the target role may not use replication origins"
TARGET_CONN="host=$TARGET_SOCK port=$TARGET_PORT dbname=app user=migrator"
echo "no_owner: true" >"$TEST_TMP/ferry.yaml"
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" --config "$TEST_TMP/ferry.yaml")
"${F[@]}" start --jobs 2 >>"$TEST_TMP/out" 2>>"$TEST_TMP/err" &
FP=$!
wait_following ferry 60; ok $? "ferry start follows"
like "$(cat "$TEST_TMP/err")" "not using a replication origin" "ferry applies without an origin"

# every target transaction the forward apply writes carries ferry's mark
q target "SELECT pg_create_logical_replication_slot('peek', 'test_decoding')" >/dev/null
pgload 2 2 "$SQL/load/mixed.sql@10" >/dev/null 2>&1
wait_applied ferry 60; ok $? "the forward apply caught up"
q target "SELECT data FROM pg_logical_slot_get_changes('peek', NULL, NULL)" >"$TEST_TMP/peek"
awk '/^BEGIN/ {m = 0; k = 0} /prefix: ferry_apply, sz: 5 content:ferry$/ {m = 1} /^table public\.kv:/ {k = 1}
     /^COMMIT/ {if (k) {kv++; if (m) marked++}} END {print kv + 0, marked + 0}' "$TEST_TMP/peek" >"$TEST_TMP/marks"
read -r KV MARKED <"$TEST_TMP/marks"
ok "$(( KV < 10 ))" "the forward apply wrote transactions on kv ($KV)"
is "$MARKED" "$KV" "each of them carries ferry's apply mark"
q target "SELECT pg_drop_replication_slot('peek')" >/dev/null

# the application writes on the source until the switchover, then on the target
pgload 6 2 "$SQL/load/mixed.sql@10" >"$TEST_TMP/load1" 2>&1 &
LP=$!
sleep 3
"${F[@]}" switchover --yes --max-lag 5 --timeout 60 >"$TEST_TMP/sw.out" 2>"$TEST_TMP/sw.err"
is "$?" 0 "switchover exits 0" || diag "$(tail -20 "$TEST_TMP/sw.err")"
wait "$LP"
"$PGBIN/pgbench" -n -T 4 -c 2 -h "$TARGET_SOCK" -p "$TARGET_PORT" -U postgres -f "$SQL/load/mixed.sql" app >"$TEST_TMP/load2" 2>&1
q target "BEGIN; SELECT pg_logical_emit_message(true, 'ferry_apply', 'ferry');
          INSERT INTO kv VALUES (-55555555, 'as if applied by the forward apply', 0); COMMIT" >/dev/null
q target "INSERT INTO kv VALUES (-77777777, 'written on target', 0)" >/dev/null
for _ in $(seq 1 150); do
  [ "$(q source "SELECT count(*) FROM kv WHERE id = -77777777")" = 1 ] && break; sleep 0.2
done
is "$(q source "SELECT v FROM kv WHERE id = -77777777")" "written on target" "the target's writes reach the source"
is "$(q source "SELECT count(*) FROM kv WHERE id = -55555555")" 0 "a transaction with the forward apply's mark is not sent back"
q target "BEGIN; SELECT pg_logical_emit_message(true, 'ferry_apply', 'ferry'); DELETE FROM kv WHERE id = -55555555; COMMIT" >/dev/null
q target "INSERT INTO kv VALUES (-77777778, 'last', 0)" >/dev/null
for _ in $(seq 1 150); do
  [ "$(q source "SELECT count(*) FROM kv WHERE id = -77777778")" = 1 ] && break; sleep 0.2
done
is "$(db_checksum source | grep -v '^ferry\.')" "$(db_checksum target | grep -v '^ferry\.')" "source equals target while following in reverse"
unlike "$(cat "$TEST_TMP/err")" "duplicate key|ERROR" "the reverse apply meets no conflict (nothing echoed back)"

# a broken reverse stream is seen before the target is frozen: a row written
# on the frozen source by a superuser collides with the target's
q source "BEGIN READ WRITE; INSERT INTO kv VALUES (-4242, 'on the old source', 0); COMMIT" >/dev/null
q target "INSERT INTO kv VALUES (-4242, 'on the new primary', 0)" >/dev/null
for _ in $(seq 1 100); do grep -q "duplicate key" "$TEST_TMP/err" && break; sleep 0.1; done
like "$(cat "$TEST_TMP/err")" "duplicate key" "the reverse apply fails on the collision"
"${F[@]}" rollback --yes --timeout 6 >"$TEST_TMP/rb1.out" 2>"$TEST_TMP/rb1.err"
is "$?" 1 "rollback is refused"
like "$(cat "$TEST_TMP/rb1.err")" "reverse replication (lag stayed above --max-lag|stopped while waiting).*nothing was frozen" "because reverse replication does not catch up"
unlike "$(cat "$TEST_TMP/rb1.err")" "freezing writes on the target" "before the target is frozen"
q target "INSERT INTO kv VALUES (-4343, 'target still writable', 0)" >/dev/null
ok $? "the target takes writes"
is "$(migration_phase)" switched "phase stays switched"
q source "BEGIN READ WRITE; DELETE FROM kv WHERE id = -4242; COMMIT" >/dev/null

T0=$(date +%s)
"${F[@]}" rollback --yes --timeout 60 >"$TEST_TMP/rb.out" 2>"$TEST_TMP/rb.err"
is "$?" 0 "rollback exits 0" || diag "$(tail -20 "$TEST_TMP/rb.err")"
T1=$(date +%s)
ok "$(( T1 - T0 >= 30 ))" "rollback does not sit out a timeout ($(( T1 - T0 )) s)"
is "$(db_checksum source | grep -v '^ferry\.')" "$(db_checksum target | grep -v '^ferry\.')" "source equals target after the rollback"
kill -TERM "$FP" 2>/dev/null; wait "$FP"
unlike "$(cat "$TEST_TMP/err" "$TEST_TMP/sw.err" "$TEST_TMP/rb.err")" "runtime error|LeakSanitizer" "no sanitizer reports"
done_testing
