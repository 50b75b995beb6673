/*
 * exitcode.h: ferry's process exit codes, the contract with scripts and
 * services that drive it. Documented in `ferry --help` and README.md; each
 * one is asserted by a test under tests/t/.
 */
#ifndef FERRY_EXITCODE_H
#define FERRY_EXITCODE_H

#define EXIT_OK			0	/* success */
#define EXIT_FAILED		1	/* the operation failed (server error, lost connection, ...) */
#define EXIT_USAGE		2	/* usage or configuration error: fix the command line or config */
#define EXIT_CHECK		3	/* `ferry check` found blocking problems */

#endif
