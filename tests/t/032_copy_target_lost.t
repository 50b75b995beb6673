#!/usr/bin/env bash
# A lost or silent server during the clone's copy never hangs ferry: the
# target backend of a copy worker terminated, the target restarted, a target
# or source backend that stops answering (SIGSTOP) while ferry is told to
# stop. Each time ferry exits promptly with a one-line error naming the side,
# leaves no process spinning, and a rerun resumes to an exact copy.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

pg_start source
pg_start target
# about 200 MB: a copy of a few seconds, so there is time to break it mid-way
q source "CREATE TABLE big (id bigint PRIMARY KEY, a text, b text);
          INSERT INTO big SELECT g, md5(g::text), repeat('y', 200) FROM generate_series(1, 800000) g;
          CREATE TABLE small (id int PRIMARY KEY, v text);
          INSERT INTO small SELECT g, 'v' || g FROM generate_series(1, 1000) g" >/dev/null
SRC_SUM=$(db_checksum source)

clone_bg() {  # ferry clone in the background: pid in FP, output in $TEST_TMP/out, err
  "$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" clone --jobs 1 "$@" \
    >"$TEST_TMP/out" 2>"$TEST_TMP/err" &
  FP=$!
}

clone_fg() {  # a rerun of ferry clone, its exit status
  "$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" clone --jobs 1 \
    >"$TEST_TMP/out2" 2>"$TEST_TMP/err2"
}

reset_all() {  # empty target database, no slot on the source
  QDB=postgres q source "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots" >/dev/null
  QDB=postgres q target "DROP DATABASE app WITH (FORCE)" >/dev/null
  QDB=postgres q target "CREATE DATABASE app" >/dev/null
}

# copy_backend SIDE: pid of ferry's backend running the COPY of big on SIDE
# (waits up to 30 s for it to stream)
copy_backend() {
  local pat pid
  if [ "$1" = target ]; then pat='COPY %big%FROM STDIN%'; else pat='COPY %big%TO STDOUT%'; fi
  for _ in $(seq 1 600); do
    pid=$(q "$1" "SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'ferry%' AND query LIKE '$pat' AND state = 'active'" 2>/dev/null)
    if [ -n "$pid" ] && [ "$(q target "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY %big%FROM STDIN%' AND state = 'active'" 2>/dev/null)" = 1 ]; then
      echo "$pid"; return 0
    fi
    sleep 0.05
  done
  return 1
}

# cpu_ticks PID: user + system clock ticks the process has used
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# wait_exit PID SECONDS: wait for a background ferry; sets RC, MS (elapsed
# since T0) and SPIN (CPU ticks used in the last second if it had to be
# killed, else 0). A ferry still running after SECONDS is killed.
wait_exit() {
  local i a b
  SPIN=0
  for i in $(seq 1 $(($2 * 20))); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
  if kill -0 "$1" 2>/dev/null; then
    a=$(cpu_ticks "$1"); sleep 1; b=$(cpu_ticks "$1"); SPIN=$((b - a))
    kill -KILL "$1" 2>/dev/null
  fi
  wait "$1" 2>/dev/null; RC=$?
  MS=$(( ($(date +%s%N) - T0) / 1000000 ))
}

# --- (a) the target backend of the copy worker is terminated ---------------
reset_all
clone_bg
pid=$(copy_backend target); ok $? "(a) ferry's COPY into the target is running"
T0=$(date +%s%N)
q target "SELECT pg_terminate_backend($pid)" >/dev/null
wait_exit "$FP" 10
is "$RC" 1 "(a) target backend terminated mid-copy: ferry exits with EXIT_FAILED (1)"
ok "$([ "$MS" -lt 5000 ]; echo $?)" "(a) within 5 s (took $MS ms)"
is "$SPIN" 0 "(a) no copy worker left spinning (CPU ticks in a second while hung: $SPIN)"
like "$(grep ' ERROR: ' "$TEST_TMP/err" | head -1)" "copy worker 1 ERROR: .*(target|lost).*big|big.*target" \
  "(a) a one-line error naming the target and the table"
diag "$(grep ' ERROR: ' "$TEST_TMP/err")"
unlike "$(cat "$TEST_TMP/err")" "runtime error|LeakSanitizer|AddressSanitizer" "(a) no sanitizer report"
clone_fg; rc=$?
is "$rc" 0 "(a) a rerun of the clone finishes"
[ "$rc" = 0 ] || diag "$(tail -5 "$TEST_TMP/err2")"
like "$(cat "$TEST_TMP/out2")" "complete \(resumed\)" "(a) the rerun resumed the migration"
is "$(db_checksum target)" "$SRC_SUM" "(a) target equals source"

# --- (b) the target restarts mid-copy --------------------------------------
reset_all
clone_bg
pid=$(copy_backend target); ok $? "(b) ferry's COPY into the target is running"
T0=$(date +%s%N)
as_pg "$PGBIN/pg_ctl" -D "$TARGET_DATA" -m fast -w -t 60 restart -l "$TARGET_DATA/server.log" >/dev/null
wait_exit "$FP" 15
is "$RC" 1 "(b) target restarted mid-copy: ferry exits with EXIT_FAILED (1)"
ok "$([ "$MS" -lt 8000 ]; echo $?)" "(b) within 8 s of the restart's start (took $MS ms)"
is "$SPIN" 0 "(b) no copy worker left spinning (CPU ticks in a second while hung: $SPIN)"
like "$(grep ' ERROR: ' "$TEST_TMP/err" | head -1)" "ERROR: .*target" "(b) the first error names the target"
diag "$(grep ' ERROR: ' "$TEST_TMP/err")"
clone_fg; rc=$?
is "$rc" 0 "(b) a rerun of the clone finishes"
[ "$rc" = 0 ] || diag "$(tail -5 "$TEST_TMP/err2")"
is "$(db_checksum target)" "$SRC_SUM" "(b) target equals source"

# --- (c) SIGTERM while the target backend does not answer -------------------
# The backend is stopped (SIGSTOP): its socket stays open and nothing comes
# back, as with a host that vanished. ferry's sends fill the socket buffers
# and its cancel request cannot be served.
for side in target source; do
  reset_all
  clone_bg
  pid=$(copy_backend "$side"); ok $? "(c $side) ferry's COPY on the $side is running"
  kill -STOP "$pid"
  sleep 1.5
  T0=$(date +%s%N)
  kill -TERM "$FP"
  wait_exit "$FP" 10
  kill -CONT "$pid"
  is "$RC" 1 "(c $side) SIGTERM with a silent $side backend: ferry exits with EXIT_FAILED (1)"
  ok "$([ "$MS" -lt 3500 ]; echo $?)" "(c $side) within 3.5 s of SIGTERM (took $MS ms)"
  like "$(cat "$TEST_TMP/err")" "clone interrupted; run it again to resume" "(c $side) saying the clone was interrupted"
  diag "$(grep -E ' (ERROR|WARN|INFO): .*(stop|interrupt)' "$TEST_TMP/err")"
  unlike "$(cat "$TEST_TMP/err")" "runtime error|LeakSanitizer|AddressSanitizer" "(c $side) no sanitizer report"
  clone_fg; rc=$?
  is "$rc" 0 "(c $side) a rerun of the clone finishes"
  [ "$rc" = 0 ] || diag "$(tail -5 "$TEST_TMP/err2")"
  is "$(db_checksum target)" "$SRC_SUM" "(c $side) target equals source"
done

done_testing
