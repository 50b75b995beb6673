/*
 * reload.c: SIGHUP handling for `ferry start` (see reload.h).
 */
#include "reload.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"

#define RELOAD_BYTE 'h'
#define STOP_BYTE 's'

static int	reload_pipe[2] = {-1, -1};
static pthread_t reload_thread;
static bool reload_running;

static void
handle_hup(int signo)
{
	int			saved = errno;
	char		c = RELOAD_BYTE;

	(void) signo;
	/* a full pipe already holds a pending reload */
	if (write(reload_pipe[1], &c, 1) < 0)
	{
	}
	errno = saved;
}

/* Re-read the file and apply it; never fails the process. */
static void
reload_now(FerryConfig *cfg)
{
	FerryConfig fresh;
	char	   *err = NULL;
	char	   *changed;

	if (cfg->config_file == NULL)
	{
		log_info("SIGHUP: no --config file, nothing to reload");
		return;
	}
	config_init(&fresh);
	if (!config_reread(cfg, &fresh, &err))
	{
		log_error("SIGHUP: could not reload %s, keeping the current settings. Fix: correct the file and send SIGHUP again", err);
		free(err);
		config_release(&fresh);
		return;
	}
	changed = config_reload_live(cfg, &fresh);
	log_info("SIGHUP: reloaded %s: %s", cfg->config_file,
			 changed ? changed : "verbose and log-format unchanged");
	free(changed);
	config_release(&fresh);
}

static void *
reload_main(void *arg)
{
	FerryConfig *cfg = arg;

	log_set_role("reload");
	for (;;)
	{
		char		c;
		ssize_t		n = read(reload_pipe[0], &c, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || c == STOP_BYTE)
			break;
		reload_now(cfg);
	}
	return NULL;
}

bool
reload_start(FerryConfig *cfg)
{
	struct sigaction sa;

	if (pipe2(reload_pipe, O_CLOEXEC) != 0)
	{
		log_error("could not create a pipe for SIGHUP: %s", strerror(errno));
		return false;
	}
	/* the handler must never block: a full pipe means a reload is pending */
	fcntl(reload_pipe[1], F_SETFL, O_NONBLOCK);
	if (pthread_create(&reload_thread, NULL, reload_main, cfg) != 0)
	{
		log_error("could not start the reload thread");
		close(reload_pipe[0]);
		close(reload_pipe[1]);
		reload_pipe[0] = reload_pipe[1] = -1;
		return false;
	}
	reload_running = true;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handle_hup;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGHUP, &sa, NULL);
	return true;
}

void
reload_stop(void)
{
	char		c = STOP_BYTE;

	if (!reload_running)
		return;
	signal(SIGHUP, SIG_IGN);
	/* the stop byte must get through: block until it is written */
	fcntl(reload_pipe[1], F_SETFL, 0);
	while (write(reload_pipe[1], &c, 1) < 0 && errno == EINTR)
		;
	pthread_join(reload_thread, NULL);
	close(reload_pipe[0]);
	close(reload_pipe[1]);
	reload_pipe[0] = reload_pipe[1] = -1;
	reload_running = false;
}
