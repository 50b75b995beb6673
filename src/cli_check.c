/* placeholder, replaced by the check implementation */
#include "cli.h"
#include "exitcode.h"
int cli_check(FerryConfig *cfg) { (void) cfg; return EXIT_FAILED; }
