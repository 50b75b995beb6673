/*
 * proc.c: child programs (see proc.h).
 */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"

int
proc_run(char *const argv[], const char *password, const char *stdout_path, char **errout)
{
	int			errpipe[2];
	pid_t		pid;
	int			status;
	StrBuf		err;
	char		buf[1024];
	ssize_t		n;

	if (pipe(errpipe) != 0)
	{
		log_error("could not create a pipe: %s", strerror(errno));
		return -1;
	}
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

		if (out < 0)
			_exit(126);
		dup2(out, STDOUT_FILENO);
		dup2(errpipe[1], STDERR_FILENO);
		close(out);
		close(errpipe[0]);
		close(errpipe[1]);
		if (password)
			setenv("PGPASSWORD", password, 1);
		execvp(argv[0], argv);
		fprintf(stderr, "could not run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(errpipe[1]);
	strbuf_init(&err);
	while ((n = read(errpipe[0], buf, sizeof(buf))) != 0)
	{
		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			break;
		}
		if (err.len < 8192)
			strbuf_add(&err, buf, (size_t) n);
	}
	close(errpipe[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
		{
			status = -1;
			break;
		}
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

char *
proc_find_pg_program(const char *bindir, const char *name, int min_major)
{
	if (bindir && bindir[0])
		return xasprintf("%s/%s", bindir, name);
	for (int v = 30; v >= min_major && v >= 10; v--)
	{
		char	   *p = xasprintf("/usr/lib/postgresql/%d/bin/%s", v, name);

		if (access(p, X_OK) == 0)
			return p;
		free(p);
	}
	return xstrdup(name);
}
