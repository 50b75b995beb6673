/*
 * hooks.h: the user's shell hooks and the files carried along (config keys
 * `hooks:` and `files:`, see config.h).
 *
 * A hook is a shell command (/bin/sh -c) run at a switchover or rollback
 * phase: pre_freeze, freeze, unfreeze, switch, rollback. It runs in its own
 * process group with stdin from /dev/null, ferry's stdout and stderr, at
 * most hook-timeout seconds (then SIGTERM to the group, SIGKILL two seconds
 * later), and with environment variables describing the migration:
 *   FERRY_NAME, FERRY_PHASE,
 *   FERRY_SOURCE_HOST, FERRY_SOURCE_PORT, FERRY_SOURCE_DBNAME, FERRY_SOURCE_USER,
 *   FERRY_TARGET_HOST, FERRY_TARGET_PORT, FERRY_TARGET_DBNAME, FERRY_TARGET_USER.
 * Never a password: FERRY_SOURCE, FERRY_TARGET and PGPASSWORD (which may
 * hold one) are removed from the hook's environment.
 *
 * Files: each `files:` entry is synced with `rsync -a FROM TO` (so TO may be
 * a remote host:path over ssh). While `ferry start` follows, every
 * files-interval seconds in the background (one rsync at a time, never
 * delaying the apply); at switchover once more inside the freeze window.
 * Each run's outcome is kept in ferry.file_sync on the target for `status`.
 */
#ifndef FERRY_HOOKS_H
#define FERRY_HOOKS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <libpq-fe.h>

#include "config.h"

/* The hook's command for phase, or NULL when none is configured. */
const char *hook_command(const FerryConfig *cfg, const char *phase);

/*
 * Run the hook for `phase` if one is configured (true when none is).
 * True when it exits 0; otherwise logs one line naming the hook, its exit
 * status or timeout, and returns false.
 */
bool		hook_run(const FerryConfig *cfg, const char *phase);
/*
 * Run `cmd` (none: true) as the hook for `phase`, with the hook
 * environment plus extra_env ("NAME=value" each, may be NULL); the same
 * timeout, logging and return as hook_run(). A pgbouncer: entry's
 * repoint command runs this way (pooler.h).
 */
bool		hook_run_command(const FerryConfig *cfg, const char *phase, const char *cmd, const StrList *extra_env);

/* Background file sync while following; zero-initialise. */
typedef struct FilesSync
{
	pid_t		pid;			/* running rsync, 0 when none */
	int			entry;			/* which files: entry it syncs */
	int64_t		started_ms;
	int64_t		next_ms;		/* when the next round starts */
} FilesSync;

/*
 * Advance the background sync: reap a finished rsync (recording it in
 * ferry.file_sync through tgt, which may be NULL), start the next entry when
 * due. Cheap; call it often.
 */
void		files_sync_tick(FilesSync *fs, const FerryConfig *cfg, PGconn *tgt);
/* Stop a background rsync (at exit or before the final sync). */
void		files_sync_stop(FilesSync *fs);

/*
 * Sync every entry once, now, each within timeout_s seconds; record the
 * outcome. True when all succeeded (failures are logged).
 */
bool		files_sync_all(const FerryConfig *cfg, PGconn *tgt, int timeout_s);

#endif
