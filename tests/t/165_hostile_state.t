#!/usr/bin/env bash
# ferry's state is trusted only when it is ferry's own (issue 12 item 9).
# A role that pre-creates schema ferry (on the target, or on the source
# where the switchover keeps the reverse migration's state) could plant
# tables and functions ferry would then read and run: ferry refuses, on
# one line with the fix, before it writes anything there. A hostile value
# in the saved freeze record (its `prior` setting, pasted into ALTER
# DATABASE by rollback) runs no SQL.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
for side in source target; do q "$side" "CREATE ROLE mallory LOGIN" >/dev/null; done

# --- a schema ferry that another role owns, on the target ----------------
q target "CREATE SCHEMA ferry AUTHORIZATION mallory" >/dev/null
"$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" clone >"$TEST_TMP/o1" 2>"$TEST_TMP/e1"; rc=$?
isnt "$rc" 0 "clone refuses a schema ferry owned by another role"
like "$(grep ERROR "$TEST_TMP/e1")" "schema ferry on the target is owned by role mallory, not by postgres.*Fix: .*DROP SCHEMA ferry" \
  "one line naming the owner and the fix"
is "$(grep -c ERROR "$TEST_TMP/e1")" 1 "and only that line"
is "$(q target "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'ferry'")" 0 \
  "nothing was created in it"
is "$(q target "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'")" 0 \
  "nor was anything restored"
is "$(QDB=postgres q source "SELECT count(*) FROM pg_replication_slots")" 0 "no slot left on the source"

# --- our own schema, with an object another role owns in it ---------------
q target "DROP SCHEMA ferry; CREATE SCHEMA ferry; GRANT CREATE ON SCHEMA ferry TO mallory" >/dev/null
PGOPTIONS= "$PGBIN/psql" -XAtq -h "$TARGET_SOCK" -p "$TARGET_PORT" -U mallory app \
  -c "CREATE FUNCTION ferry.trap() RETURNS int LANGUAGE sql AS 'SELECT 1'" >/dev/null
"$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" clone >"$TEST_TMP/o2" 2>"$TEST_TMP/e2"; rc=$?
isnt "$rc" 0 "clone refuses a schema ferry holding another role's object"
like "$(grep ERROR "$TEST_TMP/e2")" "schema ferry on the target holds objects owned by mallory.*Fix: " "names that role, with the fix"
q target "DROP SCHEMA ferry CASCADE" >/dev/null 2>&1

# --- a publication ferry that another role owns, on the source ------------
# (it would decide which tables ferry replicates: the others lost at switchover)
q source "GRANT CREATE ON DATABASE app TO mallory; CREATE PUBLICATION ferry FOR TABLE kv; ALTER PUBLICATION ferry OWNER TO mallory;
          CREATE PUBLICATION ferry_insert_only FOR TABLE kv WITH (publish = 'insert'); ALTER PUBLICATION ferry_insert_only OWNER TO mallory" >/dev/null
"$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" clone >"$TEST_TMP/o6" 2>"$TEST_TMP/e6"; rc=$?
isnt "$rc" 0 "clone refuses publications another role owns"
like "$(grep ERROR "$TEST_TMP/e6")" "publication ferry on app already exists and is owned by role mallory, not by postgres.*Fix: .*DROP PUBLICATION ferry" \
  "names the publication, its owner and the fix"
is "$(q target "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'")" 0 \
  "nothing was restored"
q source "DROP PUBLICATION ferry, ferry_insert_only" >/dev/null
q target "DROP SCHEMA IF EXISTS ferry CASCADE" >/dev/null 2>&1

# --- ferry's own schema from an earlier run is adopted -----------------------
q target "CREATE SCHEMA ferry" >/dev/null
q source "CREATE SCHEMA ferry AUTHORIZATION mallory" >/dev/null    # for the reverse migration, below
start_following
"$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" status >"$TEST_TMP/st" 2>&1
like "$(cat "$TEST_TMP/st")" "following" "ferry's own (empty) schema from before is used"
kill -TERM "$FP"; wait "$FP"

# --- on the source, the switchover refuses before freezing ------------------
"$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" switchover --yes --timeout 30 >"$TEST_TMP/o3" 2>"$TEST_TMP/e3"; rc=$?
isnt "$rc" 0 "switchover refuses the source's schema ferry owned by another role"
like "$(grep ERROR "$TEST_TMP/e3")" "schema ferry on the source is owned by role mallory, not by postgres" "names the source and the owner"
unlike "$(cat "$TEST_TMP/e3")" "freezing" "before anything is frozen"
is "$(q source "SELECT count(*) FROM pg_db_role_setting")" 0 "the source is not frozen"
is "$(migration_phase)" following "phase stays following"
q source "DROP SCHEMA ferry" >/dev/null

# --- a hostile freeze record: rollback runs none of it -------------------------
# as if a switchover had been interrupted after saving its record
q target "UPDATE ferry.migration SET phase = 'switching',
            source_freeze = '{\"mode\":\"readonly\",\"dbname\":\"app\",\"prior\":\"off; CREATE TABLE public.pwned (x int)\",\"frozen_at\":\"2026-01-01 00:00:00+00\",\"revoked\":[]}'" >/dev/null
"$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" rollback --yes --timeout 30 >"$TEST_TMP/o4" 2>"$TEST_TMP/e4"; rc=$?
is "$(q source "SELECT count(*) FROM pg_class WHERE relname = 'pwned'")" 0 "the SQL in the record did not run"
isnt "$rc" 0 "rollback refuses the record"
like "$(grep ERROR "$TEST_TMP/e4")" "freeze record .* (unreadable|invalid)" "and says why"
is "$(q source "SELECT count(*) FROM pg_db_role_setting")" 0 "nothing was set on the source database"
# a hostile database name is an identifier, quoted
q source "DROP TABLE IF EXISTS pwned; ALTER DATABASE app RESET ALL" >/dev/null 2>&1
q target "UPDATE ferry.migration SET source_freeze = '{\"mode\":\"readonly\",\"dbname\":\"app\\\" SET search_path = x; CREATE TABLE public.pwned (x int); ALTER DATABASE \\\"app\",\"prior\":null,\"frozen_at\":\"2026-01-01 00:00:00+00\",\"revoked\":[]}'" >/dev/null
"$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" rollback --yes --timeout 30 >"$TEST_TMP/o5" 2>"$TEST_TMP/e5"
is "$(q source "SELECT count(*) FROM pg_class WHERE relname = 'pwned'")" 0 "nor the SQL in a database name"
# cleanup prints the SQL that reopens the database: with that name quoted
"$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" cleanup --force >"$TEST_TMP/o7" 2>"$TEST_TMP/e7"
like "$(cat "$TEST_TMP/o7")" 'to reopen it: ALTER DATABASE "app"" SET search_path = x; CREATE TABLE public.pwned \(x int\); ALTER DATABASE ""app" RESET' \
  "cleanup's hint quotes a database name read from the state"
done_testing
