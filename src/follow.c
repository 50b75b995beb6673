/*
 * follow.c: the `ferry start` coordinator (see follow.h).
 */
#include "follow.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apply.h"
#include "clone.h"
#include "hooks.h"
#include "log.h"
#include "mem.h"
#include "metrics.h"
#include "pgoutput.h"
#include "pgsql.h"
#include "publication.h"
#include "state.h"
#include "switchover.h"
#include "validate.h"
#include "watch.h"

static const char RATE_UPDATE_SQL[] =
	"UPDATE ferry.apply_progress SET changes_per_second = $2::float8, txns_per_second = $3::float8,"
	" follower_pid = $4::int, follower_seen_at = pg_catalog.now()"
	" WHERE migration = $1";

static _Atomic bool stop_requested;

void
follow_request_stop(void)
{
	atomic_store(&stop_requested, true);
}

void
follow_reset_stop(void)
{
	atomic_store(&stop_requested, false);
}

static bool
should_stop(void)
{
	return pg_interrupted() || atomic_load(&stop_requested);
}

typedef struct Follow
{
	FerryConfig *cfg;
	bool		reverse;
	char	   *skip_origin;	/* reverse: the forward apply's origin name */
	char	   *echo_origin;	/* forward: the reverse apply's (NAME_reverse) */
	FilesSync	files;
	bool		locked;			/* tgt holds the migration's advisory lock */
	bool		lock_refused;	/* another process holds it */
	int64_t		last_phase_check_us;
	int64_t		last_watch_us;	/* reverse: the last look at the old source (watch.h) */
	int64_t		last_missing_us;	/* forward: the last look for unpublished tables */
	int			last_missing_n;
	int64_t		error_seen;		/* log_last_error's number of the last error noted */
	bool		error_pending;	/* ... not yet written to ferry.apply_progress */
	bool		error_shown;	/* ferry.apply_progress.last_error is set */
	bool		phase_moved;	/* the migration left the phase this follower serves */
	PGconn	   *src;			/* heartbeats, publications */
	PGconn	   *tgt;			/* state and rate */
	char	   *encoding;
	char	   *publications;
	int			proto;
	bool		messages;
	bool		heartbeat_ok;
	int64_t		last_heartbeat_us;
	int			pending_fks;	/* foreign keys awaiting validation: -1 not read yet */
	int64_t		next_validate_us;
} Follow;

static void
sleep_interruptible(int ms)
{
	for (int i = 0; i < ms / 100 && !should_stop(); i++)
		usleep(100000);
}

/* (Re)connect the coordinator's own sessions. */
static bool
connect_both(Follow *f)
{
	if (f->src == NULL || PQstatus(f->src) != CONNECTION_OK)
	{
		pg_finish(f->src);
		f->src = pg_connect(f->cfg->source, f->reverse ? "target" : "source", PG_CONN_SQL, NULL);
	}
	if (f->tgt == NULL || PQstatus(f->tgt) != CONNECTION_OK)
	{
		pg_finish(f->tgt);
		f->locked = false;
		f->tgt = pg_connect(f->cfg->target, f->reverse ? "source" : "target", PG_CONN_SQL, NULL);
		/* the lock lives in this session: take it again */
		f->lock_refused = false;
		/*
		 * switchover and rollback probe the lock by taking it for a moment
		 * (state_lock_held): a held lock is only believed after a second.
		 */
		for (int i = 0; f->tgt != NULL && i < 5 && state_lock_held(f->tgt, f->cfg->name) == 1; i++)
			usleep(200000);
		if (f->tgt != NULL && !state_lock(f->tgt, f->cfg->name))
		{
			pg_finish(f->tgt);
			f->tgt = NULL;
			f->lock_refused = true;
		}
		f->locked = f->tgt != NULL;
	}
	return f->src != NULL && f->tgt != NULL;
}

static void
heartbeat(Follow *f)
{
	const char *params[1] = {f->cfg->name};
	PGresult   *res;

	if (!f->heartbeat_ok || repl_now_us() - f->last_heartbeat_us < FOLLOW_HEARTBEAT_MS * 1000LL)
		return;
	f->last_heartbeat_us = repl_now_us();
	if (f->src == NULL || PQstatus(f->src) != CONNECTION_OK)
		return;
	res = pg_execute(f->src,
					   "SELECT pg_catalog.pg_logical_emit_message(true, '" FOLLOW_HEARTBEAT_PREFIX "', $1)",
					   1, params);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		if (state && strcmp(state, "42501") == 0)
		{
			log_warn("no heartbeats: the source user may not run pg_logical_emit_message; lag in seconds is then only measured when the application writes. Fix: GRANT EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text) TO <user>");
			f->heartbeat_ok = false;
		}
	}
	PQclear(res);
}

/*
 * Record in ferry.unmatched what the apply thread counted of changes that
 * matched no row on the target (apply.h), adding to earlier counts. The
 * counts go back to the apply thread's lists if the target cannot take them.
 */
static const char UNMATCHED_SQL[] =
	"INSERT INTO ferry.unmatched AS u (migration, tablename, changes, last_lsn, last_at)"
	" SELECT $1, t, c, l, pg_catalog.now()"
	"   FROM unnest($2::text[], $3::bigint[], $4::pg_lsn[]) AS x (t, c, l)"
	" ON CONFLICT (migration, tablename) DO UPDATE"
	"   SET changes = u.changes + excluded.changes, last_lsn = excluded.last_lsn, last_at = excluded.last_at";

static void
record_unmatched(Follow *f, ApplyShared *sh)
{
	StrList		tables;
	int64_t    *counts;
	uint64_t   *lsns;
	StrBuf		c,
				l;
	char	   *t;
	PGresult   *res;
	bool		ok;

	apply_take_unmatched(sh, &tables, &counts, &lsns);
	if (tables.n == 0)
		return;
	strbuf_init(&c);
	strbuf_init(&l);
	for (int i = 0; i < tables.n; i++)
	{
		char		lsn[32];

		pg_lsn_format(lsns[i], lsn, sizeof(lsn));
		strbuf_addf(&c, "%s%lld", i ? "," : "{", (long long) counts[i]);
		strbuf_addf(&l, "%s%s", i ? "," : "{", lsn);
	}
	strbuf_addch(&c, '}');
	strbuf_addch(&l, '}');
	t = pg_text_array(&tables);
	{
		const char *params[4] = {f->cfg->name, t, c.data, l.data};

		res = f->tgt ? pg_query(f->tgt, "record changes that matched no row", UNMATCHED_SQL, 4, params) : NULL;
	}
	ok = res != NULL;
	PQclear(res);
	free(t);
	strbuf_release(&c);
	strbuf_release(&l);
	if (!ok)
	{
		/* give them back: the next round records them */
		for (int i = 0; i < tables.n; i++)
			apply_add_unmatched(sh, tables.items[i], counts[i], lsns[i]);
	}
	strlist_free(&tables);
	free(counts);
	free(lsns);
}

/*
 * Validate the foreign keys a resumed clone built NOT VALID once apply has
 * passed the clone's last snapshot (validate.h). Looked at every second
 * until each is tried; after a failure, every VALIDATE_RETRY_MS. Nothing
 * to do (the common case) costs one query per session. Runs on the
 * coordinator's target session: while a large table is scanned heartbeats
 * pause; a stop request abandons the statement (pg_execute) and the
 * validation is rolled back, to be done next time.
 */
static void
validate_tick(Follow *f, uint64_t applied)
{
	int			remaining = 0,
				failed = 0;
	int64_t		now = repl_now_us();

	if (f->reverse || f->pending_fks == 0 || now < f->next_validate_us)
		return;
	if (!validate_run(f->tgt, f->cfg->name, applied, &remaining, &failed))
	{
		f->next_validate_us = now + VALIDATE_RETRY_MS * 1000LL;
		return;
	}
	if (remaining == 0 && f->pending_fks != 0 && f->pending_fks != -1)
		log_info("every foreign key is valid: the target holds the source's constraints");
	f->pending_fks = remaining;
	f->next_validate_us = repl_now_us() + (failed ? VALIDATE_RETRY_MS * 1000LL : 1000000LL);
}

static void
report(Follow *f, ApplyShared *sh, int64_t *last_changes, int64_t *last_txns, int64_t *last_us)
{
	int64_t		now = repl_now_us();
	int64_t		changes = atomic_load(&sh->changes);
	int64_t		txns = atomic_load(&sh->txns);
	double		secs = (double) (now - *last_us) / 1e6;
	double		crate = secs > 0 ? (double) (changes - *last_changes) / secs : 0;
	double		trate = secs > 0 ? (double) (txns - *last_txns) / secs : 0;
	uint64_t	applied = atomic_load(&sh->applied_lsn);
	uint64_t	received = atomic_load(&sh->received_lsn);
	int64_t		ct = atomic_load(&sh->applied_commit_time);
	char		a[32],
				r[32],
				cr[32],
				tr[32],
				pid[16];

	pg_lsn_format(applied, a, sizeof(a));
	pg_lsn_format(received, r, sizeof(r));
	snprintf(cr, sizeof(cr), "%.1f", crate);
	snprintf(tr, sizeof(tr), "%.1f", trate);
	snprintf(pid, sizeof(pid), "%d", (int) getpid());
	if (f->tgt && PQstatus(f->tgt) == CONNECTION_OK)
	{
		const char *params[4] = {f->cfg->name, cr, tr, pid};
		PGresult   *res = pg_execute(f->tgt, RATE_UPDATE_SQL, 4, params);

		PQclear(res);
	}
	metrics_set_rates(crate, trate);
	if (f->error_shown && changes > *last_changes && f->tgt && PQstatus(f->tgt) == CONNECTION_OK)
	{
		const char *params[1] = {f->cfg->name};
		PGresult   *res = pg_query(f->tgt, "clear the apply error",
								   "UPDATE ferry.apply_progress SET last_error = NULL, last_error_at = NULL WHERE migration = $1",
								   1, params);

		f->error_shown = res == NULL;
		PQclear(res);
	}
	log_info("following: applied %s (received %s), %.0f changes/s, %.0f transactions/s, last commit %.1f s ago",
			 a, r, crate, trate, ct ? (double) (now - ct) / 1e6 : 0.0);
	*last_changes = changes;
	*last_txns = txns;
	*last_us = now;
}

/*
 * The error that ended a streaming session, for `ferry status` (the lag
 * alone does not say why): ferry.apply_progress.last_error, written when the
 * state's server can be reached (now, or at a later reconnect), cleared by
 * report() once changes flow again.
 */
static void
note_error(Follow *f)
{
	char		msg[1024];
	int64_t		n = log_last_error(msg, sizeof(msg));

	if (n > f->error_seen)
	{
		f->error_seen = n;
		f->error_pending = true;
	}
	if (!f->error_pending || !connect_both(f))
		return;
	{
		const char *params[2] = {f->cfg->name, msg};
		PGresult   *res = pg_query(f->tgt, "record the apply error",
								   "UPDATE ferry.apply_progress SET last_error = $2, last_error_at = pg_catalog.now()"
								   " WHERE migration = $1", 2, params);

		if (res != NULL)
		{
			f->error_pending = false;
			f->error_shown = true;
		}
		PQclear(res);
	}
}

/*
 * Whether the migration left the phase this follower serves (checked once
 * a second): forward stops once a switchover completed, reverse once a
 * rollback drained it or cleanup removed it.
 */
static bool
phase_moved(Follow *f)
{
	const char *params[1] = {f->cfg->name};
	PGresult   *res;

	if (repl_now_us() - f->last_phase_check_us < 1000000)
		return f->phase_moved;
	f->last_phase_check_us = repl_now_us();
	res = pg_execute(f->tgt, "SELECT phase FROM ferry.migration WHERE name = $1", 1, params);
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
	{
		const char *ph = PQntuples(res) ? PQgetvalue(res, 0, 0) : "";

		f->phase_moved = f->reverse ? strcmp(ph, "following") != 0
			: !(strcmp(ph, "following") == 0 || strcmp(ph, "switching") == 0);
	}
	PQclear(res);
	return f->phase_moved;
}

/*
 * Forward: every 10 s, look for tables created on the source after the
 * clone, which are not published, so none of their rows arrive; warn when
 * their number changes (status lists them, switchover refuses).
 */
static void
missing_tick(Follow *f)
{
	StrList		missing = {0};

	if (repl_now_us() - f->last_missing_us < 10 * 1000000LL)
		return;
	f->last_missing_us = repl_now_us();
	if (publication_missing(f->src, f->cfg, &missing) && missing.n != f->last_missing_n)
	{
		if (missing.n > 0)
		{
			char	   *names = publication_name_list(&missing);

			log_warn("%d table%s on the source %s not replicated (created after the clone): %s. Fix: %s",
					 missing.n, missing.n == 1 ? "" : "s", missing.n == 1 ? "is" : "are", names, PUBLICATION_MISSING_FIX);
			free(names);
		}
		f->last_missing_n = missing.n;
	}
	strlist_free(&missing);
}

/*
 * Reverse: every WATCH_INTERVAL_MS, look at the old source's watch slot
 * (the forward slot, kept after the switch) for writes that reached it
 * after the switchover (watch.h); `last`: now, as the session ends, so a
 * write just before a stop is not left to nobody. f->tgt is the old source
 * here, f->src the new primary that holds the migration's state.
 */
static void
watch_tick(Follow *f, bool last)
{
	if (!last && repl_now_us() - f->last_watch_us < WATCH_INTERVAL_MS * 1000LL)
		return;
	f->last_watch_us = repl_now_us();
	(void) watch_poll_migration(f->tgt, f->src, true, f->skip_origin);
}

/*
 * One streaming session: start the apply thread (which also reads the
 * source's stream) at the applied position, wait until it ends, return how.
 */
static ApplyStatus
session(Follow *f, FollowResult *out, bool *ran_long)
{
	ApplyShared sh;
	ApplyArgs	aa;
	pthread_t	at;
	uint64_t	applied;
	bool		use_origin = false;
	int64_t		started = repl_now_us();
	int64_t		last_changes = 0,
				last_txns = 0,
				last_us = started,
				last_report = started - 8 * 1000000LL;	/* first report after 2 s */
	ApplyStatus as;

	if (!apply_prepare_target(f->cfg, &use_origin, &applied))
		return APPLY_FAILED_CONN;
	memset(&sh, 0, sizeof(sh));
	pthread_mutex_init(&sh.unmatched_mu, NULL);
	atomic_store(&sh.applied_lsn, applied);
	atomic_store(&sh.flushed_lsn, applied);	/* read back from the target: durable */
	atomic_store(&sh.received_lsn, applied);
	memset(&aa, 0, sizeof(aa));
	aa.cfg = f->cfg;
	aa.shared = &sh;
	aa.slot = f->cfg->name;
	aa.publications = f->publications;
	aa.messages = f->messages;
	aa.proto_version = f->proto;
	aa.start_lsn = applied;
	aa.source_encoding = f->encoding;
	aa.use_origin = use_origin;
	/* forward: what the reverse apply of an earlier switchover wrote on the source does not come back (switchover.h) */
	aa.skip_origin = f->reverse ? f->skip_origin : f->echo_origin;
	pthread_create(&at, NULL, apply_main, &aa);
	for (;;)
	{
		usleep(100000);
		if (should_stop())
			atomic_store(&sh.stop, true);
		if (atomic_load(&sh.status) != APPLY_RUNNING)
			atomic_store(&sh.stop, true);
		if (atomic_load(&sh.stop))
			break;
		if (connect_both(f))
		{
			heartbeat(f);
			if (phase_moved(f))
			{
				atomic_store(&sh.stop, true);
				break;
			}
			if (!f->reverse)
			{
				files_sync_tick(&f->files, f->cfg, f->tgt);
				missing_tick(f);
			}
			else
				watch_tick(f, false);
			metrics_poll_source(f->src, f->cfg->name);
			record_unmatched(f, &sh);
			validate_tick(f, atomic_load(&sh.applied_lsn));
		}
		metrics_add_unmatched(atomic_exchange(&sh.unmatched, 0));
		metrics_set_applied(atomic_load(&sh.applied_lsn), atomic_load(&sh.applied_commit_time),
							out->changes + atomic_load(&sh.changes), out->txns + atomic_load(&sh.txns));
		if (repl_now_us() - last_report >= 10 * 1000000LL)
		{
			report(f, &sh, &last_changes, &last_txns, &last_us);
			last_report = repl_now_us();
		}
	}
	pthread_join(at, NULL);
	as = (ApplyStatus) atomic_load(&sh.status);
	metrics_add_unmatched(atomic_exchange(&sh.unmatched, 0));
	if (connect_both(f))
	{
		record_unmatched(f, &sh);
		if (f->reverse)
			watch_tick(f, true);
	}
	strlist_free(&sh.unmatched_tables);	/* what the target could not take is in the log */
	free(sh.unmatched_counts);
	free(sh.unmatched_lsns);
	pthread_mutex_destroy(&sh.unmatched_mu);
	log_debug("streaming session ended: apply status %d", (int) as);
	out->applied_lsn = atomic_load(&sh.applied_lsn);
	out->changes += atomic_load(&sh.changes);
	out->txns += atomic_load(&sh.txns);
	*ran_long = repl_now_us() - started > 60 * 1000000LL;
	if (as == APPLY_FAILED_CONN && should_stop())
		return APPLY_STOPPED;
	return as;
}

static bool
prepare(Follow *f)
{
	PGresult   *res;

	/* fresh sessions: after a failure the old ones may be dead without knowing it */
	pg_finish(f->src);
	pg_finish(f->tgt);
	f->src = f->tgt = NULL;
	if (!connect_both(f))
		return false;
	res = pg_query(f->src, "read the source settings",
				   "SELECT pg_catalog.current_setting('server_encoding')", 0, NULL);
	if (res == NULL || !pg_check_shape(res, 1, 1, "the source encoding"))
	{
		PQclear(res);
		return false;
	}
	free(f->encoding);
	f->encoding = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	f->proto = 1;
	f->messages = pg_caps(f->src).logical_messages;
	f->heartbeat_ok = true;
	free(f->publications);
	f->publications = publication_names(f->src, f->cfg);
	if (f->publications == NULL)
		return false;
	if (!state_ensure(f->tgt, "target"))
		return false;
	f->pending_fks = -1;
	f->next_validate_us = 0;
	/* a clone becomes a follower; a switching or switched migration keeps its phase */
	{
		const char *params[1] = {f->cfg->name};

		res = pg_query(f->tgt, "record the phase",
					   "UPDATE ferry.migration SET phase = CASE WHEN phase = 'cloned' THEN 'following' ELSE phase END,"
					   " updated_at = pg_catalog.now() WHERE name = $1 RETURNING phase", 1, params);
		if (res == NULL)
			return false;
		f->last_phase_check_us = 0;
		f->phase_moved = false;
		if (PQntuples(res) == 0)
			f->phase_moved = true;	/* cleaned up */
		else
		{
			const char *ph = PQgetvalue(res, 0, 0);

			f->phase_moved = f->reverse ? strcmp(ph, "following") != 0
				: !(strcmp(ph, "following") == 0 || strcmp(ph, "switching") == 0);
			/* the reverse direction runs once the migration is switched */
			metrics_set_phase(f->reverse ? "switched" : ph);
		}
		PQclear(res);
	}
	if (!f->reverse)
		metrics_load_copy_state(f->tgt, f->cfg->name);
	return true;
}

bool
follow_run(FerryConfig *cfg, bool reverse, FollowResult *out)
{
	Follow		f;
	CloneSummary cs;
	int			backoff = 1;
	bool		ok = false;
	bool		first = true;

	memset(out, 0, sizeof(*out));
	memset(&f, 0, sizeof(f));
	f.cfg = cfg;
	f.reverse = reverse;
	if (reverse)
	{
		size_t		n = strlen(cfg->name) - strlen(CONFIG_REVERSE_SUFFIX);

		f.skip_origin = xstrdup(cfg->name);
		f.skip_origin[n] = '\0';
	}
	else
	{
		f.echo_origin = xasprintf("%s%s", cfg->name, CONFIG_REVERSE_SUFFIX);
		if (switchover_follow_again(cfg) < 0 || !clone_run(cfg, &cs))
		{
			free(f.echo_origin);
			return false;
		}
	}
	if (should_stop())
	{
		out->stopped_by_signal = pg_interrupted();
		out->stopped_by_request = !pg_interrupted();
		free(f.skip_origin);
		free(f.echo_origin);
		return true;
	}

	for (;;)
	{
		ApplyStatus st;
		bool		ran_long = false;

		if (!prepare(&f))
		{
			if (f.lock_refused && first)
				break;			/* another ferry drives it: logged */
			st = APPLY_FAILED_CONN;
		}
		else if (f.phase_moved)
			st = APPLY_STOPPED;
		else
			st = session(&f, out, &ran_long);
		first = false;
		if (f.phase_moved)
		{
			out->switched = !reverse;
			out->finished = reverse;
			ok = true;
			break;
		}
		if (should_stop() || st == APPLY_STOPPED)
		{
			out->stopped_by_signal = pg_interrupted();
			out->stopped_by_request = !pg_interrupted() && atomic_load(&stop_requested);
			ok = true;
			break;
		}
		note_error(&f);
		if (st == APPLY_FAILED)
			break;
		if (ran_long)
			backoff = 1;
		metrics_add_reconnect();
		if (st == APPLY_FAILED_SCHEMA)
		{
			log_info("retrying in 10 s");
			sleep_interruptible(10000);
		}
		else
		{
			log_info("reconnecting in %d s", backoff);
			sleep_interruptible(backoff * 1000);
			backoff = backoff >= 16 ? 30 : backoff * 2;
		}
		if (should_stop())
		{
			out->stopped_by_signal = pg_interrupted();
			out->stopped_by_request = !pg_interrupted();
			ok = true;
			break;
		}
	}
	files_sync_stop(&f.files);
	free(f.skip_origin);
	free(f.echo_origin);
	pg_finish(f.src);
	pg_finish(f.tgt);
	free(f.encoding);
	free(f.publications);
	return ok;
}
