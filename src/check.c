/*
 * check.c: the pre-flight checks behind `ferry check` (see check.h).
 *
 * Each check is a function that runs a catalog query or two on one server
 * (or on both, for comparisons) and appends exactly one row, sometimes two,
 * to the report. Rows are appended in a fixed order: both connections,
 * then the source's checks, then the target's. The checks read only; they
 * create nothing (not even a temporary slot) on either server.
 *
 * What ferry migrates, as far as the checks are concerned: relations in the
 * source's user schemas (not pg_catalog, information_schema, pg_toast*,
 * pg_temp* or ferry's own schema "ferry"), narrowed by --include-schema,
 * --exclude-schema and --exclude-table, which take pg_dump's pattern syntax
 * (check_pattern_regex) so that the checks see the tables pg_dump will
 * see. One simplification: pg_dump matches an --exclude-table pattern
 * without a schema against the tables visible in the user's default
 * search_path; here it matches that name in any schema. Extension member
 * objects are left out: CREATE EXTENSION makes them on the target.
 *
 * Migration state: ferry keeps one row per migration in ferry.migration on
 * the target (state.h). When the row for cfg->name exists, a clone is being
 * resumed, so the target's copies of the source's tables and the source's
 * slot of that name are expected rather than conflicts.
 */
#include "check.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libpq-fe.h>

#include "log.h"
#include "mem.h"
#include "pgsql.h"
#include "pgversion.h"
#include "proc.h"
#include "state.h"

/* Version gates: pgversion.h */

/* How many names a row spells out before "and N more" */
#define NAMES_SHOWN 5

/* Managed services grant replication through a role instead of the attribute. */
static const char MANAGED_ROLES_SQL[] =
	"SELECT coalesce(string_agg(m.rolname, ', ' ORDER BY m.rolname), '')"
	"  FROM pg_catalog.pg_roles m"
	" WHERE m.rolname IN ('rds_replication', 'cloudsqlsuperuser', 'azure_pg_admin')"
	"   AND pg_has_role(CURRENT_USER, m.oid, 'MEMBER')";

/* Settings, user and database of a server: one row, see ServerInfo. */
static const char SERVER_INFO_SQL[] =
	"SELECT pg_is_in_recovery(),"
	"       current_setting('wal_level'),"
	"       current_setting('max_replication_slots')::int,"
	"       (SELECT count(*) FROM pg_catalog.pg_replication_slots)::int,"
	"       current_setting('max_wal_senders')::int,"
	"       (SELECT count(*) FROM pg_catalog.pg_stat_replication)::int,"
	"       r.rolname, r.rolsuper, r.rolreplication,"
	"       has_database_privilege(d.oid, 'CREATE'),"
	"       d.datname, pg_encoding_to_char(d.encoding), d.datcollate, d.datctype,"
	"       (SELECT t.spcname FROM pg_catalog.pg_tablespace t WHERE t.oid = d.dattablespace)"
	"  FROM pg_catalog.pg_database d, pg_catalog.pg_roles r"
	" WHERE d.datname = current_database() AND r.rolname = CURRENT_USER";

/*
 * The schemas ferry migrates: $1 include regexes (empty array: all), $2
 * exclude regexes. `n` is pg_namespace.
 */
#define MIGRATED_SCHEMA_FILTER \
	" n.nspname NOT IN ('pg_catalog', 'information_schema', 'ferry')" \
	" AND n.nspname !~ '^pg_(toast|temp)'" \
	" AND (cardinality($1::pg_catalog.text[]) = 0 OR n.nspname ~ ANY ($1::pg_catalog.text[]))" \
	" AND NOT (n.nspname ~ ANY ($2::pg_catalog.text[]))"

/* Not created by an extension (`cls` is the catalog, `id` the object's oid). */
#define NOT_EXTENSION_MEMBER(cls, id) \
	" NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e" \
	"  WHERE e.classid = '" cls "'::pg_catalog.regclass AND e.objid = " id " AND e.deptype = 'e')"

static const char SCHEMAS_SQL[] =
	"SELECT n.nspname, has_schema_privilege(n.oid, 'USAGE')"
	"  FROM pg_catalog.pg_namespace n"
	" WHERE" MIGRATED_SCHEMA_FILTER
	" ORDER BY 1";

/* The relations ferry migrates ($3: --exclude-table regexes), see RelInfo. */
static const char RELATIONS_SQL[] =
	"SELECT n.nspname, c.relname, c.relkind, c.relpersistence,"
	"       c.relkind NOT IN ('r', 'p', 'S') OR has_table_privilege(c.oid, 'SELECT'),"
	"       c.relreplident,"
	"       EXISTS (SELECT 1 FROM pg_catalog.pg_index i"
	"                WHERE i.indrelid = c.oid AND i.indisprimary),"
	"       EXISTS (SELECT 1 FROM pg_catalog.pg_index i"
	"                WHERE i.indrelid = c.oid AND i.indisreplident AND i.indisvalid),"
	"       pg_has_role(c.relowner, 'USAGE'), pg_get_userbyid(c.relowner),"
	/* the switchover's fence locks it IN EXCLUSIVE MODE (freeze.h) */
	"       c.relkind NOT IN ('r', 'p') OR has_table_privilege(c.oid, 'UPDATE, DELETE, TRUNCATE')"
	"  FROM pg_catalog.pg_class c"
	"  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	" WHERE c.relkind IN ('r', 'p', 'S', 'f', 'm', 'v') AND c.relpersistence <> 't'"
	"   AND" MIGRATED_SCHEMA_FILTER
	"   AND NOT ((n.nspname || '.' || c.relname) ~ ANY ($3::pg_catalog.text[]))"
	"   AND" NOT_EXTENSION_MEMBER("pg_catalog.pg_class", "c.oid")
	" ORDER BY 1, 2";

/* Tables, indexes and materialized views outside the default tablespace. */
static const char TABLESPACES_SQL[] =
	"SELECT n.nspname, c.relname, t.spcname"
	"  FROM pg_catalog.pg_class c"
	"  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	"  JOIN pg_catalog.pg_tablespace t ON t.oid = c.reltablespace"
	" WHERE c.relkind IN ('r', 'p', 'm', 'i', 'I') AND" MIGRATED_SCHEMA_FILTER
	" ORDER BY 1, 2";

/*
 * Roles that own objects in the migrated schemas (owns) or appear in their
 * grants and default privileges (granted): pg_restore replays both. An
 * owner's own entry in an ACL is the owner's, not a grant.
 */
static const char ROLES_SQL[] =
	"WITH obj(owner, acl) AS ("
	"  SELECT n.nspowner, n.nspacl FROM pg_catalog.pg_namespace n WHERE" MIGRATED_SCHEMA_FILTER
	"  UNION ALL"
	"  SELECT c.relowner, c.relacl FROM pg_catalog.pg_class c"
	"    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	"   WHERE c.relkind IN ('r', 'p', 'S', 'f', 'm', 'v', 'c') AND c.relpersistence <> 't'"
	"     AND" MIGRATED_SCHEMA_FILTER
	"     AND NOT ((n.nspname || '.' || c.relname) ~ ANY ($3::pg_catalog.text[]))"
	"     AND" NOT_EXTENSION_MEMBER("pg_catalog.pg_class", "c.oid")
	"  UNION ALL"
	"  SELECT p.proowner, p.proacl FROM pg_catalog.pg_proc p"
	"    JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
	"   WHERE" MIGRATED_SCHEMA_FILTER
	"     AND" NOT_EXTENSION_MEMBER("pg_catalog.pg_proc", "p.oid")
	"  UNION ALL"
	"  SELECT t.typowner, t.typacl FROM pg_catalog.pg_type t"
	"    JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace"
	"   WHERE t.typtype IN ('b', 'd', 'e', 'r') AND t.typcategory <> 'A'"
	"     AND" MIGRATED_SCHEMA_FILTER
	"     AND" NOT_EXTENSION_MEMBER("pg_catalog.pg_type", "t.oid")
	"), defacl AS ("
	"  SELECT d.defaclrole, d.defaclacl FROM pg_catalog.pg_default_acl d"
	"   WHERE d.defaclnamespace = 0 OR d.defaclnamespace IN"
	"         (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE" MIGRATED_SCHEMA_FILTER ")"
	"), who(role, owns) AS ("
	"  SELECT owner, true FROM obj"
	"  UNION ALL"
	"  SELECT a.grantee, false FROM obj, LATERAL aclexplode(obj.acl) a"
	"   WHERE a.grantee <> 0 AND a.grantee <> obj.owner"
	"  UNION ALL"
	"  SELECT defaclrole, false FROM defacl"
	"  UNION ALL"
	"  SELECT a.grantee, false FROM defacl, LATERAL aclexplode(defacl.defaclacl) a"
	"   WHERE a.grantee <> 0 AND a.grantee <> defacl.defaclrole"
	")"
	"SELECT r.rolname, bool_or(w.owns), bool_or(NOT w.owns)"
	"  FROM who w JOIN pg_catalog.pg_roles r ON r.oid = w.role"
	" WHERE r.rolname !~ '^pg_'"	/* predefined roles exist everywhere */
	" GROUP BY r.rolname ORDER BY 1";

/* For each role name in $1: exists on the target, can the user become it, superuser? */
static const char TARGET_ROLES_SQL[] =
	"SELECT s.name, r.oid IS NOT NULL, coalesce(pg_has_role(r.oid, 'MEMBER'), false),"
	"       coalesce(r.rolsuper, false)"
	"  FROM unnest($1::pg_catalog.text[]) AS s(name)"
	"  LEFT JOIN pg_catalog.pg_roles r ON r.rolname = s.name"
	" ORDER BY 1";

static const char EXTENSIONS_SQL[] =
	"SELECT extname FROM pg_catalog.pg_extension"
	" WHERE extname <> 'plpgsql' ORDER BY 1";

/* For each extension name in $1: can the target create it? */
static const char TARGET_EXTENSIONS_SQL[] =
	"SELECT s.name, EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions a"
	"                        WHERE a.name = s.name)"
	"  FROM unnest($1::pg_catalog.text[]) AS s(name) ORDER BY 1";

/* Relations of the source ($1 schemas, $2 names) that the target already has. */
static const char TARGET_CONFLICTS_SQL[] =
	"SELECT s.nsp, s.rel"
	"  FROM unnest($1::pg_catalog.text[], $2::pg_catalog.text[]) AS s(nsp, rel)"
	"  JOIN pg_catalog.pg_namespace n ON n.nspname = s.nsp"
	"  JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = s.rel"
	" ORDER BY 1, 2";

#define TARGET_USER_SCHEMA \
	" n.nspname NOT IN ('pg_catalog', 'information_schema', 'ferry')" \
	" AND n.nspname !~ '^pg_(toast|temp)'"

/* Every user object on the target: kind, schema, name. */
static const char TARGET_OBJECTS_SQL[] =
	"SELECT kind, nsp, name FROM ("
	"  SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'"
	"         WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table' WHEN 'c' THEN 'type'"
	"         ELSE 'table' END AS kind, n.nspname AS nsp, c.relname::text AS name"
	"    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	"   WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c') AND" TARGET_USER_SCHEMA
	"     AND" NOT_EXTENSION_MEMBER("pg_catalog.pg_class", "c.oid")
	"  UNION ALL"
	"  SELECT 'function', n.nspname, p.proname::text"
	"    FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
	"   WHERE" TARGET_USER_SCHEMA
	"     AND" NOT_EXTENSION_MEMBER("pg_catalog.pg_proc", "p.oid")
	"  UNION ALL"
	"  SELECT 'type', n.nspname, t.typname::text"
	"    FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace"
	"   WHERE t.typtype IN ('b', 'd', 'e', 'r') AND t.typcategory <> 'A' AND" TARGET_USER_SCHEMA
	"     AND" NOT_EXTENSION_MEMBER("pg_catalog.pg_type", "t.oid")
	"  UNION ALL"
	"  SELECT 'schema', n.nspname, n.nspname::text"
	"    FROM pg_catalog.pg_namespace n"
	"   WHERE n.nspname <> 'public' AND" TARGET_USER_SCHEMA
	"     AND" NOT_EXTENSION_MEMBER("pg_catalog.pg_namespace", "n.oid")
	") o ORDER BY 2, 3, 1";

/* For each schema in $1: exists on the target, and may the user create in it. */
static const char TARGET_SCHEMA_PRIVS_SQL[] =
	"SELECT s.nsp, n.oid IS NOT NULL, coalesce(has_schema_privilege(n.oid, 'CREATE'), true)"
	"  FROM unnest($1::pg_catalog.text[]) AS s(nsp)"
	"  LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = s.nsp"
	" ORDER BY 1";

/* Relations in a source schema named ferry (a NULL row: the schema is empty). */
static const char SOURCE_FERRY_SCHEMA_SQL[] =
	"SELECT c.relname FROM pg_catalog.pg_namespace n"
	"  LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid"
	"   AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')"
	" WHERE n.nspname = 'ferry' ORDER BY 1";

static const char SLOT_SQL[] =
	"SELECT slot_type, coalesce(database, ''), active"
	"  FROM pg_catalog.pg_replication_slots WHERE slot_name = $1";

static const char SUBSCRIPTIONS_SQL[] =
	"SELECT s.subname FROM pg_catalog.pg_subscription s"
	"  JOIN pg_catalog.pg_database d ON d.oid = s.subdbid"
	" WHERE d.datname = current_database() ORDER BY 1";

/*
 * Settings of the database itself (ALTER DATABASE ... SET, ALTER ROLE ... IN
 * DATABASE ... SET): pg_dump without --create leaves them out, so does ferry.
 */
static const char DATABASE_SETTINGS_SQL[] =
	"SELECT CASE WHEN s.setrole = 0 THEN '' ELSE pg_catalog.pg_get_userbyid(s.setrole) || ': ' END || c.setting"
	"  FROM pg_catalog.pg_db_role_setting s, LATERAL pg_catalog.unnest(s.setconfig) WITH ORDINALITY AS c(setting, n)"
	" WHERE s.setdatabase = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())"
	" ORDER BY s.setrole <> 0, pg_catalog.pg_get_userbyid(s.setrole), c.n";

/* ferry's own state tables (state.c): a schema holding only these is ours */

/* PostgreSQL's reserved key words: identifiers that must be quoted. */
static const char *const RESERVED_WORDS[] = {
	"all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric",
	"authorization", "binary", "both", "case", "cast", "check", "collate", "collation",
	"column", "concurrently", "constraint", "create", "cross", "current_catalog",
	"current_date", "current_role", "current_schema", "current_time",
	"current_timestamp", "current_user", "default", "deferrable", "desc", "distinct",
	"do", "else", "end", "except", "false", "fetch", "for", "foreign", "freeze",
	"from", "full", "grant", "group", "having", "ilike", "in", "initially", "inner",
	"intersect", "into", "is", "isnull", "join", "lateral", "leading", "left", "like",
	"limit", "localtime", "localtimestamp", "natural", "not", "notnull", "null",
	"offset", "on", "only", "or", "order", "outer", "overlaps", "placing", "primary",
	"references", "returning", "right", "select", "session_user", "similar", "some",
	"symmetric", "system_user", "table", "tablesample", "then", "to", "trailing",
	"true", "union", "unique", "user", "using", "variadic", "verbose", "when",
	"where", "window", "with",
};

/* --- the report ----------------------------------------------------------- */

void
check_report_init(CheckReport *r)
{
	memset(r, 0, sizeof(*r));
}

void
check_report_release(CheckReport *r)
{
	for (int i = 0; i < r->n; i++)
	{
		free(r->items[i].server);
		free(r->items[i].check);
		free(r->items[i].detail);
		free(r->items[i].fix);
	}
	free(r->items);
	memset(r, 0, sizeof(*r));
}

void
check_report_add(CheckReport *r, CheckStatus status, const char *server,
				 const char *check, const char *fix, const char *fmt, ...)
{
	CheckResult *row;
	StrBuf		sb;
	va_list		ap;

	if (r->n == r->cap)
	{
		r->cap = r->cap ? r->cap * 2 : 32;
		r->items = xrealloc(r->items, sizeof(CheckResult) * (size_t) r->cap);
	}
	strbuf_init(&sb);
	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	row = &r->items[r->n++];
	row->status = status;
	row->server = xstrdup(server);
	row->check = xstrdup(check);
	row->detail = strbuf_detach(&sb);
	row->fix = fix ? xstrdup(fix) : NULL;
	row->not_migrated = false;
	if (status == CHECK_BLOCKING)
		r->blocking++;
	else if (status == CHECK_WARNING)
		r->warnings++;
}

const char *
check_status_name(CheckStatus status, bool json)
{
	switch (status)
	{
		case CHECK_OK:
			return "ok";
		case CHECK_WARNING:
			return json ? "warning" : "WARN";
		case CHECK_BLOCKING:
			return json ? "blocking" : "FAIL";
	}
	return "?";
}

/* --- names and patterns --------------------------------------------------- */

char *
check_ident(const char *name)
{
	bool		plain = name[0] != '\0' && ((name[0] >= 'a' && name[0] <= 'z') || name[0] == '_');

	for (const char *p = name; *p && plain; p++)
		plain = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '$';
	for (size_t i = 0; plain && i < sizeof(RESERVED_WORDS) / sizeof(RESERVED_WORDS[0]); i++)
		plain = strcmp(name, RESERVED_WORDS[i]) != 0;
	if (plain)
		return xstrdup(name);
	{
		/*
		 * Only for the text of a report or a fix the user reads (no
		 * connection at hand in most checks); SQL that ferry sends is
		 * quoted by libpq (pg_quote_ident).
		 */
		StrBuf		sb;

		strbuf_init(&sb);
		strbuf_addch(&sb, '"');
		for (const char *p = name; *p; p++)
		{
			if (*p == '"')
				strbuf_addch(&sb, '"');
			strbuf_addch(&sb, *p);
		}
		strbuf_addch(&sb, '"');
		return strbuf_detach(&sb);
	}
}

/* schema.name, each part quoted when needed. Owned. */
static char *
qualified_name(const char *nsp, const char *rel)
{
	char	   *a = check_ident(nsp);
	char	   *b = check_ident(rel);
	char	   *r = xasprintf("%s.%s", a, b);

	free(a);
	free(b);
	return r;
}

char *
check_pattern_regex(const char *pattern, bool qualified)
{
	StrBuf		sb;
	bool		inquotes = false;
	bool		split = false;

	strbuf_init(&sb);
	strbuf_addstr(&sb, "^(");
	for (const char *p = pattern; *p; p++)
	{
		char		ch = *p;

		if (ch == '"')
		{
			if (inquotes && p[1] == '"')
			{
				strbuf_addch(&sb, '"');
				p++;
			}
			else
				inquotes = !inquotes;
		}
		else if (!inquotes && ch >= 'A' && ch <= 'Z')
			strbuf_addch(&sb, (char) (ch - 'A' + 'a'));
		else if (!inquotes && ch == '*')
			strbuf_addstr(&sb, ".*");
		else if (!inquotes && ch == '?')
			strbuf_addch(&sb, '.');
		else if (!inquotes && ch == '.' && qualified && !split)
		{
			strbuf_addstr(&sb, ")\\.(");
			split = true;
		}
		else
		{
			if (strchr("|*+?()[]{}.^$\\", ch))
				strbuf_addch(&sb, '\\');
			strbuf_addch(&sb, ch);
		}
	}
	strbuf_addstr(&sb, ")$");
	if (qualified && !split)
	{
		/* a bare table name: any schema */
		char	   *bare = strbuf_detach(&sb);

		strbuf_init(&sb);
		strbuf_addf(&sb, "^(.*)\\.%s", bare + 1);
		free(bare);
	}
	return strbuf_detach(&sb);
}

/* pg_text_array() of the regexes for a list of pg_dump patterns. Owned. */
static char *
pattern_array(const StrList *patterns, bool qualified)
{
	StrList		re = {NULL, 0, 0};
	char	   *arr;

	for (int i = 0; i < patterns->n; i++)
	{
		char	   *r = check_pattern_regex(patterns->items[i], qualified);

		strlist_add(&re, r);
		free(r);
	}
	arr = pg_text_array(&re);
	strlist_free(&re);
	return arr;
}

/* "a, b, c, d, e and 7 more": the first NAMES_SHOWN of names. Owned. */
static char *
name_list(const StrList *names)
{
	StrBuf		sb;

	strbuf_init(&sb);
	for (int i = 0; i < names->n && i < NAMES_SHOWN; i++)
		strbuf_addf(&sb, "%s%s", i ? ", " : "", names->items[i]);
	if (names->n > NAMES_SHOWN)
		strbuf_addf(&sb, " and %d more", names->n - NAMES_SHOWN);
	return strbuf_detach(&sb);
}

/* "1 table" / "3 tables" */
static const char *
plural(int n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

/* Major version as code: 15 -> 1500, 9.6 -> 906 (comparable, printable). */
static int
major_code(int version_num)
{
	return version_num >= 100000 ? (version_num / 10000) * 100 : version_num / 100;
}

static void
major_text(int code, char *buf, size_t size)
{
	if (code >= 1000)
		snprintf(buf, size, "%d", code / 100);
	else
		snprintf(buf, size, "%d.%d", code / 100, code % 100);
}

/* --- context -------------------------------------------------------------- */

/* One server: its connection and what SERVER_INFO_SQL found. */
typedef struct Server
{
	const char *label;			/* "source" or "target" */
	const char *conninfo;		/* borrowed from the config */
	PGconn	   *conn;			/* NULL when the connection failed */
	int			version_num;	/* PQserverVersion() */
	char		version[32];	/* "15.4", without the packager's suffix */
	bool		in_recovery;
	char	   *wal_level;
	int			max_slots;
	int			used_slots;
	int			max_senders;
	int			used_senders;
	char	   *user;
	bool		superuser;
	bool		replication;
	bool		create_db;
	char	   *dbname;
	char	   *encoding;
	char	   *collate;
	char	   *ctype;
	char	   *tablespace;
} Server;

/* A migrated relation of the source (RELATIONS_SQL). */
typedef struct RelInfo
{
	char	   *nsp;
	char	   *rel;
	char	   *qualname;		/* for messages, quoted when needed */
	char		kind;			/* relkind */
	char		persistence;	/* relpersistence */
	char		replident;		/* relreplident */
	bool		select_ok;
	bool		has_pk;
	bool		has_ri_index;
	bool		owner_ok;		/* the user has the owner's privileges */
	char	   *owner;			/* owning role */
	bool		lock_ok;		/* the user may lock it as the switchover's fence does */
} RelInfo;

typedef struct CheckCtx
{
	const FerryConfig *cfg;
	CheckReport *report;
	Server		src;
	Server		tgt;
	char	   *include_re;		/* parameter values for MIGRATED_SCHEMA_FILTER */
	char	   *exclude_re;
	char	   *exclude_table_re;
	/* the source's migrated schemas and relations (have_rels) */
	bool		have_rels;
	StrList		schemas;
	StrList		schemas_no_usage;
	RelInfo    *rels;
	int			nrels;
	/* the target's state for this migration (state.exists false: none) */
	MigrationState state;
	bool		not_migrated;	/* rows being added are check_not_migrated()'s */
} CheckCtx;

static void
server_release(Server *s)
{
	pg_finish(s->conn);
	s->conn = NULL;
	free(s->wal_level);
	free(s->user);
	free(s->dbname);
	free(s->encoding);
	free(s->collate);
	free(s->ctype);
	free(s->tablespace);
}

static void
ctx_release(CheckCtx *ctx)
{
	server_release(&ctx->src);
	server_release(&ctx->tgt);
	free(ctx->include_re);
	free(ctx->exclude_re);
	free(ctx->exclude_table_re);
	strlist_free(&ctx->schemas);
	strlist_free(&ctx->schemas_no_usage);
	for (int i = 0; i < ctx->nrels; i++)
	{
		free(ctx->rels[i].nsp);
		free(ctx->rels[i].rel);
		free(ctx->rels[i].qualname);
		free(ctx->rels[i].owner);
	}
	free(ctx->rels);
	state_release(&ctx->state);
}

static void row(CheckCtx *ctx, CheckStatus st, const Server *srv, const char *check,
				const char *fix, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Add a row for `srv`, scrubbed of passwords. fix is borrowed. */
static void
row(CheckCtx *ctx, CheckStatus st, const Server *srv, const char *check,
	const char *fix, const char *fmt, ...)
{
	StrBuf		sb;
	va_list		ap;
	char	   *detail;
	char	   *f;

	strbuf_init(&sb);
	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	/* the connection strings' secrets (log.h): rows are printed on stdout, not logged */
	detail = log_scrub(sb.data);
	f = fix ? log_scrub(fix) : NULL;
	check_report_add(ctx->report, st, srv->label, check, f, "%s", detail);
	ctx->report->items[ctx->report->n - 1].not_migrated = ctx->not_migrated;
	free(f);
	free(detail);
	strbuf_release(&sb);
}

/*
 * Run one check's query on srv. On an error or a result of another shape
 * adds a blocking row for `check` (the check could not vouch for anything)
 * and returns NULL; otherwise the caller PQclear()s the result.
 */
static PGresult *
run_query(CheckCtx *ctx, Server *srv, const char *check, const char *sql,
		  int nparams, const char *const *params, int nrows, int ncols)
{
	PGresult   *res = pg_execute(srv->conn, sql, nparams, params);

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		char	   *e = pg_result_error_text(res, srv->conn);

		log_debug("check %s on the %s failed: %s", check, srv->label, e);
		row(ctx, CHECK_BLOCKING, srv, check,
			"resolve the error (often a missing privilege on a system catalog) and run ferry check again",
			"could not run this check: %s", e);
		free(e);
		PQclear(res);
		return NULL;
	}
	if (!pg_check_shape(res, nrows, ncols, check))
	{
		row(ctx, CHECK_BLOCKING, srv, check, "report this as a ferry bug",
			"could not run this check: unexpected result shape");
		PQclear(res);
		return NULL;
	}
	return res;
}

static bool
getbool(const PGresult *res, int r, int c)
{
	return !PQgetisnull(res, r, c) && PQgetvalue(res, r, c)[0] == 't';
}

/* --- connections and settings --------------------------------------------- */

/* Check 1: connect; a failure is one blocking row with libpq's reason and fix. */
static void
check_connect(CheckCtx *ctx, Server *srv)
{
	char	   *err = NULL;
	char	   *desc;
	const char *v;

	srv->conn = pg_connect(srv->conninfo, srv->label, PG_CONN_SQL, &err);
	if (srv->conn == NULL)
	{
		char	   *safe = pg_conninfo_safe(srv->conninfo);

		row(ctx, CHECK_BLOCKING, srv, "connection", pg_connect_fix(err),
			"could not connect (%s): %s; the other %s checks were skipped",
			safe ? safe : "unparsable connection string", err ? err : "unknown error",
			srv->label);
		free(safe);
		free(err);
		return;
	}
	pg_cancel_register(srv->conn);
	/* names in catalogs may use any encoding; rows are printed as UTF-8 */
	if (PQsetClientEncoding(srv->conn, "UTF8") != 0)
		log_debug("could not set client_encoding UTF8 on the %s", srv->label);
	v = PQparameterStatus(srv->conn, "server_version");
	snprintf(srv->version, sizeof(srv->version), "%.*s", (int) strcspn(v ? v : "?", " "), v);
	srv->version_num = PQserverVersion(srv->conn);
	desc = pg_conn_describe(srv->conn);
	row(ctx, CHECK_OK, srv, "connection", NULL, "connected to %s as %s (PostgreSQL %s)",
		desc, PQuser(srv->conn), srv->version);
	free(desc);
}

/* Read SERVER_INFO_SQL into srv; false (with a row) when it fails. */
static bool
load_server_info(CheckCtx *ctx, Server *srv)
{
	PGresult   *res = run_query(ctx, srv, "settings", SERVER_INFO_SQL, 0, NULL, 1, 15);

	if (res == NULL)
		return false;
	srv->in_recovery = getbool(res, 0, 0);
	srv->wal_level = xstrdup(PQgetvalue(res, 0, 1));
	srv->max_slots = atoi(PQgetvalue(res, 0, 2));
	srv->used_slots = atoi(PQgetvalue(res, 0, 3));
	srv->max_senders = atoi(PQgetvalue(res, 0, 4));
	srv->used_senders = atoi(PQgetvalue(res, 0, 5));
	srv->user = xstrdup(PQgetvalue(res, 0, 6));
	srv->superuser = getbool(res, 0, 7);
	srv->replication = getbool(res, 0, 8);
	srv->create_db = getbool(res, 0, 9);
	srv->dbname = xstrdup(PQgetvalue(res, 0, 10));
	srv->encoding = xstrdup(PQgetvalue(res, 0, 11));
	srv->collate = xstrdup(PQgetvalue(res, 0, 12));
	srv->ctype = xstrdup(PQgetvalue(res, 0, 13));
	srv->tablespace = xstrdup(PQgetvalue(res, 0, 14));
	PQclear(res);
	return true;
}

/* Check 2, source: version 10 or newer. False when too old to go on. */
static bool
check_source_version(CheckCtx *ctx)
{
	Server	   *s = &ctx->src;
	const char *v = s->version;

	if (!pg_caps_for(s->version_num).logical_source)
	{
		row(ctx, CHECK_BLOCKING, s, "server version",
			"upgrade the source to PostgreSQL 10 or newer (pg_upgrade), then run ferry check again",
			"PostgreSQL %s is too old: ferry needs logical replication (pgoutput), which came in PostgreSQL 10; the other source checks were skipped",
			v);
		return false;
	}
	row(ctx, CHECK_OK, s, "server version", NULL, "PostgreSQL %s (10 or newer)", v);
	return true;
}

/* Check 2, target: same major version as the source, or newer. */
static void
check_target_version(CheckCtx *ctx)
{
	Server	   *t = &ctx->tgt;
	const char *tv = t->version;
	char		smaj[16],
				tmaj[16];

	if (ctx->src.conn == NULL)
	{
		row(ctx, CHECK_OK, t, "server version", NULL,
			"PostgreSQL %s (not compared: no source connection)", tv);
		return;
	}
	major_text(major_code(ctx->src.version_num), smaj, sizeof(smaj));
	major_text(major_code(t->version_num), tmaj, sizeof(tmaj));
	if (major_code(t->version_num) < major_code(ctx->src.version_num))
	{
		char	   *fix = xasprintf("use a target server running PostgreSQL %s or newer", smaj);

		row(ctx, CHECK_BLOCKING, t, "server version", fix,
			"target runs PostgreSQL %s, older than the source's %s: a newer server's schema does not restore into an older one",
			tv, smaj);
		free(fix);
		return;
	}
	row(ctx, CHECK_OK, t, "server version", NULL, "PostgreSQL %s (source %s: same major version or newer)",
		tv, smaj);
}

/*
 * The target's sessions must be ferry's own: through a pooler in
 * transaction or statement mode the migration lock, the apply fence,
 * session_replication_role and prepared statements do not hold.
 */
static void
check_session_pinning(CheckCtx *ctx, Server *s)
{
	char	   *why;
	int			r = pg_session_pooled(s->conn, s->conninfo, s->label, &why);

	if (r > 0)
		row(ctx, CHECK_BLOCKING, s, "session pinning", PG_POOLED_FIX,
			"the %s is reached through a pooler in %s: the locks and settings ferry keeps for a session's life do not hold",
			s->label, why);
	else if (r < 0)
		row(ctx, CHECK_BLOCKING, s, "session pinning", "resolve the error and run ferry check again",
			"could not tell whether a pooler stands in front of the %s: %s", s->label, why);
	else
		row(ctx, CHECK_OK, s, "session pinning", NULL, "ferry's sessions are its own (no transaction pooling)");
	free(why);
}

/* Source and target must be primaries: slots, publications and restores need writes. */
static void
check_primary(CheckCtx *ctx, Server *s)
{
	if (s->in_recovery)
	{
		char	   *fix = xasprintf("point --%s at the primary server, not a standby", s->label);

		row(ctx, CHECK_BLOCKING, s, "primary", fix,
			"the %s is a standby (in recovery): ferry %s", s->label,
			s == &ctx->src ? "creates a publication and a replication slot there"
			: "writes the schema, the data and its state there");
		free(fix);
		return;
	}
	row(ctx, CHECK_OK, s, "primary", NULL, "not a standby");
}

/*
 * Check 3, source: wal_level = logical (blocking). On the target the same
 * setting is a warning: needed only for reverse replication at switchover.
 */
static void
check_wal_level(CheckCtx *ctx, Server *s)
{
	bool		source = s == &ctx->src;
	char	   *fix;

	if (strcmp(s->wal_level, "logical") == 0)
	{
		row(ctx, CHECK_OK, s, "wal_level", NULL, "wal_level is logical");
		return;
	}
	fix = xasprintf("ALTER SYSTEM SET wal_level = logical; then restart the %s server"
					" (managed services: set the parameter group or flag instead, e.g. rds.logical_replication = 1 on Amazon RDS)",
					s->label);
	if (source)
		row(ctx, CHECK_BLOCKING, s, "wal_level", fix,
			"wal_level is %s: logical decoding needs wal_level = logical", s->wal_level);
	else
		row(ctx, CHECK_WARNING, s, "wal_level", fix,
			"wal_level is %s: not needed to migrate, but reverse replication to the old server at switchover needs logical",
			s->wal_level);
	free(fix);
}

/*
 * Check 4: a free replication slot and a free WAL sender. On the source
 * blocking (unless this migration's slot already exists: a resume needs
 * no new one); on the target a warning (reverse replication later).
 */
static void
check_slots_and_senders(CheckCtx *ctx, Server *s, bool own_slot_exists)
{
	bool		source = s == &ctx->src;
	CheckStatus bad = source ? CHECK_BLOCKING : CHECK_WARNING;
	const char *why = source ? "ferry needs one for its slot" : "reverse replication at switchover will need one";
	int			free_slots = s->max_slots - s->used_slots;
	int			free_senders = s->max_senders - s->used_senders;
	char	   *fix;

	if (free_slots >= 1 || (source && own_slot_exists))
		row(ctx, CHECK_OK, s, "replication slots", NULL, "%d of max_replication_slots = %d in use%s",
			s->used_slots, s->max_slots, own_slot_exists && source ? ", including this migration's" : "");
	else
	{
		fix = xasprintf("ALTER SYSTEM SET max_replication_slots = %d; then restart the %s server"
						" (or drop an unused slot: SELECT pg_drop_replication_slot('slot_name'))",
						s->used_slots + 1, s->label);
		row(ctx, bad, s, "replication slots", fix,
			"no free replication slot (%d of max_replication_slots = %d in use): %s",
			s->used_slots, s->max_slots, why);
		free(fix);
	}

	if (free_senders >= 1)
		row(ctx, CHECK_OK, s, "wal senders", NULL, "%d of max_wal_senders = %d in use",
			s->used_senders, s->max_senders);
	else
	{
		fix = xasprintf("ALTER SYSTEM SET max_wal_senders = %d; then restart the %s server",
						s->used_senders + 1, s->label);
		row(ctx, bad, s, "wal senders", fix,
			"no free WAL sender (%d of max_wal_senders = %d in use): %s",
			s->used_senders, s->max_senders,
			source ? "ferry streams changes through one" : "reverse replication at switchover will need one");
		free(fix);
	}
}

/* Check 5, source: REPLICATION, superuser, or a managed service's replication role. */
static void
check_replication_privilege(CheckCtx *ctx)
{
	Server	   *s = &ctx->src;
	PGresult   *res;
	char	   *role;
	char	   *fix;

	if (s->superuser || s->replication)
	{
		row(ctx, CHECK_OK, s, "replication privilege", NULL, "role %s is %s", s->user,
			s->superuser ? "a superuser" : "allowed to replicate (REPLICATION)");
		return;
	}
	res = run_query(ctx, s, "replication privilege", MANAGED_ROLES_SQL, 0, NULL, 1, 1);
	if (res == NULL)
		return;
	if (PQgetvalue(res, 0, 0)[0] != '\0')
	{
		row(ctx, CHECK_OK, s, "replication privilege", NULL, "role %s is a member of %s",
			s->user, PQgetvalue(res, 0, 0));
		PQclear(res);
		return;
	}
	PQclear(res);
	role = check_ident(s->user);
	fix = xasprintf("ALTER ROLE %s WITH REPLICATION; (as a superuser; on Amazon RDS/Aurora: GRANT rds_replication TO %s;)",
					role, role);
	row(ctx, CHECK_BLOCKING, s, "replication privilege", fix,
		"role %s may not create replication slots or stream changes: it has neither REPLICATION nor superuser",
		s->user);
	free(fix);
	free(role);
}

/* --- the source's schemas and tables -------------------------------------- */

/* Read SCHEMAS_SQL and RELATIONS_SQL into ctx; false (with a row) on error. */
static bool
load_relations(CheckCtx *ctx)
{
	const char *params[3] = {ctx->include_re, ctx->exclude_re, ctx->exclude_table_re};
	PGresult   *res;

	res = run_query(ctx, &ctx->src, "select privilege", SCHEMAS_SQL, 2, params, -1, 2);
	if (res == NULL)
		return false;
	for (int i = 0; i < PQntuples(res); i++)
	{
		strlist_add(&ctx->schemas, PQgetvalue(res, i, 0));
		if (!getbool(res, i, 1))
			strlist_add(&ctx->schemas_no_usage, PQgetvalue(res, i, 0));
	}
	PQclear(res);

	res = run_query(ctx, &ctx->src, "select privilege", RELATIONS_SQL, 3, params, -1, 11);
	if (res == NULL)
		return false;
	ctx->nrels = PQntuples(res);
	ctx->rels = xcalloc((size_t) (ctx->nrels ? ctx->nrels : 1), sizeof(RelInfo));
	for (int i = 0; i < ctx->nrels; i++)
	{
		RelInfo    *r = &ctx->rels[i];

		r->nsp = xstrdup(PQgetvalue(res, i, 0));
		r->rel = xstrdup(PQgetvalue(res, i, 1));
		r->qualname = qualified_name(r->nsp, r->rel);
		r->kind = PQgetvalue(res, i, 2)[0];
		r->persistence = PQgetvalue(res, i, 3)[0];
		r->select_ok = getbool(res, i, 4);
		r->replident = PQgetvalue(res, i, 5)[0];
		r->has_pk = getbool(res, i, 6);
		r->has_ri_index = getbool(res, i, 7);
		r->owner_ok = getbool(res, i, 8);
		r->owner = xstrdup(PQgetvalue(res, i, 9));
		r->lock_ok = getbool(res, i, 10);
	}
	PQclear(res);
	ctx->have_rels = true;
	return true;
}

/* Check 6: USAGE on every migrated schema and SELECT on every table and sequence. */
static void
check_select_privilege(CheckCtx *ctx)
{
	Server	   *s = &ctx->src;
	StrList		denied = {NULL, 0, 0};
	StrList		tbl_schemas = {NULL, 0, 0};
	StrList		seq_schemas = {NULL, 0, 0};
	StrBuf		fix;
	StrBuf		detail;
	char	   *user = check_ident(s->user);
	int			ntables = 0;

	for (int i = 0; i < ctx->nrels; i++)
	{
		RelInfo    *r = &ctx->rels[i];

		if (r->kind == 'r' || r->kind == 'p' || r->kind == 'S')
			ntables++;
		if (r->select_ok)
			continue;
		strlist_add(&denied, r->qualname);
		if (r->kind == 'S' && !strlist_has(&seq_schemas, r->nsp))
			strlist_add(&seq_schemas, r->nsp);
		else if (r->kind != 'S' && !strlist_has(&tbl_schemas, r->nsp))
			strlist_add(&tbl_schemas, r->nsp);
	}
	if (denied.n == 0 && ctx->schemas_no_usage.n == 0)
	{
		row(ctx, CHECK_OK, s, "select privilege", NULL,
			"role %s may read every table and sequence to migrate (%d in %d %s)", s->user, ntables,
			ctx->schemas.n, plural(ctx->schemas.n, "schema", "schemas"));
		goto cleanup;
	}

	strbuf_init(&fix);
	strbuf_init(&detail);
	for (int i = 0; i < ctx->schemas_no_usage.n; i++)
	{
		char	   *n = check_ident(ctx->schemas_no_usage.items[i]);

		strbuf_addf(&fix, "GRANT USAGE ON SCHEMA %s TO %s; ", n, user);
		free(n);
	}
	for (int i = 0; i < tbl_schemas.n; i++)
	{
		char	   *n = check_ident(tbl_schemas.items[i]);

		strbuf_addf(&fix, "GRANT SELECT ON ALL TABLES IN SCHEMA %s TO %s; ", n, user);
		free(n);
	}
	for (int i = 0; i < seq_schemas.n; i++)
	{
		char	   *n = check_ident(seq_schemas.items[i]);

		strbuf_addf(&fix, "GRANT SELECT ON ALL SEQUENCES IN SCHEMA %s TO %s; ", n, user);
		free(n);
	}
	strbuf_addstr(&fix, "(run as the owner or a superuser)");
	if (denied.n > 0)
	{
		char	   *names = name_list(&denied);

		strbuf_addf(&detail, "role %s may not read %d of the tables and sequences to migrate: %s",
					s->user, denied.n, names);
		free(names);
	}
	if (ctx->schemas_no_usage.n > 0)
	{
		StrList		quoted = {NULL, 0, 0};
		char	   *names;

		for (int i = 0; i < ctx->schemas_no_usage.n; i++)
		{
			char	   *q = check_ident(ctx->schemas_no_usage.items[i]);

			strlist_add(&quoted, q);
			free(q);
		}
		names = name_list(&quoted);
		strlist_free(&quoted);
		strbuf_addf(&detail, "%srole %s lacks USAGE on %s %s", denied.n ? "; " : "", s->user,
					plural(ctx->schemas_no_usage.n, "schema", "schemas"), names);
		free(names);
	}
	row(ctx, CHECK_BLOCKING, s, "select privilege", fix.data, "%s", detail.data);
	strbuf_release(&fix);
	strbuf_release(&detail);

cleanup:
	strlist_free(&denied);
	strlist_free(&tbl_schemas);
	strlist_free(&seq_schemas);
	free(user);
}

/*
 * The publication: CREATE PUBLICATION needs CREATE on the database, and
 * adding a table to it needs the table's owner privileges (superusers have
 * both).
 */
static void
check_publication(CheckCtx *ctx)
{
	Server	   *s = &ctx->src;
	StrList		notowned = {NULL, 0, 0};
	StrList		owners = {NULL, 0, 0};
	char	   *user = check_ident(s->user);
	char	   *db = check_ident(s->dbname);
	StrBuf		fix;
	StrBuf		detail;

	if (s->superuser)
	{
		row(ctx, CHECK_OK, s, "publication", NULL, "role %s is a superuser and may create publication %s",
			s->user, ctx->cfg->name);
		goto cleanup;
	}
	for (int i = 0; i < ctx->nrels; i++)
	{
		RelInfo    *r = &ctx->rels[i];

		if (r->kind != 'r' || r->persistence != 'p' || r->owner_ok)
			continue;
		strlist_add(&notowned, r->qualname);
		if (!strlist_has(&owners, r->owner))
			strlist_add(&owners, r->owner);
	}
	if (s->create_db && notowned.n == 0)
	{
		row(ctx, CHECK_OK, s, "publication", NULL, "role %s owns every table and may create publication %s",
			s->user, ctx->cfg->name);
		goto cleanup;
	}
	strbuf_init(&fix);
	strbuf_init(&detail);
	if (!s->create_db)
	{
		strbuf_addf(&fix, "GRANT CREATE ON DATABASE %s TO %s;", db, user);
		strbuf_addf(&detail, "role %s lacks CREATE on database %s, needed to create publication %s",
					s->user, s->dbname, ctx->cfg->name);
	}
	if (notowned.n > 0)
	{
		char	   *names = name_list(&notowned);

		strbuf_addf(&fix, "%srun ferry as the tables' owner or a superuser, or make %s a member of the owning %s:",
					fix.len ? " Also " : "", user, plural(owners.n, "role", "roles"));
		for (int i = 0; i < owners.n; i++)
		{
			char	   *o = check_ident(owners.items[i]);

			strbuf_addf(&fix, " GRANT %s TO %s;", o, user);
			free(o);
		}
		strbuf_addf(&detail, "%srole %s does not own %d %s and so cannot add %s to publication %s: %s",
					detail.len ? "; " : "", s->user, notowned.n, plural(notowned.n, "table", "tables"),
					plural(notowned.n, "it", "them"), ctx->cfg->name, names);
		free(names);
	}
	row(ctx, CHECK_BLOCKING, s, "publication", fix.data, "%s", detail.data);
	strbuf_release(&fix);
	strbuf_release(&detail);

cleanup:
	strlist_free(&notowned);
	strlist_free(&owners);
	free(user);
	free(db);
}

/* Check 7: a primary key or usable replica identity on every table (warning). */
static void
check_replica_identity(CheckCtx *ctx)
{
	Server	   *s = &ctx->src;
	StrList		bad = {NULL, 0, 0};
	StrBuf		fix;
	char	   *names;

	for (int i = 0; i < ctx->nrels; i++)
	{
		RelInfo    *r = &ctx->rels[i];
		bool		ok;

		if (r->kind != 'r' || r->persistence != 'p')
			continue;
		switch (r->replident)
		{
			case 'd':
				ok = r->has_pk;
				break;
			case 'i':
				ok = r->has_ri_index;
				break;
			case 'f':
				ok = true;
				break;
			default:			/* 'n' */
				ok = false;
				break;
		}
		if (!ok)
			strlist_add(&bad, r->qualname);
	}
	if (bad.n == 0)
	{
		row(ctx, CHECK_OK, s, "replica identity", NULL,
			"every table has a primary key or a replica identity");
		strlist_free(&bad);
		return;
	}
	strbuf_init(&fix);
	strbuf_addf(&fix, "ALTER TABLE %s ADD PRIMARY KEY (<columns>); or, if no key exists, ALTER TABLE %s REPLICA IDENTITY FULL;",
				bad.items[0], bad.items[0]);
	if (bad.n > 1)
		strbuf_addstr(&fix, " (the same for each table listed)");
	names = name_list(&bad);
	row(ctx, CHECK_WARNING, s, "replica identity", fix.data,
		"%d %s without a primary key or usable replica identity: %s; until fixed, %s published for inserts only and re-copied at switchover",
		bad.n, plural(bad.n, "table", "tables"), names, plural(bad.n, "it is", "they are"));
	free(names);
	strbuf_release(&fix);
	strlist_free(&bad);
}

/* Check 11, source: a user schema named "ferry" would clash with ferry's state. */
static void
check_ferry_schema(CheckCtx *ctx)
{
	Server	   *s = &ctx->src;
	PGresult   *res = run_query(ctx, s, "ferry schema", SOURCE_FERRY_SCHEMA_SQL, 0, NULL, -1, 1);
	bool		only_state = true;
	int			n;

	if (res == NULL)
		return;
	n = PQntuples(res);
	for (int i = 0; i < n; i++)
	{
		bool		known = false;

		if (PQgetisnull(res, i, 0))
		{
			only_state = false;	/* an empty schema: someone made it */
			continue;
		}
		for (int j = 0; STATE_TABLES[j] != NULL; j++)
			known |= strcmp(PQgetvalue(res, i, 0), STATE_TABLES[j]) == 0;
		only_state &= known;
	}
	PQclear(res);
	if (n == 0)
		row(ctx, CHECK_OK, s, "ferry schema", NULL, "no schema named ferry");
	else if (only_state)
		row(ctx, CHECK_OK, s, "ferry schema", NULL,
			"schema ferry holds ferry's own state from an earlier migration into this server; it is not migrated");
	else
		row(ctx, CHECK_BLOCKING, s, "ferry schema",
			"ALTER SCHEMA ferry RENAME TO ferry_app; (any other name: ferry keeps its state in a schema named ferry on the target)",
			"the source has a schema named ferry, which ferry reserves for its state on the target: it would not be migrated");
}

/*
 * Check 10: this migration's slot (and publication) on the source. Found
 * with no state on the target, it is left over from an earlier attempt.
 */
static void
check_existing_slot(CheckCtx *ctx)
{
	Server	   *s = &ctx->src;
	const char *params[1] = {ctx->cfg->name};
	PGresult   *res;
	char	   *lit;
	char	   *fix;

	res = run_query(ctx, s, "existing slot", SLOT_SQL, 1, params, -1, 3);
	if (res == NULL)
		return;
	if (PQntuples(res) == 0)
		row(ctx, CHECK_OK, s, "existing slot", NULL, "no replication slot named %s yet", ctx->cfg->name);
	else if (ctx->tgt.conn == NULL)
		row(ctx, CHECK_WARNING, s, "existing slot", "run ferry check again once the target is reachable",
			"replication slot %s exists; whether the target holds its migration state could not be checked",
			ctx->cfg->name);
	else if (ctx->state.exists)
		row(ctx, CHECK_OK, s, "existing slot", NULL,
			"replication slot %s exists and the target holds its migration state (phase %s): ferry resumes",
			ctx->cfg->name, ctx->state.phase);
	else
	{
		lit = pg_quote_literal(s->conn, ctx->cfg->name);
		fix = xasprintf("SELECT pg_drop_replication_slot(%s);%s (on the source; or pick another --name)",
						lit ? lit : "'?'", getbool(res, 0, 2) ? " after stopping the process that uses it" : "");
		row(ctx, CHECK_BLOCKING, s, "existing slot", fix,
			"replication slot %s already exists (%s%s%s%s) but the target holds no state for migration %s: it is left over from an earlier attempt or used by something else",
			ctx->cfg->name, PQgetvalue(res, 0, 0),
			PQgetvalue(res, 0, 1)[0] ? ", database " : "", PQgetvalue(res, 0, 1),
			getbool(res, 0, 2) ? ", active" : ", inactive", ctx->cfg->name);
		free(fix);
		free(lit);
	}
	PQclear(res);
}

/* Collect column 0 of a one-column query into names; false on error. */
static bool
query_names(CheckCtx *ctx, Server *s, const char *check, const char *sql,
			int nparams, const char *const *params, StrList *names)
{
	PGresult   *res = run_query(ctx, s, check, sql, nparams, params, -1, 1);

	if (res == NULL)
		return false;
	for (int i = 0; i < PQntuples(res); i++)
		strlist_add(names, PQgetvalue(res, i, 0));
	PQclear(res);
	return true;
}

/* Check 11: what ferry leaves behind, named so nothing is dropped silently. */
static void
check_not_migrated(CheckCtx *ctx)
{
	Server	   *s = &ctx->src;
	const char *params3[3] = {ctx->include_re, ctx->exclude_re, ctx->exclude_table_re};
	const char *name_param[1] = {ctx->cfg->name};
	StrList		names = {NULL, 0, 0};
	PGresult   *res;
	char	   *list;

	/* large objects */
	res = run_query(ctx, s, "large objects",
					"SELECT count(*) FROM pg_catalog.pg_largeobject_metadata", 0, NULL, 1, 1);
	if (res)
	{
		long		n = atol(PQgetvalue(res, 0, 0));

		if (n == 0)
			row(ctx, CHECK_OK, s, "large objects", NULL, "no large objects");
		else
			row(ctx, CHECK_WARNING, s, "large objects",
				"if they change after the clone, copy them again at switchover, once writes have stopped (on the target: SELECT lo_unlink(oid) FROM pg_largeobject_metadata; then pg_dump --data-only --blobs --exclude-table='*' <source> | psql <target>); or store them in bytea columns",
				"%ld large %s (pg_largeobject): copied once at clone, later changes not replicated (logical replication does not carry large objects)",
				n, plural((int) n, "object", "objects"));
		PQclear(res);
	}

	/* unlogged and foreign tables */
	for (int pass = 0; pass < 2; pass++)
	{
		strlist_free(&names);
		for (int i = 0; i < ctx->nrels; i++)
		{
			RelInfo    *r = &ctx->rels[i];

			if (pass == 0 ? (r->persistence == 'u' && (r->kind == 'r' || r->kind == 'p')) : r->kind == 'f')
				strlist_add(&names, r->qualname);
		}
		if (names.n == 0)
		{
			row(ctx, CHECK_OK, s, pass == 0 ? "unlogged tables" : "foreign tables", NULL,
				pass == 0 ? "no unlogged tables" : "no foreign tables");
			continue;
		}
		list = name_list(&names);
		if (pass == 0)
			row(ctx, CHECK_WARNING, s, "unlogged tables",
				"ALTER TABLE <table> SET LOGGED; on the source to replicate its changes, or re-copy it after switchover",
				"%d unlogged %s: data copied once at clone, later changes not replicated (unlogged tables are not in the WAL): %s",
				names.n, plural(names.n, "table", "tables"), list);
		else
			row(ctx, CHECK_WARNING, s, "foreign tables",
				"make sure the foreign server and user mappings work from the target (CREATE SERVER / CREATE USER MAPPING there)",
				"%d foreign %s: definition migrated, data stays on the remote server: %s",
				names.n, plural(names.n, "table", "tables"), list);
		free(list);
	}

	/* publications other than ferry's own */
	strlist_free(&names);
	if (query_names(ctx, s, "publications",
					"SELECT pubname FROM pg_catalog.pg_publication WHERE pubname <> $1 ORDER BY 1",
					1, name_param, &names))
	{
		list = name_list(&names);
		if (names.n == 0)
			row(ctx, CHECK_OK, s, "publications", NULL, "no other publications");
		else
			row(ctx, CHECK_WARNING, s, "publications",
				"recreate them on the target after switchover if its subscribers move too (CREATE PUBLICATION ...)",
				"%d %s not migrated: %s", names.n, plural(names.n, "publication", "publications"), list);
		free(list);
	}

	/* subscriptions in this database */
	strlist_free(&names);
	if (query_names(ctx, s, "subscriptions", SUBSCRIPTIONS_SQL, 0, NULL, &names))
	{
		list = name_list(&names);
		if (names.n == 0)
			row(ctx, CHECK_OK, s, "subscriptions", NULL, "no subscriptions");
		else
			row(ctx, CHECK_WARNING, s, "subscriptions",
				"recreate them on the target at switchover (CREATE SUBSCRIPTION ... WITH (copy_data = false)) and drop them on the source",
				"%d %s not migrated: %s", names.n, plural(names.n, "subscription", "subscriptions"), list);
		free(list);
	}

	/* event triggers */
	strlist_free(&names);
	if (query_names(ctx, s, "event triggers",
					"SELECT evtname FROM pg_catalog.pg_event_trigger ORDER BY 1", 0, NULL, &names))
	{
		list = name_list(&names);
		if (names.n == 0)
			row(ctx, CHECK_OK, s, "event triggers", NULL, "no event triggers");
		else
			row(ctx, CHECK_WARNING, s, "event triggers",
				"recreate them on the target as a superuser (CREATE EVENT TRIGGER ...)",
				"%d event %s not migrated: %s", names.n, plural(names.n, "trigger", "triggers"), list);
		free(list);
	}

	/* settings of the database */
	strlist_free(&names);
	if (query_names(ctx, s, "database settings", DATABASE_SETTINGS_SQL, 0, NULL, &names))
	{
		list = name_list(&names);
		if (names.n == 0)
			row(ctx, CHECK_OK, s, "database settings", NULL, "no settings on the database");
		else
			row(ctx, CHECK_WARNING, s, "database settings",
				"set them on the target database (ALTER DATABASE <target db> SET name = value; ALTER ROLE <role> IN DATABASE <target db> SET ... for a role's)",
				"%d database %s not migrated: %s", names.n, plural(names.n, "setting", "settings"), list);
		free(list);
	}

	/* tablespaces */
	strlist_free(&names);
	res = run_query(ctx, s, "tablespaces", TABLESPACES_SQL, 2, params3, -1, 3);
	if (res)
	{
		StrList		spcs = {NULL, 0, 0};

		for (int i = 0; i < PQntuples(res); i++)
		{
			char	   *q = qualified_name(PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));

			strlist_add(&names, q);
			free(q);
			if (!strlist_has(&spcs, PQgetvalue(res, i, 2)))
				strlist_add(&spcs, PQgetvalue(res, i, 2));
		}
		if (s->tablespace && strcmp(s->tablespace, "pg_default") != 0 && !strlist_has(&spcs, s->tablespace))
			strlist_add(&spcs, s->tablespace);
		if (spcs.n == 0)
			row(ctx, CHECK_OK, s, "tablespaces", NULL, "everything is in the default tablespace");
		else
		{
			char	   *sl = name_list(&spcs);

			list = name_list(&names);
			row(ctx, CHECK_WARNING, s, "tablespaces",
				"nothing to do if the target's default tablespace is right; otherwise move objects afterwards (ALTER TABLE ... SET TABLESPACE)",
				"tablespaces %s are not used on the target: ferry restores into its default tablespace%s%s",
				sl, names.n ? "; objects placed in them: " : "", names.n ? list : "");
			free(list);
			free(sl);
		}
		strlist_free(&spcs);
		PQclear(res);
	}
	strlist_free(&names);
}

/* --- pg_dump -------------------------------------------------------------- */

/*
 * Run `path --version` and parse "pg_dump (PostgreSQL) 15.4 ...". Sets
 * *code (major_code form) and *version (owned) on success; otherwise
 * *why (owned) says what went wrong.
 */
static bool
program_version(const char *path, int *code, char **version, char **why)
{
	const char *tmpdir = getenv("TMPDIR");
	char	   *tmp = xasprintf("%s/ferry-check-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
	char	   *argv[3] = {(char *) path, (char *) "--version", NULL};
	char	   *err = NULL;
	char		buf[256] = "";
	const char *p;
	int			fd = mkstemp(tmp);
	int			rc;
	int			maj = 0,
				min = 0;
	bool		ok = false;

	if (fd < 0)
	{
		*why = xasprintf("could not create a temporary file in %s", tmpdir ? tmpdir : "/tmp");
		free(tmp);
		return false;
	}
	close(fd);
	rc = proc_run(argv, NULL, tmp, pg_interrupted, &err);
	if (rc != 0)
	{
		*why = xasprintf("could not run %s%s%s", path, err && err[0] ? ": " : "", err ? err : "");
		goto cleanup;
	}
	{
		FILE	   *f = fopen(tmp, "r");

		if (f)
		{
			size_t		n = fread(buf, 1, sizeof(buf) - 1, f);

			buf[n] = '\0';
			fclose(f);
		}
	}
	p = strstr(buf, "(PostgreSQL) ");
	if (p == NULL || sscanf(p + 13, "%d.%d", &maj, &min) < 1 || maj <= 0)
	{
		*why = xasprintf("%s --version printed something unexpected", path);
		goto cleanup;
	}
	*code = maj >= 10 ? maj * 100 : maj * 100 + min;
	*version = xstrndup(p + 13, strcspn(p + 13, " \n"));
	ok = true;

cleanup:
	unlink(tmp);
	free(tmp);
	free(err);
	return ok;
}

/* Check 12: pg_dump and pg_restore on this machine at least the source's version. */
static void
check_pg_dump(CheckCtx *ctx)
{
	Server	   *s = &ctx->src;
	int			src_code = major_code(s->version_num);
	int			tgt_code = ctx->tgt.conn ? major_code(ctx->tgt.version_num) : 0;
	char		smaj[16],
				tmaj[16] = "";
	const char *progs[2] = {"pg_dump", "pg_restore"};
	char	   *found[2] = {NULL, NULL};
	char	   *fix;

	major_text(src_code, smaj, sizeof(smaj));
	if (tgt_code > 0)
		major_text(tgt_code, tmaj, sizeof(tmaj));
	fix = tgt_code >= src_code
		? xasprintf("install postgresql-client-%s (e.g. apt-get install postgresql-client-%s), or point --pg-bin at the bin directory of a PostgreSQL from %s to %s",
					tmaj, tmaj, smaj, tmaj)
		: xasprintf("install postgresql-client-%s (e.g. apt-get install postgresql-client-%s) or point --pg-bin at the bin directory of PostgreSQL %s or newer",
					smaj, smaj, smaj);
	for (int i = 0; i < 2; i++)
	{
		char	   *path = proc_find_pg_program(ctx->cfg->pg_bin, progs[i], src_code / 100, tgt_code / 100);
		char	   *version = NULL;
		char	   *why = NULL;
		int			code = 0;

		if (!program_version(path, &code, &version, &why))
		{
			row(ctx, CHECK_BLOCKING, s, "pg_dump", fix, "%s", why);
			free(why);
			free(path);
			goto cleanup;
		}
		if (tgt_code >= src_code && code > tgt_code)
		{
			row(ctx, CHECK_BLOCKING, s, "pg_dump", fix,
				"%s is version %s, newer than the target server (%s): what it writes can hold settings and syntax the target rejects (pg_dump 17 writes SET transaction_timeout, unknown before 17)",
				path, version, tmaj);
			free(version);
			free(path);
			goto cleanup;
		}
		if (code < src_code)
		{
			row(ctx, CHECK_BLOCKING, s, "pg_dump", fix,
				"%s is version %s, older than the source server (%s): it refuses to dump a newer server",
				path, version, smaj);
			free(version);
			free(path);
			goto cleanup;
		}
		found[i] = xasprintf("%s %s", path, version);
		free(version);
		free(path);
	}
	row(ctx, CHECK_OK, s, "pg_dump", NULL, "%s and %s (source %s%s%s)", found[0], found[1], smaj,
		tgt_code > 0 ? ", target " : "", tmaj);

cleanup:
	free(found[0]);
	free(found[1]);
	free(fix);
}

/* --- the target ----------------------------------------------------------- */

/*
 * Does ferry.migration hold a row for this migration? Fills ctx->state;
 * a state table that cannot be read is a blocking row (state_load logs why).
 */
static void
load_target_state(CheckCtx *ctx)
{
	Server	   *t = &ctx->tgt;
	PGresult   *res = run_query(ctx, t, "ferry state",
								"SELECT pg_catalog.to_regclass('ferry.migration') IS NOT NULL",
								0, NULL, 1, 1);

	if (res && getbool(res, 0, 0) && !state_load(t->conn, ctx->cfg->name, &ctx->state))
		row(ctx, CHECK_BLOCKING, t, "ferry state",
			"grant the target user SELECT on ferry.migration, or run ferry as the user that created it",
			"could not read ferry's state on the target (see the error logged above)");
	PQclear(res);
}

/* Check 9: the target may CREATE in the database and in schemas it already has. */
/*
 * The apply session runs with session_replication_role = replica, so that
 * user triggers and foreign keys do not fire for replicated rows; setting it
 * needs superuser (or a managed service's admin role that may).
 */
static void
check_target_apply_role(CheckCtx *ctx)
{
	Server	   *t = &ctx->tgt;
	PGresult   *res = pg_execute(t->conn, "BEGIN; SET LOCAL session_replication_role = replica", 0, NULL);
	bool		ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	char	   *e = ok ? NULL : pg_result_error_text(res, t->conn);

	PQclear(res);
	res = pg_execute(t->conn, "ROLLBACK", 0, NULL);
	PQclear(res);
	if (ok)
		row(ctx, CHECK_OK, t, "apply role", NULL,
			"may set session_replication_role = replica (replicated rows fire no triggers or foreign keys)");
	else if (pg_caps(t->conn).grant_set_parameter)
	{
		char	   *user = check_ident(t->user);
		char	   *fix = xasprintf("as a superuser on the target: GRANT SET ON PARAMETER session_replication_role TO %s; "
									"(on a managed service its admin role may already: e.g. rds_superuser, azure_pg_admin)", user);

		row(ctx, CHECK_BLOCKING, t, "apply role", fix,
			"cannot set session_replication_role = replica, which applying changes needs: %s", e);
		free(fix);
		free(user);
	}
	else
		row(ctx, CHECK_BLOCKING, t, "apply role",
			"connect to the target as a superuser, or on a managed service as its admin role that may set session_replication_role (e.g. rds_superuser, azure_pg_admin)",
			"cannot set session_replication_role = replica, which applying changes needs: %s", e);
	free(e);
}

/*
 * Warning: may the target user use a replication origin? Without one apply
 * still works (the position row alone, and a logical message marks its
 * transactions for reverse replication, apply.h), a little slower.
 */
static void
check_target_origin(CheckCtx *ctx)
{
	Server	   *t = &ctx->tgt;
	PGresult   *res;
	bool		ok;

	if (t->superuser)
	{
		row(ctx, CHECK_OK, t, "replication origin", NULL, "role %s is a superuser and may use replication origins", t->user);
		return;
	}
	if (!pg_caps_for(t->version_num).origin_grant)
	{
		/*
		 * No GRANT makes them usable, and the mark that replaces the origin
		 * is a logical message, which pgoutput before 14 (the target
		 * publishes the reverse stream) never sends.
		 */
		row(ctx, CHECK_WARNING, t, "replication origin",
			"connect to the target as a superuser from ferry start on, or switch over with --no-reverse (no rollback then)",
			"role %s may not use replication origins, which before PostgreSQL 14 only a superuser may: apply keeps its position in ferry.apply_progress alone, and reverse replication could not tell the changes it applied here from the application's (pgoutput before 14 sends no logical messages, its other mark), so the switchover will refuse reverse replication",
			t->user);
		return;
	}
	res = pg_execute(t->conn,
					 "SELECT bool_and(pg_catalog.has_function_privilege(f, 'EXECUTE'))"
					 "  FROM unnest(ARRAY['pg_catalog.pg_replication_origin_create(text)',"
					 "                    'pg_catalog.pg_replication_origin_drop(text)',"
					 "                    'pg_catalog.pg_replication_origin_oid(text)',"
					 "                    'pg_catalog.pg_replication_origin_session_setup(text)',"
					 "                    'pg_catalog.pg_replication_origin_xact_setup(pg_lsn, timestamp with time zone)',"
					 "                    'pg_catalog.pg_replication_origin_progress(text, boolean)']::pg_catalog.regprocedure[]) f",
					 0, NULL);
	ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && getbool(res, 0, 0);
	PQclear(res);
	if (ok)
		row(ctx, CHECK_OK, t, "replication origin", NULL, "role %s may use a replication origin for the applied position", t->user);
	else
	{
		char	   *user = check_ident(t->user);
		char	   *fix = xasprintf("as a superuser on the target: GRANT EXECUTE ON FUNCTION pg_catalog.pg_replication_origin_create(text),"
									" pg_catalog.pg_replication_origin_drop(text), pg_catalog.pg_replication_origin_oid(text),"
									" pg_catalog.pg_replication_origin_session_setup(text),"
									" pg_catalog.pg_replication_origin_xact_setup(pg_lsn, timestamp with time zone),"
									" pg_catalog.pg_replication_origin_progress(text, boolean) TO %s;", user);

		row(ctx, CHECK_WARNING, t, "replication origin", fix,
			"role %s may not use replication origins: apply keeps its position in ferry.apply_progress alone and marks its transactions with a logical message for reverse replication (a little more work per transaction)",
			t->user);
		free(fix);
		free(user);
	}
}

/*
 * Warning: may the user freeze this server's writes as the switchover (on
 * the source) or the rollback (on the target) does (freeze.h)? It must see
 * and end the application's sessions, set the database read-only (its
 * owner) and lock every table; on the target, reverse replication needs a
 * slot too (REPLICATION). Without them start works and those commands
 * refuse before freezing anything; here each missing right is named with
 * its GRANT, so the operator learns it before the day of the switchover.
 */
static void
check_freeze_rights(CheckCtx *ctx, Server *srv, const char *check, const char *command)
{
	PGresult   *res;
	char	   *user = check_ident(srv->user);
	char	   *db = check_ident(srv->dbname);
	StrBuf		fix,
				lacks;
	StrList		unlockable = {NULL, 0, 0};

	if (srv->superuser)
	{
		row(ctx, CHECK_OK, srv, check, NULL, "role %s is a superuser and may freeze writes for %s", srv->user, command);
		goto out;
	}
	res = pg_execute(srv->conn,
					 "SELECT pg_catalog.pg_has_role('pg_read_all_stats', 'USAGE'),"
					 "       pg_catalog.pg_has_role('pg_signal_backend', 'USAGE'),"
					 "       pg_catalog.pg_has_role(d.datdba, 'USAGE')"
					 "  FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()", 0, NULL);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		PQclear(res);
		goto out;
	}
	strbuf_init(&fix);
	strbuf_init(&lacks);
	if (!getbool(res, 0, 0) || !getbool(res, 0, 1))
	{
		const char *r = !getbool(res, 0, 0) && !getbool(res, 0, 1) ? "pg_read_all_stats, pg_signal_backend"
			: !getbool(res, 0, 0) ? "pg_read_all_stats" : "pg_signal_backend";

		strbuf_addf(&fix, "GRANT %s TO %s; ", r, user);
		strbuf_addf(&lacks, "%s (to see and end the application's sessions)", r);
	}
	if (!getbool(res, 0, 2))
	{
		strbuf_addf(&fix, "ALTER DATABASE %s OWNER TO %s; (or set --freeze hook) ", db, user);
		strbuf_addf(&lacks, "%sownership of database %s (to set it read-only)", lacks.len ? ", " : "", srv->dbname);
	}
	PQclear(res);
	if (srv == &ctx->src)
		for (int i = 0; i < ctx->nrels; i++)
			if (!ctx->rels[i].lock_ok && !ctx->rels[i].owner_ok)
				strlist_add(&unlockable, ctx->rels[i].qualname);
	if (unlockable.n > 0)
	{
		char	   *names = name_list(&unlockable);

		strbuf_addf(&fix, "GRANT pg_write_all_data TO %s; (or GRANT UPDATE ON those tables) ", user);
		strbuf_addf(&lacks, "%sthe right to lock %d %s (%s)", lacks.len ? ", " : "", unlockable.n,
					plural(unlockable.n, "table", "tables"), names);
		free(names);
	}
	if (srv == &ctx->src)
	{
		/* reverse replication applies on the source as this user */
		bool		srr;

		res = pg_execute(srv->conn, "BEGIN; SET LOCAL session_replication_role = replica", 0, NULL);
		srr = PQresultStatus(res) == PGRES_COMMAND_OK;
		PQclear(res);
		PQclear(pg_execute(srv->conn, "ROLLBACK", 0, NULL));
		if (!srr && !pg_caps_for(srv->version_num).grant_set_parameter)
		{
			/* no GRANT for it before 15 */
			strbuf_addf(&fix, "connect to the source as a superuser for the switchover and the reverse replication after it (PostgreSQL %s has no GRANT SET ON PARAMETER, which came in 15; or switch over with --no-reverse: no rollback then) ",
						srv->version);
			strbuf_addf(&lacks, "%sthe right to set session_replication_role, which before PostgreSQL 15 only a superuser has (reverse replication applies here after the switchover)",
						lacks.len ? ", " : "");
		}
		else if (!srr)
		{
			strbuf_addf(&fix, "as a superuser: GRANT SET ON PARAMETER session_replication_role TO %s; (or switch over with --no-reverse: no rollback then) ", user);
			strbuf_addf(&lacks, "%sthe right to set session_replication_role (reverse replication applies here after the switchover)",
						lacks.len ? ", " : "");
		}
	}
	if (srv == &ctx->tgt && !srv->replication)
	{
		strbuf_addf(&fix, "ALTER ROLE %s WITH REPLICATION; (on Amazon RDS/Aurora: GRANT rds_replication TO %s;) ", user, user);
		strbuf_addf(&lacks, "%sREPLICATION (for the reverse replication slot that makes a rollback possible)",
					lacks.len ? ", " : "");
	}
	if (lacks.len == 0)
		row(ctx, CHECK_OK, srv, check, NULL, "role %s may freeze writes here for %s", srv->user, command);
	else
	{
		while (fix.len > 0 && fix.data[fix.len - 1] == ' ')
			fix.data[--fix.len] = '\0';
		row(ctx, CHECK_WARNING, srv, check, fix.data,
			"role %s lacks what %s needs here (it refuses before freezing anything): %s", srv->user, command, lacks.data);
	}
	strbuf_release(&fix);
	strbuf_release(&lacks);
out:
	strlist_free(&unlockable);
	free(user);
	free(db);
}

static void
check_target_create(CheckCtx *ctx)
{
	Server	   *t = &ctx->tgt;
	StrList		denied = {NULL, 0, 0};
	char	   *user = check_ident(t->user);
	StrBuf		fix;

	strbuf_init(&fix);
	if (!t->create_db)
	{
		char	   *db = check_ident(t->dbname);

		strbuf_addf(&fix, "GRANT CREATE ON DATABASE %s TO %s; ", db, user);
		free(db);
	}
	if (ctx->have_rels)
	{
		char	   *arr = pg_text_array(&ctx->schemas);
		const char *params[1] = {arr};
		PGresult   *res = run_query(ctx, t, "create privilege", TARGET_SCHEMA_PRIVS_SQL, 1, params, -1, 3);

		free(arr);
		if (res == NULL)
			goto cleanup;
		for (int i = 0; i < PQntuples(res); i++)
		{
			char	   *n;

			if (getbool(res, i, 2))
				continue;
			n = check_ident(PQgetvalue(res, i, 0));
			strlist_add(&denied, PQgetvalue(res, i, 0));
			strbuf_addf(&fix, "GRANT CREATE ON SCHEMA %s TO %s; ", n, user);
			free(n);
		}
		PQclear(res);
	}
	if (t->create_db && denied.n == 0)
		row(ctx, CHECK_OK, t, "create privilege", NULL,
			"role %s may create schemas and tables in database %s", t->user, t->dbname);
	else
	{
		char	   *names = name_list(&denied);

		strbuf_addstr(&fix, "(as the owner or a superuser)");
		row(ctx, CHECK_BLOCKING, t, "create privilege", fix.data,
			"role %s lacks CREATE on %s%s%s%s%s", t->user,
			t->create_db ? "" : "database ", t->create_db ? "" : t->dbname,
			!t->create_db && denied.n ? " and on " : "",
			denied.n ? plural(denied.n, "schema ", "schemas ") : "", denied.n ? names : "");
		free(names);
	}

cleanup:
	strbuf_release(&fix);
	strlist_free(&denied);
	free(user);
}

/*
 * Check 9: the target is empty, or holds this migration's own state (a
 * resumed clone). Relations the source also has are blocking, and so are
 * other relations (tables, views, sequences, foreign tables: a fresh clone
 * refuses a target that has any, so check must not call it ready); other
 * user objects (schemas, functions, types) are a warning.
 */
static void
check_target_empty(CheckCtx *ctx)
{
	Server	   *t = &ctx->tgt;
	StrList		nsps = {NULL, 0, 0};
	StrList		rels = {NULL, 0, 0};
	StrList		conflicts = {NULL, 0, 0};
	StrList		others = {NULL, 0, 0};
	StrList		other_rels = {NULL, 0, 0};
	char	   *a1 = NULL;
	char	   *a2 = NULL;
	PGresult   *res = NULL;
	bool		resume = ctx->state.exists;

	if (ctx->have_rels)
	{
		const char *params[2];

		for (int i = 0; i < ctx->nrels; i++)
		{
			strlist_add(&nsps, ctx->rels[i].nsp);
			strlist_add(&rels, ctx->rels[i].rel);
		}
		a1 = pg_text_array(&nsps);
		a2 = pg_text_array(&rels);
		params[0] = a1;
		params[1] = a2;
		res = run_query(ctx, t, "target empty", TARGET_CONFLICTS_SQL, 2, params, -1, 2);
		if (res == NULL)
			goto cleanup;
		for (int i = 0; i < PQntuples(res); i++)
		{
			char	   *q = qualified_name(PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));

			strlist_add(&conflicts, q);
			free(q);
		}
		PQclear(res);
		res = NULL;
	}
	if (resume)
	{
		/* a resumed clone: what it made so far is expected */
		row(ctx, CHECK_OK, t, "target empty", NULL,
			"the target holds the state of migration %s (phase %s) and %d of the source's relations: ferry clone resumes",
			ctx->cfg->name, ctx->state.phase, conflicts.n);
		goto cleanup;
	}
	if (conflicts.n > 0)
	{
		char	   *names = name_list(&conflicts);

		row(ctx, CHECK_BLOCKING, t, "target empty",
			conflicts.n == 1 ? "drop it or point --target at an empty database (createdb -T template0 newdb)"
			: "drop them or point --target at an empty database (createdb -T template0 newdb)",
			"target already has %s %s (%d of the source's relations): restoring the schema would fail",
			plural(conflicts.n, "table", "tables"), names, conflicts.n);
		free(names);
	}
	res = run_query(ctx, t, "target empty", TARGET_OBJECTS_SQL, 0, NULL, -1, 3);
	if (res == NULL)
		goto cleanup;
	for (int i = 0; i < PQntuples(res); i++)
	{
		const char *kind = PQgetvalue(res, i, 0);
		bool		is_rel = strcmp(kind, "schema") != 0 && strcmp(kind, "function") != 0 &&
			strcmp(kind, "type") != 0;
		char	   *q = strcmp(kind, "schema") == 0 ? check_ident(PQgetvalue(res, i, 2))
			: qualified_name(PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));
		char	   *item;

		/* already reported above */
		if (!(is_rel && strlist_has(&conflicts, q)))
		{
			item = xasprintf("%s %s", kind, q);
			strlist_add(is_rel ? &other_rels : &others, item);
			free(item);
		}
		free(q);
	}
	if (other_rels.n > 0)
	{
		char	   *names = name_list(&other_rels);

		row(ctx, CHECK_BLOCKING, t, conflicts.n ? "other objects" : "target empty",
			"drop them or point --target at an empty database (createdb -T template0 newdb)",
			"the target database is not empty: %d %s that the source does not have: %s (ferry clone restores only into a database without tables, views or sequences)",
			other_rels.n, plural(other_rels.n, "relation", "relations"), names);
		free(names);
	}
	if (others.n > 0)
	{
		char	   *names = name_list(&others);

		row(ctx, CHECK_WARNING, t, conflicts.n ? "other objects" : "target empty",
			"point --target at an empty database (createdb -T template0 newdb) unless these belong there",
			"the target database is not empty: %d unrelated %s: %s", others.n,
			plural(others.n, "object", "objects"), names);
		free(names);
	}
	else if (conflicts.n == 0 && other_rels.n == 0)
		row(ctx, CHECK_OK, t, "target empty", NULL, "no user objects in database %s", t->dbname);

cleanup:
	PQclear(res);
	free(a1);
	free(a2);
	strlist_free(&nsps);
	strlist_free(&rels);
	strlist_free(&conflicts);
	strlist_free(&others);
	strlist_free(&other_rels);
}

/* Check 8: every extension installed on the source is available on the target. */
static void
check_extensions(CheckCtx *ctx)
{
	Server	   *t = &ctx->tgt;
	StrList		exts = {NULL, 0, 0};
	StrList		missing = {NULL, 0, 0};
	PGresult   *res;
	char	   *arr;
	const char *params[1];
	char		tmaj[16];

	if (!query_names(ctx, &ctx->src, "extensions", EXTENSIONS_SQL, 0, NULL, &exts))
		return;
	arr = pg_text_array(&exts);
	params[0] = arr;
	res = run_query(ctx, t, "extensions", TARGET_EXTENSIONS_SQL, 1, params, -1, 2);
	free(arr);
	if (res == NULL)
		goto cleanup;
	for (int i = 0; i < PQntuples(res); i++)
		if (!getbool(res, i, 1))
			strlist_add(&missing, PQgetvalue(res, i, 0));
	PQclear(res);

	major_text(major_code(t->version_num), tmaj, sizeof(tmaj));
	if (missing.n == 0)
	{
		char	   *names = name_list(&exts);

		row(ctx, CHECK_OK, t, "extensions", NULL, exts.n ? "the target can create every extension of the source: %s"
			: "no extensions to create%s", names);
		free(names);
	}
	else
	{
		StrBuf		fix;
		char	   *names = name_list(&missing);

		strbuf_init(&fix);
		for (int i = 0; i < missing.n && i < NAMES_SHOWN; i++)
		{
			char	   *pkg = xstrdup(missing.items[i]);

			for (char *p = pkg; *p; p++)
				if (*p == '_')
					*p = '-';
			strbuf_addf(&fix, "%sinstall the package providing extension %s on the target, e.g. postgresql-%s-%s",
						i ? "; " : "", missing.items[i], tmaj, pkg);
			free(pkg);
		}
		strbuf_addstr(&fix, " (ferry creates the extensions itself)");
		row(ctx, CHECK_BLOCKING, t, "extensions", fix.data,
			"%d %s installed on the source %s not available on the target: %s",
			missing.n, plural(missing.n, "extension", "extensions"), plural(missing.n, "is", "are"), names);
		strbuf_release(&fix);
		free(names);
	}

cleanup:
	strlist_free(&exts);
	strlist_free(&missing);
}

/*
 * Check 11, roles: roles are not copied. Owners must exist on the target
 * and the target user must be able to become them (pg_restore runs ALTER
 * ... OWNER TO), unless --no-owner; grantees must exist unless
 * --no-privileges.
 */
static void
check_roles(CheckCtx *ctx)
{
	const FerryConfig *cfg = ctx->cfg;
	Server	   *t = &ctx->tgt;
	const char *params[3] = {ctx->include_re, ctx->exclude_re, ctx->exclude_table_re};
	PGresult   *res;
	StrList		all = {NULL, 0, 0};
	StrList		owners = {NULL, 0, 0};
	StrList		missing = {NULL, 0, 0};	/* needed and absent */
	StrList		notmember = {NULL, 0, 0};	/* owners the target user cannot become */
	StrList		notmember_super = {NULL, 0, 0};	/* the same, superusers on the target */
	char	   *arr;
	const char *tparams[1];

	res = run_query(ctx, &ctx->src, "roles", ROLES_SQL, 3, params, -1, 3);
	if (res == NULL)
		return;
	for (int i = 0; i < PQntuples(res); i++)
	{
		bool		owns = getbool(res, i, 1);
		bool		granted = getbool(res, i, 2);

		/* with both options set, pg_restore names no roles at all */
		if ((owns && !cfg->no_owner) || (granted && !cfg->no_privileges))
			strlist_add(&all, PQgetvalue(res, i, 0));
		if (owns && !cfg->no_owner)
			strlist_add(&owners, PQgetvalue(res, i, 0));
	}
	PQclear(res);

	arr = pg_text_array(&all);
	tparams[0] = arr;
	res = run_query(ctx, t, "roles", TARGET_ROLES_SQL, 1, tparams, -1, 4);
	free(arr);
	if (res == NULL)
		goto cleanup;
	for (int i = 0; i < PQntuples(res); i++)
	{
		const char *name = PQgetvalue(res, i, 0);

		if (!getbool(res, i, 1))
			strlist_add(&missing, name);
		else if (!getbool(res, i, 2) && strlist_has(&owners, name))
			strlist_add(getbool(res, i, 3) ? &notmember_super : &notmember, name);
	}
	PQclear(res);

	if (missing.n == 0)
		row(ctx, CHECK_OK, t, "roles", NULL, "%s", all.n == 0
			? "no roles needed (owners and grants are not restored)"
			: "every role that owns or is granted migrated objects exists on the target");
	else
	{
		StrBuf		fix;
		char	   *names = name_list(&missing);

		strbuf_init(&fix);
		for (int i = 0; i < missing.n && i < NAMES_SHOWN; i++)
		{
			char	   *r = check_ident(missing.items[i]);

			strbuf_addf(&fix, "CREATE ROLE %s; ", r);
			free(r);
		}
		if (missing.n > NAMES_SHOWN)
			strbuf_addstr(&fix, "(and the others listed) ");
		strbuf_addf(&fix, "on the target (copy their attributes and passwords from the source: pg_dumpall --roles-only), or run with %s",
					cfg->no_owner ? "--no-privileges" : cfg->no_privileges ? "--no-owner" : "--no-owner --no-privileges");
		row(ctx, CHECK_BLOCKING, t, "roles", fix.data,
			"roles are not copied: %d %s that %s objects or %s in grants of the migrated schemas %s missing on the target: %s",
			missing.n, plural(missing.n, "role", "roles"), plural(missing.n, "owns", "own"),
			plural(missing.n, "appears", "appear"), plural(missing.n, "is", "are"), names);
		strbuf_release(&fix);
		free(names);
	}

	if (notmember.n + notmember_super.n > 0)
	{
		char	   *user = check_ident(t->user);
		StrList		both = {NULL, 0, 0};
		StrBuf		fix;
		char	   *names;

		strbuf_init(&fix);
		for (int i = 0; i < notmember.n; i++)
		{
			char	   *r = check_ident(notmember.items[i]);

			strlist_add(&both, notmember.items[i]);
			strbuf_addf(&fix, "GRANT %s TO %s; ", r, user);
			free(r);
		}
		for (int i = 0; i < notmember_super.n; i++)
			strlist_add(&both, notmember_super.items[i]);
		if (notmember_super.n > 0)
			strbuf_addf(&fix, "%sonnect to the target as a superuser (objects owned by superuser %s), ",
						notmember.n ? "on the target; or c" : "c",
						notmember_super.items[0]);
		else
			strbuf_addstr(&fix, "on the target, ");
		strbuf_addstr(&fix, "or run with --no-owner (the target user then owns everything)");
		names = name_list(&both);
		row(ctx, CHECK_BLOCKING, t, "role membership", fix.data,
			"role %s on the target cannot give objects to their owners (ALTER ... OWNER TO needs membership in the owning role): %s",
			t->user, names);
		strbuf_release(&fix);
		strlist_free(&both);
		free(names);
		free(user);
	}

	/*
	 * ALTER ... OWNER TO, unless run by a superuser, needs the new owner
	 * to have CREATE on the object's schema. The restore gives each
	 * schema's privileges first (schema_hoist_schema_acls), so what the
	 * source grants is in place; on a schema the target already has
	 * (public), an owner the source does not let create there either
	 * (a superuser put the object there) needs it granted by hand.
	 */
	if (!t->superuser && owners.n > 0 && ctx->schemas.n > 0)
	{
		char	   *oarr = pg_text_array(&owners);
		char	   *sarr = pg_text_array(&ctx->schemas);
		const char *p2[2] = {oarr, sarr};
		PGresult   *r1 = run_query(ctx, &ctx->src, "schema privileges",
									"SELECT COALESCE(pg_catalog.array_agg(o ORDER BY s, o), '{}')::text,"
									"       COALESCE(pg_catalog.array_agg(s ORDER BY s, o), '{}')::text"
									"  FROM unnest($1::text[]) o, unnest($2::text[]) s"
									" WHERE $3 OR NOT CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = o)"
									"   AND EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = s)"
									"   THEN pg_catalog.has_schema_privilege(o, s, 'CREATE') ELSE false END",
									3, (const char *[]) {oarr, sarr, cfg->no_privileges ? "true" : "false"}, 1, 2);
		PGresult   *r2 = NULL;

		if (r1 != NULL)
		{
			p2[0] = PQgetvalue(r1, 0, 0);
			p2[1] = PQgetvalue(r1, 0, 1);
			r2 = run_query(ctx, t, "schema privileges",
						   "SELECT o, s FROM unnest($1::text[], $2::text[]) x(o, s)"
						   " WHERE CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = s)"
						   "   AND EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = o AND NOT rolsuper)"
						   "   THEN NOT pg_catalog.has_schema_privilege(o, s, 'CREATE') ELSE false END ORDER BY 2, 1",
						   2, p2, -1, 2);
		}

		if (r2 != NULL && PQntuples(r2) > 0)
		{
			StrBuf		fix;
			StrBuf		what;

			strbuf_init(&fix);
			strbuf_init(&what);
			for (int i = 0; i < PQntuples(r2); i++)
			{
				char	   *o = check_ident(PQgetvalue(r2, i, 0));
				char	   *s = check_ident(PQgetvalue(r2, i, 1));

				strbuf_addf(&fix, "GRANT CREATE ON SCHEMA %s TO %s; ", s, o);
				strbuf_addf(&what, "%s%s on %s", i ? ", " : "", PQgetvalue(r2, i, 0), PQgetvalue(r2, i, 1));
				free(o);
				free(s);
			}
			strbuf_addstr(&fix, "on the target, or run with --no-owner (the target user then owns everything)");
			row(ctx, CHECK_BLOCKING, t, "schema privileges", fix.data,
				"a new owner needs CREATE on the object's schema, which these lack on the target and are not granted on the source either: %s",
				what.data);
			strbuf_release(&fix);
			strbuf_release(&what);
		}
		else if (r2 != NULL)
			row(ctx, CHECK_OK, t, "schema privileges", NULL, "the objects' owners may create in the target's existing schemas (granted there, or by the source's grants, restored first)");
		PQclear(r1);
		PQclear(r2);
		free(oarr);
		free(sarr);
	}

cleanup:
	strlist_free(&all);
	strlist_free(&owners);
	strlist_free(&missing);
	strlist_free(&notmember);
	strlist_free(&notmember_super);
}

/* Check 12: encoding (and collation) of the two databases. Warnings only. */
static void
check_encoding(CheckCtx *ctx)
{
	Server	   *s = &ctx->src;
	Server	   *t = &ctx->tgt;
	char	   *fix;

	if (strcmp(s->encoding, t->encoding) != 0)
	{
		fix = xasprintf("create the target database with the source's encoding: createdb -T template0 -E %s --locale=%s %s",
						s->encoding, s->collate, t->dbname);
		row(ctx, CHECK_WARNING, t, "encoding", fix,
			"target database encoding %s differs from the source's %s: text that does not convert fails to copy",
			t->encoding, s->encoding);
		free(fix);
	}
	else
		row(ctx, CHECK_OK, t, "encoding", NULL, "%s on both", t->encoding);

	if (strcmp(s->collate, t->collate) != 0 || strcmp(s->ctype, t->ctype) != 0)
	{
		fix = xasprintf("create the target database with the source's locale if the sort order matters: createdb -T template0 -E %s --lc-collate=%s --lc-ctype=%s %s",
						s->encoding, s->collate, s->ctype, t->dbname);
		row(ctx, CHECK_WARNING, t, "locale", fix,
			"target database locale (collate %s, ctype %s) differs from the source's (collate %s, ctype %s): text sorts and compares differently",
			t->collate, t->ctype, s->collate, s->ctype);
		free(fix);
	}
	else
		row(ctx, CHECK_OK, t, "locale", NULL, "collate %s, ctype %s on both", t->collate, t->ctype);
}

/* --- driver --------------------------------------------------------------- */

bool
check_run(const FerryConfig *cfg, CheckReport *report)
{
	CheckCtx	ctx;
	Server	   *s = &ctx.src;
	Server	   *t = &ctx.tgt;
	bool		src_ok;
	bool		tgt_ok;
	bool		own_slot = false;

	memset(&ctx, 0, sizeof(ctx));
	ctx.cfg = cfg;
	ctx.report = report;
	s->label = "source";
	s->conninfo = cfg->source;
	t->label = "target";
	t->conninfo = cfg->target;
	ctx.include_re = pattern_array(&cfg->include_schemas, false);
	ctx.exclude_re = pattern_array(&cfg->exclude_schemas, false);
	ctx.exclude_table_re = pattern_array(&cfg->exclude_tables, true);

	/* 1. both connections first, so that their rows lead the report */
	check_connect(&ctx, s);
	if (!pg_interrupted())
		check_connect(&ctx, t);
	if (t->conn)
		load_target_state(&ctx);

#define STOP_IF_INTERRUPTED() do { if (pg_interrupted()) goto done; } while (0)

	/* the source */
	src_ok = s->conn != NULL && check_source_version(&ctx) && load_server_info(&ctx, s);
	STOP_IF_INTERRUPTED();
	if (src_ok)
	{
		const char *params[1] = {cfg->name};
		PGresult   *res = pg_execute(s->conn, SLOT_SQL, 1, params);

		/* a resumed migration already has its slot: it needs no free one */
		own_slot = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
			ctx.state.exists;
		PQclear(res);

		check_primary(&ctx, s);
		check_wal_level(&ctx, s);
		check_slots_and_senders(&ctx, s, own_slot);
		check_replication_privilege(&ctx);
		STOP_IF_INTERRUPTED();
		if (load_relations(&ctx))
		{
			check_select_privilege(&ctx);
			check_publication(&ctx);
			check_replica_identity(&ctx);
		}
		STOP_IF_INTERRUPTED();
		check_ferry_schema(&ctx);
		check_existing_slot(&ctx);
		ctx.not_migrated = true;
		check_not_migrated(&ctx);
		ctx.not_migrated = false;
		if (ctx.have_rels)
			check_freeze_rights(&ctx, s, "switchover rights", "ferry switchover");
		STOP_IF_INTERRUPTED();
		check_pg_dump(&ctx);
	}
	STOP_IF_INTERRUPTED();

	/* the target */
	tgt_ok = t->conn != NULL && load_server_info(&ctx, t);
	if (tgt_ok)
	{
		check_target_version(&ctx);
		check_session_pinning(&ctx, t);
		check_primary(&ctx, t);
		check_wal_level(&ctx, t);
		check_slots_and_senders(&ctx, t, false);
		STOP_IF_INTERRUPTED();
		check_target_create(&ctx);
		check_target_apply_role(&ctx);
		check_target_origin(&ctx);
		check_freeze_rights(&ctx, t, "rollback rights", "reverse replication and ferry rollback");
		check_target_empty(&ctx);
		STOP_IF_INTERRUPTED();
		if (src_ok)
		{
			check_extensions(&ctx);
			if (ctx.have_rels)
				check_roles(&ctx);
			check_encoding(&ctx);
		}
	}

done:
#undef STOP_IF_INTERRUPTED
	ctx_release(&ctx);
	return !pg_interrupted();
}
