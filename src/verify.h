/*
 * verify.h: full content comparison of migrated tables between source and
 * target (`ferry verify`).
 *
 * Every row of every table is hashed server-side on both sides, per key
 * range; ranges whose hashes differ are narrowed down to the rows that
 * differ. While `ferry start` is running, a difference is only reported if
 * it persists after the target has applied everything the source had
 * written when the range was read (see the essay in verify.c).
 */
#ifndef FERRY_VERIFY_H
#define FERRY_VERIFY_H

#include <stdbool.h>

#include "mem.h"

#define VERIFY_MAX_EXAMPLES 20

/* One table to compare and, after verify_run(), its result. */
typedef struct VerifyTable
{
	char	   *nspname;		/* owned, set by the caller */
	char	   *relname;		/* owned, set by the caller */
	/* results, filled by verify_run() */
	long long	rows;			/* rows on the source */
	int			ranges;			/* top-level key ranges hashed */
	bool		failed;			/* could not be compared (logged) */
	long long	missing;		/* on the source, not on the target */
	long long	extra;			/* on the target, not on the source */
	long long	different;		/* same key, different contents */
	StrList		examples;		/* up to VERIFY_MAX_EXAMPLES keys */
	StrList		example_kinds;	/* "missing", "extra" or "different", parallel to examples */
} VerifyTable;

typedef struct VerifySpec
{
	const char *source;			/* conninfo */
	const char *target;			/* conninfo */
	const char *name;			/* migration name (ferry.apply_progress) */
	int			jobs;			/* worker threads, each with one connection per side */
} VerifySpec;

/*
 * Compare every table in tables[0..n-1]. Returns false when the comparison
 * itself failed (connection or query error, interrupted; logged); the
 * per-table results say whether the contents are equal.
 */
bool		verify_run(const VerifySpec *spec, VerifyTable *tables, int n);

/* True when the table was compared and no difference was found. */
bool		verify_table_ok(const VerifyTable *t);

/* Free what a VerifyTable owns (not the struct). */
void		verify_table_release(VerifyTable *t);

/* Allow the exact, table-locking last re-read on the source (--lock-source). */
void		verify_set_lock_source(bool on);

/*
 * --max-rate: read at most `rows` rows a second from each side, all
 * workers together (0: no limit), so that a full verify of a busy
 * production database costs it a bounded share of its I/O.
 */
void		verify_set_max_rate(long long rows);

#endif
