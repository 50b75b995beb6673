/*
 * pooler_ini.h: the ini file of a PgBouncer that ferry repoints itself
 * (a pgbouncer: entry with ini:, --pgbouncer-ini; pooler.h drives it).
 *
 * ferry reads the whole file, changes the entry's value with
 * pgbconf_set_entry() (every other byte kept) and replaces the file
 * crash-safely: a temporary file next to it (where a symlink points, so a
 * configuration manager's link stays), with the old file's mode and, where
 * ferry may set it, owner (PgBouncer must still read it), written,
 * fsynced, renamed over it, the directory fsynced. So PgBouncer, which
 * reads it at RELOAD, sees the old file or the new one, never a mix.
 * `label` names the pooler in messages.
 */
#ifndef FERRY_POOLER_INI_H
#define FERRY_POOLER_INI_H

#include <stdbool.h>

#include "pgbouncer_conf.h"

/*
 * Before anything changes: `ini` holds entry `db` under [databases], as a
 * connection string ferry can rewrite, and ferry may replace the file. The
 * entry's password, if any, joins the log's secrets. False (logged with
 * the fix) otherwise.
 */
bool		pooler_ini_check(const char *label, const char *ini, const char *db);

/*
 * Give entry `db` in `ini` every pair of `to` (host, port, dbname), its
 * other pairs kept; no write when it reads so already. False (logged) on
 * failure: the file is then as it was.
 */
bool		pooler_ini_repoint(const char *label, const char *ini, const char *db, const PgbPairs *to);

#endif
