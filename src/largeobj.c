/*
 * largeobj.c: copy the source's large objects to the target once, during
 * the clone (see largeobj.h for what is copied and why only once).
 */
#include "largeobj.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mem.h"
#include "pgsql.h"
#include "state.h"

/* Bytes read from the source and written to the target per round trip. */
#define LARGEOBJ_CHUNK (1024 * 1024)

/* Every large object: OID, owner, comment, whether it has an explicit ACL. */
static const char LARGEOBJ_LIST_SQL[] =
	"SELECT m.oid, pg_catalog.pg_get_userbyid(m.lomowner),"
	"       pg_catalog.obj_description(m.oid, 'pg_largeobject'),"
	"       m.lomacl IS NOT NULL"
	"  FROM pg_catalog.pg_largeobject_metadata m ORDER BY m.oid";

/* One object's ACL entries in order: privilege, grantee ('' = PUBLIC), grant option. */
static const char LARGEOBJ_ACL_SQL[] =
	"SELECT a.privilege_type,"
	"       CASE WHEN a.grantee = 0 THEN '' ELSE pg_catalog.pg_get_userbyid(a.grantee) END,"
	"       a.is_grantable"
	"  FROM pg_catalog.pg_largeobject_metadata m,"
	"       LATERAL pg_catalog.aclexplode(m.lomacl) WITH ORDINALITY AS a"
	" WHERE m.oid = $1::pg_catalog.oid ORDER BY a.ordinality";

static const char LARGEOBJ_DONE_SQL[] =
	"SELECT 1 FROM ferry.schema_step WHERE migration = $1 AND step = $2";

/* Run one statement built here (identifiers quoted by the caller). */
static bool
exec_owned(PGconn *conn, const char *what, char *sql)
{
	bool		ok = pg_exec(conn, what, sql);

	free(sql);
	return ok;
}

/*
 * Copy the data of object `oid` chunk by chunk: lo_get on the source,
 * lo_put on the target (bytea in text form, hex: large objects are rare
 * enough that the doubled bytes do not matter). Adds the bytes to *bytes.
 * Logs and returns false on error.
 */
static bool
copy_data(PGconn *src, PGconn *tgt, const char *oid, int64_t *bytes)
{
	char		off[32],
				len[16];

	snprintf(len, sizeof(len), "%d", LARGEOBJ_CHUNK);
	for (int64_t pos = 0;; )
	{
		const char *sp[3] = {oid, off, len};
		const char *tp[3];
		PGresult   *r,
				   *w;
		long		n;

		snprintf(off, sizeof(off), "%lld", (long long) pos);
		r = pg_query(src, "read a large object on the source",
					 "SELECT d, pg_catalog.length(d)"
					 "  FROM pg_catalog.lo_get($1::pg_catalog.oid, $2::bigint, $3::integer) AS d", 3, sp);
		if (r == NULL || !pg_check_shape(r, 1, 2, "a large object's data"))
		{
			PQclear(r);
			return false;
		}
		n = atol(PQgetvalue(r, 0, 1));
		if (n == 0 && pos > 0)
		{
			PQclear(r);
			return true;
		}
		tp[0] = oid;
		tp[1] = off;
		tp[2] = PQgetvalue(r, 0, 0);
		w = pg_query(tgt, "write a large object on the target",
					 "SELECT pg_catalog.lo_put($1::pg_catalog.oid, $2::bigint, $3::pg_catalog.bytea)", 3, tp);
		PQclear(r);
		PQclear(w);
		if (w == NULL)
			return false;
		*bytes += n;
		pos += n;
		if (n < LARGEOBJ_CHUNK)
			return true;
	}
}

/*
 * Give object `oid` on the target the source's ACL: the owner's implicit
 * rights are revoked, then each entry is granted in the source's order.
 */
static bool
copy_acl(PGconn *src, PGconn *tgt, const char *oid, const char *owner)
{
	const char *params[1] = {oid};
	PGresult   *res = pg_query(src, "read a large object's privileges", LARGEOBJ_ACL_SQL, 1, params);
	char	   *qowner = pg_quote_ident(tgt, owner);
	bool		ok = res != NULL &&
		exec_owned(tgt, "revoke a large object's default privileges",
				   xasprintf("REVOKE ALL ON LARGE OBJECT %s FROM %s", oid, qowner));

	for (int i = 0; ok && i < PQntuples(res); i++)
	{
		const char *priv = PQgetvalue(res, i, 0);
		const char *grantee = PQgetvalue(res, i, 1);
		char	   *q = grantee[0] ? pg_quote_ident(tgt, grantee) : xstrdup("PUBLIC");

		if (strcmp(priv, "SELECT") != 0 && strcmp(priv, "UPDATE") != 0)
		{
			log_error("large object %s has privilege %s, which ferry does not know", oid, priv);
			ok = false;
		}
		else
			ok = exec_owned(tgt, "grant a privilege on a large object",
							xasprintf("GRANT %s ON LARGE OBJECT %s TO %s%s", priv, oid, q,
									  strcmp(PQgetvalue(res, i, 2), "t") == 0 ? " WITH GRANT OPTION" : ""));
		free(q);
	}
	free(qowner);
	PQclear(res);
	return ok;
}

/* Create one object on the target with the source's data, owner, ACL and comment. */
static bool
copy_one(PGconn *src, PGconn *tgt, const FerryConfig *cfg, const PGresult *list, int i, int64_t *bytes)
{
	const char *oid = PQgetvalue(list, i, 0);
	const char *owner = PQgetvalue(list, i, 1);
	const char *params[1] = {oid};
	PGresult   *res = pg_query(tgt, "create a large object", "SELECT pg_catalog.lo_create($1::pg_catalog.oid)", 1, params);
	bool		ok = res != NULL && copy_data(src, tgt, oid, bytes);

	PQclear(res);
	if (ok && !cfg->no_owner)
	{
		char	   *q = pg_quote_ident(tgt, owner);

		ok = exec_owned(tgt, "set a large object's owner", xasprintf("ALTER LARGE OBJECT %s OWNER TO %s", oid, q));
		free(q);
	}
	if (ok && !cfg->no_privileges && strcmp(PQgetvalue(list, i, 3), "t") == 0)
		ok = copy_acl(src, tgt, oid, cfg->no_owner ? PQuser(tgt) : owner);
	if (ok && !PQgetisnull(list, i, 2))
	{
		char	   *lit = pg_quote_literal(tgt, PQgetvalue(list, i, 2));

		ok = exec_owned(tgt, "comment on a large object", xasprintf("COMMENT ON LARGE OBJECT %s IS %s", oid, lit));
		free(lit);
	}
	return ok;
}

/* Has an earlier run committed the copy? 1 yes, 0 no, -1 error (logged). */
static int
already_copied(PGconn *tgt, const char *name)
{
	const char *params[2] = {name, LARGEOBJ_STEP};
	PGresult   *res = pg_query(tgt, "read the schema progress", LARGEOBJ_DONE_SQL, 2, params);
	int			done = res == NULL ? -1 : PQntuples(res) > 0;

	PQclear(res);
	return done;
}

bool
largeobj_copy(PGconn *src, PGconn *tgt, const FerryConfig *cfg, int64_t *count, int64_t *bytes)
{
	const char *params[2] = {cfg->name, LARGEOBJ_STEP};
	PGresult   *list = NULL,
			   *res;
	int64_t		nbytes = 0;
	int			done;
	bool		ok = false;

	if (cfg->include_schemas.n > 0)
	{
		log_info("large objects are not copied: include-schemas selects part of the database (as pg_dump leaves them out then)");
		*count = *bytes = 0;
		return true;
	}
	done = already_copied(tgt, cfg->name);
	if (done != 0)
	{
		if (done > 0)
			*count = *bytes = 0;
		return done > 0;
	}
	list = pg_query(src, "list the large objects", LARGEOBJ_LIST_SQL, 0, NULL);
	if (list == NULL || !pg_check_shape(list, -1, 4, "the large objects"))
		goto cleanup;
	if (PQntuples(list) > 0)
		log_warn("copying %d large %s as of the clone's snapshot: later changes to them are not replicated (logical replication does not carry large objects); copy them again at switchover if they change",
				 PQntuples(list), PQntuples(list) == 1 ? "object" : "objects");
	if (!pg_exec(tgt, "begin the large-object copy", "BEGIN"))
		goto cleanup;
	for (int i = 0; i < PQntuples(list); i++)
		if (!copy_one(src, tgt, cfg, list, i, &nbytes))
			goto rollback;
	res = pg_query(tgt, "record the large-object copy", STATE_MARK_STEP_SQL, 2, params);
	if (res == NULL)
		goto rollback;
	PQclear(res);
	if (!pg_exec(tgt, "commit the large-object copy", "COMMIT"))
		goto cleanup;
	*count = PQntuples(list);
	*bytes = nbytes;
	ok = true;
	goto cleanup;

rollback:
	pg_exec_quiet(tgt, "ROLLBACK", NULL);
cleanup:
	PQclear(list);
	return ok;
}
