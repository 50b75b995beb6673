/*
 * freeze.h: stopping and resuming the application's writes on one database
 * (the source at switchover, the target at rollback).
 *
 * Modes:
 *   readonly  ALTER DATABASE ... SET default_transaction_read_only = on, then
 *             end every client session of that database except ferry's own
 *             (application_name ferry*), so no session that could still
 *             write survives; new sessions start read-only, and their
 *             writes fail with "cannot execute ... in a read-only
 *             transaction". ferry's sessions set it off for themselves.
 *   revoke    ALTER ROLE ... NOLOGIN for the given application roles that
 *             can log in, then end their sessions on that database.
 *   hook      the user's `freeze` hook; `unfreeze` undoes it.
 *
 * The fence (readonly and revoke). Neither mode alone stops every write: a
 * session may override a read-only database for itself (BEGIN READ WRITE,
 * as psycopg2's set_session(readonly=False) sends; SET
 * default_transaction_read_only = off), and sessions that connect again
 * while the switch is under way may do so. So, once the application's
 * sessions are ended, a ferry session (the fence) takes
 * LOCK TABLE ... IN EXCLUSIVE MODE on every table of the migration's
 * publications (partitions included) and holds it until the switch is done
 * or undone: EXCLUSIVE conflicts with every write lock, superusers' too,
 * and still lets ferry and everyone read. In the same transaction it runs
 * a no-op ALTER SEQUENCE on every sequence it may alter (their SHARE ROW
 * EXCLUSIVE lock makes nextval() wait: values handed out on the frozen side
 * would be handed out again on the other; the rollback undoes the no-op,
 * and the switchover reads the sequences through the fence's session).
 * Taking it waits for the writers
 * that slipped in (a lock_timeout, their sessions ended again, retried).
 * At the switch (freeze_hand_over), every session still on the frozen side
 * is ended while the fence holds (those queued behind it included, so a
 * pool reconnects, to the new primary), then the fence is let go. The
 * fence (application_name "ferry fence") can die with its session; callers
 * check it (freeze_fence_held) where they rely on it, and take it again
 * (freeze_fence_retake). The
 * fence needs a lock privilege (UPDATE, DELETE or TRUNCATE) on each table,
 * and ending sessions needs to see and signal them (pg_read_all_stats and
 * pg_signal_backend, or superuser): freeze_prepare() refuses, before
 * anything is frozen, with the GRANT that fixes it, instead of a freeze
 * that would silently end nobody.
 *
 * Invariant: once freeze_apply() returns true, every transaction that
 * wrote to the database has ended (committed or rolled back) and no new
 * one can commit a write to a published table until freeze_hand_over() or
 * freeze_release() while the fence lives, so a sentinel emitted afterwards
 * is behind every change the application made as long as
 * freeze_fence_held() says so after it.
 *
 * Unfreezing restores exactly what was there (the database's earlier
 * setting, only the logins ferry revoked) and ends sessions that connected
 * during the freeze, since they started read-only and would stay so.
 *
 * The Freeze record is serialised (freeze_to_json) into ferry's state
 * before the freeze takes effect, so an interrupted switchover can be undone
 * by `ferry rollback` from another process.
 */
#ifndef FERRY_FREEZE_H
#define FERRY_FREEZE_H

#include <stdbool.h>
#include <stdint.h>
#include <libpq-fe.h>

#include "config.h"
#include "mem.h"

typedef struct Freeze
{
	char	   *mode;			/* "readonly", "revoke" or "hook", owned */
	char	   *dbname;			/* the frozen database, owned */
	char	   *prior;			/* readonly: its earlier default_transaction_read_only ("on"/"off"), or NULL */
	StrList		revoked;		/* revoke: roles ferry takes LOGIN from (those that had it at freeze_prepare) */
	char	   *frozen_at;		/* server time the freeze began, owned */
	/* not saved: this process's own */
	char	   *pubname;		/* the fence locks this publication's tables (and NAME_insert_only's) */
	StrList		extra;			/* ... and these (quoted names): tables no publication lists (rollback: created on the target after the switchover) */
	PGconn	   *fence;			/* holds the fence's locks, or NULL */
} Freeze;

/*
 * Prepare the record for freezing conn's database in cfg->freeze_mode
 * (reads the current setting or the roles' LOGIN); nothing changes yet.
 * False (logged with a fix) when this user cannot freeze that way.
 */
bool		freeze_prepare(PGconn *conn, const FerryConfig *cfg, const char *mode, const char *side,
						   const char *pubname, Freeze *fz);

/*
 * Freeze writes; wait up to timeout_ms for the ended sessions to go and
 * the fence to be taken (a new session from `conninfo`, held in fz->fence).
 * Fails too if a transaction is prepared on the frozen database (checked
 * once frozen: one prepared by a pre_freeze hook survives the freeze).
 * False (logged) on failure: the caller then calls freeze_release().
 */
bool		freeze_apply(PGconn *conn, const char *conninfo, const FerryConfig *cfg, const char *side,
						 Freeze *fz, int timeout_ms);

/*
 * Is the fence still held? A round trip on its session, which must still be
 * inside the transaction that took the locks: a session that answers has
 * held them without a break since it took them. True too when there is no
 * fence (mode hook, nothing published). False (logged as a warning) when
 * its session died or its transaction ended (pg_terminate_backend, a
 * dropped connection, an idle_in_transaction_session_timeout): its locks
 * went with it, so writes may have committed since it was taken; fz->fence
 * is left for freeze_fence_retake().
 */
bool		freeze_fence_held(Freeze *fz, const char *side);

/*
 * Take the fence again after it was lost (or after a crash took it with
 * the process): end the frozen sessions again (a writer may be inside a
 * transaction), then lock as freeze_apply() does, within timeout_ms. A
 * no-op for mode hook. Once it returns true the invariant of freeze_apply()
 * holds again, from now on: a sentinel emitted afterwards is behind every
 * change, those made while the fence was down included. False (logged).
 */
bool		freeze_fence_retake(PGconn *conn, const char *conninfo, const FerryConfig *cfg, const char *side,
								Freeze *fz, int timeout_ms);

typedef enum HandOver
{
	HAND_OVER_DONE,				/* every session ended, the fence let go */
	HAND_OVER_SESSIONS_LEFT,	/* the fence let go, some session could not be ended (logged) */
	HAND_OVER_FENCE_LOST		/* the fence had died: nothing let go; retake, drain, call again */
} HandOver;

/*
 * The switch is done and the frozen side stays frozen: end every session
 * still on it but ferry's (queued behind the fence or connected meanwhile),
 * then, if the fence still holds (checked after the sessions are ended, so
 * no write can have slipped in between), let it go.
 */
HandOver	freeze_hand_over(PGconn *conn, const FerryConfig *cfg, const char *side, Freeze *fz);

/* Undo freeze_apply (also after a partial one). False (logged) on failure. */
bool		freeze_release(PGconn *conn, const FerryConfig *cfg, const char *side, Freeze *fz);

/*
 * No prepared transaction on conn's database? One survives a freeze (it
 * has no session to end) and could commit after the drain. False (logged
 * with the fix) if there is one.
 */
bool		freeze_no_prepared_xacts(PGconn *conn, const char *side);

char	   *freeze_to_json(const Freeze *fz);
/*
 * Parse a saved record. The state table is not trusted more than input:
 * false for an unknown mode or a prior setting that is not null or a
 * boolean (a hostile "off; DROP ..." is refused, never pasted into SQL).
 */
bool		freeze_from_json(const char *json, Freeze *fz);
/* A PostgreSQL boolean as parse_bool reads it (on, off, t, yes, 0, ...)? Pure. */
bool		freeze_parse_bool(const char *s, bool *out);
void		freeze_release_record(Freeze *fz);

#endif
