/*
 * catalog.h: what ferry needs to know about the source's tables and
 * sequences, read from the system catalogs inside the clone snapshot.
 */
#ifndef FERRY_CATALOG_H
#define FERRY_CATALOG_H

#include <stdbool.h>
#include <stdint.h>
#include <libpq-fe.h>

typedef struct TableInfo
{
	unsigned int oid;			/* source pg_class oid */
	char	   *nspname;		/* owned */
	char	   *relname;		/* owned */
	char	   *qualname;		/* "schema"."table", quoted, owned */
	char	   *columns;		/* quoted column list without generated/dropped columns */
	bool		binary_ok;		/* every column survives binary COPY between servers */
	bool		has_pk;
	char		replident;		/* relreplident: d, n, f, i */
	char		persistence;	/* relpersistence: p, or u (unlogged: not in the WAL) */
	int64_t		bytes;			/* heap size on the source */
	int64_t		pages;			/* heap blocks */
	int64_t		reltuples;		/* planner estimate, -1 if never analyzed */
} TableInfo;

typedef struct TableList
{
	TableInfo  *items;
	int			n;
} TableList;

/*
 * Read the plain tables (relkind 'r', partitions included) among `oids`,
 * largest first. `conn` should be inside the snapshot transaction. Returns
 * false after logging on error; *out is set only on success.
 */
bool		catalog_tables(PGconn *conn, const unsigned int *oids, int noids, TableList *out);
void		catalog_tables_free(TableList *list);

/* "{1,2,3}" array literal of oids, owned. */
char	   *catalog_oid_array(const unsigned int *oids, int n);

#endif
