# xver.sh: the whole migration arc between two major versions of
# PostgreSQL, for tests/t/18*_xver_*.t. Source it after tap.sh and pg.sh.
#
# The majors other than Debian 12's 15 are built from Debian's source
# packages by scripts/build-pg.sh into ${FERRY_CACHE:-/var/cache/ferry}
# (`make pg-majors`, a prerequisite of `make check`, builds them outside the
# timed tests); a test whose major is not there skips, naming the command
# that builds it. ferry looks for pg_dump in /usr/lib/postgresql and in the
# cache's lib/ links (FERRY_PG_LIB, as a user of build-pg.sh would set it).

XVER_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export FERRY_PG_LIB="/usr/lib/postgresql:${FERRY_CACHE:-/var/cache/ferry}/lib"

# pg_major_bin MAJOR: the bin directory of PostgreSQL MAJOR (Debian's own
# package or a cached build), or status 1 and the reason on stdout
pg_major_bin() {
  local bin err
  err=$(mktemp "$TEST_TMP/build-pg.XXXXXX")
  if ! bin=$("$XVER_ROOT/scripts/build-pg.sh" --cached "$1" 2>"$err"); then
    echo "PostgreSQL $1 is not built here ($(sed 's/^[0-9:]* //' "$err" | tail -1))"
    return 1
  fi
  # the servers run as postgres: the cache must be theirs to read
  if ! as_pg test -x "$bin/postgres"; then
    echo "PostgreSQL $1 in $bin is not executable by the postgres OS user (FERRY_CACHE under a private directory?)"
    return 1
  fi
  echo "$bin"
}

# xver_may_skip MAJOR: may a test skip when MAJOR is missing? Not on CI
# (CI=true) for the majors it must test, XVER_CI_MAJORS (13 15 18: make
# pg-majors builds them there); 17 may skip while no mirror serves it.
xver_may_skip() {
  [ "${CI:-}" != true ] && return 0
  case " ${XVER_CI_MAJORS:-13 15 18} " in *" $1 "*) return 1 ;; esac
  return 0
}

# xver_bin VAR MAJOR: VAR becomes the bin directory of MAJOR; without one
# the test skips with the reason (skip_all), or fails on CI (xver_may_skip)
xver_bin() {
  local bin
  if bin=$(pg_major_bin "$2"); then eval "$1=\$bin"; return 0; fi
  xver_may_skip "$2" && skip_all "$bin"
  echo "not ok 1 - PostgreSQL $2 is there (CI=true: make pg-majors builds it)"
  diag "$bin"
  echo "1..1"
  exit 1
}

# xver_servers SOURCE_MAJOR TARGET_MAJOR: follow_servers with a source and
# a target of those majors (tests/sql/follow_schema.sql on the source)
xver_servers() {
  xver_bin SOURCE_PGBIN "$1"
  xver_bin TARGET_PGBIN "$2"
  follow_servers
  is "$(q source "SHOW server_version_num" | cut -c1-2) $(q target "SHOW server_version_num" | cut -c1-2)" "$1 $2" \
    "the source runs PostgreSQL $1, the target $2"
}

# xver_equal WHEN: both sides' tables have equal checksums
xver_equal() {
  is "$(db_checksum target | grep -v '^ferry\.')" "$(db_checksum source | grep -v '^ferry\.')" "every table equal $1"
}

# xver_wait_on SIDE SQL [TIMEOUT_S]: until SQL on SIDE prints t
xver_wait_on() {
  local i
  for i in $(seq 1 $(( ${3:-60} * 5 ))); do
    [ "$(q "$1" "$2" 2>/dev/null)" = t ] && return 0
    sleep 0.2
  done
  return 1
}

# xver_arc SOURCE_MAJOR TARGET_MAJOR: check, start under load (text COPY
# across majors), follow, switchover under load, sequences, writes on the
# new primary replicated back to the older server, rollback, cleanup.
xver_arc() {
  local smaj=$1 tmaj=$2 out rc lp seq_sql src_seq
  xver_servers "$smaj" "$tmaj"
  F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")

  out=$("${F[@]}" check 2>&1); rc=$?
  is "$rc" 0 "ferry check passes from $smaj to $tmaj" || diag "$out"
  like "$out" "ok +target +server version +PostgreSQL $tmaj\.[0-9]+ \(source $smaj: same major version or newer\)" \
    "check compares the majors"
  like "$out" "ok +source +pg_dump +[^ ]*/$tmaj/bin/pg_dump $tmaj\.[0-9]+ and [^ ]*/$tmaj/bin/pg_restore $tmaj\.[0-9]+" \
    "the target's own pg_dump and pg_restore are chosen"

  # the clone and the stream's start under writes
  pgload 12 2 "$SQL/load/mixed.sql@10" >"$TEST_TMP/load0" 2>&1 &
  lp=$!
  sleep 1
  "$FERRY" -v --source "$SOURCE_CONN" --target "$TARGET_CONN" start --jobs 2 >>"$TEST_TMP/out" 2>>"$TEST_TMP/err" &
  FP=$!
  wait_following ferry 120; ok $? "ferry start follows ($smaj -> $tmaj) under writes"
  # (a client may end early: UPDATE parts moves rows between partitions, and
  # two of them on one row fail in PostgreSQL itself, "tuple to be locked was
  # already moved to another partition"; pgbench before 15 cannot retry)
  wait "$lp"
  like "$(cat "$TEST_TMP/load0")" "number of transactions actually processed: [0-9]{3,}" "the load wrote during the clone and the stream's start"
  if [ "$smaj" != "$tmaj" ]; then
    like "$(cat "$TEST_TMP/err")" 'copying "public"\."kv" \(text\)' "COPY in text across majors"
    unlike "$(cat "$TEST_TMP/err")" "copying [^ ]+ \(binary\)" "never binary"
  else
    like "$(cat "$TEST_TMP/err")" 'copying "public"\."kv" \(binary\)' "COPY in binary between equal majors"
  fi
  wait_applied ferry 60; ok $? "the target caught up"
  xver_equal "while following"
  out=$("${F[@]}" status 2>&1); rc=$?
  is "$rc" 0 "status exits 0 while following" || diag "$out"
  out=$("${F[@]}" verify --jobs 2 2>&1); rc=$?
  is "$rc" 0 "verify finds both sides identical ($smaj -> $tmaj)" || diag "$(echo "$out" | tail -15)"

  # the switchover while the application writes
  pgload 8 3 "$SQL/load/mixed.sql@10" >"$TEST_TMP/load1" 2>&1 &
  lp=$!
  sleep 3
  "${F[@]}" switchover --yes --max-lag 5 --timeout 60 >"$TEST_TMP/sw.out" 2>"$TEST_TMP/sw.err"
  is "$?" 0 "switchover exits 0" || diag "$(tail -20 "$TEST_TMP/sw.err")"
  wait "$lp"
  is "$(migration_phase)" switched "phase switched"
  xver_equal "after the switchover under load"
  out=$(q source "INSERT INTO kv VALUES (-99999999, 'late', 0)" 2>&1)
  like "$out" "read-only transaction" "the old source ($smaj) refuses writes"
  seq_sql="SELECT string_agg(sequencename || '=' || last_value, ' ' ORDER BY sequencename) FROM pg_sequences WHERE last_value IS NOT NULL"
  src_seq=$(q source "SELECT string_agg(sequencename || '=' || (last_value + 1000), ' ' ORDER BY sequencename) FROM pg_sequences WHERE last_value IS NOT NULL")
  like "$src_seq" "kv_new_ids=" "the source has used sequences"
  is "$(q target "$seq_sql")" "$src_seq" "every used sequence on the target ($tmaj) is the source's plus the gap"

  # the application on the new primary; reverse replication to the older server
  "$(pg_bin target)/pgbench" -n -T 4 -c 2 -h "$TARGET_SOCK" -p "$TARGET_PORT" -U postgres \
    -f "$SQL/load/mixed.sql" app >"$TEST_TMP/load2" 2>&1
  like "$(cat "$TEST_TMP/load2")" "number of transactions actually processed: [0-9]{3,}" \
    "the application writes on the new primary ($tmaj)"
  q target "INSERT INTO kv VALUES (-77777777, 'written on target', 0)" >/dev/null
  xver_wait_on source "SELECT count(*) = 1 FROM kv WHERE id = -77777777" 60
  ok $? "reverse replication brings the target's writes to the older server ($smaj)"
  xver_equal "while following in reverse"

  "${F[@]}" rollback --yes --timeout 60 >"$TEST_TMP/rb.out" 2>"$TEST_TMP/rb.err"
  is "$?" 0 "rollback exits 0" || diag "$(tail -20 "$TEST_TMP/rb.err")"
  is "$(migration_phase)" rolled_back "phase rolled_back"
  xver_equal "after the rollback"
  q source "INSERT INTO kv VALUES (-88888888, 'back on source', 0); INSERT INTO gen (a) VALUES (6)" >/dev/null
  ok $? "the source ($smaj) takes writes again, its identity past the target's values"
  out=$(q target "INSERT INTO kv VALUES (-66666666, 'x', 0)" 2>&1)
  like "$out" "read-only transaction" "the target is read-only after the rollback"
  kill -TERM "$FP" 2>/dev/null; wait "$FP"
  unlike "$(cat "$TEST_TMP/err" "$TEST_TMP/sw.err" "$TEST_TMP/rb.err")" "runtime error|LeakSanitizer" "no sanitizer reports"
  unlike "$(cat "$TEST_TMP/err")" " ERROR: " "ferry start logged no error" \
    || diag "$(grep ' ERROR: ' "$TEST_TMP/err" | head -5)"

  "${F[@]}" cleanup >"$TEST_TMP/cl.out" 2>&1
  is "$?" 0 "cleanup exits 0" || diag "$(tail -5 "$TEST_TMP/cl.out")"
  is "$(slot_count source) $(slot_count target)" "0 0" "no slot left on either side"
  is "$(q source "SELECT count(*) FROM pg_publication") $(q target "SELECT count(*) FROM pg_publication")" "0 0" "no publication left"
  is "$(q source "SELECT count(*) FROM pg_namespace WHERE nspname = 'ferry'") $(q target "SELECT count(*) FROM pg_namespace WHERE nspname = 'ferry'")" "0 0" "no ferry schema left"
}
