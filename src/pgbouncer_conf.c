/*
 * pgbouncer_conf.c: PgBouncer's ini file and connection strings (see
 * pgbouncer_conf.h; the rules follow libusual's cfparser.c and PgBouncer's
 * loader.c, 1.18).
 */
#include "pgbouncer_conf.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

void
pgbconf_pairs_release(PgbPairs *p)
{
	strlist_free(&p->keys);
	strlist_free(&p->vals);
}

const char *
pgbconf_pairs_get(const PgbPairs *p, const char *key)
{
	const char *v = NULL;

	/* PgBouncer takes the last one */
	for (int i = 0; i < p->keys.n; i++)
		if (strcmp(p->keys.items[i], key) == 0)
			v = p->vals.items[i];
	return v;
}

void
pgbconf_pairs_set(PgbPairs *p, const char *key, const char *val)
{
	bool		found = false;

	for (int i = 0; i < p->keys.n; i++)
		if (strcmp(p->keys.items[i], key) == 0)
		{
			free(p->vals.items[i]);
			p->vals.items[i] = xstrdup(val);
			found = true;
		}
	if (!found)
	{
		strlist_add(&p->keys, key);
		strlist_add(&p->vals, val);
	}
}

bool
pgbconf_parse_connstr(const char *s, PgbPairs *out)
{
	const char *p = s;

	for (;;)
	{
		const char *k,
				   *kend;
		StrBuf		val;
		char	   *key;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			return true;
		/* key: up to '=' or a space (loader.c's cstr_get_key) */
		k = p;
		while (*p && *p != '=' && *p != ' ')
			p++;
		kend = p;
		while (*p == ' ')
			p++;
		if (*p != '=' || kend == k)
			return false;
		p++;
		while (*p == ' ')
			p++;
		strbuf_init(&val);
		if (*p == '\'')
		{
			for (p++;; p++)
			{
				if (*p == '\0')
				{
					strbuf_release(&val);
					return false;	/* unterminated */
				}
				if (*p == '\'')
				{
					if (p[1] != '\'')
						break;
					p++;
				}
				strbuf_addch(&val, *p);
			}
			p++;
			if (*p != '\0' && *p != ' ')
			{
				/* PgBouncer cuts the value at the quote and reads on from there: refuse what it would misread */
				strbuf_release(&val);
				return false;
			}
		}
		else
			while (*p && *p != ' ')
				strbuf_addch(&val, *p++);
		if (val.len == 0)
		{
			strbuf_release(&val);
			return false;		/* PgBouncer refuses empty values */
		}
		key = xstrndup(k, (size_t) (kend - k));
		strlist_add(&out->keys, key);
		strlist_add(&out->vals, val.data);
		free(key);
		strbuf_release(&val);
	}
}

char *
pgbconf_format_connstr(const PgbPairs *p)
{
	StrBuf		sb;

	strbuf_init(&sb);
	for (int i = 0; i < p->keys.n; i++)
	{
		const char *v = p->vals.items[i];

		strbuf_addf(&sb, "%s%s=", i ? " " : "", p->keys.items[i]);
		if (*v && strpbrk(v, " '") == NULL)
		{
			strbuf_addstr(&sb, v);
			continue;
		}
		strbuf_addch(&sb, '\'');
		for (; *v; v++)
		{
			if (*v == '\'')
				strbuf_addch(&sb, '\'');
			strbuf_addch(&sb, *v);
		}
		strbuf_addch(&sb, '\'');
	}
	return strbuf_detach(&sb);
}

bool
pgbconf_valid_entry_name(const char *db)
{
	if (db == NULL || *db == '\0' || strcmp(db, "pgbouncer") == 0 || strcmp(db, "*") == 0)
		return false;
	for (const unsigned char *c = (const unsigned char *) db; *c; c++)
		if (*c < 0x20 || *c == 0x7f || *c == '\'')
			return false;
	return true;
}

/* One entry line of [databases]: where its value starts and ends in the text. */
typedef struct EntryLine
{
	size_t		vstart;
	size_t		vend;
} EntryLine;

/*
 * The lines of text that define `db` in [databases], read as libusual
 * reads them: how many, and their values' spans in *lines (owned; NULL
 * when none).
 */
static int
scan_entries(const char *text, const char *db, EntryLine **lines)
{
	const char *p = text;
	bool		in_databases = false;
	int			n = 0;

	*lines = NULL;
	while (*p)
	{
		const char *eol = strchr(p, '\n');
		const char *end = eol ? eol : p + strlen(p);
		const char *q = p;

		while (q < end && isspace((unsigned char) *q))
			q++;
		if (q == end || *q == '#' || *q == ';' || strncmp(q, "%include", 8) == 0)
			;
		else if (*q == '[')
		{
			const char *close = memchr(q, ']', (size_t) (end - q));

			in_databases = close && (size_t) (close - q - 1) == strlen("databases") &&
				strncmp(q + 1, "databases", strlen("databases")) == 0;
		}
		else if (in_databases)
		{
			const char *k = q,
					   *kend;

			if (*q == '\'')
			{
				k = ++q;
				while (q < end && *q != '\'')
					q++;
				kend = q;
				if (q < end)
					q++;
			}
			else
			{
				while (q < end && (isalnum((unsigned char) *q) || strchr("_.-*", *q)))
					q++;
				kend = q;
			}
			while (q < end && (*q == ' ' || *q == '\t'))
				q++;
			if (q < end && *q == '=' && (size_t) (kend - k) == strlen(db) && strncmp(k, db, strlen(db)) == 0)
			{
				const char *v = q + 1,
						   *vend = end;

				while (v < end && (*v == ' ' || *v == '\t'))
					v++;
				while (vend > v && isspace((unsigned char) vend[-1]))
					vend--;
				*lines = xrealloc(*lines, sizeof(EntryLine) * (size_t) (n + 1));
				(*lines)[n].vstart = (size_t) (v - text);
				(*lines)[n].vend = (size_t) (vend - text);
				n++;
			}
		}
		p = eol ? eol + 1 : end;
	}
	return n;
}

int
pgbconf_find_entry(const char *text, const char *db, char **value)
{
	EntryLine  *lines;
	int			n = scan_entries(text, db, &lines);

	if (n > 0 && value)
		*value = xstrndup(text + lines[n - 1].vstart, lines[n - 1].vend - lines[n - 1].vstart);
	free(lines);
	return n;
}

char *
pgbconf_set_entry(const char *text, const char *db, const char *value)
{
	EntryLine  *lines;
	int			n = scan_entries(text, db, &lines);
	StrBuf		out;
	size_t		at = 0;

	if (n == 0)
		return NULL;
	strbuf_init(&out);
	for (int i = 0; i < n; i++)
	{
		strbuf_add(&out, text + at, lines[i].vstart - at);
		strbuf_addstr(&out, value);
		at = lines[i].vend;
	}
	strbuf_addstr(&out, text + at);
	free(lines);
	return strbuf_detach(&out);
}
