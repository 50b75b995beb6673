/*
 * freeze.c: freezing and unfreezing a database's writes (see freeze.h).
 */
#include "freeze.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "fault.h"
#include "hooks.h"
#include "log.h"
#include "pgsql.h"
#include "publication.h"

/* The database-wide (any role) setting of default_transaction_read_only. */
static const char PRIOR_SQL[] =
	"SELECT pg_catalog.current_database(),"
	"       (SELECT substr(c, length('default_transaction_read_only=') + 1)"
	"          FROM pg_catalog.pg_db_role_setting s, unnest(s.setconfig) c"
	"         WHERE s.setdatabase = d.oid AND s.setrole = 0"
	"           AND c LIKE 'default\\_transaction\\_read\\_only=%'),"
	"       (pg_catalog.pg_has_role(d.datdba, 'USAGE') OR r.rolsuper),"
	"       (SELECT string_agg(x.rolname, ', ') FROM pg_catalog.pg_db_role_setting s"
	"          JOIN pg_catalog.pg_roles x ON x.oid = s.setrole, unnest(s.setconfig) c"
	"         WHERE s.setrole <> 0 AND (s.setdatabase = d.oid OR s.setdatabase = 0)"
	"           AND c IN ('default_transaction_read_only=off', 'default_transaction_read_only=false')),"
	"       pg_catalog.now()::text"
	"  FROM pg_catalog.pg_database d, pg_catalog.pg_roles r"
	" WHERE d.datname = pg_catalog.current_database() AND r.rolname = current_user";

/*
 * Client sessions that may write: everything on the database but ours and
 * ferry's (`ferry start`'s, named ferry* and logged in as the same role: an
 * application session that merely calls itself ferry is ended like any).
 */
#define OTHER_SESSIONS \
	" FROM pg_catalog.pg_stat_activity a" \
	" WHERE a.datname = pg_catalog.current_database() AND a.pid <> pg_catalog.pg_backend_pid()" \
	"   AND a.backend_type = 'client backend'" \
	"   AND NOT (a.application_name LIKE 'ferry%' AND a.usename = current_user)"

/*
 * Can this user see and end the application's sessions? Without
 * pg_read_all_stats, pg_stat_activity hides other roles' backend_type (the
 * freeze then ended nobody); without pg_signal_backend it may not end them;
 * a superuser's session only a superuser may end.
 */
static const char SESSION_RIGHTS_SQL[] =
	"SELECT r.rolsuper OR pg_catalog.pg_has_role('pg_read_all_stats', 'USAGE'),"
	"       r.rolsuper OR pg_catalog.pg_has_role('pg_signal_backend', 'USAGE'),"
	"       (SELECT pg_catalog.string_agg(pg_catalog.format('pid %s (%s, %s)', a.pid, a.usename, a.application_name), ', ')"
	"          FROM pg_catalog.pg_stat_activity a JOIN pg_catalog.pg_roles x ON x.oid = a.usesysid"
	"         WHERE a.datname = pg_catalog.current_database() AND a.pid <> pg_catalog.pg_backend_pid()"
	"           AND x.rolsuper AND NOT r.rolsuper"
	"           AND NOT (a.application_name LIKE 'ferry%' AND a.usename = current_user))"
	"  FROM pg_catalog.pg_roles r WHERE r.rolname = current_user";

/*
 * The fence's tables: those of the migration's two publications ($1), as
 * quoted names; how many of them this user may not lock in EXCLUSIVE mode
 * (that takes UPDATE, DELETE or TRUNCATE), and which.
 */
static const char FENCE_TABLES_SQL[] =
	"SELECT pg_catalog.string_agg(q, ', ' ORDER BY q),"
	"       pg_catalog.count(*) FILTER (WHERE NOT may),"
	"       pg_catalog.string_agg(q, ', ' ORDER BY q) FILTER (WHERE NOT may)"
	"  FROM (SELECT q, pg_catalog.has_table_privilege(q, 'UPDATE, DELETE, TRUNCATE') AS may"
	"          FROM (SELECT DISTINCT pg_catalog.quote_ident(schemaname) || '.' || pg_catalog.quote_ident(tablename) AS q"
	"                  FROM pg_catalog.pg_publication_tables"
	"                 WHERE pubname IN ($1::text, $1::text || '" PUBLICATION_INSERT_ONLY_SUFFIX "')) p) t";

/*
 * The fence's sequences: a no-op ALTER SEQUENCE (its own increment) for
 * each one in a user schema that this user may alter (owner or member of
 * the owner's role), joined with "; ". Inside the fence's transaction it
 * holds the sequence's SHARE ROW EXCLUSIVE lock, which nextval() waits
 * for: a BEGIN READ WRITE session on the frozen side can no longer hand
 * out values the other side will hand out again after the switch (the
 * transaction is rolled back when the fence closes, so nothing changes).
 * Identity sequences are left out (ALTER SEQUENCE refuses them; their
 * table's lock already holds the inserts that use them). Also how many
 * sequences are not held, for the log.
 */
static const char FENCE_SEQUENCES_SQL[] =
	"SELECT pg_catalog.string_agg(pg_catalog.format('ALTER SEQUENCE %I.%I INCREMENT BY %s',"
	"                             s.schemaname, s.sequencename, s.increment_by), '; ') FILTER (WHERE may),"
	"       pg_catalog.count(*) FILTER (WHERE NOT may)"
	"  FROM (SELECT s.*, pg_catalog.pg_has_role(s.sequenceowner, 'USAGE') AS may"
	"          FROM pg_catalog.pg_sequences s"
	"          JOIN pg_catalog.pg_namespace n ON n.nspname = s.schemaname"
	"          JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = s.sequencename"
	"         WHERE s.schemaname NOT IN ('pg_catalog', 'information_schema', 'ferry')"
	"           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d"
	"                            WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass"
	"                              AND d.objid = c.oid AND d.deptype = 'i')) s";

#define FENCE_LOCK_TIMEOUT_MS 1000
#define FENCE_APPLICATION_NAME "ferry fence"
#define FENCE_STR_(x) #x
#define FENCE_STR(x) FENCE_STR_(x)

bool
freeze_parse_bool(const char *s, bool *out)
{
	static const char *const words[][2] = {{"true", "t"}, {"false", "f"}, {"yes", "y"}, {"no", "n"},
	{"on", "on"}, {"off", "of"}, {"1", "1"}, {"0", "0"}};
	size_t		len = s ? strlen(s) : 0;

	/* as PostgreSQL's parse_bool: a whole word, or a prefix of it as long as the shortest unambiguous one */
	for (size_t i = 0; len > 0 && i < sizeof(words) / sizeof(words[0]); i++)
		if (len >= strlen(words[i][1]) && len <= strlen(words[i][0]) &&
			strncasecmp(s, words[i][0], len) == 0)
		{
			*out = words[i][0][0] == 't' || words[i][0][0] == 'y' || strcmp(words[i][0], "on") == 0 ||
				words[i][0][0] == '1';
			return true;
		}
	return false;
}

/* A boolean setting's text as "on"/"off" (static), or NULL if it is not a boolean. */
static const char *
bool_setting(const char *s)
{
	bool		b;

	return freeze_parse_bool(s, &b) ? (b ? "on" : "off") : NULL;
}

void
freeze_release_record(Freeze *fz)
{
	pg_finish(fz->fence);
	free(fz->pubname);
	free(fz->mode);
	free(fz->dbname);
	free(fz->prior);
	free(fz->frozen_at);
	strlist_free(&fz->revoked);
	strlist_free(&fz->extra);
	memset(fz, 0, sizeof(*fz));
}

/*
 * Before anything is frozen: can this user end the application's sessions
 * and take the fence on `side`? False (logged with the GRANT that fixes
 * it) when not.
 */
static bool
freeze_rights(PGconn *conn, const char *side, const char *pubname)
{
	PGresult   *res = pg_query(conn, "check what the freeze may do", SESSION_RIGHTS_SQL, 0, NULL);
	bool		ok = false,
				see,
				end;

	if (res == NULL || !pg_check_shape(res, 1, 3, "the freeze's rights"))
		goto done;
	see = PQgetvalue(res, 0, 0)[0] == 't';
	end = PQgetvalue(res, 0, 1)[0] == 't';
	if (!see || !end)
	{
		log_error("on the %s, the ferry user cannot %s the application's sessions, so the freeze could not end them and their writes would go on. Fix: GRANT %s%s%s TO %s (or run as a superuser)",
				  side, see ? "end" : "see", see ? "" : "pg_read_all_stats", !see && !end ? ", " : "",
				  end ? "" : "pg_signal_backend", PQuser(conn));
		goto done;
	}
	if (!PQgetisnull(res, 0, 2))
	{
		log_error("on the %s, superuser sessions are connected that the ferry user may not end: %s. Fix: close them before the switchover, or run it as a superuser",
				  side, PQgetvalue(res, 0, 2));
		goto done;
	}
	PQclear(res);
	res = pg_query(conn, "list the tables to fence", FENCE_TABLES_SQL, 1, &pubname);
	if (res == NULL || !pg_check_shape(res, 1, 3, "the fence's tables"))
		goto done;
	if (strcmp(PQgetvalue(res, 0, 1), "0") != 0)
	{
		log_error("on the %s, the ferry user may not lock %s published tables (%.200s), which the freeze needs to hold every write, a session's BEGIN READ WRITE too (ferry writes nothing to them). Fix: GRANT pg_write_all_data TO %s (PostgreSQL 14+), or GRANT UPDATE ON those tables TO %s",
				  side, PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2), PQuser(conn), PQuser(conn));
		goto done;
	}
	ok = true;

done:
	PQclear(res);
	return ok;
}

bool
freeze_prepare(PGconn *conn, const FerryConfig *cfg, const char *mode, const char *side,
			   const char *pubname, Freeze *fz)
{
	PGresult   *res = pg_query(conn, "read the database's settings", PRIOR_SQL, 0, NULL);
	bool		ok = false;

	memset(fz, 0, sizeof(*fz));
	if (res == NULL || !pg_check_shape(res, 1, 5, "the database settings"))
		goto done;
	fz->mode = xstrdup(mode);
	fz->dbname = xstrdup(PQgetvalue(res, 0, 0));
	if (!PQgetisnull(res, 0, 1) && bool_setting(PQgetvalue(res, 0, 1)) == NULL)
	{
		log_error("the %s database's default_transaction_read_only setting \"%.40s\" is not a boolean", side, PQgetvalue(res, 0, 1));
		goto done;
	}
	/* recorded as on/off, the only values alter_database() will set */
	fz->prior = PQgetisnull(res, 0, 1) ? NULL : xstrdup(bool_setting(PQgetvalue(res, 0, 1)));
	fz->frozen_at = xstrdup(PQgetvalue(res, 0, 4));
	if (strcmp(mode, "readonly") == 0)
	{
		if (PQgetvalue(res, 0, 2)[0] != 't')
		{
			log_error("the %s user may not ALTER DATABASE %s, which the read-only freeze needs. Fix: run as the database owner or a superuser, or use --freeze revoke or --freeze hook",
					  side, fz->dbname);
			goto done;
		}
		if (!PQgetisnull(res, 0, 3))
		{
			log_error("on the %s, role settings override a read-only database for %s (default_transaction_read_only = off), so the freeze would not stop them. Fix: ALTER ROLE ... RESET default_transaction_read_only, or use --freeze revoke",
					  side, PQgetvalue(res, 0, 3));
			goto done;
		}
	}
	else if (strcmp(mode, "revoke") == 0)
	{
		if (cfg->freeze_roles.n == 0)
		{
			log_error("--freeze revoke needs the application roles. Fix: add --freeze-role ROLE (repeatable) or freeze-roles: in the config file");
			goto done;
		}
		for (int i = 0; i < cfg->freeze_roles.n; i++)
		{
			const char *p[1] = {cfg->freeze_roles.items[i]};
			PGresult   *r = pg_query(conn, "look up an application role",
									 "SELECT rolcanlogin, rolsuper FROM pg_catalog.pg_roles WHERE rolname = $1", 1, p);

			if (r == NULL)
				goto done;
			if (PQntuples(r) == 0)
			{
				log_error("--freeze-role \"%s\" does not exist on the %s. Fix: name the roles your application logs in as", p[0], side);
				PQclear(r);
				goto done;
			}
			/*
			 * The roles whose LOGIN the freeze will take, recorded now: the
			 * record is saved before freeze_apply(), so a process killed
			 * after ALTER ROLE ... NOLOGIN still leaves what undoes it.
			 */
			if (PQgetvalue(r, 0, 0)[0] == 't')
				strlist_add(&fz->revoked, p[0]);
			PQclear(r);
		}
	}
	else if (strcmp(mode, "hook") == 0)
	{
		if (hook_command(cfg, "freeze") == NULL)
		{
			log_error("--freeze hook needs a freeze: command under hooks: in the config file. Fix: add it, or use --freeze readonly");
			goto done;
		}
	}
	else
	{
		log_error("unknown freeze mode \"%s\". Fix: use readonly, revoke or hook", mode);
		goto done;
	}
	if (strcmp(mode, "hook") != 0 && !freeze_rights(conn, side, pubname))
		goto done;
	fz->pubname = xstrdup(pubname);
	ok = true;

done:
	PQclear(res);
	if (!ok)
		freeze_release_record(fz);
	return ok;
}

/*
 * Set (value "on"/"off") or reset (NULL) the database's read-only default.
 * The value is never pasted from the record: it may only be one of the two
 * constants, so a state table someone wrote to cannot run SQL here.
 */
static bool
alter_database(PGconn *conn, const char *dbname, const char *value)
{
	const char *v = value ? bool_setting(value) : NULL;
	char	   *qd;
	char	   *sql;

	if (value && v == NULL)
	{
		log_error("refusing to set default_transaction_read_only to \"%.40s\", which is not a boolean. Fix: set it by hand (ALTER DATABASE ... SET default_transaction_read_only = on|off, or RESET)",
				  value);
		return false;
	}
	if ((qd = pg_quote_ident(conn, dbname)) == NULL)
		return false;
	sql = v ? xasprintf("ALTER DATABASE %s SET default_transaction_read_only = %s", qd, v)
		: xasprintf("ALTER DATABASE %s RESET default_transaction_read_only", qd);
	bool		ok = pg_exec(conn, "change the database's read-only setting", sql);

	free(sql);
	free(qd);
	return ok;
}

/* Terminate sessions matching `where`, then wait until they are gone. */
static bool
end_sessions(PGconn *conn, const char *side, const char *where, int nparams, const char *const *params, int timeout_ms)
{
	char	   *sql = xasprintf("SELECT count(*) FILTER (WHERE NOT pg_catalog.pg_terminate_backend(a.pid)), count(*) %s %s",
								OTHER_SESSIONS, where);
	char	   *wait = xasprintf("SELECT count(*) %s %s", OTHER_SESSIONS, where);
	PGresult   *res = pg_query(conn, "end the application's sessions", sql, nparams, params);
	bool		ok = false;

	if (res == NULL || !pg_check_shape(res, 1, 2, "ended sessions"))
		goto done;
	if (strcmp(PQgetvalue(res, 0, 0), "0") != 0)
	{
		log_error("could not end %s of the application's sessions on the %s. Fix: GRANT pg_signal_backend TO the ferry user (sessions of superusers need a superuser)",
				  PQgetvalue(res, 0, 0), side);
		goto done;
	}
	log_info("ended %s application sessions on the %s", PQgetvalue(res, 0, 1), side);
	for (int waited = 0;; waited += 10)
	{
		PQclear(res);
		res = pg_query(conn, "wait for the sessions to end", wait, nparams, params);
		if (res == NULL)
			goto done;
		if (strcmp(PQgetvalue(res, 0, 0), "0") == 0)
			break;
		if (waited >= timeout_ms || pg_interrupted())
		{
			log_error("%s application sessions on the %s did not end in time", PQgetvalue(res, 0, 0), side);
			goto done;
		}
		usleep(10000);
	}
	ok = true;

done:
	PQclear(res);
	free(sql);
	free(wait);
	return ok;
}

/*
 * A prepared transaction survives the freeze (ending sessions does not end
 * it) and could commit after the drain: its changes would never reach the
 * other side. Checked before freezing and again once frozen (one could have
 * been prepared in between, by a pre_freeze hook or the application).
 */
bool
freeze_no_prepared_xacts(PGconn *conn, const char *side)
{
	PGresult   *res = pg_query(conn, "look for prepared transactions",
								"SELECT count(*) FROM pg_catalog.pg_prepared_xacts WHERE database = pg_catalog.current_database()",
								0, NULL);
	bool		ok = res != NULL && strcmp(PQgetvalue(res, 0, 0), "0") == 0;

	if (res != NULL && !ok)
		log_error("the %s database has %s prepared transactions: they would commit after the freeze and be lost. Fix: COMMIT PREPARED or ROLLBACK PREPARED them first (pg_prepared_xacts)",
				  side, PQgetvalue(res, 0, 0));
	PQclear(res);
	return ok;
}

/* End the sessions the mode freezes: every client's (readonly), the application roles' (revoke). */
static bool
end_frozen_sessions(PGconn *conn, const FerryConfig *cfg, const char *side, const Freeze *fz, int timeout_ms)
{
	char	   *arr;
	bool		ok;

	if (strcmp(fz->mode, "revoke") != 0)
		return end_sessions(conn, side, "", 0, NULL, timeout_ms);
	arr = pg_text_array(&cfg->freeze_roles);
	ok = end_sessions(conn, side, " AND a.usename = ANY ($1::text[])", 1, (const char *[]) {arr}, timeout_ms);
	free(arr);
	return ok;
}

/*
 * Take the fence (freeze.h): a new session from `conninfo` that locks every
 * published table IN EXCLUSIVE MODE and stays in that transaction. A
 * writer that got in since its session was ended holds the lock up: after
 * FENCE_LOCK_TIMEOUT_MS the sessions are ended again and the lock retried,
 * until timeout_ms. On success fz->fence holds the locks; false (logged)
 * otherwise.
 */
static bool
fence_take(PGconn *conn, const char *conninfo, const FerryConfig *cfg, const char *side, Freeze *fz, int timeout_ms)
{
	PGresult   *res = pg_query(conn, "list the tables to fence", FENCE_TABLES_SQL, 1, (const char *[]) {fz->pubname});
	char	   *lock = NULL;
	bool		ok = false;

	if (res == NULL || !pg_check_shape(res, 1, 3, "the fence's tables"))
		goto done;
	if (PQgetisnull(res, 0, 0) && fz->extra.n == 0)
	{
		ok = true;				/* nothing published, nothing to hold */
		goto done;
	}
	{
		PGresult   *sq = pg_query(conn, "list the sequences to fence", FENCE_SEQUENCES_SQL, 0, NULL);
		StrBuf		tables;

		if (sq == NULL || !pg_check_shape(sq, 1, 2, "the fence's sequences"))
		{
			PQclear(sq);
			goto done;
		}
		strbuf_init(&tables);
		strbuf_addstr(&tables, PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0));
		for (int i = 0; i < fz->extra.n; i++)
			strbuf_addf(&tables, "%s%s", tables.len ? ", " : "", fz->extra.items[i]);
		lock = xasprintf("LOCK TABLE %s IN EXCLUSIVE MODE%s%s", tables.data,
						 PQgetisnull(sq, 0, 0) ? "" : "; ", PQgetisnull(sq, 0, 0) ? "" : PQgetvalue(sq, 0, 0));
		strbuf_release(&tables);
		if (strcmp(PQgetvalue(sq, 0, 1), "0") != 0)
			log_warn("%s sequences on the %s are not held by the freeze (this user does not own them): a BEGIN READ WRITE session can still take values from them there. Fix: run the switchover as their owner",
					 PQgetvalue(sq, 0, 1), side);
		PQclear(sq);
	}
	fz->fence = pg_connect(conninfo, side, PG_CONN_SQL, NULL);
	/* named, so that a DBA (and test 151) can tell it apart; still ferry*, so the freeze spares it */
	if (fz->fence == NULL ||
		!pg_exec(fz->fence, "set up the fence",
				 "SET lock_timeout = " FENCE_STR(FENCE_LOCK_TIMEOUT_MS) "; SET application_name = '" FENCE_APPLICATION_NAME "'"))
		goto done;
	for (int waited = 0;; waited += FENCE_LOCK_TIMEOUT_MS)
	{
		PGresult   *r;
		const char *code;

		if (!pg_exec(fz->fence, "begin the fence", "BEGIN"))
			goto done;
		r = pg_execute(fz->fence, lock, 0, NULL);
		if (PQresultStatus(r) == PGRES_COMMAND_OK)
		{
			PQclear(r);
			break;
		}
		code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		if (code == NULL || strcmp(code, "55P03") != 0 || waited >= timeout_ms || pg_interrupted())
		{
			char	   *e = pg_result_error_text(r, fz->fence);

			log_error("could not lock the published tables on the %s to hold their writes: %s", side, e);
			free(e);
			PQclear(r);
			goto done;
		}
		PQclear(r);
		log_info("writers still hold locks on the %s: ending their sessions again", side);
		if (!pg_exec(fz->fence, "retry the fence", "ROLLBACK") ||
			!end_frozen_sessions(conn, cfg, side, fz, timeout_ms - waited))
			goto done;
	}
	log_info("holding every write to the published tables on the %s, and nextval on its sequences", side);
	ok = true;

done:
	PQclear(res);
	free(lock);
	if (!ok)
	{
		pg_finish(fz->fence);
		fz->fence = NULL;
	}
	return ok;
}

bool
freeze_apply(PGconn *conn, const char *conninfo, const FerryConfig *cfg, const char *side, Freeze *fz,
			 int timeout_ms)
{
	PGresult   *res = pg_query(conn, "read the server time", "SELECT pg_catalog.clock_timestamp()::text", 0, NULL);

	/* sessions that start from here on begin read-only: unfreezing ends them */
	if (res == NULL || !pg_check_shape(res, 1, 1, "the server time"))
	{
		PQclear(res);
		return false;
	}
	free(fz->frozen_at);
	fz->frozen_at = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	if (strcmp(fz->mode, "hook") == 0)
		return hook_run(cfg, "freeze") && freeze_no_prepared_xacts(conn, side);
	if (strcmp(fz->mode, "readonly") == 0)
	{
		if (!alter_database(conn, fz->dbname, "on"))
			return false;
	}
	else
	{
		/* revoke: the roles freeze_prepare() recorded as able to log in */
		for (int i = 0; i < fz->revoked.n; i++)
		{
			char	   *qr = pg_quote_ident(conn, fz->revoked.items[i]);
			char	   *sql = qr ? xasprintf("ALTER ROLE %s NOLOGIN", qr) : NULL;
			bool		ok = sql != NULL && pg_exec(conn, "revoke the application's login", sql);

			free(sql);
			free(qr);
			if (!ok)
				return false;
		}
		fault_point("freeze.after-revoke");
	}
	/* a prepared transaction keeps its locks with no session to end: the fence would wait in vain */
	return end_frozen_sessions(conn, cfg, side, fz, timeout_ms) &&
		freeze_no_prepared_xacts(conn, side) &&
		fence_take(conn, conninfo, cfg, side, fz, timeout_ms);
}

bool
freeze_fence_held(Freeze *fz, const char *side)
{
	PGresult   *res;
	bool		held;
	char	   *e;

	if (fz->fence == NULL)
		return true;
	res = pg_execute(fz->fence, "SELECT 1", 0, NULL);
	held = PQresultStatus(res) == PGRES_TUPLES_OK && PQtransactionStatus(fz->fence) == PQTRANS_INTRANS;
	if (!held)
	{
		e = pg_result_error_text(res, fz->fence);
		e[strcspn(e, "\n")] = '\0';	/* libpq's "server closed the connection unexpectedly" goes on */
		log_warn("the fence on the %s is gone (%s): its locks went with it, so a session that overrides the read-only database may have written there since",
				 side, e && *e ? e : "its transaction ended");
		free(e);
	}
	PQclear(res);
	return held;
}

bool
freeze_fence_retake(PGconn *conn, const char *conninfo, const FerryConfig *cfg, const char *side, Freeze *fz,
					int timeout_ms)
{
	pg_finish(fz->fence);
	fz->fence = NULL;
	if (strcmp(fz->mode, "hook") == 0)
		return true;
	log_info("taking the fence on the %s again", side);
	return end_frozen_sessions(conn, cfg, side, fz, timeout_ms) &&
		freeze_no_prepared_xacts(conn, side) &&
		fence_take(conn, conninfo, cfg, side, fz, timeout_ms);
}

HandOver
freeze_hand_over(PGconn *conn, const FerryConfig *cfg, const char *side, Freeze *fz)
{
	bool		ended;

	if (fz->fence == NULL)
		return HAND_OVER_DONE;
	ended = end_frozen_sessions(conn, cfg, side, fz, 5000);
	if (!freeze_fence_held(fz, side))
		return HAND_OVER_FENCE_LOST;
	pg_finish(fz->fence);
	fz->fence = NULL;
	return ended ? HAND_OVER_DONE : HAND_OVER_SESSIONS_LEFT;
}

bool
freeze_release(PGconn *conn, const FerryConfig *cfg, const char *side, Freeze *fz)
{
	bool		ok = true;

	/* writers queued behind the fence go on: the side is the primary again */
	pg_finish(fz->fence);
	fz->fence = NULL;

	if (strcmp(fz->mode, "hook") == 0)
	{
		if (hook_command(cfg, "unfreeze") == NULL)
		{
			log_warn("no unfreeze hook is configured: undo what the freeze hook did by hand");
			return true;
		}
		return hook_run(cfg, "unfreeze");
	}
	if (strcmp(fz->mode, "readonly") == 0)
	{
		const char *params[1] = {fz->frozen_at};

		if (!alter_database(conn, fz->dbname, fz->prior))
			return false;
		/* sessions that connected while frozen started read-only: let them reconnect */
		if (fz->frozen_at && !end_sessions(conn, side, " AND a.backend_start >= $1::timestamptz", 1, params, 5000))
			log_warn("sessions that connected to the %s while it was frozen may stay read-only until they reconnect", side);
		log_info("the %s database %s accepts writes again", side, fz->dbname);
		return true;
	}
	for (int i = 0; i < fz->revoked.n; i++)
	{
		char	   *qr = pg_quote_ident(conn, fz->revoked.items[i]);
		char	   *sql = qr ? xasprintf("ALTER ROLE %s LOGIN", qr) : NULL;

		ok &= sql != NULL && pg_exec(conn, "give the application its login back", sql);
		free(sql);
		free(qr);
	}
	if (ok)
		log_info("application roles on the %s may log in again", side);
	return ok;
}

char *
freeze_to_json(const Freeze *fz)
{
	json_t	   *o = json_object();
	json_t	   *roles = json_array();
	char	   *s,
			   *out;

	json_object_set_new(o, "mode", json_string(fz->mode));
	json_object_set_new(o, "dbname", json_string(fz->dbname));
	json_object_set_new(o, "prior", fz->prior ? json_string(fz->prior) : json_null());
	json_object_set_new(o, "frozen_at", json_string(fz->frozen_at ? fz->frozen_at : ""));
	for (int i = 0; i < fz->revoked.n; i++)
		json_array_append_new(roles, json_string(fz->revoked.items[i]));
	json_object_set_new(o, "revoked", roles);
	s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	out = xstrdup(s);
	free(s);
	return out;
}

bool
freeze_from_json(const char *text, Freeze *fz)
{
	json_error_t err;
	json_t	   *o = json_loads(text, 0, &err);
	json_t	   *v;
	size_t		i;

	const char *mode;

	memset(fz, 0, sizeof(*fz));
	/*
	 * Read back from the state table, so checked like input: a known mode,
	 * a prior setting that is null or a boolean (kept as on/off).
	 */
	v = o ? json_object_get(o, "prior") : NULL;
	mode = o ? json_string_value(json_object_get(o, "mode")) : NULL;
	if (o == NULL || !json_is_object(o) || mode == NULL ||
		(strcmp(mode, "readonly") != 0 && strcmp(mode, "revoke") != 0 && strcmp(mode, "hook") != 0) ||
		!json_is_string(json_object_get(o, "dbname")) ||
		!(v == NULL || json_is_null(v) || (json_is_string(v) && bool_setting(json_string_value(v)))))
	{
		json_decref(o);
		return false;
	}
	fz->mode = xstrdup(mode);
	fz->dbname = xstrdup(json_string_value(json_object_get(o, "dbname")));
	fz->prior = json_is_string(v) ? xstrdup(bool_setting(json_string_value(v))) : NULL;
	v = json_object_get(o, "frozen_at");
	fz->frozen_at = json_is_string(v) && *json_string_value(v) ? xstrdup(json_string_value(v)) : NULL;
	json_array_foreach(json_object_get(o, "revoked"), i, v)
		if (json_is_string(v))
		strlist_add(&fz->revoked, json_string_value(v));
	json_decref(o);
	return true;
}
