/*
 * plan.h: what ferry would do to migrate cfg->source to cfg->target, worked
 * out without changing anything on either server (`ferry plan`, also
 * `ferry clone --dry-run` and `ferry start --dry-run`).
 *
 * The plan is computed with the clone's own code, so it cannot drift from
 * what clone does: the pre-flight checks (check.h) for the blocking
 * problems and the objects not migrated; pg_dump --schema-only (schema.h,
 * no snapshot) for the exact set of relations clone would copy, with
 * --include-schema, --exclude-schema and --exclude-table applied by
 * pg_dump itself; catalog_tables() for their sizes; clone_data_excluded()
 * for --exclude-table-data; clone_split_bytes() and copy_plan() (copy.h)
 * for the block-range split with the same `auto` default, --jobs and
 * --split-tables-larger-than; publication_plan() for which tables are
 * published for every operation and which for inserts only; and the
 * target's ferry state, when a migration of that name exists, for what a
 * resumed clone would skip.
 *
 * Read only: both sessions run with default_transaction_read_only = on, so
 * that even a mistake here could not write. pg_dump takes ACCESS SHARE
 * locks on the source's tables while it runs, as any pg_dump does.
 */
#ifndef FERRY_PLAN_H
#define FERRY_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "check.h"
#include "config.h"
#include "mem.h"

typedef enum PlanPublish
{
	PLAN_PUB_NONE = 0,			/* not streamed (unlogged: copied once) */
	PLAN_PUB_ALL,				/* publication NAME: every operation */
	PLAN_PUB_INSERT_ONLY,		/* NAME_insert_only: no key, re-copied at switchover */
} PlanPublish;

typedef struct PlanTable
{
	char	   *name;			/* schema.table, quoted only where needed, owned */
	char	   *nspname;		/* owned */
	char	   *relname;		/* owned */
	int64_t		bytes;			/* heap size on the source */
	int64_t		rows;			/* planner estimate, -1 if never analyzed */
	bool		data;			/* rows are copied (false: --exclude-table-data) */
	bool		done;			/* an earlier run of this migration copied it */
	int			parts;			/* block ranges it is copied as; 1 = whole, 0 = none */
	PlanPublish publish;
} PlanTable;

typedef struct Plan
{
	CheckReport checks;			/* ferry check's rows: problems and objects not migrated */
	bool		built;			/* the rest below was worked out (false: see checks, log) */
	char	   *source_version;	/* "15.4", owned */
	char	   *target_version;
	PlanTable  *tables;			/* largest first, as clone copies them */
	int			ntables;
	int			data_tables;	/* tables whose rows are copied and not done yet */
	int			parts;			/* copy items: tables or block ranges */
	int64_t		bytes;			/* their heap bytes */
	int64_t		rows;			/* their row estimates (unknown ones count 0) */
	int64_t		split_bytes;	/* the resolved threshold, 0 = never */
	bool		can_split;		/* the source has TID range scans (14+) */
	int			published_all;	/* tables in publication NAME */
	int			published_insert_only;
	StrList		set_identity_full;	/* tables --set-replica-identity-full alters */
	StrList		toc_types;		/* the schema dump's entry types ... */
	int		   *toc_counts;		/* ... and how many of each */
	int			toc_entries;
	/* what already exists */
	bool		slot_exists;
	bool		publication_exists[2];	/* NAME, NAME_insert_only */
	bool		state_exists;	/* schema ferry on the target */
	char	   *phase;			/* this migration's phase, NULL when it has no state */
	bool		origin_exists;
} Plan;

/*
 * Work out the plan. Always runs the checks into plan->checks; then, when
 * both servers can be reached, everything else (plan->built). Returns false
 * only when interrupted by SIGINT/SIGTERM. Failures to compute a part are
 * logged and leave plan->built false. Release with plan_release().
 */
bool		plan_build(const FerryConfig *cfg, Plan *plan);
void		plan_release(Plan *plan);

#endif
