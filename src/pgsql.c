/*
 * pgsql.c: libpq helpers (see pgsql.h).
 */
#include "pgsql.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* Settings every session gets, so that text values round-trip exactly. */
static const char SESSION_SETUP_SQL[] =
	"SELECT pg_catalog.set_config('search_path', '', false),"
	" pg_catalog.set_config('datestyle', 'ISO', false),"
	" pg_catalog.set_config('intervalstyle', 'postgres', false),"
	" pg_catalog.set_config('timezone', 'UTC', false),"
	" pg_catalog.set_config('extra_float_digits', '3', false),"
	" pg_catalog.set_config('statement_timeout', '0', false),"
	" pg_catalog.set_config('lock_timeout', '0', false),"
	" pg_catalog.set_config('idle_in_transaction_session_timeout', '0', false),"
	/* a database ferry froze (switchover) stays writable for ferry itself */
	" pg_catalog.set_config('default_transaction_read_only', 'off', false)";

const char *
pg_connect_fix(const char *errmsg)
{
	if (errmsg == NULL)
		return "check the connection string";
	if (strstr(errmsg, "password authentication failed") ||
		strstr(errmsg, "no password supplied") ||
		strstr(errmsg, "fe_sendauth"))
		return "check the user name and password (PGPASSWORD, ~/.pgpass or password= in the connection string)";
	if (strstr(errmsg, "no pg_hba.conf entry"))
		return "add a pg_hba.conf line on that server allowing this user and database from ferry's host, then reload it";
	if (strstr(errmsg, "does not exist") && strstr(errmsg, "database"))
		return "create the database first (createdb) or fix dbname= in the connection string";
	if (strstr(errmsg, "does not exist") && strstr(errmsg, "role"))
		return "create the role on that server or fix user= in the connection string";
	if (strstr(errmsg, "could not translate host name"))
		return "fix host= in the connection string: the name does not resolve";
	if (strstr(errmsg, "Connection refused") || strstr(errmsg, "No such file or directory"))
		return "check host= and port=: is the server running and listening there (listen_addresses, firewall)?";
	if (strstr(errmsg, "timeout") || strstr(errmsg, "timed out"))
		return "check that the host is reachable from here (network, firewall) or raise connect_timeout";
	if (strstr(errmsg, "replication role") || strstr(errmsg, "WAL sender") ||
		strstr(errmsg, "walsender") || (strstr(errmsg, "replication") && strstr(errmsg, "permission")))
		return "grant it on the source: ALTER ROLE <user> WITH REPLICATION";
	if (strstr(errmsg, "too many connections") || strstr(errmsg, "remaining connection slots"))
		return "raise max_connections (or max_wal_senders for replication) or close idle sessions";
	if (strstr(errmsg, "invalid connection option") || strstr(errmsg, "missing \"=\"") ||
		strstr(errmsg, "invalid URI"))
		return "fix the connection string syntax (libpq keyword=value pairs or a postgresql:// URI)";
	return "check the connection string and that the server accepts connections from this host";
}

static void
notice_to_log(void *arg, const char *message)
{
	(void) arg;
	log_debug("server said: %s", message);
}

static char *
first_line(const char *msg)
{
	size_t		n = strcspn(msg, "\n");

	return xstrndup(msg, n);
}

PGconn *
pg_connect(const char *conninfo, const char *label, PgConnKind kind, char **errtext)
{
	const char *keys[6];
	const char *vals[6];
	int			i = 0;
	PGconn	   *conn;
	PGresult   *res;

	/* before dbname, so the user's own connect_timeout wins */
	keys[i] = "connect_timeout";
	vals[i++] = "10";
	keys[i] = "dbname";
	vals[i++] = conninfo ? conninfo : "";
	keys[i] = "fallback_application_name";
	vals[i++] = "ferry";
	if (kind == PG_CONN_REPLICATION)
	{
		keys[i] = "replication";
		vals[i++] = "database";
	}
	keys[i] = NULL;
	vals[i] = NULL;

	conn = PQconnectdbParams(keys, vals, 1);
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
	{
		const char *msg = conn ? PQerrorMessage(conn) : "out of memory";
		char	   *safe = pg_conninfo_safe(conninfo ? conninfo : "");
		char	   *line;
		const char *p;

		/* libpq prefixes "connection to server at ... failed: "; keep the reason */
		p = strstr(msg, "failed: ");
		line = first_line(p ? p + 8 : msg);
		/* a caller that takes the text reports it itself (check's table) */
		if (errtext)
			*errtext = xstrdup(line);
		else
			log_error("could not connect to the %s (%s): %s. Fix: %s",
					  label, safe ? safe : "unparsable connection string", line,
					  pg_connect_fix(msg));
		free(line);
		free(safe);
		PQfinish(conn);
		return NULL;
	}

	/* server notices (NOTICE: drop cascades to ...) go to the debug log */
	PQsetNoticeProcessor(conn, notice_to_log, NULL);
	res = PQexec(conn, SESSION_SETUP_SQL);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		char	   *e = pg_result_error_text(res, conn);

		log_error("could not set up the session on the %s: %s", label, e);
		if (errtext)
			*errtext = e;
		else
			free(e);
		PQclear(res);
		PQfinish(conn);
		return NULL;
	}
	PQclear(res);
	return conn;
}

char *
pg_result_error_text(const PGresult *res, PGconn *conn)
{
	StrBuf		sb;
	const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
	const char *hint = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL;

	strbuf_init(&sb);
	if (primary)
		strbuf_addstr(&sb, primary);
	else if (res && PQresultErrorMessage(res)[0])
		strbuf_addstr(&sb, PQresultErrorMessage(res));
	else if (conn)
		strbuf_addstr(&sb, PQerrorMessage(conn));
	else
		strbuf_addstr(&sb, "unknown error");
	while (sb.len > 0 && sb.data[sb.len - 1] == '\n')
		sb.data[--sb.len] = '\0';
	if (detail)
		strbuf_addf(&sb, " (detail: %s)", detail);
	if (hint)
		strbuf_addf(&sb, " (hint: %s)", hint);
	return strbuf_detach(&sb);
}

PGresult *
pg_query(PGconn *conn, const char *what, const char *sql, int nparams, const char *const *params)
{
	PGresult   *res;
	ExecStatusType st;

	if (nparams > 0)
		res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	else
		res = PQexec(conn, sql);
	st = PQresultStatus(res);
	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		return res;

	{
		char	   *e = pg_result_error_text(res, conn);

		log_error("could not %s: %s", what, e);
		free(e);
	}
	PQclear(res);
	return NULL;
}

bool
pg_exec(PGconn *conn, const char *what, const char *sql)
{
	PGresult   *res = pg_query(conn, what, sql, 0, NULL);

	PQclear(res);
	return res != NULL;
}

bool
pg_exec_quiet(PGconn *conn, const char *sql, char **errtext)
{
	PGresult   *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);
	bool		ok = (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK);

	if (!ok && errtext)
		*errtext = pg_result_error_text(res, conn);
	PQclear(res);
	return ok;
}

bool
pg_check_shape(const PGresult *res, int nrows, int ncols, const char *what)
{
	if (PQnfields(res) != ncols || (nrows >= 0 && PQntuples(res) != nrows))
	{
		log_error("unexpected result for %s: got %d rows and %d fields, expected %d rows and %d fields",
				  what, PQntuples(res), PQnfields(res), nrows, ncols);
		return false;
	}
	return true;
}

/* libpq's escaping result as an owned (malloc) string, or NULL logged. */
static char *
escaped(PGconn *conn, char *q, const char *what)
{
	char	   *out;

	if (q == NULL)
	{
		const char *e = conn ? PQerrorMessage(conn) : "no connection";

		log_error("could not quote %s for SQL: %.*s", what, (int) strcspn(e, "\n"), e);
		return NULL;
	}
	out = xstrdup(q);
	PQfreemem(q);
	return out;
}

char *
pg_quote_ident(PGconn *conn, const char *ident)
{
	return escaped(conn, conn ? PQescapeIdentifier(conn, ident, strlen(ident)) : NULL, "a name");
}

char *
pg_quote_literal(PGconn *conn, const char *s)
{
	return escaped(conn, conn ? PQescapeLiteral(conn, s, strlen(s)) : NULL, "a value");
}

/* Append key='value' with conninfo quoting. */
static void
conninfo_add(StrBuf *sb, const char *key, const char *val)
{
	if (sb->len > 0)
		strbuf_addch(sb, ' ');
	strbuf_addf(sb, "%s='", key);
	for (const char *p = val; *p; p++)
	{
		if (*p == '\'' || *p == '\\')
			strbuf_addch(sb, '\\');
		strbuf_addch(sb, *p);
	}
	strbuf_addch(sb, '\'');
}

bool
pg_option_is_secret(const PQconninfoOption *o)
{
	return o->dispchar != NULL && strchr(o->dispchar, '*') != NULL;
}

char *
pg_conninfo_safe(const char *conninfo)
{
	char	   *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
	StrBuf		sb;

	if (opts == NULL)
	{
		PQfreemem(err);
		return NULL;
	}
	strbuf_init(&sb);
	for (PQconninfoOption *o = opts; o->keyword; o++)
	{
		if (o->val == NULL || o->val[0] == '\0' || pg_option_is_secret(o))
			continue;
		conninfo_add(&sb, o->keyword, o->val);
	}
	PQconninfoFree(opts);
	return strbuf_detach(&sb);
}

/* Overwrite the values of a parsed conninfo before it is freed. */
static void
conninfo_free_wiped(PQconninfoOption *opts)
{
	for (PQconninfoOption *o = opts; o && o->keyword; o++)
		if (o->val)
			explicit_bzero(o->val, strlen(o->val));
	PQconninfoFree(opts);
}

int
pg_conninfo_secrets(const char *conninfo, StrList *out)
{
	char	   *err = NULL;
	PQconninfoOption *opts = conninfo ? PQconninfoParse(conninfo, &err) : NULL;
	int			n = 0;

	PQfreemem(err);
	for (PQconninfoOption *o = opts; o && o->keyword; o++)
		if (o->val && o->val[0] && pg_option_is_secret(o))
		{
			strlist_add(out, o->val);
			n++;
		}
	conninfo_free_wiped(opts);
	return n;
}

/* May `v` be a service file value? The file is read line by line, trimmed. */
static bool
service_value_ok(const char *v)
{
	size_t		len = strlen(v);

	return strpbrk(v, "\r\n") == NULL && len > 0 &&
		v[0] != ' ' && v[0] != '\t' && v[len - 1] != ' ' && v[len - 1] != '\t';
}

bool
pg_child_conn_init(PgChildConn *cc, const char *conninfo, const char *dir, const char *label)
{
	char	   *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo ? conninfo : "", &err);
	StrBuf		file;
	bool		ok = false;
	bool		has_service = getenv("PGSERVICE") != NULL && getenv("PGSERVICE")[0] != '\0';

	memset(cc, 0, sizeof(*cc));
	strbuf_init(&file);
	if (opts == NULL)
	{
		log_error("could not parse the %s connection string: %s", label, err ? err : "out of memory");
		PQfreemem(err);
		goto done;
	}
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (strcmp(o->keyword, "service") == 0 && o->val && o->val[0])
			has_service = true;
	strbuf_addstr(&file, "# written by ferry for one child program, removed when it ends\n[ferry]\n");
	for (PQconninfoOption *o = opts; o->keyword; o++)
	{
		if (o->val == NULL || o->val[0] == '\0' || !pg_option_is_secret(o))
			continue;
		if (o->envvar)
		{
			/* libpq reads this one from the environment (PGPASSWORD) */
			char	   *kv = xasprintf("%s=%s", o->envvar, o->val);

			strlist_add(&cc->env, kv);
			explicit_bzero(kv, strlen(kv));
			free(kv);
			continue;
		}
		if (has_service)
		{
			log_error("the %s connection string names a service (service= or PGSERVICE) and gives %s: ferry cannot hand both to pg_dump without showing %s on its command line. Fix: put %s in that service's entry of the service file instead",
					  label, o->keyword, o->keyword, o->keyword);
			goto done;
		}
		if (!service_value_ok(o->val))
		{
			log_error("the %s connection string's %s starts or ends with a space or holds a line break, which ferry cannot hand to pg_dump without showing it on its command line. Fix: change it, or give it in a service file (service=)",
					  label, o->keyword);
			goto done;
		}
		strbuf_addf(&file, "%s=%s\n", o->keyword, o->val);
		cc->nfile++;
	}
	cc->conninfo = pg_conninfo_safe(conninfo ? conninfo : "");
	if (cc->nfile > 0)
	{
		/* only libpq's secrets without an environment variable (sslpassword) */
		int			fd;
		char	   *kv;

		cc->service_file = xasprintf("%s/pg_service.conf", dir);
		fd = open(cc->service_file, O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (fd < 0 || write(fd, file.data, file.len) != (ssize_t) file.len || close(fd) != 0)
		{
			log_error("could not write \"%s\": %s", cc->service_file, strerror(errno));
			goto done;
		}
		kv = xasprintf("PGSERVICEFILE=%s", cc->service_file);
		strlist_add(&cc->env, kv);
		free(kv);
		{
			char	   *with = xasprintf("%s%sservice=ferry", cc->conninfo, cc->conninfo[0] ? " " : "");

			free(cc->conninfo);
			cc->conninfo = with;
		}
	}
	ok = true;

done:
	if (file.data)
		explicit_bzero(file.data, file.len);
	strbuf_release(&file);
	conninfo_free_wiped(opts);
	if (!ok)
		pg_child_conn_release(cc);
	return ok;
}

void
pg_child_conn_release(PgChildConn *cc)
{
	if (cc->service_file)
		unlink(cc->service_file);
	for (int i = 0; i < cc->env.n; i++)
		explicit_bzero(cc->env.items[i], strlen(cc->env.items[i]));
	strlist_free(&cc->env);
	free(cc->service_file);
	free(cc->conninfo);
	memset(cc, 0, sizeof(*cc));
}

char *
pg_conn_describe(PGconn *conn)
{
	const char *host = PQhost(conn);

	return xasprintf("%s:%s/%s", host && host[0] != '/' ? host : "localhost",
					 PQport(conn), PQdb(conn));
}

/* 1 to 8 hex digits; returns the end, or NULL. */
static const char *
lsn_half(const char *s, uint32_t *out)
{
	uint32_t	v = 0;
	int			n = 0;

	for (; n < 8; n++, s++)
	{
		int			d;

		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			break;
		v = v * 16 + (uint32_t) d;
	}
	if (n == 0)
		return NULL;
	*out = v;
	return s;
}

bool
pg_lsn_parse(const char *s, uint64_t *lsn)
{
	uint32_t	hi,
				lo;

	/* exactly as PostgreSQL reads pg_lsn: 1-8 hex digits, '/', 1-8 hex digits */
	if (s == NULL || (s = lsn_half(s, &hi)) == NULL || *s++ != '/' ||
		(s = lsn_half(s, &lo)) == NULL || *s != '\0')
		return false;
	*lsn = ((uint64_t) hi << 32) | lo;
	return true;
}

void
pg_lsn_format(uint64_t lsn, char *buf, size_t size)
{
	snprintf(buf, size, "%X/%X", (unsigned int) (lsn >> 32), (unsigned int) lsn);
}

/*
 * Cancellation registry. The signal handler may only use async-signal-safe
 * calls: PQcancel() is documented as such. Slots are atomic pointers; a
 * connection registers its PGcancel while a long query runs.
 */
#define MAX_CANCEL 64
static _Atomic(PGcancel *) cancel_slots[MAX_CANCEL];
static _Atomic(PGconn *) cancel_conns[MAX_CANCEL];
static volatile sig_atomic_t interrupted = 0;

static void
handle_signal(int signo)
{
	char		errbuf[256];

	interrupted = 1;
	for (int i = 0; i < MAX_CANCEL; i++)
	{
		PGcancel   *c = atomic_load(&cancel_slots[i]);

		if (c)
			(void) PQcancel(c, errbuf, sizeof(errbuf));
	}
	(void) signo;
}

void
pg_signals_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handle_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

bool
pg_interrupted(void)
{
	return interrupted != 0;
}

void
pg_cancel_register(PGconn *conn)
{
	PGcancel   *c = PQgetCancel(conn);

	if (c == NULL)
		return;
	for (int i = 0; i < MAX_CANCEL; i++)
	{
		PGconn	   *expected = NULL;

		if (atomic_compare_exchange_strong(&cancel_conns[i], &expected, conn))
		{
			atomic_store(&cancel_slots[i], c);
			return;
		}
	}
	PQfreeCancel(c);			/* registry full: this one just won't be cancelled */
}

void
pg_cancel_unregister(PGconn *conn)
{
	for (int i = 0; i < MAX_CANCEL; i++)
	{
		if (atomic_load(&cancel_conns[i]) == conn)
		{
			PGcancel   *c = atomic_exchange(&cancel_slots[i], NULL);

			atomic_store(&cancel_conns[i], NULL);
			PQfreeCancel(c);
			return;
		}
	}
}

void
pg_finish(PGconn *conn)
{
	if (conn == NULL)
		return;
	pg_cancel_unregister(conn);
	PQfinish(conn);
}

/* A text[] literal of the strings in l, for a query parameter. Owned. */
char *
pg_text_array(const StrList *l)
{
	StrBuf		sb;

	strbuf_init(&sb);
	strbuf_addch(&sb, '{');
	for (int i = 0; i < l->n; i++)
	{
		if (i > 0)
			strbuf_addch(&sb, ',');
		strbuf_addch(&sb, '"');
		for (const char *p = l->items[i]; *p; p++)
		{
			if (*p == '"' || *p == '\\')
				strbuf_addch(&sb, '\\');
			strbuf_addch(&sb, *p);
		}
		strbuf_addch(&sb, '"');
	}
	strbuf_addch(&sb, '}');
	return strbuf_detach(&sb);
}
