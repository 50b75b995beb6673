#!/usr/bin/env bash
# The pgoutput decoder against what a real PostgreSQL sends: changes of
# every kind are read back from a pgoutput slot with
# pg_logical_slot_peek_binary_changes and rendered one line per message by
# tests/unit/pgoutput_dump (built here, with the sanitizers, when missing or
# older than its sources). Protocol 1 with and without binary, then
# protocol 2 with streaming of transactions larger than
# logical_decoding_work_mem (committed, aborted, and a rolled-back
# subtransaction).
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DUMP=$ROOT/build/asan/pgoutput_dump
DUMP_SRC="$ROOT/tests/unit/pgoutput_dump.c $ROOT/src/pgoutput.c $ROOT/src/mem.c"
stale=0
[ -x "$DUMP" ] || stale=1
for f in $DUMP_SRC "$ROOT/src/pgoutput.h" "$ROOT/src/mem.h"; do [ "$f" -nt "$DUMP" ] && stale=1; done
if [ "$stale" = 1 ]; then
  mkdir -p "$ROOT/build/asan"
  # build to a private name, then rename: parallel test runs never see half a binary
  ${CC:-cc} -std=c11 -D_GNU_SOURCE -I"$ROOT/src" -Wall -Wextra -Wshadow -Wformat=2 -Wno-unused-parameter \
    -Wmissing-prototypes -Wstrict-prototypes -Wvla -Wimplicit-fallthrough -g -O1 \
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined \
    $DUMP_SRC -o "$DUMP.$$" 2>"$TEST_TMP/build.err" && mv "$DUMP.$$" "$DUMP" \
    || { cat "$TEST_TMP/build.err" >&2; bail "could not build $DUMP"; }
fi

# Every commit flushes WAL: a peek only decodes up to the flushed LSN, and
# pg.sh runs servers with synchronous_commit = off.
export PGOPTIONS="-c synchronous_commit=on"
pg_start source "logical_decoding_work_mem = 64kB"

# dump OPTIONS... < hex: the rendering; errors and sanitizer reports go to dump.err
dump() { "$DUMP" "$@" 2>>"$TEST_TMP/dump.err"; }
# has LINE TEXT NAME: TEXT contains LINE as a whole line
has() { if printf '%s\n' "$2" | grep -qxF -- "$1"; then ok 0 "$3"; else ok 1 "$3"; diag "no line: $1"; diag "in: $(printf '%s' "$2" | head -c 3000)"; fi; }
peek() {  # peek SLOT OPTIONS...: one hex message per line
  local slot=$1 opts=""; shift
  for o in "$@"; do opts="$opts, '$o'"; done
  q source "SELECT encode(data, 'hex') FROM pg_logical_slot_peek_binary_changes('$slot', NULL, NULL$opts)"
}

# ---- protocol 1: one transaction per kind of change -----------------------
cat > "$TEST_TMP/changes.sql" <<'SQL'
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE TABLE t_def (id int PRIMARY KEY, v text, big text, m mood);
ALTER TABLE t_def ALTER big SET STORAGE EXTERNAL;    -- out of line, never compressed
CREATE TABLE t_full (id int, v text);
ALTER TABLE t_full REPLICA IDENTITY FULL;
CREATE TABLE t_tr1 (id serial PRIMARY KEY);
CREATE TABLE t_tr2 (id int PRIMARY KEY);
CREATE PUBLICATION p FOR ALL TABLES;
SELECT 1 FROM pg_create_logical_replication_slot('s', 'pgoutput');
INSERT INTO t_def VALUES (1, 'one', NULL, 'happy'),
  (2, 'it''s', (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 200) g), 'sad');
UPDATE t_def SET v = 'uno' WHERE id = 2;
UPDATE t_def SET id = 3 WHERE id = 2;
DELETE FROM t_def WHERE id = 1;
INSERT INTO t_full VALUES (1, 'a'), (2, NULL);
UPDATE t_full SET v = 'b' WHERE id = 1;
DELETE FROM t_full WHERE id = 2;
TRUNCATE t_tr1, t_tr2 RESTART IDENTITY CASCADE;
TRUNCATE t_tr2;
SELECT 1 FROM pg_logical_emit_message(true, 'ferry', 'hello world'::text);
SELECT 1 FROM pg_logical_emit_message(false, 'ferry-nt', '\x00ff0a'::bytea);
SELECT 1 FROM pg_replication_origin_create('src1');
SELECT 1 FROM pg_replication_origin_session_setup('src1');
INSERT INTO t_tr2 VALUES (42);
SELECT 1 FROM pg_replication_origin_session_reset();
SQL
qf source "$TEST_TMP/changes.sql" >/dev/null 2>"$TEST_TMP/changes.err" || { cat "$TEST_TMP/changes.err" >&2; bail "changes failed"; }

peek s proto_version 1 publication_names p messages true > "$TEST_TMP/v1.hex"
out=$(dump -s -p 1 < "$TEST_TMP/v1.hex"); rc=$?
is "$rc" 0 "protocol 1: every message from the server decodes"
n=$(grep -c . "$TEST_TMP/v1.hex"); is "$(printf '%s\n' "$out" | grep -c .)" "$n" "one rendered line per message ($n)"

has "BEGIN xid=x1" "$out" "Begin"
has "TYPE public.mood" "$out" "Type message for the enum, before the relation"
has "RELATION public.t_def ident=d (id:int4:key, v:text, big:text, m:public.mood)" "$out" \
    "Relation: namespace, name, replica identity default, key column, types"
has "INSERT public.t_def (t'1', t'one', n, t'happy')" "$out" "Insert with a null column (n)"
has "INSERT public.t_def (t'2', t'it\\'s', t'c4ca4238a0b923820dcc509a'...(6400 bytes), t'sad')" "$out" \
    "Insert with a quote and a 6400-byte value"
has "UPDATE public.t_def new=(t'2', t'uno', u, t'sad')" "$out" \
    "Update, key unchanged: no old tuple, the TOASTed column is unchanged (u)"
has "UPDATE public.t_def old=K(t'2', n, n, n) new=(t'3', t'uno', u, t'sad')" "$out" \
    "Update of the key: old key tuple (K) with only the key, TOAST still u"
has "DELETE public.t_def old=K(t'1', n, n, n)" "$out" "Delete with replica identity default: old key (K)"
has "RELATION public.t_full ident=f (id:int4:key, v:text:key)" "$out" "Relation with replica identity full: every column is key"
has "INSERT public.t_full (t'2', n)" "$out" "Insert into the full-identity table"
has "UPDATE public.t_full old=O(t'1', t'a') new=(t'1', t'b')" "$out" "Update with replica identity full: old row (O)"
has "DELETE public.t_full old=O(t'2', n)" "$out" "Delete with replica identity full: old row (O) with its null"
has "TRUNCATE public.t_tr1, public.t_tr2 cascade restart_identity" "$out" "Truncate of two tables, CASCADE and RESTART IDENTITY"
has "TRUNCATE public.t_tr2" "$out" "Truncate without options"
has "MESSAGE transactional prefix='ferry' content='hello world'" "$out" "transactional logical message"
has "MESSAGE non-transactional prefix='ferry-nt' content='\\x00\\xff\\x0a'" "$out" "non-transactional logical message with binary content"
like "$(printf '%s\n' "$out" | grep -B1 -A1 "^MESSAGE non-transactional" | tr '\n' '|')" "^COMMIT\|MESSAGE non-transactional.*\|BEGIN" \
     "the non-transactional message stands between transactions"
like "$(printf '%s\n' "$out" | tr '\n' '|')" "\|ORIGIN name=src1\|RELATION public.t_tr2 ident=d \(id:int4:key\)\|INSERT public.t_tr2 \(t'42'\)\|COMMIT\|$" \
     "Origin message after Begin, for a change made under a replication origin"
is "$(printf '%s\n' "$out" | grep -c '^BEGIN')|$(printf '%s\n' "$out" | grep -c '^COMMIT')" "11|11" "11 transactions, each Begin with its Commit"
unlike "$(printf '%s\n' "$out" | grep -v '^BEGIN')" "STREAM|xid=" "no stream messages and no xid prefixes in protocol 1"
full=$(dump -p 1 < "$TEST_TMP/v1.hex")
like "$full" "^BEGIN xid=[0-9]+ final_lsn=[0-9A-F]+/[0-9A-F]+" "full rendering shows the real xid and final LSN"
like "$full" "COMMIT lsn=[0-9A-F]+/[0-9A-F]+ end=[0-9A-F]+/[0-9A-F]+" "... and commit and end LSNs"

# binary mode: columns in the types' send format (b)
out=$(peek s proto_version 1 publication_names p binary true | dump -s -p 1); rc=$?
is "$rc" 0 "protocol 1 with binary = true decodes"
has "INSERT public.t_def (b'00000001', b'6f6e65', n, b'6861707079')" "$out" "binary columns: int4 1, text 'one', null, enum 'happy'"

# the stored messages as files, for the fuzzer's seed corpus
mkdir -p "$TEST_TMP/seeds"
"$DUMP" -p 1 -w "$TEST_TMP/seeds" < "$TEST_TMP/v1.hex" >/dev/null 2>&1
is "$(ls "$TEST_TMP/seeds" | wc -l)" "$n" "-w writes each message as a binary file"
is "$(head -c 1 "$TEST_TMP/seeds/0001.bin")" "B" "... starting with its kind byte"

# ---- protocol 2: streaming of large transactions -------------------------
q source "SELECT 1 FROM pg_create_logical_replication_slot('s2', 'pgoutput')" >/dev/null
q source "CREATE TABLE big (id int PRIMARY KEY, pad text)"
q source "INSERT INTO big SELECT g, repeat('x', 100) FROM generate_series(1, 5000) g"
q source "BEGIN; INSERT INTO big SELECT g, repeat('y', 100) FROM generate_series(10001, 13000) g; ROLLBACK"
q source "BEGIN; INSERT INTO big SELECT g, 'z' FROM generate_series(20001, 22000) g;
          SAVEPOINT a; INSERT INTO big SELECT g, repeat('w', 100) FROM generate_series(30001, 33000) g;
          ROLLBACK TO a; INSERT INTO big VALUES (40000, 'last'); COMMIT"
q source "INSERT INTO big VALUES (50000, 'small')"

peek s2 proto_version 2 publication_names p streaming on > "$TEST_TMP/v2.hex"
out=$(dump -s -p 2 < "$TEST_TMP/v2.hex"); rc=$?
is "$rc" 0 "protocol 2 with streaming: every message decodes"
ctl=$(printf '%s\n' "$out" | grep -v '^INSERT' | grep -v '^STREAM STOP$' | grep -v '^STREAM START xid=x[0-9]*$')
has "STREAM START xid=x1 first" "$ctl" "Stream Start of the first large transaction, first segment"
has "RELATION public.big ident=d (id:int4:key, pad:text) xid=x1" "$ctl" "Relation inside the stream carries the xid"
has "STREAM COMMIT xid=x1" "$ctl" "Stream Commit of the first transaction"
is "$(printf '%s\n' "$out" | grep -c "^INSERT public.big (.*) xid=x1$")" "5000" "its 5000 inserts, each with the xid prefix"
starts=$(printf '%s\n' "$out" | grep -c '^STREAM START xid=x1')
ok $(( starts >= 2 ? 0 : 1 )) "it was streamed in several segments ($starts)"
is "$(printf '%s\n' "$out" | grep -c '^STREAM START')" "$(printf '%s\n' "$out" | grep -c '^STREAM STOP$')" \
   "every Stream Start has its Stream Stop"
is "$(printf '%s\n' "$out" | grep -c '^STREAM START.* first$')" "3" "three streamed transactions, one first segment each"
has "STREAM ABORT xid=x2 subxid=x2" "$ctl" "the rolled-back transaction ends with Stream Abort (xid = subxid)"
has "STREAM ABORT xid=x3 subxid=x4" "$ctl" "the rolled-back savepoint: Stream Abort of a subtransaction"
like "$(printf '%s\n' "$out" | grep -c "^INSERT public.big (.*) xid=x4$")" "^[1-9][0-9]*$" \
     "the subtransaction's changes were streamed with its own xid"
has "STREAM COMMIT xid=x3" "$ctl" "... and the transaction around it commits"
like "$(printf '%s\n' "$out" | tail -n 5 | tr '\n' '|')" "STREAM COMMIT xid=x3\|BEGIN xid=x[0-9]+\|INSERT public.big \(t'50000', t'small'\)\|COMMIT\|$" \
     "a small transaction is not streamed: Begin, Insert, Commit"
unlike "$ctl" "^BEGIN xid=x[123]$" "streamed transactions have no Begin"

# the same changes in protocol 1 (no streaming): whole transactions
out=$(peek s2 proto_version 1 publication_names p | dump -s -p 1); rc=$?
is "$rc" 0 "protocol 1 reading of the same slot decodes"
unlike "$out" "STREAM" "... without stream messages"
is "$(printf '%s\n' "$out" | grep -c '^BEGIN')" "3" "... three committed transactions (the rolled-back one is gone)"
is "$(printf '%s\n' "$out" | grep -c '^INSERT')" "7002" "... 5000 + 2001 + 1 inserts (the savepoint's are gone)"

# a protocol-1 decoder refuses the stream: the error names the message
out=$(dump -s -p 1 < "$TEST_TMP/v2.hex"); rc=$?
is "$rc" 1 "a protocol 1 decoder fails on a protocol 2 stream"
like "$out" "ERROR line 1: unexpected Stream Start message: streaming needs protocol version 2" "... saying why"

unlike "$(cat "$TEST_TMP/dump.err" 2>/dev/null)" "runtime error|AddressSanitizer|LeakSanitizer" "no sanitizer reports"
done_testing
