/*
 * pooler.c: holding the application in its PgBouncers across the switch
 * (see pooler.h for the design).
 */
#include "pooler.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hooks.h"
#include "log.h"
#include "pgsql.h"
#include "pooler_ini.h"

static const char *const SIDE_NAME[2] = {"source", "target"};

/* The endpoint keys ferry sets on an entry, and SHOW DATABASES' columns for them. */
static const char *const ENDPOINT_KEYS[3] = {"host", "port", "dbname"};
static const char *const ENDPOINT_COLUMNS[3] = {"host", "port", "database"};

void
pooler_fleet_init(PoolerFleet *f, const FerryConfig *cfg)
{
	memset(f, 0, sizeof(*f));
	f->cfg = cfg;
	f->n = cfg->n_pgbouncers;
	f->items = f->n ? xcalloc((size_t) f->n, sizeof(Pooler)) : NULL;
	for (int i = 0; i < f->n; i++)
	{
		f->items[i].conf = &cfg->pgbouncers[i];
		f->items[i].label = xasprintf("PgBouncer %d", i + 1);
	}
}

void
pooler_fleet_release(PoolerFleet *f)
{
	for (int i = 0; i < f->n; i++)
	{
		Pooler	   *p = &f->items[i];

		pg_finish(p->conn);
		free(p->database);
		free(p->label);
		free(p->pool_mode);
		free(p->login_retry);
		strlist_free(&p->waiting);
	}
	free(f->items);
	pgbconf_pairs_release(&f->at[0]);
	pgbconf_pairs_release(&f->at[1]);
	memset(f, 0, sizeof(*f));
}

void
pooler_connstr_secrets(const char *connstr, StrList *out)
{
	PgbPairs	p = {0};

	if (connstr && pgbconf_parse_connstr(connstr, &p))
		for (int i = 0; i < p.keys.n; i++)
			if (strcmp(p.keys.items[i], "password") == 0)
				strlist_add(out, p.vals.items[i]);
	pgbconf_pairs_release(&p);
}

/* A column of an admin console result by name (they differ between versions), or NULL. */
static const char *
col(const PGresult *res, int row, const char *name)
{
	int			c = PQfnumber(res, name);

	return c < 0 || PQgetisnull(res, row, c) ? NULL : PQgetvalue(res, row, c);
}

/* The entry name as an admin console word: double-quoted, "" for a quote. Owned. */
static char *
quote_entry(const char *db)
{
	StrBuf		sb;

	strbuf_init(&sb);
	strbuf_addch(&sb, '"');
	for (const char *c = db; *c; c++)
	{
		if (*c == '"')
			strbuf_addch(&sb, '"');
		strbuf_addch(&sb, *c);
	}
	strbuf_addch(&sb, '"');
	return strbuf_detach(&sb);
}

/* p's admin session, (re)connected if needed; NULL (logged) when it cannot be. */
static PGconn *
admin_conn(Pooler *p)
{
	if (p->conn && PQstatus(p->conn) == CONNECTION_OK && PQtransactionStatus(p->conn) == PQTRANS_IDLE)
		return p->conn;
	pg_finish(p->conn);
	p->conn = pg_connect(p->conf->admin, p->label, PG_CONN_ADMIN, NULL);
	if (p->conn)
	{
		char	   *l = xasprintf("PgBouncer %s:%s", PQhost(p->conn), PQport(p->conn));

		free(p->label);
		p->label = l;
	}
	return p->conn;
}

/*
 * cmd on p's admin session *c. A session that died while ferry held it
 * (PgBouncer restarted, a network blip, an idle timeout) shows only when it
 * is used: then reconnect and send cmd once more. If the first one did
 * run on a PgBouncer that lives on (a PAUSE whose answer was lost), the
 * second fails ("already paused") and the switchover stops as before; a
 * restarted PgBouncer kept nothing of it.
 */
static PGresult *
admin_execute(Pooler *p, PGconn **c, const char *cmd)
{
	PGresult   *res = pg_execute(*c, cmd, 0, NULL);

	if (PQresultStatus(res) == PGRES_FATAL_ERROR && PQstatus(*c) == CONNECTION_BAD)
	{
		log_warn("%s: its admin session was lost (PgBouncer restarted?); reconnecting to run %s", p->label, cmd);
		PQclear(res);
		*c = admin_conn(p);
		res = *c ? pg_execute(*c, cmd, 0, NULL) : NULL;
	}
	return res;
}

/* Run an admin command on p; the result (caller PQclear()s) or NULL, logged. */
static PGresult *
admin_query(Pooler *p, const char *what, const char *cmd)
{
	PGconn	   *c = admin_conn(p);
	PGresult   *res;

	if (c == NULL)
		return NULL;
	res = admin_execute(p, &c, cmd);
	if (c == NULL)
		return NULL;			/* could not reconnect (logged) */
	if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		char	   *e = pg_result_error_text(res, c);

		log_error("%s: could not %s: %s", p->label, what, e);
		free(e);
		PQclear(res);
		return NULL;
	}
	return res;
}

/* "PAUSE", "RESUME" (and the like) with p's entry: true when done; else the error text in *err (owned) if err. */
static bool
admin_entry_command(Pooler *p, const char *verb, char **err)
{
	char	   *q = quote_entry(p->database);
	char	   *cmd = xasprintf("%s %s", verb, q);
	PGconn	   *c = admin_conn(p);
	PGresult   *res = c ? admin_execute(p, &c, cmd) : NULL;
	bool		ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;

	if (!ok && err)
		*err = c ? pg_result_error_text(res, c) : xstrdup("no admin session");
	PQclear(res);
	free(cmd);
	free(q);
	return ok;
}

/* The SHOW DATABASES row of p's entry: res (caller PQclear()s) and its row, or -1 (logged). */
static int
entry_row(Pooler *p, PGresult **out)
{
	PGresult   *res = admin_query(p, "list its databases", "SHOW DATABASES");

	*out = res;
	if (res == NULL)
		return -1;
	for (int i = 0; i < PQntuples(res); i++)
		if (col(res, i, "name") && strcmp(col(res, i, "name"), p->database) == 0)
			return i;
	return -1;
}

/* "host:port/dbname" of a SHOW DATABASES row, owned. */
static char *
row_endpoint(const PGresult *res, int row)
{
	const char *h = col(res, row, "host");

	return xasprintf("%s:%s/%s", h && *h ? h : "(default socket)", col(res, row, "port") ? col(res, row, "port") : "?",
					 col(res, row, "database") ? col(res, row, "database") : "?");
}

/* Does the SHOW DATABASES row show the endpoint keys of `want`? */
static bool
row_points_at(const PGresult *res, int row, const PgbPairs *want)
{
	for (int k = 0; k < 3; k++)
	{
		const char *w = pgbconf_pairs_get(want, ENDPOINT_KEYS[k]);
		const char *have = col(res, row, ENDPOINT_COLUMNS[k]);

		if (w && (have == NULL || strcmp(w, have) != 0))
			return false;
	}
	return true;
}

/* "host:port/dbname" of an endpoint, owned. */
static char *
endpoint_text(const PgbPairs *e)
{
	const char *h = pgbconf_pairs_get(e, "host");
	const char *pt = pgbconf_pairs_get(e, "port");
	const char *d = pgbconf_pairs_get(e, "dbname");

	return xasprintf("%s:%s/%s", h ? h : "(as before)", pt ? pt : "(as before)", d ? d : "(as before)");
}

/*
 * Where a side is, as the entries should name it: --pgbouncer-SIDE if
 * given (its host, port and dbname), else the server as ferry reaches it.
 */
static bool
side_endpoint(PgbPairs *out, const char *given, const char *option, PGconn *conn)
{
	if (given)
	{
		PgbPairs	all = {0};
		bool		ok = pgbconf_parse_connstr(given, &all);

		for (int k = 0; ok && k < 3; k++)
			if (pgbconf_pairs_get(&all, ENDPOINT_KEYS[k]))
				pgbconf_pairs_set(out, ENDPOINT_KEYS[k], pgbconf_pairs_get(&all, ENDPOINT_KEYS[k]));
		if (ok && out->keys.n == 0)
			ok = false;
		if (!ok)
			log_error("--%s is not a PgBouncer connection string with host=, port= or dbname=. Fix: write it as the [databases] entry should read, e.g. host=10.0.0.6 port=5432 dbname=app",
					  option);
		pgbconf_pairs_release(&all);
		return ok;
	}
	pgbconf_pairs_set(out, "host", PQhost(conn));
	pgbconf_pairs_set(out, "port", PQport(conn));
	pgbconf_pairs_set(out, "dbname", PQdb(conn));
	return true;
}

/* A SHOW CONFIG setting of p, owned, or NULL. */
static char *
config_value(Pooler *p, const char *key)
{
	PGresult   *res = admin_query(p, "read its settings", "SHOW CONFIG");
	char	   *v = NULL;

	for (int i = 0; res && i < PQntuples(res); i++)
		if (col(res, i, "key") && strcmp(col(res, i, "key"), key) == 0 && col(res, i, "value"))
			v = xstrdup(col(res, i, "value"));
	PQclear(res);
	return v;
}

/*
 * Other entries of p that lead to the same server database (a read-only
 * entry, one per user) are not paused unless the fleet lists them too: the
 * freeze then ends their server connections, and their clients get errors.
 * Warned about, with the fix.
 */
static void
same_database_entries(const PoolerFleet *f, const Pooler *p, const PGresult *res, int row)
{
	for (int i = 0; i < PQntuples(res); i++)
	{
		const char *name = col(res, i, "name");
		bool		same = true,
					held = false;

		if (i == row || name == NULL || strcmp(name, "pgbouncer") == 0)
			continue;
		for (int k = 0; k < 3; k++)
		{
			const char *a = col(res, i, ENDPOINT_COLUMNS[k]);
			const char *b = col(res, row, ENDPOINT_COLUMNS[k]);

			if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0))
				same = false;
		}
		for (int j = 0; same && j < f->n; j++)
			held |= f->items[j].database && strcmp(f->items[j].database, name) == 0 &&
				strcmp(f->items[j].conf->admin, p->conf->admin) == 0;
		if (same && !held)
			log_warn("%s: entry %s leads to the same database as %s and is not held: the freeze ends its server connections, so its clients get errors. Fix: hold it too (another pgbouncer: item with the same admin: and database: %s)",
					 p->label, name, p->database, name);
	}
}

/*
 * Keep the pooler's server_login_retry in p->login_retry, so that the
 * RESUME can set it to 0 and back (pooler.h): any login to the server
 * during the hold (min_pool_size's maintenance, or a client connecting
 * after the repoint's RELOAD made PgBouncer fetch the server's parameters
 * again) is cut by the pause, which PgBouncer takes for a failed login. A
 * number from PgBouncer's own SHOW CONFIG, pasted back into SET only if it
 * is one.
 */
static void
check_min_pool(Pooler *p, const PGresult *res, int row)
{
	const char *mp = col(res, row, "min_pool_size");
	char	   *gmp = mp && atoi(mp) > 0 ? NULL : config_value(p, "min_pool_size");
	int			n = mp && atoi(mp) > 0 ? atoi(mp) : gmp ? atoi(gmp) : 0;

	free(gmp);
	free(p->login_retry);
	p->login_retry = config_value(p, "server_login_retry");
	if (p->login_retry && (p->login_retry[0] == '\0' || strspn(p->login_retry, "0123456789.") != strlen(p->login_retry) ||
						   strtod(p->login_retry, NULL) == 0))
	{
		free(p->login_retry);
		p->login_retry = NULL;
	}
	if (p->login_retry)
		log_info("%s: a login to the server during the hold (%s) is cut by the pause and PgBouncer would then wait server_login_retry (%s s) before serving the queue, so ferry sets that to 0 around the RESUME",
				 p->label, n > 0 ? "its min_pool_size, or a client connecting" : "a client connecting", p->login_retry);
}

/* pooler_prepare() for one pooler (its entry name is set). */
static bool
prepare_one(PoolerFleet *f, Pooler *p, PoolerSide from)
{
	const FerryConfig *cfg = f->cfg;
	const char *db = p->database;
	PGresult   *res = NULL;
	char	   *now = NULL,
			   *qwt = NULL;
	int			row;
	bool		ok = false;

	if (!pgbconf_valid_entry_name(db))
	{
		log_error("%s: \"%s\" cannot name a PgBouncer database entry ferry holds. Fix: give the entry the application connects to (database:, --pgbouncer-database)",
				  p->label, db);
		return false;
	}
	if (admin_conn(p) == NULL)
		return false;
	/*
	 * A user in stats_users, not admin_users, may SHOW everything but not
	 * PAUSE: found only at the PAUSE, the switchover would stop there. Probe
	 * with an admin command on an entry that does not exist: an admin gets
	 * "no such database", anyone else "admin access needed"; nothing moves.
	 */
	{
		PGconn	   *c = admin_conn(p);
		PGresult   *r = c ? pg_execute(c, "RESUME \"ferry_probe_no_such_entry\"", 0, NULL) : NULL;
		const char *m = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;

		if (m != NULL && strstr(m, "admin access needed") != NULL)
		{
			log_error("%s: user %s may read its admin console but not PAUSE, repoint or RESUME (it is in stats_users, not admin_users); nothing was paused. "
					  "Fix: add %s to admin_users in its ini file and RELOAD, or give ferry a user that is",
					  p->label, PQuser(c), PQuser(c));
			PQclear(r);
			return false;
		}
		PQclear(r);
	}
	row = entry_row(p, &res);
	if (res == NULL)
	{
		log_error("%s: its admin console did not answer SHOW DATABASES. Fix: connect as a user listed in its admin_users (dbname=pgbouncer)", p->label);
		goto done;
	}
	if (row < 0)
	{
		log_error("%s has no database entry %s. Fix: name the entry the application connects to (database:, --pgbouncer-database; SHOW DATABASES lists them)",
				  p->label, db);
		goto done;
	}
	now = row_endpoint(res, row);
	free(p->pool_mode);
	p->pool_mode = col(res, row, "pool_mode") && *col(res, row, "pool_mode") ? xstrdup(col(res, row, "pool_mode")) : config_value(p, "pool_mode");
	if (p->pool_mode == NULL)
		p->pool_mode = xstrdup("session");
	if (row_points_at(res, row, &f->at[1 - from]))
		log_info("%s: entry %s points at %s already, the %s's place (an interrupted run)", p->label, db, now, SIDE_NAME[1 - from]);
	else if (!row_points_at(res, row, &f->at[from]))
	{
		char	   *want = endpoint_text(&f->at[from]);

		log_warn("%s: entry %s points at %s, not at the %s as ferry reaches it (%s): make sure it is the same server (--pgbouncer-%s names it as the pooler does)",
				 p->label, db, now, SIDE_NAME[from], want, SIDE_NAME[from]);
		free(want);
	}
	same_database_entries(f, p, res, row);
	if (col(res, row, "paused") && strcmp(col(res, row, "paused"), "0") != 0)
		log_info("%s: entry %s is paused already (an interrupted run?): ferry resumes it when it is done", p->label, db);
	if (strcmp(p->pool_mode, "session") == 0)
		log_info("%s: entry %s uses session pooling: PAUSE waits until each client connected through it disconnects (--pause-timeout %d s)",
				 p->label, db, cfg->pause_timeout);
	check_min_pool(p, res, row);
	/* a client queued longer than query_wait_timeout is disconnected with an error */
	qwt = config_value(p, "query_wait_timeout");
	if (qwt && atoi(qwt) > 0 && atoi(qwt) < cfg->pause_timeout + cfg->timeout)
		log_warn("%s: query_wait_timeout is %s s: a client held longer gets an error, and the hold may last up to --pause-timeout + --timeout (%d s). Fix: raise query_wait_timeout in the PgBouncer's ini file (a SET on its admin console is undone by the RELOAD ferry sends at the repoint) or lower --timeout",
				 p->label, qwt, cfg->pause_timeout + cfg->timeout);
	if (p->conf->ini)
		ok = pooler_ini_check(p->label, p->conf->ini, p->database);
	else if (p->conf->repoint)
		ok = true;
	else
		log_error("%s: ferry does not know how to repoint entry %s. Fix: give ini: (the file with the entry: ferry rewrites it and sends RELOAD) or repoint: (your command) in its pgbouncer: entry, or --pgbouncer-ini FILE",
				  p->label, db);
	if (ok)
		log_info("%s: entry %s (%s pooling) at %s; %s", p->label, db, p->pool_mode, now,
				 p->conf->ini ? "repointed by rewriting it in its ini file and RELOAD" : "repointed by its repoint command and RELOAD");

done:
	PQclear(res);
	free(now);
	free(qwt);
	return ok;
}

bool
pooler_prepare(PoolerFleet *f, PGconn *src, PGconn *tgt, PoolerSide from)
{
	const FerryConfig *cfg = f->cfg;

	if (f->n == 0)
		return true;
	/* the entries first: an undo resumes them even when a check below fails */
	for (int i = 0; i < f->n; i++)
	{
		Pooler	   *p = &f->items[i];

		free(p->database);
		p->database = xstrdup(p->conf->database ? p->conf->database
							  : cfg->pgbouncer_database ? cfg->pgbouncer_database : PQdb(src));
	}
	pgbconf_pairs_release(&f->at[POOLER_SOURCE]);
	pgbconf_pairs_release(&f->at[POOLER_TARGET]);
	if (!side_endpoint(&f->at[POOLER_SOURCE], cfg->pgbouncer_source, "pgbouncer-source", src) ||
		!side_endpoint(&f->at[POOLER_TARGET], cfg->pgbouncer_target, "pgbouncer-target", tgt))
		return false;
	for (int i = 0; i < f->n; i++)
		if (!prepare_one(f, &f->items[i], from))
			return false;
	f->prepared = true;
	return true;
}

/*
 * Name the sessions that keep p's PAUSE from finishing: its server
 * connections still linked to a client, with the client and the server
 * backend's state (looked up through `server`). Owned text.
 */
static char *
holdouts(Pooler *p, PGconn *server)
{
	PGresult   *sv = admin_query(p, "list its server connections", "SHOW SERVERS");
	PGresult   *cl = sv ? admin_query(p, "list its clients", "SHOW CLIENTS") : NULL;
	StrBuf		sb,
				pids;
	int			n = 0;

	strbuf_init(&sb);
	strbuf_init(&pids);
	for (int i = 0; sv && cl && i < PQntuples(sv); i++)
	{
		const char *db = col(sv, i, "database");
		const char *link = col(sv, i, "link");
		const char *pid = col(sv, i, "remote_pid");
		const char *st = col(sv, i, "state");

		if (db == NULL || strcmp(db, p->database) != 0 || st == NULL || strcmp(st, "active") != 0)
			continue;
		strbuf_addf(&sb, "%sserver pid %s", n ? "; " : "", pid ? pid : "?");
		if (pid && atoi(pid) > 0)
			strbuf_addf(&pids, "%s%s", pids.len ? "," : "", pid);
		for (int j = 0; link && *link && j < PQntuples(cl); j++)
			if (col(cl, j, "ptr") && strcmp(col(cl, j, "ptr"), link) == 0)
				strbuf_addf(&sb, " for client %s:%s (user %s, application_name \"%s\", connected %s)",
							col(cl, j, "addr") ? col(cl, j, "addr") : "?", col(cl, j, "port") ? col(cl, j, "port") : "?",
							col(cl, j, "user") ? col(cl, j, "user") : "?",
							col(cl, j, "application_name") ? col(cl, j, "application_name") : "",
							col(cl, j, "connect_time") ? col(cl, j, "connect_time") : "?");
		n++;
	}
	PQclear(sv);
	PQclear(cl);
	if (n > 0 && server != NULL)
	{
		/* the backends' own view: idle in transaction since when, or still running */
		char	   *arr = xasprintf("{%s}", pids.data);
		const char *params[1] = {arr};
		PGresult   *res = pg_query(server, "look up the sessions that hold the pause",
								   "SELECT pid, state, COALESCE(round(extract(epoch FROM pg_catalog.now() - xact_start)::numeric, 1)::text, '-'),"
								   "       COALESCE(round(extract(epoch FROM pg_catalog.now() - backend_start)::numeric, 1)::text, '-')"
								   "  FROM pg_catalog.pg_stat_activity WHERE pid = ANY ($1::int[]) ORDER BY pid",
								   1, params);

		for (int i = 0; res && i < PQntuples(res); i++)
			strbuf_addf(&sb, "; pid %s is %s (transaction open %s s, session %s s)", PQgetvalue(res, i, 0),
						PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3));
		PQclear(res);
		free(arr);
	}
	if (n == 0)
		strbuf_addstr(&sb, "none left (it finished just now)");
	strbuf_release(&pids);
	return strbuf_detach(&sb);
}

bool
pooler_pause(PoolerFleet *f, int timeout_ms, PGconn *server, const char *side)
{
	int64_t		deadline = pg_now_ms() + timeout_ms;
	bool	   *done = f->n ? xcalloc((size_t) f->n, sizeof(bool)) : NULL;
	bool		ok = true;

	/*
	 * First make sure each admin session is alive (admin_execute reconnects
	 * one that died since the preconditions): the PAUSE is sent without a
	 * wait, and a dead session would read as a PAUSE that timed out.
	 */
	for (int i = 0; i < f->n; i++)
		PQclear(admin_query(&f->items[i], "check its admin session", "SHOW VERSION"));
	/* all at once: each pooler waits for its own transactions in parallel */
	for (int i = 0; i < f->n; i++)
	{
		Pooler	   *p = &f->items[i];
		char	   *q = quote_entry(p->database);
		char	   *cmd = xasprintf("PAUSE %s", q);
		PGconn	   *c = admin_conn(p);

		free(q);
		p->paused_at_ms = pg_now_ms();
		if (c == NULL || !PQsendQuery(c, cmd))
		{
			if (c)
				log_error("%s: could not send PAUSE: %s", p->label, PQerrorMessage(c));
			ok = false;
		}
		else
			p->paused = true;	/* from here on PgBouncer holds it, whatever we hear back */
		free(cmd);
	}
	for (int i = 0; ok && i < f->n; i++)
	{
		Pooler	   *p = &f->items[i];
		PGresult   *res = pg_get_result_until(p->conn, deadline);
		PGresult   *more;

		done[i] = PQresultStatus(res) == PGRES_COMMAND_OK;
		if (!done[i] && PQstatus(p->conn) == CONNECTION_OK)
		{
			char	   *e = pg_result_error_text(res, p->conn);

			log_error("%s: PAUSE %s failed: %s. Fix: a PAUSE or SUSPEND of the whole pooler must be RESUMEd first; the admin user must be in admin_users",
					  p->label, p->database, e);
			free(e);
		}
		PQclear(res);
		while ((more = pg_get_result_until(p->conn, deadline)) != NULL)
			PQclear(more);
		p->pause_done_ms = pg_now_ms();
		if (!done[i] && PQstatus(p->conn) != CONNECTION_OK)
		{
			/* the wait gave up (abandoned the session): who is still in there? */
			char	   *who;

			pg_finish(p->conn);
			p->conn = NULL;
			who = holdouts(p, server);
			if (pg_interrupted())
				log_error("%s: interrupted while PAUSE %s waited for: %s; nothing was frozen", p->label, p->database, who);
			else if (pg_now_ms() < deadline)
				log_error("%s: lost its admin session during PAUSE %s (PgBouncer restarted or the connection broke); nothing was frozen. Fix: check that PgBouncer is up (its log), then run the switchover again",
						  p->label, p->database);
			else
				log_error("%s: PAUSE %s did not finish within --pause-timeout %d s: sessions still hold server connections to the %s: %s. Fix: let those transactions end (or end them), or raise --pause-timeout%s; nothing was frozen",
					  p->label, p->database, f->cfg->pause_timeout, side, who,
					  p->pool_mode && strcmp(p->pool_mode, "session") == 0
					  ? "; in session pooling PAUSE waits until each client disconnects" : "");
			free(who);
		}
		ok = done[i];
	}
	if (ok)
		for (int i = 0; i < f->n; i++)
			log_info("%s: paused %s in %.3f s: its clients' requests wait from here", f->items[i].label,
					 f->items[i].database, (double) (f->items[i].pause_done_ms - f->items[i].paused_at_ms) / 1000);
	else
	{
		log_warn("resuming every pooler on the %s: the switch does not start", side);
		(void) pooler_resume(f, NULL);
	}
	free(done);
	return ok;
}

/* One client's identity across samples (PgBouncer reuses ptr values): owned. */
static char *
client_key(const PGresult *res, int row)
{
	return xasprintf("%s|%s|%s|%s", col(res, row, "ptr") ? col(res, row, "ptr") : "",
					 col(res, row, "addr") ? col(res, row, "addr") : "", col(res, row, "port") ? col(res, row, "port") : "",
					 col(res, row, "connect_time") ? col(res, row, "connect_time") : "");
}

/* watch one pooler: see pooler_watch() */
static void
watch_one(Pooler *p)
{
	PGresult   *res = admin_query(p, "list its clients", "SHOW CLIENTS");
	StrList		now_waiting = {0},
				present = {0};

	if (res == NULL)
		return;
	p->held = 0;
	for (int i = 0; i < PQntuples(res); i++)
	{
		const char *db = col(res, i, "database");
		const char *st = col(res, i, "state");
		char	   *key;

		if (db == NULL || strcmp(db, p->database) != 0 || st == NULL)
			continue;
		key = client_key(res, i);
		strlist_add(&present, key);
		if (strcmp(st, "waiting") == 0)
		{
			double		w = atof(col(res, i, "wait") ? col(res, i, "wait") : "0") +
				atof(col(res, i, "wait_us") ? col(res, i, "wait_us") : "0") / 1e6;

			strlist_add(&now_waiting, key);
			p->held++;
			if (w > p->longest_wait)
				p->longest_wait = w;
		}
		free(key);
	}
	/* waiting last time and gone now: PgBouncer disconnected it (query_wait_timeout) unanswered */
	for (int i = 0; i < p->waiting.n; i++)
		if (!strlist_has(&present, p->waiting.items[i]))
			p->failed++;
	strlist_free(&p->waiting);
	p->waiting = now_waiting;
	strlist_free(&present);
	PQclear(res);
}

void
pooler_watch(PoolerFleet *f)
{
	for (int i = 0; i < f->n; i++)
		if (f->items[i].paused)
			watch_one(&f->items[i]);
}

/* The repoint command's environment: which pooler, which entry, where to. */
static void
repoint_env(const PoolerFleet *f, const Pooler *p, PoolerSide to, StrList *env)
{
	char	   *kv;
	const char *const names[3] = {"HOST", "PORT", "DBNAME"};

	kv = xasprintf("FERRY_PGBOUNCER_DATABASE=%s", p->database);
	strlist_add(env, kv);
	free(kv);
	if (p->conn)
	{
		kv = xasprintf("FERRY_PGBOUNCER_HOST=%s", PQhost(p->conn));
		strlist_add(env, kv);
		free(kv);
		kv = xasprintf("FERRY_PGBOUNCER_PORT=%s", PQport(p->conn));
		strlist_add(env, kv);
		free(kv);
	}
	kv = xasprintf("FERRY_REPOINT_TO=%s", SIDE_NAME[to]);
	strlist_add(env, kv);
	free(kv);
	for (int k = 0; k < 3; k++)
		if (pgbconf_pairs_get(&f->at[to], ENDPOINT_KEYS[k]))
		{
			kv = xasprintf("FERRY_REPOINT_%s=%s", names[k], pgbconf_pairs_get(&f->at[to], ENDPOINT_KEYS[k]));
			strlist_add(env, kv);
			free(kv);
		}
}

/* Point p's entry at `to` and RELOAD; check SHOW DATABASES. */
static bool
repoint_one(PoolerFleet *f, Pooler *p, PoolerSide to)
{
	PGresult   *res;
	int			row;
	bool		ok;
	char	   *want = endpoint_text(&f->at[to]);

	if (p->conf->ini)
		ok = pooler_ini_repoint(p->label, p->conf->ini, p->database, &f->at[to]);
	else
	{
		StrList		env = {0};

		if (admin_conn(p) == NULL)
		{
			free(want);
			return false;
		}
		repoint_env(f, p, to, &env);
		ok = hook_run_command(f->cfg, "repoint", p->conf->repoint, &env);
		strlist_free(&env);
		if (!ok)
			log_error("%s: its repoint command did not point entry %s at the %s (above). Fix: it gets FERRY_PGBOUNCER_HOST, _PORT, _DATABASE and FERRY_REPOINT_TO, FERRY_REPOINT_HOST, _PORT, _DBNAME; ferry sends RELOAD after it",
					  p->label, p->database, SIDE_NAME[to]);
	}
	if (ok)
	{
		res = admin_query(p, "reload its configuration", "RELOAD");
		ok = res != NULL;
		PQclear(res);
	}
	if (!ok)
	{
		free(want);
		return false;
	}
	row = entry_row(p, &res);
	ok = row >= 0 && row_points_at(res, row, &f->at[to]);
	if (ok)
		log_info("%s: entry %s points at the %s now (%s)", p->label, p->database, SIDE_NAME[to], want);
	else
	{
		char	   *have = row >= 0 ? row_endpoint(res, row) : xstrdup("no such entry");

		log_error("%s: after the repoint and RELOAD, entry %s shows %s, not the %s (%s). Fix: check that %s is the file this PgBouncer reads (SHOW CONFIG: conffile) and that RELOAD takes it (its log)",
				  p->label, p->database, have, SIDE_NAME[to], want, p->conf->ini ? p->conf->ini : "what the repoint command edits");
		free(have);
	}
	PQclear(res);
	free(want);
	return ok;
}

bool
pooler_repoint(PoolerFleet *f, PoolerSide to)
{
	for (int i = 0; i < f->n; i++)
		if (!repoint_one(f, &f->items[i], to))
			return false;
	return true;
}

bool
pooler_repoint_back(PoolerFleet *f, PoolerSide to, bool *ok)
{
	bool		all = true;

	for (int i = 0; i < f->n; i++)
	{
		ok[i] = repoint_one(f, &f->items[i], to);
		if (!ok[i])
		{
			log_error("%s: could not point entry %s back at the %s: it stays PAUSED so that no client writes on the other side. Fix: point it at the %s by hand, RELOAD, then RESUME %s on its admin console",
					  f->items[i].label, f->items[i].database, SIDE_NAME[to], SIDE_NAME[to], f->items[i].database);
			all = false;
		}
	}
	return all;
}

bool *
pooler_recheck(PoolerFleet *f, PoolerSide to)
{
	bool	   *skip = xcalloc((size_t) (f->n > 0 ? f->n : 1), sizeof(bool));

	for (int i = 0; i < f->n; i++)
	{
		Pooler	   *p = &f->items[i];
		PGresult   *res;
		int			row;
		char	   *have;

		if (p->database == NULL)
			continue;
		row = entry_row(p, &res);
		if (row >= 0 && row_points_at(res, row, &f->at[to]))
		{
			PQclear(res);
			continue;
		}
		have = row >= 0 ? row_endpoint(res, row) : xstrdup("no such entry");
		PQclear(res);
		log_warn("%s: entry %s shows %s, not the %s, since it was repointed (its file changed and reloaded, by config management or a hook?): pointing it at the %s again",
				 p->label, p->database, have, SIDE_NAME[to], SIDE_NAME[to]);
		free(have);
		if (!repoint_one(f, p, to))
		{
			log_error("%s: entry %s stays PAUSED, so that no client writes on the wrong side. Fix: point it at the %s (and keep whatever rewrites its file from putting it back), RELOAD, then RESUME %s on its admin console",
					  p->label, p->database, SIDE_NAME[to], p->database);
			skip[i] = true;
		}
	}
	return skip;
}

int
pooler_unpaused_at(PoolerFleet *f, PoolerSide side)
{
	int			n = 0;

	for (int i = 0; i < f->n; i++)
	{
		Pooler	   *p = &f->items[i];
		PGresult   *res;
		int			row;

		if (!p->paused || p->database == NULL)
			continue;
		row = entry_row(p, &res);
		if (res == NULL)
		{
			/* down now, it may have been up meanwhile, restarted unpaused at its file's side */
			log_error("%s: ferry cannot ask it whether entry %s is still paused (above): restarted meanwhile, it may have served the %s unpaused, and its clients written there",
					  p->label, p->database, SIDE_NAME[side]);
			n++;
		}
		else if (row >= 0 && col(res, row, "paused") && strcmp(col(res, row, "paused"), "0") == 0 &&
				 row_points_at(res, row, &f->at[side]))
		{
			log_error("%s: entry %s is not paused and points at the %s: PgBouncer was restarted (or resumed by someone) since ferry paused it, and its clients may have written on the %s",
					  p->label, p->database, SIDE_NAME[side], SIDE_NAME[side]);
			n++;
		}
		PQclear(res);
	}
	return n;
}

/* Clients still waiting in p's queue for its entry (SHOW POOLS), -1 on error. */
static int
queue_length(Pooler *p)
{
	PGresult   *res = admin_query(p, "list its pools", "SHOW POOLS");
	int			n = 0;

	if (res == NULL)
		return -1;
	for (int i = 0; i < PQntuples(res); i++)
		if (col(res, i, "database") && strcmp(col(res, i, "database"), p->database) == 0)
			n += atoi(col(res, i, "cl_waiting") ? col(res, i, "cl_waiting") : "0");
	PQclear(res);
	return n;
}

/* The report's figures from each pooler's hold (*st unless NULL). */
static void
fill_stats(const PoolerFleet *f, PoolerStats *st)
{
	if (st == NULL)
		return;
	memset(st, 0, sizeof(*st));
	st->drained = true;
	for (int i = 0; i < f->n; i++)
	{
		const Pooler *p = &f->items[i];
		double		h = p->paused && p->resumed_at_ms ? (double) (p->resumed_at_ms - p->paused_at_ms) / 1000 : 0;

		st->poolers++;
		st->held_seconds = h > st->held_seconds ? h : st->held_seconds;
		st->longest_wait = p->longest_wait > st->longest_wait ? p->longest_wait : st->longest_wait;
		st->held_clients += p->held;
		st->failed += p->failed;
	}
}

/*
 * After the RESUME: the queues must go on now (one that does not: the
 * pooler may not reach the new server; st->drained false), failures are
 * said, server_login_retry is set back (see pooler.h); the resumed
 * poolers are no longer ours to hold.
 */
static void
after_resume(PoolerFleet *f, const bool *skip, PoolerStats *st)
{
	int64_t		t0 = pg_now_ms();

	for (int i = 0; i < f->n; i++)
	{
		Pooler	   *p = &f->items[i];
		int			q = 0;

		if ((skip && skip[i]) || p->database == NULL)
			continue;
		while ((q = queue_length(p)) > 0 && pg_now_ms() - t0 < POOLER_DRAIN_MS && !pg_interrupted())
			usleep(10000);
		if (q > 0)
		{
			log_warn("%s: %d clients still wait for %s %.1f s after the resume: it may not reach the server it points at. Fix: see its log (server login failed?) and SHOW POOLS",
					 p->label, q, p->database, (double) (pg_now_ms() - t0) / 1000);
			if (st)
				st->drained = false;
		}
		if (p->failed > 0)
			log_warn("%s: %d requests failed while %s was held (clients that left the queue unanswered: query_wait_timeout?)",
					 p->label, p->failed, p->database);
		if (p->login_retry)
		{
			char	   *cmd = xasprintf("SET server_login_retry = %s", p->login_retry);
			PGresult   *r = admin_query(p, "set server_login_retry back", cmd);

			if (r == NULL)
				log_warn("%s: server_login_retry stays 0. Fix: %s on its admin console (or RELOAD)", p->label, cmd);
			PQclear(r);
			free(cmd);
		}
		p->paused = false;
	}
}

bool
pooler_resume_except(PoolerFleet *f, const bool *skip, PoolerStats *st)
{
	bool		ok = true;

	pooler_watch(f);			/* the last look at the queues before they move */
	for (int i = 0; i < f->n; i++)
	{
		Pooler	   *p = &f->items[i];
		char	   *e = NULL;

		if ((skip && skip[i]) || p->database == NULL)
			continue;
		if (p->login_retry)
		{
			PGresult   *r = admin_query(p, "set server_login_retry to 0 for the resume", "SET server_login_retry = 0");

			PQclear(r);
		}
		if (admin_entry_command(p, "RESUME", &e))
		{
			p->resumed_at_ms = pg_now_ms();
			if (p->paused)
				log_info("%s: resumed %s after %.3f s: %d requests that waited go on (the longest waited %.3f s)",
						 p->label, p->database, (double) (p->resumed_at_ms - p->paused_at_ms) / 1000, p->held, p->longest_wait);
			else
				log_info("%s: resumed %s (paused by an interrupted run)", p->label, p->database);
		}
		else if (e && strstr(e, "is not paused"))
			log_info("%s: %s was not paused", p->label, p->database);
		else
		{
			log_error("%s: could not RESUME %s: %s. Fix: run RESUME %s on its admin console: its clients wait until then",
					  p->label, p->database, e ? e : "no admin session", p->database);
			ok = false;
		}
		free(e);
	}
	fill_stats(f, st);
	after_resume(f, skip, st);
	return ok;
}

bool
pooler_resume(PoolerFleet *f, PoolerStats *st)
{
	return pooler_resume_except(f, NULL, st);
}

char *
pooler_hold_to_json(const PoolerFleet *f, PoolerSide from, bool repointed)
{
	json_t	   *o = json_object();
	json_t	   *a = json_array();
	char	   *s,
			   *out;

	for (int i = 0; i < f->n; i++)
	{
		char	   *d = xasprintf("%s entry %s", f->items[i].label, f->items[i].database ? f->items[i].database : "?");

		json_array_append_new(a, json_string(d));
		free(d);
	}
	json_object_set_new(o, "from", json_string(SIDE_NAME[from]));
	json_object_set_new(o, "repointed", json_boolean(repointed));
	json_object_set_new(o, "poolers", a);
	s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	out = xstrdup(s);
	free(s);
	return out;
}

bool
pooler_hold_from_json(const char *text, PoolerSide *from, bool *repointed, char **names)
{
	json_error_t err;
	json_t	   *o = json_loads(text, 0, &err);
	const char *fr = o ? json_string_value(json_object_get(o, "from")) : NULL;
	json_t	   *v;
	size_t		i;
	StrBuf		sb;

	if (o == NULL || !json_is_object(o) || fr == NULL ||
		(strcmp(fr, "source") != 0 && strcmp(fr, "target") != 0) ||
		!json_is_boolean(json_object_get(o, "repointed")))
	{
		json_decref(o);
		return false;
	}
	*from = strcmp(fr, "source") == 0 ? POOLER_SOURCE : POOLER_TARGET;
	*repointed = json_is_true(json_object_get(o, "repointed"));
	strbuf_init(&sb);
	json_array_foreach(json_object_get(o, "poolers"), i, v)
		if (json_is_string(v))
		strbuf_addf(&sb, "%s%s", sb.len ? ", " : "", json_string_value(v));
	*names = strbuf_detach(&sb);
	json_decref(o);
	return true;
}
