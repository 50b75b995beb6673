#!/usr/bin/env bash
# ferry check: each pre-flight problem is found, named, comes with its fix,
# and sets the exit status (0 ok or warnings only, 3 blocking).
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

# diag for multi-line text: every line a TAP comment (report rows begin
# with "ok", which prove would otherwise read as test results)
diag() { printf '%s\n' "$*" | head -50 | sed 's/^/# /'; }

# run_check ARGS...: sets OUT (stdout), ERR (stderr) and RC
run_check() {
  OUT=$("$FERRY" check "$@" 2>"$TEST_TMP/stderr"); RC=$?
  ERR=$(cat "$TEST_TMP/stderr")
}

# json_get EXPR: evaluate a Python expression over the JSON document in OUT
# (bound to d); perl's core JSON::PP is the fallback where python3 is missing.
json_get() {
  if command -v python3 >/dev/null 2>&1; then
    printf '%s' "$OUT" | python3 -c "import json, sys
d = json.load(sys.stdin)
v = $1
print(str(v).lower() if isinstance(v, bool) else v)"
  else
    printf '%s' "$OUT" | perl -MJSON::PP -e '
      my $d = decode_json(join("", <STDIN>)); my $e = shift;
      if ($e =~ /^d\["(\w+)"\]$/) { my $v = $d->{$1}; print JSON::PP::is_bool($v) ? ($v ? "true" : "false") : $v, "\n"; exit }
      if ($e =~ /^\[c\["status"\] for c in d\["checks"\] if c\["check"\] == "([^"]+)"\]\[0\]$/) {
        print((grep { $_->{check} eq $1 } @{$d->{checks}})[0]->{status}, "\n"); exit }
      die "json_get: unsupported expression $e\n";' "$1"
  fi
}
# rc_is WANT NAME: the exit status of the last run_check, with its output on failure
rc_is() {
  if [ "$RC" = "$1" ]; then ok 0 "$2"
  else ok 1 "$2"; diag "exit status $RC, want $1"; diag "stdout: $OUT"; diag "stderr: $ERR"; fi
}
status_of() { json_get "[c[\"status\"] for c in d[\"checks\"] if c[\"check\"] == \"$1\"][0]"; }

pg_start source
pg_start target
q source "CREATE TABLE t (id serial PRIMARY KEY, v text); INSERT INTO t (v) VALUES ('a'), ('b')"

# --- a clean pair ----------------------------------------------------------
run_check --source "$SOURCE_CONN" --target "$TARGET_CONN"
rc_is 0 "clean pair: exit 0"
like "$OUT" '^ok +source +connection' "clean pair: source connection row"
like "$OUT" 'ok +source +wal_level +wal_level is logical' "clean pair: wal_level ok"
like "$OUT" 'check: 0 blocking problems, 0 warnings' "clean pair: summary line"
unlike "$OUT" '^(WARN|FAIL) ' "clean pair: no warning or failure rows"

run_check --source "$SOURCE_CONN" --target "$TARGET_CONN" --json
rc_is 0 "clean pair --json: exit 0"
is "$(json_get 'd["blocking"]')" 0 "JSON parses and has blocking = 0"
is "$(json_get 'd["ok"]')" true "JSON ok = true"
is "$(json_get 'd["name"]')" ferry "JSON carries the migration name"
is "$(status_of 'replication privilege')" ok "JSON has a row per check with its status"

# --- extensions ------------------------------------------------------------
q source "CREATE EXTENSION pg_trgm"
run_check --source "$SOURCE_CONN" --target "$TARGET_CONN"
rc_is 0 "source-only pg_trgm: not blocking, the target can create it"
like "$OUT" 'ok +target +extensions .*pg_trgm' "pg_trgm listed as available on the target"

# An extension installed on the source whose files the target lacks: both
# servers share one installation, so install a throwaway extension, create
# it on the source, and remove its files before running the check.
EXTDIR="$("$PGBIN/pg_config" --sharedir)/extension"
if [ -w "$EXTDIR" ]; then
  EXT="ferry_test_ext_$$"
  trap 'rm -f "$EXTDIR/$EXT.control" "$EXTDIR/$EXT--1.0.sql"; pg_cleanup' EXIT
  printf "default_version = '1.0'\nrelocatable = true\n" > "$EXTDIR/$EXT.control"
  echo "CREATE FUNCTION ferry_test_ext_fn() RETURNS int LANGUAGE sql AS 'SELECT 1';" > "$EXTDIR/$EXT--1.0.sql"
  q source "CREATE EXTENSION $EXT"
  rm -f "$EXTDIR/$EXT.control" "$EXTDIR/$EXT--1.0.sql"
  trap pg_cleanup EXIT
  run_check --source "$SOURCE_CONN" --target "$TARGET_CONN"
  rc_is 3 "extension missing on the target: exit 3"
  like "$OUT" "FAIL +target +extensions .*not available on the target: $EXT" "the missing extension is named"
  like "$OUT" "  fix: install the package providing extension $EXT on the target, e.g. postgresql-15-ferry-test-ext-$$" "fix names the package to install"
  q source "DROP EXTENSION $EXT"
else
  ok 0 "# SKIP cannot write $EXTDIR"; ok 0 "# SKIP"; ok 0 "# SKIP"
fi

# --- a table without a primary key: warning only ---------------------------
q source "CREATE TABLE nopk (v text)"
run_check --source "$SOURCE_CONN" --target "$TARGET_CONN"
rc_is 0 "table without primary key: still exit 0"
like "$OUT" 'WARN +source +replica identity .*public\.nopk' "warning row names the table"
like "$OUT" 'published for inserts only and re-copied at switchover' "warning explains the consequence"
like "$OUT" '  fix: ALTER TABLE public.nopk ADD PRIMARY KEY \(<columns>\); or, if no key exists, ALTER TABLE public.nopk REPLICA IDENTITY FULL;' "fix gives both statements"
like "$OUT" 'check: 0 blocking problems, 1 warning' "summary counts the warning"

# --- a role without REPLICATION --------------------------------------------
q source "CREATE ROLE norepl LOGIN PASSWORD 'norepl-pw'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO norepl"
run_check --source "host=$SOURCE_SOCK port=$SOURCE_PORT dbname=app user=norepl" --target "$TARGET_CONN"
rc_is 3 "role without REPLICATION: exit 3"
like "$OUT" 'FAIL +source +replication privilege +role norepl ' "replication privilege row fails"
like "$OUT" '  fix: ALTER ROLE norepl WITH REPLICATION;' "fix is ALTER ROLE ... WITH REPLICATION"
q source "DROP OWNED BY norepl; DROP ROLE norepl"

# --- missing SELECT privilege ----------------------------------------------
q source "CREATE ROLE nosel LOGIN REPLICATION; GRANT SELECT ON t TO nosel; GRANT SELECT ON t_id_seq TO nosel"
NOSEL="host=$SOURCE_SOCK port=$SOURCE_PORT dbname=app user=nosel"
run_check --source "$NOSEL" --target "$TARGET_CONN"
rc_is 3 "missing SELECT: exit 3"
like "$OUT" 'FAIL +source +select privilege +role nosel may not read 1 of the tables and sequences to migrate: public\.nopk' "the unreadable table is named"
like "$OUT" 'ok +source +replication privilege +role nosel ' "REPLICATION itself is fine for nosel"
like "$OUT" '  fix: GRANT SELECT ON ALL TABLES IN SCHEMA public TO nosel;' "fix is the GRANT"
run_check --source "$NOSEL" --target "$TARGET_CONN" --exclude-table nopk --json
is "$(status_of 'select privilege')" ok "--exclude-table leaves the unreadable table out"
q source "DROP OWNED BY nosel; DROP ROLE nosel"

# --- target not empty ------------------------------------------------------
q target "CREATE TABLE t (id int)"
run_check --source "$SOURCE_CONN" --target "$TARGET_CONN"
rc_is 3 "conflicting table on the target: exit 3"
like "$OUT" 'FAIL +target +target empty +target already has table public\.t ' "the conflicting table is named"
like "$OUT" '  fix: drop it or point --target at an empty database' "fix says what to do"
q target "CREATE TABLE unrelated (id int)"
run_check --source "$SOURCE_CONN" --target "$TARGET_CONN"
like "$OUT" 'FAIL +target +other objects .*table public\.unrelated' "an unrelated table blocks too: clone refuses a target with tables"
q target "DROP TABLE t"
run_check --source "$SOURCE_CONN" --target "$TARGET_CONN"
rc_is 3 "an unrelated table alone: exit 3 (check said ready, then clone refused)"
like "$OUT" 'FAIL +target +target empty +the target database is not empty: 1 relation that the source does not have: table public\.unrelated' "naming it"
q target "DROP TABLE unrelated; CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'"
run_check --source "$SOURCE_CONN" --target "$TARGET_CONN"
like "$OUT" 'WARN +target +target empty +the target database is not empty: 1 unrelated object: function public\.f' "an unrelated function is a warning (clone restores around it)"
q target "DROP FUNCTION f(); CREATE TABLE t (id int)"

# --- resume: the target holds this migration's state -----------------------
q target "CREATE SCHEMA ferry; CREATE TABLE ferry.migration (name text PRIMARY KEY, phase text NOT NULL,
  slot_name text NOT NULL, start_lsn pg_lsn, pre_data_done boolean NOT NULL DEFAULT false,
  data_done boolean NOT NULL DEFAULT false, post_data_done boolean NOT NULL DEFAULT false);
  INSERT INTO ferry.migration (name, phase, slot_name) VALUES ('ferry', 'cloning', 'ferry')"
q source "SELECT 1 FROM pg_create_logical_replication_slot('ferry', 'pgoutput')" >/dev/null
run_check --source "$SOURCE_CONN" --target "$TARGET_CONN"
rc_is 0 "resume of the same migration: exit 0 despite the existing table and slot"
like "$OUT" 'ok +target +target empty .*state of migration ferry \(phase cloning\)' "resume is recognised"
like "$OUT" 'ok +source +existing slot .*ferry resumes' "its slot is expected"
run_check --source "$SOURCE_CONN" --target "$TARGET_CONN" --name other
rc_is 3 "another migration name over the same target: exit 3"
q target "DELETE FROM ferry.migration"
run_check --source "$SOURCE_CONN" --target "$TARGET_CONN"
rc_is 3 "slot without state on the target: exit 3"
like "$OUT" 'FAIL +source +existing slot +replication slot ferry already exists' "leftover slot is named"
like "$OUT" "  fix: SELECT pg_drop_replication_slot\('ferry'\);" "fix drops the slot"
q source "SELECT pg_drop_replication_slot('ferry')" >/dev/null
q target "SET client_min_messages = warning; DROP SCHEMA ferry CASCADE; DROP TABLE t"

# --- roles are not copied ----------------------------------------------------
q source "CREATE ROLE app_owner; ALTER TABLE nopk OWNER TO app_owner"
run_check --source "$SOURCE_CONN" --target "$TARGET_CONN"
rc_is 3 "owner role missing on the target: exit 3"
like "$OUT" 'FAIL +target +roles .*: app_owner' "the missing role is named"
like "$OUT" '  fix: CREATE ROLE app_owner; .*--no-owner' "fix creates the role or skips owners"
printf 'no_owner: true\n' > "$TEST_TMP/noowner.yaml"
run_check --source "$SOURCE_CONN" --target "$TARGET_CONN" --config "$TEST_TMP/noowner.yaml"
rc_is 0 "with no_owner the missing owner is fine"
q source "DROP TABLE nopk; DROP ROLE app_owner"

# --- not migrated: named, warnings -------------------------------------------
q source "CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY); SELECT lo_create(0)" >/dev/null
run_check --source "$SOURCE_CONN" --target "$TARGET_CONN"
rc_is 0 "unlogged table and large object: warnings only"
like "$OUT" 'WARN +source +unlogged tables .*public\.scratch' "unlogged table named"
like "$OUT" 'WARN +source +large objects +1 large object' "large objects counted"
q source "DROP TABLE scratch; SELECT lo_unlink(oid) FROM pg_largeobject_metadata" >/dev/null

# --- pg_dump older than the source -------------------------------------------
mkdir -p "$TEST_TMP/oldbin"
printf '#!/bin/sh\necho "pg_dump (PostgreSQL) 9.6.24"\n' > "$TEST_TMP/oldbin/pg_dump"
printf '#!/bin/sh\necho "pg_restore (PostgreSQL) 9.6.24"\n' > "$TEST_TMP/oldbin/pg_restore"
chmod 755 "$TEST_TMP/oldbin/pg_dump" "$TEST_TMP/oldbin/pg_restore"
run_check --source "$SOURCE_CONN" --target "$TARGET_CONN" --pg-bin "$TEST_TMP/oldbin"
rc_is 3 "pg_dump older than the source: exit 3"
like "$OUT" 'FAIL +source +pg_dump .*version 9\.6\.24, older than the source server \(15\)' "the old pg_dump is named"
like "$OUT" '  fix: install postgresql-client-15' "fix installs the client package"

# --- unreachable target --------------------------------------------------------
DEAD_PORT=$(free_port)
run_check --source "$SOURCE_CONN" --target "host=127.0.0.1 port=$DEAD_PORT dbname=app user=postgres connect_timeout=5"
rc_is 3 "unreachable target: exit 3"
like "$OUT" 'FAIL +target +connection +could not connect' "connectivity row fails"
is "$(printf '%s\n' "$OUT" | grep -A1 'FAIL *target *connection' | sed -n 2p | grep -c '^  fix: check host= and port=')" 1 \
   "one-line fix under the connection row"
unlike "$OUT" 'target +(wal_level|target empty|roles)' "the other target checks are skipped"
like "$OUT" 'ok +source +wal_level' "the source is still checked"

# --- wal_level = replica, then no free slot or WAL sender ---------------------
pg_start source2 "wal_level = replica" "password_encryption = scram-sha-256"
run_check --source "$SOURCE2_CONN" --target "$TARGET_CONN"
rc_is 3 "wal_level = replica: exit 3"
like "$OUT" 'FAIL +source +wal_level +wal_level is replica' "wal_level row fails"
like "$OUT" '  fix: ALTER SYSTEM SET wal_level = logical; then restart the source server' "fix is ALTER SYSTEM and restart"

for setting in "wal_level = logical" "max_replication_slots = 0" "max_wal_senders = 0"; do
  QDB=postgres q source2 "ALTER SYSTEM SET $setting"
done
pg_restart source2
run_check --source "$SOURCE2_CONN" --target "$TARGET_CONN"
rc_is 3 "no free slot or WAL sender: exit 3"
like "$OUT" '  fix: ALTER SYSTEM SET max_replication_slots = 1; then restart the source server' "slot fix"
like "$OUT" '  fix: ALTER SYSTEM SET max_wal_senders = 1; then restart the source server' "WAL sender fix"

# --- wrong password: reported, never printed ----------------------------------
q source2 "CREATE ROLE pwuser LOGIN PASSWORD 'R1ght-S3cret-pw'"
sed -i 's/^host\( *\)all\( *\)all\( *\)127\.0\.0\.1\/32\( *\)trust/host\1all\2all\3127.0.0.1\/32\4scram-sha-256/' "$SOURCE2_DATA/pg_hba.conf"
as_pg "$PGBIN/pg_ctl" -D "$SOURCE2_DATA" reload >/dev/null
sleep 1
run_check --source "host=127.0.0.1 port=$SOURCE2_PORT dbname=app user=pwuser password=Wr0ng-S3cret-pw" --target "$TARGET_CONN"
rc_is 3 "wrong password: exit 3"
like "$OUT" 'FAIL +source +connection .*password authentication failed' "the reason is reported"
like "$OUT" '  fix: check the user name and password' "fix names the password"
unlike "$OUT$ERR" 'Wr0ng-S3cret-pw' "the wrong password is printed nowhere"
run_check --source "host=127.0.0.1 port=$SOURCE2_PORT dbname=app user=pwuser password=R1ght-S3cret-pw" --target "$TARGET_CONN" --json
like "$(status_of connection)" '^ok$' "the right password connects"
unlike "$OUT$ERR" 'R1ght-S3cret-pw' "the right password is printed nowhere"

# --- a target user that may not set session_replication_role ----------------
q target "CREATE ROLE plainuser LOGIN; GRANT CREATE ON DATABASE app TO plainuser; GRANT CREATE ON SCHEMA public TO plainuser" >/dev/null
run_check --source "$SOURCE_CONN" --target "host=$TARGET_SOCK port=$TARGET_PORT dbname=app user=plainuser" --json
rc_is 3 "a target user that cannot set session_replication_role is blocking"
is "$(status_of 'apply role')" "blocking" "the apply role row says so"
like "$OUT" "superuser" "and the fix says which role to connect as"
run_check --source "$SOURCE_CONN" --target "$TARGET_CONN" --json
is "$(status_of 'apply role')" "ok" "a superuser target passes the apply role check"

done_testing
