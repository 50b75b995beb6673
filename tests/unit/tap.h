/*
 * tap.h: a minimal Test Anything Protocol emitter for the unit tests, read
 * by prove. ok(cond, name), is_str, is_int, contains, lacks, todo_ok;
 * done_testing() prints the plan and returns the exit status.
 */
#ifndef FERRY_TAP_H
#define FERRY_TAP_H

#include <stdio.h>
#include <string.h>

static int tap_n = 0;
static int tap_failed = 0;

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

static inline int
tap_ok(int cond, const char *file, int line, const char *name, ...)
{
	tap_n++;
	printf("%sok %d - %s\n", cond ? "" : "not ", tap_n, name);
	if (!cond)
	{
		tap_failed++;
		printf("#   failed at %s line %d\n", file, line);
	}
	return cond;
}

static inline int
is_str(const char *got, const char *want, const char *name)
{
	int			same = (got == NULL && want == NULL) ||
		(got != NULL && want != NULL && strcmp(got, want) == 0);

	if (!ok(same, name))
		printf("#   got:  '%s'\n#   want: '%s'\n", got ? got : "(null)", want ? want : "(null)");
	return same;
}

static inline int
is_int(long long got, long long want, const char *name)
{
	int			same = got == want;

	if (!ok(same, name))
		printf("#   got:  %lld\n#   want: %lld\n", got, want);
	return same;
}

static inline int
contains(const char *haystack, const char *needle, const char *name)
{
	int			c = haystack != NULL && strstr(haystack, needle) != NULL;

	if (!ok(c, name))
		printf("#   '%s'\n#   does not contain '%s'\n", haystack ? haystack : "(null)", needle);
	return c;
}

static inline int
lacks(const char *haystack, const char *needle, const char *name)
{
	int			c = haystack != NULL && strstr(haystack, needle) == NULL;

	if (!ok(c, name))
		printf("#   '%s'\n#   contains '%s'\n", haystack ? haystack : "(null)", needle);
	return c;
}

/* A regression test for a bug found and fixed in src/ (`bug` says which). */
static inline int
todo_ok(int cond, const char *name, const char *bug)
{
	(void) bug;
	return ok(cond, name);
}

static inline int
done_testing(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
