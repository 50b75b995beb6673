/*
 * log.h: leveled logging to stderr.
 *
 * Each line: "2026-11-21 13:45:07.123 UTC [pid] role LEVEL: message". The role
 * is per thread (coordinator, copy worker N, index worker N, ...), set with
 * log_set_role(). Results go to stdout, never through here. Messages must not
 * contain passwords or row data; conninfo strings are passed through
 * pg_conninfo_safe() before they are logged.
 *
 * Errors follow the PostgreSQL client tools' tone ("could not X: reason") but
 * stay on one line, with the fix appended as "Fix: ...", so that a user (or a
 * test) sees the whole story in one grep-able line.
 */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

#include <stdbool.h>

typedef enum LogLevel
{
	LOG_DEBUG = 0,
	LOG_INFO,
	LOG_NOTICE,
	LOG_WARNING,
	LOG_ERROR,
} LogLevel;

void		log_set_level(LogLevel level);
LogLevel	log_get_level(void);
void		log_set_role(const char *role);	/* copied; thread-local */
void		log_msg(LogLevel level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...)	log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)	log_msg(LOG_INFO, __VA_ARGS__)
#define log_notice(...)	log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_warn(...)	log_msg(LOG_WARNING, __VA_ARGS__)
#define log_error(...)	log_msg(LOG_ERROR, __VA_ARGS__)

#endif
