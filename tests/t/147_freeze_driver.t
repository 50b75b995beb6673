#!/usr/bin/env bash
# The freeze holds against a real driver (issue 12 item 2). An application
# pooled through psycopg2 keeps 4 connections and reconnects through a file
# that the switch hook rewrites, only when a connection breaks; two of its
# connections ask for writes with BEGIN READ WRITE (set_session(readonly=
# False)), one with SET default_transaction_read_only = off: both override a
# read-only database. Connections it re-opened during the freeze used to stay
# on the old source and commit there after the switchover had reported
# success (7,036 of 9,634 acknowledged writes missing on the new primary).
# Every acknowledged write must be on the target, exactly once.
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
cat >"$TEST_TMP/ferry.yaml" <<YAML
hooks:
  switch: "echo 'host=$TARGET_SOCK port=$TARGET_PORT dbname=app user=app_rw' > $TEST_TMP/conn"
YAML
"${F[@]}" --config "$TEST_TMP/ferry.yaml" start --jobs 2 >>"$TEST_TMP/out" 2>>"$TEST_TMP/err" &
FP=$!
wait_following; ok $? "ferry start follows"

/usr/bin/python3 "$(dirname "$0")/../lib/pool_app.py" "$TEST_TMP/conn" "$TEST_TMP/acked" 9 4 >"$TEST_TMP/app.out" 2>"$TEST_TMP/app.err" &
AP=$!
sleep 3
"${F[@]}" --config "$TEST_TMP/ferry.yaml" switchover --yes --max-lag 5 --timeout 60 >"$TEST_TMP/sw.out" 2>"$TEST_TMP/sw.err"
rc=$?; is $rc 0 "switchover exits 0"; [ $rc = 0 ] || cat "$TEST_TMP/sw.err" >&2
wait "$AP"
diag "application: $(cat "$TEST_TMP/app.out") $(tail -3 "$TEST_TMP/app.err")"
acked=$(wc -l <"$TEST_TMP/acked")
ok "$([ "$acked" -gt 100 ]; echo $?)" "the application wrote through the switchover ($acked acknowledged writes)"
order_ids source >"$TEST_TMP/src_ids"
order_ids target >"$TEST_TMP/tgt_ids"
sort "$TEST_TMP/acked" >"$TEST_TMP/acked_sorted"
is "$(comm -23 "$TEST_TMP/acked_sorted" "$TEST_TMP/tgt_ids" | wc -l)" 0 "every acknowledged write is on the new primary"
is "$(comm -23 "$TEST_TMP/src_ids" "$TEST_TMP/tgt_ids" | wc -l)" 0 "no write committed on the old source is missing on the new primary"
kill -TERM "$FP" 2>/dev/null; wait "$FP" 2>/dev/null
done_testing
