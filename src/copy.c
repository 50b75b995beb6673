/*
 * copy.c: parallel streaming table copy (see copy.h for the design).
 */
#include "copy.h"

#include "fault.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"
#include "metrics.h"
#include "pgsql.h"
#include "pool.h"
#include "state.h"


typedef struct CopyWorker
{
	PGconn	   *src;
	PGconn	   *tgt;
	char	   *batch;			/* COPY_BATCH_BYTES of room for copy_relay() */
} CopyWorker;

/* Progress of copy_relay() inside a copy worker: publish, and a fault point. */
static void
relay_progress(void *ctx, int64_t bytes)
{
	CopyJob    *job = ctx;

	atomic_fetch_add(&job->bytes, bytes);
	fault_point("copy.mid-item");
}

bool
copy_relay(PGconn *src, PGconn *tgt, char *batch, const char *label, const char *what,
		   void (*progress) (void *ctx, int64_t bytes), void *ctx, int64_t *bytes_out)
{
	size_t		batch_len = 0;
	int64_t		bytes = 0,
				pending = 0;

	/*
	 * Batch rows into big CopyData messages: the COPY stream is a byte
	 * stream (rows may straddle messages), and every PQputCopyData() call
	 * also polls the socket for notices, so one call per row costs a
	 * syscall per row.
	 */
	for (;;)
	{
		char	   *buf = NULL;
		int			n = PQgetCopyData(src, &buf, 0);

		if (n == -1)
			break;
		if (n < 0)
		{
			log_error("could not %s: %s", what, PQerrorMessage(src));
			return false;
		}
		if (batch_len + (size_t) n > COPY_BATCH_BYTES && batch_len > 0)
		{
			if (PQputCopyData(tgt, batch, (int) batch_len) != 1)
			{
				PQfreemem(buf);
				log_error("could not copy %s into the target: %s", label, PQerrorMessage(tgt));
				return false;
			}
			batch_len = 0;
		}
		if ((size_t) n > COPY_BATCH_BYTES)
		{
			/* a huge row goes on its own */
			if (PQputCopyData(tgt, buf, n) != 1)
			{
				PQfreemem(buf);
				log_error("could not copy %s into the target: %s", label, PQerrorMessage(tgt));
				return false;
			}
		}
		else
		{
			memcpy(batch + batch_len, buf, (size_t) n);
			batch_len += (size_t) n;
		}
		PQfreemem(buf);
		bytes += n;
		pending += n;
		if (progress && pending >= 65536)	/* publish progress every 64 kB */
		{
			progress(ctx, pending);
			pending = 0;
		}
	}
	if (batch_len > 0 && PQputCopyData(tgt, batch, (int) batch_len) != 1)
	{
		log_error("could not copy %s into the target: %s", label, PQerrorMessage(tgt));
		return false;
	}
	if (progress && pending > 0)
		progress(ctx, pending);
	*bytes_out = bytes;
	return true;
}

double
copy_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

int
copy_plan(const TableList *tables, const bool *done, int64_t split_bytes, bool can_split, CopyItem **items)
{
	int			cap = tables->n + 8;
	int			n = 0;
	CopyItem   *out = xcalloc((size_t) cap, sizeof(CopyItem));

	for (int i = 0; i < tables->n; i++)
	{
		const TableInfo *t = &tables->items[i];
		int64_t		nchunks = 1;

		if (done && done[i])
			continue;
		if (can_split && split_bytes > 0 && t->bytes > split_bytes && t->pages > 1)
		{
			nchunks = (t->bytes + split_bytes - 1) / split_bytes;
			if (nchunks > t->pages)
				nchunks = t->pages;
			if (nchunks > 10000)
				nchunks = 10000;
		}
		for (int64_t k = 0; k < nchunks; k++)
		{
			if (n == cap)
			{
				cap *= 2;
				out = xrealloc(out, sizeof(CopyItem) * (size_t) cap);
			}
			out[n].table = i;
			out[n].chunk = (int) k;
			out[n].nchunks = (int) nchunks;
			out[n].lo_block = nchunks == 1 ? 0 : t->pages * k / nchunks;
			out[n].hi_block = (nchunks == 1 || k == nchunks - 1) ? -1 : t->pages * (k + 1) / nchunks;
			n++;
		}
	}
	*items = out;
	return n;
}

static bool
worker_init(void *ctx, int id, void **wstate)
{
	CopyJob    *job = ctx;
	CopyWorker *w = xcalloc(1, sizeof(CopyWorker));
	char	   *snap = NULL;
	char	   *sql = NULL;
	char	   *enc = NULL;
	char	   *tsql = NULL;
	bool		ok = false;

	(void) id;
	w->src = pg_connect(job->cfg->source, "source", PG_CONN_SQL, NULL);
	if (w->src == NULL)
		goto done;
	pg_cancel_register(w->src);
	if ((snap = pg_quote_literal(w->src, job->snapshot)) == NULL)
		goto done;
	sql = xasprintf("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT %s", snap);
	if (!pg_exec(w->src, "import the clone snapshot on the source", sql))
		goto done;
	w->tgt = pg_connect(job->cfg->target, "target", PG_CONN_SQL, NULL);
	if (w->tgt == NULL)
		goto done;
	pg_cancel_register(w->tgt);
	if ((enc = pg_quote_literal(w->tgt, job->encoding)) == NULL)
		goto done;
	tsql = xasprintf("SET client_encoding = %s; SET synchronous_commit = off", enc);
	if (!pg_exec(w->tgt, "set up the target session", tsql))
		goto done;
	w->batch = xmalloc(COPY_BATCH_BYTES);
	ok = true;

done:
	free(snap);
	free(sql);
	free(enc);
	free(tsql);
	*wstate = w;
	if (!ok)
	{
		pg_finish(w->src);
		pg_finish(w->tgt);
		free(w);
		*wstate = NULL;
	}
	return ok;
}

static void
worker_fini(void *ctx, void *wstate)
{
	CopyWorker *w = wstate;

	(void) ctx;
	pg_finish(w->src);
	pg_finish(w->tgt);
	free(w->batch);
	free(w);
}

/* Abort the target side of a failed item: end COPY if active, roll back. */
static void
abort_target(PGconn *tgt, bool in_copy)
{
	PGresult   *r;

	if (in_copy)
		PQputCopyEnd(tgt, "ferry: copy aborted");
	while ((r = PQgetResult(tgt)) != NULL)
		PQclear(r);
	pg_exec_quiet(tgt, "ROLLBACK", NULL);
}

/* Drain a COPY OUT that we stop early, so the source connection stays usable. */
static void
abort_source(PGconn *src)
{
	PGresult   *r;

	(void) PQrequestCancel(src);
	while ((r = PQgetResult(src)) != NULL)
		PQclear(r);
}

/*
 * Copy one item. Contract: on success the item's rows and its done row are
 * committed on the target; on failure nothing of it is (rolled back) and the
 * error is logged once. The source transaction stays open either way.
 */
static bool
worker_run(void *ctx, void *wstate, int idx)
{
	CopyJob    *job = ctx;
	CopyWorker *w = wstate;
	const CopyItem *it = &job->items[idx];
	const TableInfo *t = &job->tables->items[it->table];
	bool		binary = job->binary_allowed && t->binary_ok;
	bool		whole = it->nchunks == 1;
	StrBuf		src_sql,
				tgt_sql;
	PGresult   *res = NULL;
	bool		ok = false;
	bool		tgt_in_copy = false;
	bool		src_in_copy = false;
	int64_t		bytes = 0;
	char	   *src_rows = NULL;
	char	   *what = NULL;
	double		t0 = copy_now();
	char		label[128];

	if (whole)
		snprintf(label, sizeof(label), "%s", t->qualname);
	else
		snprintf(label, sizeof(label), "%s part %d/%d", t->qualname, it->chunk + 1, it->nchunks);
	strbuf_init(&src_sql);
	strbuf_init(&tgt_sql);

	if (whole)
		strbuf_addf(&src_sql, "COPY %s%s%s%s TO STDOUT", t->qualname,
					t->columns ? " (" : "", t->columns ? t->columns : "", t->columns ? ")" : "");
	else
	{
		strbuf_addf(&src_sql, "COPY (SELECT %s FROM ONLY %s WHERE ctid >= '(%lld,0)'::pg_catalog.tid",
					t->columns ? t->columns : "", t->qualname, (long long) it->lo_block);
		if (it->hi_block >= 0)
			strbuf_addf(&src_sql, " AND ctid < '(%lld,0)'::pg_catalog.tid", (long long) it->hi_block);
		strbuf_addstr(&src_sql, ") TO STDOUT");
	}
	strbuf_addf(&tgt_sql, "COPY %s%s%s%s FROM STDIN", t->qualname,
				t->columns ? " (" : "", t->columns ? t->columns : "", t->columns ? ")" : "");
	if (binary)
	{
		strbuf_addstr(&src_sql, " WITH (FORMAT binary)");
		strbuf_addstr(&tgt_sql, whole ? " WITH (FORMAT binary, FREEZE)" : " WITH (FORMAT binary)");
	}
	else if (whole)
		strbuf_addstr(&tgt_sql, " WITH (FREEZE)");

	log_debug("copying %s (%s)", label, binary ? "binary" : "text");

	/* target: one transaction for data and done row */
	if (!pg_exec(w->tgt, "begin the copy transaction on the target", "BEGIN"))
		goto cleanup;
	if (whole)
	{
		char	   *trunc = xasprintf("TRUNCATE ONLY %s", t->qualname);
		bool		tok = pg_exec(w->tgt, "empty the target table", trunc);

		free(trunc);
		if (!tok)
			goto fail;
	}
	what = xasprintf("copy %s from the source", label);
	res = PQexec(w->src, src_sql.data);
	if (PQresultStatus(res) != PGRES_COPY_OUT)
	{
		char	   *e = pg_result_error_text(res, w->src);

		log_error("could not %s: %s", what, e);
		free(e);
		goto fail;
	}
	src_in_copy = true;
	PQclear(res);
	res = PQexec(w->tgt, tgt_sql.data);
	if (PQresultStatus(res) != PGRES_COPY_IN)
	{
		char	   *e = pg_result_error_text(res, w->tgt);

		log_error("could not copy %s into the target: %s", label, e);
		free(e);
		goto fail;
	}
	tgt_in_copy = true;
	PQclear(res);
	res = NULL;

	if (!copy_relay(w->src, w->tgt, w->batch, label, what, relay_progress, job, &bytes))
		goto fail;
	src_in_copy = false;
	res = PQgetResult(w->src);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		char	   *e = pg_result_error_text(res, w->src);

		log_error("could not %s: %s", what, e);
		free(e);
		goto fail;
	}
	src_rows = xstrdup(PQcmdTuples(res));
	PQclear(res);
	while ((res = PQgetResult(w->src)) != NULL)
		PQclear(res);

	tgt_in_copy = false;
	if (PQputCopyEnd(w->tgt, NULL) != 1)
	{
		log_error("could not finish copying %s into the target: %s", label, PQerrorMessage(w->tgt));
		goto fail;
	}
	res = PQgetResult(w->tgt);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		char	   *e = pg_result_error_text(res, w->tgt);

		log_error("could not copy %s into the target: %s", label, e);
		free(e);
		goto fail;
	}
	if (strcmp(PQcmdTuples(res), src_rows) != 0)
	{
		log_error("row count mismatch for %s: the source sent %s rows, the target stored %s",
				  label, src_rows, PQcmdTuples(res));
		goto fail;
	}
	PQclear(res);
	while ((res = PQgetResult(w->tgt)) != NULL)
		PQclear(res);

	{
		char		chunk[16],
					nchunks[16],
					bytes_s[32],
					secs[32];
		const char *params[9];

		snprintf(chunk, sizeof(chunk), "%d", it->chunk);
		snprintf(nchunks, sizeof(nchunks), "%d", it->nchunks);
		snprintf(bytes_s, sizeof(bytes_s), "%lld", (long long) bytes);
		snprintf(secs, sizeof(secs), "%.3f", copy_now() - t0);
		params[0] = job->cfg->name;
		params[1] = t->nspname;
		params[2] = t->relname;
		params[3] = chunk;
		params[4] = nchunks;
		params[5] = job->snapshot_lsn;
		params[6] = src_rows;
		params[7] = bytes_s;
		params[8] = secs;
		res = pg_query(w->tgt, "record the copied table", STATE_MARK_COPY_SQL, 9, params);
		if (res == NULL)
			goto fail;
		PQclear(res);
		res = NULL;
	}
	if (!pg_exec(w->tgt, "commit the copy", "COMMIT"))
		goto fail;

	fault_point("copy.after-item");
	atomic_fetch_add(&job->rows, strtoll(src_rows, NULL, 10));
	metrics_table_add(t->nspname, t->relname, strtoll(src_rows, NULL, 10), bytes);
	atomic_fetch_add(&job->items_done, 1);
	{
		int64_t		share = whole ? t->bytes : t->bytes / it->nchunks;

		atomic_fetch_add(&job->heap_done, share);
	}
	log_debug("copied %s: %s rows, %lld bytes in %.2f s", label, src_rows, (long long) bytes, copy_now() - t0);
	ok = true;
	goto cleanup;

fail:
	PQclear(res);
	res = NULL;
	if (src_in_copy)
		abort_source(w->src);
	abort_target(w->tgt, tgt_in_copy);

cleanup:
	PQclear(res);
	free(src_rows);
	free(what);
	strbuf_release(&src_sql);
	strbuf_release(&tgt_sql);
	return ok;
}

static void
copy_tick(void *ctx)
{
	CopyJob    *job = ctx;
	double		now = copy_now();
	double		elapsed = now - job->started;
	int64_t		bytes = atomic_load(&job->bytes);
	int64_t		heap_done = atomic_load(&job->heap_done);
	int			done = atomic_load(&job->items_done);
	char		b[32],
				rate[32],
				eta[48] = "";

	if (!job->tty && now - job->last_report < 10)
		return;
	job->last_report = now;
	config_format_size(bytes, b, sizeof(b));
	config_format_size(elapsed > 0 ? (int64_t) ((double) bytes / elapsed) : 0, rate, sizeof(rate));
	if (heap_done > 0 && job->heap_total > heap_done)
		snprintf(eta, sizeof(eta), ", about %.0f s left",
				 elapsed * (double) (job->heap_total - heap_done) / (double) heap_done);
	if (job->tty)
	{
		fprintf(stderr, "\r\033[Kcopy: %d/%d parts done, %s streamed, %s/s%s", done, job->nitems, b, rate, eta);
		fflush(stderr);
	}
	else
		log_info("copy progress: %d/%d parts done, %s streamed, %s/s%s", done, job->nitems, b, rate, eta);
}

bool
copy_run(CopyJob *job)
{
	PoolSpec	spec = {0};
	bool		ok;

	job->started = copy_now();
	job->last_report = job->started;
	job->tty = isatty(STDERR_FILENO);
	job->heap_total = 0;
	for (int i = 0; i < job->nitems; i++)
	{
		const TableInfo *t = &job->tables->items[job->items[i].table];

		job->heap_total += job->items[i].nchunks == 1 ? t->bytes : t->bytes / job->items[i].nchunks;
	}
	spec.nworkers = job->cfg->jobs;
	spec.nitems = job->nitems;
	spec.role = "copy worker";
	spec.ctx = job;
	spec.init = worker_init;
	spec.run = worker_run;
	spec.fini = worker_fini;
	spec.tick = copy_tick;
	ok = pool_run(&spec);
	if (job->tty)
		fprintf(stderr, "\r\033[K");
	return ok;
}
