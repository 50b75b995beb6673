/*
 * apply.h: applying the source's decoded changes to the target, exactly
 * once and in source commit order.
 *
 * Design.
 *
 * Order and grouping. Messages arrive in commit order (pgoutput protocol 1
 * sends a transaction only once it committed). Consecutive source
 * transactions are grouped into one target transaction, closed when it
 * holds APPLY_BATCH_CHANGES changes, or has been open APPLY_BATCH_MS, or
 * nothing more has arrived from the source (caught up: commit now, so lag
 * stays low). A large source transaction is streamed through as it arrives;
 * it is never held in memory. The apply thread reads the source itself
 * (stream.h): no hand-over between threads per transaction.
 *
 * Pipelining. Statements go to the target in libpq pipeline mode and a
 * batch's COMMIT is not waited for: the next batch follows it at once and
 * the COMMIT's result, read when it comes, publishes the batch. No sync is
 * sent between batches (pipe_read explains why), so after any error the
 * target runs nothing more until ferry has seen it.
 *
 * Exactly once. Every target transaction records the end LSN of the last
 * source transaction it contains, atomically with the data: in the
 * replication origin named after the migration
 * (pg_replication_origin_xact_setup: the commit record carries it, as for
 * PostgreSQL's own apply worker) when the target user may use origins, and
 * in ferry.apply_progress. With an origin the row is only written every
 * APPLY_PROGRESS_MS, for a batch holding a logical message (a switchover's
 * probe or sentinel, a heartbeat: whoever waits for one reads the row), and
 * whenever apply falls idle; updating that one row per target transaction
 * cost a fifth of the target's CPU under small transactions. Without an
 * origin the row is written by every target transaction. On restart,
 * streaming resumes after the later of the two positions and any
 * transaction that ends at or before it is skipped.
 * Target transactions commit asynchronously (synchronous_commit = off, as
 * PostgreSQL's own apply worker does: no fsync wait per commit), so a
 * committed batch is not yet durable: at the start of the next batch (at
 * most every APPLY_WAL_READ_MS), or when idle, apply reads the target's WAL
 * insert position, and the batches committed before it count as flushed
 * once the target's pg_current_wal_flush_lsn() has passed it. Apply confirms to
 * the source (flush LSN) only flushed batches, so the slot never moves past
 * a change the target could still lose in a crash; if it does crash, the
 * position is lost with the data and both are streamed again.
 *
 * What is confirmed. The loop is an explicit state machine (ApplyState in
 * apply_int.h: idle, batch, txn, skip, batch-skip, broken), and one
 * predicate, apply_caught_up(), decides whether the source may be told
 * more than flushed_lsn: only in the idle state with nothing in flight,
 * read ahead or of unknown durability (flushq.h). A failure, a cancel or a
 * rollback moves the session to the final broken state, so no exit path
 * (stop, error, reconnect) can confirm what the target may not have.
 *
 * Tables copied at a later snapshot. A table whose ferry.copy_item rows say
 * it was copied as of LSN L skips changes of transactions that committed
 * before L (they are already in its copy), as PostgreSQL's table sync does.
 *
 * Statements. Per relation, prepared INSERT / DELETE / UPDATE statements
 * with text parameters, sent in libpq pipeline mode (no round trip per row;
 * results are read as they come, and waited for once APPLY_SYNC_EVERY
 * statements are unanswered). UPDATE has one prepared variant per set of columns left out
 * of SET: unchanged TOAST values (keeping the target's value), an unchanged
 * key, GENERATED ALWAYS identity columns (INSERT uses OVERRIDING SYSTEM
 * VALUE for them). Rows are
 * found by the replica identity: the key columns, or for REPLICA IDENTITY
 * FULL the first row whose every column's text equals the old row's. An
 * update that changes the key uses the old key sent by the source.
 * Batching. Inserts are held per table and sent APPLY_INSERT_BATCH rows at
 * a time as one multi-row INSERT (one executor run instead of a hundred).
 * Plain updates (key unchanged, every column sent, keyed table) are held per
 * table too, one slot per key: a later update of the same key replaces the
 * earlier one, since only a row's final state is visible when the target
 * transaction commits; a full set of distinct keys goes as one UPDATE ...
 * FROM (VALUES ...). What is held for a table is flushed before any other
 * kind of operation on that table, before a TRUNCATE, before the table's
 * Relation changes and before commit, so each table sees its changes in
 * source order; only changes to different tables are reordered, which
 * nothing can observe inside one target transaction with foreign keys and
 * triggers off.
 * TRUNCATE keeps CASCADE / RESTART IDENTITY. The session runs with
 * session_replication_role = replica: user triggers and foreign keys do not
 * fire. Generated columns are never sent by pgoutput; the target computes
 * them.
 *
 * Schema changes. A Relation message is compared with the target's table
 * (same column names in the same order, generated and dropped columns
 * aside). If they differ, apply stops before writing anything to that table,
 * with an error naming the table and the difference; it is retried, and
 * continues once the target has the same change.
 */
#ifndef FERRY_APPLY_H
#define FERRY_APPLY_H

#include <stdatomic.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"

#define APPLY_BATCH_CHANGES 20000
#define APPLY_BATCH_MS 200
#define APPLY_SYNC_EVERY 1000
#define APPLY_WAL_READ_MS 5			/* read the target's WAL positions after a commit at most this often */
#define APPLY_PROGRESS_MS 25		/* with an origin, ferry.apply_progress is written this often under load */
#define APPLY_TABLE_ROWS_MS 1000	/* ferry.table_rows (the tables' row counts) this often under load */
#define APPLY_INSERT_BATCH 100		/* rows per multi-row INSERT */
#define APPLY_INSERT_BYTES (1024 * 1024)	/* or fewer, once they hold this much */

typedef enum ApplyStatus
{
	APPLY_RUNNING = 0,
	APPLY_STOPPED,				/* asked to stop: clean */
	APPLY_FAILED_CONN,			/* the target or the source went away: retry with backoff */
	APPLY_FAILED_SCHEMA,		/* source and target tables differ: retry later */
	APPLY_FAILED,				/* anything else: stop */
} ApplyStatus;

/* Shared between the apply thread and the coordinator. */
typedef struct ApplyShared
{
	_Atomic uint64_t applied_lsn;	/* end LSN of the last committed source txn */
	_Atomic uint64_t flushed_lsn;	/* ... whose target commit is flushed: what may be confirmed */
	_Atomic int64_t applied_commit_time;	/* its commit time, us since 2000 */
	_Atomic int64_t applied_at;	/* when it was applied on the target, us since 2000 */
	_Atomic int64_t changes;	/* rows applied since start */
	_Atomic int64_t txns;		/* source transactions applied since start */
	_Atomic uint64_t received_lsn;	/* the source's stream, as far as read */
	_Atomic bool stop;			/* coordinator asks the apply thread to finish */
	_Atomic int status;			/* ApplyStatus of the apply thread */
	/*
	 * Divergence: UPDATEs and DELETEs from the source that matched no row on
	 * the target (a row missing or different there). The total since start,
	 * and per table the counts not yet recorded in ferry.unmatched, which
	 * the coordinator takes (apply_take_unmatched) and records; unmatched_mu
	 * guards the lists (the coordinator initialises it).
	 */
	_Atomic int64_t unmatched;
	pthread_mutex_t unmatched_mu;
	StrList		unmatched_tables;	/* qualified names, quoted */
	int64_t    *unmatched_counts;	/* parallel to unmatched_tables */
	uint64_t   *unmatched_lsns;	/* commit LSN of the last such source transaction */
} ApplyShared;

/*
 * Take the per-table unmatched counts the apply thread gathered (moved to
 * *tables, *counts, *lsns, owned by the caller; lists empty afterwards).
 */
void		apply_take_unmatched(ApplyShared *sh, StrList *tables, int64_t **counts, uint64_t **lsns);
/* Add n such changes to `table`'s count (the last at commit LSN lsn); under unmatched_mu. */
void		apply_add_unmatched(ApplyShared *sh, const char *table, int64_t n, uint64_t lsn);

typedef struct ApplyArgs
{
	const FerryConfig *cfg;
	ApplyShared *shared;
	const char *slot;			/* stream from this slot (stream.h) */
	const char *publications;	/* comma-separated, quoted names */
	bool		messages;		/* ask for logical messages (14+) */
	int			proto_version;
	uint64_t	start_lsn;		/* skip transactions ending at or before this */
	const char *source_encoding;	/* pgoutput sends text in it */
	bool		use_origin;		/* also advance a replication origin */
	const char *skip_origin;	/* skip transactions from this replication origin (reverse), or NULL */
} ApplyArgs;

/*
 * The echo filter without an origin. Reverse replication must not send back
 * what the forward apply wrote on the target. With a replication origin the
 * stream names it (an Origin message); a target role that may not use the
 * origin functions (a managed service's database owner) has none. So
 * without an origin every target transaction the apply opens starts with a
 * transactional logical message APPLY_MARK_PREFIX whose content is the
 * migration's name: it commits or vanishes with the transaction, and the
 * reverse decoder skips a transaction that carries its forward migration's
 * mark exactly as one from its origin. (One small WAL record per target
 * transaction, only without an origin; the reverse stream needs logical
 * messages: servers 14+.)
 */
#define APPLY_MARK_PREFIX "ferry_apply"

/* Thread entry: apply until stopped or failed; sets shared->status. */
void	   *apply_main(void *args);

/* Create the progress row (and origin) for a migration if missing. */
bool		apply_prepare_target(const FerryConfig *cfg, bool *use_origin, uint64_t *applied_lsn);

#endif
