/*
 * clone.c: the clone orchestrator (see clone.h for the steps and the
 * failure policy; copy.h and schema.h for the parts).
 *
 * Snapshot bookkeeping. A fresh clone copies everything as of the
 * migration slot's consistent point L0, so changes streamed from the slot
 * (all commits at or after L0) continue it with no gap and no overlap. A
 * resumed clone cannot get L0's snapshot back (it died with the connection
 * that exported it), so it creates a TEMPORARY slot to get a new snapshot
 * at Lk, copies the remaining tables as of Lk and records Lk on their
 * ferry.copy_item rows. The change stream (ferry start) then skips, for such
 * a table, the changes committed before its Lk, exactly as PostgreSQL's own
 * table sync does. The temporary slot vanishes with its connection.
 *
 * Foreign keys across snapshots. Tables copied at L0 and at Lk do not agree
 * until apply has passed Lk: a payment copied at Lk can reference an order
 * that came after L0 and is not yet in the target's orders. So when
 * ferry.copy_item holds more than one snapshot LSN, the post-data step
 * builds each foreign key NOT VALID and records it for ferry start to
 * validate once apply has passed the latest one (validate.h); a fresh
 * clone, all at L0, builds them valid as before.
 */
#include "clone.h"

#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"
#include "copy.h"
#include "fault.h"
#include "largeobj.h"
#include "log.h"
#include "matview.h"
#include "mem.h"
#include "metrics.h"
#include "pgsql.h"
#include "pool.h"
#include "publication.h"
#include "schema.h"
#include "slot.h"
#include "state.h"
#include "validate.h"

/* User relations on the target that a fresh clone would collide with. */
static const char TARGET_OBJECTS_SQL[] =
	"SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname)"
	"  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	" WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')"
	"   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'ferry')"
	"   AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp'"
	" ORDER BY 1";

/* Source relations the connecting user cannot read. */
static const char SOURCE_UNREADABLE_SQL[] =
	"SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname)"
	"  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	" WHERE c.relkind IN ('r', 'p', 'm', 'S')"
	"   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'ferry')"
	"   AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp'"
	"   AND (NOT pg_catalog.has_schema_privilege(n.oid, 'USAGE')"
	"        OR NOT pg_catalog.has_table_privilege(c.oid, 'SELECT'))"
	" ORDER BY 1";

static const char SOURCE_PREFLIGHT_SQL[] =
	"SELECT pg_catalog.current_setting('wal_level'),"
	"       pg_catalog.current_setting('server_encoding'),"
	"       r.rolsuper OR r.rolreplication"
	"         OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles m"
	"                     WHERE m.rolname IN ('rds_replication', 'rds_superuser', 'cloudsqlsuperuser', 'azure_pg_admin')"
	"                       AND pg_catalog.pg_has_role(r.oid, m.oid, 'MEMBER')),"
	"       r.rolname"
	"  FROM pg_catalog.pg_roles r WHERE r.rolname = current_user";

/* Progress of an earlier run: items per table, and how many chunks it has. */
static const char DONE_ITEMS_SQL[] =
	"SELECT nspname, relname, count(*), max(nchunks)"
	"  FROM ferry.copy_item WHERE migration = $1 GROUP BY nspname, relname";

/*
 * The dump's sequences. Their state is read from each sequence itself:
 * pg_sequences shows no last_value for one whose nextval() has not been
 * called since a setval(s, v, false) (or ever), and v must still be carried.
 */
static const char SEQUENCES_SQL[] =
	"SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname)"
	"  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	" WHERE c.oid = ANY ($1::pg_catalog.oid[]) AND c.relkind = 'S' ORDER BY 1";

/* ------------------------------------------------------------------ */
/* SQL steps on the target: post-data, matview refreshes, ANALYZE      */

typedef struct SqlStep
{
	const char *key;			/* recorded in ferry.schema_step, NULL = not recorded */
	const char *sql;
	const char *type;			/* a post-data step's dump entry type, else NULL */
	/* a foreign key built NOT VALID: recorded as pending with the step (validate.h) */
	const char *fk_table;
	const char *fk_name;
} SqlStep;

typedef struct StepJob
{
	const FerryConfig *cfg;
	const SqlStep *steps;
	int			nsteps;
	const char *prologue;		/* run once per worker session, may be NULL */
	const char *valid_after;	/* LSN recorded with a pending foreign key */
	_Atomic int done;
} StepJob;

static bool
step_worker_init(void *ctx, int id, void **wstate)
{
	StepJob    *job = ctx;
	PGconn	   *conn = pg_connect(job->cfg->target, "target", PG_CONN_SQL, NULL);

	(void) id;
	if (conn == NULL)
		return false;
	pg_cancel_register(conn);
	if ((job->prologue && !pg_exec(conn, "set up the schema session", job->prologue)) ||
		!pg_exec(conn, "set up the schema session",
				 "SET maintenance_work_mem = '512MB'; SET client_min_messages = warning;"
				 " SELECT pg_catalog.set_config('search_path', '', false)"))
	{
		pg_finish(conn);
		return false;
	}
	*wstate = conn;
	return true;
}

static void
step_worker_fini(void *ctx, void *wstate)
{
	(void) ctx;
	pg_finish(wstate);
}

/*
 * Run one step in its own transaction, with its done row when it has a key.
 * A deadlock with a sibling step (two ALTER TABLEs on one partition tree)
 * is retried; any other error fails the step.
 */
static bool
step_worker_run(void *ctx, void *wstate, int i)
{
	StepJob    *job = ctx;
	PGconn	   *conn = wstate;
	const SqlStep *s = &job->steps[i];

	for (int attempt = 1;; attempt++)
	{
		PGresult   *res;
		const char *state;
		bool		deadlock;
		char	   *err;

		if (!pg_exec(conn, "begin a schema step", "BEGIN"))
			return false;
		res = pg_execute(conn, s->sql, 0, NULL);
		if (PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK)
		{
			PQclear(res);
			if (s->key)
			{
				const char *params[2] = {job->cfg->name, s->key};

				res = pg_query(conn, "record the schema step", STATE_MARK_STEP_SQL, 2, params);
				if (res == NULL)
				{
					pg_exec_quiet(conn, "ROLLBACK", NULL);
					return false;
				}
				PQclear(res);
			}
			if (s->fk_table)
			{
				const char *params[4] = {job->cfg->name, s->fk_table, s->fk_name, job->valid_after};

				res = pg_query(conn, "record the foreign key to validate", VALIDATE_MARK_SQL, 4, params);
				if (res == NULL)
				{
					pg_exec_quiet(conn, "ROLLBACK", NULL);
					return false;
				}
				PQclear(res);
			}
			if (!pg_exec(conn, "commit a schema step", "COMMIT"))
				return false;
			atomic_fetch_add(&job->done, 1);
			fault_point("step.after");
			log_debug("done: %s", s->key ? s->key : s->sql);
			return true;
		}
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		deadlock = state && strcmp(state, "40P01") == 0;
		err = pg_result_error_text(res, conn);
		PQclear(res);
		pg_exec_quiet(conn, "ROLLBACK", NULL);
		if (deadlock && attempt < 5)
		{
			log_info("deadlock on %s, retrying (%d)", s->key ? s->key : "a step", attempt);
			free(err);
			usleep(100000 * (useconds_t) attempt);
			continue;
		}
		log_error("could not run %s on the target: %s", s->key ? s->key : s->sql, err);
		free(err);
		return false;
	}
}

static bool
run_steps(const FerryConfig *cfg, const SqlStep *steps, int n, int workers, const char *prologue,
		  const char *valid_after, const char *role)
{
	StepJob		job = {cfg, steps, n, prologue, valid_after, 0};
	PoolSpec	spec = {0};

	spec.nworkers = workers;
	spec.nitems = n;
	spec.role = role;
	spec.ctx = &job;
	spec.init = step_worker_init;
	spec.run = step_worker_run;
	spec.fini = step_worker_fini;
	return pool_run(&spec);
}

/* ------------------------------------------------------------------ */

/*
 * Turn one part of a pg_dump-style pattern into an fnmatch() pattern, the
 * way pg_dump reads it: outside double quotes letters fold to lower case and
 * * and ? are wildcards; inside them everything is literal ("" is a quote).
 * Stops at an unquoted dot; returns where it stopped.
 */
static const char *
pattern_part(const char *p, StrBuf *out)
{
	bool		quoted = false;

	for (; *p; p++)
	{
		if (*p == '"')
		{
			if (quoted && p[1] == '"')
			{
				strbuf_addch(out, '"');
				p++;
			}
			else
				quoted = !quoted;
		}
		else if (!quoted && *p == '.')
			break;
		else if (!quoted && (*p == '*' || *p == '?'))
			strbuf_addch(out, *p);
		else
		{
			if (*p == '*' || *p == '?' || *p == '[' || *p == '\\')
				strbuf_addch(out, '\\');
			strbuf_addch(out, quoted ? *p : (char) tolower((unsigned char) *p));
		}
	}
	return p;
}

bool
clone_table_matches(const char *pattern, const char *nspname, const char *relname)
{
	StrBuf		first,
				second;
	const char *p;
	bool		m;

	strbuf_init(&first);
	strbuf_init(&second);
	p = pattern_part(pattern, &first);
	if (*p == '.')
	{
		p = pattern_part(p + 1, &second);
		if (*p == '.')
		{
			/* database.schema.table: the database part names this one */
			strbuf_reset(&first);
			strbuf_addstr(&first, second.data);
			strbuf_reset(&second);
			pattern_part(p + 1, &second);
		}
		m = fnmatch(first.data, nspname, 0) == 0 && fnmatch(second.data, relname, 0) == 0;
	}
	else
		m = fnmatch(first.data, relname, 0) == 0;
	strbuf_release(&first);
	strbuf_release(&second);
	return m;
}

/* Print up to 5 names from the first column of res, and the count. Owned. */
static char *
name_list(PGresult *res)
{
	StrBuf		sb;
	int			n = PQntuples(res);

	strbuf_init(&sb);
	for (int i = 0; i < n && i < 5; i++)
		strbuf_addf(&sb, "%s%s", i ? ", " : "", PQgetvalue(res, i, 0));
	if (n > 5)
		strbuf_addf(&sb, " and %d more", n - 5);
	return strbuf_detach(&sb);
}

typedef struct Clone
{
	FerryConfig *cfg;
	PGconn	   *src;
	PGconn	   *tgt;
	MigrationState st;
	SlotSnapshot slot;
	SchemaDump	dump;
	char	   *dump_oids;		/* the dump's relation OIDs as an array literal, owned */
	TableList	tables;
	char	   *encoding;
	int			source_major;
	int			target_major;
	bool		fresh;			/* this run created the migration slot */
	bool		committed_any;	/* some data or schema is committed */
} Clone;

static bool
preflight(Clone *c)
{
	PGresult   *res;
	bool		ok = false;

	c->source_major = pg_caps(c->src).major;
	c->target_major = pg_caps(c->tgt).major;
	if (!pg_caps(c->src).logical_source)
	{
		log_error("the source server runs PostgreSQL %d, ferry needs 10 or later (logical decoding with pgoutput). Fix: upgrade the source first, or use pg_dump for this move",
				  PQserverVersion(c->src) / 100);
		return false;
	}
	if (c->target_major < c->source_major)
	{
		log_error("the target server (PostgreSQL %d) is older than the source (%d): a schema dump of the source cannot be restored there. Fix: use a target of version %d or later",
				  c->target_major, c->source_major, c->source_major);
		return false;
	}
	{
		/* the migration lock, the apply fence and session settings need a session of ferry's own */
		char	   *why;
		int			r = pg_session_pooled(c->tgt, c->cfg->target, "target", &why);

		if (r != 0)
			log_error("%s the target%s%s. Fix: %s", r > 0 ? "ferry cannot use" : "could not tell whether a pooler stands in front of",
					  r > 0 ? " through a pooler in " : ": ", why, r > 0 ? PG_POOLED_FIX : "see the error, then run ferry start again");
		free(why);
		if (r != 0)
			return false;
	}
	res = pg_query(c->src, "check the source settings", SOURCE_PREFLIGHT_SQL, 0, NULL);
	if (res == NULL || !pg_check_shape(res, 1, 4, "the source settings"))
		goto done;
	if (strcmp(PQgetvalue(res, 0, 0), "logical") != 0)
	{
		log_error("the source has wal_level = %s, logical replication needs logical. Fix: on the source run ALTER SYSTEM SET wal_level = logical; then restart it",
				  PQgetvalue(res, 0, 0));
		goto done;
	}
	if (PQgetvalue(res, 0, 2)[0] != 't')
	{
		log_error("the source user \"%s\" may not create replication slots. Fix: on the source run ALTER ROLE %s WITH REPLICATION; (on a managed service, grant its replication role)",
				  PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 3));
		goto done;
	}
	c->encoding = xstrdup(PQgetvalue(res, 0, 1));
	PQclear(res);
	res = pg_query(c->src, "check read access on the source", SOURCE_UNREADABLE_SQL, 0, NULL);
	if (res == NULL)
		goto done;
	if (PQntuples(res) > 0)
	{
		char	   *names = name_list(res);

		log_error("the source user cannot read %d tables or sequences: %s. Fix: GRANT USAGE ON SCHEMA <schema> TO <user>; GRANT SELECT ON ALL TABLES IN SCHEMA <schema> TO <user>; GRANT SELECT ON ALL SEQUENCES IN SCHEMA <schema> TO <user>; on the source (ferry check lists each one)",
				  PQntuples(res), names);
		free(names);
		goto done;
	}
	ok = true;

done:
	PQclear(res);
	return ok;
}

/* A fresh clone needs a target with none of the source's relations yet. */
static bool
target_is_empty(Clone *c)
{
	PGresult   *res = pg_query(c->tgt, "list the target's tables", TARGET_OBJECTS_SQL, 0, NULL);
	bool		ok;

	if (res == NULL)
		return false;
	ok = PQntuples(res) == 0;
	if (!ok)
	{
		char	   *names = name_list(res);
		char	   *where = pg_conn_describe(c->tgt);

		log_error("the target database %s is not empty: it has %d tables, views or sequences (%s) and no ferry state for migration \"%s\". Fix: point --target at an empty database (createdb), or drop those objects; to resume an earlier clone use its --name",
				  where, PQntuples(res), names, c->cfg->name);
		free(names);
		free(where);
	}
	PQclear(res);
	return ok;
}

/*
 * The publications must stream exactly the tables the schema dump holds:
 * each dumped permanent table, or its partition root, is published, and
 * nothing else. Both come from the same filters; this guards the corners
 * where ferry's reading of pg_dump's patterns and pg_dump's own could differ.
 * Where roots are published (PUBLICATION_VIA_ROOT_MIN_VERSION) a dumped
 * partitioned table counts too: one with no partition yet has nothing to
 * copy, but is published so that the partitions made later are followed.
 * %s: the partition root expression; the relkinds that count as dumped.
 */
static const char PUBLICATION_COVERAGE_SQL_FMT[] =
	"WITH dumped AS ("
	"  SELECT c.oid, %s AS root FROM pg_catalog.pg_class c"
	"   WHERE c.oid = ANY ($1::pg_catalog.oid[]) AND c.relkind IN (%s) AND c.relpersistence = 'p'),"
	" pub AS ("
	"  SELECT pg_catalog.to_regclass(pg_catalog.quote_ident(schemaname) || '.' || pg_catalog.quote_ident(tablename))::pg_catalog.oid AS oid"
	"    FROM pg_catalog.pg_publication_tables WHERE pubname IN ($2, $3))"
	"SELECT 'not published: ' || d.oid::pg_catalog.regclass::text FROM dumped d"
	" WHERE NOT EXISTS (SELECT 1 FROM pub p WHERE p.oid IN (d.oid, d.root))"
	" UNION ALL "
	"SELECT 'published but not in the dump: ' || p.oid::pg_catalog.regclass::text FROM pub p"
	" WHERE NOT EXISTS (SELECT 1 FROM dumped d WHERE p.oid IN (d.oid, d.root))";

static bool
publication_covers_dump(Clone *c)
{
	const char *arr = c->dump_oids;
	char	   *insn = xasprintf("%s%s", c->cfg->name, PUBLICATION_INSERT_ONLY_SUFFIX);
	char	   *sql = xasprintf(PUBLICATION_COVERAGE_SQL_FMT,
								pg_caps(c->src).partition_root ? "pg_catalog.pg_partition_root(c.oid)" : "c.oid",
								pg_caps(c->src).publish_via_root ? "'r', 'p'" : "'r'");
	const char *params[3] = {arr, c->cfg->name, insn};
	PGresult   *res = pg_query(c->src, "compare the publications with the schema dump", sql, 3, params);
	bool		ok = res != NULL && PQntuples(res) == 0;

	if (res != NULL && !ok)
	{
		char	   *names = name_list(res);

		log_error("the publications do not match the tables being copied (%s). Fix: simplify the table filters, or report this as a bug",
				  names);
		free(names);
	}
	PQclear(res);
	free(insn);
	free(sql);
	return ok;
}

/* Create the migration's slot and record it: the start of a fresh clone. */
static bool
start_fresh(Clone *c)
{
	int			exists = slot_exists(c->src, c->cfg->name);

	if (exists < 0)
		return false;
	if (exists && !(c->st.exists && c->st.start_lsn == NULL))
	{
		log_error("a replication slot named \"%s\" already exists on the source, but the target has no ferry state for it. Fix: if it is a leftover, run SELECT pg_drop_replication_slot('%s'); on the source; otherwise choose another --name",
				  c->cfg->name, c->cfg->name);
		return false;
	}
	if (exists && !slot_drop(c->src, c->cfg->name))	/* ours, from a run killed before it recorded the LSN */
		return false;
	if (!c->st.exists)
	{
		if (!state_ensure(c->tgt, "target") || !state_create(c->tgt, c->cfg->name, c->cfg->name))
			return false;
	}
	/* publications first: pgoutput must find them at every decoded change */
	c->fresh = true;
	if (!publication_ensure(c->src, c->cfg) ||
		!slot_create(c->cfg->source, c->cfg->name, false, &c->slot))
		return false;
	return state_set(c->tgt, c->cfg->name, "start_lsn", c->slot.lsn_text);
}

/* Resume: a temporary slot gives a new snapshot for what is left to copy. */
static bool
start_resume(Clone *c)
{
	char	   *tmpname;
	int			exists = slot_exists(c->src, c->st.slot_name);
	bool		ok;

	if (exists < 0)
		return false;
	if (!exists)
	{
		log_error("the replication slot \"%s\" of migration \"%s\" no longer exists on the source, so changes made since the clone began are lost to it. Fix: start over: drop and recreate the target database, then run ferry clone again",
				  c->st.slot_name, c->cfg->name);
		return false;
	}
	log_info("resuming the clone of migration \"%s\" (slot %s, started at %s)",
			 c->cfg->name, c->st.slot_name, c->st.start_lsn);
	tmpname = xasprintf("%s_resume_%d", c->cfg->name, (int) getpid());
	ok = slot_create(c->cfg->source, tmpname, true, &c->slot);
	free(tmpname);
	return ok;
}

/* Record the tables to copy, so that `status` can show progress against them. */
static bool
record_plan(Clone *c)
{
	StrList		nsp = {0},
				rel = {0},
				bytes = {0};
	bool		ok;

	/* the names as parameters (text[] values), never in the SQL text */
	for (int i = 0; i < c->tables.n; i++)
	{
		char		b[32];

		snprintf(b, sizeof(b), "%lld", (long long) c->tables.items[i].bytes);
		strlist_add(&nsp, c->tables.items[i].nspname);
		strlist_add(&rel, c->tables.items[i].relname);
		strlist_add(&bytes, b);
	}
	{
		char	   *a[3] = {pg_text_array(&nsp), pg_text_array(&rel), pg_text_array(&bytes)};
		const char *params[4] = {c->cfg->name, a[0], a[1], a[2]};
		PGresult   *res = c->tables.n ? pg_query(c->tgt, "record the copy plan",
												 "INSERT INTO ferry.copy_plan (migration, nspname, relname, bytes)"
												 " SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bigint[])"
												 " ON CONFLICT (migration, nspname, relname) DO NOTHING",
												 4, params) : NULL;

		ok = c->tables.n == 0 || res != NULL;
		PQclear(res);
		for (int i = 0; i < 3; i++)
			free(a[i]);
	}
	strlist_free(&nsp);
	strlist_free(&rel);
	strlist_free(&bytes);
	return ok;
}

bool
clone_read_done(PGconn *tgt, const char *name, const TableList *tables, bool *done, bool *partial)
{
	const char *params[1] = {name};
	PGresult   *res = pg_query(tgt, "read the copy progress", DONE_ITEMS_SQL, 1, params);

	if (res == NULL)
		return false;
	for (int i = 0; i < tables->n; i++)
		done[i] = partial[i] = false;
	for (int r = 0; r < PQntuples(res); r++)
	{
		long		have = strtol(PQgetvalue(res, r, 2), NULL, 10);
		long		need = strtol(PQgetvalue(res, r, 3), NULL, 10);

		for (int i = 0; i < tables->n; i++)
		{
			if (strcmp(tables->items[i].nspname, PQgetvalue(res, r, 0)) != 0 ||
				strcmp(tables->items[i].relname, PQgetvalue(res, r, 1)) != 0)
				continue;
			done[i] = have >= need;
			partial[i] = have < need;
		}
	}
	PQclear(res);
	return true;
}

/*
 * Partitions copied before a resume whose tree is not all copied at that
 * one snapshot: the change stream of a 13+ source names only the root, so
 * one snapshot must hold for every partition of a tree (apply.c skips a
 * root's changes up to it). $2, $3: schema and table names of the planned
 * tables.
 */
static const char TREE_REDO_SQL[] =
	"WITH planned AS ("
	"  SELECT p.nspname, p.relname, pg_catalog.pg_partition_root(pg_catalog.to_regclass("
	"           pg_catalog.quote_ident(p.nspname) || '.' || pg_catalog.quote_ident(p.relname))) AS root"
	"    FROM unnest($2::text[], $3::text[]) AS p (nspname, relname)),"
	" copied AS ("
	"  SELECT nspname, relname, min(snapshot_lsn) AS lsn FROM ferry.copy_item"
	"   WHERE migration = $1 GROUP BY 1, 2),"
	" tree AS ("
	"  SELECT pl.root, count(*) FILTER (WHERE c.lsn IS NULL) AS todo, count(DISTINCT c.lsn) AS snapshots"
	"    FROM planned pl LEFT JOIN copied c USING (nspname, relname)"
	"   WHERE pl.root IS NOT NULL GROUP BY pl.root)"
	" SELECT pl.nspname, pl.relname FROM planned pl JOIN tree t USING (root) JOIN copied c USING (nspname, relname)"
	"  WHERE t.todo > 0 OR t.snapshots > 1";

/* Mark in redo[] the partitions TREE_REDO_SQL names. */
static bool
load_tree_redo(Clone *c, bool *redo)
{
	StrList		nsp = {0},
				rel = {0};
	const char *params[3];
	char	   *nsp_array,
			   *rel_array;
	PGresult   *res;

	for (int i = 0; i < c->tables.n; i++)
	{
		strlist_add(&nsp, c->tables.items[i].nspname);
		strlist_add(&rel, c->tables.items[i].relname);
	}
	nsp_array = pg_text_array(&nsp);
	rel_array = pg_text_array(&rel);
	params[0] = c->cfg->name;
	params[1] = nsp_array;
	params[2] = rel_array;
	res = pg_query(c->tgt, "find partition trees split across snapshots", TREE_REDO_SQL, 3, params);
	free(nsp_array);
	free(rel_array);
	strlist_free(&nsp);
	strlist_free(&rel);
	if (res == NULL)
		return false;
	for (int r = 0; r < PQntuples(res); r++)
		for (int i = 0; i < c->tables.n; i++)
			if (strcmp(c->tables.items[i].nspname, PQgetvalue(res, r, 0)) == 0 &&
				strcmp(c->tables.items[i].relname, PQgetvalue(res, r, 1)) == 0)
				redo[i] = true;
	PQclear(res);
	return true;
}

/*
 * Which tables are done; truncate tables copied only in part, and
 * partitions whose tree would otherwise be copied at two snapshots.
 */
static bool
load_done(Clone *c, bool **done_out)
{
	size_t		n = (size_t) (c->tables.n ? c->tables.n : 1);
	bool	   *done = xcalloc(n, sizeof(bool));
	bool	   *partial = xcalloc(n, sizeof(bool));
	bool	   *redo = xcalloc(n, sizeof(bool));
	bool		ok = clone_read_done(c->tgt, c->cfg->name, &c->tables, done, partial) &&
		load_tree_redo(c, redo);

	for (int i = 0; ok && i < c->tables.n; i++)
	{
		TableInfo  *t = &c->tables.items[i];
		/* parts of one table must come from one snapshot: start it over */
		const char *p3[3] = {c->cfg->name, t->nspname, t->relname};
		char	   *trunc;
		PGresult   *d;

		if (!partial[i] && !redo[i])
			continue;
		if (partial[i])
			log_info("table %s was copied in part: copying it again", t->qualname);
		else
			log_info("partition %s was copied at an earlier snapshot than the rest of its partition tree: copying it again", t->qualname);
		done[i] = false;
		trunc = xasprintf("BEGIN; TRUNCATE ONLY %s", t->qualname);
		ok = pg_exec(c->tgt, "empty a partly copied table", trunc);
		free(trunc);
		if (ok)
		{
			d = pg_query(c->tgt, "forget the partial copy",
						 "DELETE FROM ferry.copy_item WHERE migration = $1 AND nspname = $2 AND relname = $3",
						 3, p3);
			PQclear(d);
			ok = d != NULL && pg_exec(c->tgt, "commit", "COMMIT");
		}
		if (!ok)
			pg_exec_quiet(c->tgt, "ROLLBACK", NULL);
	}
	free(partial);
	free(redo);
	if (!ok)
	{
		free(done);
		return false;
	}
	*done_out = done;
	return true;
}

bool
clone_data_excluded(const FerryConfig *cfg, const char *nspname, const char *relname)
{
	for (int p = 0; p < cfg->exclude_table_data.n; p++)
		if (clone_table_matches(cfg->exclude_table_data.items[p], nspname, relname))
			return true;
	return false;
}

int64_t
clone_split_bytes(const FerryConfig *cfg, const TableList *tables)
{
	int64_t		total = 0;
	int64_t		split;

	if (cfg->split_bytes != SPLIT_AUTO)
		return cfg->split_bytes;
	for (int i = 0; i < tables->n; i++)
		total += tables->items[i].bytes;
	split = total / (cfg->jobs > 0 ? cfg->jobs : 1);
	return split < SPLIT_AUTO_MIN ? SPLIT_AUTO_MIN : split;
}

static bool
copy_data(Clone *c, CloneSummary *sum)
{
	bool	   *done = NULL;
	CopyItem   *items = NULL;
	int			nitems;
	int			ndone = 0;
	CopyJob		job;
	bool		ok;

	/* drop the tables whose data the filters exclude */
	if (c->cfg->exclude_table_data.n > 0)
	{
		int			k = 0;

		for (int i = 0; i < c->tables.n; i++)
		{
			if (clone_data_excluded(c->cfg, c->tables.items[i].nspname, c->tables.items[i].relname))
			{
				log_info("not copying the data of %s (--exclude-table-data)", c->tables.items[i].qualname);
				free(c->tables.items[i].nspname);
				free(c->tables.items[i].relname);
				free(c->tables.items[i].qualname);
				free(c->tables.items[i].columns);
			}
			else
				c->tables.items[k++] = c->tables.items[i];
		}
		c->tables.n = k;
	}
	if (!record_plan(c) || !load_done(c, &done))
		return false;
	for (int i = 0; i < c->tables.n; i++)
	{
		ndone += done[i];
		metrics_table_add(c->tables.items[i].nspname, c->tables.items[i].relname, 0, 0);	/* list it */
	}
	nitems = copy_plan(&c->tables, done, clone_split_bytes(c->cfg, &c->tables),
					   c->source_major >= CLONE_SPLIT_MIN_MAJOR, &items);
	log_info("copying %d tables (%d parts) with %d workers%s", c->tables.n - ndone, nitems, c->cfg->jobs,
			 ndone ? ", the others are done already" : "");

	memset(&job, 0, sizeof(job));
	job.cfg = c->cfg;
	job.tables = &c->tables;
	job.items = items;
	job.nitems = nitems;
	job.snapshot = c->slot.snapshot;
	job.snapshot_lsn = c->slot.lsn_text;
	job.encoding = c->encoding;
	job.binary_allowed = c->source_major == c->target_major;
	ok = copy_run(&job);
	sum->tables = c->tables.n - ndone;
	sum->parts = atomic_load(&job.items_done);
	sum->rows = atomic_load(&job.rows);
	sum->bytes = atomic_load(&job.bytes);
	if (sum->parts > 0)
		c->committed_any = true;
	free(items);
	free(done);
	return ok;
}

/*
 * Name the unlogged tables whose rows were copied: the copy is as of the
 * snapshot, and nothing after it reaches the target (they are not in the
 * WAL, so not in the change stream; PostgreSQL does not publish them).
 */
static void
warn_unlogged(const Clone *c)
{
	StrBuf		names;
	int			n = 0;

	strbuf_init(&names);
	for (int i = 0; i < c->tables.n; i++)
	{
		const TableInfo *t = &c->tables.items[i];

		if (t->persistence != 'u' || clone_data_excluded(c->cfg, t->nspname, t->relname))
			continue;
		strbuf_addf(&names, "%s%s", n ? ", " : "", t->qualname);
		n++;
	}
	if (n > 0)
		log_warn("%d unlogged %s copied as of the clone's snapshot, but later changes to them are not replicated (unlogged tables are not in the WAL): %s. Fix: ALTER TABLE ... SET LOGGED on the source before the clone, or copy them again at switchover",
				 n, n == 1 ? "table was" : "tables were", names.data);
	strbuf_release(&names);
}

/*
 * Were the tables copied at more than one snapshot (a resumed clone)? Sets
 * *lsn (owned) to the latest snapshot LSN then, else to NULL. False (logged)
 * on error.
 */
static const char SNAPSHOTS_SQL[] =
	"SELECT count(DISTINCT snapshot_lsn), max(snapshot_lsn)::text FROM ferry.copy_item WHERE migration = $1";

static bool
copied_across_snapshots(Clone *c, char **lsn)
{
	const char *params[1] = {c->cfg->name};
	PGresult   *res = pg_query(c->tgt, "count the clone's snapshots", SNAPSHOTS_SQL, 1, params);

	if (res == NULL || !pg_check_shape(res, 1, 2, "the clone's snapshots"))
	{
		PQclear(res);
		return false;
	}
	*lsn = strtol(PQgetvalue(res, 0, 0), NULL, 10) > 1 ? xstrdup(PQgetvalue(res, 0, 1)) : NULL;
	PQclear(res);
	return true;
}

/*
 * For a clone copied across snapshots: turn the foreign keys among the
 * steps to do into NOT VALID ones recorded as pending (see the opening
 * comment). The rewritten SQL and names go to owned[] (*nowned entries,
 * three per key).
 * Returns how many were turned.
 */
static int
defer_foreign_keys(SqlStep *todo, int n, char **owned, int *nowned)
{
	int			k = 0;

	for (int i = 0; i < n; i++)
	{
		char	   *sql,
				   *table,
				   *name;

		if (todo[i].type && strcmp(todo[i].type, "FK CONSTRAINT") == 0 &&
			schema_fk_not_valid(todo[i].sql, &sql, &table, &name))
		{
			todo[i].sql = owned[(*nowned)++] = sql;
			todo[i].fk_table = owned[(*nowned)++] = table;
			todo[i].fk_name = owned[(*nowned)++] = name;
			k++;
		}
	}
	return k;
}

/* Post-data steps not done yet, wave 1 in parallel, then wave 2 in order. */
static bool
post_data(Clone *c, CloneSummary *sum)
{
	SchemaSteps steps;
	const char *params[1] = {c->cfg->name};
	PGresult   *res;
	SqlStep    *todo[2];
	int			n[2] = {0, 0};
	char	   *valid_after = NULL;
	char	  **owned = NULL;
	int			nowned = 0;
	bool		ok = false;

	if (!copied_across_snapshots(c, &valid_after))
		return false;
	/* an older ferry's state has no ferry.pending_constraint yet */
	if (valid_after && !state_ensure(c->tgt, "target"))
	{
		free(valid_after);
		return false;
	}
	if (!schema_post_data_steps(c->cfg, &c->dump, &steps))
	{
		free(valid_after);
		return false;
	}
	res = pg_query(c->tgt, "read the schema progress",
				   "SELECT step FROM ferry.schema_step WHERE migration = $1", 1, params);
	if (res == NULL)
	{
		schema_steps_free(&steps);
		return false;
	}
	todo[0] = xcalloc((size_t) steps.n + 1, sizeof(SqlStep));
	todo[1] = xcalloc((size_t) steps.n + 1, sizeof(SqlStep));
	for (int i = 0; i < steps.n; i++)
	{
		bool		done = false;
		int			w = steps.items[i].wave == 1 ? 0 : 1;

		for (int r = 0; r < PQntuples(res) && !done; r++)
			done = strcmp(PQgetvalue(res, r, 0), steps.items[i].key) == 0;
		if (done)
			continue;
		todo[w][n[w]].key = steps.items[i].key;
		todo[w][n[w]].sql = steps.items[i].sql;
		todo[w][n[w]].type = steps.items[i].type;
		n[w]++;
	}
	PQclear(res);
	if (valid_after)
	{
		int			k;

		owned = xcalloc((size_t) (3 * n[1] + 1), sizeof(char *));
		k = defer_foreign_keys(todo[1], n[1], owned, &nowned);
		if (k > 0)
			log_info("building %d foreign keys NOT VALID: the tables were copied at different snapshots (a resumed clone), so they agree only once apply has passed %s; ferry start validates them then",
					 k, valid_after);
	}
	log_info("building %d indexes and constraints with %d workers, then %d other schema objects",
			 n[0], c->cfg->index_jobs, n[1]);
	if (run_steps(c->cfg, todo[0], n[0], c->cfg->index_jobs, steps.prologue, NULL, "index worker") &&
		run_steps(c->cfg, todo[1], n[1], 1, steps.prologue, valid_after, "schema worker"))
		ok = true;
	sum->steps = n[0] + n[1];
	for (int i = 0; i < nowned; i++)
		free(owned[i]);
	free(owned);
	free(valid_after);
	free(todo[0]);
	free(todo[1]);
	schema_steps_free(&steps);
	return ok;
}

/* Give every target sequence the source's last_value and is_called. */
static bool
sync_sequences(Clone *c, CloneSummary *sum)
{
	const char *arr = c->dump_oids;
	const char *params[1] = {arr};
	PGresult   *res = pg_query(c->src, "list the source sequences", SEQUENCES_SQL, 1, params);
	bool		ok = res != NULL;

	for (int i = 0; ok && i < PQntuples(res); i++)
	{
		/* the name was quoted by the source (quote_ident) */
		char	   *sql = xasprintf("SELECT last_value, is_called FROM %s", PQgetvalue(res, i, 0));
		PGresult   *v = pg_query(c->src, "read a source sequence", sql, 0, NULL);
		PGresult   *r = NULL;

		ok = v != NULL && pg_check_shape(v, 1, 2, "a sequence's state");
		if (ok)
		{
			const char *p3[3] = {PQgetvalue(res, i, 0), PQgetvalue(v, 0, 0), PQgetvalue(v, 0, 1)};

			r = pg_query(c->tgt, "set a target sequence",
						 "SELECT pg_catalog.setval($1::pg_catalog.regclass, $2::bigint, $3::boolean)", 3, p3);
			ok = r != NULL;
		}
		PQclear(r);
		PQclear(v);
		free(sql);
		sum->sequences += ok;
	}
	PQclear(res);
	return ok;
}

static bool
refresh_and_analyze(Clone *c, CloneSummary *sum)
{
	PGresult   *res = matview_refresh_order(c->src, c->dump_oids);
	SqlStep    *steps;
	char	  **owned;
	int			n = 0,
				nowned = 0;
	bool		ok = false;

	if (res == NULL)
		return false;
	steps = xcalloc((size_t) (PQntuples(res) + c->tables.n + 1), sizeof(SqlStep));
	owned = xcalloc((size_t) (2 * PQntuples(res) + c->tables.n + 1), sizeof(char *));
	for (int i = 0; i < PQntuples(res); i++)
	{
		owned[nowned] = xasprintf("MATVIEW REFRESH %s", PQgetvalue(res, i, 0));
		steps[n].key = owned[nowned++];
		owned[nowned] = xasprintf("REFRESH MATERIALIZED VIEW %s", PQgetvalue(res, i, 0));
		steps[n].sql = owned[nowned++];
		n++;
	}
	sum->matviews = n;
	/* refreshes run in dependency order, one at a time; the done ones are cheap to redo */
	if (run_steps(c->cfg, steps, n, 1, NULL, NULL, "schema worker") && matview_warn_stale(c->src, c->tgt, res))
	{
		int			na = 0;

		for (int i = 0; i < c->tables.n; i++)
		{
			owned[nowned] = xasprintf("ANALYZE %s", c->tables.items[i].qualname);
			steps[na].key = NULL;
			steps[na].sql = owned[nowned++];
			na++;
		}
		log_info("analyzing %d tables on the target", na);
		ok = run_steps(c->cfg, steps, na, c->cfg->index_jobs, NULL, NULL, "analyze worker");
	}
	for (int i = 0; i < nowned; i++)
		free(owned[i]);
	free(owned);
	free(steps);
	PQclear(res);
	return ok;
}

/* After a failure: remove what a fresh, uncommitted clone made; else explain. */
static void
after_failure(Clone *c)
{
	if (c->fresh && !c->committed_any && !c->st.pre_data_done)
	{
		log_info("removing the replication slot, publications and state of the failed clone, so no WAL is retained");
		if (c->slot.conn)
			slot_snapshot_release(&c->slot);
		pg_exec_quiet(c->src, "ROLLBACK", NULL);
		slot_drop(c->src, c->cfg->name);
		publication_drop(c->src, c->cfg);
		state_forget(c->tgt, c->cfg->name);
		pg_exec_quiet(c->tgt,
					  "DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM ferry.migration) THEN DROP SCHEMA ferry CASCADE; END IF; END$$",
					  NULL);
		return;
	}
	if (c->st.exists || c->fresh)
		log_info("the clone can be resumed: run the same ferry clone again. The replication slot \"%s\" keeps WAL on the source until then; to give up instead, run SELECT pg_drop_replication_slot('%s'); on the source",
				  c->cfg->name, c->cfg->name);
}

bool
clone_run(FerryConfig *cfg, CloneSummary *sum)
{
	Clone		c;
	bool		ok = false;
	double		t0 = copy_now(),
				t1;
	int			have_state;

	memset(&c, 0, sizeof(c));
	memset(sum, 0, sizeof(*sum));
	c.cfg = cfg;
	snprintf(sum->slot_name, sizeof(sum->slot_name), "%s", cfg->name);

	c.tgt = pg_connect(cfg->target, "target", PG_CONN_SQL, NULL);
	if (c.tgt == NULL)
		return false;
	c.src = pg_connect(cfg->source, "source", PG_CONN_SQL, NULL);
	if (c.src == NULL)
		goto done;
	pg_cancel_register(c.src);
	pg_cancel_register(c.tgt);
	if (!preflight(&c) || !state_lock(c.tgt, cfg->name))
		goto done;

	have_state = state_table_exists(c.tgt, "migration");
	if (have_state < 0 || (have_state && !state_load(c.tgt, cfg->name, &c.st)))
		goto done;
	if (c.st.exists && strcmp(c.st.phase, "cloning") != 0)
	{
		log_info("the clone of migration \"%s\" is already complete (phase %s)", cfg->name, c.st.phase);
		metrics_set_phase(c.st.phase);
		sum->already_done = true;
		snprintf(sum->start_lsn, sizeof(sum->start_lsn), "%s", c.st.start_lsn ? c.st.start_lsn : "");
		ok = true;
		goto done;
	}
	if (!c.st.exists && !target_is_empty(&c))
		goto done;

	if (c.st.exists && c.st.start_lsn != NULL)
	{
		sum->resumed = true;
		if (!start_resume(&c))
			goto done;
	}
	else if (!start_fresh(&c))
		goto done;
	snprintf(sum->start_lsn, sizeof(sum->start_lsn), "%s",
			 c.fresh ? c.slot.lsn_text : c.st.start_lsn);
	fault_point("clone.after-slot");

	/* from here on the coordinator reads the source as of the snapshot */
	{
		char	   *snap = pg_quote_literal(c.src, c.slot.snapshot);
		char	   *sql = snap ? xasprintf("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT %s", snap) : NULL;
		bool		sok = sql != NULL && pg_exec(c.src, "import the clone snapshot", sql);

		free(snap);
		free(sql);
		if (!sok)
			goto fail;
	}

	if (!schema_dump(cfg, c.source_major, c.target_major, c.slot.snapshot, &c.dump))
		goto fail;
	c.dump_oids = catalog_oid_array(c.dump.rel_oids, c.dump.nrel);
	if (!c.st.pre_data_done && !schema_restore_pre_data(c.tgt, cfg, &c.dump))
		goto fail;
	c.st.pre_data_done = true;
	fault_point("clone.after-pre-data");
	sum->schema_seconds = copy_now() - t0;

	t1 = copy_now();
	if (!catalog_tables(c.src, c.dump.rel_oids, c.dump.nrel, &c.tables) || !publication_covers_dump(&c))
		goto fail;
	if (!c.st.data_done)
	{
		metrics_set_phase("copying");
		if (!copy_data(&c, sum))
			goto fail;
		if (!state_set(c.tgt, cfg->name, "data_done", "true"))
			goto fail;
		c.st.data_done = true;
		fault_point("clone.after-data");
	}
	warn_unlogged(&c);
	if (!largeobj_copy(c.src, c.tgt, cfg, &sum->large_objects, &sum->large_object_bytes))
		goto fail;
	if (sum->large_objects > 0)
		c.committed_any = true;
	sum->data_seconds = copy_now() - t1;
	/* the snapshot is no longer needed: a temporary slot goes away here */
	pg_exec_quiet(c.src, "COMMIT", NULL);
	slot_snapshot_release(&c.slot);

	t1 = copy_now();
	metrics_set_phase("indexing");
	if (!post_data(&c, sum) || !sync_sequences(&c, sum) || !refresh_and_analyze(&c, sum))
		goto fail;
	fault_point("clone.before-done");
	if (!state_set(c.tgt, cfg->name, "post_data_done", "true") ||
		!state_set(c.tgt, cfg->name, "clone_finished_at", "now") ||
		!state_set(c.tgt, cfg->name, "phase", "cloned"))
		goto fail;
	sum->post_seconds = copy_now() - t1;
	metrics_set_phase("cloned");
	ok = true;
	goto done;

fail:
	if (c.src)
		pg_exec_quiet(c.src, "ROLLBACK", NULL);
	after_failure(&c);

done:
	sum->total_seconds = copy_now() - t0;
	if (c.slot.conn)
		slot_snapshot_release(&c.slot);
	schema_dump_free(&c.dump);
	free(c.dump_oids);
	catalog_tables_free(&c.tables);
	state_release(&c.st);
	free(c.encoding);
	pg_finish(c.src);
	pg_finish(c.tgt);
	return ok;
}
