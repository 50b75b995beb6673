/*
 * log.c: the logger declared in log.h. One write(2) per line so that lines
 * from concurrent threads never interleave.
 */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "mem.h"

/* the message part of a line; the formatted line has room for its escaping */
#define LOG_MSG_MAX 4096
#define LOG_LINE_MAX (LOG_MSG_MAX * 2 + 512)

static _Atomic int log_level = LOG_INFO;
static _Atomic int log_format = LOG_FORMAT_TEXT;
static _Atomic int64_t log_errors = 0;
static bool log_journal = false;
static pthread_once_t log_journal_once = PTHREAD_ONCE_INIT;
static __thread char log_role[32] = "main";

static const char *const level_names[] = {"DEBUG", "INFO", "NOTICE", "WARNING", "ERROR"};
static const char *const level_json[] = {"debug", "info", "notice", "warning", "error"};
/* syslog priorities (sd-daemon(3)): debug 7, info 6, notice 5, warning 4, err 3 */
static const char *const level_prio[] = {"<7>", "<6>", "<5>", "<4>", "<3>"};

void
log_set_level(LogLevel level)
{
	atomic_store(&log_level, (int) level);
}

LogLevel
log_get_level(void)
{
	return (LogLevel) atomic_load(&log_level);
}

void
log_set_format(LogFormat format)
{
	atomic_store(&log_format, (int) format);
}

LogFormat
log_get_format(void)
{
	return (LogFormat) atomic_load(&log_format);
}

bool
log_format_parse(const char *s, LogFormat *out)
{
	if (s && strcmp(s, "text") == 0)
		*out = LOG_FORMAT_TEXT;
	else if (s && strcmp(s, "json") == 0)
		*out = LOG_FORMAT_JSON;
	else
		return false;
	return true;
}

const char *
log_format_name(LogFormat format)
{
	return format == LOG_FORMAT_JSON ? "json" : "text";
}

int64_t
log_error_count(void)
{
	return atomic_load(&log_errors);
}

void
log_set_role(const char *role)
{
	snprintf(log_role, sizeof(log_role), "%s", role);
}

/*
 * systemd sets JOURNAL_STREAM=<device>:<inode> of the stream it connected
 * to stdout/stderr; it is inherited by children whose stderr may point
 * elsewhere, so compare it with what stderr really is (systemd.exec(5)).
 */
static void
detect_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev,
				ino;
	struct stat st;

	if (e == NULL || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
		return;
	if (fstat(STDERR_FILENO, &st) != 0)
		return;
	log_journal = (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

/* Append up to n bytes of s to buf at *len, never past limit. */
static void
put(char *buf, size_t limit, size_t *len, const char *s, size_t n)
{
	if (*len + n > limit)
		n = limit > *len ? limit - *len : 0;
	memcpy(buf + *len, s, n);
	*len += n;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	size_t		len;
	unsigned char lo = 0x80,
				hi = 0xBF;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xC2 && s[0] <= 0xDF)
		len = 2;
	else if (s[0] >= 0xE0 && s[0] <= 0xEF)
	{
		len = 3;
		if (s[0] == 0xE0)
			lo = 0xA0;			/* no overlong forms */
		if (s[0] == 0xED)
			hi = 0x9F;			/* no surrogates */
	}
	else if (s[0] >= 0xF0 && s[0] <= 0xF4)
	{
		len = 4;
		if (s[0] == 0xF0)
			lo = 0x90;
		if (s[0] == 0xF4)
			hi = 0x8F;			/* nothing past U+10FFFF */
	}
	else
		return 0;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xBF)
			return 0;
	return len;
}

/* Append msg[0..n) as the inside of a JSON string, stopping before limit. */
static void
put_json_string(char *buf, size_t limit, size_t *len, const char *msg, size_t n)
{
	const unsigned char *s = (const unsigned char *) msg;
	size_t		i = 0;

	while (i < n)
	{
		char		esc[8];
		const char *out = esc;
		size_t		olen;
		size_t		adv = 1;

		switch (s[i])
		{
			case '"': out = "\\\""; olen = 2; break;
			case '\\': out = "\\\\"; olen = 2; break;
			case '\n': out = "\\n"; olen = 2; break;
			case '\r': out = "\\r"; olen = 2; break;
			case '\t': out = "\\t"; olen = 2; break;
			default:
				if (s[i] < 0x20 || s[i] == 0x7F)
					olen = (size_t) snprintf(esc, sizeof(esc), "\\u%04x", s[i]);
				else if ((adv = utf8_seq(s + i, n - i)) == 0)
				{
					out = "\\ufffd";
					olen = 6;
					adv = 1;
				}
				else
				{
					out = msg + i;
					olen = adv;
				}
		}
		if (*len + olen > limit)
			return;				/* truncate, but never inside an escape */
		memcpy(buf + *len, out, olen);
		*len += olen;
		i += adv;
	}
}

size_t
log_format_line(char *buf, size_t size, const LogRecord *r)
{
	/* room kept for the closing `"}` and the newline */
	size_t		limit = size - 4;
	size_t		len = 0;
	size_t		mlen = strlen(r->msg);
	time_t		secs = (time_t) (r->ts_us / 1000000);
	int			ms = (int) (r->ts_us % 1000000 / 1000);
	struct tm	tm;
	char		head[128];
	int			level = r->level >= LOG_DEBUG && r->level <= LOG_ERROR ? (int) r->level : LOG_ERROR;

	while (mlen > 0 && (r->msg[mlen - 1] == '\n' || r->msg[mlen - 1] == '\r'))
		mlen--;
	gmtime_r(&secs, &tm);
	if (r->journal)
		put(buf, limit, &len, level_prio[level], 3);
	if (r->format == LOG_FORMAT_JSON)
	{
		size_t		n = strftime(head, sizeof(head), "{\"ts\":\"%Y-%m-%dT%H:%M:%S", &tm);

		snprintf(head + n, sizeof(head) - n, ".%03dZ\",\"level\":\"%s\",\"role\":\"", ms, level_json[level]);
		put(buf, limit, &len, head, strlen(head));
		put_json_string(buf, limit, &len, r->role, strlen(r->role));
		snprintf(head, sizeof(head), "\",\"pid\":%d,\"msg\":\"", r->pid);
		put(buf, limit, &len, head, strlen(head));
		put_json_string(buf, limit, &len, r->msg, mlen);
		memcpy(buf + len, "\"}", 2);
		len += 2;
	}
	else
	{
		size_t		start;

		if (r->journal)
			snprintf(head, sizeof(head), "%s %s: ", r->role, level_names[level]);
		else
		{
			size_t		n = strftime(head, sizeof(head), "%Y-%m-%d %H:%M:%S", &tm);

			snprintf(head + n, sizeof(head) - n, ".%03d UTC [%d] %s %s: ", ms, r->pid, r->role,
					 level_names[level]);
		}
		put(buf, limit, &len, head, strlen(head));
		start = len;
		put(buf, limit, &len, r->msg, mlen);
		/* keep one event on one line: libpq messages contain newlines */
		for (size_t i = start; i < len; i++)
			if (buf[i] == '\n' || buf[i] == '\r')
				buf[i] = ' ';
	}
	buf[len++] = '\n';
	buf[len] = '\0';
	return len;
}

/*
 * The secrets every message is scrubbed of (log_add_secret). Added by the
 * main thread at start-up; readers see an item only after its count.
 */
#define LOG_MAX_SECRETS 16
static char *log_secrets[LOG_MAX_SECRETS];
static _Atomic int log_nsecrets = 0;
static pthread_mutex_t log_secrets_mutex = PTHREAD_MUTEX_INITIALIZER;

void
log_add_secret(const char *secret)
{
	int			n;

	if (secret == NULL || strlen(secret) < LOG_SECRET_MIN)
		return;
	pthread_mutex_lock(&log_secrets_mutex);
	n = atomic_load(&log_nsecrets);
	for (int i = 0; i < n; i++)
		if (strcmp(log_secrets[i], secret) == 0)
			n = -1;
	if (n >= 0 && n < LOG_MAX_SECRETS)
	{
		log_secrets[n] = xstrdup(secret);
		atomic_store(&log_nsecrets, n + 1);
	}
	pthread_mutex_unlock(&log_secrets_mutex);
}

void
log_forget_secrets(void)
{
	pthread_mutex_lock(&log_secrets_mutex);
	for (int i = atomic_load(&log_nsecrets) - 1; i >= 0; i--)
	{
		explicit_bzero(log_secrets[i], strlen(log_secrets[i]));
		free(log_secrets[i]);
		log_secrets[i] = NULL;
	}
	atomic_store(&log_nsecrets, 0);
	pthread_mutex_unlock(&log_secrets_mutex);
}

char *
log_scrub(const char *text)
{
	int			n = atomic_load(&log_nsecrets);
	char	   *s = xstrdup(text ? text : "");

	for (int i = 0; i < n; i++)
	{
		const char *secret = log_secrets[i];
		size_t		len = strlen(secret);
		char	   *hit;
		StrBuf		out;
		const char *p = s;

		if (strstr(s, secret) == NULL)
			continue;
		strbuf_init(&out);
		while ((hit = strstr(p, secret)) != NULL)
		{
			strbuf_add(&out, p, (size_t) (hit - p));
			strbuf_addstr(&out, "********");
			p = hit + len;
		}
		strbuf_addstr(&out, p);
		explicit_bzero(s, strlen(s));
		free(s);
		s = strbuf_detach(&out);
	}
	return s;
}

void
log_msg(LogLevel level, const char *fmt, ...)
{
	StrBuf		msg;
	char	   *clean;
	char		line[LOG_LINE_MAX];
	struct timeval tv;
	LogRecord	r;
	size_t		n;
	va_list		ap;

	if (level == LOG_ERROR)
		atomic_fetch_add(&log_errors, 1);
	if ((int) level < atomic_load(&log_level))
		return;
	pthread_once(&log_journal_once, detect_journal);
	gettimeofday(&tv, NULL);
	strbuf_init(&msg);
	va_start(ap, fmt);
	strbuf_vaddf(&msg, fmt, ap);
	va_end(ap);
	/* scrubbed whole, before the line's truncation could cut a secret in two */
	clean = log_scrub(msg.data);
	strbuf_release(&msg);
	if (strlen(clean) >= LOG_MSG_MAX)
		clean[LOG_MSG_MAX - 1] = '\0';	/* as long as a message ever was */
	r.level = level;
	r.format = (LogFormat) atomic_load(&log_format);
	r.journal = log_journal;
	r.ts_us = (int64_t) tv.tv_sec * 1000000 + tv.tv_usec;
	r.pid = (int) getpid();
	r.role = log_role;
	r.msg = clean;
	n = log_format_line(line, sizeof(line), &r);
	free(clean);
	if (write(STDERR_FILENO, line, n) < 0)
	{
		/* nowhere left to report it */
	}
}
