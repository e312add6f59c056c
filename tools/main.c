/* morsel: the command-line tool. Dispatches to the subcommands; a new one
 * is a line in `commands`, a tools/<command>.c, a section of man/morsel.1
 * and a line in each of completions/ (the tests check that they agree). */
#include "cli.h"

#include <string.h>

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"lag", cli_lag, "watch the loop's timer lateness (a heartbeat)"},
    {"factorial", cli_factorial, "print N! without ever blocking the loop"},
    {"walk", cli_walk, "print the paths under directories, as find does, on a loop"},
    {"serve", cli_serve, "a line-protocol server: ping, factorial, walk, stats"},
    {"demo", cli_demo, "a responsive server against a blocking one, in figures"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: morsel [--help] [--version] COMMAND [ARGS...]\n\n"
                 "Keep an event loop responsive while long work runs.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'morsel COMMAND --help' describes a command; 'man morsel' all of them.\n");
}

static int run(int argc, char **argv, const char **name)
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
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(cmd, commands[i].name) != 0) continue;
        *name = commands[i].name;
        return commands[i].run(argc - 1, argv + 1);
    }
    if (cmd[0] == '-') return cli_usage_error(NULL, "unknown option '%s'", cmd);
    return cli_usage_error(NULL, "unknown command '%s'", cmd);
}

int main(int argc, char **argv)
{
    cli_init();
    const char *name = NULL;
    int status = run(argc, argv, &name);
    return cli_finish(name, status);
}
