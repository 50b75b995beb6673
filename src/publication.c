/*
 * publication.c: the migration's publications on the source (see
 * publication.h).
 */
#include "publication.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "clone.h"
#include "log.h"
#include "mem.h"
#include "pgsql.h"

/* whether relation `t` (a pg_class alias) has a usable replica identity */
#define HAS_IDENTITY(t) \
	"CASE " t ".relreplident" \
	"  WHEN 'f' THEN true" \
	"  WHEN 'n' THEN false" \
	"  WHEN 'i' THEN EXISTS (SELECT 1 FROM pg_catalog.pg_index i" \
	"                        WHERE i.indrelid = " t ".oid AND i.indisreplident)" \
	"  ELSE EXISTS (SELECT 1 FROM pg_catalog.pg_index i" \
	"                WHERE i.indrelid = " t ".oid AND i.indisprimary)" \
	" END"

/*
 * Publishable tables: permanent plain and partitioned tables in user
 * schemas; on 13+ only roots (not partitions), before that only leaves.
 * Also whether each has a usable replica identity: a partitioned table's
 * is its partitions' (PostgreSQL checks the leaf an UPDATE or DELETE
 * touches, and refuses the application's statement when a leaf that
 * publishes updates has none), so a root counts only if every leaf has one
 * (its own setting does not recurse: REPLICA IDENTITY FULL on the root
 * leaves the partitions as they were).
 */
static const char PUBLISHABLE_SQL_FMT[] =
	"SELECT n.nspname, c.relname,"
	"       CASE WHEN c.relkind = 'p'"
	"            THEN NOT EXISTS (SELECT 1 FROM pg_catalog.pg_partition_tree(c.oid) pt"
	"                               JOIN pg_catalog.pg_class l ON l.oid = pt.relid"
	"                              WHERE pt.isleaf AND l.relkind = 'r' AND NOT " HAS_IDENTITY("l") ")"
	"            ELSE " HAS_IDENTITY("c") " END AS has_identity"
	"  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	" WHERE c.relpersistence = 'p'"
	"   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'ferry')"
	"   AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp'"
	"   AND %s"
	" ORDER BY 1, 2";

static bool
schema_matches(const char *pattern, const char *nspname)
{
	/* a schema pattern is a one-part pattern: reuse the table matcher */
	return clone_table_matches(pattern, "", nspname);
}

bool
publication_table_selected(const FerryConfig *cfg, const char *nspname, const char *relname)
{
	bool		in = cfg->include_schemas.n == 0;

	for (int i = 0; i < cfg->include_schemas.n; i++)
		in |= schema_matches(cfg->include_schemas.items[i], nspname);
	for (int i = 0; in && i < cfg->exclude_schemas.n; i++)
		in = !schema_matches(cfg->exclude_schemas.items[i], nspname);
	for (int i = 0; in && i < cfg->exclude_tables.n; i++)
		in = !clone_table_matches(cfg->exclude_tables.items[i], nspname, relname);
	return in;
}

/*
 * Does publication `name` exist? 1 yes (ferry's own, from an earlier run),
 * 0 no, -1 on error or when another role owns it (logged with the fix): a
 * role that pre-created it would choose which tables ferry replicates, and
 * the ones it left out would be lost at the switchover.
 */
static int
publication_exists(PGconn *src, const char *name)
{
	const char *params[1] = {name};
	PGresult   *res = pg_query(src, "look up the publication",
							   "SELECT r.rolname, r.rolname = current_user"
							   "  FROM pg_catalog.pg_publication p JOIN pg_catalog.pg_roles r ON r.oid = p.pubowner"
							   " WHERE p.pubname = $1", 1, params);
	int			r;

	if (res == NULL || !pg_check_shape(res, -1, 2, "the publication"))
	{
		PQclear(res);
		return -1;
	}
	r = PQntuples(res) > 0;
	if (r && PQgetvalue(res, 0, 1)[0] != 't')
	{
		log_error("publication %s on %s already exists and is owned by role %s, not by %s that ferry connects as: ferry would replicate whichever tables that role chose. Fix: if it is not ferry's, drop it (DROP PUBLICATION %s, as its owner) or pick another --name; if it is from a run as %s, connect as %s",
				  name, PQdb(src), PQgetvalue(res, 0, 0), PQuser(src), name, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 0));
		r = -1;
	}
	PQclear(res);
	return r;
}

static bool
create_one(PGconn *src, const char *name, const char *tables, const char *with)
{
	char	   *qn = pg_quote_ident(src, name);
	char	   *sql;
	bool		ok;

	if (qn == NULL)
		return false;
	sql = xasprintf("CREATE PUBLICATION %s%s%s WITH (%s)", qn,
					tables[0] ? " FOR TABLE " : "", tables, with);
	ok = pg_exec(src, "create the publication on the source", sql);
	if (ok)
		log_info("created publication %s on the source", name);
	free(sql);
	free(qn);
	return ok;
}

/*
 * --set-replica-identity-full: the user consents to ALTER TABLE ... REPLICA
 * IDENTITY FULL on the source for the selected tables that have no usable
 * identity, so their updates and deletes replicate too. `tables` holds
 * their quoted qualified names (publication_plan's no_identity).
 */
static bool
set_identity_full(PGconn *src, const StrList *tables)
{
	for (int i = 0; i < tables->n; i++)
	{
		char	   *sql = xasprintf("ALTER TABLE %s REPLICA IDENTITY FULL", tables->items[i]);
		bool		ok = pg_exec(src, "set REPLICA IDENTITY FULL on the source", sql);

		if (ok)
			log_info("%s now has REPLICA IDENTITY FULL (--set-replica-identity-full)", tables->items[i]);
		free(sql);
		if (!ok)
			return false;
	}
	return true;
}

bool
publication_plan(PGconn *src, const FerryConfig *cfg, StrList *all, StrList *insert_only,
				 StrList *no_identity)
{
	bool		via_root = pg_caps(src).publish_via_root;
	char	   *sql = xasprintf(PUBLISHABLE_SQL_FMT,
								via_root ? "c.relkind IN ('r', 'p') AND NOT c.relispartition"
								: "c.relkind = 'r'");
	PGresult   *res = pg_query(src, "list the tables to publish", sql, 0, NULL);

	free(sql);
	if (res == NULL)
		return false;
	for (int i = 0; i < PQntuples(res); i++)
	{
		const char *nsp = PQgetvalue(res, i, 0);
		const char *rel = PQgetvalue(res, i, 1);
		bool		identity = PQgetvalue(res, i, 2)[0] == 't';
		char	   *qn,
				   *qr,
				   *q;

		if (!publication_table_selected(cfg, nsp, rel))
			continue;
		qn = pg_quote_ident(src, nsp);
		qr = pg_quote_ident(src, rel);
		if (qn == NULL || qr == NULL)
		{
			free(qn);
			free(qr);
			PQclear(res);
			return false;
		}
		q = xasprintf("%s.%s", qn, qr);
		strlist_add((identity || cfg->set_replica_identity_full) ? all : insert_only, q);
		if (!identity)
			strlist_add(no_identity, q);
		free(qn);
		free(qr);
		free(q);
	}
	PQclear(res);
	return true;
}

/* "a, b, c": the FOR TABLE list of a publication. Owned. */
static char *
join_names(const StrList *names)
{
	StrBuf		sb;

	strbuf_init(&sb);
	for (int i = 0; i < names->n; i++)
		strbuf_addf(&sb, "%s%s", i ? ", " : "", names->items[i]);
	return strbuf_detach(&sb);
}

bool
publication_ensure(PGconn *src, const FerryConfig *cfg)
{
	char	   *ins_name = xasprintf("%s%s", cfg->name, PUBLICATION_INSERT_ONLY_SUFFIX);
	bool		via_root = pg_caps(src).publish_via_root;
	StrList		all = {NULL, 0, 0},
				ins = {NULL, 0, 0},
				noid = {NULL, 0, 0};
	char	   *full_list = NULL,
			   *ins_list = NULL;
	int			e1,
				e2;
	bool		ok = false;

	e1 = publication_exists(src, cfg->name);
	e2 = publication_exists(src, ins_name);
	if (e1 < 0 || e2 < 0)
		goto done;
	if (e1 && e2)
	{
		ok = true;
		goto done;
	}
	if (!publication_plan(src, cfg, &all, &ins, &noid))
		goto done;
	if (cfg->set_replica_identity_full && !set_identity_full(src, &noid))
		goto done;
	if (ins.n > 0)
		log_warn("%d tables have no primary key or replica identity: they are published for inserts and truncates only, so updates and deletes on them are not replicated until they get one (ferry check lists them with the fix)",
				 ins.n);
	full_list = join_names(&all);
	ins_list = join_names(&ins);
	if (!e1 && !create_one(src, cfg->name, full_list,
						   via_root ? "publish_via_partition_root = true" : "publish = 'insert, update, delete, truncate'"))
		goto done;
	if (!e2 && !create_one(src, ins_name, ins_list,
						   via_root ? "publish = 'insert, truncate', publish_via_partition_root = true"
						   : "publish = 'insert, truncate'"))
		goto done;
	ok = true;

done:
	strlist_free(&all);
	strlist_free(&ins);
	strlist_free(&noid);
	free(full_list);
	free(ins_list);
	free(ins_name);
	return ok;
}

bool
publication_drop(PGconn *src, const FerryConfig *cfg)
{
	char	   *a = pg_quote_ident(src, cfg->name);
	char	   *insn = xasprintf("%s%s", cfg->name, PUBLICATION_INSERT_ONLY_SUFFIX);
	char	   *b = pg_quote_ident(src, insn);
	char	   *sql = a && b ? xasprintf("DROP PUBLICATION IF EXISTS %s; DROP PUBLICATION IF EXISTS %s", a, b) : NULL;
	bool		ok = sql != NULL && pg_exec_quiet(src, sql, NULL);

	free(a);
	free(b);
	free(insn);
	free(sql);
	return ok;
}

bool
publication_missing(PGconn *src, const FerryConfig *cfg, StrList *missing)
{
	StrList		all = {0},
				insert_only = {0},
				no_identity = {0};
	char	   *insn = xasprintf("%s%s", cfg->name, PUBLICATION_INSERT_ONLY_SUFFIX);
	const char *params[2] = {cfg->name, insn};
	PGresult   *res = NULL;
	bool		ok = publication_plan(src, cfg, &all, &insert_only, &no_identity);

	if (ok)
		res = pg_query(src, "list the published tables",
					   /* quoted as libpq quotes (always): publication_plan's names */
					   "SELECT '\"' || pg_catalog.replace(schemaname, '\"', '\"\"') || '\".\"'"
					   "       || pg_catalog.replace(tablename, '\"', '\"\"') || '\"'"
					   "  FROM pg_catalog.pg_publication_tables WHERE pubname IN ($1, $2)", 2, params);
	ok = ok && res != NULL;
	for (int k = 0; ok && k < 2; k++)
	{
		const StrList *l = k == 0 ? &all : &insert_only;

		for (int i = 0; i < l->n; i++)
		{
			bool		found = false;

			for (int r = 0; r < PQntuples(res) && !found; r++)
				found = strcmp(PQgetvalue(res, r, 0), l->items[i]) == 0;
			if (!found)
				strlist_add(missing, l->items[i]);
		}
	}
	PQclear(res);
	free(insn);
	strlist_free(&all);
	strlist_free(&insert_only);
	strlist_free(&no_identity);
	return ok;
}

char *
publication_name_list(const StrList *l)
{
	StrBuf		sb;

	strbuf_init(&sb);
	for (int i = 0; i < l->n && i < 10; i++)
		strbuf_addf(&sb, "%s%s", i ? ", " : "", l->items[i]);
	if (l->n > 10)
		strbuf_addf(&sb, " ... and %d more", l->n - 10);
	return strbuf_detach(&sb);
}

bool
publication_guard_keyless(PGconn *src, const FerryConfig *cfg, KeylessPublish mode)
{
	static const char *const publish[] = {"insert, truncate", "insert, update, delete, truncate", ""};
	static const char *const what[] = {
		"publish the keyless tables for inserts only again",
		"refuse changes to keyless tables on the old source",
		"stop publishing the keyless tables on the old source for the re-copy"
	};
	char	   *insn = xasprintf("%s%s", cfg->name, PUBLICATION_INSERT_ONLY_SUFFIX);
	char	   *q = NULL;
	char	   *sql = NULL;
	bool		ok = true;

	if (publication_exists(src, insn) == 1)
	{
		ok = (q = pg_quote_ident(src, insn)) != NULL;
		if (ok)
		{
			sql = xasprintf("ALTER PUBLICATION %s SET (publish = '%s')", q, publish[mode]);
			ok = pg_exec(src, what[mode], sql);
		}
	}
	free(insn);
	free(q);
	free(sql);
	return ok;
}

char *
publication_names(PGconn *src, const FerryConfig *cfg)
{
	char	   *insn = xasprintf("%s%s", cfg->name, PUBLICATION_INSERT_ONLY_SUFFIX);
	const char *params[2] = {cfg->name, insn};
	PGresult   *res = pg_query(src, "list the publications",
							   "SELECT pubname FROM pg_catalog.pg_publication WHERE pubname IN ($1, $2) ORDER BY 1",
							   2, params);
	StrBuf		sb;

	free(insn);
	if (res == NULL)
		return NULL;
	strbuf_init(&sb);
	for (int i = 0; i < PQntuples(res); i++)
	{
		char	   *q = pg_quote_ident(src, PQgetvalue(res, i, 0));

		if (q == NULL)
		{
			PQclear(res);
			strbuf_release(&sb);
			return NULL;
		}
		strbuf_addf(&sb, "%s%s", i ? "," : "", q);
		free(q);
	}
	PQclear(res);
	if (sb.len == 0)
	{
		log_error("the publications of migration \"%s\" do not exist on the source. Fix: they are made by ferry clone; if they were dropped, start over (ferry cleanup, then clone)",
				  cfg->name);
		strbuf_release(&sb);
		return NULL;
	}
	return strbuf_detach(&sb);
}
