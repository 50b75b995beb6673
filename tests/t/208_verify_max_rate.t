#!/usr/bin/env bash
# verify --max-rate ROWS: at most ROWS rows a second read from each side,
# all workers together, so that a full verify does not hurt production.
# Checked as a lower bound (sleeps make it exact from below, whatever the
# machine's load): reading R rows at 1,500 rows/s takes at least R/1,500 s;
# the outcome is the same as without the limit; a bad value is a usage
# error (exit 2).
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
"${F[@]}" clone --jobs 2 >/dev/null 2>"$TEST_TMP/clone.err"; is $? 0 "clone" || diag "$(tail -3 "$TEST_TMP/clone.err")"
ROWS=$(q source "SELECT (SELECT count(*) FROM kv) + (SELECT count(*) FROM parts) + (SELECT count(*) FROM full_t) + (SELECT count(*) FROM docs) + (SELECT count(*) FROM parent)")
RATE=1500
t0=$(date +%s.%N)
"${F[@]}" verify --jobs 2 --max-rate $RATE >"$TEST_TMP/v.out" 2>"$TEST_TMP/v.err"; rc=$?
t1=$(date +%s.%N)
is "$rc" 0 "verify --max-rate: identical, exit 0" || diag "$(tail -3 "$TEST_TMP/v.err")"
el=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
want=$(awk -v r="$ROWS" -v q="$RATE" 'BEGIN { printf "%.3f", r / q }')
diag "$ROWS rows at $RATE rows/s: $el s (at least $want s)"
ok "$(awk -v e="$el" -v w="$want" 'BEGIN { print (e >= w) ? 0 : 1 }')" "it took at least rows / rate seconds"
"${F[@]}" verify --jobs 2 >"$TEST_TMP/v2.out" 2>&1; is $? 0 "verify without a limit agrees"
"${F[@]}" verify --max-rate lots >/dev/null 2>"$TEST_TMP/bad.err"; is $? 2 "--max-rate lots: exit 2"
like "$(cat "$TEST_TMP/bad.err")" "--max-rate must be a whole number of rows a second" "with the reason"
done_testing
