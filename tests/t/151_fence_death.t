#!/usr/bin/env bash
# The fence dies inside the freeze window (issue 12, the fence hole). The
# fence (freeze.h) is one ferry session holding LOCK TABLE ... IN EXCLUSIVE
# MODE on every published table; terminated (or its connection dropped), its
# locks go with it and a pooled psycopg2 connection with BEGIN READ WRITE
# (tests/lib/pool_app.py, as in 147) commits on the frozen source again.
# Here the switch hook first terminates the fence, then lets those writes
# through for a second before it points the pool at the target. The
# switchover must notice (a round trip on the fence) and take the fence
# again and drain what got through, so that every acknowledged write is on
# the new primary. `ferry start` is not running: the switchover's own
# follower stops right after the switch, so nothing applies a late write.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
for side in source target; do
  q "$side" "CREATE ROLE app_rw LOGIN" >/dev/null
done
q source "CREATE TABLE orders (id bigint PRIMARY KEY, writer text NOT NULL, at timestamptz NOT NULL DEFAULT now());
          GRANT SELECT, INSERT ON orders TO app_rw" >/dev/null
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
echo "host=$SOURCE_SOCK port=$SOURCE_PORT dbname=app user=app_rw" >"$TEST_TMP/conn"
# the fence: ferry's session that holds the published tables' locks (named
# "ferry fence"; before that name, the one whose last statement was LOCK TABLE)
KILL_FENCE="SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
  WHERE datname = 'app' AND (application_name = 'ferry fence' OR (application_name LIKE 'ferry%' AND query LIKE 'LOCK TABLE%'))"
cat >"$TEST_TMP/ferry.yaml" <<YAML
hooks:
  switch: "$PGBIN/psql -XAtq -h $SOURCE_SOCK -p $SOURCE_PORT -U postgres -d app -c \"$(echo $KILL_FENCE)\" >>$TEST_TMP/killed; sleep 1; echo 'host=$TARGET_SOCK port=$TARGET_PORT dbname=app user=app_rw' > $TEST_TMP/conn"
YAML
ferry_start --jobs 2
wait_following; ok $? "ferry start follows"
kill -TERM "$FP"; wait "$FP"

/usr/bin/python3 "$(dirname "$0")/../lib/pool_app.py" "$TEST_TMP/conn" "$TEST_TMP/acked" 8 4 >"$TEST_TMP/app.out" 2>"$TEST_TMP/app.err" &
AP=$!
sleep 3
"${F[@]}" --config "$TEST_TMP/ferry.yaml" switchover --yes --max-lag 5 --timeout 60 >"$TEST_TMP/sw.out" 2>"$TEST_TMP/sw.err"
rc=$?; is $rc 0 "switchover exits 0"; [ $rc = 0 ] || tail -8 "$TEST_TMP/sw.err" >&2
wait "$AP"
diag "application: $(cat "$TEST_TMP/app.out") $(tail -3 "$TEST_TMP/app.err")"
is "$(cat "$TEST_TMP/killed")" 1 "the switch hook terminated the fence"
like "$(cat "$TEST_TMP/sw.err")" "the fence on the source is gone" "the switchover noticed"
acked=$(wc -l <"$TEST_TMP/acked")
ok "$([ "$acked" -gt 100 ]; echo $?)" "the application wrote through the switchover ($acked acknowledged writes)"
order_ids source >"$TEST_TMP/src_ids"
order_ids target >"$TEST_TMP/tgt_ids"
sort "$TEST_TMP/acked" >"$TEST_TMP/acked_sorted"
missing=$(comm -23 "$TEST_TMP/acked_sorted" "$TEST_TMP/tgt_ids" | wc -l)
diag "acknowledged $acked, on the source $(wc -l <"$TEST_TMP/src_ids"), on the target $(wc -l <"$TEST_TMP/tgt_ids"), acknowledged but missing on the target $missing"
is "$missing" 0 "every acknowledged write is on the new primary"
is "$(comm -23 "$TEST_TMP/src_ids" "$TEST_TMP/tgt_ids" | wc -l)" 0 "no write committed on the old source is missing on the new primary"
is "$(migration_phase)" "switched" "phase switched"

# 2. the fence dies before the last sentinel: a watcher started by the pre_freeze
# hook terminates it as soon as it holds its locks (a new migration m2 into the
# target's database app2, the source writable again)
q source "BEGIN READ WRITE; ALTER DATABASE app RESET default_transaction_read_only;
          DELETE FROM orders; COMMIT" >/dev/null   # pool_app.py's ids start again
QDB=postgres q target "CREATE DATABASE app2" >/dev/null
TC2="host=$TARGET_SOCK port=$TARGET_PORT dbname=app2 user=postgres"
F2=("$FERRY" --source "$SOURCE_CONN" --target "$TC2" --name m2)
echo "host=$SOURCE_SOCK port=$SOURCE_PORT dbname=app user=app_rw" >"$TEST_TMP/conn"
# kill_fence_sql DB: terminate DB's fence the moment it holds its locks (its LOCK
# TABLE done: idle in its transaction, not half way through the tables), polled
# inside the server every millisecond (the freeze window can be a few ms: a
# watcher starting psql every 5 ms missed it); run from database postgres,
# which the freeze does not end (pg_stat_activity is read afresh each time:
# a transaction otherwise keeps its first look); prints "killed N" as a notice
kill_fence_sql() {
  echo "DO \$\$ DECLARE n int := 0; BEGIN FOR i IN 1..60000 LOOP
    SELECT count(pg_terminate_backend(a.pid)) INTO n FROM pg_stat_activity a
     WHERE a.datname = '$1' AND a.state = 'idle in transaction' AND (a.application_name = 'ferry fence' OR (a.application_name LIKE 'ferry%' AND a.query LIKE 'LOCK TABLE%'))
       AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'relation' AND l.mode = 'ExclusiveLock' AND l.granted);
    EXIT WHEN n > 0; PERFORM pg_sleep(0.001); PERFORM pg_stat_clear_snapshot(); END LOOP; RAISE NOTICE 'killed %', n; END \$\$"
}
kill_fence_sql app >"$TEST_TMP/kill2.sql"   # a file: sh would expand the \$\$ of a -c string
cat >"$TEST_TMP/watch.sh" <<SH
$PGBIN/psql -XAtq -h $SOURCE_SOCK -p $SOURCE_PORT -U postgres -d postgres -f $TEST_TMP/kill2.sql 2>&1 | sed -n 's/.*killed \([0-9]*\).*/\1/p' >>$TEST_TMP/killed2
SH
cat >"$TEST_TMP/ferry2.yaml" <<YAML
hooks:
  pre_freeze: "sh $TEST_TMP/watch.sh >/dev/null 2>&1 </dev/null & echo \$! >$TEST_TMP/watch.pid"
  switch: "echo 'host=$TARGET_SOCK port=$TARGET_PORT dbname=app2 user=app_rw' > $TEST_TMP/conn"
YAML
"${F2[@]}" start --jobs 2 >>"$TEST_TMP/out" 2>>"$TEST_TMP/err" &
FP=$!
QDB=app2 wait_following m2 60; ok $? "migration m2 follows"
kill -TERM "$FP"; wait "$FP"
rm -f "$TEST_TMP/acked"
/usr/bin/python3 "$(dirname "$0")/../lib/pool_app.py" "$TEST_TMP/conn" "$TEST_TMP/acked" 8 4 >"$TEST_TMP/app2.out" 2>"$TEST_TMP/app2.err" &
AP=$!
sleep 3
"${F2[@]}" --config "$TEST_TMP/ferry2.yaml" switchover --yes --max-lag 5 --timeout 60 >"$TEST_TMP/sw2.out" 2>"$TEST_TMP/sw2.err"
rc=$?; is $rc 0 "switchover exits 0"; [ $rc = 0 ] || tail -8 "$TEST_TMP/sw2.err" >&2
wait "$AP"
kill "$(cat "$TEST_TMP/watch.pid")" 2>/dev/null
diag "application: $(cat "$TEST_TMP/app2.out")"
is "$(cat "$TEST_TMP/killed2")" 1 "the watcher terminated the fence"
like "$(sed -n '/holding every write/,/running the switch hook/p' "$TEST_TMP/sw2.err")" "the fence on the source is gone" "the switchover noticed before the switch hook"
like "$(cat "$TEST_TMP/sw2.err")" "re-copying tables without a key and setting sequences again" "and synced keyless tables and sequences again"
acked=$(wc -l <"$TEST_TMP/acked")
ok "$([ "$acked" -gt 100 ]; echo $?)" "the application wrote through the switchover ($acked acknowledged writes)"
QDB=app2 q target "SELECT id FROM orders" | sort >"$TEST_TMP/tgt2_ids"
sort "$TEST_TMP/acked" >"$TEST_TMP/acked2_sorted"
missing=$(comm -23 "$TEST_TMP/acked2_sorted" "$TEST_TMP/tgt2_ids" | wc -l)
diag "acknowledged $acked, acknowledged but missing on the new primary $missing"
is "$missing" 0 "every acknowledged write is on the new primary"

# 3. rollback of m2: the target's fence dies as soon as it holds its locks, and
# a BEGIN READ WRITE session writes on the target right then
PSQL_T2="$PGBIN/psql -XAtq -h $TARGET_SOCK -p $TARGET_PORT -U postgres -d app2"
(
  "$PGBIN/psql" -XAtq -h "$TARGET_SOCK" -p "$TARGET_PORT" -U postgres -d postgres -c "$(kill_fence_sql app2)" 2>&1 |
    sed -n 's/.*killed \([0-9]*\).*/\1/p' >>"$TEST_TMP/killed3"
  $PSQL_T2 -c "BEGIN READ WRITE; INSERT INTO orders VALUES (-1, 'after the fence died', now()); COMMIT" >"$TEST_TMP/late3" 2>&1
  echo "$?" >"$TEST_TMP/late3.rc"
) &
WP=$!
"${F2[@]}" rollback --yes >"$TEST_TMP/rb3.out" 2>"$TEST_TMP/sw3.err"; rc=$?
wait "$WP"
is "$rc" 0 "rollback exits 0" || tail -8 "$TEST_TMP/sw3.err" >&2
is "$(cat "$TEST_TMP/killed3")" 1 "the watcher terminated the target's fence"
like "$(cat "$TEST_TMP/sw3.err")" "the fence on the target is gone" "the rollback noticed"
diag "the late write on the target: psql exit $(cat "$TEST_TMP/late3.rc") $(cat "$TEST_TMP/late3")"
if [ "$(cat "$TEST_TMP/late3.rc")" = 0 ]; then
  is "$(q source "SELECT writer FROM orders WHERE id = -1")" "after the fence died" "the write that got in on the target is on the source"
else
  like "$(cat "$TEST_TMP/late3")" "read-only|terminat|connection" "the write on the target was refused (not acknowledged)"
fi

unlike "$(cat "$TEST_TMP"/sw*.err)" "runtime error|LeakSanitizer" "no sanitizer reports"
done_testing
