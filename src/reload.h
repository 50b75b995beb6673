/*
 * reload.h: SIGHUP in `ferry start` (systemctl reload): re-read the
 * --config file and apply what may change while running (config.h:
 * config_reload_live()).
 *
 * Design. The signal handler only writes a byte to a pipe (async-signal-
 * safe); a "reload" thread waits on that pipe, re-reads the file and
 * applies it, so the work happens outside the handler and the stages are
 * never interrupted for it. A file that does not load (bad YAML, unknown
 * key, unreadable) is reported in one line and the old settings stay:
 * a reload never stops ferry. Without --config a reload says that nothing
 * can be reloaded.
 */
#ifndef FERRY_RELOAD_H
#define FERRY_RELOAD_H

#include <stdbool.h>

#include "config.h"

/*
 * Install the SIGHUP handler and start the reload thread, which updates
 * *cfg (kept alive by the caller until reload_stop()). False (logged) if
 * the thread or pipe cannot be made.
 */
bool		reload_start(FerryConfig *cfg);
/* Stop the thread; SIGHUP is ignored from then on. */
void		reload_stop(void);

#endif
