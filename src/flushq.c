/*
 * flushq.c: which applied source positions are durable on the target (see
 * flushq.h).
 */
#include "flushq.h"

#include <stdlib.h>
#include <string.h>

#include "mem.h"

void
flushq_committed(FlushQueue *q, uint64_t src)
{
	q->unmarked = src;
}

void
flushq_mark(FlushQueue *q, uint64_t tgt)
{
	if (q->unmarked == 0)
		return;					/* nothing committed since the last mark */
	if (q->len == q->cap)
	{
		q->cap = q->cap ? q->cap * 2 : 64;
		q->tgt = xrealloc(q->tgt, sizeof(uint64_t) * (size_t) q->cap);
		q->src = xrealloc(q->src, sizeof(uint64_t) * (size_t) q->cap);
	}
	q->tgt[q->len] = tgt;
	q->src[q->len] = q->unmarked;
	q->len++;
	q->unmarked = 0;
}

uint64_t
flushq_flushed(FlushQueue *q, uint64_t flush)
{
	int			k = 0;
	uint64_t	durable;

	while (k < q->len && q->tgt[k] <= flush)
		k++;
	if (k == 0)
		return 0;
	durable = q->src[k - 1];
	memmove(q->tgt, q->tgt + k, sizeof(uint64_t) * (size_t) (q->len - k));
	memmove(q->src, q->src + k, sizeof(uint64_t) * (size_t) (q->len - k));
	q->len -= k;
	return durable;
}

bool
flushq_unknown(const FlushQueue *q)
{
	return q->len > 0 || q->unmarked != 0;
}

void
flushq_release(FlushQueue *q)
{
	free(q->tgt);
	free(q->src);
	memset(q, 0, sizeof(*q));
}
