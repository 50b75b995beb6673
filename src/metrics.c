/*
 * metrics.c: the metrics registry, its Prometheus rendering, the samples
 * taken from the servers and the HTTP endpoint (see metrics.h).
 */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "log.h"
#include "mem.h"
#include "pgsql.h"

/* seconds from the Unix epoch to PostgreSQL's (2000-01-01) */
#define PG_EPOCH_OFFSET_US (946684800LL * 1000000)

typedef struct TableMetric
{
	char	   *name;			/* "schema.table", owned */
	int64_t		rows;
	int64_t		bytes;
} TableMetric;

/* the registry; `have_*` says a value was ever set, so unknown ones are left out */
static _Atomic uint64_t m_applied_lsn;
static _Atomic int64_t m_commit_time_us;	/* Unix epoch */
static _Atomic int64_t m_changes;
static _Atomic int64_t m_txns;
static _Atomic double m_change_rate;
static _Atomic double m_txn_rate;
static _Atomic uint64_t m_source_lsn;
static _Atomic int64_t m_retained = -1;
static _Atomic int64_t m_reconnects;
static _Atomic int64_t m_unmatched;
static _Atomic int64_t m_source_writes;
static _Atomic bool m_have_applied;
static _Atomic bool m_have_rates;
static int64_t m_started_us;

static pthread_mutex_t m_lock = PTHREAD_MUTEX_INITIALIZER;
static char m_phase[32] = "starting";	/* under m_lock */
static TableMetric *m_tables;	/* under m_lock */
static int	m_ntables;
static int	m_tables_cap;

/* the server */
static struct MHD_Daemon *m_daemon;	/* owns the listening socket */
static char *m_name;

/* phases listed with 0 or 1, so a dashboard sees each series from the start */
static const char *const known_phases[] = {
	"starting", "copying", "indexing", "cloned", "following", "switching", "switched", "rolling_back", "rolled_back",
};

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
metrics_set_phase(const char *phase)
{
	pthread_mutex_lock(&m_lock);
	snprintf(m_phase, sizeof(m_phase), "%s", phase);
	pthread_mutex_unlock(&m_lock);
}

void
metrics_set_applied(uint64_t lsn, int64_t commit_time_pg_us, int64_t changes, int64_t txns)
{
	atomic_store(&m_applied_lsn, lsn);
	if (commit_time_pg_us != 0)
		atomic_store(&m_commit_time_us, commit_time_pg_us + PG_EPOCH_OFFSET_US);
	atomic_store(&m_changes, changes);
	atomic_store(&m_txns, txns);
	atomic_store(&m_have_applied, true);
}

void
metrics_set_rates(double changes_per_second, double txns_per_second)
{
	atomic_store(&m_change_rate, changes_per_second);
	atomic_store(&m_txn_rate, txns_per_second);
	atomic_store(&m_have_rates, true);
}

void
metrics_set_source_lsn(uint64_t lsn)
{
	atomic_store(&m_source_lsn, lsn);
}

void
metrics_set_retained(int64_t bytes)
{
	atomic_store(&m_retained, bytes);
}

void
metrics_add_reconnect(void)
{
	atomic_fetch_add(&m_reconnects, 1);
}

void
metrics_add_unmatched(int64_t n)
{
	if (n > 0)
		atomic_fetch_add(&m_unmatched, n);
}

void
metrics_add_source_writes(int64_t n)
{
	if (n > 0)
		atomic_fetch_add(&m_source_writes, n);
}

/* The table's entry, created if missing. Caller holds m_lock. */
static TableMetric *
table_entry(const char *nspname, const char *relname)
{
	char	   *name = xasprintf("%s.%s", nspname, relname);

	for (int i = 0; i < m_ntables; i++)
	{
		if (strcmp(m_tables[i].name, name) == 0)
		{
			free(name);
			return &m_tables[i];
		}
	}
	if (m_ntables == m_tables_cap)
	{
		m_tables_cap = m_tables_cap ? m_tables_cap * 2 : 64;
		m_tables = xrealloc(m_tables, (size_t) m_tables_cap * sizeof(TableMetric));
	}
	m_tables[m_ntables].name = name;
	m_tables[m_ntables].rows = 0;
	m_tables[m_ntables].bytes = 0;
	return &m_tables[m_ntables++];
}

void
metrics_table_add(const char *nspname, const char *relname, int64_t rows, int64_t bytes)
{
	TableMetric *t;

	pthread_mutex_lock(&m_lock);
	t = table_entry(nspname, relname);
	t->rows += rows;
	t->bytes += bytes;
	pthread_mutex_unlock(&m_lock);
}

void
metrics_table_set(const char *nspname, const char *relname, int64_t rows, int64_t bytes)
{
	TableMetric *t;

	pthread_mutex_lock(&m_lock);
	t = table_entry(nspname, relname);
	t->rows = rows;
	t->bytes = bytes;
	pthread_mutex_unlock(&m_lock);
}

void
metrics_reset(void)
{
	pthread_mutex_lock(&m_lock);
	for (int i = 0; i < m_ntables; i++)
		free(m_tables[i].name);
	free(m_tables);
	m_tables = NULL;
	m_ntables = m_tables_cap = 0;
	snprintf(m_phase, sizeof(m_phase), "starting");
	pthread_mutex_unlock(&m_lock);
	atomic_store(&m_applied_lsn, 0);
	atomic_store(&m_commit_time_us, 0);
	atomic_store(&m_changes, 0);
	atomic_store(&m_txns, 0);
	atomic_store(&m_change_rate, 0.0);
	atomic_store(&m_txn_rate, 0.0);
	atomic_store(&m_source_lsn, 0);
	atomic_store(&m_retained, -1);
	atomic_store(&m_reconnects, 0);
	atomic_store(&m_unmatched, 0);
	atomic_store(&m_source_writes, 0);
	atomic_store(&m_have_applied, false);
	atomic_store(&m_have_rates, false);
}

/* --- rendering ------------------------------------------------------- */

/* A label value: backslash, double quote and newline escaped. */
static void
add_label_value(StrBuf *sb, const char *v)
{
	for (; *v; v++)
	{
		if (*v == '\\' || *v == '"')
		{
			strbuf_addch(sb, '\\');
			strbuf_addch(sb, *v);
		}
		else if (*v == '\n')
			strbuf_addstr(sb, "\\n");
		else
			strbuf_addch(sb, *v);
	}
}

static void
add_header(StrBuf *sb, const char *metric, const char *type, const char *help)
{
	strbuf_addf(sb, "# HELP %s %s\n# TYPE %s %s\n", metric, help, metric, type);
}

/* `metric{migration="name"[,label="value"]} ` and the caller adds the value */
static void
add_series(StrBuf *sb, const char *metric, const char *name, const char *label, const char *value)
{
	strbuf_addf(sb, "%s{migration=\"", metric);
	add_label_value(sb, name);
	if (label)
	{
		strbuf_addf(sb, "\",%s=\"", label);
		add_label_value(sb, value);
	}
	strbuf_addstr(sb, "\"} ");
}

static void
add_int(StrBuf *sb, const char *metric, const char *type, const char *help, const char *name, long long v)
{
	add_header(sb, metric, type, help);
	add_series(sb, metric, name, NULL, NULL);
	strbuf_addf(sb, "%lld\n", v);
}

static void
add_real(StrBuf *sb, const char *metric, const char *help, const char *name, double v)
{
	add_header(sb, metric, "gauge", help);
	add_series(sb, metric, name, NULL, NULL);
	strbuf_addf(sb, "%.3f\n", v);
}

char *
metrics_render(const char *name)
{
	StrBuf		sb;
	bool		have_applied = atomic_load(&m_have_applied);
	uint64_t	applied = atomic_load(&m_applied_lsn);
	uint64_t	source = atomic_load(&m_source_lsn);
	int64_t		commit = atomic_load(&m_commit_time_us);
	int64_t		retained = atomic_load(&m_retained);
	bool		current_known = false;

	strbuf_init(&sb);
	add_header(&sb, "ferry_info", "gauge", "The running ferry: its version and migration.");
	add_series(&sb, "ferry_info", name, "version", FERRY_VERSION);
	strbuf_addstr(&sb, "1\n");
	add_int(&sb, "ferry_start_time_seconds", "gauge", "When this ferry process started (Unix time).", name,
			(long long) (m_started_us / 1000000));

	pthread_mutex_lock(&m_lock);
	add_header(&sb, "ferry_phase", "gauge", "The migration's phase: 1 for the current one, 0 for the others.");
	for (size_t i = 0; i < sizeof(known_phases) / sizeof(known_phases[0]); i++)
	{
		add_series(&sb, "ferry_phase", name, "phase", known_phases[i]);
		strbuf_addf(&sb, "%d\n", strcmp(m_phase, known_phases[i]) == 0);
		current_known |= strcmp(m_phase, known_phases[i]) == 0;
	}
	if (!current_known)
	{
		add_series(&sb, "ferry_phase", name, "phase", m_phase);
		strbuf_addstr(&sb, "1\n");
	}
	if (m_ntables > 0)
	{
		add_header(&sb, "ferry_table_rows_copied_total", "counter", "Rows copied into the target table by the clone.");
		for (int i = 0; i < m_ntables; i++)
		{
			add_series(&sb, "ferry_table_rows_copied_total", name, "table", m_tables[i].name);
			strbuf_addf(&sb, "%lld\n", (long long) m_tables[i].rows);
		}
		add_header(&sb, "ferry_table_bytes_copied_total", "counter", "Bytes of COPY data streamed into the target table by the clone.");
		for (int i = 0; i < m_ntables; i++)
		{
			add_series(&sb, "ferry_table_bytes_copied_total", name, "table", m_tables[i].name);
			strbuf_addf(&sb, "%lld\n", (long long) m_tables[i].bytes);
		}
	}
	pthread_mutex_unlock(&m_lock);

	if (have_applied)
	{
		add_int(&sb, "ferry_applied_lsn", "gauge", "Source WAL position (LSN as a number) applied on the target.", name,
				(long long) applied);
		if (source > 0)
			add_int(&sb, "ferry_lag_bytes", "gauge", "Source WAL not yet applied on the target: the source's current position minus the applied one.",
					name, source > applied ? (long long) (source - applied) : 0);
		if (commit > 0)
		{
			double		lag = (double) (now_us() - commit) / 1e6;

			add_real(&sb, "ferry_lag_seconds", "Time since the commit on the source of the last applied transaction (heartbeats commit every second).",
					 name, lag > 0 ? lag : 0);
		}
		add_int(&sb, "ferry_changes_applied_total", "counter", "Row changes (insert, update, delete) applied to the target by this process.",
				name, (long long) atomic_load(&m_changes));
		add_int(&sb, "ferry_transactions_applied_total", "counter", "Source transactions applied to the target by this process.",
				name, (long long) atomic_load(&m_txns));
	}
	if (atomic_load(&m_have_rates))
	{
		add_real(&sb, "ferry_apply_changes_per_second", "Row changes applied per second, over the last 10 s.",
				 name, atomic_load(&m_change_rate));
		add_real(&sb, "ferry_apply_transactions_per_second", "Source transactions applied per second, over the last 10 s.",
				 name, atomic_load(&m_txn_rate));
	}
	if (retained >= 0)
		add_int(&sb, "ferry_source_wal_retained_bytes", "gauge", "WAL the migration's slot keeps on the source (current position minus restart_lsn).",
				name, (long long) retained);
	add_int(&sb, "ferry_reconnects_total", "counter", "Times streaming restarted after a lost connection or a schema difference.",
			name, (long long) atomic_load(&m_reconnects));
	add_int(&sb, "ferry_apply_unmatched_total", "counter", "UPDATEs and DELETEs from the source that matched no row on the target (the target diverged; ferry status lists the tables).",
			name, (long long) atomic_load(&m_unmatched));
	add_int(&sb, "ferry_source_writes_after_switch_total", "counter", "Changes committed on the old source after the switchover that reverse replication did not write (they are not on the new primary; ferry status lists them).",
			name, (long long) atomic_load(&m_source_writes));
	add_int(&sb, "ferry_errors_total", "counter", "Errors logged by this process.", name, (long long) log_error_count());
	return strbuf_detach(&sb);
}

/* --- samples from the servers ---------------------------------------- */

static const char SOURCE_LSN_SQL[] = "SELECT pg_catalog.pg_current_wal_lsn()::text";
static const char RETAINED_SQL[] =
	"SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), restart_lsn)::bigint"
	"  FROM pg_catalog.pg_replication_slots WHERE slot_name = $1";
static const char COPY_STATE_SQL[] =
	"SELECT p.nspname, p.relname, COALESCE(sum(ci.rows), 0), COALESCE(sum(ci.bytes), 0)"
	"  FROM ferry.copy_plan p LEFT JOIN ferry.copy_item ci"
	"    ON ci.migration = p.migration AND ci.nspname = p.nspname AND ci.relname = p.relname"
	" WHERE p.migration = $1 GROUP BY 1, 2 ORDER BY 1, 2";

void
metrics_poll_source(PGconn *src, const char *slot)
{
	static int64_t last_lsn,
				last_retained;
	int64_t		now = now_us();
	PGresult   *res;

	if (m_daemon == NULL || src == NULL || PQstatus(src) != CONNECTION_OK)
		return;
	if (now - last_lsn >= METRICS_LAG_POLL_MS * 1000LL)
	{
		uint64_t	lsn;

		last_lsn = now;
		res = pg_execute(src, SOURCE_LSN_SQL, 0, NULL);
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
			pg_lsn_parse(PQgetvalue(res, 0, 0), &lsn))
			metrics_set_source_lsn(lsn);
		PQclear(res);
	}
	if (now - last_retained >= METRICS_RETAINED_POLL_MS * 1000LL)
	{
		const char *params[1] = {slot};

		last_retained = now;
		res = pg_execute(src, RETAINED_SQL, 1, params);
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
			metrics_set_retained(strtoll(PQgetvalue(res, 0, 0), NULL, 10));
		PQclear(res);
	}
}

void
metrics_load_copy_state(PGconn *tgt, const char *name)
{
	const char *params[1] = {name};
	PGresult   *res;

	if (tgt == NULL || PQstatus(tgt) != CONNECTION_OK)
		return;
	res = pg_execute(tgt, COPY_STATE_SQL, 1, params);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQnfields(res) == 4)
		for (int i = 0; i < PQntuples(res); i++)
			metrics_table_set(PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
							  strtoll(PQgetvalue(res, i, 2), NULL, 10), strtoll(PQgetvalue(res, i, 3), NULL, 10));
	PQclear(res);
}

/* --- the HTTP endpoint ----------------------------------------------- */

bool
metrics_parse_listen(const char *spec, char *host, size_t hostsize, int *port, char **errmsg)
{
	const char *colon;
	const char *p;
	char	   *end;
	long		v;
	size_t		hlen;
	const char *h;

	if (spec == NULL || *spec == '\0')
	{
		*errmsg = xstrdup("it is empty");
		return false;
	}
	if (spec[0] == '[')
	{
		const char *close = strchr(spec, ']');

		if (close == NULL || close[1] != ':')
		{
			*errmsg = xstrdup("an IPv6 address is written [ADDR]:PORT");
			return false;
		}
		h = spec + 1;
		hlen = (size_t) (close - h);
		p = close + 2;
	}
	else if ((colon = strrchr(spec, ':')) != NULL)
	{
		if (strchr(spec, ':') != colon)
		{
			*errmsg = xstrdup("an IPv6 address is written [ADDR]:PORT");
			return false;
		}
		h = spec;
		hlen = (size_t) (colon - spec);
		p = colon + 1;
	}
	else
	{
		h = "";
		hlen = 0;
		p = spec;
	}
	errno = 0;
	v = strtol(p, &end, 10);
	if (*p == '\0' || *end != '\0' || errno != 0 || v < 1 || v > 65535)
	{
		*errmsg = xasprintf("the port must be a number from 1 to 65535, not \"%s\"", p);
		return false;
	}
	if (hlen == 0)
	{
		h = METRICS_DEFAULT_ADDR;
		hlen = strlen(h);
	}
	if (hlen >= hostsize)
	{
		*errmsg = xstrdup("the address is too long");
		return false;
	}
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*port = (int) v;
	return true;
}

static enum MHD_Result
handle_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
			   const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	unsigned	status;
	char	   *body;

	(void) cls;
	(void) version;
	(void) upload_data;
	(void) con_cls;
	if (*upload_data_size != 0)
	{
		*upload_data_size = 0;	/* a body we do not read */
		return MHD_YES;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
	{
		body = xstrdup("only GET is served\n");
		status = MHD_HTTP_METHOD_NOT_ALLOWED;
	}
	else if (strcmp(url, "/metrics") == 0)
	{
		body = metrics_render(m_name);
		status = MHD_HTTP_OK;
	}
	else
	{
		body = xstrdup("not found: the metrics are at /metrics\n");
		status = MHD_HTTP_NOT_FOUND;
	}
	resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL)
	{
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
							status == MHD_HTTP_OK ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/*
 * Bind the listening socket ourselves (rather than in libmicrohttpd) so a
 * failure has its errno and becomes one line with the fix.
 */
bool
metrics_start(const char *spec, const char *name)
{
	char		host[256];
	char		portstr[16];
	int			port;
	char	   *err = NULL;
	struct addrinfo hints,
			   *ai = NULL;
	int			rc;
	int			one = 1;
	int			fd = -1;

	if (!metrics_parse_listen(spec, host, sizeof(host), &port, &err))
	{
		log_error("invalid --metrics-listen \"%s\": %s. Fix: use ADDR:PORT, e.g. 127.0.0.1:9187, or :9187", spec, err);
		free(err);
		return false;
	}
	snprintf(portstr, sizeof(portstr), "%d", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	if ((rc = getaddrinfo(host, portstr, &hints, &ai)) != 0)
	{
		log_error("invalid --metrics-listen \"%s\": could not resolve \"%s\": %s. Fix: use a numeric address such as 127.0.0.1", spec, host, gai_strerror(rc));
		return false;
	}
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0 ||
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
		bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
		listen(fd, 16) != 0)
	{
		int			e = errno;

		log_error("could not listen on %s port %d for --metrics-listen: %s. Fix: %s", host, port, strerror(e),
				  e == EADDRINUSE ? "choose a free port, or stop what listens there (ss -ltnp shows it)"
				  : e == EADDRNOTAVAIL ? "use an address of this machine, such as 127.0.0.1"
				  : e == EACCES ? "use a port above 1023"
				  : "check the address and port");
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return false;
	}
	freeaddrinfo(ai);
	m_started_us = now_us();
	free(m_name);
	m_name = xstrdup(name);
	m_daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL,
								0, NULL, NULL, handle_request, NULL,
								MHD_OPTION_LISTEN_SOCKET, fd,
								MHD_OPTION_CONNECTION_LIMIT, (unsigned int) 32,
								MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) 10,
								MHD_OPTION_END);
	if (m_daemon == NULL)
	{
		log_error("could not start the metrics server on %s port %d. Fix: run without --metrics-listen, and report this", host, port);
		close(fd);				/* still single-threaded: no other owner of this number */
		return false;
	}
	log_info("serving metrics at http://%s%s%s:%d/metrics", strchr(host, ':') ? "[" : "", host,
			 strchr(host, ':') ? "]" : "", port);
	return true;
}

void
metrics_stop(void)
{
	/* this also closes the listening socket (libmicrohttpd 0.9.75 does) */
	if (m_daemon)
		MHD_stop_daemon(m_daemon);
	m_daemon = NULL;
	free(m_name);
	m_name = NULL;
}
