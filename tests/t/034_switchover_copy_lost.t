#!/usr/bin/env bash
# The switchover's re-copy of keyless tables (inside the freeze window)
# never hangs on a lost or silent target: its target backend terminated ->
# the switchover aborts and the source takes writes again; SIGTERM while
# that backend does not answer (SIGSTOP) -> the same, within seconds.
# Also: ferry's TCP connections carry keepalives (30 s idle) unless the
# conninfo sets its own.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
# a keyless table big enough that its re-copy takes a second or more
q source "CREATE TABLE bulk_nokey (n bigint, pad text);
          INSERT INTO bulk_nokey SELECT g, repeat('z', 200) FROM generate_series(1, 500000) g" >/dev/null
# over TCP, the target with its own keepalives_idle
SRC_TCP="host=127.0.0.1 port=$SOURCE_PORT dbname=app user=postgres"
TGT_TCP="host=127.0.0.1 port=$TARGET_PORT dbname=app user=postgres keepalives_idle=7"
F=("$FERRY" --source "$SRC_TCP" --target "$TGT_TCP")
"${F[@]}" start --jobs 2 >"$TEST_TMP/start.out" 2>"$TEST_TMP/start.err" &
FP=$!
wait_following ferry 120; ok $? "ferry start follows"

# keepalive timers of ferry start's sockets to a port, in seconds to the next
# probe (ss -o prints "119min", "29sec", and under 10 s "6.784ms" for 6.784 s)
timers() {
  ss -tnpo state established "( dport = :$1 )" 2>/dev/null | grep "pid=$FP," |
    sed -n 's/.*timer:(keepalive,\([0-9.]*\)\([a-z]*\),.*/\1 \2/p' |
    awk '{ v = $1; if ($2 == "min") v = $1 * 60; else if ($2 == "ms" && index($1, ".") == 0) v = $1 / 1000; print v }'
}
src_t=$(timers "$SOURCE_PORT"); tgt_t=$(timers "$TARGET_PORT")
ok "$([ -n "$src_t" ] && echo "$src_t" | awk '$1 > 30 { bad = 1 } END { exit bad }'; echo $?)" \
   "source connections probe after at most 30 s idle (s to next probe: $(echo $src_t))"
ok "$([ -n "$tgt_t" ] && echo "$tgt_t" | awk '$1 > 7 { bad = 1 } END { exit bad }'; echo $?)" \
   "target connections keep the conninfo's keepalives_idle=7 (s to next probe: $(echo $tgt_t))"

# recopy_backend: pid of the target backend running the re-copy of bulk_nokey
recopy_backend() {
  local pid
  for _ in $(seq 1 1200); do
    pid=$(q target "SELECT pid FROM pg_stat_activity WHERE query LIKE 'COPY %bulk_nokey%FROM STDIN%' AND state = 'active'" 2>/dev/null)
    [ -n "$pid" ] && { echo "$pid"; return 0; }
    sleep 0.05
  done
  return 1
}
wait_exit() {  # wait_exit PID SECONDS: RC and MS (since T0); killed if still running
  for _ in $(seq 1 $(($2 * 20))); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
  kill -0 "$1" 2>/dev/null && kill -KILL "$1"
  wait "$1" 2>/dev/null; RC=$?
  MS=$(( ($(date +%s%N) - T0) / 1000000 ))
}

# --- (d) the re-copy's target backend is terminated --------------------------
"${F[@]}" switchover --yes >"$TEST_TMP/o1" 2>"$TEST_TMP/e1" &
SP=$!
pid=$(recopy_backend); ok $? "the switchover re-copies the keyless table"
T0=$(date +%s%N)
q target "SELECT pg_terminate_backend($pid)" >/dev/null
wait_exit "$SP" 20
is "$RC" 1 "re-copy's target backend terminated: the switchover fails (EXIT_FAILED)"
ok "$([ "$MS" -lt 10000 ]; echo $?)" "within 10 s (took $MS ms)"
like "$(cat "$TEST_TMP/e1")" "could not copy .*bulk_nokey.*: lost the connection to the target" \
  "the error names the table and the target"
diag "$(grep ' ERROR: ' "$TEST_TMP/e1" | head -2)"
like "$(cat "$TEST_TMP/e1")" "switchover aborted" "the switchover is aborted"
is "$(q source "SHOW default_transaction_read_only")" "off" "the source is not read-only"
source_writable; ok $? "the source takes writes again and replication runs"
is "$(migration_phase)" "following" "phase back to following"

# --- (d2) SIGTERM while the re-copy's target backend does not answer ---------
"${F[@]}" switchover --yes >"$TEST_TMP/o2" 2>"$TEST_TMP/e2" &
SP=$!
pid=$(recopy_backend); ok $? "the switchover re-copies the keyless table again"
kill -STOP "$pid"
sleep 1.5
T0=$(date +%s%N)
kill -TERM "$SP"
wait_exit "$SP" 20
kill -CONT "$pid"
is "$RC" 1 "SIGTERM with a silent target backend: the switchover fails (EXIT_FAILED)"
ok "$([ "$MS" -lt 5000 ]; echo $?)" "within 5 s of SIGTERM (took $MS ms)"
like "$(cat "$TEST_TMP/e2")" "switchover aborted" "the switchover is aborted"
unlike "$(cat "$TEST_TMP/e2")" "COULD NOT UNFREEZE" "and the source was unfrozen"
is "$(q source "SHOW default_transaction_read_only")" "off" "the source is not read-only"
source_writable; ok $? "the source takes writes again and replication runs"
is "$(migration_phase)" "following" "phase back to following"
unlike "$(cat "$TEST_TMP/e1" "$TEST_TMP/e2")" "runtime error|LeakSanitizer|AddressSanitizer" "no sanitizer report"

# --- a switchover that completes re-copies it exactly ------------------------
"${F[@]}" switchover --yes >"$TEST_TMP/o3" 2>"$TEST_TMP/e3"; rc=$?
is "$rc" 0 "then a switchover succeeds"
[ "$rc" = 0 ] || diag "$(tail -5 "$TEST_TMP/e3")"
is "$(q target "SELECT count(*), sum(n) FROM bulk_nokey")" "$(q source "SELECT count(*), sum(n) FROM bulk_nokey")" \
  "the keyless table is equal on both sides"
kill -TERM "$FP" 2>/dev/null; wait "$FP" 2>/dev/null
done_testing
