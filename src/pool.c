/*
 * pool.c: worker threads over an item list (see pool.h).
 */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "mem.h"
#include "pgsql.h"

typedef struct PoolShared
{
	const PoolSpec *spec;
	pthread_mutex_t lock;
	pthread_cond_t done_cond;
	int			next_item;
	int			running;		/* workers not yet finished */
	bool		failed;
} PoolShared;

typedef struct WorkerArg
{
	PoolShared *shared;
	int			id;
} WorkerArg;

static int
claim(PoolShared *sh)
{
	int			item = -1;

	pthread_mutex_lock(&sh->lock);
	if (!sh->failed && !pg_interrupted() && sh->next_item < sh->spec->nitems)
		item = sh->next_item++;
	pthread_mutex_unlock(&sh->lock);
	return item;
}

static void
fail(PoolShared *sh)
{
	pthread_mutex_lock(&sh->lock);
	sh->failed = true;
	pthread_mutex_unlock(&sh->lock);
}

static void *
worker_main(void *p)
{
	WorkerArg  *arg = p;
	PoolShared *sh = arg->shared;
	const PoolSpec *spec = sh->spec;
	void	   *wstate = NULL;
	char		role[32];
	int			item;

	snprintf(role, sizeof(role), "%s %d", spec->role, arg->id + 1);
	log_set_role(role);
	if (spec->init(spec->ctx, arg->id, &wstate))
	{
		while ((item = claim(sh)) >= 0)
			if (!spec->run(spec->ctx, wstate, item))
			{
				fail(sh);
				break;
			}
		if (spec->fini)
			spec->fini(spec->ctx, wstate);
	}
	else
		fail(sh);

	pthread_mutex_lock(&sh->lock);
	sh->running--;
	pthread_cond_signal(&sh->done_cond);
	pthread_mutex_unlock(&sh->lock);
	return NULL;
}

bool
pool_run(const PoolSpec *spec)
{
	PoolShared	sh;
	int			n = spec->nworkers;
	pthread_t  *threads;
	WorkerArg  *args;
	bool		ok;

	if (spec->nitems == 0)
		return true;
	if (n > spec->nitems)
		n = spec->nitems;
	memset(&sh, 0, sizeof(sh));
	sh.spec = spec;
	pthread_mutex_init(&sh.lock, NULL);
	pthread_cond_init(&sh.done_cond, NULL);
	threads = xcalloc((size_t) n, sizeof(pthread_t));
	args = xcalloc((size_t) n, sizeof(WorkerArg));
	sh.running = 0;

	for (int i = 0; i < n; i++)
	{
		args[i].shared = &sh;
		args[i].id = i;
		pthread_mutex_lock(&sh.lock);
		sh.running++;
		pthread_mutex_unlock(&sh.lock);
		if (pthread_create(&threads[i], NULL, worker_main, &args[i]) != 0)
		{
			log_error("could not start a worker thread: %s", strerror(errno));
			pthread_mutex_lock(&sh.lock);
			sh.running--;
			sh.failed = true;
			pthread_mutex_unlock(&sh.lock);
			n = i;
			break;
		}
	}

	pthread_mutex_lock(&sh.lock);
	while (sh.running > 0)
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&sh.done_cond, &sh.lock, &ts);
		if (sh.running > 0 && spec->tick)
		{
			pthread_mutex_unlock(&sh.lock);
			spec->tick(spec->ctx);
			pthread_mutex_lock(&sh.lock);
		}
	}
	pthread_mutex_unlock(&sh.lock);

	for (int i = 0; i < n; i++)
		pthread_join(threads[i], NULL);
	ok = !sh.failed && !pg_interrupted() && sh.next_item == spec->nitems;
	pthread_mutex_destroy(&sh.lock);
	pthread_cond_destroy(&sh.done_cond);
	free(threads);
	free(args);
	return ok;
}
