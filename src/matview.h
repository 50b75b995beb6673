/*
 * matview.h: materialized views in the clone.
 *
 * A materialized view's rows cannot be copied: nothing but REFRESH writes
 * them. So the clone creates them empty and refreshes the populated ones on
 * the target, each after the ones it reads (directly or through plain
 * views). Their rows are then those of their query now, which are not the
 * source's where the source has not refreshed one since its inputs changed;
 * matview_warn_stale() names those.
 */
#ifndef FERRY_MATVIEW_H
#define FERRY_MATVIEW_H

#include <stdbool.h>

#include <libpq-fe.h>

/*
 * The populated materialized views among `oid_array` (an oid[] literal) on
 * the source, in refresh order: column 0 the quoted name, column 1 its
 * depth (0: reads no other matview). The caller PQclear()s it; NULL on
 * error (logged).
 */
PGresult   *matview_refresh_order(PGconn *src, const char *oid_array);

/*
 * After the refreshes: compare each matview of `mvs` (matview_refresh_order's
 * result) on both servers (count and a sum of row hashes) and log one
 * warning naming those whose rows differ. Returns false only on a query
 * error (logged). Both connections stay the caller's, outside a transaction.
 */
bool		matview_warn_stale(PGconn *src, PGconn *tgt, const PGresult *mvs);

#endif
