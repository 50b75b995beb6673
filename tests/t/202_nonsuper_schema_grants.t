#!/usr/bin/env bash
# A non-superuser clone restores ownership, and ALTER ... OWNER TO app_owner
# needs app_owner to have CREATE on the object's schema. The source grants
# it (GRANT CREATE ON SCHEMA public TO app_owner, and on a schema of its own
# owned by someone else); the restore must give those grants before it gives
# objects to their owners, not at the end of the schema script, so the user
# does not have to repeat the source's grants by hand on the target. A
# schema grant the source does not have is still named by check.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

pg_start source
pg_start target
q source "CREATE ROLE app_owner LOGIN; CREATE ROLE migrator LOGIN REPLICATION;
          ALTER DATABASE app OWNER TO migrator;
          CREATE SCHEMA shop AUTHORIZATION migrator;
          GRANT CREATE, USAGE ON SCHEMA shop TO app_owner;
          GRANT CREATE ON SCHEMA public TO app_owner;
          CREATE TABLE public.t1 (id int PRIMARY KEY, v text);
          CREATE TABLE shop.orders (id int PRIMARY KEY, t1 int REFERENCES public.t1);
          ALTER TABLE public.t1 OWNER TO app_owner; ALTER TABLE shop.orders OWNER TO app_owner;
          INSERT INTO public.t1 SELECT g, 'v' || g FROM generate_series(1, 100) g;
          INSERT INTO shop.orders SELECT g, g FROM generate_series(1, 100) g;
          GRANT SELECT ON ALL TABLES IN SCHEMA public, shop TO migrator;
          GRANT app_owner TO migrator" >/dev/null
q target "CREATE ROLE app_owner LOGIN; CREATE ROLE migrator LOGIN;
          ALTER DATABASE app OWNER TO migrator;
          GRANT SET ON PARAMETER session_replication_role TO migrator; GRANT app_owner TO migrator" >/dev/null
is "$(q target "SELECT has_schema_privilege('app_owner', 'public', 'CREATE')")" f "the target's public schema does not let app_owner create"
SRC="host=$SOURCE_SOCK port=$SOURCE_PORT dbname=app user=migrator"
TGT="host=$TARGET_SOCK port=$TARGET_PORT dbname=app user=migrator"
F=("$FERRY" --source "$SRC" --target "$TGT")

"${F[@]}" check >"$TEST_TMP/check" 2>&1
unlike "$(cat "$TEST_TMP/check")" "FAIL +target +schema privileges" "check: the source's schema grants are restored first, nothing to grant by hand"
"${F[@]}" clone --jobs 2 >"$TEST_TMP/out" 2>"$TEST_TMP/err"; rc=$?
is "$rc" 0 "clone as migrator exits 0"; [ "$rc" = 0 ] || diag "$(tail -3 "$TEST_TMP/err")"
is "$(q target "SELECT string_agg(c.relname || ':' || pg_get_userbyid(c.relowner), ',' ORDER BY c.relname) FROM pg_class c WHERE c.relname IN ('t1', 'orders')")" \
  "orders:app_owner,t1:app_owner" "each table belongs to its owner on the target"
is "$(q target "SELECT has_schema_privilege('app_owner', 'public', 'CREATE') AND has_schema_privilege('app_owner', 'shop', 'CREATE')")" t \
  "the schemas' grants are the source's"
is "$(db_checksum target | grep -v '^ferry\.')" "$(db_checksum source)" "contents equal"

# a grant the source lacks too: check still names it, with the fix
q source "CREATE ROLE other_owner; GRANT other_owner TO migrator; CREATE TABLE public.t2 (id int PRIMARY KEY);
          ALTER TABLE public.t2 OWNER TO other_owner" >/dev/null 2>&1
q source "GRANT SELECT ON public.t2 TO migrator" >/dev/null
q target "CREATE ROLE other_owner; GRANT other_owner TO migrator" >/dev/null
q target "CREATE DATABASE app2 OWNER migrator" >/dev/null
"$FERRY" --source "$SRC" --target "host=$TARGET_SOCK port=$TARGET_PORT dbname=app2 user=migrator" check >"$TEST_TMP/check2" 2>&1
like "$(sed -e ':a;N;$!ba;s/\n  fix:/ fix:/g' "$TEST_TMP/check2")" "FAIL +target +schema privileges .*other_owner on public.* fix: GRANT CREATE ON SCHEMA public TO other_owner;" \
  "check names the schema grant the source does not give either"
grep -q "FAIL +target +schema privileges" "$TEST_TMP/check2" || diag "$(grep -vE '^(ok|WARN) ' "$TEST_TMP/check2")"
done_testing
