/*
 * schema.c: schema dump, pre-data restore and post-data steps (see schema.h
 * for the design).
 */
#include "schema.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"
#include "pgsql.h"
#include "proc.h"
#include "state.h"

#define PG_CLASS_OID 1259

static bool
read_file(const char *path, StrBuf *out)
{
	FILE	   *f = fopen(path, "r");
	char		buf[65536];
	size_t		n;

	if (f == NULL)
	{
		log_error("could not open \"%s\": %s", path, strerror(errno));
		return false;
	}
	strbuf_init(out);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		strbuf_add(out, buf, n);
	fclose(f);
	return true;
}

/* Run a client program, logging its first error line on failure. */
static bool
run_tool(char **argv, const StrList *env, const char *out_path, const char *what)
{
	char	   *err = NULL;
	const char **envp = xcalloc((size_t) (env ? env->n : 0) + 1, sizeof(char *));
	int			rc;
	bool		ok;

	for (int i = 0; env && i < env->n; i++)
		envp[i] = env->items[i];
	rc = proc_run(argv, envp, out_path, pg_interrupted, &err);
	free(envp);
	ok = rc == 0;

	if (pg_interrupted())
		log_info("stopped %s: ferry is stopping", argv[0]);
	else if (rc < 0)
		log_error("could not run %s: %s. Fix: install the PostgreSQL client programs (postgresql-client-N for the source's version N) or pass --pg-bin DIR",
				  argv[0], err && err[0] ? err : "not found");
	else if (rc != 0)
		log_error("%s failed (%s exited with status %d): %s", what, argv[0], rc,
				  err && err[0] ? err : "no message");
	else if (err && err[0])
		log_debug("%s said: %s", argv[0], err);
	free(err);
	return ok;
}

/* Remove a dump directory and the files ferry puts in it. */
static void
remove_dump_dir(const char *dir)
{
	static const char *const files[] = {"schema.dump", "toc.txt", "pre.sql", "post.sql"};

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
	{
		char	   *f = xasprintf("%s/%s", dir, files[i]);

		unlink(f);
		free(f);
	}
	rmdir(dir);
}

/*
 * Dump directories are named ferry-PID-XXXXXX. A process killed with
 * SIGKILL cannot remove its own, so each run removes those whose process is
 * gone (only ours: mkdtemp makes them 0700).
 */
static void
remove_stale_dump_dirs(const char *tmp)
{
	DIR		   *d = opendir(tmp);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL)
	{
		int			pid;
		char		rest[16];

		if (sscanf(e->d_name, "ferry-%d-%15s", &pid, rest) == 2 && strlen(rest) == 6 &&
			pid > 0 && kill(pid, 0) != 0 && errno == ESRCH)
		{
			char	   *dir = xasprintf("%s/%s", tmp, e->d_name);

			remove_dump_dir(dir);
			free(dir);
		}
	}
	closedir(d);
}

bool
schema_dump(const FerryConfig *cfg, int source_major, int target_major, const char *snapshot, SchemaDump *out)
{
	const char *tmp = getenv("TMPDIR") && getenv("TMPDIR")[0] ? getenv("TMPDIR") : "/tmp";
	char	   *dirtmpl = xasprintf("%s/ferry-%d-XXXXXX", tmp, (int) getpid());
	PgChildConn cc = {0};
	char	   *pg_dump = proc_find_pg_program(cfg->pg_bin, "pg_dump", source_major, target_major);
	StrList		args = {0};
	StrBuf		toc = {0};
	bool		ok = false;
	char	  **argv = NULL;
	char	   *toc_path = NULL;

	memset(out, 0, sizeof(*out));
	remove_stale_dump_dirs(tmp);
	if (mkdtemp(dirtmpl) == NULL)
	{
		log_error("could not create a temporary directory: %s", strerror(errno));
		free(dirtmpl);
		goto cleanup;
	}
	out->dir = dirtmpl;
	out->path = xasprintf("%s/schema.dump", out->dir);
	out->pg_restore = proc_find_pg_program(cfg->pg_bin, "pg_restore", source_major, target_major);
	toc_path = xasprintf("%s/toc.txt", out->dir);

	strlist_add(&args, pg_dump);
	strlist_add(&args, "--format=custom");
	strlist_add(&args, "--schema-only");
	strlist_add(&args, "--no-publications");
	strlist_add(&args, "--no-subscriptions");
	strlist_add(&args, "--no-tablespaces");
	strlist_add(&args, "--no-security-labels");
	strlist_add(&args, "--no-sync");
	strlist_add(&args, "--exclude-schema=ferry");
	if (snapshot)
	{
		char	   *s = xasprintf("--snapshot=%s", snapshot);

		strlist_add(&args, s);
		free(s);
	}
	for (int i = 0; i < cfg->include_schemas.n; i++)
	{
		strlist_add(&args, "--schema");
		strlist_add(&args, cfg->include_schemas.items[i]);
	}
	for (int i = 0; i < cfg->exclude_schemas.n; i++)
	{
		strlist_add(&args, "--exclude-schema");
		strlist_add(&args, cfg->exclude_schemas.items[i]);
	}
	for (int i = 0; i < cfg->exclude_tables.n; i++)
	{
		strlist_add(&args, "--exclude-table");
		strlist_add(&args, cfg->exclude_tables.items[i]);
	}
	strlist_add(&args, "--file");
	strlist_add(&args, out->path);
	/* the connection without its secrets: in the child's environment and a service file in the dump's 0700 directory */
	if (!pg_child_conn_init(&cc, cfg->source, out->dir, "source"))
		goto cleanup;
	strlist_add(&args, "--dbname");
	strlist_add(&args, cc.conninfo);

	argv = xcalloc((size_t) args.n + 1, sizeof(char *));
	for (int i = 0; i < args.n; i++)
		argv[i] = args.items[i];
	log_info("dumping the source schema with %s", pg_dump);
	ok = run_tool(argv, &cc.env, NULL, "the schema dump");
	pg_child_conn_release(&cc);
	if (!ok)
		goto cleanup;
	ok = false;

	{
		char	   *largv[] = {out->pg_restore, "--list", out->path, NULL};

		if (!run_tool(largv, NULL, toc_path, "reading the schema dump's contents"))
			goto cleanup;
	}
	if (!read_file(toc_path, &toc))
		goto cleanup;
	out->toc = xstrdup(toc.data);

	/* lines: "dumpId; tableoid oid DESC schema name owner" */
	{
		int			cap_oids = 64;

		out->rel_oids = xcalloc((size_t) cap_oids, sizeof(unsigned int));
		for (char *line = toc.data; line && *line;)
		{
			char	   *nl = strchr(line, '\n');
			unsigned int classoid,
						oid;
			int			id;

			if (nl)
				*nl = '\0';
			if (line[0] != ';' && sscanf(line, "%d; %u %u", &id, &classoid, &oid) == 3 &&
				classoid == PG_CLASS_OID)
			{
				if (out->nrel == cap_oids)
				{
					cap_oids *= 2;
					out->rel_oids = xrealloc(out->rel_oids, sizeof(unsigned int) * (size_t) cap_oids);
				}
				out->rel_oids[out->nrel++] = oid;
			}
			line = nl ? nl + 1 : NULL;
		}
	}
	ok = true;

cleanup:
	if (!ok)
		schema_dump_free(out);
	pg_child_conn_release(&cc);
	free(pg_dump);
	free(toc_path);
	free(argv);
	strlist_free(&args);
	strbuf_release(&toc);
	return ok;
}

void
schema_dump_free(SchemaDump *d)
{
	if (d->dir)
		remove_dump_dir(d->dir);
	free(d->dir);
	free(d->path);
	free(d->pg_restore);
	free(d->rel_oids);
	free(d->toc);
	memset(d, 0, sizeof(*d));
}

/* Entry types of more than one word, longer ones before their prefixes. */
static const char *const TOC_MULTIWORD_TYPES[] = {
	"MATERIALIZED VIEW DATA", "MATERIALIZED VIEW", "SEQUENCE OWNED BY", "SEQUENCE SET",
	"FK CONSTRAINT", "CHECK CONSTRAINT", "DEFAULT ACL", "EVENT TRIGGER", "FOREIGN DATA WRAPPER",
	"FOREIGN TABLE", "FOREIGN SERVER", "INDEX ATTACH", "TABLE ATTACH", "TABLE DATA", "LARGE OBJECT",
	"OPERATOR CLASS", "OPERATOR FAMILY", "PROCEDURAL LANGUAGE", "ROW SECURITY", "SHELL TYPE",
	"TEXT SEARCH CONFIGURATION", "TEXT SEARCH DICTIONARY", "TEXT SEARCH PARSER",
	"TEXT SEARCH TEMPLATE", "USER MAPPING", "ACCESS METHOD", "PUBLICATION TABLE",
	"STATISTICS DATA", "DATABASE PROPERTIES",
};

int
schema_toc_count(const char *toc, StrList *types, int **counts)
{
	int			total = 0;

	/* lines: "dumpId; tableoid oid TYPE schema name owner"; ';' starts a comment */
	for (const char *line = toc; line && *line;)
	{
		const char *nl = strchr(line, '\n');
		const char *p = line;
		char	   *type = NULL;
		int			skip = 0;
		int			k;

		if (*line != ';' && sscanf(line, "%*d; %*u %*u %n", &skip) == 0 && skip > 0)
		{
			p = line + skip;
			for (size_t i = 0; i < sizeof(TOC_MULTIWORD_TYPES) / sizeof(TOC_MULTIWORD_TYPES[0]); i++)
			{
				size_t		len = strlen(TOC_MULTIWORD_TYPES[i]);

				if (strncmp(p, TOC_MULTIWORD_TYPES[i], len) == 0 && (p[len] == ' ' || p[len] == '\n' || p[len] == '\0'))
				{
					type = xstrdup(TOC_MULTIWORD_TYPES[i]);
					break;
				}
			}
			if (type == NULL)
				type = xstrndup(p, strcspn(p, " \n"));
		}
		if (type && type[0])
		{
			for (k = 0; k < types->n && strcmp(types->items[k], type) != 0; k++)
				;
			if (k == types->n)
			{
				strlist_add(types, type);
				*counts = xrealloc(*counts, sizeof(int) * (size_t) types->n);
				(*counts)[k] = 0;
			}
			(*counts)[k]++;
			total++;
		}
		free(type);
		line = nl ? nl + 1 : NULL;
	}
	return total;
}

/*
 * pg_dump 15.14 and later frame plain scripts with \restrict KEY /
 * \unrestrict KEY (a psql guard against scripts that smuggle meta-commands
 * in object names). Those two lines are removed; any other line starting
 * with a backslash is data (a string or function body), never a command:
 * pg_restore emits no other meta-command for these sections.
 */
static bool
is_restrict_line(const char *p)
{
	return strncmp(p, "\\restrict ", 10) == 0 || strncmp(p, "\\unrestrict ", 12) == 0;
}

bool
schema_strip_meta(char *script)
{
	char	   *w = script;
	char	   *r = script;

	while (*r)
	{
		char	   *nl = strchr(r, '\n');
		size_t		len = nl ? (size_t) (nl - r) + 1 : strlen(r);

		if (!is_restrict_line(r))
		{
			memmove(w, r, len);
			w += len;
		}
		r += len;
	}
	*w = '\0';
	return true;
}

/*
 * One line [line, end) of a script: if it is "ALTER TABLE ... ALTER COLUMN
 * ... SET (options);", drop the SCHEMA_ATTVER_OPTION entries of its option
 * list, writing the line (or nothing, when the list is left empty) at w.
 * Returns the number removed, and *wlen the bytes written.
 */
static int
strip_attver_line(const char *line, const char *end, char *w, size_t *wlen)
{
	static const char opt[] = SCHEMA_ATTVER_OPTION "=";
	const char *set = NULL;
	const char *p;
	const char *close;
	StrBuf		list;
	int			removed = 0;
	size_t		len = (size_t) (end - line);
	char	   *copy;

	*wlen = len;
	if (strncmp(line, "ALTER TABLE ", 12) != 0)
		goto keep;
	for (p = line; p + 6 <= end; p++)
		if (memcmp(p, " SET (", 6) == 0)
			set = p;
	close = end;
	while (close > line && (close[-1] == '\n' || close[-1] == '\r'))
		close--;
	if (set == NULL || close - set < 9 || memcmp(close - 2, ");", 2) != 0)
		goto keep;
	copy = xstrndup(line, len);
	strbuf_init(&list);
	{
		const char *item = set + 6;
		const char *lend = close - 2;

		while (item < lend)
		{
			const char *comma = memchr(item, ',', (size_t) (lend - item));
			const char *iend = comma ? comma : lend;

			while (item < iend && *item == ' ')
				item++;
			if ((size_t) (iend - item) > sizeof(opt) - 1 && memcmp(item, opt, sizeof(opt) - 1) == 0 &&
				strspn(item + sizeof(opt) - 1, "0123456789") == (size_t) (iend - item) - (sizeof(opt) - 1))
				removed++;
			else
				strbuf_addf(&list, "%s%.*s", list.len ? ", " : "", (int) (iend - item), item);
			item = comma ? comma + 1 : lend;
		}
	}
	if (removed > 0)
	{
		if (list.len == 0)
			*wlen = 0;
		else
		{
			int			n = snprintf(w, len + 1, "%.*s%s%s", (int) (set + 6 - line), copy, list.data, copy + (close - 2 - line));

			*wlen = (size_t) n;
		}
	}
	strbuf_release(&list);
	free(copy);
	if (removed > 0)
		return removed;
keep:
	memmove(w, line, len);
	return 0;
}

int
schema_strip_attver(char *script)
{
	char	   *w = script;
	char	   *r = script;
	int			removed = 0;

	while (*r)
	{
		char	   *nl = strchr(r, '\n');
		size_t		len = nl ? (size_t) (nl - r) + 1 : strlen(r);
		size_t		wlen;

		removed += strip_attver_line(r, r + len, w, &wlen);
		w += wlen;
		r += len;
	}
	*w = '\0';
	return removed;
}

/* Run a pg_restore section into a file and read it, meta-commands stripped. */
static bool
restore_section(const FerryConfig *cfg, const SchemaDump *d, const char *section, StrBuf *out)
{
	char	   *sec = xasprintf("--section=%s", section);
	char	   *file = xasprintf("%s/%s.sql", d->dir, strcmp(section, "pre-data") == 0 ? "pre" : "post");
	char	   *argv[8];
	int			i = 0;
	bool		ok = false;

	argv[i++] = d->pg_restore;
	argv[i++] = sec;
	if (cfg->no_owner)
		argv[i++] = "--no-owner";
	if (cfg->no_privileges)
		argv[i++] = "--no-privileges";
	argv[i++] = "--file";
	argv[i++] = file;
	argv[i++] = d->path;
	argv[i] = NULL;
	if (run_tool(argv, NULL, NULL, "extracting the schema") && read_file(file, out))
	{
		ok = schema_strip_meta(out->data);
		if (ok && schema_strip_attver(out->data) > 0)
			log_info("left out the column option %s that pg_dump dumped (internal to the source's PostgreSQL release; its own pg_dump leaves it out)",
					 SCHEMA_ATTVER_OPTION);
		out->len = strlen(out->data);
		if (!ok)
			strbuf_release(out);
	}
	free(sec);
	free(file);
	return ok;
}

/* The line of `script` around a 1-based character position, owned. */
static char *
line_at(const char *script, const char *pos_text)
{
	long		pos = pos_text ? strtol(pos_text, NULL, 10) : 0;
	size_t		len = strlen(script);
	const char *p,
			   *start,
			   *end;

	if (pos <= 0 || (size_t) pos > len)
		return NULL;
	p = script + pos - 1;
	start = p;
	while (start > script && start[-1] != '\n')
		start--;
	end = strchr(p, '\n');
	if (end == NULL)
		end = script + len;
	if (end - start > 200)
		end = start + 200;
	return xstrndup(start, (size_t) (end - start));
}

bool
schema_restore_pre_data(PGconn *target, const FerryConfig *cfg, const SchemaDump *d)
{
	StrBuf		script;
	PGresult   *res;
	bool		ok = false;

	if (!restore_section(cfg, d, "pre-data", &script))
		return false;
	{
		int			hoisted = schema_hoist_schema_acls(script.data);

		if (hoisted > 0)
			log_debug("restoring the privileges of %d %s before the objects in them", hoisted, hoisted == 1 ? "schema" : "schemas");
	}
	log_info("restoring the schema (pre-data, %zu bytes of SQL) on the target", script.len);
	if (!pg_exec(target, "start the schema transaction", "BEGIN"))
		goto cleanup;
	res = pg_execute(target, script.data, 0, NULL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		char	   *e = pg_result_error_text(res, target);
		char	   *near = line_at(script.data, PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION));

		log_error("could not restore the schema on the target: %s%s%s. Fix: run ferry check; a role or extension the schema needs may be missing on the target (see --no-owner, --no-privileges)",
				  e, near ? " at: " : "", near ? near : "");
		free(e);
		free(near);
		PQclear(res);
		pg_exec_quiet(target, "ROLLBACK", NULL);
		goto cleanup;
	}
	PQclear(res);
	/* the script changed session settings; put back the ones we rely on */
	if (!state_set(target, cfg->name, "pre_data_done", "true") ||
		!pg_exec(target, "commit the schema", "COMMIT") ||
		!pg_exec(target, "reset the session", "SELECT pg_catalog.set_config('search_path', '', false)"))
	{
		pg_exec_quiet(target, "ROLLBACK", NULL);
		goto cleanup;
	}
	ok = true;

cleanup:
	strbuf_release(&script);
	return ok;
}

/* Copy the text after `label` up to the next ';' or end of line. */
static char *
header_field(const char *line, const char *label)
{
	const char *p = strstr(line, label);
	size_t		n;

	if (p == NULL)
		return xstrdup("");
	p += strlen(label);
	n = strcspn(p, ";\n");
	return xstrndup(p, n);
}

/* ------------------------------------------------------------------ */
/* Schemas' privileges before their objects' owners                     */

typedef struct ScriptEntry
{
	size_t		start;			/* offset of the header line */
	size_t		end;			/* offset of the next header line, or the end */
	char	   *type;
	char	   *name;
	int			after;			/* for a moved ACL: the entry it follows, -1 the start */
} ScriptEntry;

/* a pg_dump entry header: "-- Name: ..." between two lines that are "--" */
static bool
is_framed_header(const char *script, const char *line)
{
	const char *nl = strchr(line, '\n');

	if (strncmp(line, "-- Name: ", 9) != 0 || nl == NULL || strncmp(nl + 1, "--\n", 3) != 0)
		return false;
	return line - script >= 3 && strncmp(line - 3, "--\n", 3) == 0 &&
		(line - script == 3 || line[-4] == '\n');
}

/*
 * Nothing but one-line GRANT and REVOKE statements, comments and blank
 * lines in [p, end), and at least one statement.
 */
static bool
only_grants(const char *p, const char *end)
{
	bool		any = false;

	while (p < end)
	{
		const char *nl = memchr(p, '\n', (size_t) (end - p));
		const char *eol = nl ? nl : end;

		if (strncmp(p, "GRANT ", 6) == 0 || strncmp(p, "REVOKE ", 7) == 0)
		{
			if (eol[-1] != ';')
				return false;	/* a statement on more than one line */
			any = true;
		}
		else if (eol > p && strncmp(p, "--", 2) != 0)
			return false;
		p = nl ? nl + 1 : end;
	}
	return any;
}

/* an identifier as pg_dump's fmtId wrote it, unquoted; owned */
static char *
unquote_ident(const char *s)
{
	size_t		n = strlen(s);
	char	   *out;
	size_t		w = 0;

	if (n < 2 || s[0] != '"' || s[n - 1] != '"')
		return xstrdup(s);
	out = xmalloc(n);
	for (size_t i = 1; i + 1 < n; i++)
	{
		out[w++] = s[i];
		if (s[i] == '"' && s[i + 1] == '"')
			i++;
	}
	out[w] = '\0';
	return out;
}

int
schema_hoist_schema_acls(char *script)
{
	ScriptEntry *e = NULL;
	int			n = 0,
				cap = 0,
				moved = 0;
	size_t		len = strlen(script);

	for (const char *p = script; *p;)
	{
		const char *nl = strchr(p, '\n');
		const char *next = nl ? nl + 1 : p + strlen(p);

		if (is_framed_header(script, p))
		{
			const char *np = p + 9;
			const char *te = strstr(np, "; Type: ");

			if (te != NULL && te < next)
			{
				if (n == cap)
				{
					cap = cap ? cap * 2 : 64;
					e = xrealloc(e, sizeof(ScriptEntry) * (size_t) cap);
				}
				/* an entry starts at the "--" line above its header */
				if (n > 0)
					e[n - 1].end = (size_t) (p - 3 - script);
				e[n].start = (size_t) (p - 3 - script);
				e[n].end = len;
				e[n].name = xstrndup(np, (size_t) (te - np));
				e[n].type = header_field(p, "; Type: ");
				e[n].after = -2;	/* stays */
				n++;
			}
		}
		p = next;
	}
	for (int i = 0; i < n; i++)
	{
		char	   *sch;

		if (strcmp(e[i].type, "ACL") != 0 || strncmp(e[i].name, "SCHEMA ", 7) != 0 ||
			!only_grants(script + e[i].start + 3 + strcspn(script + e[i].start + 3, "\n") + 1, script + e[i].end))
			continue;
		sch = unquote_ident(e[i].name + 7);
		e[i].after = -1;
		for (int j = 0; j < i; j++)
			if (strcmp(e[j].type, "SCHEMA") == 0 && strcmp(e[j].name, sch) == 0)
				e[i].after = j;
		free(sch);
		moved++;
	}
	if (n > 0 && moved > 0)
	{
		char	   *out = xmalloc(len + 1);
		size_t		w = e[0].start;

		memcpy(out, script, w);
		for (int pass = -1; pass < n; pass++)
		{
			if (pass >= 0 && e[pass].after == -2)
			{
				memcpy(out + w, script + e[pass].start, e[pass].end - e[pass].start);
				w += e[pass].end - e[pass].start;
			}
			if (pass >= 0 && e[pass].after != -2)
				continue;
			for (int k = 0; k < n; k++)
				if (e[k].after == pass)
				{
					memcpy(out + w, script + e[k].start, e[k].end - e[k].start);
					w += e[k].end - e[k].start;
				}
		}
		out[w] = '\0';
		memcpy(script, out, w + 1);
		free(out);
	}
	for (int i = 0; i < n; i++)
	{
		free(e[i].type);
		free(e[i].name);
	}
	free(e);
	return moved;
}

static void
add_step(SchemaSteps *out, int *cap, const char *header, const char *body, size_t body_len)
{
	SchemaStep *s;
	char	   *name;
	const char *np = strncmp(header, "-- Data for Name: ", 18) == 0 ? header + 18 : header + 9;
	size_t		nlen = strstr(np, "; Type: ") ? (size_t) (strstr(np, "; Type: ") - np) : strcspn(np, "\n");
	char	   *schema;
	int			dup = 1;
	char	   *key;

	if (out->n == *cap)
	{
		*cap = *cap ? *cap * 2 : 32;
		out->items = xrealloc(out->items, sizeof(SchemaStep) * (size_t) *cap);
	}
	name = xstrndup(np, nlen);
	schema = header_field(header, "; Schema: ");
	s = &out->items[out->n];
	memset(s, 0, sizeof(*s));
	s->type = header_field(header, "; Type: ");
	key = xasprintf("%s %s %s", s->type, schema, name);
	for (int i = 0; i < out->n; i++)
		if (strncmp(out->items[i].key, key, strlen(key)) == 0 &&
			(out->items[i].key[strlen(key)] == '\0' || out->items[i].key[strlen(key)] == '#'))
			dup++;
	s->key = dup > 1 ? xasprintf("%s#%d", key, dup) : xstrdup(key);
	s->sql = xstrndup(body, body_len);
	s->wave = (strcmp(s->type, "INDEX") == 0 || strcmp(s->type, "CONSTRAINT") == 0 ||
			   strcmp(s->type, "CHECK CONSTRAINT") == 0) ? 1 : 2;
	s->primary_key = strcmp(s->type, "CONSTRAINT") == 0 && strstr(s->sql, "PRIMARY KEY") != NULL;
	out->n++;
	free(key);
	free(name);
	free(schema);
}

static bool
is_header(const char *line)
{
	return strncmp(line, "-- Name: ", 9) == 0 || strncmp(line, "-- Data for Name: ", 18) == 0;
}

int
schema_split_script(const char *script, SchemaSteps *out)
{
	const char *p = script;
	const char *body = NULL;
	const char *header = NULL;
	char	   *hcopy = NULL;
	int			cap = 0;

	memset(out, 0, sizeof(*out));
	while (*p)
	{
		const char *nl = strchr(p, '\n');
		const char *next = nl ? nl + 1 : p + strlen(p);

		if (is_header(p))
		{
			if (header == NULL)
				out->prologue = xstrndup(script, (size_t) (p - script));
			else
				add_step(out, &cap, hcopy, body, (size_t) (p - body));
			free(hcopy);
			hcopy = xstrndup(p, (size_t) (next - p));
			header = p;
			body = next;
		}
		p = next;
	}
	if (header)
		add_step(out, &cap, hcopy, body, (size_t) (p - body));
	else
		out->prologue = xstrdup(script);
	free(hcopy);
	/* strip meta-command lines from bodies and prologue */
	for (int i = 0; i < out->n; i++)
		schema_strip_meta(out->items[i].sql);
	schema_strip_meta(out->prologue);
	return out->n;
}

bool
schema_post_data_steps(const FerryConfig *cfg, const SchemaDump *d, SchemaSteps *out)
{
	StrBuf		script;
	SchemaStep *tmp;
	int			n;

	if (!restore_section(cfg, d, "post-data", &script))
		return false;
	n = schema_split_script(script.data, out);
	strbuf_release(&script);
	if (n < 0)
	{
		log_error("could not split the post-data script into steps");
		return false;
	}
	/* stable sort: qsort is not stable, so sort an index-tagged copy */
	tmp = xcalloc((size_t) (n ? n : 1), sizeof(SchemaStep));
	{
		int			k = 0;

		for (int pass = 0; pass < 3; pass++)
			for (int i = 0; i < n; i++)
			{
				SchemaStep *s = &out->items[i];
				int			cls = s->wave == 1 ? (s->primary_key ? 0 : 1) : 2;

				if (cls == pass)
					tmp[k++] = *s;
			}
	}
	if (n > 0)				/* no post-data step at all: items is NULL */
		memcpy(out->items, tmp, sizeof(SchemaStep) * (size_t) n);
	free(tmp);
	return true;
}

/* ------------------------------------------------------------------ */
/* Foreign keys built NOT VALID                                         */

/*
 * A minimal SQL lexer for one pg_dump statement: words (letters, digits,
 * _ and $), double-quoted identifiers ("" inside is a quote), names made
 * of those joined by dots, single-quoted strings, single punctuation
 * characters; whitespace, -- and non-nested block comments skipped.
 */
typedef enum
{
	TOK_END, TOK_NAME, TOK_STRING, TOK_PUNCT, TOK_BAD
} TokKind;

typedef struct Tok
{
	TokKind		kind;
	const char *start;
	const char *end;
	bool		quoted;			/* a TOK_NAME with a double-quoted part */
} Tok;

static bool
word_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		c == '_' || c == '$' || (unsigned char) c >= 0x80;
}

static const char *
skip_space(const char *p)
{
	for (;;)
	{
		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f')
			p++;
		if (p[0] == '-' && p[1] == '-')
			p += strcspn(p, "\n");
		else if (p[0] == '/' && p[1] == '*')
		{
			const char *e = strstr(p + 2, "*/");

			if (e == NULL)
				return p;		/* unterminated: lexed as punctuation, the statement is refused */
			p = e + 2;
		}
		else
			return p;
	}
}

static Tok
next_tok(const char **pp)
{
	const char *p = skip_space(*pp);
	Tok			t = {TOK_END, p, p, false};

	if (*p == '\0')
		return t;
	if (*p == '\'')
	{
		for (p++; *p; p++)
			if (*p == '\'' && *++p != '\'')
				break;
		t.kind = p[-1] == '\'' ? TOK_STRING : TOK_BAD;
	}
	else if (*p == '"' || word_char(*p))
	{
		t.kind = TOK_NAME;
		for (;;)
		{
			if (*p == '"')
			{
				t.quoted = true;
				for (p++;; p++)
				{
					if (*p == '\0')
					{
						t.kind = TOK_BAD;
						break;
					}
					if (*p == '"' && *++p != '"')
						break;
				}
				if (t.kind == TOK_BAD)
					break;
			}
			else
				while (word_char(*p))
					p++;
			if (*p == '.' && (p[1] == '"' || word_char(p[1])))
				p++;
			else
				break;
		}
	}
	else
	{
		t.kind = TOK_PUNCT;
		p++;
	}
	t.end = p;
	*pp = p;
	return t;
}

/* Is t the unquoted keyword kw (case-insensitive)? */
static bool
tok_is(const Tok *t, const char *kw)
{
	size_t		n = strlen(kw);

	return t->kind == TOK_NAME && !t->quoted && (size_t) (t->end - t->start) == n &&
		strncasecmp(t->start, kw, n) == 0;
}

/* A name token as a plain name: quotes removed, "" made ", unquoted letters lower-cased. */
static char *
tok_ident(const Tok *t)
{
	StrBuf		sb;
	bool		in = false;

	strbuf_init(&sb);
	for (const char *p = t->start; p < t->end; p++)
	{
		if (*p == '"')
		{
			if (in && p + 1 < t->end && p[1] == '"')
				strbuf_addch(&sb, *p++);
			else
				in = !in;
		}
		else
			strbuf_addch(&sb, in ? *p : (char) tolower((unsigned char) *p));
	}
	return strbuf_detach(&sb);
}

bool
schema_fk_not_valid(const char *sql, char **sql_out, char **table_out, char **name_out)
{
	static const char *const head[] = {"ALTER", "TABLE", "ONLY", NULL, "ADD", "CONSTRAINT", NULL, "FOREIGN", "KEY"};
	const char *p = sql;
	Tok			t,
				table = {0},
				name = {0},
				prev = {0},
				prev2 = {0};
	size_t		nhead = sizeof(head) / sizeof(head[0]);

	for (size_t i = 0; i < nhead; i++)
	{
		t = next_tok(&p);
		if (head[i] == NULL ? t.kind != TOK_NAME : !tok_is(&t, head[i]))
			return false;
		if (i == 3)
			table = t;
		else if (i == 6)
			name = t;
	}
	/* the rest of the definition, up to the one ';' */
	for (;;)
	{
		t = next_tok(&p);
		if (t.kind == TOK_END || t.kind == TOK_BAD)
			return false;
		if (t.kind == TOK_PUNCT && *t.start == ';')
			break;
		prev2 = prev;
		prev = t;
	}
	if (prev.kind == TOK_END)
		return false;			/* nothing after FOREIGN KEY */
	if (next_tok(&p).kind != TOK_END)
		return false;			/* more than one statement */
	if (tok_is(&prev2, "NOT") && tok_is(&prev, "VALID"))
		return false;			/* NOT VALID on the source: stays so */
	{
		StrBuf		sb;

		strbuf_init(&sb);
		strbuf_add(&sb, sql, (size_t) (prev.end - sql));
		strbuf_addstr(&sb, " NOT VALID");
		strbuf_addstr(&sb, prev.end);
		*sql_out = strbuf_detach(&sb);
	}
	*table_out = xstrndup(table.start, (size_t) (table.end - table.start));
	*name_out = tok_ident(&name);
	return true;
}

void
schema_steps_free(SchemaSteps *s)
{
	for (int i = 0; i < s->n; i++)
	{
		free(s->items[i].key);
		free(s->items[i].type);
		free(s->items[i].sql);
	}
	free(s->items);
	free(s->prologue);
	memset(s, 0, sizeof(*s));
}
