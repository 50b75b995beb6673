/* placeholder, replaced by the clone implementation */
#include "cli.h"
#include "exitcode.h"
int cli_clone(FerryConfig *cfg) { (void) cfg; return EXIT_FAILED; }
