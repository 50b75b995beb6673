/*
 * hooks.c: hooks and file sync (see hooks.h).
 */
#include "hooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>

#include "log.h"
#include "mem.h"
#include "pgsql.h"
#include "proc.h"

const char *
hook_command(const FerryConfig *cfg, const char *phase)
{
	const FerryHooks *h = &cfg->hooks;

	if (strcmp(phase, "pre_freeze") == 0)
		return h->pre_freeze;
	if (strcmp(phase, "freeze") == 0)
		return h->freeze;
	if (strcmp(phase, "unfreeze") == 0)
		return h->unfreeze;
	if (strcmp(phase, "switch") == 0)
		return h->switch_;
	if (strcmp(phase, "rollback") == 0)
		return h->rollback;
	return NULL;
}

/* Add FERRY_<SIDE>_HOST/PORT/DBNAME/USER for one conninfo to env. */
static void
add_conn_env(StrList *env, const char *side, const char *conninfo)
{
	static const char *const keys[][2] = {{"host", "HOST"}, {"port", "PORT"}, {"dbname", "DBNAME"}, {"user", "USER"}};
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);

	if (opts == NULL)
		return;
	for (PQconninfoOption *o = opts; o->keyword; o++)
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (strcmp(o->keyword, keys[i][0]) == 0 && o->val && *o->val)
			{
				char	   *kv = xasprintf("FERRY_%s_%s=%s", side, keys[i][1], o->val);

				strlist_add(env, kv);
				free(kv);
			}
	PQconninfoFree(opts);
}

bool
hook_run(const FerryConfig *cfg, const char *phase)
{
	return hook_run_command(cfg, phase, hook_command(cfg, phase), NULL);
}

bool
hook_run_command(const FerryConfig *cfg, const char *phase, const char *cmd, const StrList *extra_env)
{
	static const char *const unset[] = {"FERRY_SOURCE", "FERRY_TARGET", "PGPASSWORD", NULL};
	StrList		env = {0};
	const char **envp;
	char	   *argv[4];
	char	   *kv;
	pid_t		pid;
	int			rc;
	bool		timed_out = false;
	int64_t		t0;

	if (cmd == NULL || *cmd == '\0')
		return true;
	kv = xasprintf("FERRY_NAME=%s", cfg->name);
	strlist_add(&env, kv);
	free(kv);
	kv = xasprintf("FERRY_PHASE=%s", phase);
	strlist_add(&env, kv);
	free(kv);
	add_conn_env(&env, "SOURCE", cfg->source);
	add_conn_env(&env, "TARGET", cfg->target);
	for (int i = 0; extra_env && i < extra_env->n; i++)
		strlist_add(&env, extra_env->items[i]);
	envp = xmalloc(sizeof(char *) * (size_t) (env.n + 1));
	for (int i = 0; i < env.n; i++)
		envp[i] = env.items[i];
	envp[env.n] = NULL;
	argv[0] = "/bin/sh";
	argv[1] = "-c";
	argv[2] = (char *) cmd;
	argv[3] = NULL;

	log_info("running the %s hook: %s", phase, cmd);
	t0 = proc_now_ms();
	pid = proc_spawn(argv, envp, unset);
	/* SIGINT/SIGTERM stop the hook at once, as the timeout does */
	rc = pid < 0 ? -1 : proc_wait(pid, cfg->hook_timeout * 1000, pg_interrupted, &timed_out);
	free(envp);
	strlist_free(&env);
	if (pg_interrupted() && !timed_out)
	{
		log_error("the %s hook was stopped: ferry was interrupted", phase);
		return false;
	}
	if (timed_out)
	{
		log_error("the %s hook did not finish within %d s and was stopped. Fix: make it faster or raise hook-timeout (--hook-timeout)",
				  phase, cfg->hook_timeout);
		return false;
	}
	if (rc != 0)
	{
		log_error("the %s hook failed (exit status %d): %s. Fix: run it by hand to see why; ferry passes FERRY_NAME, FERRY_PHASE and FERRY_SOURCE_*/FERRY_TARGET_* host, port, dbname and user",
				  phase, rc, cmd);
		return false;
	}
	log_info("the %s hook finished in %.2f s", phase, (double) (proc_now_ms() - t0) / 1000.0);
	return true;
}

/* --- files ------------------------------------------------------------ */

static const char FILE_SYNC_DDL[] =
	"CREATE TABLE IF NOT EXISTS ferry.file_sync ("
	"  migration text NOT NULL REFERENCES ferry.migration ON DELETE CASCADE,"
	"  entry int NOT NULL,"
	"  from_path text NOT NULL,"
	"  to_path text NOT NULL,"
	"  last_ok_at timestamptz,"
	"  last_run_at timestamptz,"
	"  last_status int,"
	"  last_seconds double precision,"
	"  runs bigint NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (migration, entry))";

static const char FILE_SYNC_RECORD_SQL[] =
	"INSERT INTO ferry.file_sync AS f (migration, entry, from_path, to_path, last_ok_at, last_run_at, last_status, last_seconds, runs)"
	" VALUES ($1, $2::int, $3, $4, CASE WHEN $5::int = 0 THEN pg_catalog.now() END, pg_catalog.now(), $5::int, $6::float8, 1)"
	" ON CONFLICT (migration, entry) DO UPDATE SET from_path = EXCLUDED.from_path, to_path = EXCLUDED.to_path,"
	"   last_ok_at = COALESCE(EXCLUDED.last_ok_at, f.last_ok_at), last_run_at = EXCLUDED.last_run_at,"
	"   last_status = EXCLUDED.last_status, last_seconds = EXCLUDED.last_seconds, runs = f.runs + 1";

static void
record(const FerryConfig *cfg, PGconn *tgt, int entry, int status, double seconds)
{
	char		e[16],
				st[16],
				sec[32];
	const char *params[6] = {cfg->name, e, cfg->files_from.items[entry], cfg->files_to.items[entry], st, sec};
	PGresult   *res;

	if (tgt == NULL || PQstatus(tgt) != CONNECTION_OK)
		return;
	snprintf(e, sizeof(e), "%d", entry);
	snprintf(st, sizeof(st), "%d", status);
	snprintf(sec, sizeof(sec), "%.3f", seconds);
	if (!pg_exec_quiet(tgt, FILE_SYNC_DDL, NULL))
		return;
	res = pg_execute(tgt, FILE_SYNC_RECORD_SQL, 6, params);
	PQclear(res);
}

static pid_t
start_rsync(const FerryConfig *cfg, int entry)
{
	char	   *argv[] = {"rsync", "-a", "--", cfg->files_from.items[entry], cfg->files_to.items[entry], NULL};
	static const char *const unset[] = {"FERRY_SOURCE", "FERRY_TARGET", "PGPASSWORD", NULL};

	log_debug("rsync -a %s %s", cfg->files_from.items[entry], cfg->files_to.items[entry]);
	return proc_spawn(argv, NULL, unset);
}

static void
report_rsync(int entry, const FerryConfig *cfg, int rc, bool timed_out)
{
	if (timed_out)
		log_error("rsync of %s to %s did not finish in time and was stopped", cfg->files_from.items[entry], cfg->files_to.items[entry]);
	else if (rc != 0)
		log_error("rsync of %s to %s failed (exit status %d%s). Fix: check both paths and that rsync runs there (see its message above)",
				  cfg->files_from.items[entry], cfg->files_to.items[entry], rc, rc == -1 ? ": is rsync installed?" : "");
}

void
files_sync_tick(FilesSync *fs, const FerryConfig *cfg, PGconn *tgt)
{
	if (cfg->files_from.n == 0 || cfg->files_interval <= 0)
		return;
	if (fs->pid > 0)
	{
		int			rc = proc_wait(fs->pid, 0, NULL, NULL);

		if (rc == PROC_RUNNING)
			return;
		fs->pid = 0;
		report_rsync(fs->entry, cfg, rc, false);
		record(cfg, tgt, fs->entry, rc, (double) (proc_now_ms() - fs->started_ms) / 1000.0);
		fs->entry++;
		if (fs->entry >= cfg->files_from.n)
		{
			fs->entry = 0;
			fs->next_ms = proc_now_ms() + (int64_t) cfg->files_interval * 1000;
			return;
		}
	}
	if (proc_now_ms() < fs->next_ms)
		return;
	fs->started_ms = proc_now_ms();
	fs->pid = start_rsync(cfg, fs->entry);
	if (fs->pid < 0)
	{
		fs->pid = 0;
		fs->next_ms = proc_now_ms() + (int64_t) cfg->files_interval * 1000;
	}
}

void
files_sync_stop(FilesSync *fs)
{
	if (fs->pid > 0)
	{
		bool		t;

		kill(-fs->pid, SIGTERM);
		proc_wait(fs->pid, 5000, NULL, &t);
		fs->pid = 0;
	}
}

bool
files_sync_all(const FerryConfig *cfg, PGconn *tgt, int timeout_s)
{
	bool		ok = true;

	for (int i = 0; i < cfg->files_from.n; i++)
	{
		int64_t		t0 = proc_now_ms();
		pid_t		pid = start_rsync(cfg, i);
		bool		timed_out = false;
		int			rc = pid < 0 ? -1 : proc_wait(pid, timeout_s * 1000, pg_interrupted, &timed_out);

		report_rsync(i, cfg, rc, timed_out);
		record(cfg, tgt, i, timed_out ? -1 : rc, (double) (proc_now_ms() - t0) / 1000.0);
		if (rc == 0 && !timed_out)
			log_info("synced %s to %s in %.2f s", cfg->files_from.items[i], cfg->files_to.items[i],
					 (double) (proc_now_ms() - t0) / 1000.0);
		ok &= rc == 0 && !timed_out;
	}
	return ok;
}
