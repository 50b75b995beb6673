/*
 * log.h: leveled logging to stderr.
 *
 * Formats (--log-format, config key log-format; SIGHUP may change it live):
 *
 *   text  "2026-11-21 13:45:07.123 UTC [pid] role LEVEL: message"
 *   json  {"ts":"2026-11-21T13:45:07.123Z","level":"info","role":"coordinator",
 *          "pid":123,"msg":"message"}, one object per line
 *
 * Under systemd (stderr is the journal stream that JOURNAL_STREAM names, see
 * systemd.exec(5)) each line starts with its syslog priority as sd-daemon(3)
 * describes ("<3>" error, "<4>" warning, "<5>" notice, "<6>" info, "<7>"
 * debug), which journald strips and records as the priority; the text format
 * then leaves out the time and pid, which the journal records itself.
 *
 * The role is per thread (coordinator, copy worker N, index worker N, ...),
 * set with log_set_role(). Results go to stdout, never through here.
 * Messages must not contain passwords or row data; conninfo strings are
 * passed through pg_conninfo_safe() before they are logged. As a second
 * line of defence every message is scrubbed of the secrets registered
 * with log_add_secret() (main registers the connection strings' secrets,
 * libpq's dispchar '*' options): each occurrence becomes "********".
 *
 * Errors follow the PostgreSQL client tools' tone ("could not X: reason") but
 * stay on one line, with the fix appended as "Fix: ...", so that a user (or a
 * test) sees the whole story in one grep-able line.
 */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum LogLevel
{
	LOG_DEBUG = 0,
	LOG_INFO,
	LOG_NOTICE,
	LOG_WARNING,
	LOG_ERROR,
} LogLevel;

typedef enum LogFormat
{
	LOG_FORMAT_TEXT = 0,
	LOG_FORMAT_JSON,
} LogFormat;

/* Level and format are process-wide and may change while threads log. */
void		log_set_level(LogLevel level);
LogLevel	log_get_level(void);
void		log_set_format(LogFormat format);
LogFormat	log_get_format(void);
void		log_set_role(const char *role);	/* copied; thread-local */
void		log_msg(LogLevel level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Secrets to scrub from every message (copied; up to 16). A secret shorter
 * than LOG_SECRET_MIN characters is not scrubbed: it would mangle ordinary
 * words, and ferry never formats a secret into a message in the first place.
 */
#define LOG_SECRET_MIN 4
void		log_add_secret(const char *secret);
/* Forget (and wipe) them all. */
void		log_forget_secrets(void);
/* text with every registered secret replaced by "********" (owned). */
char	   *log_scrub(const char *text);

/* "text" or "json" -> format; false on anything else. */
bool		log_format_parse(const char *s, LogFormat *out);
const char *log_format_name(LogFormat format);
/* How many ERROR lines were logged since start (for the metrics). */
int64_t		log_error_count(void);

#define log_debug(...)	log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)	log_msg(LOG_INFO, __VA_ARGS__)
#define log_notice(...)	log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_warn(...)	log_msg(LOG_WARNING, __VA_ARGS__)
#define log_error(...)	log_msg(LOG_ERROR, __VA_ARGS__)

/* One log event, for log_format_line(). */
typedef struct LogRecord
{
	LogLevel	level;
	LogFormat	format;
	bool		journal;		/* prefix the syslog priority, no time or pid in text */
	int64_t		ts_us;			/* microseconds since the Unix epoch */
	int			pid;
	const char *role;
	const char *msg;
} LogRecord;

/*
 * Format one event as a complete line ending in '\n' into buf (size at least
 * 256), truncating an overlong message. Trailing newlines of the message
 * are dropped; in text inner newlines become spaces, in JSON they are
 * escaped, as are quotes, backslashes and control characters; bytes that
 * are not valid UTF-8 become U+FFFD so the line is always valid JSON.
 * Returns the line's length. Pure: the unit tests call it directly.
 */
size_t		log_format_line(char *buf, size_t size, const LogRecord *r);

#endif
