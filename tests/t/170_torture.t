#!/usr/bin/env bash
# A seeded fault campaign (issue 12). Each round runs a mixed workload on the
# source while `ferry start` follows under a supervisor (restarted whenever
# it exits, as systemd would): small transactions on keyed, REPLICA IDENTITY
# FULL, keyless and partitioned tables (rows moving between partitions), key
# changes, deletes, truncates, transactions left open while others commit,
# and 50,000-row transactions. At a moment the round's seed picks, one fault
# the seed picks: kill -9 or SIGTERM of ferry, a fast or immediate restart of
# the target, a fast restart of the source, ferry's sessions terminated on
# the target or on the source (the walsender too), a table locked on the
# target, a 50 ms statement_timeout for ferry's role on the target. Then:
#   1. the slot's confirmed_flush_lsn never passes what the target applied
#      (sampled every 0.2 s during the round, and after it),
#   2. once caught up, every table is equal by checksum (a differing table's
#      missing and extra rows are counted),
#   3. no sanitizer report in ferry's log.
# Round N's seed is SEED + N - 1, printed; replay one round on fresh servers:
#   SEED=1234 ROUNDS=1 prove -v tests/t/170_torture.t
# FAULTS="kill9 lock_target" limits the kinds; `make torture ROUNDS=N` runs more.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"
. "$(dirname "$0")/../lib/torture.sh"

ROUNDS=${ROUNDS:-10}
SEED=${SEED:-80}     # its first 10 rounds draw every kind of fault
[ "$SEED" = random ] && SEED=$(( $(date +%s) % 1000000 ))
read -r -a KINDS <<<"${FAULTS:-${TORTURE_KINDS[*]}}"
SANITIZER_RE='runtime error|LeakSanitizer|AddressSanitizer'
LOCK_TABLES=(acct ev bulk full_t parts_1 log_nokey)
T0=$(date +%s)

pg_start source
# a lazy WAL writer keeps the target's async commits unflushed for seconds:
# an immediate restart then loses them, and the slot must not have passed them
pg_start target "wal_writer_delay = 5000ms"
qf source "$TORTURE_SQL/schema.sql" >/dev/null || bail "schema failed"
# ferry's own role on the target, so that a setting for it touches only ferry
q target "CREATE ROLE ferry_tgt LOGIN SUPERUSER" >/dev/null
FERRY_TARGET_CONN="host=$TARGET_SOCK port=$TARGET_PORT dbname=app user=ferry_tgt"

: >"$TEST_TMP/exits"
supervisor_start
wait_following ferry 120; ok $? "ferry start clones and follows"
witness_create

declare -A FAULT_N
ROWS_CHECKED=0 ROWS_LOST=0 ROWS_EXTRA=0 SAMPLES=0 AHEAD=0 LEAD=0 FAILED_ROUNDS=""

for round in $(seq 1 "$ROUNDS"); do
  seed=$((SEED + round - 1))
  seed_rng "$seed"
  kind=${KINDS[RANDOM % ${#KINDS[@]}]}
  dur=$((6 + RANDOM % 4))
  at_ms=$((500 + RANDOM % ((dur - 2) * 1000)))
  args=""
  case $kind in
    lock_target) args="${LOCK_TABLES[RANDOM % ${#LOCK_TABLES[@]}]} $((2 + RANDOM % 3))" ;;
    statement_timeout) args="$((2 + RANDOM % 3))" ;;
  esac
  FAULT_N[$kind]=$(( ${FAULT_N[$kind]:-0} + 1 ))
  diag "round $round: seed $seed: $kind${args:+ ($args)} at ${at_ms} ms of a ${dur} s workload"
  fails_before=$TAP_FAILED
  err_off=$(stat -c %s "$TEST_TMP/err")

  sampler_start
  load_run "$dur" "$seed" &
  LOADP=$!
  sleep "$(printf '%d.%03d' $((at_ms / 1000)) $((at_ms % 1000)))"
  # shellcheck disable=SC2086
  what=$(fault "$kind" $args); rc=$?
  diag "  $what"
  [ "$kind" = sigterm ] && { ok $rc "round $round: ferry exits after SIGTERM"; like "$what" "exit 0" "round $round: with status 0"; }
  wait "$LOADP"

  wait_ferry_running 30; ok $? "round $round: ferry is running again"
  wait_applied ferry 180; ok $? "round $round: ferry catches up"
  sampler_stop
  after=$(slot_check)
  echo "$(date +%s.%N) $after" >>"$TEST_TMP/samples"
  n=$(grep -c ' ok \| lead \| ahead ' "$TEST_TMP/samples"); SAMPLES=$((SAMPLES + n))
  a=$(grep -c ' ahead ' "$TEST_TMP/samples"); AHEAD=$((AHEAD + a))
  l=$(grep -c ' lead ' "$TEST_TMP/samples"); LEAD=$((LEAD + l))
  is "$a" 0 "round $round: the slot never passed a transaction the target lacks ($n samples, $l ahead over WAL without one; last: $after)"
  [ "$a" -gt 0 ] && diag "$(grep ' ahead ' "$TEST_TMP/samples" | head -5)"
  [ "$l" -gt 0 ] && diag "  slot ahead over WAL with no transaction for ferry: $(grep ' lead ' "$TEST_TMP/samples" | head -1)"
  witness_advance "$(applied_position)"

  # every table by checksum; a differing one row by row
  db_checksum source >"$TEST_TMP/sum.src"
  db_checksum target >"$TEST_TMP/sum.tgt"
  rows=$(awk -F'|' '{ s += $2 } END { print s + 0 }' "$TEST_TMP/sum.src")
  ROWS_CHECKED=$((ROWS_CHECKED + rows))
  lost=0 extra=0
  for t in $(LC_ALL=C comm -3 "$TEST_TMP/sum.src" "$TEST_TMP/sum.tgt" | cut -f1- | sed 's/^\t//' | cut -d'|' -f1 | sort -u); do
    read -r l e <<<"$(table_diff "$t")"
    diag "  $t differs: $l rows missing on the target, $e extra there"
    lost=$((lost + l)) extra=$((extra + e))
  done
  ROWS_LOST=$((ROWS_LOST + lost)) ROWS_EXTRA=$((ROWS_EXTRA + extra))
  ok "$(cmp -s "$TEST_TMP/sum.src" "$TEST_TMP/sum.tgt"; echo $?)" \
     "round $round: every table equal by checksum ($rows rows; lost $lost, extra $extra)"
  san=$(tail -c +$((err_off + 1)) "$TEST_TMP/err" | grep -E -A5 "$SANITIZER_RE")
  is "$san" "" "round $round: no sanitizer report"
  if [ "$TAP_FAILED" -gt "$fails_before" ]; then
    FAILED_ROUNDS="$FAILED_ROUNDS $seed($kind)"
    diag "  round $round failed: replay with SEED=$seed ROUNDS=1${FAULTS:+ FAULTS=\"$FAULTS\"}"
    diag "$(tail -c +$((err_off + 1)) "$TEST_TMP/err" | grep -v ' INFO: ' | tail -15)"
  fi
done

supervisor_stop; ok $? "ferry stops at the end"
is "$(grep -E -c "$SANITIZER_RE" "$TEST_TMP/err")" 0 "no sanitizer report in the whole log"
like "$(cat "$TEST_TMP/load")" "number of transactions actually processed" "the workload ran"

summary=""
for k in "${TORTURE_KINDS[@]}"; do [ -n "${FAULT_N[$k]:-}" ] && summary="$summary $k=${FAULT_N[$k]}"; done
diag "torture: $ROUNDS rounds (seeds $SEED..$((SEED + ROUNDS - 1))), faults:$summary;" \
     "rows checked $ROWS_CHECKED, rows lost $ROWS_LOST, rows doubled $ROWS_EXTRA;" \
     "slot samples $SAMPLES, ahead of a transaction $AHEAD, ahead over empty WAL $LEAD; ferry exits $(wc -l <"$TEST_TMP/exits");" \
     "$(( $(date +%s) - T0 )) s${FAILED_ROUNDS:+; failed rounds:$FAILED_ROUNDS}"
done_testing
