#!/usr/bin/env bash
# ferry clone fails cleanly: each usage, connection, configuration, privilege
# and target problem gives the documented exit code and one error line that
# names the problem and its fix, never shows a password, and leaves no
# replication slot (nor ferry state on the target) behind when nothing was
# committed yet. A failure after data was committed keeps the slot and state,
# and the same command resumes once the cause is fixed. Two ferry processes
# never drive one migration.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

# Regression checks for bugs found and fixed in src/ ($BUG names the bug):
# ordinary tests now.
todo() {  # todo EXIT_STATUS NAME BUG
  ok "$1" "$2 (regression: $3)"
}

# check EXIT NAME: ok, or a TODO test when $BUG names a known bug
check() {
  if [ -n "$BUG" ]; then todo "$1" "$2" "$BUG"; else ok "$1" "$2"; fi
}
matches() { printf '%s' "$1" | grep -Eq -- "$2"; echo $?; }

pg_start source "password_encryption = scram-sha-256"
pg_start target
q source "CREATE TABLE t (id int PRIMARY KEY, v text);
          INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000) g;
          CREATE TABLE secret (id int PRIMARY KEY, k text);
          INSERT INTO secret VALUES (1, 'x')"

# run ARGS...: ferry with a time limit; sets RC, OUT, ERR, ELAPSED
run() {
  local t0=$SECONDS
  timeout 300 "$FERRY" "$@" >"$TEST_TMP/out" 2>"$TEST_TMP/err"; RC=$?
  ELAPSED=$((SECONDS - t0))
  OUT=$(cat "$TEST_TMP/out")
  ERR=$(cat "$TEST_TMP/err")
}
clone() { run --source "$SOURCE_CONN" --target "$TARGET_CONN" clone "$@"; }

no_sanitizer() {
  unlike "$ERR" "runtime error|LeakSanitizer|AddressSanitizer" "$1: no sanitizer report"
}

# usage_error NAME REGEX...: exit 2, "ferry: ..." plus the Try hint, nothing
# else. With $BUG set, the exit code and line count are TODO tests.
usage_error() {
  local name=$1; shift
  if [ -n "$BUG" ]; then
    todo "$([ "$RC" = 2 ]; echo $?)" "$name: exit code 2 (got $RC)" "$BUG"
    todo "$([ "$(printf '%s\n' "$ERR" | wc -l)" = 2 ]; echo $?)" "$name: two lines on stderr" "$BUG"
  else
    is "$RC" 2 "$name: exit code 2"
    is "$(printf '%s\n' "$ERR" | wc -l)" 2 "$name: two lines on stderr"
  fi
  like "$(printf '%s\n' "$ERR" | sed -n 1p)" '^ferry: ' "$name: the first says what is wrong"
  like "$(printf '%s\n' "$ERR" | sed -n 2p)" '^Try "ferry --help" for more information\.$' "$name: the second is the Try hint"
  is "$OUT" "" "$name: nothing on stdout"
  local re
  for re in "$@"; do like "$ERR" "$re" "$name: message matches /$re/"; done
}

# config_error NAME REGEX...: exit 2, one "ferry: ..." line
config_error() {
  local name=$1; shift
  is "$RC" 2 "$name: exit code 2"
  is "$(printf '%s\n' "$ERR" | grep -c '^ferry: ')" 1 "$name: one \"ferry:\" line"
  unlike "$ERR" "ERROR" "$name: no log lines"
  local re
  for re in "$@"; do like "$ERR" "$re" "$name: message matches /$re/"; done
}

# failure NAME REGEX...: exit 1, exactly one ERROR line, matching every REGEX
failure() {
  local name=$1; shift
  is "$RC" 1 "$name: exit code 1"
  is "$(grep -c 'ERROR' "$TEST_TMP/err")" 1 "$name: exactly one ERROR line"
  [ "$(grep -c 'ERROR' "$TEST_TMP/err")" = 1 ] || diag "$ERR"
  local line re
  line=$(grep 'ERROR' "$TEST_TMP/err" | head -1)
  for re in "$@"; do like "$line" "$re" "$name: the error line matches /$re/"; done
  no_sanitizer "$name"
  log_lines_only "$name"
}

# Every stderr line is one of ferry's log lines (time, pid, role, level).
# With $BUG set this is a TODO test.
LOG_LINE='^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:.]+ UTC \[[0-9]+\] [a-z ]+[0-9]* (DEBUG|INFO|NOTICE|WARNING|ERROR): '
log_lines_only() {
  local stray
  stray=$(printf '%s\n' "$ERR" | grep -Ev "$LOG_LINE" | grep -v '^$')
  if [ -n "$BUG" ]; then
    todo "$([ -z "$stray" ]; echo $?)" "$1: every stderr line is a log line" "$BUG"
  else
    is "$stray" "" "$1: every stderr line is a log line"
  fi
}

ferry_schema() { q target "SELECT count(*) FROM pg_namespace WHERE nspname = 'ferry'"; }

# nothing_left NAME [SERVER]: no slot on the source, no ferry schema on the target
nothing_left() {
  is "$(slot_count "${2:-source}")" 0 "$1: no replication slot left on the source"
  is "$(ferry_schema)" 0 "$1: no ferry schema on the target"
}

# ------------------------------------------------------------------
# usage and configuration errors: exit 2, before any connection

clone --bogus
usage_error "unknown option" 'unknown option "--bogus"'
nothing_left "unknown option"

run --source "$SOURCE_CONN" clone
usage_error "missing --target" 'no target database' '--target' 'FERRY_TARGET'

run --target "$TARGET_CONN" clone
usage_error "missing --source" 'no source database' '--source'

BUG='main.c returns usage_error() for a bad --jobs/--index-jobs/--split-tables-larger-than without config_release(): LeakSanitizer turns exit 2 into 1'
clone --jobs 0
usage_error "--jobs 0" '--jobs must be a whole number from 1 to 256' '"0"'
clone --jobs abc
usage_error "--jobs abc" '--jobs must be' '"abc"'
clone --index-jobs 999
usage_error "--index-jobs 999" '--index-jobs must be'
clone --split-tables-larger-than lots
usage_error "bad split size" '--split-tables-larger-than must be a size' '"lots"'
BUG=
clone --jobs
usage_error "--jobs without a value" '"--jobs" needs a value'

clone --name Bad-Name
usage_error "invalid --name" 'invalid --name "Bad-Name"' 'lower-case letters'
FERRY_NAME=Bad-Name clone
usage_error "invalid FERRY_NAME" 'invalid --name "Bad-Name"'
nothing_left "invalid --name"

clone --config "$TEST_TMP/nonexistent.yaml"
config_error "missing config file" 'could not open config file' 'nonexistent\.yaml' 'No such file'

printf 'jobs: 2\nsource: [unclosed\n' > "$TEST_TMP/bad.yaml"
clone --config "$TEST_TMP/bad.yaml"
config_error "invalid YAML" 'bad\.yaml' 'invalid YAML' 'line [0-9]+'

printf 'jobs: 2\nsplit-tables-larger-than: 1GB\nindex_jbos: 3\n' > "$TEST_TMP/typo.yaml"
clone --config "$TEST_TMP/typo.yaml"
config_error "unknown config key" 'typo\.yaml' 'unknown key "index_jbos"' 'line 3'

printf 'jobs: many\n' > "$TEST_TMP/badint.yaml"
clone --config "$TEST_TMP/badint.yaml"
config_error "bad jobs in config" 'badint\.yaml' 'jobs' 'line 1'
nothing_left "config errors"

# ------------------------------------------------------------------
# wrong password: exit 1, the password fix, the password shown nowhere

q source "CREATE ROLE bob LOGIN PASSWORD 'RealPw99'" >/dev/null
cat > "$SOURCE_DATA/pg_hba.conf" <<'EOF'
local   all             all                                     trust
local   replication     all                                     trust
host    all             all             127.0.0.1/32            scram-sha-256
host    replication     all             127.0.0.1/32            scram-sha-256
EOF
chown postgres: "$SOURCE_DATA/pg_hba.conf"
as_pg "$PGBIN/pg_ctl" -D "$SOURCE_DATA" reload >/dev/null
for _ in $(seq 1 100); do  # the reload is asynchronous
  PGPASSWORD=wrong "$PGBIN/psql" -XAtq "host=127.0.0.1 port=$SOURCE_PORT dbname=app user=bob" -c 'SELECT 1' >/dev/null 2>&1 || break
  sleep 0.05
done
PGPASSWORD=wrong "$PGBIN/psql" -XAtq "host=127.0.0.1 port=$SOURCE_PORT dbname=app user=bob" -c 'SELECT 1' >/dev/null 2>&1
isnt "$?" 0 "TCP connections to the source now need the password"
is "$(PGPASSWORD=RealPw99 "$PGBIN/psql" -XAtq "host=127.0.0.1 port=$SOURCE_PORT dbname=app user=bob" -c 'SELECT 1' 2>&1)" 1 \
   "bob can log in over TCP with the right password"

run --source "host=127.0.0.1 port=$SOURCE_PORT dbname=app user=bob password=S3cretPw" --target "$TARGET_CONN" clone
failure "wrong password" 'source' 'password authentication failed' 'Fix: .*password'
unlike "$OUT$ERR" 'S3cretPw' "wrong password: the password appears nowhere in the output"
like "$ERR" "host='?127\.0\.0\.1'?" "wrong password: the message says which server"
nothing_left "wrong password"

# the same with a URI
run --source "postgresql://bob:S3cretPw@127.0.0.1:$SOURCE_PORT/app" --target "$TARGET_CONN" clone
failure "wrong password (URI)" 'password authentication failed' 'Fix: .*password'
unlike "$OUT$ERR" 'S3cretPw' "wrong password (URI): the password appears nowhere in the output"

# and from the environment
FERRY_SOURCE="host=127.0.0.1 port=$SOURCE_PORT dbname=app user=bob password=S3cretPw" \
  run --target "$TARGET_CONN" clone
failure "wrong password (FERRY_SOURCE)" 'password authentication failed'
unlike "$OUT$ERR" 'S3cretPw' "wrong password (FERRY_SOURCE): the password appears nowhere in the output"
nothing_left "wrong password (URI, FERRY_SOURCE)"

# no password at all where one is needed
run --source "host=127.0.0.1 port=$SOURCE_PORT dbname=app user=bob" --target "$TARGET_CONN" clone
failure "no password" 'no password supplied|password authentication failed' 'Fix: .*password'

# ------------------------------------------------------------------
# unreachable source and target

closed=$(free_port)
run --source "host=127.0.0.1 port=$closed dbname=app user=postgres" --target "$TARGET_CONN" clone
failure "closed source port" 'could not connect to the source' 'Connection refused' 'Fix: .*host=.*port='
ok $(( ELAPSED < 10 ? 0 : 1 )) "closed source port: fails quickly (${ELAPSED}s)"
nothing_left "closed source port"

run --source "$SOURCE_CONN" --target "host=127.0.0.1 port=$closed dbname=app user=postgres" clone
failure "closed target port" 'could not connect to the target' 'Connection refused' 'Fix: .*host=.*port='
is "$(slot_count source)" 0 "closed target port: no replication slot"

run --source "$SOURCE_CONN" --target "host=$TARGET_SOCK port=$TARGET_PORT dbname=nodb user=postgres" clone
failure "missing target database" 'database "nodb" does not exist' 'Fix: .*createdb'
is "$(slot_count source)" 0 "missing target database: no replication slot"

run --source "host=$SOURCE_SOCK port=$SOURCE_PORT dbname=app user=ghost" --target "$TARGET_CONN" clone
failure "missing source role" 'role "ghost" does not exist' 'Fix: .*user='
nothing_left "missing source role"

run --source "host=$SOURCE_SOCK port=$SOURCE_PORT dbname=app hots=x" --target "$TARGET_CONN" clone
failure "bad conninfo syntax" 'invalid connection option' 'Fix: '
nothing_left "bad conninfo syntax"

# ------------------------------------------------------------------
# wal_level = replica on the source

pg_start walrep "wal_level = replica"
is "$(q walrep 'SHOW wal_level')" "replica" "a second source with wal_level = replica"
q walrep "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)"
run --source "$WALREP_CONN" --target "$TARGET_CONN" clone
failure "wal_level = replica" 'wal_level' 'logical' 'Fix: .*ALTER SYSTEM SET wal_level = logical'
nothing_left "wal_level = replica" walrep
pg_stop walrep

# ------------------------------------------------------------------
# privileges on the source

q source "CREATE ROLE norepl LOGIN;
          GRANT SELECT ON ALL TABLES IN SCHEMA public TO norepl" >/dev/null
run --source "host=$SOURCE_SOCK port=$SOURCE_PORT dbname=app user=norepl" --target "$TARGET_CONN" clone
failure "role without REPLICATION" '"norepl"' 'replication' 'Fix: .*ALTER ROLE norepl WITH REPLICATION'
nothing_left "role without REPLICATION"

q source "CREATE ROLE repl LOGIN REPLICATION;
          GRANT SELECT ON ALL TABLES IN SCHEMA public TO repl;
          REVOKE SELECT ON public.secret FROM repl" >/dev/null
run --source "host=$SOURCE_SOCK port=$SOURCE_PORT dbname=app user=repl" --target "$TARGET_CONN" clone
failure "a table without SELECT" 'cannot read' 'public\.secret' 'Fix: .*GRANT SELECT'
unlike "$(grep ERROR "$TEST_TMP/err")" 'public\.t[,. ]' "a table without SELECT: readable tables are not listed"
nothing_left "a table without SELECT"

# the roles would follow the tables' GRANTs to the target
q source "DROP OWNED BY bob, norepl, repl; DROP ROLE bob, norepl, repl" >/dev/null

# ------------------------------------------------------------------
# a target that already has the source's tables

q target "CREATE TABLE public.t (id int)"
clone
failure "non-empty target" 'target database .* is not empty' 'public\.t' 'Fix: '
nothing_left "non-empty target"
is "$(q target "SELECT count(*) FROM public.t")" 0 "non-empty target: its table untouched"
q target "DROP TABLE public.t"

# ------------------------------------------------------------------
# pre-data fails: a table owned by a role the target does not have

q source "CREATE ROLE alice; CREATE TABLE owned_by_alice (id int PRIMARY KEY);
          ALTER TABLE owned_by_alice OWNER TO alice" >/dev/null
clone
BUG='libpq notices go raw to stderr: pgsql.c pg_connect() sets no notice processor, and clone.c after_failure() DROP SCHEMA ferry CASCADE prints "NOTICE: drop cascades to ..."'
failure "owner missing on the target" 'could not restore the schema' 'alice' 'Fix: .*--no-owner'
BUG=
nothing_left "owner missing on the target"
is "$(q target "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'")" 0 \
   "owner missing on the target: the pre-data transaction left nothing"
unlike "$ERR" 'the clone stopped before it finished' "owner missing on the target: no resume advice for a clone that left nothing"

# ------------------------------------------------------------------
# post-data fails after the data is committed: a POLICY for a role the
# target does not have. The slot and state stay, and the same command
# resumes once the role exists.

q source "CREATE ROLE carol; CREATE POLICY p ON public.t TO carol USING (true)" >/dev/null
clone --no-owner
is "$RC" 1 "post-data failure: exit code 1"
BUG='clone.c step_worker_run() reads the SQLSTATE from PQresultErrorField(res) after PQclear(res): heap-use-after-free on every failed post-data step'
check "$(matches "$ERR" 'ERROR: could not run .*role "carol" does not exist')" \
      "post-data failure: the error names the failing step and its cause"
log_errors() { grep -E "$LOG_LINE" "$TEST_TMP/err" | grep ' ERROR: '; }
check "$([ "$(log_errors | grep -vc 'the clone stopped before it finished')" = 1 ]; echo $?)" \
      "post-data failure: one ERROR line for the cause"
check "$(matches "$ERR" 'INFO: the clone can be resumed: run the same ferry clone again')" "post-data failure: says how to resume"
check "$(matches "$ERR" "pg_drop_replication_slot\\('ferry'\\)")" "post-data failure: says how to give up"
check "$([ "$(matches "$ERR" 'runtime error|LeakSanitizer|AddressSanitizer')" = 1 ]; echo $?)" "post-data failure: no sanitizer report"
BUG='clone.c after_failure() logs the resume advice as a second ERROR line'
n_err=$(log_errors | wc -l)
check $(( n_err == 1 ? 0 : 1 )) "post-data failure: exactly one ERROR line (got $n_err)"
BUG=
is "$(slot_count source)" 1 "post-data failure: the migration's slot is kept"
is "$(q target "SELECT phase, pre_data_done, data_done, post_data_done FROM ferry.migration WHERE name = 'ferry'")" \
   "cloning|t|t|f" "post-data failure: state says pre-data and data are done, post-data is not"
is "$(db_checksum target)" "$(db_checksum source)" "post-data failure: the data committed is complete"

q target "CREATE ROLE carol" >/dev/null
clone --no-owner
is "$RC" 0 "post-data failure: once the role exists, the same command finishes"
[ "$RC" = 0 ] || diag "$ERR"
like "$OUT" 'complete \(resumed\)' "post-data failure: the rerun resumed"
unlike "$ERR" 'ERROR' "post-data failure: the rerun has no errors"
no_sanitizer "post-data rerun"
is "$(slot_count source)" 1 "post-data rerun: one slot"
is "$(q target "SELECT phase FROM ferry.migration WHERE name = 'ferry'")" "cloned" "post-data rerun: phase cloned"
is "$(q target "SELECT count(*) FROM pg_policy WHERE polname = 'p'")" "1" "post-data rerun: the policy is there"
is "$(db_checksum target)" "$(db_checksum source)" "post-data rerun: same contents"

# ------------------------------------------------------------------
# one migration, two ferry processes at once

QDB=postgres q source "SELECT pg_drop_replication_slot('ferry')" >/dev/null
QDB=postgres q target "CREATE DATABASE app2" >/dev/null
TARGET2="host=$TARGET_SOCK port=$TARGET_PORT dbname=app2 user=postgres"
q source "CREATE TABLE big (id bigint, v text);
          INSERT INTO big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 1300000) g" >/dev/null
diag "big: $(q source "SELECT pg_size_pretty(pg_table_size('big'))")"

# Hold the first clone at its slot creation (which waits for the running
# transactions, this one with an xid included) so the second one surely
# starts while the first runs and holds the migration lock.
PGAPPNAME=locker "$PGBIN/psql" -XAtq -h "$SOURCE_SOCK" -p "$SOURCE_PORT" -U postgres -d app \
  -c "BEGIN; SELECT pg_catalog.txid_current(); SELECT pg_sleep(300)" >/dev/null 2>&1 &
locker=$!
for _ in $(seq 1 200); do
  [ "$(q source "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'locker' AND backend_xid IS NOT NULL")" = 1 ] && break
  sleep 0.05
done

timeout 300 "$FERRY" --source "$SOURCE_CONN" --target "$TARGET2" --name conc clone --no-owner --jobs 1 \
  >"$TEST_TMP/out1" 2>"$TEST_TMP/err1" &
first=$!
for _ in $(seq 1 400); do
  [ "$(QDB=postgres q source "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'conc'")" = 1 ] && break
  sleep 0.05
done
is "$(QDB=postgres q source "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'conc'")" 1 \
   "the first clone is creating its slot (waiting for a running transaction)"
is "$(QDB=app2 q target "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")" 1 "the first clone holds the migration lock"

run --source "$SOURCE_CONN" --target "$TARGET2" --name conc clone --no-owner --jobs 1
kill -0 "$first" 2>/dev/null
ok $? "the first clone is still running when the second one gives up"
failure "second concurrent clone" 'another ferry process' '"conc"' 'Fix: '
is "$(QDB=postgres q source "SELECT string_agg(slot_name, ',') FROM pg_replication_slots")" "conc" \
   "second concurrent clone: only the first clone's slot exists"
is "$(QDB=app2 q target "SELECT string_agg(name || ':' || phase, ',') FROM ferry.migration")" "conc:cloning" \
   "second concurrent clone: the first clone's state is untouched"

q source "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'locker'" >/dev/null
wait "$locker" 2>/dev/null

wait "$first"; rc1=$?
is "$rc1" 0 "the first clone finishes undisturbed"
[ "$rc1" = 0 ] || diag "$(tail -5 "$TEST_TMP/err1")"
unlike "$(cat "$TEST_TMP/err1")" 'ERROR|runtime error|LeakSanitizer' "the first clone logged no errors"
is "$(QDB=app2 q target "SELECT count(*) FROM big")" 1300000 "the first clone copied every row"
is "$(QDB=postgres q source "SELECT string_agg(slot_name, ',') FROM pg_replication_slots")" "conc" "one slot, the first clone's"

# and a different migration name on the same target is not blocked by the lock
# but by the non-empty target (it has no state for that name)
run --source "$SOURCE_CONN" --target "$TARGET2" --name other clone
failure "another name on a cloned target" 'not empty' 'Fix: '
is "$(QDB=postgres q source "SELECT string_agg(slot_name, ',') FROM pg_replication_slots")" "conc" \
   "another name on a cloned target: no new slot"
is "$(QDB=app2 q target "SELECT string_agg(name, ',') FROM ferry.migration")" "conc" \
   "another name on a cloned target: the state of the cloned migration is intact"

done_testing
