/*
 * schema.h: the schema half of the clone, done with PostgreSQL's own pg_dump
 * and pg_restore (which know every object type of every version), driven
 * by ferry so that each part is transactional and resumable:
 *
 *   1. pg_dump -Fc --schema-only with the clone's exported snapshot, once,
 *      into a private temp directory; its table of contents lists the
 *      relations (by OID) that the copy then moves.
 *   2. pre-data (types, functions, tables, sequences, views...) restored as
 *      one target transaction together with the state row saying so.
 *   3. post-data split into steps, one per dump entry, each run in its own
 *      target transaction that records it as done:
 *        wave 1, in parallel (--index-jobs): indexes and PRIMARY KEY /
 *                UNIQUE / EXCLUDE / NOT VALID CHECK constraints, primary
 *                keys first;
 *        wave 2, in dump order, one at a time: index attachments, foreign
 *                keys (NOT VALID ones stay NOT VALID; a resumed clone
 *                builds the others NOT VALID too, see validate.h),
 *                triggers, rules, policies, comments, grants and
 *                everything else.
 */
#ifndef FERRY_SCHEMA_H
#define FERRY_SCHEMA_H

#include <stdbool.h>
#include <libpq-fe.h>

#include "config.h"

typedef struct SchemaDump
{
	char	   *dir;			/* private temp directory, owned, removed on free */
	char	   *path;			/* the -Fc archive inside it */
	char	   *pg_restore;		/* path of the pg_restore to use */
	unsigned int *rel_oids;		/* pg_class OIDs in the dump (tables, sequences, ...) */
	int			nrel;
	char	   *toc;			/* the dump's table of contents (pg_restore --list), owned */
} SchemaDump;

typedef struct SchemaStep
{
	char	   *key;			/* "TYPE schema name", unique, recorded in state */
	char	   *type;			/* dump entry type: INDEX, CONSTRAINT, FK CONSTRAINT, ... */
	char	   *sql;
	int			wave;			/* 1 parallel, 2 serial */
	bool		primary_key;
} SchemaStep;

typedef struct SchemaSteps
{
	SchemaStep *items;
	int			n;
	char	   *prologue;		/* SET commands to run once per session */
} SchemaSteps;

/*
 * Dump the source schema as of `snapshot` (NULL: now). Honors the config's
 * filters; leaves out ferry's own schema, publications, subscriptions and
 * tablespace assignments. pg_dump and pg_restore are the ones
 * proc_find_pg_program picks for the source's and target's majors (the
 * target's own when installed). Fills *out on success.
 */
bool		schema_dump(const FerryConfig *cfg, int source_major, int target_major, const char *snapshot, SchemaDump *out);
void		schema_dump_free(SchemaDump *d);

/*
 * Count the entries of a table of contents (SchemaDump.toc) by type
 * ("TABLE", "INDEX", "FK CONSTRAINT", ...), in order of first appearance:
 * appends each type to `types` and sets (*counts)[i] (owned, realloc'ed).
 * Returns the number of entries. Pure; exposed for tests and ferry plan.
 */
int			schema_toc_count(const char *toc, StrList *types, int **counts);

/* Restore pre-data in one target transaction that also marks it done. */
bool		schema_restore_pre_data(PGconn *target, const FerryConfig *cfg, const SchemaDump *d);

/* The post-data steps, wave 1 sorted primary keys first. */
bool		schema_post_data_steps(const FerryConfig *cfg, const SchemaDump *d, SchemaSteps *out);
void		schema_steps_free(SchemaSteps *s);

/*
 * Split a pg_restore SQL script into entries (pure; exposed for tests).
 * Returns the number of steps; *prologue gets the text before the first
 * entry. Strips the \restrict / \unrestrict lines; other lines that start
 * with a backslash are kept (they are string or function body contents).
 */
int			schema_split_script(const char *script, SchemaSteps *out);

/*
 * A resumed clone's foreign keys are built NOT VALID (clone.c explains
 * why). Given a post-data entry's SQL, if it is exactly one
 *     ALTER TABLE ONLY <table> ADD CONSTRAINT <name> FOREIGN KEY ... ;
 * (pg_dump's form for a foreign key on a plain table) that is not NOT VALID
 * already, set *sql_out to it with " NOT VALID" at the end of the
 * constraint definition (after any MATCH, ON UPDATE / ON DELETE and
 * DEFERRABLE clauses, just before the ';'), *table_out to <table> as
 * written (quoted as pg_dump quotes it, a valid regclass input) and
 * *name_out to the constraint's name unquoted; all three owned. Returns
 * false and sets nothing for anything else: other statements, a foreign
 * key that is NOT VALID on the source (it must stay so), one on a
 * partitioned table (no ONLY: PostgreSQL before 18 cannot add those NOT
 * VALID), or text it cannot read. Quoted identifiers and comments are
 * lexed, so a name containing ';' or "NOT VALID" fools nothing. Pure.
 */
bool		schema_fk_not_valid(const char *sql, char **sql_out, char **table_out, char **name_out);

/*
 * Move, in place, each schema's privileges (pg_dump's "SCHEMA s" ACL entry,
 * which pg_restore writes at the end of the pre-data script) to just after
 * that schema's CREATE SCHEMA entry, or to the start when the script does
 * not create it (public, which every database has). ALTER ... OWNER TO run
 * by a non-superuser needs the new owner to have CREATE on the object's
 * schema: a source that grants it (GRANT CREATE ON SCHEMA public TO
 * app_owner) then restores as it is, not only after a DBA repeated the
 * grant on the target by hand. An entry is moved only if it is a real
 * pg_dump entry (its header framed by "--" lines) and holds nothing but
 * GRANT and REVOKE statements. Returns how many were moved. Pure.
 */
int			schema_hoist_schema_acls(char *script);

/* Remove the psql \restrict / \unrestrict lines from a script in place. */
bool		schema_strip_meta(char *script);

/*
 * Remove, in place, the column option SCHEMA_ATTVER_OPTION from the
 * "ALTER TABLE ... ALTER COLUMN ... SET (...);" lines of a pg_dump script,
 * and such a line whole when nothing else is left in its list. PostgreSQL
 * 15.20 stamps every column with it (attoptions pg_attver=N), internal: its
 * own pg_dump leaves it out, but a pg_dump of a newer major released before
 * it (18.6) dumps it as a column option, which a server that predates it
 * rejects ("unrecognized parameter"): every clone from a 15.20 source to an
 * 18.6 target failed on its first table. A server that has it stamps its
 * own columns. Only the list after the line's last " SET (" is read, so an
 * identifier holding the text changes nothing. Returns the number of
 * options removed. Pure.
 */
#define SCHEMA_ATTVER_OPTION "pg_attver"
int			schema_strip_attver(char *script);

#endif
