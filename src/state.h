/*
 * state.h: the migration's durable state, kept on the target in schema
 * "ferry" so that it commits in the same transaction as the data it
 * describes (a copied table and its "done" row land together or not at all).
 *
 *   ferry.migration   one row per migration name: phase, slot, start LSN,
 *                     which clone stages are complete
 *   ferry.copy_item   one row per copied table or chunk, with the snapshot
 *                     LSN it was copied at (changes committed before that LSN
 *                     are in the copy and must not be applied again)
 *   ferry.schema_step one row per completed post-data step (index,
 *                     constraint, ...), so a resumed clone skips them
 *   ferry.pending_constraint one row per foreign key a resumed clone built
 *                     NOT VALID, until ferry start validates it (validate.h)
 *
 * Two ferry processes never drive one migration: state_lock() takes a
 * session advisory lock on the target keyed by the migration name.
 */
#ifndef FERRY_STATE_H
#define FERRY_STATE_H

#include <stdbool.h>
#include <stdint.h>
#include <libpq-fe.h>

typedef struct MigrationState
{
	bool		exists;
	char	   *phase;			/* owned */
	char	   *slot_name;		/* owned */
	char	   *start_lsn;		/* owned, NULL until the slot is created */
	bool		pre_data_done;
	bool		data_done;
	bool		post_data_done;
} MigrationState;

/* Take the migration's advisory lock; false (logged) if another process has it. */
bool		state_lock(PGconn *target, const char *name);
/* 'ferr' as a 32-bit number: the advisory lock class of the migration lock (key 2: hashtext(name)) */
#define STATE_LOCK_CLASS "1718773362"
/*
 * Whether a process holds the lock right now, without logging or keeping
 * it: 1 held by someone, 0 free, -1 on error.
 */
int			state_lock_held(PGconn *conn, const char *name);
/*
 * The apply session's lock, class STATE_APPLY_LOCK_CLASS (key 2:
 * hashtext(name)): held by the one target session that writes a migration's
 * changes, from its first statement to its end. A ferry killed while its
 * apply session waited on the target (a lock, a long statement) leaves that
 * backend running with the rest of the pipeline, COMMIT included, in its
 * socket: it commits later, after a new ferry has read the applied position,
 * and the batch would be applied twice. state_apply_fence() ends such a
 * session and waits until it is gone, so the position read after it is
 * final; call it holding the migration lock (any other holder is then an
 * orphan). state_apply_lock() takes the lock in the new apply session.
 */
#define STATE_APPLY_LOCK_CLASS "1718773363"
bool		state_apply_fence(PGconn *target, const char *name);
bool		state_apply_lock(PGconn *apply_conn, const char *name);
/*
 * Whether ferry's state table ferry.<table> exists on conn: 1 yes, 0 no,
 * -1 on error (logged).
 */
int			state_table_exists(PGconn *conn, const char *table);
/*
 * Create schema ferry and its tables if missing, on `side` ("target", or
 * "source" for the reverse migration). Refuses (false, logged) a schema
 * ferry that is not ferry's own: see state_schema_trusted().
 */
bool		state_ensure(PGconn *target, const char *side);
/*
 * Is schema ferry absent, or ferry's own from an earlier run: owned by the
 * role ferry connects as, with no object in it owned by another role? A
 * role that pre-created it could plant tables and functions ferry would
 * trust (state it reads back, SQL it runs). False (logged, one line with
 * the fix) otherwise. The switchover checks the source with it before
 * freezing.
 */
bool		state_schema_trusted(PGconn *conn, const char *side);
/* Read the migration row; st->exists false when there is none. */
bool		state_load(PGconn *target, const char *name, MigrationState *st);
void		state_release(MigrationState *st);
/* Insert a fresh row in phase 'cloning'. */
bool		state_create(PGconn *target, const char *name, const char *slot_name);
/* Set one column (start_lsn, phase, a *_done flag, ...; NULL value: SQL NULL). */
bool		state_set(PGconn *target, const char *name, const char *column, const char *value);
/* Forget a migration entirely (rows in all state tables). */
bool		state_forget(PGconn *target, const char *name);

/* The names of ferry's state tables, NULL-ended. */
extern const char *const STATE_TABLES[];
/* SQL run inside a copy transaction to mark an item done ($1..$8, see state.c). */
extern const char STATE_MARK_COPY_SQL[];
/* SQL run inside a schema step's transaction ($1 migration, $2 step key). */
extern const char STATE_MARK_STEP_SQL[];

#endif
