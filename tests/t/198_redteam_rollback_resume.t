#!/usr/bin/env bash
# Outside attack: the target's fence dies after a rollback's drain. ferry
# rollback sets the reverse migration's phase rolled_back on the source once
# the target's last changes are drained, then unfreezes the source, runs the
# rollback hook and hands the target over (ends its sessions, lets its fence
# go). The fence dying in between (the process killed: kill -9, OOM, a
# reboot; or its session terminated) while the application still points at
# the target lets a pooled psycopg2 connection with BEGIN READ WRITE
# (tests/lib/pool_app.py) commit on the read-only target again. Those
# acknowledged writes must reach the source (the rerun of `ferry rollback`
# brings them, or the rollback itself when only its fence died), and once the
# rollback reports success nothing may commit on the target any more: the
# application is never on both servers. Three ways, each its own migration
# mN into the target's database appN, `ferry start` running as a service:
#   1 kill -9 between the drain and unfreezing the source (rollback.after-drain)
#   2 kill -9 inside the rollback hook (the source is writable already)
#   3 the fence terminated by the rollback hook, the rollback not killed
#   4, 5 (held) kill -9 at rollback.after-freeze and rollback.after-hook
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
for side in source target; do
  q "$side" "CREATE ROLE app_rw LOGIN" >/dev/null
done
q source "CREATE TABLE orders (id bigint PRIMARY KEY, writer text NOT NULL, at timestamptz NOT NULL DEFAULT now());
          GRANT SELECT, INSERT ON orders TO app_rw" >/dev/null
SRC_APP="host=$SOURCE_SOCK port=$SOURCE_PORT dbname=app user=app_rw"
KILL_FENCE="SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'ferry fence'"

# scenario N ROLLBACK_HOOK [FAULT]: migrate into appN, switch over, write on
# the target with the pool, roll back with the fault, rerun the rollback if it
# was killed, then check every acknowledged write
scenario() {
  local n=$1 hook=$2 fault=${3:-} rc
  QDB=postgres q target "CREATE DATABASE app$n" >/dev/null
  QDB=app$n q target "GRANT ALL ON SCHEMA public TO app_rw" >/dev/null
  local tc="host=$TARGET_SOCK port=$TARGET_PORT dbname=app$n user=postgres"
  local tgt_app="host=$TARGET_SOCK port=$TARGET_PORT dbname=app$n user=app_rw"
  local F=("$FERRY" --source "$SOURCE_CONN" --target "$tc" --name "m$n" --config "$TEST_TMP/ferry$n.yaml")
  q source "DELETE FROM orders" >/dev/null
  echo "$SRC_APP" >"$TEST_TMP/conn"
  cat >"$TEST_TMP/ferry$n.yaml" <<YAML
hooks:
  switch: "echo '$tgt_app' > $TEST_TMP/conn"
  rollback: "$hook echo '$SRC_APP' > $TEST_TMP/conn"
YAML
  "${F[@]}" start --jobs 2 >>"$TEST_TMP/start$n.out" 2>>"$TEST_TMP/start$n.err" &
  local fp=$!
  QDB=app$n wait_following "m$n" 60; ok $? "m$n: ferry start follows"
  "${F[@]}" switchover --yes --max-lag 5 --timeout 60 >/dev/null 2>"$TEST_TMP/sw$n.err"
  is "$?" 0 "m$n: switchover exits 0" || diag "$(tail -8 "$TEST_TMP/sw$n.err")"
  rm -f "$TEST_TMP/acked"
  /usr/bin/python3 "$(dirname "$0")/../lib/pool_app.py" "$TEST_TMP/conn" "$TEST_TMP/acked" 14 4 >"$TEST_TMP/app$n.out" 2>&1 &
  local ap=$!
  sleep 3
  if [ -n "$fault" ]; then
    (FERRY_FAULT=$fault "${F[@]}" rollback --yes --timeout 60 >/dev/null 2>"$TEST_TMP/rb$n.err"; exit $?) 2>/dev/null; rc=$?
  else
    "${F[@]}" rollback --yes --timeout 60 >/dev/null 2>"$TEST_TMP/rb$n.err" &
    local rp=$!
    if [ "$n" = 2 ]; then   # kill -9 inside the rollback hook
      for _ in $(seq 1 300); do [ -s "$TEST_TMP/inhook$n" ] && break; sleep 0.05; done
      sleep 0.5; kill -KILL "$rp"
    fi
    wait "$rp"; rc=$?
    [ "$n" = 2 ] && kill -KILL -- -"$(cat "$TEST_TMP/inhook$n")" 2>/dev/null   # the orphaned hook's process group
  fi
  if [ "$rc" = 137 ]; then
    ok 0 "m$n: rollback killed"
    sleep 2   # the pool goes on writing
    "${F[@]}" rollback --yes --timeout 60 >/dev/null 2>"$TEST_TMP/rb$n.2.err"; rc=$?
    is "$rc" 0 "m$n: the rerun of rollback finishes it" || diag "$(tail -8 "$TEST_TMP/rb$n.2.err")"
  else
    is "$rc" 0 "m$n: rollback exits 0" || diag "$(tail -8 "$TEST_TMP/rb$n.err")"
  fi
  is "$(QDB=app$n migration_phase "m$n")" "rolled_back" "m$n: phase rolled_back"
  is "$(cat "$TEST_TMP/conn")" "$SRC_APP" "m$n: the application points at the source"
  local t_after t_later
  t_after=$(QDB=app$n q target "SELECT count(*) FROM orders")
  sleep 2
  t_later=$(QDB=app$n q target "SELECT count(*) FROM orders")
  is "$t_later" "$t_after" "m$n: nothing commits on the target once the rollback is done ($t_after rows, $t_later 2 s later)"
  wait "$ap"
  sort "$TEST_TMP/acked" >"$TEST_TMP/acked_sorted"
  q source "SELECT id FROM orders" | sort >"$TEST_TMP/src_ids"
  QDB=app$n q target "SELECT id FROM orders" | sort >"$TEST_TMP/tgt_ids"
  local acked missing tonly
  acked=$(wc -l <"$TEST_TMP/acked_sorted")
  missing=$(comm -23 "$TEST_TMP/acked_sorted" "$TEST_TMP/src_ids" | wc -l)
  tonly=$(comm -23 "$TEST_TMP/tgt_ids" "$TEST_TMP/src_ids" | wc -l)
  diag "m$n: application $(cat "$TEST_TMP/app$n.out"); on the source $(wc -l <"$TEST_TMP/src_ids"), on the target $(wc -l <"$TEST_TMP/tgt_ids"); acknowledged but missing on the source $missing, on the target only $tonly"
  ok "$([ "$acked" -gt 100 ]; echo $?)" "m$n: the application wrote through the rollback ($acked acknowledged writes)"
  is "$missing" 0 "m$n: every acknowledged write is on the source"
  is "$tonly" 0 "m$n: no row committed on the target is missing on the source"
  kill -TERM "$fp" 2>/dev/null; wait "$fp"
}

scenario 1 "" rollback.after-drain
scenario 2 '[ -s '"$TEST_TMP"'/inhook2 ] || { echo $$ >'"$TEST_TMP"'/inhook2; sleep 61; };'
scenario 3 "$PGBIN/psql -XAtq -h $TARGET_SOCK -p $TARGET_PORT -U postgres -d postgres -c \\\"$KILL_FENCE\\\" >>$TEST_TMP/killed3; sleep 1;"
is "$(cat "$TEST_TMP/killed3" 2>/dev/null)" 1 "m3: the rollback hook terminated the target's fence"
# held: killed inside the freeze window before the drain, and after the hook before the hand-over
scenario 4 "" rollback.after-freeze
scenario 5 "" rollback.after-hook
unlike "$(cat "$TEST_TMP"/start*.err "$TEST_TMP"/rb*.err "$TEST_TMP"/sw*.err)" "runtime error|LeakSanitizer" "no sanitizer reports"
done_testing
