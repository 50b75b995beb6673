#!/usr/bin/env bash
# A table the application creates while ferry follows (outside attack,
# issue 12): it is not in ferry's publications (their table list is fixed
# at the clone; following new tables is issue 14), so none of its rows
# reach the target. That loss must never be silent: ferry start warns,
# status says NOT REPLICATED, and switchover refuses before anything is
# frozen (it used to exit 0 with 100 committed rows and 19 written during
# the freeze missing on the new primary). A table the user excludes is the
# user's: switchover goes ahead.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
start_following
for s in source target; do
  q $s "CREATE TABLE orders_2 (id int PRIMARY KEY, v text)" >/dev/null
done
q source "INSERT INTO orders_2 SELECT g, 'committed while following' FROM generate_series(1, 100) g" >/dev/null
q source "INSERT INTO kv VALUES (-777, 'probe', 0)" >/dev/null
wait_applied ferry 60; ok $? "applied"
is "$(q target "SELECT count(*) FROM orders_2")" 0 "the new table's rows are not on the target (it is not replicated)"
st=$("${F[@]}" status 2>&1)
like "$st" "NOT REPLICATED 1 table created after the clone: \"public\".\"orders_2\"" "status says so"
is "$("${F[@]}" --json status 2>/dev/null | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["not_replicated"])')" "['\"public\".\"orders_2\"']" "status --json lists it"
for _ in $(seq 1 75); do grep -q "not replicated (created after the clone)" "$TEST_TMP/err" && break; sleep 0.2; done
like "$(cat "$TEST_TMP/err")" "WARNING: 1 table on the source is not replicated \(created after the clone\): \"public\".\"orders_2\"" "ferry start warns"

"${F[@]}" switchover --yes --timeout 20 >"$TEST_TMP/sw.out" 2>"$TEST_TMP/sw.err"
is "$?" 1 "switchover refuses"
like "$(cat "$TEST_TMP/sw.err")" "1 table on the source is not replicated .*\"public\".\"orders_2\"; nothing was frozen. Fix: " "naming the table and the fix"
is "$(migration_phase)" following "phase stays following"
source_writable; ok $? "the source was not frozen"

# excluded by the user: theirs to move; the switchover goes ahead
echo 'filters: {exclude-tables: [public.orders_2]}' >"$TEST_TMP/ferry.yaml"
"${F[@]}" --config "$TEST_TMP/ferry.yaml" switchover --yes --timeout 60 >"$TEST_TMP/sw2.out" 2>"$TEST_TMP/sw2.err"
is "$?" 0 "with the table excluded, switchover succeeds" || diag "$(tail -5 "$TEST_TMP/sw2.err")"
kill -TERM "$FP" 2>/dev/null; wait "$FP" 2>/dev/null
unlike "$(cat "$TEST_TMP/err" "$TEST_TMP/sw.err" "$TEST_TMP/sw2.err")" "runtime error|LeakSanitizer" "no sanitizer reports"
done_testing
