#!/usr/bin/env bash
# Which pg_dump ferry runs (issue 13): the newest that the target's major
# reads, the target's own when installed, never a newer one while an older
# fitting one exists (pg_dump 17+ writes SET transaction_timeout, which a
# 16-or-older target rejects: on a host with PGDG's newer clients every
# migration to an older target failed); with only a newer one installed,
# ferry check blocks with the fix. FERRY_PG_LIB points the search at a
# private copy of /usr/lib/postgresql with a pretend newer major beside 15,
# then at a list of such roots.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

pg_start source
pg_start target
q source "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 10)" >/dev/null
LIB=$TEST_TMP/lib
mkdir -p "$LIB/15/bin" "$LIB/17/bin"
for p in pg_dump pg_restore; do
  ln -s "$PGBIN/$p" "$LIB/15/bin/$p"
  # a pretend 17: says 17 and leaves a trace when it is run for real
  cat >"$LIB/17/bin/$p" <<SH
#!/bin/sh
[ "\$1" = --version ] && { echo "$p (PostgreSQL) 17.6"; exit 0; }
echo ran >>"$TEST_TMP/17-$p-ran"
exec "$PGBIN/$p" "\$@"
SH
  chmod +x "$LIB/17/bin/$p"
done
export FERRY_PG_LIB=$LIB
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")

out=$("${F[@]}" check 2>&1)
like "$out" "ok +source +pg_dump +$LIB/15/bin/pg_dump 15\.[0-9]+ and $LIB/15/bin/pg_restore 15\.[0-9]+ \(source 15, target 15\)" \
  "check picks the target's pg_dump and pg_restore, not the newer ones"
"${F[@]}" clone >"$TEST_TMP/out" 2>"$TEST_TMP/err"
is "$?" 0 "clone succeeds" || diag "$(tail -3 "$TEST_TMP/err")"
like "$(cat "$TEST_TMP/err")" "dumping the source schema with $LIB/15/bin/pg_dump" "with the target's pg_dump"
ok "$([ ! -e "$TEST_TMP/17-pg_dump-ran" ] && [ ! -e "$TEST_TMP/17-pg_restore-ran" ]; echo $?)" "the newer programs never ran"

rm "$LIB/15/bin/pg_dump" "$LIB/15/bin/pg_restore"
out=$("${F[@]}" check 2>&1); rc=$?
is "$rc" 3 "with only a newer pg_dump, check blocks"
like "$out" "$LIB/17/bin/pg_dump is version 17\.6, newer than the target server \(15\).*transaction_timeout" "naming the reason"
like "$out" "install postgresql-client-15" "and the fix"

# FERRY_PG_LIB is a list of roots (/usr/lib/postgresql and the majors
# scripts/build-pg.sh built, say): the version decides, not the order
LIB2=$TEST_TMP/lib2
mkdir -p "$LIB2/15/bin"
for p in pg_dump pg_restore; do ln -s "$PGBIN/$p" "$LIB2/15/bin/$p"; done
export FERRY_PG_LIB="$TEST_TMP/none::$LIB:$LIB2"
out=$("${F[@]}" check 2>&1)
like "$out" "ok +source +pg_dump +$LIB2/15/bin/pg_dump 15\.[0-9]+ and $LIB2/15/bin/pg_restore 15\.[0-9]+ \(source 15, target 15\)" \
  "with several roots, the target's major in a later root wins over a newer one in an earlier root"
done_testing
