#!/usr/bin/env bash
# The PAUSE that keeps a repointed PgBouncer undoable lives in the
# PgBouncer process: restarted after ferry rewrote its entry (a deploy, a
# supervisor, or a switch hook that restarts it), it comes up unpaused and
# serves the target. If the switch then fails, the abort must not point it
# back and unfreeze the source: a client has written on the target, and
# that write would be lost. ferry must stay forward-only (source frozen,
# the entry at the target, the intent kept), say why, and a rerun finishes
# the switch with nothing lost.
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
[ -f "$TEST_TMP/hook_ok" ] && exit 0
pid=\$(cat "$PIDF"); kill -TERM "\$pid"
while kill -0 "\$pid" 2>/dev/null; do sleep 0.05; done
runuser -u postgres -- pgbouncer -d "$PGB_INI" || exit 2
for i in \$(seq 1 100); do
  "$PGBIN/psql" -XAtq "$PGB_ADMIN" -c "SHOW VERSION" >/dev/null 2>&1 && break
  sleep 0.05
done
# a client of the pooler gets through (acknowledged), then the hook fails
"$PGBIN/psql" -XAtq "$APP" -c "INSERT INTO kv VALUES (-79, 'through the restarted pooler', 0) RETURNING id" >"$TEST_TMP/client.out" 2>&1
exit 1
SH
chmod +x "$TEST_TMP/hook.sh"
printf 'hooks:\n  switch: "%s"\n' "$TEST_TMP/hook.sh" >"$TEST_TMP/ferry.yaml"
SW=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" --config "$TEST_TMP/ferry.yaml" switchover --yes --max-lag 5
    --pgbouncer "$PGB_ADMIN" --pgbouncer-ini "$PGB_INI")
"${SW[@]}" >"$TEST_TMP/sw.out" 2>"$TEST_TMP/sw.err"; rc=$?
is "$(cat "$TEST_TMP/client.out")" -79 "the client's write through the restarted PgBouncer was acknowledged"
is "$rc" 1 "the failed switch hook: exit 1"
like "$(cat "$TEST_TMP/sw.err")" "entry app is not paused and points at the target" "it says the PgBouncer serves the target unpaused"
like "$(cat "$TEST_TMP/sw.err")" "goes only forward.*Fix: .*ferry switchover again" "so the switchover only goes forward, and how to finish it" || diag "$(grep -E 'ERROR|WARN' "$TEST_TMP/sw.err" | head -8)"
like "$(q source "INSERT INTO kv VALUES (-80, 'on the old source', 0)" 2>&1)" "read-only transaction" "the source stays frozen"
is "$(pgb_entry pgb | cut -d'|' -f2)" "$TARGET_PORT" "the entry still points at the target"
is "$(q target "SELECT switch_hook_at IS NOT NULL FROM ferry.migration WHERE name = 'ferry'")" t "the switch intent is kept"
is "$(PGPASSWORD= "$PGBIN/psql" -XAtq "$APP" -c "SELECT count(*) FROM kv WHERE id = -79" 2>&1)" 1 \
  "the pooler's clients still see the write they were told was committed"

touch "$TEST_TMP/hook_ok"
"${SW[@]}" >"$TEST_TMP/sw2.out" 2>"$TEST_TMP/sw2.err"; rc=$?
is "$rc" 0 "the rerun finishes the switch: exit 0" || diag "$(grep -E 'ERROR|WARN' "$TEST_TMP/sw2.err" | head -5)"
is "$(migration_phase)" switched "phase switched"
is "$(PGPASSWORD= "$PGBIN/psql" -XAtq "$APP" -c "SELECT count(*) FROM kv WHERE id = -79")" 1 \
  "the acknowledged write is on the primary the pooler serves"
is "$(q target "SELECT count(*) FROM kv WHERE id = -79")" 1 "on the new primary, once"
kill -TERM "$FP" 2>/dev/null; wait "$FP"
done_testing
