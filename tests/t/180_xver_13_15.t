#!/usr/bin/env bash
# From PostgreSQL 13 (built by scripts/build-pg.sh from Debian 11's source)
# to Debian 12's 15 and back (issue 13): check, start under writes (COPY in
# text), switchover under writes, sequences, reverse replication to the
# older server, rollback, cleanup; checksums equal at each step. check
# says reverse replication into a 13 source needs a superuser there, and
# refuses the other way round, 15 -> 13.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"
. "$(dirname "$0")/../lib/xver.sh"

xver_arc 13 15

# reverse replication into a 13 source needs a superuser there: check says so
out=$("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" check 2>&1)
like "$out" "ok +source +reverse replication +role postgres is a superuser: reverse replication can apply here" \
  "check: a superuser on the 13 source may apply reverse replication"
q source "CREATE ROLE migrator LOGIN REPLICATION; GRANT SELECT ON ALL TABLES IN SCHEMA public TO migrator" >/dev/null
out=$("$FERRY" --source "host=$SOURCE_SOCK port=$SOURCE_PORT dbname=app user=migrator" --target "$TARGET_CONN" check 2>&1)
like "$out" "WARN +source +reverse replication +role migrator is not a superuser and the source runs PostgreSQL 13\.[0-9]+: reverse replication at switchover cannot apply the target's changes here \(only a superuser may set session_replication_role before PostgreSQL 15 and use replication origins before 14\)" \
  "check warns that another role on a 13 source cannot (session_replication_role, origins)"
like "$out" "fix: connect to the source as a superuser for the switchover .* or switch over with --no-reverse" "with the fix"

# a newer source than target: check refuses, naming why (the 15 server as
# source, the 13 one as target)
out=$("$FERRY" --source "$TARGET_CONN" --target "$SOURCE_CONN" check 2>&1); rc=$?
is "$rc" 3 "check refuses a PostgreSQL 15 source with a 13 target"
like "$out" "FAIL +target +server version +target runs PostgreSQL 13\.[0-9]+, older than the source's 15: a newer server's schema does not restore into an older one" \
  "with the reason"
like "$out" "fix: use a target server running PostgreSQL 15 or newer" "and the fix"
done_testing
