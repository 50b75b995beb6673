#!/usr/bin/env bash
# kill -9 at every stage of a clone, then run it again: the result is the
# exact source contents, no row lost or duplicated, one slot left.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

pg_start source
pg_start target
qf source "$(dirname "$0")/../sql/types.sql" >/dev/null 2>&1 || bail "fixture failed to load"
q source "CREATE TABLE wide (id bigint PRIMARY KEY, a text, b float8);
          INSERT INTO wide SELECT g, md5(g::text), g / 7.0 FROM generate_series(1, 80000) g"
SRC_SUM=$(db_checksum source)

clone() {  # clone [env...]: run ferry clone, output to $TEST_TMP/out, $TEST_TMP/err
  # in a subshell whose stderr is dropped, so bash's "Killed" notice is not printed
  ( env "$@" "$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" clone --jobs 2 \
      --split-tables-larger-than 1MB >"$TEST_TMP/out" 2>"$TEST_TMP/err" & wait $! ) 2>/dev/null
}

reset_all() {  # empty target database, no slot on the source
  QDB=postgres q source "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots" >/dev/null
  QDB=postgres q target "DROP DATABASE app WITH (FORCE)" >/dev/null
  QDB=postgres q target "CREATE DATABASE app" >/dev/null
}

wait_temp_slots_gone() {  # a killed process's temporary slot goes when the server notices
  for _ in $(seq 1 50); do
    [ "$(QDB=postgres q source "SELECT count(*) FROM pg_replication_slots WHERE temporary")" = 0 ] && return 0
    sleep 0.1
  done
  return 1
}

for fault in clone.after-slot clone.after-pre-data copy.after-item:1 copy.after-item:4 \
             copy.mid-item:3 clone.after-data step.after:1 step.after:20 clone.before-done; do
  reset_all
  clone FERRY_FAULT="$fault"; rc=$?
  is "$rc" 137 "$fault: ferry was killed with SIGKILL there"
  clone; rc=$?
  is "$rc" 0 "$fault: the rerun finishes"
  [ "$rc" = 0 ] || diag "$(tail -5 "$TEST_TMP/err")"
  like "$(cat "$TEST_TMP/out")" "complete \(resumed\)" "$fault: the rerun resumed the recorded migration"
  is "$(db_checksum target)" "$SRC_SUM" "$fault: target equals source, no row lost or duplicated"
  wait_temp_slots_gone
  is "$(QDB=postgres q source "SELECT string_agg(slot_name, ',') FROM pg_replication_slots")" "ferry" \
     "$fault: only the migration's slot remains"
done

# a resumed table records the later snapshot it was copied at
reset_all
clone FERRY_FAULT=copy.after-item:12
clone
is "$(q target "SELECT count(DISTINCT snapshot_lsn) FROM ferry.copy_item")" "2" \
   "tables copied after a resume carry their own snapshot LSN"
is "$(q target "SELECT bool_and(c.snapshot_lsn >= m.start_lsn) FROM ferry.copy_item c JOIN ferry.migration m ON m.name = c.migration")" "t" \
   "and it is never before the slot's start"

# killed again and again, at different places, then finished
reset_all
clone FERRY_FAULT=copy.after-item:3; r1=$?
clone FERRY_FAULT=copy.mid-item:2; r2=$?
clone FERRY_FAULT=step.after:5; r3=$?
clone; r4=$?
is "$r1 $r2 $r3 $r4" "137 137 137 0" "three kills in a row, then the fourth run finishes"
is "$(db_checksum target)" "$SRC_SUM" "contents equal after three kills"

# kill -9 from outside at random moments
for round in 1 2 3; do
  reset_all
  delay=$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.2f", 0.2 + rand() * 1.2 }')
  ( timeout -s KILL "$delay" "$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" clone --jobs 2 \
      --split-tables-larger-than 1MB >/dev/null 2>&1 & wait $! ) 2>/dev/null
  clone; rc=$?
  is "$rc" 0 "random kill round $round (after ${delay}s): the rerun finishes"
  [ "$rc" = 0 ] || diag "$(tail -5 "$TEST_TMP/err")"
  is "$(db_checksum target)" "$SRC_SUM" "random kill round $round: contents equal"
done
wait_temp_slots_gone
is "$(slot_count source)" "1" "no temporary slot left behind"

# A rerun right after a kill -9 can find the killed ferry's target session
# still holding the migration lock: the server ends that session only when
# the statement it was running finishes. A busy holder is waited for; an
# idle one is a live ferry, refused at once with its pid and the fix.
LOCK_SQL="SELECT pg_advisory_lock(1718773362, hashtext('ferry'))"
lock_held() {
  for _ in $(seq 1 50); do
    [ "$(q target "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = 1718773362")" = 1 ] && return 0
    sleep 0.1
  done
  return 1
}
reset_all
"$PGBIN/psql" -XAtq -h "$TARGET_SOCK" -p "$TARGET_PORT" -U postgres app -c "$LOCK_SQL, pg_sleep(2)" >/dev/null 2>&1 &
HOLDER=$!
lock_held; ok $? "a busy session holds the migration lock"
clone; rc=$?
is "$rc" 0 "clone waits for a busy holder of the migration lock to end, then runs"
like "$(cat "$TEST_TMP/err")" "held by a busy session on the target \(pid [0-9]+.*waiting up to" "saying what it waits for"
is "$(db_checksum target)" "$SRC_SUM" "and copies everything"
wait "$HOLDER"
reset_all
{ echo "$LOCK_SQL;"; sleep 4; } | "$PGBIN/psql" -XAtq -h "$TARGET_SOCK" -p "$TARGET_PORT" -U postgres app >/dev/null 2>&1 &
HOLDER=$!
lock_held; ok $? "an idle session holds the migration lock"
t0=$(date +%s)
clone; rc=$?
is "$rc" 1 "clone is refused while an idle session (a live ferry) holds the migration lock"
ok "$([ $(( $(date +%s) - t0 )) -lt 3 ]; echo $?)" "at once"
like "$(cat "$TEST_TMP/err")" "another ferry process is driving migration \"ferry\" on this target \(its session: pid [0-9]+, application .*idle.*pg_terminate_backend\([0-9]+\)" \
  "the error names the holding session and the fix"
wait "$HOLDER"
done_testing
