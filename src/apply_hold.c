/*
 * apply_hold.c: applying the changes. Inserts and plain updates are held per
 * table and sent as one multi-row statement (apply.h: "Batching"), flushed
 * before anything else touches the table and before the batch commits;
 * deletes, key-changing or partial updates and truncates go as they come.
 */
#include "apply_int.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

static bool flush_updates(Apply *a, ApplyRel *r);

/* Send a prepared statement whose values are rows [first, first+rows) of r->pend. */
static bool
send_pending(Apply *a, ApplyRel *r, const char *name, int first, int rows)
{
	int			n = rows * r->rel->ncols;
	const size_t *offs = r->pend_offs + (size_t) first * (size_t) r->rel->ncols;

	for (int i = 0; i < n; i++)
		a->params[i] = offs[i] == SIZE_MAX ? NULL : r->pend.data + offs[i];
	return stmt_send_change(a, name, n, r, "inserting", rows, "rows into", rows, 0);
}

/*
 * Send a prepared UPDATE of r (of `rows` rows, 0: one) whose n parameters
 * are values in `base` at offsets offs[order[i]] (order NULL: offs[i]).
 * `changes` is added to the batch's change count.
 */
static bool
send_offsets(Apply *a, const char *name, const char *base, const size_t *offs, const int *order, int n,
			 const ApplyRel *r, int rows, int changes)
{
	for (int i = 0; i < n; i++)
	{
		size_t		o = offs[order ? order[i] : i];

		a->params[i] = o == SIZE_MAX ? NULL : base + o;
	}
	return stmt_send_change(a, name, n, r, "updating", rows, "rows of", changes, rows > 0 ? rows : 1);
}

/* Send the inserts waiting for r: a full batch at once, a partial one row by row. */
static bool
flush_inserts(Apply *a, ApplyRel *r)
{
	char		name[64];
	bool		ok = true;

	if (r->npend == 0)
		return true;
	if (r->npend == r->batch_rows && r->batch_rows > 1)
	{
		stmt_name(name, sizeof(name), 'I', r, 0);
		if (!r->multi_prepared && !(r->multi_prepared = stmt_prepare_insert(a, r, name, r->batch_rows)))
			return false;
		ok = send_pending(a, r, name, 0, r->batch_rows);
	}
	else
	{
		stmt_name(name, sizeof(name), 'i', r, 0);
		if (!r->ins_prepared && !(r->ins_prepared = stmt_prepare_insert(a, r, name, 1)))
			return false;
		for (int k = 0; ok && k < r->npend; k++)
			ok = send_pending(a, r, name, k, 1);
	}
	r->npend = 0;
	strbuf_reset(&r->pend);
	return ok;
}

bool
hold_flush_all(Apply *a)
{
	bool		ok = true;

	for (int i = 0; i < a->npending; i++)
	{
		ApplyRel   *r = rel_lookup(a, a->pending[i], false);

		if (r)
		{
			ok = ok && flush_inserts(a, r) && flush_updates(a, r);
			r->listed = false;
		}
	}
	a->npending = 0;
	return ok;
}

/* Forget waiting inserts (their transaction is rolled back). */
void
hold_drop_all(Apply *a)
{
	for (int i = 0; i < a->npending; i++)
	{
		ApplyRel   *r = rel_lookup(a, a->pending[i], false);

		if (r)
		{
			r->npend = 0;
			strbuf_reset(&r->pend);
			for (int k = 0; k < r->nupend; k++)
			{
				free(r->ukeys[k]);
				r->ukeys[k] = NULL;
			}
			r->nupend = 0;
			strbuf_reset(&r->upend);
			r->listed = false;
		}
	}
	a->npending = 0;
}

static void
list_pending(Apply *a, ApplyRel *r)
{
	if (r->listed)
		return;
	if (a->npending == a->pendcap)
	{
		a->pendcap = a->pendcap ? a->pendcap * 2 : 64;
		a->pending = xrealloc(a->pending, sizeof(uint32_t) * (size_t) a->pendcap);
	}
	a->pending[a->npending++] = r->relid;
	r->listed = true;
}

/*
 * Count rows inserted or deleted into `r` (or a TRUNCATE of it) for
 * ferry.table_rows; apply.c writes them with the position row.
 */
void
hold_count(Apply *a, ApplyRel *r, int64_t ins, int64_t del, bool truncated)
{
	if (truncated)
	{
		r->truncated = true;
		r->n_ins = r->n_del = 0;
	}
	r->n_ins += ins;
	r->n_del += del;
	if (r->counted)
		return;
	if (a->ncounted == a->countcap)
	{
		a->countcap = a->countcap ? a->countcap * 2 : 64;
		a->counted = xrealloc(a->counted, sizeof(uint32_t) * (size_t) a->countcap);
	}
	a->counted[a->ncounted++] = r->relid;
	r->counted = true;
}

bool
apply_insert(Apply *a, ApplyRel *r, const PgoTuple *t)
{
	size_t	   *offs;

	/* an earlier update of this table goes first */
	if (!flush_updates(a, r))
		return false;

	if (t->ncols != r->rel->ncols || t->ncols > 1600)
	{
		log_error("insert into %s has %d columns, its Relation message %d", r->qualname, t->ncols, r->rel->ncols);
		a->fail_status = APPLY_FAILED;
		return false;
	}
	offs = r->pend_offs + (size_t) r->npend * (size_t) r->rel->ncols;
	for (int i = 0; i < t->ncols; i++)
	{
		if (t->cols[i].kind == 'n')
			offs[i] = SIZE_MAX;
		else
		{
			offs[i] = r->pend.len;
			strbuf_add(&r->pend, t->cols[i].data, t->cols[i].len);
			strbuf_addch(&r->pend, '\0');
		}
	}
	r->npend++;
	hold_count(a, r, 1, 0, false);
	list_pending(a, r);
	if (r->npend == r->batch_rows || r->pend.len > APPLY_INSERT_BYTES)
		return flush_inserts(a, r);
	return true;
}

bool
apply_delete(Apply *a, ApplyRel *r, char oldkind, const PgoTuple *old)
{
	char		name[64];
	int			n = 0;

	if (!flush_inserts(a, r) || !flush_updates(a, r))
		return false;

	if (old->ncols != r->rel->ncols || old->ncols > 1600)
	{
		log_error("delete from %s has %d columns, its Relation message %d", r->qualname, old->ncols, r->rel->ncols);
		a->fail_status = APPLY_FAILED;
		return false;
	}
	stmt_name(name, sizeof(name), 'd', r, 0);
	if (!r->del_prepared)
	{
		StrBuf		sql;
		int			np = 0;

		strbuf_init(&sql);
		strbuf_addf(&sql, "DELETE FROM %s%s", r->partitioned ? "" : "ONLY ", r->qualname);
		stmt_where(&sql, r, 1);
		for (int i = 0; i < r->rel->ncols; i++)
			np += r->full || r->rel->cols[i].key;
		if (!stmt_prepare(a, name, sql.data, np))
		{
			strbuf_release(&sql);
			return false;
		}
		strbuf_release(&sql);
		r->del_prepared = true;
	}
	strbuf_reset(&a->arena);
	stmt_identity_params(a, r, oldkind, old, NULL, &n);
	hold_count(a, r, 0, 1, false);
	return stmt_send_prepared(a, name, n, "deleting from", r);
}

/*
 * The prepared UPDATE for a set of columns left out of SET (mask: '1' =
 * left out), created on first use. Its parameters: the SET columns in
 * order, then the identity (key columns, or all columns for FULL). Writes
 * the statement name into name and returns it, or NULL on failure.
 */
static const char *
update_variant(Apply *a, ApplyRel *r, const char *mask, char *name, size_t namesize)
{
	UpdVariant *v = NULL;

	for (int i = 0; i < r->nupd; i++)
		if (strcmp(r->upd[i].mask, mask) == 0)
			v = &r->upd[i];
	if (v == NULL)
	{
		StrBuf		sql;
		int			p = 1;
		int			np;

		r->upd = xrealloc(r->upd, sizeof(UpdVariant) * (size_t) (r->nupd + 1));
		v = &r->upd[r->nupd];
		v->mask = xstrdup(mask);
		v->id = r->nupd++;
		stmt_name(name, namesize, 'u', r, v->id);
		strbuf_init(&sql);
		strbuf_addf(&sql, "UPDATE %s%s SET ", r->partitioned ? "" : "ONLY ", r->qualname);
		for (int i = 0; i < r->rel->ncols; i++)
		{
			const char *c;

			if (mask[i] == '1')
				continue;
			c = r->qcols[i];
			strbuf_addf(&sql, "%s%s = $%d", p > 1 ? ", " : "", c, p);
			p++;
		}
		stmt_where(&sql, r, p);
		np = p - 1;
		for (int i = 0; i < r->rel->ncols; i++)
			np += r->full || r->rel->cols[i].key;
		if (!stmt_prepare(a, name, sql.data, np))
		{
			strbuf_release(&sql);
			return NULL;
		}
		strbuf_release(&sql);
	}
	return stmt_name(name, namesize, 'u', r, v->id);
}

/* Send the updates waiting for r: a full batch as one statement, else one by one. */
static bool
flush_updates(Apply *a, ApplyRel *r)
{
	char		name[64];
	int			ncols = r->rel ? r->rel->ncols : 0;
	bool		ok = true;

	if (r->nupend == 0)
		return true;
	if (r->nupend == r->batch_rows && r->batch_rows > 1)
	{
		stmt_name(name, sizeof(name), 'U', r, 0);
		if (!r->umulti_prepared)
		{
			StrBuf		sql;
			int			p = 1;
			bool		first = true;

			strbuf_init(&sql);
			strbuf_addf(&sql, "UPDATE %s%s AS t SET ", r->partitioned ? "" : "ONLY ", r->qualname);
			for (int i = 0; i < ncols; i++)
			{
				const char *c;

				if (r->rel->cols[i].key)
					continue;
				c = r->qcols[i];
				strbuf_addf(&sql, "%s%s = v.c%d", first ? "" : ", ", c, i);
				first = false;
			}
			strbuf_addstr(&sql, " FROM (VALUES ");
			for (int k = 0; k < r->batch_rows; k++)
			{
				strbuf_addstr(&sql, k ? ", (" : "(");
				for (int i = 0; i < ncols; i++, p++)
					strbuf_addf(&sql, "%s$%d::%s", i ? ", " : "", p, r->types[i]);
				strbuf_addch(&sql, ')');
			}
			strbuf_addstr(&sql, ") AS v(");
			for (int i = 0; i < ncols; i++)
				strbuf_addf(&sql, "%sc%d", i ? ", " : "", i);
			strbuf_addstr(&sql, ") WHERE ");
			first = true;
			for (int i = 0; i < ncols; i++)
			{
				const char *c;

				if (!r->rel->cols[i].key)
					continue;
				c = r->qcols[i];
				strbuf_addf(&sql, "%st.%s = v.c%d", first ? "" : " AND ", c, i);
				first = false;
			}
			r->umulti_prepared = stmt_prepare(a, name, sql.data, p - 1);
			strbuf_release(&sql);
			if (!r->umulti_prepared)
				return false;
		}
		ok = send_offsets(a, name, r->upend.data, r->upend_offs, NULL, r->nupend * ncols,
						  r, r->nupend, 0);
	}
	else
	{
		char		mask[1700];
		int			order[1700];
		int			n = 0;

		for (int i = 0; i < ncols; i++)
			mask[i] = r->rel->cols[i].key ? '1' : '0';
		mask[ncols] = '\0';
		/* parameters: the non-key columns, then the key columns */
		for (int i = 0; i < ncols; i++)
			if (!r->rel->cols[i].key)
				order[n++] = i;
		for (int i = 0; i < ncols; i++)
			if (r->rel->cols[i].key)
				order[n++] = i;
		if (update_variant(a, r, mask, name, sizeof(name)) == NULL)
			return false;
		for (int k = 0; ok && k < r->nupend; k++)
			ok = send_offsets(a, name, r->upend.data, r->upend_offs + (size_t) k * (size_t) ncols, order, n,
							  r, 0, 0);
	}
	for (int k = 0; k < r->nupend; k++)
	{
		free(r->ukeys[k]);
		r->ukeys[k] = NULL;
	}
	r->nupend = 0;
	strbuf_reset(&r->upend);
	return ok;
}

/*
 * Hold a plain update (key unchanged, every column sent, keyed table
 * without GENERATED ALWAYS columns) for the batched UPDATE. Returns false
 * when the update does not qualify (*held stays false) or on failure.
 */
static bool
hold_update(Apply *a, ApplyRel *r, char oldkind, const PgoTuple *newt, bool *held)
{
	StrBuf		key;
	int			slot = -1;
	size_t	   *offs;
	int			nkey = 0;

	*held = false;
	if (r->full || r->no_hold || oldkind != 0 || r->any_always || r->batch_rows < 2)
		return true;
	for (int i = 0; i < newt->ncols; i++)
	{
		if (newt->cols[i].kind == 'u' || newt->cols[i].kind == 'b')
			return true;
		if (r->rel->cols[i].key)
		{
			if (newt->cols[i].kind == 'n')
				return true;
			nkey++;
		}
	}
	if (nkey == 0 || nkey == newt->ncols)
		return true;
	strbuf_init(&key);
	for (int i = 0; i < newt->ncols; i++)
		if (r->rel->cols[i].key)
		{
			strbuf_addf(&key, "%u:", newt->cols[i].len);
			strbuf_add(&key, newt->cols[i].data, newt->cols[i].len);
		}
	for (int k = 0; k < r->nupend && slot < 0; k++)
		if (strcmp(r->ukeys[k], key.data) == 0)
			slot = k;
	if (slot < 0)
	{
		slot = r->nupend++;
		r->ukeys[slot] = strbuf_detach(&key);
	}
	else
		strbuf_release(&key);
	offs = r->upend_offs + (size_t) slot * (size_t) newt->ncols;
	for (int i = 0; i < newt->ncols; i++)
	{
		if (newt->cols[i].kind == 'n')
			offs[i] = SIZE_MAX;
		else
		{
			offs[i] = r->upend.len;
			strbuf_add(&r->upend, newt->cols[i].data, newt->cols[i].len);
			strbuf_addch(&r->upend, '\0');
		}
	}
	a->batch_changes++;
	list_pending(a, r);
	*held = true;
	if (r->nupend == r->batch_rows || r->upend.len > APPLY_INSERT_BYTES)
		return flush_updates(a, r);
	return true;
}

bool
apply_update(Apply *a, ApplyRel *r, char oldkind, const PgoTuple *old, const PgoTuple *newt)
{
	char		name[64];
	char		mask[1700];
	int			n = 0;
	int			nset = 0;
	bool		held;

	if (!flush_inserts(a, r))
		return false;

	if (newt->ncols != r->rel->ncols || newt->ncols > 1600 || (oldkind && old->ncols != r->rel->ncols))
	{
		log_error("update of %s does not match its Relation message", r->qualname);
		a->fail_status = APPLY_FAILED;
		return false;
	}
	if (!hold_update(a, r, oldkind, newt, &held))
		return false;
	if (held)
		return true;
	/* anything else runs in order, after what is held for this table */
	if (!flush_updates(a, r))
		return false;
	/*
	 * Columns left out of SET: unchanged TOAST values (the target keeps its
	 * own), key columns when the key did not change (no old key was sent:
	 * they are in WHERE with the same value), and GENERATED ALWAYS identity
	 * columns, which UPDATE may not set (their value cannot change on the
	 * source either, short of SET ... = DEFAULT).
	 */
	for (int i = 0; i < newt->ncols; i++)
	{
		bool		skip = newt->cols[i].kind == 'u' || r->always[i] == '1' ||
			(oldkind == 0 && !r->full && r->rel->cols[i].key);

		mask[i] = skip ? '1' : '0';
		nset += !skip;
	}
	mask[newt->ncols] = '\0';
	if (nset == 0)
		return true;			/* nothing to write: every column is kept */
	if (update_variant(a, r, mask, name, sizeof(name)) == NULL)
		return false;
	strbuf_reset(&a->arena);
	stmt_tuple_params(a, newt, &n, mask);
	stmt_identity_params(a, r, oldkind, old, newt, &n);
	return stmt_send_prepared(a, name, n, "updating", r);
}

bool
apply_truncate(Apply *a, uint8_t options, int nrelids, const uint32_t *relids)
{
	StrBuf		sql;
	int			n = 0;
	bool		ok = true;

	if (!hold_flush_all(a))
		return false;
	strbuf_init(&sql);
	strbuf_addstr(&sql, "TRUNCATE ");
	for (int i = 0; i < nrelids; i++)
	{
		ApplyRel   *r = rel_lookup(a, relids[i], false);

		if (r == NULL)
		{
			log_error("truncate of relation %u that was never described", relids[i]);
			a->fail_status = APPLY_FAILED;
			strbuf_release(&sql);
			return false;
		}
		if (r->snapshot_lsn > a->txn_final_lsn)
			continue;
		strbuf_addf(&sql, "%s%s%s", n ? ", " : "", r->partitioned ? "" : "ONLY ", r->qualname);
		hold_count(a, r, 0, 0, true);
		n++;
	}
	if (options & PGO_TRUNCATE_RESTART_IDENTITY)
		strbuf_addstr(&sql, " RESTART IDENTITY");
	if (options & PGO_TRUNCATE_CASCADE)
		strbuf_addstr(&sql, " CASCADE");
	if (n > 0)
	{
		ok = pipe_send_simple(a, sql.data, "truncating") && pipe_maybe_sync(a);
		a->batch_changes++;
	}
	strbuf_release(&sql);
	return ok;
}

