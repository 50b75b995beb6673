#!/usr/bin/env bash
# Red team: a primary key whose value is stored out of line (TOAST, a
# 2,500-byte text key with STORAGE EXTERNAL). An UPDATE that does not
# change the key arrives with the old key (PostgreSQL logs it when the key
# is external) and the new key column as "unchanged TOAST". Is it applied
# once, to the right row, and not counted as unmatched?
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
for s in source; do
  q $s "CREATE TABLE tk (k text PRIMARY KEY, n int NOT NULL, note text);
        ALTER TABLE tk ALTER COLUMN k SET STORAGE EXTERNAL;
        INSERT INTO tk SELECT repeat(chr(65 + g % 26), 2500) || g, 0, 'x' FROM generate_series(1, 20) g" >/dev/null
done
T=$(q source "SELECT reltoastrelid::regclass FROM pg_class WHERE relname = 'tk'")
is "$(q source "SELECT count(DISTINCT chunk_id) FROM $T")" 20 "the keys are stored out of line (20 values in the TOAST table)"
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
start_following
q source "UPDATE tk SET n = n + 1 WHERE k LIKE 'A%' OR k LIKE 'B%'" >/dev/null
q source "UPDATE tk SET note = 'y'" >/dev/null
q source "BEGIN; UPDATE tk SET n = n + 10; UPDATE tk SET n = n + 100; COMMIT" >/dev/null
q source "DELETE FROM tk WHERE k LIKE 'C%'" >/dev/null
q source "INSERT INTO kv VALUES (-1, 'probe', 0)" >/dev/null
wait_applied ferry 60; ok $? "applied"
sleep 2
is "$(db_checksum target | grep '^public.tk|')" "$(db_checksum source | grep '^public.tk|')" "tk identical on source and target"
is "$(q target "SELECT COALESCE(sum(changes), 0) FROM ferry.unmatched" 2>/dev/null || echo none)" 0 "nothing counted as unmatched"
"${F[@]}" status >"$TEST_TMP/st" 2>&1; rc=$?
is "$rc" 0 "status exits 0"
unlike "$(cat "$TEST_TMP/st")" "DIVERGED" "status does not say DIVERGED"
stop_cleanly
done_testing
