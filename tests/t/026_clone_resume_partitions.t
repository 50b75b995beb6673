#!/usr/bin/env bash
# A resumed clone of a partitioned table (issue 12 item 4). The clone is
# killed after one partition is copied at the slot's snapshot; the rerun
# copies the rest at a later snapshot. Changes streamed under the partition
# root (publish_via_partition_root) must be skipped or applied by the
# snapshot of the partition they touch: the old rule took the latest
# snapshot of any partition for the whole root, so changes to the partition
# copied first, made between the two snapshots, were skipped (lost).
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

pg_start source
pg_start target
q source "CREATE TABLE pt (id int, k int, v text, PRIMARY KEY (id, k)) PARTITION BY RANGE (k);
          CREATE TABLE pt_a PARTITION OF pt FOR VALUES FROM (0) TO (100);
          CREATE TABLE pt_b PARTITION OF pt FOR VALUES FROM (100) TO (200)
            PARTITION BY RANGE (k);
          CREATE TABLE pt_b1 PARTITION OF pt_b FOR VALUES FROM (100) TO (200);
          INSERT INTO pt SELECT g, g % 100, md5(g::text) FROM generate_series(1, 60000) g;
          INSERT INTO pt SELECT g, 100 + g % 100, md5(g::text) FROM generate_series(1, 20000) g;
          CREATE TABLE kv (id int PRIMARY KEY, v text);
          INSERT INTO kv SELECT g, 'x' FROM generate_series(1, 100) g" >/dev/null
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")

( FERRY_FAULT=copy.after-item:1 "${F[@]}" clone --jobs 1 >"$TEST_TMP/o1" 2>"$TEST_TMP/e1" & wait $! ) 2>/dev/null
is "$?" 137 "the clone was killed after its first table"
is "$(q target "SELECT string_agg(relname, ',') FROM ferry.copy_item")" "pt_a" "the largest partition was copied at the slot's snapshot"

# between the two snapshots: changes to both partitions
q source "UPDATE pt SET v = 'changed between snapshots' WHERE k < 100 AND id <= 500;
          DELETE FROM pt WHERE k < 100 AND id BETWEEN 501 AND 700;
          INSERT INTO pt SELECT g, g % 100, 'new' FROM generate_series(60001, 60300) g;
          UPDATE pt SET v = 'b changed' WHERE k >= 100 AND id <= 300;
          INSERT INTO pt SELECT g, 100 + g % 100, 'new b' FROM generate_series(20001, 20200) g" >/dev/null

"${F[@]}" start --jobs 1 >"$TEST_TMP/o2" 2>"$TEST_TMP/e2" &
FP=$!
wait_following ferry 120; ok $? "the resumed clone finishes and follows" || diag "$(tail -5 "$TEST_TMP/e2")"
is "$(q target "SELECT count(DISTINCT snapshot_lsn) FROM ferry.copy_item WHERE relname LIKE 'pt\_%'")" 1 "every partition of the tree carries one snapshot"
like "$(cat "$TEST_TMP/e2")" "partition \"public\".\"pt_a\" was copied at an earlier snapshot.*copying it again" "the partition copied before the resume is copied again"
# after the resume: more changes to both
q source "UPDATE pt SET v = 'after' WHERE id BETWEEN 1000 AND 1100;
          DELETE FROM pt WHERE id BETWEEN 1200 AND 1250" >/dev/null
wait_applied ferry 60; ok $? "the target applied everything"
is "$(db_checksum target | grep -v '^ferry\.')" "$(db_checksum source)" "every partition equals the source: nothing skipped, nothing applied twice"
kill -TERM "$FP"; wait "$FP"; is $? 0 "ferry start stops cleanly"
unlike "$(cat "$TEST_TMP"/e*)" "runtime error|LeakSanitizer" "no sanitizer reports"
done_testing
