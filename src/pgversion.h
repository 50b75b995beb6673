/*
 * pgversion.h: version gates for the rights a role may be given, shared by
 * check (which names what is missing) and switchover (which refuses before
 * freezing anything). Values are server_version_num (PQserverVersion).
 * Other gates live with the code they gate: PGO_MESSAGES_MIN_VERSION
 * (pgoutput.h), PUBLICATION_VIA_ROOT_MIN_VERSION (publication.h),
 * CLONE_SPLIT_MIN_MAJOR (clone.h).
 */
#ifndef FERRY_PGVERSION_H
#define FERRY_PGVERSION_H

/*
 * GRANT SET ON PARAMETER: a superuser may let a role set a superuser-only
 * setting (session_replication_role, which apply needs); before 15 only a
 * superuser may set it.
 */
#define GRANT_SET_PARAMETER_MIN_VERSION 150000

/*
 * The replication origin functions obey GRANT EXECUTE; before 14 they are
 * for superusers only whatever is granted ("only superusers can query or
 * manipulate replication origins").
 */
#define ORIGIN_GRANT_MIN_VERSION 140000

#endif
