/*
 * stream.h: the source side of following: reads the source slot over the
 * streaming replication protocol, for the apply thread (apply.h), which
 * calls source_next() for each message and applies it at once.
 *
 * Protocol. START_REPLICATION SLOT s LOGICAL <lsn> (proto_version '1',
 * publication_names '...', messages 'true' on 14+) puts the connection in
 * COPY BOTH mode. The server sends CopyData frames: XLogData ('w': start,
 * end, time, one pgoutput message) and Primary Keepalive ('k': end, time,
 * reply-requested). We send Standby Status Updates ('r': write, flush,
 * apply, time, reply) at least every STREAM_FEEDBACK_MS, whenever a
 * keepalive asks for one (the server drops a receiver that stays silent
 * for wal_sender_timeout), and when a keepalive shows the server sent more
 * than we last reported (see source_next). A keepalive is answered when
 * apply next waits for the source, not when it is read: the one that
 * follows a transaction must not delay that transaction's trip to the
 * target.
 *
 * One thread. Receiving and applying run in the same thread: a separate
 * receiver thread handing each transaction over through a queue cost a
 * thread wake-up per source transaction, which under a stream of small
 * transactions on a busy machine was a third of ferry's CPU and a good part
 * of its lag. While apply waits for the target (a sync, a large batch),
 * it keeps the source connection alive with source_keepalive().
 *
 * Invariant: the flush position we confirm is never beyond what the target
 * has durably committed (the caller's `flushed`), so the slot never
 * releases WAL for a change the target does not have. One exception, as in
 * PostgreSQL's own apply worker: when the caller says it is caught up
 * (everything it received is committed and flushed, nothing is open),
 * the received position (from keepalives on a quiet source) is confirmed:
 * this keeps the slot from retaining WAL on an idle or unpublished-only
 * source.
 */
#ifndef FERRY_STREAM_H
#define FERRY_STREAM_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "pgoutput.h"

#define STREAM_FEEDBACK_MS 1000

typedef enum StreamStatus
{
	STREAM_RUNNING = 0,
	STREAM_FAILED_CONN,			/* connection lost or refused: retry */
	STREAM_FAILED,				/* the server refused the stream: stop */
} StreamStatus;

typedef struct Source
{
	PGconn	   *conn;
	uint64_t	received;		/* end of the last message or keepalive */
	uint64_t	reported_write; /* write position of the last status update */
	uint64_t	confirmed;		/* flush position of the last status update */
	int64_t		last_feedback_us;
	bool		reply_owed;		/* a keepalive to answer before the next wait */
	bool		reply_requested;	/* ... that asked for a reply */
	char	   *buf;			/* libpq's buffer of the last message returned */
	StreamStatus status;		/* why source_next returned SOURCE_END */
} Source;

typedef enum SourceResult
{
	SOURCE_MESSAGE,				/* *f holds the next XLogData (valid until the next call) */
	SOURCE_TIMEOUT,				/* nothing came within wait_ms */
	SOURCE_READABLE,			/* the caller's descriptor has input */
	SOURCE_END,					/* the stream ended or failed: see status */
} SourceResult;

/*
 * Connect and START_REPLICATION at start_lsn. False (logged) with
 * s->status set on failure; source_finish() is needed either way.
 */
bool		source_start(Source *s, const FerryConfig *cfg, const char *slot, const char *publications,
						 uint64_t start_lsn, int proto_version, bool messages);

/*
 * The next XLogData message, waiting up to wait_ms (0: only what already
 * arrived on the socket; -1: only what libpq already read, no system call);
 * with fd >= 0, also returns SOURCE_READABLE once fd has input.
 * Keepalives are handled inside. `flushed` and `caught_up` say what may be
 * confirmed (see the invariant above).
 */
SourceResult source_next(Source *s, ReplFrame *f, int wait_ms, int fd, uint64_t flushed, bool caught_up);

/* Send a status update if one is due (or now, with force). False if sending failed. */
bool		source_keepalive(Source *s, uint64_t flushed, bool caught_up, bool force);

/* Close the connection (no CopyDone: see stream.c). */
void		source_finish(Source *s);

#endif
