/*
 * apply.c: the apply thread (see apply.h for the design).
 */
#include "apply.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"
#include "pgoutput.h"
#include "pgsql.h"
#include "stream.h"

/*
 * Which snapshot LSN each copied table was copied at, and each partition
 * root: a source of 13+ streams a partition's changes under its root
 * (publish_via_partition_root), one before 13 under the partition itself.
 * The clone copies every partition of one tree at one snapshot (clone.c
 * redoes the tree on a resume that would split it), so a root's max is the
 * snapshot of each of its partitions.
 */
static const char TABLE_SNAPSHOTS_SQL[] =
	"SELECT ci.nspname, ci.relname, max(ci.snapshot_lsn)::text"
	"  FROM ferry.copy_item ci WHERE ci.migration = $1 GROUP BY 1, 2"
	" UNION ALL "
	"SELECT rn.nspname, rc.relname, max(ci.snapshot_lsn)::text"
	"  FROM ferry.copy_item ci"
	"  JOIN pg_catalog.pg_class rc ON rc.oid = pg_catalog.pg_partition_root("
	"         pg_catalog.to_regclass(pg_catalog.quote_ident(ci.nspname) || '.' || pg_catalog.quote_ident(ci.relname)))"
	"  JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace"
	" WHERE ci.migration = $1 AND rc.relkind = 'p'"
	" GROUP BY 1, 2";

/*
 * The target's columns of a table, as pgoutput would send them. Types are
 * named without their modifier (varchar, numeric, bpchar, "bit"): the
 * multi-row statements cast parameters to them, and an explicit cast to
 * varchar(3) or char(3) truncates silently where the column's own
 * (assignment) coercion raises an error; rounding to numeric(p,s) or
 * timestamp(p) still happens, in the assignment, as for a single row.
 */
static const char TARGET_COLUMNS_SQL[] =
	"SELECT c.relkind, a.attname, a.attidentity = 'a',"
	"       CASE a.atttypid WHEN 'pg_catalog.bit'::pg_catalog.regtype THEN 'bit varying'"
	"                       WHEN 'pg_catalog.bit[]'::pg_catalog.regtype THEN 'bit varying[]'"
	"                       WHEN 'pg_catalog.bpchar'::pg_catalog.regtype THEN 'pg_catalog.bpchar'"
	"                       WHEN 'pg_catalog.bpchar[]'::pg_catalog.regtype THEN 'pg_catalog.bpchar[]'"
	"                       ELSE pg_catalog.format_type(a.atttypid, NULL) END,"
	"       EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid"
	"                  AND (i.indisunique OR i.indisexclusion) AND NOT i.indisprimary AND NOT i.indisreplident)"
	"  FROM pg_catalog.pg_class c"
	"  LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0"
	"       AND NOT a.attisdropped AND a.attgenerated = ''"
	" WHERE c.oid = pg_catalog.to_regclass($1)"
	" ORDER BY a.attnum";

#define PROGRESS_UPDATE \
	"UPDATE ferry.apply_progress" \
	"   SET applied_lsn = $2::pg_catalog.pg_lsn," \
	"       commit_time = pg_catalog.to_timestamp(946684800 + $3::float8 / 1000000)," \
	"       applied_at = pg_catalog.now()," \
	"       changes = changes + $4::bigint, txns = txns + $5::bigint"

static const char PROGRESS_UPDATE_SQL[] = PROGRESS_UPDATE " WHERE migration = $1";

/* the replication origin advances with the commit (LSN, source commit time in us since 2000) */
#define ORIGIN_SETUP(lsn, us) \
	"pg_catalog.pg_replication_origin_xact_setup(" lsn "::pg_catalog.pg_lsn," \
	" pg_catalog.to_timestamp(946684800 + " us "::float8 / 1000000))"

static const char ORIGIN_ADVANCE_SQL[] = "SELECT " ORIGIN_SETUP("$1", "$2");

/* without an origin: the mark that opens each target transaction (APPLY_MARK_PREFIX in apply.h) */
static const char MARK_SQL[] = "SELECT pg_catalog.pg_logical_emit_message(true, '" APPLY_MARK_PREFIX "', $1) IS NULL";

/* both in one statement */
static const char PROGRESS_ORIGIN_SQL[] =
	"WITH o AS (SELECT " ORIGIN_SETUP("$2", "$3") ") " PROGRESS_UPDATE " FROM o WHERE migration = $1";

/* where the target's WAL ends (after a COMMIT: beyond it) and what is flushed */
static const char WAL_POSITIONS_SQL[] =
	"SELECT pg_catalog.pg_current_wal_insert_lsn()::text || ' ' || pg_catalog.pg_current_wal_flush_lsn()::text";

/*
 * The statements of every batch, prepared once per session (named "ferry_*",
 * apart from the per-relation ones): parsing and planning them for each
 * target transaction was a third of the target backend's CPU under a
 * stream of small transactions. (ferry_progress is PROGRESS_ORIGIN_SQL when
 * the replication origin is used; ferry_origin only exists then, ferry_mark
 * only without one.)
 */
static const struct
{
	const char *name;
	const char *sql;
	int			nparams;
}			batch_statements[] = {
	{"ferry_begin", "BEGIN", 0},
	{"ferry_commit", "COMMIT", 0},
	{"ferry_progress", PROGRESS_UPDATE_SQL, 5},
	{"ferry_origin", ORIGIN_ADVANCE_SQL, 2},
	{"ferry_mark", MARK_SQL, 1},
	{"ferry_wal", WAL_POSITIONS_SQL, 0},
};

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
 * The one rule for confirming to the source (caught_up) asks for AS_IDLE
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
	/* committed batches not yet known flushed: target WAL position, source end */
	uint64_t   *fq_tgt;
	uint64_t   *fq_src;
	int			fq_len;
	int			fq_cap;
	int64_t		last_flush_check_us;
	uint64_t	unmarked_src;	/* batches committed since the last WAL position read: the last one's end */
	int64_t		last_wal_read_us;
	bool		wal_read_due;	/* a COMMIT was sent since the last WAL position read */
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

/* ------------------------------------------------------------------ */
/* the state machine (ApplyState)                                       */

static bool
in_batch(const Apply *a)
{
	return a->state == AS_BATCH || a->state == AS_TXN || a->state == AS_BATCH_SKIP;
}

static bool
in_src_txn(const Apply *a)
{
	return a->state == AS_TXN || a->state == AS_SKIP || a->state == AS_BATCH_SKIP;
}

static bool
skipping(const Apply *a)
{
	return a->state == AS_SKIP || a->state == AS_BATCH_SKIP;
}

/* Is from -> to one of the arrows drawn at ApplyState? */
static bool
state_move_ok(ApplyState from, ApplyState to)
{
	switch (to)
	{
		case AS_IDLE:
			return from == AS_BATCH || from == AS_SKIP;
		case AS_BATCH:
			return from == AS_TXN || from == AS_BATCH_SKIP;
		case AS_TXN:
			return from == AS_IDLE || from == AS_BATCH;
		case AS_SKIP:
			return from == AS_IDLE;
		case AS_BATCH_SKIP:
			return from == AS_BATCH || from == AS_TXN;
		case AS_BROKEN:
			return true;
	}
	return false;
}

/*
 * What must hold between messages (checked at each turn of the loop, as
 * assert(check_state(a))): rows are held only inside an open target
 * transaction, a failed pipeline means a broken session, a skipped
 * transaction's changes never open a batch.
 */
static bool
check_state(const Apply *a)
{
	if (a->pipe_failed && a->state != AS_BROKEN)
		return false;
	if (a->state == AS_IDLE || a->state == AS_SKIP)
		return a->npending == 0 && a->batch_end_lsn == 0;
	return true;
}

static void
set_state(Apply *a, ApplyState to)
{
	if (a->state == AS_BROKEN)
		return;					/* final */
	assert(state_move_ok(a->state, to));
	a->state = to;
}

/*
 * The pipeline failed (an error was read, a send or the connection broke):
 * nothing sent after the failure ran, and the session is over; `why` is
 * the session's outcome (pass a->fail_status to keep the first one's).
 */
static void
pipe_fail(Apply *a, ApplyStatus why)
{
	a->pipe_failed = true;
	a->fail_status = why;
	set_state(a, AS_BROKEN);
}

/* ------------------------------------------------------------------ */

static ApplyRel *
rel_lookup(Apply *a, uint32_t relid, bool create)
{
	uint32_t	mask = (uint32_t) a->relcap - 1;
	uint32_t	i = (relid * 2654435761u) & mask;

	for (;;)
	{
		ApplyRel   *r = &a->rels[i];

		if (r->rel != NULL && r->relid == relid)
			return r;
		if (r->rel == NULL)
			return create ? r : NULL;
		i = (i + 1) & mask;
	}
}

static void
rel_clear(ApplyRel *r)
{
	if (r->types)
		for (int i = 0; i < r->rel->ncols; i++)
			free(r->types[i]);
	free(r->types);
	if (r->pend.data)
		strbuf_release(&r->pend);
	free(r->pend_offs);
	if (r->upend.data)
		strbuf_release(&r->upend);
	free(r->upend_offs);
	if (r->ukeys)
		for (int i = 0; i < r->batch_rows; i++)
			free(r->ukeys[i]);
	free(r->ukeys);
	for (int i = 0; r->qcols && r->rel && i < r->rel->ncols; i++)
		free(r->qcols[i]);
	free(r->qcols);
	pgo_relation_free(r->rel);
	free(r->qualname);
	free(r->always);
	for (int i = 0; i < r->nupd; i++)
		free(r->upd[i].mask);
	free(r->upd);
	memset(r, 0, sizeof(*r));
}

static void
rels_grow(Apply *a)
{
	ApplyRel   *old = a->rels;
	int			oldcap = a->relcap;

	a->relcap = oldcap ? oldcap * 2 : 256;
	a->rels = xcalloc((size_t) a->relcap, sizeof(ApplyRel));
	for (int i = 0; i < oldcap; i++)
		if (old[i].rel)
			*rel_lookup(a, old[i].relid, true) = old[i];
	free(old);
}

static uint64_t
table_snapshot(Apply *a, const char *nsp, const char *rel)
{
	for (int i = 0; i < a->nsnaps; i++)
		if (strcmp(a->snaps[i].nspname, nsp) == 0 && strcmp(a->snaps[i].relname, rel) == 0)
			return a->snaps[i].lsn;
	return 0;
}

static bool
load_snapshots(Apply *a)
{
	const char *params[1] = {a->args->cfg->name};
	PGresult   *res = pg_query(a->conn, "read the tables' copy snapshots", TABLE_SNAPSHOTS_SQL, 1, params);

	if (res == NULL)
		return false;
	a->nsnaps = PQntuples(res);
	a->snaps = xcalloc((size_t) a->nsnaps + 1, sizeof(TableSnap));
	for (int i = 0; i < a->nsnaps; i++)
	{
		a->snaps[i].nspname = xstrdup(PQgetvalue(res, i, 0));
		a->snaps[i].relname = xstrdup(PQgetvalue(res, i, 1));
		pg_lsn_parse(PQgetvalue(res, i, 2), &a->snaps[i].lsn);
	}
	PQclear(res);
	return true;
}

/* ------------------------------------------------------------------ */
/* pipeline bookkeeping                                                 */

static Sent *
sent_push(Apply *a, SentKind kind, const char *what, char *owned)
{
	Sent	   *e;

	if (a->nsent == a->sent_cap)
	{
		Sent	   *ring = xcalloc((size_t) (a->sent_cap ? a->sent_cap * 2 : 256), sizeof(Sent));

		for (int i = 0; i < a->nsent; i++)
			ring[i] = a->sent[(a->sent_first + i) % a->sent_cap];
		free(a->sent);
		a->sent = ring;
		a->sent_first = 0;
		a->sent_cap = a->sent_cap ? a->sent_cap * 2 : 256;
	}
	e = &a->sent[(a->sent_first + a->nsent) % a->sent_cap];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->what = owned ? owned : what;
	e->owned = owned;
	a->nsent++;
	if (kind == SENT_COMMIT)
		a->commits_in_flight++;
	if (kind != SENT_SYNC)
		a->since_sync++;
	return e;
}

/* A statement was sent: remember it (`owned`, if given, describes it). */
static void
note_sent(Apply *a, const char *what, char *owned)
{
	(void) sent_push(a, SENT_STATEMENT, what, owned);
}

static void
sent_pop(Apply *a)
{
	if (a->sent[a->sent_first].kind == SENT_COMMIT)
		a->commits_in_flight--;
	free(a->sent[a->sent_first].owned);
	a->sent_first = (a->sent_first + 1) % a->sent_cap;
	a->nsent--;
}

/* Forget everything in flight (the connection is being given up). */
static void
clear_sent(Apply *a)
{
	while (a->nsent > 0)
		sent_pop(a);
	a->since_sync = 0;
}

/*
 * Is this SQLSTATE worth a retry? Connection exceptions (08), operator
 * intervention such as a shutdown or a crash of the server (57), resource
 * shortage (53), system errors (58), serialization failures and deadlocks.
 * The server's FATAL error can arrive before libpq marks the connection
 * bad, so the code, not only the connection state, decides.
 */
static bool
retryable_sqlstate(const char *state)
{
	return state != NULL &&
		(strncmp(state, "08", 2) == 0 || strncmp(state, "57", 2) == 0 ||
		 strncmp(state, "53", 2) == 0 || strncmp(state, "58", 2) == 0 ||
		 strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0);
}

/*
 * Classify a failed connection (retry) vs a failed statement (stop). An
 * error without a SQLSTATE was made by libpq, not the server: the socket
 * failed (after a failed write libpq keeps the connection "OK" so that it
 * can still read the server's last words), so that is a connection failure.
 */
static ApplyStatus
failure_kind(Apply *a)
{
	if (PQstatus(a->conn) != CONNECTION_OK || a->last_sqlstate[0] == '\0' ||
		retryable_sqlstate(a->last_sqlstate))
		return APPLY_FAILED_CONN;
	return APPLY_FAILED;
}

static bool note_positions(Apply *a, char *text);
static void batch_committed(Apply *a, const Sent *e);

/* The connection broke or a send failed: nothing in flight will answer. */
static void
pipe_broken(Apply *a, const char *msg)
{
	if (!a->pipe_failed)
		log_error("%s: %s", msg, PQerrorMessage(a->conn));
	pipe_fail(a, PQstatus(a->conn) != CONNECTION_OK ? APPLY_FAILED_CONN : failure_kind(a));
	clear_sent(a);
}

static void
describe_sent(Apply *a, const Sent *e, char *buf, size_t size)
{
	const ApplyRel *r = e->relid ? rel_lookup(a, e->relid, false) : NULL;
	char		rel[64];

	if (e->relid == 0)
	{
		snprintf(buf, size, "%s", e->what);
		return;
	}
	snprintf(rel, sizeof(rel), "relation %u", e->relid);
	if (e->rows > 0)
		snprintf(buf, size, "%s %d %s %s", e->what, e->rows, e->link, r ? r->qualname : rel);
	else
		snprintf(buf, size, "%s %s", e->what, r ? r->qualname : rel);
}

void
apply_add_unmatched(ApplyShared *sh, const char *table, int64_t n, uint64_t lsn)
{
	int			i;

	pthread_mutex_lock(&sh->unmatched_mu);
	for (i = 0; i < sh->unmatched_tables.n && strcmp(sh->unmatched_tables.items[i], table) != 0; i++)
		;
	if (i == sh->unmatched_tables.n)
	{
		strlist_add(&sh->unmatched_tables, table);
		sh->unmatched_counts = xrealloc(sh->unmatched_counts, sizeof(int64_t) * (size_t) sh->unmatched_tables.n);
		sh->unmatched_lsns = xrealloc(sh->unmatched_lsns, sizeof(uint64_t) * (size_t) sh->unmatched_tables.n);
		sh->unmatched_counts[i] = 0;
	}
	sh->unmatched_counts[i] += n;
	if (sh->unmatched_counts[i] == n || lsn > sh->unmatched_lsns[i])	/* new, or later */
		sh->unmatched_lsns[i] = lsn;
	pthread_mutex_unlock(&sh->unmatched_mu);
}

void
apply_take_unmatched(ApplyShared *sh, StrList *tables, int64_t **counts, uint64_t **lsns)
{
	pthread_mutex_lock(&sh->unmatched_mu);
	*tables = sh->unmatched_tables;
	*counts = sh->unmatched_counts;
	*lsns = sh->unmatched_lsns;
	memset(&sh->unmatched_tables, 0, sizeof(StrList));
	sh->unmatched_counts = NULL;
	sh->unmatched_lsns = NULL;
	pthread_mutex_unlock(&sh->unmatched_mu);
}

/*
 * An UPDATE or DELETE changed `missing` rows fewer than the source did:
 * the target lacks them (or holds them different). Counted per table for
 * status and metrics (ApplyShared); with stop_on_unmatched apply stops
 * here, before anything after this change is confirmed.
 */
static void
unmatched(Apply *a, const Sent *e, int64_t missing)
{
	const ApplyRel *r = rel_lookup(a, e->relid, false);
	const char *table = r ? r->qualname : "(unknown relation)";
	ApplyShared *sh = a->args->shared;
	int64_t		total = atomic_fetch_add(&sh->unmatched, missing) + missing;
	char		lsn[32];

	apply_add_unmatched(sh, table, missing, e->lsn);
	pg_lsn_format(e->lsn, lsn, sizeof(lsn));
	if (a->args->cfg->stop_on_unmatched)
	{
		log_error("the target has diverged: %s %s from the source transaction committed at %s matched %lld fewer rows on the target than on the source (a row is missing or different there); stopping (stop_on_unmatched). Fix: repair the table on the target (ferry verify shows the rows), then start again",
				  e->what, table, lsn, (long long) missing);
		pipe_fail(a, APPLY_FAILED);
	}
	else if ((total & (total - 1)) == 0)	/* the 1st, 2nd, 4th, 8th ... */
		log_warn("the target has diverged: %s %s from the source transaction committed at %s matched no row on the target (%lld such changes so far; ferry status lists them by table). Fix: repair the rows (ferry verify shows them); set stop_on_unmatched: true to stop apply on the first one",
				 e->what, table, lsn, (long long) total);
}

/* One result of the oldest entry in flight. */
static void
take_result(Apply *a, Sent *e, PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);

	if (st == PGRES_COMMAND_OK && e->expect > 0 && !a->pipe_failed)
	{
		long		changed = strtol(PQcmdTuples(res), NULL, 10);

		if (changed < e->expect)
			unmatched(a, e, e->expect - changed);
	}
	else if (st == PGRES_TUPLES_OK && e->kind == SENT_WAL && PQntuples(res) == 1)
		snprintf(a->last_value, sizeof(a->last_value), "%s", PQgetvalue(res, 0, 0));
	else if (st == PGRES_COMMAND_OK && e->kind == SENT_COMMIT && strcmp(PQcmdStatus(res), "COMMIT") != 0)
	{
		/* cannot happen: an error before it would have been read, and stopped everything */
		log_error("internal error: the target answered %s to a batch's COMMIT", PQcmdStatus(res));
		e->failed = true;
		pipe_fail(a, APPLY_FAILED);
	}
	else if (st == PGRES_FATAL_ERROR)
	{
		if (!a->pipe_failed)
		{
			char	   *err = pg_result_error_text(res, a->conn);
			const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			char		what[512];

			snprintf(a->last_sqlstate, sizeof(a->last_sqlstate), "%s", code ? code : "");
			describe_sent(a, e, what, sizeof(what));
			if (pg_interrupted())
				log_info("apply interrupted while %s", what);
			else
				log_error("could not apply to the target while %s: %s", what, err);
			free(err);
			a->fail_status = pg_interrupted() ? APPLY_STOPPED : failure_kind(a);
		}
		e->failed = true;
		pipe_fail(a, a->fail_status);
	}
	else if (st == PGRES_PIPELINE_ABORTED)
	{
		e->failed = true;
		pipe_fail(a, a->fail_status);
	}
}

/*
 * Wait up to a second for the target to answer, keeping the source's
 * connection alive meanwhile (a long statement or a lock wait on the target
 * must not let the source drop us for wal_sender_timeout). False if the
 * target connection broke, or was abandoned PG_STOP_GRACE_MS after a stop.
 */
static bool
wait_target(Apply *a)
{
	struct pollfd pfd = {PQsocket(a->conn), POLLIN, 0};
	int			rc;

	/* a stop's cancel may never be answered: give the target its grace, no more */
	if (pg_interrupted())
	{
		if (a->stop_wait_ms == 0)
			a->stop_wait_ms = pg_now_ms();
		else if (pg_now_ms() - a->stop_wait_ms > PG_STOP_GRACE_MS)
		{
			pg_abandon(a->conn, "ferry is stopping and the target did not answer in time; connection closed");
			return false;
		}
	}
	rc = poll(&pfd, 1, pg_interrupted() ? 100 : 1000);

	if (a->src.conn != NULL)
		(void) source_keepalive(&a->src, atomic_load(&a->args->shared->flushed_lsn), false, false);
	if (rc < 0 && errno != EINTR)
		return false;
	return rc <= 0 || PQconsumeInput(a->conn) == 1;
}

/*
 * Read the results that came back, in the order the statements were sent
 * (Apply.sent). With keep >= 0, wait until at most `keep` statements are
 * unanswered; the last thing sent must then be a sync or a flush request
 * (the server holds results back until one, or until its output buffer
 * fills). With keep < 0, take only what arrived and return.
 * A COMMIT that succeeded publishes its batch (batch_committed).
 *
 * False (logged once) if a statement failed or the connection broke. After
 * an error the server skips everything up to the next sync, so no later
 * statement or COMMIT ran; the caller gives up the session (abort_batch).
 * This is why a sync is only ever sent with a wait for nothing left right
 * after it (sync_pipeline): a sync
 * would end the skipping, and a failed COMMIT must not let the next batch
 * run before ferry has seen the failure.
 */
static bool
read_results(Apply *a, int keep)
{
	bool		wait = keep >= 0;

	if (!wait && a->nsent > 0 && PQconsumeInput(a->conn) != 1)
	{
		pipe_broken(a, "lost the connection to the target");
		return false;
	}
	while (a->nsent > (keep > 0 ? keep : 0))
	{
		Sent	   *e = &a->sent[a->sent_first];
		PGresult   *res;

		if (PQisBusy(a->conn))
		{
			if (!wait)
				break;
			if (!wait_target(a))
			{
				pipe_broken(a, "lost the connection to the target");
				break;
			}
			continue;
		}
		res = PQgetResult(a->conn);
		if (res == NULL)
		{
			if (PQstatus(a->conn) != CONNECTION_OK)
			{
				pipe_broken(a, "lost the connection to the target");
				break;
			}
			/* the end of one statement's results */
			if (e->kind == SENT_COMMIT && !e->failed)
				batch_committed(a, e);
			else if (e->kind == SENT_WAL && !e->failed && !note_positions(a, a->last_value))
				pipe_fail(a, a->fail_status);
			sent_pop(a);
			continue;
		}
		if (PQresultStatus(res) == PGRES_PIPELINE_SYNC)
			sent_pop(a);		/* no NULL follows a sync's result */
		else
			take_result(a, e, res);
		PQclear(res);
	}
	return !a->pipe_failed;
}

/*
 * Send a sync and read every result up to it. False (logged) if anything
 * failed; the target transaction is then aborted and must be rolled back
 * by the caller.
 */
static bool
sync_pipeline(Apply *a)
{
	if (PQpipelineSync(a->conn) != 1)
	{
		pipe_broken(a, "could not send to the target");
		return false;
	}
	(void) sent_push(a, SENT_SYNC, "syncing", NULL);
	a->since_sync = 0;
	return read_results(a, 0);
}

/* Read every result in flight (a sync if anything was sent since the last). */
static bool
drain_pipeline(Apply *a)
{
	if (a->nsent == 0 && a->since_sync == 0)
		return !a->pipe_failed;
	return sync_pipeline(a);
}

static bool
send_simple(Apply *a, const char *sql, const char *what)
{
	if (PQsendQueryParams(a->conn, sql, 0, NULL, NULL, NULL, NULL, 0) != 1)
	{
		pipe_broken(a, "could not send to the target");
		return false;
	}
	note_sent(a, what, NULL);
	return true;
}

/*
 * The parameters of the progress statements (PROGRESS_UPDATE_SQL and
 * PROGRESS_ORIGIN_SQL; ORIGIN_ADVANCE_SQL takes v + 1), formatted in place.
 */
typedef struct ProgressParams
{
	char		lsn[32],
				ts[32],
				nch[32],
				ntx[32];
	const char *v[5];
} ProgressParams;

static void
progress_params(const Apply *a, ProgressParams *pp, uint64_t lsn, int64_t commit_time, int64_t changes, int64_t txns)
{
	pg_lsn_format(lsn, pp->lsn, sizeof(pp->lsn));
	snprintf(pp->ts, sizeof(pp->ts), "%" PRId64, commit_time);
	snprintf(pp->nch, sizeof(pp->nch), "%" PRId64, changes);
	snprintf(pp->ntx, sizeof(pp->ntx), "%" PRId64, txns);
	pp->v[0] = a->args->cfg->name;
	pp->v[1] = pp->lsn;
	pp->v[2] = pp->ts;
	pp->v[3] = pp->nch;
	pp->v[4] = pp->ntx;
}

/* One of batch_statements[] (prepared by setup_session): its entry in sent, or NULL (failed). */
static Sent *
send_named(Apply *a, const char *name, int n, const char *const *params, SentKind kind, const char *what)
{
	if (PQsendQueryPrepared(a->conn, name, n, params, NULL, NULL, 0) != 1)
	{
		pipe_broken(a, "could not send to the target");
		return NULL;
	}
	return sent_push(a, kind, what, NULL);
}

/*
 * After each statement: once APPLY_SYNC_EVERY statements are unanswered (a
 * large transaction, or a slow target), wait until half of them are. This
 * bounds what is in flight and reports a failure early, without draining
 * the target: it keeps the other half to work on while apply goes back to
 * the source (a full sync here left the walsender and the target idle in
 * turn during a large transaction). No sync: see read_results.
 */
static bool
maybe_sync(Apply *a)
{
	if (a->nsent < APPLY_SYNC_EVERY)
		return true;
	if (!read_results(a, -1))
		return false;
	if (a->nsent < APPLY_SYNC_EVERY)
		return true;
	if (PQsendFlushRequest(a->conn) != 1 || PQflush(a->conn) != 0)
	{
		pipe_broken(a, "could not send to the target");
		return false;
	}
	return read_results(a, APPLY_SYNC_EVERY / 2);
}

/* Outside the pipeline (it must be drained): run one query synchronously. */
static PGresult *
query_now(Apply *a, const char *what, const char *sql, int n, const char *const *params)
{
	PGresult   *res;

	if (!drain_pipeline(a))
		return NULL;
	if (PQexitPipelineMode(a->conn) != 1)
	{
		if (PQstatus(a->conn) != CONNECTION_OK)
		{
			log_error("lost the connection to the target: %s", PQerrorMessage(a->conn));
			a->fail_status = APPLY_FAILED_CONN;
			return NULL;
		}
		log_error("internal error: could not leave pipeline mode: %s", PQerrorMessage(a->conn));
		a->fail_status = APPLY_FAILED;
		return NULL;
	}
	res = pg_execute(a->conn, sql, n, params);
	if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		char	   *e = pg_result_error_text(res, a->conn);
		const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		snprintf(a->last_sqlstate, sizeof(a->last_sqlstate), "%s", code ? code : "");
		log_error("could not %s: %s", what, e);
		free(e);
		PQclear(res);
		res = NULL;
		a->fail_status = failure_kind(a);
	}
	if (PQenterPipelineMode(a->conn) != 1)
	{
		PQclear(res);
		/* a lost connection cannot enter pipeline mode: that is a reason to reconnect */
		a->fail_status = PQstatus(a->conn) != CONNECTION_OK ? APPLY_FAILED_CONN : APPLY_FAILED;
		return NULL;
	}
	return res;
}

/* ------------------------------------------------------------------ */
/* batches                                                              */

static bool flush_all_inserts(Apply *a);
static bool note_positions(Apply *a, char *text);
static void drop_pending_inserts(Apply *a);
static bool flush_updates(Apply *a, ApplyRel *r);
static const char *update_variant(Apply *a, ApplyRel *r, const char *mask, char *name, size_t namesize);

static bool
begin_batch(Apply *a)
{
	const char *name[1] = {a->args->cfg->name};

	if (in_batch(a))
		return true;

	if (!send_named(a, "ferry_begin", 0, NULL, SENT_STATEMENT, "starting a transaction") ||
		(!a->args->use_origin &&
		 !send_named(a, "ferry_mark", 1, name, SENT_STATEMENT, "marking the transaction as ferry's")))
		return false;
	/*
	 * Where the target's WAL ends, read at most every APPLY_WAL_READ_MS:
	 * here, it lies beyond the commit records of the batches before
	 * (note_positions). Read inside this transaction, not after the last
	 * COMMIT: a statement after it would open an implicit transaction that
	 * stays open until the next sync.
	 */
	if (a->wal_read_due && repl_now_us() - a->last_wal_read_us >= APPLY_WAL_READ_MS * 1000)
	{
		if (!send_named(a, "ferry_wal", 0, NULL, SENT_WAL, "reading the target's WAL position"))
			return false;
		a->last_wal_read_us = repl_now_us();
		a->wal_read_due = false;
	}
	a->batch_changes = 0;
	a->batch_txns = 0;
	a->batch_message = false;
	a->batch_end_lsn = 0;
	a->batch_started_us = repl_now_us();
	return true;
}

/*
 * Send the COMMIT of the open target transaction, with its position, and do
 * not wait for it: the next batch follows it in the pipeline while the
 * target works, and read_results publishes the batch when the COMMIT's
 * result comes back (batch_committed). Waiting for each commit's round
 * trip before sending more was most of ferry's own share of the lag under
 * a stream of small transactions. A flush request makes the server send
 * the results without a sync (see read_results for why not a sync).
 */
static bool
commit_batch(Apply *a)
{
	ProgressParams pp;
	bool		write_row;
	Sent	   *e;

	if (a->state == AS_BROKEN)
		return false;
	if (a->state != AS_BATCH)
		return true;			/* nothing open (or inside a source transaction: not called then) */
	if (!flush_all_inserts(a))
		return false;
	if (a->batch_end_lsn == 0)
	{
		/* nothing complete in it (e.g. only skipped transactions) */
		if (!send_simple(a, "ROLLBACK", "ending an empty transaction") || !sync_pipeline(a))
			return false;
		set_state(a, AS_IDLE);
		return true;
	}
	/*
	 * The position commits with the data: in the replication origin (the
	 * commit record carries it) and, every APPLY_PROGRESS_MS or when the
	 * batch holds a logical message that someone may be waiting for, in
	 * ferry.apply_progress too; without an origin, in the row every time.
	 * Updating that one row for every target transaction was a fifth of
	 * the target's CPU under small transactions (a HOT chain to walk and
	 * prune); the origin costs no write. apply_prepare_target resumes from
	 * the later of the two.
	 */
	write_row = !a->args->use_origin || a->batch_message ||
		repl_now_us() - a->row_written_us >= APPLY_PROGRESS_MS * 1000;
	progress_params(a, &pp, a->batch_end_lsn, a->batch_commit_time,
					a->row_changes + a->batch_changes, a->row_txns + a->batch_txns);
	if ((write_row && !send_named(a, "ferry_progress", 5, pp.v, SENT_STATEMENT, "recording the applied position")) ||
		(!write_row && !send_named(a, "ferry_origin", 2, pp.v + 1, SENT_STATEMENT, "advancing the replication origin")) ||
		(e = send_named(a, "ferry_commit", 0, NULL, SENT_COMMIT, "committing")) == NULL)
		return false;
	if (PQsendFlushRequest(a->conn) != 1 || PQflush(a->conn) != 0)
	{
		pipe_broken(a, "could not send to the target");
		return false;
	}
	e->end_lsn = a->batch_end_lsn;
	e->commit_time = a->batch_commit_time;
	e->changes = a->batch_changes;
	e->txns = a->batch_txns;
	set_state(a, AS_IDLE);
	a->wal_read_due = true;
	/* the row's bookkeeping is for what is sent: if this COMMIT fails, the session ends */
	if (write_row)
	{
		a->row_lsn = a->batch_end_lsn;
		a->row_changes = a->row_txns = 0;
		a->row_written_us = repl_now_us();
	}
	else
	{
		a->row_changes += a->batch_changes;
		a->row_txns += a->batch_txns;
	}
	a->batch_end_lsn = 0;		/* it is in e now */
	/* its result is read when the target's socket has it (the main loop polls it) */
	return true;
}

/* A batch's COMMIT succeeded (read_results): publish it. */
static void
batch_committed(Apply *a, const Sent *e)
{
	char		lsn[32];

	a->unmarked_src = e->end_lsn;
	a->applied_lsn = e->end_lsn;
	a->applied_commit_time = e->commit_time;
	atomic_store(&a->args->shared->applied_lsn, e->end_lsn);
	atomic_store(&a->args->shared->applied_commit_time, e->commit_time);
	atomic_store(&a->args->shared->applied_at, repl_now_us());
	atomic_fetch_add(&a->args->shared->changes, e->changes);
	atomic_fetch_add(&a->args->shared->txns, e->txns);
	if (log_get_level() == LOG_DEBUG)
	{
		pg_lsn_format(e->end_lsn, lsn, sizeof(lsn));
		log_debug("committed %" PRId64 " source transactions (%" PRId64 " changes) up to %s",
				  e->txns, e->changes, lsn);
	}
}

/*
 * Between batches: bring ferry.apply_progress up to the last committed batch
 * if commit_batch left it behind (the origin already has it), so that what
 * `status`, `verify` and the tests read is exact whenever apply is idle.
 */
static bool
write_progress_row(Apply *a)
{
	ProgressParams pp;
	PGresult   *res;

	if (in_batch(a) || a->row_lsn >= a->applied_lsn)
		return true;
	progress_params(a, &pp, a->applied_lsn, a->applied_commit_time, a->row_changes, a->row_txns);
	res = query_now(a, "record the applied position", PROGRESS_UPDATE_SQL, 5, pp.v);
	if (res == NULL)
		return false;
	PQclear(res);
	a->row_lsn = a->applied_lsn;
	a->row_changes = a->row_txns = 0;
	a->row_written_us = repl_now_us();
	return true;
}

/*
 * The target's WAL is flushed up to `flush`: publish the last committed
 * batch whose commit lies before it as ApplyShared.flushed_lsn.
 */
static void
note_flushed(Apply *a, uint64_t flush)
{
	int			k = 0;

	a->last_flush_check_us = repl_now_us();
	while (k < a->fq_len && a->fq_tgt[k] <= flush)
		k++;
	if (k > 0)
	{
		atomic_store(&a->args->shared->flushed_lsn, a->fq_src[k - 1]);
		memmove(a->fq_tgt, a->fq_tgt + k, sizeof(uint64_t) * (size_t) (a->fq_len - k));
		memmove(a->fq_src, a->fq_src + k, sizeof(uint64_t) * (size_t) (a->fq_len - k));
		a->fq_len -= k;
	}
}

/*
 * A WAL_POSITIONS_SQL result read after the last commit: its insert position
 * is beyond the commits of every batch committed since the previous read
 * (unmarked_src), so they are durable once the flushed position passes it.
 */
static bool
note_positions(Apply *a, char *text)
{
	uint64_t	tgt = 0,
				flush = 0;
	char	   *sp = strchr(text, ' ');

	if (sp == NULL || (*sp = '\0', !pg_lsn_parse(text, &tgt)) || !pg_lsn_parse(sp + 1, &flush))
	{
		log_error("internal error: no WAL position after commit (\"%s\")", text);
		a->fail_status = APPLY_FAILED;
		return false;
	}
	a->last_wal_read_us = repl_now_us();
	if (a->unmarked_src != 0)
	{
		if (a->fq_len == a->fq_cap)
		{
			a->fq_cap = a->fq_cap ? a->fq_cap * 2 : 64;
			a->fq_tgt = xrealloc(a->fq_tgt, sizeof(uint64_t) * (size_t) a->fq_cap);
			a->fq_src = xrealloc(a->fq_src, sizeof(uint64_t) * (size_t) a->fq_cap);
		}
		a->fq_tgt[a->fq_len] = tgt;
		a->fq_src[a->fq_len] = a->unmarked_src;
		a->fq_len++;
		a->unmarked_src = 0;
	}
	note_flushed(a, flush);
	return true;
}

/* Committed batches not yet known to be on the target's disk? */
static bool
flush_unknown(const Apply *a)
{
	return a->fq_len > 0 || a->unmarked_src != 0;
}

/*
 * The one rule for confirming more than flushed_lsn: may the source be told
 * it has everything received so far (the stream's position, which runs
 * ahead of the last applied transaction over WAL that holds nothing for
 * us)? Only when everything received is applied and durable: AS_IDLE
 * (no target or source transaction open, and nothing failed, cancelled or
 * rolled back in this session: AS_BROKEN is final), nothing in flight,
 * nothing read ahead, nothing whose flush is unknown. After a failure or a
 * cancel (a stop while the target made apply wait) the sent list is
 * cleared and no batch is open, which would look idle; AS_BROKEN is what
 * says that what was received may not be on the target. Every feedback
 * passes through here (stream.h's send_feedback confirms `received` only
 * when this is true), including the last word after the loop. Otherwise
 * the source is told flushed_lsn: the end of the last batch whose COMMIT
 * succeeded and whose commit record the target has flushed (note_flushed).
 */
static bool
caught_up(const Apply *a)
{
	return a->state == AS_IDLE && a->nsent == 0 && !a->stashed && !flush_unknown(a);
}

/*
 * Move ApplyShared.flushed_lsn up to the last committed batch whose target
 * commit is flushed. Only between batches (nothing in the pipeline). At most
 * every 20 ms unless `force` (each commit also reads the flushed position).
 */
static bool
advance_flushed(Apply *a, bool force)
{
	PGresult   *res;
	bool		ok;

	if (!flush_unknown(a) || in_batch(a))
		return true;
	if (!force && repl_now_us() - a->last_flush_check_us < 20000)
		return true;
	res = query_now(a, "read the target's WAL positions", WAL_POSITIONS_SQL, 0, NULL);
	if (res == NULL)
		return false;
	ok = note_positions(a, PQgetvalue(res, 0, 0));
	PQclear(res);
	return ok;
}

static void
abort_batch(Apply *a)
{
	PGresult   *r;

	drop_pending_inserts(a);
	set_state(a, AS_BROKEN);
	if (PQstatus(a->conn) != CONNECTION_OK)
		return;
	/* drain whatever is pending, then roll back outside the pipeline */
	(void) drain_pipeline(a);
	while ((r = pg_get_result(a->conn)) != NULL)
		PQclear(r);
	if (PQpipelineStatus(a->conn) != PQ_PIPELINE_OFF)
		PQexitPipelineMode(a->conn);
	pg_exec_quiet(a->conn, "ROLLBACK", NULL);
}

/* ------------------------------------------------------------------ */
/* relations and statements                                             */

/*
 * The name of one of a relation's prepared statements: kind 'i' single-row
 * INSERT, 'I' multi-row INSERT, 'U' multi-row UPDATE, 'd' DELETE, 'u' the
 * UPDATE variant `variant`; per generation (bumped by each Relation message).
 * Mixed case: quote it (pg_quote_ident) wherever it appears in SQL text.
 */
static const char *
stmt_name(char *buf, size_t size, char kind, const ApplyRel *r, int variant)
{
	if (kind == 'u')
		snprintf(buf, size, "u%u_%d_%d", r->relid, r->gen, variant);
	else
		snprintf(buf, size, "%c%u_%d", kind, r->relid, r->gen);
	return buf;
}

/*
 * Drop the prepared statements of a relation's current generation. The
 * walsender sends a Relation message again after every invalidation of the
 * table's cache entry (ALTER TABLE, but also each VACUUM or ANALYZE of it),
 * and each one starts a new generation: over weeks of following, the
 * target's apply session would otherwise pile up prepared statements.
 * Sent in the pipeline; the next sync reads the results. The names are
 * quoted: unquoted, "I16385_0" (a multi-row INSERT) is folded to the
 * single-row "i16385_0".
 */
static bool
deallocate_one(Apply *a, char kind, const ApplyRel *r, int variant)
{
	char		name[64];
	char	   *q = pg_quote_ident(a->conn, stmt_name(name, sizeof(name), kind, r, variant));
	char	   *sql = q ? xasprintf("DEALLOCATE %s", q) : NULL;
	bool		ok = sql != NULL && send_simple(a, sql, "dropping a prepared statement");

	free(sql);
	free(q);
	return ok;
}

static bool
deallocate_statements(Apply *a, const ApplyRel *r)
{
	bool		ok = (!r->ins_prepared || deallocate_one(a, 'i', r, 0)) &&
		(!r->multi_prepared || deallocate_one(a, 'I', r, 0)) &&
		(!r->umulti_prepared || deallocate_one(a, 'U', r, 0)) &&
		(!r->del_prepared || deallocate_one(a, 'd', r, 0));

	for (int i = 0; ok && i < r->nupd; i++)
		ok = deallocate_one(a, 'u', r, r->upd[i].id);
	return ok;
}

/*
 * Match the Relation message's columns to the target table's (`res`, rows
 * of TARGET_COLUMNS_SQL) by name: map[i] is the result row of msg->cols[i].
 * The order may differ: a restored inheritance child lists its parent's
 * columns first, where the source's child has a column added to the parent
 * after it was created last (pg_dump cannot keep that order; the regression
 * database's b_star), and every statement names its columns. Returns true
 * when both have the same columns; otherwise writes both lists into `diff`.
 */
static bool
match_columns(const PgoRelation *msg, const PGresult *res, int *map, StrBuf *diff)
{
	int			nt = PQntuples(res);
	int			ntcols = nt > 0 && !PQgetisnull(res, 0, 1) ? nt : 0;
	bool		same = ntcols == msg->ncols;

	if (nt == 0)
	{
		strbuf_addf(diff, "the table does not exist on the target");
		return false;
	}
	for (int i = 0; same && i < msg->ncols; i++)
	{
		map[i] = -1;
		for (int t = 0; t < ntcols && map[i] < 0; t++)
			if (strcmp(PQgetvalue(res, t, 1), msg->cols[i].name) == 0)
				map[i] = t;
		same = map[i] >= 0;
	}
	if (same)
		return true;
	strbuf_addstr(diff, "source columns (");
	for (int i = 0; i < msg->ncols; i++)
		strbuf_addf(diff, "%s%s", i ? ", " : "", msg->cols[i].name);
	strbuf_addstr(diff, "), target columns (");
	for (int i = 0; i < ntcols; i++)
		strbuf_addf(diff, "%s%s", i ? ", " : "", PQgetvalue(res, i, 1));
	strbuf_addstr(diff, ")");
	return false;
}

/*
 * A Relation message: remember it, and check the target table has the same
 * columns (in any order). Returns false with fail_status APPLY_FAILED_SCHEMA
 * on a mismatch.
 */
/* Free an array of n owned strings (NULL items fine) and the array. */
static void
names_free(char **names, int n)
{
	for (int i = 0; names && i < n; i++)
		free(names[i]);
	free(names);
}

static bool
handle_relation(Apply *a, const PgoRelation *msg)
{
	ApplyRel   *r;
	char	   *qn = pg_quote_ident(a->conn, msg->nspname);
	char	   *qr = pg_quote_ident(a->conn, msg->relname);
	char	   *qual = qn && qr ? xasprintf("%s.%s", qn, qr) : NULL;
	const char *params[1] = {qual};
	char	  **qcols = xcalloc((size_t) msg->ncols + 1, sizeof(char *));
	PGresult   *res;
	StrBuf		diff;
	int			nt;
	int		   *map;
	int			gen = 0;
	bool		quoted = qual != NULL;

	free(qn);
	free(qr);
	/* every column name quoted once, by libpq for the target's encoding */
	for (int i = 0; quoted && i < msg->ncols; i++)
		quoted = (qcols[i] = pg_quote_ident(a->conn, msg->cols[i].name)) != NULL;
	if (!quoted || !flush_all_inserts(a))
	{
		names_free(qcols, msg->ncols);
		free(qual);
		if (!quoted)
			a->fail_status = APPLY_FAILED;
		return false;
	}
	res = query_now(a, "read the target table's columns", TARGET_COLUMNS_SQL, 1, params);
	if (res == NULL)
	{
		free(qual);
		names_free(qcols, msg->ncols);
		return false;
	}
	strbuf_init(&diff);
	nt = PQntuples(res);
	map = xcalloc((size_t) msg->ncols + 1, sizeof(int));
	if (!match_columns(msg, res, map, &diff))
	{
		free(map);
		log_error("table %s differs between source and target: %s; nothing is applied until the target has the same change. Fix: apply the source's schema change (ALTER TABLE ...) on the target; ferry retries and then continues",
				  qual, diff.data);
		strbuf_release(&diff);
		PQclear(res);
		free(qual);
		names_free(qcols, msg->ncols);
		a->fail_status = APPLY_FAILED_SCHEMA;
		return false;
	}
	strbuf_release(&diff);

	if (a->relcap == 0 || (rel_lookup(a, msg->relid, false) == NULL && a->relcap < 4))
		rels_grow(a);
	r = rel_lookup(a, msg->relid, false);
	if (r)
	{
		gen = r->gen + 1;
		if (!deallocate_statements(a, r))
		{
			PQclear(res);
			free(qual);
			names_free(qcols, msg->ncols);
			return false;
		}
		rel_clear(r);
	}
	else
	{
		int			used = 0;

		for (int i = 0; i < a->relcap; i++)
			used += a->rels[i].rel != NULL;
		if (used * 2 >= a->relcap)
			rels_grow(a);
	}
	r = rel_lookup(a, msg->relid, true);
	r->relid = msg->relid;
	r->rel = pgo_relation_copy(msg);
	r->qualname = qual;
	r->qcols = qcols;
	qcols = NULL;
	r->gen = gen;
	r->partitioned = PQgetvalue(res, 0, 0)[0] == 'p';
	r->snapshot_lsn = table_snapshot(a, msg->nspname, msg->relname);
	/* FULL flags every column as key: it must find one row, not all equal ones */
	r->full = msg->replident == 'f';
	if (!r->full)
	{
		r->full = true;
		for (int i = 0; i < msg->ncols; i++)
			if (msg->cols[i].key)
				r->full = false;
	}
	r->always = xcalloc((size_t) msg->ncols + 1, 1);
	r->types = xcalloc((size_t) msg->ncols + 1, sizeof(char *));
	for (int i = 0; i < msg->ncols; i++)
	{
		r->always[i] = PQgetvalue(res, map[i], 2)[0] == 't' ? '1' : '0';
		r->any_always |= r->always[i] == '1';
		r->types[i] = xstrdup(PQgetvalue(res, map[i], 3));
	}
	free(map);
	r->batch_rows = msg->ncols > 0 ? APPLY_INSERT_BATCH : 1;
	/* a batch's parameters must fit Apply.params */
	if (msg->ncols > 0 && r->batch_rows * msg->ncols > APPLY_MAX_PARAMS)
		r->batch_rows = APPLY_MAX_PARAMS / msg->ncols;
	/*
	 * Merging updates per key sends a table's updates in another order; with
	 * a unique or exclusion index besides the key, a row-by-row check could
	 * then fail where the source's order succeeded (two rows swapping a
	 * unique value). Such tables get their updates in source order.
	 */
	r->no_hold = nt > 0 && !PQgetisnull(res, 0, 4) && PQgetvalue(res, 0, 4)[0] == 't';
	if (r->batch_rows < 1)
		r->batch_rows = 1;
	strbuf_init(&r->pend);
	r->pend_offs = xcalloc((size_t) r->batch_rows * (size_t) (msg->ncols ? msg->ncols : 1), sizeof(size_t));
	strbuf_init(&r->upend);
	r->upend_offs = xcalloc((size_t) r->batch_rows * (size_t) (msg->ncols ? msg->ncols : 1), sizeof(size_t));
	r->ukeys = xcalloc((size_t) r->batch_rows, sizeof(char *));
	PQclear(res);
	return true;
}

/*
 * Copy each value of a tuple, NUL-terminated, into the arena and note its
 * offset (SIZE_MAX for NULL) in a->poffs from index *n on. Offsets, not
 * pointers: the arena may move as it grows; send_prepared() resolves them.
 */
static void
tuple_params(Apply *a, const PgoTuple *t, int *n, const char *skip_mask)
{
	int			k = *n;

	for (int i = 0; i < t->ncols && k < APPLY_MAX_PARAMS; i++)
	{
		if (skip_mask && skip_mask[i] == '1')
			continue;
		if (t->cols[i].kind == 'n')
			a->poffs[k] = SIZE_MAX;
		else
		{
			a->poffs[k] = a->arena.len;
			strbuf_add(&a->arena, t->cols[i].data, t->cols[i].len);
			strbuf_addch(&a->arena, '\0');
		}
		k++;
	}
	*n = k;
}

/*
 * Append "a = $n AND b = $n+1" (or the FULL form) for the identity. FULL
 * compares every column as text, since not every type has an equality
 * operator (json, point, xml), but the source's text is first read back
 * into the column's type and printed by the target: how a server prints a
 * value depends on it and its settings (bytea_output, a float before 12,
 * a time zone), and the row must be found however the source printed it;
 * byte for byte (COLLATE "C"): under a nondeterministic collation 'abc'
 * equals 'ABC', and the other row would be changed.
 */
static void
where_clause(StrBuf *sql, const ApplyRel *r, int first_param)
{
	int			p = first_param;
	bool		any = false;

	if (r->full)
	{
		strbuf_addf(sql, " WHERE (tableoid, ctid) IN (SELECT tableoid, ctid FROM %s%s WHERE ",
					r->partitioned ? "" : "ONLY ", r->qualname);
		for (int i = 0; i < r->rel->ncols; i++)
		{
			const char *c = r->qcols[i];

			strbuf_addf(sql, "%s(%s::text COLLATE \"C\") IS NOT DISTINCT FROM ($%d::%s)::text", any ? " AND " : "", c, p++, r->types[i]);
			any = true;
		}
		strbuf_addstr(sql, " LIMIT 1)");
		return;
	}
	strbuf_addstr(sql, " WHERE ");
	for (int i = 0; i < r->rel->ncols; i++)
	{
		const char *c;

		if (!r->rel->cols[i].key)
			continue;
		c = r->qcols[i];
		strbuf_addf(sql, "%s%s = $%d", any ? " AND " : "", c, p++);
		any = true;
	}
}

static bool
prepare(Apply *a, const char *name, const char *sql, int nparams)
{
	if (PQsendPrepare(a->conn, name, sql, nparams, NULL) != 1)
	{
		pipe_broken(a, "could not send to the target");
		return false;
	}
	note_sent(a, "preparing a statement", xasprintf("preparing %s", sql));
	return true;
}

/* The identity values of a change: the old tuple if sent, else the new one. */
static void
identity_params(Apply *a, const ApplyRel *r, char oldkind, const PgoTuple *old, const PgoTuple *newt, int *n)
{
	const PgoTuple *src = oldkind ? old : newt;

	if (r->full)
	{
		tuple_params(a, src, n, NULL);
		return;
	}
	/* a 'K' old tuple carries only key columns (others null); 'O' all */
	{
		char		mask[4096];

		for (int i = 0; i < src->ncols && i < (int) sizeof(mask) - 1; i++)
			mask[i] = r->rel->cols[i].key ? '0' : '1';
		mask[src->ncols < (int) sizeof(mask) - 1 ? src->ncols : (int) sizeof(mask) - 1] = '\0';
		tuple_params(a, src, n, mask);
	}
}

/*
 * Send the prepared change statement `name` of r with the n parameters in
 * a->params; `changes` rows count in the batch. An error on it reads
 * "VERB [ROWS LINK] TABLE" (describe_sent).
 */
static bool
send_change(Apply *a, const char *name, int n, const ApplyRel *r, const char *verb, int rows, const char *link,
			int changes, int expect)
{
	Sent	   *e;

	if (PQsendQueryPrepared(a->conn, name, n, a->params, NULL, NULL, 0) != 1)
	{
		pipe_broken(a, "could not send to the target");
		return false;
	}
	e = sent_push(a, SENT_STATEMENT, verb, NULL);
	e->relid = r->relid;
	e->rows = rows;
	e->link = link;
	e->expect = expect;
	e->lsn = a->txn_final_lsn;
	a->batch_changes += changes;
	return maybe_sync(a);
}

/* A one-row statement whose parameters are in the arena (a->poffs). */
static bool
send_prepared(Apply *a, const char *name, int n, const char *what, const ApplyRel *r)
{
	for (int i = 0; i < n; i++)
		a->params[i] = a->poffs[i] == SIZE_MAX ? NULL : a->arena.data + a->poffs[i];
	return send_change(a, name, n, r, what, 0, NULL, 1, 1);
}

/* The column list "(a, b, c)" of a relation, owned. */
static char *
column_list(const ApplyRel *r)
{
	StrBuf		sb;

	strbuf_init(&sb);
	strbuf_addch(&sb, '(');
	for (int i = 0; i < r->rel->ncols; i++)
	{
		const char *c = r->qcols[i];

		strbuf_addf(&sb, "%s%s", i ? ", " : "", c);
	}
	strbuf_addch(&sb, ')');
	return strbuf_detach(&sb);
}

/*
 * Prepare the INSERT of `rows` rows. One row takes untyped parameters (they
 * get the column types); several need explicit casts, because a multi-row
 * VALUES list would otherwise type them as text.
 */
static bool
prepare_insert(Apply *a, ApplyRel *r, const char *name, int rows)
{
	StrBuf		sql;
	char	   *cols = column_list(r);
	int			p = 1;
	bool		ok;

	strbuf_init(&sql);
	strbuf_addf(&sql, "INSERT INTO %s %s%s VALUES ", r->qualname, cols,
				r->any_always ? " OVERRIDING SYSTEM VALUE" : "");
	for (int k = 0; k < rows; k++)
	{
		strbuf_addstr(&sql, k ? ", (" : "(");
		for (int i = 0; i < r->rel->ncols; i++, p++)
		{
			if (rows > 1)
				strbuf_addf(&sql, "%s$%d::%s", i ? ", " : "", p, r->types[i]);
			else
				strbuf_addf(&sql, "%s$%d", i ? ", " : "", p);
		}
		strbuf_addch(&sql, ')');
	}
	ok = prepare(a, name, sql.data, p - 1);
	strbuf_release(&sql);
	free(cols);
	return ok;
}

/* Send a prepared statement whose values are rows [first, first+rows) of r->pend. */
static bool
send_pending(Apply *a, ApplyRel *r, const char *name, int first, int rows)
{
	int			n = rows * r->rel->ncols;
	const size_t *offs = r->pend_offs + (size_t) first * (size_t) r->rel->ncols;

	for (int i = 0; i < n; i++)
		a->params[i] = offs[i] == SIZE_MAX ? NULL : r->pend.data + offs[i];
	return send_change(a, name, n, r, "inserting", rows, "rows into", rows, 0);
}

/*
 * Send a prepared UPDATE of r (of `rows` rows, 0: one) whose n parameters
 * are values in `base` at offsets offs[order[i]] (order NULL: offs[i]).
 * `changes` is added to the batch's change count.
 */
static bool
send_offsets(Apply *a, const char *name, const char *base, const size_t *offs, const int *order, int n,
			 const ApplyRel *r, int rows, int changes)
{
	for (int i = 0; i < n; i++)
	{
		size_t		o = offs[order ? order[i] : i];

		a->params[i] = o == SIZE_MAX ? NULL : base + o;
	}
	return send_change(a, name, n, r, "updating", rows, "rows of", changes, rows > 0 ? rows : 1);
}

/* Send the inserts waiting for r: a full batch at once, a partial one row by row. */
static bool
flush_inserts(Apply *a, ApplyRel *r)
{
	char		name[64];
	bool		ok = true;

	if (r->npend == 0)
		return true;
	if (r->npend == r->batch_rows && r->batch_rows > 1)
	{
		stmt_name(name, sizeof(name), 'I', r, 0);
		if (!r->multi_prepared && !(r->multi_prepared = prepare_insert(a, r, name, r->batch_rows)))
			return false;
		ok = send_pending(a, r, name, 0, r->batch_rows);
	}
	else
	{
		stmt_name(name, sizeof(name), 'i', r, 0);
		if (!r->ins_prepared && !(r->ins_prepared = prepare_insert(a, r, name, 1)))
			return false;
		for (int k = 0; ok && k < r->npend; k++)
			ok = send_pending(a, r, name, k, 1);
	}
	r->npend = 0;
	strbuf_reset(&r->pend);
	return ok;
}

static bool
flush_all_inserts(Apply *a)
{
	bool		ok = true;

	for (int i = 0; i < a->npending; i++)
	{
		ApplyRel   *r = rel_lookup(a, a->pending[i], false);

		if (r)
		{
			ok = ok && flush_inserts(a, r) && flush_updates(a, r);
			r->listed = false;
		}
	}
	a->npending = 0;
	return ok;
}

/* Forget waiting inserts (their transaction is rolled back). */
static void
drop_pending_inserts(Apply *a)
{
	for (int i = 0; i < a->npending; i++)
	{
		ApplyRel   *r = rel_lookup(a, a->pending[i], false);

		if (r)
		{
			r->npend = 0;
			strbuf_reset(&r->pend);
			for (int k = 0; k < r->nupend; k++)
			{
				free(r->ukeys[k]);
				r->ukeys[k] = NULL;
			}
			r->nupend = 0;
			strbuf_reset(&r->upend);
			r->listed = false;
		}
	}
	a->npending = 0;
}

static void
list_pending(Apply *a, ApplyRel *r)
{
	if (r->listed)
		return;
	if (a->npending == a->pendcap)
	{
		a->pendcap = a->pendcap ? a->pendcap * 2 : 64;
		a->pending = xrealloc(a->pending, sizeof(uint32_t) * (size_t) a->pendcap);
	}
	a->pending[a->npending++] = r->relid;
	r->listed = true;
}

static bool
apply_insert(Apply *a, ApplyRel *r, const PgoTuple *t)
{
	size_t	   *offs;

	/* an earlier update of this table goes first */
	if (!flush_updates(a, r))
		return false;

	if (t->ncols != r->rel->ncols || t->ncols > 1600)
	{
		log_error("insert into %s has %d columns, its Relation message %d", r->qualname, t->ncols, r->rel->ncols);
		a->fail_status = APPLY_FAILED;
		return false;
	}
	offs = r->pend_offs + (size_t) r->npend * (size_t) r->rel->ncols;
	for (int i = 0; i < t->ncols; i++)
	{
		if (t->cols[i].kind == 'n')
			offs[i] = SIZE_MAX;
		else
		{
			offs[i] = r->pend.len;
			strbuf_add(&r->pend, t->cols[i].data, t->cols[i].len);
			strbuf_addch(&r->pend, '\0');
		}
	}
	r->npend++;
	list_pending(a, r);
	if (r->npend == r->batch_rows || r->pend.len > APPLY_INSERT_BYTES)
		return flush_inserts(a, r);
	return true;
}

static bool
apply_delete(Apply *a, ApplyRel *r, char oldkind, const PgoTuple *old)
{
	char		name[64];
	int			n = 0;

	if (!flush_inserts(a, r) || !flush_updates(a, r))
		return false;

	if (old->ncols != r->rel->ncols || old->ncols > 1600)
	{
		log_error("delete from %s has %d columns, its Relation message %d", r->qualname, old->ncols, r->rel->ncols);
		a->fail_status = APPLY_FAILED;
		return false;
	}
	stmt_name(name, sizeof(name), 'd', r, 0);
	if (!r->del_prepared)
	{
		StrBuf		sql;
		int			np = 0;

		strbuf_init(&sql);
		strbuf_addf(&sql, "DELETE FROM %s%s", r->partitioned ? "" : "ONLY ", r->qualname);
		where_clause(&sql, r, 1);
		for (int i = 0; i < r->rel->ncols; i++)
			np += r->full || r->rel->cols[i].key;
		if (!prepare(a, name, sql.data, np))
		{
			strbuf_release(&sql);
			return false;
		}
		strbuf_release(&sql);
		r->del_prepared = true;
	}
	strbuf_reset(&a->arena);
	identity_params(a, r, oldkind, old, NULL, &n);
	return send_prepared(a, name, n, "deleting from", r);
}

/*
 * The prepared UPDATE for a set of columns left out of SET (mask: '1' =
 * left out), created on first use. Its parameters: the SET columns in
 * order, then the identity (key columns, or all columns for FULL). Writes
 * the statement name into name and returns it, or NULL on failure.
 */
static const char *
update_variant(Apply *a, ApplyRel *r, const char *mask, char *name, size_t namesize)
{
	UpdVariant *v = NULL;

	for (int i = 0; i < r->nupd; i++)
		if (strcmp(r->upd[i].mask, mask) == 0)
			v = &r->upd[i];
	if (v == NULL)
	{
		StrBuf		sql;
		int			p = 1;
		int			np;

		r->upd = xrealloc(r->upd, sizeof(UpdVariant) * (size_t) (r->nupd + 1));
		v = &r->upd[r->nupd];
		v->mask = xstrdup(mask);
		v->id = r->nupd++;
		stmt_name(name, namesize, 'u', r, v->id);
		strbuf_init(&sql);
		strbuf_addf(&sql, "UPDATE %s%s SET ", r->partitioned ? "" : "ONLY ", r->qualname);
		for (int i = 0; i < r->rel->ncols; i++)
		{
			const char *c;

			if (mask[i] == '1')
				continue;
			c = r->qcols[i];
			strbuf_addf(&sql, "%s%s = $%d", p > 1 ? ", " : "", c, p);
			p++;
		}
		where_clause(&sql, r, p);
		np = p - 1;
		for (int i = 0; i < r->rel->ncols; i++)
			np += r->full || r->rel->cols[i].key;
		if (!prepare(a, name, sql.data, np))
		{
			strbuf_release(&sql);
			return NULL;
		}
		strbuf_release(&sql);
	}
	return stmt_name(name, namesize, 'u', r, v->id);
}

/* Send the updates waiting for r: a full batch as one statement, else one by one. */
static bool
flush_updates(Apply *a, ApplyRel *r)
{
	char		name[64];
	int			ncols = r->rel ? r->rel->ncols : 0;
	bool		ok = true;

	if (r->nupend == 0)
		return true;
	if (r->nupend == r->batch_rows && r->batch_rows > 1)
	{
		stmt_name(name, sizeof(name), 'U', r, 0);
		if (!r->umulti_prepared)
		{
			StrBuf		sql;
			int			p = 1;
			bool		first = true;

			strbuf_init(&sql);
			strbuf_addf(&sql, "UPDATE %s%s AS t SET ", r->partitioned ? "" : "ONLY ", r->qualname);
			for (int i = 0; i < ncols; i++)
			{
				const char *c;

				if (r->rel->cols[i].key)
					continue;
				c = r->qcols[i];
				strbuf_addf(&sql, "%s%s = v.c%d", first ? "" : ", ", c, i);
				first = false;
			}
			strbuf_addstr(&sql, " FROM (VALUES ");
			for (int k = 0; k < r->batch_rows; k++)
			{
				strbuf_addstr(&sql, k ? ", (" : "(");
				for (int i = 0; i < ncols; i++, p++)
					strbuf_addf(&sql, "%s$%d::%s", i ? ", " : "", p, r->types[i]);
				strbuf_addch(&sql, ')');
			}
			strbuf_addstr(&sql, ") AS v(");
			for (int i = 0; i < ncols; i++)
				strbuf_addf(&sql, "%sc%d", i ? ", " : "", i);
			strbuf_addstr(&sql, ") WHERE ");
			first = true;
			for (int i = 0; i < ncols; i++)
			{
				const char *c;

				if (!r->rel->cols[i].key)
					continue;
				c = r->qcols[i];
				strbuf_addf(&sql, "%st.%s = v.c%d", first ? "" : " AND ", c, i);
				first = false;
			}
			r->umulti_prepared = prepare(a, name, sql.data, p - 1);
			strbuf_release(&sql);
			if (!r->umulti_prepared)
				return false;
		}
		ok = send_offsets(a, name, r->upend.data, r->upend_offs, NULL, r->nupend * ncols,
						  r, r->nupend, 0);
	}
	else
	{
		char		mask[1700];
		int			order[1700];
		int			n = 0;

		for (int i = 0; i < ncols; i++)
			mask[i] = r->rel->cols[i].key ? '1' : '0';
		mask[ncols] = '\0';
		/* parameters: the non-key columns, then the key columns */
		for (int i = 0; i < ncols; i++)
			if (!r->rel->cols[i].key)
				order[n++] = i;
		for (int i = 0; i < ncols; i++)
			if (r->rel->cols[i].key)
				order[n++] = i;
		if (update_variant(a, r, mask, name, sizeof(name)) == NULL)
			return false;
		for (int k = 0; ok && k < r->nupend; k++)
			ok = send_offsets(a, name, r->upend.data, r->upend_offs + (size_t) k * (size_t) ncols, order, n,
							  r, 0, 0);
	}
	for (int k = 0; k < r->nupend; k++)
	{
		free(r->ukeys[k]);
		r->ukeys[k] = NULL;
	}
	r->nupend = 0;
	strbuf_reset(&r->upend);
	return ok;
}

/*
 * Hold a plain update (key unchanged, every column sent, keyed table
 * without GENERATED ALWAYS columns) for the batched UPDATE. Returns false
 * when the update does not qualify (*held stays false) or on failure.
 */
static bool
hold_update(Apply *a, ApplyRel *r, char oldkind, const PgoTuple *newt, bool *held)
{
	StrBuf		key;
	int			slot = -1;
	size_t	   *offs;
	int			nkey = 0;

	*held = false;
	if (r->full || r->no_hold || oldkind != 0 || r->any_always || r->batch_rows < 2)
		return true;
	for (int i = 0; i < newt->ncols; i++)
	{
		if (newt->cols[i].kind == 'u' || newt->cols[i].kind == 'b')
			return true;
		if (r->rel->cols[i].key)
		{
			if (newt->cols[i].kind == 'n')
				return true;
			nkey++;
		}
	}
	if (nkey == 0 || nkey == newt->ncols)
		return true;
	strbuf_init(&key);
	for (int i = 0; i < newt->ncols; i++)
		if (r->rel->cols[i].key)
		{
			strbuf_addf(&key, "%u:", newt->cols[i].len);
			strbuf_add(&key, newt->cols[i].data, newt->cols[i].len);
		}
	for (int k = 0; k < r->nupend && slot < 0; k++)
		if (strcmp(r->ukeys[k], key.data) == 0)
			slot = k;
	if (slot < 0)
	{
		slot = r->nupend++;
		r->ukeys[slot] = strbuf_detach(&key);
	}
	else
		strbuf_release(&key);
	offs = r->upend_offs + (size_t) slot * (size_t) newt->ncols;
	for (int i = 0; i < newt->ncols; i++)
	{
		if (newt->cols[i].kind == 'n')
			offs[i] = SIZE_MAX;
		else
		{
			offs[i] = r->upend.len;
			strbuf_add(&r->upend, newt->cols[i].data, newt->cols[i].len);
			strbuf_addch(&r->upend, '\0');
		}
	}
	a->batch_changes++;
	list_pending(a, r);
	*held = true;
	if (r->nupend == r->batch_rows || r->upend.len > APPLY_INSERT_BYTES)
		return flush_updates(a, r);
	return true;
}

static bool
apply_update(Apply *a, ApplyRel *r, char oldkind, const PgoTuple *old, const PgoTuple *newt)
{
	char		name[64];
	char		mask[1700];
	int			n = 0;
	int			nset = 0;
	bool		held;

	if (!flush_inserts(a, r))
		return false;

	if (newt->ncols != r->rel->ncols || newt->ncols > 1600 || (oldkind && old->ncols != r->rel->ncols))
	{
		log_error("update of %s does not match its Relation message", r->qualname);
		a->fail_status = APPLY_FAILED;
		return false;
	}
	if (!hold_update(a, r, oldkind, newt, &held))
		return false;
	if (held)
		return true;
	/* anything else runs in order, after what is held for this table */
	if (!flush_updates(a, r))
		return false;
	/*
	 * Columns left out of SET: unchanged TOAST values (the target keeps its
	 * own), key columns when the key did not change (no old key was sent:
	 * they are in WHERE with the same value), and GENERATED ALWAYS identity
	 * columns, which UPDATE may not set (their value cannot change on the
	 * source either, short of SET ... = DEFAULT).
	 */
	for (int i = 0; i < newt->ncols; i++)
	{
		bool		skip = newt->cols[i].kind == 'u' || r->always[i] == '1' ||
			(oldkind == 0 && !r->full && r->rel->cols[i].key);

		mask[i] = skip ? '1' : '0';
		nset += !skip;
	}
	mask[newt->ncols] = '\0';
	if (nset == 0)
		return true;			/* nothing to write: every column is kept */
	if (update_variant(a, r, mask, name, sizeof(name)) == NULL)
		return false;
	strbuf_reset(&a->arena);
	tuple_params(a, newt, &n, mask);
	identity_params(a, r, oldkind, old, newt, &n);
	return send_prepared(a, name, n, "updating", r);
}

static bool
apply_truncate(Apply *a, uint8_t options, int nrelids, const uint32_t *relids)
{
	StrBuf		sql;
	int			n = 0;
	bool		ok = true;

	if (!flush_all_inserts(a))
		return false;
	strbuf_init(&sql);
	strbuf_addstr(&sql, "TRUNCATE ");
	for (int i = 0; i < nrelids; i++)
	{
		ApplyRel   *r = rel_lookup(a, relids[i], false);

		if (r == NULL)
		{
			log_error("truncate of relation %u that was never described", relids[i]);
			a->fail_status = APPLY_FAILED;
			strbuf_release(&sql);
			return false;
		}
		if (r->snapshot_lsn > a->txn_final_lsn)
			continue;
		strbuf_addf(&sql, "%s%s%s", n ? ", " : "", r->partitioned ? "" : "ONLY ", r->qualname);
		n++;
	}
	if (options & PGO_TRUNCATE_RESTART_IDENTITY)
		strbuf_addstr(&sql, " RESTART IDENTITY");
	if (options & PGO_TRUNCATE_CASCADE)
		strbuf_addstr(&sql, " CASCADE");
	if (n > 0)
	{
		ok = send_simple(a, sql.data, "truncating") && maybe_sync(a);
		a->batch_changes++;
	}
	strbuf_release(&sql);
	return ok;
}

/* ------------------------------------------------------------------ */

static ApplyRel *
change_rel(Apply *a, uint32_t relid)
{
	ApplyRel   *r = a->relcap ? rel_lookup(a, relid, false) : NULL;

	if (r == NULL)
	{
		log_error("change for relation %u that was never described by a Relation message", relid);
		a->fail_status = APPLY_FAILED;
	}
	return r;
}

/* One decoded message. False = failure (fail_status set). */
static bool
handle(Apply *a, const PgoMessage *m)
{
	ApplyRel   *r;

	switch (m->kind)
	{
		case 'B':
			if (in_src_txn(a))
			{
				log_error("internal error: a Begin inside a source transaction in the change stream");
				a->fail_status = APPLY_FAILED;
				return false;
			}
			a->txn_final_lsn = m->u.begin.final_lsn;
			a->txn_commit_time = m->u.begin.commit_time;
			/* applied before a restart: its commit is at or before our position */
			if (m->u.begin.final_lsn < a->skip_until)
			{
				set_state(a, in_batch(a) ? AS_BATCH_SKIP : AS_SKIP);
				return true;
			}
			if (!begin_batch(a))
				return false;
			set_state(a, AS_TXN);
			return true;
		case 'C':
			if (!in_src_txn(a))
			{
				log_error("internal error: a Commit outside a source transaction in the change stream");
				a->fail_status = APPLY_FAILED;
				return false;
			}
			if (skipping(a))
			{
				set_state(a, a->state == AS_SKIP ? AS_IDLE : AS_BATCH);
				return true;
			}
			set_state(a, AS_BATCH);
			a->batch_end_lsn = m->u.commit.end_lsn;
			a->batch_commit_time = m->u.commit.commit_time;
			a->batch_txns++;
			return true;
		case 'R':
			return handle_relation(a, &m->u.relation);
		case 'O':
			/* reverse: what ferry's forward apply wrote must not go back */
			if (a->args->skip_origin && a->state == AS_TXN &&
				strcmp(m->u.origin.name, a->args->skip_origin) == 0)
			{
				log_debug("skipping a transaction from origin %s", m->u.origin.name);
				set_state(a, AS_BATCH_SKIP);
			}
			return true;
		case 'Y':
			return true;
		case 'M':
			/* reverse without an origin: the forward apply's mark (apply.h) */
			if (a->args->skip_origin && a->state == AS_TXN && m->u.message.transactional &&
				strcmp(m->u.message.prefix, APPLY_MARK_PREFIX) == 0 &&
				m->u.message.len == strlen(a->args->skip_origin) &&
				memcmp(m->u.message.content, a->args->skip_origin, m->u.message.len) == 0)
			{
				log_debug("skipping a transaction marked as applied by migration %s", a->args->skip_origin);
				set_state(a, AS_BATCH_SKIP);
				return true;
			}
			/* heartbeats: their commit moves the position; probes and sentinels are waited for */
			if (!skipping(a))
				a->batch_message = true;
			return true;
		case 'I':
		case 'U':
		case 'D':
			if (skipping(a))
				return true;
			r = change_rel(a, m->kind == 'I' ? m->u.insert.relid : m->kind == 'U' ? m->u.update.relid : m->u.delete_.relid);
			if (r == NULL)
				return false;
			if (r->snapshot_lsn > a->txn_final_lsn)
				return true;	/* already in this table's copy */
			if (m->kind == 'I')
				return apply_insert(a, r, &m->u.insert.newtup);
			if (m->kind == 'U')
				return apply_update(a, r, m->u.update.oldkind, &m->u.update.oldtup, &m->u.update.newtup);
			return apply_delete(a, r, m->u.delete_.oldkind, &m->u.delete_.oldtup);
		case 'T':
			if (skipping(a))
				return true;
			return apply_truncate(a, m->u.truncate.options, m->u.truncate.nrelids, m->u.truncate.relids);
		default:
			log_error("unexpected %s message in the change stream (ferry asks for protocol %d without streaming)",
					  pgo_kind_name(m->kind), a->args->proto_version);
			a->fail_status = APPLY_FAILED;
			return false;
	}
}

static bool
setup_session(Apply *a, const char *encoding)
{
	char	   *enc = pg_quote_literal(a->conn, encoding);
	char	   *sql = enc ? xasprintf("SET session_replication_role = replica; SET synchronous_commit = off;"
									" SET client_encoding = %s", enc) : NULL;
	bool		ok = sql != NULL && pg_exec(a->conn, "set up the apply session", sql);

	free(enc);
	free(sql);
	for (size_t i = 0; ok && i < sizeof(batch_statements) / sizeof(batch_statements[0]); i++)
	{
		const char *stmt = batch_statements[i].sql;
		PGresult   *res;

		if ((stmt == ORIGIN_ADVANCE_SQL && !a->args->use_origin) ||
			(stmt == MARK_SQL && a->args->use_origin))
			continue;
		if (stmt == PROGRESS_UPDATE_SQL && a->args->use_origin)
			stmt = PROGRESS_ORIGIN_SQL;
		res = PQprepare(a->conn, batch_statements[i].name, stmt, batch_statements[i].nparams, NULL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
		{
			char	   *e = pg_result_error_text(res, a->conn);

			log_error("could not prepare the apply session's statements: %s", e);
			free(e);
			ok = false;
		}
		PQclear(res);
	}
	if (ok && a->args->use_origin)
	{
		const char *params[1] = {a->args->cfg->name};
		PGresult   *res = pg_query(a->conn, "attach to the replication origin",
								   "SELECT pg_catalog.pg_replication_origin_session_setup($1)", 1, params);

		ok = res != NULL;
		PQclear(res);
	}
	return ok;
}

void *
apply_main(void *p)
{
	ApplyArgs  *args = p;
	Apply		a;
	ApplyStatus status = APPLY_STOPPED;
	char		err[256];

	log_set_role("apply");
	memset(&a, 0, sizeof(a));
	a.args = args;
	a.skip_until = args->start_lsn;
	a.row_lsn = a.applied_lsn = args->start_lsn;
	a.fail_status = APPLY_FAILED;
	strbuf_init(&a.arena);
	a.dec = pgo_decoder_new(args->proto_version);
	a.conn = pg_connect(args->cfg->target, "target", PG_CONN_SQL, NULL);
	if (a.conn == NULL)
	{
		status = APPLY_FAILED_CONN;
		goto done;
	}
	/*
	 * SIGINT/SIGTERM cancel what the target is running: a statement waiting
	 * for a lock on the target (or a long one) would otherwise hold up the
	 * stop for as long as it waits. The batch is then abandoned (take_result:
	 * "apply interrupted") and rolled back when the connection closes; its
	 * position was not recorded, so the next start applies it again.
	 */
	pg_cancel_register(a.conn);
	if (!setup_session(&a, args->source_encoding) || !load_snapshots(&a) ||
		PQenterPipelineMode(a.conn) != 1)
	{
		status = failure_kind(&a);
		goto done;
	}
	rels_grow(&a);

	if (!source_start(&a.src, args->cfg, args->slot, args->publications, args->start_lsn,
					  args->proto_version, args->messages))
	{
		status = a.src.status == STREAM_FAILED ? APPLY_FAILED : APPLY_FAILED_CONN;
		goto done;
	}

	for (;;)
	{
		ReplFrame	f;
		PgoMessage	m;
		int			wait_ms = 1000;
		SourceResult sr;

		assert(check_state(&a));
		atomic_store(&args->shared->received_lsn, a.src.received);
		if (atomic_load(&args->shared->stop) && !in_src_txn(&a))
		{
			status = commit_batch(&a) && drain_pipeline(&a) && write_progress_row(&a) ? APPLY_STOPPED : a.fail_status;
			/* let the last commits reach disk so the final feedback covers them */
			for (int i = 0; status == APPLY_STOPPED && flush_unknown(&a) && i < 40; i++)
			{
				if (!advance_flushed(&a, true))
					break;
				if (flush_unknown(&a))
					usleep(50000);
			}
			break;
		}
		/*
		 * Between source transactions with nothing more read ahead: commit,
		 * unless the target still runs the previous COMMIT (then the batch
		 * grows until its result is read, see below).
		 */
		if (a.state == AS_BATCH && !a.stashed && a.commits_in_flight == 0 && !commit_batch(&a))
		{
			status = a.fail_status;
			break;
		}
		if (a.state == AS_BATCH)
		{
			int64_t		age_ms = (repl_now_us() - a.batch_started_us) / 1000;

			wait_ms = age_ms >= APPLY_BATCH_MS ? 0 : (int) (APPLY_BATCH_MS - age_ms);
		}
		else if (!in_batch(&a) && (flush_unknown(&a) || a.row_lsn < a.applied_lsn))
			wait_ms = 20;		/* commits to be known flushed, or a progress row behind */
		if (a.stashed)
		{
			sr = a.stash_result;
			f = a.stash;
			a.stashed = false;
		}
		else					/* with results in flight, wake for them too */
			sr = source_next(&a.src, &f, wait_ms, a.nsent > 0 ? PQsocket(a.conn) : -1,
							 atomic_load(&args->shared->flushed_lsn), caught_up(&a));
		if (sr == SOURCE_READABLE)
		{
			if (!read_results(&a, -1))
			{
				status = a.fail_status;
				break;
			}
			continue;
		}
		if (sr == SOURCE_END)
		{
			/*
			 * The stream ended. Between transactions the batch commits; inside
			 * one, the whole batch rolls back (complete transactions in it too:
			 * none was confirmed, so they are streamed and applied again).
			 */
			if (in_src_txn(&a))
				abort_batch(&a);
			else if (!commit_batch(&a) || !drain_pipeline(&a) || !write_progress_row(&a))
			{
				status = a.fail_status;
				break;
			}
			status = a.src.status == STREAM_FAILED ? APPLY_FAILED : APPLY_FAILED_CONN;
			break;
		}
		if (sr == SOURCE_TIMEOUT)
		{
			if (atomic_load(&args->shared->stop) && in_src_txn(&a))
			{
				/* asked to stop in the middle of a transaction: abandon it */
				abort_batch(&a);
				status = APPLY_STOPPED;
				break;
			}
			if (a.state == AS_BATCH && !commit_batch(&a))
			{
				status = a.fail_status;
				break;
			}
			/* idle: collect every result, end the server's pipeline state */
			if (!in_batch(&a) && (!drain_pipeline(&a) || !write_progress_row(&a) || !advance_flushed(&a, false)))
			{
				status = a.fail_status;
				break;
			}
			continue;
		}
		if (!pgo_decode(a.dec, f.data, f.len, &m, err, sizeof(err)))
		{
			log_error("could not decode a change from the source at %X/%X: %s",
					  (unsigned) (f.wal_start >> 32), (unsigned) f.wal_start, err);
			status = APPLY_FAILED;
			break;
		}
		if (!handle(&a, &m))
		{
			status = a.fail_status;
			break;
		}
		/*
		 * A complete source transaction: commit the batch if it is full, or
		 * (at the top of the loop) if nothing more has arrived (caught up:
		 * commit now, so lag stays low) and the target is not still busy
		 * with the previous COMMIT. To know whether more arrived, read ahead
		 * one message from what libpq already holds (no system call: a read
		 * of the socket here found nothing most of the time under small
		 * transactions) and keep it for the next turn. While a COMMIT is in
		 * flight the batch stays open and grows, and is committed as soon as
		 * that COMMIT's result comes back (SOURCE_READABLE): committing it earlier
		 * would not make it visible sooner, since the target runs the
		 * COMMITs one after the other, but would cost the target a commit
		 * for every source transaction where a backlog drains (batches of
		 * one transaction doubled the target's CPU per transaction).
		 */
		if (m.kind == 'C' && in_batch(&a))
		{
			bool		commit = a.batch_changes >= APPLY_BATCH_CHANGES ||
				(repl_now_us() - a.batch_started_us) / 1000 >= APPLY_BATCH_MS;

			/* has the COMMIT in flight come back? (read without waiting) */
			if (!commit && a.commits_in_flight > 0 && !read_results(&a, -1))
			{
				status = a.fail_status;
				break;
			}
			if (!commit)
			{
				a.stash_result = source_next(&a.src, &a.stash, -1, -1,
											 atomic_load(&args->shared->flushed_lsn), caught_up(&a));
				a.stashed = a.stash_result != SOURCE_TIMEOUT;
				commit = a.stash_result == SOURCE_END;	/* else see the top of the loop */
			}
			if (commit && !commit_batch(&a))
			{
				status = a.fail_status;
				break;
			}
		}
		if (atomic_load(&args->shared->stop) && in_src_txn(&a))
		{
			abort_batch(&a);
			status = APPLY_STOPPED;
			break;
		}
	}
	/*
	 * A failure, or a stop that cancelled a statement (take_result: "apply
	 * interrupted", fail_status APPLY_STOPPED): roll back whatever the
	 * target still holds open; caught_up() stays false from here on.
	 */
	if ((status != APPLY_STOPPED || a.pipe_failed) && a.conn)
		abort_batch(&a);

done:
	clear_sent(&a);
	free(a.sent);
	if (a.rels)
	{
		for (int i = 0; i < a.relcap; i++)
			if (a.rels[i].rel)
				rel_clear(&a.rels[i]);
		free(a.rels);
	}
	for (int i = 0; i < a.nsnaps; i++)
	{
		free(a.snaps[i].nspname);
		free(a.snaps[i].relname);
	}
	free(a.snaps);
	free(a.pending);
	free(a.fq_tgt);
	free(a.fq_src);
	strbuf_release(&a.arena);
	pgo_decoder_free(a.dec);
	pg_finish(a.conn);
	atomic_store(&args->shared->status, (int) status);
	/* the last word to the source: what is durable now */
	if (a.src.status == STREAM_RUNNING)
		(void) source_keepalive(&a.src, atomic_load(&args->shared->flushed_lsn), caught_up(&a), true);
	source_finish(&a.src);
	return NULL;
}

bool
apply_prepare_target(const FerryConfig *cfg, bool *use_origin, uint64_t *applied_lsn)
{
	PGconn	   *conn = pg_connect(cfg->target, "target", PG_CONN_SQL, NULL);
	const char *params[1] = {cfg->name};
	PGresult   *res;
	bool		ok = false;
	bool		fresh;

	if (conn == NULL)
		return false;
	res = pg_query(conn, "create the apply position",
				   "INSERT INTO ferry.apply_progress (migration, applied_lsn)"
				   " SELECT name, start_lsn FROM ferry.migration WHERE name = $1"
				   " ON CONFLICT (migration) DO NOTHING RETURNING 1", 1, params);
	if (res == NULL)
		goto done;
	fresh = PQntuples(res) == 1;
	PQclear(res);
	/*
	 * The row was committed asynchronously and may not be on disk yet; the
	 * stream will confirm this position to the source at once. One commit
	 * with synchronous_commit on flushes all WAL before it, so it is durable
	 * (and so are the origin positions of earlier asynchronous commits).
	 */
	if (!pg_exec(conn, "make the apply position durable", "SET synchronous_commit = on"))
		goto done;
	res = pg_query(conn, "make the apply position durable",
				   "UPDATE ferry.apply_progress SET applied_at = applied_at WHERE migration = $1", 1, params);
	if (res == NULL)
		goto done;
	PQclear(res);
	res = pg_query(conn, "read the apply position",
				   "SELECT applied_lsn::text FROM ferry.apply_progress WHERE migration = $1", 1, params);
	if (res == NULL || !pg_check_shape(res, 1, 1, "the apply position") ||
		!pg_lsn_parse(PQgetvalue(res, 0, 0), applied_lsn))
		goto done;
	PQclear(res);
	/*
	 * The origin marks ferry's writes (for reverse replication) and advances
	 * with every target transaction; the row may lag behind it. One left by
	 * an earlier migration of the same name (a new position row) is dropped.
	 */
	{
		PGresult   *o;

		if (fresh)
			PQclear(pg_execute(conn,
								 "SELECT pg_catalog.pg_replication_origin_drop(n)"
								 "  FROM (SELECT $1::text AS n) x"
								 " WHERE pg_catalog.pg_replication_origin_oid(n) IS NOT NULL",
								 1, params));
		o = pg_execute(conn,
						 "SELECT pg_catalog.pg_replication_origin_create(n)"
						 "  FROM (SELECT $1::text AS n) x"
						 " WHERE pg_catalog.pg_replication_origin_oid(n) IS NULL",
						 1, params);
		*use_origin = PQresultStatus(o) == PGRES_TUPLES_OK;
		if (!*use_origin)
			log_notice("not using a replication origin on the target (%s); the applied position is kept in ferry.apply_progress only",
					   PQresultErrorField(o, PG_DIAG_MESSAGE_PRIMARY) ? PQresultErrorField(o, PG_DIAG_MESSAGE_PRIMARY) : "no permission");
		PQclear(o);
	}
	if (*use_origin)
	{
		uint64_t	origin = 0;

		res = pg_query(conn, "read the replication origin's position",
					   "SELECT COALESCE(pg_catalog.pg_replication_origin_progress($1, false), '0/0')::text",
					   1, params);
		if (res == NULL || !pg_check_shape(res, 1, 1, "the origin position") ||
			!pg_lsn_parse(PQgetvalue(res, 0, 0), &origin))
			goto done;
		PQclear(res);
		if (origin > *applied_lsn)
			*applied_lsn = origin;
	}
	res = NULL;
	ok = true;

done:
	PQclear(res);
	pg_finish(conn);
	return ok;
}
