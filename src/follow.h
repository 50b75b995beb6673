/*
 * follow.h: `ferry start`: clone if needed, then stream every change from the
 * slot to the target until stopped, surviving restarts of either server.
 *
 * Threads: this coordinator and one apply thread (apply.h), which reads the
 * source's change stream itself (stream.h) and applies each message as it
 * comes. The coordinator emits heartbeats on the source, records the apply
 * rate for `status`, watches for SIGINT/SIGTERM, and restarts the apply
 * thread after a failure:
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
	bool		stopped_by_request;	/* follow_request_stop() */
	bool		switched;		/* forward: a switchover completed, the migration moved on */
	bool		finished;		/* reverse: rolled back or cleaned up */
	uint64_t	applied_lsn;
	int64_t		changes;
	int64_t		txns;
} FollowResult;

/*
 * Follow until stopped. Forward (reverse false): clone if needed, then apply
 * source changes to the target until a signal, follow_request_stop(), or a
 * switchover moves the migration to phase switched (out->switched).
 * Reverse (cfg from config_reversed()): apply the new primary's changes to
 * the old one, skipping transactions the forward apply wrote (their
 * replication origin is the forward name), until stopped or the reverse
 * migration leaves phase following (out->finished).
 * Holds the migration's advisory lock (state_lock) while it runs.
 */
bool		follow_run(FerryConfig *cfg, bool reverse, FollowResult *out);

/* Ask a follow_run() in another thread of this process to stop cleanly. */
void		follow_request_stop(void);
void		follow_reset_stop(void);

#endif
