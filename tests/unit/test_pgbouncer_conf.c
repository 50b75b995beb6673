/*
 * test_pgbouncer_conf.c: unit tests for pgbouncer_conf.c, PgBouncer's
 * connection strings and ini file as ferry reads and rewrites them, and
 * for pooler.c's hold record (read back from the state table like input).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgbouncer_conf.h"
#include "pooler.h"
#include "tap.h"

static void
test_connstr(void)
{
	PgbPairs	p = {0};
	char	   *s;

	ok(pgbconf_parse_connstr("host=/tmp/x port=5432 dbname=app", &p), "a plain connection string parses");
	is_int(p.keys.n, 3, "three pairs");
	is_str(pgbconf_pairs_get(&p, "port"), "5432", "port");
	is_str(pgbconf_pairs_get(&p, "user"), NULL, "an absent key is NULL");
	pgbconf_pairs_set(&p, "host", "10.0.0.6");
	pgbconf_pairs_set(&p, "pool_size", "5");
	s = pgbconf_format_connstr(&p);
	is_str(s, "host=10.0.0.6 port=5432 dbname=app pool_size=5", "set replaces in place and appends");
	free(s);
	pgbconf_pairs_release(&p);

	ok(pgbconf_parse_connstr("  host = db1   password='it''s a secret' application_name='my app'  ", &p),
	   "spaces around =, quoted values with '' parse");
	is_str(pgbconf_pairs_get(&p, "host"), "db1", "host");
	is_str(pgbconf_pairs_get(&p, "password"), "it's a secret", "'' is a quote");
	s = pgbconf_format_connstr(&p);
	is_str(s, "host=db1 password='it''s a secret' application_name='my app'", "values with spaces or quotes are quoted back");
	pgbconf_pairs_release(&p);
	ok(pgbconf_parse_connstr(s, &p) && strcmp(pgbconf_pairs_get(&p, "password"), "it's a secret") == 0,
	   "and read back the same");
	free(s);
	pgbconf_pairs_release(&p);

	ok(pgbconf_parse_connstr("", &p) && p.keys.n == 0, "an empty string is no pairs");
	pgbconf_pairs_release(&p);
	ok(pgbconf_parse_connstr("host=a port=1 host=b", &p) && strcmp(pgbconf_pairs_get(&p, "host"), "b") == 0,
	   "the last of a repeated key wins, as in PgBouncer");
	pgbconf_pairs_release(&p);
	ok(!pgbconf_parse_connstr("host", &p), "a key without = is refused");
	pgbconf_pairs_release(&p);
	ok(!pgbconf_parse_connstr("host=''", &p), "an empty value is refused (PgBouncer does)");
	pgbconf_pairs_release(&p);
	ok(pgbconf_parse_connstr("host= port=1", &p) && strcmp(pgbconf_pairs_get(&p, "host"), "port=1") == 0 && p.keys.n == 1,
	   "a space after = is skipped, as PgBouncer's loader does");
	pgbconf_pairs_release(&p);
	ok(!pgbconf_parse_connstr("password='open", &p), "an unterminated quote is refused");
	pgbconf_pairs_release(&p);
	ok(!pgbconf_parse_connstr("password='a'b", &p), "text right after a closing quote is refused");
	pgbconf_pairs_release(&p);
	ok(!pgbconf_parse_connstr("=x", &p), "an empty key is refused");
	pgbconf_pairs_release(&p);
}

static const char INI[] =
	";; comment: app = host=nowhere\n"
	"[pgbouncer]\n"
	"app = not-a-database-entry\n"
	"\n"
	"[databases]\n"
	"  # app = host=commented\n"
	"app = host=/tmp/src port=5432 dbname=app\n"
	"apple = host=x\n"
	"'my-db' = host=y\n"
	"other\t=\thost=z   \r\n"
	"%include /etc/pgbouncer/more.ini\n"
	"[users]\n"
	"app = pool_mode=session\n";

static void
test_ini(void)
{
	char	   *v = NULL;
	char	   *out;

	is_int(pgbconf_find_entry(INI, "app", &v), 1, "one definition of app under [databases] (not the comments, not other sections)");
	is_str(v, "host=/tmp/src port=5432 dbname=app", "its value");
	free(v);
	v = NULL;
	is_int(pgbconf_find_entry(INI, "my-db", &v), 1, "a quoted key");
	is_str(v, "host=y", "its value");
	free(v);
	v = NULL;
	is_int(pgbconf_find_entry(INI, "other", &v), 1, "tabs around =");
	is_str(v, "host=z", "the value without trailing white space or CR");
	free(v);
	is_int(pgbconf_find_entry(INI, "ap", NULL), 0, "a prefix is not the entry");
	is_int(pgbconf_find_entry(INI, "nosuch", NULL), 0, "no such entry");

	out = pgbconf_set_entry(INI, "other", "host=new");
	ok(out && strstr(out, "other\t=\thost=new   \r\n") != NULL, "the rewrite keeps the line's spacing and its CR LF");
	free(out);
	out = pgbconf_set_entry(INI, "app", "host=/tmp/tgt port=5433 dbname=app");
	ok(out != NULL, "app rewritten");
	{
		/* everything but that one value is byte for byte the same */
		const char *a = strstr(INI, "host=/tmp/src");
		const char *b = out ? strstr(out, "host=/tmp/tgt port=5433 dbname=app") : NULL;

		ok(b && strncmp(INI, out, (size_t) (a - INI)) == 0 && strcmp(a + strlen("host=/tmp/src port=5432 dbname=app"),
																	  b + strlen("host=/tmp/tgt port=5433 dbname=app")) == 0,
		   "every other byte is kept (comments, other sections, other entries)");
	}
	free(out);
	ok(pgbconf_set_entry(INI, "nosuch", "x") == NULL, "no entry, no rewrite");
	{
		const char	twice[] = "[databases]\napp = host=a\n[databases]\napp = host=b\n";

		is_int(pgbconf_find_entry(twice, "app", &v), 2, "two definitions");
		is_str(v, "host=b", "the last one is the one PgBouncer applies");
		free(v);
		out = pgbconf_set_entry(twice, "app", "host=c");
		is_str(out, "[databases]\napp = host=c\n[databases]\napp = host=c\n", "both are rewritten");
		free(out);
	}
	{
		const char	noeol[] = "[databases]\napp = host=a";

		out = pgbconf_set_entry(noeol, "app", "host=b");
		is_str(out, "[databases]\napp = host=b", "a last line without a newline");
		free(out);
		out = pgbconf_set_entry("[databases]\napp =\n", "app", "host=b");
		is_str(out, "[databases]\napp =host=b\n", "an empty value gets one");
		free(out);
	}
}

static void
test_names(void)
{
	ok(pgbconf_valid_entry_name("app"), "app");
	ok(pgbconf_valid_entry_name("My \"DB\""), "quotes and spaces are fine (the admin console word is quoted)");
	ok(!pgbconf_valid_entry_name(""), "empty");
	ok(!pgbconf_valid_entry_name("pgbouncer"), "the admin console");
	ok(!pgbconf_valid_entry_name("*"), "the automatic entry");
	ok(!pgbconf_valid_entry_name("a\nb"), "a newline");
	ok(!pgbconf_valid_entry_name("it's"), "a single quote (an ini key cannot hold one)");
}

static void
test_hold_record(void)
{
	PoolerSide	from = POOLER_TARGET;
	bool		rp = true;
	char	   *names = NULL;

	ok(pooler_hold_from_json("{\"from\":\"source\",\"repointed\":false,\"poolers\":[\"PgBouncer a:1 entry app\",\"PgBouncer b:2 entry app\"]}",
							 &from, &rp, &names), "a saved record reads back");
	ok(from == POOLER_SOURCE && !rp, "its side and repointed flag");
	is_str(names, "PgBouncer a:1 entry app, PgBouncer b:2 entry app", "its poolers, for messages");
	free(names);
	ok(!pooler_hold_from_json("{\"from\":\"elsewhere\",\"repointed\":true}", &from, &rp, &names), "an unknown side is refused");
	ok(!pooler_hold_from_json("{\"from\":\"target\"}", &from, &rp, &names), "a missing flag is refused");
	ok(!pooler_hold_from_json("not json", &from, &rp, &names), "junk is refused");
	{
		StrList		sec = {0};

		pooler_connstr_secrets("host=x password='p w' user=u", &sec);
		is_int(sec.n, 1, "the password of a PgBouncer connection string is a secret");
		is_str(sec.n ? sec.items[0] : NULL, "p w", "its value");
		strlist_free(&sec);
	}
}

int
main(void)
{
	test_connstr();
	test_ini();
	test_names();
	test_hold_record();
	return done_testing();
}
