#!/usr/bin/env bash
# From PostgreSQL 13 (built by scripts/build-pg.sh from Debian 11's source)
# to Debian 12's 15 and back (issue 13): check, start under writes (COPY in
# text), switchover under writes, sequences, reverse replication to the
# older server, rollback, cleanup; checksums equal at each step. And the
# other way round, 15 -> 13, is refused by check.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"
. "$(dirname "$0")/../lib/xver.sh"

xver_arc 13 15

# a newer source than target: check refuses, naming why (the 15 server as
# source, the 13 one as target)
out=$("$FERRY" --source "$TARGET_CONN" --target "$SOURCE_CONN" check 2>&1); rc=$?
is "$rc" 3 "check refuses a PostgreSQL 15 source with a 13 target"
like "$out" "FAIL +target +server version +target runs PostgreSQL 13\.[0-9]+, older than the source's 15: a newer server's schema does not restore into an older one" \
  "with the reason"
like "$out" "fix: use a target server running PostgreSQL 15 or newer" "and the fix"
done_testing
