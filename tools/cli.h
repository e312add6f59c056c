/* The morsel command line: shared helpers of the subcommands. */
#ifndef MORSEL_CLI_H
#define MORSEL_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "morsel.h"

/* Exit codes, as a Unix tool's: 0 success, 1 failure at run time, 2 usage. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Each subcommand: argv[0] is its own name. */
int cli_lag(int argc, char **argv);
int cli_factorial(int argc, char **argv);
int cli_walk(int argc, char **argv);
int cli_serve(int argc, char **argv);

/* The memory a command may use, in bytes: physical memory, or less if
 * RLIMIT_AS or RLIMIT_DATA says so (gmp_memory.c). */
double cli_memory_limit(void);

/* Makes GMP's allocations exit 1 with "morsel: <command>: out of memory"
 * instead of aborting (gmp_memory.c). command must stay valid. */
void cli_gmp_exit_on_oom(const char *command);

/* Prints "morsel: <command>: message" on stderr. */
void cli_error(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses a whole non-negative decimal number no larger than max; false on
 * anything else (sign, junk, overflow). */
bool cli_parse_u64(const char *text, uint64_t max, uint64_t *out);

/* Formats a duration in ns compactly ("850ns", "12.3us", "4.05ms", "1.20s"). */
const char *cli_duration(int64_t ns, char *buf, unsigned size);

#endif
