#!/usr/bin/env bash
# ferry verify: a full content comparison finds every changed, missing and
# extra row by key (and duplicates in tables without a key), reports JSON,
# and does not mistake replication lag for differences while ferry start runs.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
# a keyed table with a dropped column (so attnums differ on the target), a
# table without a key holding duplicates, a text key, a partitioned table
q source "CREATE TABLE big (id int PRIMARY KEY, junk int, v text, f float8, at timestamptz);
          INSERT INTO big SELECT g, g, md5(g::text), g / 3.0, '2024-01-01'::timestamptz + g * interval '1 s' FROM generate_series(1, 250000) g;
          ALTER TABLE big DROP COLUMN junk;
          CREATE TABLE dups (a int, b text);
          INSERT INTO dups SELECT g % 100, 'd' || (g % 100) FROM generate_series(1, 3000) g;
          CREATE TABLE names (name text PRIMARY KEY, n int);
          INSERT INTO names SELECT 'name ' || g, g FROM generate_series(1, 3000) g;
          CREATE TABLE events (id bigint, day date, v int, PRIMARY KEY (day, id)) PARTITION BY RANGE (day);
          CREATE TABLE events_a PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2024-07-01');
          CREATE TABLE events_b PARTITION OF events FOR VALUES FROM ('2024-07-01') TO ('2025-01-01');
          INSERT INTO events SELECT g, '2024-01-01'::date + (g % 366), g FROM generate_series(1, 20000) g;" >/dev/null \
  || bail "fixture failed"

"$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" clone --jobs 2 >/dev/null 2>"$TEST_TMP/clone_err" \
  || bail "clone failed: $(tail -3 "$TEST_TMP/clone_err")"

verify() { "$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" verify --jobs 3 "$@"; }

out=$(verify 2>"$TEST_TMP/err"); rc=$?
is "$rc" 0 "verify exits 0 right after a clone"
like "$out" "public.big +250000 +[2-9] +ok" "the large table is compared (in key ranges) and equal"
like "$out" "public.events_a .* ok" "partitions are compared"
like "$out" "identical" "the summary says identical"
unlike "$(cat "$TEST_TMP/err")" "ERROR|runtime error|LeakSanitizer" "no errors or sanitizer reports"

q target "UPDATE big SET v = 'changed' WHERE id = 31337" >/dev/null
out=$(verify 2>"$TEST_TMP/err"); rc=$?
is "$rc" 1 "a changed row makes verify exit 1"
like "$out" "public.big .*DIFFERENT: 0 missing, 0 extra, 1 different" "the table is reported different"
like "$out" "different +key 31337" "the changed row's key is named"
like "$out" "public.kv .* ok" "other tables stay ok"

q target "DELETE FROM big WHERE id = 777; INSERT INTO big VALUES (1000001, 'extra', 0, now())" >/dev/null
out=$(verify --table big 2>"$TEST_TMP/err"); rc=$?
is "$rc" 1 "a missing and an extra row make verify exit 1"
like "$out" "missing +key 777" "the deleted row is reported missing with its key"
like "$out" "extra +key 1000001" "the inserted row is reported extra with its key"
unlike "$out" "public.kv" "--table limits the comparison"

q target "INSERT INTO dups SELECT * FROM dups WHERE a = 5 LIMIT 1" >/dev/null
out=$(verify --table 'public.dup*' 2>"$TEST_TMP/err"); rc=$?
is "$rc" 1 "a duplicated row in a table without a key is detected"
like "$out" "public.dups .*DIFFERENT: 0 missing, 1 extra" "and counted as one extra row"

q target "UPDATE events SET v = -1 WHERE id = 4242; DELETE FROM names WHERE name = 'name 1234'" >/dev/null
js=$(verify --json 2>"$TEST_TMP/err"); rc=$?
is "$rc" 1 "--json exits 1 on differences"
is "$(printf '%s' "$js" | python3 -c '
import json, sys
d = json.load(sys.stdin)
t = {x["name"]: x for x in d["tables"]}
b = t["public.big"]
print(d["ok"], b["rows"], b["missing"], b["extra"], b["different"], sorted(b["examples"]),
      t["public.dups"]["extra"], t["public.names"]["examples"], t["public.names"]["missing"],
      [x["examples"] for n, x in t.items() if n.startswith("public.events_") and not x["ok"]],
      t["public.kv"]["ok"], isinstance(d["seconds"], float))')" \
   "False 250000 1 1 1 ['1000001', '31337', '777'] 1 ['name 1234'] 1 [['(2024-08-04,4242)']] True True" \
   "--json has the counts and keys of every difference"
unlike "$(cat "$TEST_TMP/err")" "ERROR|runtime error|LeakSanitizer" "no errors or sanitizer reports"

# repair the target, then verify while ferry start replicates a light load
q target "UPDATE big SET v = md5('31337') WHERE id = 31337;
          INSERT INTO big SELECT 777, md5('777'), 777 / 3.0, '2024-01-01'::timestamptz + 777 * interval '1 s';
          DELETE FROM big WHERE id = 1000001;
          DELETE FROM dups WHERE ctid = (SELECT max(ctid) FROM dups);
          UPDATE events SET v = 4242 WHERE id = 4242;
          INSERT INTO names VALUES ('name 1234', 1234)" >/dev/null
out=$(verify 2>"$TEST_TMP/err"); rc=$?
is "$rc" 0 "verify exits 0 again once the target is repaired"
[ "$rc" = 0 ] || diag "$out"

"$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" start >"$TEST_TMP/start_out" 2>"$TEST_TMP/start_err" &
FP=$!
wait_applied ferry 60 || bail "ferry start did not catch up: $(tail -3 "$TEST_TMP/start_err")"
"$PGBIN/pgbench" -n -T 20 -c 2 -R 20 -h "$SOURCE_SOCK" -p "$SOURCE_PORT" -U postgres -f "$SQL/load/mixed.sql" app \
  >"$TEST_TMP/load" 2>&1 &
LP=$!
sleep 3
# busy tables without a key need the exact (locking) re-read to be certain
out=$(verify --lock-source 2>"$TEST_TMP/err"); rc=$?
is "$rc" 0 "verify --lock-source under a live write load exits 0 (lag is re-checked, not reported)"
[ "$rc" = 0 ] && like "$(cat "$TEST_TMP/err")" "ferry start is running" "it knows the migration is live"
[ "$rc" = 0 ] || diag "$out $(tail -5 "$TEST_TMP/err")"
diag "$(grep -o 'ranges differed.*' "$TEST_TMP/err")"
ok "$(kill -0 "$LP" 2>/dev/null; echo $?)" "the load was still running when verify finished"
wait "$LP"
like "$(cat "$TEST_TMP/load")" "number of failed transactions: 0" "the load ran without errors"
unlike "$(cat "$TEST_TMP/err")" "ERROR|runtime error|LeakSanitizer" "no errors or sanitizer reports"

# a real difference is still found while live
wait_applied ferry 60
q target "UPDATE big SET v = 'drift' WHERE id = 4711" >/dev/null
out=$(verify --table big 2>"$TEST_TMP/err"); rc=$?
is "$rc" 1 "a real difference is reported while ferry start runs"
like "$out" "different +key 4711" "with its key"

kill -TERM "$FP"; wait "$FP"
done_testing
