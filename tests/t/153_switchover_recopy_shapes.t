#!/usr/bin/env bash
# The switchover's re-copy of tables without a key (their updates and
# deletes never replicate) copies each table's own rows, whatever its shape,
# as PostgreSQL's regression database has them: an inheritance parent
# without a key whose children have rows (the re-copy read the parent
# without ONLY, so the children's rows landed in the parent on the target,
# and TRUNCATE emptied the children), a table without columns (the re-copy
# failed without a word and the switchover was put back), a partitioned table
# without a key (published through its root: re-copied whole, rows routed to
# the partitions), a NOT VALID check constraint that an older row violates
# (COPY checks every row it writes: lifted for the re-copy, then added back
# NOT VALID, merged with the child's copy as before).
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

pg_start source
pg_start target
q source "
  CREATE TABLE star (class char, aa int);
  CREATE TABLE star_b (bb text) INHERITS (star);
  CREATE TABLE star_c (cc int PRIMARY KEY) INHERITS (star);
  CREATE TABLE nocols ();
  CREATE TABLE parted (a int, b text) PARTITION BY RANGE (a);
  CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (100);
  CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (100) TO (200);
  CREATE TABLE keyed (id int PRIMARY KEY, v text);
  CREATE TABLE checked (f1 int);
  CREATE TABLE checked_child () INHERITS (checked);
  INSERT INTO checked VALUES (0), (5);
  ALTER TABLE checked_child ADD CONSTRAINT positive CHECK (f1 > 0);
  ALTER TABLE checked ADD CONSTRAINT positive CHECK (f1 > 0) NOT VALID;
  INSERT INTO checked_child VALUES (7);
  INSERT INTO star VALUES ('a', 1), ('a', 2);
  INSERT INTO star_b VALUES ('b', 3, 'x'), ('b', 4, 'y'), ('b', 5, 'z');
  INSERT INTO star_c VALUES ('c', 6, 60);
  INSERT INTO nocols SELECT FROM generate_series(1, 4);
  INSERT INTO parted SELECT g, 'p' || g FROM generate_series(1, 150) g;
  INSERT INTO keyed VALUES (1, 'one');" >/dev/null || bail "fixture failed"

ferry_start --jobs 2
wait_following ferry 60; ok $? "ferry start follows"
# changes that only the re-copy carries (no key: updates and deletes are not replicated)
q source "UPDATE star SET aa = aa + 10; DELETE FROM nocols WHERE ctid = '(0,1)'; DELETE FROM parted WHERE a > 140;
          UPDATE parted SET b = 'moved' WHERE a = 5; UPDATE checked SET f1 = 6 WHERE f1 = 5" >/dev/null
"$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" switchover --yes --max-lag 5 --timeout 60 --no-reverse \
  >"$TEST_TMP/sw.out" 2>"$TEST_TMP/sw.err"; rc=$?
is "$rc" 0 "switchover exits 0"
[ "$rc" -ne 0 ] && diag "$(grep -E 'ERROR|WARN' "$TEST_TMP/sw.err" | head -5)"
like "$(cat "$TEST_TMP/sw.err")" "re-copied public.nocols .*: 3 rows" "the table without columns is re-copied"
counts() {
  q "$1" "SELECT string_agg(format('%s=%s', r, n), ' ' ORDER BY r) FROM (
            SELECT 'star' r, count(*) n FROM ONLY star UNION ALL SELECT 'star_b', count(*) FROM star_b
            UNION ALL SELECT 'star_c', count(*) FROM star_c UNION ALL SELECT 'nocols', count(*) FROM nocols
            UNION ALL SELECT 'parted_1', count(*) FROM parted_1 UNION ALL SELECT 'parted_2', count(*) FROM parted_2) x"
}
is "$(counts target)" "$(counts source)" "each table holds its own rows on the target: parent, children, partitions"
is "$(counts target)" "nocols=3 parted_1=99 parted_2=41 star=2 star_b=3 star_c=1" "and those are the source's"
CON_SQL="SELECT conrelid::regclass || ' ' || conname || ' ' || convalidated || ' ' || conislocal || ' ' || coninhcount || ' ' || pg_get_constraintdef(oid)
         FROM pg_constraint WHERE contype = 'c' ORDER BY 1"
is "$(q target "$CON_SQL")" "$(q source "$CON_SQL")" "the NOT VALID check constraint is back as it was, on the parent and merged on the child"
is "$(q target "SELECT string_agg(f1::text, ',' ORDER BY f1) FROM ONLY checked")" "0,6" "the row that violates it was re-copied"
diff <(db_checksum source) <(db_checksum target) >"$TEST_TMP/diff"
ok $? "every table has the same rows (updates and deletes carried by the re-copy)"
[ -s "$TEST_TMP/diff" ] && diag "$(head -10 "$TEST_TMP/diff")"
stop_cleanly
done_testing
