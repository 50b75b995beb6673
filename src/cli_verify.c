/*
 * cli_verify.c: `ferry verify`: compare the full contents of every migrated
 * table (ferry.copy_plan on the target) between source and target, print a
 * line per table, the differing keys and a summary. Exit 0 only when every
 * table is identical; 1 on any difference or failure.
 */
#include <fnmatch.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "config.h"
#include "exitcode.h"
#include "log.h"
#include "mem.h"
#include "pgsql.h"
#include "publication.h"
#include "state.h"
#include "verify.h"

/* --table patterns, collected by main.c's option parser */
static StrList table_patterns;

void
cli_verify_add_table(const char *pattern)
{
	strlist_add(&table_patterns, pattern);
}

/* Does schema.table match a --table pattern (shell glob on "schema.table" or "table")? */
static bool
table_selected(const char *nsp, const char *rel)
{
	char	   *full;
	bool		hit = false;

	if (table_patterns.n == 0)
		return true;
	full = xasprintf("%s.%s", nsp, rel);
	for (int i = 0; i < table_patterns.n && !hit; i++)
		hit = fnmatch(table_patterns.items[i], full, 0) == 0 ||
			fnmatch(table_patterns.items[i], rel, 0) == 0;
	free(full);
	return hit;
}

/*
 * The tables of migration `name` per the target's copy plan, filtered by
 * --table. False (logged) when the target has no such migration.
 */
static bool
read_plan(PGconn *tgt, const char *name, VerifyTable **out, int *nout)
{
	const char *params[1] = {name};
	PGresult   *res;
	VerifyTable *t;
	int			n = 0;
	bool		has;

	res = pg_query(tgt, "look for ferry's state",
				   "SELECT pg_catalog.to_regclass('ferry.copy_plan') IS NOT NULL", 0, NULL);
	has = res && PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	if (!has)
	{
		log_error("the target has no ferry migration state. Fix: check --target, or migrate first with ferry clone / ferry start");
		return false;
	}
	res = pg_query(tgt, "read the copy plan",
				   "SELECT nspname, relname FROM ferry.copy_plan WHERE migration = $1 ORDER BY bytes DESC, 1, 2",
				   1, params);
	if (res == NULL || !pg_check_shape(res, -1, 2, "read the copy plan"))
	{
		PQclear(res);
		return false;
	}
	if (PQntuples(res) == 0)
	{
		log_error("the target has no tables planned for migration \"%s\". Fix: check --name, or run ferry clone first", name);
		PQclear(res);
		return false;
	}
	t = xcalloc((size_t) PQntuples(res) + 1, sizeof(VerifyTable));
	for (int i = 0; i < PQntuples(res); i++)
	{
		if (!table_selected(PQgetvalue(res, i, 0), PQgetvalue(res, i, 1)))
			continue;
		t[n].nspname = xstrdup(PQgetvalue(res, i, 0));
		t[n].relname = xstrdup(PQgetvalue(res, i, 1));
		n++;
	}
	PQclear(res);
	if (n == 0)
	{
		log_error("no migrated table matches --table. Fix: use schema.table or table names, * and ? as wildcards");
		free(t);
		return false;
	}
	*out = t;
	*nout = n;
	return true;
}

/*
 * What verify knows beyond the rows: the migration's phase, the tables
 * published for inserts only (no key: while following their updates and
 * deletes do not arrive, so differences are expected until the switchover
 * re-copies them) and the sequences of both sides (not replicated while
 * following: set past the source's at the switchover).
 */
typedef struct VerifyContext
{
	char	   *phase;			/* NULL when unknown */
	StrList		insert_only;	/* "schema.table" */
	PGresult   *seqs;			/* name, source value, target value, behind */
	int			seqs_behind;
	bool		seqs_must_match;	/* switching or switched: the target hands out ids now */
} VerifyContext;

static const char SOURCE_SEQS_SQL[] =
	"SELECT coalesce(array_agg(n ORDER BY n)::text, '{}'), coalesce(array_agg(v ORDER BY n)::text, '{}')"
	"  FROM (SELECT pg_catalog.quote_ident(schemaname) || '.' || pg_catalog.quote_ident(sequencename) AS n, last_value AS v"
	"          FROM pg_catalog.pg_sequences WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'ferry')) s";

static const char TARGET_SEQS_SQL[] =
	"SELECT x.s, x.v::text, q.last_value::text,"
	"       CASE WHEN x.v IS NULL THEN false WHEN q.last_value IS NULL THEN true"
	"            WHEN q.increment_by > 0 THEN q.last_value < x.v ELSE q.last_value > x.v END"
	"  FROM unnest($1::text[], $2::numeric[]) AS x(s, v)"
	"  LEFT JOIN pg_catalog.pg_sequences q"
	"    ON pg_catalog.quote_ident(q.schemaname) || '.' || pg_catalog.quote_ident(q.sequencename) = x.s"
	" ORDER BY 1";

static void
context_load(const FerryConfig *cfg, bool with_sequences, VerifyContext *c)
{
	PGconn	   *src = pg_connect(cfg->source, "source", PG_CONN_SQL, NULL);
	PGconn	   *tgt = src ? pg_connect(cfg->target, "target", PG_CONN_SQL, NULL) : NULL;
	const char *params[1] = {cfg->name};
	char	   *ins = xasprintf("%s%s", cfg->name, PUBLICATION_INSERT_ONLY_SUFFIX);
	PGresult   *res;

	memset(c, 0, sizeof(*c));
	if (tgt == NULL)
		goto done;
	res = pg_query(tgt, "read the migration's phase", "SELECT phase FROM ferry.migration WHERE name = $1", 1, params);
	if (res && PQntuples(res) == 1)
		c->phase = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	c->seqs_must_match = c->phase && strcmp(c->phase, "switched") == 0;
	res = pg_query(src, "list the tables published for inserts only",
				   "SELECT schemaname || '.' || tablename FROM pg_catalog.pg_publication_tables WHERE pubname = $1",
				   1, (const char *[]) {ins});
	for (int i = 0; res && i < PQntuples(res); i++)
		strlist_add(&c->insert_only, PQgetvalue(res, i, 0));
	PQclear(res);
	/*
	 * Not inside a switchover: its fence holds the source's sequences, and
	 * reading one waits for that lock (the switchover sets them itself).
	 */
	if (!with_sequences || (c->phase && strcmp(c->phase, "switching") == 0))
		goto done;
	(void) pg_exec(src, "bound the sequences' read", "SET lock_timeout = '5s'");
	res = pg_query(src, "read the source's sequences", SOURCE_SEQS_SQL, 0, NULL);
	if (res && pg_check_shape(res, 1, 2, "the sequences"))
	{
		c->seqs = pg_query(tgt, "compare the sequences", TARGET_SEQS_SQL, 2,
						   (const char *[]) {PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1)});
		for (int i = 0; c->seqs && i < PQntuples(c->seqs); i++)
			c->seqs_behind += PQgetvalue(c->seqs, i, 3)[0] == 't';
	}
	PQclear(res);
done:
	free(ins);
	pg_finish(src);
	pg_finish(tgt);
}

static void
context_release(VerifyContext *c)
{
	free(c->phase);
	strlist_free(&c->insert_only);
	PQclear(c->seqs);
}

/* Why a table's differences are expected now, or NULL. */
static const char *
expected_why(const VerifyContext *c, const VerifyTable *t)
{
	char	   *name;
	bool		ins = false;

	if (c->phase == NULL || (strcmp(c->phase, "following") != 0 && strcmp(c->phase, "cloned") != 0))
		return NULL;
	name = xasprintf("%s.%s", t->nspname, t->relname);
	for (int i = 0; i < c->insert_only.n && !ins; i++)
		ins = strcmp(c->insert_only.items[i], name) == 0;
	free(name);
	return ins ? "expected while following: this table has no key, so only its inserts are replicated; the switchover re-copies it" : NULL;
}

static void
print_text(const VerifyTable *t, int n, double seconds, bool completed, const VerifyContext *c)
{
	int			bad = 0;
	long long	rows = 0;

	printf("%-44s %12s %7s  %s\n", "table", "rows", "ranges", "result");
	for (int i = 0; i < n; i++)
	{
		char	   *name = xasprintf("%s.%s", t[i].nspname, t[i].relname);

		rows += t[i].rows;
		if (verify_table_ok(&t[i]))
			printf("%-44s %12lld %7d  ok\n", name, t[i].rows, t[i].ranges);
		else if (t[i].failed)
			printf("%-44s %12s %7s  DIFFERENT: not comparable (see the log)\n", name, "", "");
		else
			printf("%-44s %12lld %7d  DIFFERENT: %lld missing, %lld extra, %lld different%s%s%s\n",
				   name, t[i].rows, t[i].ranges, t[i].missing, t[i].extra, t[i].different,
				   expected_why(c, &t[i]) ? " (" : "", expected_why(c, &t[i]) ? expected_why(c, &t[i]) : "",
				   expected_why(c, &t[i]) ? ")" : "");
		for (int e = 0; e < t[i].examples.n; e++)
			printf("    %-9s key %s\n", t[i].example_kinds.items[e], t[i].examples.items[e]);
		if (!verify_table_ok(&t[i]))
			bad++;
		free(name);
	}
	for (int i = 0; c->seqs && i < PQntuples(c->seqs); i++)
	{
		bool		behind = PQgetvalue(c->seqs, i, 3)[0] == 't';

		printf("%-44s %12s %7s  %s source %s, target %s%s\n", PQgetvalue(c->seqs, i, 0), "", "sequence",
			   !behind ? "ok:" : c->seqs_must_match ? "DIFFERENT: behind the source (ids would be handed out twice):" : "behind:",
			   PQgetisnull(c->seqs, i, 1) ? "unused" : PQgetvalue(c->seqs, i, 1),
			   PQgetisnull(c->seqs, i, 2) ? "unused or missing" : PQgetvalue(c->seqs, i, 2),
			   behind && !c->seqs_must_match ? " (expected while following: sequences are not replicated; the switchover sets them past the source's)" : "");
	}
	if (!completed)
		printf("verify failed after %.1f s: the comparison did not complete (see the log)\n", seconds);
	else if (bad == 0)
		printf("verify: %d tables, %lld rows: identical (%.1f s)\n", n, rows, seconds);
	else
		printf("verify: %d tables, %lld rows: %d DIFFERENT (%.1f s)\n", n, rows, bad, seconds);
}

static void
print_json(const VerifyTable *t, int n, double seconds, bool ok, const VerifyContext *c)
{
	json_t	   *j = json_object();
	json_t	   *ta = json_array();
	json_t	   *sa = json_array();

	json_object_set_new(j, "ok", json_boolean(ok));
	json_object_set_new(j, "seconds", json_real(seconds));
	for (int i = 0; i < n; i++)
	{
		json_t	   *ex = json_array();
		json_t	   *det = json_array();
		char	   *name = xasprintf("%s.%s", t[i].nspname, t[i].relname);

		for (int e = 0; e < t[i].examples.n; e++)
		{
			json_array_append_new(ex, json_string(t[i].examples.items[e]));
			json_array_append_new(det, json_pack("{s:s, s:s}", "key", t[i].examples.items[e],
												 "kind", t[i].example_kinds.items[e]));
		}
		json_t	   *why = expected_why(c, &t[i]) ? json_string(expected_why(c, &t[i])) : json_null();

		json_array_append_new(ta, json_pack("{s:s, s:I, s:i, s:b, s:b, s:I, s:I, s:I, s:o, s:o, s:o}",
											"name", name, "rows", (json_int_t) t[i].rows,
											"ranges", t[i].ranges, "ok", verify_table_ok(&t[i]),
											"comparable", !t[i].failed,
											"missing", (json_int_t) t[i].missing,
											"extra", (json_int_t) t[i].extra,
											"different", (json_int_t) t[i].different,
											"examples", ex, "details", det, "expected", why));
		free(name);
	}
	json_object_set_new(j, "tables", ta);
	for (int i = 0; c->seqs && i < PQntuples(c->seqs); i++)
		json_array_append_new(sa, json_pack("{s:s, s:o, s:o, s:b}", "name", PQgetvalue(c->seqs, i, 0),
											"source", PQgetisnull(c->seqs, i, 1) ? json_null() : json_string(PQgetvalue(c->seqs, i, 1)),
											"target", PQgetisnull(c->seqs, i, 2) ? json_null() : json_string(PQgetvalue(c->seqs, i, 2)),
											"behind", PQgetvalue(c->seqs, i, 3)[0] == 't'));
	json_object_set_new(j, "sequences", sa);
	json_dumpf(j, stdout, JSON_INDENT(2));
	fputc('\n', stdout);
	json_decref(j);
}

/*
 * Every table compared equal: the divergence apply recorded (changes that
 * matched no row, ferry.unmatched) has been repaired; forget it, so status
 * and switchover see a healthy target again.
 */
static void
forget_unmatched(const FerryConfig *cfg)
{
	PGconn	   *tgt = pg_connect(cfg->target, "target", PG_CONN_SQL, NULL);
	const char *params[1] = {cfg->name};
	PGresult   *res;

	if (tgt == NULL)
		return;
	if (state_table_exists(tgt, "unmatched") == 1)
	{
		res = pg_query(tgt, "forget the repaired divergence",
					   "DELETE FROM ferry.unmatched WHERE migration = $1", 1, params);
		if (res && atoi(PQcmdTuples(res)) > 0)
			log_info("every table is equal: forgot the %s tables recorded as diverged", PQcmdTuples(res));
		PQclear(res);
	}
	pg_finish(tgt);
}

/* Verify every table (or the --table ones), print the report; exit code. */
int
cli_verify(FerryConfig *cfg)
{
	return cli_verify_all(cfg) ? EXIT_OK : EXIT_FAILED;
}

bool
cli_verify_all(FerryConfig *cfg)
{
	PGconn	   *tgt;
	VerifyTable *tables = NULL;
	int			n = 0;
	VerifySpec	spec = {cfg->source, cfg->target, cfg->name, cfg->jobs};
	struct timespec t0,
				t1;
	double		seconds;
	bool		completed,
				ok,
				whole;
	int			table_patterns_n;
	VerifyContext ctx;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	tgt = pg_connect(cfg->target, "target", PG_CONN_SQL, NULL);
	if (tgt == NULL || !read_plan(tgt, cfg->name, &tables, &n))
	{
		pg_finish(tgt);
		strlist_free(&table_patterns);
		return false;
	}
	whole = table_patterns.n == 0;
	table_patterns_n = table_patterns.n;
	pg_finish(tgt);
	strlist_free(&table_patterns);

	completed = verify_run(&spec, tables, n);
	ok = completed;
	for (int i = 0; i < n; i++)
		ok = ok && verify_table_ok(&tables[i]);
	context_load(cfg, table_patterns_n == 0, &ctx);	/* --table: those tables only */
	/* once the target hands out ids, a sequence behind the source's is a difference */
	if (ctx.seqs_must_match && ctx.seqs_behind > 0)
		ok = false;
	if (ok && whole)
		forget_unmatched(cfg);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	seconds = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (cfg->json)
		print_json(tables, n, seconds, ok, &ctx);
	else
		print_text(tables, n, seconds, completed, &ctx);
	context_release(&ctx);
	fflush(stdout);

	for (int i = 0; i < n; i++)
		verify_table_release(&tables[i]);
	free(tables);
	return ok;
}
