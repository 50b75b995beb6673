#!/usr/bin/env bash
# Rights on PostgreSQL 13 (issue 13): what a managed service's role can be
# given there is less than on 15, and check and switchover say so instead
# of suggesting GRANTs 13 does not have. Before 15 session_replication_role
# cannot be granted (no GRANT SET ON PARAMETER), before 14 the replication
# origin functions are for superusers only whatever is granted, and before
# 14 pgoutput sends no logical messages: a 13 target whose apply ran
# without an origin (a managed service's admin role may set
# session_replication_role but not use origins) gives reverse replication
# no way to tell ferry's applied changes from the application's, so the
# switchover refuses reverse replication before freezing anything.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"
. "$(dirname "$0")/../lib/xver.sh"

xver_servers 13 13
for side in source target; do
  q "$side" "CREATE ROLE migrator LOGIN REPLICATION; GRANT SELECT ON ALL TABLES IN SCHEMA public TO migrator;
             GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO migrator; GRANT pg_read_all_stats, pg_signal_backend TO migrator;
             GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text) TO migrator" >/dev/null
done
out=$(q target "SET ROLE migrator; SELECT pg_replication_origin_create('x')" 2>&1)
like "$out" "only superusers can query or manipulate replication origins" "13: a granted origin function is still refused"
q target "ALTER DATABASE app OWNER TO migrator" >/dev/null

out=$("$FERRY" --source "host=$SOURCE_SOCK port=$SOURCE_PORT dbname=app user=migrator" \
      --target "host=$TARGET_SOCK port=$TARGET_PORT dbname=app user=migrator" check 2>&1)
out1=$(printf '%s\n' "$out" | sed -e ':a;N;$!ba;s/\n  fix:/ fix:/g')
like "$out1" "WARN +source +switchover rights .*the right to set session_replication_role, which before PostgreSQL 15 only a superuser has.* fix: .*connect to the source as a superuser for the switchover .*PostgreSQL 13\.[0-9]+ has no GRANT SET ON PARAMETER, which came in 15" \
  "check: on a 13 source, reverse replication needs a superuser (no GRANT to suggest)"
unlike "$(printf '%s\n' "$out1" | grep 'switchover rights')" "GRANT SET ON PARAMETER session_replication_role TO" "and suggests no GRANT that 13 lacks"
like "$out1" "WARN +target +replication origin +role migrator may not use replication origins, which before PostgreSQL 14 only a superuser may: .*the switchover will refuse reverse replication fix: connect to the target as a superuser from ferry start on, or switch over with --no-reverse" \
  "check: on a 13 target, no origin without a superuser, and what that means for reverse replication"
unlike "$(printf '%s\n' "$out1" | grep 'replication origin')" "GRANT EXECUTE ON FUNCTION" "and suggests no GRANT that 13 ignores"

# the forward apply as superuser, then its origin gone, as if it had run
# without one (a managed service's admin role); the switchover refuses
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
start_following
wait_applied ferry 60; ok $? "following 13 -> 13"
stop_cleanly
q target "SELECT pg_replication_origin_drop('ferry')" >/dev/null
"${F[@]}" switchover --yes --timeout 30 >"$TEST_TMP/sw.out" 2>"$TEST_TMP/sw.err"; rc=$?
isnt "$rc" 0 "switchover refuses reverse replication from a 13 target whose apply had no origin"
like "$(cat "$TEST_TMP/sw.err")" "reverse replication from this target would send ferry's own applied changes back to the source .*: they carry no replication origin .* pgoutput before 14 sends no logical messages .*nothing was frozen. Fix: switch over with --no-reverse" \
  "naming why and the fix, before freezing anything"
q source "INSERT INTO kv VALUES (-1234, 'still writable', 0)" >/dev/null
ok $? "the source still takes writes"
is "$(migration_phase)" following "the phase is still following"
done_testing
