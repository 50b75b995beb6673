/*
 * config.h: ferry's settings and where they come from.
 *
 * Precedence, highest first: command-line options, environment
 * (FERRY_SOURCE, FERRY_TARGET, FERRY_NAME), the YAML file given with
 * --config, built-in defaults. The YAML file uses the long option names as
 * keys (dashes or underscores) plus a `filters:` map:
 *
 *   source: "host=db1 dbname=app user=ferry"
 *   target: "postgresql://ferry@db2/app"
 *   name: app
 *   jobs: 4
 *   split-tables-larger-than: 2GB
 *   verbose: false                  # debug logging (-v)
 *   log-format: text                # or json (--log-format)
 *   metrics-listen: 127.0.0.1:9187  # ferry start's Prometheus endpoint
 *   filters:
 *     include-schemas: [public, billing]
 *     exclude-schemas: [scratch]
 *     exclude-tables: [public.audit_log]       # pg_dump -T patterns
 *     exclude-table-data: [public.sessions]    # schema only
 *   hooks:                     # shell commands run at switchover / rollback
 *     pre_freeze: ./drain-queues.sh
 *     freeze: ./stop-app-writers.sh    # with --freeze hook
 *     unfreeze: ./start-app-writers.sh # undoes it when a switchover aborts
 *     switch: ./point-app-at-target.sh
 *     rollback: ./point-app-at-source.sh
 *   hook-timeout: 60           # seconds each hook may run
 *   files:                     # directories carried along with rsync
 *     - {from: /srv/app/uploads/, to: newhost:/srv/app/uploads/}
 *   files-interval: 60         # seconds between syncs while following
 *   max-lag: 10                # switchover: the options of the same name
 *   timeout: 60
 *   freeze: readonly           # readonly | revoke | hook
 *   freeze-roles: [app]        # for freeze: revoke
 *   sequence-gap: 1000
 *   pgbouncer:                 # PgBouncers in front of the source (pooler.h):
 *     - admin: "host=pgb1 port=6432 dbname=pgbouncer user=ferry"   # its admin console
 *       database: app          # the [databases] entry (default: pgbouncer-database)
 *       ini: /etc/pgbouncer/pgbouncer.ini   # repoint: rewrite the entry, RELOAD
 *     - admin: "host=pgb2 port=6432 dbname=pgbouncer user=ferry"
 *       repoint: ./repoint-pgb2.sh          # or: a command for what ferry cannot edit
 *   pgbouncer-database: app    # default: the source's database name
 *   pgbouncer-target: "host=10.0.0.6 port=5432 dbname=app"   # the entry after the switch
 *   pgbouncer-source: "host=10.0.0.5 port=5432 dbname=app"   # and after a rollback
 *   pause-timeout: 5           # seconds PAUSE may wait for running transactions
 *
 * Unknown keys are errors (a typo must not silently change a migration).
 * A filter list given on the command line replaces the file's list.
 *
 * Reload (SIGHUP to `ferry start`): config_reread() builds the settings a
 * restart would see now, and config_reload_live() applies the ones that may
 * change while running (verbose, log-format); the rest wait for a restart.
 */
#ifndef FERRY_CONFIG_H
#define FERRY_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "mem.h"

#define FERRY_DEFAULT_NAME "ferry"
#define FERRY_NAME_MAXLEN 40
/* split threshold "auto": each worker's even share of the data (at least 64 MB) */
#define SPLIT_AUTO (-2)
#define SPLIT_AUTO_MIN (64LL * 1024 * 1024)

/*
 * One PgBouncer in front of the database (config key pgbouncer:, or
 * --pgbouncer with --pgbouncer-ini). How it is driven is pooler.h's.
 */
typedef struct PgBouncerConf
{
	char	   *admin;			/* its admin console's conninfo, owned; may hold a password */
	char	   *database;		/* the [databases] entry, or NULL: cfg->pgbouncer_database */
	char	   *ini;			/* the ini file with that entry: ferry rewrites it, or NULL */
	char	   *repoint;		/* else: a shell command that repoints it, or NULL */
} PgBouncerConf;

/* Shell commands run at switchover and rollback phases (NULL = none). */
typedef struct FerryHooks
{
	char	   *pre_freeze;
	char	   *freeze;
	char	   *unfreeze;
	char	   *switch_;
	char	   *rollback;
} FerryHooks;

typedef struct FerryConfig
{
	char	   *source;			/* conninfo, owned; may hold a password */
	char	   *target;
	char	   *name;			/* migration name: slot, publication, state */
	char	   *config_file;
	char	   *pg_bin;			/* directory with pg_dump/pg_restore, or NULL */
	int			jobs;			/* copy workers */
	int			index_jobs;		/* index/constraint workers; 0 = jobs */
	int64_t		split_bytes;	/* split tables larger than this; 0 = never, SPLIT_AUTO */
	bool		json;
	int			verbose;		/* 0 = not asked for (by -v or the file) */
	int			log_format;		/* LogFormat, -1 = unset */
	char	   *metrics_listen;	/* ADDR:PORT for `start`, or NULL */
	/* what the command line set (config_mark_command_line), for reloads */
	int			cli_verbose;
	int			cli_log_format;
	bool		no_owner;		/* pg_restore --no-owner */
	bool		stop_on_unmatched;	/* an UPDATE/DELETE that matches no target row stops apply */
	bool		no_privileges;	/* pg_restore --no-privileges */
	bool		set_replica_identity_full;	/* ALTER tables without identity on the source */
	StrList		include_schemas;
	StrList		exclude_schemas;
	StrList		exclude_tables;
	StrList		exclude_table_data;
	/* switchover and rollback */
	FerryHooks	hooks;
	int			hook_timeout;	/* seconds */
	StrList		files_from;		/* rsync sources, parallel to files_to */
	StrList		files_to;
	int			files_interval;	/* seconds between syncs while following; 0 = only at switchover */
	int			max_lag;		/* seconds */
	int			timeout;		/* seconds for the whole switchover before the switch */
	char	   *freeze_mode;	/* "readonly", "revoke" or "hook" */
	StrList		freeze_roles;	/* roles whose LOGIN is revoked (freeze revoke) */
	int64_t		sequence_gap;
	bool		verify;			/* switchover --verify */
	bool		no_reverse;		/* switchover --no-reverse */
	bool		yes;			/* do not ask */
	/* PgBouncers held across the switch (pooler.h); the command line's replace the file's */
	PgBouncerConf *pgbouncers;	/* owned array */
	int			n_pgbouncers;
	char	   *pgbouncer_database;	/* default entry name, or NULL: the source's database */
	char	   *pgbouncer_target;	/* the entries' connection string after the switch, or NULL */
	char	   *pgbouncer_source;	/* after a rollback, or NULL */
	int			pause_timeout;	/* seconds */
} FerryConfig;

void		config_init(FerryConfig *cfg);
void		config_release(FerryConfig *cfg);

/*
 * Merge `file` values into cfg for the settings cfg does not have yet
 * (cfg holds the command line). Parses YAML from `path`. Returns false with
 * a one-line message in *errmsg (owned) on a parse error or unknown key.
 */
bool		config_load_file(FerryConfig *cfg, const char *path, char **errmsg);
/* The same from a string in memory (for tests and for `-` stdin). */
bool		config_load_string(FerryConfig *cfg, const char *yaml, size_t len, char **errmsg);

/*
 * Fill settings still unset from the FERRY_* environment variables. Call
 * order: command line, config_apply_env(), config_load_file(),
 * config_apply_defaults(); each only fills what is still unset.
 */
void		config_apply_env(FerryConfig *cfg);
void		config_apply_defaults(FerryConfig *cfg);

/*
 * A new config for the reverse direction of a switched migration: source
 * and target swapped, name NAME_reverse (CONFIG_REVERSE_SUFFIX), the same
 * filters and switchover settings. Free with config_release() and free().
 */
#define CONFIG_REVERSE_SUFFIX "_reverse"
FerryConfig *config_reversed(const FerryConfig *cfg);

/* Append a PgBouncer (admin conninfo copied; the rest unset); returns it. */
PgBouncerConf *config_add_pgbouncer(FerryConfig *cfg, const char *admin);

/* Remember the command line's settings (call right after parsing it). */
void		config_mark_command_line(FerryConfig *cfg);

/*
 * Build `fresh` (config_init()ed by the caller) as a restart would see it
 * now: cur's command-line settings, the environment, cur->config_file read
 * again, the defaults. Returns false with a one-line message in *errmsg
 * (owned) when the file does not load; fresh must be released either way.
 */
bool		config_reread(const FerryConfig *cur, FerryConfig *fresh, char **errmsg);

/*
 * Apply to the running process the settings of `fresh` that may change
 * live, record them in cur, and return a description of what changed
 * ("verbose false -> true, log-format text -> json"; owned), or NULL when
 * nothing did. Today: verbose (the log level) and log-format. This is the
 * one place that decides what a reload changes: add hooks here.
 */
char	   *config_reload_live(FerryConfig *cur, const FerryConfig *fresh);

/* "100MB", "2GB", "512kB", "1048576" -> bytes; "auto" -> SPLIT_AUTO. False on junk or overflow. */
bool		config_parse_size(const char *s, int64_t *bytes);
/* Human-readable size ("1.5 GB") into buf. */
void		config_format_size(int64_t bytes, char *buf, size_t size);
/* A migration name: [a-z][a-z0-9_]*, at most FERRY_NAME_MAXLEN. */
bool		config_valid_name(const char *name);

#endif
