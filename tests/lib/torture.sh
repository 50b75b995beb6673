# torture.sh: the pieces of the fault campaign (tests/t/170_torture.t).
#
# Source it after tap.sh and pg.sh. It provides:
#   supervisor_start / supervisor_stop: a systemd-like loop (Restart=always,
#     RestartSec=0.5) running `ferry start` as the role ferry_tgt on the target;
#     the running ferry's pid is in $TEST_TMP/ferry.pid, each exit is one line
#     in $TEST_TMP/exits
#   load_run SECONDS SEED: the workload (tests/sql/torture/*.sql) for that
#     long, pgbench restarted whenever a fault on the source ends it early
#   sampler_start / sampler_stop: the slot invariant, sampled every 0.2 s
#   fault KIND: inject one fault
#   lsn_num LSN: an LSN as a number
#   table_diff TABLE: rows only on the source (lost) and only on the target
#     (extra), counted, as "LOST EXTRA"

TORTURE_SQL="$SQL/torture"
# the fault kinds; FAULTS (space-separated) limits a run to some of them
TORTURE_KINDS=(kill9 sigterm target_restart_fast target_restart_immediate source_restart_fast
               terminate_target terminate_source lock_target statement_timeout)

# seed_rng SEED: seed bash's RANDOM; consecutive seeds give nearly the same
# first values, so the seed is scrambled first and two values thrown away
seed_rng() {
  RANDOM=$(( ($1 * 2654435761 + 12345) % 4294967291 ))
  : $RANDOM $RANDOM
}

lsn_num() {  # 16/B374D848 -> a decimal number
  local hi=${1%/*} lo=${1#*/}
  echo $(( (16#$hi << 32) | 16#$lo ))
}

ferry_pid() { cat "$TEST_TMP/ferry.pid" 2>/dev/null; }

supervisor_start() {
  rm -f "$TEST_TMP/sup.stop"
  (
    trap - EXIT
    while [ ! -e "$TEST_TMP/sup.stop" ]; do
      "$FERRY" --source "$SOURCE_CONN" --target "$FERRY_TARGET_CONN" start --jobs 2 \
        >>"$TEST_TMP/out" 2>>"$TEST_TMP/err" &
      echo $! >"$TEST_TMP/ferry.pid"
      wait $!
      rc=$?
      echo "$(date +%s.%N) exit $rc" >>"$TEST_TMP/exits"
      rm -f "$TEST_TMP/ferry.pid"
      [ -e "$TEST_TMP/sup.stop" ] && break
      sleep 0.5
    done
  ) 2>>"$TEST_TMP/supervisor.log" &
  SUP=$!
}

# supervisor_stop: SIGTERM to the running ferry, the loop ends; returns 1 if
# ferry did not exit within 15 s
supervisor_stop() {
  local p
  touch "$TEST_TMP/sup.stop"
  p=$(ferry_pid)
  [ -n "$p" ] && kill -TERM "$p" 2>/dev/null
  for _ in $(seq 1 150); do kill -0 "$SUP" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$SUP" 2>/dev/null; then
    p=$(ferry_pid); [ -n "$p" ] && kill -KILL "$p" 2>/dev/null
    wait "$SUP" 2>/dev/null
    return 1
  fi
  wait "$SUP" 2>/dev/null
  return 0
}

# wait_ferry_running [TIMEOUT_S]: the supervisor has a ferry running
wait_ferry_running() {
  for _ in $(seq 1 $(( ${1:-10} * 10 ))); do
    [ -n "$(ferry_pid)" ] && kill -0 "$(ferry_pid)" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

pgbench_src() {  # pgbench_src SECONDS SEED CLIENTS RATE script@w...
  local secs=$1 seed=$2 clients=$3 rate=$4; shift 4
  local args=() s
  for s in "$@"; do args+=(-f "$TORTURE_SQL/$s"); done
  [ "$rate" -gt 0 ] && args+=(-R "$rate")
  "$PGBIN/pgbench" -n -T "$secs" -c "$clients" --max-tries=50 --random-seed="$seed" \
    -h "$SOURCE_SOCK" -p "$SOURCE_PORT" -U postgres "${args[@]}" app
}

# load_part END_EPOCH SEED CLIENTS RATE scripts...: pgbench until END_EPOCH,
# started again when a restart or termination on the source ends it early
load_part() {
  local end=$1 seed=$2; shift 2
  local left n=0
  while :; do
    left=$(( end - $(date +%s) ))
    [ "$left" -ge 1 ] || break
    pgbench_src "$left" "$((seed + n))" "$@" || sleep 0.3
    n=$((n + 1))
  done
}

# load_run SECONDS SEED: three clients of small mixed transactions (about 150
# a second in all), one client of 50,000-row transactions; output in
# $TEST_TMP/load
load_run() {
  local end=$(( $(date +%s) + $1 ))
  load_part "$end" "$2" 3 150 small.sql@10 keychg.sql@3 delete.sql@2 slow.sql@1 truncate.sql@1 \
    >>"$TEST_TMP/load" 2>&1 &
  local a=$!
  load_part "$end" "$(( $2 + 7 ))" 1 0 big.sql >>"$TEST_TMP/load" 2>&1 &
  local b=$!
  wait "$a" "$b"
}

slot_flush() {
  QDB=postgres q source "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'ferry'" 2>/dev/null
}

# The slot may lag the target, never lead it. ferry confirms, when caught up,
# all it received, which runs ahead of the last applied commit over WAL that
# holds nothing for it (a shutdown checkpoint, an ANALYZE): that lead loses
# nothing. What it must never do is confirm past a transaction that the
# target has not applied. A witness slot (same plugin and publications, never
# consumed, advanced only to what the target applied) tells them apart: the
# commits it decodes with an end LSN in (applied, confirmed] are the ones a
# restart from the slot would skip.
WITNESS=torture_witness
witness_create() {
  q source "SELECT lsn FROM pg_create_logical_replication_slot('$WITNESS', 'pgoutput')" >/dev/null
}
witness_advance() {  # witness_advance LSN: the target has everything up to LSN
  q source "SELECT 1 FROM pg_replication_slot_advance('$WITNESS', '$1')" >/dev/null
}
# skipped_commits CONFIRMED APPLIED: source transactions for ferry with an
# end LSN in (APPLIED, CONFIRMED]
skipped_commits() {
  q source "SELECT count(*) FROM pg_logical_slot_peek_binary_changes('$WITNESS', '$1', NULL,
              'proto_version', '1', 'publication_names', 'ferry,ferry_insert_only', 'messages', 'true') c,
            LATERAL (SELECT ('x' || encode(substring(c.data FROM 11 FOR 8), 'hex'))::bit(64)::bigint AS end_lsn) e
            WHERE get_byte(c.data, 0) = 67
              AND e.end_lsn > ('$2'::pg_lsn - '0/0'::pg_lsn) AND e.end_lsn <= ('$1'::pg_lsn - '0/0'::pg_lsn)"
}

# slot_check: the slot's confirmed position (read first) against what the
# target has applied (read second; it only grows, and after a target crash
# it is what the target kept). Prints "ok S A", "lead S A" (ahead over WAL
# with no transaction for ferry), "ahead S A N" (N transactions the target
# lacks are confirmed) or "skip".
slot_check() {
  local s a n
  s=$(slot_flush); [ -n "$s" ] || { echo skip; return; }
  a=$(applied_position 2>/dev/null); [ -n "$a" ] || { echo skip; return; }
  if [ "$(lsn_num "$s")" -le "$(lsn_num "$a")" ]; then echo "ok $s $a"; return; fi
  n=$(skipped_commits "$s" "$a" 2>&1)
  if [ "$n" = 0 ]; then echo "lead $s $a"; else echo "ahead $s $a $n"; fi
}

sampler_start() {
  : >"$TEST_TMP/samples"
  (
    trap - EXIT
    while [ ! -e "$TEST_TMP/sampler.stop" ]; do
      c=$(slot_check)
      echo "$(date +%s.%N) $c" >>"$TEST_TMP/samples"
      # the slot ahead of the target: keep the source's WAL in between
      case $c in ahead*|lead*)
        set -- $c
        "$PGBIN/pg_waldump" -p "$SOURCE_DATA/pg_wal" -s "$3" -e "$2" >>"$TEST_TMP/ahead.wal" 2>&1
        echo "--- $c" >>"$TEST_TMP/ahead.wal" ;;
      esac
      sleep 0.2
    done
  ) &
  SAMPLER=$!
}
sampler_stop() {
  touch "$TEST_TMP/sampler.stop"; wait "$SAMPLER" 2>/dev/null; rm -f "$TEST_TMP/sampler.stop"
}

restart_server() {  # restart_server NAME MODE
  as_pg "$PGBIN/pg_ctl" -D "$TEST_TMP/$1" -l "$TEST_TMP/$1/server.log" -m "$2" -w -t 60 restart >/dev/null 2>&1 \
    || as_pg "$PGBIN/pg_ctl" -D "$TEST_TMP/$1" -l "$TEST_TMP/$1/server.log" -w -t 60 start >/dev/null 2>&1
}

terminate_ferry() {  # terminate_ferry SERVER: end ferry's sessions there (the walsender too)
  QDB=postgres q "$1" "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                        WHERE application_name LIKE 'ferry%' AND pid <> pg_backend_pid()"
}

# fault KIND [RANDOM-DRAWN ARGS]: inject one fault; prints what it did
fault() {
  local p n t
  case $1 in
    kill9)
      p=$(ferry_pid); [ -n "$p" ] && kill -KILL "$p" 2>/dev/null && echo "killed pid $p" ;;
    sigterm)
      p=$(ferry_pid)
      [ -n "$p" ] || { echo "no ferry running"; return 0; }
      n=$(wc -l <"$TEST_TMP/exits")
      t=$(date +%s%N)
      kill -TERM "$p"
      # the supervisor writes the exit line once it has reaped ferry
      for _ in $(seq 1 150); do [ "$(wc -l <"$TEST_TMP/exits")" -gt "$n" ] && break; sleep 0.1; done
      if [ "$(wc -l <"$TEST_TMP/exits")" -le "$n" ]; then echo "HANG: pid $p still running 15 s after SIGTERM"; return 1; fi
      echo "pid $p exited $(( ($(date +%s%N) - t) / 1000000 )) ms after SIGTERM, $(tail -1 "$TEST_TMP/exits" | cut -d' ' -f2-)" ;;
    target_restart_fast) restart_server target fast; echo "target restarted (fast)" ;;
    target_restart_immediate) restart_server target immediate; echo "target restarted (immediate)" ;;
    source_restart_fast) restart_server source fast; echo "source restarted (fast)" ;;
    terminate_target) echo "terminated $(terminate_ferry target) ferry sessions on the target" ;;
    terminate_source) echo "terminated $(terminate_ferry source) ferry sessions on the source" ;;
    lock_target)
      t=$2 n=$3
      PGAPPNAME=locker "$PGBIN/psql" -XAtq -h "$TARGET_SOCK" -p "$TARGET_PORT" -U postgres app \
        -c "BEGIN; LOCK TABLE $t IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep($n); COMMIT;" >/dev/null 2>&1
      echo "held $t on the target for $n s" ;;
    statement_timeout)
      n=$2
      q target "ALTER ROLE ferry_tgt SET statement_timeout = '50ms'" >/dev/null
      echo "statement_timeout 50ms for ferry_tgt for $n s (terminated $(terminate_ferry target) sessions)"
      sleep "$n"
      q target "ALTER ROLE ferry_tgt RESET statement_timeout" >/dev/null ;;
    *) echo "unknown fault $1"; return 1 ;;
  esac
}

# table_diff TABLE: "LOST EXTRA": rows (as text, a multiset) only on the
# source, and only on the target
table_diff() {
  q source "SELECT t::text FROM ONLY $1 t" | LC_ALL=C sort >"$TEST_TMP/diff.src"
  q target "SELECT t::text FROM ONLY $1 t" | LC_ALL=C sort >"$TEST_TMP/diff.tgt"
  echo "$(LC_ALL=C comm -23 "$TEST_TMP/diff.src" "$TEST_TMP/diff.tgt" | wc -l) $(LC_ALL=C comm -13 "$TEST_TMP/diff.src" "$TEST_TMP/diff.tgt" | wc -l)"
}
