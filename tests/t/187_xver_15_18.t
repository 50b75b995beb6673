#!/usr/bin/env bash
# From Debian 12's PostgreSQL 15 to 18 (built by scripts/build-pg.sh from
# Debian's forky source) and back (issue 13): check (pg_dump 18 from the
# build cache), start under writes (COPY in text), switchover under
# writes, sequences, reverse replication from 18 to the older 15, rollback,
# cleanup; checksums equal at each step.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"
. "$(dirname "$0")/../lib/xver.sh"

xver_arc 15 18
# Debian's 15.20 stamps every column with an internal option (attoptions
# pg_attver=N) that its own pg_dump leaves out, pg_dump 18.6 dumps and
# PostgreSQL 18.6 rejects: ferry leaves it out of the restore (schema.h)
if [ "$(q source "SELECT count(*) > 0 FROM pg_attribute WHERE attoptions::text LIKE '%pg_attver=%'")" = t ]; then
  like "$(cat "$TEST_TMP/err")" "left out the column option pg_attver that pg_dump dumped" \
    "the source's internal column option is left out of the schema restored on 18"
fi
done_testing
