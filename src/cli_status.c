/*
 * cli_status.c: `ferry status`: the migration as the target's state and the
 * source's slot describe it, whether or not `ferry start` is running.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "exitcode.h"
#include "log.h"
#include "mem.h"
#include "pgsql.h"

static const char TARGET_STATUS_SQL[] =
	"SELECT m.phase, m.start_lsn::text, m.data_done, m.post_data_done,"
	"       (SELECT count(*) FROM ferry.copy_plan WHERE migration = m.name),"
	"       (SELECT COALESCE(sum(bytes), 0) FROM ferry.copy_plan WHERE migration = m.name),"
	"       (SELECT count(*) FROM (SELECT 1 FROM ferry.copy_item ci WHERE ci.migration = m.name"
	"                              GROUP BY nspname, relname HAVING count(*) = max(nchunks)) d),"
	"       (SELECT COALESCE(sum(rows), 0) FROM ferry.copy_item WHERE migration = m.name),"
	"       (SELECT COALESCE(sum(bytes), 0) FROM ferry.copy_item WHERE migration = m.name),"
	"       p.applied_lsn::text,"
	"       EXTRACT(epoch FROM pg_catalog.now() - p.commit_time),"
	"       p.changes, p.txns, p.changes_per_second, p.txns_per_second,"
	"       EXTRACT(epoch FROM pg_catalog.now() - p.follower_seen_at) < 30"
	"  FROM ferry.migration m LEFT JOIN ferry.apply_progress p ON p.migration = m.name"
	" WHERE m.name = $1";

static const char SOURCE_STATUS_SQL[] =
	"SELECT pg_catalog.pg_current_wal_lsn()::text, s.confirmed_flush_lsn::text, s.active,"
	"       pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.restart_lsn)::bigint"
	"  FROM pg_catalog.pg_replication_slots s WHERE s.slot_name = $1";

typedef struct TableDelta
{
	char	   *name;			/* "schema.table" */
	char	   *qual;			/* quoted */
	long long	src;
	long long	tgt;
	int			parts_done;
	int			parts;			/* 0 = not started */
} TableDelta;

static const char *
phase_name(const char *phase, bool data_done)
{
	if (strcmp(phase, "cloning") == 0)
		return data_done ? "indexing" : "copying";
	return phase;
}

/* Row counts of every planned table on one side; -1 where it fails. */
static void
count_rows(PGconn *conn, TableDelta *t, int n, bool source)
{
	for (int i = 0; i < n; i++)
	{
		char	   *sql = xasprintf("SELECT count(*) FROM ONLY %s", t[i].qual);
		PGresult   *res = conn ? PQexec(conn, sql) : NULL;
		long long	v = -1;

		if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
			v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		if (source)
			t[i].src = v;
		else
			t[i].tgt = v;
		PQclear(res);
		free(sql);
	}
}

int
cli_status(FerryConfig *cfg)
{
	PGconn	   *tgt = pg_connect(cfg->target, "target", PG_CONN_SQL, NULL);
	PGconn	   *src = NULL;
	const char *params[1] = {cfg->name};
	PGresult   *tr = NULL,
			   *sr = NULL,
			   *plan = NULL;
	TableDelta *tables = NULL;
	int			ntables = 0;
	int			rc = EXIT_FAILED;
	uint64_t	cur = 0,
				applied = 0;
	long long	lag_bytes = -1,
				retained = -1;
	double		lag_seconds = -1;
	bool		following;

	if (tgt == NULL)
		return EXIT_FAILED;
	{
		PGresult   *e = pg_query(tgt, "look for ferry's state",
								 "SELECT pg_catalog.to_regclass('ferry.migration') IS NOT NULL", 0, NULL);
		bool		has = e && PQgetvalue(e, 0, 0)[0] == 't';

		PQclear(e);
		if (!has)
		{
			log_error("the target has no ferry migration state. Fix: check --target, or start one with ferry clone / ferry start");
			goto done;
		}
	}
	tr = pg_query(tgt, "read the migration state", TARGET_STATUS_SQL, 1, params);
	if (tr == NULL)
		goto done;
	if (PQntuples(tr) != 1)
	{
		log_error("the target has no migration named \"%s\". Fix: check --name", cfg->name);
		goto done;
	}
	/* the source may be down: status still reports what the target knows */
	src = pg_connect(cfg->source, "source", PG_CONN_SQL, NULL);
	if (src)
		sr = pg_query(src, "read the slot", SOURCE_STATUS_SQL, 1, params);
	following = strcmp(PQgetvalue(tr, 0, 0), "following") == 0;
	if (!PQgetisnull(tr, 0, 9))
		pg_lsn_parse(PQgetvalue(tr, 0, 9), &applied);
	if (sr && PQntuples(sr) == 1)
	{
		pg_lsn_parse(PQgetvalue(sr, 0, 0), &cur);
		retained = strtoll(PQgetvalue(sr, 0, 3), NULL, 10);
		if (applied > 0)
			lag_bytes = cur > applied ? (long long) (cur - applied) : 0;
	}
	if (!PQgetisnull(tr, 0, 10))
		lag_seconds = strtod(PQgetvalue(tr, 0, 10), NULL);

	plan = pg_query(tgt, "read the copy plan",
					"SELECT p.nspname, p.relname, count(ci.chunk), COALESCE(max(ci.nchunks), 0)"
					"  FROM ferry.copy_plan p LEFT JOIN ferry.copy_item ci"
					"    ON ci.migration = p.migration AND ci.nspname = p.nspname AND ci.relname = p.relname"
					" WHERE p.migration = $1 GROUP BY 1, 2 ORDER BY 1, 2", 1, params);
	if (plan)
	{
		ntables = PQntuples(plan);
		tables = xcalloc((size_t) ntables + 1, sizeof(TableDelta));
		for (int i = 0; i < ntables; i++)
		{
			char	   *a = pg_quote_ident(PQgetvalue(plan, i, 0));
			char	   *b = pg_quote_ident(PQgetvalue(plan, i, 1));

			tables[i].name = xasprintf("%s.%s", PQgetvalue(plan, i, 0), PQgetvalue(plan, i, 1));
			tables[i].parts_done = atoi(PQgetvalue(plan, i, 2));
			tables[i].parts = atoi(PQgetvalue(plan, i, 3));
			tables[i].qual = xasprintf("%s.%s", a, b);
			free(a);
			free(b);
		}
		count_rows(src, tables, ntables, true);
		count_rows(tgt, tables, ntables, false);
	}

	if (cfg->json)
	{
		json_t	   *j = json_object();
		json_t	   *ta = json_array();

		json_object_set_new(j, "name", json_string(cfg->name));
		json_object_set_new(j, "phase", json_string(phase_name(PQgetvalue(tr, 0, 0), PQgetvalue(tr, 0, 2)[0] == 't')));
		json_object_set_new(j, "running", json_boolean(PQgetvalue(tr, 0, 15)[0] == 't'));
		json_object_set_new(j, "start_lsn", json_string(PQgetvalue(tr, 0, 1)));
		json_object_set_new(j, "copy", json_pack("{s:I, s:I, s:I, s:I, s:I}",
												 "tables_total", (json_int_t) strtoll(PQgetvalue(tr, 0, 4), NULL, 10),
												 "tables_done", (json_int_t) strtoll(PQgetvalue(tr, 0, 6), NULL, 10),
												 "bytes_total", (json_int_t) strtoll(PQgetvalue(tr, 0, 5), NULL, 10),
												 "rows_copied", (json_int_t) strtoll(PQgetvalue(tr, 0, 7), NULL, 10),
												 "bytes_copied", (json_int_t) strtoll(PQgetvalue(tr, 0, 8), NULL, 10)));
		json_object_set_new(j, "applied_lsn", PQgetisnull(tr, 0, 9) ? json_null() : json_string(PQgetvalue(tr, 0, 9)));
		json_object_set_new(j, "lag_bytes", lag_bytes >= 0 ? json_integer(lag_bytes) : json_null());
		json_object_set_new(j, "lag_seconds", lag_seconds >= 0 && following ? json_real(lag_seconds) : json_null());
		json_object_set_new(j, "apply_rate", PQgetisnull(tr, 0, 13) ? json_null() : json_real(strtod(PQgetvalue(tr, 0, 13), NULL)));
		json_object_set_new(j, "transaction_rate", PQgetisnull(tr, 0, 14) ? json_null() : json_real(strtod(PQgetvalue(tr, 0, 14), NULL)));
		json_object_set_new(j, "changes_applied", PQgetisnull(tr, 0, 11) ? json_integer(0) : json_integer(strtoll(PQgetvalue(tr, 0, 11), NULL, 10)));
		json_object_set_new(j, "retained_wal_bytes", retained >= 0 ? json_integer(retained) : json_null());
		json_object_set_new(j, "slot_active", sr && PQntuples(sr) == 1 ? json_boolean(PQgetvalue(sr, 0, 2)[0] == 't') : json_null());
		json_object_set_new(j, "source_reachable", json_boolean(src != NULL));
		for (int i = 0; i < ntables; i++)
			json_array_append_new(ta, json_pack("{s:s, s:b, s:i, s:o, s:o, s:o}", "name", tables[i].name,
												"copied", tables[i].parts > 0 && tables[i].parts_done >= tables[i].parts,
												"parts_copied", tables[i].parts_done,
												"source_rows", tables[i].src >= 0 ? json_integer(tables[i].src) : json_null(),
												"target_rows", tables[i].tgt >= 0 ? json_integer(tables[i].tgt) : json_null(),
												"delta", tables[i].src >= 0 && tables[i].tgt >= 0 ? json_integer(tables[i].src - tables[i].tgt) : json_null()));
		json_object_set_new(j, "tables", ta);
		json_dumpf(j, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		json_decref(j);
	}
	else
	{
		char		b1[32],
					b2[32],
					b3[32];

		config_format_size(strtoll(PQgetvalue(tr, 0, 8), NULL, 10), b1, sizeof(b1));
		config_format_size(strtoll(PQgetvalue(tr, 0, 5), NULL, 10), b2, sizeof(b2));
		printf("migration %s: %s%s\n", cfg->name, phase_name(PQgetvalue(tr, 0, 0), PQgetvalue(tr, 0, 2)[0] == 't'),
			   PQgetvalue(tr, 0, 15)[0] == 't' ? " (ferry start is running)" : "");
		printf("  copy     %s/%s tables done, %s rows, %s streamed (tables total %s on the source)\n",
			   PQgetvalue(tr, 0, 6), PQgetvalue(tr, 0, 4), PQgetvalue(tr, 0, 7), b1, b2);
		if (!PQgetisnull(tr, 0, 9))
		{
			printf("  apply    applied up to %s, %s changes in %s transactions",
				   PQgetvalue(tr, 0, 9), PQgetvalue(tr, 0, 11), PQgetvalue(tr, 0, 12));
			if (!PQgetisnull(tr, 0, 13))
				printf(", %.0f changes/s", strtod(PQgetvalue(tr, 0, 13), NULL));
			printf("\n");
		}
		if (lag_bytes >= 0)
		{
			config_format_size(lag_bytes, b3, sizeof(b3));
			printf("  lag      %s", b3);
			if (lag_seconds >= 0 && following)
				printf(", %.1f s", lag_seconds);
			printf("\n");
		}
		if (sr && PQntuples(sr) == 1)
		{
			config_format_size(retained, b3, sizeof(b3));
			printf("  source   slot %s %s, retains %s of WAL\n", cfg->name,
				   PQgetvalue(sr, 0, 2)[0] == 't' ? "active" : "inactive", b3);
		}
		else
			printf("  source   %s\n", src ? "the replication slot is missing" : "unreachable");
		if (ntables > 0)
		{
			printf("  %-40s %8s %14s %14s %10s\n", "table", "copied", "source rows", "target rows", "delta");
			for (int i = 0; i < ntables; i++)
			{
				char		copied[24];

				if (tables[i].parts > 0 && tables[i].parts_done >= tables[i].parts)
					snprintf(copied, sizeof(copied), "yes");
				else if (tables[i].parts > 0)
					snprintf(copied, sizeof(copied), "%d/%d", tables[i].parts_done, tables[i].parts);
				else
					snprintf(copied, sizeof(copied), "no");
				if (tables[i].src >= 0 && tables[i].tgt >= 0)
					printf("  %-40s %8s %14lld %14lld %10lld\n", tables[i].name, copied, tables[i].src, tables[i].tgt,
						   tables[i].src - tables[i].tgt);
				else
					printf("  %-40s %8s %14s %14s %10s\n", tables[i].name, copied,
						   tables[i].src >= 0 ? "" : "?", tables[i].tgt >= 0 ? "" : "?", "?");
			}
		}
	}
	rc = EXIT_OK;

done:
	for (int i = 0; i < ntables; i++)
	{
		free(tables[i].name);
		free(tables[i].qual);
	}
	free(tables);
	PQclear(plan);
	PQclear(tr);
	PQclear(sr);
	pg_finish(src);
	pg_finish(tgt);
	return rc;
}
