/*
 * cli_clone.c: `ferry clone`: run the clone and report it (text or JSON).
 */
#include <jansson.h>
#include <stdio.h>

#include "cli.h"
#include "clone.h"
#include "config.h"
#include "exitcode.h"
#include "log.h"
#include "pgsql.h"

int
cli_clone(FerryConfig *cfg)
{
	CloneSummary s;
	bool		ok = clone_run(cfg, &s);
	char		size[32];

	if (!ok)
	{
		if (pg_interrupted())
			log_error("clone interrupted; run it again to resume");
		return EXIT_FAILED;
	}
	config_format_size(s.bytes, size, sizeof(size));
	if (cfg->json)
	{
		json_t	   *j = json_pack("{s:s, s:b, s:b, s:i, s:i, s:I, s:I, s:i, s:i, s:i, s:I, s:f, s:f, s:f, s:f, s:s, s:s}",
								  "name", cfg->name, "already_done", s.already_done, "resumed", s.resumed,
								  "tables", s.tables, "parts", s.parts, "rows", (json_int_t) s.rows,
								  "bytes", (json_int_t) s.bytes, "schema_steps", s.steps,
								  "sequences", s.sequences, "matviews", s.matviews,
								  "large_objects", (json_int_t) s.large_objects,
								  "schema_seconds", s.schema_seconds, "data_seconds", s.data_seconds,
								  "post_data_seconds", s.post_seconds, "total_seconds", s.total_seconds,
								  "slot", s.slot_name, "start_lsn", s.start_lsn);

		json_dumpf(j, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		json_decref(j);
	}
	else if (s.already_done)
		printf("clone of \"%s\" was already complete (slot %s, start LSN %s)\n", cfg->name, s.slot_name, s.start_lsn);
	else
	{
		printf("clone of \"%s\" complete%s in %.1f s: %d tables (%d parts), %lld rows, %s; "
			   "%d indexes/constraints/other objects, %d sequences, %d materialized views, %lld large objects\n",
			   cfg->name, s.resumed ? " (resumed)" : "", s.total_seconds, s.tables, s.parts,
			   (long long) s.rows, size, s.steps, s.sequences, s.matviews, (long long) s.large_objects);
		printf("  schema %.1f s, data %.1f s, indexes and the rest %.1f s\n",
			   s.schema_seconds, s.data_seconds, s.post_seconds);
		printf("  replication slot %s on the source starts at %s and retains WAL from there until ferry streams from it\n",
			   s.slot_name, s.start_lsn);
	}
	return EXIT_OK;
}
