/*
 * stream.c: the receiver thread (see stream.h for the protocol and the
 * confirmation invariant).
 */
#include "stream.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mem.h"
#include "pgoutput.h"
#include "pgsql.h"

typedef struct Receiver
{
	StreamArgs *args;
	PGconn	   *conn;
	uint64_t	received;
	int64_t		last_feedback_us;
} Receiver;

static bool
send_feedback(Receiver *r, bool reply)
{
	char		buf[REPL_STATUS_SIZE];
	uint64_t	flush = atomic_load(&r->args->shared->flushed_lsn);
	uint64_t	applied = atomic_load(&r->args->shared->applied_lsn);
	uint64_t	confirmed = atomic_load(&r->args->confirmed_lsn);

	/* all received is applied, and all applied is durable: confirm it all */
	if (queue_drained(r->args->queue) && flush >= applied && r->received > flush)
		flush = r->received;
	if (flush < confirmed)
		flush = confirmed;		/* never move backwards */
	repl_build_status(buf, r->received > flush ? r->received : flush, flush, flush, repl_now_us(), reply);
	if (PQputCopyData(r->conn, buf, REPL_STATUS_SIZE) != 1 || PQflush(r->conn) != 0)
	{
		log_error("could not send feedback to the source: %s", PQerrorMessage(r->conn));
		return false;
	}
	atomic_store(&r->args->confirmed_lsn, flush);
	r->last_feedback_us = repl_now_us();
	return true;
}

static bool
should_stop(Receiver *r)
{
	return atomic_load(&r->args->shared->stop) ||
		atomic_load(&r->args->shared->status) != APPLY_RUNNING;
}

/* Push a message, answering the server while apply catches up. */
static bool
push(Receiver *r, const ReplFrame *f)
{
	for (;;)
	{
		/* rows and the messages before them: apply has nothing to do until the commit */
		bool		wake = f->len == 0 || f->data[0] == '\0' || strchr("BRYOIUDT", f->data[0]) == NULL;
		QueueResult q = queue_push(r->args->queue, f->wal_start, f->data, f->len, 500, wake);

		if (q == QUEUE_OK)
			return true;
		if (q == QUEUE_CLOSED || should_stop(r))
			return false;
		if (!send_feedback(r, false))
			return false;
		/* keep the socket drained of keepalives is not needed: the server
		 * only needs our status updates to keep the connection alive */
	}
}

/*
 * The server ended the stream. A shutdown, restart or lost connection is
 * worth retrying; a missing slot or publication, removed WAL or missing
 * privilege is not.
 */
static StreamStatus
stream_end_status(const PGresult *res)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	if (state == NULL)
		return STREAM_FAILED_CONN;
	if (strcmp(state, "42704") == 0 || strcmp(state, "58P01") == 0 || strcmp(state, "42501") == 0 ||
		strcmp(state, "0A000") == 0 || strcmp(state, "22023") == 0)
		return STREAM_FAILED;
	return STREAM_FAILED_CONN;
}

static StreamStatus
receive_loop(Receiver *r)
{
	char		err[256];

	for (;;)
	{
		char	   *buf = NULL;
		int			n;
		ReplFrame	f;

		if (should_stop(r))
		{
			send_feedback(r, false);
			return STREAM_STOPPED;
		}
		if (repl_now_us() - r->last_feedback_us >= STREAM_FEEDBACK_MS * 1000LL && !send_feedback(r, false))
			return STREAM_FAILED_CONN;

		n = PQgetCopyData(r->conn, &buf, 1);
		if (n == 0)
		{
			struct pollfd pfd = {PQsocket(r->conn), POLLIN, 0};
			int			rc = poll(&pfd, 1, 200);

			if (rc < 0 && errno != EINTR)
			{
				log_error("could not wait for the source: %s", strerror(errno));
				return STREAM_FAILED_CONN;
			}
			if (rc > 0 && PQconsumeInput(r->conn) != 1)
			{
				log_error("lost the replication connection to the source: %s", PQerrorMessage(r->conn));
				return STREAM_FAILED_CONN;
			}
			continue;
		}
		if (n == -1)
		{
			PGresult   *res = PQgetResult(r->conn);
			StreamStatus st = stream_end_status(res);
			char	   *e = pg_result_error_text(res, r->conn);

			log_msg(st == STREAM_FAILED ? LOG_ERROR : LOG_WARNING, "the source ended the change stream: %s",
					e[0] ? e : "server shut down or restarted");
			free(e);
			PQclear(res);
			return st;
		}
		if (n < 0)
		{
			log_error("lost the replication connection to the source: %s", PQerrorMessage(r->conn));
			return STREAM_FAILED_CONN;
		}
		if (!repl_parse_frame(buf, (size_t) n, &f, err, sizeof(err)))
		{
			log_error("could not parse a message from the source: %s", err);
			PQfreemem(buf);
			return STREAM_FAILED;
		}
		if (f.kind == REPL_KEEPALIVE)
		{
			if (f.wal_end > r->received)
				r->received = f.wal_end;
			PQfreemem(buf);
			if (f.reply_requested && !send_feedback(r, false))
				return STREAM_FAILED_CONN;
			continue;
		}
		if (!push(r, &f))
		{
			PQfreemem(buf);
			return should_stop(r) ? STREAM_STOPPED : STREAM_FAILED_CONN;
		}
		if (f.wal_end > r->received)
			r->received = f.wal_end;
		if (f.wal_start > r->received)
			r->received = f.wal_start;
		atomic_store(&r->args->received_lsn, r->received);
		PQfreemem(buf);
	}
}

void *
stream_main(void *p)
{
	StreamArgs *args = p;
	Receiver	r;
	char		lsn[32];
	char	   *qslot = pg_quote_ident(args->slot);
	char	   *pubs = pg_quote_literal(args->publications);
	char	   *sql;
	PGresult   *res;
	StreamStatus status;

	log_set_role("stream");
	memset(&r, 0, sizeof(r));
	r.args = args;
	r.received = args->start_lsn;
	pg_lsn_format(args->start_lsn, lsn, sizeof(lsn));
	sql = xasprintf("START_REPLICATION SLOT %s LOGICAL %s (proto_version '%d', publication_names %s%s)",
					qslot, lsn, args->proto_version, pubs, args->messages ? ", messages 'true'" : "");
	r.conn = pg_connect(args->cfg->source, "source", PG_CONN_REPLICATION, NULL);
	if (r.conn == NULL)
	{
		status = STREAM_FAILED_CONN;
		goto done;
	}
	res = PQexec(r.conn, sql);
	if (PQresultStatus(res) != PGRES_COPY_BOTH)
	{
		char	   *e = pg_result_error_text(res, r.conn);

		log_error("could not start streaming from slot %s: %s", args->slot, e);
		free(e);
		status = PQstatus(r.conn) == CONNECTION_OK ? stream_end_status(res) : STREAM_FAILED_CONN;
		PQclear(res);
		goto done;
	}
	PQclear(res);
	log_info("streaming changes from slot %s at %s", args->slot, lsn);
	status = receive_loop(&r);
	/*
	 * No CopyDone on the way out: after one, the walsender stops reading
	 * its socket and would hold the slot "active" until its next keepalive
	 * (wal_sender_timeout / 2). The final status update was sent; closing
	 * the connection (libpq's Terminate) ends the walsender at once.
	 */

done:
	free(sql);
	free(qslot);
	free(pubs);
	pg_finish(r.conn);
	atomic_store(&args->status, (int) status);
	/* apply must not wait for messages that will not come */
	queue_close(args->queue);
	return NULL;
}
