#!/usr/bin/env bash
# COPY format by major versions (issue 13): binary between servers of the
# same major (15 -> 15, and 18 -> 18 with scripts/build-pg.sh's 18, whose
# pg_dump ferry then finds in the build cache), for the tables whose every
# column is binary-safe (catalog.c); text for the others, and text for
# every table across majors (tests/t/180, 182). Rows equal on both sides.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"
. "$(dirname "$0")/../lib/xver.sh"

# clone_formats MAJOR: a clone between two servers of MAJOR, with -v
clone_formats() {
  local m=$1 bin
  if [ "$m" != 15 ]; then
    if ! bin=$(pg_major_bin "$m"); then
      xver_may_skip "$m" && { diag "skipping $m -> $m: $bin"; return 0; }
      ok 1 "PostgreSQL $m is there (CI=true: make pg-majors builds it)"; diag "$bin"; return 0
    fi
    eval "SRC${m}_PGBIN='$bin' TGT${m}_PGBIN='$bin'"
  fi
  pg_start "src$m"
  pg_start "tgt$m"
  q "src$m" "CREATE TABLE plain (id bigint PRIMARY KEY, t text, j jsonb, n numeric, at timestamptz, a int[]);
             INSERT INTO plain SELECT g, md5(g::text), jsonb_build_object('g', g), g / 3.0, now(), ARRAY[g, -g]
               FROM generate_series(1, 2000) g;
             CREATE TABLE with_acl (id int PRIMARY KEY, acl aclitem);
             INSERT INTO with_acl VALUES (1, 'postgres=r/postgres')" >/dev/null
  local sc tc
  eval "sc=\$SRC${m}_CONN tc=\$TGT${m}_CONN"
  "$FERRY" -v --source "$sc" --target "$tc" clone >"$TEST_TMP/clone$m.out" 2>"$TEST_TMP/clone$m.err"
  is "$?" 0 "clone $m -> $m exits 0" || diag "$(grep -E 'ERROR|error' "$TEST_TMP/clone$m.err" | tail -5)"
  like "$(cat "$TEST_TMP/clone$m.err")" 'copying "public"\."plain" \(binary\)' "$m -> $m: binary COPY for a table of binary-safe types"
  like "$(cat "$TEST_TMP/clone$m.err")" 'copying "public"\."with_acl" \(text\)' "$m -> $m: text for one with a type without binary I/O (aclitem)"
  [ "$m" = 15 ] || like "$(cat "$TEST_TMP/clone$m.err")" "dumping the source schema with [^ ]*/$m/bin/pg_dump" "$m -> $m: pg_dump $m from the build cache"
  is "$(db_checksum "tgt$m" | grep -v '^ferry\.')" "$(db_checksum "src$m")" "$m -> $m: every row copied"
  "$FERRY" --source "$sc" --target "$tc" cleanup >/dev/null 2>&1
}

clone_formats 15
clone_formats 18
done_testing
