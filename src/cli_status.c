/*
 * cli_status.c: `ferry status`: the migration as the target's state and the
 * source's slot describe it, whether or not `ferry start` is running.
 *
 * `--watch [--interval S]` repeats the report until SIGINT/SIGTERM (exit 0).
 * On a terminal it is a live view: each frame is built whole, then written
 * at once over the previous one (cursor home, every line cleared to its
 * end, the rest of the screen cleared), with the cursor hidden and restored
 * on exit, lines cut to the terminal's width and the table list to its
 * height, so nothing scrolls or flickers; it adds each table's target rows
 * per second since the last frame. Elsewhere (a pipe, a file, a journal) it
 * prints one plain report per interval with no escape codes, or with --json
 * one compact JSON object per line. A failed refresh (a server restarting)
 * is reported in the frame and retried at the next one.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "exitcode.h"
#include "log.h"
#include "mem.h"
#include "pgsql.h"
#include "pooler.h"
#include "publication.h"
#include "state.h"
#include "watch.h"
#include "validate.h"

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
	/* running: a ferry session holds the migration's lock (state.c), not a heartbeat's guess */
	"       EXISTS (SELECT 1 FROM pg_catalog.pg_locks l"
	"                WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2"
	"                  AND l.classid = " STATE_LOCK_CLASS "::pg_catalog.oid"
	"                  AND l.objid = (pg_catalog.hashtext(m.name)::bigint & 4294967295)::pg_catalog.oid"
	"                  AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())),"
	"       m.switched_at::text, m.switch_window_ms / 1000, m.reverse, m.rolled_back_at::text,"
	"       m.rollback_window_ms / 1000, p.last_error, p.last_error_at::text,"
	/* by name through jsonb: state written before the column existed has none */
	"       pg_catalog.to_jsonb(m) ->> 'pooler_hold', pg_catalog.to_jsonb(m) ->> 'rearm_lsn'"
	"  FROM ferry.migration m LEFT JOIN ferry.apply_progress p ON p.migration = m.name"
	" WHERE m.name = $1";

static const char SOURCE_STATUS_SQL[] =
	"SELECT pg_catalog.pg_current_wal_lsn()::text, s.confirmed_flush_lsn::text, s.active,"
	"       pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.restart_lsn)::bigint"
	"  FROM pg_catalog.pg_replication_slots s WHERE s.slot_name = $1";

/*
 * A hold an interrupted switchover or rollback left (pooler.h): its
 * PgBouncers stay paused until a rerun resumes them.
 */
static void
pooler_hold_text(StrBuf *out, const PGresult *tr)
{
	PoolerSide	from;
	bool		repointed;
	char	   *names = NULL;

	if (PQgetisnull(tr, 0, 23))
		return;
	if (pooler_hold_from_json(PQgetvalue(tr, 0, 23), &from, &repointed, &names))
		strbuf_addf(out, "  HELD     PgBouncers paused by a switchover or rollback: %s%s. Fix: if no ferry switchover or rollback runs now, run the one that was interrupted again (it resumes them)\n",
					names, repointed ? " (maybe repointed)" : "");
	else
		strbuf_addstr(out, "  HELD     an unreadable ferry.migration.pooler_hold record: PgBouncers may be paused\n");
	free(names);
}

typedef struct TableDelta
{
	char	   *nspname;
	char	   *relname;
	char	   *name;			/* "schema.table" */
	char	   *qual;			/* quoted */
	long long	rows;			/* ferry's count: copied, + inserted - deleted by apply; -1 unknown */
	char	   *counted_under;	/* a partition: the root its changes are counted under, or NULL */
	long long	src_est;		/* the servers' statistics (n_live_tup), -1 unknown */
	long long	tgt_est;
	long long	src;			/* exact counts (--exact), -1 not counted or failed */
	long long	tgt;
	int			parts_done;
	int			parts;			/* 0 = not started */
} TableDelta;

/* everything one report shows, read from both servers */
typedef struct Status
{
	PGresult   *tr;				/* TARGET_STATUS_SQL, one row */
	PGresult   *sr;				/* SOURCE_STATUS_SQL, or NULL */
	PGresult   *files;			/* ferry.file_sync rows, or NULL */
	PGresult   *rev;			/* reverse replication's progress on the source, or NULL */
	PGresult   *unmatched;		/* ferry.unmatched rows (divergence), or NULL */
	PGresult   *source_writes;	/* ferry.source_writes rows (watch.h), or NULL */
	int64_t		unrecorded;		/* changes the watch slot holds that nobody recorded yet */
	StrList		unpublished;	/* selected tables not in the publications (publication_missing) */
	PGresult   *pending;		/* foreign keys awaiting validation (validate_pending), or NULL */
	bool		source_reachable;
	TableDelta *tables;
	int			ntables;
	long long	lag_bytes;		/* -1 unknown */
	long long	retained;		/* -1 unknown */
	double		lag_seconds;	/* -1 unknown */
	bool		following;
	bool		exact;			/* --exact: src and tgt were counted */
	bool		source_counted;	/* ... on the source too (not while it is frozen) */
	double		taken_at;		/* monotonic seconds */
} Status;

static bool watch_mode = false;
static bool exact_mode = false;
static int	watch_interval = 5;

void
cli_status_set_exact(bool on)
{
	exact_mode = on;
}

void
cli_status_set_watch(bool on)
{
	watch_mode = on;
}

void
cli_status_set_interval(int seconds)
{
	watch_interval = seconds;
}

static const char *
phase_name(const char *phase, bool data_done)
{
	if (strcmp(phase, "cloning") == 0)
		return data_done ? "indexing" : "copying";
	return phase;
}

/*
 * --exact: the row count of every planned table on one side, one table at a
 * time, each bounded by STATUS_COUNT_TIMEOUT; -1 where it fails (logged
 * once per side). This reads every table: only when asked.
 */
#define STATUS_COUNT_TIMEOUT "60s"

static void
count_rows(PGconn *conn, TableDelta *t, int n, bool source)
{
	bool		warned = false;

	if (conn && !pg_exec(conn, "bound the row counts", "SET statement_timeout = '" STATUS_COUNT_TIMEOUT "'"))
		conn = NULL;
	for (int i = 0; i < n; i++)
	{
		char	   *sql = t[i].qual ? xasprintf("SELECT count(*) FROM ONLY %s", t[i].qual) : NULL;
		PGresult   *res = conn && sql ? pg_execute(conn, sql, 0, NULL) : NULL;
		long long	v = -1;

		if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
			v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		else if (res && !warned)
		{
			char	   *e = pg_result_error_text(res, conn);

			log_warn("could not count the rows of %s on the %s: %s", t[i].name, source ? "source" : "target", e);
			free(e);
			warned = true;
		}
		if (source)
			t[i].src = v;
		else
			t[i].tgt = v;
		PQclear(res);
		free(sql);
	}
	if (conn)
		(void) pg_exec(conn, "reset the statement timeout", "RESET statement_timeout");
}

/*
 * The servers' own estimate of each planned table's rows (the statistics'
 * n_live_tup: no table is read). Both lists are sorted by name in "C"
 * order (STATUS_PLAN_SQL too), so one merge pass matches them.
 */
static int
name_cmp(const PGresult *res, int k, const TableDelta *t)
{
	int			c = strcmp(PQgetvalue(res, k, 0), t->nspname);

	return c != 0 ? c : strcmp(PQgetvalue(res, k, 1), t->relname);
}

static void
estimate_rows(PGconn *conn, TableDelta *t, int n, bool source)
{
	PGresult   *res = conn ? pg_execute(conn,
										"SELECT schemaname, relname, n_live_tup FROM pg_catalog.pg_stat_user_tables"
										" ORDER BY schemaname COLLATE \"C\", relname COLLATE \"C\"", 0, NULL) : NULL;
	int			k = 0,
				nr = res && PQresultStatus(res) == PGRES_TUPLES_OK ? PQntuples(res) : 0;

	for (int i = 0; i < n; i++)
	{
		bool		found;

		while (k < nr && name_cmp(res, k, &t[i]) < 0)
			k++;
		found = k < nr && name_cmp(res, k, &t[i]) == 0;
		if (source)
			t[i].src_est = found ? strtoll(PQgetvalue(res, k, 2), NULL, 10) : -1;
		else
			t[i].tgt_est = found ? strtoll(PQgetvalue(res, k, 2), NULL, 10) : -1;
	}
	PQclear(res);
}

static double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void
status_release(Status *st)
{
	for (int i = 0; i < st->ntables; i++)
	{
		free(st->tables[i].nspname);
		free(st->tables[i].counted_under);
		free(st->tables[i].relname);
		free(st->tables[i].name);
		free(st->tables[i].qual);
	}
	free(st->tables);
	PQclear(st->tr);
	PQclear(st->sr);
	PQclear(st->files);
	PQclear(st->rev);
	PQclear(st->unmatched);
	PQclear(st->source_writes);
	PQclear(st->pending);
	strlist_free(&st->unpublished);
	memset(st, 0, sizeof(*st));
}

/*
 * Read one report's worth of state: the target's migration row, the
 * source's slot (src may be NULL: the source is down), the copy plan and
 * both sides' row counts. False (logged) when the target has no state for
 * this migration or cannot be read; *st is then empty.
 */
static bool
status_collect(const FerryConfig *cfg, PGconn *tgt, PGconn *src, Status *st)
{
	const char *params[1] = {cfg->name};
	PGresult   *plan = NULL;
	uint64_t	cur = 0,
				applied = 0;

	memset(st, 0, sizeof(*st));
	st->lag_bytes = st->retained = -1;
	st->lag_seconds = -1;
	st->taken_at = mono_now();
	{
		int			has = state_table_exists(tgt, "migration");

		if (has <= 0)
		{
			if (has == 0)
				log_error("the target has no ferry migration state. Fix: check --target, or start one with ferry clone / ferry start");
			return false;
		}
	}
	st->tr = pg_query(tgt, "read the migration state", TARGET_STATUS_SQL, 1, params);
	if (st->tr == NULL)
		return false;
	if (PQntuples(st->tr) != 1)
	{
		log_error("the target has no migration named \"%s\". Fix: check --name", cfg->name);
		status_release(st);
		return false;
	}
	st->source_reachable = src != NULL;
	if (src)
		st->sr = pg_query(src, "read the slot", SOURCE_STATUS_SQL, 1, params);
	st->following = strcmp(PQgetvalue(st->tr, 0, 0), "following") == 0;
	if (!PQgetisnull(st->tr, 0, 9))
		pg_lsn_parse(PQgetvalue(st->tr, 0, 9), &applied);
	if (st->sr && PQntuples(st->sr) == 1)
	{
		pg_lsn_parse(PQgetvalue(st->sr, 0, 0), &cur);
		st->retained = strtoll(PQgetvalue(st->sr, 0, 3), NULL, 10);
		if (applied > 0)
			st->lag_bytes = cur > applied ? (long long) (cur - applied) : 0;
	}
	if (!PQgetisnull(st->tr, 0, 10))
		st->lag_seconds = strtod(PQgetvalue(st->tr, 0, 10), NULL);

	if (state_table_exists(tgt, "file_sync") == 1)
		st->files = pg_query(tgt, "read the file sync state",
							 "SELECT from_path, to_path, last_status, last_ok_at::text, runs, last_seconds"
							 "  FROM ferry.file_sync WHERE migration = $1 ORDER BY entry", 1, params);
	/* after a switchover: how far reverse replication has brought the source */
	if (src && !PQgetisnull(st->tr, 0, 16) && PQgetvalue(st->tr, 0, 18)[0] == 't' &&
		state_table_exists(src, "apply_progress") == 1)
	{
		char	   *rname = xasprintf("%s%s", cfg->name, CONFIG_REVERSE_SUFFIX);
		const char *rp[1] = {rname};

		st->rev = pg_query(src, "read reverse replication's progress",
						   "SELECT p.applied_lsn::text, EXTRACT(epoch FROM pg_catalog.now() - p.commit_time), m.phase,"
						   "       EXTRACT(epoch FROM pg_catalog.now() - p.follower_seen_at) < 30"
						   "  FROM ferry.apply_progress p JOIN ferry.migration m ON m.name = p.migration"
						   " WHERE p.migration = $1", 1, rp);
		if (st->rev && PQntuples(st->rev) != 1)
		{
			PQclear(st->rev);
			st->rev = NULL;
		}
		free(rname);
	}
	if (state_table_exists(tgt, "unmatched") == 1)
		st->unmatched = pg_query(tgt, "read the changes that matched no row",
								 "SELECT tablename, changes, last_lsn::text, last_at::text FROM ferry.unmatched"
								 " WHERE migration = $1 ORDER BY changes DESC, tablename", 1, params);
	if (state_table_exists(tgt, "source_writes") == 1)
		st->source_writes = pg_query(tgt, "read the writes on the old source",
									 "SELECT tablename, changes, last_lsn::text, last_at::text FROM ferry.source_writes"
									 " WHERE migration = $1 ORDER BY changes DESC, tablename", 1, params);
	st->pending = validate_pending(tgt, cfg->name);
	if (src && PQgetisnull(st->tr, 0, 16))
		(void) publication_missing(src, cfg, &st->unpublished);
	/* after a switchover: what the watch holds that no ferry start has recorded (it was stopped) */
	if (src && !PQgetisnull(st->tr, 0, 16) && PQgetvalue(st->tr, 0, 18)[0] == 't' &&
		strcmp(PQgetvalue(st->tr, 0, 0), "switched") == 0)
		st->unrecorded = watch_poll_migration(src, tgt, false, cfg->name);
	/*
	 * The planned tables with what ferry knows of their rows: copied, then
	 * inserted and deleted by apply (ferry.table_rows, since a TRUNCATE if
	 * one came). No user table is read here (issue: a status polled every
	 * few seconds must not scan a terabyte); --exact counts them.
	 */
	{
		bool		counts = state_table_exists(tgt, "table_rows") == 1;
		char	   *sql = xasprintf("SELECT p.nspname, p.relname, count(ci.chunk), COALESCE(max(ci.nchunks), 0),"
									"       COALESCE(sum(ci.rows), 0), %s,"
									/* a partition's changes come under its root's name (publish_via_partition_root) */
									"       (SELECT pg_catalog.format('%%I.%%I', rn.nspname, rc.relname)"
									"          FROM pg_catalog.pg_class rc JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace"
									"         WHERE rc.oid = pg_catalog.pg_partition_root(pg_catalog.to_regclass("
									"                 pg_catalog.quote_ident(p.nspname) || '.' || pg_catalog.quote_ident(p.relname)))"
									"           AND rc.relkind = 'p')"
									"  FROM ferry.copy_plan p LEFT JOIN ferry.copy_item ci"
									"    ON ci.migration = p.migration AND ci.nspname = p.nspname AND ci.relname = p.relname"
									"  %s"
									" WHERE p.migration = $1 GROUP BY 1, 2%s"
									" ORDER BY p.nspname COLLATE \"C\", p.relname COLLATE \"C\"",
									counts ? "tr.inserted, tr.deleted, tr.truncated" : "NULL::bigint, NULL::bigint, NULL::boolean",
									counts ? "LEFT JOIN ferry.table_rows tr ON tr.migration = p.migration"
									" AND tr.nspname = p.nspname AND tr.relname = p.relname" : "",
									counts ? ", tr.inserted, tr.deleted, tr.truncated" : "");

		plan = pg_query(tgt, "read the copy plan", sql, 1, params);
		free(sql);
	}
	if (plan)
	{
		const char *phase = PQgetvalue(st->tr, 0, 0);

		st->ntables = PQntuples(plan);
		st->tables = xcalloc((size_t) st->ntables + 1, sizeof(TableDelta));
		for (int i = 0; i < st->ntables; i++)
		{
			TableDelta *t = &st->tables[i];
			char	   *a = pg_quote_ident(tgt, PQgetvalue(plan, i, 0));
			char	   *b = pg_quote_ident(tgt, PQgetvalue(plan, i, 1));
			bool		truncated = !PQgetisnull(plan, i, 7) && PQgetvalue(plan, i, 7)[0] == 't';

			t->nspname = xstrdup(PQgetvalue(plan, i, 0));
			t->relname = xstrdup(PQgetvalue(plan, i, 1));
			t->name = xasprintf("%s.%s", t->nspname, t->relname);
			t->parts_done = atoi(PQgetvalue(plan, i, 2));
			t->parts = atoi(PQgetvalue(plan, i, 3));
			t->rows = (truncated ? 0 : strtoll(PQgetvalue(plan, i, 4), NULL, 10)) +
				strtoll(PQgetvalue(plan, i, 5), NULL, 10) - strtoll(PQgetvalue(plan, i, 6), NULL, 10);
			/* a partition: its changes are counted under the tree's root, not per partition */
			if (!PQgetisnull(plan, i, 8))
			{
				t->rows = -1;
				t->counted_under = xstrdup(PQgetvalue(plan, i, 8));
			}
			t->src = t->tgt = -1;
			/* NULL (no count, logged) if a name cannot be quoted */
			t->qual = a && b ? xasprintf("%s.%s", a, b) : NULL;
			free(a);
			free(b);
		}
		estimate_rows(src, st->tables, st->ntables, true);
		estimate_rows(tgt, st->tables, st->ntables, false);
		if (exact_mode)
		{
			/* never on a frozen source: the switchover's window is no time to read every table */
			st->exact = true;
			st->source_counted = src != NULL && strcmp(phase, "switching") != 0;
			if (st->source_counted)
				count_rows(src, st->tables, st->ntables, true);
			count_rows(tgt, st->tables, st->ntables, false);
		}
	}
	PQclear(plan);
	return true;
}

/*
 * Per-table counts (ferry.unmatched, ferry.source_writes: tablename,
 * changes, last_lsn, last_at): "LABEL total WHAT", then a line per table.
 * Nothing when res is NULL or empty.
 */
static void
table_counts_text(StrBuf *out, const PGresult *res, const char *label, const char *what)
{
	long long	total = 0;
	int			n = res ? PQntuples(res) : 0;

	if (n == 0)
		return;
	for (int i = 0; i < n; i++)
		total += strtoll(PQgetvalue(res, i, 1), NULL, 10);
	strbuf_addf(out, "  %-8s %lld %s\n", label, total, what);
	for (int i = 0; i < n; i++)
		strbuf_addf(out, "           %s: %s, the last in the source transaction committed at %s (seen %s)\n",
					PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3));
}

/* The same as a JSON array of {table, changes, last_lsn, last_at}. */
static json_t *
table_counts_json(const PGresult *res)
{
	json_t	   *a = json_array();

	for (int i = 0; res && i < PQntuples(res); i++)
		json_array_append_new(a, json_pack("{s:s, s:I, s:s, s:s}", "table", PQgetvalue(res, i, 0),
										   "changes", (json_int_t) strtoll(PQgetvalue(res, i, 1), NULL, 10),
										   "last_lsn", PQgetvalue(res, i, 2), "last_at", PQgetvalue(res, i, 3)));
	return a;
}

/* The report as JSON (`status --json`); pretty, or one line with compact. */
static void
status_render_json(const FerryConfig *cfg, const Status *st, bool compact, StrBuf *out)
{
	PGresult   *tr = st->tr;
	PGresult   *sr = st->sr;
	json_t	   *j = json_object();
	json_t	   *ta = json_array();
	char	   *text;

	json_object_set_new(j, "name", json_string(cfg->name));
	json_object_set_new(j, "phase", json_string(phase_name(PQgetvalue(tr, 0, 0), PQgetvalue(tr, 0, 2)[0] == 't')));
	json_object_set_new(j, "running", json_boolean(PQgetvalue(tr, 0, 15)[0] == 't'));
	json_object_set_new(j, "start_lsn", json_string(PQgetvalue(tr, 0, 1)));
	json_object_set_new(j, "last_error", PQgetisnull(tr, 0, 21) ? json_null() : json_string(PQgetvalue(tr, 0, 21)));
	json_object_set_new(j, "pgbouncer_hold", PQgetisnull(tr, 0, 23) ? json_null() : json_loads(PQgetvalue(tr, 0, 23), 0, NULL));
	json_object_set_new(j, "copy", json_pack("{s:I, s:I, s:I, s:I, s:I}",
											 "tables_total", (json_int_t) strtoll(PQgetvalue(tr, 0, 4), NULL, 10),
											 "tables_done", (json_int_t) strtoll(PQgetvalue(tr, 0, 6), NULL, 10),
											 "bytes_total", (json_int_t) strtoll(PQgetvalue(tr, 0, 5), NULL, 10),
											 "rows_copied", (json_int_t) strtoll(PQgetvalue(tr, 0, 7), NULL, 10),
											 "bytes_copied", (json_int_t) strtoll(PQgetvalue(tr, 0, 8), NULL, 10)));
	json_object_set_new(j, "applied_lsn", PQgetisnull(tr, 0, 9) ? json_null() : json_string(PQgetvalue(tr, 0, 9)));
	json_object_set_new(j, "lag_bytes", st->lag_bytes >= 0 ? json_integer(st->lag_bytes) : json_null());
	json_object_set_new(j, "lag_seconds", st->lag_seconds >= 0 && st->following ? json_real(st->lag_seconds) : json_null());
	json_object_set_new(j, "apply_rate", PQgetisnull(tr, 0, 13) ? json_null() : json_real(strtod(PQgetvalue(tr, 0, 13), NULL)));
	json_object_set_new(j, "transaction_rate", PQgetisnull(tr, 0, 14) ? json_null() : json_real(strtod(PQgetvalue(tr, 0, 14), NULL)));
	json_object_set_new(j, "changes_applied", PQgetisnull(tr, 0, 11) ? json_integer(0) : json_integer(strtoll(PQgetvalue(tr, 0, 11), NULL, 10)));
	json_object_set_new(j, "retained_wal_bytes", st->retained >= 0 ? json_integer(st->retained) : json_null());
	json_object_set_new(j, "slot_active", sr && PQntuples(sr) == 1 ? json_boolean(PQgetvalue(sr, 0, 2)[0] == 't') : json_null());
	json_object_set_new(j, "source_reachable", json_boolean(st->source_reachable));
	for (int i = 0; i < st->ntables; i++)
	{
		const TableDelta *t = &st->tables[i];

		json_array_append_new(ta, json_pack("{s:s, s:b, s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "name", t->name,
											"copied", t->parts > 0 && t->parts_done >= t->parts,
											"parts_copied", t->parts_done,
											"rows", t->rows >= 0 ? json_integer(t->rows) : json_null(),
											"rows_counted_under", t->counted_under ? json_string(t->counted_under) : json_null(),
											"source_rows_estimate", t->src_est >= 0 ? json_integer(t->src_est) : json_null(),
											"target_rows_estimate", t->tgt_est >= 0 ? json_integer(t->tgt_est) : json_null(),
											"source_rows", t->src >= 0 ? json_integer(t->src) : json_null(),
											"target_rows", t->tgt >= 0 ? json_integer(t->tgt) : json_null(),
											"delta", t->src >= 0 && t->tgt >= 0 ? json_integer(t->src - t->tgt) : json_null()));
	}
	json_object_set_new(j, "tables", ta);
	json_object_set_new(j, "row_counts", json_string(st->exact ? (st->source_counted ? "exact" : "exact on the target") : "ferry and statistics"));
	json_object_set_new(j, "unmatched", table_counts_json(st->unmatched));
	json_object_set_new(j, "source_writes_after_switch", table_counts_json(st->source_writes));
	{
		json_object_set_new(j, "source_writes_unrecorded", json_integer(st->unrecorded > 0 ? st->unrecorded : 0));
		{
			json_t	   *na = json_array();

			for (int i = 0; i < st->unpublished.n; i++)
				json_array_append_new(na, json_string(st->unpublished.items[i]));
			json_object_set_new(j, "not_replicated", na);
		}
	}
	{
		json_t	   *pa = json_array();

		for (int i = 0; st->pending && i < PQntuples(st->pending); i++)
			json_array_append_new(pa, json_pack("{s:s, s:s, s:s, s:i, s:o}", "table", PQgetvalue(st->pending, i, 0),
												"constraint", PQgetvalue(st->pending, i, 1),
												"valid_after", PQgetvalue(st->pending, i, 2),
												"tries", atoi(PQgetvalue(st->pending, i, 3)),
												"last_error", PQgetisnull(st->pending, i, 4) ? json_null()
												: json_string(PQgetvalue(st->pending, i, 4))));
		json_object_set_new(j, "constraints_awaiting_validation", pa);
	}
	json_object_set_new(j, "switchover", PQgetisnull(tr, 0, 16) ? json_null()
						: json_pack("{s:s, s:f, s:b, s:o, s:o}", "switched_at", PQgetvalue(tr, 0, 16),
									"write_downtime_seconds", strtod(PQgetvalue(tr, 0, 17), NULL),
									"reverse_replication", PQgetvalue(tr, 0, 18)[0] == 't',
									"rolled_back_at", PQgetisnull(tr, 0, 19) ? json_null() : json_string(PQgetvalue(tr, 0, 19)),
									"rollback_downtime_seconds", PQgetisnull(tr, 0, 20) ? json_null() : json_real(strtod(PQgetvalue(tr, 0, 20), NULL))));
	json_object_set_new(j, "reverse", st->rev == NULL ? json_null()
						: json_pack("{s:s, s:s, s:o, s:b}", "applied_lsn", PQgetvalue(st->rev, 0, 0),
									"phase", PQgetvalue(st->rev, 0, 2),
									"last_commit_seconds_ago", PQgetisnull(st->rev, 0, 1) ? json_null() : json_real(strtod(PQgetvalue(st->rev, 0, 1), NULL)),
									"running", PQgetvalue(st->rev, 0, 3)[0] == 't'));
	{
		json_t	   *fa = json_array();

		for (int i = 0; st->files && i < PQntuples(st->files); i++)
			json_array_append_new(fa, json_pack("{s:s, s:s, s:i, s:o, s:I}", "from", PQgetvalue(st->files, i, 0),
												"to", PQgetvalue(st->files, i, 1), "last_status", atoi(PQgetvalue(st->files, i, 2)),
												"last_ok_at", PQgetisnull(st->files, i, 3) ? json_null() : json_string(PQgetvalue(st->files, i, 3)),
												"runs", (json_int_t) strtoll(PQgetvalue(st->files, i, 4), NULL, 10)));
		json_object_set_new(j, "files", fa);
	}
	text = json_dumps(j, compact ? JSON_COMPACT : JSON_INDENT(2));
	strbuf_addstr(out, text);
	strbuf_addch(out, '\n');
	free(text);
	json_decref(j);
}

/* Target rows of table `name` in the previous frame, or -1. */
static long long
prev_target_rows(const Status *prev, const char *name, int hint)
{
	if (prev == NULL)
		return -1;
	if (hint < prev->ntables && strcmp(prev->tables[hint].name, name) == 0)
		return prev->tables[hint].rows;
	for (int i = 0; i < prev->ntables; i++)
		if (strcmp(prev->tables[i].name, name) == 0)
			return prev->tables[i].rows;
	return -1;
}

/* One right-aligned count, "?" when unknown (LLONG_MIN, or any negative count unless `delta`). */
static void
count_cell(StrBuf *out, long long v, int width, bool delta)
{
	if (v >= 0 || (delta && v != LLONG_MIN))
		strbuf_addf(out, " %*lld", width, v);
	else
		strbuf_addf(out, " %*s", width, "?");
}

/*
 * The report as text. With prev (watch mode), a column of target rows per
 * second since prev; max_tables > 0 limits the table list (terminal height).
 */
static void
status_render_text(const FerryConfig *cfg, const Status *st, const Status *prev, int max_tables, StrBuf *out)
{
	PGresult   *tr = st->tr;
	PGresult   *sr = st->sr;
	char		b1[32],
				b2[32],
				b3[32];
	double		secs = prev ? st->taken_at - prev->taken_at : 0;
	int			shown = st->ntables;
	int			w = 5;

	config_format_size(strtoll(PQgetvalue(tr, 0, 8), NULL, 10), b1, sizeof(b1));
	config_format_size(strtoll(PQgetvalue(tr, 0, 5), NULL, 10), b2, sizeof(b2));
	strbuf_addf(out, "migration %s: %s%s\n", cfg->name, phase_name(PQgetvalue(tr, 0, 0), PQgetvalue(tr, 0, 2)[0] == 't'),
				PQgetvalue(tr, 0, 15)[0] == 't' ? " (ferry start is running)"
				: !PQgetisnull(tr, 0, 16) ? ""	/* switched: the reverse line says who follows */
				: " (no ferry process drives it)");
	strbuf_addf(out, "  copy     %s/%s tables done, %s rows, %s streamed (tables total %s on the source)\n",
				PQgetvalue(tr, 0, 6), PQgetvalue(tr, 0, 4), PQgetvalue(tr, 0, 7), b1, b2);
	if (!PQgetisnull(tr, 0, 9))
	{
		strbuf_addf(out, "  apply    applied up to %s, %s changes in %s transactions",
					PQgetvalue(tr, 0, 9), PQgetvalue(tr, 0, 11), PQgetvalue(tr, 0, 12));
		if (!PQgetisnull(tr, 0, 13))
			strbuf_addf(out, ", %.0f changes/s", strtod(PQgetvalue(tr, 0, 13), NULL));
		if (!PQgetisnull(tr, 0, 14))
			strbuf_addf(out, ", %.0f transactions/s", strtod(PQgetvalue(tr, 0, 14), NULL));
		strbuf_addch(out, '\n');
	}
	if (!PQgetisnull(tr, 0, 21))
		strbuf_addf(out, "  error    %s (since %s; ferry start retries)\n", PQgetvalue(tr, 0, 21), PQgetvalue(tr, 0, 22));
	pooler_hold_text(out, tr);
	if (st->lag_bytes >= 0)
	{
		config_format_size(st->lag_bytes, b3, sizeof(b3));
		strbuf_addf(out, "  lag      %s", b3);
		if (st->lag_seconds >= 0 && st->following)
			strbuf_addf(out, ", %.1f s", st->lag_seconds);
		strbuf_addch(out, '\n');
	}
	if (sr && PQntuples(sr) == 1)
	{
		config_format_size(st->retained, b3, sizeof(b3));
		strbuf_addf(out, "  source   slot %s %s, retains %s of WAL\n", cfg->name,
					PQgetvalue(sr, 0, 2)[0] == 't' ? "active" : "inactive", b3);
	}
	else if (PQgetisnull(tr, 0, 16))
		strbuf_addf(out, "  source   %s\n", st->source_reachable ? "the replication slot is missing" : "unreachable");
	if (!PQgetisnull(tr, 0, 16))
	{
		strbuf_addf(out, "  switch   switched over at %s, write downtime %.3f s, reverse replication %s\n",
					PQgetvalue(tr, 0, 16), strtod(PQgetvalue(tr, 0, 17), NULL),
					PQgetvalue(tr, 0, 18)[0] == 't' ? "prepared" : "off");
		if (st->rev)
			strbuf_addf(out, "  reverse  the source has the target's changes up to %s (%s), last applied commit %.1f s ago%s\n",
						PQgetvalue(st->rev, 0, 0), PQgetvalue(st->rev, 0, 2),
						PQgetisnull(st->rev, 0, 1) ? 0.0 : strtod(PQgetvalue(st->rev, 0, 1), NULL),
						PQgetvalue(st->rev, 0, 3)[0] == 't' ? ", ferry start is applying them" : ", ferry start is not running (rollback will drain them)");
		if (!PQgetisnull(tr, 0, 19))
			strbuf_addf(out, "  rollback rolled back at %s, write downtime %.3f s\n",
						PQgetvalue(tr, 0, 19), strtod(PQgetvalue(tr, 0, 20), NULL));
		if (!PQgetisnull(tr, 0, 24))
			strbuf_addf(out, "  retry    replication slot %s is kept on the source from %s, where both sides were equal: ferry start follows again (for another switchover); it retains the source's WAL until then, ferry cleanup drops it\n",
						cfg->name, PQgetvalue(tr, 0, 24));
	}
	table_counts_text(out, st->unmatched, "DIVERGED",
					  "updates/deletes from the source matched no row on the target. Fix: repair those rows (ferry verify shows them); a verify that finds every table equal clears this");
	table_counts_text(out, st->source_writes, "LOST?",
					  "changes were committed on the OLD SOURCE after the switchover and are NOT on the new primary. Fix: stop the client still writing there (see the old source's pg_stat_activity), carry those rows over by hand, then DELETE FROM ferry.source_writes on the target");
	if (st->unpublished.n > 0)
	{
		char	   *names = publication_name_list(&st->unpublished);

		strbuf_addf(out, "  NOT REPLICATED %d table%s created after the clone: %s. Their rows are not on the target, and switchover refuses. Fix: %s\n",
					st->unpublished.n, st->unpublished.n == 1 ? "" : "s", names, PUBLICATION_MISSING_FIX);
		free(names);
	}
	if (st->unrecorded > 0)
		strbuf_addf(out, "  LOST?    %lld more changes were committed on the OLD SOURCE after the switchover (in its watch slot, not recorded yet: ferry start records them) and are NOT on the new primary\n",
					(long long) st->unrecorded);
	if (st->pending && PQntuples(st->pending) > 0)
	{
		int			n = PQntuples(st->pending);

		strbuf_addf(out, "  NOT VALID %d foreign key%s await%s validation: the resumed clone copied tables at different snapshots; ferry start validates %s once apply has passed %s (switchover refuses until then)\n",
					n, n == 1 ? "" : "s", n == 1 ? "s" : "", n == 1 ? "it" : "them", PQgetvalue(st->pending, n - 1, 2));
		for (int i = 0; i < n; i++)
			strbuf_addf(out, "           %s %s: %s\n", PQgetvalue(st->pending, i, 0), PQgetvalue(st->pending, i, 1),
						PQgetisnull(st->pending, i, 4) ? "not tried yet" : PQgetvalue(st->pending, i, 4));
	}
	for (int i = 0; st->files && i < PQntuples(st->files); i++)
		strbuf_addf(out, "  files    %s -> %s: %s, %s runs, last ok %s\n", PQgetvalue(st->files, i, 0),
					PQgetvalue(st->files, i, 1), atoi(PQgetvalue(st->files, i, 2)) == 0 ? "ok" : "FAILING",
					PQgetvalue(st->files, i, 4), PQgetisnull(st->files, i, 3) ? "never" : PQgetvalue(st->files, i, 3));
	if (st->ntables == 0)
		return;
	if (max_tables > 0 && shown > max_tables)
		shown = max_tables > 1 ? max_tables - 1 : 1;
	/* the name column as wide as the longest name, 5 to 40 */
	for (int i = 0; i < st->ntables; i++)
		if ((int) strlen(st->tables[i].name) > w)
			w = (int) strlen(st->tables[i].name);
	if (w > 40)
		w = 40;
	/*
	 * rows: ferry's own count (copied + inserted - deleted); ~source ~target:
	 * the servers' statistics; with --exact, the counted rows and the delta.
	 */
	strbuf_addf(out, "  %-*s %8s %14s %14s %14s", w, "table", "copied", "rows (ferry)", "~source", "~target");
	if (st->exact)
		strbuf_addf(out, " %14s %14s %10s", "source rows", "target rows", "delta");
	if (prev)
		strbuf_addf(out, " %14s", "rows/s");
	strbuf_addch(out, '\n');
	for (int i = 0; i < shown; i++)
	{
		const TableDelta *t = &st->tables[i];
		char		copied[24];
		long long	before = prev_target_rows(prev, t->name, i);

		if (t->parts > 0 && t->parts_done >= t->parts)
			snprintf(copied, sizeof(copied), "yes");
		else if (t->parts > 0)
			snprintf(copied, sizeof(copied), "%d/%d", t->parts_done, t->parts);
		else
			snprintf(copied, sizeof(copied), "no");
		strbuf_addf(out, "  %-*s %8s", w, t->name, copied);
		count_cell(out, t->rows, 14, false);
		count_cell(out, t->src_est, 14, false);
		count_cell(out, t->tgt_est, 14, false);
		if (st->exact)
		{
			count_cell(out, t->src, 14, false);
			count_cell(out, t->tgt, 14, false);
			count_cell(out, t->src >= 0 && t->tgt >= 0 ? t->src - t->tgt : LLONG_MIN, 10, true);
		}
		if (prev && before >= 0 && t->rows >= 0 && secs > 0)
			strbuf_addf(out, " %14.0f", (double) (t->rows - before) / secs);
		strbuf_addch(out, '\n');
	}
	if (shown < st->ntables)
		strbuf_addf(out, "  ... and %d more tables (a taller terminal shows them)\n", st->ntables - shown);
}

/* (Re)connect for a refresh; the target's failure is the caller's to report. */
static void
watch_connect(const FerryConfig *cfg, PGconn **tgt, PGconn **src)
{
	if (*tgt && PQstatus(*tgt) != CONNECTION_OK)
	{
		pg_finish(*tgt);
		*tgt = NULL;
	}
	if (*src && PQstatus(*src) != CONNECTION_OK)
	{
		pg_finish(*src);
		*src = NULL;
	}
	if (*tgt == NULL)
		*tgt = pg_connect(cfg->target, "target", PG_CONN_SQL, NULL);
	if (*src == NULL && *tgt != NULL)
		*src = pg_connect(cfg->source, "source", PG_CONN_SQL, NULL);
}

/*
 * Lines of a terminal frame: each cut to `cols` bytes (at a UTF-8 character
 * boundary) and cleared to its end, so a shorter line leaves nothing of the
 * previous frame behind.
 */
static void
frame_add_lines(StrBuf *frame, const char *text, int cols)
{
	while (*text)
	{
		const char *nl = strchr(text, '\n');
		size_t		len = nl ? (size_t) (nl - text) : strlen(text);
		size_t		cut = len;

		if (cols > 0 && cut > (size_t) cols)
		{
			cut = (size_t) cols;
			while (cut > 0 && ((unsigned char) text[cut] & 0xC0) == 0x80)
				cut--;
		}
		strbuf_add(frame, text, cut);
		strbuf_addstr(frame, "\033[K\n");
		text += len + (nl ? 1 : 0);
	}
}

static void
write_all(const char *s, size_t n)
{
	fwrite(s, 1, n, stdout);
	fflush(stdout);
}

static int
status_watch(FerryConfig *cfg)
{
	bool		tty = isatty(STDOUT_FILENO) && !cfg->json;
	PGconn	   *tgt = NULL,
			   *src = NULL;
	Status		prev,
				cur;
	bool		have_prev = false;
	StrBuf		report,
				frame;

	memset(&prev, 0, sizeof(prev));
	strbuf_init(&report);
	strbuf_init(&frame);
	if (tty)
		write_all("\033[?25l\033[H\033[2J", 13);	/* hide the cursor, clear once */
	while (!pg_interrupted())
	{
		char		when[64];
		time_t		now = time(NULL);
		struct tm	tm;
		struct winsize ws = {0};
		bool		got;

		gmtime_r(&now, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
		watch_connect(cfg, &tgt, &src);
		got = tgt != NULL && status_collect(cfg, tgt, src, &cur);
		if (pg_interrupted())
		{
			if (got)
				status_release(&cur);
			break;
		}
		if (tty)
			ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws);
		strbuf_reset(&report);
		if (!cfg->json)
			strbuf_addf(&report, "ferry status at %s, every %d s%s\n", when, watch_interval,
						tty ? " (Ctrl-C to stop)" : "");
		if (got && cfg->json)
			status_render_json(cfg, &cur, true, &report);
		else if (got)
			status_render_text(cfg, &cur, have_prev ? &prev : NULL, tty && ws.ws_row > 9 ? ws.ws_row - 9 : 0, &report);
		else if (!cfg->json)
			strbuf_addstr(&report, "  could not read the migration's state from the target (see the error); retrying\n");
		if (tty)
		{
			strbuf_reset(&frame);
			strbuf_addstr(&frame, "\033[H");
			frame_add_lines(&frame, report.data, ws.ws_col);
			strbuf_addstr(&frame, "\033[J");
			write_all(frame.data, frame.len);
		}
		else
		{
			if (!cfg->json)
				strbuf_addch(&report, '\n');
			write_all(report.data, report.len);
		}
		if (got)
		{
			if (have_prev)
				status_release(&prev);
			prev = cur;
			have_prev = true;
		}
		for (int i = 0; i < watch_interval * 10 && !pg_interrupted(); i++)
			usleep(100000);
	}
	if (tty)
		write_all("\033[?25h", 6);	/* the cursor back */
	if (have_prev)
		status_release(&prev);
	strbuf_release(&report);
	strbuf_release(&frame);
	pg_finish(src);
	pg_finish(tgt);
	return EXIT_OK;
}

int
cli_status(FerryConfig *cfg)
{
	PGconn	   *tgt;
	PGconn	   *src;
	Status		st;
	StrBuf		out;
	int			rc = EXIT_FAILED;

	if (watch_mode)
		return status_watch(cfg);
	tgt = pg_connect(cfg->target, "target", PG_CONN_SQL, NULL);
	if (tgt == NULL)
		return EXIT_FAILED;
	/* the source may be down: status still reports what the target knows */
	src = pg_connect(cfg->source, "source", PG_CONN_SQL, NULL);
	strbuf_init(&out);
	if (status_collect(cfg, tgt, src, &st))
	{
		if (cfg->json)
			status_render_json(cfg, &st, false, &out);
		else
			status_render_text(cfg, &st, NULL, 0, &out);
		fwrite(out.data, 1, out.len, stdout);
		/* writes found on the old source after the switch: exit 1, for scripts and monitoring */
		rc = (st.source_writes && PQntuples(st.source_writes) > 0) || st.unrecorded > 0 ? EXIT_FAILED : EXIT_OK;
		status_release(&st);
	}
	strbuf_release(&out);
	pg_finish(src);
	pg_finish(tgt);
	return rc;
}
