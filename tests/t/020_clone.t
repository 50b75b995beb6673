#!/usr/bin/env bash
# clone copies every type, shape and schema object exactly, in parallel,
# splitting large tables, without firing user triggers, and keeps the slot
# it will stream from.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

pg_start source
pg_start target
qf source "$(dirname "$0")/../sql/types.sql" >/dev/null 2>&1 || bail "fixture failed to load"
# a table big enough to be split into block ranges
q source "CREATE TABLE wide (id bigint PRIMARY KEY, a text, b float8, c jsonb);
          INSERT INTO wide SELECT g, md5(g::text), g / 7.0, jsonb_build_object('g', g) FROM generate_series(1, 60000) g"

out=$("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" clone --jobs 3 --index-jobs 2 \
      --split-tables-larger-than 1MB 2>"$TEST_TMP/err"); rc=$?
is "$rc" 0 "clone exits 0"
like "$out" "clone of \"ferry\" complete" "clone reports completion"
unlike "$(cat "$TEST_TMP/err")" "ERROR|runtime error|LeakSanitizer" "no errors or sanitizer reports"
like "$(cat "$TEST_TMP/err")" "WARNING: 4 tables have no primary key or replica identity" "tables without a key are named as insert-only"

diff <(db_checksum source) <(db_checksum target) > "$TEST_TMP/diff"
ok $? "every table has the same rows on both sides (checksum of each table)"
[ -s "$TEST_TMP/diff" ] && diag "$(cat "$TEST_TMP/diff")"
n=$(db_checksum target | wc -l)
ok $(( n >= 25 ? 0 : 1 )) "checksums cover all $n tables and materialized views"

# split tables: several parts, all from one snapshot
is "$(q target "SELECT count(*) > 1, count(DISTINCT snapshot_lsn) FROM ferry.copy_item WHERE relname = 'wide'")" "t|1" \
   "the large table was copied in several block ranges, all at one snapshot LSN"
is "$(q target "SELECT sum(rows) FROM ferry.copy_item WHERE relname = 'wide'")" "60000" "the ranges add up to every row once"

# schema objects
is "$(q target "SELECT count(*) FROM audit_log")|$(q target "SELECT count(*) FROM audited WHERE v = 'TRIGGER FIRED'")" "0|0" \
   "user triggers did not fire during the load"
is "$(q target "SELECT count(*) FROM pg_trigger WHERE tgname = 'audited_trg'")" "1" "the trigger exists on the target afterwards"
is "$(q target "SELECT string_agg(conname || '=' || convalidated::int, ',' ORDER BY conname) FROM pg_constraint WHERE conname LIKE 'loose%'")" \
   "loose_parent_fk=0,loose_pkey=1,loose_v_positive=0" "NOT VALID constraints stay NOT VALID"
is "$(q target "SELECT string_agg(relname || '=' || relispopulated::int, ',' ORDER BY relname) FROM pg_class WHERE relkind = 'm'")" \
   "mv_a_via_view=1,mv_top=1,mv_totals=1,mv_unpopulated=0" \
   "populated materialized views are refreshed in dependency order (through views too), the other stays empty"
src_idx=$(q source "SELECT string_agg(indexrelid::regclass::text || ':' || pg_get_indexdef(indexrelid), E'\n' ORDER BY indexrelid::regclass::text) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog','pg_toast','information_schema','ferry')")
tgt_idx=$(q target "SELECT string_agg(indexrelid::regclass::text || ':' || pg_get_indexdef(indexrelid), E'\n' ORDER BY indexrelid::regclass::text) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog','pg_toast','information_schema','ferry')")
is "$tgt_idx" "$src_idx" "the same indexes, with the same definitions"
is "$(q target "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE NOT i.indisvalid")" "0" "all indexes valid (partitioned indexes attached)"
src_con=$(q source "SELECT string_agg(conname || ':' || pg_get_constraintdef(oid), E'\n' ORDER BY conname, conrelid::regclass::text) FROM pg_constraint WHERE connamespace NOT IN (SELECT oid FROM pg_namespace WHERE nspname IN ('pg_catalog','information_schema'))")
tgt_con=$(q target "SELECT string_agg(conname || ':' || pg_get_constraintdef(oid), E'\n' ORDER BY conname, conrelid::regclass::text) FROM pg_constraint WHERE connamespace NOT IN (SELECT oid FROM pg_namespace WHERE nspname IN ('pg_catalog','information_schema','ferry'))")
is "$tgt_con" "$src_con" "the same constraints"
is "$(q target "SELECT last_value FROM standalone_seq")|$(q target "SELECT last_value FROM audit_log_id_seq")" "110|777" "sequences have the source's values"
is "$(q target "SELECT last_value || ' ' || is_called FROM rewound_seq")" "42 false" \
   "a sequence set with setval(s, 42, false) keeps that state (its next value is 42)"
is "$(q target "INSERT INTO gen (a) VALUES (5) RETURNING id, b")" "$(q source "INSERT INTO gen (a) VALUES (5) RETURNING id, b")" \
   "identity and generated columns continue as on the source"
is "$(q target "SELECT obj_description('parent'::regclass) || '/' || obj_description('parent_code_expr'::regclass)")" \
   "the parents/lower-case lookup" "comments on tables and indexes"
is "$(q target "SELECT count(*) FROM pg_stats WHERE tablename = 'wide'")" "4" "the target was analyzed"
is "$(q target "SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'")" "1" "extensions are created"
LO_SQL="SELECT m.oid, pg_get_userbyid(m.lomowner), m.lomacl, length(lo_get(m.oid)), md5(lo_get(m.oid)),
               obj_description(m.oid, 'pg_largeobject') FROM pg_largeobject_metadata m ORDER BY m.oid"
is "$(q target "$LO_SQL")" "$(q source "$LO_SQL")" "large objects are copied: OID, data in several chunks, owner, grant, comment"
like "$out" ", 2 large objects" "and counted in the report"

# binary where safe, text where type OIDs would differ
is "$(q target "SELECT count(*) FROM ferry.copy_item WHERE migration = 'ferry'")" \
   "$(q target "SELECT count(*) FROM ferry.copy_item")" "progress rows are keyed by migration name"

# the slot it streams from stays, at the recorded start LSN
is "$(slot_count source)" "1" "exactly one slot on the source (the temporary ones are gone)"
is "$(QDB=postgres q source "SELECT slot_name || ' ' || plugin || ' ' || confirmed_flush_lsn FROM pg_replication_slots")" \
   "ferry pgoutput $(q target "SELECT start_lsn FROM ferry.migration WHERE name = 'ferry'")" "the slot is pgoutput at the recorded start LSN"
is "$(q target "SELECT phase FROM ferry.migration")" "cloned" "state says cloned"

# a second run is a no-op
out=$("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" clone 2>/dev/null); rc=$?
is "$rc" 0 "running clone again exits 0"
like "$out" "already complete" "and says the clone is already complete"

# --json, a second migration name side by side, filters
QDB=postgres q target "CREATE DATABASE app2" >/dev/null
T2="host=$TARGET_SOCK port=$TARGET_PORT dbname=app2 user=postgres"
json=$("$FERRY" --source "$SOURCE_CONN" --target "$T2" --name second --json clone --jobs 2 \
      --exclude-table-data 'public.wide' --exclude-schema '"My Schema"' 2>/dev/null); rc=$?
is "$rc" 0 "a second migration with another --name runs beside the first"
is "$(printf '%s' "$json" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["name"], d["rows"] > 0, d["slot"])')" \
   "second True second" "--json reports the clone"
is "$(QDB=app2 q target "SELECT count(*) FROM public.wide")" "0" "--exclude-table-data keeps the definition but not the rows"
is "$(QDB=app2 q target "SELECT count(*) FROM pg_namespace WHERE nspname = 'My Schema'")" "0" "--exclude-schema leaves the schema out"
is "$(QDB=app2 q target "SELECT count(*) FROM scalars")" "4" "other tables are copied"
is "$(slot_count source)" "2" "each migration has its own slot"
done_testing
