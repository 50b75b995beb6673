/*
 * cli_check.c: `ferry check`. Runs the pre-flight checks (check.c) and
 * prints the report on stdout, as a table or, with --json, as one JSON
 * document:
 *
 *   {"name": "ferry", "ok": false, "blocking": 1, "warnings": 0,
 *    "checks": [{"check": "wal_level", "server": "source",
 *                "status": "ok|warning|blocking", "detail": "...",
 *                "fix": "..." or null}, ...]}
 *
 * Exit status: EXIT_CHECK when any check is blocking, EXIT_OK otherwise
 * (warnings included), EXIT_FAILED when interrupted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "check.h"
#include "cli.h"
#include "exitcode.h"
#include "log.h"
#include "mem.h"

json_t *
cli_json_text(const char *s)
{
	json_t	   *j;
	char	   *copy;

	if (s == NULL)
		return json_null();
	j = json_string(s);
	if (j)
		return j;
	copy = xstrdup(s);
	for (char *p = copy; *p; p++)
		if ((unsigned char) *p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

static void
print_json(const FerryConfig *cfg, const CheckReport *r)
{
	json_t	   *root = json_object();
	json_t	   *checks = json_array();

	json_object_set_new(root, "name", cli_json_text(cfg->name));
	json_object_set_new(root, "ok", json_boolean(r->blocking == 0));
	json_object_set_new(root, "blocking", json_integer(r->blocking));
	json_object_set_new(root, "warnings", json_integer(r->warnings));
	for (int i = 0; i < r->n; i++)
	{
		const CheckResult *c = &r->items[i];
		json_t	   *o = json_object();

		json_object_set_new(o, "check", cli_json_text(c->check));
		json_object_set_new(o, "server", cli_json_text(c->server));
		json_object_set_new(o, "status", json_string(check_status_name(c->status, true)));
		json_object_set_new(o, "detail", cli_json_text(c->detail));
		json_object_set_new(o, "fix", cli_json_text(c->fix));
		json_array_append_new(checks, o);
	}
	json_object_set_new(root, "checks", checks);
	json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	json_decref(root);
}

static void
print_table(const CheckReport *r)
{
	int			wcheck = (int) strlen("CHECK");

	for (int i = 0; i < r->n; i++)
		if ((int) strlen(r->items[i].check) > wcheck)
			wcheck = (int) strlen(r->items[i].check);
	printf("%-6s  %-6s  %-*s  %s\n", "STATUS", "SERVER", wcheck, "CHECK", "DETAIL");
	for (int i = 0; i < r->n; i++)
	{
		const CheckResult *c = &r->items[i];

		printf("%-6s  %-6s  %-*s  %s\n", check_status_name(c->status, false), c->server,
			   wcheck, c->check, c->detail);
		if (c->status != CHECK_OK && c->fix)
			printf("  fix: %s\n", c->fix);
	}
	printf("\ncheck: %d blocking problem%s, %d warning%s%s\n",
		   r->blocking, r->blocking == 1 ? "" : "s", r->warnings, r->warnings == 1 ? "" : "s",
		   r->blocking == 0 ? ": ready for ferry clone" : "");
}

int
cli_check(FerryConfig *cfg)
{
	CheckReport report;
	int			rc;

	check_report_init(&report);
	if (!check_run(cfg, &report))
	{
		log_error("check interrupted");
		check_report_release(&report);
		return EXIT_FAILED;
	}
	if (cfg->json)
		print_json(cfg, &report);
	else
		print_table(&report);
	fflush(stdout);
	rc = report.blocking > 0 ? EXIT_CHECK : EXIT_OK;
	check_report_release(&report);
	return rc;
}
