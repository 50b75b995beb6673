#!/usr/bin/env bash
# REPLICA IDENTITY FULL rows are found by every column's text, and a
# server prints a value by its own settings (issue 12 item 8): a source
# database with bytea_output = escape (or a server before 12 printing
# floats, or another time zone) sent text the target never prints, so an
# UPDATE or DELETE found no row and the target silently kept the old one.
# The source's text is now read back into the column's type and printed by
# the target before the comparison.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

pg_start source
pg_start target
QDB=postgres q source "ALTER DATABASE app SET bytea_output = 'escape'; ALTER DATABASE app SET timezone = 'Asia/Kolkata'" >/dev/null
q source "CREATE TABLE blobs (k int, b bytea, at timestamptz, f float8, j json);
          ALTER TABLE blobs REPLICA IDENTITY FULL;
          INSERT INTO blobs SELECT g, decode(lpad(to_hex(g), 2, '0') || '00ff41', 'hex'), '2024-01-01 10:00:00+00'::timestamptz + g * interval '1 hour',
                                   g / 3.0, json_build_object('g', g)
            FROM generate_series(1, 50) g" >/dev/null
is "$(q source "SELECT b::text FROM blobs WHERE k = 1")" '\001\000\377A' "the source prints bytea escaped"
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
start_following
q source "UPDATE blobs SET k = k + 100 WHERE k <= 5" >/dev/null
q source "DELETE FROM blobs WHERE k BETWEEN 6 AND 10" >/dev/null
q source "UPDATE blobs SET f = f * 2 WHERE k = 11" >/dev/null
wait_applied ferry 60; ok $? "the target applied everything"
is "$(q target "SELECT count(*) FROM blobs")" 45 "the deletes found their rows"
is "$(q target "SELECT string_agg(k::text, ',' ORDER BY k) FROM blobs WHERE k > 100")" "101,102,103,104,105" "the updates found theirs"
export PGOPTIONS="-c bytea_output=hex -c timezone=UTC"   # one way of printing for both sides
is "$(db_checksum target | grep -v '^ferry\.')" "$(db_checksum source)" "target equals source"
unset PGOPTIONS
unlike "$(cat "$TEST_TMP/err")" "diverged" "no change reported as matching no row"
stop_cleanly
done_testing
