/*
 * queue.c: the bounded receiver-to-apply queue (see queue.h).
 */
#include "queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mem.h"

void
queue_init(Queue *q, size_t max_bytes)
{
	memset(q, 0, sizeof(*q));
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->not_empty, NULL);
	pthread_cond_init(&q->not_full, NULL);
	q->max_bytes = max_bytes;
}

void
queue_release(Queue *q)
{
	QueueItem  *it = q->head;

	while (it)
	{
		QueueItem  *next = it->next;

		free(it);
		it = next;
	}
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->not_empty);
	pthread_cond_destroy(&q->not_full);
	memset(q, 0, sizeof(*q));
}

static void
deadline_in(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long) (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L)
	{
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

QueueResult
queue_push(Queue *q, uint64_t lsn, const char *data, size_t len, int wait_ms, bool wake)
{
	QueueItem  *it;
	struct timespec ts;

	deadline_in(&ts, wait_ms);
	pthread_mutex_lock(&q->lock);
	/* an item larger than the whole budget still goes in, alone */
	while (!q->closed && q->count > 0 && q->bytes + len > q->max_bytes)
	{
		if (pthread_cond_timedwait(&q->not_full, &q->lock, &ts) == ETIMEDOUT)
		{
			pthread_mutex_unlock(&q->lock);
			return QUEUE_TIMEOUT;
		}
	}
	if (q->closed)
	{
		pthread_mutex_unlock(&q->lock);
		return QUEUE_CLOSED;
	}
	it = xmalloc(sizeof(QueueItem) + len);
	it->next = NULL;
	it->lsn = lsn;
	it->len = len;
	memcpy(it->data, data, len);
	if (q->tail)
		q->tail->next = it;
	else
		q->head = it;
	q->tail = it;
	q->bytes += len;
	q->count++;
	q->consumer_idle = false;
	if (wake || q->count >= QUEUE_WAKE_ITEMS || q->bytes >= q->max_bytes / 8)
		pthread_cond_signal(&q->not_empty);
	pthread_mutex_unlock(&q->lock);
	return QUEUE_OK;
}

QueueResult
queue_pop(Queue *q, QueueItem **item, int wait_ms)
{
	struct timespec ts;
	QueueItem  *it;

	deadline_in(&ts, wait_ms);
	pthread_mutex_lock(&q->lock);
	while (q->head == NULL)
	{
		if (q->closed)
		{
			pthread_mutex_unlock(&q->lock);
			return QUEUE_CLOSED;
		}
		if (pthread_cond_timedwait(&q->not_empty, &q->lock, &ts) == ETIMEDOUT)
		{
			pthread_mutex_unlock(&q->lock);
			return QUEUE_TIMEOUT;
		}
	}
	it = q->head;
	q->head = it->next;
	if (q->head == NULL)
		q->tail = NULL;
	q->bytes -= it->len;
	q->count--;
	pthread_cond_signal(&q->not_full);
	pthread_mutex_unlock(&q->lock);
	*item = it;
	return QUEUE_OK;
}

void
queue_close(Queue *q)
{
	pthread_mutex_lock(&q->lock);
	q->closed = true;
	pthread_cond_broadcast(&q->not_empty);
	pthread_cond_broadcast(&q->not_full);
	pthread_mutex_unlock(&q->lock);
}

void
queue_set_idle(Queue *q, bool idle)
{
	pthread_mutex_lock(&q->lock);
	q->consumer_idle = idle && q->head == NULL;
	pthread_mutex_unlock(&q->lock);
}

bool
queue_drained(Queue *q)
{
	bool		d;

	pthread_mutex_lock(&q->lock);
	d = q->head == NULL && q->consumer_idle;
	pthread_mutex_unlock(&q->lock);
	return d;
}

size_t
queue_length(Queue *q)
{
	size_t		n;

	pthread_mutex_lock(&q->lock);
	n = q->count;
	pthread_mutex_unlock(&q->lock);
	return n;
}
