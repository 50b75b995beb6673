#!/usr/bin/env bash
# Found by a red-team helper (issue 16): the entry is repointed and checked before the switch
# hook, and RESUMEd after it without a second look. If the entry is put
# back meanwhile (config management restores pgbouncer.ini from its
# template and RELOADs, a deploy the switch hook triggers, an operator),
# ferry resumes the pooler onto the OLD source, reports a clean switchover,
# and the application writes there: plain writes fail (read-only), and a
# BEGIN READ WRITE one (psycopg2 set_session(readonly=False)) is
# acknowledged on a server the application no longer uses.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"
. "$(dirname "$0")/../lib/pgbouncer.sh"

follow_servers
pgb_start pgb source transaction
cp "$PGB_INI" "$TEST_TMP/pgbouncer.ini.template"
start_following
APP="host=127.0.0.1 port=$PGB_PORT dbname=app user=postgres"
# the switch hook runs the site's config management, which writes the ini from its (not yet updated) template
cat >"$TEST_TMP/hook.sh" <<SH
#!/bin/sh
cp "$TEST_TMP/pgbouncer.ini.template" "$PGB_INI"
"$PGBIN/psql" -XAtq "$PGB_ADMIN" -c "RELOAD" >/dev/null
exit 0
SH
chmod +x "$TEST_TMP/hook.sh"
printf 'hooks:\n  switch: "%s"\n' "$TEST_TMP/hook.sh" >"$TEST_TMP/ferry.yaml"
"$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" --config "$TEST_TMP/ferry.yaml" switchover --yes --max-lag 5 \
  --pgbouncer "$PGB_ADMIN" --pgbouncer-ini "$PGB_INI" >"$TEST_TMP/sw.out" 2>"$TEST_TMP/sw.err"; rc=$?
diag "ferry rc=$rc; entry now $(pgb_entry pgb); source port $SOURCE_PORT, target port $TARGET_PORT"
diag "report: $(grep -E 'clients held|held requests' "$TEST_TMP/sw.out" | tr -s ' ' | tr '\n' ';')"
grep -qE "ERROR|WARN.*(source|point)" "$TEST_TMP/sw.err"; warned=$?
ok "$([ "$rc" != 0 ] || [ "$warned" = 0 ]; echo $?)" "ferry does not report a clean switchover while the pooler serves the old source"
is "$(pgb_entry pgb | cut -d'|' -f2)" "$TARGET_PORT" "the resumed pooler points at the new primary"
out=$("$PGBIN/psql" -XAtq "$APP" -c "INSERT INTO kv VALUES (-601, 'plain write after the switch', 0) RETURNING id" 2>&1)
is "$out" -601 "a plain write through the pooler after the switchover succeeds"
out=$("$PGBIN/psql" -XAtq "$APP" -c "BEGIN READ WRITE; INSERT INTO kv VALUES (-602, 'read-write txn after the switch', 0); COMMIT;" 2>&1)
diag "BEGIN READ WRITE write through the pooler: $out"
is "$(q target "SELECT count(*) FROM kv WHERE id = -602")" 1 "an acknowledged write is on the new primary"
like "$(cat "$TEST_TMP/sw.err")" "entry app shows .*, not the target, since it was repointed.*pointing it at the target again" "ferry saw the entry put back and repointed it before the RESUME"
kill -TERM "$FP" 2>/dev/null; wait "$FP"
done_testing
