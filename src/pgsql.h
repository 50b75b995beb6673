/*
 * pgsql.h: libpq helpers shared by every stage.
 *
 * Conventions (STYLE.md 7): values are passed as parameters or quoted with
 * pg_quote_ident()/pg_quote_literal() (libpq's escaping), never pasted raw; every connection gets
 * fallback_application_name=ferry, an empty search_path and settings that make
 * text output exact and portable (ISO dates, UTC, extra_float_digits=3),
 * and TCP keepalives plus tcp_user_timeout unless its conninfo sets them.
 * Every wait for a result polls the socket and watches the stop flag (see
 * "Waiting and stopping" below); use pg_execute(), not PQexec().
 * Errors are logged once, here, on one line with the server's detail and hint;
 * callers just return false.
 */
#ifndef FERRY_PGSQL_H
#define FERRY_PGSQL_H

#include <stdbool.h>
#include <stdint.h>
#include <libpq-fe.h>

#include "pgversion.h"

#include "mem.h"

typedef enum PgConnKind
{
	PG_CONN_SQL,				/* an ordinary session */
	PG_CONN_REPLICATION,		/* replication=database: walsender + simple SQL */
	PG_CONN_ADMIN,				/* a PgBouncer admin console: its own commands only, no session set-up */
} PgConnKind;

/*
 * Connect to `conninfo` (a conninfo string or URI). `label` ("source",
 * "target") names the server in messages. On failure returns NULL and
 * either logs one line with the reason and the fix or, if errtext is not
 * NULL, hands the reason to the caller (owned) to report instead.
 */
PGconn	   *pg_connect(const char *conninfo, const char *label, PgConnKind kind, char **errtext);

/* The fix to suggest for a libpq connection error message (static string). */
const char *pg_connect_fix(const char *errmsg);

/*
 * Run `sql` with text parameters. Returns the result when it is
 * PGRES_TUPLES_OK or PGRES_COMMAND_OK (caller PQclear()s it); otherwise logs
 * "could not <what>: <error>" and returns NULL.
 */
PGresult   *pg_query(PGconn *conn, const char *what, const char *sql,
					 int nparams, const char *const *params);
/* pg_query() for a statement whose result is not needed. */
bool		pg_exec(PGconn *conn, const char *what, const char *sql);
/* Like pg_exec() but quiet on error: the error text is returned (owned). */
bool		pg_exec_quiet(PGconn *conn, const char *sql, char **errtext);
/*
 * Check a result's shape: `ncols` columns and, unless nrows < 0, exactly
 * `nrows` rows. Logs and returns false otherwise.
 */
bool		pg_check_shape(const PGresult *res, int nrows, int ncols, const char *what);

/* One-line text of an error: primary message, detail, hint. Owned. */
char	   *pg_result_error_text(const PGresult *res, PGconn *conn);

/*
 * Quote a name or a value for SQL text sent on conn: libpq's own
 * PQescapeIdentifier/PQescapeLiteral, which follow the connection's
 * client_encoding (a multibyte character whose trailing byte is a quote or
 * backslash stays one character) and standard_conforming_strings. Owned
 * (free()). NULL, logged, when s is not valid in that encoding (or conn is
 * NULL): callers fail the statement they were building.
 */
char	   *pg_quote_ident(PGconn *conn, const char *ident);
char	   *pg_quote_literal(PGconn *conn, const char *s);
/* A text[] literal of the strings in l, for a query parameter. Owned. */
char	   *pg_text_array(const StrList *l);

/*
 * Secrets are the conninfo options libpq itself marks secret (dispchar
 * '*' in PQconndefaults()/PQconninfoParse(): password, sslpassword and any
 * later one), never a list of our own.
 */
bool		pg_option_is_secret(const PQconninfoOption *o);
/*
 * A conninfo fit for logs and `ps`: the same parameters without any secret
 * (URIs are parsed too). Returns NULL if conninfo does not parse.
 */
char	   *pg_conninfo_safe(const char *conninfo);
/*
 * pg_conninfo_safe() plus the TCP keepalive settings ferry's own
 * connections get, where conninfo does not set them: for pg_dump. Owned;
 * NULL if conninfo does not parse.
 */
char	   *pg_conninfo_for_child(const char *conninfo);
/* Add the values of conninfo's secrets to out; returns how many (0 if it does not parse). */
int			pg_conninfo_secrets(const char *conninfo, StrList *out);

/*
 * A connection for a child program (pg_dump) that shows no secret on its
 * command line: `conninfo` is pg_conninfo_safe()'s, and `env` ("NAME=value",
 * for the child only) carries each secret libpq reads from an environment
 * variable (PGPASSWORD). A secret without one (sslpassword) goes into a 0600
 * service file in `dir` (a private directory), named by PGSERVICEFILE in
 * env and by service=ferry in conninfo; pg_child_conn_release() removes it,
 * so call it on every path once the child has ended. Refused (logged, false)
 * when such a secret cannot travel that way: a conninfo that already names
 * a service (or PGSERVICE is set), or a value a service file cannot hold.
 */
typedef struct PgChildConn
{
	char	   *conninfo;		/* for the command line, owned */
	StrList		env;			/* NAME=value for the child, owned (secret) */
	char	   *service_file;	/* path of the service file, or NULL; owned */
	int			nfile;			/* secrets in it */
} PgChildConn;

bool		pg_child_conn_init(PgChildConn *cc, const char *conninfo, const char *dir, const char *label);
void		pg_child_conn_release(PgChildConn *cc);
/* A short "host:port/dbname" description of a live connection (owned). */
char	   *pg_conn_describe(PGconn *conn);

/*
 * Is conn's every transaction in one server session of its own? Not through
 * a pooler in transaction or statement pooling mode (PgBouncer's, say),
 * where what ferry holds for a session's life (advisory locks, SET,
 * prepared statements) does not hold. A second session from conninfo runs
 * a transaction and reads its server process: through such a pooler it gets
 * the process conn's last statement ran in (PgBouncer hands out the server
 * used last), or conn's next statement runs in another. 1: pooled (said
 * in *why, owned), 0: conn is its own session, -1: the probe failed
 * (*why says why).
 */
#define PG_POOLED_WHY \
	"transaction or statement pooling: ferry's transactions on it run in changing server sessions"
#define PG_POOLED_FIX "point --target at the server itself, or at a PgBouncer entry with pool_mode = session"
int			pg_session_pooled(PGconn *conn, const char *conninfo, const char *label, char **why);

/* LSN text "X/Y" <-> integer. */
bool		pg_lsn_parse(const char *s, uint64_t *lsn);
void		pg_lsn_format(uint64_t lsn, char *buf, size_t size);

/*
 * Waiting and stopping (see the essay in pgsql.c). Every wait for a server
 * polls the socket in slices of 100 ms and watches the stop flag that
 * SIGINT/SIGTERM set: PG_STOP_GRACE_MS after the stop (or after the wait's
 * own start, for a clean-up statement run after it) a wait gives up and the
 * connection is abandoned (closed under libpq, which then reports it
 * broken; pg_result_error_text says why). So ferry ends within a couple
 * of seconds of a stop whatever its servers do.
 */
#define PG_STOP_GRACE_MS 1500

typedef enum PgWait
{
	PG_WAIT_READY,				/* the socket is ready (or broken: libpq will say) */
	PG_WAIT_TIMEOUT,			/* deadline_ms passed */
	PG_WAIT_STOPPED,			/* a stop was requested and its grace is over */
} PgWait;

/* Monotonic clock in milliseconds. */
int64_t		pg_now_ms(void);
/*
 * Wait until conn's socket is readable (or writable, for_write), until
 * deadline_ms (pg_now_ms() time, INT64_MAX = none) or the stop grace.
 */
PgWait		pg_wait_socket(PGconn *conn, bool for_write, int64_t deadline_ms);
/*
 * Give up conn: shut its socket down so that every later libpq call on it
 * fails at once (CONNECTION_BAD); `why` (static) becomes its error text.
 * The caller still pg_finish()es it.
 */
void		pg_abandon(PGconn *conn, const char *why);
/*
 * PQgetResult() that waits on the socket (flushing first on a nonblocking
 * connection) until deadline_ms; on timeout or stop the connection is
 * abandoned and its error result returned. Ownership as PQgetResult().
 */
PGresult   *pg_get_result_until(PGconn *conn, int64_t deadline_ms);
PGresult   *pg_get_result(PGconn *conn);
/*
 * PQexec()/PQexecParams() (text parameters, text results) built on those
 * waits: sending cannot block either. Never NULL; caller PQclear()s.
 */
PGresult   *pg_execute(PGconn *conn, const char *sql, int nparams, const char *const *params);

/*
 * Send a cancel request for conn's query from a thread of its own (detached;
 * a server that does not answer holds only that thread).
 */
void		pg_cancel_async(PGconn *conn);

/* Cancellation: in-flight queries on registered connections are cancelled
 * when SIGINT/SIGTERM arrive (pg_signals_install), by a watcher thread. */
void		pg_signals_install(void);
bool		pg_interrupted(void);
void		pg_cancel_register(PGconn *conn);
void		pg_cancel_unregister(PGconn *conn);
/* Close a connection, unregistering it first; NULL is fine. */
void		pg_finish(PGconn *conn);

#endif
