/*
 * slot.h: logical replication slots on the source and the snapshots they
 * export.
 *
 * A slot created with EXPORT_SNAPSHOT on a replication connection returns
 * its consistent point (an LSN) and the name of a snapshot: every
 * transaction that committed before the consistent point is visible in the
 * snapshot, and every later one will be streamed from the slot. The
 * snapshot stays importable (SET TRANSACTION SNAPSHOT) only while the
 * replication connection stays open and idle, so the holder keeps it that
 * way until every copy worker has imported it.
 */
#ifndef FERRY_SLOT_H
#define FERRY_SLOT_H

#include <stdbool.h>
#include <stdint.h>
#include <libpq-fe.h>

typedef struct SlotSnapshot
{
	PGconn	   *conn;			/* replication connection holding the snapshot */
	char	   *slot_name;		/* owned */
	char	   *snapshot;		/* exported snapshot name, owned */
	char	   *lsn_text;		/* consistent point "X/Y", owned */
	uint64_t	lsn;
	bool		temporary;		/* dropped by the server when conn closes */
} SlotSnapshot;

/*
 * Create a pgoutput slot named `slot_name` (TEMPORARY if asked) exporting a
 * snapshot, on a new replication connection to `conninfo`. On success fills
 * *out (release with slot_snapshot_release) and returns true; logs and
 * returns false otherwise.
 */
bool		slot_create(const char *conninfo, const char *slot_name, bool temporary, SlotSnapshot *out);
/* Close the holding connection (a temporary slot disappears with it). */
void		slot_snapshot_release(SlotSnapshot *s);

/* Does a slot of that name exist on the server `conn` is connected to? -1 on error. */
int			slot_exists(PGconn *conn, const char *slot_name);
/* Drop the slot if it exists (waits for no consumer); false on error. */
bool		slot_drop(PGconn *conn, const char *slot_name);

#endif
