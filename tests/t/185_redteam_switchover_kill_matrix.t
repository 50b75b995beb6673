#!/usr/bin/env bash
# Outside attack (held): `ferry switchover` killed (kill -9) at each step of
# its window while a pooled psycopg2 application writes (tests/lib/pool_app.py:
# BEGIN READ WRITE, SET default_transaction_read_only = off, plain), then run
# again as an operator would. Killed before the switch hook, the rerun undoes
# the freeze and switches from the start; killed at or after it, the rerun
# finishes forward. Either way every acknowledged write must be on the new
# primary, no row of the old source missing there, and `ferry cleanup` must
# leave no slot behind on either server. Each step is a migration of its own
# (mN into the target's database appN), no ferry start running (the
# switchover follows in-process).
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
for side in source target; do
  q "$side" "CREATE ROLE app_rw LOGIN" >/dev/null
done
q source "CREATE TABLE orders (id bigint PRIMARY KEY, writer text NOT NULL, at timestamptz NOT NULL DEFAULT now());
          GRANT SELECT, INSERT ON orders TO app_rw" >/dev/null
SRC_APP="host=$SOURCE_SOCK port=$SOURCE_PORT dbname=app user=app_rw"
n=0
for fault in switchover.after-freeze switchover.after-drain switchover.after-reverse switchover.before-switch-hook switchover.after-switch-hook; do
  n=$((n + 1))
  q source "BEGIN READ WRITE; ALTER DATABASE app RESET default_transaction_read_only; DELETE FROM orders; COMMIT" >/dev/null
  QDB=postgres q target "CREATE DATABASE app$n" >/dev/null
  TGT_APP="host=$TARGET_SOCK port=$TARGET_PORT dbname=app$n user=app_rw"
  cat >"$TEST_TMP/ferry$n.yaml" <<YAML
hooks:
  switch: "echo '$TGT_APP' > $TEST_TMP/conn"
YAML
  F=("$FERRY" --source "$SOURCE_CONN" --target "host=$TARGET_SOCK port=$TARGET_PORT dbname=app$n user=postgres" --name "m$n" --config "$TEST_TMP/ferry$n.yaml")
  "${F[@]}" start --jobs 2 >>"$TEST_TMP/start.out" 2>>"$TEST_TMP/start.err" &
  FP=$!
  QDB=app$n wait_following "m$n" 60; ok $? "m$n: follows"
  kill -TERM "$FP"; wait "$FP"
  echo "$SRC_APP" >"$TEST_TMP/conn"
  rm -f "$TEST_TMP/acked"
  /usr/bin/python3 "$(dirname "$0")/../lib/pool_app.py" "$TEST_TMP/conn" "$TEST_TMP/acked" 10 4 >"$TEST_TMP/app$n.out" 2>&1 &
  AP=$!
  sleep 2
  (FERRY_FAULT=$fault "${F[@]}" switchover --yes --timeout 60 >/dev/null 2>"$TEST_TMP/sw$n.err"; exit $?) 2>/dev/null; rc=$?
  is "$rc" 137 "m$n: switchover killed at $fault"
  sleep 1
  "${F[@]}" switchover --yes --timeout 60 >/dev/null 2>"$TEST_TMP/sw$n.2.err"; rc=$?
  is "$rc" 0 "m$n: the rerun switches over" || diag "$(tail -6 "$TEST_TMP/sw$n.2.err")"
  wait "$AP"
  is "$(QDB=app$n migration_phase "m$n")" "switched" "m$n: phase switched"
  is "$(cat "$TEST_TMP/conn")" "$TGT_APP" "m$n: the application points at the new primary"
  sort "$TEST_TMP/acked" >"$TEST_TMP/acked_sorted"
  q source "SELECT id FROM orders" | sort >"$TEST_TMP/src_ids"
  QDB=app$n q target "SELECT id FROM orders" | sort >"$TEST_TMP/tgt_ids"
  acked=$(wc -l <"$TEST_TMP/acked_sorted")
  missing=$(comm -23 "$TEST_TMP/acked_sorted" "$TEST_TMP/tgt_ids" | wc -l)
  sonly=$(comm -23 "$TEST_TMP/src_ids" "$TEST_TMP/tgt_ids" | wc -l)
  diag "m$n ($fault): $(cat "$TEST_TMP/app$n.out"); acknowledged but missing on the new primary $missing, on the old source only $sonly"
  ok "$([ "$acked" -gt 100 ]; echo $?)" "m$n: the application wrote through it ($acked acknowledged writes)"
  is "$missing" 0 "m$n: every acknowledged write is on the new primary"
  is "$sonly" 0 "m$n: no row of the old source is missing on the new primary"
  "${F[@]}" cleanup >"$TEST_TMP/cl$n.out" 2>&1
  is "$?" 0 "m$n: cleanup exits 0" || diag "$(tail -3 "$TEST_TMP/cl$n.out")"
  is "$(QDB=postgres q source "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'm$n%'") $(QDB=postgres q target "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'm$n%'")" "0 0" \
    "m$n: no slot left on either server"
done
unlike "$(cat "$TEST_TMP"/*.err)" "runtime error|LeakSanitizer" "no sanitizer reports"
done_testing
