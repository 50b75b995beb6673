/*
 * main.c: ferry's entry point. Parses `ferry [global options] COMMAND
 * [command options]` (options may also follow the command), merges the
 * settings (command line > environment > --config file > defaults, see
 * config.h), and dispatches through the command table. `--help` for ferry
 * and for each command is generated from the tables below.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "exitcode.h"
#include "log.h"
#include "pgsql.h"
#include "pooler.h"
#include "verify.h"

static const Command commands[] = {
	{"check", "pre-flight checks of source and target, each problem with its fix",
		"Checks both servers for everything a migration needs and prints a table of\n"
		"results; each problem comes with the exact fix (setting, SQL or GRANT).\n"
		"Exit status 3 when a blocking problem is found, 0 when only warnings remain.",
	OPT_CHECK, cli_check},
	{"plan", "what ferry would do on these servers, changing nothing",
		"Prints the migration plan without changing anything on either server: the\n"
		"tables to copy with their sizes and row estimates, which are split into how\n"
		"many block ranges (the same rules as clone: --jobs, --split-tables-larger-than),\n"
		"which tables are published for inserts only (no key: re-copied at switchover),\n"
		"the objects ferry will create on the source (replication slot, publications,\n"
		"heartbeats) and on the target (schema, state schema ferry, replication origin),\n"
		"the objects not migrated, and ferry check's problems. Also ferry clone\n"
		"--dry-run and ferry start --dry-run. Exit status 3 on blocking problems.",
	OPT_PLAN, cli_plan},
	{"clone", "snapshot-consistent copy of schema and data, resumable",
		"Creates the logical replication slot with an exported snapshot, copies the\n"
		"schema and then the data as of that snapshot with parallel workers (large\n"
		"tables split into block ranges), builds indexes and constraints in parallel,\n"
		"sets sequences, refreshes materialized views and analyzes the target.\n"
		"Interrupted or failed clones resume where they stopped when run again.",
	OPT_CLONE, cli_clone},
	{"start", "clone if needed, then replicate every change until stopped",
		"Runs clone if the copy is not complete, then streams every change from the\n"
		"source's replication slot and applies it to the target exactly once, in\n"
		"commit order, until SIGINT or SIGTERM (exit 0, position reported). Run it\n"
		"again after any stop or crash: it continues where it left off. Lost\n"
		"connections are retried with backoff; it can run as a service.",
	OPT_CLONE | OPT_START, cli_start},
	{"status", "phase, copy progress, lag, apply rate and row deltas",
		"Reports the migration's state from any terminal, whether or not ferry start\n"
		"is running: phase, copy progress, applied position, lag in bytes and\n"
		"seconds, apply rate, WAL retained by the slot on the source, and for each\n"
		"table its rows: ferry's own count (rows copied, plus rows inserted minus\n"
		"rows deleted by apply) and the servers' statistics (estimates). It reads no\n"
		"user table; --exact counts every table on both servers and shows the delta.",
	OPT_STATUS, cli_status},
	{"verify", "compare every migrated table's full contents, row by row where they differ",
		"Hashes every row of every migrated table on source and target, per primary\n"
		"key range and in parallel (--jobs), narrows differing ranges down to rows and\n"
		"lists keys missing, extra or different on the target. While ferry start runs,\n"
		"a range that differs is re-read after the target has caught up, so lag is not\n"
		"reported. Exit status 0 when identical, 1 on any difference.",
	OPT_VERIFY, cli_verify},
	{"switchover", "freeze the source, drain, sync sequences, switch the application to the target",
		"Checks that replication follows with lag under --max-lag, runs the pre_freeze\n"
		"hook, freezes writes on the source (read-only database and its sessions ended,\n"
		"or LOGIN revoked, or the freeze hook), drains the last changes through a\n"
		"sentinel, re-copies tables without a key, sets every target sequence to the\n"
		"source's value plus --sequence-gap, optionally verifies every row, prepares\n"
		"reverse replication (target to source) for rollback, runs the switch hook and\n"
		"reports the write downtime. Any failure before the switch unfreezes the source\n"
		"and leaves replication running. Killed in or after the switch hook, a rerun\n"
		"finishes forward (the hook runs again: hooks must be idempotent). Works with or\n"
		"without ferry start running. With --pgbouncer, the application's PgBouncers\n"
		"hold its requests instead of letting them fail: PAUSE before the freeze, the\n"
		"database entry repointed at the target, RESUME after the switch.",
	OPT_SWITCHOVER, cli_switchover},
	{"rollback", "move the application back to the source after a switchover",
		"Freezes the target, drains the reverse replication into the source, sets the\n"
		"source's sequences past the target's, unfreezes the source, runs the rollback\n"
		"hook and reports the write downtime. After a switchover interrupted before its\n"
		"switch hook it unfreezes the source and returns to following; interrupted in\n"
		"or after the hook, it finishes the switch, then rolls back. --pgbouncer holds\n"
		"the application in its PgBouncers the same way, back to the source.",
	OPT_ROLLBACK, cli_rollback},
	{"cleanup", "drop the migration's slots, publications, origins and state",
		"Removes what ferry created for this migration on both servers: replication\n"
		"slots, publications, replication origins and ferry's state schemas (forward\n"
		"and reverse). Idempotent. Refuses while ferry start runs and while a\n"
		"switchover or rollback is half done (--force overrides the latter). The\n"
		"tables and data are never touched; a database ferry froze stays read-only.",
	OPT_CLEANUP, cli_cleanup},
};

enum
{
	O_SOURCE = 1000, O_TARGET, O_CONFIG, O_NAME, O_JSON, O_HELP, O_VERSION, O_PGBIN,
	O_JOBS, O_INDEX_JOBS, O_SPLIT, O_NO_OWNER, O_NO_PRIV, O_INC_SCHEMA, O_EXC_SCHEMA,
	O_EXC_TABLE, O_EXC_DATA, O_SET_RIF, O_TABLE, O_LOCK_SOURCE, O_MAX_RATE, O_YES, O_MAX_LAG, O_TIMEOUT,
	O_VERIFY, O_NO_REVERSE, O_FREEZE, O_FREEZE_ROLE, O_SEQ_GAP, O_HOOK_TIMEOUT, O_FORCE, O_DRY_RUN,
	O_LOG_FORMAT, O_METRICS, O_WATCH, O_INTERVAL, O_EXACT, O_PGBOUNCER, O_PGBOUNCER_INI, O_PGBOUNCER_DB,
	O_PGBOUNCER_TARGET, O_PGBOUNCER_SOURCE, O_PAUSE_TIMEOUT, O_VERBOSE = 'v',
};

typedef struct OptionDesc
{
	const char *name;
	int			has_arg;
	int			id;
	unsigned	groups;			/* OPT_GLOBAL (0) or a mask of commands */
	const char *argname;
	const char *help;
} OptionDesc;

static const OptionDesc option_descs[] = {
	{"source", 1, O_SOURCE, OPT_GLOBAL, "CONN", "source connection string or URI (or FERRY_SOURCE)"},
	{"target", 1, O_TARGET, OPT_GLOBAL, "CONN", "target connection string or URI (or FERRY_TARGET)"},
	{"config", 1, O_CONFIG, OPT_GLOBAL, "FILE", "YAML file with the same keys, plus filters:"},
	{"name", 1, O_NAME, OPT_GLOBAL, "NAME", "migration name for slot, publication and state (default ferry)"},
	{"json", 0, O_JSON, OPT_GLOBAL, NULL, "print the report as JSON"},
	{"verbose", 0, O_VERBOSE, OPT_GLOBAL, NULL, "more log detail (debug messages)"},
	{"log-format", 1, O_LOG_FORMAT, OPT_GLOBAL, "FORMAT", "log lines as text (default) or json, one object per line"},
	{"pg-bin", 1, O_PGBIN, OPT_GLOBAL, "DIR", "where pg_dump and pg_restore are (default: newest installed)"},
	{"help", 0, O_HELP, OPT_GLOBAL, NULL, "show help and exit"},
	{"version", 0, O_VERSION, OPT_GLOBAL, NULL, "show the version and exit"},
	{"jobs", 1, O_JOBS, OPT_CLONE | OPT_VERIFY | OPT_PLAN | OPT_SWITCHOVER, "N", "parallel copy (or verify) workers (default 4)"},
	{"index-jobs", 1, O_INDEX_JOBS, OPT_CLONE | OPT_PLAN, "N", "parallel index and constraint builds (default = --jobs)"},
	{"split-tables-larger-than", 1, O_SPLIT, OPT_CLONE | OPT_PLAN, "SIZE", "copy larger tables as parallel block ranges (default auto: each worker's share of the data, 0 = never)"},
	{"no-owner", 0, O_NO_OWNER, OPT_CLONE | OPT_CHECK | OPT_PLAN, NULL, "do not restore object owners (target user owns everything)"},
	{"no-privileges", 0, O_NO_PRIV, OPT_CLONE | OPT_CHECK | OPT_PLAN, NULL, "do not restore GRANTs"},
	{"include-schema", 1, O_INC_SCHEMA, OPT_CLONE | OPT_CHECK | OPT_PLAN, "PATTERN", "migrate only these schemas (repeatable)"},
	{"exclude-schema", 1, O_EXC_SCHEMA, OPT_CLONE | OPT_CHECK | OPT_PLAN, "PATTERN", "leave these schemas out (repeatable)"},
	{"exclude-table", 1, O_EXC_TABLE, OPT_CLONE | OPT_CHECK | OPT_PLAN, "PATTERN", "leave these tables out (repeatable)"},
	{"set-replica-identity-full", 0, O_SET_RIF, OPT_CLONE | OPT_PLAN, NULL, "on the source, give tables without a key REPLICA IDENTITY FULL so updates and deletes replicate"},
	{"exclude-table-data", 1, O_EXC_DATA, OPT_CLONE | OPT_CHECK | OPT_PLAN, "PATTERN", "copy these tables' definitions only (repeatable)"},
	{"dry-run", 0, O_DRY_RUN, OPT_CLONE, NULL, "print the plan (as ferry plan) and change nothing"},
	{"table", 1, O_TABLE, OPT_VERIFY, "PATTERN", "verify only these tables: schema.table or table, with * and ? (repeatable)"},
	{"lock-source", 0, O_LOCK_SOURCE, OPT_VERIFY, NULL, "while live, settle a persisting difference by briefly locking that source table (blocks its writers)"},
	{"max-rate", 1, O_MAX_RATE, OPT_VERIFY, "ROWS", "read at most ROWS rows a second from each server, all workers together (default 0: no limit)"},
	{"yes", 0, O_YES, OPT_SWITCHOVER | OPT_ROLLBACK, NULL, "do not ask for confirmation (required without a terminal)"},
	{"max-lag", 1, O_MAX_LAG, OPT_SWITCHOVER | OPT_ROLLBACK, "SECONDS", "refuse to freeze unless the other side is this close behind (default 10)"},
	{"timeout", 1, O_TIMEOUT, OPT_SWITCHOVER | OPT_ROLLBACK, "SECONDS", "give up and unfreeze when the freeze and drain take longer (default 60)"},
	{"verify", 0, O_VERIFY, OPT_SWITCHOVER, NULL, "compare every row while writes are frozen; abort on any difference"},
	{"no-reverse", 0, O_NO_REVERSE, OPT_SWITCHOVER, NULL, "do not prepare reverse replication (no rollback afterwards)"},
	{"freeze", 1, O_FREEZE, OPT_SWITCHOVER, "MODE", "how writes stop: readonly (default), revoke (--freeze-role logins) or hook"},
	{"freeze-role", 1, O_FREEZE_ROLE, OPT_SWITCHOVER, "ROLE", "application role whose LOGIN is revoked by --freeze revoke (repeatable)"},
	{"sequence-gap", 1, O_SEQ_GAP, OPT_SWITCHOVER | OPT_ROLLBACK, "N", "set sequences this far past the other side's value (default 1000)"},
	{"hook-timeout", 1, O_HOOK_TIMEOUT, OPT_SWITCHOVER | OPT_ROLLBACK, "SECONDS", "seconds each hook may run (default 60)"},
	{"pgbouncer", 1, O_PGBOUNCER, OPT_SWITCHOVER | OPT_ROLLBACK, "CONN", "hold the application in this PgBouncer (its admin console) across the switch (repeatable)"},
	{"pgbouncer-ini", 1, O_PGBOUNCER_INI, OPT_SWITCHOVER | OPT_ROLLBACK, "FILE", "repoint the n-th --pgbouncer by rewriting its entry in FILE and RELOAD (repeatable)"},
	{"pgbouncer-database", 1, O_PGBOUNCER_DB, OPT_SWITCHOVER | OPT_ROLLBACK, "NAME", "the PgBouncer [databases] entry to pause and repoint (default: the source's database)"},
	{"pgbouncer-target", 1, O_PGBOUNCER_TARGET, OPT_SWITCHOVER | OPT_ROLLBACK, "CONNSTR", "host=, port=, dbname= the entry gets at the switch (default: the target's, as ferry reaches it)"},
	{"pgbouncer-source", 1, O_PGBOUNCER_SOURCE, OPT_SWITCHOVER | OPT_ROLLBACK, "CONNSTR", "the same for a rollback (default: the source's, as ferry reaches it)"},
	{"pause-timeout", 1, O_PAUSE_TIMEOUT, OPT_SWITCHOVER | OPT_ROLLBACK, "SECONDS", "how long PgBouncer's PAUSE may wait for running transactions (default 5)"},
	{"force", 0, O_FORCE, OPT_CLEANUP, NULL, "clean up even while a switchover or rollback is half done"},
	{"metrics-listen", 1, O_METRICS, OPT_START, "ADDR:PORT", "serve Prometheus metrics at http://ADDR:PORT/metrics (ADDR default 127.0.0.1)"},
	{"watch", 0, O_WATCH, OPT_STATUS, NULL, "refresh the report until interrupted (a live view on a terminal)"},
	{"interval", 1, O_INTERVAL, OPT_STATUS, "SECONDS", "seconds between --watch refreshes (default 5)"},
	{"exact", 0, O_EXACT, OPT_STATUS, NULL, "count every table's rows on both servers (reads them all; 60 s limit per table; not on a frozen source)"},
};
#define N_OPTIONS (sizeof(option_descs) / sizeof(option_descs[0]))
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char EXIT_HELP[] =
	"Exit status:\n"
	"  0  success\n"
	"  1  the operation failed\n"
	"  2  usage or configuration error\n"
	"  3  check (or plan) found blocking problems\n";

static void
print_options(FILE *out, unsigned group, bool global)
{
	for (size_t i = 0; i < N_OPTIONS; i++)
	{
		const OptionDesc *o = &option_descs[i];
		char		left[64];

		if (global ? o->groups != OPT_GLOBAL : (o->groups & group) == 0)
			continue;
		snprintf(left, sizeof(left), "%s--%s%s%s", o->id == O_VERBOSE ? "-v, " : "    ",
				 o->name, o->argname ? " " : "", o->argname ? o->argname : "");
		fprintf(out, "  %-34s %s\n", left, o->help);
	}
}

static void
usage_main(FILE *out)
{
	fprintf(out, "ferry moves a live PostgreSQL database to another server.\n\n"
			"Usage:\n  ferry [global options] COMMAND [command options]\n\nCommands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\nGlobal options:\n");
	print_options(out, 0, true);
	fprintf(out, "\nRun 'ferry COMMAND --help' for a command's own options.\n\n%s", EXIT_HELP);
}

static void
usage_command(FILE *out, const Command *cmd)
{
	fprintf(out, "ferry %s: %s.\n\n%s\n\nUsage:\n  ferry [global options] %s [options]\n\nOptions:\n",
			cmd->name, cmd->summary, cmd->description, cmd->name);
	print_options(out, cmd->group, false);
	fprintf(out, "\nGlobal options:\n");
	print_options(out, 0, true);
	fprintf(out, "\n%s", EXIT_HELP);
}

static int	usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
usage_error(const char *fmt, ...)
{
	va_list		ap;

	fprintf(stderr, "ferry: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry \"ferry --help\" for more information.\n");
	return EXIT_USAGE;
}

static bool
parse_int_arg(const char *s, int min, int max, int *out)
{
	char	   *end;
	long		v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < min || v > max)
		return false;
	*out = (int) v;
	return true;
}

static void
set_string(char **dst, const char *v)
{
	free(*dst);
	*dst = xstrdup(v);
}

/*
 * Hide the secrets of a connection string given on the command line from
 * `ps` (every option libpq marks secret: password, sslpassword, ...):
 * /proc/PID/cmdline shows our argv memory, so overwrite each secret's
 * characters there once we hold a copy. If one is written escaped (so not
 * found verbatim), the whole argument is blanked. FERRY_SOURCE, ~/.pgpass,
 * a service file or the config file keep them off the command line in the
 * first place.
 */
static void
scrub_secret_arg(char *arg)
{
	StrList		secrets = {0};
	bool		blank = false;

	pg_conninfo_secrets(arg, &secrets);
	for (int i = 0; i < secrets.n; i++)
	{
		const char *sec = secrets.items[i];
		char	   *at = strstr(arg, sec);

		if (at == NULL)
			blank = true;
		for (; at; at = strstr(at, sec))
			memset(at, '*', strlen(sec));
		explicit_bzero(secrets.items[i], strlen(sec));
	}
	if (blank)
		memset(arg, ' ', strlen(arg));
	strlist_free(&secrets);
}

/* --pgbouncer-ini FILEs in order, matched with the --pgbouncer entries after parsing (static: every exit path may leave it) */
static StrList cli_pgbouncer_ini;

/* The same for a PgBouncer connection string (--pgbouncer-target): its password= value. */
static void
scrub_pgbouncer_arg(char *arg)
{
	StrList		secrets = {0};

	pooler_connstr_secrets(arg, &secrets);
	for (int i = 0; i < secrets.n; i++)
	{
		for (char *at = strstr(arg, secrets.items[i]); at; at = strstr(at, secrets.items[i]))
			memset(at, '*', strlen(secrets.items[i]));
		explicit_bzero(secrets.items[i], strlen(secrets.items[i]));
	}
	strlist_free(&secrets);
}

/* Scrub every message ferry logs of the connection strings' secrets. */
static void
register_secrets(const FerryConfig *cfg)
{
	StrList		secrets = {0};

	pg_conninfo_secrets(cfg->source, &secrets);
	pg_conninfo_secrets(cfg->target, &secrets);
	for (int i = 0; i < cfg->n_pgbouncers; i++)
		pg_conninfo_secrets(cfg->pgbouncers[i].admin, &secrets);
	pooler_connstr_secrets(cfg->pgbouncer_target, &secrets);
	pooler_connstr_secrets(cfg->pgbouncer_source, &secrets);
	for (int i = 0; i < secrets.n; i++)
	{
		log_add_secret(secrets.items[i]);
		explicit_bzero(secrets.items[i], strlen(secrets.items[i]));
	}
	strlist_free(&secrets);
}

int
main(int argc, char **argv)
{
	const Command *cmd = NULL;
	struct option longopts[N_OPTIONS + 1];
	FerryConfig cfg;
	int			cmd_index = -1;
	int			watch_interval;
	bool		want_help = false;
	bool		dry_run = false;
	int			rc;
	int			c;

	/* find the command: the first word that is not an option or its value */
	for (int i = 1; i < argc; i++)
	{
		if (argv[i][0] == '-')
		{
			for (size_t j = 0; j < N_OPTIONS; j++)
				if (option_descs[j].has_arg && strncmp(argv[i], "--", 2) == 0 &&
					strcmp(argv[i] + 2, option_descs[j].name) == 0)
					i++;		/* skip the option's value */
			continue;
		}
		for (size_t j = 0; j < N_COMMANDS; j++)
			if (strcmp(argv[i], commands[j].name) == 0)
				cmd = &commands[j];
		if (cmd == NULL)
			return usage_error("unknown command \"%s\"", argv[i]);
		cmd_index = i;
		break;
	}

	/* options of the chosen command, plus the global ones */
	{
		int			n = 0;

		for (size_t j = 0; j < N_OPTIONS; j++)
		{
			const OptionDesc *o = &option_descs[j];

			if (o->groups != OPT_GLOBAL && (cmd == NULL || (o->groups & cmd->group) == 0))
				continue;
			longopts[n].name = o->name;
			longopts[n].has_arg = o->has_arg ? required_argument : no_argument;
			longopts[n].flag = NULL;
			longopts[n].val = o->id;
			n++;
		}
		memset(&longopts[n], 0, sizeof(longopts[n]));
	}
	if (cmd_index > 0)
	{
		/* drop the command word so getopt sees only options */
		for (int i = cmd_index; i < argc - 1; i++)
			argv[i] = argv[i + 1];
		argc--;
	}

	config_init(&cfg);
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":v", longopts, NULL)) != -1)
	{
		switch (c)
		{
			case O_SOURCE:
				set_string(&cfg.source, optarg);
				scrub_secret_arg(optarg);
				break;
			case O_TARGET:
				set_string(&cfg.target, optarg);
				scrub_secret_arg(optarg);
				break;
			case O_CONFIG: set_string(&cfg.config_file, optarg); break;
			case O_NAME: set_string(&cfg.name, optarg); break;
			case O_PGBIN: set_string(&cfg.pg_bin, optarg); break;
			case O_JSON: cfg.json = true; break;
			case O_VERBOSE: cfg.verbose++; break;
			case O_HELP: want_help = true; break;
			case O_VERSION:
				printf("ferry %s (libpq %d)\n", FERRY_VERSION, PQlibVersion());
				config_release(&cfg);
				return EXIT_OK;
			case O_JOBS:
				if (!parse_int_arg(optarg, 1, 256, &cfg.jobs))
				{
					config_release(&cfg);
					return usage_error("--jobs must be a whole number from 1 to 256, not \"%s\"", optarg);
				}
				break;
			case O_INDEX_JOBS:
				if (!parse_int_arg(optarg, 1, 256, &cfg.index_jobs))
				{
					config_release(&cfg);
					return usage_error("--index-jobs must be a whole number from 1 to 256, not \"%s\"", optarg);
				}
				break;
			case O_SPLIT:
				if (!config_parse_size(optarg, &cfg.split_bytes))
				{
					config_release(&cfg);
					return usage_error("--split-tables-larger-than must be a size such as 500MB or 2GB, or auto, not \"%s\"", optarg);
				}
				break;
			case O_NO_OWNER: cfg.no_owner = true; break;
			case O_NO_PRIV: cfg.no_privileges = true; break;
			case O_SET_RIF: cfg.set_replica_identity_full = true; break;
			case O_INC_SCHEMA: strlist_add(&cfg.include_schemas, optarg); break;
			case O_EXC_SCHEMA: strlist_add(&cfg.exclude_schemas, optarg); break;
			case O_EXC_TABLE: strlist_add(&cfg.exclude_tables, optarg); break;
			case O_EXC_DATA: strlist_add(&cfg.exclude_table_data, optarg); break;
			case O_TABLE: cli_verify_add_table(optarg); break;
			case O_LOCK_SOURCE: verify_set_lock_source(true); break;
			case O_MAX_RATE:
				{
					int			v;

					if (!parse_int_arg(optarg, 0, 1000000000, &v))
					{
						config_release(&cfg);
						return usage_error("--max-rate must be a whole number of rows a second from 0 to 1000000000, not \"%s\"", optarg);
					}
					verify_set_max_rate(v);
				}
				break;
			case O_YES: cfg.yes = true; break;
			case O_VERIFY: cfg.verify = true; break;
			case O_NO_REVERSE: cfg.no_reverse = true; break;
			case O_FORCE: cli_cleanup_set_force(true); break;
			case O_FREEZE: set_string(&cfg.freeze_mode, optarg); break;
			case O_FREEZE_ROLE: strlist_add(&cfg.freeze_roles, optarg); break;
			case O_MAX_LAG:
			case O_TIMEOUT:
			case O_SEQ_GAP:
			case O_HOOK_TIMEOUT:
				{
					int			v;

					if (!parse_int_arg(optarg, c == O_TIMEOUT || c == O_HOOK_TIMEOUT ? 1 : 0,
									   c == O_SEQ_GAP ? 1000000000 : 86400, &v))
					{
						config_release(&cfg);
						return usage_error("--%s must be a whole number of %s, not \"%s\"",
										   c == O_MAX_LAG ? "max-lag" : c == O_TIMEOUT ? "timeout" : c == O_SEQ_GAP ? "sequence-gap" : "hook-timeout",
										   c == O_SEQ_GAP ? "values" : "seconds", optarg);
					}
					if (c == O_MAX_LAG)
						cfg.max_lag = v;
					else if (c == O_TIMEOUT)
						cfg.timeout = v;
					else if (c == O_SEQ_GAP)
						cfg.sequence_gap = v;
					else
						cfg.hook_timeout = v;
				}
				break;
			case O_DRY_RUN: dry_run = true; break;
			case O_LOG_FORMAT:
				{
					LogFormat	lf;

					if (!log_format_parse(optarg, &lf))
					{
						config_release(&cfg);
						return usage_error("--log-format must be text or json, not \"%s\"", optarg);
					}
					cfg.log_format = (int) lf;
				}
				break;
			case O_METRICS: set_string(&cfg.metrics_listen, optarg); break;
			case O_PGBOUNCER:
				config_add_pgbouncer(&cfg, optarg);
				scrub_secret_arg(optarg);
				break;
			case O_PGBOUNCER_INI: strlist_add(&cli_pgbouncer_ini, optarg); break;
			case O_PGBOUNCER_DB: set_string(&cfg.pgbouncer_database, optarg); break;
			case O_PGBOUNCER_TARGET:
			case O_PGBOUNCER_SOURCE:
				set_string(c == O_PGBOUNCER_TARGET ? &cfg.pgbouncer_target : &cfg.pgbouncer_source, optarg);
				scrub_pgbouncer_arg(optarg);
				break;
			case O_PAUSE_TIMEOUT:
				if (!parse_int_arg(optarg, 1, 3600, &cfg.pause_timeout))
				{
					config_release(&cfg);
					return usage_error("--pause-timeout must be a whole number of seconds from 1 to 3600, not \"%s\"", optarg);
				}
				break;
			case O_WATCH: cli_status_set_watch(true); break;
			case O_EXACT: cli_status_set_exact(true); break;
			case O_INTERVAL:
				if (!parse_int_arg(optarg, 1, 3600, &watch_interval))
				{
					config_release(&cfg);
					return usage_error("--interval must be a whole number of seconds from 1 to 3600, not \"%s\"", optarg);
				}
				cli_status_set_interval(watch_interval);
				break;
			case ':':
				rc = usage_error("option \"%s\" needs a value", argv[optind - 1]);
				config_release(&cfg);
				return rc;
			default:
				rc = usage_error(cmd ? "unknown option \"%s\" for this command" : "unknown option \"%s\"",
								 argv[optind - 1]);
				config_release(&cfg);
				return rc;
		}
	}
	if (optind < argc)
	{
		rc = usage_error("unexpected argument \"%s\"", argv[optind]);
		config_release(&cfg);
		return rc;
	}
	/* --pgbouncer-ini goes with the --pgbouncer of the same position */
	if (cli_pgbouncer_ini.n > cfg.n_pgbouncers)
	{
		rc = usage_error("%d --pgbouncer-ini for %d --pgbouncer: give one --pgbouncer CONN for each --pgbouncer-ini FILE, in the same order",
						 cli_pgbouncer_ini.n, cfg.n_pgbouncers);
		strlist_free(&cli_pgbouncer_ini);
		config_release(&cfg);
		return rc;
	}
	for (int i = 0; i < cli_pgbouncer_ini.n; i++)
		cfg.pgbouncers[i].ini = xstrdup(cli_pgbouncer_ini.items[i]);
	strlist_free(&cli_pgbouncer_ini);
	if (want_help || cmd == NULL)
	{
		if (cmd)
			usage_command(stdout, cmd);
		else
			usage_main(want_help ? stdout : stderr);
		config_release(&cfg);
		return want_help ? EXIT_OK : EXIT_USAGE;
	}

	config_mark_command_line(&cfg);
	log_set_level(cfg.verbose >= 1 ? LOG_DEBUG : LOG_INFO);
	if (cfg.log_format >= 0)
		log_set_format((LogFormat) cfg.log_format);
	log_set_role("coordinator");

	config_apply_env(&cfg);
	if (cfg.config_file)
	{
		char	   *err = NULL;

		if (!config_load_file(&cfg, cfg.config_file, &err))
		{
			fprintf(stderr, "ferry: %s\n", err);
			free(err);
			config_release(&cfg);
			return EXIT_USAGE;
		}
	}
	config_apply_defaults(&cfg);
	/* the file may ask for these too */
	log_set_level(cfg.verbose >= 1 ? LOG_DEBUG : LOG_INFO);
	log_set_format((LogFormat) cfg.log_format);
	if (!config_valid_name(cfg.name))
	{
		rc = usage_error("invalid --name \"%s\": use lower-case letters, digits and _, starting with a letter, at most 40 characters", cfg.name);
		config_release(&cfg);
		return rc;
	}
	if (cfg.source == NULL || cfg.target == NULL)
	{
		rc = usage_error("%s", cfg.source == NULL
						 ? "no source database given: use --source CONN, FERRY_SOURCE or source: in --config"
						 : "no target database given: use --target CONN, FERRY_TARGET or target: in --config");
		config_release(&cfg);
		return rc;
	}

	register_secrets(&cfg);
	pg_signals_install();
	rc = dry_run ? cli_plan(&cfg) : cmd->run(&cfg);
	config_release(&cfg);
	log_forget_secrets();
	return rc;
}
