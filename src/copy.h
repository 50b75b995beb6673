/*
 * copy.h: the data half of the clone.
 *
 * Design. `jobs` worker threads each hold two connections: one to the
 * source, inside a REPEATABLE READ READ ONLY transaction that imported the
 * clone snapshot (so every worker reads the same instant), and one to the
 * target. An item is a whole table or, for tables larger than
 * --split-tables-larger-than on sources that have TID range scans
 * (PostgreSQL 14+), a range of heap blocks [lo, hi) (the last range is
 * open-ended). For each item the worker runs COPY ... TO STDOUT on the source
 * and COPY ... FROM STDIN on the target and moves each CopyData message from
 * one to the other as it arrives: nothing is held in memory beyond one row
 * and libpq's buffers, nothing touches disk.
 *
 * Exactly once. Each item is one target transaction: (TRUNCATE for a whole
 * table, which also lets COPY FREEZE skip later hint-bit work) + COPY +
 * the ferry.copy_item row that marks it done. A crash anywhere rolls the
 * whole item back; a resumed clone copies only items without a done row.
 * A table split into ranges must have all its ranges from one snapshot, so
 * a resumed clone re-copies a partly copied split table from scratch
 * (clone.c truncates it first).
 *
 * Format. Binary COPY when both servers have the same major version and
 * every column is binary-safe (catalog.c); text otherwise. Both sides use
 * the source's encoding as client_encoding, so text passes through unchanged.
 * Generated columns are not copied: the target computes them.
 *
 * Failure. The relay (copy_stream, shared with the switchover's re-copy of
 * keyless tables) never blocks: both sessions are nonblocking and every
 * wait polls their sockets in short slices, watching the target's input
 * (a terminated backend or a restarting server says so there) and the stop
 * flag. One abort path ends both COPYs, bounded by COPY_ABORT_WAIT_MS: a
 * CopyFail on the target, a cancel and a drain on the source; a side that
 * does not finish is closed. The item's target transaction rolls back, the
 * clone fails with one line naming the side, and a rerun resumes.
 */
#ifndef FERRY_COPY_H
#define FERRY_COPY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "catalog.h"
#include "config.h"

typedef struct CopyItem
{
	int			table;			/* index into the TableList */
	int			chunk;			/* 0-based */
	int			nchunks;		/* 1 = whole table */
	int64_t		lo_block;		/* first block (chunks only) */
	int64_t		hi_block;		/* block after the last, -1 = to the end */
} CopyItem;

typedef struct CopyJob
{
	const FerryConfig *cfg;
	const TableList *tables;
	CopyItem   *items;
	int			nitems;
	const char *snapshot;		/* exported snapshot to import */
	const char *snapshot_lsn;	/* recorded with each item */
	const char *encoding;		/* source server_encoding */
	bool		binary_allowed;	/* same major version on both sides */
	/* progress, updated by the workers */
	_Atomic int64_t bytes;
	_Atomic int64_t rows;
	_Atomic int64_t heap_done;	/* source heap bytes of finished items */
	_Atomic int items_done;
	int64_t		heap_total;
	double		started;		/* monotonic seconds */
	double		last_report;
	bool		tty;
} CopyJob;

/*
 * Plan the items for `tables` (largest first, as listed). done[i] says table
 * i is already copied and is skipped. Tables with more than split_bytes of
 * heap (split_bytes > 0, can_split) become ceil(bytes / split_bytes) block
 * ranges, at most one per block. Returns the items (owned) in *items.
 */
int			copy_plan(const TableList *tables, const bool *done, int64_t split_bytes, bool can_split,
					  CopyItem **items);

/* Run the copy with cfg->jobs workers. True when every item committed. */
bool		copy_run(CopyJob *job);

/* Monotonic clock in seconds. */
double		copy_now(void);

/* Room copy_stream() batches rows in. */
#define COPY_BATCH_BYTES (128 * 1024)
/* How long an abort waits for each side to end its COPY before closing it. */
#define COPY_ABORT_WAIT_MS 5000

/* One table (or range) to relay: both sessions are the caller's. */
typedef struct CopyStream
{
	PGconn	   *src;			/* idle; its transaction is the caller's */
	const char *src_sql;		/* COPY ... TO STDOUT */
	PGconn	   *tgt;			/* idle, inside the caller's transaction */
	const char *tgt_sql;		/* COPY ... FROM STDIN */
	const char *label;			/* the table (and part) in messages */
	char	   *batch;			/* COPY_BATCH_BYTES of room, the caller's */
	void		(*progress) (void *ctx, int64_t bytes);	/* every 64 kB; may be NULL */
	void	   *ctx;
} CopyStream;

/*
 * The COPY relay, used by the clone and by the switchover's re-copy. Runs
 * src_sql on the source and tgt_sql on the target and moves each CopyData
 * message across as it arrives, in messages of up to COPY_BATCH_BYTES.
 * Both sessions are nonblocking meanwhile and every wait polls their
 * sockets in short slices: a target that is lost mid-copy is seen when it
 * goes (not at the end of the table), a stop request (SIGINT/SIGTERM) ends
 * the relay at once, a server that stops answering cannot hold it.
 *
 * True, with the rows both sides counted (equal) and the bytes relayed,
 * when both COPYs completed. False on any failure, logged once on one line
 * naming the side ("lost the connection to the target (...)"); a stop is
 * logged at info level. Either way both COPYs are over when it returns (the
 * one abort path: CopyFail on the target, a cancel and a bounded drain on
 * the source); the caller rolls back its target transaction. A session that
 * could not be brought back within COPY_ABORT_WAIT_MS is abandoned
 * (CONNECTION_BAD) and must be reconnected, not reused.
 */
bool		copy_stream(const CopyStream *cs, int64_t *rows, int64_t *bytes);

#endif
