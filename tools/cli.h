/* The morsel command line: what every subcommand shares. Options, errors,
 * the checked end of standard output, SIGPIPE, and the clean-up that a
 * fatal signal runs (a progress line to erase, a temporary file to remove).
 *
 * Conventions every command keeps (README "The command line", morsel(1)):
 * exit status 0 success, 1 failure at run time, 2 usage error; errors on
 * stderr as "morsel: CMD: message", naming the object; every write checked,
 * to the final close of stdout; a reader that goes away kills the command
 * with SIGPIPE, silently, as it does find and coreutils (unless SIGPIPE was
 * ignored when it started: then "Broken pipe" and exit 1). */
#ifndef MORSEL_CLI_H
#define MORSEL_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "morsel.h"

/* Exit codes, as a Unix tool's: 0 success, 1 failure at run time, 2 usage. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Each subcommand: argv[0] is its own name. */
int cli_lag(int argc, char **argv);
int cli_factorial(int argc, char **argv);
int cli_walk(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_demo(int argc, char **argv);

/* The memory a command may use, in bytes: physical memory, or less if
 * RLIMIT_AS or RLIMIT_DATA says so (gmp_memory.c). */
double cli_memory_limit(void);

/* Makes GMP's allocations exit 1 with "morsel: <command>: out of memory"
 * instead of aborting (gmp_memory.c). command must stay valid. */
void cli_gmp_exit_on_oom(const char *command);

/* Prepares the process, first thing in main(): opens /dev/null on any of
 * descriptors 0-2 that is closed (stdin write-only, stdout and stderr
 * read-only, so that a write to a closed stdout fails with EBADF instead of
 * going to a descriptor the loop opened); notes whether SIGPIPE is ignored;
 * installs the clean-up of fatal signals; LC_CTYPE from the environment
 * (for fnmatch, as find does). */
void cli_init(void);

/* Ends the command: flushes and closes stdout and checks it (a full disk,
 * a closed descriptor). Returns `status`, or CLI_FAIL if stdout failed (the
 * error then printed, unless a command reported it already). */
int cli_finish(const char *command, int status);

/* Prints "morsel: <command>: message" on stderr ("morsel: message" when
 * command is NULL), erasing the progress line first if one is shown. */
void cli_error(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A usage error: the message, then "Try 'morsel <command> --help' for more
 * information."; returns CLI_USAGE. */
int cli_usage_error(const char *command, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A write failed with errno `err`. EPIPE: the command dies of SIGPIPE, as
 * find does, unless SIGPIPE was ignored at start; otherwise (and then)
 * prints "morsel: <command>: cannot write to <file or standard output>:
 * <reason>" (file NULL: standard output). Loop (main) thread. */
void cli_write_failed(const char *command, const char *file, int err);

/* write(2) of all `len` bytes, retrying on EINTR; 0 or the errno. */
int cli_write_all(int fd, const void *buf, size_t len);

/* ---- options ---- */

/* The two options every command has; put them in its long options, and
 * "hV" in its short ones. */
#define CLI_STD_OPTIONS                                                                            \
    {"help", no_argument, NULL, 'h'},                                                              \
    {                                                                                              \
        "version", no_argument, NULL, 'V'                                                          \
    }

/* What cli_getopt() returns besides an option: the options are over, or
 * the command is to exit with *status. */
enum { CLI_OPT_END = -1, CLI_OPT_EXIT = -2 };

/* getopt_long with the tool's own messages. Handles -h/--help (usage(stdout))
 * and -V/--version; an unknown option or a missing argument prints
 * "morsel: CMD: unknown option '--x'" (or "option '--x' needs an argument")
 * and the hint. Returns the next option, CLI_OPT_END, or CLI_OPT_EXIT with
 * *status set (CLI_OK after help or version, CLI_USAGE after an error).
 * Reset optind to 1 before the first call. */
int cli_getopt(const char *command, void (*usage)(FILE *out), int argc, char **argv,
               const char *shortopts, const struct option *longopts, int *status);

/* Parses a whole non-negative decimal number no larger than max; false on
 * anything else (sign, junk, overflow). */
bool cli_parse_u64(const char *text, uint64_t max, uint64_t *out);

/* Parses a non-negative decimal number ("2", "0.5") of `unit` ns (MO_SEC(1)
 * for seconds) no larger than max units, into *ns; false on anything else. */
bool cli_parse_time(const char *text, int64_t unit, double max, int64_t *ns);

/* ---- formatting ---- */

/* Formats a duration in ns compactly ("850ns", "12.3us", "4.05ms", "1.20s"). */
const char *cli_duration(int64_t ns, char *buf, unsigned size);

/* Appends to a JSON object being built on `out`: `"name":value` with the
 * value in microseconds, three decimals (the field names carry their unit:
 * "p99_us"). `first` tells whether a comma is needed. */
void cli_json_us(FILE *out, bool *first, const char *name, int64_t ns);
void cli_json_u64(FILE *out, bool *first, const char *name, uint64_t v);

/* Appends `,"name":{"count":N,"p50_us":...,"p99_us":...,"p999_us":...,
 * "max_us":...}` (a statistics summary, stats.h) to a JSON object. */
void cli_json_summary(FILE *out, const char *name, const struct mo_stats_summary *s);

/* ---- clean-up on fatal signals (SIGHUP, SIGINT, SIGQUIT, SIGPIPE,
 * SIGTERM, SIGXFSZ, unless ignored at start): the handler erases the
 * progress line if one is shown, removes the registered temporary file,
 * then dies of the signal with its default action. ---- */

/* Whether a progress line is on the terminal now (progress.c keeps it). */
void cli_cleanup_line(bool shown);

/* The temporary file to remove (copied; NULL: none). Returns false if the
 * path is too long to register. */
bool cli_cleanup_file(const char *path);

#endif
