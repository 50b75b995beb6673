/*
 * test_metrics.c: unit tests for metrics.c: --metrics-listen parsing, the
 * Prometheus text rendering of the registry (names, HELP/TYPE, labels and
 * their escaping). tests/t/130_metrics.t scrapes the endpoint itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "tap.h"

static void
listen_ok(const char *spec, const char *host, int port)
{
	char		h[64] = "";
	int			p = 0;
	char	   *err = NULL;
	char		name[128];

	snprintf(name, sizeof(name), "\"%s\" -> %s port %d", spec, host, port);
	ok(metrics_parse_listen(spec, h, sizeof(h), &p, &err) && strcmp(h, host) == 0 && p == port, name);
	if (err)
		printf("#   %s\n", err);
	free(err);
}

static void
listen_bad(const char *spec, const char *why)
{
	char		h[64] = "";
	int			p = 0;
	char	   *err = NULL;
	char		name[128];

	snprintf(name, sizeof(name), "\"%s\" is refused (%s)", spec, why);
	ok(!metrics_parse_listen(spec, h, sizeof(h), &p, &err) && err != NULL, name);
	free(err);
}

static void
test_parse_listen(void)
{
	listen_ok("9187", "127.0.0.1", 9187);
	listen_ok(":9187", "127.0.0.1", 9187);
	listen_ok("0.0.0.0:80", "0.0.0.0", 80);
	listen_ok("localhost:65535", "localhost", 65535);
	listen_ok("[::1]:9187", "::1", 9187);
	listen_bad("", "empty");
	listen_bad("127.0.0.1:", "no port");
	listen_bad("127.0.0.1:0", "port 0");
	listen_bad(":65536", "port too large");
	listen_bad(":91a", "not a number");
	listen_bad("::1:9187", "IPv6 without brackets");
	listen_bad("[::1]9187", "no colon after the bracket");
}

static void
test_render(void)
{
	char	   *text;

	metrics_reset();
	text = metrics_render("app");
	contains(text, "# HELP ferry_phase ", "HELP line");
	contains(text, "# TYPE ferry_phase gauge\n", "TYPE line");
	contains(text, "ferry_phase{migration=\"app\",phase=\"starting\"} 1\n", "the phase starts as starting");
	contains(text, "ferry_phase{migration=\"app\",phase=\"following\"} 0\n", "the other phases are 0");
	lacks(text, "ferry_lag_bytes", "no lag before anything is applied");
	lacks(text, "ferry_table_rows_copied_total", "no tables listed before the plan");
	contains(text, "# TYPE ferry_errors_total counter\n", "errors counter");
	contains(text, "ferry_reconnects_total{migration=\"app\"} 0\n", "reconnects start at 0");
	free(text);

	metrics_set_phase("following");
	metrics_table_add("public", "t1", 0, 0);
	metrics_table_add("public", "t1", 100, 4096);
	metrics_table_add("public", "t1", 50, 1024);
	metrics_table_add("odd\"schema", "back\\slash\nnl", 7, 70);
	metrics_table_set("public", "t2", 12, 34);
	metrics_table_set("public", "t2", 13, 35);
	metrics_set_applied(0x100002000ULL, 1, 42, 7);
	metrics_set_source_lsn(0x100003000ULL);
	metrics_set_rates(12.5, 3.25);
	metrics_set_retained(65536);
	metrics_add_reconnect();
	metrics_add_reconnect();
	text = metrics_render("app");
	contains(text, "ferry_phase{migration=\"app\",phase=\"following\"} 1\n", "phase following");
	contains(text, "ferry_phase{migration=\"app\",phase=\"starting\"} 0\n", "starting is 0 now");
	contains(text, "# TYPE ferry_table_rows_copied_total counter\n", "rows copied is a counter");
	contains(text, "ferry_table_rows_copied_total{migration=\"app\",table=\"public.t1\"} 150\n", "rows added up per table");
	contains(text, "ferry_table_bytes_copied_total{migration=\"app\",table=\"public.t1\"} 5120\n", "bytes added up per table");
	contains(text, "ferry_table_rows_copied_total{migration=\"app\",table=\"public.t2\"} 13\n", "set replaces");
	contains(text, "table=\"odd\\\"schema.back\\\\slash\\nnl\"} 7\n", "label values escape quote, backslash and newline");
	contains(text, "ferry_applied_lsn{migration=\"app\"} 4294975488\n", "applied LSN as a number");
	contains(text, "ferry_lag_bytes{migration=\"app\"} 4096\n", "lag bytes = source position - applied");
	contains(text, "ferry_lag_seconds{migration=\"app\"} ", "lag seconds present once a commit time is known");
	contains(text, "ferry_changes_applied_total{migration=\"app\"} 42\n", "changes applied");
	contains(text, "ferry_transactions_applied_total{migration=\"app\"} 7\n", "transactions applied");
	contains(text, "ferry_apply_changes_per_second{migration=\"app\"} 12.500\n", "change rate");
	contains(text, "ferry_apply_transactions_per_second{migration=\"app\"} 3.250\n", "transaction rate");
	contains(text, "ferry_source_wal_retained_bytes{migration=\"app\"} 65536\n", "retained WAL");
	contains(text, "ferry_reconnects_total{migration=\"app\"} 2\n", "reconnects counted");
	free(text);

	/* the source position sampled before the latest apply: no negative lag */
	metrics_set_source_lsn(0x100001000ULL);
	text = metrics_render("app");
	contains(text, "ferry_lag_bytes{migration=\"app\"} 0\n", "lag never negative");
	free(text);

	/* every non-comment line is `name{labels} value` */
	text = metrics_render("app");
	{
		bool		wellformed = true;
		char	   *save = NULL;

		for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		{
			char	   *sp = strrchr(line, ' ');

			if (line[0] == '#')
				wellformed &= strncmp(line, "# HELP ferry_", 13) == 0 || strncmp(line, "# TYPE ferry_", 13) == 0;
			else
				wellformed &= strncmp(line, "ferry_", 6) == 0 && sp != NULL && sp[-1] == '}' &&
					strtod(sp + 1, NULL) >= 0 && sp[1] != '\0';
		}
		ok(wellformed, "every line is a comment or a ferry_ sample with a value");
	}
	free(text);
	metrics_reset();
}

int
main(void)
{
	test_parse_listen();
	test_render();
	return done_testing();
}
