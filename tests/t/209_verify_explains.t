#!/usr/bin/env bash
# verify says what it knows beyond the rows: while following, a table
# without a key differs after an UPDATE or DELETE (only its inserts are
# replicated: the switchover re-copies it) and says so; the sequences are
# compared too: behind while following (expected, said so), and once
# switched over a sequence on the new primary behind the old source's is a
# difference (ids would be handed out twice), exit 1.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
start_following
q source "INSERT INTO log_nokey (msg) SELECT 'row ' || g FROM generate_series(1, 3) g" >/dev/null
wait_applied ferry 60
q source "DELETE FROM log_nokey WHERE ctid = (SELECT min(ctid) FROM log_nokey)" >/dev/null
q source "SELECT nextval('kv_new_ids')" >/dev/null
wait_applied ferry 60
"${F[@]}" verify >"$TEST_TMP/v1.out" 2>"$TEST_TMP/v1.err"; rc=$?
is "$rc" 1 "verify while following, a keyless table changed: exit 1"
like "$(grep log_nokey "$TEST_TMP/v1.out")" "DIFFERENT.*expected while following: this table has no key, so only its inserts are replicated; the switchover re-copies it" \
  "the keyless table's difference is explained" || diag "$(cat "$TEST_TMP/v1.out")"
like "$(grep kv_new_ids "$TEST_TMP/v1.out")" "sequence +behind: source 10000000, target .*expected while following" "the sequence is compared, behind, and explained"
"${F[@]}" --json verify >"$TEST_TMP/v1.json" 2>/dev/null
is "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print([s["behind"] for s in d["sequences"] if s["name"]=="public.kv_new_ids"][0])' "$TEST_TMP/v1.json")" True "--json lists the sequences"

"${F[@]}" switchover --yes --max-lag 5 >"$TEST_TMP/sw.out" 2>"$TEST_TMP/sw.err"; is $? 0 "switchover" || diag "$(tail -3 "$TEST_TMP/sw.err")"
kill -TERM "$FP" 2>/dev/null; wait "$FP"
"${F[@]}" verify >"$TEST_TMP/v2.out" 2>&1
is $? 0 "after the switchover: identical (sequences past the source's)" || diag "$(cat "$TEST_TMP/v2.out")"
like "$(grep kv_new_ids "$TEST_TMP/v2.out")" "sequence +ok:" "the sequence is ok"
q target "SELECT setval('kv_new_ids', 5)" >/dev/null
"${F[@]}" verify >"$TEST_TMP/v3.out" 2>&1
is $? 1 "a new primary's sequence behind the old source's: exit 1"
like "$(grep kv_new_ids "$TEST_TMP/v3.out")" "DIFFERENT: behind the source \(ids would be handed out twice\)" "said so"
done_testing
