#!/usr/bin/env bash
# ferry start --metrics-listen: the Prometheus endpoint scraped over
# loopback shows real values (phase, rows copied per table equal to the
# tables' row counts, changes applied growing with writes on the source,
# lag, retained WAL); other paths are 404; a port in use is a one-line
# error with exit 2 before any work. Also --log-format json: every log line
# is one JSON object. No password appears in the metrics or the logs.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

pg_start source
pg_start target
q source "CREATE TABLE small (id int PRIMARY KEY, v text);
          CREATE TABLE big (id bigint PRIMARY KEY, v text);
          CREATE TABLE \"we\"\"ird\" (id int PRIMARY KEY);
          INSERT INTO small SELECT g, 'v' FROM generate_series(1, 1234) g;
          INSERT INTO big SELECT g, repeat('x', 100) FROM generate_series(1, 54321) g;
          INSERT INTO \"we\"\"ird\" SELECT g FROM generate_series(1, 7) g;"

MPORT=$(free_port) || bail "no free port"
# trust authentication ignores the password: it is here to prove it leaks nowhere
SRC="$SOURCE_CONN password=Sekr1tPw"
scrape() { curl -s --max-time 5 "http://127.0.0.1:$MPORT${1:-/metrics}"; }
# metric 'name{labels}' from the last scrape in $M
metric() { printf '%s\n' "$M" | grep -F "$1 " | awk '{print $NF}'; }

"$FERRY" --source "$SRC" --target "$TARGET_CONN" --log-format json start --jobs 2 \
  --metrics-listen "127.0.0.1:$MPORT" >"$TEST_TMP/out" 2>"$TEST_TMP/err" &
FP=$!

for _ in $(seq 1 300); do
  M=$(scrape)
  # following, and the follower has published its first figures (position, retained WAL)
  [ "$(metric 'ferry_phase{migration="ferry",phase="following"}')" = 1 ] \
    && [ -n "$(metric 'ferry_applied_lsn{migration="ferry"}' | grep -E '^[1-9]')" ] \
    && [ -n "$(metric 'ferry_source_wal_retained_bytes{migration="ferry"}')" ] && break
  sleep 0.2
done
is "$(metric 'ferry_phase{migration="ferry",phase="following"}')" 1 "ferry_phase shows following once streaming"
is "$(metric 'ferry_phase{migration="ferry",phase="copying"}')" 0 "and 0 for the other phases"

hdr=$(curl -s -D - -o /dev/null --max-time 5 "http://127.0.0.1:$MPORT/metrics")
like "$hdr" "^HTTP/1.1 200" "GET /metrics is 200"
like "$hdr" "Content-Type: text/plain; version=0.0.4" "with the Prometheus text content type"
is "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$MPORT/")" 404 "any other path is 404"
is "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST "http://127.0.0.1:$MPORT/metrics")" 405 "POST is refused"

is "$(metric 'ferry_table_rows_copied_total{migration="ferry",table="public.small"}')" "$(q source 'SELECT count(*) FROM small')" \
   "rows copied for public.small equal its row count"
is "$(metric 'ferry_table_rows_copied_total{migration="ferry",table="public.big"}')" "$(q source 'SELECT count(*) FROM big')" \
   "rows copied for public.big equal its row count"
is "$(metric 'ferry_table_rows_copied_total{migration="ferry",table="public.we\"ird"}')" 7 \
   "a table name with a quote is an escaped label value"
big_bytes=$(metric 'ferry_table_bytes_copied_total{migration="ferry",table="public.big"}')
ok "$([ "${big_bytes:-0}" -gt 5000000 ]; echo $?)" "bytes copied for public.big are counted ($big_bytes)"
like "$M" "# HELP ferry_lag_bytes .+" "metrics have HELP lines"
like "$M" "# TYPE ferry_changes_applied_total counter" "and TYPE lines"
like "$(metric 'ferry_source_wal_retained_bytes{migration="ferry"}')" "^[0-9]+$" "the WAL the slot retains on the source"
like "$(metric 'ferry_applied_lsn{migration="ferry"}')" "^[1-9][0-9]*$" "the applied position"

before=$(metric 'ferry_changes_applied_total{migration="ferry"}')
q source "INSERT INTO small SELECT g, 'new' FROM generate_series(10001, 10500) g; UPDATE small SET v = 'u' WHERE id <= 100"
wait_applied ferry 60
ok $? "the writes are applied"
# the coordinator publishes the totals every 100 ms
sleep 0.5
M=$(scrape)
after=$(metric 'ferry_changes_applied_total{migration="ferry"}')
ok "$([ $((after - before)) -ge 600 ]; echo $?)" "ferry_changes_applied_total grows by the 600 changes written ($before -> $after)"
like "$(metric 'ferry_transactions_applied_total{migration="ferry"}')" "^[1-9][0-9]*$" "transactions applied are counted"
lagb=$(metric 'ferry_lag_bytes{migration="ferry"}')
like "$lagb" "^[0-9]+$" "lag in bytes present ($lagb)"
lags=$(metric 'ferry_lag_seconds{migration="ferry"}')
like "$lags" "^[0-9]+\.[0-9]+$" "lag in seconds present ($lags)"
ok "$(python3 -c "import sys; sys.exit(0 if float('$lags') < 30 else 1)"; echo $?)" "and small once caught up"
is "$(metric 'ferry_errors_total{migration="ferry"}')" 0 "no errors counted"
is "$(metric 'ferry_reconnects_total{migration="ferry"}')" 0 "no reconnects counted"
# the rate is computed every 10 s
for _ in $(seq 1 60); do
  M=$(scrape); [ -n "$(metric 'ferry_apply_changes_per_second{migration="ferry"}')" ] && break; sleep 0.5
done
like "$(metric 'ferry_apply_changes_per_second{migration="ferry"}')" "^[0-9]+\.[0-9]+$" "the apply rate in changes per second"
like "$(metric 'ferry_apply_transactions_per_second{migration="ferry"}')" "^[0-9]+\.[0-9]+$" "and in transactions per second"
unlike "$M" "Sekr1tPw" "no password in the metrics"

# a second ferry on the same port: one line with the fix, exit 2, nothing done
slots=$(slot_count source)
"$FERRY" --source "$SRC" --target "$TARGET_CONN" --name other start --metrics-listen ":$MPORT" >"$TEST_TMP/out2" 2>"$TEST_TMP/err2"
is "$?" 2 "a port in use exits 2"
like "$(cat "$TEST_TMP/err2")" "ERROR: could not listen on 127.0.0.1 port $MPORT for --metrics-listen: Address already in use\. Fix: " \
   "one error line naming the address, the reason and the fix"
is "$(wc -l <"$TEST_TMP/err2")" 1 "and only that line"
is "$(slot_count source)" "$slots" "no slot was created for it: it failed before any work"
"$FERRY" --source "$SRC" --target "$TARGET_CONN" --name other start --metrics-listen "127.0.0.1:http" >/dev/null 2>"$TEST_TMP/err3"
is "$?" 2 "a bad --metrics-listen exits 2"
like "$(cat "$TEST_TMP/err3")" "invalid --metrics-listen \"127.0.0.1:http\": the port must be a number" "saying what is wrong"

kill -TERM "$FP"; wait "$FP"; rc=$?
is "$rc" 0 "SIGTERM stops ferry start with exit 0"
is "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$MPORT/metrics")" 000 "the endpoint is gone after the stop"

# --log-format json: every line an object with ts, level, role, msg
python3 - "$TEST_TMP/err" >"$TEST_TMP/jsoncheck" 2>&1 <<'PY'
import json, re, sys
n = 0
for line in open(sys.argv[1], encoding="utf-8"):
    d = json.loads(line)
    assert set(["ts", "level", "role", "pid", "msg"]) <= set(d), line
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", d["ts"]), d["ts"]
    assert d["level"] in ("debug", "info", "notice", "warning", "error"), d["level"]
    n += 1
assert n >= 5, n
print("ok", n)
PY
like "$(cat "$TEST_TMP/jsoncheck")" "^ok [0-9]+$" "--log-format json: every stderr line is a JSON object with ts, level, role, pid, msg"
like "$(cat "$TEST_TMP/err")" '"role":"coordinator","pid":[0-9]+,"msg":"serving metrics at http://127.0.0.1:'"$MPORT"'/metrics"' \
   "the endpoint's address is logged"
like "$(cat "$TEST_TMP/err")" '"role":"apply","pid":[0-9]+,"msg":"streaming changes from slot ferry' "other threads log with their own role"
unlike "$(cat "$TEST_TMP/err")" "Sekr1tPw|runtime error|LeakSanitizer" "no password and no sanitizer reports in the logs"
done_testing
