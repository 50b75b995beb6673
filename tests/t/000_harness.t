#!/usr/bin/env bash
# The harness itself: two servers start, are independent, and checksums work.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

pg_start source
pg_start target
isnt "$SOURCE_PORT" "$TARGET_PORT" "servers on different ports"
q source "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1,100) g"
is "$(q source 'SELECT count(*) FROM t')" "100" "source has rows"
is "$(q source 'SHOW wal_level')" "logical" "wal_level is logical"
q target "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1,100) g"
is "$(db_checksum source)" "$(db_checksum target)" "same contents give the same checksum"
q target "UPDATE t SET v = 'x' WHERE id = 7"
isnt "$(db_checksum source)" "$(db_checksum target)" "one changed row changes the checksum"
done_testing
