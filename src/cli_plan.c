/*
 * cli_plan.c: `ferry plan` (also `ferry clone --dry-run` and `ferry start
 * --dry-run`): print what ferry would do on these two servers (plan.h),
 * changing nothing on either. As text, or with --json as one document:
 *
 *   {"name": "ferry", "ok": true, "blocking": 0, "warnings": 1,
 *    "copy": {"tables": 3, "parts": 6, "bytes": ..., "rows": ...,
 *             "jobs": 4, "index_jobs": 4, "split_bytes": ..., "split": "auto"},
 *    "tables": [{"name": "public.t", "bytes": ..., "rows": ..., "data": true,
 *                "done": false, "parts": 1,
 *                "publication": "ferry" | "ferry_insert_only" | null}, ...],
 *    "source": {"slot": {...}, "publications": [...], "heartbeat": "...",
 *               "replica_identity_full": [...]},
 *    "target": {"schema": {"TABLE": 3, ...}, "state_schema": {...},
 *               "replication_origin": {...}},
 *    "reverse": {"slot": "ferry_reverse", "publications": [...],
 *                "source_state": "ferry_reverse"},   (made at switchover)
 *    "not_migrated": [{"check", "detail", "fix"}, ...],
 *    "problems": [{"check", "server", "status", "detail", "fix"}, ...]}
 *
 * "tables" and the objects are absent ("built": false) when the plan could
 * not be worked out (a server unreachable, pg_dump failing): the problems
 * then say why. Exit status as ferry check: EXIT_CHECK when a check is
 * blocking; otherwise EXIT_FAILED when the plan could not be built or was
 * interrupted, EXIT_OK when it was printed.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "clone.h"
#include "pgversion.h"
#include "exitcode.h"
#include "follow.h"
#include "log.h"
#include "mem.h"
#include "plan.h"
#include "publication.h"

static const char *const STATE_TABLE_LIST = "migration, copy_item, copy_plan, schema_step, apply_progress";

static const char *
publication_of(const FerryConfig *cfg, const PlanTable *t, char *buf, size_t size)
{
	if (t->publish == PLAN_PUB_ALL)
		return cfg->name;
	if (t->publish == PLAN_PUB_NONE)
		return NULL;
	snprintf(buf, size, "%s%s", cfg->name, PUBLICATION_INSERT_ONLY_SUFFIX);
	return buf;
}

/* How the split threshold came about, for people. */
static void
split_text(const FerryConfig *cfg, const Plan *p, char *buf, size_t size)
{
	char		sz[32];

	config_format_size(p->split_bytes, sz, sizeof(sz));
	if (!p->can_split)
		snprintf(buf, size, "no table is split: the source is older than PostgreSQL %d (no TID range scans)",
				 CLONE_SPLIT_MIN_MAJOR);
	else if (p->split_bytes == 0)
		snprintf(buf, size, "no table is split (--split-tables-larger-than 0)");
	else if (cfg->split_bytes == SPLIT_AUTO)
		snprintf(buf, size, "tables larger than %s are split into block ranges copied in parallel (auto: each of the %d workers' share of the data, at least 64 MB)",
				 sz, cfg->jobs);
	else
		snprintf(buf, size, "tables larger than %s are split into block ranges copied in parallel (--split-tables-larger-than)", sz);
}

static const char *
split_mode(const FerryConfig *cfg, const Plan *p)
{
	if (!p->can_split)
		return "unsupported";
	if (p->split_bytes == 0)
		return "never";
	return cfg->split_bytes == SPLIT_AUTO ? "auto" : "size";
}

/* The non-ok check rows of one kind; `only` < 0: every status. */
static void
print_rows(const Plan *p, bool not_migrated, int only)
{
	for (int i = 0; i < p->checks.n; i++)
	{
		const CheckResult *c = &p->checks.items[i];

		if (c->status == CHECK_OK || c->not_migrated != not_migrated ||
			(only >= 0 && (int) c->status != only))
			continue;
		printf("  %-4s  %-6s  %s: %s\n", check_status_name(c->status, false), c->server, c->check, c->detail);
		if (c->fix)
			printf("        fix: %s\n", c->fix);
	}
}

static int
count_rows(const Plan *p, bool not_migrated, CheckStatus status)
{
	int			n = 0;

	for (int i = 0; i < p->checks.n; i++)
		n += p->checks.items[i].not_migrated == not_migrated && p->checks.items[i].status == status;
	return n;
}

static void
print_text(const FerryConfig *cfg, const Plan *p)
{
	char		sz[32];
	char		buf[256];
	char		pub[80];

	printf("ferry plan for migration \"%s\" (nothing has been changed on either server)\n", cfg->name);
	if (p->built)
	{
		int			wname = (int) strlen("TABLE");

		printf("\nsource PostgreSQL %s, target PostgreSQL %s", p->source_version, p->target_version);
		if (p->phase)
			printf("; migration \"%s\" exists on the target in phase %s: %s", cfg->name, p->phase,
				   strcmp(p->phase, "cloning") == 0 ? "clone resumes, copying only what is not done yet"
				   : strcmp(p->phase, "cloned") == 0 || strcmp(p->phase, "following") == 0
				   ? "the clone is complete, ferry start follows from the slot"
				   : "past the clone (see ferry status)");
		printf("\n\n");

		config_format_size(p->bytes, sz, sizeof(sz));
		printf("Data to copy: %d %s, %s, about %lld rows, as %d %s with %d workers\n",
			   p->data_tables, p->data_tables == 1 ? "table" : "tables", sz, (long long) p->rows,
			   p->parts, p->parts == 1 ? "part" : "parts", cfg->jobs);
		split_text(cfg, p, buf, sizeof(buf));
		printf("  %s\n", buf);
		for (int i = 0; i < p->ntables; i++)
			if ((int) strlen(p->tables[i].name) > wname)
				wname = (int) strlen(p->tables[i].name);
		printf("\n  %-*s  %10s  %12s  %5s  %s\n", wname, "TABLE", "SIZE", "ROWS (EST.)", "PARTS", "CHANGES STREAMED");
		for (int i = 0; i < p->ntables; i++)
		{
			const PlanTable *t = &p->tables[i];
			const char *pname = publication_of(cfg, t, pub, sizeof(pub));
			char		rows[32];
			char		parts[32];

			config_format_size(t->bytes, sz, sizeof(sz));
			if (t->rows < 0)
				snprintf(rows, sizeof(rows), "unknown");
			else
				snprintf(rows, sizeof(rows), "%lld", (long long) t->rows);
			if (!t->data)
				snprintf(parts, sizeof(parts), "-");
			else if (t->done)
				snprintf(parts, sizeof(parts), "done");
			else
				snprintf(parts, sizeof(parts), "%d", t->parts);
			printf("  %-*s  %10s  %12s  %5s  ", wname, t->name, sz, rows, parts);
			if (t->publish == PLAN_PUB_ALL)
				printf("all (publication %s)", pname);
			else if (t->publish == PLAN_PUB_INSERT_ONLY)
				printf("inserts only (publication %s): no primary key or replica identity, re-copied at switchover", pname);
			else
				printf("none (unlogged: copied once)");
			if (!t->data)
				printf("; definition only (--exclude-table-data)");
			printf("\n");
		}

		printf("\nOn the source ferry will create:\n");
		printf("  replication slot %s (logical, pgoutput)%s\n", cfg->name,
			   p->slot_exists ? ": exists already" : ", with an exported snapshot for the copy; it retains WAL until ferry start streams from it");
		printf("  publication %s: %d %s, every operation (insert, update, delete, truncate)%s\n",
			   cfg->name, p->published_all, p->published_all == 1 ? "table" : "tables",
			   p->publication_exists[0] ? " (exists already)" : "");
		printf("  publication %s%s: %d %s, inserts and truncates only%s\n",
			   cfg->name, PUBLICATION_INSERT_ONLY_SUFFIX, p->published_insert_only,
			   p->published_insert_only == 1 ? "table" : "tables",
			   p->publication_exists[1] ? " (exists already)" : "");
		printf("  heartbeat messages: pg_logical_emit_message(true, '%s', ...) every %d ms while ferry start runs (WAL only, no table)\n",
			   FOLLOW_HEARTBEAT_PREFIX, FOLLOW_HEARTBEAT_MS);
		for (int i = 0; i < p->set_identity_full.n; i++)
			printf("  ALTER TABLE %s REPLICA IDENTITY FULL (--set-replica-identity-full)\n", p->set_identity_full.items[i]);

		printf("\nOn the target ferry will create:\n");
		printf("  the schema, from pg_dump --schema-only: %d entries (", p->toc_entries);
		for (int i = 0; i < p->toc_types.n; i++)
			printf("%s%s %d", i ? ", " : "", p->toc_types.items[i], p->toc_counts[i]);
		printf("); indexes and constraints after the data with %d workers\n", cfg->index_jobs);
		printf("  schema ferry: ferry's state (tables %s)%s\n", STATE_TABLE_LIST,
			   p->state_exists ? ", exists already" : "");
		printf("  replication origin %s, when ferry start first applies changes%s\n", cfg->name,
			   p->origin_exists ? " (exists already)" : "");
		printf("\nAt switchover, for rollback (unless --no-reverse): replication slot %s%s and publications\n"
			   "  %s%s, %s%s%s on the target, ferry's state for %s%s in schema ferry on the source\n",
			   cfg->name, CONFIG_REVERSE_SUFFIX, cfg->name, CONFIG_REVERSE_SUFFIX, cfg->name, CONFIG_REVERSE_SUFFIX,
			   PUBLICATION_INSERT_ONLY_SUFFIX, cfg->name, CONFIG_REVERSE_SUFFIX);
	}

	printf("\nNot migrated:\n");
	if (count_rows(p, true, CHECK_WARNING) + count_rows(p, true, CHECK_BLOCKING) == 0)
		printf("  nothing found (large objects, unlogged and foreign tables, publications, subscriptions, event triggers, database settings and tablespaces were checked)\n");
	else
		print_rows(p, true, -1);
	if (count_rows(p, false, CHECK_WARNING) > 0)
	{
		printf("\nWarnings (ferry check):\n");
		print_rows(p, false, CHECK_WARNING);
	}
	if (count_rows(p, false, CHECK_BLOCKING) > 0)
	{
		printf("\nBlocking problems (ferry check):\n");
		print_rows(p, false, CHECK_BLOCKING);
	}
	printf("\nplan: %d blocking problem%s, %d warning%s%s\n",
		   p->checks.blocking, p->checks.blocking == 1 ? "" : "s",
		   p->checks.warnings, p->checks.warnings == 1 ? "" : "s",
		   p->checks.blocking ? ": fix them before ferry clone" : p->built ? "" : "; the plan could not be worked out (see the log)");
}

static json_t *
json_size_or_null(bool known, json_int_t v)
{
	return known ? json_integer(v) : json_null();
}

static json_t *
check_row_json(const CheckResult *c, bool full)
{
	json_t	   *o = json_object();

	json_object_set_new(o, "check", cli_json_text(c->check));
	if (full)
	{
		json_object_set_new(o, "server", json_string(c->server));
		json_object_set_new(o, "status", json_string(check_status_name(c->status, true)));
	}
	json_object_set_new(o, "detail", cli_json_text(c->detail));
	json_object_set_new(o, "fix", cli_json_text(c->fix));
	return o;
}

static void
print_json(const FerryConfig *cfg, const Plan *p)
{
	json_t	   *root = json_object();
	json_t	   *notm = json_array();
	json_t	   *problems = json_array();
	char		pub[80];

	json_object_set_new(root, "name", json_string(cfg->name));
	json_object_set_new(root, "ok", json_boolean(p->checks.blocking == 0 && p->built));
	json_object_set_new(root, "built", json_boolean(p->built));
	json_object_set_new(root, "blocking", json_integer(p->checks.blocking));
	json_object_set_new(root, "warnings", json_integer(p->checks.warnings));
	if (p->built)
	{
		json_t	   *tables = json_array();
		json_t	   *pubs = json_array();
		json_t	   *schema = json_object();
		json_t	   *ident = json_array();
		char	   *insn = xasprintf("%s%s", cfg->name, PUBLICATION_INSERT_ONLY_SUFFIX);

		json_object_set_new(root, "source_version", json_string(p->source_version));
		json_object_set_new(root, "target_version", json_string(p->target_version));
		json_object_set_new(root, "phase", p->phase ? json_string(p->phase) : json_null());
		json_object_set_new(root, "copy",
							json_pack("{s:i, s:i, s:I, s:I, s:i, s:i, s:I, s:s}",
									  "tables", p->data_tables, "parts", p->parts,
									  "bytes", (json_int_t) p->bytes, "rows", (json_int_t) p->rows,
									  "jobs", cfg->jobs, "index_jobs", cfg->index_jobs,
									  "split_bytes", (json_int_t) (p->can_split ? p->split_bytes : 0),
									  "split", split_mode(cfg, p)));
		for (int i = 0; i < p->ntables; i++)
		{
			const PlanTable *t = &p->tables[i];
			const char *pname = publication_of(cfg, t, pub, sizeof(pub));
			json_t	   *o = json_object();

			json_object_set_new(o, "name", cli_json_text(t->name));
			json_object_set_new(o, "schema", cli_json_text(t->nspname));
			json_object_set_new(o, "table", cli_json_text(t->relname));
			json_object_set_new(o, "bytes", json_integer(t->bytes));
			json_object_set_new(o, "rows", json_size_or_null(t->rows >= 0, t->rows));
			json_object_set_new(o, "data", json_boolean(t->data));
			json_object_set_new(o, "done", json_boolean(t->done));
			json_object_set_new(o, "parts", json_integer(t->data && !t->done ? t->parts : 0));
			json_object_set_new(o, "publication", pname ? json_string(pname) : json_null());
			json_object_set_new(o, "insert_only", json_boolean(t->publish == PLAN_PUB_INSERT_ONLY));
			json_array_append_new(tables, o);
		}
		json_object_set_new(root, "tables", tables);
		json_array_append_new(pubs, json_pack("{s:s, s:i, s:s, s:b}", "name", cfg->name,
											  "tables", p->published_all,
											  "operations", "insert, update, delete, truncate",
											  "exists", p->publication_exists[0]));
		json_array_append_new(pubs, json_pack("{s:s, s:i, s:s, s:b}", "name", insn,
											  "tables", p->published_insert_only,
											  "operations", "insert, truncate",
											  "exists", p->publication_exists[1]));
		for (int i = 0; i < p->set_identity_full.n; i++)
			json_array_append_new(ident, json_string(p->set_identity_full.items[i]));
		json_object_set_new(root, "source",
							json_pack("{s:{s:s, s:s, s:b}, s:o, s:s, s:o}",
									  "slot", "name", cfg->name, "plugin", "pgoutput", "exists", p->slot_exists,
									  "publications", pubs,
									  "heartbeat", FOLLOW_HEARTBEAT_PREFIX,
									  "replica_identity_full", ident));
		for (int i = 0; i < p->toc_types.n; i++)
			json_object_set_new(schema, p->toc_types.items[i], json_integer(p->toc_counts[i]));
		json_object_set_new(root, "target",
							json_pack("{s:o, s:{s:s, s:s, s:b}, s:{s:s, s:b}}",
									  "schema", schema,
									  "state_schema", "name", "ferry", "tables", STATE_TABLE_LIST,
									  "exists", p->state_exists,
									  "replication_origin", "name", cfg->name, "exists", p->origin_exists));
		{
			char	   *rev = xasprintf("%s%s", cfg->name, CONFIG_REVERSE_SUFFIX);
			char	   *revins = xasprintf("%s%s", rev, PUBLICATION_INSERT_ONLY_SUFFIX);

			/* made by switchover on the target (and state on the source) unless --no-reverse */
			json_object_set_new(root, "reverse",
								json_pack("{s:s, s:[s, s], s:s}", "slot", rev,
										  "publications", rev, revins, "source_state", rev));
			free(rev);
			free(revins);
		}
		free(insn);
	}
	for (int i = 0; i < p->checks.n; i++)
	{
		const CheckResult *c = &p->checks.items[i];

		if (c->status == CHECK_OK)
			continue;
		json_array_append_new(c->not_migrated ? notm : problems, check_row_json(c, !c->not_migrated));
	}
	json_object_set_new(root, "not_migrated", notm);
	json_object_set_new(root, "problems", problems);
	json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	json_decref(root);
}

int
cli_plan(FerryConfig *cfg)
{
	Plan		plan;
	int			rc;

	if (!plan_build(cfg, &plan))
	{
		log_error("plan interrupted");
		plan_release(&plan);
		return EXIT_FAILED;
	}
	if (cfg->json)
		print_json(cfg, &plan);
	else
		print_text(cfg, &plan);
	fflush(stdout);
	rc = plan.checks.blocking > 0 ? EXIT_CHECK : plan.built ? EXIT_OK : EXIT_FAILED;
	plan_release(&plan);
	return rc;
}
