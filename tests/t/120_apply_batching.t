#!/usr/bin/env bash
# Regressions for batched apply (found in review): wide tables whose batch of
# parameters would overflow, a unique value swapped between rows inside one
# transaction (updates must stay in source order on such tables), many
# TRUNCATEs in one batch, and a target column narrower than the source's (a
# batched insert must fail, not truncate silently).
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

pg_start source
pg_start target
cols=$(for i in $(seq 1 40); do printf ', c%d int' "$i"; done)
vals=$(for i in $(seq 1 40); do printf ', g+%d' "$i"; done)
q source "CREATE TABLE wide (id int PRIMARY KEY $cols);
          CREATE TABLE swap (id int PRIMARY KEY, pos int UNIQUE);
          CREATE TABLE scratch (id int PRIMARY KEY);
          CREATE TABLE narrow (id int PRIMARY KEY, s varchar(10), c char(4), b bit(3));
          INSERT INTO swap VALUES (1, 1), (2, 2)"
ferry_start
until [ "$(q target "SELECT phase FROM ferry.migration" 2>/dev/null)" = following ]; do sleep 0.2; done

q source "INSERT INTO wide SELECT g $vals FROM generate_series(1, 500) g; UPDATE wide SET c1 = c1 + 1" >/dev/null
q source "BEGIN; UPDATE swap SET pos = -1 WHERE id = 1; UPDATE swap SET pos = 1 WHERE id = 2;
          UPDATE swap SET pos = 2 WHERE id = 1; COMMIT" >/dev/null
trunc=$(for i in $(seq 1 1100); do printf 'TRUNCATE scratch; '; done)
q source "BEGIN; $trunc INSERT INTO scratch VALUES (7); COMMIT" >/dev/null
wait_applied ferry 60
ok $? "ferry keeps up with wide tables, a unique swap and 1100 truncates in one transaction"
is "$(db_checksum target)" "$(db_checksum source)" "contents equal"
is "$(q target "SELECT string_agg(id || ':' || pos, ',' ORDER BY id) FROM swap")" "1:2,2:1" "the unique values were swapped as on the source"
q source "INSERT INTO narrow SELECT g, 'ab', 'cd', B'101' FROM generate_series(1, 250) g" >/dev/null
wait_applied ferry 60
is "$(q target "SELECT count(*), min(s), min(c), min(b::text) FROM narrow")" "250|ab|cd  |101" "typed columns (varchar, char, bit) arrive through batched inserts"
kill -TERM "$FP"; wait "$FP"
is "$?" 0 "stops cleanly"
unlike "$(cat "$TEST_TMP/err")" "ERROR|runtime error|Sanitizer" "no errors or sanitizer reports"

# the target's column is narrower (changed by hand): the batch must fail, never store a cut value
q target "ALTER TABLE narrow ALTER COLUMN s TYPE varchar(3)" >/dev/null
q source "INSERT INTO narrow SELECT g, CASE WHEN g < 1005 THEN 'ab' ELSE 'abcdefgh' END, 'x', B'001' FROM generate_series(1001, 1300) g" >/dev/null
"$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" start >"$TEST_TMP/out2" 2>"$TEST_TMP/err2" &
FP=$!
for i in $(seq 1 50); do grep -q "too long\|differ" "$TEST_TMP/err2" && break; sleep 0.2; done
kill -TERM "$FP" 2>/dev/null; wait "$FP"
is "$(q target "SELECT count(*) FROM narrow WHERE s = 'abc'")" "0" "no value was cut to fit the narrower target column"
like "$(cat "$TEST_TMP/err2")" "too long|differ" "apply stops with the reason"
done_testing
