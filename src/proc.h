/*
 * proc.h: running PostgreSQL's own client programs (pg_dump, pg_restore).
 *
 * Passwords never go on a command line (where `ps` shows them): the
 * connection string passed to the child is stripped of its password and
 * the password travels in the child's environment as PGPASSWORD.
 */
#ifndef FERRY_PROC_H
#define FERRY_PROC_H

/*
 * Run argv[0] (a path, or a name looked up in PATH) with arguments argv
 * (NULL-terminated). If password is not NULL the child gets PGPASSWORD.
 * Its stdout goes to stdout_path (or /dev/null when NULL); its stderr is
 * collected (up to 8 kB) into *errout (owned, may be NULL when errout is).
 * Returns the exit status, or -1 if the program could not be started.
 */
int			proc_run(char *const argv[], const char *password, const char *stdout_path, char **errout);

/*
 * Find a PostgreSQL client program: in `bindir` if given, else the newest
 * /usr/lib/postgresql/N/bin with N >= min_major, else the bare name (PATH).
 * Returns an owned path.
 */
char	   *proc_find_pg_program(const char *bindir, const char *name, int min_major);

#endif
