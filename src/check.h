/*
 * check.h: ferry's pre-flight checks of a source and a target server.
 *
 * check_run() connects to both servers, inspects settings, privileges and
 * catalogs, and returns one CheckResult row per check: whether it passed,
 * is a warning (the migration works but something deserves attention, for
 * instance a table that is not replicated row by row) or is blocking (clone
 * or streaming would fail). Every warning and blocking row carries the exact
 * fix: the setting, SQL or GRANT to run. Printing and the exit code are the
 * caller's (cli_check.c); nothing here prints to stdout.
 *
 * Rows never contain a secret: connection strings are reported through
 * pg_conninfo_safe() and every row is scrubbed (log_scrub) of the secrets
 * main registered from the configured connection strings.
 */
#ifndef FERRY_CHECK_H
#define FERRY_CHECK_H

#include <stdbool.h>

#include "config.h"

typedef enum CheckStatus
{
	CHECK_OK = 0,
	CHECK_WARNING,				/* works, but look at it */
	CHECK_BLOCKING,				/* clone or streaming would fail */
} CheckStatus;

typedef struct CheckResult
{
	CheckStatus status;
	char	   *server;			/* "source" or "target", owned */
	char	   *check;			/* short stable name, e.g. "wal_level", owned */
	char	   *detail;			/* what was found, one line, owned */
	char	   *fix;			/* what to do; NULL when status is CHECK_OK */
	bool		not_migrated;	/* about objects ferry does not migrate (large objects, ...) */
} CheckResult;

typedef struct CheckReport
{
	CheckResult *items;
	int			n;
	int			cap;
	int			blocking;		/* rows with CHECK_BLOCKING */
	int			warnings;		/* rows with CHECK_WARNING */
} CheckReport;

void		check_report_init(CheckReport *r);
void		check_report_release(CheckReport *r);

/*
 * Append a row. `fix` is copied (NULL for none); detail is printf-style.
 * Updates the blocking/warning counters.
 */
void		check_report_add(CheckReport *r, CheckStatus status, const char *server,
							 const char *check, const char *fix, const char *fmt, ...)
			__attribute__((format(printf, 6, 7)));

/*
 * Run every check for the migration described by cfg, appending rows to
 * *report (initialized by the caller). A server that cannot be reached gets
 * one blocking "connection" row and its remaining checks are skipped, as
 * are the checks that compare both servers. A check whose query fails gets
 * a blocking row with the server's error. Returns false only when
 * interrupted by SIGINT/SIGTERM (the report is then incomplete).
 *
 * Side effects: opens and closes one ordinary connection to each server
 * and runs pg_dump --version / pg_restore --version. Changes nothing on
 * either server.
 */
bool		check_run(const FerryConfig *cfg, CheckReport *report);

/* "ok", "warning", "blocking" (JSON) or "ok", "WARN", "FAIL" (table). */
const char *check_status_name(CheckStatus status, bool json);

/*
 * A pg_dump name pattern (-n/-N/-T syntax: * and ? wildcards, "quoted"
 * parts literal, unquoted letters folded to lower case) as an anchored
 * POSIX regular expression. With `qualified`, the first unquoted dot
 * separates schema from name and the result matches "schema.name"; a
 * pattern without a dot then matches the name in any schema. Owned.
 */
char	   *check_pattern_regex(const char *pattern, bool qualified);

/*
 * An identifier as it must be written in SQL, quoted only when needed, for
 * the text of a report or fix (never sent by ferry: that SQL is quoted by
 * libpq, pg_quote_ident). Pure. Owned.
 */
char	   *check_ident(const char *name);

#endif
