/*
 * pgsql.c: libpq helpers (see pgsql.h).
 */
#include "pgsql.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/*
 * TCP settings every connection gets unless its conninfo sets them: a peer
 * that vanishes without a reset (firewall drop, failover) is noticed within
 * about a minute instead of the kernel's hours. Unix sockets ignore them.
 */
typedef struct PgTcpDefault
{
	const char *key;
	const char *val;
} PgTcpDefault;

static const PgTcpDefault PG_TCP_DEFAULTS[] = {
	{"keepalives", "1"},
	{"keepalives_idle", "30"},	/* seconds idle before the first probe */
	{"keepalives_interval", "10"},	/* seconds between probes */
	{"keepalives_count", "3"},	/* unanswered probes before the drop */
	{"tcp_user_timeout", "60000"},	/* ms sent data may stay unacknowledged */
	{NULL, NULL}
};

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
	const char *keys[12];
	const char *vals[12];
	int			i = 0;
	PGconn	   *conn;
	PGresult   *res;

	/*
	 * Before dbname, so the user's own settings win: libpq takes the last
	 * value of a keyword, and dbname expands into the user's conninfo.
	 */
	keys[i] = "connect_timeout";
	vals[i++] = "10";
	for (const PgTcpDefault *d = PG_TCP_DEFAULTS; d->key; d++)
	{
		keys[i] = d->key;
		vals[i++] = d->val;
	}
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
	if (kind == PG_CONN_ADMIN)
		return conn;			/* SHOW, PAUSE, RESUME, RELOAD: no SQL to set up */
	res = pg_execute(conn, SESSION_SETUP_SQL, 0, NULL);
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

/* The connection this thread gave up last (pg_abandon) and why. */
static _Thread_local PGconn *abandoned_conn;
static _Thread_local const char *abandoned_why;

char *
pg_result_error_text(const PGresult *res, PGconn *conn)
{
	StrBuf		sb;
	const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
	const char *hint = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL;

	strbuf_init(&sb);
	if (conn && conn == abandoned_conn && abandoned_why && PQstatus(conn) == CONNECTION_BAD)
		strbuf_addstr(&sb, abandoned_why);
	else if (primary)
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

	res = pg_execute(conn, sql, nparams, params);
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
	PGresult   *res = pg_execute(conn, sql, 0, NULL);
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

char *
pg_conninfo_for_child(const char *conninfo)
{
	char	   *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
	char	   *safe;
	StrBuf		sb;

	if (opts == NULL)
	{
		PQfreemem(err);
		return NULL;
	}
	safe = pg_conninfo_safe(conninfo);
	strbuf_init(&sb);
	strbuf_addstr(&sb, safe ? safe : "");
	for (const PgTcpDefault *d = PG_TCP_DEFAULTS; d->key; d++)
	{
		bool		set = false;

		for (PQconninfoOption *o = opts; o->keyword; o++)
			if (strcmp(o->keyword, d->key) == 0 && o->val && o->val[0])
				set = true;
		if (!set)
			conninfo_add(&sb, d->key, d->val);
	}
	free(safe);
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
	/* the keepalives ferry's own connections get, where conninfo sets none */
	cc->conninfo = pg_conninfo_for_child(conninfo ? conninfo : "");
	if (cc->conninfo == NULL)
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

PgCaps
pg_caps_for(int v)
{
	PgCaps		c;

	c.version_num = v;
	c.major = v >= 100000 ? v / 10000 : v / 100;
	c.logical_source = v >= PG_MIN_SOURCE_VERSION;
	c.hash_extended = v >= HASH_EXTENDED_MIN_VERSION;
	c.generated_columns = v >= GENERATED_COLUMNS_MIN_VERSION;
	c.partition_root = v >= PARTITION_ROOT_MIN_VERSION;
	c.publish_via_root = v >= PUBLICATION_VIA_ROOT_MIN_VERSION;
	c.logical_messages = v >= PGO_MESSAGES_MIN_VERSION;
	c.tid_range_scan = v >= TID_RANGE_SCAN_MIN_VERSION;
	c.origin_grant = v >= ORIGIN_GRANT_MIN_VERSION;
	c.grant_set_parameter = v >= GRANT_SET_PARAMETER_MIN_VERSION;
	return c;
}

PgCaps
pg_caps(const PGconn *conn)
{
	return pg_caps_for(PQserverVersion(conn));
}

/* One statement's single value (owned), or NULL with *err (owned). */
static char *
probe_value(PGconn *conn, const char *sql, char **err)
{
	PGresult   *res = pg_execute(conn, sql, 0, NULL);
	char	   *v = NULL;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQnfields(res) == 1)
		v = xstrdup(PQgetvalue(res, 0, 0));
	else if (PQresultStatus(res) == PGRES_COMMAND_OK)
		v = xstrdup("");
	else
		*err = pg_result_error_text(res, conn);
	PQclear(res);
	return v;
}

int
pg_session_pooled(PGconn *conn, const char *conninfo, const char *label, char **why)
{
	PGconn	   *other;
	char	   *err = NULL;
	int			pooled = 0;

	*why = NULL;
	other = pg_connect(conninfo, label, PG_CONN_SQL, &err);
	if (other == NULL)
	{
		*why = xasprintf("a second session could not connect: %s", err ? err : "unknown error");
		free(err);
		return -1;
	}
	/* three rounds: a pool with idle server sessions may hand out another one once */
	for (int round = 0; round < 3 && pooled == 0; round++)
	{
		char	   *mine = probe_value(conn, "SELECT pg_catalog.pg_backend_pid()", &err);
		char	   *begin = mine ? probe_value(other, "BEGIN", &err) : NULL;
		char	   *theirs = begin ? probe_value(other, "SELECT pg_catalog.pg_backend_pid()", &err) : NULL;
		char	   *again = theirs ? probe_value(conn, "SELECT pg_catalog.pg_backend_pid()", &err) : NULL;

		if (mine && !begin && err && strstr(err, "pooling"))
			pooled = 1;			/* PgBouncer's statement mode refuses BEGIN */
		else if (again == NULL)
			pooled = -1;
		else if (strcmp(mine, theirs) == 0 || strcmp(mine, again) != 0)
			pooled = 1;
		if (pooled == 1)
			*why = xstrdup(PG_POOLED_WHY);
		else if (pooled < 0)
			*why = xasprintf("the session probe failed: %s", err ? err : "unknown error");
		free(mine);
		free(begin);
		free(theirs);
		free(again);
		free(err);
		err = NULL;
		if (pooled == 0 && !pg_exec_quiet(other, "COMMIT", &err))
		{
			pooled = -1;
			*why = xasprintf("the session probe failed: %s", err ? err : "unknown error");
			free(err);
		}
	}
	pg_finish(other);
	return pooled;
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
 * Stopping. The signal handler only records the stop (flag, time) and
 * wakes the stop watcher through a pipe (write() is async-signal-safe);
 * it opens no connection (STYLE.md: flags-only handlers). The watcher
 * thread then sends a cancel request for every registered connection, so a
 * query that a server still serves ends with "canceling statement due to
 * user request". A server that does not answer cannot hold ferry: every
 * wait in this file (pg_wait_socket and what is built on it) gives up
 * PG_STOP_GRACE_MS after the stop, or after its own start when it began
 * after the stop (clean-up statements), and abandons the connection.
 *
 * Registry slots are atomic pointers: any thread registers and unregisters
 * its own connections; only the watcher reads the PGcancel objects, under
 * registry_lock, which unregistering takes too (so none is freed in use).
 */
#define MAX_CANCEL 64
static PGcancel *cancel_slots[MAX_CANCEL];
static PGconn *cancel_conns[MAX_CANCEL];
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static volatile sig_atomic_t interrupted = 0;
static _Atomic int64_t stop_at_ms = 0;
static int stop_pipe[2] = {-1, -1};

int64_t
pg_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
handle_signal(int signo)
{
	int			save_errno = errno;

	if (!interrupted)
	{
		atomic_store(&stop_at_ms, pg_now_ms());	/* clock_gettime is signal-safe */
		interrupted = 1;
		if (stop_pipe[1] >= 0)
			(void) !write(stop_pipe[1], "x", 1);
	}
	errno = save_errno;
	(void) signo;
}

/* The stop watcher: waits for the handler's byte, then cancels. */
static void *
stop_watcher(void *arg)
{
	char		c;
	char		errbuf[256];

	PGcancel   *mine[MAX_CANCEL];

	(void) arg;
	while (read(stop_pipe[0], &c, 1) < 0 && errno == EINTR)
		;
	/* take the cancel objects: a server that does not answer holds only us */
	pthread_mutex_lock(&registry_lock);
	for (int i = 0; i < MAX_CANCEL; i++)
	{
		mine[i] = cancel_slots[i];
		cancel_slots[i] = NULL;
	}
	pthread_mutex_unlock(&registry_lock);
	for (int i = 0; i < MAX_CANCEL; i++)
		if (mine[i])
		{
			(void) PQcancel(mine[i], errbuf, sizeof(errbuf));
			PQfreeCancel(mine[i]);
		}
	return NULL;
}

void
pg_signals_install(void)
{
	struct sigaction sa;
	pthread_t	th;

	if (stop_pipe[0] < 0 && pipe(stop_pipe) == 0)
	{
		if (pthread_create(&th, NULL, stop_watcher, NULL) == 0)
			pthread_detach(th);
	}
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
	pthread_mutex_lock(&registry_lock);
	for (int i = 0; i < MAX_CANCEL; i++)
		if (cancel_conns[i] == NULL)
		{
			cancel_conns[i] = conn;
			cancel_slots[i] = c;
			c = NULL;
			break;
		}
	pthread_mutex_unlock(&registry_lock);
	PQfreeCancel(c);			/* registry full: this one just won't be cancelled */
}

void
pg_cancel_unregister(PGconn *conn)
{
	PGcancel   *c = NULL;

	pthread_mutex_lock(&registry_lock);
	for (int i = 0; i < MAX_CANCEL; i++)
		if (cancel_conns[i] == conn)
		{
			c = cancel_slots[i];
			cancel_slots[i] = NULL;
			cancel_conns[i] = NULL;
			break;
		}
	pthread_mutex_unlock(&registry_lock);
	PQfreeCancel(c);
}

void
pg_finish(PGconn *conn)
{
	if (conn == NULL)
		return;
	pg_cancel_unregister(conn);
	if (abandoned_conn == conn)
		abandoned_conn = NULL;
	PQfinish(conn);
}

/* A cancel request sent from its own thread: connecting cannot hold us. */
static void *
cancel_thread(void *arg)
{
	PGcancel   *c = arg;
	char		errbuf[256];

	(void) PQcancel(c, errbuf, sizeof(errbuf));
	PQfreeCancel(c);
	return NULL;
}

void
pg_cancel_async(PGconn *conn)
{
	PGcancel   *c = PQgetCancel(conn);
	pthread_t	th;

	if (c == NULL)
		return;
	if (pthread_create(&th, NULL, cancel_thread, c) == 0)
		pthread_detach(th);
	else
		PQfreeCancel(c);
}

/* ------------------------------------------------------------------ */
/* waits that watch the stop flag                                       */

PgWait
pg_wait_socket(PGconn *conn, bool for_write, int64_t deadline_ms)
{
	int			fd = PQsocket(conn);
	int64_t		start = pg_now_ms();

	if (fd < 0)
		return PG_WAIT_READY;	/* libpq reports the broken connection */
	for (;;)
	{
		int64_t		now = pg_now_ms();
		int64_t		stop = atomic_load(&stop_at_ms);
		int64_t		limit = deadline_ms;
		bool		stopping = false;
		struct pollfd pfd = {fd, (short) (POLLIN | (for_write ? POLLOUT : 0)), 0};
		int			rc;

		if (interrupted && stop > 0)
		{
			int64_t		grace = (stop > start ? stop : start) + PG_STOP_GRACE_MS;

			if (grace < limit)
			{
				limit = grace;
				stopping = true;
			}
		}
		if (now >= limit)
			return stopping ? PG_WAIT_STOPPED : PG_WAIT_TIMEOUT;
		/* slices of 100 ms: a stop is seen that soon */
		rc = poll(&pfd, 1, limit - now < 100 ? (int) (limit - now) : 100);
		if (rc > 0 || (rc < 0 && errno != EINTR))
			return PG_WAIT_READY;
	}
}

void
pg_abandon(PGconn *conn, const char *why)
{
	int			fd = PQsocket(conn);

	if (fd < 0)
		return;
	abandoned_conn = conn;
	abandoned_why = why;
	/* libpq then reads end-of-file and marks the connection bad */
	(void) shutdown(fd, SHUT_RDWR);
	(void) PQconsumeInput(conn);
}

/* Why a wait gave up, for pg_abandon (static strings). */
static const char *
wait_failure(PgWait w)
{
	return w == PG_WAIT_STOPPED
		? "ferry is stopping and the server did not answer in time; connection closed"
		: "no answer from the server in time; connection closed";
}

/*
 * Send what libpq holds for conn, waiting on the socket. False when the
 * connection broke or the wait gave up (then abandoned).
 */
static bool
flush_until(PGconn *conn, int64_t deadline_ms)
{
	for (;;)
	{
		int			f = PQflush(conn);
		PgWait		w;

		if (f <= 0)
			return f == 0;
		w = pg_wait_socket(conn, true, deadline_ms);
		if (w != PG_WAIT_READY)
		{
			pg_abandon(conn, wait_failure(w));
			return false;
		}
		/* read too: the server may be sending an error instead of reading */
		if (PQconsumeInput(conn) != 1)
			return false;
	}
}

PGresult *
pg_get_result_until(PGconn *conn, int64_t deadline_ms)
{
	if (PQisnonblocking(conn) && !flush_until(conn, deadline_ms))
		return PQgetResult(conn);	/* the error result, then NULL */
	while (PQisBusy(conn) && PQstatus(conn) == CONNECTION_OK)
	{
		PgWait		w = pg_wait_socket(conn, false, deadline_ms);

		if (w != PG_WAIT_READY)
		{
			pg_abandon(conn, wait_failure(w));
			break;
		}
		if (PQconsumeInput(conn) != 1)
			break;
	}
	return PQgetResult(conn);
}

PGresult *
pg_get_result(PGconn *conn)
{
	return pg_get_result_until(conn, INT64_MAX);
}

static bool
is_copy_status(ExecStatusType st)
{
	return st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH;
}

PGresult *
pg_execute(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
	PGresult   *res;
	PGresult   *last = NULL;
	bool		was_nonblocking = PQisnonblocking(conn);
	int			sent;

	/* as PQexec: results left from before are discarded */
	while ((res = pg_get_result(conn)) != NULL)
	{
		ExecStatusType st = PQresultStatus(res);

		PQclear(res);
		if (is_copy_status(st) || PQstatus(conn) != CONNECTION_OK)
			break;				/* PQsendQuery() says what is wrong */
	}
	/* nonblocking while sending, so a server that reads nothing cannot hold us */
	if (!was_nonblocking)
		(void) PQsetnonblocking(conn, 1);
	if (nparams > 0)
		sent = PQsendQueryParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	else
		sent = PQsendQuery(conn, sql);
	if (sent == 1)
		(void) flush_until(conn, INT64_MAX);
	if (sent != 1)
	{
		if (!was_nonblocking && PQstatus(conn) == CONNECTION_OK)
			(void) PQsetnonblocking(conn, 0);
		return PQmakeEmptyPGresult(conn, PGRES_FATAL_ERROR);
	}
	/* as PQexec: the last result, stopping at COPY or a lost connection */
	while ((res = pg_get_result(conn)) != NULL)
	{
		PQclear(last);
		last = res;
		if (is_copy_status(PQresultStatus(res)) || PQstatus(conn) == CONNECTION_BAD)
			break;
	}
	if (!was_nonblocking && PQstatus(conn) == CONNECTION_OK)
		(void) PQsetnonblocking(conn, 0);
	if (last == NULL)
		last = PQmakeEmptyPGresult(conn, PGRES_FATAL_ERROR);
	return last;
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
