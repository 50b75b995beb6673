/*
 * matview.c: materialized views in the clone: the order to refresh them on
 * the target, and which ones then hold other rows than the source's.
 */
#include "matview.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mem.h"
#include "pgsql.h"

/*
 * Populated materialized views, those that read other ones after them. A
 * matview reads another directly or through plain views (the regression
 * database's mvtest_bb reads view mvtest_tvvmv, which reads matview
 * mvtest_tvvm): "reads" follows views to the relations they read.
 */
static const char MATVIEWS_SQL[] =
	"WITH RECURSIVE mv AS ("
	"  SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c"
	"    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	"   WHERE c.relkind = 'm' AND c.relispopulated AND c.oid = ANY ($1::pg_catalog.oid[])),"
	" reads(mv, rel) AS ("
	"  SELECT r.ev_class, d.refobjid"
	"    FROM pg_catalog.pg_rewrite r"
	"    JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass"
	"         AND d.objid = r.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass"
	"    JOIN mv ON mv.oid = r.ev_class"
	"  UNION"
	"  SELECT reads.mv, d.refobjid FROM reads"
	"    JOIN pg_catalog.pg_class v ON v.oid = reads.rel AND v.relkind = 'v'"
	"    JOIN pg_catalog.pg_rewrite r ON r.ev_class = v.oid"
	"    JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass"
	"         AND d.objid = r.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass),"
	" dep AS ("
	"  SELECT DISTINCT reads.mv, reads.rel AS uses FROM reads"
	"    JOIN pg_catalog.pg_class rc ON rc.oid = reads.rel AND rc.relkind = 'm' AND rc.oid <> reads.mv),"
	" lvl(oid, depth) AS ("
	"  SELECT oid, 0 FROM mv"
	"  UNION ALL SELECT dep.mv, lvl.depth + 1 FROM lvl JOIN dep ON dep.uses = lvl.oid WHERE lvl.depth < 50)"
	"SELECT pg_catalog.quote_ident(mv.nspname) || '.' || pg_catalog.quote_ident(mv.relname), max(lvl.depth)"
	"  FROM mv JOIN lvl USING (oid) GROUP BY 1 ORDER BY 2, 1";

PGresult *
matview_refresh_order(PGconn *src, const char *oid_array)
{
	const char *params[1] = {oid_array};
	PGresult   *res = pg_query(src, "list the populated materialized views", MATVIEWS_SQL, 1, params);

	if (res && !pg_check_shape(res, -1, 2, "the materialized views"))
	{
		PQclear(res);
		return NULL;
	}
	return res;
}

/* A fingerprint of a relation's rows: count and a sum of 64-bit row hashes. */
static const char ROWS_FINGERPRINT_FMT[] =
	"SELECT count(*)::text || ' ' ||"
	"       COALESCE(sum(('x' || pg_catalog.substr(pg_catalog.md5(t::text), 1, 16))::bit(64)::bigint), 0)::text"
	"  FROM %s t";

bool
matview_warn_stale(PGconn *src, PGconn *tgt, const PGresult *mvs)
{
	StrBuf		names;
	int			n = 0;
	bool		ok = true;

	strbuf_init(&names);
	for (int i = 0; ok && i < PQntuples(mvs); i++)
	{
		char	   *sql = xasprintf(ROWS_FINGERPRINT_FMT, PQgetvalue(mvs, i, 0));
		PGresult   *s = pg_query(src, "fingerprint a materialized view on the source", sql, 0, NULL);
		PGresult   *t = s ? pg_query(tgt, "fingerprint a materialized view on the target", sql, 0, NULL) : NULL;

		ok = s && t && pg_check_shape(s, 1, 1, "a fingerprint") && pg_check_shape(t, 1, 1, "a fingerprint");
		if (ok && strcmp(PQgetvalue(s, 0, 0), PQgetvalue(t, 0, 0)) != 0)
		{
			strbuf_addf(&names, "%s%s", n ? ", " : "", PQgetvalue(mvs, i, 0));
			n++;
		}
		PQclear(s);
		PQclear(t);
		free(sql);
	}
	if (ok && n > 0)
		log_warn("%d materialized %s other rows on the target than on the source, where %s not refreshed since %s inputs changed (the target refreshes them, their rows cannot be copied): %s. Fix: REFRESH MATERIALIZED VIEW on the source to check, or accept the fresh rows",
				 n, n == 1 ? "view has" : "views have", n == 1 ? "it was" : "they were", n == 1 ? "its" : "their", names.data);
	strbuf_release(&names);
	return ok;
}
