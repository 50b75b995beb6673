/*
 * flushq.h: which applied source positions are durable on the target.
 *
 * Apply commits its target transactions asynchronously (synchronous_commit
 * off), so a COMMIT that succeeded is not yet on the target's disk, and the
 * source may only be told (confirmed) what is. The target says where its
 * WAL ends (pg_current_wal_insert_lsn, read after some commits: beyond
 * their commit records) and how far it is flushed
 * (pg_current_wal_flush_lsn). The queue pairs them up:
 *
 *   flushq_committed(q, src)   a batch ending at source position src committed
 *   flushq_mark(q, tgt)        the target's WAL ends at tgt: every batch
 *                              committed since the last mark lies before it
 *   flushq_flushed(q, flush)   the target's WAL is flushed up to flush: the
 *                              source position of the last batch whose mark
 *                              it passed (now durable), or 0 if none is new
 *
 * A batch committed but not yet marked, or marked but not yet passed, is
 * "unknown" (flushq_unknown): nothing received after the last durable
 * position may be confirmed while one exists. Positions only grow; marks
 * and flushes arrive in the order they were read. Pure code (unit-tested).
 */
#ifndef FERRY_FLUSHQ_H
#define FERRY_FLUSHQ_H

#include <stdbool.h>
#include <stdint.h>

typedef struct FlushQueue
{
	uint64_t   *tgt;			/* per mark: the target's WAL end */
	uint64_t   *src;			/* ... and the last source position committed before it */
	int			len;
	int			cap;
	uint64_t	unmarked;		/* committed since the last mark: the last one's source position, or 0 */
} FlushQueue;

void		flushq_committed(FlushQueue *q, uint64_t src);
void		flushq_mark(FlushQueue *q, uint64_t tgt);
uint64_t	flushq_flushed(FlushQueue *q, uint64_t flush);
bool		flushq_unknown(const FlushQueue *q);
void		flushq_release(FlushQueue *q);

#endif
