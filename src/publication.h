/*
 * publication.h: the source publications ferry streams from.
 *
 * Two publications per migration, created before the slot (pgoutput looks
 * publications up in the catalog as of each decoded change, so one created
 * after the slot would make earlier changes fail with "publication does not
 * exist"):
 *   NAME               the tables with a primary key or usable replica
 *                      identity: every operation
 *   NAME_insert_only   the tables without one: inserts and truncates only,
 *                      because PostgreSQL refuses UPDATE and DELETE on a table
 *                      published for them that has no replica identity, and
 *                      ferry must never break the source application; such
 *                      tables are re-copied at switchover until fixed
 * Partitioned tables are published through their root (13+) so the target
 * receives changes in the root's name; on 10-12 the partitions themselves.
 * Unlogged and temporary tables cannot be published.
 */
#ifndef FERRY_PUBLICATION_H
#define FERRY_PUBLICATION_H

#include <stdbool.h>
#include <libpq-fe.h>

#include "config.h"

#define PUBLICATION_INSERT_ONLY_SUFFIX "_insert_only"

/* Roots are published from PUBLICATION_VIA_ROOT_MIN_VERSION on (pgversion.h). */

/* Create both publications if missing, for the tables the filters select. */
bool		publication_ensure(PGconn *src, const FerryConfig *cfg);
/*
 * What publication_ensure() would publish, read only: the selected
 * publishable tables as quoted "schema"."table" names, appended to `all`
 * (a usable replica identity, or any with --set-replica-identity-full) or
 * to `insert_only`; those without an identity also to `no_identity` (what
 * --set-replica-identity-full alters). Logs and returns false on error.
 */
bool		publication_plan(PGconn *src, const FerryConfig *cfg, StrList *all, StrList *insert_only,
							 StrList *no_identity);
/*
 * What the publication of the tables without a key (NAME_insert_only)
 * publishes on the source:
 *  KEYLESS_INSERTS   inserts and truncates: the forward stream (as created);
 *  KEYLESS_GUARD     everything, so the old source refuses UPDATE and DELETE
 *                    on them after a switchover (no replica identity:
 *                    PostgreSQL refuses to change a table without one that a
 *                    publication publishes updates and deletes of), which
 *                    the watch (watch.h) could not see;
 *  KEYLESS_SILENT    nothing: the rollback's re-copy into the old source is
 *                    not seen by the watch. Before PostgreSQL 14 pgoutput
 *                    sends no logical messages, so the re-copy's mark
 *                    (APPLY_MARK_PREFIX) never reaches the watch, which took
 *                    every re-copied row for a write on the old source. The
 *                    decoder reads the publication as of each change's LSN,
 *                    so no change committed after this one is published:
 *                    race-free with a concurrent poll of the watch.
 * A missing publication is fine. Logs and returns false on error.
 */
typedef enum KeylessPublish
{
	KEYLESS_INSERTS,
	KEYLESS_GUARD,
	KEYLESS_SILENT
} KeylessPublish;
bool		publication_guard_keyless(PGconn *src, const FerryConfig *cfg, KeylessPublish mode);
/*
 * The tables the filters select that neither publication holds: created
 * on the source after the clone (ferry does not follow new tables yet), so
 * none of their rows reach the target. Quoted "schema"."table" names
 * appended to `missing`. Logs and returns false on error.
 */
bool		publication_missing(PGconn *src, const FerryConfig *cfg, StrList *missing);
/* "a, b, c" of up to 10 names of l, "... and N more" after (owned). */
char	   *publication_name_list(const StrList *l);
/* What to do about them (static text). */
#define PUBLICATION_MISSING_FIX \
	"ferry does not follow tables created after the clone yet: exclude them (filters: exclude-tables) and move them yourself, or start the migration over (ferry cleanup, then ferry start) so that the clone copies them"
/* Drop both if they exist. */
bool		publication_drop(PGconn *src, const FerryConfig *cfg);
/*
 * The publication_names value for START_REPLICATION (owned): the quoted
 * names of those that exist.
 */
char	   *publication_names(PGconn *src, const FerryConfig *cfg);
/* Does the table pass the config's schema and table filters? */
bool		publication_table_selected(const FerryConfig *cfg, const char *nspname, const char *relname);

#endif
