/*
 * state.c: the migration state on the target (see state.h).
 */
#include "state.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"
#include "pgsql.h"

static const char STATE_DDL[] =
	"CREATE SCHEMA IF NOT EXISTS ferry;"
	"CREATE TABLE IF NOT EXISTS ferry.migration ("
	"  name text PRIMARY KEY,"
	"  phase text NOT NULL,"
	"  slot_name text NOT NULL,"
	"  start_lsn pg_lsn,"
	"  pre_data_done boolean NOT NULL DEFAULT false,"
	"  data_done boolean NOT NULL DEFAULT false,"
	"  post_data_done boolean NOT NULL DEFAULT false,"
	"  created_at timestamptz NOT NULL DEFAULT now(),"
	"  clone_finished_at timestamptz,"
	"  updated_at timestamptz NOT NULL DEFAULT now());"
	"CREATE TABLE IF NOT EXISTS ferry.copy_item ("
	"  migration text NOT NULL REFERENCES ferry.migration ON DELETE CASCADE,"
	"  nspname text NOT NULL,"
	"  relname text NOT NULL,"
	"  chunk int NOT NULL,"
	"  nchunks int NOT NULL,"
	"  snapshot_lsn pg_lsn NOT NULL,"
	"  rows bigint NOT NULL,"
	"  bytes bigint NOT NULL,"
	"  seconds double precision NOT NULL,"
	"  done_at timestamptz NOT NULL DEFAULT now(),"
	"  PRIMARY KEY (migration, nspname, relname, chunk));"
	"CREATE TABLE IF NOT EXISTS ferry.copy_plan ("
	"  migration text NOT NULL REFERENCES ferry.migration ON DELETE CASCADE,"
	"  nspname text NOT NULL,"
	"  relname text NOT NULL,"
	"  bytes bigint NOT NULL,"
	"  PRIMARY KEY (migration, nspname, relname));"
	"CREATE TABLE IF NOT EXISTS ferry.apply_progress ("
	"  migration text PRIMARY KEY REFERENCES ferry.migration ON DELETE CASCADE,"
	"  applied_lsn pg_lsn NOT NULL,"
	"  commit_time timestamptz,"
	"  applied_at timestamptz,"
	"  changes bigint NOT NULL DEFAULT 0,"
	"  txns bigint NOT NULL DEFAULT 0,"
	"  changes_per_second double precision,"
	"  txns_per_second double precision,"
	"  follower_pid int,"
	"  follower_seen_at timestamptz);"
	"CREATE TABLE IF NOT EXISTS ferry.schema_step ("
	"  migration text NOT NULL REFERENCES ferry.migration ON DELETE CASCADE,"
	"  step text NOT NULL,"
	"  done_at timestamptz NOT NULL DEFAULT now(),"
	"  PRIMARY KEY (migration, step));"
	/* switchover and rollback (added in 0.2; older state gains them here) */
	"ALTER TABLE ferry.migration ADD COLUMN IF NOT EXISTS source_freeze text;"
	"ALTER TABLE ferry.migration ADD COLUMN IF NOT EXISTS target_freeze text;"
	"ALTER TABLE ferry.migration ADD COLUMN IF NOT EXISTS reverse boolean NOT NULL DEFAULT false;"
	"ALTER TABLE ferry.migration ADD COLUMN IF NOT EXISTS switched_at timestamptz;"
	"ALTER TABLE ferry.migration ADD COLUMN IF NOT EXISTS switch_window_ms double precision;"
	"ALTER TABLE ferry.migration ADD COLUMN IF NOT EXISTS rolled_back_at timestamptz;"
	"ALTER TABLE ferry.migration ADD COLUMN IF NOT EXISTS rollback_window_ms double precision;"
	/* the error that ended the last streaming session, until changes flow again (follow.c) */
	"ALTER TABLE ferry.apply_progress ADD COLUMN IF NOT EXISTS last_error text;"
	"ALTER TABLE ferry.apply_progress ADD COLUMN IF NOT EXISTS last_error_at timestamptz;"
	/* set just before the switch hook runs: from then on the switchover only goes forward (switchover.h) */
	"ALTER TABLE ferry.migration ADD COLUMN IF NOT EXISTS switch_hook_at timestamptz;"
	/* PgBouncers a switchover or rollback holds paused, until resumed (pooler.h) */
	"ALTER TABLE ferry.migration ADD COLUMN IF NOT EXISTS pooler_hold text;"
	/* a rollback's fresh forward slot: where `ferry start` follows again from (switchover.h) */
	"ALTER TABLE ferry.migration ADD COLUMN IF NOT EXISTS rearm_lsn pg_lsn;"
	/* UPDATEs and DELETEs from the source that matched no row on the target, by table (apply.h) */
	"CREATE TABLE IF NOT EXISTS ferry.unmatched ("
	"  migration text NOT NULL REFERENCES ferry.migration ON DELETE CASCADE,"
	"  tablename text NOT NULL,"
	"  changes bigint NOT NULL,"
	"  last_lsn pg_lsn NOT NULL,"
	"  last_at timestamptz NOT NULL,"
	"  PRIMARY KEY (migration, tablename));"
	/*
	 * What apply did to each table since its copy, by the source's name:
	 * rows inserted and deleted (after a TRUNCATE, since it: truncated is
	 * set and the copy's rows no longer count). Written with the position
	 * row (apply.h), so `status` knows each table's rows without reading it.
	 */
	"CREATE TABLE IF NOT EXISTS ferry.table_rows ("
	"  migration text NOT NULL REFERENCES ferry.migration ON DELETE CASCADE,"
	"  nspname text NOT NULL,"
	"  relname text NOT NULL,"
	"  inserted bigint NOT NULL DEFAULT 0,"
	"  deleted bigint NOT NULL DEFAULT 0,"
	"  truncated boolean NOT NULL DEFAULT false,"
	"  PRIMARY KEY (migration, nspname, relname));"
	/* changes committed on the old source after the switchover, by table (watch.h) */
	"CREATE TABLE IF NOT EXISTS ferry.source_writes ("
	"  migration text NOT NULL REFERENCES ferry.migration ON DELETE CASCADE,"
	"  tablename text NOT NULL,"
	"  changes bigint NOT NULL,"
	"  last_lsn pg_lsn NOT NULL,"
	"  last_at timestamptz NOT NULL,"
	"  PRIMARY KEY (migration, tablename));"

	/* foreign keys a resumed clone built NOT VALID, until ferry start validates them (validate.h) */
	"CREATE TABLE IF NOT EXISTS ferry.pending_constraint ("
	"  migration text NOT NULL REFERENCES ferry.migration ON DELETE CASCADE,"
	"  tablename text NOT NULL,"
	"  conname text NOT NULL,"
	"  valid_after pg_lsn NOT NULL,"
	"  added_at timestamptz NOT NULL DEFAULT now(),"
	"  tries int NOT NULL DEFAULT 0,"
	"  last_try_at timestamptz,"
	"  last_error text,"
	"  PRIMARY KEY (migration, tablename, conname));";

/* Every table ferry creates in schema ferry (STATE_DDL, and hooks.c the file sync's), NULL-ended; keep in step: check.c tells ferry's own schema from a user's by it. */
const char *const STATE_TABLES[] = {
	"migration", "copy_item", "copy_plan", "apply_progress", "schema_step", "file_sync", "unmatched",
	"source_writes", "pending_constraint", "table_rows", NULL
};

const char	STATE_MARK_COPY_SQL[] =
	"INSERT INTO ferry.copy_item"
	" (migration, nspname, relname, chunk, nchunks, snapshot_lsn, rows, bytes, seconds)"
	" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

const char	STATE_MARK_STEP_SQL[] =
	"INSERT INTO ferry.schema_step (migration, step) VALUES ($1, $2)"
	" ON CONFLICT DO NOTHING";

/* advisory lock (class $2, key hashtext($1)): take it, let it go */
static const char TRY_LOCK_SQL[] =
	"SELECT pg_catalog.pg_try_advisory_lock($2::int4, pg_catalog.hashtext($1))";
static const char UNLOCK_SQL[] =
	"SELECT pg_catalog.pg_advisory_unlock($2::int4, pg_catalog.hashtext($1))";

/*
 * The pg_locks rows (alias l) of the sessions holding that lock: in this
 * database only (advisory locks are per database, pg_locks is the
 * cluster's, and another database may run a migration of the same name).
 */
#define LOCK_HOLDERS_WHERE \
	" l.locktype = 'advisory' AND l.granted AND l.classid = $2::pg_catalog.oid" \
	" AND l.objid = pg_catalog.hashtext($1)::pg_catalog.oid AND l.objsubid = 2" \
	" AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())"

/* Try to take lock (cls, name) in conn's session: 1 taken, 0 held elsewhere, -1 on error (logged). */
static int
try_lock(PGconn *conn, const char *cls, const char *name, const char *what)
{
	const char *params[2] = {name, cls};
	PGresult   *res = pg_query(conn, what, TRY_LOCK_SQL, 2, params);
	int			got;

	if (res == NULL || !pg_check_shape(res, 1, 1, "the advisory lock"))
	{
		PQclear(res);
		return -1;
	}
	got = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	return got;
}

/* Is lock (cls, name) held by another session: 1 yes, 0 no, -1 on error. */
static int
lock_held(PGconn *conn, const char *cls, const char *name, const char *what)
{
	const char *params[2] = {name, cls};
	int			got = try_lock(conn, cls, name, what);

	if (got == 1)
	{
		PGresult   *res = pg_query(conn, "let the advisory lock go", UNLOCK_SQL, 2, params);

		if (res == NULL)
			return -1;
		PQclear(res);
	}
	return got < 0 ? -1 : !got;
}

/*
 * Take the migration's advisory lock in this session. Held by another
 * session: if that one is running a statement, wait for it (up to
 * STATE_LOCK_WAIT_S): a ferry killed a moment ago leaves its session, and
 * the lock, until the statement it was running ends. An idle holder is a
 * live ferry: refuse at once. (Except the busy holder waited for, idle for
 * less than a second: between the end of its statement and noticing that
 * its client is gone, a killed ferry's session is idle for a moment.)
 * The error names the holder and the fix.
 */
#define STATE_LOCK_WAIT_S 15

bool
state_lock(PGconn *target, const char *name)
{
	const char *params[2] = {name, STATE_LOCK_CLASS};
	char		busy_pid[16] = "";	/* the holder seen running a statement */

	for (int i = 0;; i++)
	{
		PGresult   *res;
		int			got = try_lock(target, STATE_LOCK_CLASS, name, "take the migration lock");
		bool		found,
					active;
		char	   *who;

		if (got != 0)
			return got == 1;
		res = pg_query(target, "find the session holding the migration lock",
					   "SELECT a.pid, a.state = 'active', format('pid %s, application %L, %s for %s s', a.pid,"
					   " a.application_name, a.state, round(extract(epoch FROM now() - a.state_change))),"
					   " a.state_change > pg_catalog.clock_timestamp() - interval '1 s'"
					   " FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid"
					   " WHERE" LOCK_HOLDERS_WHERE " LIMIT 1",
					   2, params);
		if (res == NULL || !pg_check_shape(res, -1, 4, "the lock holder"))
		{
			PQclear(res);
			return false;
		}
		found = PQntuples(res) == 1;
		if (!found && i < 10)
		{
			PQclear(res);		/* let go just now: try again */
			continue;
		}
		active = found && (PQgetvalue(res, 0, 1)[0] == 't' ||
						   (strcmp(PQgetvalue(res, 0, 0), busy_pid) == 0 && PQgetvalue(res, 0, 3)[0] == 't'));
		if (active)
			snprintf(busy_pid, sizeof(busy_pid), "%s", PQgetvalue(res, 0, 0));
		who = xstrdup(found ? PQgetvalue(res, 0, 2) : "unknown session");
		if (active && i < STATE_LOCK_WAIT_S * 10)
		{
			if (i == 0)
				log_info("migration \"%s\" is held by a busy session on the target (%s): waiting up to %d s for it to end "
						 "(a ferry killed a moment ago keeps its session until the statement it ran finishes)",
						 name, who, STATE_LOCK_WAIT_S);
			free(who);
			PQclear(res);
			usleep(100000);
			continue;
		}
		log_error("another ferry process is driving migration \"%s\" on this target (its session: %s). "
				  "Fix: stop that ferry first; if it was killed, its session ends when its statement does, "
				  "or end it now on the target with SELECT pg_terminate_backend(%s)",
				  name, who, found ? PQgetvalue(res, 0, 0) : "<pid>");
		free(who);
		PQclear(res);
		return false;
	}
}

/* at most this long for an orphaned apply session to end once told to */
#define APPLY_FENCE_WAIT_S 30

bool
state_apply_fence(PGconn *target, const char *name)
{
	const char *params[2] = {name, STATE_APPLY_LOCK_CLASS};

	for (int i = 0; i < APPLY_FENCE_WAIT_S * 10; i++)
	{
		PGresult   *res;
		int			held = lock_held(target, STATE_APPLY_LOCK_CLASS, name, "look for an apply session left behind");

		if (held <= 0)
			return held == 0;
		/*
		 * Ended, not waited for: it may wait on a lock for hours. Either its
		 * COMMIT ran (then the position row and origin say so) or it never
		 * will. Same role as ours, so no pg_signal_backend is needed.
		 */
		res = pg_query(target, "end the apply session left behind",
					   "SELECT a.pid, a.state, a.wait_event_type, pg_catalog.pg_terminate_backend(l.pid)"
					   "  FROM pg_catalog.pg_locks l LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid"
					   " WHERE" LOCK_HOLDERS_WHERE " AND l.pid <> pg_catalog.pg_backend_pid()",
					   2, params);
		if (res == NULL)
		{
			log_error("an apply session of an earlier ferry is still running on the target and could not be ended (it may run as another role). "
					  "Fix: as a superuser or that role, in this database on the target: SELECT pg_terminate_backend(pid) FROM pg_locks "
					  "WHERE locktype = 'advisory' AND classid = %s AND objid = hashtext('%s')::oid AND objsubid = 2 "
					  "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()); then start again",
					  STATE_APPLY_LOCK_CLASS, name);
			return false;
		}
		for (int r = 0; r < PQntuples(res); r++)
			if (i == 0)
				log_warn("ended the apply session an earlier ferry left on the target (pid %s, %s%s%s): "
							"its last batch either committed already or is rolled back, and the position read next says which",
							PQgetvalue(res, r, 0), PQgetvalue(res, r, 1),
							PQgetisnull(res, r, 2) ? "" : ", waiting on ", PQgetvalue(res, r, 2));
		PQclear(res);
		usleep(100000);
	}
	log_error("an apply session of an earlier ferry on the target did not end within %d s of pg_terminate_backend. "
			  "Fix: look for it on the target (pg_locks: advisory, classid %s, objid hashtext('%s'), this database) and end it, then start again",
			  APPLY_FENCE_WAIT_S, STATE_APPLY_LOCK_CLASS, name);
	return false;
}

bool
state_apply_lock(PGconn *apply_conn, const char *name)
{
	int			got = try_lock(apply_conn, STATE_APPLY_LOCK_CLASS, name, "take the apply lock");

	if (got == 0)
		log_error("another session applies migration \"%s\" on the target. Fix: stop the other ferry", name);
	return got == 1;
}

int
state_table_exists(PGconn *conn, const char *table)
{
	char	   *qname = xasprintf("ferry.%s", table);
	const char *params[1] = {qname};
	PGresult   *res = pg_query(conn, "look for ferry's state",
							   "SELECT pg_catalog.to_regclass($1) IS NOT NULL", 1, params);
	int			r = -1;

	if (res != NULL && pg_check_shape(res, 1, 1, "the state lookup"))
		r = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	free(qname);
	return r;
}

int
state_lock_held(PGconn *conn, const char *name)
{
	return lock_held(conn, STATE_LOCK_CLASS, name, "probe the migration lock");
}

/*
 * Schema ferry's owner, and the other roles owning objects in it; no row
 * when there is no schema ferry.
 */
static const char STATE_OWNERS_SQL[] =
	"SELECT r.rolname, r.rolname = current_user,"
	"       (SELECT pg_catalog.string_agg(DISTINCT o.rolname, ', ')"
	"          FROM (SELECT c.relowner AS owner FROM pg_catalog.pg_class c WHERE c.relnamespace = n.oid"
	"                UNION ALL SELECT p.proowner FROM pg_catalog.pg_proc p WHERE p.pronamespace = n.oid"
	"                UNION ALL SELECT t.typowner FROM pg_catalog.pg_type t WHERE t.typnamespace = n.oid"
	"                UNION ALL SELECT x.oprowner FROM pg_catalog.pg_operator x WHERE x.oprnamespace = n.oid"
	"                UNION ALL SELECT k.conowner FROM pg_catalog.pg_conversion k WHERE k.connamespace = n.oid) a"
	"          JOIN pg_catalog.pg_roles o ON o.oid = a.owner WHERE a.owner <> n.nspowner)"
	"  FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.oid = n.nspowner"
	" WHERE n.nspname = 'ferry'";

bool
state_schema_trusted(PGconn *conn, const char *side)
{
	PGresult   *res = pg_query(conn, "look up schema ferry", STATE_OWNERS_SQL, 0, NULL);
	bool		ok = false;

	if (res == NULL || !pg_check_shape(res, -1, 3, "schema ferry's owners"))
		goto done;
	if (PQntuples(res) == 0)
		ok = true;				/* not there: ferry creates it, owned by this role */
	else if (PQgetvalue(res, 0, 1)[0] != 't')
		log_error("schema ferry on the %s is owned by role %s, not by %s that ferry connects as: ferry keeps its state there and would trust whatever that role put in it. Fix: if it is not ferry's, drop or rename it (DROP SCHEMA ferry CASCADE, as its owner or a superuser); if it is ferry's from a run as %s, connect as %s again or ALTER SCHEMA ferry OWNER TO %s",
				  side, PQgetvalue(res, 0, 0), PQuser(conn), PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 0), PQuser(conn));
	else if (!PQgetisnull(res, 0, 2))
		log_error("schema ferry on the %s holds objects owned by %s, not by %s that owns it: ferry would trust them. Fix: drop those objects (or the schema, DROP SCHEMA ferry CASCADE, if no migration needs it), and REVOKE CREATE ON SCHEMA ferry FROM them",
				  side, PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 0));
	else
		ok = true;

done:
	PQclear(res);
	return ok;
}

bool
state_ensure(PGconn *target, const char *side)
{
	char	   *err = NULL;

	/* before touching it (the DDL below would adopt it), and after (one made meanwhile) */
	if (!state_schema_trusted(target, side))
		return false;
	/* quiet: IF NOT EXISTS still emits notices */
	if (!pg_exec_quiet(target, "SET client_min_messages = warning", NULL) ||
		!pg_exec_quiet(target, STATE_DDL, &err))
	{
		log_error("could not create ferry's state schema on the target: %s. Fix: grant the target user CREATE on the database (GRANT CREATE ON DATABASE ... TO ...)",
				  err ? err : PQerrorMessage(target));
		free(err);
		return false;
	}
	pg_exec_quiet(target, "RESET client_min_messages", NULL);
	return state_schema_trusted(target, side);
}

bool
state_load(PGconn *target, const char *name, MigrationState *st)
{
	const char *params[1] = {name};
	PGresult   *res = pg_query(target, "read the migration state",
							   "SELECT phase, slot_name, start_lsn, pre_data_done, data_done, post_data_done"
							   "  FROM ferry.migration WHERE name = $1",
							   1, params);

	if (res == NULL || !pg_check_shape(res, -1, 6, "the migration state"))
	{
		PQclear(res);
		return false;
	}
	memset(st, 0, sizeof(*st));
	if (PQntuples(res) == 1)
	{
		st->exists = true;
		st->phase = xstrdup(PQgetvalue(res, 0, 0));
		st->slot_name = xstrdup(PQgetvalue(res, 0, 1));
		st->start_lsn = PQgetisnull(res, 0, 2) ? NULL : xstrdup(PQgetvalue(res, 0, 2));
		st->pre_data_done = PQgetvalue(res, 0, 3)[0] == 't';
		st->data_done = PQgetvalue(res, 0, 4)[0] == 't';
		st->post_data_done = PQgetvalue(res, 0, 5)[0] == 't';
	}
	PQclear(res);
	return true;
}

void
state_release(MigrationState *st)
{
	free(st->phase);
	free(st->slot_name);
	free(st->start_lsn);
	memset(st, 0, sizeof(*st));
}

bool
state_create(PGconn *target, const char *name, const char *slot_name)
{
	const char *params[2] = {name, slot_name};
	PGresult   *res = pg_query(target, "record the migration",
							   "INSERT INTO ferry.migration (name, phase, slot_name) VALUES ($1, 'cloning', $2)",
							   2, params);

	PQclear(res);
	return res != NULL;
}

bool
state_set(PGconn *target, const char *name, const char *column, const char *value)
{
	/* column names come from our own code, never from input */
	static const char *const allowed[] = {"start_lsn", "phase", "pre_data_done", "data_done",
	"post_data_done", "clone_finished_at", "source_freeze", "target_freeze", "reverse", "switched_at",
	"switch_window_ms", "rolled_back_at", "rollback_window_ms", "switch_hook_at", "pooler_hold", "rearm_lsn"};
	const char *params[2] = {name, value};
	char	   *sql = NULL;
	PGresult   *res;
	bool		known = false;

	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		known |= strcmp(allowed[i], column) == 0;
	if (!known)
	{
		log_error("internal error: unknown state column %s", column);
		return false;
	}
	sql = xasprintf("UPDATE ferry.migration SET %s = $2, updated_at = now() WHERE name = $1", column);
	res = pg_query(target, "update the migration state", sql, 2, params);
	free(sql);
	PQclear(res);
	return res != NULL;
}

bool
state_forget(PGconn *target, const char *name)
{
	const char *params[1] = {name};
	PGresult   *res = pg_query(target, "remove the migration state",
							   "DELETE FROM ferry.migration WHERE name = $1", 1, params);

	PQclear(res);
	return res != NULL;
}
