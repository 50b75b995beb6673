/*
 * plan.c: ferry's migration plan, worked out read only (see plan.h).
 */
#include "plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "clone.h"
#include "copy.h"
#include "log.h"
#include "pgsql.h"
#include "publication.h"
#include "schema.h"
#include "slot.h"
#include "state.h"

/*
 * For each table (oid in $1): the relation its changes are published
 * under: its partition root on 13+ (publish_via_partition_root), else
 * itself; and its persistence. %s: the root expression.
 */
static const char PUBLISHED_AS_SQL_FMT[] =
	"SELECT c.oid, c.relpersistence, rn.nspname, r.relname"
	"  FROM pg_catalog.pg_class c"
	"  JOIN pg_catalog.pg_class r ON r.oid = %s"
	"  JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace"
	" WHERE c.oid = ANY ($1::pg_catalog.oid[])";

static const char PUBLICATIONS_EXIST_SQL[] =
	"SELECT pubname = $1 FROM pg_catalog.pg_publication WHERE pubname IN ($1, $2)";

static const char TARGET_STATE_SQL[] =
	"SELECT pg_catalog.to_regclass('ferry.migration') IS NOT NULL,"
	"       pg_catalog.to_regclass('ferry.copy_item') IS NOT NULL,"
	"       EXISTS (SELECT 1 FROM pg_catalog.pg_replication_origin WHERE roname = $1)";

/* "15.4" of a connection, without the packager's suffix. Owned. */
static char *
server_version(PGconn *conn)
{
	const char *v = PQparameterStatus(conn, "server_version");

	return xstrndup(v ? v : "?", strcspn(v ? v : "?", " "));
}

/* A read-only session, or NULL (the checks already report why). */
static PGconn *
connect_read_only(const char *conninfo, const char *label)
{
	char	   *err = NULL;
	PGconn	   *conn = pg_connect(conninfo, label, PG_CONN_SQL, &err);

	free(err);
	if (conn == NULL)
		return NULL;
	pg_cancel_register(conn);
	if (!pg_exec(conn, "make the session read only", "SET default_transaction_read_only = on"))
	{
		pg_finish(conn);
		return NULL;
	}
	return conn;
}

/* What exists already: slot, publications, the target's state and origin. */
static bool
read_existing(PGconn *src, PGconn *tgt, const FerryConfig *cfg, Plan *p)
{
	char	   *insn = xasprintf("%s%s", cfg->name, PUBLICATION_INSERT_ONLY_SUFFIX);
	const char *params[2] = {cfg->name, insn};
	PGresult   *res = NULL;
	int			slot = slot_exists(src, cfg->name);
	bool		ok = false;

	if (slot < 0)
		goto done;
	p->slot_exists = slot == 1;
	res = pg_query(src, "look up the publications", PUBLICATIONS_EXIST_SQL, 2, params);
	if (res == NULL)
		goto done;
	for (int i = 0; i < PQntuples(res); i++)
		p->publication_exists[PQgetvalue(res, i, 0)[0] == 't' ? 0 : 1] = true;
	PQclear(res);
	res = pg_query(tgt, "look for ferry's state", TARGET_STATE_SQL, 1, params);
	if (res == NULL || !pg_check_shape(res, 1, 3, "the state lookup"))
		goto done;
	p->state_exists = PQgetvalue(res, 0, 0)[0] == 't';
	p->origin_exists = PQgetvalue(res, 0, 2)[0] == 't';
	if (p->state_exists)
	{
		MigrationState st;

		if (!state_load(tgt, cfg->name, &st))
			goto done;
		if (st.exists)
			p->phase = xstrdup(st.phase);
		state_release(&st);
	}
	ok = true;

done:
	PQclear(res);
	free(insn);
	return ok;
}

/*
 * Each table's publication: looked up by the name it is published under
 * (its partition root on 13+) in publication_plan()'s lists.
 */
static bool
classify_publication(PGconn *src, const FerryConfig *cfg, const TableList *tables, Plan *p)
{
	StrList		all = {NULL, 0, 0},
				ins = {NULL, 0, 0};
	unsigned int *oids = xcalloc((size_t) tables->n + 1, sizeof(unsigned int));
	char	   *arr;
	char	   *sql = xasprintf(PUBLISHED_AS_SQL_FMT, pg_caps(src).publish_via_root
								? "CASE WHEN c.relispartition THEN pg_catalog.pg_partition_root(c.oid) ELSE c.oid END"
								: "c.oid");
	const char *params[1];
	PGresult   *res = NULL;
	bool		ok = false;

	if (!publication_plan(src, cfg, &all, &ins, &p->set_identity_full))
		goto done;
	if (!cfg->set_replica_identity_full)
		strlist_free(&p->set_identity_full);
	p->published_all = all.n;
	p->published_insert_only = ins.n;
	for (int i = 0; i < tables->n; i++)
		oids[i] = tables->items[i].oid;
	arr = catalog_oid_array(oids, tables->n);
	params[0] = arr;
	res = pg_query(src, "find how each table is published", sql, 1, params);
	free(arr);
	if (res == NULL || !pg_check_shape(res, -1, 4, "the publication lookup"))
		goto done;
	for (int r = 0; r < PQntuples(res); r++)
	{
		unsigned int oid = (unsigned int) strtoul(PQgetvalue(res, r, 0), NULL, 10);
		char	   *qn = pg_quote_ident(src, PQgetvalue(res, r, 2));
		char	   *qr = pg_quote_ident(src, PQgetvalue(res, r, 3));
		char	   *q = qn && qr ? xasprintf("%s.%s", qn, qr) : NULL;
		PlanPublish pub = PLAN_PUB_NONE;

		if (q == NULL)
		{
			free(qn);
			free(qr);
			goto done;
		}
		if (PQgetvalue(res, r, 1)[0] == 'p')
			pub = strlist_has(&all, q) ? PLAN_PUB_ALL
				: strlist_has(&ins, q) ? PLAN_PUB_INSERT_ONLY : PLAN_PUB_NONE;
		for (int i = 0; i < tables->n; i++)
			if (tables->items[i].oid == oid)
				p->tables[i].publish = pub;
		free(qn);
		free(qr);
		free(q);
	}
	ok = true;

done:
	PQclear(res);
	strlist_free(&all);
	strlist_free(&ins);
	free(oids);
	free(sql);
	return ok;
}

/*
 * The data half: which tables' rows are copied, which an earlier run did
 * already, and how copy_plan() splits the rest, exactly as clone.c's
 * copy_data() computes it.
 */
static bool
plan_copy(PGconn *tgt, const FerryConfig *cfg, const TableList *tables, int source_major, Plan *p)
{
	TableList	data = {xcalloc((size_t) tables->n + 1, sizeof(TableInfo)), 0};
	int		   *index = xcalloc((size_t) tables->n + 1, sizeof(int));	/* data -> tables */
	bool	   *done = xcalloc((size_t) tables->n + 1, sizeof(bool));
	bool	   *partial = xcalloc((size_t) tables->n + 1, sizeof(bool));
	CopyItem   *items = NULL;
	int			nitems;
	bool		ok = false;

	/* shallow copies: `data` borrows the strings of `tables` */
	for (int i = 0; i < tables->n; i++)
	{
		p->tables[i].data = !clone_data_excluded(cfg, tables->items[i].nspname, tables->items[i].relname);
		if (!p->tables[i].data)
			continue;
		index[data.n] = i;
		data.items[data.n++] = tables->items[i];
	}
	if (p->phase &&
		!clone_read_done(tgt, cfg->name, &data, done, partial))
		goto done;
	p->can_split = source_major >= CLONE_SPLIT_MIN_MAJOR;
	p->split_bytes = clone_split_bytes(cfg, &data);
	nitems = copy_plan(&data, done, p->split_bytes, p->can_split, &items);
	for (int k = 0; k < nitems; k++)
		p->tables[index[items[k].table]].parts = items[k].nchunks;
	p->parts = nitems;
	for (int d = 0; d < data.n; d++)
	{
		PlanTable  *t = &p->tables[index[d]];

		t->done = done[d];
		if (t->done)
			continue;
		p->data_tables++;
		p->bytes += t->bytes;
		p->rows += t->rows > 0 ? t->rows : 0;
	}
	ok = true;

done:
	free(items);
	free(data.items);
	free(index);
	free(done);
	free(partial);
	return ok;
}

bool
plan_build(const FerryConfig *cfg, Plan *p)
{
	PGconn	   *src = NULL;
	PGconn	   *tgt = NULL;
	SchemaDump	dump;
	TableList	tables = {NULL, 0};
	int			source_major;

	memset(p, 0, sizeof(*p));
	memset(&dump, 0, sizeof(dump));
	check_report_init(&p->checks);
	if (!check_run(cfg, &p->checks))
		return false;
	src = connect_read_only(cfg->source, "source");
	tgt = src ? connect_read_only(cfg->target, "target") : NULL;
	if (tgt == NULL)
		goto done;
	p->source_version = server_version(src);
	p->target_version = server_version(tgt);
	source_major = pg_caps(src).major;
	if (!pg_caps(src).logical_source || !read_existing(src, tgt, cfg, p))
		goto done;

	/* the relations clone would copy: pg_dump's own choice, without a snapshot */
	if (!schema_dump(cfg, source_major, pg_caps(tgt).major, NULL, &dump))
		goto done;
	p->toc_entries = schema_toc_count(dump.toc, &p->toc_types, &p->toc_counts);
	if (!catalog_tables(src, dump.rel_oids, dump.nrel, &tables))
		goto done;
	p->ntables = tables.n;
	p->tables = xcalloc((size_t) tables.n + 1, sizeof(PlanTable));
	for (int i = 0; i < tables.n; i++)
	{
		const TableInfo *ti = &tables.items[i];
		char	   *qn = check_ident(ti->nspname);
		char	   *qr = check_ident(ti->relname);

		p->tables[i].name = xasprintf("%s.%s", qn, qr);
		p->tables[i].nspname = xstrdup(ti->nspname);
		p->tables[i].relname = xstrdup(ti->relname);
		p->tables[i].bytes = ti->bytes;
		p->tables[i].rows = ti->reltuples;
		free(qn);
		free(qr);
	}
	if (pg_interrupted() || !classify_publication(src, cfg, &tables, p) ||
		!plan_copy(tgt, cfg, &tables, source_major, p))
		goto done;
	p->built = true;

done:
	catalog_tables_free(&tables);
	schema_dump_free(&dump);
	pg_finish(src);
	pg_finish(tgt);
	return !pg_interrupted();
}

void
plan_release(Plan *p)
{
	check_report_release(&p->checks);
	free(p->source_version);
	free(p->target_version);
	for (int i = 0; i < p->ntables; i++)
	{
		free(p->tables[i].name);
		free(p->tables[i].nspname);
		free(p->tables[i].relname);
	}
	free(p->tables);
	strlist_free(&p->set_identity_full);
	strlist_free(&p->toc_types);
	free(p->toc_counts);
	free(p->phase);
	memset(p, 0, sizeof(*p));
}
