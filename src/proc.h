/*
 * proc.h: running PostgreSQL's own client programs (pg_dump, pg_restore).
 *
 * Secrets never go on a command line (where `ps` shows them): the caller
 * passes the child a connection from pg_child_conn_init() (pgsql.h), whose
 * secrets travel in the child's environment (PGPASSWORD; /proc/PID/environ
 * is readable by the same user and root only) or in a 0600 service file.
 */
#ifndef FERRY_PROC_H
#define FERRY_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Run argv[0] (a path, or a name looked up in PATH) with arguments argv
 * (NULL-terminated). The child's environment loses FERRY_SOURCE and
 * FERRY_TARGET (they may hold secrets) and gets the "NAME=value" strings in
 * env (NULL-terminated, may be NULL).
 * Its stdout goes to stdout_path (or /dev/null when NULL); its stderr is
 * collected (up to 8 kB) into *errout (owned, may be NULL when errout is).
 * The child runs in its own process group; as soon as stop() (may be NULL)
 * returns true the group gets SIGTERM, then SIGKILL two seconds later.
 * Returns the exit status (128 + signal when killed by one), or -1 if the
 * program could not be started.
 */
int			proc_run(char *const argv[], const char *const *env, const char *stdout_path,
					 bool (*stop) (void), char **errout);

/*
 * Find a PostgreSQL client program (pg_dump, pg_restore) for a source of
 * major `source_major` and a target of `target_major` (0: unknown): in
 * `bindir` if given; else in ROOT/N/bin the newest N from source_major up to
 * target_major, so the target's own when it is installed (pg_dump dumps any
 * older server, and what it writes its own major reads: a newer one writes
 * settings an older target rejects, pg_dump 17's SET transaction_timeout);
 * else the oldest N above target_major (ferry check blocks on it); else the
 * bare name (PATH). The roots are PROC_PG_LIB, or the colon-separated list
 * in FERRY_PG_LIB (e.g. "/usr/lib/postgresql:/var/cache/ferry/lib", where
 * scripts/build-pg.sh links the majors it built): the version decides
 * first, the order of the roots only between two of the same major.
 * Returns an owned path.
 */
#define PROC_PG_LIB "/usr/lib/postgresql"
#define PROC_PG_MAX_MAJOR 30	/* the newest major looked for */
char	   *proc_find_pg_program(const char *bindir, const char *name, int source_major, int target_major);

/*
 * Start argv[0] (searched in PATH) in its own process group, with stdin from
 * /dev/null and ferry's stdout/stderr, after removing the variables named in
 * `unset` (NULL-terminated, may be NULL) and adding the "NAME=value" strings
 * in `env` (NULL-terminated, may be NULL). Returns the pid, or -1 (logged).
 */
pid_t		proc_spawn(char *const argv[], const char *const *env, const char *const *unset);

/*
 * Wait for a child from proc_spawn. timeout_ms < 0 waits forever; 0 only
 * polls. On timeout, or as soon as stop() (may be NULL) returns true, the
 * child's whole process group gets SIGTERM, then SIGKILL two seconds later;
 * *timed_out (may be NULL) is set for a timeout. Returns the exit status
 * (0-255, 128 + signal when killed by one), -1 when it could not be run or
 * waited for, or PROC_RUNNING when polling and it still runs.
 */
#define PROC_RUNNING (-2)
int			proc_wait(pid_t pid, int timeout_ms, bool (*stop) (void), bool *timed_out);

/* A monotonic clock in milliseconds. */
int64_t		proc_now_ms(void);

#endif
