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
 * Invariant: once freeze_apply() returns true, every transaction that
 * wrote to the database has ended (committed or rolled back), so a
 * sentinel emitted afterwards is behind every change the application made.
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
	char	   *prior;			/* readonly: its earlier default_transaction_read_only, or NULL */
	StrList		revoked;		/* revoke: roles ferry takes LOGIN from (those that had it at freeze_prepare) */
	char	   *frozen_at;		/* server time the freeze began, owned */
} Freeze;

/*
 * Prepare the record for freezing conn's database in cfg->freeze_mode
 * (reads the current setting or the roles' LOGIN); nothing changes yet.
 * False (logged with a fix) when this user cannot freeze that way.
 */
bool		freeze_prepare(PGconn *conn, const FerryConfig *cfg, const char *mode, const char *side, Freeze *fz);

/*
 * Freeze writes; wait up to timeout_ms for the ended sessions to go.
 * False (logged) on failure: the caller then calls freeze_release().
 */
bool		freeze_apply(PGconn *conn, const FerryConfig *cfg, const char *side, Freeze *fz, int timeout_ms);

/* Undo freeze_apply (also after a partial one). False (logged) on failure. */
bool		freeze_release(PGconn *conn, const FerryConfig *cfg, const char *side, const Freeze *fz);

char	   *freeze_to_json(const Freeze *fz);
bool		freeze_from_json(const char *json, Freeze *fz);
void		freeze_release_record(Freeze *fz);

#endif
