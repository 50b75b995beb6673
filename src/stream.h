/*
 * stream.h: the receiver thread: reads the source slot over the streaming
 * replication protocol and hands pgoutput messages to apply (queue.h).
 *
 * Protocol. START_REPLICATION SLOT s LOGICAL <lsn> (proto_version '1',
 * publication_names '...', messages 'true' on 14+) puts the connection in
 * COPY BOTH mode. The server sends CopyData frames: XLogData ('w': start,
 * end, time, one pgoutput message) and Primary Keepalive ('k': end, time,
 * reply-requested). We send Standby Status Updates ('r': write, flush,
 * apply, time, reply) at least every STREAM_FEEDBACK_MS and whenever a
 * keepalive asks for one (the server drops a receiver that stays silent
 * for wal_sender_timeout).
 *
 * Invariant: the flush position we confirm is never beyond what apply has
 * committed on the target (ApplyShared.applied_lsn), so the slot never
 * releases WAL for a change the target does not have. One exception, as in
 * PostgreSQL's own apply worker: when the queue is empty and apply holds
 * nothing uncommitted, everything received has been applied, so the
 * received position (from keepalives on a quiet source) is confirmed: this
 * keeps the slot from retaining WAL on an idle or unpublished-only source.
 */
#ifndef FERRY_STREAM_H
#define FERRY_STREAM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "apply.h"
#include "config.h"
#include "queue.h"

#define STREAM_FEEDBACK_MS 1000

typedef enum StreamStatus
{
	STREAM_RUNNING = 0,
	STREAM_STOPPED,				/* stop requested or apply ended */
	STREAM_FAILED_CONN,			/* connection lost or refused: retry */
	STREAM_FAILED,				/* the server refused the stream: stop */
} StreamStatus;

typedef struct StreamArgs
{
	const FerryConfig *cfg;
	Queue	   *queue;
	ApplyShared *shared;
	const char *slot;
	const char *publications;	/* comma-separated, quoted names */
	uint64_t	start_lsn;
	int			proto_version;
	bool		messages;		/* ask for logical messages (14+) */
	_Atomic uint64_t received_lsn;
	_Atomic uint64_t confirmed_lsn;
	_Atomic int status;
} StreamArgs;

void	   *stream_main(void *args);

#endif
