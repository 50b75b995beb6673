#!/usr/bin/env bash
# ferry as a service: contrib/ferry@.service passes systemd-analyze verify;
# logs carry syslog priorities when stderr is the journal; SIGHUP makes
# ferry start re-read --config (log level and format change live, a broken
# file is reported and the old settings kept, ferry keeps running); status
# --watch repeats plain reports off a terminal and draws frames in place on
# one, and exits 0 on SIGINT.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"

# --- the systemd unit ---------------------------------------------------
# verify fails on an ExecStart binary that does not exist, so it checks a
# copy whose ExecStart is the binary under test; --man=no because the
# ferry(1) the unit names is only there after make install.
mkdir -p "$TEST_TMP/unit"
sed "s|^ExecStart=/usr/local/bin/ferry |ExecStart=$FERRY |" "$ROOT/contrib/ferry@.service" >"$TEST_TMP/unit/ferry@.service"
grep -q "^ExecStart=$FERRY start --config /etc/ferry/%i.yaml --name %i$" "$TEST_TMP/unit/ferry@.service"
ok $? "the unit runs ferry start --config /etc/ferry/%i.yaml --name %i"
cp "$TEST_TMP/unit/ferry@.service" "$TEST_TMP/unit/ferry@app.service"
out=$(cd "$TEST_TMP/unit" && systemd-analyze verify --man=no ferry@.service ferry@app.service 2>&1); rc=$?
is "$rc:$out" "0:" "systemd-analyze verify: the template and an instance pass with no warning"
# verify only warns (exit 0) about unknown keys: make sure a warning would be seen
sed 's/^ProtectSystem=/ProtectSytem=/' "$TEST_TMP/unit/ferry@.service" >"$TEST_TMP/unit/typo@.service"
like "$(cd "$TEST_TMP/unit" && systemd-analyze verify --man=no typo@.service 2>&1)" "Unknown key 'ProtectSytem'" \
   "(a typo in the unit would be reported)"
unit="$ROOT/contrib/ferry@.service"
for want in '^Restart=on-failure$' '^RestartSec=' '^RestartPreventExitStatus=2$' '^KillSignal=SIGTERM$' \
            '^ExecReload=/bin/kill -HUP \$MAINPID$' '^User=ferry$' '^EnvironmentFile=-/etc/ferry/%i.env$' \
            '^NoNewPrivileges=yes$' '^ProtectSystem=strict$' '^PrivateTmp=yes$'; do
  grep -Eq "$want" "$unit"; ok $? "the unit has $want"
done
unlike "$(grep -E '^Exec' "$unit")" "password|FERRY_SOURCE|FERRY_TARGET" "no secret on the command line"
sec=$(cd "$TEST_TMP/unit" && systemd-analyze security --offline=true --root=/ ferry@app.service 2>&1 | grep -o 'Overall exposure level for ferry@app.service: [0-9.]*')
ok "$(python3 -c "import sys; sys.exit(0 if float('${sec##* }' or 99) <= 2.5 else 1)"; echo $?)" \
   "systemd-analyze security rates the sandbox well ($sec)"

# --- usage errors of the new options: exit 2 ----------------------------
"$FERRY" --log-format xml status >/dev/null 2>"$TEST_TMP/u1"
is "$?" 2 "--log-format xml is a usage error (exit 2)"
like "$(cat "$TEST_TMP/u1")" 'log-format must be text or json, not "xml"' "saying the choices"
"$FERRY" status --watch --interval 0 >/dev/null 2>&1
is "$?" 2 "--interval 0 is a usage error"
printf 'log-format: yaml\n' >"$TEST_TMP/bad.yaml"
"$FERRY" --config "$TEST_TMP/bad.yaml" status >/dev/null 2>"$TEST_TMP/u2"
is "$?" 2 "log-format: yaml in the config file is a configuration error"
like "$(cat "$TEST_TMP/u2")" 'config key "log-format" must be text or json, not "yaml" \(line 1\)' "naming key, value and line"

# --- journald priorities ------------------------------------------------
# systemd names the journal stream in JOURNAL_STREAM=<dev>:<inode>; ferry
# prefixes priorities only when stderr is that stream.
"$FERRY" --source "host=$TEST_TMP port=1 dbname=x" --target "host=$TEST_TMP port=1 dbname=x" status 2>"$TEST_TMP/j1"
js=$(stat -c '%d:%i' "$TEST_TMP/j1")
JOURNAL_STREAM=$js "$FERRY" --source "host=$TEST_TMP port=1 dbname=x" --target "host=$TEST_TMP port=1 dbname=x" status 2>"$TEST_TMP/j1"
like "$(head -1 "$TEST_TMP/j1")" '^<3>coordinator ERROR: could not connect to the target' "under the journal: <3> for an error, no time or pid of our own"
JOURNAL_STREAM=$js "$FERRY" --log-format json --source "host=$TEST_TMP port=1 dbname=x" --target "host=$TEST_TMP port=1 dbname=x" status 2>"$TEST_TMP/j1"
like "$(head -1 "$TEST_TMP/j1")" '^<3>\{"ts":"[0-9T:.-]+Z","level":"error",' "json under the journal: the priority, then the object"
JOURNAL_STREAM=1:1 "$FERRY" --source "host=$TEST_TMP port=1 dbname=x" --target "host=$TEST_TMP port=1 dbname=x" status 2>"$TEST_TMP/j2"
like "$(head -1 "$TEST_TMP/j2")" '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:.]+ UTC \[[0-9]+\] coordinator ERROR: ' \
   "JOURNAL_STREAM naming another stream (inherited): the plain format"

# --- SIGHUP -------------------------------------------------------------
pg_start source
pg_start target
q source "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' FROM generate_series(1, 500) g;"
CONF="$TEST_TMP/ferry.yaml"
printf 'source: "%s"\ntarget: "%s"\nname: svc\nverbose: false\n' "$SOURCE_CONN" "$TARGET_CONN" >"$CONF"
"$FERRY" --config "$CONF" start >"$TEST_TMP/out" 2>"$TEST_TMP/err" &
FP=$!
until [ "$(q target "SELECT phase FROM ferry.migration" 2>/dev/null)" = following ]; do sleep 0.2; done
sleep 2
unlike "$(cat "$TEST_TMP/err")" " DEBUG: " "no debug lines at first (verbose: false)"

printf 'source: "%s"\ntarget: "%s"\nname: svc\nverbose: true\n' "$SOURCE_CONN" "$TARGET_CONN" >"$CONF"
kill -HUP "$FP"
for _ in $(seq 1 50); do grep -q "SIGHUP: reloaded" "$TEST_TMP/err" && break; sleep 0.1; done
like "$(cat "$TEST_TMP/err")" "reload INFO: SIGHUP: reloaded $CONF: verbose false -> true$" "SIGHUP: one line saying what was reloaded"
q source "INSERT INTO t VALUES (1001, 'after reload')"
wait_applied svc 30
sleep 1.5
like "$(cat "$TEST_TMP/err")" "apply DEBUG: committed [0-9]+ source transactions" "debug lines appear after the reload"

# a broken file: an error line, the old settings stay, ferry keeps running
printf 'source: [unclosed\n' >"$CONF"
kill -HUP "$FP"
for _ in $(seq 1 50); do grep -q "could not reload" "$TEST_TMP/err" && break; sleep 0.1; done
like "$(cat "$TEST_TMP/err")" "reload ERROR: SIGHUP: could not reload $CONF: invalid YAML.*keeping the current settings" \
   "a broken file on reload: one error line, the settings kept"
printf 'source: "%s"\nname: svc\nverbos: true\n' "$SOURCE_CONN" >"$CONF"
kill -HUP "$FP"
for _ in $(seq 1 50); do grep -q 'unknown key "verbos"' "$TEST_TMP/err" && break; sleep 0.1; done
like "$(cat "$TEST_TMP/err")" 'could not reload .*unknown key "verbos"' "an unknown key on reload is refused too"
sleep 0.5
kill -0 "$FP" 2>/dev/null
ok $? "ferry start is still running"
q source "INSERT INTO t VALUES (1002, 'still applied')"
wait_applied svc 30
ok $? "and still applying changes"
lines_before=$(wc -l <"$TEST_TMP/err")
sleep 1.5
like "$(tail -n +$((lines_before + 1)) "$TEST_TMP/err")" " DEBUG: " "the old level (debug) is kept"
unlike "$(cat "$TEST_TMP/err")" "runtime error|LeakSanitizer" "no sanitizer reports"

# log-format live: from text to json
printf 'source: "%s"\ntarget: "%s"\nname: svc\nverbose: true\nlog-format: json\n' "$SOURCE_CONN" "$TARGET_CONN" >"$CONF"
kill -HUP "$FP"
for _ in $(seq 1 50); do grep -q 'log-format text -> json' "$TEST_TMP/err" && break; sleep 0.1; done
like "$(cat "$TEST_TMP/err")" '"role":"reload","pid":[0-9]+,"msg":"SIGHUP: reloaded .*: log-format text -> json"' \
   "log-format changes live: the reload line is already JSON"

# --- status --watch -----------------------------------------------------
ST=(--source "$SOURCE_CONN" --target "$TARGET_CONN" --name svc)
timeout --preserve-status -s INT 3.5 "$FERRY" "${ST[@]}" status --watch --interval 1 >"$TEST_TMP/w1" 2>"$TEST_TMP/w1e"
is "$?" 0 "status --watch exits 0 on SIGINT"
n=$(grep -c '^ferry status at [0-9-]* [0-9:]* UTC, every 1 s$' "$TEST_TMP/w1")
ok "$([ "$n" -ge 3 ] && [ "$n" -le 5 ]; echo $?)" "off a terminal: one report per interval ($n in 3.5 s)"
is "$(grep -c '^migration svc: following (ferry start is running)$' "$TEST_TMP/w1")" "$n" "each a full report"
is "$(grep -c $'\033' "$TEST_TMP/w1")" 0 "with no escape codes"
like "$(cat "$TEST_TMP/w1")" "public\.t +yes +502 +[0-9?]+ +[0-9?]+\$" "per-table copy state, ferry's row count and the statistics"
is "$(cat "$TEST_TMP/w1e")" "" "nothing on stderr"

timeout --preserve-status -s INT 2.5 "$FERRY" "${ST[@]}" --json status --watch --interval 1 >"$TEST_TMP/w2" 2>/dev/null
is "$?" 0 "status --watch --json exits 0 on SIGINT"
is "$(python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(len(rows) >= 2, all(r["phase"] == "following" and r["tables"][0]["rows"] == 502 for r in rows))' "$TEST_TMP/w2")" "True True" \
   "--json --watch: one JSON object per line per interval"

# on a terminal (script(1) gives a pty): frames drawn in place, cursor hidden and restored
script -qfec "stty cols 80 rows 30; timeout --preserve-status -s INT 2.5 $FERRY --source '$SOURCE_CONN' --target '$TARGET_CONN' --name svc status --watch --interval 1" \
  "$TEST_TMP/typescript" >"$TEST_TMP/w3" 2>&1
is "$?" 0 "on a terminal, too, SIGINT exits 0"
tty_out=$(cat "$TEST_TMP/w3")
like "$tty_out" $'^\033\\[\\?25l\033\\[H\033\\[2J' "the screen is cleared once and the cursor hidden"
ok "$([ "$(grep -o $'\033\\[H' <<<"$tty_out" | wc -l)" -ge 3 ]; echo $?)" "each frame starts at the home position"
like "$tty_out" $'migration svc: following \\(ferry start is running\\)\033\\[K' "each line is cleared to its end"
like "$tty_out" $'\033\\[J' "and the rest of the screen below the frame"
like "$tty_out" "rows/s" "the live view adds rows per second"
like "$tty_out" $'\033\\[\\?25h$' "the cursor is restored at the end"
unlike "$(tr -d '\r' <"$TEST_TMP/w3" | awk 'length > 89')" "." "lines are cut to the terminal width"

kill -TERM "$FP"; wait "$FP"
is "$?" 0 "SIGTERM stops ferry start with exit 0"
done_testing
