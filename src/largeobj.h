/*
 * largeobj.h: the clone's copy of large objects (pg_largeobject).
 *
 * Logical replication does not carry large objects: their data lives in
 * pg_largeobject, a catalog, whose changes pgoutput never sends. So the
 * clone copies them once, as of its snapshot, and says so; what the
 * application does to them afterwards does not reach the target (check
 * warns; copy them again at switchover if they change).
 *
 * What is copied, per object: the OID (applications keep OIDs in their
 * tables, so it must be the same), the data in 1 MB chunks (lo_get on the
 * source, lo_put on the target: no object is held whole in memory), the
 * owner (unless --no-owner), the privileges (unless --no-privileges; a
 * grant made by a role other than the owner is recreated as granted by
 * the owner) and the comment. As pg_dump does, large objects are left out
 * when include-schemas selects part of the database.
 *
 * Exactly once: every object is created in one target transaction that
 * also records the step LARGEOBJ_STEP in ferry.schema_step; a crash rolls
 * all of them back and the resumed clone copies them again (as of its own
 * snapshot).
 */
#ifndef FERRY_LARGEOBJ_H
#define FERRY_LARGEOBJ_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "config.h"

/* The ferry.schema_step key of the large-object copy. */
#define LARGEOBJ_STEP "LARGE OBJECTS"

/*
 * Copy every large object of the source to the target, unless an earlier
 * run of migration cfg->name did (its LARGEOBJ_STEP row) or the filters
 * leave them out.
 *
 * `src` is inside the clone's snapshot transaction (read only; it is left
 * open); `tgt` is an ordinary session outside any transaction, where a
 * transaction is opened and committed (or rolled back on failure). Both
 * connections stay the caller's. On success sets *count and *bytes to what
 * this call copied (0 when nothing was to do) and returns true; otherwise
 * logs the failure once and returns false.
 */
bool		largeobj_copy(PGconn *src, PGconn *tgt, const FerryConfig *cfg, int64_t *count, int64_t *bytes);

#endif
