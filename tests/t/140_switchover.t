#!/usr/bin/env bash
# ferry switchover and rollback: under write load, every row reaches the
# target, sequences move past the source's, the source is frozen, the
# application's writes land on the target and come back on rollback.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
# a keyless table (UNIQUE, no primary key: inserts only) that a foreign key references:
# its re-copy at switchover cannot TRUNCATE it
q source "CREATE TABLE codes (code text UNIQUE, label text);
          CREATE TABLE uses_code (id int PRIMARY KEY, code text REFERENCES codes (code));
          INSERT INTO codes VALUES ('a', 'one'), ('b', 'two'); INSERT INTO uses_code VALUES (1, 'a')" >/dev/null
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")

mkdir -p "$TEST_TMP/up" "$TEST_TMP/up-new"
echo one >"$TEST_TMP/up/one.txt"
cat >"$TEST_TMP/ferry.yaml" <<YAML
files:
  - {from: "$TEST_TMP/up/", to: "$TEST_TMP/up-new/"}
files-interval: 1
YAML
"${F[@]}" --config "$TEST_TMP/ferry.yaml" start --jobs 2 >"$TEST_TMP/start.out" 2>"$TEST_TMP/start.err" &
FP=$!
for i in $(seq 1 300); do
  [ "$(q target "SELECT phase FROM ferry.migration" 2>/dev/null)" = following ] && break; sleep 0.2
done
is "$(q target "SELECT phase FROM ferry.migration")" "following" "ferry start follows"

for i in $(seq 1 50); do [ -f "$TEST_TMP/up-new/one.txt" ] && break; sleep 0.2; done
is "$(cat "$TEST_TMP/up-new/one.txt" 2>&1)" "one" "files: are synced while following"
sleep 1.5
st=$("${F[@]}" status 2>&1)
like "$st" "files +$TEST_TMP/up/ -> $TEST_TMP/up-new/: ok" "status reports the file sync"

# the application writes all through the switchover (pgbench ends its client on an error)
pgload 8 3 "$SQL/load/mixed.sql@10" >"$TEST_TMP/load1" 2>&1 &
LP=$!
q source "INSERT INTO log_nokey (msg) VALUES ('before switch')" >/dev/null
q source "UPDATE codes SET label = 'changed' WHERE code = 'b'" >/dev/null
sleep 3
"${F[@]}" switchover --yes --max-lag 5 --timeout 60 >"$TEST_TMP/sw.out" 2>"$TEST_TMP/sw.err"
rc=$?
is "$rc" 0 "switchover exits 0" || diag "$(tail -20 "$TEST_TMP/sw.err")"
wait "$LP"
like "$(cat "$TEST_TMP/sw.out")" "write downtime +[0-9.]+ s" "it reports the write downtime"
is "$(q target "SELECT phase FROM ferry.migration")" "switched" "phase switched"
js=$("${F[@]}" --json status 2>/dev/null)
is "$(printf '%s' "$js" | python3 -c 'import json,sys; d=json.load(sys.stdin); s=d["switchover"]; print(d["phase"], s["reverse_replication"], s["write_downtime_seconds"] > 0)')" "switched True True" "status --json shows the switchover and its downtime"
is "$(db_checksum target | grep -v '^ferry\.')" "$(db_checksum source | grep -v '^ferry\.')" "every table equal after the switchover under load"
out=$(q source "INSERT INTO kv VALUES (-99999999, 'late', 0)" 2>&1); rc=$?
isnt "$rc" 0 "a write on the frozen source fails"
like "$out" "read-only transaction" "with PostgreSQL's read-only error"
SEQ_SQL="SELECT string_agg(sequencename || '=' || last_value, ' ' ORDER BY sequencename) FROM pg_sequences WHERE last_value IS NOT NULL"
src_seq=$(q source "SELECT string_agg(sequencename || '=' || (last_value + 1000), ' ' ORDER BY sequencename) FROM pg_sequences WHERE last_value IS NOT NULL")
like "$src_seq" "=" "the source has used sequences"
is "$(q target "$SEQ_SQL")" "$src_seq" "every used target sequence is at the source's value plus the gap (1000)"
is "$(q target "SELECT count(*) FROM log_nokey WHERE msg = 'before switch'")" "1" "tables without a key are re-copied"
is "$(q target "SELECT label FROM codes WHERE code = 'b'")" "changed" "also one that a foreign key references (its update did not replicate, the re-copy brought it)"
is "$(QDB=postgres q source "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'ferry'")" "1" "the forward slot stays on the source as the watch for writes after the switch"
is "$(QDB=postgres q target "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'ferry_reverse'")" "1" "the reverse slot exists on the target"

# ferry start carries on in reverse: a write on the target reaches the source,
# but one made under the forward apply's replication origin does not come back
q target "SELECT pg_replication_origin_session_setup('ferry');
          INSERT INTO kv VALUES (-55555555, 'as if applied by forward replication', 0)" >/dev/null
q target "INSERT INTO kv VALUES (-77777777, 'written on target', 0)" >/dev/null
q target "INSERT INTO gen (a) VALUES (5)" >/dev/null
for i in $(seq 1 100); do
  [ "$(q source "SELECT count(*) FROM kv WHERE id = -77777777")" = 1 ] && break; sleep 0.1
done
is "$(q source "SELECT v FROM kv WHERE id = -77777777")" "written on target" "ferry start replicates the target's writes back to the source"
is "$(q source "SELECT count(*) FROM kv WHERE id = -55555555")" "0" "a transaction from the forward apply's origin is not sent back"
js=$("${F[@]}" --json status 2>/dev/null)
is "$(printf '%s' "$js" | python3 -c 'import json,sys; r=json.load(sys.stdin)["reverse"]; print(r["phase"], r["applied_lsn"] is not None)')" "following True" \
   "status --json shows reverse replication's progress on the source"
like "$("${F[@]}" status 2>&1)" "reverse +the source has the target's changes up to" "and status says so"
q target "SELECT pg_replication_origin_session_setup('ferry'); DELETE FROM kv WHERE id = -55555555" >/dev/null

"${F[@]}" rollback --yes >"$TEST_TMP/rb.out" 2>"$TEST_TMP/rb.err"
rc=$?
is "$rc" 0 "rollback exits 0" || diag "$(tail -20 "$TEST_TMP/rb.err")"
is "$(q target "SELECT phase FROM ferry.migration")" "rolled_back" "phase rolled_back"
is "$(db_checksum target | grep -v '^ferry\.')" "$(db_checksum source | grep -v '^ferry\.')" "source equals target after the rollback"
q source "INSERT INTO kv VALUES (-88888888, 'back on source', 0)" >/dev/null
ok $? "the source takes writes again"
q source "INSERT INTO gen (a) VALUES (6)" >/dev/null
ok $? "identity sequences on the source are past the target's values"
out=$(q target "INSERT INTO kv VALUES (-66666666, 'x', 0)" 2>&1)
like "$out" "read-only transaction" "the target is read-only after the rollback"
kill -TERM "$FP" 2>/dev/null; wait "$FP"
unlike "$(cat "$TEST_TMP/start.err" "$TEST_TMP/sw.err" "$TEST_TMP/rb.err")" "runtime error|LeakSanitizer" "no sanitizer reports"

"${F[@]}" cleanup >"$TEST_TMP/cl.out" 2>&1
is "$?" 0 "cleanup exits 0"
is "$(slot_count source) $(slot_count target)" "0 0" "no slot left on either side"
is "$(q source "SELECT count(*) FROM pg_publication") $(q target "SELECT count(*) FROM pg_publication")" "0 0" "no publication left"
is "$(q source "SELECT count(*) FROM pg_namespace WHERE nspname = 'ferry'") $(q target "SELECT count(*) FROM pg_namespace WHERE nspname = 'ferry'")" "0 0" "no ferry schema left"
is "$(q source "SELECT count(*) FROM pg_replication_origin") $(q target "SELECT count(*) FROM pg_replication_origin")" "0 0" "no replication origin left"
done_testing
