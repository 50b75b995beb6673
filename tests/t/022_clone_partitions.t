#!/usr/bin/env bash
# Partitioned tables: one with no partitions yet, one with partitions, a
# multi-level tree with an empty sub-partitioned branch. clone copies them
# (the schema dumps of both sides equal); then, while following, partitions
# made after the start (CREATE ... PARTITION OF, and ATTACH PARTITION of a
# new table), on both sides since ferry does not carry DDL, receive rows
# that reach the target.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

# schema_dump NAME: pg_dump --schema-only of database app, ferry's publications and schema
# and pg_dump's per-run \restrict keys left out
schema_dump() {
  local up; up=$(echo "$1" | tr '[:lower:]' '[:upper:]')
  local sock port
  eval "sock=\$${up}_SOCK port=\$${up}_PORT"
  "$PGBIN/pg_dump" --schema-only --no-publications --no-subscriptions --exclude-schema=ferry -h "$sock" -p "$port" -U postgres app |
    grep -v -E '^\\(un)?restrict '
}

pg_start source
pg_start target
q source "
  CREATE TABLE past_parted (a int) PARTITION BY RANGE (a);
  CREATE TABLE empty_pk (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
  CREATE TABLE measures (id int, at date, v text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
  CREATE TABLE measures_2020 PARTITION OF measures FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
  CREATE TABLE measures_2021 PARTITION OF measures FOR VALUES FROM ('2021-01-01') TO ('2022-01-01');
  INSERT INTO measures SELECT g, DATE '2020-01-01' + g, 'm' || g FROM generate_series(1, 700) g;
  CREATE TABLE tree (id int, region text, k int, PRIMARY KEY (id, region, k)) PARTITION BY LIST (region);
  CREATE TABLE tree_eu PARTITION OF tree FOR VALUES IN ('eu') PARTITION BY RANGE (k);
  CREATE TABLE tree_eu_0 PARTITION OF tree_eu FOR VALUES FROM (0) TO (100);
  CREATE TABLE tree_us PARTITION OF tree FOR VALUES IN ('us') PARTITION BY RANGE (k);
  INSERT INTO tree SELECT g, 'eu', g % 100 FROM generate_series(1, 300) g;
  CREATE TABLE plain (id int PRIMARY KEY, v text);
  INSERT INTO plain VALUES (1, 'one');" >/dev/null || bail "fixture failed"

"$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" clone --jobs 2 >"$TEST_TMP/out" 2>"$TEST_TMP/err"; rc=$?
is "$rc" 0 "clone of partitioned tables with and without partitions exits 0"
unlike "$(cat "$TEST_TMP/err")" "ERROR|runtime error|LeakSanitizer" "no errors or sanitizer reports"
[ "$rc" -ne 0 ] && diag "$(grep ERROR "$TEST_TMP/err" | head -3)"
diff <(schema_dump source) <(schema_dump target) >"$TEST_TMP/sdiff"
ok $? "the target's schema dump equals the source's"
[ -s "$TEST_TMP/sdiff" ] && diag "$(head -20 "$TEST_TMP/sdiff")"
diff <(db_checksum source) <(db_checksum target) >"$TEST_TMP/diff"
ok $? "every table has the same rows"
is "$(q source "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_publication_tables WHERE pubname LIKE 'ferry%'")" \
   "empty_pk,measures,past_parted,plain,tree" "every partition root is published, with or without partitions"

ferry_start --jobs 2
wait_following ferry 60; ok $? "ferry start follows"

# the application's partitions, made after the start, on both sides
for side in target source; do
  q "$side" "
    CREATE TABLE past_parted_1 PARTITION OF past_parted FOR VALUES FROM (0) TO (1000);
    CREATE TABLE empty_pk_1 PARTITION OF empty_pk FOR VALUES FROM (0) TO (1000);
    CREATE TABLE empty_pk_2 PARTITION OF empty_pk FOR VALUES FROM (1000) TO (2000);
    CREATE TABLE measures_2022 (LIKE measures INCLUDING ALL);
    ALTER TABLE measures ATTACH PARTITION measures_2022 FOR VALUES FROM ('2022-01-01') TO ('2023-01-01');
    CREATE TABLE tree_us_0 PARTITION OF tree_us FOR VALUES FROM (0) TO (100);" >/dev/null \
    || bail "partition DDL failed on $side"
done
q source "
  INSERT INTO past_parted SELECT g FROM generate_series(1, 500) g;
  INSERT INTO empty_pk SELECT g, 'e' || g FROM generate_series(1, 900) g;
  UPDATE empty_pk SET id = id + 1000, v = 'moved' WHERE id BETWEEN 1 AND 100;
  DELETE FROM empty_pk WHERE id BETWEEN 850 AND 900;
  INSERT INTO measures_2022 VALUES (5000, '2022-03-01', 'direct');
  INSERT INTO measures SELECT g, DATE '2022-01-01' + (g % 300), 'n' || g FROM generate_series(1001, 1200) g;
  UPDATE measures SET at = at + 365 * 2 WHERE id BETWEEN 1 AND 50 AND at < '2021-01-01';
  INSERT INTO tree SELECT g, 'us', g % 100 FROM generate_series(1001, 1200) g;
  UPDATE tree SET region = 'us' WHERE region = 'eu' AND id BETWEEN 1 AND 20;" >/dev/null || bail "writes failed"
wait_applied ferry 60; ok $? "the target catches up"
diff <(db_checksum source) <(db_checksum target) >"$TEST_TMP/diff"
ok $? "rows routed to partitions made after the start arrive (checksum of every partition)"
[ -s "$TEST_TMP/diff" ] && diag "$(head -20 "$TEST_TMP/diff")"
is "$(q target "SELECT count(*) FROM past_parted_1")|$(q target "SELECT count(*) FROM tree_us_0")|$(q target "SELECT count(*) FROM measures_2022")" \
   "500|220|251" "the new partitions hold their rows on the target (measures_2022: 201 written, 50 moved in by update)"
stop_cleanly
done_testing
