#!/usr/bin/env bash
# ferry status reads no user table (issue 15): polled every few seconds on a
# terabyte source, a count(*) of every table on both servers is a full read
# of the database each time. The rows it shows are ferry's own count (rows
# copied, plus rows inserted minus rows deleted by apply, after a TRUNCATE
# since it) and the servers' statistics; --exact counts, one table at a
# time, bounded, and never on a frozen source.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
start_following

# changes of every kind, a TRUNCATE among them
q source "INSERT INTO kv SELECT g, 'new', 0 FROM generate_series(5001, 5600) g" >/dev/null
q source "DELETE FROM kv WHERE id <= 250" >/dev/null
q source "UPDATE kv SET id = id + 100000 WHERE id BETWEEN 300 AND 310" >/dev/null
q source "TRUNCATE docs" >/dev/null
q source "INSERT INTO docs SELECT g, 'b', 0 FROM generate_series(1, 7) g" >/dev/null
q source "DELETE FROM docs WHERE id = 7" >/dev/null
q source "INSERT INTO scratch (v) SELECT g FROM generate_series(1, 33) g" >/dev/null
wait_applied ferry 60; ok $? "applied"
# the counts are written about once a second while changes flow, at once when apply is idle
sleep 1.5

# every scan of a user table, as the servers count them (sessions flush their statistics when they end)
scans() {
  q "$1" "SELECT pg_stat_force_next_flush()" >/dev/null 2>&1
  sleep 1.2
  q "$1" "SELECT sum(seq_scan + COALESCE(idx_scan, 0)) FROM pg_stat_user_tables WHERE schemaname = 'public'"
}
S0=$(scans source); T0=$(scans target)
for _ in 1 2 3; do "${F[@]}" status >/dev/null 2>&1; done
js=$("${F[@]}" --json status 2>/dev/null)
timeout --preserve-status -s INT 2.5 "${F[@]}" status --watch --interval 1 >/dev/null 2>&1
S1=$(scans source); T1=$(scans target)
is "$S1" "$S0" "status, status --json and status --watch read no table on the source"
is "$T1" "$T0" "... nor on the target"

is "$(printf '%s' "$js" | /usr/bin/python3 -c '
import json, sys
d = {t["name"]: t for t in json.load(sys.stdin)["tables"]}
print(d["public.kv"]["rows"], d["public.docs"]["rows"], d["public.scratch"]["rows"], d["public.kv"]["source_rows"], d["public.kv"]["delta"])')" \
   "5350 6 33 None None" "ferry's count per table (inserted, deleted, truncated) without reading them; no exact count unless asked"
is "$(printf '%s' "$js" | /usr/bin/python3 -c '
import json, sys
d = {t["name"]: t for t in json.load(sys.stdin)["tables"]}
print(d["public.kv"]["source_rows_estimate"] is not None, d["public.kv"]["target_rows_estimate"] is not None)')" \
   "True True" "and the servers' statistics, labelled as estimates"
is "$(q target "SELECT count(*) FROM kv") $(q target "SELECT count(*) FROM docs")" "5350 6" "(the exact counts, for the record)"
like "$("${F[@]}" status 2>/dev/null)" "table +copied +rows \(ferry\) +~source +~target" "the text report labels its columns"

# --exact counts both sides and shows the delta, reading every table
S0=$(scans source); T0=$(scans target)
ex=$("${F[@]}" --json status --exact 2>/dev/null)
S1=$(scans source); T1=$(scans target)
ok "$([ "$S1" -gt "$S0" ] && [ "$T1" -gt "$T0" ]; echo $?)" "--exact reads the tables on both servers (scans $S0 -> $S1, $T0 -> $T1)"
is "$(printf '%s' "$ex" | /usr/bin/python3 -c '
import json, sys
j = json.load(sys.stdin)
print(j["row_counts"], all(t["delta"] == 0 for t in j["tables"]),
      [t["name"] for t in j["tables"] if t["rows"] is not None and t["rows"] != t["target_rows"]])')" \
   "exact True []" "--exact: every delta zero, and ferry's count equals the exact count wherever it has one"
like "$("${F[@]}" status --exact 2>/dev/null)" "public\.kv +yes +5350 +[0-9?]+ +[0-9?]+ +5350 +5350 +0" "the text report adds the exact counts and the delta"
stop_cleanly

# a frozen source is never counted: during a switchover only the target is
q target "UPDATE ferry.migration SET phase = 'switching'" >/dev/null
S0=$(scans source)
ex=$("${F[@]}" --json status --exact 2>/dev/null)
S1=$(scans source)
is "$S1" "$S0" "--exact during a switchover leaves the source alone"
is "$(printf '%s' "$ex" | /usr/bin/python3 -c '
import json, sys
j = json.load(sys.stdin)
d = {t["name"]: t for t in j["tables"]}
print(j["row_counts"], d["public.kv"]["source_rows"], d["public.kv"]["target_rows"])')" \
   "exact on the target None 5350" "and says so"
q target "UPDATE ferry.migration SET phase = 'following'" >/dev/null

done_testing
