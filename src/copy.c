/*
 * copy.c: parallel streaming table copy (see copy.h for the design).
 */
#include "copy.h"

#include "fault.h"

#include <poll.h>
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

/* Progress of copy_stream() inside a copy worker: publish, and a fault point. */
static void
relay_progress(void *ctx, int64_t bytes)
{
	CopyJob    *job = ctx;

	atomic_fetch_add(&job->bytes, bytes);
	fault_point("copy.mid-item");
}

/* The relay's view of one COPY pair, for its helpers. */
typedef struct Relay
{
	const CopyStream *cs;
	size_t		batch_len;
	bool		src_in_copy;
	bool		tgt_in_copy;
	bool		logged;			/* the failure is logged */
} Relay;

/* One line of conn's last error (owned). */
static char *
conn_error(PGconn *conn)
{
	char	   *e = pg_result_error_text(NULL, conn);

	e[strcspn(e, "\n")] = '\0';
	return e;
}

/* Log the relay's failure once: which side, what happened. */
static void
relay_fail(Relay *r, bool target, const char *what)
{
	PGconn	   *conn = target ? r->cs->tgt : r->cs->src;
	char	   *e;

	if (r->logged)
		return;
	r->logged = true;
	if (pg_interrupted())
	{
		log_info("stopped copying %s: ferry is stopping", r->cs->label);
		return;
	}
	e = conn_error(conn);
	if (PQstatus(conn) != CONNECTION_OK)
		log_error("could not copy %s: lost the connection to the %s while %s (%s)",
				  r->cs->label, target ? "target" : "source", what, e);
	else
		log_error("could not copy %s: the %s failed while %s: %s",
				  r->cs->label, target ? "target" : "source", what, e);
	free(e);
}

/*
 * Watch the target while sending: a target in COPY IN sends nothing unless
 * something went wrong (its backend was terminated, the server is shutting
 * down), so input there is read at once and a lost connection seen then,
 * not at the end of the table. wait_ms: how long to wait for the target to
 * take more data (0 = just look). False when the target is lost or the wait
 * gave up (abandoned).
 */
static bool
target_check(Relay *r, int wait_ms)
{
	PGconn	   *tgt = r->cs->tgt;
	struct pollfd pfd = {PQsocket(tgt), POLLIN | (wait_ms > 0 ? POLLOUT : 0), 0};
	int			rc = pfd.fd < 0 ? 1 : poll(&pfd, 1, wait_ms);

	if (rc > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR)) && PQconsumeInput(tgt) != 1)
		return false;
	return PQstatus(tgt) == CONNECTION_OK;
}

/*
 * Send the batch. Nonblocking: while libpq still holds data the target has
 * not taken, wait for it (watching the stop flag and the target's input),
 * so memory stays bounded by the batch and the socket buffers.
 */
static bool
relay_send(Relay *r, const char *data, size_t len)
{
	PGconn	   *tgt = r->cs->tgt;
	int			f;

	if (len > 0 && PQputCopyData(tgt, data, (int) len) != 1)
		return false;
	while ((f = PQflush(tgt)) == 1)
	{
		if (pg_interrupted() || !target_check(r, 100))
			return false;
	}
	return f == 0 && target_check(r, 0);
}

/*
 * The one abort path, for both sides of a failed relay. Target: the COPY
 * is ended with an error (CopyFail) and its results read; the caller rolls
 * its transaction back. Source: a cancel request ends the COPY OUT, what is
 * still in flight is read and dropped, then its results; so the source
 * session stays usable (the clone's snapshot transaction, the switchover's
 * control session). Each side gets COPY_ABORT_WAIT_MS (or the stop grace);
 * a side that does not finish by then is abandoned (pg_abandon): the
 * caller sees CONNECTION_BAD and must not reuse it.
 */
static void
relay_abort(Relay *r)
{
	PGconn	   *src = r->cs->src;
	PGconn	   *tgt = r->cs->tgt;
	int64_t		deadline = pg_now_ms() + COPY_ABORT_WAIT_MS;
	PGresult   *res;

	if (r->tgt_in_copy && PQstatus(tgt) == CONNECTION_OK)
		(void) PQputCopyEnd(tgt, "ferry: copy aborted");
	r->tgt_in_copy = false;
	while ((res = pg_get_result_until(tgt, deadline)) != NULL)
		PQclear(res);
	if (r->src_in_copy && PQstatus(src) == CONNECTION_OK)
	{
		pg_cancel_async(src);
		for (;;)
		{
			char	   *buf = NULL;
			int			n = PQgetCopyData(src, &buf, 1);
			PgWait		w;

			if (n > 0)
			{
				PQfreemem(buf);
				continue;
			}
			if (n < 0)
				break;			/* the end (the cancel's error), or broken */
			w = pg_wait_socket(src, false, deadline);
			if (w != PG_WAIT_READY)
			{
				pg_abandon(src, "the COPY on the source did not end after a cancel; connection closed");
				break;
			}
			if (PQconsumeInput(src) != 1)
				break;
		}
	}
	r->src_in_copy = false;
	while ((res = pg_get_result_until(src, deadline)) != NULL)
		PQclear(res);
	if (PQstatus(src) == CONNECTION_OK)
		(void) PQsetnonblocking(src, 0);
	if (PQstatus(tgt) == CONNECTION_OK)
		(void) PQsetnonblocking(tgt, 0);
}

/* Move CopyData from the source to the target until the source's end. */
static bool
relay_rows(Relay *r, int64_t *bytes_out)
{
	const CopyStream *cs = r->cs;
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
		int			n;

		if (pg_interrupted())
		{
			relay_fail(r, false, "reading the rows");
			return false;
		}
		n = PQgetCopyData(cs->src, &buf, 1);
		if (n == 0)
		{
			/* nothing buffered: wait for the source, watching the target */
			struct pollfd pfd[2] = {{PQsocket(cs->src), POLLIN, 0}, {PQsocket(cs->tgt), POLLIN, 0}};
			int			rc = poll(pfd, 2, 100);

			if (rc > 0 && pfd[1].revents && !target_check(r, 0))
			{
				relay_fail(r, true, "sending the rows");
				return false;
			}
			if (rc > 0 && pfd[0].revents && PQconsumeInput(cs->src) != 1)
			{
				relay_fail(r, false, "reading the rows");
				return false;
			}
			continue;
		}
		if (n == -1)
			break;
		if (n < 0)
		{
			relay_fail(r, false, "reading the rows");
			return false;
		}
		if (r->batch_len + (size_t) n > COPY_BATCH_BYTES && r->batch_len > 0)
		{
			if (!relay_send(r, cs->batch, r->batch_len))
			{
				PQfreemem(buf);
				relay_fail(r, true, "sending the rows");
				return false;
			}
			r->batch_len = 0;
		}
		if ((size_t) n > COPY_BATCH_BYTES)
		{
			/* a huge row goes on its own */
			if (!relay_send(r, buf, (size_t) n))
			{
				PQfreemem(buf);
				relay_fail(r, true, "sending the rows");
				return false;
			}
		}
		else
		{
			memcpy(cs->batch + r->batch_len, buf, (size_t) n);
			r->batch_len += (size_t) n;
		}
		PQfreemem(buf);
		bytes += n;
		pending += n;
		if (cs->progress && pending >= 65536)	/* publish progress every 64 kB */
		{
			cs->progress(cs->ctx, pending);
			pending = 0;
		}
	}
	if (!relay_send(r, cs->batch, r->batch_len))
	{
		relay_fail(r, true, "sending the rows");
		return false;
	}
	r->batch_len = 0;
	if (cs->progress && pending > 0)
		cs->progress(cs->ctx, pending);
	*bytes_out = bytes;
	return true;
}

/* Take a COPY's final result: true and its row count when COMMAND_OK. */
static bool
relay_result(Relay *r, bool target, const char *what, int64_t *rows)
{
	PGconn	   *conn = target ? r->cs->tgt : r->cs->src;
	PGresult   *res = pg_get_result(conn);
	bool		ok = PQresultStatus(res) == PGRES_COMMAND_OK;

	if (ok)
		*rows = strtoll(PQcmdTuples(res), NULL, 10);
	else if (!r->logged && !pg_interrupted() && PQstatus(conn) == CONNECTION_OK)
	{
		char	   *e = pg_result_error_text(res, conn);

		r->logged = true;
		log_error("could not copy %s: the %s failed while %s: %s", r->cs->label,
				  target ? "target" : "source", what, e);
		free(e);
	}
	else
		relay_fail(r, target, what);
	PQclear(res);
	while ((res = pg_get_result(conn)) != NULL)
		PQclear(res);
	return ok;
}

/* Start one side's COPY: true when conn is in the expected COPY state. */
static bool
relay_start(Relay *r, bool target)
{
	PGconn	   *conn = target ? r->cs->tgt : r->cs->src;
	PGresult   *res = pg_execute(conn, target ? r->cs->tgt_sql : r->cs->src_sql, 0, NULL);
	ExecStatusType want = target ? PGRES_COPY_IN : PGRES_COPY_OUT;
	bool		ok = PQresultStatus(res) == want;

	if (ok)
	{
		if (target)
			r->tgt_in_copy = true;
		else
			r->src_in_copy = true;
		(void) PQsetnonblocking(conn, 1);
	}
	else if (pg_interrupted() || PQstatus(conn) != CONNECTION_OK)
		relay_fail(r, target, "starting the COPY");
	else
	{
		char	   *e = pg_result_error_text(res, conn);

		r->logged = true;
		log_error("could not copy %s: the %s failed while starting the COPY: %s", r->cs->label,
				  target ? "target" : "source", e);
		free(e);
	}
	PQclear(res);
	return ok;
}

bool
copy_stream(const CopyStream *cs, int64_t *rows_out, int64_t *bytes_out)
{
	Relay		r = {cs, 0, false, false, false};
	int64_t		bytes = 0,
				src_rows = -1,
				tgt_rows = -1;

	if (!relay_start(&r, false) || !relay_start(&r, true) || !relay_rows(&r, &bytes))
		goto fail;
	r.src_in_copy = false;
	if (!relay_result(&r, false, "reading the rows", &src_rows))
		goto fail;
	if (PQputCopyEnd(cs->tgt, NULL) != 1)
	{
		relay_fail(&r, true, "ending the COPY");
		goto fail;
	}
	r.tgt_in_copy = false;
	if (!relay_result(&r, true, "storing the rows", &tgt_rows))
		goto fail;
	(void) PQsetnonblocking(cs->src, 0);
	(void) PQsetnonblocking(cs->tgt, 0);
	if (src_rows != tgt_rows)
	{
		log_error("row count mismatch for %s: the source sent %lld rows, the target stored %lld",
				  cs->label, (long long) src_rows, (long long) tgt_rows);
		return false;
	}
	*rows_out = src_rows;
	*bytes_out = bytes;
	return true;

fail:
	relay_abort(&r);
	return false;
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
	int64_t		bytes = 0,
				rows = 0;
	char	   *src_rows = NULL;
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
	{
		CopyStream	cs = {w->src, src_sql.data, w->tgt, tgt_sql.data, label, w->batch, relay_progress, job};

		if (!copy_stream(&cs, &rows, &bytes))
			goto fail;
		src_rows = xasprintf("%lld", (long long) rows);
	}

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
	atomic_fetch_add(&job->rows, rows);
	metrics_table_add(t->nspname, t->relname, rows, bytes);
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
	/* copy_stream ended both COPYs; roll back what is left, unless lost */
	if (PQstatus(w->tgt) == CONNECTION_OK)
		pg_exec_quiet(w->tgt, "ROLLBACK", NULL);

cleanup:
	PQclear(res);
	free(src_rows);
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
