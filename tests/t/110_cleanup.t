#!/usr/bin/env bash
# ferry cleanup removes every object a migration created on both servers,
# is idempotent, refuses while ferry start runs, and leaves the data alone.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

pg_start source
pg_start target
q source "CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE nokey (a int);
          INSERT INTO t SELECT g, 'v' FROM generate_series(1, 1000) g; INSERT INTO nokey VALUES (1)"
ferry() { "$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" "$@"; }
objects() {
  echo "slots=$(QDB=postgres q source "SELECT count(*) FROM pg_replication_slots")" \
       "pubs=$(q source "SELECT count(*) FROM pg_publication")" \
       "origins=$(q target "SELECT count(*) FROM pg_replication_origin")" \
       "schema=$(q target "SELECT count(*) FROM pg_namespace WHERE nspname = 'ferry'")"
}

ferry_start
wait_applied ferry 60 || bail "start did not catch up"
is "$(objects)" "slots=1 pubs=2 origins=1 schema=1" "a running migration has its slot, publications, origin and state"

out=$(ferry cleanup 2>&1); rc=$?
is "$rc" 1 "cleanup refuses while ferry start runs"
like "$out" "another ferry process is driving migration|is in use" "and says ferry start is running"
is "$(objects)" "slots=1 pubs=2 origins=1 schema=1" "nothing was removed"

kill -TERM "$FP"; wait "$FP"
out=$(ferry cleanup 2>&1); rc=$?
is "$rc" 0 "cleanup exits 0 once ferry start has stopped"
like "$out" "dropped replication slot ferry on the source" "it reports what it dropped"
is "$(objects)" "slots=0 pubs=0 origins=0 schema=0" "no ferry object is left on either server"
is "$(q target "SELECT count(*) FROM t")" "1000" "the target's data is untouched"

out=$(ferry cleanup 2>&1); rc=$?
is "$rc" 0 "a second cleanup is a no-op that exits 0"
like "$out" "cleanup of migration ferry complete" "and says so"

# a failed start can be cleaned up and started over
QDB=postgres q target "DROP DATABASE app WITH (FORCE)" >/dev/null; QDB=postgres q target "CREATE DATABASE app" >/dev/null
( FERRY_FAULT=copy.after-item:1 "$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" clone >/dev/null 2>&1 & wait $! ) 2>/dev/null
is "$(objects)" "slots=1 pubs=2 origins=0 schema=1" "a killed clone leaves its slot for a resume"
ferry cleanup >/dev/null 2>&1
is "$(objects)" "slots=0 pubs=0 origins=0 schema=0" "cleanup removes it"
done_testing
