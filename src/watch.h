/*
 * watch.h: the old source after a switchover.
 *
 * Design.
 *
 * The switchover freezes the source and ends its sessions, but a write can
 * still reach it afterwards: a superuser session, a client that opens
 * BEGIN READ WRITE on a stale connection string, a job nobody knew about.
 * Such a write is not on the new primary, and nobody would know. So after a
 * switchover with reverse replication the forward slot NAME is not dropped:
 * it stays on the old source as a watch, positioned at the last change the
 * forward stream carried (the drain), and the reverse follower (`ferry
 * start` in reverse, follow.c) polls it every WATCH_INTERVAL_MS:
 *
 *   1 peek        pg_logical_slot_peek_binary_changes(NAME, ...) through the
 *                 forward publications, with logical messages (from 14 on,
 *                 PGO_MESSAGES_MIN_VERSION), at most
 *                 WATCH_MAX_CHANGES changes (whole transactions)
 *   2 classify    a transaction that carries reverse replication's origin
 *                 (NAME_reverse) or its ferry_apply mark (apply.h) is
 *                 reverse replication's own; so is one that ends at or
 *                 before the forward migration's applied position (it was
 *                 carried to the new primary: the watch slot's position is
 *                 only saved at checkpoints, so after a crash of the old
 *                 source it reads again from before the switchover); one
 *                 with data changes otherwise was written on the old source
 *                 after the switch
 *   3 record      those, per table, into ferry.source_writes on the new
 *                 primary (the migration's state), an ERROR in the log and
 *                 the metric ferry_source_writes_after_switch_total;
 *                 `ferry status` shows them and exits 1 while any is
 *                 recorded
 *   4 advance     pg_replication_slot_advance to the end of the last
 *                 transaction read, so the watch retains no more WAL than one
 *                 interval's worth
 *
 * Record before advance: a crash between the two reports a transaction
 * twice (counts may be high), never loses one. Rollback re-copies keyless
 * tables into the source with their publication publishing nothing
 * (KEYLESS_SILENT, publication.h: the mark alone would not do before
 * PostgreSQL 14, whose pgoutput sends no messages; there the watch knows
 * reverse replication's own transactions by their origin only); a rollback
 * (which reads it one last time after its drain and re-copy, while the
 * source is still frozen, and drops it before unfreezing the source: the
 * application's writes there from then on are not news) or cleanup drops
 * the watch. With --no-reverse there is no follower to
 * poll it, so the slot is dropped at the switch as before.
 */
#ifndef FERRY_WATCH_H
#define FERRY_WATCH_H

#include <stdbool.h>
#include <stdint.h>
#include <libpq-fe.h>

#define WATCH_INTERVAL_MS 2000
#define WATCH_MAX_CHANGES 100000

/*
 * One poll of the watch slot `forward_name` on old_src (a SQL session, not
 * replication), publications `pubs` (publication_names' value), reverse
 * replication's name `reverse_name`. With state_conn (the new primary) it
 * records what it finds there and advances the slot; with NULL it only
 * counts (status: what nobody has recorded yet). Returns the number of
 * changes written on the old source found by this poll (0 if none, or when
 * another session holds the slot just then: the reverse follower, a
 * rollback's last look, status and cleanup may look at once, and the
 * holder does the work), or -1 on error (logged).
 */
int64_t		watch_poll(PGconn *old_src, PGconn *state_conn, const char *forward_name, const char *pubs,
					   const char *reverse_name, uint64_t carried);

/*
 * watch_poll for migration `forward_name` when its watch slot exists on
 * old_src and nothing streams from it: the publications looked up, the
 * reverse name derived, what was carried forward read from new_primary
 * (the migration's applied position there). Records on new_primary if
 * `record`, else only counts. Returns as watch_poll; 0 when there is no
 * idle watch slot.
 */
int64_t		watch_poll_migration(PGconn *old_src, PGconn *new_primary, bool record, const char *forward_name);

/* The changes ferry.source_writes on new_primary holds for migration `name`: 0 without the table, -1 on error (logged). */
long long	watch_recorded(PGconn *new_primary, const char *name);

#endif
