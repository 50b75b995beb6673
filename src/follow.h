/*
 * follow.h: `ferry start`: clone if needed, then stream every change from the
 * slot to the target until stopped, surviving restarts of either server.
 *
 * Threads: this coordinator, one stream thread (stream.h) and one apply
 * thread (apply.h) joined by a bounded queue (queue.h). The coordinator
 * emits heartbeats on the source, records the apply rate for `status`,
 * watches for SIGINT/SIGTERM, and restarts both threads after a failure:
 * lost connections with exponential backoff (1 s doubling to 30 s), a
 * source/target schema difference every 10 s until it is fixed; any other
 * failure ends `start` with exit status 1. A stop request lets apply commit
 * what is complete (a transaction in flight is rolled back, to be streamed
 * again next time) and reports the position.
 */
#ifndef FERRY_FOLLOW_H
#define FERRY_FOLLOW_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

#define FOLLOW_HEARTBEAT_MS 1000
#define FOLLOW_HEARTBEAT_PREFIX "ferry_heartbeat"

typedef struct FollowResult
{
	bool		stopped_by_signal;
	uint64_t	applied_lsn;
	int64_t		changes;
	int64_t		txns;
} FollowResult;

bool		follow_run(FerryConfig *cfg, FollowResult *out);

#endif
