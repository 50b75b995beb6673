/*
 * log.c: the logger declared in log.h. One write(2) per line so that lines
 * from concurrent threads never interleave.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static LogLevel log_level = LOG_INFO;
static __thread char log_role[32] = "main";

static const char *const level_names[] = {"DEBUG", "INFO", "NOTICE", "WARNING", "ERROR"};

void
log_set_level(LogLevel level)
{
	log_level = level;
}

LogLevel
log_get_level(void)
{
	return log_level;
}

void
log_set_role(const char *role)
{
	snprintf(log_role, sizeof(log_role), "%s", role);
}

void
log_msg(LogLevel level, const char *fmt, ...)
{
	char		line[4096];
	struct timeval tv;
	struct tm	tm;
	size_t		n;
	va_list		ap;

	if (level < log_level)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
	n += (size_t) snprintf(line + n, sizeof(line) - n, ".%03d UTC [%d] %s %s: ",
						   (int) (tv.tv_usec / 1000), (int) getpid(), log_role,
						   level_names[level]);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	n = strlen(line);
	/* keep one event on one line: libpq messages end with newlines */
	while (n > 0 && line[n - 1] == '\n')
		n--;
	for (size_t i = 0; i < n; i++)
		if (line[i] == '\n')
			line[i] = ' ';
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0)
	{
		/* nowhere left to report it */
	}
}
