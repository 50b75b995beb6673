/*
 * test_schema.c: unit tests for the pure half of schema.c: splitting a
 * pg_restore --section=post-data script into steps, and stripping the
 * \restrict / \unrestrict meta-commands that pg_dump 17.6/16.10/15.14 and
 * later put around every script.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "schema.h"
#include "tap.h"

#define ENTRY(name, type, schema, sql) \
	"--\n-- Name: " name "; Type: " type "; Schema: " schema "; Owner: postgres\n--\n\n" sql "\n\n\n"

/* What pg_restore 15.18 --section=post-data prints, plus a few oddities. */
static const char PROLOGUE[] =
	"--\n"
	"-- PostgreSQL database dump\n"
	"--\n"
	"\n"
	"\\restrict abc\n"
	"\n"
	"-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)\n"
	"-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)\n"
	"\n"
	"SET statement_timeout = 0;\n"
	"SET lock_timeout = 0;\n"
	"SET idle_in_transaction_session_timeout = 0;\n"
	"SET client_encoding = 'UTF8';\n"
	"SET standard_conforming_strings = on;\n"
	"SELECT pg_catalog.set_config('search_path', '', false);\n"
	"SET check_function_bodies = false;\n"
	"SET xmloption = content;\n"
	"SET client_min_messages = warning;\n"
	"SET row_security = off;\n"
	"\n"
	"SET default_tablespace = '';\n"
	"\n";

static const char ENTRIES[] =
	ENTRY("t t_pkey", "CONSTRAINT", "public",
		  "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY (id);")
	ENTRY("t t_pkey2", "CONSTRAINT", "public",
		  "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_pkey2 UNIQUE (v);")
	ENTRY("odd tbl odd tbl_pkey", "CONSTRAINT", "my schema",
		  "ALTER TABLE ONLY \"my schema\".\"odd tbl\"\n    ADD CONSTRAINT \"odd tbl_pkey\" PRIMARY KEY (id);")
	ENTRY("t chk", "CHECK CONSTRAINT", "public",
		  "ALTER TABLE public.t\n    ADD CONSTRAINT chk CHECK ((id > 0)) NOT VALID;")
	ENTRY("t chk", "CHECK CONSTRAINT", "public",
		  "ALTER TABLE public.t\n    ADD CONSTRAINT chk CHECK ((id > 1)) NOT VALID;")
	ENTRY("t chk", "CHECK CONSTRAINT", "public",
		  "ALTER TABLE public.t\n    ADD CONSTRAINT chk CHECK ((id > 2)) NOT VALID;")
	ENTRY("t_v_idx", "INDEX", "my schema",
		  "CREATE INDEX t_v_idx ON \"my schema\".\"odd tbl\" USING btree (x);")
	ENTRY("t_v_idx", "INDEX", "public",
		  "CREATE INDEX t_v_idx ON public.t USING btree (v);")
	ENTRY("t_p1_pkey", "INDEX ATTACH", "public",
		  "ALTER INDEX public.t_pkey ATTACH PARTITION public.t_p1_pkey;")
	ENTRY("INDEX t_v_idx", "COMMENT", "public",
		  "COMMENT ON INDEX public.t_v_idx IS 'hello; world';")
	ENTRY("t trg", "TRIGGER", "public",
		  "CREATE TRIGGER trg BEFORE INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION public.f();")
	ENTRY("t t_p_fk", "FK CONSTRAINT", "public",
		  "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_p_fk FOREIGN KEY (p) REFERENCES public.t(id);");

static const char EPILOGUE[] =
	"--\n"
	"-- PostgreSQL database dump complete\n"
	"--\n"
	"\n"
	"\\unrestrict abc\n"
	"\n";

typedef struct Want
{
	const char *key;
	const char *type;
	int			wave;
	bool		primary_key;
	const char *sql;			/* a part of the step's SQL */
} Want;

static const Want WANT[] = {
	{"CONSTRAINT public t t_pkey", "CONSTRAINT", 1, true, "ADD CONSTRAINT t_pkey PRIMARY KEY (id);"},
	{"CONSTRAINT public t t_pkey2", "CONSTRAINT", 1, false, "ADD CONSTRAINT t_pkey2 UNIQUE (v);"},
	{"CONSTRAINT my schema odd tbl odd tbl_pkey", "CONSTRAINT", 1, true, "\"odd tbl_pkey\" PRIMARY KEY (id);"},
	{"CHECK CONSTRAINT public t chk", "CHECK CONSTRAINT", 1, false, "CHECK ((id > 0)) NOT VALID;"},
	{"CHECK CONSTRAINT public t chk#2", "CHECK CONSTRAINT", 1, false, "CHECK ((id > 1)) NOT VALID;"},
	{"CHECK CONSTRAINT public t chk#3", "CHECK CONSTRAINT", 1, false, "CHECK ((id > 2)) NOT VALID;"},
	{"INDEX my schema t_v_idx", "INDEX", 1, false, "ON \"my schema\".\"odd tbl\" USING btree (x);"},
	{"INDEX public t_v_idx", "INDEX", 1, false, "ON public.t USING btree (v);"},
	{"INDEX ATTACH public t_p1_pkey", "INDEX ATTACH", 2, false, "ATTACH PARTITION public.t_p1_pkey;"},
	{"COMMENT public INDEX t_v_idx", "COMMENT", 2, false, "IS 'hello; world';"},
	{"TRIGGER public t trg", "TRIGGER", 2, false, "CREATE TRIGGER trg BEFORE INSERT"},
	{"FK CONSTRAINT public t t_p_fk", "FK CONSTRAINT", 2, false, "FOREIGN KEY (p) REFERENCES public.t(id);"},
};
#define NWANT ((int) (sizeof(WANT) / sizeof(WANT[0])))

static char *
full_script(const char *insert_after_entries)
{
	return xasprintf("%s%s%s%s", PROLOGUE, ENTRIES, insert_after_entries ? insert_after_entries : "", EPILOGUE);
}

static void
test_split(void)
{
	char	   *script = full_script(NULL);
	SchemaSteps steps;
	int			n = schema_split_script(script, &steps);
	char		name[200];

	ok(n == NWANT, "split finds every entry");
	ok(steps.n == n, "out->n is the return value");
	if (n != NWANT)
		printf("#   got %d steps, want %d\n", n, NWANT);
	for (int i = 0; i < n && i < NWANT; i++)
	{
		const SchemaStep *s = &steps.items[i];

		snprintf(name, sizeof(name), "step %d key \"%s\"", i, WANT[i].key);
		is_str(s->key, WANT[i].key, name);
		snprintf(name, sizeof(name), "step %d type %s", i, WANT[i].type);
		is_str(s->type, WANT[i].type, name);
		snprintf(name, sizeof(name), "step %d (%s) wave %d", i, WANT[i].type, WANT[i].wave);
		if (!ok(s->wave == WANT[i].wave, name))
			printf("#   got wave %d\n", s->wave);
		snprintf(name, sizeof(name), "step %d (%s) primary_key %s", i, WANT[i].key, WANT[i].primary_key ? "true" : "false");
		ok(s->primary_key == WANT[i].primary_key, name);
		snprintf(name, sizeof(name), "step %d SQL is its own statement", i);
		contains(s->sql, WANT[i].sql, name);
		snprintf(name, sizeof(name), "step %d SQL holds one statement", i);
		{
			/* the entry's text, and no other entry's statement */
			int			others = 0;

			for (int j = 0; j < NWANT; j++)
				if (j != i && strstr(s->sql, WANT[j].sql) != NULL)
					others++;
			ok(others == 0, name);
		}
		snprintf(name, sizeof(name), "step %d has no header of its own or of the next entry", i);
		lacks(s->sql, "-- Name:", name);
		snprintf(name, sizeof(name), "step %d has no \\restrict", i);
		lacks(s->sql, "\\restrict", name);
		snprintf(name, sizeof(name), "step %d has no \\unrestrict", i);
		lacks(s->sql, "\\unrestrict", name);
	}
	{
		bool		unique = true;

		for (int i = 0; i < n; i++)
			for (int j = i + 1; j < n; j++)
				if (strcmp(steps.items[i].key, steps.items[j].key) == 0)
					unique = false;
		ok(unique, "keys are unique");
	}
	ok(steps.prologue != NULL, "prologue set");
	contains(steps.prologue, "SET statement_timeout = 0;", "prologue has the SET lines");
	contains(steps.prologue, "SELECT pg_catalog.set_config('search_path', '', false);", "prologue sets search_path");
	contains(steps.prologue, "SET default_tablespace = '';", "prologue runs up to the first entry");
	lacks(steps.prologue, "\\restrict", "prologue has no \\restrict");
	lacks(steps.prologue, "-- Name:", "prologue stops before the first entry");
	lacks(steps.prologue, "ALTER TABLE", "prologue has no statement of an entry");
	schema_steps_free(&steps);
	ok(steps.items == NULL && steps.n == 0 && steps.prologue == NULL, "schema_steps_free empties the struct");
	free(script);

	/* the same script as pg_restore 15.13 and older print it: no \restrict */
	script = xasprintf("%s%s", ENTRIES, "--\n-- PostgreSQL database dump complete\n--\n\n");
	n = schema_split_script(script, &steps);
	ok(n == NWANT, "a script without prologue or \\restrict splits too");
	/* the "--" line above each "-- Name:" header ends the text before it */
	is_str(steps.prologue, "--\n", "its prologue is the first header's opening line");
	schema_steps_free(&steps);
	free(script);
}

static void
test_split_edges(void)
{
	SchemaSteps steps;
	char	   *script;
	int			n;

	n = schema_split_script("", &steps);
	ok(n == 0, "empty script: no steps");
	is_str(steps.prologue, "", "empty script: empty prologue");
	schema_steps_free(&steps);

	script = xasprintf("%s%s", PROLOGUE, EPILOGUE);
	n = schema_split_script(script, &steps);
	ok(n == 0, "script without entries: no steps");
	contains(steps.prologue, "SET statement_timeout", "script without entries: all of it is the prologue");
	lacks(steps.prologue, "restrict", "script without entries: meta-commands stripped");
	schema_steps_free(&steps);
	free(script);

	/* the last entry without a final newline; Owner and Schema "-" */
	n = schema_split_script("SET x = 1;\n"
							"--\n-- Name: ev; Type: EVENT TRIGGER; Schema: -; Owner: -\n--\n\n"
							"CREATE EVENT TRIGGER ev ON ddl_command_end EXECUTE FUNCTION public.f();", &steps);
	ok(n == 1, "one entry without a final newline");
	if (n == 1)
	{
		is_str(steps.items[0].key, "EVENT TRIGGER - ev", "schema \"-\" in the key");
		ok(steps.items[0].wave == 2, "event trigger in wave 2");
		contains(steps.items[0].sql, "EXECUTE FUNCTION public.f();", "SQL up to the end of the script");
	}
	is_str(steps.prologue, "SET x = 1;\n--\n", "prologue before it");
	schema_steps_free(&steps);

	/* a CONSTRAINT that is a UNIQUE one is not a primary key */
	n = schema_split_script(ENTRY("t u", "CONSTRAINT", "public",
								  "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT u UNIQUE (a);"), &steps);
	ok(n == 1 && !steps.items[0].primary_key && steps.items[0].wave == 1, "UNIQUE constraint: wave 1, not a primary key");
	schema_steps_free(&steps);
	/* an index is never the primary key, whatever its name */
	n = schema_split_script(ENTRY("primary_key_idx", "INDEX", "public",
								  "CREATE UNIQUE INDEX \"PRIMARY KEY\" ON public.t USING btree (a);"), &steps);
	ok(n == 1 && !steps.items[0].primary_key, "INDEX: never primary_key");
	schema_steps_free(&steps);
}

/*
 * ferry runs the script through libpq, which never interprets backslash
 * commands: a line starting with a backslash is SQL text (in a literal or a
 * function body, or a syntax error the server reports). So it is kept.
 */
static void
split_keeps(const char *extra, const char *line, const char *what)
{
	char	   *script = full_script(extra);
	SchemaSteps steps;
	int			n;
	char		name[160];
	bool		found = false;

	n = schema_split_script(script, &steps);
	snprintf(name, sizeof(name), "%s: split succeeds", what);
	if (!ok(n >= NWANT, name))
		printf("#   got %d\n", n);
	for (int i = 0; i < steps.n; i++)
		found |= strstr(steps.items[i].sql, line) != NULL;
	found |= steps.prologue && strstr(steps.prologue, line) != NULL;
	snprintf(name, sizeof(name), "%s: the line is kept as SQL text", what);
	ok(found, name);
	schema_steps_free(&steps);
	free(script);
}

static void
test_split_meta(void)
{
	split_keeps("\\connect x\n", "\\connect x", "\\connect after the entries");
	split_keeps("\\i /etc/passwd\n", "\\i /etc/passwd", "\\i");
	split_keeps(ENTRY("t z", "TRIGGER", "public", "\\set ON_ERROR_STOP off"), "\\set ON_ERROR_STOP", "backslash line inside an entry");

	/*
	 * A line of a multi-line string literal that starts with a backslash is
	 * SQL, not a psql meta-command: psql (and pg_restore into a database)
	 * run such a script fine. A COMMENT documenting a psql command is enough.
	 */
	{
		char	   *script = full_script(ENTRY("INDEX t_v_idx", "COMMENT", "public",
											  "COMMENT ON INDEX public.t_v_idx IS 'look at it with\n\\di+ public.t_v_idx';"));
		SchemaSteps steps;
		int			n = schema_split_script(script, &steps);

		todo_ok(n == NWANT + 1, "a string literal line starting with a backslash is not a meta-command",
				"schema_split_script/schema_strip_meta look at lines, not at SQL tokens");
		if (n == NWANT + 1)
			todo_ok(strstr(steps.items[NWANT].sql, "\n\\di+ public.t_v_idx';") != NULL,
					"the literal is kept whole", "schema_strip_meta removes lines inside literals");
		schema_steps_free(&steps);
		free(script);
	}
}

/* ------------------------------------------------------------------ */

static void
strip_is(const char *in, bool want_ok, const char *want, const char *what)
{
	char	   *s = xstrdup(in);
	bool		r = schema_strip_meta(s);
	char		name[160];

	snprintf(name, sizeof(name), "strip_meta %s: returns %s", what, want_ok ? "true" : "false");
	ok(r == want_ok, name);
	if (want)
	{
		snprintf(name, sizeof(name), "strip_meta %s: result", what);
		is_str(s, want, name);
	}
	free(s);
}

static void
test_strip_meta(void)
{
	strip_is("", true, "", "empty");
	strip_is("SELECT 1;\n", true, "SELECT 1;\n", "no meta-commands");
	strip_is("\\restrict abc\nSET a = 1;\nSELECT 1;\n\\unrestrict abc\n", true,
			 "SET a = 1;\nSELECT 1;\n", "\\restrict and \\unrestrict lines removed");
	strip_is("SELECT 1;\n\\unrestrict abc", true, "SELECT 1;\n", "\\unrestrict without a final newline");
	strip_is("--\n\\restrict k\n\n-- c\nSELECT 1;\n\n\\unrestrict k\n\n", true,
			 "--\n\n-- c\nSELECT 1;\n\n\n", "blank lines around them kept");
	strip_is("SELECT E'\\\\x';\nSELECT '\\restrict';\n", true,
			 "SELECT E'\\\\x';\nSELECT '\\restrict';\n", "backslashes inside lines are kept");
	strip_is("SELECT 1;\n\\connect other\nSELECT 2;\n", true, "SELECT 1;\n\\connect other\nSELECT 2;\n", "\\connect is SQL text to libpq: kept");
	strip_is("\\c other\n", true, "\\c other\n", "\\c kept");
	strip_is("\\", true, "\\", "a lone backslash kept");

	{
		char	   *script = full_script(NULL);

		ok(schema_strip_meta(script), "strip_meta on the full post-data script");
		lacks(script, "\\restrict", "no \\restrict left");
		lacks(script, "\\unrestrict", "no \\unrestrict left");
		contains(script, "SET statement_timeout = 0;\n", "SET lines kept");
		contains(script, "FOREIGN KEY (p) REFERENCES public.t(id);\n", "last entry kept");
		ok(strlen(script) == strlen(PROLOGUE) + strlen(ENTRIES) + strlen(EPILOGUE)
		   - strlen("\\restrict abc\n") - strlen("\\unrestrict abc\n"), "only the two lines removed");
		free(script);
	}

	/* pre-data: a function body line that starts with a backslash */
	{
		char	   *s = xstrdup("\\restrict k\n"
								"CREATE FUNCTION public.usage() RETURNS text\n"
								"    LANGUAGE sql\n"
								"    AS $$SELECT 'run\n"
								"\\d public.t\n"
								"in psql'$$;\n"
								"\\unrestrict k\n");
		bool		r = schema_strip_meta(s);

		todo_ok(r, "a dollar-quoted body line starting with a backslash is not a meta-command",
				"schema_strip_meta rejects any line starting with a backslash, even inside $$...$$");
		if (r)
			todo_ok(strstr(s, "\n\\d public.t\n") != NULL, "the function body is kept whole",
					"schema_strip_meta");
		free(s);
	}
}

/* schema_toc_count: entry types of a pg_restore --list, multi-word ones whole */
static void
test_toc_count(void)
{
	const char *toc =
		";\n; Archive created at 2026-11-21 16:33:03 UTC\n;     dbname: app\n;\n"
		"215; 1259 16386 TABLE public big postgres\n"
		"216; 1259 16389 TABLE public nopk postgres\n"
		"217; 1259 16390 SEQUENCE public s postgres\n"
		"3327; 0 0 SEQUENCE OWNED BY public s postgres\n"
		"3172; 2606 16394 CONSTRAINT public big big_pkey postgres\n"
		"3173; 2606 16395 FK CONSTRAINT public nopk nopk_fk postgres\n"
		"3174; 1259 16396 MATERIALIZED VIEW public mv postgres\n"
		"3175; 0 16396 MATERIALIZED VIEW DATA public mv postgres\n"
		"3176; 0 0 COMMENT - TABLE big postgres\n";
	StrList		types = {NULL, 0, 0};
	int		   *counts = NULL;
	int			n = schema_toc_count(toc, &types, &counts);
	StrBuf		sb;

	strbuf_init(&sb);
	for (int i = 0; i < types.n; i++)
		strbuf_addf(&sb, "%s%s=%d", i ? "," : "", types.items[i], counts[i]);
	is_int(n, 9, "toc: 9 entries, comment lines skipped");
	is_str(sb.data, "TABLE=2,SEQUENCE=1,SEQUENCE OWNED BY=1,CONSTRAINT=1,FK CONSTRAINT=1,"
		   "MATERIALIZED VIEW=1,MATERIALIZED VIEW DATA=1,COMMENT=1",
		   "toc: types in order of appearance, multi-word types whole");
	strbuf_release(&sb);
	strlist_free(&types);
	free(counts);
}

/* One rewrite: want_sql NULL means "left alone". */
static void
fk_case(const char *sql, const char *want_sql, const char *want_table, const char *want_name, const char *what)
{
	char	   *out = NULL,
			   *table = NULL,
			   *name = NULL;
	bool		r = schema_fk_not_valid(sql, &out, &table, &name);

	if (want_sql == NULL)
	{
		ok(!r && out == NULL && table == NULL && name == NULL, "fk: %s: left alone", what);
		return;
	}
	ok(r, "fk: %s: rewritten", what);
	is_str(out ? out : "(null)", want_sql, what);
	is_str(table ? table : "(null)", want_table, "fk: its table as written");
	is_str(name ? name : "(null)", want_name, "fk: its name unquoted");
	free(out);
	free(table);
	free(name);
}

static void
test_fk_not_valid(void)
{
	fk_case("\nALTER TABLE ONLY public.payments\n    ADD CONSTRAINT payments_order_id_fkey FOREIGN KEY (order_id) REFERENCES public.orders(id);\n\n\n--\n",
			"\nALTER TABLE ONLY public.payments\n    ADD CONSTRAINT payments_order_id_fkey FOREIGN KEY (order_id) REFERENCES public.orders(id) NOT VALID;\n\n\n--\n",
			"public.payments", "payments_order_id_fkey", "fk: pg_dump's plain foreign key, entry's comment lines around it");
	fk_case("ALTER TABLE ONLY public.refunds\n    ADD CONSTRAINT r_fk FOREIGN KEY (a, b) REFERENCES public.p(a, b) MATCH FULL"
			" ON UPDATE RESTRICT ON DELETE SET NULL (b) DEFERRABLE INITIALLY DEFERRED;",
			"ALTER TABLE ONLY public.refunds\n    ADD CONSTRAINT r_fk FOREIGN KEY (a, b) REFERENCES public.p(a, b) MATCH FULL"
			" ON UPDATE RESTRICT ON DELETE SET NULL (b) DEFERRABLE INITIALLY DEFERRED NOT VALID;",
			"public.refunds", "r_fk", "fk: NOT VALID after MATCH, actions (with a column list) and DEFERRABLE");
	fk_case("ALTER TABLE ONLY \"My Schema\".\"Pay;ments\"\n    ADD CONSTRAINT \"fk \"\"x\"\"; NOT VALID\" FOREIGN KEY (\"Order\") REFERENCES \"My Schema\".\"O\"(id) ON DELETE CASCADE;",
			"ALTER TABLE ONLY \"My Schema\".\"Pay;ments\"\n    ADD CONSTRAINT \"fk \"\"x\"\"; NOT VALID\" FOREIGN KEY (\"Order\") REFERENCES \"My Schema\".\"O\"(id) ON DELETE CASCADE NOT VALID;",
			"\"My Schema\".\"Pay;ments\"", "fk \"x\"; NOT VALID", "fk: quoted names holding ';', quotes and NOT VALID");
	fk_case("ALTER TABLE ONLY public.t ADD CONSTRAINT Mixed FOREIGN KEY (a) REFERENCES public.u(a) /* c; */ -- d;\n;",
			"ALTER TABLE ONLY public.t ADD CONSTRAINT Mixed FOREIGN KEY (a) REFERENCES public.u(a) NOT VALID /* c; */ -- d;\n;",
			"public.t", "mixed", "fk: comments before the ';' kept after NOT VALID; unquoted names fold");
	fk_case("alter table only public.t\n    add constraint c foreign key (a) references public.u(a);",
			"alter table only public.t\n    add constraint c foreign key (a) references public.u(a) NOT VALID;",
			"public.t", "c", "fk: keywords in any case");
	fk_case("ALTER TABLE ONLY public.t\n    ADD CONSTRAINT loose_fk FOREIGN KEY (p) REFERENCES public.t(id) NOT VALID;",
			NULL, NULL, NULL, "already NOT VALID on the source");
	fk_case("ALTER TABLE ONLY public.t\n    ADD CONSTRAINT loose_fk FOREIGN KEY (p) REFERENCES public.t(id) not  valid ;",
			NULL, NULL, NULL, "already not valid, lower case");
	fk_case("ALTER TABLE public.parted\n    ADD CONSTRAINT parted_fk FOREIGN KEY (p) REFERENCES public.t(id);",
			NULL, NULL, NULL, "partitioned table (no ONLY)");
	fk_case("ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY (id);",
			NULL, NULL, NULL, "a primary key");
	fk_case("ALTER TABLE ONLY public.t\n    ADD CONSTRAINT chk CHECK ((id > 0));",
			NULL, NULL, NULL, "a check constraint");
	fk_case("ALTER TABLE ONLY public.t\n    ADD CONSTRAINT c FOREIGN KEY (a) REFERENCES public.u(a);\nSELECT 1;",
			NULL, NULL, NULL, "two statements");
	fk_case("ALTER TABLE ONLY public.t\n    ADD CONSTRAINT c FOREIGN KEY (a) REFERENCES public.u(a)",
			NULL, NULL, NULL, "no ';'");
	fk_case("ALTER TABLE ONLY public.\"t\n    ADD CONSTRAINT c FOREIGN KEY (a) REFERENCES public.u(a);",
			NULL, NULL, NULL, "an unterminated quoted name");
	fk_case("ALTER TABLE ONLY public.t ADD CONSTRAINT c FOREIGN KEY;", NULL, NULL, NULL, "nothing after FOREIGN KEY");
	fk_case("COMMENT ON CONSTRAINT c ON public.t IS 'ALTER TABLE ONLY x ADD CONSTRAINT c FOREIGN KEY';",
			NULL, NULL, NULL, "a comment that mentions a foreign key");
	fk_case("", NULL, NULL, NULL, "empty");
}

/* ------------------------------------------------------------------ */

static void
attver_is(const char *in, int want_n, const char *want, const char *what)
{
	char	   *s = xstrdup(in);
	int			n = schema_strip_attver(s);
	char		name[160];

	snprintf(name, sizeof(name), "strip_attver %s: %d removed", what, want_n);
	ok(n == want_n, name);
	snprintf(name, sizeof(name), "strip_attver %s: result", what);
	is_str(s, want, name);
	free(s);
}

static void
test_strip_attver(void)
{
	attver_is("CREATE TABLE public.t (\n    id integer NOT NULL\n);\n"
			  "ALTER TABLE ONLY public.t ALTER COLUMN id SET (pg_attver=30519448);\n\n"
			  "ALTER TABLE public.t OWNER TO postgres;\n", 1,
			  "CREATE TABLE public.t (\n    id integer NOT NULL\n);\n\n"
			  "ALTER TABLE public.t OWNER TO postgres;\n", "the only option: the line goes");
	attver_is("ALTER TABLE ONLY public.t ALTER COLUMN v SET (pg_attver=26345976, n_distinct=5);\n", 1,
			  "ALTER TABLE ONLY public.t ALTER COLUMN v SET (n_distinct=5);\n", "first of two: the other stays");
	attver_is("ALTER TABLE ONLY public.t ALTER COLUMN v SET (n_distinct=5, pg_attver=1);", 1,
			  "ALTER TABLE ONLY public.t ALTER COLUMN v SET (n_distinct=5);", "last of two, no newline at the end");
	attver_is("ALTER TABLE ONLY public.\"a SET (pg_attver=1);\" ALTER COLUMN \"SET (x\" SET (n_distinct=-1);\n", 0,
			  "ALTER TABLE ONLY public.\"a SET (pg_attver=1);\" ALTER COLUMN \"SET (x\" SET (n_distinct=-1);\n",
			  "in an identifier: untouched");
	attver_is("ALTER TABLE ONLY public.t ALTER COLUMN v SET (pg_attver_x=1, pg_attver=abc);\n", 0,
			  "ALTER TABLE ONLY public.t ALTER COLUMN v SET (pg_attver_x=1, pg_attver=abc);\n",
			  "another name, or not a number: untouched");
	attver_is("CREATE FUNCTION f() RETURNS void AS $$ SET (pg_attver=1); $$;\n    ALTER TABLE x SET (pg_attver=1);\n", 0,
			  "CREATE FUNCTION f() RETURNS void AS $$ SET (pg_attver=1); $$;\n    ALTER TABLE x SET (pg_attver=1);\n",
			  "not at the start of a line: untouched");
	attver_is("ALTER TABLE ONLY a.b ALTER COLUMN c SET (pg_attver=1);\r\nALTER TABLE ONLY a.b ALTER COLUMN d SET (pg_attver=2);\n", 2,
			  "", "two lines, CRLF");
}

/* schema_hoist_schema_acls: the schemas' grants before the objects in them */
static void
hoist_is(const char *in, int want_n, const char *want, const char *name)
{
	char	   *s = strdup(in);
	int			n = schema_hoist_schema_acls(s);
	char		label[200];

	snprintf(label, sizeof(label), "%s: count", name);
	ok(n == want_n, label);
	is_str(s, want, name);
	free(s);
}

#define HEAD "--\n-- PostgreSQL database dump\n--\n\nSET lock_timeout = 0;\n\n"
#define SCH(n) ENTRY(n, "SCHEMA", "-", "CREATE SCHEMA " n ";\nALTER SCHEMA " n " OWNER TO o;")
#define TAB(s, n) ENTRY(n, "TABLE", s, "CREATE TABLE " s "." n " (a int);\nALTER TABLE " s "." n " OWNER TO app_owner;")
#define ACL(n, sql) ENTRY("SCHEMA " n, "ACL", "-", sql)
#define TAIL "--\n-- PostgreSQL database dump complete\n--\n\n"

static void
test_hoist_acls(void)
{
	hoist_is(HEAD SCH("shop") TAB("public", "t1") TAB("shop", "orders")
			 ACL("public", "GRANT CREATE ON SCHEMA public TO app_owner;")
			 ACL("shop", "REVOKE ALL ON SCHEMA shop FROM PUBLIC;\nGRANT CREATE,USAGE ON SCHEMA shop TO app_owner;") TAIL,
			 2,
			 HEAD ACL("public", "GRANT CREATE ON SCHEMA public TO app_owner;")
			 SCH("shop") ACL("shop", "REVOKE ALL ON SCHEMA shop FROM PUBLIC;\nGRANT CREATE,USAGE ON SCHEMA shop TO app_owner;") TAIL
			 TAB("public", "t1") TAB("shop", "orders"),
			 "public's grants first, shop's after CREATE SCHEMA shop");
	hoist_is(HEAD SCH("My \"S\"") TAB("\"My \"\"S\"\"\"", "t") ACL("\"My \"\"S\"\"\"", "GRANT CREATE ON SCHEMA \"My \"\"S\"\"\" TO app_owner;"),
			 1,
			 HEAD SCH("My \"S\"") ACL("\"My \"\"S\"\"\"", "GRANT CREATE ON SCHEMA \"My \"\"S\"\"\" TO app_owner;") TAB("\"My \"\"S\"\"\"", "t"),
			 "a quoted schema name is matched unquoted");
	hoist_is(HEAD TAB("public", "t1") ACL("public", "GRANT CREATE ON SCHEMA public TO a;\nSELECT 1;"),
			 0, HEAD TAB("public", "t1") ACL("public", "GRANT CREATE ON SCHEMA public TO a;\nSELECT 1;"),
			 "an entry with anything but grants stays");
	hoist_is(HEAD TAB("public", "t1") ENTRY("TABLE t1", "ACL", "public", "GRANT SELECT ON TABLE public.t1 TO a;"),
			 0, HEAD TAB("public", "t1") ENTRY("TABLE t1", "ACL", "public", "GRANT SELECT ON TABLE public.t1 TO a;"),
			 "a table's grants stay where they are");
	hoist_is(HEAD ENTRY("f()", "FUNCTION", "public", "CREATE FUNCTION public.f() RETURNS int AS $$\n-- Name: SCHEMA public; Type: ACL; Schema: -; Owner: x\nSELECT 1 $$ LANGUAGE sql;"),
			 0, HEAD ENTRY("f()", "FUNCTION", "public", "CREATE FUNCTION public.f() RETURNS int AS $$\n-- Name: SCHEMA public; Type: ACL; Schema: -; Owner: x\nSELECT 1 $$ LANGUAGE sql;"),
			 "a header-like line inside a function body (not framed by -- lines) is no entry");
	hoist_is("", 0, "", "an empty script");
	hoist_is(HEAD, 0, HEAD, "no entries");
}

int
main(void)
{
	/* the meta-command errors are expected: keep prove's output clean */
	log_set_level((LogLevel) (LOG_ERROR + 1));
	test_split();
	test_split_edges();
	test_split_meta();
	test_strip_meta();
	test_toc_count();
	test_fk_not_valid();
	test_strip_attver();
	test_hoist_acls();
	return done_testing();
}
