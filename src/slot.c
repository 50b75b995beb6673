/*
 * slot.c: creating and dropping the source's logical replication slots
 * (see slot.h for the snapshot contract).
 */
#include "slot.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mem.h"
#include "pgsql.h"

bool
slot_create(const char *conninfo, const char *slot_name, bool temporary, SlotSnapshot *out)
{
	PGconn	   *conn;
	PGresult   *res = NULL;
	char	   *qslot;
	char	   *sql;
	bool		ok = false;

	conn = pg_connect(conninfo, "source", PG_CONN_REPLICATION, NULL);
	if (conn == NULL)
		return false;
	if ((qslot = pg_quote_ident(conn, slot_name)) == NULL)
	{
		pg_finish(conn);
		return false;
	}
	/* the pre-15 syntax is still accepted by 15 and later: works from 10 on */
	sql = xasprintf("CREATE_REPLICATION_SLOT %s %sLOGICAL pgoutput EXPORT_SNAPSHOT",
					qslot, temporary ? "TEMPORARY " : "");
	log_info("creating %sreplication slot %s on the source (waits for running transactions to finish)",
			 temporary ? "temporary " : "", slot_name);
	pg_cancel_register(conn);
	res = pg_query(conn, "create the replication slot", sql, 0, NULL);
	pg_cancel_unregister(conn);
	if (res == NULL || !pg_check_shape(res, 1, 4, "CREATE_REPLICATION_SLOT"))
		goto cleanup;

	memset(out, 0, sizeof(*out));
	out->slot_name = xstrdup(PQgetvalue(res, 0, 0));
	out->lsn_text = xstrdup(PQgetvalue(res, 0, 1));
	out->snapshot = xstrdup(PQgetvalue(res, 0, 2));
	out->temporary = temporary;
	if (!pg_lsn_parse(out->lsn_text, &out->lsn))
	{
		log_error("could not parse the slot's consistent point \"%s\"", out->lsn_text);
		free(out->slot_name);
		free(out->lsn_text);
		free(out->snapshot);
		goto cleanup;
	}
	out->conn = conn;
	conn = NULL;
	ok = true;
	log_info("replication slot %s is consistent at %s, snapshot %s",
			 out->slot_name, out->lsn_text, out->snapshot);

cleanup:
	PQclear(res);
	pg_finish(conn);
	free(sql);
	free(qslot);
	return ok;
}

void
slot_snapshot_release(SlotSnapshot *s)
{
	pg_finish(s->conn);
	free(s->slot_name);
	free(s->snapshot);
	free(s->lsn_text);
	memset(s, 0, sizeof(*s));
}

int
slot_exists(PGconn *conn, const char *slot_name)
{
	const char *params[1] = {slot_name};
	PGresult   *res = pg_query(conn, "look up the replication slot",
							   "SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
							   1, params);
	int			n;

	if (res == NULL)
		return -1;
	n = PQntuples(res) > 0 ? 1 : 0;
	PQclear(res);
	return n;
}

bool
slot_drop(PGconn *conn, const char *slot_name)
{
	const char *params[1] = {slot_name};
	PGresult   *res = pg_query(conn, "drop the replication slot",
							   "SELECT pg_catalog.pg_drop_replication_slot(slot_name)"
							   "  FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
							   1, params);

	if (res == NULL)
		return false;
	if (PQntuples(res) > 0)
		log_debug("dropped replication slot %s", slot_name);
	PQclear(res);
	return true;
}
