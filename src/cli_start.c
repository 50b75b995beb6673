/*
 * cli_start.c: `ferry start`: clone if needed, then follow until stopped.
 * After a switchover the same service carries on in the other direction:
 * it replicates the new primary (the old target) back into the old source,
 * so that `ferry rollback` has little to drain, until a rollback or cleanup
 * ends the migration.
 *
 * Runs as a service too: SIGHUP reloads the config file (reload.h) and
 * --metrics-listen serves Prometheus metrics (metrics.h); both start here,
 * before any work, and a metrics address that cannot be bound is a
 * configuration error (exit 2).
 */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "exitcode.h"
#include "follow.h"
#include "log.h"
#include "metrics.h"
#include "pgsql.h"
#include "reload.h"

/* Whether the switchover prepared reverse replication (ferry.migration.reverse). */
static bool
reverse_prepared(const FerryConfig *cfg)
{
	PGconn	   *tgt = pg_connect(cfg->target, "target", PG_CONN_SQL, NULL);
	const char *params[1] = {cfg->name};
	PGresult   *res;
	bool		rev = false;

	if (tgt == NULL)
		return false;
	res = pg_query(tgt, "read the migration state",
				   "SELECT reverse AND phase = 'switched' FROM ferry.migration WHERE name = $1", 1, params);
	rev = res != NULL && PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	pg_finish(tgt);
	return rev;
}

static void
report(const FollowResult *r, const char *what)
{
	char		lsn[32];

	pg_lsn_format(r->applied_lsn, lsn, sizeof(lsn));
	if (r->stopped_by_signal)
		log_info("stopped; everything up to position %s is applied (%lld changes in %lld transactions this run); run ferry start again to continue",
				 lsn, (long long) r->changes, (long long) r->txns);
	printf("%s stopped at %s: %lld changes in %lld transactions applied this run\n", what, lsn,
		   (long long) r->changes, (long long) r->txns);
}

/* Follow, then the reverse direction after a switchover; the exit status. */
static int
start_run(FerryConfig *cfg)
{
	FollowResult r;
	FerryConfig *rcfg;
	bool		ok;

	if (!follow_run(cfg, false, &r))
		return EXIT_FAILED;
	report(&r, "replication");
	if (!r.switched)
		return EXIT_OK;
	if (!reverse_prepared(cfg))
	{
		log_info("migration %s is switched over and has no reverse replication: nothing left to follow", cfg->name);
		return EXIT_OK;
	}
	log_info("migration %s is switched over: replicating the target's changes back to the source for rollback", cfg->name);
	rcfg = config_reversed(cfg);
	ok = follow_run(rcfg, true, &r);
	if (ok)
	{
		report(&r, "reverse replication");
		if (r.finished)
			log_info("reverse replication of %s ended (rolled back or cleaned up)", cfg->name);
	}
	config_release(rcfg);
	free(rcfg);
	return ok ? EXIT_OK : EXIT_FAILED;
}

int
cli_start(FerryConfig *cfg)
{
	int			rc;

	if (cfg->metrics_listen && !metrics_start(cfg->metrics_listen, cfg->name))
		return EXIT_USAGE;
	if (!reload_start(cfg))
	{
		metrics_stop();
		return EXIT_FAILED;
	}
	rc = start_run(cfg);
	reload_stop();
	metrics_stop();
	return rc;
}
