/*
 * apply_int.h: the apply thread's insides, shared by its four files (the
 * design is in apply.h). Nothing outside apply*.c includes this.
 *
 * The seams:
 *   apply.c       the loop and its state machine (ApplyState), batches (begin,
 *                 commit, abort), what may be confirmed (apply_caught_up) and the
 *                 target's flushed position, the session and its position row
 *   apply_pipe.c  the libpq pipeline: what was sent and whose results are
 *                 owed (Sent), reading them in order, syncs, failures
 *   apply_stmt.c  relations (Relation messages, the target's columns) and the
 *                 SQL of their prepared statements, per generation
 *   apply_hold.c  the changes themselves: inserts and plain updates held and
 *                 sent many rows at a time, deletes, other updates, truncates
 */
#ifndef FERRY_APPLY_INT_H
#define FERRY_APPLY_INT_H

#include <libpq-fe.h>

#include "apply.h"
#include "flushq.h"
#include "mem.h"
#include "pgoutput.h"
#include "stream.h"

/* two tuples of at most 1600 columns (MaxTupleAttributeNumber) */
#define APPLY_MAX_PARAMS 3200

typedef struct UpdVariant
{
	char	   *mask;			/* '1' for each unchanged-TOAST column */
	int			id;
} UpdVariant;

typedef struct ApplyRel
{
	uint32_t	relid;
	PgoRelation *rel;			/* owned copy of the Relation message */
	char	   *qualname;		/* quoted target name */
	char	  **qcols;			/* per column: its name quoted by libpq for the target, owned */
	uint64_t	snapshot_lsn;	/* skip transactions committed before this */
	int			gen;			/* statement generation: bumped by a new Relation */
	bool		partitioned;	/* the target table is partitioned (no ONLY) */
	bool		full;			/* find rows by all columns */
	bool		any_always;		/* some column is GENERATED ALWAYS AS IDENTITY */
	char	   *always;			/* per column: '1' = identity ALWAYS on the target */
	bool		ins_prepared;
	/*
	 * Rows inserted and deleted since ferry.table_rows was last written
	 * (write_table_rows), and whether a TRUNCATE came meanwhile (the
	 * counts are then since it); counted is set while it is in Apply.counted.
	 */
	int64_t		n_ins;
	int64_t		n_del;
	bool		truncated;
	bool		counted;
	/*
	 * Inserts wait here and go as one multi-row INSERT of batch_rows rows
	 * (see apply.h): values NUL-terminated in pend, offsets in pend_offs
	 * (SIZE_MAX = NULL), npend rows so far.
	 */
	char	  **types;			/* target column types, for the casts */
	StrBuf		pend;
	size_t	   *pend_offs;
	int			npend;
	int			batch_rows;
	bool		multi_prepared;
	bool		listed;			/* in Apply.pending (waiting inserts or updates) */
	/*
	 * Plain updates (key unchanged, every column sent) wait here too, one
	 * slot per key (a later update of the same key replaces the earlier: only
	 * the final row is visible when the target transaction commits), and go
	 * as one UPDATE ... FROM (VALUES ...) of batch_rows rows.
	 */
	StrBuf		upend;
	size_t	   *upend_offs;
	char	  **ukeys;			/* key text per slot, owned */
	int			nupend;
	bool		umulti_prepared;
	bool		no_hold;		/* other unique/exclusion indexes: updates go in order */
	bool		del_prepared;
	UpdVariant *upd;
	int			nupd;
} ApplyRel;

/*
 * What was sent to the target and whose results are still to be read, in
 * order (a ring). A COMMIT's entry carries its batch, published as applied
 * once the COMMIT's result says it succeeded; the WAL positions query's
 * entry feeds note_positions.
 */
typedef enum SentKind
{
	SENT_STATEMENT,
	SENT_COMMIT,
	SENT_WAL,
	SENT_SYNC,
} SentKind;

typedef struct Sent
{
	SentKind	kind;
	bool		failed;			/* an error or "pipeline aborted" came for it */
	/*
	 * For error messages, put together only if one comes (describe_sent):
	 * `what`, or "what rows link table" for a change to relation relid.
	 */
	const char *what;
	char	   *owned;			/* ... when it is an allocated string */
	uint32_t	relid;			/* 0: not a change */
	int			rows;			/* with link: "inserting 100 rows into" */
	int			expect;			/* UPDATE/DELETE: rows it must change (else: divergence) */
	uint64_t	lsn;			/* ... the source transaction's commit LSN */
	const char *link;
	uint64_t	end_lsn;		/* SENT_COMMIT: the batch */
	int64_t		commit_time;
	int64_t		changes;
	int64_t		txns;
} Sent;

typedef struct TableSnap
{
	char	   *nspname;
	char	   *relname;
	uint64_t	lsn;
} TableSnap;

/*
 * Where the apply session is: the one state machine of the apply loop.
 * "Target transaction" is the open batch (BEGIN sent, COMMIT not yet);
 * "source transaction" is the one whose messages are being read (between
 * its Begin and its Commit).
 *
 *   AS_IDLE        no target transaction, between source transactions
 *   AS_BATCH       a target transaction open, between source transactions
 *   AS_TXN         a source transaction applied into the target transaction
 *   AS_SKIP        a source transaction dropped (applied before a restart),
 *                  no target transaction open
 *   AS_BATCH_SKIP  a source transaction dropped (applied before, or the
 *                  forward apply's own on the reverse stream) inside an
 *                  open target transaction
 *   AS_BROKEN      final: a statement failed, the connection broke, a stop
 *                  cancelled a statement, or a batch was rolled back. What
 *                  was received may not be on the target; the session ends
 *                  and the next one streams it again.
 *
 *   IDLE  --Begin--> TXN | SKIP          BATCH --Begin--> TXN | BATCH_SKIP
 *   TXN   --origin or mark of the forward apply--> BATCH_SKIP
 *   TXN | BATCH_SKIP --Commit--> BATCH   SKIP --Commit--> IDLE
 *   BATCH --commit_batch--> IDLE         any --pipe_fail, abort_batch--> BROKEN
 *
 * The one rule for confirming to the source (apply_caught_up) asks for AS_IDLE
 * and nothing in flight; BROKEN never leaves, so nothing after a failure,
 * cancel or rollback can make the session look caught up.
 */
typedef enum ApplyState
{
	AS_IDLE = 0,
	AS_BATCH,
	AS_TXN,
	AS_SKIP,
	AS_BATCH_SKIP,
	AS_BROKEN,
} ApplyState;

typedef struct Apply
{
	ApplyArgs  *args;
	PGconn	   *conn;
	PgoDecoder *dec;
	ApplyRel   *rels;			/* open-addressing hash on relid */
	int			relcap;
	TableSnap  *snaps;
	int			nsnaps;
	ApplyState	state;			/* see ApplyState; changed only by set_state */
	uint64_t	txn_final_lsn;	/* the source transaction being read */
	int64_t		txn_commit_time;
	uint64_t	batch_end_lsn;	/* end LSN of the last complete source txn in the batch */
	int64_t		batch_commit_time;
	int64_t		batch_changes;
	int64_t		batch_txns;
	bool		batch_message;	/* holds a logical message (a switchover's probe or sentinel, a heartbeat) */
	/* ferry.apply_progress: with an origin, written only every APPLY_PROGRESS_MS (see commit_batch) */
	uint64_t	row_lsn;		/* what the row says */
	uint64_t	applied_lsn;	/* the last committed batch's end */
	int64_t		applied_commit_time;
	int64_t		row_changes;	/* counted since the row was written */
	int64_t		row_txns;
	int64_t		row_written_us;
	int64_t		batch_started_us;
	Sent	   *sent;			/* ring of nsent entries from sent_first */
	int			sent_first;
	int			nsent;
	int			sent_cap;
	int			since_sync;		/* statements sent since the last sync */
	int			commits_in_flight;	/* SENT_COMMIT entries in sent */
	bool		pipe_failed;	/* an error was read: nothing after it ran (pipe_fail: also AS_BROKEN) */
	StrBuf		arena;			/* parameter values of the current statement */
	size_t		poffs[APPLY_MAX_PARAMS];	/* their offsets in the arena */
	const char *params[APPLY_MAX_PARAMS];
	uint64_t	skip_until;		/* applied LSN at start */
	char		last_value[64];	/* the WAL positions query's result */
	char		last_sqlstate[8];	/* of the first error read */
	FlushQueue	fq;				/* committed batches not yet known durable (flushq.h) */
	int64_t		last_flush_check_us;
	int64_t		last_wal_read_us;
	bool		wal_read_due;	/* a COMMIT was sent since the last WAL position read */
	uint32_t   *counted;		/* relids with rows counted since table_rows was written */
	int64_t		rows_written_us;	/* ... when it was */
	int			ncounted;
	int			countcap;
	uint32_t   *pending;		/* relids with waiting inserts */
	int			npending;
	int			pendcap;
	ApplyStatus fail_status;
	Source		src;			/* the source's change stream */
	ReplFrame	stash;			/* a message read ahead (see apply_main) */
	SourceResult stash_result;
	bool		stashed;
	int64_t		stop_wait_ms;	/* when a wait for the target first saw a stop, 0 = not yet */
} Apply;

/* the state machine's questions (ApplyState) */
static inline bool
in_batch(const Apply *a)
{
	return a->state == AS_BATCH || a->state == AS_TXN || a->state == AS_BATCH_SKIP;
}

static inline bool
in_src_txn(const Apply *a)
{
	return a->state == AS_TXN || a->state == AS_SKIP || a->state == AS_BATCH_SKIP;
}

static inline bool
skipping(const Apply *a)
{
	return a->state == AS_SKIP || a->state == AS_BATCH_SKIP;
}

/* apply.c */
bool		apply_state_move_ok(ApplyState from, ApplyState to);
bool		apply_caught_up(const Apply *a);
void		batch_committed(Apply *a, const Sent *e);
bool		note_positions(Apply *a, char *text);

/* apply_pipe.c */
void		pipe_fail(Apply *a, ApplyStatus why);
Sent	   *pipe_push(Apply *a, SentKind kind, const char *what, char *owned);
void		pipe_note_sent(Apply *a, const char *what, char *owned);
void		pipe_clear(Apply *a);
ApplyStatus	pipe_failure_kind(Apply *a);
void		pipe_broken(Apply *a, const char *msg);
bool		pipe_read(Apply *a, int keep);
bool		pipe_sync(Apply *a);
bool		pipe_drain(Apply *a);
bool		pipe_send_simple(Apply *a, const char *sql, const char *what);
Sent	   *pipe_send_named(Apply *a, const char *name, int n, const char *const *params, SentKind kind, const char *what);
bool		pipe_maybe_sync(Apply *a);
PGresult   *pipe_query_now(Apply *a, const char *what, const char *sql, int n, const char *const *params);

/* apply_stmt.c */
ApplyRel   *rel_lookup(Apply *a, uint32_t relid, bool create);
void		rel_clear(ApplyRel *r);
void		rels_grow(Apply *a);
bool		rel_load_snapshots(Apply *a);
const char *stmt_name(char *buf, size_t size, char kind, const ApplyRel *r, int variant);
bool		rel_handle(Apply *a, const PgoRelation *msg);
void		stmt_tuple_params(Apply *a, const PgoTuple *t, int *n, const char *skip_mask);
void		stmt_where(StrBuf *sql, const ApplyRel *r, int first_param);
bool		stmt_prepare(Apply *a, const char *name, const char *sql, int nparams);
void		stmt_identity_params(Apply *a, const ApplyRel *r, char oldkind, const PgoTuple *old, const PgoTuple *newt, int *n);
bool		stmt_send_change(Apply *a, const char *name, int n, const ApplyRel *r, const char *verb, int rows, const char *link, int changes, int expect);
bool		stmt_send_prepared(Apply *a, const char *name, int n, const char *what, const ApplyRel *r);
bool		stmt_prepare_insert(Apply *a, ApplyRel *r, const char *name, int rows);

/* apply_hold.c */
void		hold_count(Apply *a, ApplyRel *r, int64_t ins, int64_t del, bool truncated);
bool		hold_flush_all(Apply *a);
void		hold_drop_all(Apply *a);
bool		apply_insert(Apply *a, ApplyRel *r, const PgoTuple *t);
bool		apply_delete(Apply *a, ApplyRel *r, char oldkind, const PgoTuple *old);
bool		apply_update(Apply *a, ApplyRel *r, char oldkind, const PgoTuple *old, const PgoTuple *newt);
bool		apply_truncate(Apply *a, uint8_t options, int nrelids, const uint32_t *relids);

#endif
