#!/usr/bin/env bash
# ferry status tells the truth (issue 13): "running" means a ferry process
# holds the migration's lock now (it said running for 30 s after ferry
# start was killed: a heartbeat's guess), and the error that stops apply is
# shown, not only a rising lag; it goes once changes flow again.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
start_following
like "$("${F[@]}" status 2>&1)" "following \(ferry start is running\)" "status: running while ferry start runs"
kill -KILL "$FP"; wait "$FP" 2>/dev/null
for _ in $(seq 1 30); do
  "${F[@]}" status 2>&1 | grep -q "no ferry process drives it" && break; sleep 0.1
done
like "$("${F[@]}" status 2>&1)" "following \(no ferry process drives it\)" "within 3 s of kill -9, not running"
is "$("${F[@]}" --json status 2>/dev/null | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["running"])')" False "--json running false"

# a schema difference stops apply: status names it
q target "ALTER TABLE kv RENAME COLUMN v TO v_renamed" >/dev/null
ferry_start --jobs 2
q source "UPDATE kv SET v = 'changed' WHERE id = 1" >/dev/null
for _ in $(seq 1 100); do
  "${F[@]}" status 2>&1 | grep -q "^  error " && break; sleep 0.2
done
st=$("${F[@]}" status 2>&1)
like "$st" "  error    .*v.*\(since .*; ferry start retries\)" "status shows the apply error"
like "$st" "ferry start is running" "while ferry start runs"
like "$("${F[@]}" --json status 2>/dev/null | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["last_error"])')" "v" "--json last_error"
q target "ALTER TABLE kv RENAME COLUMN v_renamed TO v" >/dev/null
for _ in $(seq 1 200); do
  [ "$(q target "SELECT v FROM kv WHERE id = 1")" = changed ] && break; sleep 0.2
done
is "$(q target "SELECT v FROM kv WHERE id = 1")" changed "apply carries on once the target is fixed"
pgload 2 1 "$SQL/load/mixed.sql" >/dev/null 2>&1
for _ in $(seq 1 150); do
  "${F[@]}" status 2>&1 | grep -q "^  error " || break; sleep 0.2
done
unlike "$("${F[@]}" status 2>&1)" "^  error " "the error is gone once changes flow again"
stop_cleanly
done_testing
