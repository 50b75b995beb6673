/*
 * validate.h: foreign keys that a resumed clone built NOT VALID, and their
 * validation once the target is consistent.
 *
 * Why. A fresh clone copies every table at one snapshot, so its foreign
 * keys hold on the target as they do on the source and are built valid. A
 * resumed clone copies tables at different snapshots (clone.c): `orders`
 * at L0, `payments` at a later Lk holding payments for orders that came
 * after L0. Until apply has brought `orders` past Lk such a key does not
 * hold on the target, and building it valid fails, on every rerun, since
 * the post-data step comes before apply. So when ferry.copy_item holds
 * more than one snapshot LSN, clone builds each foreign key NOT VALID
 * (schema_fk_not_valid) and records it here, in the step's own
 * transaction, with valid_after = the latest snapshot LSN of the clone.
 *
 * When. Apply writes each source transaction whole, in commit order, so
 * once it has committed a source transaction ending at or after
 * valid_after, every table is at one source state (the last applied one)
 * in any target snapshot taken from then on, and a foreign key that holds
 * on the source holds on the target. The follower (follow.c) then runs
 * ALTER TABLE ... VALIDATE CONSTRAINT, which takes SHARE UPDATE EXCLUSIVE
 * on the table and does not block apply's writes (apply runs with
 * session_replication_role = replica, which checks no foreign keys, so
 * apply never depended on these keys either). A validation that fails (a
 * target row that differs from the source, a lock not granted within
 * VALIDATE_LOCK_TIMEOUT) is logged and recorded on its row (tries,
 * last_error) and retried every VALIDATE_RETRY_MS; apply goes on.
 * Passing valid_after needs a source transaction that commits after it:
 * the follower's own heartbeats (FOLLOW_HEARTBEAT_MS) are such; a source
 * user that may not emit them leaves it to the application's next write.
 *
 * Who reads it. `status` lists what awaits validation; `switchover`
 * refuses while anything does (a NOT VALID key on the new primary is a
 * silent weakening). A key dropped from the target meanwhile is forgotten
 * with a warning.
 */
#ifndef FERRY_VALIDATE_H
#define FERRY_VALIDATE_H

#include <stdbool.h>
#include <stdint.h>
#include <libpq-fe.h>

#define VALIDATE_RETRY_MS 10000
#define VALIDATE_LOCK_TIMEOUT "10s"

/*
 * SQL run inside a post-data step's transaction to record a foreign key
 * built NOT VALID: $1 migration, $2 table (as pg_dump wrote it, a regclass
 * input), $3 constraint name, $4 valid_after LSN.
 */
extern const char VALIDATE_MARK_SQL[];

/*
 * The foreign keys of migration `name` awaiting validation on `tgt`:
 * columns tablename, conname, valid_after, tries, last_error (NULL when
 * not tried), in a fixed order; no rows when ferry's state has no such
 * table. NULL on error (logged). Caller PQclear()s.
 */
PGresult   *validate_pending(PGconn *tgt, const char *name);

/*
 * Validate, on `tgt` (outside a transaction), each pending foreign key of
 * migration `name` whose valid_after is at or before `applied` (the end LSN
 * of the last source transaction committed on the target); each success
 * removes its row in the same transaction, each failure is logged as a
 * warning and recorded on its row. Sets *remaining to how many are left
 * (tried or not) and *failed to how many of those were tried and failed.
 * Returns false only when ferry's state cannot be read or written
 * (logged); a failed validation is not an error.
 */
bool		validate_run(PGconn *tgt, const char *name, uint64_t applied, int *remaining, int *failed);

#endif
