#!/usr/bin/env bash
# Outside attack: a table created on the new primary after the switchover.
# Reverse replication publishes the tables the target had at the switchover
# (NAME_reverse is a table list), so rows of a table the application's
# deploy creates afterwards are never streamed back. The operator runs the
# same DDL on the old source too (BEGIN READ WRITE: it is read-only), as
# ferry asks for schema changes; `ferry rollback` then reported success
# while the new tables' rows were not on the source. And a table created on
# the target only: the rollback must not succeed while its rows can go
# nowhere. Each case is a migration of its own (mN into the target's
# database appN), `ferry start` running.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
# migrate N: migration mN into appN, switched over; sets F, FP
migrate() {
  QDB=postgres q target "CREATE DATABASE app$1" >/dev/null
  F=("$FERRY" --source "$SOURCE_CONN" --target "host=$TARGET_SOCK port=$TARGET_PORT dbname=app$1 user=postgres" --name "m$1")
  "${F[@]}" start --jobs 2 >>"$TEST_TMP/start$1.out" 2>>"$TEST_TMP/start$1.err" &
  FP=$!
  QDB=app$1 wait_following "m$1" 60; ok $? "m$1: ferry start follows"
  "${F[@]}" switchover --yes --max-lag 5 --timeout 60 >/dev/null 2>"$TEST_TMP/sw$1.err"
  is "$?" 0 "m$1: switchover exits 0" || diag "$(tail -8 "$TEST_TMP/sw$1.err")"
}
tq() { QDB=app$1 q target "$2"; }

# 1. the deploy on the new primary: a table only there, rows in it
migrate 1
tq 1 "CREATE TABLE only_target (id int PRIMARY KEY, v text); INSERT INTO only_target SELECT g, 'x' FROM generate_series(1, 10) g" >/dev/null
"${F[@]}" rollback --yes --timeout 30 >"$TEST_TMP/rb1.out" 2>"$TEST_TMP/rb1.err"; rc=$?
is "$rc" 1 "m1: rollback refuses while a table on the target exists nowhere on the source"
like "$(cat "$TEST_TMP/rb1.err")" "only_target" "naming it"
unlike "$(cat "$TEST_TMP/rb1.err")" "freezing writes on the target" "before freezing anything"
is "$(QDB=app1 migration_phase m1)" "switched" "phase stays switched"
tq 1 "INSERT INTO kv VALUES (-2, 'target still writable', 0)" >/dev/null 2>&1
ok $? "the target takes writes"
kill -TERM "$FP" 2>/dev/null; wait "$FP"
if [ "$(QDB=app1 migration_phase m1)" = switched ]; then
  "${F[@]}" rollback --yes --timeout 30 >/dev/null 2>&1   # with only_target still there: refused again
  tq 1 "DROP TABLE only_target" >/dev/null
  "${F[@]}" rollback --yes --timeout 30 >"$TEST_TMP/rb1b.out" 2>"$TEST_TMP/rb1b.err"
  is "$?" 0 "m1: once it is dropped, rollback exits 0" || diag "$(tail -8 "$TEST_TMP/rb1b.err")"
fi
is "$(q source "SELECT v FROM kv WHERE id = -2")" "target still writable" "m1: rolled back with the target's writes"

# 2. the same DDL on both servers (a table with a key, a keyless one), rows on the target
migrate 2
tq 2 "CREATE TABLE invoices (id int PRIMARY KEY, total numeric NOT NULL); CREATE TABLE invoice_log (at int, msg text)" >/dev/null
q source "BEGIN READ WRITE; CREATE TABLE invoices (id int PRIMARY KEY, total numeric NOT NULL);
          CREATE TABLE invoice_log (at int, msg text); COMMIT" >/dev/null
tq 2 "INSERT INTO invoices SELECT g, g * 1.5 FROM generate_series(1, 100) g;
      INSERT INTO invoice_log SELECT g, 'made' FROM generate_series(1, 40) g" >/dev/null
sleep 1
tq 2 "UPDATE invoices SET total = total + 1 WHERE id <= 10; DELETE FROM invoices WHERE id > 90;
      DELETE FROM invoice_log WHERE at > 30" >/dev/null
tq 2 "INSERT INTO kv VALUES (-3, 'before rollback 2', 0)" >/dev/null
"${F[@]}" rollback --yes --timeout 60 >"$TEST_TMP/rb2.out" 2>"$TEST_TMP/rb2.err"; rc=$?
is "$rc" 0 "m2: rollback exits 0" || diag "$(tail -8 "$TEST_TMP/rb2.err")"
is "$(q source "SELECT count(*), sum(total) FROM invoices")" "90|6152.5" "m2: the new table's rows are on the source (count, sum)"
is "$(q source "SELECT count(*) FROM invoice_log")" "30" "m2: and the new keyless table's"
is "$(q source "SELECT v FROM kv WHERE id = -3")" "before rollback 2" "m2: the other tables' writes too"
is "$(db_checksum source | grep -v '^ferry\.')" "$(QDB=app2 db_checksum target | grep -v '^ferry\.')" "m2: source equals target after the rollback"
kill -TERM "$FP" 2>/dev/null; wait "$FP"
unlike "$(cat "$TEST_TMP"/start*.err "$TEST_TMP"/rb*.err)" "runtime error|LeakSanitizer" "no sanitizer reports"
done_testing
