/*
 * apply.c: the apply thread (see apply.h for the design, apply_int.h for how
 * it is split): the loop that reads the source's stream and its state
 * machine, the batches (one target transaction each), what is safe to
 * confirm to the source, and the target session with its position row.
 */
#include "apply_int.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "pgsql.h"
#include "state.h"

#define PROGRESS_UPDATE \
	"UPDATE ferry.apply_progress" \
	"   SET applied_lsn = $2::pg_catalog.pg_lsn," \
	"       commit_time = pg_catalog.to_timestamp(946684800 + $3::float8 / 1000000)," \
	"       applied_at = pg_catalog.now()," \
	"       changes = changes + $4::bigint, txns = txns + $5::bigint"

static const char PROGRESS_UPDATE_SQL[] = PROGRESS_UPDATE " WHERE migration = $1";

/* the replication origin advances with the commit (LSN, source commit time in us since 2000) */
#define ORIGIN_SETUP(lsn, us) \
	"pg_catalog.pg_replication_origin_xact_setup(" lsn "::pg_catalog.pg_lsn," \
	" pg_catalog.to_timestamp(946684800 + " us "::float8 / 1000000))"

static const char ORIGIN_ADVANCE_SQL[] = "SELECT " ORIGIN_SETUP("$1", "$2");

/* without an origin: the mark that opens each target transaction (APPLY_MARK_PREFIX in apply.h) */
static const char MARK_SQL[] = "SELECT pg_catalog.pg_logical_emit_message(true, '" APPLY_MARK_PREFIX "', $1) IS NULL";

/* both in one statement */
static const char PROGRESS_ORIGIN_SQL[] =
	"WITH o AS (SELECT " ORIGIN_SETUP("$2", "$3") ") " PROGRESS_UPDATE " FROM o WHERE migration = $1";

/* where the target's WAL ends (after a COMMIT: beyond it) and what is flushed */
static const char WAL_POSITIONS_SQL[] =
	"SELECT pg_catalog.pg_current_wal_insert_lsn()::text || ' ' || pg_catalog.pg_current_wal_flush_lsn()::text";

/* what apply did to one table since the last write (ferry.table_rows, hold_count) */
static const char TABLE_ROWS_SQL[] =
	"INSERT INTO ferry.table_rows AS t (migration, nspname, relname, inserted, deleted, truncated)"
	" VALUES ($1, $2, $3, $4, $5, $6)"
	" ON CONFLICT (migration, nspname, relname) DO UPDATE"
	" SET inserted = CASE WHEN excluded.truncated THEN 0 ELSE t.inserted END + excluded.inserted,"
	"     deleted = CASE WHEN excluded.truncated THEN 0 ELSE t.deleted END + excluded.deleted,"
	"     truncated = t.truncated OR excluded.truncated";

/*
 * The statements of every batch, prepared once per session (named "ferry_*",
 * apart from the per-relation ones): parsing and planning them for each
 * target transaction was a third of the target backend's CPU under a
 * stream of small transactions. (ferry_progress is PROGRESS_ORIGIN_SQL when
 * the replication origin is used; ferry_origin only exists then, ferry_mark
 * only without one.)
 */
static const struct
{
	const char *name;
	const char *sql;
	int			nparams;
}			batch_statements[] = {
	{"ferry_begin", "BEGIN", 0},
	{"ferry_commit", "COMMIT", 0},
	{"ferry_progress", PROGRESS_UPDATE_SQL, 5},
	{"ferry_origin", ORIGIN_ADVANCE_SQL, 2},
	{"ferry_mark", MARK_SQL, 1},
	{"ferry_wal", WAL_POSITIONS_SQL, 0},
	{"ferry_rows", TABLE_ROWS_SQL, 6},
};

/* ------------------------------------------------------------------ */
/* the state machine (ApplyState)                                       */

/* Is from -> to one of the arrows drawn at ApplyState? */
bool
apply_state_move_ok(ApplyState from, ApplyState to)
{
	switch (to)
	{
		case AS_IDLE:
			return from == AS_BATCH || from == AS_SKIP;
		case AS_BATCH:
			return from == AS_TXN || from == AS_BATCH_SKIP;
		case AS_TXN:
			return from == AS_IDLE || from == AS_BATCH;
		case AS_SKIP:
			return from == AS_IDLE;
		case AS_BATCH_SKIP:
			return from == AS_BATCH || from == AS_TXN;
		case AS_BROKEN:
			return true;
	}
	return false;
}

/*
 * What must hold between messages (checked at each turn of the loop, as
 * assert(check_state(a))): rows are held only inside an open target
 * transaction, a failed pipeline means a broken session, a skipped
 * transaction's changes never open a batch.
 */
static bool
check_state(const Apply *a)
{
	if (a->pipe_failed && a->state != AS_BROKEN)
		return false;
	if (a->state == AS_IDLE || a->state == AS_SKIP)
		return a->npending == 0 && a->batch_end_lsn == 0;
	return true;
}

static void
set_state(Apply *a, ApplyState to)
{
	if (a->state == AS_BROKEN)
		return;					/* final */
	assert(apply_state_move_ok(a->state, to));
	a->state = to;
}


/* ------------------------------------------------------------------ */
/* batches                                                              */

/*
 * The parameters of the progress statements (PROGRESS_UPDATE_SQL and
 * PROGRESS_ORIGIN_SQL; ORIGIN_ADVANCE_SQL takes v + 1), formatted in place.
 */
typedef struct ProgressParams
{
	char		lsn[32],
				ts[32],
				nch[32],
				ntx[32];
	const char *v[5];
} ProgressParams;

static void
progress_params(const Apply *a, ProgressParams *pp, uint64_t lsn, int64_t commit_time, int64_t changes, int64_t txns)
{
	pg_lsn_format(lsn, pp->lsn, sizeof(pp->lsn));
	snprintf(pp->ts, sizeof(pp->ts), "%" PRId64, commit_time);
	snprintf(pp->nch, sizeof(pp->nch), "%" PRId64, changes);
	snprintf(pp->ntx, sizeof(pp->ntx), "%" PRId64, txns);
	pp->v[0] = a->args->cfg->name;
	pp->v[1] = pp->lsn;
	pp->v[2] = pp->ts;
	pp->v[3] = pp->nch;
	pp->v[4] = pp->ntx;
}


static bool
begin_batch(Apply *a)
{
	const char *name[1] = {a->args->cfg->name};

	if (in_batch(a))
		return true;

	if (!pipe_send_named(a, "ferry_begin", 0, NULL, SENT_STATEMENT, "starting a transaction") ||
		(!a->args->use_origin &&
		 !pipe_send_named(a, "ferry_mark", 1, name, SENT_STATEMENT, "marking the transaction as ferry's")))
		return false;
	/*
	 * Where the target's WAL ends, read at most every APPLY_WAL_READ_MS:
	 * here, it lies beyond the commit records of the batches before
	 * (note_positions). Read inside this transaction, not after the last
	 * COMMIT: a statement after it would open an implicit transaction that
	 * stays open until the next sync.
	 */
	if (a->wal_read_due && repl_now_us() - a->last_wal_read_us >= APPLY_WAL_READ_MS * 1000)
	{
		if (!pipe_send_named(a, "ferry_wal", 0, NULL, SENT_WAL, "reading the target's WAL position"))
			return false;
		a->last_wal_read_us = repl_now_us();
		a->wal_read_due = false;
	}
	a->batch_changes = 0;
	a->batch_txns = 0;
	a->batch_message = false;
	a->batch_end_lsn = 0;
	a->batch_started_us = repl_now_us();
	return true;
}

/*
 * Send the COMMIT of the open target transaction, with its position, and do
 * not wait for it: the next batch follows it in the pipeline while the
 * target works, and pipe_read publishes the batch when the COMMIT's
 * result comes back (batch_committed). Waiting for each commit's round
 * trip before sending more was most of ferry's own share of the lag under
 * a stream of small transactions. A flush request makes the server send
 * the results without a sync (see pipe_read for why not a sync).
 */
static bool write_table_rows(Apply *a, bool in_txn);

static bool
commit_batch(Apply *a)
{
	ProgressParams pp;
	bool		write_row;
	Sent	   *e;

	if (a->state == AS_BROKEN)
		return false;
	if (a->state != AS_BATCH)
		return true;			/* nothing open (or inside a source transaction: not called then) */
	if (!hold_flush_all(a))
		return false;
	if (a->batch_end_lsn == 0)
	{
		/* nothing complete in it (e.g. only skipped transactions) */
		if (!pipe_send_simple(a, "ROLLBACK", "ending an empty transaction") || !pipe_sync(a))
			return false;
		set_state(a, AS_IDLE);
		return true;
	}
	/*
	 * The position commits with the data: in the replication origin (the
	 * commit record carries it) and, every APPLY_PROGRESS_MS or when the
	 * batch holds a logical message that someone may be waiting for, in
	 * ferry.apply_progress too; without an origin, in the row every time.
	 * Updating that one row for every target transaction was a fifth of
	 * the target's CPU under small transactions (a HOT chain to walk and
	 * prune); the origin costs no write. apply_prepare_target resumes from
	 * the later of the two.
	 */
	write_row = !a->args->use_origin || a->batch_message ||
		repl_now_us() - a->row_written_us >= APPLY_PROGRESS_MS * 1000;
	/* the tables' row counts go with this batch, about once a second */
	if (a->ncounted > 0 && repl_now_us() - a->rows_written_us >= APPLY_TABLE_ROWS_MS * 1000 &&
		!write_table_rows(a, true))
		return false;
	progress_params(a, &pp, a->batch_end_lsn, a->batch_commit_time,
					a->row_changes + a->batch_changes, a->row_txns + a->batch_txns);
	if ((write_row && !pipe_send_named(a, "ferry_progress", 5, pp.v, SENT_STATEMENT, "recording the applied position")) ||
		(!write_row && !pipe_send_named(a, "ferry_origin", 2, pp.v + 1, SENT_STATEMENT, "advancing the replication origin")) ||
		(e = pipe_send_named(a, "ferry_commit", 0, NULL, SENT_COMMIT, "committing")) == NULL)
		return false;
	if (PQsendFlushRequest(a->conn) != 1 || PQflush(a->conn) != 0)
	{
		pipe_broken(a, "could not send to the target");
		return false;
	}
	e->end_lsn = a->batch_end_lsn;
	e->commit_time = a->batch_commit_time;
	e->changes = a->batch_changes;
	e->txns = a->batch_txns;
	set_state(a, AS_IDLE);
	a->wal_read_due = true;
	/* the row's bookkeeping is for what is sent: if this COMMIT fails, the session ends */
	if (write_row)
	{
		a->row_lsn = a->batch_end_lsn;
		a->row_changes = a->row_txns = 0;
		a->row_written_us = repl_now_us();
	}
	else
	{
		a->row_changes += a->batch_changes;
		a->row_txns += a->batch_txns;
	}
	a->batch_end_lsn = 0;		/* it is in e now */
	/* its result is read when the target's socket has it (the main loop polls it) */
	return true;
}

/* A batch's COMMIT succeeded (pipe_read): publish it. */
void
batch_committed(Apply *a, const Sent *e)
{
	char		lsn[32];

	flushq_committed(&a->fq, e->end_lsn);
	a->applied_lsn = e->end_lsn;
	a->applied_commit_time = e->commit_time;
	atomic_store(&a->args->shared->applied_lsn, e->end_lsn);
	atomic_store(&a->args->shared->applied_commit_time, e->commit_time);
	atomic_store(&a->args->shared->applied_at, repl_now_us());
	atomic_fetch_add(&a->args->shared->changes, e->changes);
	atomic_fetch_add(&a->args->shared->txns, e->txns);
	if (log_get_level() == LOG_DEBUG)
	{
		pg_lsn_format(e->end_lsn, lsn, sizeof(lsn));
		log_debug("committed %" PRId64 " source transactions (%" PRId64 " changes) up to %s",
				  e->txns, e->changes, lsn);
	}
}

/*
 * Record what apply did to each table since the last time (hold_count) in
 * ferry.table_rows: in the open batch (in_txn: it commits or vanishes with
 * it), or between batches on its own. The counts of a batch that failed
 * after it was written are lost with the session: they are what `status`
 * shows without reading the tables, labelled as ferry's count.
 */
static bool
write_table_rows(Apply *a, bool in_txn)
{
	for (int i = 0; i < a->ncounted; i++)
	{
		ApplyRel   *r = rel_lookup(a, a->counted[i], false);
		char		ins[24],
					del[24];
		const char *v[6];

		if (r == NULL)
			continue;
		snprintf(ins, sizeof(ins), "%" PRId64, r->n_ins);
		snprintf(del, sizeof(del), "%" PRId64, r->n_del);
		v[0] = a->args->cfg->name;
		v[1] = r->rel->nspname;
		v[2] = r->rel->relname;
		v[3] = ins;
		v[4] = del;
		v[5] = r->truncated ? "true" : "false";
		if (in_txn)
		{
			if (!pipe_send_named(a, "ferry_rows", 6, v, SENT_STATEMENT, "recording the tables' row counts"))
				return false;
		}
		else
		{
			PGresult   *res = pipe_query_now(a, "record the tables' row counts", TABLE_ROWS_SQL, 6, v);

			if (res == NULL)
				return false;
			PQclear(res);
		}
		r->n_ins = r->n_del = 0;
		r->truncated = r->counted = false;
	}
	a->ncounted = 0;
	a->rows_written_us = repl_now_us();
	return true;
}

/*
 * Between batches: bring ferry.apply_progress up to the last committed batch
 * if commit_batch left it behind (the origin already has it), so that what
 * `status`, `verify` and the tests read is exact whenever apply is idle.
 */
static bool
write_progress_row(Apply *a)
{
	ProgressParams pp;
	PGresult   *res;

	if (in_batch(a))
		return true;
	if (a->ncounted > 0 && !write_table_rows(a, false))
		return false;
	if (a->row_lsn >= a->applied_lsn)
		return true;
	progress_params(a, &pp, a->applied_lsn, a->applied_commit_time, a->row_changes, a->row_txns);
	res = pipe_query_now(a, "record the applied position", PROGRESS_UPDATE_SQL, 5, pp.v);
	if (res == NULL)
		return false;
	PQclear(res);
	a->row_lsn = a->applied_lsn;
	a->row_changes = a->row_txns = 0;
	a->row_written_us = repl_now_us();
	return true;
}

/*
 * A WAL_POSITIONS_SQL result read after the last commit: its insert position
 * is beyond the commits of every batch committed since the previous read,
 * so they are durable once the flushed position passes it (flushq.h).
 */
bool
note_positions(Apply *a, char *text)
{
	uint64_t	tgt = 0,
				flush = 0,
				durable;
	char	   *sp = strchr(text, ' ');

	if (sp == NULL || (*sp = '\0', !pg_lsn_parse(text, &tgt)) || !pg_lsn_parse(sp + 1, &flush))
	{
		log_error("internal error: no WAL position after commit (\"%s\")", text);
		a->fail_status = APPLY_FAILED;
		return false;
	}
	a->last_wal_read_us = a->last_flush_check_us = repl_now_us();
	flushq_mark(&a->fq, tgt);
	/* the last committed batch whose commit lies before `flush` is durable: confirmable */
	if ((durable = flushq_flushed(&a->fq, flush)) != 0)
		atomic_store(&a->args->shared->flushed_lsn, durable);
	return true;
}

/* Committed batches not yet known to be on the target's disk? */
static bool
flush_unknown(const Apply *a)
{
	return flushq_unknown(&a->fq);
}

/*
 * The one rule for confirming more than flushed_lsn: may the source be told
 * it has everything received so far (the stream's position, which runs
 * ahead of the last applied transaction over WAL that holds nothing for
 * us)? Only when everything received is applied and durable: AS_IDLE
 * (no target or source transaction open, and nothing failed, cancelled or
 * rolled back in this session: AS_BROKEN is final), nothing in flight,
 * nothing read ahead, nothing whose flush is unknown. After a failure or a
 * cancel (a stop while the target made apply wait) the sent list is
 * cleared and no batch is open, which would look idle; AS_BROKEN is what
 * says that what was received may not be on the target. Every feedback
 * passes through here (stream.h's send_feedback confirms `received` only
 * when this is true), including the last word after the loop. Otherwise
 * the source is told flushed_lsn: the end of the last batch whose COMMIT
 * succeeded and whose commit record the target has flushed (note_flushed).
 */
bool
apply_caught_up(const Apply *a)
{
	return a->state == AS_IDLE && a->nsent == 0 && !a->stashed && !flush_unknown(a);
}

/*
 * Move ApplyShared.flushed_lsn up to the last committed batch whose target
 * commit is flushed. Only between batches (nothing in the pipeline). At most
 * every 20 ms unless `force` (each commit also reads the flushed position).
 */
static bool
advance_flushed(Apply *a, bool force)
{
	PGresult   *res;
	bool		ok;

	if (!flush_unknown(a) || in_batch(a))
		return true;
	if (!force && repl_now_us() - a->last_flush_check_us < 20000)
		return true;
	res = pipe_query_now(a, "read the target's WAL positions", WAL_POSITIONS_SQL, 0, NULL);
	if (res == NULL)
		return false;
	ok = note_positions(a, PQgetvalue(res, 0, 0));
	PQclear(res);
	return ok;
}

static void
abort_batch(Apply *a)
{
	PGresult   *r;

	hold_drop_all(a);
	set_state(a, AS_BROKEN);
	if (PQstatus(a->conn) != CONNECTION_OK)
		return;
	/* drain whatever is pending, then roll back outside the pipeline */
	(void) pipe_drain(a);
	while ((r = pg_get_result(a->conn)) != NULL)
		PQclear(r);
	if (PQpipelineStatus(a->conn) != PQ_PIPELINE_OFF)
		PQexitPipelineMode(a->conn);
	pg_exec_quiet(a->conn, "ROLLBACK", NULL);
}

/* ------------------------------------------------------------------ */

static ApplyRel *
change_rel(Apply *a, uint32_t relid)
{
	ApplyRel   *r = a->relcap ? rel_lookup(a, relid, false) : NULL;

	if (r == NULL)
	{
		log_error("change for relation %u that was never described by a Relation message", relid);
		a->fail_status = APPLY_FAILED;
	}
	return r;
}

/* One decoded message. False = failure (fail_status set). */
static bool
handle(Apply *a, const PgoMessage *m)
{
	ApplyRel   *r;

	switch (m->kind)
	{
		case 'B':
			if (in_src_txn(a))
			{
				log_error("internal error: a Begin inside a source transaction in the change stream");
				a->fail_status = APPLY_FAILED;
				return false;
			}
			a->txn_final_lsn = m->u.begin.final_lsn;
			a->txn_commit_time = m->u.begin.commit_time;
			/* applied before a restart: its commit is at or before our position */
			if (m->u.begin.final_lsn < a->skip_until)
			{
				set_state(a, in_batch(a) ? AS_BATCH_SKIP : AS_SKIP);
				return true;
			}
			if (!begin_batch(a))
				return false;
			set_state(a, AS_TXN);
			return true;
		case 'C':
			if (!in_src_txn(a))
			{
				log_error("internal error: a Commit outside a source transaction in the change stream");
				a->fail_status = APPLY_FAILED;
				return false;
			}
			if (skipping(a))
			{
				set_state(a, a->state == AS_SKIP ? AS_IDLE : AS_BATCH);
				return true;
			}
			set_state(a, AS_BATCH);
			a->batch_end_lsn = m->u.commit.end_lsn;
			a->batch_commit_time = m->u.commit.commit_time;
			a->batch_txns++;
			return true;
		case 'R':
			return rel_handle(a, &m->u.relation);
		case 'O':
			/* reverse: what ferry's forward apply wrote must not go back */
			if (a->args->skip_origin && a->state == AS_TXN &&
				strcmp(m->u.origin.name, a->args->skip_origin) == 0)
			{
				log_debug("skipping a transaction from origin %s", m->u.origin.name);
				set_state(a, AS_BATCH_SKIP);
			}
			return true;
		case 'Y':
			return true;
		case 'M':
			/* reverse without an origin: the forward apply's mark (apply.h) */
			if (a->args->skip_origin && a->state == AS_TXN && m->u.message.transactional &&
				strcmp(m->u.message.prefix, APPLY_MARK_PREFIX) == 0 &&
				m->u.message.len == strlen(a->args->skip_origin) &&
				memcmp(m->u.message.content, a->args->skip_origin, m->u.message.len) == 0)
			{
				log_debug("skipping a transaction marked as applied by migration %s", a->args->skip_origin);
				set_state(a, AS_BATCH_SKIP);
				return true;
			}
			/* heartbeats: their commit moves the position; probes and sentinels are waited for */
			if (!skipping(a))
				a->batch_message = true;
			return true;
		case 'I':
		case 'U':
		case 'D':
			if (skipping(a))
				return true;
			r = change_rel(a, m->kind == 'I' ? m->u.insert.relid : m->kind == 'U' ? m->u.update.relid : m->u.delete_.relid);
			if (r == NULL)
				return false;
			if (r->snapshot_lsn > a->txn_final_lsn)
				return true;	/* already in this table's copy */
			if (m->kind == 'I')
				return apply_insert(a, r, &m->u.insert.newtup);
			if (m->kind == 'U')
				return apply_update(a, r, m->u.update.oldkind, &m->u.update.oldtup, &m->u.update.newtup);
			return apply_delete(a, r, m->u.delete_.oldkind, &m->u.delete_.oldtup);
		case 'T':
			if (skipping(a))
				return true;
			return apply_truncate(a, m->u.truncate.options, m->u.truncate.nrelids, m->u.truncate.relids);
		default:
			log_error("unexpected %s message in the change stream (ferry asks for protocol %d without streaming)",
					  pgo_kind_name(m->kind), a->args->proto_version);
			a->fail_status = APPLY_FAILED;
			return false;
	}
}

static bool
setup_session(Apply *a, const char *encoding)
{
	char	   *enc = pg_quote_literal(a->conn, encoding);
	char	   *sql = enc ? xasprintf("SET session_replication_role = replica; SET synchronous_commit = off;"
									" SET client_encoding = %s", enc) : NULL;
	bool		ok = sql != NULL && pg_exec(a->conn, "set up the apply session", sql);

	free(enc);
	free(sql);
	for (size_t i = 0; ok && i < sizeof(batch_statements) / sizeof(batch_statements[0]); i++)
	{
		const char *stmt = batch_statements[i].sql;
		PGresult   *res;

		if ((stmt == ORIGIN_ADVANCE_SQL && !a->args->use_origin) ||
			(stmt == MARK_SQL && a->args->use_origin))
			continue;
		if (stmt == PROGRESS_UPDATE_SQL && a->args->use_origin)
			stmt = PROGRESS_ORIGIN_SQL;
		res = PQprepare(a->conn, batch_statements[i].name, stmt, batch_statements[i].nparams, NULL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
		{
			char	   *e = pg_result_error_text(res, a->conn);

			log_error("could not prepare the apply session's statements: %s", e);
			free(e);
			ok = false;
		}
		PQclear(res);
	}
	if (ok && a->args->use_origin)
	{
		const char *params[1] = {a->args->cfg->name};
		PGresult   *res = pg_query(a->conn, "attach to the replication origin",
								   "SELECT pg_catalog.pg_replication_origin_session_setup($1)", 1, params);

		ok = res != NULL;
		PQclear(res);
	}
	return ok;
}

void *
apply_main(void *p)
{
	ApplyArgs  *args = p;
	Apply		a;
	ApplyStatus status = APPLY_STOPPED;
	char		err[256];

	log_set_role("apply");
	memset(&a, 0, sizeof(a));
	a.args = args;
	a.skip_until = args->start_lsn;
	a.row_lsn = a.applied_lsn = args->start_lsn;
	a.fail_status = APPLY_FAILED;
	strbuf_init(&a.arena);
	a.dec = pgo_decoder_new(args->proto_version);
	a.conn = pg_connect(args->cfg->target, "target", PG_CONN_SQL, NULL);
	if (a.conn == NULL)
	{
		status = APPLY_FAILED_CONN;
		goto done;
	}
	/*
	 * SIGINT/SIGTERM cancel what the target is running: a statement waiting
	 * for a lock on the target (or a long one) would otherwise hold up the
	 * stop for as long as it waits. The batch is then abandoned (take_result:
	 * "apply interrupted") and rolled back when the connection closes; its
	 * position was not recorded, so the next start applies it again.
	 */
	pg_cancel_register(a.conn);
	if (!state_apply_lock(a.conn, args->cfg->name) || !setup_session(&a, args->source_encoding) || !rel_load_snapshots(&a) ||
		PQenterPipelineMode(a.conn) != 1)
	{
		status = pipe_failure_kind(&a);
		goto done;
	}
	rels_grow(&a);

	if (!source_start(&a.src, args->cfg, args->slot, args->publications, args->start_lsn,
					  args->proto_version, args->messages))
	{
		status = a.src.status == STREAM_FAILED ? APPLY_FAILED : APPLY_FAILED_CONN;
		goto done;
	}

	for (;;)
	{
		ReplFrame	f;
		PgoMessage	m;
		int			wait_ms = 1000;
		SourceResult sr;

		assert(check_state(&a));
		atomic_store(&args->shared->received_lsn, a.src.received);
		if (atomic_load(&args->shared->stop) && !in_src_txn(&a))
		{
			status = commit_batch(&a) && pipe_drain(&a) && write_progress_row(&a) ? APPLY_STOPPED : a.fail_status;
			/* let the last commits reach disk so the final feedback covers them */
			for (int i = 0; status == APPLY_STOPPED && flush_unknown(&a) && i < 40; i++)
			{
				if (!advance_flushed(&a, true))
					break;
				if (flush_unknown(&a))
					usleep(50000);
			}
			break;
		}
		/*
		 * Between source transactions with nothing more read ahead: commit,
		 * unless the target still runs the previous COMMIT (then the batch
		 * grows until its result is read, see below).
		 */
		if (a.state == AS_BATCH && !a.stashed && a.commits_in_flight == 0 && !commit_batch(&a))
		{
			status = a.fail_status;
			break;
		}
		if (a.state == AS_BATCH)
		{
			int64_t		age_ms = (repl_now_us() - a.batch_started_us) / 1000;

			wait_ms = age_ms >= APPLY_BATCH_MS ? 0 : (int) (APPLY_BATCH_MS - age_ms);
		}
		else if (!in_batch(&a) && (flush_unknown(&a) || a.row_lsn < a.applied_lsn || a.ncounted > 0))
			wait_ms = 20;		/* commits to be known flushed, or a progress row or row counts behind */
		if (a.stashed)
		{
			sr = a.stash_result;
			f = a.stash;
			a.stashed = false;
		}
		else					/* with results in flight, wake for them too */
			sr = source_next(&a.src, &f, wait_ms, a.nsent > 0 ? PQsocket(a.conn) : -1,
							 atomic_load(&args->shared->flushed_lsn), apply_caught_up(&a));
		if (sr == SOURCE_READABLE)
		{
			if (!pipe_read(&a, -1))
			{
				status = a.fail_status;
				break;
			}
			continue;
		}
		if (sr == SOURCE_END)
		{
			/*
			 * The stream ended. Between transactions the batch commits; inside
			 * one, the whole batch rolls back (complete transactions in it too:
			 * none was confirmed, so they are streamed and applied again).
			 */
			if (in_src_txn(&a))
				abort_batch(&a);
			else if (!commit_batch(&a) || !pipe_drain(&a) || !write_progress_row(&a))
			{
				status = a.fail_status;
				break;
			}
			status = a.src.status == STREAM_FAILED ? APPLY_FAILED : APPLY_FAILED_CONN;
			break;
		}
		if (sr == SOURCE_TIMEOUT)
		{
			if (atomic_load(&args->shared->stop) && in_src_txn(&a))
			{
				/* asked to stop in the middle of a transaction: abandon it */
				abort_batch(&a);
				status = APPLY_STOPPED;
				break;
			}
			if (a.state == AS_BATCH && !commit_batch(&a))
			{
				status = a.fail_status;
				break;
			}
			/* idle: collect every result, end the server's pipeline state */
			if (!in_batch(&a) && (!pipe_drain(&a) || !write_progress_row(&a) || !advance_flushed(&a, false)))
			{
				status = a.fail_status;
				break;
			}
			continue;
		}
		if (!pgo_decode(a.dec, f.data, f.len, &m, err, sizeof(err)))
		{
			log_error("could not decode a change from the source at %X/%X: %s",
					  (unsigned) (f.wal_start >> 32), (unsigned) f.wal_start, err);
			status = APPLY_FAILED;
			break;
		}
		if (!handle(&a, &m))
		{
			status = a.fail_status;
			break;
		}
		/*
		 * A complete source transaction: commit the batch if it is full, or
		 * (at the top of the loop) if nothing more has arrived (caught up:
		 * commit now, so lag stays low) and the target is not still busy
		 * with the previous COMMIT. To know whether more arrived, read ahead
		 * one message from what libpq already holds (no system call: a read
		 * of the socket here found nothing most of the time under small
		 * transactions) and keep it for the next turn. While a COMMIT is in
		 * flight the batch stays open and grows, and is committed as soon as
		 * that COMMIT's result comes back (SOURCE_READABLE): committing it earlier
		 * would not make it visible sooner, since the target runs the
		 * COMMITs one after the other, but would cost the target a commit
		 * for every source transaction where a backlog drains (batches of
		 * one transaction doubled the target's CPU per transaction).
		 */
		if (m.kind == 'C' && in_batch(&a))
		{
			bool		commit = a.batch_changes >= APPLY_BATCH_CHANGES ||
				(repl_now_us() - a.batch_started_us) / 1000 >= APPLY_BATCH_MS;

			/* has the COMMIT in flight come back? (read without waiting) */
			if (!commit && a.commits_in_flight > 0 && !pipe_read(&a, -1))
			{
				status = a.fail_status;
				break;
			}
			if (!commit)
			{
				a.stash_result = source_next(&a.src, &a.stash, -1, -1,
											 atomic_load(&args->shared->flushed_lsn), apply_caught_up(&a));
				a.stashed = a.stash_result != SOURCE_TIMEOUT;
				commit = a.stash_result == SOURCE_END;	/* else see the top of the loop */
			}
			if (commit && !commit_batch(&a))
			{
				status = a.fail_status;
				break;
			}
		}
		if (atomic_load(&args->shared->stop) && in_src_txn(&a))
		{
			abort_batch(&a);
			status = APPLY_STOPPED;
			break;
		}
	}
	/*
	 * A failure, or a stop that cancelled a statement (take_result: "apply
	 * interrupted", fail_status APPLY_STOPPED): roll back whatever the
	 * target still holds open; apply_caught_up() stays false from here on.
	 */
	if ((status != APPLY_STOPPED || a.pipe_failed) && a.conn)
		abort_batch(&a);

done:
	pipe_clear(&a);
	free(a.sent);
	if (a.rels)
	{
		for (int i = 0; i < a.relcap; i++)
			if (a.rels[i].rel)
				rel_clear(&a.rels[i]);
		free(a.rels);
	}
	for (int i = 0; i < a.nsnaps; i++)
	{
		free(a.snaps[i].nspname);
		free(a.snaps[i].relname);
	}
	free(a.snaps);
	free(a.pending);
	free(a.counted);
	flushq_release(&a.fq);
	strbuf_release(&a.arena);
	pgo_decoder_free(a.dec);
	pg_finish(a.conn);
	atomic_store(&args->shared->status, (int) status);
	/* the last word to the source: what is durable now */
	if (a.src.status == STREAM_RUNNING)
		(void) source_keepalive(&a.src, atomic_load(&args->shared->flushed_lsn), apply_caught_up(&a), true);
	source_finish(&a.src);
	return NULL;
}

bool
apply_prepare_target(const FerryConfig *cfg, bool *use_origin, uint64_t *applied_lsn)
{
	PGconn	   *conn = pg_connect(cfg->target, "target", PG_CONN_SQL, NULL);
	const char *params[1] = {cfg->name};
	PGresult   *res = NULL;
	bool		ok = false;
	bool		fresh;

	if (conn == NULL)
		return false;
	if (!state_apply_fence(conn, cfg->name))
		goto done;
	res = pg_query(conn, "create the apply position",
				   "INSERT INTO ferry.apply_progress (migration, applied_lsn)"
				   " SELECT name, start_lsn FROM ferry.migration WHERE name = $1"
				   " ON CONFLICT (migration) DO NOTHING RETURNING 1", 1, params);
	if (res == NULL)
		goto done;
	fresh = PQntuples(res) == 1;
	PQclear(res);
	/*
	 * The row was committed asynchronously and may not be on disk yet; the
	 * stream will confirm this position to the source at once. One commit
	 * with synchronous_commit on flushes all WAL before it, so it is durable
	 * (and so are the origin positions of earlier asynchronous commits).
	 */
	if (!pg_exec(conn, "make the apply position durable", "SET synchronous_commit = on"))
		goto done;
	res = pg_query(conn, "make the apply position durable",
				   "UPDATE ferry.apply_progress SET applied_at = applied_at WHERE migration = $1", 1, params);
	if (res == NULL)
		goto done;
	PQclear(res);
	res = pg_query(conn, "read the apply position",
				   "SELECT applied_lsn::text FROM ferry.apply_progress WHERE migration = $1", 1, params);
	if (res == NULL || !pg_check_shape(res, 1, 1, "the apply position") ||
		!pg_lsn_parse(PQgetvalue(res, 0, 0), applied_lsn))
		goto done;
	PQclear(res);
	/*
	 * The origin marks ferry's writes (for reverse replication) and advances
	 * with every target transaction; the row may lag behind it. One left by
	 * an earlier migration of the same name (a new position row) is dropped.
	 */
	{
		PGresult   *o;

		if (fresh)
			PQclear(pg_execute(conn,
								 "SELECT pg_catalog.pg_replication_origin_drop(n)"
								 "  FROM (SELECT $1::text AS n) x"
								 " WHERE pg_catalog.pg_replication_origin_oid(n) IS NOT NULL",
								 1, params));
		o = pg_execute(conn,
						 "SELECT pg_catalog.pg_replication_origin_create(n)"
						 "  FROM (SELECT $1::text AS n) x"
						 " WHERE pg_catalog.pg_replication_origin_oid(n) IS NULL",
						 1, params);
		*use_origin = PQresultStatus(o) == PGRES_TUPLES_OK;
		if (!*use_origin)
			log_notice("not using a replication origin on the target (%s); the applied position is kept in ferry.apply_progress only",
					   PQresultErrorField(o, PG_DIAG_MESSAGE_PRIMARY) ? PQresultErrorField(o, PG_DIAG_MESSAGE_PRIMARY) : "no permission");
		PQclear(o);
	}
	if (*use_origin)
	{
		uint64_t	origin = 0;

		res = pg_query(conn, "read the replication origin's position",
					   "SELECT COALESCE(pg_catalog.pg_replication_origin_progress($1, false), '0/0')::text",
					   1, params);
		if (res == NULL || !pg_check_shape(res, 1, 1, "the origin position") ||
			!pg_lsn_parse(PQgetvalue(res, 0, 0), &origin))
			goto done;
		PQclear(res);
		if (origin > *applied_lsn)
			*applied_lsn = origin;
	}
	res = NULL;
	ok = true;

done:
	PQclear(res);
	pg_finish(conn);
	return ok;
}

