#!/usr/bin/env bash
# A cut-over the application does not notice (issue 16): an application
# (psycopg2, 6 threads, persistent connections) writes through a real
# PgBouncer in transaction pooling at a steady rate while `ferry switchover
# --pgbouncer` pauses it, freezes and drains the source, repoints the entry
# in its ini file, RELOADs and RESUMEs it: zero failed requests, every
# acknowledged write on the target exactly once, the longest stall printed.
# Then `ferry rollback` the same way back, under the same load.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"
. "$(dirname "$0")/../lib/pgbouncer.sh"

APP="/usr/bin/python3 $(dirname "$0")/../lib/pooler_app.py"
follow_servers
for side in source target; do q "$side" "CREATE ROLE app_rw LOGIN" >/dev/null; done
q source "CREATE TABLE orders (id bigint PRIMARY KEY, writer text NOT NULL, at timestamptz NOT NULL DEFAULT now());
          GRANT SELECT, INSERT ON orders TO app_rw" >/dev/null
pgb_start pgb source transaction
cp "$PGB_INI" "$TEST_TMP/ini.before"
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
# a password in the admin conninfo (trust ignores it): never in logs, reports or ps
PGBOPT=(--pgbouncer "$PGB_ADMIN password=hunter2pgb" --pgbouncer-ini "$PGB_INI")
"${F[@]}" start --jobs 2 >>"$TEST_TMP/out" 2>>"$TEST_TMP/err" &
FP=$!
wait_following; ok $? "ferry start follows"

# precondition failures change nothing: a wrong entry name
"${F[@]}" switchover --yes "${PGBOPT[@]}" --pgbouncer-database nosuch >"$TEST_TMP/bad.out" 2>"$TEST_TMP/bad.err"
is $? 1 "an unknown PgBouncer entry: exit 1"
like "$(cat "$TEST_TMP/bad.err")" "has no database entry nosuch. Fix:" "named, with the fix"
is "$(migration_phase)" following "nothing was frozen"

$APP "$PGB_APP" "$TEST_TMP/acked1" 10 6 40 persistent >"$TEST_TMP/app1.out" 2>"$TEST_TMP/app1.err" &
AP=$!
sleep 3
"${F[@]}" switchover --yes --max-lag 5 "${PGBOPT[@]}" >"$TEST_TMP/sw.out" 2>"$TEST_TMP/sw.err" &
SWP=$!
# its command line as ps shows it once it logs (main.c blanks secrets while parsing, before that)
for _ in $(seq 1 500); do grep -q "step 1/10" "$TEST_TMP/sw.err" 2>/dev/null && break; sleep 0.01; done
tr '\0' ' ' <"/proc/$SWP/cmdline" >"$TEST_TMP/ps.log" 2>/dev/null
wait "$SWP"; rc=$?; is $rc 0 "switchover through PgBouncer exits 0"; [ $rc = 0 ] || diag "$(tail -20 "$TEST_TMP/sw.err")"
wait "$AP"
app=$(cat "$TEST_TMP/app1.out")
diag "application during the switchover: $app"
diag "ferry: $(grep -E 'clients held|held requests|write downtime' "$TEST_TMP/sw.out" | tr -s ' ' | tr '\n' ';')"
like "$app" "failed=0 " "zero failed requests through the switchover"
acked=$(sed -n 's/.*acked=\([0-9]*\).*/\1/p' <<<"$app")
ok "$([ "${acked:-0}" -gt 1000 ]; echo $?)" "the application kept writing ($acked acknowledged writes)"
stall=$(sed -n 's/.*max_latency=\([0-9.]*\).*/\1/p' <<<"$app")
ok "$(awk -v s="$stall" 'BEGIN { exit !(s > 0 && s < 5) }'; echo $?)" "the longest client-observed stall: $stall s"
sort "$TEST_TMP/acked1" >"$TEST_TMP/acked1.s"
order_ids target >"$TEST_TMP/tgt_ids"
is "$(comm -23 "$TEST_TMP/acked1.s" "$TEST_TMP/tgt_ids" | wc -l)" 0 "every acknowledged write is on the target"
is "$(q target "SELECT count(*) - count(DISTINCT id) FROM orders")" 0 "exactly once"
is "$(comm -23 <(order_ids source) "$TEST_TMP/tgt_ids" | wc -l)" 0 "nothing committed on the source is missing on the target"
# (where the writes after the switch went is the entry's address below and the frozen source's refusal of a
# direct client; the source's row count proves nothing: reverse replication brings them back to it)
is "$(pgb_entry pgb)" "$TARGET_SOCK|$TARGET_PORT|app|0" "the entry points at the target, resumed"
is "$(diff "$TEST_TMP/ini.before" "$PGB_INI" | grep -c '^[<>]')" 2 "one line of the ini file changed"
like "$(grep '^app = ' "$PGB_INI")" "^app = host=$TARGET_SOCK port=$TARGET_PORT dbname=app$" "the entry reads host, port, dbname of the target"
like "$(cat "$TEST_TMP/sw.out")" "clients held +[0-9.]+ s in 1 PgBouncer" "the report says how long clients were held"
like "$(cat "$TEST_TMP/sw.out")" "held requests +[0-9]+ waiting at the resume, 0 seen failing" "and that no request was seen failing"
like "$(cat "$TEST_TMP/sw.err")" "paused app in [0-9.]+ s" "ferry logs the pause"
out=$(q source "INSERT INTO orders VALUES (1, 'direct')" 2>&1)
like "$out" "read-only transaction" "a client bypassing the pooler cannot write on the old source"
is "$(q target "SELECT pooler_hold IS NULL FROM ferry.migration")" t "no hold left in the state"
like "$(cat "$TEST_TMP/ps.log")" "--pgbouncer host=127.0.0.1" "ps showed the switchover's command line"
unlike "$(cat "$TEST_TMP/sw.out" "$TEST_TMP/sw.err" "$TEST_TMP/err" "$TEST_TMP/ps.log")" "hunter2pgb" "the admin password is in no log, report or command line"

# the same way back, under load
$APP "$PGB_APP" "$TEST_TMP/acked2" 8 6 40 persistent 500000000 >"$TEST_TMP/app2.out" 2>"$TEST_TMP/app2.err" &
AP=$!
sleep 2.5
"${F[@]}" --json rollback --yes --max-lag 5 "${PGBOPT[@]}" >"$TEST_TMP/rb.json" 2>"$TEST_TMP/rb.err"
rc=$?; is $rc 0 "rollback through PgBouncer exits 0"; [ $rc = 0 ] || diag "$(tail -20 "$TEST_TMP/rb.err")"
wait "$AP"
app=$(cat "$TEST_TMP/app2.out")
diag "application during the rollback: $app"
like "$app" "failed=0 " "zero failed requests through the rollback"
sort "$TEST_TMP/acked2" >"$TEST_TMP/acked2.s"
order_ids source >"$TEST_TMP/src_ids"
is "$(comm -23 "$TEST_TMP/acked1.s" "$TEST_TMP/src_ids" | wc -l) $(comm -23 "$TEST_TMP/acked2.s" "$TEST_TMP/src_ids" | wc -l)" "0 0" \
   "every acknowledged write of both runs is on the source again"
is "$(q source "SELECT count(*) - count(DISTINCT id) FROM orders")" 0 "exactly once"
is "$(pgb_entry pgb)" "$SOURCE_SOCK|$SOURCE_PORT|app|0" "the entry points at the source again, resumed"
is "$(python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["pgbouncer"]; print(p["poolers"], p["failed_requests"], p["held_seconds"] > 0, p["drained"])' "$TEST_TMP/rb.json")" \
   "1 0 True True" "rollback --json reports the hold"
grep -q "^other = host=$SOURCE_SOCK port=$SOURCE_PORT dbname=postgres pool_size=2$" "$PGB_INI"; ok $? "the other entry is untouched"
kill -TERM "$FP" 2>/dev/null; wait "$FP" 2>/dev/null
unlike "$(cat "$TEST_TMP/err" "$TEST_TMP/sw.err" "$TEST_TMP/rb.err" "$TEST_TMP/bad.err")" "runtime error|LeakSanitizer" "no sanitizer reports"
done_testing
