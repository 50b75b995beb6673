#!/usr/bin/env bash
# ferry holds an admin session on each PgBouncer from the preconditions to
# the resume. PgBouncer restarted in between (a deploy, a crash and its
# supervisor) leaves that session dead, which shows only when it is used:
# the PAUSE must reconnect and go on, not abort the switchover on a pooler
# that is up again. Here the pre_freeze hook restarts PgBouncer.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"
. "$(dirname "$0")/../lib/pgbouncer.sh"

follow_servers
pgb_start pgb source transaction
start_following
PIDF="$(dirname "$PGB_INI")/pgbouncer.pid"
cat >"$TEST_TMP/restart.sh" <<SH
#!/bin/sh
pid=\$(cat "$PIDF"); kill -TERM "\$pid"
while kill -0 "\$pid" 2>/dev/null; do sleep 0.05; done
runuser -u postgres -- pgbouncer -d "$PGB_INI" || exit 1
for i in \$(seq 1 100); do
  "$PGBIN/psql" -XAtq "$PGB_ADMIN" -c "SHOW VERSION" >/dev/null 2>&1 && exit 0
  sleep 0.05
done
exit 1
SH
chmod +x "$TEST_TMP/restart.sh"
printf 'hooks:\n  pre_freeze: "%s"\n' "$TEST_TMP/restart.sh" >"$TEST_TMP/ferry.yaml"
old=$(cat "$PIDF")
"$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" --config "$TEST_TMP/ferry.yaml" switchover --yes --max-lag 5 \
  --pgbouncer "$PGB_ADMIN" --pgbouncer-ini "$PGB_INI" >"$TEST_TMP/sw.out" 2>"$TEST_TMP/sw.err"; rc=$?
isnt "$(cat "$PIDF")" "$old" "PgBouncer was restarted during the switchover"
is "$rc" 0 "the switchover goes on through the restarted PgBouncer: exit 0"
[ "$rc" = 0 ] || diag "$(grep -E 'ERROR|WARN' "$TEST_TMP/sw.err" | head -5)"
like "$(cat "$TEST_TMP/sw.err")" "its admin session was lost \(PgBouncer restarted\?\); reconnecting to run SHOW VERSION" "the log says it reconnected"
is "$(migration_phase)" switched "phase switched"
is "$(pgb_entry pgb | cut -d'|' -f2)" "$TARGET_PORT" "the entry points at the target"
is "$(pgb_entry pgb | cut -d'|' -f4)" 0 "and is resumed"
is "$(PGPASSWORD= "$PGBIN/psql" -XAtq "host=127.0.0.1 port=$PGB_PORT dbname=app user=postgres" -c "INSERT INTO kv VALUES (-78, 'through the pooler', 0) RETURNING id")" -78 \
  "clients of the pooler write on the new primary"
is "$(q target "SELECT count(*) FROM kv WHERE id = -78")" 1 "there"
kill -TERM "$FP" 2>/dev/null; wait "$FP"
done_testing
