#!/usr/bin/env bash
# Red team: REPLICA IDENTITY FULL and a column with a nondeterministic
# (case-insensitive ICU) collation. src/apply.c finds the row with
# "col::text IS NOT DISTINCT FROM ($n::type)::text ... LIMIT 1": the cast
# keeps the column's collation, so 'abc' and 'ABC' compare equal there and
# the first of them is taken. A DELETE or UPDATE of 'ABC' on the source can
# hit 'abc' on the target: the tables silently diverge (nothing is counted
# as unmatched, status is not DIVERGED).
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
[ "$(q source "SELECT count(*) > 0 FROM pg_collation WHERE collprovider = 'i'")" = t ] || { echo "1..0 # SKIP no ICU"; exit 0; }
q source "CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
          CREATE TABLE tags (name text COLLATE ci, n int);
          ALTER TABLE tags REPLICA IDENTITY FULL;
          INSERT INTO tags VALUES ('abc', 1), ('ABC', 1), ('xyz', 2), ('XYZ', 2)" >/dev/null
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
start_following
q source "DELETE FROM tags WHERE name = 'ABC' COLLATE \"C\"" >/dev/null
q source "UPDATE tags SET n = 99 WHERE name = 'XYZ' COLLATE \"C\"" >/dev/null
q source "INSERT INTO kv VALUES (-1, 'probe', 0)" >/dev/null
wait_applied ferry 60; ok $? "applied"
sleep 2
is "$(q target "SELECT string_agg(name || '=' || n, ',' ORDER BY name COLLATE \"C\") FROM tags")" \
   "$(q source "SELECT string_agg(name || '=' || n, ',' ORDER BY name COLLATE \"C\") FROM tags")" "tags identical on source and target"
U=$(q target "SELECT COALESCE(sum(changes), 0) FROM ferry.unmatched" 2>/dev/null)
"${F[@]}" status >"$TEST_TMP/st" 2>&1; rc=$?
diag "unmatched: $U, status exit $rc"
stop_cleanly
done_testing
