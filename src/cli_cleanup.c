/*
 * cli_cleanup.c: `ferry cleanup`: remove everything a migration created, on
 * both servers, so nothing is left retaining WAL or holding names:
 *   source: the replication slot NAME, the publications NAME and
 *           NAME_insert_only;
 *   target: the replication origin NAME and the migration's rows in the
 *           ferry schema (the schema itself once no migration is left).
 * After a switchover the same again for the reverse direction
 * (NAME_reverse): slot and publications on the target, origin and state on
 * the source.
 * Idempotent: what is already gone is skipped. Refuses while `ferry start`
 * (or another ferry) drives the migration: its slot is active, or an
 * advisory lock is held; and while a switchover or rollback is half done
 * (phase switching or rolling_back) unless --force. The tables and data are
 * the user's and are never touched; a database a switchover left read-only
 * stays so (the report says how to reopen it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "check.h"
#include "freeze.h"
#include "exitcode.h"
#include "log.h"
#include "pooler.h"
#include "mem.h"
#include "pgsql.h"
#include "publication.h"
#include "slot.h"
#include "state.h"
#include "watch.h"

static bool force;

void
cli_cleanup_set_force(bool on)
{
	force = on;
}

/* The slot and publications on the side streamed from (`side` names it). */
static bool
cleanup_source(FerryConfig *cfg, PGconn *src, const char *side)
{
	const char *params[1] = {cfg->name};
	PGresult   *res = NULL;
	bool		ok = true;

	/*
	 * We hold the migration's lock, so no ferry drives it; a slot still
	 * active belongs to a walsender that has not yet noticed its client
	 * left. Give it a few seconds.
	 */
	for (int i = 0; i < 50 && ok; i++)
	{
		PQclear(res);
		res = pg_query(src, "look up the slot",
					   "SELECT active, active_pid FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
					   1, params);
		ok = res != NULL;
		if (!ok || PQntuples(res) == 0 || PQgetvalue(res, 0, 0)[0] != 't')
			break;
		usleep(100000);
	}

	if (ok && PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't')
	{
		log_error("the replication slot \"%s\" is in use (walsender pid %s): something still streams from it. Fix: stop that consumer first (ferry start on another host?), then run ferry cleanup again",
				  cfg->name, PQgetvalue(res, 0, 1));
		ok = false;
	}
	else if (ok && PQntuples(res) == 1)
	{
		ok = slot_drop(src, cfg->name);
		if (ok)
			printf("dropped replication slot %s on the %s\n", cfg->name, side);
	}
	PQclear(res);
	if (ok)
	{
		char	   *ins = xasprintf("%s%s", cfg->name, PUBLICATION_INSERT_ONLY_SUFFIX);
		const char *p2[2] = {cfg->name, ins};
		PGresult   *pubs = pg_query(src, "list the publications",
									"SELECT count(*) FROM pg_catalog.pg_publication WHERE pubname IN ($1, $2)", 2, p2);

		ok = pubs != NULL && publication_drop(src, cfg);
		if (ok && PQgetvalue(pubs, 0, 0)[0] != '0')
			printf("dropped publications %s and %s on the %s\n", cfg->name, ins, side);
		PQclear(pubs);
		free(ins);
	}
	return ok;
}

/* The origin and ferry's state on the side applied to (`side` names it). */
static bool
cleanup_target(FerryConfig *cfg, PGconn *tgt, const char *side)
{
	const char *params[1] = {cfg->name};
	PGresult   *res;
	bool		ok = true;
	int			has;

	/*
	 * Only an origin that exists is dropped: a role without EXECUTE on the
	 * origin functions (apply ran without one) is refused the call even
	 * when no row would reach it.
	 */
	res = pg_query(tgt, "look for the replication origin",
				   "SELECT 1 FROM pg_catalog.pg_replication_origin WHERE roname = $1", 1, params);
	if (res == NULL)
		return false;
	has = PQntuples(res);
	PQclear(res);
	if (has > 0)
	{
		res = pg_query(tgt, "drop the replication origin",
					   "SELECT pg_catalog.pg_replication_origin_drop($1)", 1, params);
		if (res == NULL)
			return false;
		PQclear(res);
		printf("dropped replication origin %s on the %s\n", cfg->name, side);
	}

	has = state_table_exists(tgt, "migration");
	if (has <= 0)
		return has == 0;		/* no state at all: done */
	if (!state_forget(tgt, cfg->name))
		return false;
	res = pg_query(tgt, "drop ferry's state schema when it is empty",
				   "SELECT count(*) FROM ferry.migration", 0, NULL);
	if (res == NULL)
		return false;
	if (strcmp(PQgetvalue(res, 0, 0), "0") == 0)
	{
		ok = pg_exec_quiet(tgt, "SET client_min_messages = warning; DROP SCHEMA ferry CASCADE", NULL);
		if (ok)
			printf("dropped ferry's state schema on the %s\n", side);
	}
	else
		printf("removed migration %s from ferry's state on the %s (%s others remain)\n",
			   cfg->name, side, PQgetvalue(res, 0, 0));
	PQclear(res);
	return ok;
}

/*
 * Refuse a half-done switchover unless --force; tell which database a
 * switchover left read-only. False when cleanup must not go on.
 */
static bool
check_phase(FerryConfig *cfg, PGconn *tgt)
{
	const char *params[1] = {cfg->name};
	int			has = state_table_exists(tgt, "migration");
	PGresult   *res;
	bool		ok = true;

	if (has <= 0)
		return has == 0;
	res = pg_query(tgt, "read the migration state",
				   "SELECT phase, source_freeze, target_freeze, pg_catalog.to_jsonb(m) ->> 'pooler_hold'"
				   "  FROM ferry.migration m WHERE name = $1", 1, params);
	if (res == NULL)
		return false;
	if (PQntuples(res) == 1)
	{
		const char *phase = PQgetvalue(res, 0, 0);
		bool		half = strcmp(phase, "switching") == 0 || strcmp(phase, "rolling_back") == 0;

		if (half && !force)
		{
			log_error("migration %s is in phase %s: a switchover or rollback is half done. Fix: run ferry rollback (it undoes an interrupted switchover) or ferry switchover to finish it; ferry cleanup --force removes ferry's objects anyway",
					  cfg->name, phase);
			ok = false;
		}
		if (ok && !PQgetisnull(res, 0, 3))
		{
			/* the record is about to go: say what it held (pooler.h) */
			PoolerSide	from;
			bool		repointed;
			char	   *names = NULL;

			if (pooler_hold_from_json(PQgetvalue(res, 0, 3), &from, &repointed, &names))
				printf("note: PgBouncers may stay paused, as the interrupted %s left them (%s%s): on each, point the entry at the server that takes writes, RELOAD, then RESUME it\n",
					   from == POOLER_SOURCE ? "switchover" : "rollback", names, repointed ? ", maybe repointed" : "");
			free(names);
		}
		for (int col = 1; ok && col <= 2; col++)
		{
			Freeze		fz;
			bool		left = col == 1 ? (strcmp(phase, "switched") == 0 || strcmp(phase, "switching") == 0)
				: (strcmp(phase, "rolled_back") == 0 || strcmp(phase, "rolling_back") == 0);

			if (!left || PQgetisnull(res, 0, col) || !freeze_from_json(PQgetvalue(res, 0, col), &fz))
				continue;
			if (strcmp(fz.mode, "readonly") == 0)
			{
				/* the name comes from the state table: quoted, so the SQL to copy is just that */
				char	   *qd = check_ident(fz.dbname);

				printf("note: the %s database %s stays read-only, as the %s left it; to reopen it: ALTER DATABASE %s RESET default_transaction_read_only\n",
					   col == 1 ? "source" : "target", qd, col == 1 ? "switchover" : "rollback", qd);
				free(qd);
			}
			else if (strcmp(fz.mode, "revoke") == 0)
				printf("note: application roles on the %s stay without LOGIN, as the %s left them\n",
					   col == 1 ? "source" : "target", col == 1 ? "switchover" : "rollback");
			freeze_release_record(&fz);
		}
	}
	PQclear(res);
	return ok;
}

/*
 * After a switchover the forward slot on the old source is the watch for
 * writes that still reach it (watch.h), and ferry.source_writes their
 * record: read the watch one last time, and refuse to drop the only trace
 * of changes that are not on the new primary unless --force. False when
 * cleanup must not go on.
 */
static bool
check_source_writes(FerryConfig *cfg, PGconn *src, PGconn *tgt)
{
	long long	n;

	if (watch_poll_migration(src, tgt, true, cfg->name) < 0 && !force)
		return false;
	n = watch_recorded(tgt, cfg->name);
	if (n < 0)
		return force;
	if (n > 0 && !force)
	{
		log_error("%lld changes were committed on the old source after the switchover and are not on the new primary (ferry status lists them); cleanup would drop their only record. Fix: carry them over, then DELETE FROM ferry.source_writes on the target and run cleanup again, or ferry cleanup --force",
				  n);
		return false;
	}
	return true;
}

int
cli_cleanup(FerryConfig *cfg)
{
	PGconn	   *src = pg_connect(cfg->source, "source", PG_CONN_SQL, NULL);
	PGconn	   *tgt = src ? pg_connect(cfg->target, "target", PG_CONN_SQL, NULL) : NULL;
	FerryConfig *rcfg = config_reversed(cfg);
	int			rc = EXIT_FAILED;

	if (src == NULL || tgt == NULL)
		goto done;
	/* the same locks `clone`, `start` and the reverse follower hold: never clean up under them */
	if (!check_phase(cfg, tgt) || !state_lock(tgt, cfg->name) || !state_lock(src, rcfg->name) ||
		!check_source_writes(cfg, src, tgt))
		goto done;
	if (!cleanup_source(cfg, src, "source") || !cleanup_source(rcfg, tgt, "target") ||
		!cleanup_target(rcfg, src, "source") || !cleanup_target(cfg, tgt, "target"))
		goto done;
	printf("cleanup of migration %s complete\n", cfg->name);
	rc = EXIT_OK;

done:
	config_release(rcfg);
	free(rcfg);
	pg_finish(src);
	pg_finish(tgt);
	return rc;
}
