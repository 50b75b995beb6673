/*
 * pgbouncer_conf.h: PgBouncer's configuration syntax, read and rewritten
 * (pure: text in, text out; the file I/O is pooler.c's).
 *
 * The ini file (libusual's cfparser, as PgBouncer 1.x reads it): lines;
 * leading white space skipped; a line starting with '#' or ';' is a
 * comment; "[name]" starts a section; "%include FILE" pulls in another
 * file (not followed here: `ini:` names the file that holds the entry);
 * otherwise "key = value", the key either single-quoted ('my-db') or made
 * of letters, digits and _ . - *, the value the rest of the line with
 * surrounding white space cut (no inline comments: a ';' after the value
 * is part of it).
 *
 * A [databases] entry's value is PgBouncer's own connection string (not
 * libpq's): space-separated key=value pairs, a value either plain (up to
 * the next space) or single-quoted with '' for a quote; empty values are
 * refused. PgBouncer applies the last definition of an entry; rewriting
 * changes every definition, so the file says one thing.
 *
 * Invariants of pgbconf_set_entry(): only the value part of the entry's
 * lines changes; every other byte of the file (comments, other entries,
 * spacing, line ends) is kept.
 */
#ifndef FERRY_PGBOUNCER_CONF_H
#define FERRY_PGBOUNCER_CONF_H

#include <stdbool.h>

#include "mem.h"

/* A connection string as key/value pairs, in order (keys[i] = vals[i]). */
typedef struct PgbPairs
{
	StrList		keys;
	StrList		vals;
} PgbPairs;

/*
 * Parse PgBouncer connection string s into out (appended to; call
 * pgbconf_pairs_release() either way). False on a syntax error PgBouncer
 * would refuse (a key without '=', an empty or unterminated value).
 */
bool		pgbconf_parse_connstr(const char *s, PgbPairs *out);
/* Format pairs as a connection string PgBouncer reads back the same. Owned. */
char	   *pgbconf_format_connstr(const PgbPairs *p);
/* The value of key, or NULL (borrowed). */
const char *pgbconf_pairs_get(const PgbPairs *p, const char *key);
/* Set key to val: replace it in place, or append. */
void		pgbconf_pairs_set(PgbPairs *p, const char *key, const char *val);
void		pgbconf_pairs_release(PgbPairs *p);

/*
 * Look up entry `db` in the [databases] section of ini text: how many lines
 * define it (0 none); *value (owned) gets the last one's value when not
 * NULL and found.
 */
int			pgbconf_find_entry(const char *text, const char *db, char **value);
/*
 * The text with every definition of entry `db` in [databases] given the
 * value `value` (owned), or NULL when no line defines it.
 */
char	   *pgbconf_set_entry(const char *text, const char *db, const char *value);
/*
 * May `db` name a PgBouncer database entry ferry can pause and rewrite?
 * Not empty, not "pgbouncer" (the admin console) or "*" (the automatic
 * entry), no control characters and no single quote (an ini key can not
 * hold one).
 */
bool		pgbconf_valid_entry_name(const char *db);

#endif
