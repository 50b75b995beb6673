#!/usr/bin/env bash
# ferry start survives kill -9 at random moments under load, restarts of the
# target and of the source, and a schema change on the source; nothing is
# lost or applied twice, and the slot never moves past what the target has.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

pg_start source
# a lazy WAL writer keeps async commits unflushed for seconds: the crash test below
# then loses recent commits unless ferry confirms only flushed positions
pg_start target "wal_writer_delay = 5000ms"
qf source "$SQL/follow_schema.sql" >/dev/null || bail "schema failed"

slot_flush() { QDB=postgres q source "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'ferry'"; }

# --- kill -9 at random moments while the source is being written ---------
pgload 25 3 "$SQL/load/mixed.sql@10" "$SQL/load/churn.sql@3" "$SQL/load/truncate.sql@1" >"$TEST_TMP/load1" 2>&1 &
LP=$!
for round in $(seq 1 8); do
  ferry_start --jobs 2
  delay=$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.2f", 0.3 + rand() * 2.2 }')
  sleep "$delay"
  kill -KILL "$FP" 2>/dev/null; wait "$FP" 2>/dev/null
  applied=$(q target "SELECT applied_lsn FROM ferry.apply_progress" 2>/dev/null)
  diag "round $round: killed after ${delay}s, applied ${applied:-none}, slot at $(slot_flush)"
done
wait "$LP"
like "$(cat "$TEST_TMP/load1")" "number of failed transactions: 0" "the load ran without errors during the kills"
ferry_start --jobs 2
wait_applied ferry 120
ok $? "after 8 kills -9 under load, ferry start catches up"
diff <(db_checksum source) <(db_checksum target) >"$TEST_TMP/diff"
ok $? "contents equal: nothing lost, nothing applied twice"
[ -s "$TEST_TMP/diff" ] && diag "$(head -20 "$TEST_TMP/diff")"

# --- the target goes away: the slot must not advance, ferry must wait ----
pg_stop target fast
pgload 3 2 "$SQL/load/mixed.sql" >/dev/null 2>&1
f1=$(slot_flush)
sleep 3
f2=$(slot_flush)
is "$f2" "$f1" "while the target is down the slot does not advance, though the source keeps writing"
pg_restart target >/dev/null 2>&1 || as_pg "$PGBIN/pg_ctl" -D "$TARGET_DATA" -l "$TARGET_DATA/server.log" -w start >/dev/null
is "$(q target "SELECT '$f2'::pg_lsn <= '$(applied_position)'::pg_lsn")" "t" \
   "what the slot confirmed was committed on the target"
pgload 3 2 "$SQL/load/mixed.sql" >/dev/null 2>&1
wait_applied ferry 90
ok $? "after the target restarts, ferry reconnects and catches up"
like "$(cat "$TEST_TMP/err")" "reconnecting in [0-9]+ s" "it said it was reconnecting with backoff"

# --- the target crashes (immediate stop: async commits not yet flushed are lost)
pgload 4 2 "$SQL/load/mixed.sql" >/dev/null 2>&1 &
LP=$!
sleep 1.5
pg_stop target immediate
wait "$LP"
crash_flush=$(slot_flush)
pg_restart target >/dev/null 2>&1
is "$(q target "SELECT '$crash_flush'::pg_lsn <= '$(applied_position)'::pg_lsn")" "t" \
   "after a target crash, the slot was confirmed no further than what the target kept"
wait_applied ferry 90
ok $? "after the target crash, ferry catches up"
is "$(db_checksum target)" "$(db_checksum source)" "contents equal after the target crash: nothing lost, nothing twice"

# --- the source restarts -------------------------------------------------
pg_restart source
pgload 3 2 "$SQL/load/mixed.sql" >/dev/null 2>&1
wait_applied ferry 90
ok $? "after the source restarts, ferry reconnects and catches up"
is "$(db_checksum target)" "$(db_checksum source)" "contents equal after both restarts"

# --- a schema change on the source --------------------------------------
q source "ALTER TABLE kv ADD COLUMN extra int; INSERT INTO kv (id, v, extra) VALUES (-999999999, 'with extra', 7)"
for i in $(seq 1 100); do grep -q 'table "public"."kv" differs' "$TEST_TMP/err" && break; sleep 0.1; done
like "$(cat "$TEST_TMP/err")" 'table "public"."kv" differs between source and target: source columns \(id, v, n, extra\), target columns \(id, v, n\)' \
     "a column added on the source stops apply with an error naming the table and the difference"
is "$(q target "SELECT count(*) FROM kv WHERE id = -999999999")" "0" "nothing was written with the wrong columns"
q target "ALTER TABLE kv ADD COLUMN extra int"
wait_applied ferry 60
ok $? "once the target has the same change, apply continues by itself"
is "$(q target "SELECT v || extra FROM kv WHERE id = -999999999")" "with extra7" "the row arrived with its new column"
is "$(db_checksum target)" "$(db_checksum source)" "contents equal at the end"

kill -TERM "$FP"; wait "$FP"
is "$?" 0 "ferry start stops cleanly"
unlike "$(grep -v 'differs between source and target' "$TEST_TMP/err" | grep -v 'lost the\|could not connect\|ended the change stream\|could not send\|could not apply to the target while\|terminating connection\|could not receive' )" \
       "runtime error|LeakSanitizer|AddressSanitizer" "no sanitizer reports"
done_testing
