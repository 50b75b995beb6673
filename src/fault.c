/*
 * fault.c: FERRY_FAULT handling (see fault.h).
 */
#include "fault.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static _Atomic int hits = 0;

void
fault_point(const char *name)
{
	const char *spec = getenv("FERRY_FAULT");
	size_t		n;
	int			want = 1;

	if (spec == NULL)
		return;
	n = strlen(name);
	if (strncmp(spec, name, n) != 0 || (spec[n] != '\0' && spec[n] != ':'))
		return;
	if (spec[n] == ':')
		want = atoi(spec + n + 1);
	if (atomic_fetch_add(&hits, 1) + 1 == want)
	{
		log_info("fault injection: killing myself at %s (hit %d)", name, want);
		kill(getpid(), SIGKILL);
		pause();
	}
}
