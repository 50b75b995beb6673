/*
 * switchover.h: `ferry switchover` and `ferry rollback`, the cut-over.
 *
 * Design.
 *
 * The switchover is a sequence of steps, each either completes or hands
 * over to one abort path that puts everything back (source writable,
 * replication running, reverse objects dropped, phase following):
 *
 *   1 preconditions  migration following, forward slot healthy, no prepared
 *                    transactions on the source, the freeze permitted, the
 *                    target able to hold the reverse slot; replication within
 *                    --max-lag (a probe message emitted on the source must be
 *                    applied within that many seconds; retried until
 *                    --timeout while the follower catches up)
 *   2 pre_freeze     the user's hook
 *   3 freeze         the Freeze record is saved in ferry.migration
 *                    (source_freeze) and phase set to switching, then the
 *                    source is frozen (freeze.h). The window starts here.
 *   4 drain          a sentinel message on the source; wait until the
 *                    target's applied position passes it: every change the
 *                    application made is now on the target
 *   5 files          final rsync of the files: entries
 *   6 insert-only    tables without a key (published for inserts only) are
 *                    re-copied in full, each in one target transaction
 *   7 sequences      every target sequence := source value + gap
 *   8 verify         (--verify) every row compared while frozen
 *   9 reverse        publications and a slot NAME_reverse on the target,
 *                    ferry state NAME_reverse on the source starting at the
 *                    slot's position (unless --no-reverse)
 *                    Then a second sentinel, drained, and the fence
 *                    checked after it (below).
 *  10 switch         ferry.migration.switch_hook_at is set (the intent),
 *                    then the user's switch hook; the target takes writes
 *                    from here: the window ends. The source is handed over
 *                    (its sessions ended, the fence let go). Phase switched.
 *
 * Forward only once the intent is recorded. Before it, a crash is undone by
 * the rerun (or by rollback): source unfrozen, reverse objects dropped,
 * nothing was switched. From it on, the hook may have run, even half way,
 * and the application may write on the target: undoing would lose those
 * writes (and unfreeze the source under an application writing elsewhere).
 * So a rerun of `switchover` that finds the intent finishes forward
 * (resume_switch): the fence is taken again (the crash took it), what the
 * source took meanwhile is drained, the switch hook runs again (hooks must
 * be idempotent), the source is handed over, phase switched. A `rollback`
 * that finds it does the same without the hook, then rolls back as after
 * any switchover. The only way back from the intent is a hook that failed
 * with ferry alive to see it (exit status, timeout, SIGINT): the abort
 * clears the intent first, then puts everything back.
 *
 * The fence's life (freeze.h). It is one session; if it dies (terminated,
 * connection dropped) its locks go with it. A round trip on it after the
 * second sentinel, and again at the hand-over after the source's sessions
 * are ended, proves it held without a break (same session, same
 * transaction): nothing committed on the source that the target does not
 * have. Found dead before the hook: taken again, drained again, keyless
 * tables and sequences synced again. Found dead at the hand-over (it died
 * during the hook): taken again and drained (not re-copied: the target
 * takes writes now) before phase switched is recorded. Rollback checks the
 * target's fence the same way before it unfreezes the source.
 *
 * Followers. Whoever holds the migration's advisory lock applies changes
 * (state.h). If no `ferry start` runs, the switchover runs the follower in
 * a thread of its own; either way it only watches ferry.apply_progress.
 * A running `ferry start` sees phase switched within a second, stops the
 * forward stream and follows in reverse (follow.h); the switchover then
 * keeps the forward slot on the old source as the watch for writes that
 * still reach it (watch.h; dropped with --no-reverse, by rollback and by
 * cleanup).
 *
 * Rollback mirrors it: freeze the target, drain the reverse stream into
 * the source (sentinel on the target, position in the source's
 * ferry.apply_progress), re-copy insert-only tables back, sequences on the
 * source := target value + gap, unfreeze the source (its saved Freeze
 * record), the rollback hook; phase rolled_back. The target stays
 * read-only: writes there would be lost.
 *
 * The arc is repeatable. Just before it unfreezes the source (both sides
 * frozen, the reverse stream drained, the watch read one last time: equal),
 * the rollback keeps the watch slot as the forward slot (it is one, and
 * what it was advanced past is on the target: no gap for a write to fall
 * into, as a new slot's creation would leave), its position in
 * ferry.migration.rearm_lsn, and publishes the keyless tables' inserts
 * again; not when the old source took writes after the switchover
 * (ferry.source_writes: the sides are not equal);
 * `ferry start` then follows again from there (switchover_follow_again:
 * phase following, applied position the slot's, the target's freeze
 * undone), so a later switchover can try again without a new target. The
 * forward apply skips transactions of the reverse apply (its origin or
 * mark), so nothing it wrote on the source comes back. The slot retains
 * the source's WAL until then: `ferry status` says so, `ferry cleanup`
 * drops it. Rollback of a switchover
 * interrupted before its intent (phase switching, no switch_hook_at) only
 * unfreezes the source and drops the reverse objects.
 */
#ifndef FERRY_SWITCHOVER_H
#define FERRY_SWITCHOVER_H

#include <stdbool.h>

#include "config.h"
#include "pooler.h"

#define SWITCHOVER_SENTINEL_PREFIX "ferry_sentinel"

typedef struct SwitchReport
{
	double		window_seconds;	/* freeze to writable on the other side */
	double		drain_seconds;
	double		total_seconds;
	int			sequences;
	int			recopied_tables;
	long long	recopied_rows;
	bool		reverse;
	bool		aborted;		/* failed and put back */
	PoolerStats pool;			/* the PgBouncers' hold (poolers = 0 without) */
} SwitchReport;

/* Called for --verify while frozen: true when every table is identical. */
typedef bool (*SwitchVerifyFn) (FerryConfig *cfg);

/* True when switched; false (logged) when it failed and was put back. */
bool		switchover_run(FerryConfig *cfg, SwitchVerifyFn verify, SwitchReport *rep);
/* True when rolled back (or an interrupted switchover undone). */
bool		rollback_run(FerryConfig *cfg, SwitchReport *rep);

/*
 * `ferry start` after a rollback that kept a slot (above): make the
 * migration follow again. 1: it does now; 0: nothing to do (not rolled
 * back, or no slot kept: logged when rolled back); -1: failed (logged).
 */
int			switchover_follow_again(FerryConfig *cfg);

#endif
