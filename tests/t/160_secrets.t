#!/usr/bin/env bash
# Secrets (issue 12 item 9): no conninfo option that libpq marks secret
# (dispchar '*': password, sslpassword) reaches a command line (`ps` shows
# ferry's own argv and pg_dump's) or a message ferry prints. pg_dump gets
# the password as PGPASSWORD and sslpassword from a 0600 service file that
# is gone when the dump is. The source requires a scram password over TCP;
# sslmode=disable, so sslpassword is parsed by libpq but never used.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

PW=Pw-Src-Secret-17
SSLPW=SslPw-Secret-29
follow_servers
q source "CREATE TABLE slowpoke (id int PRIMARY KEY)" >/dev/null
q source "CREATE ROLE sec LOGIN SUPERUSER REPLICATION PASSWORD '$PW'" >/dev/null
as_pg sh -c "{ echo 'host all sec 127.0.0.1/32 scram-sha-256'; echo 'host replication sec 127.0.0.1/32 scram-sha-256'; cat '$SOURCE_DATA/pg_hba.conf'; } >'$SOURCE_DATA/hba.new' && mv '$SOURCE_DATA/hba.new' '$SOURCE_DATA/pg_hba.conf'"
q source "SELECT pg_reload_conf()" >/dev/null
SEC_CONN="host=127.0.0.1 port=$SOURCE_PORT dbname=app user=sec sslmode=disable password=$PW sslpassword=$SSLPW"
"$PGBIN/psql" -XAtq "host=127.0.0.1 port=$SOURCE_PORT dbname=app user=sec sslmode=disable password=wrong" -c "SELECT 1" >/dev/null 2>&1
isnt $? 0 "the source really checks the password"
SECRETS="$PW|$SSLPW"
export TMPDIR="$TEST_TMP"    # ferry's dump directory (and its service file) land here

# --- a connection error names the server, not its secrets ------------------
"$FERRY" --source "host=127.0.0.1 port=$SOURCE_PORT dbname=app user=sec sslmode=disable password=Wrong-Pw-41 sslpassword=$SSLPW" \
  --target "$TARGET_CONN" clone >"$TEST_TMP/o1" 2>"$TEST_TMP/e1"; rc=$?
isnt "$rc" 0 "a wrong password fails"
like "$(cat "$TEST_TMP/e1")" "could not connect to the source \(.*host='127.0.0.1'.*\): .*password" "the error names the server and the reason"
unlike "$(cat "$TEST_TMP/o1" "$TEST_TMP/e1")" "Wrong-Pw-41|$SSLPW|sslpassword" "no password or sslpassword in the error"
"$FERRY" check --source "host=127.0.0.1 port=$SOURCE_PORT dbname=app user=sec sslmode=disable password=Wrong-Pw-41 sslpassword=$SSLPW" \
  --target "$TARGET_CONN" >"$TEST_TMP/o2" 2>"$TEST_TMP/e2"
like "$(cat "$TEST_TMP/o2")" "source +connection" "check reports the failed connection"
unlike "$(cat "$TEST_TMP/o2" "$TEST_TMP/e2")" "Wrong-Pw-41|$SSLPW|sslpassword" "no secret in check's report"

# --- ferry start: ps of ferry and of its pg_dump ---------------------------
# once ferry has made its slot (which waits for running transactions), a session
# takes table slowpoke in ACCESS EXCLUSIVE mode: pg_dump waits at its lock,
# long enough to read its command line and environment
PGAPPNAME=locker "$PGBIN/psql" -XAtq -h "$SOURCE_SOCK" -p "$SOURCE_PORT" -U postgres app \
  -c "DO \$\$BEGIN WHILE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = 'ferry' AND confirmed_flush_lsn IS NOT NULL) LOOP PERFORM pg_sleep(0.005); END LOOP; END\$\$" \
  -c "BEGIN; LOCK TABLE slowpoke IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120); COMMIT;" >/dev/null 2>&1 &
LOCKER=$!
"$FERRY" --source "$SEC_CONN" --target "$TARGET_CONN" --verbose start --jobs 2 >"$TEST_TMP/out" 2>"$TEST_TMP/err" &
FP=$!
DUMP=""
for _ in $(seq 1 300); do
  DUMP=$(pgrep -P "$FP" -x pg_dump | head -1)
  [ -n "$DUMP" ] && break
  sleep 0.1
done
ok "$([ -n "$DUMP" ]; echo $?)" "pg_dump runs (held by the lock)" || tail -5 "$TEST_TMP/err" >&2
sleep 0.5
FERRY_ARGS=$(tr '\0' ' ' <"/proc/$FP/cmdline")
like "$FERRY_ARGS" "user=sec" "ferry's own argv is readable"
unlike "$FERRY_ARGS" "$SECRETS" "ferry's argv shows neither password nor sslpassword"
unlike "$(ps -o args= -p "$FP")" "$SECRETS" "nor does ps for ferry"
DUMP_ARGS=$(tr '\0' ' ' <"/proc/$DUMP/cmdline")
like "$DUMP_ARGS" "--dbname" "pg_dump's argv is readable"
diag "pg_dump: $DUMP_ARGS"
unlike "$DUMP_ARGS" "$SECRETS|sslpassword" "pg_dump's argv shows no secret"
unlike "$(ps -o args= -p "$DUMP")" "$SECRETS" "nor does ps for pg_dump"
# the child's environment holds PGPASSWORD: readable by its own user only
is "$(stat -c %a "/proc/$DUMP/environ")" 400 "pg_dump's environment is readable by its user only"
unlike "$(tr '\0' '\n' <"/proc/$DUMP/environ")" "$SSLPW" "sslpassword is not in its environment either"
SVC=$(tr '\0' '\n' <"/proc/$DUMP/environ" | sed -n 's/^PGSERVICEFILE=//p')
ok "$([ -n "$SVC" ] && [ -f "$SVC" ]; echo $?)" "pg_dump reads a service file (PGSERVICEFILE=$SVC)"
is "$(stat -c %a "$SVC" 2>/dev/null)" 600 "the service file is 0600"
is "$(stat -c %a "$(dirname "$SVC")" 2>/dev/null)" 700 "in a 0700 directory"
like "$(cat "$SVC" 2>/dev/null)" "sslpassword=$SSLPW" "the service file carries sslpassword"
kill "$LOCKER"; q source "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'locker'" >/dev/null
wait "$LOCKER" 2>/dev/null
wait_following ferry 90; ok $? "ferry start follows" || tail -5 "$TEST_TMP/err" >&2
ok "$([ -n "$SVC" ] && [ ! -e "$SVC" ]; echo $?)" "the service file is removed once pg_dump is done"
"$FERRY" --source "$SEC_CONN" --target "$TARGET_CONN" status >"$TEST_TMP/st" 2>&1
"$FERRY" --source "$SEC_CONN" --target "$TARGET_CONN" --json status >>"$TEST_TMP/st" 2>&1
like "$(cat "$TEST_TMP/st")" "following" "status answers"
unlike "$(cat "$TEST_TMP/st")" "$SECRETS" "no secret in status"
stop_cleanly
unlike "$(cat "$TEST_TMP/out" "$TEST_TMP/err")" "$SECRETS" "no secret in ferry start's output or debug log"

# --- a dump that fails: the service file goes too ---------------------------
QDB=postgres q target "CREATE DATABASE app2" >/dev/null
find "$TEST_TMP" -mindepth 1 -maxdepth 1 -name 'ferry-*' -exec rm -rf {} + 2>/dev/null
mkdir -p "$TEST_TMP/bin" && printf '#!/bin/sh\n[ "$1" = --version ] && exec %s/pg_dump --version\nls "$(dirname "$PGSERVICEFILE")" >%s/seen; cat "$PGSERVICEFILE" >>%s/seen; env >%s/env; exit 1\n' \
  "$PGBIN" "$TEST_TMP" "$TEST_TMP" "$TEST_TMP" >"$TEST_TMP/bin/pg_dump" && chmod 755 "$TEST_TMP/bin/pg_dump"
ln -sf "$PGBIN/pg_restore" "$TEST_TMP/bin/pg_restore"
# the source from FERRY_SOURCE this time: ferry's environment, not its children's
FERRY_SOURCE="$SEC_CONN" "$FERRY" --target "${TARGET_CONN/dbname=app/dbname=app2}" --name second --pg-bin "$TEST_TMP/bin" clone >"$TEST_TMP/o3" 2>"$TEST_TMP/e3"; rc=$?
isnt "$rc" 0 "a failing pg_dump fails the clone"
like "$(cat "$TEST_TMP/seen" 2>/dev/null)" "sslpassword" "the failing pg_dump had its service file"
like "$(cat "$TEST_TMP/env" 2>/dev/null)" "^PGPASSWORD=$PW" "pg_dump's environment has PGPASSWORD"
unlike "$(cat "$TEST_TMP/env" 2>/dev/null)" "FERRY_SOURCE|FERRY_TARGET|$SSLPW" "but not FERRY_SOURCE (with both secrets) nor FERRY_TARGET"
is "$(find "$TEST_TMP" -maxdepth 2 -path "$TEST_TMP/ferry-*" | wc -l)" 0 "no dump directory or service file is left behind"
unlike "$(cat "$TEST_TMP/o3" "$TEST_TMP/e3")" "$SECRETS" "no secret in its error"
done_testing
