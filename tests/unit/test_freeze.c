/*
 * test_freeze.c: unit tests for the pure parts of freeze.c: PostgreSQL's
 * boolean words, and the saved record read back from the state table,
 * which must refuse what could run SQL.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "freeze.h"
#include "tap.h"

static void
bool_is(const char *s, int want, const char *name)
{
	bool		b = false;
	int			got = freeze_parse_bool(s, &b) ? (b ? 1 : 0) : -1;

	is_int(got, want, name);
}

static void
test_parse_bool(void)
{
	bool_is("on", 1, "on");
	bool_is("off", 0, "off");
	bool_is("of", 0, "of (prefix of off)");
	bool_is("o", -1, "o is ambiguous");
	bool_is("TRUE", 1, "TRUE, any case");
	bool_is("t", 1, "t");
	bool_is("tr", 1, "tr");
	bool_is("false", 0, "false");
	bool_is("f", 0, "f");
	bool_is("yes", 1, "yes");
	bool_is("y", 1, "y");
	bool_is("no", 0, "no");
	bool_is("n", 0, "n");
	bool_is("1", 1, "1");
	bool_is("0", 0, "0");
	bool_is("", -1, "empty");
	bool_is(NULL, -1, "NULL");
	bool_is("truex", -1, "longer than the word");
	bool_is("10", -1, "10");
	bool_is(" on", -1, "leading space");
	bool_is("off; CREATE TABLE pwned (x int)", -1, "SQL after a boolean");
	bool_is("on'--", -1, "a quote after a boolean");
}

static int
record_ok(const char *json, const char *want_prior)
{
	Freeze		fz;
	bool		ok = freeze_from_json(json, &fz);
	int			same = ok && ((want_prior == NULL && fz.prior == NULL) ||
							  (want_prior && fz.prior && strcmp(want_prior, fz.prior) == 0));

	if (ok)
		freeze_release_record(&fz);
	return ok ? (same ? 1 : 2) : 0;
}

static void
test_from_json(void)
{
	is_int(record_ok("{\"mode\":\"readonly\",\"dbname\":\"app\",\"prior\":\"off\",\"revoked\":[]}", "off"), 1,
		   "prior off read back");
	is_int(record_ok("{\"mode\":\"readonly\",\"dbname\":\"app\",\"prior\":\"TRUE\",\"revoked\":[]}", "on"), 1,
		   "prior TRUE read back as on");
	is_int(record_ok("{\"mode\":\"readonly\",\"dbname\":\"app\",\"prior\":null}", NULL), 1, "prior null");
	is_int(record_ok("{\"mode\":\"revoke\",\"dbname\":\"app\"}", NULL), 1, "prior missing");
	is_int(record_ok("{\"mode\":\"readonly\",\"dbname\":\"app\",\"prior\":\"off; CREATE TABLE pwned (x int)\"}", NULL), 0,
		   "a prior with SQL in it is refused");
	is_int(record_ok("{\"mode\":\"readonly\",\"dbname\":\"app\",\"prior\":42}", NULL), 0, "a prior that is a number is refused");
	is_int(record_ok("{\"mode\":\"drop\",\"dbname\":\"app\"}", NULL), 0, "an unknown mode is refused");
	is_int(record_ok("{\"dbname\":\"app\"}", NULL), 0, "no mode: refused");
	is_int(record_ok("{\"mode\":\"hook\"}", NULL), 0, "no dbname: refused");
	is_int(record_ok("not json", NULL), 0, "not JSON: refused");
	{
		Freeze		fz = {0};
		char	   *json;

		fz.mode = strdup("readonly");
		fz.dbname = strdup("a\"pp");
		fz.prior = strdup("on");
		json = freeze_to_json(&fz);
		freeze_release_record(&fz);
		is_int(record_ok(json, "on"), 1, "a record round-trips");
		free(json);
	}
}

int
main(void)
{
	test_parse_bool();
	test_from_json();
	return done_testing();
}
