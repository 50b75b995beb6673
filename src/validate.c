/*
 * validate.c: validating the foreign keys a resumed clone built NOT VALID
 * (see validate.h).
 */
#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mem.h"
#include "pgsql.h"
#include "state.h"

const char	VALIDATE_MARK_SQL[] =
	"INSERT INTO ferry.pending_constraint (migration, tablename, conname, valid_after)"
	" VALUES ($1, $2, $3, $4::pg_lsn) ON CONFLICT DO NOTHING";

static const char PENDING_SQL[] =
	"SELECT tablename, conname, valid_after::text, tries, last_error"
	"  FROM ferry.pending_constraint WHERE migration = $1 ORDER BY tablename, conname";

/*
 * The statement that validates one pending key, built by the server from
 * the catalog (format %s of a regclass, %I): NULL when the key is gone
 * from the target, and whether it is valid already.
 */
static const char LOOKUP_SQL[] =
	"SELECT pg_catalog.format('ALTER TABLE ONLY %s VALIDATE CONSTRAINT %I', c.conrelid::pg_catalog.regclass, c.conname),"
	"       c.convalidated"
	"  FROM pg_catalog.pg_constraint c"
	" WHERE c.conrelid = pg_catalog.to_regclass($1) AND c.conname = $2 AND c.contype = 'f'";

static const char FORGET_SQL[] =
	"DELETE FROM ferry.pending_constraint WHERE migration = $1 AND tablename = $2 AND conname = $3";

static const char FAILED_SQL[] =
	"UPDATE ferry.pending_constraint SET tries = tries + 1, last_try_at = pg_catalog.now(), last_error = $4"
	" WHERE migration = $1 AND tablename = $2 AND conname = $3";

PGresult   *
validate_pending(PGconn *tgt, const char *name)
{
	const char *params[1] = {name};
	int			have = state_table_exists(tgt, "pending_constraint");

	if (have < 0)
		return NULL;
	if (have == 0)				/* state from before this table: nothing pending */
		return pg_query(tgt, "read the constraints awaiting validation",
						"SELECT NULL::text, NULL::text, NULL::text, NULL::int, NULL::text WHERE false", 0, NULL);
	return pg_query(tgt, "read the constraints awaiting validation", PENDING_SQL, 1, params);
}

/*
 * Validate one key: in one transaction, VALIDATE and forget it. Returns
 * 1 validated (or gone, or valid already: forgotten), 0 failed (logged,
 * recorded), -1 on a state error.
 */
static int
validate_one(PGconn *tgt, const char *name, const char *table, const char *con)
{
	const char *params[4] = {name, table, con, NULL};
	PGresult   *res;
	char	   *alter = NULL;
	char	   *err = NULL;
	int			r = -1;

	if (!pg_exec(tgt, "begin a validation", "BEGIN; SET LOCAL lock_timeout = '" VALIDATE_LOCK_TIMEOUT "'"))
		return -1;
	res = pg_query(tgt, "look up a foreign key to validate", LOOKUP_SQL, 2, params + 1);
	if (res == NULL || !pg_check_shape(res, -1, 2, "the foreign key"))
		goto done;
	if (PQntuples(res) == 0)
		log_warn("foreign key %s on %s, built NOT VALID by the resumed clone, no longer exists on the target: forgetting it",
				 con, table);
	else if (PQgetvalue(res, 0, 1)[0] != 't')
		alter = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	res = NULL;
	if (alter && !pg_exec_quiet(tgt, alter, &err))
	{
		pg_exec_quiet(tgt, "ROLLBACK", NULL);
		log_warn("could not validate foreign key %s on %s: %s; retrying in %d s (apply goes on; switchover is refused until it is valid). Fix: if a target row differs from the source, repair it (ferry verify shows the differences)",
				 con, table, err ? err : "unknown error", VALIDATE_RETRY_MS / 1000);
		params[3] = err ? err : "unknown error";
		res = pg_query(tgt, "record the failed validation", FAILED_SQL, 4, params);
		r = res ? 0 : -1;
		goto done;
	}
	res = pg_query(tgt, "forget the validated foreign key", FORGET_SQL, 3, params);
	if (res == NULL || !pg_exec(tgt, "commit the validation", "COMMIT"))
		goto done;
	if (alter)
		log_info("validated foreign key %s on %s: apply has caught up with the resumed clone", con, table);
	r = 1;

done:
	if (r < 0)
		pg_exec_quiet(tgt, "ROLLBACK", NULL);
	PQclear(res);
	free(alter);
	free(err);
	return r;
}

bool
validate_run(PGconn *tgt, const char *name, uint64_t applied, int *remaining, int *failed)
{
	PGresult   *res = validate_pending(tgt, name);
	int			left,
				bad = 0;

	if (res == NULL || !pg_check_shape(res, -1, 5, "the constraints awaiting validation"))
	{
		PQclear(res);
		return false;
	}
	left = PQntuples(res);
	for (int i = 0; i < PQntuples(res) && !pg_interrupted(); i++)
	{
		uint64_t	after;
		int			r;

		if (!pg_lsn_parse(PQgetvalue(res, i, 2), &after) || applied < after)
			continue;			/* not consistent yet */
		r = validate_one(tgt, name, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
		if (r < 0)
		{
			PQclear(res);
			return false;
		}
		left -= r;
		bad += r == 0;
	}
	PQclear(res);
	*remaining = left;
	*failed = bad;
	return true;
}
