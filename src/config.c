/*
 * config.c: settings from the YAML config file and the environment (see
 * config.h for the format and precedence).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "log.h"

void
config_init(FerryConfig *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->jobs = -1;
	cfg->index_jobs = -1;
	cfg->split_bytes = -1;
	cfg->hook_timeout = -1;
	cfg->files_interval = -1;
	cfg->max_lag = -1;
	cfg->timeout = -1;
	cfg->sequence_gap = -1;
	cfg->pause_timeout = -1;
	cfg->log_format = -1;
	cfg->cli_log_format = -1;
}

void
config_release(FerryConfig *cfg)
{
	if (cfg->source)
		explicit_bzero(cfg->source, strlen(cfg->source));
	if (cfg->target)
		explicit_bzero(cfg->target, strlen(cfg->target));
	free(cfg->source);
	free(cfg->target);
	free(cfg->name);
	free(cfg->config_file);
	free(cfg->pg_bin);
	free(cfg->metrics_listen);
	strlist_free(&cfg->include_schemas);
	strlist_free(&cfg->exclude_schemas);
	strlist_free(&cfg->exclude_tables);
	strlist_free(&cfg->exclude_table_data);
	free(cfg->hooks.pre_freeze);
	free(cfg->hooks.freeze);
	free(cfg->hooks.unfreeze);
	free(cfg->hooks.switch_);
	free(cfg->hooks.rollback);
	strlist_free(&cfg->files_from);
	strlist_free(&cfg->files_to);
	free(cfg->freeze_mode);
	strlist_free(&cfg->freeze_roles);
	for (int i = 0; i < cfg->n_pgbouncers; i++)
	{
		PgBouncerConf *b = &cfg->pgbouncers[i];

		if (b->admin)
			explicit_bzero(b->admin, strlen(b->admin));
		free(b->admin);
		free(b->database);
		free(b->ini);
		free(b->repoint);
	}
	free(cfg->pgbouncers);
	free(cfg->pgbouncer_database);
	if (cfg->pgbouncer_target)
		explicit_bzero(cfg->pgbouncer_target, strlen(cfg->pgbouncer_target));
	if (cfg->pgbouncer_source)
		explicit_bzero(cfg->pgbouncer_source, strlen(cfg->pgbouncer_source));
	free(cfg->pgbouncer_target);
	free(cfg->pgbouncer_source);
	memset(cfg, 0, sizeof(*cfg));
}

PgBouncerConf *
config_add_pgbouncer(FerryConfig *cfg, const char *admin)
{
	PgBouncerConf *b;

	cfg->pgbouncers = xrealloc(cfg->pgbouncers, sizeof(PgBouncerConf) * (size_t) (cfg->n_pgbouncers + 1));
	b = &cfg->pgbouncers[cfg->n_pgbouncers++];
	memset(b, 0, sizeof(*b));
	b->admin = xstrdup(admin);
	return b;
}

bool
config_valid_name(const char *name)
{
	size_t		n = strlen(name);

	if (n == 0 || n > FERRY_NAME_MAXLEN || !(name[0] >= 'a' && name[0] <= 'z'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') || name[i] == '_'))
			return false;
	return true;
}

bool
config_parse_size(const char *s, int64_t *bytes)
{
	static const struct
	{
		const char *unit;
		int64_t		mult;
	}			units[] = {
		{"", 1}, {"b", 1}, {"kb", 1024}, {"k", 1024}, {"mb", 1024 * 1024}, {"m", 1024 * 1024},
		{"gb", 1024LL * 1024 * 1024}, {"g", 1024LL * 1024 * 1024},
		{"tb", 1024LL * 1024 * 1024 * 1024}, {"t", 1024LL * 1024 * 1024 * 1024},
	};
	char	   *end;
	double		v;
	char		unit[8];
	size_t		ulen = 0;

	if (s == NULL)
		return false;
	while (isspace((unsigned char) *s))
		s++;
	if (strcasecmp(s, "auto") == 0)
	{
		*bytes = SPLIT_AUTO;
		return true;
	}
	if (!isdigit((unsigned char) *s))
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || v < 0)
		return false;
	while (isspace((unsigned char) *end))
		end++;
	while (*end && !isspace((unsigned char) *end) && ulen < sizeof(unit) - 1)
		unit[ulen++] = (char) tolower((unsigned char) *end++);
	unit[ulen] = '\0';
	while (isspace((unsigned char) *end))
		end++;
	if (*end != '\0')
		return false;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
	{
		if (strcmp(unit, units[i].unit) == 0)
		{
			double		r = v * (double) units[i].mult;

			if (r > 9.0e18)
				return false;
			*bytes = (int64_t) r;
			return true;
		}
	}
	return false;
}

void
config_format_size(int64_t bytes, char *buf, size_t size)
{
	const char *units[] = {"B", "kB", "MB", "GB", "TB"};
	double		v = (double) bytes;
	int			u = 0;

	while (v >= 1024 && u < 4)
	{
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%lld B", (long long) bytes);
	else
		snprintf(buf, size, "%.1f %s", v, units[u]);
}

/* --- YAML ------------------------------------------------------------- */

typedef struct YamlCtx
{
	yaml_document_t *doc;
	FerryConfig *cfg;
	char	   *err;			/* first error, owned */
	/* filter lists the command line set: the file does not add to them */
	bool		cli_include_schemas,
				cli_exclude_schemas,
				cli_exclude_tables,
				cli_exclude_table_data,
				cli_freeze_roles,
				cli_pgbouncers;
} YamlCtx;

static void yaml_fail(YamlCtx *y, const yaml_node_t *node, const char *fmt, ...)
			__attribute__((format(printf, 3, 4)));

static void
yaml_fail(YamlCtx *y, const yaml_node_t *node, const char *fmt, ...)
{
	char		msg[512];
	va_list		ap;

	if (y->err)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (node)
		y->err = xasprintf("%s (line %zu)", msg, node->start_mark.line + 1);
	else
		y->err = xstrdup(msg);
}

static const char *
yaml_scalar(YamlCtx *y, yaml_node_t *node, const char *key)
{
	if (node == NULL || node->type != YAML_SCALAR_NODE)
	{
		yaml_fail(y, node, "config key \"%s\" must be a single value", key);
		return NULL;
	}
	return (const char *) node->data.scalar.value;
}

/* Normalise a key: dashes to underscores, lower case. */
static void
normalize_key(const char *in, char *out, size_t size)
{
	size_t		i;

	for (i = 0; in[i] && i < size - 1; i++)
		out[i] = in[i] == '-' ? '_' : (char) tolower((unsigned char) in[i]);
	out[i] = '\0';
}

static void
yaml_set_string(YamlCtx *y, yaml_node_t *node, const char *key, char **dst)
{
	const char *v = yaml_scalar(y, node, key);

	if (v && *dst == NULL)
		*dst = xstrdup(v);
}

static void
yaml_set_int(YamlCtx *y, yaml_node_t *node, const char *key, int *dst, int min, int max)
{
	const char *v = yaml_scalar(y, node, key);
	char	   *end;
	long		n;

	if (v == NULL)
		return;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || *end || end == v || n < min || n > max)
	{
		yaml_fail(y, node, "config key \"%s\" must be a whole number in range", key);
		return;
	}
	if (*dst < 0)
		*dst = (int) n;
}

static void
yaml_set_bool(YamlCtx *y, yaml_node_t *node, const char *key, bool *dst)
{
	const char *v = yaml_scalar(y, node, key);

	if (v == NULL)
		return;
	if (strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0 || strcasecmp(v, "on") == 0)
		*dst = true;
	else if (strcasecmp(v, "false") == 0 || strcasecmp(v, "no") == 0 || strcasecmp(v, "off") == 0)
		;						/* command line may have set it: keep */
	else
		yaml_fail(y, node, "config key \"%s\" must be true or false", key);
}

static void
yaml_set_list(YamlCtx *y, yaml_node_t *node, const char *key, StrList *dst)
{
	if (node && node->type == YAML_SCALAR_NODE)
	{
		strlist_add(dst, (const char *) node->data.scalar.value);
		return;
	}
	if (node == NULL || node->type != YAML_SEQUENCE_NODE)
	{
		yaml_fail(y, node, "config key \"%s\" must be a list", key);
		return;
	}
	for (yaml_node_item_t *it = node->data.sequence.items.start;
		 it < node->data.sequence.items.top; it++)
	{
		const char *v = yaml_scalar(y, yaml_document_get_node(y->doc, *it), key);

		if (v)
			strlist_add(dst, v);
	}
}

static void
yaml_filters(YamlCtx *y, yaml_node_t *map)
{
	if (map->type != YAML_MAPPING_NODE)
	{
		yaml_fail(y, map, "config key \"%s\" must be a map", "filters");
		return;
	}
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++)
	{
		yaml_node_t *k = yaml_document_get_node(y->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(y->doc, p->value);
		char		key[64];

		if (k->type != YAML_SCALAR_NODE)
		{
			yaml_fail(y, k, "%s", "filter keys must be plain words");
			continue;
		}
		normalize_key((const char *) k->data.scalar.value, key, sizeof(key));
		StrList		ignore = {0};

		if (strcmp(key, "include_schemas") == 0)
			yaml_set_list(y, v, key, y->cli_include_schemas ? &ignore : &y->cfg->include_schemas);
		else if (strcmp(key, "exclude_schemas") == 0)
			yaml_set_list(y, v, key, y->cli_exclude_schemas ? &ignore : &y->cfg->exclude_schemas);
		else if (strcmp(key, "exclude_tables") == 0)
			yaml_set_list(y, v, key, y->cli_exclude_tables ? &ignore : &y->cfg->exclude_tables);
		else if (strcmp(key, "exclude_table_data") == 0)
			yaml_set_list(y, v, key, y->cli_exclude_table_data ? &ignore : &y->cfg->exclude_table_data);
		else
			yaml_fail(y, k, "unknown filter \"%s\" in config (known: include-schemas, exclude-schemas, exclude-tables, exclude-table-data)",
					  (const char *) k->data.scalar.value);
		strlist_free(&ignore);
	}
}

static void
yaml_hooks(YamlCtx *y, yaml_node_t *map)
{
	FerryHooks *h = &y->cfg->hooks;

	if (map->type != YAML_MAPPING_NODE)
	{
		yaml_fail(y, map, "config key \"%s\" must be a map", "hooks");
		return;
	}
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++)
	{
		yaml_node_t *k = yaml_document_get_node(y->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(y->doc, p->value);
		char		key[64];

		if (k->type != YAML_SCALAR_NODE)
		{
			yaml_fail(y, k, "%s", "hook names must be plain words");
			continue;
		}
		normalize_key((const char *) k->data.scalar.value, key, sizeof(key));
		if (strcmp(key, "pre_freeze") == 0)
			yaml_set_string(y, v, key, &h->pre_freeze);
		else if (strcmp(key, "freeze") == 0)
			yaml_set_string(y, v, key, &h->freeze);
		else if (strcmp(key, "unfreeze") == 0)
			yaml_set_string(y, v, key, &h->unfreeze);
		else if (strcmp(key, "switch") == 0)
			yaml_set_string(y, v, key, &h->switch_);
		else if (strcmp(key, "rollback") == 0)
			yaml_set_string(y, v, key, &h->rollback);
		else
			yaml_fail(y, k, "unknown hook \"%s\" in config (known: pre_freeze, freeze, unfreeze, switch, rollback)",
					  (const char *) k->data.scalar.value);
	}
}

/* files: a list of {from: DIR, to: DEST} maps */
static void
yaml_files(YamlCtx *y, yaml_node_t *list)
{
	if (list->type != YAML_SEQUENCE_NODE)
	{
		yaml_fail(y, list, "%s", "config key \"files\" must be a list of {from: DIR, to: DEST}");
		return;
	}
	for (yaml_node_item_t *it = list->data.sequence.items.start; it < list->data.sequence.items.top; it++)
	{
		yaml_node_t *m = yaml_document_get_node(y->doc, *it);
		char	   *from = NULL,
				   *to = NULL;

		if (m == NULL || m->type != YAML_MAPPING_NODE)
		{
			yaml_fail(y, m, "%s", "each files: entry must be a map {from: DIR, to: DEST}");
			return;
		}
		for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++)
		{
			yaml_node_t *k = yaml_document_get_node(y->doc, p->key);
			yaml_node_t *v = yaml_document_get_node(y->doc, p->value);
			const char *kn = k->type == YAML_SCALAR_NODE ? (const char *) k->data.scalar.value : "";

			if (strcmp(kn, "from") == 0)
				yaml_set_string(y, v, "from", &from);
			else if (strcmp(kn, "to") == 0)
				yaml_set_string(y, v, "to", &to);
			else
				yaml_fail(y, k, "unknown key \"%s\" in a files: entry (known: from, to)", kn);
		}
		if (from && to && *from && *to)
		{
			strlist_add(&y->cfg->files_from, from);
			strlist_add(&y->cfg->files_to, to);
		}
		else
			yaml_fail(y, m, "%s", "a files: entry needs both from: and to:");
		free(from);
		free(to);
	}
}

/* One pgbouncer: entry, {admin: CONN, database: NAME, ini: FILE, repoint: CMD}. */
static void
yaml_pgbouncer_one(YamlCtx *y, yaml_node_t *m)
{
	PgBouncerConf b = {0};

	if (m == NULL || m->type != YAML_MAPPING_NODE)
	{
		yaml_fail(y, m, "%s", "each pgbouncer: entry must be a map {admin: CONN, database: NAME, ini: FILE or repoint: COMMAND}");
		return;
	}
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++)
	{
		yaml_node_t *k = yaml_document_get_node(y->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(y->doc, p->value);
		const char *kn = k->type == YAML_SCALAR_NODE ? (const char *) k->data.scalar.value : "";

		if (strcmp(kn, "admin") == 0)
			yaml_set_string(y, v, "admin", &b.admin);
		else if (strcmp(kn, "database") == 0)
			yaml_set_string(y, v, "database", &b.database);
		else if (strcmp(kn, "ini") == 0)
			yaml_set_string(y, v, "ini", &b.ini);
		else if (strcmp(kn, "repoint") == 0)
			yaml_set_string(y, v, "repoint", &b.repoint);
		else
			yaml_fail(y, k, "unknown key \"%s\" in a pgbouncer: entry (known: admin, database, ini, repoint)", kn);
	}
	if (b.admin == NULL || *b.admin == '\0')
		yaml_fail(y, m, "%s", "a pgbouncer: entry needs admin: (the connection string of its admin console, dbname=pgbouncer)");
	else if (b.ini && b.repoint)
		yaml_fail(y, m, "%s", "a pgbouncer: entry takes ini: (ferry rewrites the entry) or repoint: (your command does), not both");
	else if (!y->cli_pgbouncers)
	{
		PgBouncerConf *n = config_add_pgbouncer(y->cfg, b.admin);

		n->database = b.database;
		n->ini = b.ini;
		n->repoint = b.repoint;
		b.database = b.ini = b.repoint = NULL;
	}
	if (b.admin)
		explicit_bzero(b.admin, strlen(b.admin));
	free(b.admin);
	free(b.database);
	free(b.ini);
	free(b.repoint);
}

/* pgbouncer: one map or a list of them (a fleet) */
static void
yaml_pgbouncers(YamlCtx *y, yaml_node_t *node)
{
	if (node->type == YAML_MAPPING_NODE)
	{
		yaml_pgbouncer_one(y, node);
		return;
	}
	if (node->type != YAML_SEQUENCE_NODE)
	{
		yaml_fail(y, node, "%s", "config key \"pgbouncer\" must be a list of {admin: CONN, database: NAME, ini: FILE or repoint: COMMAND}");
		return;
	}
	for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top; it++)
		yaml_pgbouncer_one(y, yaml_document_get_node(y->doc, *it));
}

bool
config_load_string(FerryConfig *cfg, const char *text, size_t len, char **errmsg)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root;
	YamlCtx		y = {&doc, cfg, NULL, cfg->include_schemas.n > 0, cfg->exclude_schemas.n > 0,
	cfg->exclude_tables.n > 0, cfg->exclude_table_data.n > 0, cfg->freeze_roles.n > 0, cfg->n_pgbouncers > 0};

	if (!yaml_parser_initialize(&parser))
	{
		*errmsg = xstrdup("could not initialize the YAML parser");
		return false;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *) text, len);
	if (!yaml_parser_load(&parser, &doc))
	{
		*errmsg = xasprintf("invalid YAML: %s (line %zu)",
							parser.problem ? parser.problem : "syntax error",
							parser.problem_mark.line + 1);
		yaml_parser_delete(&parser);
		return false;
	}
	root = yaml_document_get_root_node(&doc);
	if (root == NULL)
		;						/* empty file: nothing to set */
	else if (root->type != YAML_MAPPING_NODE)
		yaml_fail(&y, root, "%s", "the config file must be a map of key: value");
	else
	{
		for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++)
		{
			yaml_node_t *k = yaml_document_get_node(&doc, p->key);
			yaml_node_t *v = yaml_document_get_node(&doc, p->value);
			char		key[64];

			if (k->type != YAML_SCALAR_NODE)
			{
				yaml_fail(&y, k, "%s", "config keys must be plain words");
				continue;
			}
			normalize_key((const char *) k->data.scalar.value, key, sizeof(key));
			if (strcmp(key, "source") == 0)
				yaml_set_string(&y, v, key, &cfg->source);
			else if (strcmp(key, "target") == 0)
				yaml_set_string(&y, v, key, &cfg->target);
			else if (strcmp(key, "name") == 0)
				yaml_set_string(&y, v, key, &cfg->name);
			else if (strcmp(key, "pg_bin") == 0)
				yaml_set_string(&y, v, key, &cfg->pg_bin);
			else if (strcmp(key, "jobs") == 0)
				yaml_set_int(&y, v, key, &cfg->jobs, 1, 256);
			else if (strcmp(key, "index_jobs") == 0)
				yaml_set_int(&y, v, key, &cfg->index_jobs, 1, 256);
			else if (strcmp(key, "split_tables_larger_than") == 0)
			{
				const char *s = yaml_scalar(&y, v, key);
				int64_t		b;

				if (s && !config_parse_size(s, &b))
					yaml_fail(&y, v, "config key \"split-tables-larger-than\" is not a size: \"%s\" (use e.g. 500MB or 2GB)", s);
				else if (s && cfg->split_bytes == -1)
					cfg->split_bytes = b;
			}
			else if (strcmp(key, "no_owner") == 0)
				yaml_set_bool(&y, v, key, &cfg->no_owner);
			else if (strcmp(key, "stop_on_unmatched") == 0)
				yaml_set_bool(&y, v, key, &cfg->stop_on_unmatched);
			else if (strcmp(key, "no_privileges") == 0)
				yaml_set_bool(&y, v, key, &cfg->no_privileges);
			else if (strcmp(key, "set_replica_identity_full") == 0)
				yaml_set_bool(&y, v, key, &cfg->set_replica_identity_full);
			else if (strcmp(key, "verbose") == 0)
			{
				bool		b = false;

				yaml_set_bool(&y, v, key, &b);
				if (b && cfg->verbose == 0)
					cfg->verbose = 1;
			}
			else if (strcmp(key, "log_format") == 0)
			{
				const char *s = yaml_scalar(&y, v, key);
				LogFormat	lf;

				if (s && !log_format_parse(s, &lf))
					yaml_fail(&y, v, "config key \"log-format\" must be text or json, not \"%s\"", s);
				else if (s && cfg->log_format < 0)
					cfg->log_format = (int) lf;
			}
			else if (strcmp(key, "metrics_listen") == 0)
				yaml_set_string(&y, v, key, &cfg->metrics_listen);
			else if (strcmp(key, "filters") == 0)
				yaml_filters(&y, v);
			else if (strcmp(key, "hooks") == 0)
				yaml_hooks(&y, v);
			else if (strcmp(key, "files") == 0)
			{
				if (cfg->files_from.n == 0)
					yaml_files(&y, v);
			}
			else if (strcmp(key, "hook_timeout") == 0)
				yaml_set_int(&y, v, key, &cfg->hook_timeout, 1, 86400);
			else if (strcmp(key, "files_interval") == 0)
				yaml_set_int(&y, v, key, &cfg->files_interval, 0, 86400);
			else if (strcmp(key, "max_lag") == 0)
				yaml_set_int(&y, v, key, &cfg->max_lag, 0, 86400);
			else if (strcmp(key, "timeout") == 0)
				yaml_set_int(&y, v, key, &cfg->timeout, 1, 86400);
			else if (strcmp(key, "freeze") == 0)
				yaml_set_string(&y, v, key, &cfg->freeze_mode);
			else if (strcmp(key, "freeze_roles") == 0)
			{
				StrList		ignore = {0};

				yaml_set_list(&y, v, key, y.cli_freeze_roles ? &ignore : &cfg->freeze_roles);
				strlist_free(&ignore);
			}
			else if (strcmp(key, "sequence_gap") == 0)
			{
				int			gap = -1;

				yaml_set_int(&y, v, key, &gap, 0, 1000000000);
				if (gap >= 0 && cfg->sequence_gap < 0)
					cfg->sequence_gap = gap;
			}
			else if (strcmp(key, "verify") == 0)
				yaml_set_bool(&y, v, key, &cfg->verify);
			else if (strcmp(key, "no_reverse") == 0)
				yaml_set_bool(&y, v, key, &cfg->no_reverse);
			else if (strcmp(key, "pgbouncer") == 0)
				yaml_pgbouncers(&y, v);
			else if (strcmp(key, "pgbouncer_database") == 0)
				yaml_set_string(&y, v, key, &cfg->pgbouncer_database);
			else if (strcmp(key, "pgbouncer_target") == 0)
				yaml_set_string(&y, v, key, &cfg->pgbouncer_target);
			else if (strcmp(key, "pgbouncer_source") == 0)
				yaml_set_string(&y, v, key, &cfg->pgbouncer_source);
			else if (strcmp(key, "pause_timeout") == 0)
				yaml_set_int(&y, v, key, &cfg->pause_timeout, 1, 3600);
			else
				yaml_fail(&y, k, "unknown key \"%s\" in config file", (const char *) k->data.scalar.value);
		}
	}
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	if (y.err)
	{
		*errmsg = y.err;
		return false;
	}
	return true;
}

bool
config_load_file(FerryConfig *cfg, const char *path, char **errmsg)
{
	FILE	   *f = fopen(path, "r");
	StrBuf		sb;
	char		buf[8192];
	size_t		n;
	bool		ok;

	if (f == NULL)
	{
		*errmsg = xasprintf("could not open config file \"%s\": %s", path, strerror(errno));
		return false;
	}
	strbuf_init(&sb);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		strbuf_add(&sb, buf, n);
	fclose(f);
	ok = config_load_string(cfg, sb.data, sb.len, errmsg);
	if (!ok)
	{
		char	   *e = xasprintf("%s: %s", path, *errmsg);

		free(*errmsg);
		*errmsg = e;
	}
	explicit_bzero(sb.data, sb.len);
	strbuf_release(&sb);
	return ok;
}

void
config_apply_env(FerryConfig *cfg)
{
	const char *e;

	if ((e = getenv("FERRY_SOURCE")) && *e && cfg->source == NULL)
		cfg->source = xstrdup(e);
	if ((e = getenv("FERRY_TARGET")) && *e && cfg->target == NULL)
		cfg->target = xstrdup(e);
	if ((e = getenv("FERRY_NAME")) && *e && cfg->name == NULL)
		cfg->name = xstrdup(e);
}

void
config_apply_defaults(FerryConfig *cfg)
{
	if (cfg->name == NULL)
		cfg->name = xstrdup(FERRY_DEFAULT_NAME);
	if (cfg->jobs < 0)
		cfg->jobs = 4;
	if (cfg->index_jobs < 0)
		cfg->index_jobs = cfg->jobs;
	if (cfg->split_bytes == -1)
		cfg->split_bytes = SPLIT_AUTO;
	if (cfg->hook_timeout < 0)
		cfg->hook_timeout = 60;
	if (cfg->files_interval < 0)
		cfg->files_interval = 60;
	if (cfg->max_lag < 0)
		cfg->max_lag = 10;
	if (cfg->timeout < 0)
		cfg->timeout = 60;
	if (cfg->freeze_mode == NULL)
		cfg->freeze_mode = xstrdup(cfg->hooks.freeze ? "hook" : "readonly");
	if (cfg->sequence_gap < 0)
		cfg->sequence_gap = 1000;
	if (cfg->pause_timeout < 0)
		cfg->pause_timeout = 5;
	if (cfg->log_format < 0)
		cfg->log_format = LOG_FORMAT_TEXT;
}

static char *
dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static void
copy_list(StrList *dst, const StrList *src)
{
	for (int i = 0; i < src->n; i++)
		strlist_add(dst, src->items[i]);
}

FerryConfig *
config_reversed(const FerryConfig *cfg)
{
	FerryConfig *r = xmalloc(sizeof(FerryConfig));

	*r = *cfg;
	r->source = dup_or_null(cfg->target);
	r->target = dup_or_null(cfg->source);
	r->name = xasprintf("%s%s", cfg->name, CONFIG_REVERSE_SUFFIX);
	r->config_file = dup_or_null(cfg->config_file);
	r->pg_bin = dup_or_null(cfg->pg_bin);
	r->freeze_mode = dup_or_null(cfg->freeze_mode);
	r->hooks.pre_freeze = dup_or_null(cfg->hooks.pre_freeze);
	r->hooks.freeze = dup_or_null(cfg->hooks.freeze);
	r->hooks.unfreeze = dup_or_null(cfg->hooks.unfreeze);
	r->hooks.switch_ = dup_or_null(cfg->hooks.switch_);
	r->hooks.rollback = dup_or_null(cfg->hooks.rollback);
	memset(&r->include_schemas, 0, sizeof(StrList));
	memset(&r->exclude_schemas, 0, sizeof(StrList));
	memset(&r->exclude_tables, 0, sizeof(StrList));
	memset(&r->exclude_table_data, 0, sizeof(StrList));
	memset(&r->files_from, 0, sizeof(StrList));
	memset(&r->files_to, 0, sizeof(StrList));
	memset(&r->freeze_roles, 0, sizeof(StrList));
	copy_list(&r->include_schemas, &cfg->include_schemas);
	copy_list(&r->exclude_schemas, &cfg->exclude_schemas);
	copy_list(&r->exclude_tables, &cfg->exclude_tables);
	copy_list(&r->freeze_roles, &cfg->freeze_roles);
	/* the poolers are the same ones: rollback drives them through the forward config, but the copy owns its own */
	r->pgbouncers = NULL;
	r->n_pgbouncers = 0;
	for (int i = 0; i < cfg->n_pgbouncers; i++)
	{
		PgBouncerConf *b = config_add_pgbouncer(r, cfg->pgbouncers[i].admin);

		b->database = dup_or_null(cfg->pgbouncers[i].database);
		b->ini = dup_or_null(cfg->pgbouncers[i].ini);
		b->repoint = dup_or_null(cfg->pgbouncers[i].repoint);
	}
	r->pgbouncer_database = dup_or_null(cfg->pgbouncer_database);
	r->pgbouncer_target = dup_or_null(cfg->pgbouncer_source);
	r->pgbouncer_source = dup_or_null(cfg->pgbouncer_target);
	/* files go one way: to the new home */
	/* the endpoint belongs to this process, not to a direction */
	r->metrics_listen = NULL;
	return r;
}

void
config_mark_command_line(FerryConfig *cfg)
{
	cfg->cli_verbose = cfg->verbose;
	cfg->cli_log_format = cfg->log_format;
}

bool
config_reread(const FerryConfig *cur, FerryConfig *fresh, char **errmsg)
{
	fresh->verbose = cur->cli_verbose;
	fresh->log_format = cur->cli_log_format;
	config_mark_command_line(fresh);
	if (cur->config_file)
		fresh->config_file = xstrdup(cur->config_file);
	config_apply_env(fresh);
	if (fresh->config_file && !config_load_file(fresh, fresh->config_file, errmsg))
		return false;
	config_apply_defaults(fresh);
	return true;
}

char *
config_reload_live(FerryConfig *cur, const FerryConfig *fresh)
{
	StrBuf		sb;

	strbuf_init(&sb);
	if ((cur->verbose > 0) != (fresh->verbose > 0))
	{
		strbuf_addf(&sb, "verbose %s -> %s", cur->verbose > 0 ? "true" : "false",
					fresh->verbose > 0 ? "true" : "false");
		cur->verbose = fresh->verbose;
		log_set_level(cur->verbose > 0 ? LOG_DEBUG : LOG_INFO);
	}
	if (cur->log_format != fresh->log_format)
	{
		strbuf_addf(&sb, "%slog-format %s -> %s", sb.len ? ", " : "",
					log_format_name((LogFormat) cur->log_format), log_format_name((LogFormat) fresh->log_format));
		cur->log_format = fresh->log_format;
		log_set_format((LogFormat) cur->log_format);
	}
	/*
	 * hooks: are run by `switchover` and `rollback`, which read the file when
	 * they start, so an edited hook takes effect without a reload. files:
	 * stay as they were at start: the follow thread reads them unlocked.
	 */
	if (sb.len == 0)
	{
		strbuf_release(&sb);
		return NULL;
	}
	return strbuf_detach(&sb);
}
