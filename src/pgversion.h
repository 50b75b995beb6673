/*
 * pgversion.h: what a server of a given version allows, in one place. Every
 * version gate ferry has is a named constant here (server_version_num, as
 * PQserverVersion returns it), and PgCaps is the record of one connection's
 * server built from them, used by check (which names what is missing),
 * clone, plan, apply, verify and switchover alike, so no piece of code
 * compares version numbers of its own.
 */
#ifndef FERRY_PGVERSION_H
#define FERRY_PGVERSION_H

#include <stdbool.h>
#include <libpq-fe.h>

/* logical replication with pgoutput came in 10: an older source cannot be served */
#define PG_MIN_SOURCE_VERSION 100000

/* hashtextextended(): verify's 64-bit row fingerprints, the same on both sides */
#define HASH_EXTENDED_MIN_VERSION 110000

/* generated columns (pg_attribute.attgenerated) and pg_partition_root() */
#define GENERATED_COLUMNS_MIN_VERSION 120000
#define PARTITION_ROOT_MIN_VERSION 120000

/*
 * From 13 on a partitioned table is published through its root
 * (publish_via_partition_root): the root is in the FOR TABLE list, so a
 * partition created or attached later is published from its first row on,
 * even a root that has no partition yet (nothing to copy, but published).
 */
#define PUBLICATION_VIA_ROOT_MIN_VERSION 130000

/*
 * Logical messages ('M'): pgoutput sends them with the option messages
 * 'true', which PostgreSQL 14 introduced; an older server rejects the
 * option ("unrecognized pgoutput option: messages") and never sends them.
 */
#define PGO_MESSAGES_MIN_VERSION 140000

/* TID range scans (WHERE ctid >= ... AND ctid < ...): clone splits large tables into block ranges */
#define TID_RANGE_SCAN_MIN_VERSION 140000
#define CLONE_SPLIT_MIN_MAJOR (TID_RANGE_SCAN_MIN_VERSION / 10000)

/*
 * The replication origin functions obey GRANT EXECUTE; before 14 they are
 * for superusers only whatever is granted ("only superusers can query or
 * manipulate replication origins").
 */
#define ORIGIN_GRANT_MIN_VERSION 140000

/*
 * GRANT SET ON PARAMETER: a superuser may let a role set a superuser-only
 * setting (session_replication_role, which apply needs); before 15 only a
 * superuser may set it.
 */
#define GRANT_SET_PARAMETER_MIN_VERSION 150000

/* One server's capabilities (pg_caps_for: pure; pg_caps: of a live connection). */
typedef struct PgCaps
{
	int			version_num;	/* server_version_num */
	int			major;			/* 10, 11, ... */
	bool		logical_source;	/* may be a source: pgoutput */
	bool		hash_extended;
	bool		generated_columns;
	bool		partition_root;
	bool		publish_via_root;
	bool		logical_messages;
	bool		tid_range_scan;
	bool		origin_grant;
	bool		grant_set_parameter;
} PgCaps;

PgCaps		pg_caps_for(int version_num);
PgCaps		pg_caps(const PGconn *conn);

#endif
