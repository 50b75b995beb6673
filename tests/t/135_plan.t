#!/usr/bin/env bash
# ferry plan (and clone/start --dry-run): lists the tables with their sizes,
# the split, the insert-only tables, the objects ferry would create and those
# it does not migrate; changes nothing on either server; agrees with what
# clone then really does; exit status 0, 2 and 3.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

diag() { printf '%s\n' "$*" | head -60 | sed 's/^/# /'; }

# run_ferry ARGS...: sets OUT (stdout), ERR (stderr) and RC
run_ferry() {
  OUT=$("$FERRY" "$@" 2>"$TEST_TMP/stderr"); RC=$?
  ERR=$(cat "$TEST_TMP/stderr")
}
rc_is() {
  if [ "$RC" = "$1" ]; then ok 0 "$2"
  else ok 1 "$2"; diag "exit status $RC, want $1"; diag "stdout: $OUT"; diag "stderr: $ERR"; fi
}
# jq_ EXPR: a Python expression over the JSON document in OUT (bound to d)
jq_() {
  printf '%s' "$OUT" | python3 -c "import json, sys
d = json.load(sys.stdin)
t = {x['name']: x for x in d.get('tables', [])}
v = $1
print(str(v).lower() if isinstance(v, bool) else v)"
}

# Everything a plan could conceivably create or change, per server: objects
# of every kind, slots, origins, publications, replica identities, the
# ferry schema, large objects.
catalog_state() {
  QDB=app q "$1" "SELECT (SELECT count(*) FROM pg_class) || ' rels, ' ||
    (SELECT count(*) FROM pg_namespace) || ' schemas, ' ||
    (SELECT count(*) FROM pg_proc) || ' functions, ' ||
    (SELECT count(*) FROM pg_type) || ' types, ' ||
    (SELECT count(*) FROM pg_publication) || ' publications, ' ||
    (SELECT count(*) FROM pg_publication_rel) || ' published tables, ' ||
    (SELECT count(*) FROM pg_replication_slots) || ' slots, ' ||
    (SELECT count(*) FROM pg_replication_origin) || ' origins, ' ||
    (SELECT count(*) FROM pg_largeobject_metadata) || ' large objects, ' ||
    (SELECT count(*) FROM pg_namespace WHERE nspname = 'ferry') || ' ferry schema, identities ' ||
    (SELECT string_agg(relname || '=' || relreplident::text, ',' ORDER BY relname) FROM pg_class
      WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p'))"
}

pg_start source
pg_start target
# big: about 7 MB (split by a 1MB threshold); nopk: no key (insert-only);
# scratch: unlogged (copied once, not streamed); audit: --exclude-table-data;
# m/m1: a partition, published through its root; a large object.
q source "CREATE TABLE big (id int PRIMARY KEY, pad text);
  INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, 30000) g;
  CREATE TABLE nopk (v text); INSERT INTO nopk SELECT 'v' || g FROM generate_series(1, 100) g;
  CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY);
  CREATE TABLE audit (id int PRIMARY KEY); INSERT INTO audit SELECT generate_series(1, 50);
  CREATE TABLE m (id int, k int, PRIMARY KEY (id, k)) PARTITION BY RANGE (k);
  CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (10);
  SELECT lo_create(0); ANALYZE" >/dev/null
BIG_BYTES=$(q source "SELECT pg_relation_size('big')")
BIG_PARTS=$(( (BIG_BYTES + 1048575) / 1048576 ))
SRC_BEFORE=$(catalog_state source)
TGT_BEFORE=$(catalog_state target)
like "$SRC_BEFORE" "^[0-9]+ rels, .* 0 slots, .* 1 large objects, 0 ferry schema, identities audit=d,big=d,m=d,m1=d,nopk=d,scratch=d$" "catalog snapshot of the source taken"

# --- text ----------------------------------------------------------------
run_ferry plan --source "$SOURCE_CONN" --target "$TARGET_CONN" --split-tables-larger-than 1MB \
  --exclude-table-data audit --jobs 3
rc_is 0 "plan on a ready pair: exit 0"
like "$OUT" "^ferry plan for migration \"ferry\" \(nothing has been changed on either server\)" "header says nothing was changed"
like "$OUT" "Data to copy: 4 tables, .* as $((BIG_PARTS + 3)) parts with 3 workers" "summary: 4 tables with data, big's parts + 3 whole tables"
like "$OUT" "tables larger than 1.0 MB are split into block ranges" "split threshold named"
like "$OUT" "public\.big +[0-9.]+ MB +30000 +$BIG_PARTS +all \(publication ferry\)" "big: size, row estimate, $BIG_PARTS parts, every change streamed"
like "$OUT" "public\.nopk +8\.0 kB +100 +1 +inserts only \(publication ferry_insert_only\): no primary key" "nopk: inserts only"
like "$OUT" "public\.scratch .* none \(unlogged: copied once\)" "unlogged table: copied once, not streamed"
like "$OUT" "public\.audit .* - +all .*definition only \(--exclude-table-data\)" "audit: definition only"
like "$OUT" "public\.m1 .* all \(publication ferry\)" "partition published through its root"
like "$OUT" "replication slot ferry \(logical, pgoutput\), with an exported snapshot" "source: the slot"
like "$OUT" "publication ferry: 3 tables, every operation" "source: publication ferry (big, audit, m)"
like "$OUT" "publication ferry_insert_only: 1 table, inserts and truncates only" "source: the insert-only publication"
like "$OUT" "heartbeat messages: pg_logical_emit_message\(true, 'ferry_heartbeat'" "source: heartbeats"
like "$OUT" "the schema, from pg_dump --schema-only: [0-9]+ entries \(TABLE 6," "target: the schema, counted from the dump"
like "$OUT" "schema ferry: ferry's state" "target: the state schema"
like "$OUT" "replication origin ferry" "target: the replication origin"
like "$OUT" "At switchover, for rollback \(unless --no-reverse\): replication slot ferry_reverse" "the reverse objects switchover makes"
like "$OUT" "WARN +source +large objects: 1 large object" "not migrated: the large object (from check)"
like "$OUT" "WARN +source +unlogged tables: .*public\.scratch" "not migrated: the unlogged table"
like "$OUT" "plan: 0 blocking problems, 3 warnings" "summary line"

# --- JSON, default split (auto) ---------------------------------------------
run_ferry plan --source "$SOURCE_CONN" --target "$TARGET_CONN" --json --jobs 2
rc_is 0 "--json: exit 0"
is "$(jq_ 'd["copy"]["split"], d["copy"]["split_bytes"]')" "('auto', 67108864)" "auto split: each of 2 workers' share, at least 64 MB"
is "$(jq_ 't["public.big"]["parts"], t["public.big"]["bytes"], t["public.big"]["rows"]')" "(1, $BIG_BYTES, 30000)" "big is not split under auto, with its size and rows"
is "$(jq_ '[n for n in t if t[n]["insert_only"]]')" "['public.nopk']" "only nopk is insert-only"
is "$(jq_ 't["public.scratch"]["publication"]')" "None" "unlogged table in no publication"
is "$(jq_ 't["public.m1"]["publication"]')" "ferry" "partition in publication ferry"
is "$(jq_ 'sorted(x["check"] for x in d["not_migrated"])')" "['large objects', 'unlogged tables']" "not_migrated from the check"
is "$(jq_ 'd["source"]["slot"]["exists"], d["target"]["state_schema"]["exists"]')" "(False, False)" "nothing exists yet"
is "$(jq_ 'd["reverse"]["slot"], d["reverse"]["publications"]')" "('ferry_reverse', ['ferry_reverse', 'ferry_reverse_insert_only'])" "JSON: the reverse objects"

# --set-replica-identity-full: planned, not done
run_ferry plan --source "$SOURCE_CONN" --target "$TARGET_CONN" --set-replica-identity-full
like "$OUT" "ALTER TABLE \"public\"\.\"nopk\" REPLICA IDENTITY FULL \(--set-replica-identity-full\)" "--set-replica-identity-full: the ALTER is planned"
like "$OUT" "public\.nopk .* all \(publication ferry\)" "... and nopk then streams every change"

# --dry-run on clone and start is the plan
run_ferry clone --dry-run --source "$SOURCE_CONN" --target "$TARGET_CONN" --split-tables-larger-than 1MB
rc_is 0 "clone --dry-run: exit 0"
like "$OUT" "public\.big .* $BIG_PARTS +all" "clone --dry-run prints the plan"
run_ferry start --dry-run --source "$SOURCE_CONN" --target "$TARGET_CONN" --json
rc_is 0 "start --dry-run --json: exit 0"
is "$(jq_ 'len(d["tables"])')" 5 "start --dry-run lists the 5 tables"

# --- nothing changed ------------------------------------------------------
is "$(catalog_state source)" "$SRC_BEFORE" "source catalogs unchanged (objects, publications, slots, identities)"
is "$(catalog_state target)" "$TGT_BEFORE" "target catalogs unchanged (no ferry schema, no origin)"
is "$(slot_count source)" 0 "no replication slot on the source"
is "$(q source "SELECT count(*) FROM pg_publication")" 0 "no publication on the source"
is "$(q target "SELECT count(*) FROM pg_namespace WHERE nspname = 'ferry'")" 0 "no ferry schema on the target"
is "$(q target "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace")" 0 "target database still empty"

# --- exit status ----------------------------------------------------------
run_ferry plan --source "$SOURCE_CONN" --target "$TARGET_CONN" --lock-source
rc_is 2 "an option plan does not take: exit 2"
q target "CREATE TABLE big (id int)"
run_ferry plan --source "$SOURCE_CONN" --target "$TARGET_CONN"
rc_is 3 "target not empty: exit 3, like check"
like "$OUT" "Blocking problems \(ferry check\):" "blocking problems section"
like "$OUT" "FAIL +target +target empty: target already has table public\.big" "the problem is check's, with its fix"
like "$OUT" "plan: 1 blocking problem, 3 warnings: fix them before ferry clone" "summary counts it"
run_ferry clone --dry-run --source "$SOURCE_CONN" --target "$TARGET_CONN" --json
rc_is 3 "clone --dry-run with a blocking problem: exit 3"
is "$(jq_ 'd["ok"], d["blocking"], [p["check"] for p in d["problems"] if p["status"] == "blocking"]')" \
  "(False, 1, ['target empty'])" "JSON: ok false, the blocking problem listed"
q target "DROP TABLE big"
run_ferry plan --source "host=$SOURCE_SOCK port=$SOURCE_PORT dbname=nosuchdb user=postgres" --target "$TARGET_CONN"
rc_is 3 "unreachable source: exit 3"
like "$OUT" "FAIL +source +connection: could not connect" "the connection problem is reported"
unlike "$OUT" "Data to copy" "no plan without the source"
is "$(catalog_state target)" "$TGT_BEFORE" "target unchanged after the failed plans"

# --- the plan is what clone does ----------------------------------------------
run_ferry plan --source "$SOURCE_CONN" --target "$TARGET_CONN" --split-tables-larger-than 1MB --json
PLANNED=$(jq_ '" ".join("%s=%d" % (n, t[n]["parts"]) for n in sorted(t))')
run_ferry clone --source "$SOURCE_CONN" --target "$TARGET_CONN" --split-tables-larger-than 1MB
rc_is 0 "clone with the same options"
is "$(q target "SELECT string_agg(nspname || '.' || relname || '=' || n, ' ' ORDER BY nspname, relname)
  FROM (SELECT nspname, relname, max(nchunks) AS n FROM ferry.copy_item GROUP BY 1, 2) x")" \
  "$PLANNED" "clone copied each table in exactly the planned number of parts"
is "$(q source "SELECT string_agg(schemaname || '.' || tablename, ' ' ORDER BY 1) FROM pg_publication_tables WHERE pubname = 'ferry_insert_only'")" \
  "public.nopk" "clone's insert-only publication holds the planned table"
run_ferry plan --source "$SOURCE_CONN" --target "$TARGET_CONN" --json
rc_is 0 "plan after the clone: exit 0"
is "$(jq_ 'd["phase"], d["source"]["slot"]["exists"], d["target"]["state_schema"]["exists"], t["public.big"]["done"]')" \
  "('cloned', True, True, True)" "plan after the clone: the migration, its slot and state exist, tables done"

done_testing
