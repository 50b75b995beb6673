/*
 * cli_switchover.c: `ferry switchover` and `ferry rollback` (the work is in
 * switchover.c): option checks, confirmation, the report, the exit code.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "exitcode.h"
#include "log.h"
#include "switchover.h"

/* Ask on the terminal unless --yes; without a terminal --yes is required. */
static int
confirm(const FerryConfig *cfg, const char *what)
{
	char		line[16];

	if (cfg->yes)
		return EXIT_OK;
	if (!isatty(STDIN_FILENO))
	{
		fprintf(stderr, "ferry: %s needs --yes when not run from a terminal\n", what);
		return EXIT_USAGE;
	}
	fprintf(stderr, "%s of migration %s: writes on the %s stop for a moment. Type yes to go on: ",
			what, cfg->name, strcmp(what, "rollback") == 0 ? "target" : "source");
	if (fgets(line, sizeof(line), stdin) == NULL || strncmp(line, "yes", 3) != 0)
	{
		fprintf(stderr, "ferry: %s cancelled\n", what);
		return EXIT_FAILED;
	}
	return EXIT_OK;
}

static void
print_report(const FerryConfig *cfg, const char *what, bool ok, const SwitchReport *rep)
{
	if (cfg->json)
	{
		json_t	   *j = json_pack("{s:s, s:b, s:b, s:f, s:f, s:f, s:i, s:i, s:I, s:b}",
								  "command", what, "ok", ok, "aborted", rep->aborted,
								  "write_downtime_seconds", rep->window_seconds,
								  "drain_seconds", rep->drain_seconds,
								  "total_seconds", rep->total_seconds,
								  "sequences", rep->sequences,
								  "recopied_tables", rep->recopied_tables,
								  "recopied_rows", (json_int_t) rep->recopied_rows,
								  "reverse_replication", rep->reverse);

		if (rep->pool.poolers > 0)
			json_object_set_new(j, "pgbouncer",
								json_pack("{s:i, s:f, s:f, s:i, s:i, s:b}", "poolers", rep->pool.poolers,
										  "held_seconds", rep->pool.held_seconds,
										  "longest_wait_seconds", rep->pool.longest_wait,
										  "held_requests", rep->pool.held_clients,
										  "failed_requests", rep->pool.failed,
										  "drained", rep->pool.drained));
		json_dumpf(j, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		json_decref(j);
		return;
	}
	if (!ok)
	{
		printf("%s of migration %s FAILED%s\n", what, cfg->name,
			   rep->aborted ? ": put back, the application stays where it was" : "");
		return;
	}
	printf("%s of migration %s complete\n", what, cfg->name);
	printf("  write downtime     %.3f s\n", rep->window_seconds);
	printf("  drain              %.3f s\n", rep->drain_seconds);
	printf("  sequences set      %d\n", rep->sequences);
	printf("  re-copied tables   %d (%lld rows)\n", rep->recopied_tables, rep->recopied_rows);
	if (rep->pool.poolers > 0)
	{
		printf("  clients held       %.3f s in %d PgBouncer%s (PAUSE to RESUME); the longest request waited %.3f s\n",
			   rep->pool.held_seconds, rep->pool.poolers, rep->pool.poolers == 1 ? "" : "s", rep->pool.longest_wait);
		printf("  held requests      %d waiting at the resume, %d seen failing%s\n", rep->pool.held_clients,
			   rep->pool.failed, rep->pool.drained ? "" : "; some queue did not drain (see the log)");
	}
	if (strcmp(what, "switchover") == 0)
		printf("  reverse replication %s\n", rep->reverse ? "prepared (ferry rollback can go back; ferry start keeps the source current)" : "off (--no-reverse)");
}

int
cli_switchover(FerryConfig *cfg)
{
	SwitchReport rep;
	int			rc;
	bool		ok;

	if (strcmp(cfg->freeze_mode, "readonly") != 0 && strcmp(cfg->freeze_mode, "revoke") != 0 &&
		strcmp(cfg->freeze_mode, "hook") != 0)
	{
		fprintf(stderr, "ferry: unknown --freeze \"%s\": use readonly, revoke or hook\n", cfg->freeze_mode);
		return EXIT_USAGE;
	}
	if (strcmp(cfg->freeze_mode, "revoke") == 0 && cfg->freeze_roles.n == 0)
	{
		fprintf(stderr, "ferry: --freeze revoke needs the application roles: add --freeze-role ROLE (repeatable)\n");
		return EXIT_USAGE;
	}
	if (strcmp(cfg->freeze_mode, "hook") == 0 && cfg->hooks.freeze == NULL)
	{
		fprintf(stderr, "ferry: --freeze hook needs hooks: freeze: in the --config file\n");
		return EXIT_USAGE;
	}
	if ((rc = confirm(cfg, "switchover")) != EXIT_OK)
		return rc;
	ok = switchover_run(cfg, cli_verify_all, &rep);
	print_report(cfg, "switchover", ok, &rep);
	return ok ? EXIT_OK : EXIT_FAILED;
}

int
cli_rollback(FerryConfig *cfg)
{
	SwitchReport rep;
	int			rc;
	bool		ok;

	if ((rc = confirm(cfg, "rollback")) != EXIT_OK)
		return rc;
	ok = rollback_run(cfg, &rep);
	print_report(cfg, "rollback", ok, &rep);
	return ok ? EXIT_OK : EXIT_FAILED;
}
