/*
 * pooler.h: PgBouncers in front of the database, held across the switch,
 * so that the application sees a pause instead of errors.
 *
 * Design.
 *
 * PgBouncer's admin console (a pseudo-database "pgbouncer" that takes
 * simple-protocol commands only, never SQL) gives ferry three tools
 * (PgBouncer 1.18 semantics, read from its admin.c and janitor.c):
 *
 *   PAUSE db   from now on the entry's clients do not get a server
 *              connection: a client that sends a query waits in the
 *              queue (state "waiting" in SHOW CLIENTS); every server
 *              connection is closed once released by its client (in
 *              transaction pooling when its transaction ends, in session
 *              pooling when the client disconnects). The command
 *              returns when the last one is closed. Until then running
 *              transactions go on (they finish on the old primary and
 *              are replicated like any). A pending PAUSE is undone by
 *              RESUME from another admin session; the pause outlives
 *              the admin session that asked for it (only SUSPEND is
 *              undone by its session's end).
 *   RELOAD     re-reads the ini file; an entry whose host, port or
 *              dbname changed gets its server connections renewed (none
 *              exist while paused).
 *   RESUME db  the queue is served, by new server connections to where
 *              the entry points now. "database db is not paused" is an
 *              error PgBouncer returns; ferry takes it as done.
 *
 * The hold, at switchover (rollback mirrors it, source and target
 * swapped):
 *   1 prepare  before anything is frozen: every admin console reachable,
 *              the entry exists, the way to repoint it works (ini file
 *              readable, holding the entry, its directory writable; or a
 *              repoint command), query_wait_timeout long enough.
 *   2 pause    PAUSE on every pooler at once, one deadline
 *              (--pause-timeout). On timeout the sessions that still hold
 *              a server connection are named (SHOW SERVERS, SHOW CLIENTS,
 *              the server's pg_stat_activity for their pids) and every
 *              pooler is resumed: nothing was frozen, nothing changed.
 *   3 ...      the source's own freeze (clients that bypass the poolers
 *              must not write either; the poolers have no session left
 *              there for it to end, and none for the fence to wait for),
 *              drain, keyless tables, sequences, reverse replication.
 *              pooler_watch() samples the queues between the steps.
 *   4 repoint  each entry gets the target's host, port and dbname
 *              (--pgbouncer-target, or the target as ferry reaches it),
 *              its other settings kept: ferry rewrites the entry in the
 *              ini file (written to a temporary file, fsynced, renamed)
 *              or runs the entry's repoint command; then RELOAD, and
 *              SHOW DATABASES must show the new host, port and dbname.
 *   5 resume   after the switch hook: RESUME everywhere; the queue goes
 *              on to the new primary.
 *
 * Invariant: no pooler is resumed while any entry points at the wrong
 * side. Forward, RESUME comes after every entry is repointed and checked.
 * Backward (any failure before the switch): each entry that was repointed
 * is pointed back and checked first; one that cannot be is left PAUSED
 * (its clients wait, then fail with PgBouncer's query_wait_timeout),
 * never released onto the old side's twin, where its writes would be
 * lost. While nothing is resumed, a repoint is undoable: no client has
 * reached the other side through a pooler.
 *
 * A restarted PgBouncer keeps no PAUSE: one restarted after its entry was
 * repointed serves the target at once, so the repoint is no longer
 * undoable. Before the switchover's abort points anything back it asks
 * each pooler it paused (pooler_unpaused_at); one that shows its entry
 * unpaused at the target turns the abort into a stop that only goes
 * forward (the target is not frozen, so what its clients wrote is on no
 * other side). The rollback needs no such check: the side it repoints to
 * stays frozen until the rollback is past undoing.
 *
 * Crash safety: switchover.c records the hold in ferry.migration
 * (pooler_hold, pooler_hold_to_json) before the first PAUSE, and again
 * before the first repoint; a rerun (switchover or rollback) reads it to
 * point the entries back and RESUME, or to finish forward. A PAUSE outlives
 * ferry: a ferry killed while holding leaves the poolers paused until that
 * rerun (or RESUME by hand; ferry status says so).
 *
 * What ferry can know of failed requests (PgBouncer counts none): a
 * client seen waiting in a sample that is gone by the next one was
 * disconnected unanswered, by PgBouncer's query_wait_timeout; one that
 * came and went between two samples is not seen. A client that gives up by
 * itself is not seen either: PgBouncer (1.18) does not read a queued
 * client's socket, so it stays "waiting" until the RESUME and is dropped
 * then, its request never run; a cancel request for a queued one is
 * dropped ("cancel request for idle client") and its request runs after
 * the RESUME. So the count is a lower bound: what PgBouncer failed. After
 * the RESUME the queue must drain within POOLER_DRAIN_MS, or ferry warns
 * that the pooler may not reach the new primary.
 *
 * PgBouncer with min_pool_size (1.18, and 1.25 still): while an entry is
 * paused its maintenance keeps opening server connections to satisfy
 * min_pool_size and the pause closes them half way, which PgBouncer takes
 * for a failed login: after RESUME it waits server_login_retry (15 s by
 * default) before it connects again, and the queue waits with it. For
 * such a pooler ferry sets server_login_retry to 0 just before RESUME and
 * back to its value once the queue is served. Not only min_pool_size: a
 * client that connects after the repoint's RELOAD (PgBouncer then fetches
 * the new server's parameters with a login of its own) meets the same cut
 * login and waited 15 s after the RESUME (test 233), so ferry does it for
 * every pooler (a ferry killed in between
 * leaves 0 until the next RELOAD or restart: retries without a pause).
 *
 * Ownership: the fleet borrows the config's PgBouncerConf entries and
 * owns its admin sessions (one per pooler), opened by pooler_prepare() and
 * reopened by any step that finds one dead.
 */
#ifndef FERRY_POOLER_H
#define FERRY_POOLER_H

#include <stdbool.h>
#include <stdint.h>
#include <libpq-fe.h>

#include "config.h"
#include "mem.h"
#include "pgbouncer_conf.h"

/* How long, after RESUME, the queue may take to drain before ferry warns. */
#define POOLER_DRAIN_MS 3000

/* Which server the entries point at. */
typedef enum PoolerSide
{
	POOLER_SOURCE,
	POOLER_TARGET
} PoolerSide;

typedef struct Pooler
{
	const PgBouncerConf *conf;	/* borrowed from the config */
	char	   *database;		/* the entry, owned */
	char	   *label;			/* "PgBouncer HOST:PORT" for messages, owned */
	PGconn	   *conn;			/* its admin session, or NULL */
	char	   *pool_mode;		/* the entry's, as SHOW shows it; owned */
	char	   *login_retry;	/* its server_login_retry when min_pool_size > 0 (see above), or NULL; owned */
	bool		paused;			/* PAUSE was sent by this process and no RESUME since */
	int64_t		paused_at_ms;	/* pg_now_ms() of the PAUSE */
	int64_t		pause_done_ms;
	int64_t		resumed_at_ms;
	StrList		waiting;		/* clients seen waiting at the last sample (keys) */
	int			failed;			/* clients that left the queue unanswered */
	int			held;			/* waiting at the last sample */
	double		longest_wait;	/* seconds, the longest a waiting client had waited */
} Pooler;

typedef struct PoolerFleet
{
	Pooler	   *items;
	int			n;
	const FerryConfig *cfg;		/* borrowed */
	PgbPairs	at[2];			/* the entries' host/port/dbname for each side (PoolerSide) */
	bool		prepared;
} PoolerFleet;

/* What the application saw, for the switchover report. */
typedef struct PoolerStats
{
	int			poolers;		/* held */
	double		held_seconds;	/* the longest PAUSE .. RESUME */
	double		longest_wait;	/* the longest a queued client waited (PgBouncer's count) */
	int			held_clients;	/* clients waiting in the queues at the resume */
	int			failed;			/* requests seen failing while held */
	bool		drained;		/* every queue was served within POOLER_DRAIN_MS of the resume */
} PoolerStats;

/* Set up the fleet from cfg's pgbouncer entries (none: n = 0). No I/O. */
void		pooler_fleet_init(PoolerFleet *f, const FerryConfig *cfg);
void		pooler_fleet_release(PoolerFleet *f);

/*
 * Step 1, before anything is frozen: work out where each side is
 * (src, tgt: ferry's control sessions; --pgbouncer-source/-target win),
 * connect to every admin console and check that it can be held and
 * repointed (see above). `from`: the side the entries point at now.
 * False (logged, with the fix) when one cannot.
 */
bool		pooler_prepare(PoolerFleet *f, PGconn *src, PGconn *tgt, PoolerSide from);

/*
 * Step 2: PAUSE every entry, within timeout_ms together. On failure the
 * sessions that held it up are named (their pids looked up through
 * `server`, the side they are on, as `side` in messages) and every pooler
 * is resumed; false.
 */
bool		pooler_pause(PoolerFleet *f, int timeout_ms, PGconn *server, const char *side);

/* Sample the queues (between steps: cheap, one SHOW CLIENTS per pooler). */
void		pooler_watch(PoolerFleet *f);

/*
 * Step 4: point every entry at `to` (rewrite + RELOAD, or the repoint
 * command + RELOAD), then check with SHOW DATABASES. Stops at the first
 * failure (logged); the caller points them back (pooler_repoint to the
 * other side) before resuming.
 */
bool		pooler_repoint(PoolerFleet *f, PoolerSide to);

/*
 * Step 5: a last sample, RESUME every entry (one that is not paused
 * counts as resumed), then wait up to POOLER_DRAIN_MS for the queues to
 * be served. Fills *st when not NULL. False (logged, with the fix) when a
 * pooler could not be resumed.
 */
bool		pooler_resume(PoolerFleet *f, PoolerStats *st);

/*
 * The PAUSE that makes a repoint undoable lives in the PgBouncer process:
 * one restarted since (a deploy, its supervisor, a hook) came up unpaused
 * and serves wherever its file points. How many of the poolers this run
 * paused now show their entry unpaused and pointing at `side`, or cannot
 * be asked (down now, it may have been up, unpaused, meanwhile); each
 * logged.
 */
int			pooler_unpaused_at(PoolerFleet *f, PoolerSide side);

/*
 * Just before the RESUME: does every entry still point at `to`? One that
 * was put back since the repoint (its file restored and reloaded by config
 * management or a hook) is repointed again; one that cannot be is flagged
 * in the returned array (owned, f->n flags): it must stay paused.
 */
bool	   *pooler_recheck(PoolerFleet *f, PoolerSide to);

/*
 * Leave `skip` paused, resume the others: for an undo where that one
 * could not be pointed back (see the invariant). NULL skips none.
 */
bool		pooler_resume_except(PoolerFleet *f, const bool *skip, PoolerStats *st);

/*
 * Point back what pooler_repoint() may have moved: each entry to `to`;
 * ok[i] (n_pgbouncers of them) says which one now points there (checked).
 * True when all do.
 */
bool		pooler_repoint_back(PoolerFleet *f, PoolerSide to, bool *ok);

/*
 * The hold record for ferry's state: which poolers, the side their entries
 * pointed at before, whether they may have been repointed. Owned JSON,
 * no secret (admin addresses only).
 */
char	   *pooler_hold_to_json(const PoolerFleet *f, PoolerSide from, bool repointed);
/*
 * Read a saved record: *from and *repointed, and *names (owned) the
 * poolers it lists, for messages. False when it does not parse (it is not
 * trusted more than input).
 */
bool		pooler_hold_from_json(const char *json, PoolerSide *from, bool *repointed, char **names);

/*
 * Add the password of a PgBouncer connection string (pgbouncer-target:)
 * to out, for log scrubbing. NULL or unparsable: nothing.
 */
void		pooler_connstr_secrets(const char *connstr, StrList *out);

#endif
