#!/usr/bin/env bash
# The PgBouncer switchover in session pooling (issue 16). There PAUSE waits
# until each client disconnects, so it fits an application that connects
# per request (PHP-style); a client that keeps its session makes the PAUSE
# time out, named, and nothing changes. Then an application (psycopg2, 6
# threads, a connection per request) writes at a steady rate during the
# switchover: zero failed requests, every acknowledged write on the target
# exactly once, the longest stall printed.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"
. "$(dirname "$0")/../lib/pgbouncer.sh"

APP="/usr/bin/python3 $(dirname "$0")/../lib/pooler_app.py"
follow_servers
for side in source target; do q "$side" "CREATE ROLE app_rw LOGIN" >/dev/null; done
q source "CREATE TABLE orders (id bigint PRIMARY KEY, writer text NOT NULL, at timestamptz NOT NULL DEFAULT now());
          GRANT SELECT, INSERT ON orders TO app_rw" >/dev/null
pgb_start pgb source session
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
cat >"$TEST_TMP/ferry.yaml" <<YAML
pgbouncer:
  admin: "$PGB_ADMIN"
  database: app
  ini: $PGB_INI
pause-timeout: 2
YAML
"${F[@]}" start --jobs 2 >>"$TEST_TMP/out" 2>>"$TEST_TMP/err" &
FP=$!
wait_following; ok $? "ferry start follows"

# a session that stays connected (idle, no transaction) holds a session-mode PAUSE
printf "SELECT 1;\n\\\\! sleep 6\n" | PGAPPNAME=stayer "$PGBIN/psql" -XAtq -h 127.0.0.1 -p "$PGB_PORT" -U app_rw app >/dev/null 2>&1 &
SP=$!
sleep 0.5
"${F[@]}" --config "$TEST_TMP/ferry.yaml" switchover --yes --max-lag 5 >"$TEST_TMP/sw1.out" 2>"$TEST_TMP/sw1.err"
is $? 1 "a session that stays connected: the PAUSE times out, exit 1"
like "$(cat "$TEST_TMP/sw1.err")" "application_name \"stayer\".*pid [0-9]+ is idle .*in session pooling PAUSE waits until each client disconnects" \
     "the session is named, with why"
is "$(pgb_entry pgb)" "$SOURCE_SOCK|$SOURCE_PORT|app|0" "the pooler is resumed on the source"
is "$(migration_phase)" following "nothing was frozen"
wait "$SP"

$APP "$PGB_APP" "$TEST_TMP/acked" 10 6 20 per-request >"$TEST_TMP/app.out" 2>"$TEST_TMP/app.err" &
AP=$!
sleep 3
"${F[@]}" --config "$TEST_TMP/ferry.yaml" switchover --yes --max-lag 5 >"$TEST_TMP/sw.out" 2>"$TEST_TMP/sw.err"
rc=$?; is $rc 0 "switchover through PgBouncer in session pooling exits 0"; [ $rc = 0 ] || diag "$(tail -20 "$TEST_TMP/sw.err")"
wait "$AP"
app=$(cat "$TEST_TMP/app.out")
diag "application (a connection per request): $app"
diag "ferry: $(grep -E 'clients held|held requests|write downtime' "$TEST_TMP/sw.out" | tr -s ' ' | tr '\n' ';')"
like "$app" "failed=0 " "zero failed requests"
acked=$(sed -n 's/.*acked=\([0-9]*\).*/\1/p' <<<"$app")
ok "$([ "${acked:-0}" -gt 500 ]; echo $?)" "the application kept writing ($acked acknowledged writes)"
sort "$TEST_TMP/acked" >"$TEST_TMP/acked.s"
order_ids target >"$TEST_TMP/tgt_ids"
is "$(comm -23 "$TEST_TMP/acked.s" "$TEST_TMP/tgt_ids" | wc -l)" 0 "every acknowledged write is on the target"
is "$(q target "SELECT count(*) - count(DISTINCT id) FROM orders")" 0 "exactly once"
is "$(comm -23 <(order_ids source) "$TEST_TMP/tgt_ids" | wc -l)" 0 "nothing committed on the source is missing on the target"
is "$(pgb_entry pgb)" "$TARGET_SOCK|$TARGET_PORT|app|0" "the entry points at the target, resumed"
like "$(cat "$TEST_TMP/sw.err")" "entry app \(session pooling\)" "ferry saw the session pooling"
kill -TERM "$FP" 2>/dev/null; wait "$FP" 2>/dev/null
unlike "$(cat "$TEST_TMP/err" "$TEST_TMP/sw.err" "$TEST_TMP/sw1.err")" "runtime error|LeakSanitizer" "no sanitizer reports"
done_testing
