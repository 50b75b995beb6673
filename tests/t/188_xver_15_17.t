#!/usr/bin/env bash
# From Debian 12's PostgreSQL 15 to 17 (built by scripts/build-pg.sh from
# Debian 13's source, when the mirror serves it) and back (issue 13): the
# arc of tests/lib/xver.sh.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"
. "$(dirname "$0")/../lib/xver.sh"

xver_arc 15 17
done_testing
