/*
 * pooler_ini.c: a PgBouncer ini file on disk, checked and rewritten in
 * place (see pooler_ini.h; the syntax is pgbouncer_conf.c's).
 */
#include "pooler_ini.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"

/* Bytes an ini file may have: a PgBouncer configuration is small. */
#define POOLER_INI_MAX (16 * 1024 * 1024)

/* The whole ini file in *text (owned); false (logged) if unreadable or too big. */
static bool
read_ini(const char *label, const char *path, char **text)
{
	FILE	   *fh = fopen(path, "r");
	StrBuf		sb;
	char		buf[8192];
	size_t		n;

	if (fh == NULL)
	{
		log_error("%s: could not read its ini file %s: %s. Fix: give ferry read and write access to it (or use repoint: with a command)",
				  label, path, strerror(errno));
		return false;
	}
	strbuf_init(&sb);
	while ((n = fread(buf, 1, sizeof(buf), fh)) > 0 && sb.len < POOLER_INI_MAX)
		strbuf_add(&sb, buf, n);
	fclose(fh);
	if (sb.len >= POOLER_INI_MAX || memchr(sb.data, '\0', sb.len))
	{
		log_error("%s: %s does not look like a PgBouncer ini file (too big, or binary)", label, path);
		strbuf_release(&sb);
		return false;
	}
	*text = strbuf_detach(&sb);
	return true;
}

/*
 * Replace the ini file with `text`: a temporary file in its directory with
 * the same mode (and owner, where ferry may set it), fsynced, renamed over
 * it, the directory fsynced. False (logged) on any failure; the file is
 * then as it was.
 */
static bool
write_ini(const char *label, const char *ini, const char *text)
{
	/* a symlinked file (config management) is replaced where it really is */
	char	   *real = realpath(ini, NULL);
	const char *path = real ? real : ini;
	char	   *dirbuf = xstrdup(path);
	const char *dir = dirname(dirbuf);
	char	   *tmp = xasprintf("%s.ferry-XXXXXX", path);
	struct stat st;
	size_t		len = strlen(text);
	bool		ok = false;
	int			fd = -1;

	if (stat(path, &st) != 0 || (fd = mkstemp(tmp)) < 0)
	{
		log_error("%s: could not write next to %s: %s. Fix: give ferry write access to %s", label,
				  ini, strerror(errno), dir);
		goto done;
	}
	/* pgbouncer must still read it: the old file's mode and, if ferry may, its owner */
	(void) !fchown(fd, st.st_uid, st.st_gid);
	if (fchmod(fd, st.st_mode & 07777) != 0 || write(fd, text, len) != (ssize_t) len || fsync(fd) != 0)
	{
		log_error("%s: could not write %s: %s", label, tmp, strerror(errno));
		goto done;
	}
	if (close(fd) != 0 || rename(tmp, path) != 0)
	{
		fd = -1;
		log_error("%s: could not replace %s: %s", label, path, strerror(errno));
		goto done;
	}
	fd = -1;
	{
		int			dfd = open(dir, O_RDONLY | O_DIRECTORY);

		if (dfd >= 0)
		{
			(void) fsync(dfd);
			close(dfd);
		}
	}
	ok = true;

done:
	if (fd >= 0)
		close(fd);
	if (!ok)
		unlink(tmp);
	free(tmp);
	free(dirbuf);
	free(real);
	return ok;
}

bool
pooler_ini_check(const char *label, const char *ini, const char *db)
{
	char	   *text = NULL;
	char	   *value = NULL;
	char	   *dirbuf;
	char	   *real;
	PgbPairs	pairs = {0};
	bool		ok = false;

	if (!read_ini(label, ini, &text))
		return false;
	if (pgbconf_find_entry(text, db, &value) == 0)
	{
		log_error("%s: %s defines no entry %s under [databases]. Fix: name the file that holds it (ini:, --pgbouncer-ini; an %%include of pgbouncer.ini), or the entry (database:, --pgbouncer-database)",
				  label, ini, db);
		goto done;
	}
	if (!pgbconf_parse_connstr(value, &pairs))
	{
		log_error("%s: the entry %s in %s is not a connection string ferry can rewrite. Fix: write it as key=value pairs (values with spaces in single quotes)",
				  label, db, ini);
		goto done;
	}
	if (pgbconf_pairs_get(&pairs, "password"))
		log_add_secret(pgbconf_pairs_get(&pairs, "password"));
	real = realpath(ini, NULL);
	dirbuf = xstrdup(real ? real : ini);
	free(real);
	ok = access(ini, R_OK) == 0 && access(dirname(dirbuf), W_OK) == 0;
	if (!ok)
		log_error("%s: ferry may not replace %s (it writes a new file in %s and renames it). Fix: give the ferry user write access to that directory, or use repoint: with a command",
				  label, ini, dirname(dirbuf));
	free(dirbuf);

done:
	pgbconf_pairs_release(&pairs);
	free(value);
	free(text);
	return ok;
}

bool
pooler_ini_repoint(const char *label, const char *ini, const char *db, const PgbPairs *to)
{
	char	   *text = NULL,
			   *value = NULL,
			   *fresh = NULL,
			   *out = NULL;
	PgbPairs	pairs = {0};
	bool		ok = false;

	if (!read_ini(label, ini, &text))
		return false;
	if (pgbconf_find_entry(text, db, &value) == 0 || !pgbconf_parse_connstr(value, &pairs))
	{
		log_error("%s: %s no longer holds a readable entry %s. Fix: restore it, then run ferry again", label, ini, db);
		goto done;
	}
	for (int i = 0; i < to->keys.n; i++)
		pgbconf_pairs_set(&pairs, to->keys.items[i], to->vals.items[i]);
	fresh = pgbconf_format_connstr(&pairs);
	out = pgbconf_set_entry(text, db, fresh);
	ok = strcmp(out, text) == 0 || write_ini(label, ini, out);

done:
	pgbconf_pairs_release(&pairs);
	free(text);
	free(value);
	free(fresh);
	free(out);
	return ok;
}
