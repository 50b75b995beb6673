/*
 * pool.h: a fixed set of worker threads working through a list of items.
 *
 * Items are numbered 0..nitems-1 and claimed in that order (so callers sort
 * them by priority, largest table first). Each worker owns the state its
 * init callback returns (typically its own database connections: libpq
 * connections are never shared between threads). The first failing item
 * stops the others from claiming more; items in flight finish or fail on
 * their own (a signal cancels their queries, see pgsql.h). The calling
 * thread waits, calling `tick` about once a second for progress output.
 */
#ifndef FERRY_POOL_H
#define FERRY_POOL_H

#include <stdbool.h>

typedef struct PoolSpec
{
	int			nworkers;
	int			nitems;
	const char *role;			/* log role prefix: "copy worker" -> "copy worker 1" */
	void	   *ctx;			/* shared, read-only or atomically updated */
	/* set up one worker; *wstate receives its private state. false = failure */
	bool		(*init) (void *ctx, int worker, void **wstate);
	/* process item i. false = failure (already logged) */
	bool		(*run) (void *ctx, void *wstate, int item);
	/* tear down a worker (always called if init succeeded) */
	void		(*fini) (void *ctx, void *wstate);
	/* progress callback in the waiting thread, may be NULL */
	void		(*tick) (void *ctx);
} PoolSpec;

/* Run the pool to completion. True when every item succeeded. */
bool		pool_run(const PoolSpec *spec);

#endif
