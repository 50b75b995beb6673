#!/usr/bin/env bash
# Found by a red-team helper (held): the arc three times over, each rollback killed (kill -9 by
# FERRY_FAULT) at one of its fault points and run again, with writers on the
# primary of the moment throughout (each committed insert recorded); then
# ferry start follows again under writes. Every committed write on both
# sides, once each, sides equal by checksum after each re-follow.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
start_following
: >"$TEST_TMP/ids"
# writer SIDE BASE: insert ids BASE, BASE+1, ... into kv (negated) until stopped; committed ones into ids
writer() {
  local i=0
  while [ ! -f "$TEST_TMP/stop.$1" ]; do
    i=$((i + 1))
    q "$1" "INSERT INTO kv VALUES (-($2 + $i), '$1 $i', 0); INSERT INTO log_nokey (msg) VALUES ('$1 $2 $i')" >/dev/null 2>&1 && echo "$(($2 + i))" >>"$TEST_TMP/ids"
    sleep 0.02
  done
}
start_writer() { rm -f "$TEST_TMP/stop.$1"; writer "$1" "$2" & WP=$!; }
stop_writer() { touch "$TEST_TMP/stop.$1"; wait "$WP"; }
n=0
for fault in rollback.after-freeze rollback.after-drain rollback.after-hook; do
  n=$((n + 1))
  "${F[@]}" switchover --yes --max-lag 10 >"$TEST_TMP/sw$n.out" 2>"$TEST_TMP/sw$n.err"
  is $? 0 "arc $n: switchover" || diag "$(tail -3 "$TEST_TMP/sw$n.err")"
  start_writer target $((n * 100000))
  sleep 2
  FERRY_FAULT=$fault "${F[@]}" rollback --yes --max-lag 10 >"$TEST_TMP/rb$n.out" 2>"$TEST_TMP/rb$n.err"
  is $? 137 "arc $n: rollback killed at $fault"
  sleep 1
  "${F[@]}" rollback --yes --max-lag 10 >"$TEST_TMP/rb$n-2.out" 2>"$TEST_TMP/rb$n-2.err"
  is $? 0 "arc $n: rollback rerun" || diag "$(tail -3 "$TEST_TMP/rb$n-2.err")"
  stop_writer target
  for _ in $(seq 1 100); do kill -0 "$FP" 2>/dev/null || break; sleep 0.1; done
  kill -TERM "$FP" 2>/dev/null; wait "$FP"
  start_writer source $((n * 100000 + 50000))
  ferry_start --jobs 2
  wait_following ferry 90; ok $? "arc $n: ferry start follows again" || diag "$(grep -E 'ERROR' "$TEST_TMP/err" | tail -3)"
  sleep 3
  stop_writer source
  wait_applied ferry 60; ok $? "arc $n: applied"
  is "$(db_checksum target)" "$(db_checksum source)" "arc $n: both sides equal by checksum"
  for side in source target; do
    is "$(q $side "SELECT count(*) FROM kv WHERE id < -99999")" "$(wc -l <"$TEST_TMP/ids" | tr -d ' ')" "arc $n: every committed write on the $side once"
  done
  is "$(q source "SELECT count(*) FROM log_nokey")" "$(wc -l <"$TEST_TMP/ids" | tr -d ' ')" "arc $n: keyless rows on the source once each"
done
kill -TERM "$FP" 2>/dev/null; wait "$FP"
"${F[@]}" cleanup >"$TEST_TMP/cl.out" 2>"$TEST_TMP/cl.err"
is $? 0 "cleanup" || diag "$(tail -3 "$TEST_TMP/cl.err")"
is "$(slot_count source) $(slot_count target)" "0 0" "no slot left"
done_testing
