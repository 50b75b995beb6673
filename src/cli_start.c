/*
 * cli_start.c: `ferry start`: clone if needed, then follow until stopped.
 */
#include <stdio.h>

#include "cli.h"
#include "exitcode.h"
#include "follow.h"
#include "log.h"
#include "pgsql.h"

int
cli_start(FerryConfig *cfg)
{
	FollowResult r;
	char		lsn[32];

	if (!follow_run(cfg, &r))
		return EXIT_FAILED;
	pg_lsn_format(r.applied_lsn, lsn, sizeof(lsn));
	if (r.stopped_by_signal)
		log_info("stopped; everything up to source position %s is applied (%lld changes in %lld transactions this run); run ferry start again to continue",
				 lsn, (long long) r.changes, (long long) r.txns);
	printf("stopped at %s: %lld changes in %lld transactions applied this run\n", lsn,
		   (long long) r.changes, (long long) r.txns);
	return EXIT_OK;
}
