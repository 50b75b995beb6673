#!/usr/bin/env bash
# Found by a red-team helper: the rollback makes the keyless tables' publication publish
# nothing (KEYLESS_SILENT) for its re-copy and only restores it (inserts)
# at its very end, after it has unfrozen the source and run the rollback
# hook. An insert into a table without a key that the application makes on
# the source once it is unfrozen (here: from the rollback hook, which points
# the application back) is decoded with the publication as of its LSN:
# never sent. ferry start follows again from the kept slot, and the target
# (and, after a second switchover, the new primary) never gets the row.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
PSQL="$(pg_bin source)/psql"
cat >"$TEST_TMP/ferry.yaml" <<YAML
hooks:
  rollback: "$PSQL -XAtq -h $SOURCE_SOCK -p $SOURCE_PORT -U postgres -d app -c \"INSERT INTO log_nokey (msg) VALUES ('app back on the source'); INSERT INTO kv VALUES (-7, 'app back on the source', 0)\""
YAML
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" --config "$TEST_TMP/ferry.yaml")
"${F[@]}" start --jobs 2 >>"$TEST_TMP/out" 2>>"$TEST_TMP/err" &
FP=$!
wait_following ferry 60; ok $? "ferry start follows"
"${F[@]}" switchover --yes --max-lag 5 >"$TEST_TMP/sw1.out" 2>"$TEST_TMP/sw1.err"
is $? 0 "first switchover: exit 0" || diag "$(tail -3 "$TEST_TMP/sw1.err")"
q target "INSERT INTO log_nokey (msg) VALUES ('on the new primary')" >/dev/null
"${F[@]}" rollback --yes --max-lag 10 >"$TEST_TMP/rb.out" 2>"$TEST_TMP/rb.err"
is $? 0 "rollback: exit 0" || diag "$(tail -3 "$TEST_TMP/rb.err")"
for _ in $(seq 1 100); do kill -0 "$FP" 2>/dev/null || break; sleep 0.1; done
kill -TERM "$FP" 2>/dev/null; wait "$FP"
is "$(q source "SELECT count(*) FROM log_nokey WHERE msg = 'app back on the source'")" 1 "the hook's (the application's) insert is on the source"
like "$(cat "$TEST_TMP/rb.err")" "kept replication slot ferry on the source" "the rollback re-armed"
: >"$TEST_TMP/err"
"${F[@]}" start --jobs 2 >>"$TEST_TMP/out" 2>>"$TEST_TMP/err" &
FP=$!
wait_following ferry 90; ok $? "ferry start after the rollback follows again"
q source "INSERT INTO log_nokey (msg) VALUES ('while following again')" >/dev/null
wait_applied ferry 60; ok $? "and applies"
is "$(q target "SELECT count(*) FROM kv WHERE id = -7")" 1 "the keyed row written after the unfreeze arrived"
is "$(q target "SELECT string_agg(msg, ',' ORDER BY msg) FROM log_nokey")" "app back on the source,on the new primary,while following again" \
  "the target has every row of the keyless table"
is "$(db_checksum target)" "$(db_checksum source)" "both sides equal while following again"
"${F[@]}" verify >"$TEST_TMP/vf.out" 2>&1; is $? 0 "ferry verify finds the sides identical while following again" || diag "$(grep -i nokey "$TEST_TMP/vf.out" | head -3)"
"${F[@]}" switchover --yes --max-lag 5 >"$TEST_TMP/sw2.out" 2>"$TEST_TMP/sw2.err"
is $? 0 "second switchover: exit 0" || diag "$(tail -3 "$TEST_TMP/sw2.err")"
is "$(db_checksum target)" "$(db_checksum source)" "both sides equal after the second switchover (its re-copy of keyless tables)"
kill -TERM "$FP" 2>/dev/null; wait "$FP"
done_testing
