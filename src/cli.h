/*
 * cli.h: the command table. Each command lives in its own cli_<name>.c with
 * a run function; only main.c and the cli_*.c files exit or choose exit
 * codes (exitcode.h).
 */
#ifndef FERRY_CLI_H
#define FERRY_CLI_H

#include <stdbool.h>

#include "config.h"

#define FERRY_VERSION "0.1.0"

/* Option groups: a command accepts the global options plus its own flags. */
#define OPT_GLOBAL	0x0
#define OPT_CHECK	0x1
#define OPT_CLONE	0x2
#define OPT_START	0x4
#define OPT_STATUS	0x8
#define OPT_VERIFY	0x10
#define OPT_CLEANUP	0x20
#define OPT_SWITCHOVER	0x40
#define OPT_ROLLBACK	0x80
#define OPT_PLAN	0x400

typedef struct Command
{
	const char *name;
	const char *summary;
	const char *description;	/* paragraph for `ferry COMMAND --help` */
	unsigned	group;			/* which OPT_* options it takes */
	int			(*run) (FerryConfig *cfg);
} Command;

int			cli_check(FerryConfig *cfg);
int			cli_clone(FerryConfig *cfg);
int			cli_start(FerryConfig *cfg);
int			cli_status(FerryConfig *cfg);
int			cli_cleanup(FerryConfig *cfg);
int			cli_verify(FerryConfig *cfg);
/* verify and print the report; true when identical (also used by switchover --verify) */
bool		cli_verify_all(FerryConfig *cfg);
int			cli_switchover(FerryConfig *cfg);
int			cli_rollback(FerryConfig *cfg);
/* `ferry cleanup --force` */
void		cli_cleanup_set_force(bool on);
int			cli_plan(FerryConfig *cfg);

/* `ferry status --watch [--interval SECONDS]` */
void		cli_status_set_watch(bool on);
void		cli_status_set_exact(bool on);
void		cli_status_set_interval(int seconds);
/* collects `ferry verify --table PATTERN` (repeatable) */
void		cli_verify_add_table(const char *pattern);

struct json_t;
/* A JSON string of s (NULL: null); bytes that are not valid UTF-8 become '?'. */
struct json_t *cli_json_text(const char *s);

#endif
