/*
 * watch.c: writes that reach the old source after a switchover (see
 * watch.h for the design).
 */
#include "watch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "log.h"
#include "mem.h"
#include "metrics.h"
#include "pgoutput.h"
#include "pgsql.h"
#include "publication.h"
#include "state.h"

/*
 * $1 slot, $2 most changes, $3 publications; %s: the messages option where
 * the server has it (PGO_MESSAGES_MIN_VERSION), else nothing: before 14 the
 * watch knows reverse replication's transactions by their origin alone
 */
static const char WATCH_PEEK_SQL_FMT[] =
	"SELECT lsn::text, encode(data, 'hex')"
	"  FROM pg_catalog.pg_logical_slot_peek_binary_changes($1, NULL, $2::int,"
	"       'proto_version', '1', 'publication_names', $3%s)";

static const char WATCH_RECORD_SQL[] =
	"INSERT INTO ferry.source_writes AS w (migration, tablename, changes, last_lsn, last_at)"
	" SELECT $1, t, c, l, pg_catalog.now()"
	"   FROM unnest($2::text[], $3::bigint[], $4::pg_lsn[]) AS x (t, c, l)"
	" ON CONFLICT (migration, tablename) DO UPDATE"
	"   SET changes = w.changes + excluded.changes, last_lsn = excluded.last_lsn, last_at = excluded.last_at";

typedef struct WatchRel
{
	uint32_t	relid;
	char	   *name;			/* "schema"."table", quoted */
} WatchRel;

typedef struct Watch
{
	PGconn	   *conn;			/* the old source: for quoting */
	WatchRel   *rels;
	int			nrels;
	/* the transaction being read */
	bool		in_txn;
	bool		own;			/* reverse replication's */
	uint64_t	carried;		/* transactions ending at or before it went forward */
	StrList		txn_tables;		/* tables it changed, with counts */
	int64_t    *txn_counts;
	/* found, per table */
	StrList		tables;
	int64_t    *counts;
	uint64_t   *lsns;
	int64_t		total;
	uint64_t	end_lsn;		/* end of the last whole transaction read */
} Watch;

static const char *
rel_name(Watch *w, uint32_t relid)
{
	for (int i = 0; i < w->nrels; i++)
		if (w->rels[i].relid == relid)
			return w->rels[i].name;
	return "(an unknown table)";
}

/* Add n to the count of `table` in the list l / counts c (grown as needed). */
static void
count_add(StrList *l, int64_t **c, const char *table, int64_t n)
{
	int			i;

	for (i = 0; i < l->n && strcmp(l->items[i], table) != 0; i++)
		;
	if (i == l->n)
	{
		strlist_add(l, table);
		*c = xrealloc(*c, sizeof(int64_t) * (size_t) l->n);
		(*c)[i] = 0;
	}
	(*c)[i] += n;
}

static void
txn_reset(Watch *w)
{
	strlist_free(&w->txn_tables);
	free(w->txn_counts);
	w->txn_counts = NULL;
	w->own = false;
}

/* One decoded message of the watch slot's stream. */
static void
watch_message(Watch *w, const PgoMessage *m, const char *reverse_name)
{
	switch (m->kind)
	{
		case 'B':
			txn_reset(w);
			w->in_txn = true;
			break;
		case 'O':
			if (strcmp(m->u.origin.name, reverse_name) == 0)
				w->own = true;
			break;
		case 'M':
			if (m->u.message.transactional && strcmp(m->u.message.prefix, APPLY_MARK_PREFIX) == 0 &&
				m->u.message.len == strlen(reverse_name) &&
				memcmp(m->u.message.content, reverse_name, m->u.message.len) == 0)
				w->own = true;
			break;
		case 'R':
			{
				char	   *a = pg_quote_ident(w->conn, m->u.relation.nspname);
				char	   *b = pg_quote_ident(w->conn, m->u.relation.relname);
				int			i;

				for (i = 0; i < w->nrels && w->rels[i].relid != m->u.relation.relid; i++)
					;
				if (i == w->nrels)
				{
					w->rels = xrealloc(w->rels, sizeof(WatchRel) * (size_t) (w->nrels + 1));
					w->rels[w->nrels++].relid = m->u.relation.relid;
				}
				else
					free(w->rels[i].name);
				w->rels[i].name = xasprintf("%s.%s", a ? a : m->u.relation.nspname, b ? b : m->u.relation.relname);
				free(a);
				free(b);
			}
			break;
		case 'I':
			count_add(&w->txn_tables, &w->txn_counts, rel_name(w, m->u.insert.relid), 1);
			break;
		case 'U':
			count_add(&w->txn_tables, &w->txn_counts, rel_name(w, m->u.update.relid), 1);
			break;
		case 'D':
			count_add(&w->txn_tables, &w->txn_counts, rel_name(w, m->u.delete_.relid), 1);
			break;
		case 'T':
			for (int i = 0; i < m->u.truncate.nrelids; i++)
				count_add(&w->txn_tables, &w->txn_counts, rel_name(w, m->u.truncate.relids[i]), 1);
			break;
		case 'C':
			if (!w->own && m->u.commit.end_lsn > w->carried)
				for (int i = 0; i < w->txn_tables.n; i++)
				{
					int			before = w->tables.n;

					count_add(&w->tables, &w->counts, w->txn_tables.items[i], w->txn_counts[i]);
					if (w->tables.n != before)
						w->lsns = xrealloc(w->lsns, sizeof(uint64_t) * (size_t) w->tables.n);
					for (int j = 0; j < w->tables.n; j++)
						if (strcmp(w->tables.items[j], w->txn_tables.items[i]) == 0)
							w->lsns[j] = m->u.commit.commit_lsn;
					w->total += w->txn_counts[i];
				}
			txn_reset(w);
			w->in_txn = false;
			w->end_lsn = m->u.commit.end_lsn;
			break;
		default:
			break;
	}
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Record what was found (ferry.source_writes on the new primary). */
static bool
watch_record(PGconn *state_conn, const char *forward_name, const Watch *w)
{
	StrBuf		c,
				l;
	char	   *t = pg_text_array(&w->tables);
	PGresult   *res;

	strbuf_init(&c);
	strbuf_init(&l);
	for (int i = 0; i < w->tables.n; i++)
	{
		char		lsn[32];

		pg_lsn_format(w->lsns[i], lsn, sizeof(lsn));
		strbuf_addf(&c, "%s%lld", i ? "," : "{", (long long) w->counts[i]);
		strbuf_addf(&l, "%s%s", i ? "," : "{", lsn);
		log_error("a write reached the old source after the switchover: %lld changes to %s, the last in the transaction committed at %s there; they are NOT on the new primary. Fix: find the client still writing to the old source (its pg_stat_activity) and stop it, then carry those rows to the new primary by hand",
				  (long long) w->counts[i], w->tables.items[i], lsn);
	}
	strbuf_addch(&c, '}');
	strbuf_addch(&l, '}');
	{
		const char *params[4] = {forward_name, t, c.data, l.data};

		res = pg_query(state_conn, "record the writes on the old source", WATCH_RECORD_SQL, 4, params);
	}
	PQclear(res);
	free(t);
	strbuf_release(&c);
	strbuf_release(&l);
	return res != NULL;
}

/*
 * A query on the watch slot: its result (owned), or NULL. Several sessions
 * may look at the watch at once (the reverse follower every interval, a
 * rollback's last look, status, cleanup), and PostgreSQL lets one hold the
 * slot at a time: the others get "replication slot ... is active for PID"
 * (SQLSTATE 55006). That is no failure: the holder does the work (a
 * transaction it and a later reader both read is counted twice, never
 * lost), so *busy is set and nothing is logged but a debug line. Any other
 * error is logged.
 */
static PGresult *
watch_query(PGconn *conn, const char *what, const char *sql, int nparams, const char *const *params,
			bool *busy)
{
	PGresult   *res = pg_execute(conn, sql, nparams, params);
	const char *state;

	*busy = false;
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		return res;
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (state && strcmp(state, "55006") == 0)
	{
		log_debug("could not %s: another session holds the watch slot; left to it", what);
		*busy = true;
	}
	else
	{
		char	   *e = pg_result_error_text(res, conn);

		log_error("could not %s: %s", what, e);
		free(e);
	}
	PQclear(res);
	return NULL;
}

int64_t
watch_poll(PGconn *old_src, PGconn *state_conn, const char *forward_name, const char *pubs,
		   const char *reverse_name, uint64_t carried)
{
	char		most[16];
	const char *params[3] = {forward_name, most, pubs};
	PGresult   *res;
	PgoDecoder *d = pgo_decoder_new(1);
	Watch		w;
	unsigned char *buf = NULL;
	size_t		cap = 0;
	int64_t		found = -1;
	char	   *sql;
	bool		busy;

	memset(&w, 0, sizeof(w));
	w.conn = old_src;
	w.carried = carried;
	snprintf(most, sizeof(most), "%d", WATCH_MAX_CHANGES);
	sql = xasprintf(WATCH_PEEK_SQL_FMT,
					pg_caps(old_src).logical_messages ? ", 'messages', 'true'" : "");
	res = watch_query(old_src, "read the old source's watch slot", sql, 3, params, &busy);
	free(sql);
	if (res == NULL && busy)
		found = 0;				/* this look found nothing: the holder looks */
	if (res == NULL || !pg_check_shape(res, -1, 2, "the watch slot's changes"))
		goto done;
	for (int r = 0; r < PQntuples(res); r++)
	{
		const char *hex = PQgetvalue(res, r, 1);
		size_t		n = strlen(hex) / 2;
		PgoMessage	m;
		char		err[200];

		if (n + 1 > cap)
		{
			cap = n + 1;
			buf = xrealloc(buf, cap);
		}
		for (size_t i = 0; i < n; i++)
			buf[i] = (unsigned char) (hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
		if (!pgo_decode(d, (const char *) buf, n, &m, err, sizeof(err)))
		{
			log_error("could not decode the watch slot's change at %s: %s", PQgetvalue(res, r, 0), err);
			goto done;
		}
		watch_message(&w, &m, reverse_name);
	}
	if (state_conn == NULL)
	{
		found = w.total;		/* only counting */
		goto done;
	}
	if (w.tables.n > 0 && !watch_record(state_conn, forward_name, &w))
		goto done;
	metrics_add_source_writes(w.total);
	if (w.end_lsn > 0)
	{
		char		lsn[32];
		const char *ap[2] = {forward_name, lsn};
		PGresult   *adv;

		pg_lsn_format(w.end_lsn, lsn, sizeof(lsn));
		adv = watch_query(old_src, "advance the watch slot",
						  "SELECT pg_catalog.pg_replication_slot_advance($1, $2::pg_catalog.pg_lsn)", 2, ap, &busy);
		PQclear(adv);
		if (adv == NULL && !busy)
			goto done;			/* busy: recorded; the holder reads them again (counted twice) */
	}
	found = w.total;

done:
	PQclear(res);
	pgo_decoder_free(d);
	free(buf);
	txn_reset(&w);
	for (int i = 0; i < w.nrels; i++)
		free(w.rels[i].name);
	free(w.rels);
	strlist_free(&w.tables);
	free(w.counts);
	free(w.lsns);
	return found;
}

long long
watch_recorded(PGconn *new_primary, const char *name)
{
	const char *params[1] = {name};
	PGresult   *res;
	long long	n;
	int			has = state_table_exists(new_primary, "source_writes");

	if (has != 1)
		return has < 0 ? -1 : 0;
	res = pg_query(new_primary, "read the writes on the old source",
				   "SELECT COALESCE(sum(changes), 0) FROM ferry.source_writes WHERE migration = $1", 1, params);
	n = res ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : -1;
	PQclear(res);
	return n;
}

int64_t
watch_poll_migration(PGconn *old_src, PGconn *new_primary, bool record, const char *forward_name)
{
	const char *params[1] = {forward_name};
	PGresult   *res = pg_query(old_src, "look up the watch slot",
							   "SELECT active FROM pg_catalog.pg_replication_slots WHERE slot_name = $1", 1, params);
	bool		idle = res && PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 'f';
	FerryConfig fwd;
	char	   *pubs;
	char	   *rname;
	uint64_t	carried = 0;
	int64_t		n = 0;

	PQclear(res);
	if (res == NULL)
		return -1;
	if (!idle)
		return 0;				/* none (--no-reverse, cleaned up), or the forward stream still stops */
	/* a rollback that kept the slot for a retry made it a forward slot again (switchover.h): not ours to read */
	res = pg_query(new_primary, "read the migration's phase",
				   "SELECT (pg_catalog.to_jsonb(m) ->> 'rearm_lsn') IS NULL AND m.phase IN ('switching', 'switched', 'rolling_back')"
				   "  FROM ferry.migration m WHERE m.name = $1", 1, params);
	if (res == NULL)
		return -1;
	idle = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	if (!idle)
		return 0;
	/* what the forward stream carried to the new primary: never a write after the switch */
	res = pg_query(new_primary, "read the forward migration's applied position",
				   "SELECT applied_lsn::text FROM ferry.apply_progress WHERE migration = $1", 1, params);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 1)
		pg_lsn_parse(PQgetvalue(res, 0, 0), &carried);
	PQclear(res);
	memset(&fwd, 0, sizeof(fwd));
	fwd.name = (char *) forward_name;
	pubs = publication_names(old_src, &fwd);
	rname = xasprintf("%s%s", forward_name, CONFIG_REVERSE_SUFFIX);
	if (pubs != NULL)
		n = watch_poll(old_src, record ? new_primary : NULL, forward_name, pubs, rname, carried);
	free(pubs);
	free(rname);
	return n;
}
