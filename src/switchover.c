/*
 * switchover.c: the cut-over and its rollback (see switchover.h).
 */
#include "switchover.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apply.h"
#include "check.h"
#include "copy.h"
#include "fault.h"
#include "follow.h"
#include "freeze.h"
#include "hooks.h"
#include "log.h"
#include "mem.h"
#include "pgoutput.h"
#include "pgsql.h"
#include "pgversion.h"
#include "pooler.h"
#include "publication.h"
#include "slot.h"
#include "state.h"
#include "validate.h"
#include "watch.h"

/* How long a stopped follower gets to release its slot before we drop it. */
#define SWITCH_SLOT_RELEASE_MS 30000

typedef struct Follower
{
	pthread_t	thread;
	bool		running;		/* ours, in this process */
	FerryConfig *cfg;
	bool		reverse;
	FollowResult result;
	bool		ok;
	_Atomic bool done;
} Follower;

typedef struct Sw
{
	FerryConfig *cfg;
	FerryConfig *rcfg;			/* reverse direction */
	PGconn	   *src;			/* control session on the source */
	PGconn	   *tgt;			/* control session on the target */
	PGconn	   *lock_conn;		/* holds NAME:switchover on the target */
	Freeze		fz;
	bool		freeze_saved;	/* fz is in ferry.migration */
	bool		frozen;			/* freeze_apply was called (maybe partly) */
	bool		reverse_made;	/* reverse objects may exist */
	bool		intent;			/* switch_hook_at is set: only forward from here */
	PoolerFleet pf;				/* the PgBouncers in front (pooler.h), n = 0 without */
	bool		held;			/* the poolers may be paused (ferry.migration.pooler_hold) */
	bool		repointed;		/* and their entries may point at the other side */
	Follower	fol;
	double		t_start;
	double		deadline;		/* for freeze + drain + ... before the switch */
} Sw;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void *
follower_main(void *p)
{
	Follower   *f = p;

	log_set_role(f->reverse ? "reverse" : "follow");
	f->ok = follow_run(f->cfg, f->reverse, &f->result);
	atomic_store(&f->done, true);
	return NULL;
}

/*
 * Make sure changes are being applied for cfg's migration: if no process
 * holds its lock (on lock_side, where its state lives), start a follower
 * thread in this process.
 */
static bool
follower_ensure(Follower *f, PGconn *state_conn, FerryConfig *cfg, bool reverse)
{
	int			held = state_lock_held(state_conn, cfg->name);

	if (held < 0)
		return false;
	if (held)
	{
		log_info("%s replication is running in another ferry process: watching its progress",
				 reverse ? "reverse" : "forward");
		return true;
	}
	log_info("ferry start is not running for %s: applying changes in this process", cfg->name);
	follow_reset_stop();
	memset(f, 0, sizeof(*f));
	f->cfg = cfg;
	f->reverse = reverse;
	if (pthread_create(&f->thread, NULL, follower_main, f) != 0)
	{
		log_error("could not start the follower thread");
		return false;
	}
	f->running = true;
	return true;
}

static void
follower_stop(Follower *f)
{
	if (!f->running)
		return;
	follow_request_stop();
	pthread_join(f->thread, NULL);
	f->running = false;
	follow_reset_stop();
}

/* Our follower thread ended by itself: a failure it logged. */
static bool
follower_failed(Follower *f)
{
	return f->running && atomic_load(&f->done);
}

/* Emit a logical message on conn; its LSN in *lsn. */
static bool
emit(PGconn *conn, const char *prefix, const char *name, uint64_t *lsn)
{
	const char *params[2] = {prefix, name};
	PGresult   *res = pg_query(conn, "emit a marker message",
							   "SELECT pg_catalog.pg_logical_emit_message(true, $1, $2)::text", 2, params);
	bool		ok = res != NULL && pg_check_shape(res, 1, 1, "the marker") &&
		pg_lsn_parse(PQgetvalue(res, 0, 0), lsn);

	PQclear(res);
	return ok;
}

/*
 * Wait until migration `name`'s applied position (ferry.apply_progress on
 * state_conn's server) reaches lsn, or until `until` (now_s() clock).
 * Returns 1 reached, 0 timed out or interrupted, -1 error.
 */
static int
wait_applied(PGconn *state_conn, const char *name, uint64_t lsn, double until, Follower *f)
{
	const char *params[1] = {name};

	for (;;)
	{
		PGresult   *res = pg_query(state_conn, "read the applied position",
								   "SELECT applied_lsn::text FROM ferry.apply_progress WHERE migration = $1", 1, params);
		uint64_t	applied = 0;

		if (res == NULL)
			return -1;
		if (PQntuples(res) == 1)
			pg_lsn_parse(PQgetvalue(res, 0, 0), &applied);
		PQclear(res);
		if (applied >= lsn)
			return 1;
		if (now_s() >= until || pg_interrupted() || follower_failed(f))
			return 0;
		usleep(5000);
	}
}

/*
 * Precondition: the follower of migration `m` (the forward one, or the
 * reverse one for a rollback) applies a probe emitted on `from` (the side
 * it streams from) within max_lag seconds, its position read on `to`; keep
 * trying until the deadline (a follower that was down catches up first).
 * Runs before anything is frozen: a stream that is broken (an apply error it
 * keeps retrying) fails here, not inside the freeze window.
 */
static bool
wait_lag_ok(Sw *s, PGconn *from, PGconn *to, const FerryConfig *m)
{
	const char *what = m == s->rcfg ? "reverse replication" : "replication";

	for (int round = 0;; round++)
	{
		uint64_t	probe;
		double		t0 = now_s();
		int			r;

		if (!emit(from, FOLLOW_HEARTBEAT_PREFIX, m->name, &probe))
			return false;
		r = wait_applied(to, m->name, probe, t0 + (s->cfg->max_lag > 0 ? s->cfg->max_lag : 1), &s->fol);
		if (r < 0)
			return false;
		if (r == 1)
		{
			log_info("%s lag %.3f s (limit --max-lag %d s)", what, now_s() - t0, s->cfg->max_lag);
			return true;
		}
		if (follower_failed(&s->fol) || pg_interrupted())
		{
			log_error("%s stopped while waiting for it to catch up (see above); nothing was frozen. Fix: remove the cause of that error, then try again", what);
			return false;
		}
		if (now_s() >= s->deadline)
		{
			log_error("%s lag stayed above --max-lag %d s for %d s; nothing was frozen. Fix: see the ferry start log for an error it keeps retrying (ferry status shows the lag), let it catch up, or raise --max-lag / --timeout",
					  what, s->cfg->max_lag, s->cfg->timeout);
			return false;
		}
		if (round == 0)
			log_info("%s is more than %d s behind: waiting for it to catch up", what, s->cfg->max_lag);
	}
}

/* Migration phase from the target's state, owned; NULL on error or missing (logged). */
static char *
read_phase(PGconn *tgt, const char *name, bool *reverse)
{
	const char *params[1] = {name};
	PGresult   *res = pg_query(tgt, "read the migration state",
							   "SELECT phase, reverse FROM ferry.migration WHERE name = $1", 1, params);
	char	   *ph = NULL;

	if (res == NULL)
		return NULL;
	if (PQntuples(res) == 0)
		log_error("the target has no migration \"%s\". Fix: check --name and --target, or start it with ferry start", name);
	else
	{
		ph = xstrdup(PQgetvalue(res, 0, 0));
		if (reverse)
			*reverse = PQgetvalue(res, 0, 1)[0] == 't';
	}
	PQclear(res);
	return ph;
}

/* `ferry check` must find nothing blocking (its findings are logged with their fixes). */
static bool
check_passes(const FerryConfig *cfg)
{
	CheckReport rep;
	bool		ok;

	check_report_init(&rep);
	ok = check_run(cfg, &rep);
	for (int i = 0; ok && i < rep.n; i++)
		if (rep.items[i].status == CHECK_BLOCKING)
			log_error("check, %s, %s: %s. Fix: %s", rep.items[i].server, rep.items[i].check,
					  rep.items[i].detail, rep.items[i].fix ? rep.items[i].fix : "see ferry check");
	if (ok && rep.blocking > 0)
	{
		log_error("ferry check found %d blocking problems (above); nothing was frozen", rep.blocking);
		ok = false;
	}
	check_report_release(&rep);
	return ok;
}

/* Preconditions on both servers; false (logged with the fix). */

/*
 * Can reverse replication run at all? It slots on the target (REPLICATION)
 * and applies on the source as the source's user, which must set
 * session_replication_role (a non-superuser needs a GRANT for it, from 15
 * on). Found out after the switch, a rollback would be impossible: the
 * reverse apply retries for ever, and `rollback` waits for it and gives up.
 * And it must know the changes ferry makes on the target once the reverse
 * slot exists (the last drain, a re-copy after a lost fence), not to send
 * them back: by their replication origin, or by the logical message that
 * marks them (apply.h), which pgoutput sends from 14 on only; a target
 * before 14 whose apply ran without an origin has neither.
 */
static bool
reverse_rights(Sw *s)
{
	PGresult   *res = pg_execute(s->src, "BEGIN; SET LOCAL session_replication_role = replica", 0, NULL);
	bool		apply_ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	bool		ok = true;

	PQclear(res);
	pg_exec_quiet(s->src, "ROLLBACK", NULL);
	if (!apply_ok && !pg_caps(s->src).grant_set_parameter)
	{
		log_error("reverse replication could not apply on the source: role %s may not set session_replication_role there, which before PostgreSQL 15 only a superuser may; nothing was frozen. Fix: run the switchover and ferry start with a superuser --source, or switch over with --no-reverse (no rollback then)",
				  PQuser(s->src));
		ok = false;
	}
	else if (!apply_ok)
	{
		log_error("reverse replication could not apply on the source: role %s may not set session_replication_role there; nothing was frozen. Fix: as a superuser on the source, GRANT SET ON PARAMETER session_replication_role TO %s (PostgreSQL 15+; on a managed service its admin role may), or switch over with --no-reverse (no rollback then)",
				  PQuser(s->src), PQuser(s->src));
		ok = false;
	}
	if (!pg_caps(s->tgt).logical_messages)
	{
		const char *p[1] = {s->cfg->name};

		res = pg_query(s->tgt, "look up the forward apply's replication origin",
					   "SELECT count(*) FROM pg_catalog.pg_replication_origin WHERE roname = $1", 1, p);
		if (res == NULL || !pg_check_shape(res, 1, 1, "the origin count"))
			ok = false;
		else if (strcmp(PQgetvalue(res, 0, 0), "0") == 0)
		{
			log_error("reverse replication from this target would send ferry's own applied changes back to the source (the last drain, once its slot exists, and any re-copy after it): they carry no replication origin (the forward apply ran without one: before PostgreSQL 14 only a superuser may use one) and pgoutput before 14 sends no logical messages to mark them; nothing was frozen. Fix: switch over with --no-reverse (no rollback then), or migrate again with a superuser --target");
			ok = false;
		}
		PQclear(res);
	}
	res = pg_query(s->tgt, "read the target role's rights",
				   "SELECT rolsuper OR rolreplication FROM pg_catalog.pg_roles WHERE rolname = current_user", 0, NULL);
	if (res == NULL || !pg_check_shape(res, 1, 1, "the role's rights"))
		ok = false;
	else if (PQgetvalue(res, 0, 0)[0] != 't')
	{
		log_error("reverse replication needs a replication slot on the target, and role %s may not create one (no REPLICATION); nothing was frozen. Fix: ALTER ROLE %s WITH REPLICATION on the target (on Amazon RDS/Aurora: GRANT rds_replication TO %s), or switch over with --no-reverse (no rollback then)",
				  PQuser(s->tgt), PQuser(s->tgt), PQuser(s->tgt));
		ok = false;
	}
	PQclear(res);
	return ok;
}

static bool
preconditions(Sw *s)
{
	const char *params[1] = {s->cfg->name};
	PGresult   *res;
	bool		ok = false;

	if (!check_passes(s->cfg))
		return false;

	res = pg_query(s->src, "look up the slot",
				   "SELECT wal_status FROM pg_catalog.pg_replication_slots WHERE slot_name = $1", 1, params);
	if (res == NULL)
		return false;
	if (PQntuples(res) == 0)
	{
		log_error("the source has no replication slot \"%s\": replication is not set up. Fix: run ferry start first", s->cfg->name);
		goto done;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "lost") == 0)
	{
		log_error("the replication slot \"%s\" lost WAL it needed: the target cannot be brought up to date. Fix: ferry cleanup, then migrate again (raise max_slot_wal_keep_size)", s->cfg->name);
		goto done;
	}
	PQclear(res);
	res = NULL;
	/* tables created after the clone are not replicated: their rows are not on the target */
	{
		StrList		missing = {0};
		bool		mok = publication_missing(s->src, s->cfg, &missing);

		if (mok && missing.n > 0)
		{
			char	   *names = publication_name_list(&missing);

			log_error("%d table%s on the source %s not replicated (created after the clone: none of their rows are on the target): %s; nothing was frozen. Fix: %s",
					  missing.n, missing.n == 1 ? "" : "s", missing.n == 1 ? "is" : "are", names, PUBLICATION_MISSING_FIX);
			free(names);
			mok = false;
		}
		strlist_free(&missing);
		if (!mok)
			goto done;
	}
	/* a target that diverged (changes that matched no row there) must not become the primary */
	if (state_table_exists(s->tgt, "unmatched") == 1)
	{
		res = pg_query(s->tgt, "look for divergence",
					   "SELECT count(*), COALESCE(sum(changes), 0), string_agg(tablename, ', ' ORDER BY tablename)"
					   "  FROM ferry.unmatched WHERE migration = $1", 1, params);
		if (res == NULL)
			goto done;
		if (strcmp(PQgetvalue(res, 0, 0), "0") != 0)
		{
			log_error("the target has diverged: %s updates/deletes from the source matched no row there (%s); nothing was frozen. Fix: repair those rows (ferry verify shows them), then run ferry verify: when every table is equal it clears this",
					  PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
			goto done;
		}
		PQclear(res);
		res = NULL;
	}
	/* a foreign key a resumed clone built NOT VALID would stay so on the new primary (validate.h) */
	PQclear(res);
	res = validate_pending(s->tgt, s->cfg->name);
	if (res == NULL)
		goto done;
	if (PQntuples(res) > 0)
	{
		StrBuf		names;
		int			n = PQntuples(res);

		strbuf_init(&names);
		for (int i = 0; i < n && i < 5; i++)
			strbuf_addf(&names, "%s%s %s", i ? ", " : "", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
		if (n > 5)
			strbuf_addf(&names, " and %d more", n - 5);
		log_error("%d foreign key%s on the target %s not validated yet (%s); nothing was frozen. Fix: keep ferry start running: it validates them once apply has caught up with the resumed clone; ferry status shows why a validation fails (a target row that differs from the source: repair it)",
				  n, n == 1 ? "" : "s", n == 1 ? "is" : "are", names.data);
		strbuf_release(&names);
		goto done;
	}
	if (!freeze_no_prepared_xacts(s->src, "source"))
		goto done;
	/* background workers (a subscription's apply, a scheduler) are not ended by the freeze */
	PQclear(res);
	res = pg_query(s->src, "look for background writers",
				   "SELECT string_agg(DISTINCT backend_type, ', ') FROM pg_catalog.pg_stat_activity"
				   " WHERE datname = pg_catalog.current_database()"
				   "   AND backend_type NOT IN ('client backend', 'autovacuum worker', 'walsender', 'parallel worker')",
				   0, NULL);
	if (res == NULL)
		return false;
	if (!PQgetisnull(res, 0, 0))
		log_warn("background workers are connected to the source database (%s): the freeze does not stop them, and what they write after it would not reach the target. Fix: stop them before the switchover (e.g. disable the subscription or the job scheduler), or stop them in a pre_freeze or freeze hook",
				 PQgetvalue(res, 0, 0));
	if (!s->cfg->no_reverse)
	{
		PQclear(res);
		res = pg_query(s->tgt, "read the target's replication settings",
					   "SELECT pg_catalog.current_setting('wal_level'),"
					   " pg_catalog.current_setting('max_replication_slots')::int"
					   "  - (SELECT count(*) FROM pg_catalog.pg_replication_slots WHERE slot_name <> $1)",
					   1, (const char *[]) {s->rcfg->name});
		if (res == NULL)
			return false;
		if (strcmp(PQgetvalue(res, 0, 0), "logical") != 0)
		{
			log_error("the target has wal_level = %s, so it cannot stream changes back to the source for a rollback. Fix: set wal_level = logical on the target and restart it, or switch over with --no-reverse (no rollback then)",
					  PQgetvalue(res, 0, 0));
			goto done;
		}
		if (atoi(PQgetvalue(res, 0, 1)) < 1)
		{
			log_error("the target has no free replication slot for reverse replication. Fix: raise max_replication_slots on the target, or use --no-reverse");
			goto done;
		}
		if (!reverse_rights(s))
			goto done;
	}
	ok = true;

done:
	PQclear(res);
	return ok;
}

/*
 * Load the Freeze record saved in ferry.migration.<column> (source_freeze or
 * target_freeze, never input). 1 loaded into *fz, 0 none saved, -1 on error
 * or an unreadable record (logged with the manual fix).
 */
static int
load_freeze(PGconn *tgt, const char *name, const char *column, Freeze *fz)
{
	const char *params[1] = {name};
	char	   *sql = xasprintf("SELECT %s FROM ferry.migration WHERE name = $1", column);
	PGresult   *res = pg_query(tgt, "read the freeze record", sql, 1, params);
	int			r = -1;

	free(sql);
	if (res == NULL)
		return -1;
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
		r = 0;
	else if (freeze_from_json(PQgetvalue(res, 0, 0), fz))
		r = 1;
	else
		log_error("the saved freeze record ferry.migration.%s is unreadable. Fix: by hand: ALTER DATABASE <db> RESET default_transaction_read_only on the %s, then set %s to NULL",
				  column, strcmp(column, "source_freeze") == 0 ? "source" : "target", column);
	PQclear(res);
	return r;
}

/* Save the Freeze record (NULL to clear it) in the target's state. */
static bool
save_freeze(PGconn *tgt, const char *name, const char *column, const Freeze *fz)
{
	char	   *json = fz ? freeze_to_json(fz) : NULL;
	bool		ok = state_set(tgt, name, column, json);

	free(json);
	return ok;
}

/*
 * A control session: what it records (the freeze, the phase, the switch
 * intent, the database's read-only setting) must survive a crash of that
 * server, so it commits synchronously even where the server's default is
 * synchronous_commit = off: a switch intent lost in a crash made the rerun
 * undo a switch the application already wrote after (test 181).
 */
static PGconn *
control_connect(const char *conninfo, const char *label)
{
	PGconn	   *conn = pg_connect(conninfo, label, PG_CONN_SQL, NULL);

	if (conn && !pg_exec(conn, "make ferry's records durable", "SET synchronous_commit = on"))
	{
		pg_finish(conn);
		conn = NULL;
	}
	return conn;
}

/* Reconnect a control session if it died (the server restarted under us). */
static PGconn *
reconnect(PGconn *conn, const char *conninfo, const char *label)
{
	if (conn && PQstatus(conn) == CONNECTION_OK)
	{
		PGresult   *res = pg_execute(conn, "SELECT 1", 0, NULL);
		bool		alive = PQresultStatus(res) == PGRES_TUPLES_OK;

		PQclear(res);
		if (alive)
			return conn;
	}
	pg_finish(conn);
	for (int i = 0; i < 10; i++)
	{
		conn = control_connect(conninfo, label);
		if (conn)
			return conn;
		sleep(1);
	}
	return NULL;
}

/* Drop slot `name` on conn once nothing streams from it (or give up, logged). */
static void
drop_slot_when_released(PGconn *conn, const char *name, const char *side)
{
	const char *params[1] = {name};

	for (int waited = 0;; waited += 100)
	{
		PGresult   *res = pg_query(conn, "look up the slot",
								   "SELECT active FROM pg_catalog.pg_replication_slots WHERE slot_name = $1", 1, params);
		bool		exists = res && PQntuples(res) == 1;
		bool		active = exists && PQgetvalue(res, 0, 0)[0] == 't';

		PQclear(res);
		if (res == NULL || !exists)
			return;
		if (!active && slot_drop(conn, name))
		{
			log_info("dropped replication slot %s on the %s: it retains no WAL there any more", name, side);
			return;
		}
		/* active, or it became active between the look and the drop: wait */
		if (waited >= SWITCH_SLOT_RELEASE_MS)
		{
			log_warn("replication slot %s on the %s is still in use after %d s; ferry cleanup drops it once its consumer stops",
					 name, side, SWITCH_SLOT_RELEASE_MS / 1000);
			return;
		}
		usleep(100000);
	}
}

/*
 * After the switch: with reverse replication the forward slot stays on the
 * old source as the watch for writes that still reach it (watch.h; the
 * reverse follower polls it, rollback and cleanup drop it), and the old
 * source refuses UPDATE and DELETE on keyless tables, which it could not
 * see (publication_guard_keyless); without reverse, the slot is dropped so
 * the old source retains no WAL for it.
 */
static void
keep_or_drop_forward_slot(PGconn *src, const FerryConfig *cfg, bool reverse)
{
	if (!reverse)
	{
		drop_slot_when_released(src, cfg->name, "source");
		return;
	}
	if (!publication_guard_keyless(src, cfg, KEYLESS_GUARD))
		log_warn("the old source still takes UPDATE and DELETE on tables without a key, which the watch cannot see. Fix: ALTER PUBLICATION %s%s SET (publish = 'insert, update, delete, truncate') on the old source",
				 cfg->name, PUBLICATION_INSERT_ONLY_SUFFIX);
	log_info("kept replication slot %s on the old source as a watch: ferry start (in reverse) reports any write that still reaches the old source; rollback or cleanup drops it",
			 cfg->name);
}

/* Remove the reverse objects (slot and publications on the target, state on the source). */
static void
drop_reverse(Sw *s)
{
	if (s->tgt)
	{
		if (slot_exists(s->tgt, s->rcfg->name) == 1)
			slot_drop(s->tgt, s->rcfg->name);
		publication_drop(s->tgt, s->rcfg);
	}
	if (s->src && state_table_exists(s->src, "migration") == 1)
		state_forget(s->src, s->rcfg->name);
	if (s->tgt)
		state_set(s->tgt, s->cfg->name, "reverse", "false");
}

/*
 * Create the reverse objects: publications on the target (same rules as the
 * forward ones: tables without a key for inserts only), a slot on the
 * target, and the reverse migration's state on the source starting at the
 * slot's consistent point.
 */
static bool
make_reverse(Sw *s)
{
	const char *params[1] = {s->rcfg->name};
	PGresult   *res;
	bool		ok;

	s->reverse_made = true;
	if (slot_exists(s->tgt, s->rcfg->name) == 1 && !slot_drop(s->tgt, s->rcfg->name))
		return false;
	if (!publication_ensure(s->tgt, s->rcfg))
		return false;
	res = pg_query(s->tgt, "create the reverse replication slot",
				   "SELECT lsn::text FROM pg_catalog.pg_create_logical_replication_slot($1, 'pgoutput')", 1, params);
	if (res == NULL || !pg_check_shape(res, 1, 1, "the reverse slot"))
	{
		PQclear(res);
		return false;
	}
	ok = state_ensure(s->src, "source") &&
		(state_table_exists(s->src, "migration") != 1 || state_forget(s->src, s->rcfg->name)) &&
		state_create(s->src, s->rcfg->name, s->rcfg->name) &&
		state_set(s->src, s->rcfg->name, "start_lsn", PQgetvalue(res, 0, 0)) &&
		state_set(s->src, s->rcfg->name, "pre_data_done", "true") &&
		state_set(s->src, s->rcfg->name, "data_done", "true") &&
		state_set(s->src, s->rcfg->name, "post_data_done", "true") &&
		state_set(s->src, s->rcfg->name, "phase", "following") &&
		state_set(s->tgt, s->cfg->name, "reverse", "true");
	if (ok)
		log_info("reverse replication prepared: slot %s on the target from %s", s->rcfg->name, PQgetvalue(res, 0, 0));
	PQclear(res);
	return ok;
}

/*
 * The non-generated columns of table `qname`, quoted and comma-separated
 * ("" for a table without any: CREATE TABLE t ()), and in *partitioned
 * whether it is a partitioned table. Owned; NULL on error (logged).
 */
static char *
copy_columns(PGconn *conn, const char *qname, bool *partitioned)
{
	const char *params[1] = {qname};
	PGresult   *res = pg_query(conn, "list the table's columns",
							   "SELECT (SELECT string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum)"
							   "          FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid"
							   "           AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''),"
							   "       c.relkind = 'p'"
							   "  FROM pg_catalog.pg_class c WHERE c.oid = $1::pg_catalog.regclass", 1, params);
	char	   *cols = NULL;

	if (res && pg_check_shape(res, 1, 2, "the table's columns"))
	{
		cols = xstrdup(PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0));
		*partitioned = PQgetvalue(res, 0, 1)[0] == 't';
	}
	PQclear(res);
	return cols;
}

/*
 * A table's own NOT VALID CHECK constraints (not inherited from a parent):
 * rows older than such a constraint may violate it, and COPY checks it on
 * every row it writes, so the re-copy lifts it for the copy. Run inside the
 * re-copy's transaction on `to`: drops each one and sets *readd (owned) to
 * the statements that add them again, NOT VALID as before (on an
 * inheritance parent they merge with the children's copies again).
 * Logs and returns false on error.
 */
static bool
lift_not_valid_checks(PGconn *to, const char *qname, char **readd)
{
	const char *params[1] = {qname};
	PGresult   *res = pg_query(to, "list the table's NOT VALID check constraints",
							   "SELECT pg_catalog.quote_ident(conname), pg_catalog.pg_get_constraintdef(oid)"
							   "  FROM pg_catalog.pg_constraint"
							   " WHERE conrelid = $1::pg_catalog.regclass AND contype = 'c'"
							   "   AND NOT convalidated AND coninhcount = 0 ORDER BY conname", 1, params);
	StrBuf		add;
	bool		ok = res != NULL;

	strbuf_init(&add);
	for (int i = 0; ok && i < PQntuples(res); i++)
	{
		char	   *drop = xasprintf("ALTER TABLE %s DROP CONSTRAINT %s", qname, PQgetvalue(res, i, 0));

		ok = pg_exec(to, "lift a NOT VALID check constraint for the re-copy", drop);
		strbuf_addf(&add, "ALTER TABLE %s ADD CONSTRAINT %s %s; ", qname, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
		free(drop);
	}
	PQclear(res);
	if (ok)
		*readd = strbuf_detach(&add);
	strbuf_release(&add);
	return ok;
}

/*
 * Re-copy one table from `from` to `to` in one transaction on `to`:
 * TRUNCATE, then COPY of every row (triggers off), marked as migration
 * `mark`'s own write (apply.h). Rows copied in *rows.
 * Only the table's own rows: an inheritance parent's children are tables
 * of their own (re-copied themselves if they have no key, replicated
 * otherwise), so both sides read and empty it with ONLY; a partitioned
 * table (published through its root) is read and emptied whole, its rows
 * routed to the partitions again.
 */
static bool
recopy_table(PGconn *from, PGconn *to, const char *qname, const char *mark, long long *rows)
{
	bool		partitioned = false;
	char	   *cols = copy_columns(from, qname, &partitioned);
	const char *only = partitioned ? "" : "ONLY ";
	char	   *out_sql,
			   *in_sql,
			   *trunc,
			   *readd = NULL;
	bool		ok = false;
	int64_t		bytes;

	if (cols == NULL)
		return false;
	out_sql = xasprintf("COPY (SELECT %s FROM %s%s) TO STDOUT", cols, only, qname);
	in_sql = xasprintf("COPY %s%s%s%s FROM STDIN", qname, cols[0] ? " (" : "", cols, cols[0] ? ")" : "");
	/*
	 * TRUNCATE is fast but refuses a table that a foreign key references
	 * (a keyless table can still have a UNIQUE constraint); DELETE, with
	 * foreign key triggers off in replica mode, does it then.
	 */
	{
		const char *p1[1] = {qname};
		PGresult   *fk = pg_query(to, "look for foreign keys to the table",
								  "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint"
								  " WHERE contype = 'f' AND confrelid = $1::pg_catalog.regclass)", 1, p1);
		bool		referenced = fk && PQgetvalue(fk, 0, 0)[0] == 't';

		PQclear(fk);
		trunc = xasprintf("BEGIN; SET LOCAL session_replication_role = replica; %s %s%s",
						  referenced ? "DELETE FROM" : "TRUNCATE", only, qname);
	}
	if (!pg_exec(to, "empty the table before its re-copy", trunc))
		goto rollback;
	if (!lift_not_valid_checks(to, qname, &readd))
		goto rollback;
	{
		/* ferry's own write: reverse replication and the watch skip it (apply.h, watch.h) */
		const char *mp[2] = {APPLY_MARK_PREFIX, mark};
		PGresult   *m = pg_query(to, "mark the re-copy as ferry's",
								 "SELECT pg_catalog.pg_logical_emit_message(true, $1, $2) IS NULL", 2, mp);

		PQclear(m);
		if (m == NULL)
			goto rollback;
	}
	{
		CopyStream	cs = {from, out_sql, to, in_sql, qname, xmalloc(COPY_BATCH_BYTES), NULL, NULL};
		int64_t		n = 0;

		ok = copy_stream(&cs, &n, &bytes);
		free(cs.batch);
		if (ok)
			*rows = (long long) n;
	}
	if (ok && readd[0])
		ok = pg_exec(to, "add the NOT VALID check constraints again after the re-copy", readd);
	if (ok)
		ok = pg_exec(to, "commit the re-copy", "COMMIT");

rollback:
	/* the failed re-copy's transaction (a lost session has none left) */
	if (!ok && PQstatus(to) == CONNECTION_OK)
		pg_exec_quiet(to, "ROLLBACK", NULL);
	free(cols);
	free(out_sql);
	free(in_sql);
	free(trunc);
	free(readd);
	return ok;
}

/*
 * Tables published for inserts only (no key: their updates and deletes
 * never replicate) are re-copied whole while writes are frozen.
 * pub_conn/pub_cfg name the side whose publication lists them.
 */
static bool
recopy_insert_only(PGconn *from, PGconn *to, const FerryConfig *pub_cfg, SwitchReport *rep)
{
	char	   *pub = xasprintf("%s%s", pub_cfg->name, PUBLICATION_INSERT_ONLY_SUFFIX);
	const char *params[1] = {pub};
	PGresult   *res = pg_query(from, "list the tables published for inserts only",
							   "SELECT pg_catalog.quote_ident(schemaname) || '.' || pg_catalog.quote_ident(tablename)"
							   "  FROM pg_catalog.pg_publication_tables WHERE pubname = $1 ORDER BY 1", 1, params);
	bool		ok = res != NULL;

	for (int i = 0; ok && i < PQntuples(res); i++)
	{
		long long	rows = 0;
		double		t0 = now_s();

		ok = recopy_table(from, to, PQgetvalue(res, i, 0), pub_cfg->name, &rows);
		if (ok)
		{
			log_info("re-copied %s (no key, so only its inserts replicated): %lld rows in %.2f s",
					 PQgetvalue(res, i, 0), rows, now_s() - t0);
			rep->recopied_tables++;
			rep->recopied_rows += rows;
		}
	}
	PQclear(res);
	free(pub);
	return ok;
}

/*
 * Rollback: tables on the target that reverse replication does not carry.
 * NAME_reverse lists the tables the target had at the switchover, so one
 * the application created there since (a deploy) streams nothing back.
 * Those the source has too (the same DDL run there) go into *tables: the
 * fence holds them (freeze.h, extra) and they are re-copied whole while the
 * target is frozen. False (logged) when one does not exist on the source:
 * its rows could go nowhere.
 */
static bool
reverse_unpublished(Sw *s, StrList *tables)
{
	StrList		missing = {0};
	StrList		absent = {0};
	bool		ok = publication_missing(s->tgt, s->rcfg, &missing);

	strlist_free(tables);
	for (int i = 0; ok && i < missing.n; i++)
	{
		const char *params[1] = {missing.items[i]};
		PGresult   *res = pg_query(s->src, "look for the table on the source",
								   "SELECT pg_catalog.to_regclass($1) IS NOT NULL", 1, params);

		ok = res != NULL && pg_check_shape(res, 1, 1, "the table on the source");
		if (ok)
			strlist_add(PQgetvalue(res, 0, 0)[0] == 't' ? tables : &absent, missing.items[i]);
		PQclear(res);
	}
	if (ok && absent.n > 0)
	{
		char	   *names = publication_name_list(&absent);

		log_error("%d table%s on the target %s not on the source (created after the switchover): %s; their rows would be lost, so nothing was frozen. Fix: create %s on the source with the same columns (BEGIN READ WRITE: it is read-only), so that the rollback copies %s rows, or drop %s on the target",
				  absent.n, absent.n == 1 ? "" : "s", absent.n == 1 ? "is" : "are", names,
				  absent.n == 1 ? "it" : "them", absent.n == 1 ? "its" : "their", absent.n == 1 ? "it" : "them");
		free(names);
		ok = false;
	}
	else if (ok && tables->n > 0)
	{
		char	   *names = publication_name_list(tables);

		log_info("%d table%s on the target %s not replicated back (created after the switchover): %s; re-copied whole while the target is frozen",
				 tables->n, tables->n == 1 ? "" : "s", tables->n == 1 ? "is" : "are", names);
		free(names);
	}
	strlist_free(&missing);
	strlist_free(&absent);
	return ok;
}

/* Re-copy each of `tables` whole from `from` to `to` (recopy_table), marked as migration `mark`'s own. */
static bool
recopy_list(PGconn *from, PGconn *to, const StrList *tables, const char *mark, SwitchReport *rep)
{
	for (int i = 0; i < tables->n; i++)
	{
		long long	rows = 0;
		double		t0 = now_s();

		if (!recopy_table(from, to, tables->items[i], mark, &rows))
			return false;
		log_info("re-copied %s (not replicated back): %lld rows in %.2f s", tables->items[i], rows, now_s() - t0);
		rep->recopied_tables++;
		rep->recopied_rows += rows;
	}
	return true;
}

/*
 * The session to read the frozen side's sequences in: the fence's, which
 * holds their locks (reading them elsewhere would wait for it), while it
 * lives; `side` when there is none or it died (then nothing holds the
 * sequences, and the caller's fence check retakes it and syncs again).
 */
static PGconn *
sequence_reader(PGconn *fence, PGconn *side)
{
	if (fence != NULL && PQstatus(fence) == CONNECTION_OK)
	{
		PGresult   *r = pg_execute(fence, "SELECT 1", 0, NULL);
		bool		alive = PQresultStatus(r) == PGRES_TUPLES_OK;

		PQclear(r);
		if (alive)
			return fence;
	}
	return side;
}

/*
 * Set every sequence on `to` that also exists on `from` past from's value:
 * last_value + gap in the sequence's direction, within its bounds. On the
 * frozen side `from` is the fence's session when there is one: the fence
 * holds the sequences' locks, so reading them from another session would
 * wait for it (freeze.c). only_forward: `to` takes writes already (a
 * rollback finished after the source was unfrozen): a sequence already
 * past that value is left where it is, never set back.
 */
static bool
sync_sequences(PGconn *from, PGconn *to, int64_t gap, bool only_forward, SwitchReport *rep)
{
	char		gaps[32];
	PGresult   *res;
	PGresult   *r2;
	bool		ok;

	snprintf(gaps, sizeof(gaps), "%" PRId64, gap);
	res = pg_query(from, "read the sequences",
							   "SELECT coalesce(array_agg(pg_catalog.quote_ident(schemaname) || '.' || pg_catalog.quote_ident(sequencename))::text, '{}'),"
							   "       coalesce(array_agg(CASE WHEN increment_by > 0"
							   "                THEN LEAST(max_value::numeric, last_value::numeric + $1::numeric * increment_by)"
							   "                ELSE GREATEST(min_value::numeric, last_value::numeric + $1::numeric * increment_by) END)::text, '{}')"
							   "  FROM pg_catalog.pg_sequences"
							   " WHERE last_value IS NOT NULL AND schemaname NOT IN ('pg_catalog', 'information_schema', 'ferry')",
							   1, (const char *[]) {gaps});
	if (res == NULL || !pg_check_shape(res, 1, 2, "the sequences"))
	{
		PQclear(res);
		return false;
	}
	r2 = pg_query(to, "set the sequences", only_forward ?
				  "SELECT count(pg_catalog.setval(x.s::pg_catalog.regclass,"
				  "        (CASE WHEN q.last_value IS NULL THEN x.v"
				  "              WHEN q.increment_by > 0 THEN GREATEST(x.v, q.last_value::numeric)"
				  "              ELSE LEAST(x.v, q.last_value::numeric) END)::bigint, true))"
				  "  FROM unnest($1::text[], $2::numeric[]) AS x(s, v)"
				  "  LEFT JOIN pg_catalog.pg_sequences q"
				  "    ON pg_catalog.quote_ident(q.schemaname) || '.' || pg_catalog.quote_ident(q.sequencename) = x.s"
				  " WHERE pg_catalog.to_regclass(x.s) IS NOT NULL" :
				  "SELECT count(pg_catalog.setval(s::pg_catalog.regclass, v::bigint, true))"
				  "  FROM unnest($1::text[], $2::numeric[]) AS x(s, v)"
				  " WHERE pg_catalog.to_regclass(s) IS NOT NULL",
				  2, (const char *[]) {PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1)});
	ok = r2 != NULL && pg_check_shape(r2, 1, 1, "set sequences");
	if (ok)
		rep->sequences = atoi(PQgetvalue(r2, 0, 0));
	PQclear(r2);
	PQclear(res);
	return ok;
}

/*
 * Record the poolers' hold in ferry.migration.pooler_hold before it
 * changes anything (pooler.h): paused with their entries at `from`, and
 * whether they may be repointed. Sets s->held (and s->repointed).
 */
static bool
save_hold(Sw *s, PoolerSide from, bool repointed)
{
	char	   *j = pooler_hold_to_json(&s->pf, from, repointed);
	bool		ok = state_set(s->tgt, s->cfg->name, "pooler_hold", j);

	free(j);
	if (ok)
	{
		s->held = true;
		s->repointed |= repointed;
	}
	return ok;
}

/*
 * A hold left by an interrupted run: sets s->held and s->repointed from
 * the record. Without poolers in this run's configuration nothing can
 * resume them: logged with the manual fix. False on a database error or
 * an unreadable record.
 */
static bool
load_hold(Sw *s)
{
	const char *params[1] = {s->cfg->name};
	PGresult   *res = pg_query(s->tgt, "read the poolers' hold", "SELECT pooler_hold FROM ferry.migration WHERE name = $1",
							   1, params);
	PoolerSide	from;
	bool		repointed,
				ok = res != NULL;
	char	   *names = NULL;

	if (ok && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
	{
		ok = pooler_hold_from_json(PQgetvalue(res, 0, 0), &from, &repointed, &names);
		if (!ok)
			log_error("the saved record ferry.migration.pooler_hold is unreadable. Fix: on each PgBouncer in front of the database, make sure its entry points at the server that takes writes, then RESUME it; set pooler_hold to NULL");
		else if (s->pf.n == 0)
			log_error("an interrupted run left PgBouncers paused (%s)%s, and this run has no pgbouncer: in its configuration to resume them. Fix: run again with the same pgbouncer: settings, or on each: %sRESUME the entry",
					  names, repointed ? ", maybe repointed" : "", repointed ? "point the entry back at the server that takes writes, RELOAD, " : "");
		else
		{
			s->held = true;
			s->repointed = repointed;
		}
	}
	free(names);
	PQclear(res);
	return ok;
}

/*
 * Undoing a hold, part 1, before the frozen side is unfrozen: entries that
 * may point elsewhere are pointed back at `home` (prepared first if this
 * run has not). Returns the poolers that could not be (owned, n flags):
 * they stay paused (pooler.h's invariant); NULL when there is no hold.
 */
static bool *
hold_point_back(Sw *s, PoolerSide home)
{
	bool	   *back;
	bool	   *skip;

	if (!s->held || s->pf.n == 0)
		return NULL;
	skip = xcalloc((size_t) s->pf.n, sizeof(bool));
	if (!s->pf.prepared && (s->src == NULL || s->tgt == NULL || !pooler_prepare(&s->pf, s->src, s->tgt, home)))
		log_warn("the PgBouncers' checks failed (above)%s", s->repointed ? "" : ": resuming them as they are");
	if (s->pf.items && s->pf.items[0].database == NULL)
	{
		/* not even their entries are known (a server is down): nothing to resume with */
		log_error("ferry cannot reach both servers to work out the PgBouncers' entries: they stay PAUSED. Fix: run ferry rollback once both are up, or RESUME the entries by hand");
		free(skip);
		return NULL;
	}
	if (!s->repointed)
		return skip;
	back = xcalloc((size_t) s->pf.n, sizeof(bool));
	if (!s->pf.prepared)
		log_error("ferry cannot check where the PgBouncers point: they stay PAUSED. Fix: point each entry at the %s, RELOAD, RESUME it; set ferry.migration.pooler_hold to NULL",
				  home == POOLER_SOURCE ? "source" : "target");
	else
		(void) pooler_repoint_back(&s->pf, home, back);
	for (int i = 0; i < s->pf.n; i++)
		skip[i] = !back[i];
	free(back);
	return skip;
}

/*
 * Part 2, once the home side takes writes again: resume every pooler but
 * the `skip`ped; the record goes when all are resumed. Frees skip.
 */
static void
hold_release(Sw *s, bool *skip, PoolerStats *st)
{
	bool		all;

	if (skip == NULL)
		return;
	all = pooler_resume_except(&s->pf, skip, st);
	for (int i = 0; i < s->pf.n; i++)
		all &= !skip[i];
	if (all && s->tgt && state_set(s->tgt, s->cfg->name, "pooler_hold", NULL))
		s->held = s->repointed = false;
	free(skip);
}

/*
 * The switch (or the rollback) is done, entries repointed and checked:
 * look once more that each still points at `to` (the hook ran since:
 * pooler_recheck repoints one that was put back, and leaves one paused that
 * cannot be), then RESUME the others, so that their queues go on to the new
 * primary. One that cannot be resumed is logged with the fix and the record
 * kept; the switch itself stands.
 */
static void
hold_release_forward(Sw *s, SwitchReport *rep, PoolerSide to)
{
	bool	   *skip;
	bool		all;

	if (s->pf.n == 0)
		return;
	skip = pooler_recheck(&s->pf, to);
	all = pooler_resume_except(&s->pf, skip, &rep->pool);
	for (int i = 0; i < s->pf.n; i++)
		all &= !skip[i];
	free(skip);
	if (all && state_set(s->tgt, s->cfg->name, "pooler_hold", NULL))
		s->held = s->repointed = false;
	fault_point("switchover.after-resume");
}

/*
 * Put everything back after a failed step before the switch: source
 * writable again, reverse objects gone, phase following. Replication keeps
 * running (a `ferry start` elsewhere never stopped; ours is stopped here,
 * the slot keeps the position). False (logged) when the source could not
 * be unfrozen: phase switching stays, so ferry rollback can try again.
 */
static bool
abort_switchover(Sw *s)
{
	bool		ok = true;
	bool	   *skip;

	log_warn("switchover aborted: putting the source back in service");
	s->src = reconnect(s->src, s->cfg->source, "source");
	s->tgt = reconnect(s->tgt, s->cfg->target, "target");
	/*
	 * The switch hook failed (exit status, timeout, SIGINT): it is taken to
	 * have switched nothing. The intent goes first, so that a crash from
	 * here on is undone by the rerun, as the abort would have; if it cannot
	 * be cleared, nothing is undone (a rerun finishes forward).
	 */
	if (s->intent && s->repointed && pooler_unpaused_at(&s->pf, POOLER_TARGET) > 0)
	{
		/* the target is not frozen: what those clients wrote there is on no other side */
		log_error("a PgBouncer serves the target unpaused, or may have (above), so the switchover cannot be undone and goes only forward: the source stays frozen and reverse replication stays. Fix: remove what failed (see above), then run ferry switchover again: it finishes the switch (running the switch hook again)");
		return false;
	}
	if (s->intent && (s->tgt == NULL || !state_set(s->tgt, s->cfg->name, "switch_hook_at", NULL)))
	{
		log_error("could not record on the target that the switch is abandoned, so nothing is undone: the source stays frozen%s. Fix: once the target is reachable, run ferry switchover again (it finishes the switch, running the switch hook again) or ferry rollback",
				  s->held ? " and the PgBouncers stay paused" : "");
		return false;
	}
	s->intent = false;
	if (s->reverse_made)
		drop_reverse(s);
	/* the poolers back at the source (still paused) before it takes writes, released after */
	skip = hold_point_back(s, POOLER_SOURCE);
	if (s->frozen)
	{
		ok = s->src != NULL && freeze_release(s->src, s->cfg, "source", &s->fz);
		if (!ok)
			log_error("COULD NOT UNFREEZE THE SOURCE. Fix: run ferry rollback (it unfreezes an interrupted switchover), or by hand: ALTER DATABASE %s RESET default_transaction_read_only",
					  s->fz.dbname ? s->fz.dbname : "<db>");
	}
	/* even onto a source still frozen: a client that gets an error beats one held without end */
	hold_release(s, skip, NULL);
	if (s->tgt && ok)
	{
		if (s->freeze_saved)
			save_freeze(s->tgt, s->cfg->name, "source_freeze", NULL);
		state_set(s->tgt, s->cfg->name, "phase", "following");
	}
	if (ok)
		log_info("the source accepts writes again and replication continues; nothing was lost");
	return ok;
}

static bool undo_switching(Sw *s);

static void
sw_release(Sw *s)
{
	follower_stop(&s->fol);
	freeze_release_record(&s->fz);
	pooler_fleet_release(&s->pf);
	if (s->rcfg)
	{
		config_release(s->rcfg);
		free(s->rcfg);
	}
	pg_finish(s->src);
	pg_finish(s->tgt);
	pg_finish(s->lock_conn);
}

/* Connect both control sessions and take the NAME:switchover lock. */
static bool
sw_connect(Sw *s)
{
	char	   *lock = xasprintf("%s:switchover", s->cfg->name);
	bool		ok;

	s->tgt = control_connect(s->cfg->target, "target");
	s->src = s->tgt ? control_connect(s->cfg->source, "source") : NULL;
	s->lock_conn = s->src ? pg_connect(s->cfg->target, "target", PG_CONN_SQL, NULL) : NULL;
	ok = s->lock_conn != NULL && state_lock(s->lock_conn, lock);
	free(lock);
	if (ok && state_table_exists(s->tgt, "migration") != 1)
	{
		log_error("the target has no ferry migration state. Fix: check --target, or start the migration with ferry start");
		ok = false;
	}
	/* the reverse migration keeps its state in the source's schema ferry: refuse another role's before freezing */
	return ok && state_ensure(s->tgt, "target") && state_schema_trusted(s->src, "source");
}

/* Milliseconds left until `until` (now_s() clock), at least a few seconds' grace. */
static int
ms_until(double until)
{
	double		ms = (until - now_s()) * 1000;

	return ms < 5000 ? 5000 : (int) ms;
}

/*
 * Was the switch hook about to run, or did it run (switch_hook_at set)?
 * 1 yes, 0 no, -1 on error (logged).
 */
static int
switch_intent(PGconn *tgt, const char *name)
{
	const char *params[1] = {name};
	PGresult   *res = pg_query(tgt, "read the switch intent",
							   "SELECT switch_hook_at IS NOT NULL FROM ferry.migration WHERE name = $1", 1, params);
	int			r = -1;

	if (res != NULL && pg_check_shape(res, 1, 1, "the switch intent"))
		r = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	return r;
}

/*
 * The last word from the frozen side (the source; the target if back, at
 * rollback): a sentinel, applied on the other side, with the fence checked
 * after it (freeze_fence_held): a fence that still answers has held since
 * before the sentinel, so every change committed on the frozen side is on
 * the other, and none can commit until the hand-over. A fence found gone
 * (before the sentinel or after it) is taken again and the drain repeated;
 * *retaken is then set: writes got through while it was down, which
 * keyless tables and sequences do not carry. lost: the fence is known to be
 * gone, take it first. Waits until `until`. False (logged) on failure or
 * timeout.
 */
static bool
drain_fenced(Sw *s, bool back, double until, bool lost, bool *retaken)
{
	const char *side = back ? "target" : "source";
	PGconn	   *frozen = back ? s->tgt : s->src;
	const char *name = back ? s->rcfg->name : s->cfg->name;

	for (int round = 0; round < 3; round++)
	{
		uint64_t	sentinel;
		int			r;

		if (lost || round > 0 || !freeze_fence_held(&s->fz, side))
		{
			if (!freeze_fence_retake(frozen, back ? s->cfg->target : s->cfg->source, s->cfg, side, &s->fz,
									 ms_until(until)))
				return false;
			*retaken = true;
		}
		if (!emit(frozen, SWITCHOVER_SENTINEL_PREFIX, name, &sentinel))
			return false;
		r = wait_applied(back ? s->src : s->tgt, name, sentinel, until, &s->fol);
		if (r != 1)
		{
			if (r == 0)
				log_error("the %s did not apply the %s's last changes within --timeout %d s. Fix: see ferry status, then try again",
						  back ? "source" : "target", side, s->cfg->timeout);
			return false;
		}
		if (freeze_fence_held(&s->fz, side))
			return true;
	}
	log_error("the fence on the %s was lost three times in a row: something ends ferry's sessions there. Fix: find what (the server log: pg_terminate_backend, idle_in_transaction_session_timeout, a proxy's idle timeout), then try again",
			  side);
	return false;
}

/*
 * After the switch hook: hand the source over (freeze_hand_over), record
 * phase switched. A fence lost meanwhile (the hook may have run long) let
 * writes through on the source: they are drained into the target first
 * (keyless tables and sequences are not re-copied: the target takes writes
 * now). t_freeze < 0: the window is unknown (a rerun). False (logged) when
 * the source's late writes could not be brought over: phase switching
 * stays, with the intent, so a rerun finishes from here.
 */
static bool
finish_switch(Sw *s, SwitchReport *rep, double t_freeze)
{
	char		w[32];
	HandOver	h;

	for (int round = 0; (h = freeze_hand_over(s->src, s->cfg, "source", &s->fz)) == HAND_OVER_FENCE_LOST; round++)
	{
		bool		retaken = false;

		log_warn("bringing over to the target what was written on the source while its fence was down");
		if (round == 3 || !drain_fenced(s, false, now_s() + s->cfg->timeout, true, &retaken))
		{
			log_error("the switch hook has run, but what the source took while its fence was down may not be on the target. Fix: run ferry switchover again: it finishes the switch (and runs the switch hook again)");
			return false;
		}
	}
	if (h == HAND_OVER_SESSIONS_LEFT)
		log_warn("some sessions on the source could not be ended after the switch: they may write there (see above)");
	rep->window_seconds = t_freeze < 0 ? 0 : now_s() - t_freeze;
	snprintf(w, sizeof(w), "%.3f", rep->window_seconds * 1000);
	if (!state_set(s->tgt, s->cfg->name, "phase", "switched") ||
		!state_set(s->tgt, s->cfg->name, "switched_at", "now") ||
		(t_freeze >= 0 && !state_set(s->tgt, s->cfg->name, "switch_window_ms", w)))
		log_error("could not record phase switched on the target; the switch itself is done. Fix: run ferry switchover again to record it");
	return true;
}

/*
 * A switchover that died in or around its switch hook (the intent is set):
 * the application may write on the target already, so it only goes
 * forward: the source stays frozen, the reverse objects stay. The fence
 * (gone with the dead process) is taken again, what the source took
 * meanwhile drained, the switch hook run again if run_hook (hooks must be
 * idempotent; rollback passes false: its own hook points the application
 * back), the source handed over, phase switched, the forward slot dropped.
 * False (logged): phase switching stays, the next run tries again.
 */
static bool
resume_switch(Sw *s, SwitchReport *rep, bool run_hook)
{
	bool		retaken = false;
	int			r;

	log_warn("an earlier switchover of %s was interrupted in or after its switch hook: the application may write on the target already, so ferry is finishing it forward (the source stays frozen, reverse replication stays)%s",
			 s->cfg->name, run_hook ? "; the switch hook runs again" : "");
	r = load_freeze(s->tgt, s->cfg->name, "source_freeze", &s->fz);
	if (r == 0)
		log_error("the source's freeze record is missing from ferry's state. Fix: make sure no session writes on the source, then set phase to switched in ferry.migration on the target by hand");
	if (r != 1)
		return false;
	s->fz.pubname = xstrdup(s->cfg->name);
	s->frozen = s->freeze_saved = s->intent = true;
	if (slot_exists(s->tgt, s->rcfg->name) == 1)
		rep->reverse = true;
	if (!follower_ensure(&s->fol, s->tgt, s->cfg, false) ||
		!drain_fenced(s, false, s->deadline, true, &retaken) || !load_hold(s))
		return false;
	fault_point("switchover.resume-drained");
	if (s->pf.n > 0 &&
		(!pooler_prepare(&s->pf, s->src, s->tgt, POOLER_SOURCE) || !save_hold(s, POOLER_SOURCE, true) ||
		 !pooler_repoint(&s->pf, POOLER_TARGET)))
	{
		log_error("the PgBouncers could not be pointed at the target (above): the switchover stays half done, and only goes forward. Fix: remove the cause, then run ferry switchover again");
		return false;
	}
	if (run_hook && !hook_run(s->cfg, "switch"))
	{
		log_error("the switch hook failed again: the switchover stays half done, and only goes forward. Fix: make the hook succeed (it must be idempotent), then run ferry switchover again");
		return false;
	}
	hold_release_forward(s, rep, POOLER_TARGET);
	if (!finish_switch(s, rep, -1))
		return false;
	log_info("switched over: the target takes writes");
	follower_stop(&s->fol);
	keep_or_drop_forward_slot(s->src, s->cfg, rep->reverse);
	rep->total_seconds = now_s() - s->t_start;
	return true;
}

bool
switchover_run(FerryConfig *cfg, SwitchVerifyFn verify, SwitchReport *rep)
{
	Sw			s;
	char	   *phase = NULL;
	uint64_t	sentinel;
	double		t_freeze,
				t_drain;
	bool		ok = false;
	int			r;

	memset(&s, 0, sizeof(s));
	memset(rep, 0, sizeof(*rep));
	s.cfg = cfg;
	s.rcfg = config_reversed(cfg);
	pooler_fleet_init(&s.pf, cfg);
	s.t_start = now_s();
	s.deadline = s.t_start + cfg->timeout;
	if (!sw_connect(&s))
		goto done;
	phase = read_phase(s.tgt, cfg->name, NULL);
	if (phase == NULL)
		goto done;
	if (strcmp(phase, "switched") == 0)
	{
		log_error("migration %s is already switched over. Fix: ferry rollback to go back to the source, ferry cleanup to finish", cfg->name);
		goto done;
	}
	if (strcmp(phase, "switching") == 0 && (r = switch_intent(s.tgt, cfg->name)) != 0)
	{
		/* killed in or around the switch hook: only forward */
		ok = r == 1 && resume_switch(&s, rep, true);
		goto done;
	}
	if (strcmp(phase, "switching") == 0)
	{
		/*
		 * Killed before the switch hook: the source may still be frozen: its
		 * saved record is what unfreezes it (a new one would record the
		 * frozen state as the prior one), and reverse objects may be left.
		 * Undo it all, then start over.
		 */
		log_warn("an earlier switchover of %s was interrupted: undoing it first, then carrying on from the start", cfg->name);
		if (!undo_switching(&s))
			goto done;
		freeze_release_record(&s.fz);
		s.frozen = s.freeze_saved = s.reverse_made = false;
		if (s.held)
		{
			log_error("the interrupted switchover's PgBouncers are not all resumed (above): not starting over. Fix: see above, then run ferry switchover again");
			goto done;
		}
	}
	else if (strcmp(phase, "following") != 0)
	{
		log_error("migration %s is in phase %s, not following: the copy is not finished. Fix: run ferry start and wait until ferry status shows phase following",
				  cfg->name, phase);
		goto done;
	}

	/* 1. preconditions */
	log_info("step 1/10: preconditions");
	if (!preconditions(&s) ||
		!freeze_prepare(s.src, cfg, cfg->freeze_mode, "source", cfg->name, &s.fz) ||
		!pooler_prepare(&s.pf, s.src, s.tgt, POOLER_SOURCE) ||
		!follower_ensure(&s.fol, s.tgt, cfg, false) ||
		!wait_lag_ok(&s, s.src, s.tgt, s.cfg))
		goto done;

	/* 2. pre_freeze hook: nothing is frozen yet */
	log_info("step 2/10: pre_freeze hook");
	if (!hook_run(cfg, "pre_freeze"))
		goto done;
	if (pg_interrupted())
		goto done;

	/* 3. freeze: the poolers hold their clients first, then the source itself */
	log_info("step 3/10: %sfreezing writes on the source (%s)", s.pf.n ? "pausing the PgBouncers, then " : "", s.fz.mode);
	if (!save_freeze(s.tgt, cfg->name, "source_freeze", &s.fz) ||
		!state_set(s.tgt, cfg->name, "switch_hook_at", NULL) ||
		!state_set(s.tgt, cfg->name, "phase", "switching"))
		goto done;
	s.freeze_saved = true;
	if (s.pf.n > 0)
	{
		if (!save_hold(&s, POOLER_SOURCE, false))
			goto abort;
		if (!pooler_pause(&s.pf, cfg->pause_timeout * 1000, s.src, "source"))
			goto abort;
		fault_point("switchover.after-pause");
	}
	t_freeze = now_s();
	s.frozen = true;
	if (!freeze_apply(s.src, cfg->source, cfg, "source", &s.fz, (int) ((s.deadline - now_s()) * 1000)))
		goto abort;
	save_freeze(s.tgt, cfg->name, "source_freeze", &s.fz);	/* with the roles revoked */
	fault_point("switchover.after-freeze");
	log_info("source frozen in %.3f s", now_s() - t_freeze);
	pooler_watch(&s.pf);

	/* 4. drain */
	log_info("step 4/10: draining the last changes");
	t_drain = now_s();
	if (!emit(s.src, SWITCHOVER_SENTINEL_PREFIX, cfg->name, &sentinel))
		goto abort;
	r = wait_applied(s.tgt, cfg->name, sentinel, s.deadline, &s.fol);
	if (r != 1)
	{
		if (r == 0)
			log_error("the target did not apply the last changes within --timeout %d s (replication stopped or too slow). Fix: see ferry status and the ferry start log, then try again, perhaps with a larger --timeout",
					  cfg->timeout);
		goto abort;
	}
	rep->drain_seconds = now_s() - t_drain;
	log_info("drained in %.3f s", rep->drain_seconds);
	fault_point("switchover.after-drain");
	pooler_watch(&s.pf);

	/* 5. files */
	if (cfg->files_from.n > 0)
	{
		log_info("step 5/10: final sync of %d file trees", cfg->files_from.n);
		if (!files_sync_all(cfg, s.tgt, (int) (s.deadline - now_s()) + 1))
			goto abort;
	}

	/* 6. tables without a key */
	log_info("step 6/10: re-copying tables without a key");
	if (!recopy_insert_only(s.src, s.tgt, cfg, rep))
		goto abort;

	/* 7. sequences */
	log_info("step 7/10: sequences");
	if (!sync_sequences(sequence_reader(s.fz.fence, s.src), s.tgt, cfg->sequence_gap, false, rep))
		goto abort;
	log_info("set %d sequences on the target to the source's value + %" PRId64, rep->sequences, cfg->sequence_gap);

	/* 8. verify */
	if (cfg->verify)
	{
		log_info("step 8/10: verifying every row while frozen");
		if (!verify(cfg))
		{
			log_error("verify found differences (listed above): not switching. Fix: investigate them; the source is unfrozen and replication continues");
			goto abort;
		}
	}

	/* 9. reverse replication */
	if (!cfg->no_reverse)
	{
		log_info("step 9/10: preparing reverse replication");
		if (!make_reverse(&s))
			goto abort;
		rep->reverse = true;
	}
	fault_point("switchover.after-reverse");
	pooler_watch(&s.pf);
	if (pg_interrupted() || now_s() > s.deadline)
	{
		log_error("%s before the switch. Fix: run ferry switchover again", pg_interrupted() ? "interrupted" : "--timeout reached");
		goto abort;
	}
	/*
	 * The last word from the stream before the switch: a second sentinel,
	 * applied, shows that whatever reached the source since the first (a
	 * hook's freeze might let something through) is on the target; the
	 * fence, checked after it, that nothing can reach it now. A fence that
	 * died meanwhile let writes through that keyless tables and sequences
	 * do not carry: taken again, they are synced again.
	 */
	for (int round = 0;; round++)
	{
		bool		retaken = false;

		if (!drain_fenced(&s, false, s.deadline, false, &retaken))
			goto abort;
		if (!retaken)
			break;
		if (round == 2)
		{
			log_error("the fence on the source keeps being lost. Fix: find what ends ferry's sessions there, then run ferry switchover again");
			goto abort;
		}
		log_info("re-copying tables without a key and setting sequences again: the source took writes while its fence was down");
		if (!recopy_insert_only(s.src, s.tgt, cfg, rep) ||
			!sync_sequences(sequence_reader(s.fz.fence, s.src), s.tgt, cfg->sequence_gap, false, rep))
			goto abort;
	}

	/* 10. switch: forward only from the moment the hook may run (switchover.h) */
	log_info("step 10/10: %sswitch hook", s.pf.n ? "repointing the PgBouncers at the target, " : "");
	if (!state_set(s.tgt, cfg->name, "switch_hook_at", "now"))
		goto abort;
	s.intent = true;
	fault_point("switchover.before-switch-hook");
	/* still paused: undoable, no client has reached the target through them (pooler.h) */
	if (s.pf.n > 0 && (!save_hold(&s, POOLER_SOURCE, true) || !pooler_repoint(&s.pf, POOLER_TARGET)))
	{
		log_warn("no client went through a PgBouncer to the target: pointing them back at the source");
		goto abort;
	}
	fault_point("switchover.after-repoint");
	pooler_watch(&s.pf);		/* the hook may run long: who waits before it */
	if (!hook_run(cfg, "switch"))
	{
		log_warn("if the switch hook pointed part of the application at the target, writes it made there are not on the source");
		goto abort;
	}
	fault_point("switchover.after-switch-hook");
	hold_release_forward(&s, rep, POOLER_TARGET);
	/* end what connected during the freeze (a pool reconnects, to the target now), then drop the fence */
	if (!finish_switch(&s, rep, t_freeze))
		goto done;
	ok = true;
	log_info("switched over: the target takes writes; write downtime %.3f s", rep->window_seconds);

	/* the forward stream is over: stop it; its slot stays as the watch (or goes) */
	follower_stop(&s.fol);
	keep_or_drop_forward_slot(s.src, cfg, rep->reverse);
	rep->total_seconds = now_s() - s.t_start;
	goto done;

abort:
	rep->aborted = true;
	follower_stop(&s.fol);
	abort_switchover(&s);
done:
	free(phase);
	sw_release(&s);
	return ok;
}

/* Whether the rollback kept a forward slot for a retry (rearm_lsn is set): 1, 0, -1 on error. */
static int
rearmed(PGconn *tgt, const char *name)
{
	const char *params[1] = {name};
	PGresult   *res = tgt ? pg_query(tgt, "read the kept slot's position",
									 "SELECT rearm_lsn IS NOT NULL FROM ferry.migration WHERE name = $1", 1, params) : NULL;
	int			r = res == NULL ? -1 : PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';

	PQclear(res);
	return r;
}

/*
 * The rollback, both sides frozen and the reverse stream drained, the
 * watch just read one last time (found: what that look recorded, -1 when
 * it failed): keep the watch slot as the forward slot for a retry
 * (switchover.h). It is the forward slot already, and what it has been
 * advanced past is on the target (ferry's own writes, skipped as such), so
 * it starts exactly where the sides are equal: no gap for a write to fall
 * into, as a new slot's creation would leave (a transaction committing
 * while it waits). Not kept when the old source took writes after the
 * switchover (ferry.source_writes): those are on no other side, so the
 * sides are not equal. True when kept (rearm_lsn recorded).
 */
static bool
rearm_forward(Sw *s, int64_t found)
{
	const char *params[1] = {s->cfg->name};
	PGresult   *res;
	bool		kept;
	long long	stray;

	if (found < 0)
	{
		log_warn("no replication slot kept on the source for a retry: the watch could not be read (above), so ferry cannot tell that both sides are equal");
		return false;
	}
	stray = watch_recorded(s->tgt, s->cfg->name);
	if (stray != 0)
	{
		char		n[32];

		snprintf(n, sizeof(n), "%lld", stray);
		log_warn("no replication slot kept on the source for a retry: the old source took %s changes after the switchover that are not on the target (ferry status lists them), so the sides are not equal. Trying again needs a new target",
				 stray < 0 ? "some" : n);
		return false;
	}
	/* a running ferry start's reverse follower may be taking its own look at the watch just now: wait for it */
	for (int waited = 0;; waited += 100)
	{
		res = pg_query(s->src, "read the forward slot's position",
					   "SELECT confirmed_flush_lsn::text, active FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
					   1, params);
		if (res == NULL || PQntuples(res) != 1 || PQgetvalue(res, 0, 1)[0] != 't' || waited >= SWITCH_SLOT_RELEASE_MS)
			break;
		PQclear(res);
		usleep(100000);
	}
	kept = res && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) && PQgetvalue(res, 0, 1)[0] != 't' &&
		state_set(s->tgt, s->cfg->name, "rearm_lsn", PQgetvalue(res, 0, 0));
	/* and if that look found a write on the old source after all, the sides are not equal */
	if (kept && watch_recorded(s->tgt, s->cfg->name) != 0)
	{
		(void) state_set(s->tgt, s->cfg->name, "rearm_lsn", NULL);
		log_warn("no replication slot kept on the source for a retry: the watch's last look found changes on the old source that are not on the target (ferry status lists them). Trying again needs a new target");
		PQclear(res);
		return false;
	}
	if (kept)
		log_info("kept replication slot %s on the source at %s, where both sides are equal: ferry start follows the source again from there, for another switchover; until then it retains the source's WAL (ferry cleanup drops it)",
				 s->cfg->name, PQgetvalue(res, 0, 0));
	else
		log_warn("no replication slot kept on the source for a retry (its position could not be read or recorded): trying again needs a new target");
	PQclear(res);
	return kept;
}

int
switchover_follow_again(FerryConfig *cfg)
{
	const char *params[1] = {cfg->name};
	PGconn	   *tgt = pg_connect(cfg->target, "target", PG_CONN_SQL, NULL);
	PGconn	   *src = NULL;
	PGresult   *res = NULL;
	Freeze		fz;
	char	   *lsn = NULL;
	int			r = -1;

	memset(&fz, 0, sizeof(fz));
	if (tgt == NULL)
		return -1;
	if (state_table_exists(tgt, "migration") != 1)
	{
		r = 0;
		goto done;
	}
	if (!state_ensure(tgt, "target"))
		goto done;
	res = pg_query(tgt, "read the migration state",
				   "SELECT phase = 'rolled_back', rearm_lsn::text FROM ferry.migration WHERE name = $1", 1, params);
	if (res == NULL)
		goto done;
	if (PQntuples(res) != 1 || PQgetvalue(res, 0, 0)[0] != 't')
	{
		r = 0;
		goto done;
	}
	if (PQgetisnull(res, 0, 1))
	{
		log_error("migration %s was rolled back without keeping a replication slot on the source, so the target cannot catch up. Fix: ferry cleanup, then start over with an empty target database", cfg->name);
		goto done;
	}
	lsn = xstrdup(PQgetvalue(res, 0, 1));
	src = pg_connect(cfg->source, "source", PG_CONN_SQL, NULL);
	if (src == NULL || !state_lock(tgt, cfg->name))
		goto done;
	if (slot_exists(src, cfg->name) != 1)
	{
		log_error("migration %s was rolled back keeping replication slot %s on the source, but the slot is gone (dropped by hand?), so the target cannot catch up. Fix: ferry cleanup, then start over with an empty target database",
				  cfg->name, cfg->name);
		goto done;
	}
	/* the target as it was before the switchover: writable (its rollback froze it) */
	if (load_freeze(tgt, cfg->name, "target_freeze", &fz) == 1 && !freeze_release(tgt, cfg, "target", &fz))
		goto done;
	PQclear(res);
	{
		const char *p2[2] = {cfg->name, lsn};

		res = pg_query(tgt, "follow again from the kept slot",
					   "WITH m AS (UPDATE ferry.migration SET phase = 'following', switched_at = NULL, switch_window_ms = NULL,"
					   "   switch_hook_at = NULL, reverse = false, source_freeze = NULL, target_freeze = NULL, pooler_hold = NULL,"
					   "   rolled_back_at = NULL, rollback_window_ms = NULL, rearm_lsn = NULL, updated_at = pg_catalog.now()"
					   "   WHERE name = $1 RETURNING name)"
					   " UPDATE ferry.apply_progress p SET applied_lsn = GREATEST(p.applied_lsn, $2::pg_catalog.pg_lsn)"
					   "   FROM m WHERE p.migration = m.name",
					   2, p2);
	}
	if (res == NULL)
		goto done;
	log_info("migration %s was rolled back with a slot kept on the source: following the source again from %s (the target is writable again, as before the switchover)",
			 cfg->name, lsn);
	r = 1;

done:
	PQclear(res);
	freeze_release_record(&fz);
	free(lsn);
	pg_finish(src);
	pg_finish(tgt);
	return r;
}

/* Rollback of an interrupted switchover: unfreeze the source. */
static bool
undo_switching(Sw *s)
{
	int			r = load_freeze(s->tgt, s->cfg->name, "source_freeze", &s->fz);

	if (r < 0)
		return false;
	s->frozen = r == 1;
	s->reverse_made = true;
	s->freeze_saved = s->frozen;
	if (!load_hold(s))
		return false;
	return abort_switchover(s);
}

/*
 * The rollback had drained the reverse stream (the source's reverse row says
 * rolled_back, and its follower stopped) when the target's fence was lost:
 * the process killed (a rerun carries on) or its session ended during the
 * rollback hook. The target is read-only, but a session that overrides that
 * (BEGIN READ WRITE) wrote there since, and the application may still point
 * at it. Take the fence again (ending the target's sessions), let the reverse
 * stream run again and drain it into the source, then mark it drained again.
 * The source takes writes already: tables without a key are not re-copied
 * (the re-copy would drop what the application wrote there; their inserts
 * are in the stream), and sequences only move forward. False (logged): the
 * target stays frozen, phase rolling_back, a rerun carries on from here.
 */
static bool
redrain_target(Sw *s, SwitchReport *rep)
{
	bool		retaken = false;
	bool		ok;

	log_warn("the target's fence was lost after the rollback's drain: taking it again and bringing to the source what the target took since");
	if (s->fz.pubname == NULL)
		s->fz.pubname = xstrdup(s->rcfg->name);
	follower_stop(&s->fol);
	if (!state_set(s->src, s->rcfg->name, "phase", "following"))
		return false;
	/* a ferry start that saw the drained phase is on its way out (it looks once a second): let it go first */
	for (int i = 0; i < 30 && state_lock_held(s->src, s->rcfg->name) == 1; i++)
		usleep(100000);
	ok = follower_ensure(&s->fol, s->src, s->rcfg, true) &&
		drain_fenced(s, true, now_s() + s->cfg->timeout, true, &retaken) &&
		sync_sequences(sequence_reader(s->fz.fence, s->tgt), s->src, s->cfg->sequence_gap, true, rep) &&
		state_set(s->src, s->rcfg->name, "phase", "rolled_back");
	follower_stop(&s->fol);
	if (!ok)
	{
		log_error("could not bring over what the target took while its fence was down; the target stays frozen. Fix: see above, then run ferry rollback again (it carries on from here)");
		return false;
	}
	log_warn("updates and deletes of tables without a key, and any change to tables created on the target after the switchover, that a session made on the target while its fence was down are not on the source (only the inserts of the former): compare them (ferry verify with --source and --target swapped)");
	return true;
}

bool
rollback_run(FerryConfig *cfg, SwitchReport *rep)
{
	Sw			s;
	char	   *phase = NULL;
	bool		reverse = false;
	Freeze		src_fz;
	uint64_t	sentinel;
	double		t_freeze;
	bool		pooled_home = false;	/* the PgBouncers point at the source (checked) */
	bool		kept_slot = false;	/* the forward slot stays for a retry (rearm_forward) */
	bool		ok = false;
	int			r;

	memset(&s, 0, sizeof(s));
	memset(&src_fz, 0, sizeof(src_fz));
	memset(rep, 0, sizeof(*rep));
	s.cfg = cfg;
	s.rcfg = config_reversed(cfg);
	pooler_fleet_init(&s.pf, cfg);
	s.t_start = now_s();
	s.deadline = s.t_start + cfg->timeout;
	if (!sw_connect(&s))
		goto done;
	phase = read_phase(s.tgt, cfg->name, &reverse);
	if (phase == NULL)
		goto done;
	if (strcmp(phase, "switching") == 0 && (r = switch_intent(s.tgt, cfg->name)) != 0)
	{
		/*
		 * Killed in or around the switch hook: the application may write on
		 * the target, and undoing the switch would lose that. Finish it (the
		 * switch hook is not run again: the rollback hook points the
		 * application back), then roll back as after any switchover.
		 */
		if (r < 0 || !resume_switch(&s, rep, false))
			goto done;
		log_info("the interrupted switchover is finished: rolling it back");
		freeze_release_record(&s.fz);
		s.frozen = s.freeze_saved = s.intent = false;
		free(phase);
		phase = read_phase(s.tgt, cfg->name, &reverse);
		if (phase == NULL)
			goto done;
	}
	else if (strcmp(phase, "switching") == 0)
	{
		log_info("migration %s has an interrupted switchover: unfreezing the source", cfg->name);
		ok = undo_switching(&s);
		goto done;
	}
	if (strcmp(phase, "switched") != 0 && strcmp(phase, "rolling_back") != 0)
	{
		log_error("migration %s is in phase %s: there is no switchover to roll back. Fix: check --name", cfg->name, phase);
		goto done;
	}
	if (!reverse)
	{
		log_error("migration %s was switched over with --no-reverse: writes made on the target since cannot be brought back. Fix: none by ferry; migrate the target to the source as a new migration if needed",
				  cfg->name);
		goto done;
	}
	{
		r = load_freeze(s.tgt, cfg->name, "source_freeze", &src_fz);
		if (r == 0)
			log_error("the source's freeze record is missing from ferry's state. Fix: unfreeze the source by hand after rolling back (ALTER DATABASE <db> RESET default_transaction_read_only)");
		if (r != 1)
			goto done;

		/*
		 * An interrupted rollback may have left the target frozen: its saved
		 * record holds what the target was like before, a new one would
		 * record the frozen state and an abort would keep it frozen.
		 */
		if (strcmp(phase, "rolling_back") == 0)
		{
			r = load_freeze(s.tgt, cfg->name, "target_freeze", &s.fz);
			if (r < 0)
				goto done;
			if (r == 1)
				log_info("carrying on an interrupted rollback with the target's freeze record from it (%s)", s.fz.mode);
		}
	}

	/* the PgBouncers (their entries at the target now): a hold an interrupted rollback left is carried on */
	if (s.pf.n > 0 && (!load_hold(&s) || !pooler_prepare(&s.pf, s.src, s.tgt, POOLER_TARGET)))
		goto done;

	/*
	 * An interrupted rollback that got past the drain (the source's reverse
	 * row says rolled_back, written just before the source is unfrozen) lost
	 * the target's fence with its process: a BEGIN READ WRITE session may
	 * have written on the target since. If the source was not unfrozen yet
	 * (its reverse row's rolled_back_at is set once it is), the rollback is
	 * simply carried on from the target's freeze, drain included; if it was,
	 * the application may be on both: the target's fence is taken again and
	 * what it took since drained (redrain_target), then the rollback is
	 * finished.
	 */
	if (strcmp(phase, "rolling_back") == 0 && s.fz.mode != NULL && state_table_exists(s.src, "migration") == 1)
	{
		const char *params[1] = {s.rcfg->name};
		PGresult   *res = pg_query(s.src, "read the reverse state",
								   "SELECT phase, rolled_back_at IS NOT NULL FROM ferry.migration WHERE name = $1", 1, params);
		bool		found = res && PQntuples(res) == 1;
		bool		drained = found && strcmp(PQgetvalue(res, 0, 0), "rolled_back") == 0;
		bool		unfrozen = found && PQgetvalue(res, 0, 1)[0] == 't';

		PQclear(res);
		if (unfrozen)
		{
			log_info("the interrupted rollback had unfrozen the source: finishing it");
			t_freeze = now_s();
			s.frozen = true;
			if (!redrain_target(&s, rep))
				goto done;
			goto rollback_hook;
		}
		if (drained)
		{
			log_info("the interrupted rollback had drained the target, but its fence died with it: draining again");
			if (!state_set(s.src, s.rcfg->name, "phase", "following"))
				goto done;
		}
	}

	/*
	 * 1. the reverse follower and the target's freeze; reverse replication
	 * within --max-lag unless the target is frozen already (an interrupted
	 * rollback carried on: the drain is the check then, and its abort
	 * unfreezes the target)
	 */
	log_info("step 1/6: preconditions");
	if ((s.fz.mode == NULL &&
		 !freeze_prepare(s.tgt, cfg, strcmp(cfg->freeze_mode, "hook") == 0 ? "hook" : cfg->freeze_mode, "target",
						 s.rcfg->name, &s.fz)) ||
		!reverse_unpublished(&s, &s.fz.extra) ||
		!follower_ensure(&s.fol, s.src, s.rcfg, true) ||
		(strcmp(phase, "rolling_back") != 0 && !wait_lag_ok(&s, s.tgt, s.src, s.rcfg)))
		goto done;

	/* 2. freeze the target: the poolers hold their clients first */
	log_info("step 2/6: %sfreezing writes on the target (%s)", s.pf.n ? "pausing the PgBouncers, then " : "", s.fz.mode);
	if (!save_freeze(s.tgt, cfg->name, "target_freeze", &s.fz) ||
		!state_set(s.tgt, cfg->name, "phase", "rolling_back"))
		goto done;
	if (s.pf.n > 0 && (!save_hold(&s, POOLER_TARGET, s.repointed) ||
					   !pooler_pause(&s.pf, cfg->pause_timeout * 1000, s.tgt, "target")))
		goto abort;
	t_freeze = now_s();
	s.frozen = true;
	if (s.fz.pubname == NULL)
		s.fz.pubname = xstrdup(s.rcfg->name);	/* a record carried on from an interrupted rollback */
	if (!freeze_apply(s.tgt, cfg->target, cfg, "target", &s.fz, (int) ((s.deadline - now_s()) * 1000)))
		goto abort;
	save_freeze(s.tgt, cfg->name, "target_freeze", &s.fz);
	fault_point("rollback.after-freeze");
	pooler_watch(&s.pf);

	/* 3. drain the reverse stream into the source */
	log_info("step 3/6: draining the target's last changes into the source");
	if (!emit(s.tgt, SWITCHOVER_SENTINEL_PREFIX, s.rcfg->name, &sentinel))
		goto abort;
	r = wait_applied(s.src, s.rcfg->name, sentinel, s.deadline, &s.fol);
	if (r != 1)
	{
		if (r == 0)
			log_error("the source did not apply the target's last changes within --timeout %d s. Fix: see the ferry start log, then try again", cfg->timeout);
		goto abort;
	}
	rep->drain_seconds = now_s() - t_freeze;

	/* 4. tables without a key, sequences */
	log_info("step 4/6: re-copying tables without a key and setting sequences on the source");
	if (!publication_guard_keyless(s.src, cfg, KEYLESS_SILENT) ||
		!recopy_insert_only(s.tgt, s.src, s.rcfg, rep) ||
		!recopy_list(s.tgt, s.src, &s.fz.extra, s.rcfg->name, rep) ||
		!sync_sequences(sequence_reader(s.fz.fence, s.tgt), s.src, cfg->sequence_gap, false, rep))
		goto abort;

	/* the last word from the target, with its fence checked after it (as at switchover) */
	for (int round = 0;; round++)
	{
		bool		retaken = false;

		if (!drain_fenced(&s, true, s.deadline, false, &retaken))
			goto abort;
		if (!retaken)
			break;
		if (round == 2)
			goto abort;
		if (!recopy_insert_only(s.tgt, s.src, s.rcfg, rep) ||
			!recopy_list(s.tgt, s.src, &s.fz.extra, s.rcfg->name, rep) ||
			!sync_sequences(sequence_reader(s.fz.fence, s.tgt), s.src, cfg->sequence_gap, false, rep))
			goto abort;
	}

	/* the poolers to the source while still paused: undoable until the source takes writes */
	pooler_watch(&s.pf);
	if (s.pf.n > 0 && (!save_hold(&s, POOLER_TARGET, true) || !pooler_repoint(&s.pf, POOLER_SOURCE)))
	{
		log_warn("no client went through a PgBouncer to the source: pointing them back at the target");
		goto abort;
	}
	pooled_home = true;

	/* 5. the source takes writes again */
	log_info("step 5/6: unfreezing the source");
	if (!state_set(s.src, s.rcfg->name, "phase", "rolled_back"))	/* the reverse follower stops */
		goto abort;
	fault_point("rollback.after-drain");
	/*
	 * The watch's last look at the old source (watch.h), while it is still
	 * frozen, then the watch goes: once the source is unfrozen, the
	 * application's writes there are not writes the new primary misses,
	 * and a reverse follower stopping after this would report them so.
	 */
	if (slot_exists(s.src, cfg->name) == 1)
	{
		int64_t		found;

		/*
		 * Decided afresh each time the source is still frozen here: a kept
		 * slot an earlier, interrupted run recorded made the watch skip its
		 * looks since (watch.c), so it must be read again first.
		 */
		if (!state_set(s.tgt, cfg->name, "rearm_lsn", NULL))
			goto done;
		found = watch_poll_migration(s.src, s.tgt, true, cfg->name);

		if (found < 0)
			log_warn("could not read the watch on the source one last time: a write that reached it since its last look may go unreported");
		kept_slot = rearm_forward(&s, found);
		if (!kept_slot)
			drop_slot_when_released(s.src, cfg->name, "source");	/* the watch */
		/* a forward slot again: the application's inserts into keyless tables are published from here on */
		else if (!publication_guard_keyless(s.src, cfg, KEYLESS_INSERTS))
			log_warn("could not publish the inserts of tables without a key again: after ferry start follows again, verify may show them different until the next switchover re-copies them");
	}
	else
		kept_slot = rearmed(s.tgt, cfg->name) == 1 && slot_exists(s.src, cfg->name) == 1;
	if (!freeze_release(s.src, cfg, "source", &src_fz))
	{
		log_error("could not unfreeze the source. Fix: run ferry rollback again (it finishes from here), or by hand: ALTER DATABASE %s RESET default_transaction_read_only",
				  src_fz.dbname ? src_fz.dbname : "<db>");
		goto done;
	}
	/* from here on a rerun only finishes (redrain_target): the source may take writes */
	if (!state_set(s.src, s.rcfg->name, "rolled_back_at", "now"))
		log_warn("could not record on the source that it was unfrozen; a rerun of an interrupted rollback would re-copy its tables without a key");

	/* 6. rollback hook */
rollback_hook:
	/* an interrupted rollback finished from here: its poolers, wherever they point, go to the source */
	if (s.pf.n > 0 && !pooled_home && (!save_hold(&s, POOLER_TARGET, true) || !pooler_repoint(&s.pf, POOLER_SOURCE)))
	{
		log_error("the PgBouncers could not be pointed at the source (above); the rollback has unfrozen the source and only goes forward. Fix: remove the cause, then run ferry rollback again");
		goto done;
	}
	log_info("step 6/6: rollback hook");
	pooler_watch(&s.pf);
	if (!hook_run(cfg, "rollback"))
		log_error("the rollback hook failed: the source takes writes again, but the application may still point at the target (which is read-only). Fix: point it at the source by hand");
	hold_release_forward(&s, rep, POOLER_SOURCE);
	fault_point("rollback.after-hook");
	for (int round = 0;; round++)
	{
		HandOver	h = freeze_hand_over(s.tgt, cfg, "target", &s.fz);

		if (h == HAND_OVER_SESSIONS_LEFT)
			log_warn("some sessions on the target could not be ended after the rollback: they may write there (see above)");
		if (h != HAND_OVER_FENCE_LOST)
			break;
		/* the reverse stream was drained and the source takes writes: bring over what got in since */
		if (round == 3 || !redrain_target(&s, rep))
		{
			log_error("the target's fence was lost after its last drain, and what a session wrote there meanwhile (BEGIN READ WRITE) may not be on the source. Fix: run ferry rollback again: it takes the fence again and brings it over");
			goto done;
		}
	}
	rep->window_seconds = now_s() - t_freeze;
	{
		char		w[32];

		snprintf(w, sizeof(w), "%.3f", rep->window_seconds * 1000);
		state_set(s.tgt, cfg->name, "phase", "rolled_back");
		state_set(s.tgt, cfg->name, "rolled_back_at", "now");
		state_set(s.tgt, cfg->name, "rollback_window_ms", w);
	}
	ok = true;
	log_info("rolled back: the source takes writes; write downtime %.3f s; the target stays read-only", rep->window_seconds);
	follower_stop(&s.fol);
	drop_slot_when_released(s.tgt, s.rcfg->name, "target");
	/* kept for a retry: not dropped even if a ferry start already follows again from it (rearm_lsn cleared) */
	if (!kept_slot && rearmed(s.tgt, cfg->name) != 1)
		drop_slot_when_released(s.src, cfg->name, "source");	/* the watch (watch.h) */
	(void) publication_guard_keyless(s.src, cfg, KEYLESS_INSERTS);	/* as ferry start made it */
	rep->total_seconds = now_s() - s.t_start;
	goto done;

abort:
	rep->aborted = true;
	follower_stop(&s.fol);
	if (s.src)
		(void) publication_guard_keyless(s.src, cfg, KEYLESS_GUARD);	/* the old source again */
	s.tgt = reconnect(s.tgt, cfg->target, "target");
	{
		/* the poolers back at the target (still paused), released once it takes writes again */
		bool	   *skip = hold_point_back(&s, POOLER_TARGET);

		if (s.tgt && freeze_release(s.tgt, cfg, "target", &s.fz))
		{
			save_freeze(s.tgt, cfg->name, "target_freeze", NULL);
			state_set(s.tgt, cfg->name, "phase", "switched");
			/* switched again: the forward slot is the watch once more, not kept for a retry */
			state_set(s.tgt, cfg->name, "rearm_lsn", NULL);
			log_warn("rollback aborted: the target takes writes again");
		}
		else
			log_error("rollback aborted, and the target may still be frozen (%s): ferry could not undo that. Fix: once the target is reachable run ferry rollback again (it continues from the freeze record it saved), or reopen the target by hand (ALTER DATABASE ... RESET default_transaction_read_only, or your unfreeze hook)",
					  s.fz.mode ? s.fz.mode : "frozen");
		hold_release(&s, skip, NULL);
	}
	if (s.src && state_table_exists(s.src, "migration") == 1)
		state_set(s.src, s.rcfg->name, "phase", "following");
done:
	free(phase);
	freeze_release_record(&src_fz);
	sw_release(&s);
	return ok;
}
