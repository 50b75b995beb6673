/*
 * test_log.c: unit tests for log.c's line formats: text, JSON (parsed back
 * with jansson, so every line must be valid JSON whatever the message holds),
 * the journald priority prefix, truncation, and --log-format parsing.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "tap.h"

/* 2026-11-21 13:45:07.123456 UTC */
#define TS_US (1795268707LL * 1000000 + 123456)

static size_t
fmt(char *buf, size_t size, LogFormat f, bool journal, LogLevel level, const char *role, const char *msg)
{
	LogRecord	r = {level, f, journal, TS_US, 4242, role, msg};

	return log_format_line(buf, size, &r);
}

/* Parse a JSON line (without its newline); NULL when it is not valid. */
static json_t *
parse_json_line(const char *line, size_t skip)
{
	json_error_t err;
	size_t		n = strlen(line);

	if (n == 0 || line[n - 1] != '\n')
		return NULL;
	return json_loadb(line + skip, n - 1 - skip, 0, &err);
}

static void
test_text(void)
{
	char		buf[1024];
	size_t		n;

	n = fmt(buf, sizeof(buf), LOG_FORMAT_TEXT, false, LOG_INFO, "coordinator", "copying 3 tables");
	is_str(buf, "2026-11-21 13:45:07.123 UTC [4242] coordinator INFO: copying 3 tables\n", "text: time, pid, role, level, message");
	is_int((long long) n, (long long) strlen(buf), "the returned length is the line's");

	fmt(buf, sizeof(buf), LOG_FORMAT_TEXT, false, LOG_ERROR, "apply", "could not apply:\nERROR: boom\n\n");
	is_str(buf, "2026-11-21 13:45:07.123 UTC [4242] apply ERROR: could not apply: ERROR: boom\n",
		   "text: inner newlines become spaces, trailing ones go: one event, one line");

	fmt(buf, sizeof(buf), LOG_FORMAT_TEXT, true, LOG_WARNING, "stream", "lost the connection");
	is_str(buf, "<4>stream WARNING: lost the connection\n", "journal text: priority prefix, no time or pid");
	fmt(buf, sizeof(buf), LOG_FORMAT_TEXT, true, LOG_ERROR, "x", "m");
	ok(strncmp(buf, "<3>", 3) == 0, "journal: error is <3>");
	fmt(buf, sizeof(buf), LOG_FORMAT_TEXT, true, LOG_NOTICE, "x", "m");
	ok(strncmp(buf, "<5>", 3) == 0, "journal: notice is <5>");
	fmt(buf, sizeof(buf), LOG_FORMAT_TEXT, true, LOG_INFO, "x", "m");
	ok(strncmp(buf, "<6>", 3) == 0, "journal: info is <6>");
	fmt(buf, sizeof(buf), LOG_FORMAT_TEXT, true, LOG_DEBUG, "x", "m");
	ok(strncmp(buf, "<7>", 3) == 0, "journal: debug is <7>");
}

static void
test_json(void)
{
	char		buf[1024];
	json_t	   *j;

	fmt(buf, sizeof(buf), LOG_FORMAT_JSON, false, LOG_INFO, "copy worker 2", "copied \"public\".\"t\": 10 rows");
	is_str(buf, "{\"ts\":\"2026-11-21T13:45:07.123Z\",\"level\":\"info\",\"role\":\"copy worker 2\",\"pid\":4242,"
		   "\"msg\":\"copied \\\"public\\\".\\\"t\\\": 10 rows\"}\n", "json: the exact line");
	j = parse_json_line(buf, 0);
	ok(j != NULL, "json: the line parses");
	is_str(json_string_value(json_object_get(j, "msg")), "copied \"public\".\"t\": 10 rows", "json: msg round-trips");
	is_str(json_string_value(json_object_get(j, "level")), "info", "json: level");
	is_str(json_string_value(json_object_get(j, "role")), "copy worker 2", "json: role");
	is_str(json_string_value(json_object_get(j, "ts")), "2026-11-21T13:45:07.123Z", "json: ts is ISO 8601 UTC");
	is_int(json_integer_value(json_object_get(j, "pid")), 4242, "json: pid");
	json_decref(j);

	/* everything a message could hold: control characters, backslashes, bad UTF-8 */
	{
		const char	msg[] = "tab\there\\back \x01\x1f del\x7f caf\xc3\xa9 \xe2\x82\xac bad\xff\xfe trunc\xe2\x82 surrogate\xed\xa0\x80 \xf0\x9f\x98\x80 \r\nnext\n";

		fmt(buf, sizeof(buf), LOG_FORMAT_JSON, false, LOG_ERROR, "apply", msg);
		j = parse_json_line(buf, 0);
		ok(j != NULL, "json: a message with control characters and invalid UTF-8 still gives valid JSON");
		is_str(json_string_value(json_object_get(j, "msg")),
			   "tab\there\\back \x01\x1f del\x7f caf\xc3\xa9 \xe2\x82\xac bad\xef\xbf\xbd\xef\xbf\xbd trunc\xef\xbf\xbd\xef\xbf\xbd"
			   " surrogate\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd \xf0\x9f\x98\x80 \r\nnext",
			   "json: valid UTF-8 kept, each invalid byte is U+FFFD, inner newlines kept escaped, trailing ones dropped");
		is_int((long long) (strchr(buf, '\n') - buf), (long long) strlen(buf) - 1, "json: still one line");
		json_decref(j);
	}

	fmt(buf, sizeof(buf), LOG_FORMAT_JSON, true, LOG_DEBUG, "stream", "keepalive");
	ok(strncmp(buf, "<7>{", 4) == 0, "journal json: priority prefix, then the object");
	j = parse_json_line(buf, 3);
	ok(j != NULL, "journal json: the rest parses");
	is_str(json_string_value(json_object_get(j, "level")), "debug", "journal json: level debug");
	json_decref(j);
}

static void
test_truncation(void)
{
	char		big[20000];
	char		buf[300];
	size_t		n;
	json_t	   *j;

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	n = fmt(buf, sizeof(buf), LOG_FORMAT_TEXT, false, LOG_INFO, "c", big);
	ok(n < sizeof(buf) && buf[n - 1] == '\n' && buf[n] == '\0', "text: an overlong message is cut, the line still ends in a newline");

	/* quotes expand to two bytes: the cut must not split an escape */
	for (size_t i = 0; i < sizeof(big) - 1; i++)
		big[i] = i % 3 == 0 ? '"' : (i % 3 == 1 ? '\x01' : 'b');
	{
		bool		all_valid = true;

		for (size_t size = 256; size < 300; size++)
		{
			n = fmt(buf, size, LOG_FORMAT_JSON, true, LOG_INFO, "c", big);
			j = parse_json_line(buf, 3);
			if (j == NULL || n >= size)
				all_valid = false;
			json_decref(j);
		}
		ok(all_valid, "json: cut at every buffer size from 256 to 299, each line is valid JSON");
	}
}

static void
test_parse(void)
{
	LogFormat	f = LOG_FORMAT_TEXT;

	ok(log_format_parse("json", &f) && f == LOG_FORMAT_JSON, "\"json\" parses");
	ok(log_format_parse("text", &f) && f == LOG_FORMAT_TEXT, "\"text\" parses");
	f = LOG_FORMAT_JSON;
	ok(!log_format_parse("JSONL", &f) && f == LOG_FORMAT_JSON, "anything else is refused and leaves the output alone");
	ok(!log_format_parse(NULL, &f), "NULL is refused");
	is_str(log_format_name(LOG_FORMAT_JSON), "json", "format name");

	{
		int64_t		before = log_error_count();

		log_set_level(LOG_ERROR + 1);	/* counted even when not printed */
		log_error("counted");
		log_warn("not counted");
		log_set_level(LOG_INFO);
		is_int(log_error_count() - before, 1, "log_error() calls are counted for the metrics");
	}
}

static void
scrub_is(const char *in, const char *want, const char *name)
{
	char	   *s = log_scrub(in);

	is_str(s, want, name);
	free(s);
}

static void
test_scrub(void)
{
	scrub_is("password=Sekr1t here", "password=Sekr1t here", "nothing registered: unchanged");
	log_add_secret("Sekr1t");
	log_add_secret("key-pass");
	log_add_secret("abc");		/* too short to scrub */
	scrub_is("password=Sekr1t sslpassword=key-pass", "password=******** sslpassword=********", "both secrets scrubbed");
	scrub_is("Sekr1tSekr1t and Sekr1t", "**************** and ********", "every occurrence");
	scrub_is("abc def", "abc def", "a secret under LOG_SECRET_MIN characters is left");
	scrub_is("", "", "empty text");
	log_forget_secrets();
	scrub_is("Sekr1t", "Sekr1t", "forgotten");
}

int
main(void)
{
	test_text();
	test_json();
	test_truncation();
	test_parse();
	test_scrub();
	return done_testing();
}
