#!/usr/bin/env bash
# A partitioned table's replica identity is its partitions': PostgreSQL
# checks the partition an UPDATE or DELETE touches. A root set to REPLICA
# IDENTITY FULL (ALTER TABLE on the root does not recurse) over partitions
# without a key must not be published for updates and deletes: the
# application's own UPDATE on the source would then fail ("cannot update
# table ... because it does not have a replica identity and publishes
# updates") from the moment ferry starts. It is published for inserts
# only, like any table without identity, and check names the partition.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
q source "CREATE TABLE pf (a int NOT NULL, b text) PARTITION BY RANGE (a);
          ALTER TABLE pf REPLICA IDENTITY FULL;
          CREATE TABLE pf_1 PARTITION OF pf FOR VALUES FROM (0) TO (100);
          CREATE TABLE pf_2 PARTITION OF pf FOR VALUES FROM (100) TO (200);
          ALTER TABLE pf_2 REPLICA IDENTITY FULL;
          INSERT INTO pf SELECT g, 'v' FROM generate_series(1, 150) g;
          CREATE TABLE pg_full (a int NOT NULL, b text) PARTITION BY RANGE (a);
          ALTER TABLE pg_full REPLICA IDENTITY FULL;
          CREATE TABLE pg_full_1 PARTITION OF pg_full FOR VALUES FROM (0) TO (100);
          ALTER TABLE pg_full_1 REPLICA IDENTITY FULL;
          INSERT INTO pg_full SELECT g, 'v' FROM generate_series(1, 50) g;
          CREATE TABLE pn (a int NOT NULL, b text) PARTITION BY RANGE (a);
          CREATE TABLE pn_1 PARTITION OF pn FOR VALUES FROM (0) TO (100);
          ALTER TABLE pn_1 REPLICA IDENTITY FULL;
          INSERT INTO pn SELECT g, 'v' FROM generate_series(1, 50) g" >/dev/null
"$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" check >"$TEST_TMP/check" 2>&1
like "$(cat "$TEST_TMP/check")" "WARN +source +replica identity .*public\.pf_1" "check names the partition without identity"
start_following
q source "UPDATE pf SET b = 'updated' WHERE a = 1" >"$TEST_TMP/upd" 2>&1; rc=$?
is "$rc" 0 "the application's UPDATE on a partition without identity still works on the source"
[ "$rc" = 0 ] || diag "$(cat "$TEST_TMP/upd")"
q source "DELETE FROM pf WHERE a = 2" >/dev/null 2>&1
ok $? "and its DELETE"
q source "UPDATE pg_full SET b = 'updated' WHERE a = 1; UPDATE pn SET b = 'updated' WHERE a = 1; DELETE FROM pn WHERE a = 2; INSERT INTO pf VALUES (3000 % 200, 'new')" >/dev/null 2>&1
ok $? "a root whose every partition has identity takes updates too"
wait_applied ferry 60; ok $? "caught up"
is "$(q target "SELECT b FROM pg_full WHERE a = 1")" updated "its update is replicated"
is "$(q target "SELECT string_agg(a || b, ',' ORDER BY a) FROM pn WHERE a < 4")" "1updated,3v" \
  "a root without identity of its own over partitions that have one: its update and delete are replicated"
is "$(q target "SELECT count(*) FROM pf WHERE b = 'new'")" 1 "the insert into the insert-only root is replicated"
stop_cleanly
done_testing
