/* morsel: the command-line tool. Dispatches to the subcommands. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"lag", cli_lag, "watch the loop's timer lateness (a heartbeat)"},
    {"factorial", cli_factorial, "print N! without ever blocking the loop"},
    {"walk", cli_walk, "print every path under directories, as find does, on a loop"},
    {"serve", cli_serve, "a line-protocol server: ping, factorial, walk, stats"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: morsel [--help] [--version] COMMAND [ARGS...]\n\n"
                 "Keep an event loop responsive while long work runs.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'morsel COMMAND --help' describes a command.\n");
}

void cli_error(const char *command, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "morsel: %s%s", command ? command : "", command ? ": " : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

bool cli_parse_u64(const char *text, uint64_t max, uint64_t *out)
{
    if (!text || *text < '0' || *text > '9') return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end || v > max) return false;
    *out = v;
    return true;
}

const char *cli_duration(int64_t ns, char *buf, unsigned size)
{
    if (ns < MO_USEC(1))
        snprintf(buf, size, "%lldns", (long long)ns);
    else if (ns < MO_MSEC(1))
        snprintf(buf, size, "%.1fus", ns / 1e3);
    else if (ns < MO_SEC(1))
        snprintf(buf, size, "%.2fms", ns / 1e6);
    else
        snprintf(buf, size, "%.2fs", ns / 1e9);
    return buf;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return CLI_OK;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
        printf("morsel %s\n", mo_version_string());
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(cmd, commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    cli_error(NULL, "unknown command '%s' (see 'morsel --help')", cmd);
    return CLI_USAGE;
}
