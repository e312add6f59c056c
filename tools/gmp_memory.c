/* Memory for the commands that use GMP: what they may use, and GMP
 * allocation that never aborts (GMP cannot report a failed allocation, so
 * they print a clear message and exit 1 instead of letting GMP abort). */
#include "cli.h"

#include <gmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static const char *gmp_command = "";

static void no_memory(void)
{
    char msg[128];
    int n = snprintf(msg, sizeof msg, "morsel: %s: out of memory\n", gmp_command);
    if (n > 0 && write(STDERR_FILENO, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1)) {
    }
    _exit(CLI_FAIL);
}

static void *gmp_alloc(size_t size)
{
    void *p = malloc(size);
    if (!p) no_memory();
    return p;
}

static void *gmp_realloc(void *ptr, size_t old, size_t size)
{
    (void)old;
    void *p = realloc(ptr, size);
    if (!p) no_memory();
    return p;
}

static void gmp_free(void *ptr, size_t size)
{
    (void)size;
    free(ptr);
}

void cli_gmp_exit_on_oom(const char *command)
{
    gmp_command = command;
    mp_set_memory_functions(gmp_alloc, gmp_realloc, gmp_free);
}

/* The memory we may use: physical memory, or less if a limit says so. */
double cli_memory_limit(void)
{
    double phys = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    struct rlimit rl;
    if (!getrlimit(RLIMIT_AS, &rl) && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < phys)
        phys = (double)rl.rlim_cur;
    if (!getrlimit(RLIMIT_DATA, &rl) && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < phys)
        phys = (double)rl.rlim_cur;
    return phys;
}
