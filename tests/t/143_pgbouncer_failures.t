#!/usr/bin/env bash
# The PgBouncer switchover when things go wrong (issue 16), while an
# application (psycopg2, 4 threads, transaction pooling) writes through the
# pooler all along:
# - a client holds a transaction open through the pooler: PAUSE times out
#   (--pause-timeout 2), the session is named, the switchover aborts, the
#   pooler is resumed on the source, the source takes writes, nothing lost;
# - ferry is killed while the pooler is paused: status says so, and ferry
#   rollback resumes it onto the source;
# - ferry is killed after the repoint, before the resume: ferry switchover
#   finishes the switch and resumes it onto the target.
# Through all of it the application sees no error: only waits. Then a
# rollback during which PgBouncer fails a queued client (query_wait_timeout
# 1 s, a slow rollback hook): the report counts that failed request. The pooler
# also has an entry app_ro to the same database, which ferry warns about.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"
. "$(dirname "$0")/../lib/pgbouncer.sh"

APP="/usr/bin/python3 $(dirname "$0")/../lib/pooler_app.py"
follow_servers
for side in source target; do q "$side" "CREATE ROLE app_rw LOGIN" >/dev/null; done
q source "CREATE TABLE orders (id bigint PRIMARY KEY, writer text NOT NULL, at timestamptz NOT NULL DEFAULT now());
          GRANT SELECT, INSERT ON orders TO app_rw" >/dev/null
PGB_ALIAS=app_ro pgb_start pgb source transaction
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
PGBOPT=(--pgbouncer "$PGB_ADMIN" --pgbouncer-ini "$PGB_INI")
"${F[@]}" start --jobs 2 >>"$TEST_TMP/out" 2>>"$TEST_TMP/err" &
FP=$!
wait_following; ok $? "ferry start follows"

$APP "$PGB_APP" "$TEST_TMP/acked" 30 4 25 persistent >"$TEST_TMP/app.out" 2>"$TEST_TMP/app.err" &
AP=$!
sleep 2

# --- 1. a transaction held open through the pooler --------------------------
printf "BEGIN;\nINSERT INTO orders VALUES (-1, 'held open');\n\\\\! sleep 8\nCOMMIT;\n" |
  PGAPPNAME=holder "$PGBIN/psql" -XAtq -h 127.0.0.1 -p "$PGB_PORT" -U app_rw app >"$TEST_TMP/holder.out" 2>&1 &
HP=$!
for _ in $(seq 1 50); do
  [ "$(q source "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction' AND usename = 'app_rw'")" = 1 ] && break
  sleep 0.1
done
"${F[@]}" switchover --yes --max-lag 5 --pause-timeout 2 "${PGBOPT[@]}" >"$TEST_TMP/sw1.out" 2>"$TEST_TMP/sw1.err"
is $? 1 "a PAUSE that times out fails the switchover: exit 1"
err=$(cat "$TEST_TMP/sw1.err")
like "$err" "PAUSE app did not finish within --pause-timeout 2 s" "it says the pause timed out"
like "$err" "server pid [0-9]+ for client 127.0.0.1:[0-9]+ \(user app_rw, application_name \"holder\"" "and names the client that holds it"
like "$err" "pid [0-9]+ is idle in transaction \(transaction open [0-9.]+ s" "with its state on the source"
like "$err" "nothing was frozen" "nothing was frozen"
like "$err" "entry app_ro leads to the same database as app and is not held: the freeze ends its server connections" \
     "an entry to the same database that is not held is warned about"
is "$(pgb_entry pgb)" "$SOURCE_SOCK|$SOURCE_PORT|app|0" "the pooler is resumed, on the source"
is "$(migration_phase)" following "phase following"
source_writable; is $? 0 "the source takes writes"
wait "$HP"
is "$(q source "SELECT writer FROM orders WHERE id = -1")" "held open" "the held transaction committed"

# --- 2. killed while paused ------------------------------------------------------
FERRY_FAULT=switchover.after-pause "${F[@]}" switchover --yes --max-lag 5 "${PGBOPT[@]}" >"$TEST_TMP/sw2.out" 2>"$TEST_TMP/sw2.err"
is $? 137 "killed right after the pause"
is "$(pgb_entry pgb | cut -d'|' -f4)" 1 "the pooler stays paused without ferry"
like "$("${F[@]}" status 2>&1)" "HELD +PgBouncers paused by a switchover or rollback: PgBouncer 127.0.0.1:$PGB_PORT entry app" "status says who holds them"
"${F[@]}" rollback --yes "${PGBOPT[@]}" >"$TEST_TMP/rb2.out" 2>"$TEST_TMP/rb2.err"
rc=$?; is $rc 0 "ferry rollback undoes the interrupted switchover"; [ $rc = 0 ] || diag "$(tail -15 "$TEST_TMP/rb2.err")"
is "$(pgb_entry pgb)" "$SOURCE_SOCK|$SOURCE_PORT|app|0" "and resumes the pooler on the source"
is "$(migration_phase)" following "phase following"
is "$(q target "SELECT pooler_hold IS NULL FROM ferry.migration")" t "the hold record is gone"
source_writable; is $? 0 "the source takes writes"

# --- 3. killed after the repoint, before the resume ---------------------------------
FERRY_FAULT=switchover.after-repoint "${F[@]}" switchover --yes --max-lag 5 "${PGBOPT[@]}" >"$TEST_TMP/sw3.out" 2>"$TEST_TMP/sw3.err"
is $? 137 "killed after the repoint"
is "$(pgb_entry pgb)" "$TARGET_SOCK|$TARGET_PORT|app|1" "the entry points at the target, still paused"
"${F[@]}" switchover --yes "${PGBOPT[@]}" >"$TEST_TMP/sw4.out" 2>"$TEST_TMP/sw4.err"
rc=$?; is $rc 0 "the rerun finishes the switch forward"; [ $rc = 0 ] || diag "$(tail -15 "$TEST_TMP/sw4.err")"
is "$(pgb_entry pgb)" "$TARGET_SOCK|$TARGET_PORT|app|0" "and resumes the pooler on the target"
is "$(migration_phase)" switched "phase switched"

wait "$AP"
app=$(cat "$TEST_TMP/app.out")
diag "application: $app"
like "$app" "failed=0 " "the application saw no error through the three"
sort "$TEST_TMP/acked" >"$TEST_TMP/acked.s"
order_ids target >"$TEST_TMP/tgt_ids"
is "$(comm -23 "$TEST_TMP/acked.s" "$TEST_TMP/tgt_ids" | wc -l)" 0 "every acknowledged write is on the target"
is "$(q target "SELECT count(*) - count(DISTINCT id) FROM orders")" 0 "exactly once"
is "$(comm -23 <(order_ids source) "$TEST_TMP/tgt_ids" | wc -l)" 0 "nothing committed on the source is missing on the target"
# --- 4. a request that fails while held is counted ------------------------------
# PgBouncer disconnects a client queued longer than query_wait_timeout (1 s
# here) with an error; the rollback hook holds the pause for 3 s
cat >"$TEST_TMP/slow.yaml" <<YAML
hooks:
  rollback: "sleep 3"
YAML
# (in the file: the repoint's RELOAD would undo a SET on the admin console)
sed -i 's/^\[pgbouncer\]$/[pgbouncer]\nquery_wait_timeout = 1/' "$PGB_INI"
pgb q pgb "RELOAD" >/dev/null
( for _ in $(seq 1 1000); do [ "$(pgb_entry pgb | cut -d'|' -f4)" = 1 ] && break; sleep 0.01; done
  "$PGBIN/psql" -XAtq -h 127.0.0.1 -p "$PGB_PORT" -U app_rw app -c "INSERT INTO orders VALUES (-2, 'held too long')" ) >"$TEST_TMP/late4" 2>&1 &
GP=$!
"${F[@]}" --config "$TEST_TMP/slow.yaml" --json rollback --yes --max-lag 5 "${PGBOPT[@]}" >"$TEST_TMP/rb4.json" 2>"$TEST_TMP/rb4.err"
rc=$?; is $rc 0 "a rollback with a slow hook exits 0"; [ $rc = 0 ] || diag "$(tail -15 "$TEST_TMP/rb4.err")"
wait "$GP"; isnt $? 0 "a client queued longer than query_wait_timeout gets an error"
like "$(cat "$TEST_TMP/late4")" "query_wait_timeout" "PgBouncer's"
like "$(cat "$TEST_TMP/rb4.err")" "query_wait_timeout is 1 s: a client held longer gets an error" "ferry warned about it before anything was frozen"
is "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pgbouncer"]["failed_requests"])' "$TEST_TMP/rb4.json")" 1 \
   "the report counts the failed request"
like "$(cat "$TEST_TMP/rb4.err")" "1 requests failed while app was held" "and the log says so"
is "$(q source "SELECT count(*) FROM orders WHERE id = -2")" 0 "its write is nowhere (it never reached a server)"
is "$(pgb_entry pgb)" "$SOURCE_SOCK|$SOURCE_PORT|app|0" "the pooler points at the source, resumed"

kill -TERM "$FP" 2>/dev/null; wait "$FP" 2>/dev/null
unlike "$(cat "$TEST_TMP/err" "$TEST_TMP"/sw[14].err "$TEST_TMP/rb2.err" "$TEST_TMP/rb4.err")" "runtime error|LeakSanitizer" "no sanitizer reports"
done_testing
