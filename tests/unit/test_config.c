/*
 * test_config.c: unit tests for config.c: sizes, migration names, the YAML
 * config file (keys, filters, precedence, errors) and the environment.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "tap.h"

#define KB 1024LL
#define MB (1024LL * KB)
#define GB (1024LL * MB)
#define TB (1024LL * GB)

/* ------------------------------------------------------------------ */

static void
size_ok(const char *text, int64_t want)
{
	int64_t		got = -42;
	char		name[128];
	bool		r = config_parse_size(text, &got);

	snprintf(name, sizeof(name), "parse_size(\"%s\") succeeds", text);
	ok(r, name);
	snprintf(name, sizeof(name), "parse_size(\"%s\") = %lld", text, (long long) want);
	is_int(got, want, name);
}

static void
size_bad(const char *text, const char *why)
{
	int64_t		got = 4242;
	char		name[160];
	bool		r = config_parse_size(text, &got);

	snprintf(name, sizeof(name), "parse_size(\"%s\") fails (%s)", text ? text : "NULL", why);
	ok(!r, name);
	snprintf(name, sizeof(name), "parse_size(\"%s\") leaves the output alone", text ? text : "NULL");
	is_int(got, 4242, name);
}

static void
test_parse_size(void)
{
	size_ok("0", 0);
	size_ok("1048576", 1048576);
	size_ok("10b", 10);
	size_ok("10B", 10);
	size_ok("512kB", 512 * KB);
	size_ok("512KB", 512 * KB);
	size_ok("512kb", 512 * KB);
	size_ok("100MB", 100 * MB);
	size_ok("100mb", 100 * MB);
	size_ok("100Mb", 100 * MB);
	size_ok("2GB", 2 * GB);
	size_ok("2gb", 2 * GB);
	size_ok("2G", 2 * GB);
	size_ok("1TB", TB);
	size_ok("1tb", TB);
	size_ok("1.5GB", GB + GB / 2);
	size_ok("0.5MB", MB / 2);
	size_ok("2 GB", 2 * GB);
	size_ok("  2GB  ", 2 * GB);
	size_ok(" 100 MB ", 100 * MB);
	size_ok("8000000TB", 8000000LL * TB);

	size_bad(NULL, "NULL");
	size_bad("", "empty");
	size_bad("   ", "blank");
	size_bad("abc", "junk");
	size_bad("GB", "unit only");
	size_bad("10XB", "unknown unit");
	size_bad("10 MB x", "trailing junk");
	size_bad("1 G B", "split unit");
	size_bad("10kilobytes", "long unit");
	size_bad("1.5.5GB", "two decimal points");
	size_bad("-1", "negative");
	size_bad("-1GB", "negative with unit");
	size_bad(" -5MB", "negative after a space");
	size_bad("99999999999999999999", "overflow in bytes");
	size_bad("9999999999TB", "overflow in TB");
	size_bad("8589934592GB", "2^63 bytes");
	size_bad("8388608TB", "2^63 bytes in TB");
}

static void
test_format_size(void)
{
	char		buf[32];
	char		small[4];

	config_format_size(0, buf, sizeof(buf));
	is_str(buf, "0 B", "format 0");
	config_format_size(1023, buf, sizeof(buf));
	is_str(buf, "1023 B", "format 1023");
	config_format_size(1024, buf, sizeof(buf));
	is_str(buf, "1.0 kB", "format 1024");
	config_format_size(1536, buf, sizeof(buf));
	is_str(buf, "1.5 kB", "format 1536");
	config_format_size(100 * MB, buf, sizeof(buf));
	is_str(buf, "100.0 MB", "format 100MB");
	config_format_size(GB + GB / 2, buf, sizeof(buf));
	is_str(buf, "1.5 GB", "format 1.5GB");
	config_format_size(5 * TB, buf, sizeof(buf));
	is_str(buf, "5.0 TB", "format 5TB");
	config_format_size(2048 * TB, buf, sizeof(buf));
	is_str(buf, "2048.0 TB", "TB is the largest unit");
	memset(small, 'x', sizeof(small));
	config_format_size(GB + GB / 2, small, sizeof(small));
	is_str(small, "1.5", "a small buffer is truncated and terminated");

	/* what format prints, parse reads back (to the printed precision) */
	{
		int64_t		b = 0;

		config_format_size(2 * GB, buf, sizeof(buf));
		ok(config_parse_size(buf, &b) && b == 2 * GB, "format_size output parses back");
	}
}

static void
test_valid_name(void)
{
	char		n40[FERRY_NAME_MAXLEN + 1];
	char		n41[FERRY_NAME_MAXLEN + 2];

	memset(n40, 'a', sizeof(n40) - 1);
	n40[sizeof(n40) - 1] = '\0';
	memset(n41, 'a', sizeof(n41) - 1);
	n41[sizeof(n41) - 1] = '\0';

	ok(config_valid_name("ferry"), "name ferry");
	ok(config_valid_name("a"), "name a");
	ok(config_valid_name("app_2"), "name app_2");
	ok(config_valid_name("x9_y"), "name x9_y");
	ok(config_valid_name(n40), "name of 40 characters");
	ok(!config_valid_name(n41), "name of 41 characters is too long");
	ok(!config_valid_name(""), "empty name");
	ok(!config_valid_name("Bad"), "uppercase first letter");
	ok(!config_valid_name("bAd"), "uppercase inside");
	ok(!config_valid_name("1abc"), "leading digit");
	ok(!config_valid_name("_abc"), "leading underscore");
	ok(!config_valid_name("bad-name"), "dash");
	ok(!config_valid_name("Bad-Name"), "Bad-Name");
	ok(!config_valid_name("a b"), "space");
	ok(!config_valid_name("a.b"), "dot");
	ok(!config_valid_name("caf\xc3\xa9"), "non-ASCII letter");
	ok(!config_valid_name("a;drop"), "semicolon");
}

/* ------------------------------------------------------------------ */

static bool
load(FerryConfig *cfg, const char *yaml, char **err)
{
	*err = NULL;
	return config_load_string(cfg, yaml, strlen(yaml), err);
}

static void
test_load_all_keys(void)
{
	FerryConfig cfg;
	char	   *err = NULL;
	const char *yaml =
		"# a full config\n"
		"source: \"host=db1 dbname=app user=ferry password=pw\"\n"
		"target: postgresql://ferry@db2/app\n"
		"name: app_move\n"
		"pg-bin: /usr/lib/postgresql/15/bin\n"
		"jobs: 6\n"
		"index-jobs: 3\n"
		"split-tables-larger-than: 2GB\n"
		"no-owner: true\n"
		"no-privileges: yes\n"
		"filters:\n"
		"  include-schemas: [public, billing]\n"
		"  exclude-schemas:\n"
		"    - scratch\n"
		"    - tmp\n"
		"  exclude-tables: [public.audit_log]\n"
		"  exclude-table-data: public.sessions   # a scalar is a list of one\n";

	config_init(&cfg);
	ok(load(&cfg, yaml, &err), "full config loads");
	is_str(err, NULL, "no error message on success");
	is_str(cfg.source, "host=db1 dbname=app user=ferry password=pw", "source");
	is_str(cfg.target, "postgresql://ferry@db2/app", "target");
	is_str(cfg.name, "app_move", "name");
	is_str(cfg.pg_bin, "/usr/lib/postgresql/15/bin", "pg-bin");
	is_int(cfg.jobs, 6, "jobs");
	is_int(cfg.index_jobs, 3, "index-jobs");
	is_int(cfg.split_bytes, 2 * GB, "split-tables-larger-than");
	ok(cfg.no_owner, "no-owner");
	ok(cfg.no_privileges, "no-privileges (yes)");
	ok(cfg.include_schemas.n == 2, "two include-schemas");
	if (cfg.include_schemas.n == 2)
	{
		is_str(cfg.include_schemas.items[0], "public", "include-schemas[0]");
		is_str(cfg.include_schemas.items[1], "billing", "include-schemas[1]");
	}
	ok(cfg.exclude_schemas.n == 2, "two exclude-schemas (block list)");
	if (cfg.exclude_schemas.n == 2)
	{
		is_str(cfg.exclude_schemas.items[0], "scratch", "exclude-schemas[0]");
		is_str(cfg.exclude_schemas.items[1], "tmp", "exclude-schemas[1]");
	}
	ok(cfg.exclude_tables.n == 1 && strcmp(cfg.exclude_tables.items[0], "public.audit_log") == 0,
	   "exclude-tables");
	ok(cfg.exclude_table_data.n == 1 && strcmp(cfg.exclude_table_data.items[0], "public.sessions") == 0,
	   "exclude-table-data given as a scalar becomes a list of one");
	ok(cfg.config_file == NULL, "config_file untouched");
	config_release(&cfg);
}

/* pgbouncer: a list of maps (a fleet) or one map; the command line's list wins; the reverse config copies it */
static void
test_load_pgbouncer(void)
{
	FerryConfig cfg;
	FerryConfig *r;
	char	   *err = NULL;
	const char *yaml =
		"pgbouncer:\n"
		"  - admin: \"host=pgb1 port=6432 dbname=pgbouncer user=ferry\"\n"
		"    database: app\n"
		"    ini: /etc/pgbouncer/pgbouncer.ini\n"
		"  - admin: \"host=pgb2 port=6432 dbname=pgbouncer\"\n"
		"    repoint: ./repoint.sh\n"
		"pgbouncer-database: shop\n"
		"pgbouncer-target: \"host=10.0.0.6 port=5432 dbname=app\"\n"
		"pgbouncer_source: \"host=10.0.0.5\"\n"
		"pause-timeout: 9\n";

	config_init(&cfg);
	ok(load(&cfg, yaml, &err), "pgbouncer: as a list loads");
	is_int(cfg.n_pgbouncers, 2, "two poolers");
	if (cfg.n_pgbouncers == 2)
	{
		is_str(cfg.pgbouncers[0].admin, "host=pgb1 port=6432 dbname=pgbouncer user=ferry", "the first's admin");
		is_str(cfg.pgbouncers[0].database, "app", "its database");
		is_str(cfg.pgbouncers[0].ini, "/etc/pgbouncer/pgbouncer.ini", "its ini");
		is_str(cfg.pgbouncers[1].database, NULL, "the second has no database of its own");
		is_str(cfg.pgbouncers[1].repoint, "./repoint.sh", "its repoint command");
	}
	is_str(cfg.pgbouncer_database, "shop", "pgbouncer-database");
	is_str(cfg.pgbouncer_target, "host=10.0.0.6 port=5432 dbname=app", "pgbouncer-target");
	is_str(cfg.pgbouncer_source, "host=10.0.0.5", "pgbouncer_source");
	is_int(cfg.pause_timeout, 9, "pause-timeout");
	r = config_reversed(&cfg);
	ok(r->n_pgbouncers == 2 && r->pgbouncers != cfg.pgbouncers && strcmp(r->pgbouncers[1].repoint, "./repoint.sh") == 0,
	   "the reverse config has its own copy of the poolers");
	is_str(r->pgbouncer_target, "host=10.0.0.5", "and its target is the source's place");
	config_release(r);
	free(r);
	config_release(&cfg);

	config_init(&cfg);
	config_add_pgbouncer(&cfg, "host=cli dbname=pgbouncer");
	ok(load(&cfg, yaml, &err), "loads over a command-line pooler");
	ok(cfg.n_pgbouncers == 1 && strcmp(cfg.pgbouncers[0].admin, "host=cli dbname=pgbouncer") == 0,
	   "the command line's --pgbouncer replaces the file's list");
	config_release(&cfg);

	config_init(&cfg);
	ok(load(&cfg, "pgbouncer: {admin: \"host=one dbname=pgbouncer\", ini: /x.ini}\n", &err) && cfg.n_pgbouncers == 1,
	   "one map is a fleet of one");
	config_apply_defaults(&cfg);
	config_release(&cfg);
	config_init(&cfg);
	config_apply_defaults(&cfg);
	is_int(cfg.pause_timeout, 5, "pause-timeout defaults to 5 s");
	config_release(&cfg);
}

static void
test_load_underscores(void)
{
	FerryConfig cfg;
	char	   *err = NULL;
	const char *yaml =
		"pg_bin: /opt/pg/bin\n"
		"index_jobs: 2\n"
		"split_tables_larger_than: 500 MB\n"
		"no_owner: on\n"
		"no_privileges: false\n"
		"Jobs: 9\n"
		"filters:\n"
		"  include_schemas: [a]\n"
		"  exclude_schemas: [b]\n"
		"  exclude_tables: [c.d]\n"
		"  exclude_table_data: [e.f, 'g.*']\n";

	config_init(&cfg);
	ok(load(&cfg, yaml, &err), "config with underscore keys loads");
	is_str(err, NULL, "no error");
	is_str(cfg.pg_bin, "/opt/pg/bin", "pg_bin");
	is_int(cfg.index_jobs, 2, "index_jobs");
	is_int(cfg.split_bytes, 500 * MB, "split_tables_larger_than with a space before the unit");
	ok(cfg.no_owner, "no_owner: on");
	ok(!cfg.no_privileges, "no_privileges: false");
	is_int(cfg.jobs, 9, "key case does not matter (Jobs)");
	ok(cfg.include_schemas.n == 1 && cfg.exclude_schemas.n == 1 && cfg.exclude_tables.n == 1,
	   "underscore filter keys");
	ok(cfg.exclude_table_data.n == 2 && strcmp(cfg.exclude_table_data.items[1], "g.*") == 0,
	   "quoted list items");
	ok(cfg.source == NULL && cfg.target == NULL && cfg.name == NULL, "keys not in the file stay unset");
	config_release(&cfg);

	config_init(&cfg);
	ok(load(&cfg, "split-tables-larger-than: 0\n", &err), "split 0 loads");
	is_int(cfg.split_bytes, 0, "split 0 means never, not unset");
	config_apply_defaults(&cfg);
	is_int(cfg.split_bytes, 0, "defaults keep split 0");
	config_release(&cfg);

	config_init(&cfg);
	ok(load(&cfg, "", &err), "an empty file is fine");
	ok(load(&cfg, "# only a comment\n", &err), "a comment-only file is fine");
	ok(cfg.source == NULL && cfg.jobs == -1, "empty file sets nothing");
	config_release(&cfg);
}

static void
test_load_precedence(void)
{
	FerryConfig cfg;
	char	   *err = NULL;
	const char *yaml =
		"source: host=file-src\n"
		"target: host=file-tgt\n"
		"name: from_file\n"
		"pg-bin: /file/bin\n"
		"jobs: 2\n"
		"index-jobs: 2\n"
		"split-tables-larger-than: 5GB\n"
		"no-owner: false\n";

	/* cfg as the command line left it */
	config_init(&cfg);
	cfg.source = xstrdup("host=cli-src");
	cfg.name = xstrdup("from_cli");
	cfg.pg_bin = xstrdup("/cli/bin");
	cfg.jobs = 8;
	cfg.split_bytes = 0;
	cfg.no_owner = true;
	ok(load(&cfg, yaml, &err), "config loads over command-line values");
	is_str(cfg.source, "host=cli-src", "command-line source wins over the file");
	is_str(cfg.target, "host=file-tgt", "file target fills the unset target");
	is_str(cfg.name, "from_cli", "command-line name wins");
	is_str(cfg.pg_bin, "/cli/bin", "command-line pg-bin wins");
	is_int(cfg.jobs, 8, "command-line jobs wins");
	is_int(cfg.index_jobs, 2, "file index-jobs fills the unset value");
	is_int(cfg.split_bytes, 0, "command-line split 0 wins over the file");
	ok(cfg.no_owner, "no-owner: false in the file does not undo --no-owner");
	config_release(&cfg);

	/* environment before the file, as main() does */
	setenv("FERRY_SOURCE", "host=env-src", 1);
	setenv("FERRY_TARGET", "host=env-tgt", 1);
	setenv("FERRY_NAME", "from_env", 1);
	config_init(&cfg);
	cfg.target = xstrdup("host=cli-tgt");
	config_apply_env(&cfg);
	is_str(cfg.source, "host=env-src", "FERRY_SOURCE fills the source");
	is_str(cfg.target, "host=cli-tgt", "command line wins over FERRY_TARGET");
	is_str(cfg.name, "from_env", "FERRY_NAME fills the name");
	ok(load(&cfg, yaml, &err), "config loads after the environment");
	is_str(cfg.source, "host=env-src", "environment wins over the file");
	is_str(cfg.name, "from_env", "FERRY_NAME wins over the file");
	config_apply_defaults(&cfg);
	is_int(cfg.jobs, 2, "file jobs kept by the defaults");
	is_int(cfg.index_jobs, 2, "file index-jobs kept by the defaults");
	is_int(cfg.split_bytes, 5 * GB, "file split kept by the defaults");
	config_release(&cfg);

	/* empty environment values are ignored */
	setenv("FERRY_SOURCE", "", 1);
	unsetenv("FERRY_TARGET");
	unsetenv("FERRY_NAME");
	config_init(&cfg);
	config_apply_env(&cfg);
	ok(cfg.source == NULL, "empty FERRY_SOURCE is ignored");
	ok(cfg.target == NULL, "unset FERRY_TARGET leaves the target unset");
	config_apply_defaults(&cfg);
	is_str(cfg.name, FERRY_DEFAULT_NAME, "default name");
	is_int(cfg.jobs, 4, "default jobs 4");
	is_int(cfg.index_jobs, 4, "default index-jobs = jobs");
	is_int(cfg.split_bytes, SPLIT_AUTO, "default split is auto");
	ok(!cfg.no_owner && !cfg.no_privileges && !cfg.json, "default flags off");
	config_release(&cfg);
	unsetenv("FERRY_SOURCE");

	config_init(&cfg);
	cfg.jobs = 12;
	config_apply_defaults(&cfg);
	is_int(cfg.index_jobs, 12, "index-jobs defaults to the given jobs");
	config_release(&cfg);
}

/* Load `yaml`, expect failure with a message containing every needle. */
static void
load_bad(const char *yaml, const char *what, const char *needle1, const char *needle2)
{
	FerryConfig cfg;
	char	   *err = NULL;
	char		name[160];
	bool		r;

	config_init(&cfg);
	r = load(&cfg, yaml, &err);
	snprintf(name, sizeof(name), "%s: load fails", what);
	ok(!r, name);
	snprintf(name, sizeof(name), "%s: message names \"%s\"", what, needle1);
	contains(err, needle1, name);
	if (needle2)
	{
		snprintf(name, sizeof(name), "%s: message names \"%s\"", what, needle2);
		contains(err, needle2, name);
	}
	snprintf(name, sizeof(name), "%s: message is one line", what);
	ok(err && strchr(err, '\n') == NULL, name);
	free(err);
	config_release(&cfg);
}

static void
test_load_errors(void)
{
	load_bad("source: host=a\njobs: 2\nsorce: host=b\n", "unknown key", "\"sorce\"", "line 3");
	load_bad("jobs: 2\nfilters:\n  exclude-table: [a]\n", "unknown filter", "exclude-table", "line 3");
	load_bad("source: [unclosed\n", "bad YAML", "invalid YAML", "line");
	load_bad("source: a\n  bad indent: b\nc\n", "bad YAML (indentation)", "invalid YAML", "line 2");
	load_bad("source: \"unterminated\n", "bad YAML (quote)", "invalid YAML", "line");
	load_bad("- source\n- target\n", "root is a list", "map", "line 1");
	load_bad("just a string\n", "root is a scalar", "map", NULL);
	load_bad("name: x\njobs: four\n", "bad int", "jobs", "line 2");
	load_bad("jobs: 0\n", "jobs below 1", "jobs", NULL);
	load_bad("pgbouncer:\n  - database: app\n", "a pgbouncer entry without admin", "needs admin:", "line 2");
	load_bad("pgbouncer:\n  - {admin: a, ini: /x, repoint: y}\n", "ini and repoint", "not both", "line 2");
	load_bad("pgbouncer:\n  - {admin: a, inifile: /x}\n", "an unknown pgbouncer key", "inifile", "line 2");
	load_bad("pgbouncer: host=x\n", "pgbouncer as a scalar", "must be a list", "line 1");
	load_bad("pause-timeout: 0\n", "pause-timeout below 1", "pause_timeout", NULL);
	load_bad("jobs: 300\n", "jobs above 256", "jobs", NULL);
	load_bad("index-jobs: 2.5\n", "decimal index-jobs", "index_jobs", NULL);
	load_bad("jobs: 99999999999999999999\n", "huge jobs", "jobs", NULL);
	load_bad("split-tables-larger-than: lots\n", "bad size", "split-tables-larger-than", "lots");
	load_bad("split-tables-larger-than: -1GB\n", "negative size", "split-tables-larger-than", NULL);
	load_bad("no-owner: maybe\n", "bad bool", "no_owner", "true or false");
	load_bad("source: [a, b]\n", "list for a scalar key", "source", "single value");
	load_bad("target: {host: a}\n", "map for a scalar key", "target", NULL);
	load_bad("filters: [a]\n", "filters not a map", "filters", "map");
	load_bad("filters:\n  include-schemas: {a: b}\n", "filter not a list", "include_schemas", "list");
	load_bad("filters:\n  include-schemas: [[a]]\n", "nested list in a filter", "include_schemas", NULL);
	load_bad("? [a, b]\n: c\n", "non-scalar key", "key", NULL);
}

static void
test_load_file(void)
{
	FerryConfig cfg;
	char	   *err = NULL;
	char		path[] = "/tmp/ferry-test-config-XXXXXX";
	int			fd = mkstemp(path);
	const char *yaml = "source: host=x\njobs: 3\n";

	ok(fd >= 0, "temp config file");
	if (fd < 0)
		return;
	ok(write(fd, yaml, strlen(yaml)) == (ssize_t) strlen(yaml), "write the config file");
	close(fd);

	config_init(&cfg);
	ok(config_load_file(&cfg, path, &err), "config_load_file reads a file");
	is_str(cfg.source, "host=x", "source from file");
	is_int(cfg.jobs, 3, "jobs from file");
	config_release(&cfg);

	fd = open(path, O_WRONLY | O_TRUNC);
	ok(fd >= 0 && write(fd, "jobz: 3\n", 8) == 8, "rewrite the config file");
	if (fd >= 0)
		close(fd);
	config_init(&cfg);
	ok(!config_load_file(&cfg, path, &err), "unknown key in a file fails");
	contains(err, path, "the message names the file");
	contains(err, "jobz", "the message names the key");
	contains(err, "line 1", "the message names the line");
	free(err);
	err = NULL;
	config_release(&cfg);
	unlink(path);

	config_init(&cfg);
	ok(!config_load_file(&cfg, "/nonexistent/ferry.yaml", &err), "a missing file fails");
	contains(err, "/nonexistent/ferry.yaml", "the message names the missing file");
	contains(err, "No such file", "the message says why");
	free(err);
	config_release(&cfg);
}

/* verbose, log-format, metrics-listen; reloading them (SIGHUP) */
static void
test_service_keys(void)
{
	FerryConfig cfg;
	char	   *err = NULL;

	config_init(&cfg);
	ok(load(&cfg, "verbose: true\nlog-format: json\nmetrics-listen: \":9187\"\n", &err), "service keys load");
	is_int(cfg.verbose, 1, "verbose: true");
	is_int(cfg.log_format, LOG_FORMAT_JSON, "log-format: json");
	is_str(cfg.metrics_listen, ":9187", "metrics-listen");
	config_release(&cfg);

	config_init(&cfg);
	cfg.log_format = LOG_FORMAT_TEXT;	/* as --log-format text */
	ok(load(&cfg, "verbose: false\nlog-format: json\n", &err), "loads over command-line values");
	is_int(cfg.log_format, LOG_FORMAT_TEXT, "--log-format beats the file");
	is_int(cfg.verbose, 0, "verbose: false");
	config_apply_defaults(&cfg);
	config_release(&cfg);

	config_init(&cfg);
	config_apply_defaults(&cfg);
	is_int(cfg.log_format, LOG_FORMAT_TEXT, "log-format defaults to text");
	config_release(&cfg);

	config_init(&cfg);
	ok(!load(&cfg, "log-format: xml\n", &err), "log-format xml is refused");
	contains(err, "text or json", "the message lists the choices");
	free(err);
	config_release(&cfg);
}

static void
write_file(const char *path, const char *text)
{
	FILE	   *f = fopen(path, "w");

	ok(f != NULL && fputs(text, f) >= 0 && fclose(f) == 0, "write the config file");
}

static void
test_reload(void)
{
	FerryConfig cur,
				fresh;
	char	   *err = NULL;
	char	   *changed;
	char		path[] = "/tmp/ferry-test-reload-XXXXXX";
	int			fd = mkstemp(path);

	ok(fd >= 0, "temp config file");
	if (fd < 0)
		return;
	close(fd);
	write_file(path, "source: host=a\nverbose: false\n");

	/* as main() does: command line, mark, env, file, defaults */
	config_init(&cur);
	cur.config_file = xstrdup(path);
	config_mark_command_line(&cur);
	ok(config_load_file(&cur, path, &err), "the first load");
	config_apply_defaults(&cur);
	log_set_level(LOG_INFO);
	log_set_format(LOG_FORMAT_TEXT);

	config_init(&fresh);
	ok(config_reread(&cur, &fresh, &err), "reread of an unchanged file");
	changed = config_reload_live(&cur, &fresh);
	ok(changed == NULL, "nothing changed, nothing to say");
	config_release(&fresh);

	write_file(path, "source: host=b\nverbose: true\nlog-format: json\n");
	config_init(&fresh);
	ok(config_reread(&cur, &fresh, &err), "reread of an edited file");
	is_str(fresh.source, "host=b", "the fresh settings have the file's new values");
	changed = config_reload_live(&cur, &fresh);
	is_str(changed, "verbose false -> true, log-format text -> json", "the change is described");
	free(changed);
	is_int(log_get_level(), LOG_DEBUG, "the log level is now debug");
	is_int(log_get_format(), LOG_FORMAT_JSON, "the log format is now json");
	is_str(cur.source, "host=a", "source is not changed live");
	config_release(&fresh);

	write_file(path, "verbose: [oops\n");
	config_init(&fresh);
	ok(!config_reread(&cur, &fresh, &err), "a broken file does not reread");
	contains(err, path, "the message names the file");
	free(err);
	err = NULL;
	config_release(&fresh);
	is_int(log_get_level(), LOG_DEBUG, "the level stays");
	is_int(cur.verbose, 1, "the settings stay");

	/* -v on the command line wins over the file, also on reload */
	config_release(&cur);
	config_init(&cur);
	cur.verbose = 1;
	cur.config_file = xstrdup(path);
	config_mark_command_line(&cur);
	write_file(path, "verbose: false\n");
	config_apply_defaults(&cur);
	config_init(&fresh);
	ok(config_reread(&cur, &fresh, &err), "reread with -v given");
	changed = config_reload_live(&cur, &fresh);
	ok(changed == NULL || strstr(changed, "verbose") == NULL, "-v on the command line is not undone by the file");
	free(changed);
	config_release(&fresh);
	config_release(&cur);
	log_set_level(LOG_INFO);
	log_set_format(LOG_FORMAT_TEXT);
	unlink(path);
}

int
main(void)
{
	test_parse_size();
	test_format_size();
	test_valid_name();
	test_load_all_keys();
	test_load_pgbouncer();
	test_load_underscores();
	test_load_precedence();
	test_load_errors();
	test_load_file();
	test_service_keys();
	test_reload();
	return done_testing();
}
