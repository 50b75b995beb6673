/*
 * catalog.c: source catalog introspection for the clone (see catalog.h).
 *
 * Binary COPY safety: the binary format of arrays and composites embeds
 * element/column type OIDs, which differ between servers for user-defined
 * types, and some types (aclitem) have no binary I/O at all. A column is
 * binary-safe when its type, with domains resolved to their base type, is a
 * built-in type (OID below FirstNormalObjectId 16384) whose element type, if
 * any, is built-in too, and which has send/receive functions; or an enum
 * (binary form is the label). tsquery (and its array) is the exception among
 * built-ins: an empty tsquery is sent in binary but refused on receipt
 * ("malformed tsquery: operand not found"), so it goes as text. A table is
 * copied in binary only if every
 * column is safe; the caller also requires equal major versions.
 */
#include "catalog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mem.h"
#include "pgsql.h"

/* %s: the generated-column filter, which exists from PostgreSQL 12 on */
static const char TABLES_SQL_FMT[] =
	"WITH cols AS ("
	"  SELECT a.attrelid, a.attnum, a.attname,"
	"         COALESCE(NULLIF(t.typbasetype, 0), t.oid) AS base"
	"    FROM pg_catalog.pg_attribute a"
	"    JOIN pg_catalog.pg_type t ON t.oid = a.atttypid"
	"   WHERE a.attrelid = ANY ($1::pg_catalog.oid[]) AND a.attnum > 0"
	"     AND NOT a.attisdropped %s"
	") "
	"SELECT c.oid, n.nspname, c.relname,"
	"       pg_catalog.pg_relation_size(c.oid) AS bytes,"
	"       pg_catalog.pg_relation_size(c.oid)"
	"         / pg_catalog.current_setting('block_size')::int AS pages,"
	"       c.reltuples::bigint,"
	"       (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(x.attname), ', ' ORDER BY x.attnum)"
	"          FROM cols x WHERE x.attrelid = c.oid) AS columns,"
	"       COALESCE((SELECT pg_catalog.bool_and("
	"                  (b.oid < 16384 AND b.typtype <> 'd' AND b.typsend <> 0 AND b.typreceive <> 0"
	"                   AND b.oid NOT IN (3615, 3645)"
	"                   AND (b.typelem = 0 OR b.typelem < 16384)) OR b.typtype = 'e')"
	"          FROM cols x JOIN pg_catalog.pg_type b ON b.oid = x.base"
	"         WHERE x.attrelid = c.oid), true) AS binary_ok,"
	"       EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k"
	"                WHERE k.conrelid = c.oid AND k.contype = 'p') AS has_pk,"
	"       c.relreplident, c.relpersistence"
	"  FROM pg_catalog.pg_class c"
	"  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	" WHERE c.oid = ANY ($1::pg_catalog.oid[]) AND c.relkind = 'r'"
	" ORDER BY bytes DESC, n.nspname, c.relname";

char *
catalog_oid_array(const unsigned int *oids, int n)
{
	StrBuf		sb;

	strbuf_init(&sb);
	strbuf_addch(&sb, '{');
	for (int i = 0; i < n; i++)
		strbuf_addf(&sb, "%s%u", i ? "," : "", oids[i]);
	strbuf_addch(&sb, '}');
	return strbuf_detach(&sb);
}

bool
catalog_tables(PGconn *conn, const unsigned int *oids, int noids, TableList *out)
{
	char	   *arr = catalog_oid_array(oids, noids);
	char	   *sql = xasprintf(TABLES_SQL_FMT,
								pg_caps(conn).generated_columns ? "AND a.attgenerated = ''" : "");
	const char *params[1] = {arr};
	PGresult   *res = pg_query(conn, "list the source tables", sql, 1, params);
	TableList	list = {NULL, 0};
	bool		ok = false;

	if (res == NULL || !pg_check_shape(res, -1, 11, "the table list"))
		goto cleanup;
	list.n = PQntuples(res);
	list.items = xcalloc((size_t) (list.n ? list.n : 1), sizeof(TableInfo));
	for (int i = 0; i < list.n; i++)
	{
		TableInfo  *t = &list.items[i];
		char	   *qn = pg_quote_ident(conn, PQgetvalue(res, i, 1));
		char	   *qr = pg_quote_ident(conn, PQgetvalue(res, i, 2));

		if (qn == NULL || qr == NULL)
		{
			free(qn);
			free(qr);
			list.n = i;
			catalog_tables_free(&list);
			goto cleanup;
		}
		t->oid = (unsigned int) strtoul(PQgetvalue(res, i, 0), NULL, 10);
		t->nspname = xstrdup(PQgetvalue(res, i, 1));
		t->relname = xstrdup(PQgetvalue(res, i, 2));
		t->qualname = xasprintf("%s.%s", qn, qr);
		t->bytes = strtoll(PQgetvalue(res, i, 3), NULL, 10);
		t->pages = strtoll(PQgetvalue(res, i, 4), NULL, 10);
		t->reltuples = strtoll(PQgetvalue(res, i, 5), NULL, 10);
		/* a table whose only columns are generated or dropped has none to copy */
		t->columns = PQgetisnull(res, i, 6) ? NULL : xstrdup(PQgetvalue(res, i, 6));
		t->binary_ok = PQgetvalue(res, i, 7)[0] == 't';
		t->has_pk = PQgetvalue(res, i, 8)[0] == 't';
		t->replident = PQgetvalue(res, i, 9)[0];
		t->persistence = PQgetvalue(res, i, 10)[0];
		free(qn);
		free(qr);
	}
	*out = list;
	ok = true;

cleanup:
	PQclear(res);
	free(sql);
	free(arr);
	return ok;
}

void
catalog_tables_free(TableList *list)
{
	for (int i = 0; i < list->n; i++)
	{
		free(list->items[i].nspname);
		free(list->items[i].relname);
		free(list->items[i].qualname);
		free(list->items[i].columns);
	}
	free(list->items);
	list->items = NULL;
	list->n = 0;
}
