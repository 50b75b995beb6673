/*
 * proc.c: child programs (see proc.h).
 */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <poll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"

/* Stop a child's process group: SIGTERM now, SIGKILL once kill_at passes. */
static void
stop_child(pid_t pid, int64_t *kill_at)
{
	if (*kill_at == INT64_MAX)
	{
		kill(-pid, SIGTERM);
		*kill_at = proc_now_ms() + 2000;
	}
	else if (*kill_at > 0 && proc_now_ms() >= *kill_at)
	{
		kill(-pid, SIGKILL);
		*kill_at = 0;
	}
}

int
proc_run(char *const argv[], const char *const *env, const char *stdout_path,
		 bool (*stop) (void), char **errout)
{
	int			errpipe[2];
	pid_t		pid;
	int			status;
	StrBuf		err;
	char		buf[1024];
	ssize_t		n;
	int64_t		kill_at = INT64_MAX;
	bool		open_pipe = true;

	if (pipe(errpipe) != 0)
	{
		log_error("could not create a pipe: %s", strerror(errno));
		return -1;
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
	{
		log_error("could not fork: %s", strerror(errno));
		close(errpipe[0]);
		close(errpipe[1]);
		return -1;
	}
	if (pid == 0)
	{
		int			out = open(stdout_path ? stdout_path : "/dev/null",
							   O_WRONLY | O_CREAT | O_TRUNC, 0600);

		setpgid(0, 0);			/* stopped as a group, by ferry (stop) */
		if (out < 0)
			_exit(126);
		dup2(out, STDOUT_FILENO);
		dup2(errpipe[1], STDERR_FILENO);
		close(out);
		close(errpipe[0]);
		close(errpipe[1]);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		/* ferry's own connection strings may hold secrets: not for the child */
		unsetenv("FERRY_SOURCE");
		unsetenv("FERRY_TARGET");
		for (int i = 0; env && env[i]; i++)
			putenv((char *) env[i]);
		execvp(argv[0], argv);
		fprintf(stderr, "could not run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid);			/* both sides: no race with an early kill */
	close(errpipe[1]);
	strbuf_init(&err);
	/* collect its stderr and wait, looking at stop() every 100 ms */
	for (;;)
	{
		pid_t		r;

		if (stop && stop())
			stop_child(pid, &kill_at);
		if (open_pipe)
		{
			struct pollfd pfd = {errpipe[0], POLLIN, 0};

			if (poll(&pfd, 1, 100) <= 0)
				continue;
			n = read(errpipe[0], buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				open_pipe = false;
			else if (err.len < 8192)
				strbuf_add(&err, buf, (size_t) n);
			continue;
		}
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
		{
			status = -1;
			break;
		}
		usleep(10000);
	}
	close(errpipe[0]);
	while (err.len > 0 && err.data[err.len - 1] == '\n')
		err.data[--err.len] = '\0';
	if (errout)
		*errout = strbuf_detach(&err);
	else
		strbuf_release(&err);
	if (status == -1)
		return -1;
	if (WIFEXITED(status))
		return WEXITSTATUS(status) == 127 ? -1 : WEXITSTATUS(status);
	return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/*
 * path of ROOT/V/bin/NAME for the first root of the colon-separated list
 * `roots` where it is an executable (owned), or NULL.
 */
static char *
find_in_roots(const char *roots, int v, const char *name)
{
	const char *r = roots;

	while (*r)
	{
		size_t		len = strcspn(r, ":");

		if (len > 0)
		{
			char	   *p = xasprintf("%.*s/%d/bin/%s", (int) len, r, v, name);

			if (access(p, X_OK) == 0)
				return p;
			free(p);
		}
		r += len;
		if (*r == ':')
			r++;
	}
	return NULL;
}

char *
proc_find_pg_program(const char *bindir, const char *name, int source_major, int target_major)
{
	const char *roots = getenv("FERRY_PG_LIB") && getenv("FERRY_PG_LIB")[0] ? getenv("FERRY_PG_LIB") : PROC_PG_LIB;
	int			lo = source_major > 10 ? source_major : 10;
	int			hi = target_major >= lo ? target_major : PROC_PG_MAX_MAJOR;

	if (bindir && bindir[0])
		return xasprintf("%s/%s", bindir, name);
	/* the newest that the target reads, then the oldest newer one */
	for (int v = hi; v >= lo; v--)
	{
		char	   *p = find_in_roots(roots, v, name);

		if (p)
			return p;
	}
	for (int v = hi + 1; v <= PROC_PG_MAX_MAJOR; v++)
	{
		char	   *p = find_in_roots(roots, v, name);

		if (p)
			return p;
	}
	return xstrdup(name);
}

pid_t
proc_spawn(char *const argv[], const char *const *env, const char *const *unset)
{
	pid_t		pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
	{
		log_error("could not fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0)
	{
		int			in = open("/dev/null", O_RDONLY);

		setpgid(0, 0);
		if (in >= 0)
		{
			dup2(in, STDIN_FILENO);
			close(in);
		}
		/* ferry's handlers and blocked signals are not the child's */
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		for (int i = 0; unset && unset[i]; i++)
			unsetenv(unset[i]);
		for (int i = 0; env && env[i]; i++)
			putenv((char *) env[i]);
		execvp(argv[0], argv);
		fprintf(stderr, "ferry: could not run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid);			/* both sides: no race with an early kill */
	return pid;
}

int64_t
proc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
exit_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status) == 127 ? -1 : WEXITSTATUS(status);
	return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

int
proc_wait(pid_t pid, int timeout_ms, bool (*stop) (void), bool *timed_out)
{
	int64_t		deadline = timeout_ms < 0 ? INT64_MAX : proc_now_ms() + timeout_ms;
	int64_t		kill_at = INT64_MAX;
	int			status;

	if (timed_out)
		*timed_out = false;
	for (;;)
	{
		pid_t		r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return exit_code(status);
		if (r < 0 && errno != EINTR)
			return -1;
		if (timeout_ms == 0)
			return PROC_RUNNING;
		if (kill_at == INT64_MAX && (proc_now_ms() >= deadline || (stop && stop())))
		{
			if (timed_out && proc_now_ms() >= deadline)
				*timed_out = true;
			kill(-pid, SIGTERM);
			kill_at = proc_now_ms() + 2000;
		}
		if (proc_now_ms() >= kill_at)
		{
			kill(-pid, SIGKILL);
			kill_at = INT64_MAX - 1;
		}
		usleep(10000);
	}
}
