/*
 * queue.h: the bounded hand-off between the stream (receiver) thread and the
 * apply thread.
 *
 * Items are copies of pgoutput messages with the WAL position they came at.
 * The queue holds at most `max_bytes` of payload: a producer that would
 * exceed it waits (so a huge source transaction flows through ferry in
 * bounded memory, and the walsender is slowed by TCP back-pressure), but it
 * waits in slices so that the receiver can keep answering the server
 * (queue_push returns QUEUE_TIMEOUT and the caller sends a status update
 * before trying again). One producer, one consumer.
 *
 * The queue also carries the apply thread's "idle" flag under the same
 * lock: idle means the consumer found the queue empty with nothing
 * uncommitted, so everything received so far is applied. The receiver uses
 * that to confirm keepalive positions on a quiet source (see stream.c).
 */
#ifndef FERRY_QUEUE_H
#define FERRY_QUEUE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct QueueItem
{
	struct QueueItem *next;
	uint64_t	lsn;			/* XLogData wal_start */
	size_t		len;
	char		data[];			/* the pgoutput message */
} QueueItem;

typedef struct Queue
{
	pthread_mutex_t lock;
	pthread_cond_t not_empty;
	pthread_cond_t not_full;
	QueueItem  *head,
			   *tail;
	size_t		bytes;
	size_t		max_bytes;
	size_t		count;
	bool		closed;			/* producer is done (or failed) */
	bool		consumer_idle;
} Queue;

typedef enum QueueResult
{
	QUEUE_OK,
	QUEUE_TIMEOUT,				/* waited wait_ms without room / without an item */
	QUEUE_CLOSED,
} QueueResult;

void		queue_init(Queue *q, size_t max_bytes);
void		queue_release(Queue *q);	/* frees items left */
/*
 * Copy `len` bytes in. Waits up to wait_ms for room. A waiting consumer is
 * woken only if `wake`, or once QUEUE_WAKE_ITEMS items or an eighth of the
 * budget are queued: the receiver wakes apply at the end of a transaction,
 * not for each of its rows (apply cannot commit before the end, and every
 * wake-up is a context switch on a machine the source's load keeps busy).
 */
#define QUEUE_WAKE_ITEMS 128
QueueResult queue_push(Queue *q, uint64_t lsn, const char *data, size_t len, int wait_ms, bool wake);
/* Take the next item (caller frees it). Waits up to wait_ms. */
QueueResult queue_pop(Queue *q, QueueItem **item, int wait_ms);
/* No more items will come; wakes the consumer. */
void		queue_close(Queue *q);
/* Consumer: declare whether it has nothing uncommitted (see above). */
void		queue_set_idle(Queue *q, bool idle);
/* Producer: true if empty and the consumer is idle (all applied). */
bool		queue_drained(Queue *q);
size_t		queue_length(Queue *q);

#endif
