/*
 * tap.h: a minimal Test Anything Protocol emitter for the unit tests, read
 * by prove. ok(cond, name) and is_str(got, want, name); done_testing()
 * prints the plan and returns the exit status.
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
done_testing(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
