/*
 * apply_pipe.c: the apply thread's libpq pipeline to the target (apply.h:
 * "Pipelining"). Every statement sent is remembered (Sent, a ring) until its
 * results are read, in order; a COMMIT's result publishes its batch; an
 * error marks the pipeline failed, after which nothing sent ran and the
 * session is over (AS_BROKEN).
 */
#include "apply_int.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pgsql.h"

/* ------------------------------------------------------------------ */
/* pipeline bookkeeping                                                 */

/*
 * The pipeline failed (an error was read, a send or the connection broke):
 * nothing sent after the failure ran, and the session is over; `why` is
 * the session's outcome (pass a->fail_status to keep the first one's).
 */
void
pipe_fail(Apply *a, ApplyStatus why)
{
	a->pipe_failed = true;
	a->fail_status = why;
	a->state = AS_BROKEN;	/* from any state (see ApplyState) */
}

Sent *
pipe_push(Apply *a, SentKind kind, const char *what, char *owned)
{
	Sent	   *e;

	if (a->nsent == a->sent_cap)
	{
		Sent	   *ring = xcalloc((size_t) (a->sent_cap ? a->sent_cap * 2 : 256), sizeof(Sent));

		for (int i = 0; i < a->nsent; i++)
			ring[i] = a->sent[(a->sent_first + i) % a->sent_cap];
		free(a->sent);
		a->sent = ring;
		a->sent_first = 0;
		a->sent_cap = a->sent_cap ? a->sent_cap * 2 : 256;
	}
	e = &a->sent[(a->sent_first + a->nsent) % a->sent_cap];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->what = owned ? owned : what;
	e->owned = owned;
	a->nsent++;
	if (kind == SENT_COMMIT)
		a->commits_in_flight++;
	if (kind != SENT_SYNC)
		a->since_sync++;
	return e;
}

/* A statement was sent: remember it (`owned`, if given, describes it). */
void
pipe_note_sent(Apply *a, const char *what, char *owned)
{
	(void) pipe_push(a, SENT_STATEMENT, what, owned);
}

static void
pipe_pop(Apply *a)
{
	if (a->sent[a->sent_first].kind == SENT_COMMIT)
		a->commits_in_flight--;
	free(a->sent[a->sent_first].owned);
	a->sent_first = (a->sent_first + 1) % a->sent_cap;
	a->nsent--;
}

/* Forget everything in flight (the connection is being given up). */
void
pipe_clear(Apply *a)
{
	while (a->nsent > 0)
		pipe_pop(a);
	a->since_sync = 0;
}

/*
 * Is this SQLSTATE worth a retry? Connection exceptions (08), operator
 * intervention such as a shutdown or a crash of the server (57), resource
 * shortage (53), system errors (58), serialization failures and deadlocks.
 * The server's FATAL error can arrive before libpq marks the connection
 * bad, so the code, not only the connection state, decides.
 */
static bool
retryable_sqlstate(const char *state)
{
	return state != NULL &&
		(strncmp(state, "08", 2) == 0 || strncmp(state, "57", 2) == 0 ||
		 strncmp(state, "53", 2) == 0 || strncmp(state, "58", 2) == 0 ||
		 strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0);
}

/*
 * Classify a failed connection (retry) vs a failed statement (stop). An
 * error without a SQLSTATE was made by libpq, not the server: the socket
 * failed (after a failed write libpq keeps the connection "OK" so that it
 * can still read the server's last words), so that is a connection failure.
 */
ApplyStatus
pipe_failure_kind(Apply *a)
{
	if (PQstatus(a->conn) != CONNECTION_OK || a->last_sqlstate[0] == '\0' ||
		retryable_sqlstate(a->last_sqlstate))
		return APPLY_FAILED_CONN;
	return APPLY_FAILED;
}


/* The connection broke or a send failed: nothing in flight will answer. */
void
pipe_broken(Apply *a, const char *msg)
{
	if (!a->pipe_failed)
		log_error("%s: %s", msg, PQerrorMessage(a->conn));
	pipe_fail(a, PQstatus(a->conn) != CONNECTION_OK ? APPLY_FAILED_CONN : pipe_failure_kind(a));
	pipe_clear(a);
}

static void
describe_sent(Apply *a, const Sent *e, char *buf, size_t size)
{
	const ApplyRel *r = e->relid ? rel_lookup(a, e->relid, false) : NULL;
	char		rel[64];

	if (e->relid == 0)
	{
		snprintf(buf, size, "%s", e->what);
		return;
	}
	snprintf(rel, sizeof(rel), "relation %u", e->relid);
	if (e->rows > 0)
		snprintf(buf, size, "%s %d %s %s", e->what, e->rows, e->link, r ? r->qualname : rel);
	else
		snprintf(buf, size, "%s %s", e->what, r ? r->qualname : rel);
}

void
apply_add_unmatched(ApplyShared *sh, const char *table, int64_t n, uint64_t lsn)
{
	int			i;

	pthread_mutex_lock(&sh->unmatched_mu);
	for (i = 0; i < sh->unmatched_tables.n && strcmp(sh->unmatched_tables.items[i], table) != 0; i++)
		;
	if (i == sh->unmatched_tables.n)
	{
		strlist_add(&sh->unmatched_tables, table);
		sh->unmatched_counts = xrealloc(sh->unmatched_counts, sizeof(int64_t) * (size_t) sh->unmatched_tables.n);
		sh->unmatched_lsns = xrealloc(sh->unmatched_lsns, sizeof(uint64_t) * (size_t) sh->unmatched_tables.n);
		sh->unmatched_counts[i] = 0;
	}
	sh->unmatched_counts[i] += n;
	if (sh->unmatched_counts[i] == n || lsn > sh->unmatched_lsns[i])	/* new, or later */
		sh->unmatched_lsns[i] = lsn;
	pthread_mutex_unlock(&sh->unmatched_mu);
}

void
apply_take_unmatched(ApplyShared *sh, StrList *tables, int64_t **counts, uint64_t **lsns)
{
	pthread_mutex_lock(&sh->unmatched_mu);
	*tables = sh->unmatched_tables;
	*counts = sh->unmatched_counts;
	*lsns = sh->unmatched_lsns;
	memset(&sh->unmatched_tables, 0, sizeof(StrList));
	sh->unmatched_counts = NULL;
	sh->unmatched_lsns = NULL;
	pthread_mutex_unlock(&sh->unmatched_mu);
}

/*
 * An UPDATE or DELETE changed `missing` rows fewer than the source did:
 * the target lacks them (or holds them different). Counted per table for
 * status and metrics (ApplyShared); with stop_on_unmatched apply stops
 * here, before anything after this change is confirmed.
 */
static void
unmatched(Apply *a, const Sent *e, int64_t missing)
{
	const ApplyRel *r = rel_lookup(a, e->relid, false);
	const char *table = r ? r->qualname : "(unknown relation)";
	ApplyShared *sh = a->args->shared;
	int64_t		total = atomic_fetch_add(&sh->unmatched, missing) + missing;
	char		lsn[32];

	apply_add_unmatched(sh, table, missing, e->lsn);
	pg_lsn_format(e->lsn, lsn, sizeof(lsn));
	if (a->args->cfg->stop_on_unmatched)
	{
		log_error("the target has diverged: %s %s from the source transaction committed at %s matched %lld fewer rows on the target than on the source (a row is missing or different there); stopping (stop_on_unmatched). Fix: repair the table on the target (ferry verify shows the rows), then start again",
				  e->what, table, lsn, (long long) missing);
		pipe_fail(a, APPLY_FAILED);
	}
	else if ((total & (total - 1)) == 0)	/* the 1st, 2nd, 4th, 8th ... */
		log_warn("the target has diverged: %s %s from the source transaction committed at %s matched no row on the target (%lld such changes so far; ferry status lists them by table). Fix: repair the rows (ferry verify shows them); set stop_on_unmatched: true to stop apply on the first one",
				 e->what, table, lsn, (long long) total);
}

/* One result of the oldest entry in flight. */
static void
take_result(Apply *a, Sent *e, PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);

	if (st == PGRES_COMMAND_OK && e->expect > 0 && !a->pipe_failed)
	{
		long		changed = strtol(PQcmdTuples(res), NULL, 10);

		if (changed < e->expect)
			unmatched(a, e, e->expect - changed);
	}
	else if (st == PGRES_TUPLES_OK && e->kind == SENT_WAL && PQntuples(res) == 1)
		snprintf(a->last_value, sizeof(a->last_value), "%s", PQgetvalue(res, 0, 0));
	else if (st == PGRES_COMMAND_OK && e->kind == SENT_COMMIT && strcmp(PQcmdStatus(res), "COMMIT") != 0)
	{
		/* cannot happen: an error before it would have been read, and stopped everything */
		log_error("internal error: the target answered %s to a batch's COMMIT", PQcmdStatus(res));
		e->failed = true;
		pipe_fail(a, APPLY_FAILED);
	}
	else if (st == PGRES_FATAL_ERROR)
	{
		if (!a->pipe_failed)
		{
			char	   *err = pg_result_error_text(res, a->conn);
			const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			char		what[512];

			snprintf(a->last_sqlstate, sizeof(a->last_sqlstate), "%s", code ? code : "");
			describe_sent(a, e, what, sizeof(what));
			if (pg_interrupted())
				log_info("apply interrupted while %s", what);
			else
				log_error("could not apply to the target while %s: %s", what, err);
			free(err);
			a->fail_status = pg_interrupted() ? APPLY_STOPPED : pipe_failure_kind(a);
		}
		e->failed = true;
		pipe_fail(a, a->fail_status);
	}
	else if (st == PGRES_PIPELINE_ABORTED)
	{
		e->failed = true;
		pipe_fail(a, a->fail_status);
	}
}

/*
 * Wait up to a second for the target to answer, keeping the source's
 * connection alive meanwhile (a long statement or a lock wait on the target
 * must not let the source drop us for wal_sender_timeout). False if the
 * target connection broke, or was abandoned PG_STOP_GRACE_MS after a stop.
 */
static bool
wait_target(Apply *a)
{
	struct pollfd pfd = {PQsocket(a->conn), POLLIN, 0};
	int			rc;

	/* a stop's cancel may never be answered: give the target its grace, no more */
	if (pg_interrupted())
	{
		if (a->stop_wait_ms == 0)
			a->stop_wait_ms = pg_now_ms();
		else if (pg_now_ms() - a->stop_wait_ms > PG_STOP_GRACE_MS)
		{
			pg_abandon(a->conn, "ferry is stopping and the target did not answer in time; connection closed");
			return false;
		}
	}
	rc = poll(&pfd, 1, pg_interrupted() ? 100 : 1000);

	if (a->src.conn != NULL)
		(void) source_keepalive(&a->src, atomic_load(&a->args->shared->flushed_lsn), false, false);
	if (rc < 0 && errno != EINTR)
		return false;
	return rc <= 0 || PQconsumeInput(a->conn) == 1;
}

/*
 * Read the results that came back, in the order the statements were sent
 * (Apply.sent). With keep >= 0, wait until at most `keep` statements are
 * unanswered; the last thing sent must then be a sync or a flush request
 * (the server holds results back until one, or until its output buffer
 * fills). With keep < 0, take only what arrived and return.
 * A COMMIT that succeeded publishes its batch (batch_committed).
 *
 * False (logged once) if a statement failed or the connection broke. After
 * an error the server skips everything up to the next sync, so no later
 * statement or COMMIT ran; the caller gives up the session (abort_batch).
 * This is why a sync is only ever sent with a wait for nothing left right
 * after it (pipe_sync): a sync
 * would end the skipping, and a failed COMMIT must not let the next batch
 * run before ferry has seen the failure.
 */
bool
pipe_read(Apply *a, int keep)
{
	bool		wait = keep >= 0;

	if (!wait && a->nsent > 0 && PQconsumeInput(a->conn) != 1)
	{
		pipe_broken(a, "lost the connection to the target");
		return false;
	}
	while (a->nsent > (keep > 0 ? keep : 0))
	{
		Sent	   *e = &a->sent[a->sent_first];
		PGresult   *res;

		if (PQisBusy(a->conn))
		{
			if (!wait)
				break;
			if (!wait_target(a))
			{
				pipe_broken(a, "lost the connection to the target");
				break;
			}
			continue;
		}
		res = PQgetResult(a->conn);
		if (res == NULL)
		{
			if (PQstatus(a->conn) != CONNECTION_OK)
			{
				pipe_broken(a, "lost the connection to the target");
				break;
			}
			/* the end of one statement's results */
			if (e->kind == SENT_COMMIT && !e->failed)
				batch_committed(a, e);
			else if (e->kind == SENT_WAL && !e->failed && !note_positions(a, a->last_value))
				pipe_fail(a, a->fail_status);
			pipe_pop(a);
			continue;
		}
		if (PQresultStatus(res) == PGRES_PIPELINE_SYNC)
			pipe_pop(a);		/* no NULL follows a sync's result */
		else
			take_result(a, e, res);
		PQclear(res);
	}
	return !a->pipe_failed;
}

/*
 * Send a sync and read every result up to it. False (logged) if anything
 * failed; the target transaction is then aborted and must be rolled back
 * by the caller.
 */
bool
pipe_sync(Apply *a)
{
	if (PQpipelineSync(a->conn) != 1)
	{
		pipe_broken(a, "could not send to the target");
		return false;
	}
	(void) pipe_push(a, SENT_SYNC, "syncing", NULL);
	a->since_sync = 0;
	return pipe_read(a, 0);
}

/* Read every result in flight (a sync if anything was sent since the last). */
bool
pipe_drain(Apply *a)
{
	if (a->nsent == 0 && a->since_sync == 0)
		return !a->pipe_failed;
	return pipe_sync(a);
}

bool
pipe_send_simple(Apply *a, const char *sql, const char *what)
{
	if (PQsendQueryParams(a->conn, sql, 0, NULL, NULL, NULL, NULL, 0) != 1)
	{
		pipe_broken(a, "could not send to the target");
		return false;
	}
	pipe_note_sent(a, what, NULL);
	return true;
}

/* One of batch_statements[] (prepared by setup_session): its entry in sent, or NULL (failed). */
Sent *
pipe_send_named(Apply *a, const char *name, int n, const char *const *params, SentKind kind, const char *what)
{
	if (PQsendQueryPrepared(a->conn, name, n, params, NULL, NULL, 0) != 1)
	{
		pipe_broken(a, "could not send to the target");
		return NULL;
	}
	return pipe_push(a, kind, what, NULL);
}

/*
 * After each statement: once APPLY_SYNC_EVERY statements are unanswered (a
 * large transaction, or a slow target), wait until half of them are. This
 * bounds what is in flight and reports a failure early, without draining
 * the target: it keeps the other half to work on while apply goes back to
 * the source (a full sync here left the walsender and the target idle in
 * turn during a large transaction). No sync: see pipe_read.
 */
bool
pipe_maybe_sync(Apply *a)
{
	if (a->nsent < APPLY_SYNC_EVERY)
		return true;
	if (!pipe_read(a, -1))
		return false;
	if (a->nsent < APPLY_SYNC_EVERY)
		return true;
	if (PQsendFlushRequest(a->conn) != 1 || PQflush(a->conn) != 0)
	{
		pipe_broken(a, "could not send to the target");
		return false;
	}
	return pipe_read(a, APPLY_SYNC_EVERY / 2);
}

/* Outside the pipeline (it must be drained): run one query synchronously. */
PGresult *
pipe_query_now(Apply *a, const char *what, const char *sql, int n, const char *const *params)
{
	PGresult   *res;

	if (!pipe_drain(a))
		return NULL;
	if (PQexitPipelineMode(a->conn) != 1)
	{
		if (PQstatus(a->conn) != CONNECTION_OK)
		{
			log_error("lost the connection to the target: %s", PQerrorMessage(a->conn));
			a->fail_status = APPLY_FAILED_CONN;
			return NULL;
		}
		log_error("internal error: could not leave pipeline mode: %s", PQerrorMessage(a->conn));
		a->fail_status = APPLY_FAILED;
		return NULL;
	}
	res = pg_execute(a->conn, sql, n, params);
	if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		char	   *e = pg_result_error_text(res, a->conn);
		const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		snprintf(a->last_sqlstate, sizeof(a->last_sqlstate), "%s", code ? code : "");
		log_error("could not %s: %s", what, e);
		free(e);
		PQclear(res);
		res = NULL;
		a->fail_status = pipe_failure_kind(a);
	}
	if (PQenterPipelineMode(a->conn) != 1)
	{
		PQclear(res);
		/* a lost connection cannot enter pipeline mode: that is a reason to reconnect */
		a->fail_status = PQstatus(a->conn) != CONNECTION_OK ? APPLY_FAILED_CONN : APPLY_FAILED;
		return NULL;
	}
	return res;
}

