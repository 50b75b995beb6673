/*
 * clone.h: the whole snapshot-consistent clone, resumable. Used by
 * `ferry clone` and (later) by `ferry start` before it streams changes.
 */
#ifndef FERRY_CLONE_H
#define FERRY_CLONE_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "catalog.h"
#include "config.h"

/* Tables are split into block ranges only on sources with TID range scans (CLONE_SPLIT_MIN_MAJOR, pgversion.h). */

typedef struct CloneSummary
{
	bool		already_done;	/* nothing to do: an earlier run finished */
	bool		resumed;
	int			tables;			/* tables copied in this run */
	int			parts;			/* items (tables or ranges) copied in this run */
	int64_t		rows;
	int64_t		bytes;			/* COPY stream bytes */
	int			steps;			/* post-data steps run */
	int			sequences;
	int			matviews;
	int64_t		large_objects;	/* copied once, as of the snapshot (largeobj.h) */
	int64_t		large_object_bytes;
	double		schema_seconds;
	double		data_seconds;
	double		post_seconds;
	double		total_seconds;
	char		slot_name[64];
	char		start_lsn[32];
} CloneSummary;

/*
 * Clone cfg->source into cfg->target under migration cfg->name.
 *
 * Steps, each recorded in the target's ferry state so a rerun resumes:
 *   1. preflight: versions, wal_level, privileges, empty target;
 *   2. the migration's slot with an exported snapshot (a rerun uses a
 *      temporary slot's snapshot instead and records that LSN per table);
 *   3. schema pre-data; 4. data, then large objects; 5. post-data steps
 *      (foreign keys NOT VALID when tables were copied at more than one
 *      snapshot, for ferry start to validate: validate.h); 6. sequences;
 *   7. materialized views; 8. ANALYZE.
 * On failure: if nothing was committed yet, the slot and the state are
 * removed (nothing left retaining WAL); otherwise both are kept and the
 * log says how to resume or give up. Returns true on success.
 */
bool		clone_run(FerryConfig *cfg, CloneSummary *summary);

/*
 * Does the table match a pg_dump-style pattern? As pg_dump reads patterns:
 * "schema.table" or "table" (any schema), * and ? wildcards, unquoted
 * letters folded to lower case, double-quoted parts taken literally.
 */
bool		clone_table_matches(const char *pattern, const char *nspname, const char *relname);

/* Does --exclude-table-data leave this table's rows out (definition only)? */
bool		clone_data_excluded(const FerryConfig *cfg, const char *nspname, const char *relname);

/*
 * The split threshold copy_plan() is given: --split-tables-larger-than, or
 * for `auto` each worker's even share of the heap bytes of `tables` (the
 * tables whose data is copied), at least SPLIT_AUTO_MIN. 0 means never.
 */
int64_t		clone_split_bytes(const FerryConfig *cfg, const TableList *tables);

/*
 * Read which of `tables` an earlier run of migration `name` copied (read
 * only): done[i] when all its parts committed, partial[i] when only some
 * did (clone re-copies those whole). Both arrays hold tables->n entries.
 * Needs ferry.copy_item on `tgt`. Logs and returns false on error.
 */
bool		clone_read_done(PGconn *tgt, const char *name, const TableList *tables, bool *done,
							bool *partial);

#endif
