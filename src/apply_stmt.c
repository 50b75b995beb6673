/*
 * apply_stmt.c: relations and their statements. A Relation message is
 * checked against the target's table; each relation's INSERT, UPDATE and
 * DELETE statements are built and prepared per generation (a new Relation
 * message starts one and drops the last one's), with their parameters.
 */
#include "apply_int.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pgsql.h"

/*
 * Which snapshot LSN each copied table was copied at, and each partition
 * root: a source of 13+ streams a partition's changes under its root
 * (publish_via_partition_root), one before 13 under the partition itself.
 * The clone copies every partition of one tree at one snapshot (clone.c
 * redoes the tree on a resume that would split it), so a root's max is the
 * snapshot of each of its partitions.
 */
static const char TABLE_SNAPSHOTS_SQL[] =
	"SELECT ci.nspname, ci.relname, max(ci.snapshot_lsn)::text"
	"  FROM ferry.copy_item ci WHERE ci.migration = $1 GROUP BY 1, 2"
	" UNION ALL "
	"SELECT rn.nspname, rc.relname, max(ci.snapshot_lsn)::text"
	"  FROM ferry.copy_item ci"
	"  JOIN pg_catalog.pg_class rc ON rc.oid = pg_catalog.pg_partition_root("
	"         pg_catalog.to_regclass(pg_catalog.quote_ident(ci.nspname) || '.' || pg_catalog.quote_ident(ci.relname)))"
	"  JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace"
	" WHERE ci.migration = $1 AND rc.relkind = 'p'"
	" GROUP BY 1, 2";

/*
 * The target's columns of a table, as pgoutput would send them. Types are
 * named without their modifier (varchar, numeric, bpchar, "bit"): the
 * multi-row statements cast parameters to them, and an explicit cast to
 * varchar(3) or char(3) truncates silently where the column's own
 * (assignment) coercion raises an error; rounding to numeric(p,s) or
 * timestamp(p) still happens, in the assignment, as for a single row.
 */
static const char TARGET_COLUMNS_SQL[] =
	"SELECT c.relkind, a.attname, a.attidentity = 'a',"
	"       CASE a.atttypid WHEN 'pg_catalog.bit'::pg_catalog.regtype THEN 'bit varying'"
	"                       WHEN 'pg_catalog.bit[]'::pg_catalog.regtype THEN 'bit varying[]'"
	"                       WHEN 'pg_catalog.bpchar'::pg_catalog.regtype THEN 'pg_catalog.bpchar'"
	"                       WHEN 'pg_catalog.bpchar[]'::pg_catalog.regtype THEN 'pg_catalog.bpchar[]'"
	"                       ELSE pg_catalog.format_type(a.atttypid, NULL) END,"
	"       EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid"
	"                  AND (i.indisunique OR i.indisexclusion) AND NOT i.indisprimary AND NOT i.indisreplident)"
	"  FROM pg_catalog.pg_class c"
	"  LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0"
	"       AND NOT a.attisdropped AND a.attgenerated = ''"
	" WHERE c.oid = pg_catalog.to_regclass($1)"
	" ORDER BY a.attnum";
/* ------------------------------------------------------------------ */

ApplyRel *
rel_lookup(Apply *a, uint32_t relid, bool create)
{
	uint32_t	mask = (uint32_t) a->relcap - 1;
	uint32_t	i = (relid * 2654435761u) & mask;

	for (;;)
	{
		ApplyRel   *r = &a->rels[i];

		if (r->rel != NULL && r->relid == relid)
			return r;
		if (r->rel == NULL)
			return create ? r : NULL;
		i = (i + 1) & mask;
	}
}

void
rel_clear(ApplyRel *r)
{
	if (r->types)
		for (int i = 0; i < r->rel->ncols; i++)
			free(r->types[i]);
	free(r->types);
	if (r->pend.data)
		strbuf_release(&r->pend);
	free(r->pend_offs);
	if (r->upend.data)
		strbuf_release(&r->upend);
	free(r->upend_offs);
	if (r->ukeys)
		for (int i = 0; i < r->batch_rows; i++)
			free(r->ukeys[i]);
	free(r->ukeys);
	for (int i = 0; r->qcols && r->rel && i < r->rel->ncols; i++)
		free(r->qcols[i]);
	free(r->qcols);
	pgo_relation_free(r->rel);
	free(r->qualname);
	free(r->always);
	for (int i = 0; i < r->nupd; i++)
		free(r->upd[i].mask);
	free(r->upd);
	memset(r, 0, sizeof(*r));
}

void
rels_grow(Apply *a)
{
	ApplyRel   *old = a->rels;
	int			oldcap = a->relcap;

	a->relcap = oldcap ? oldcap * 2 : 256;
	a->rels = xcalloc((size_t) a->relcap, sizeof(ApplyRel));
	for (int i = 0; i < oldcap; i++)
		if (old[i].rel)
			*rel_lookup(a, old[i].relid, true) = old[i];
	free(old);
}

static uint64_t
table_snapshot(Apply *a, const char *nsp, const char *rel)
{
	for (int i = 0; i < a->nsnaps; i++)
		if (strcmp(a->snaps[i].nspname, nsp) == 0 && strcmp(a->snaps[i].relname, rel) == 0)
			return a->snaps[i].lsn;
	return 0;
}

bool
rel_load_snapshots(Apply *a)
{
	const char *params[1] = {a->args->cfg->name};
	PGresult   *res = pg_query(a->conn, "read the tables' copy snapshots", TABLE_SNAPSHOTS_SQL, 1, params);

	if (res == NULL)
		return false;
	a->nsnaps = PQntuples(res);
	a->snaps = xcalloc((size_t) a->nsnaps + 1, sizeof(TableSnap));
	for (int i = 0; i < a->nsnaps; i++)
	{
		a->snaps[i].nspname = xstrdup(PQgetvalue(res, i, 0));
		a->snaps[i].relname = xstrdup(PQgetvalue(res, i, 1));
		pg_lsn_parse(PQgetvalue(res, i, 2), &a->snaps[i].lsn);
	}
	PQclear(res);
	return true;
}

/* ------------------------------------------------------------------ */
/* relations and statements                                             */

/*
 * The name of one of a relation's prepared statements: kind 'i' single-row
 * INSERT, 'I' multi-row INSERT, 'U' multi-row UPDATE, 'd' DELETE, 'u' the
 * UPDATE variant `variant`; per generation (bumped by each Relation message).
 * Mixed case: quote it (pg_quote_ident) wherever it appears in SQL text.
 */
const char *
stmt_name(char *buf, size_t size, char kind, const ApplyRel *r, int variant)
{
	if (kind == 'u')
		snprintf(buf, size, "u%u_%d_%d", r->relid, r->gen, variant);
	else
		snprintf(buf, size, "%c%u_%d", kind, r->relid, r->gen);
	return buf;
}

/*
 * Drop the prepared statements of a relation's current generation. The
 * walsender sends a Relation message again after every invalidation of the
 * table's cache entry (ALTER TABLE, but also each VACUUM or ANALYZE of it),
 * and each one starts a new generation: over weeks of following, the
 * target's apply session would otherwise pile up prepared statements.
 * Sent in the pipeline; the next sync reads the results. The names are
 * quoted: unquoted, "I16385_0" (a multi-row INSERT) is folded to the
 * single-row "i16385_0".
 */
static bool
deallocate_one(Apply *a, char kind, const ApplyRel *r, int variant)
{
	char		name[64];
	char	   *q = pg_quote_ident(a->conn, stmt_name(name, sizeof(name), kind, r, variant));
	char	   *sql = q ? xasprintf("DEALLOCATE %s", q) : NULL;
	bool		ok = sql != NULL && pipe_send_simple(a, sql, "dropping a prepared statement");

	free(sql);
	free(q);
	return ok;
}

static bool
deallocate_statements(Apply *a, const ApplyRel *r)
{
	bool		ok = (!r->ins_prepared || deallocate_one(a, 'i', r, 0)) &&
		(!r->multi_prepared || deallocate_one(a, 'I', r, 0)) &&
		(!r->umulti_prepared || deallocate_one(a, 'U', r, 0)) &&
		(!r->del_prepared || deallocate_one(a, 'd', r, 0));

	for (int i = 0; ok && i < r->nupd; i++)
		ok = deallocate_one(a, 'u', r, r->upd[i].id);
	return ok;
}

/*
 * Match the Relation message's columns to the target table's (`res`, rows
 * of TARGET_COLUMNS_SQL) by name: map[i] is the result row of msg->cols[i].
 * The order may differ: a restored inheritance child lists its parent's
 * columns first, where the source's child has a column added to the parent
 * after it was created last (pg_dump cannot keep that order; the regression
 * database's b_star), and every statement names its columns. Returns true
 * when both have the same columns; otherwise writes both lists into `diff`.
 */
static bool
match_columns(const PgoRelation *msg, const PGresult *res, int *map, StrBuf *diff)
{
	int			nt = PQntuples(res);
	int			ntcols = nt > 0 && !PQgetisnull(res, 0, 1) ? nt : 0;
	bool		same = ntcols == msg->ncols;

	if (nt == 0)
	{
		strbuf_addf(diff, "the table does not exist on the target");
		return false;
	}
	for (int i = 0; same && i < msg->ncols; i++)
	{
		map[i] = -1;
		for (int t = 0; t < ntcols && map[i] < 0; t++)
			if (strcmp(PQgetvalue(res, t, 1), msg->cols[i].name) == 0)
				map[i] = t;
		same = map[i] >= 0;
	}
	if (same)
		return true;
	strbuf_addstr(diff, "source columns (");
	for (int i = 0; i < msg->ncols; i++)
		strbuf_addf(diff, "%s%s", i ? ", " : "", msg->cols[i].name);
	strbuf_addstr(diff, "), target columns (");
	for (int i = 0; i < ntcols; i++)
		strbuf_addf(diff, "%s%s", i ? ", " : "", PQgetvalue(res, i, 1));
	strbuf_addstr(diff, ")");
	return false;
}

/*
 * A Relation message: remember it, and check the target table has the same
 * columns (in any order). Returns false with fail_status APPLY_FAILED_SCHEMA
 * on a mismatch.
 */
/* Free an array of n owned strings (NULL items fine) and the array. */
static void
names_free(char **names, int n)
{
	for (int i = 0; names && i < n; i++)
		free(names[i]);
	free(names);
}

bool
rel_handle(Apply *a, const PgoRelation *msg)
{
	ApplyRel   *r;
	char	   *qn = pg_quote_ident(a->conn, msg->nspname);
	char	   *qr = pg_quote_ident(a->conn, msg->relname);
	char	   *qual = qn && qr ? xasprintf("%s.%s", qn, qr) : NULL;
	const char *params[1] = {qual};
	char	  **qcols = xcalloc((size_t) msg->ncols + 1, sizeof(char *));
	PGresult   *res;
	StrBuf		diff;
	int			nt;
	int		   *map;
	int			gen = 0;
	bool		quoted = qual != NULL;

	free(qn);
	free(qr);
	/* every column name quoted once, by libpq for the target's encoding */
	for (int i = 0; quoted && i < msg->ncols; i++)
		quoted = (qcols[i] = pg_quote_ident(a->conn, msg->cols[i].name)) != NULL;
	if (!quoted || !hold_flush_all(a))
	{
		names_free(qcols, msg->ncols);
		free(qual);
		if (!quoted)
			a->fail_status = APPLY_FAILED;
		return false;
	}
	res = pipe_query_now(a, "read the target table's columns", TARGET_COLUMNS_SQL, 1, params);
	if (res == NULL)
	{
		free(qual);
		names_free(qcols, msg->ncols);
		return false;
	}
	strbuf_init(&diff);
	nt = PQntuples(res);
	map = xcalloc((size_t) msg->ncols + 1, sizeof(int));
	if (!match_columns(msg, res, map, &diff))
	{
		free(map);
		log_error("table %s differs between source and target: %s; nothing is applied until the target has the same change. Fix: apply the source's schema change (ALTER TABLE ...) on the target; ferry retries and then continues",
				  qual, diff.data);
		strbuf_release(&diff);
		PQclear(res);
		free(qual);
		names_free(qcols, msg->ncols);
		a->fail_status = APPLY_FAILED_SCHEMA;
		return false;
	}
	strbuf_release(&diff);

	if (a->relcap == 0 || (rel_lookup(a, msg->relid, false) == NULL && a->relcap < 4))
		rels_grow(a);
	r = rel_lookup(a, msg->relid, false);
	if (r)
	{
		gen = r->gen + 1;
		if (!deallocate_statements(a, r))
		{
			PQclear(res);
			free(qual);
			names_free(qcols, msg->ncols);
			return false;
		}
		rel_clear(r);
	}
	else
	{
		int			used = 0;

		for (int i = 0; i < a->relcap; i++)
			used += a->rels[i].rel != NULL;
		if (used * 2 >= a->relcap)
			rels_grow(a);
	}
	r = rel_lookup(a, msg->relid, true);
	r->relid = msg->relid;
	r->rel = pgo_relation_copy(msg);
	r->qualname = qual;
	r->qcols = qcols;
	qcols = NULL;
	r->gen = gen;
	r->partitioned = PQgetvalue(res, 0, 0)[0] == 'p';
	r->snapshot_lsn = table_snapshot(a, msg->nspname, msg->relname);
	/* FULL flags every column as key: it must find one row, not all equal ones */
	r->full = msg->replident == 'f';
	if (!r->full)
	{
		r->full = true;
		for (int i = 0; i < msg->ncols; i++)
			if (msg->cols[i].key)
				r->full = false;
	}
	r->always = xcalloc((size_t) msg->ncols + 1, 1);
	r->types = xcalloc((size_t) msg->ncols + 1, sizeof(char *));
	for (int i = 0; i < msg->ncols; i++)
	{
		r->always[i] = PQgetvalue(res, map[i], 2)[0] == 't' ? '1' : '0';
		r->any_always |= r->always[i] == '1';
		r->types[i] = xstrdup(PQgetvalue(res, map[i], 3));
	}
	free(map);
	r->batch_rows = msg->ncols > 0 ? APPLY_INSERT_BATCH : 1;
	/* a batch's parameters must fit Apply.params */
	if (msg->ncols > 0 && r->batch_rows * msg->ncols > APPLY_MAX_PARAMS)
		r->batch_rows = APPLY_MAX_PARAMS / msg->ncols;
	/*
	 * Merging updates per key sends a table's updates in another order; with
	 * a unique or exclusion index besides the key, a row-by-row check could
	 * then fail where the source's order succeeded (two rows swapping a
	 * unique value). Such tables get their updates in source order.
	 */
	r->no_hold = nt > 0 && !PQgetisnull(res, 0, 4) && PQgetvalue(res, 0, 4)[0] == 't';
	if (r->batch_rows < 1)
		r->batch_rows = 1;
	strbuf_init(&r->pend);
	r->pend_offs = xcalloc((size_t) r->batch_rows * (size_t) (msg->ncols ? msg->ncols : 1), sizeof(size_t));
	strbuf_init(&r->upend);
	r->upend_offs = xcalloc((size_t) r->batch_rows * (size_t) (msg->ncols ? msg->ncols : 1), sizeof(size_t));
	r->ukeys = xcalloc((size_t) r->batch_rows, sizeof(char *));
	PQclear(res);
	return true;
}

/*
 * Copy each value of a tuple, NUL-terminated, into the arena and note its
 * offset (SIZE_MAX for NULL) in a->poffs from index *n on. Offsets, not
 * pointers: the arena may move as it grows; stmt_send_prepared() resolves them.
 */
void
stmt_tuple_params(Apply *a, const PgoTuple *t, int *n, const char *skip_mask)
{
	int			k = *n;

	for (int i = 0; i < t->ncols && k < APPLY_MAX_PARAMS; i++)
	{
		if (skip_mask && skip_mask[i] == '1')
			continue;
		if (t->cols[i].kind == 'n')
			a->poffs[k] = SIZE_MAX;
		else
		{
			a->poffs[k] = a->arena.len;
			strbuf_add(&a->arena, t->cols[i].data, t->cols[i].len);
			strbuf_addch(&a->arena, '\0');
		}
		k++;
	}
	*n = k;
}

/*
 * Append "a = $n AND b = $n+1" (or the FULL form) for the identity. FULL
 * compares every column as text, since not every type has an equality
 * operator (json, point, xml), but the source's text is first read back
 * into the column's type and printed by the target: how a server prints a
 * value depends on it and its settings (bytea_output, a float before 12,
 * a time zone), and the row must be found however the source printed it;
 * byte for byte (COLLATE "C"): under a nondeterministic collation 'abc'
 * equals 'ABC', and the other row would be changed.
 */
void
stmt_where(StrBuf *sql, const ApplyRel *r, int first_param)
{
	int			p = first_param;
	bool		any = false;

	if (r->full)
	{
		strbuf_addf(sql, " WHERE (tableoid, ctid) IN (SELECT tableoid, ctid FROM %s%s WHERE ",
					r->partitioned ? "" : "ONLY ", r->qualname);
		for (int i = 0; i < r->rel->ncols; i++)
		{
			const char *c = r->qcols[i];

			strbuf_addf(sql, "%s(%s::text COLLATE \"C\") IS NOT DISTINCT FROM ($%d::%s)::text", any ? " AND " : "", c, p++, r->types[i]);
			any = true;
		}
		strbuf_addstr(sql, " LIMIT 1)");
		return;
	}
	strbuf_addstr(sql, " WHERE ");
	for (int i = 0; i < r->rel->ncols; i++)
	{
		const char *c;

		if (!r->rel->cols[i].key)
			continue;
		c = r->qcols[i];
		strbuf_addf(sql, "%s%s = $%d", any ? " AND " : "", c, p++);
		any = true;
	}
}

bool
stmt_prepare(Apply *a, const char *name, const char *sql, int nparams)
{
	if (PQsendPrepare(a->conn, name, sql, nparams, NULL) != 1)
	{
		pipe_broken(a, "could not send to the target");
		return false;
	}
	pipe_note_sent(a, "preparing a statement", xasprintf("preparing %s", sql));
	return true;
}

/* The identity values of a change: the old tuple if sent, else the new one. */
void
stmt_identity_params(Apply *a, const ApplyRel *r, char oldkind, const PgoTuple *old, const PgoTuple *newt, int *n)
{
	const PgoTuple *src = oldkind ? old : newt;

	if (r->full)
	{
		stmt_tuple_params(a, src, n, NULL);
		return;
	}
	/* a 'K' old tuple carries only key columns (others null); 'O' all */
	{
		char		mask[4096];

		for (int i = 0; i < src->ncols && i < (int) sizeof(mask) - 1; i++)
			mask[i] = r->rel->cols[i].key ? '0' : '1';
		mask[src->ncols < (int) sizeof(mask) - 1 ? src->ncols : (int) sizeof(mask) - 1] = '\0';
		stmt_tuple_params(a, src, n, mask);
	}
}

/*
 * Send the prepared change statement `name` of r with the n parameters in
 * a->params; `changes` rows count in the batch. An error on it reads
 * "VERB [ROWS LINK] TABLE" (describe_sent).
 */
bool
stmt_send_change(Apply *a, const char *name, int n, const ApplyRel *r, const char *verb, int rows, const char *link,
			int changes, int expect)
{
	Sent	   *e;

	if (PQsendQueryPrepared(a->conn, name, n, a->params, NULL, NULL, 0) != 1)
	{
		pipe_broken(a, "could not send to the target");
		return false;
	}
	e = pipe_push(a, SENT_STATEMENT, verb, NULL);
	e->relid = r->relid;
	e->rows = rows;
	e->link = link;
	e->expect = expect;
	e->lsn = a->txn_final_lsn;
	a->batch_changes += changes;
	return pipe_maybe_sync(a);
}

/* A one-row statement whose parameters are in the arena (a->poffs). */
bool
stmt_send_prepared(Apply *a, const char *name, int n, const char *what, const ApplyRel *r)
{
	for (int i = 0; i < n; i++)
		a->params[i] = a->poffs[i] == SIZE_MAX ? NULL : a->arena.data + a->poffs[i];
	return stmt_send_change(a, name, n, r, what, 0, NULL, 1, 1);
}

/* The column list "(a, b, c)" of a relation, owned. */
static char *
column_list(const ApplyRel *r)
{
	StrBuf		sb;

	strbuf_init(&sb);
	strbuf_addch(&sb, '(');
	for (int i = 0; i < r->rel->ncols; i++)
	{
		const char *c = r->qcols[i];

		strbuf_addf(&sb, "%s%s", i ? ", " : "", c);
	}
	strbuf_addch(&sb, ')');
	return strbuf_detach(&sb);
}

/*
 * Prepare the INSERT of `rows` rows. One row takes untyped parameters (they
 * get the column types); several need explicit casts, because a multi-row
 * VALUES list would otherwise type them as text.
 */
bool
stmt_prepare_insert(Apply *a, ApplyRel *r, const char *name, int rows)
{
	StrBuf		sql;
	char	   *cols = column_list(r);
	int			p = 1;
	bool		ok;

	strbuf_init(&sql);
	strbuf_addf(&sql, "INSERT INTO %s %s%s VALUES ", r->qualname, cols,
				r->any_always ? " OVERRIDING SYSTEM VALUE" : "");
	for (int k = 0; k < rows; k++)
	{
		strbuf_addstr(&sql, k ? ", (" : "(");
		for (int i = 0; i < r->rel->ncols; i++, p++)
		{
			if (rows > 1)
				strbuf_addf(&sql, "%s$%d::%s", i ? ", " : "", p, r->types[i]);
			else
				strbuf_addf(&sql, "%s$%d", i ? ", " : "", p);
		}
		strbuf_addch(&sql, ')');
	}
	ok = stmt_prepare(a, name, sql.data, p - 1);
	strbuf_release(&sql);
	free(cols);
	return ok;
}

