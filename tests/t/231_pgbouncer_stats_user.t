#!/usr/bin/env bash
# A PgBouncer admin user that is only in stats_users (it may SHOW, not
# PAUSE) is the commonest wrong account to hand ferry: the switchover must
# refuse while preparing, with the fix (admin_users), before it pauses or
# freezes anything; the pooler serves the source throughout, and the source
# takes writes after.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"
. "$(dirname "$0")/../lib/pgbouncer.sh"

follow_servers
pgb_start pgb source transaction
sed -i 's/^admin_users = postgres/admin_users = postgres\nstats_users = watcher/' "$PGB_INI"
printf '"watcher" ""\n' >>"$(dirname "$PGB_INI")/userlist.txt"
pgb q pgb "RELOAD" >/dev/null
start_following
WATCHER="host=127.0.0.1 port=$PGB_PORT dbname=pgbouncer user=watcher"
is "$("$PGBIN/psql" -XAtq "$WATCHER" -c "SHOW DATABASES" 2>/dev/null | grep -c '^app|')" 1 "the stats user may read the admin console"

"$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" switchover --yes --max-lag 5 \
  --pgbouncer "$WATCHER" --pgbouncer-ini "$PGB_INI" >"$TEST_TMP/sw.out" 2>"$TEST_TMP/sw.err"
is $? 1 "switchover with a stats-only pooler user: exit 1"
like "$(cat "$TEST_TMP/sw.err")" "user watcher may read its admin console but not PAUSE.*stats_users, not admin_users.*Fix: add watcher to admin_users" \
  "it names the user, why, and the fix"
unlike "$(cat "$TEST_TMP/sw.err")" "PAUSE app|freez(e|ing) the source" "refused while preparing: no PAUSE tried, no freeze"
is "$(pgb_entry pgb | cut -d'|' -f4)" 0 "the entry is not paused"
is "$(pgb_entry pgb | cut -d'|' -f2)" "$SOURCE_PORT" "and points at the source"
is "$(migration_phase)" following "phase stays following"
q source "INSERT INTO kv VALUES (-77, 'after the refusal', 0)" >/dev/null; ok $? "the source takes writes"
is "$(PGPASSWORD= "$PGBIN/psql" -XAtq "host=127.0.0.1 port=$PGB_PORT dbname=app user=postgres" -c "SELECT count(*) FROM kv WHERE id = -77")" 1 \
  "and clients of the pooler see them"
stop_cleanly
done_testing
