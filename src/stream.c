/*
 * stream.c: reading the source slot (see stream.h for the protocol, the
 * threading and the confirmation invariant).
 */
#include "stream.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mem.h"
#include "pgsql.h"

static bool
send_feedback(Source *s, uint64_t flushed, bool caught_up, bool reply)
{
	char		buf[REPL_STATUS_SIZE];
	uint64_t	flush = flushed;
	uint64_t	write;

	/* all received is applied, and all applied is durable: confirm it all */
	if (caught_up && s->received > flush)
		flush = s->received;
	if (flush < s->confirmed)
		flush = s->confirmed;	/* never move backwards */
	write = s->received > flush ? s->received : flush;
	repl_build_status(buf, write, flush, flush, repl_now_us(), reply);
	if (PQputCopyData(s->conn, buf, REPL_STATUS_SIZE) != 1 || PQflush(s->conn) != 0)
	{
		log_error("could not send feedback to the source: %s", PQerrorMessage(s->conn));
		s->status = STREAM_FAILED_CONN;
		return false;
	}
	if (flush != s->confirmed)
		log_debug("confirming %X/%X to the source", (unsigned) (flush >> 32), (unsigned) flush);
	s->confirmed = flush;
	s->reported_write = write;
	s->reply_owed = s->reply_requested = false;
	s->last_feedback_us = repl_now_us();
	return true;
}

bool
source_keepalive(Source *s, uint64_t flushed, bool caught_up, bool force)
{
	if (s->conn == NULL)
		return false;
	if (!force && repl_now_us() - s->last_feedback_us < STREAM_FEEDBACK_MS * 1000LL)
		return true;
	return send_feedback(s, flushed, caught_up, false);
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

static SourceResult
lost(Source *s)
{
	log_error("lost the replication connection to the source: %s", PQerrorMessage(s->conn));
	s->status = STREAM_FAILED_CONN;
	return SOURCE_END;
}

SourceResult
source_next(Source *s, ReplFrame *f, int wait_ms, int fd, uint64_t flushed, bool caught_up)
{
	int64_t		deadline = repl_now_us() + (int64_t) wait_ms * 1000;
	char		err[256];

	if (s->buf)
	{
		PQfreemem(s->buf);
		s->buf = NULL;
	}
	for (;;)
	{
		char	   *buf = NULL;
		int			n;

		if (!source_keepalive(s, flushed, caught_up, false))
			return SOURCE_END;
		n = PQgetCopyData(s->conn, &buf, 1);
		if (n == 0)
		{
			struct pollfd pfd[2] = {{PQsocket(s->conn), POLLIN, 0}, {fd, POLLIN, 0}};
			int64_t		left = deadline - repl_now_us();
			int			rc;

			if (wait_ms < 0)
				return SOURCE_TIMEOUT;	/* only what libpq already holds */
			/* about to wait: now answer the keepalive that came (see below) */
			if (s->reply_owed && !send_feedback(s, flushed, caught_up && s->reply_requested, false))
				return SOURCE_END;
			/*
			 * poll first, then read only a socket that has input: reading
			 * first to catch what arrived meanwhile cost a read that found
			 * nothing, most of the time, on top of the poll.
			 */
			rc = poll(pfd, fd >= 0 ? 2 : 1, left <= 0 ? 0 : (int) ((left + 999) / 1000));
			if (rc < 0 && errno != EINTR)
			{
				log_error("could not wait for the source: %s", strerror(errno));
				s->status = STREAM_FAILED_CONN;
				return SOURCE_END;
			}
			if (rc > 0 && pfd[0].revents != 0)
			{
				if (PQconsumeInput(s->conn) != 1)
					return lost(s);
				continue;
			}
			if (rc > 0 && fd >= 0 && pfd[1].revents != 0)
				return SOURCE_READABLE;
			if (left <= 0)
				return SOURCE_TIMEOUT;
			continue;
		}
		if (n == -1)
		{
			PGresult   *res = pg_get_result(s->conn);
			char	   *e = pg_result_error_text(res, s->conn);

			s->status = stream_end_status(res);
			log_msg(s->status == STREAM_FAILED ? LOG_ERROR : LOG_WARNING, "the source ended the change stream: %s",
					e[0] ? e : "server shut down or restarted");
			free(e);
			PQclear(res);
			return SOURCE_END;
		}
		if (n < 0)
			return lost(s);
		if (!repl_parse_frame(buf, (size_t) n, f, err, sizeof(err)))
		{
			log_error("could not parse a message from the source: %s", err);
			PQfreemem(buf);
			s->status = STREAM_FAILED;
			return SOURCE_END;
		}
		if (f->kind == REPL_KEEPALIVE)
		{
			bool		ahead = f->wal_end > s->reported_write;

			if (f->wal_end > s->received)
				s->received = f->wal_end;
			PQfreemem(buf);
			/*
			 * Answer when asked, and when the server is ahead of what we
			 * reported, as PostgreSQL's own apply worker does: a walsender
			 * that waits for WAL while the receiver's reported write position
			 * is behind what it sent pings again every time it wakes
			 * (WalSndWaitForWal), thousands of times a second under small
			 * transactions, each ping a wake-up of ferry. Such an answer only
			 * reports the write position: a caught-up receiver confirms the
			 * received position only in the periodic update, so the slot
			 * does not run ahead of the target's recorded position by a
			 * keepalive's worth at every turn (a keepalive's position can lie
			 * inside a transaction still running on the source). The answer
			 * goes out when we next wait for the source, not now: the
			 * keepalive usually follows a transaction's Commit, and that
			 * transaction should reach the target first (the send wakes the
			 * walsender, which on a busy machine may take the core from us).
			 */
			if (f->reply_requested || ahead)
			{
				s->reply_owed = true;
				s->reply_requested |= f->reply_requested;
			}
			continue;
		}
		if (f->wal_end > s->received)
			s->received = f->wal_end;
		if (f->wal_start > s->received)
			s->received = f->wal_start;
		s->buf = buf;
		return SOURCE_MESSAGE;
	}
}

bool
source_start(Source *s, const FerryConfig *cfg, const char *slot, const char *publications,
			 uint64_t start_lsn, int proto_version, bool messages)
{
	char		lsn[32];
	char	   *qslot = NULL;
	char	   *pubs = NULL;
	char	   *sql = NULL;
	PGresult   *res;
	bool		ok = false;

	memset(s, 0, sizeof(*s));
	s->received = s->reported_write = start_lsn;
	s->status = STREAM_RUNNING;
	s->last_feedback_us = repl_now_us();
	pg_lsn_format(start_lsn, lsn, sizeof(lsn));
	s->conn = pg_connect(cfg->source, "source", PG_CONN_REPLICATION, NULL);
	if (s->conn == NULL)
		s->status = STREAM_FAILED_CONN;
	else if ((qslot = pg_quote_ident(s->conn, slot)) == NULL ||
			 (pubs = pg_quote_literal(s->conn, publications)) == NULL)
		s->status = STREAM_FAILED_CONN;
	else
	{
		sql = xasprintf("START_REPLICATION SLOT %s LOGICAL %s (proto_version '%d', publication_names %s%s)",
						qslot, lsn, proto_version, pubs, messages ? ", messages 'true'" : "");
		res = pg_execute(s->conn, sql, 0, NULL);
		if (PQresultStatus(res) != PGRES_COPY_BOTH)
		{
			char	   *e = pg_result_error_text(res, s->conn);

			log_error("could not start streaming from slot %s: %s", slot, e);
			free(e);
			s->status = PQstatus(s->conn) == CONNECTION_OK ? stream_end_status(res) : STREAM_FAILED_CONN;
		}
		else
		{
			log_info("streaming changes from slot %s at %s", slot, lsn);
			ok = true;
		}
		PQclear(res);
	}
	free(sql);
	free(qslot);
	free(pubs);
	return ok;
}

void
source_finish(Source *s)
{
	if (s->buf)
		PQfreemem(s->buf);
	s->buf = NULL;
	/*
	 * No CopyDone on the way out: after one, the walsender stops reading
	 * its socket and would hold the slot "active" until its next keepalive
	 * (wal_sender_timeout / 2). The caller sent the final status update;
	 * closing the connection (libpq's Terminate) ends the walsender at once.
	 */
	pg_finish(s->conn);
	s->conn = NULL;
}
