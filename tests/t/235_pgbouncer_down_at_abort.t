#!/usr/bin/env bash
# Found by a red-team helper (issue 16), promise 1: test 232's case with the PgBouncer down at
# the moment the abort asks it. During the switch hook PgBouncer is
# restarted (it comes up unpaused, serving the target from the rewritten
# ini file) and a client writes through it (acknowledged, on the target);
# then it goes down again (a crash loop, its supervisor restarts it 3 s
# later) and the hook fails. pooler_unpaused_at() did not count a pooler
# it could not ask ("down, it serves no one"), so the abort cleared the intent,
# pointed the entry back in the file and unfroze the source: the
# acknowledged write was on a target the application no longer used. Now an unanswering pooler counts as possibly serving the target: forward only.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"
. "$(dirname "$0")/../lib/pgbouncer.sh"

follow_servers
pgb_start pgb source transaction
start_following
PIDF="$(dirname "$PGB_INI")/pgbouncer.pid"
APP="host=127.0.0.1 port=$PGB_PORT dbname=app user=postgres"
cat >"$TEST_TMP/hook.sh" <<SH
#!/bin/sh
stop() { pid=\$(cat "$PIDF"); kill -TERM "\$pid"; while kill -0 "\$pid" 2>/dev/null; do sleep 0.05; done; }
stop
runuser -u postgres -- pgbouncer -d "$PGB_INI" || exit 2
for i in \$(seq 1 100); do
  "$PGBIN/psql" -XAtq "$PGB_ADMIN" -c "SHOW VERSION" >/dev/null 2>&1 && break
  sleep 0.05
done
"$PGBIN/psql" -XAtq "$APP" -c "INSERT INTO kv VALUES (-79, 'through the restarted pooler', 0) RETURNING id" >"$TEST_TMP/client.out" 2>&1
# it crashes again; its supervisor brings it back 3 s later
stop
( sleep 3; runuser -u postgres -- pgbouncer -d "$PGB_INI" ) >/dev/null 2>&1 &
exit 1
SH
chmod +x "$TEST_TMP/hook.sh"
printf 'hooks:\n  switch: "%s"\n' "$TEST_TMP/hook.sh" >"$TEST_TMP/ferry.yaml"
"$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" --config "$TEST_TMP/ferry.yaml" switchover --yes --max-lag 5 \
  --pgbouncer "$PGB_ADMIN" --pgbouncer-ini "$PGB_INI" >"$TEST_TMP/sw.out" 2>"$TEST_TMP/sw.err"; rc=$?
is "$(cat "$TEST_TMP/client.out")" -79 "the client's write through the restarted PgBouncer was acknowledged (on the target)"
is "$rc" 1 "the failed switch hook: exit 1"
grep -E "ERROR|WARN" "$TEST_TMP/sw.err" | sed 's/^.*coordinator //; s/^/# /' | head -8
for _ in $(seq 1 100); do "$PGBIN/psql" -XAtq "$PGB_ADMIN" -c "SHOW VERSION" >/dev/null 2>&1 && break; sleep 0.1; done
diag "PgBouncer back: entry $(pgb_entry pgb); source port $SOURCE_PORT, target port $TARGET_PORT; phase $(migration_phase)"
unlike "$(q source "INSERT INTO kv VALUES (-80, 'on the old source', 0) RETURNING id" 2>&1)" "^-80$" "the source was not unfrozen (a client wrote on the target)"
is "$(PGPASSWORD= "$PGBIN/psql" -XAtq "$APP" -c "SELECT count(*) FROM kv WHERE id = -79" 2>&1)" 1 \
  "the pooler's clients still see the write they were told was committed"
unlike "$(cat "$TEST_TMP/sw.err")" "nothing was lost" "ferry does not claim that nothing was lost"
kill -TERM "$FP" 2>/dev/null; wait "$FP"
done_testing
