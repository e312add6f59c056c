/* morsel serve: the server of serve.c on the main thread, as a command.
 * Prints "listening on ADDR" for each listener on stdout (flushed) before
 * anything else, logs one line per connection on stderr, and shuts down
 * cleanly on SIGINT or SIGTERM: it stops accepting, closes idle
 * connections, lets answers in progress finish for up to --grace seconds,
 * then exits 0. A second signal cuts the grace short. */
#include "cli.h"

#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gmp.h>

#include "serve.h"

static const char *const cmd = "serve";

struct serve_cli {
    struct serve_opts o;
    int64_t grace;
    int64_t watchdog; /* 0: none */
    mo_loop_t *loop;
    struct server *srv;
    mo_io_id sig_id;
    int signals;
    bool stopped;
};

/* ---- signals, through a pipe the loop watches ---- */

static int sig_pipe[2] = {-1, -1};

static void on_signal(int signo)
{
    int saved = errno;
    unsigned char b = (unsigned char)signo;
    ssize_t n = write(sig_pipe[1], &b, 1);
    (void)n;
    errno = saved;
}

static void stopped(void *arg)
{
    struct serve_cli *c = arg;
    c->stopped = true;
    mo_io_stop(c->loop, c->sig_id); /* nothing is left: mo_loop_run() returns */
}

static void on_sig_readable(mo_loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop, (void)events;
    struct serve_cli *c = arg;
    unsigned char b;
    if (read(fd, &b, 1) != 1) return;
    c->signals++;
    fprintf(stderr, "serve: %s: %s\n", b == SIGINT ? "SIGINT" : "SIGTERM",
            c->signals == 1 ? "shutting down" : "aborting what still runs");
    serve_stop(c->srv, c->signals == 1 ? c->grace : 0, stopped, c);
}

static int signals_setup(struct serve_cli *c)
{
    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return -errno;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGINT, &sa, NULL) || sigaction(SIGTERM, &sa, NULL)) return -errno;
    return mo_io_start(c->loop, sig_pipe[0], MO_READABLE, on_sig_readable, c, &c->sig_id);
}

/* ---- options ---- */

static void serve_usage(FILE *f)
{
    fprintf(f, "usage: morsel serve [--listen ADDR] [--unix PATH] [--max-connections N]\n"
               "                    [--root DIR] [--grace SECONDS] [--blocking | --steps K]\n\n"
               "Serves a line protocol (docs/protocol.md) on an event loop: 'ping',\n"
               "'factorial N' (the digits of N!, streamed), 'walk DIR' (the paths under DIR,\n"
               "streamed), 'stats' (the loop's lag). Prints 'listening on ADDR' first; logs\n"
               "one line per connection on stderr; stops on SIGINT or SIGTERM.\n\n"
               "  --listen ADDR        TCP address (default 127.0.0.1:0: a free port);\n"
               "                       with --unix alone, no TCP\n"
               "  --unix PATH          listen on a Unix socket too\n"
               "  --max-connections N  answer further connections with an error and close\n"
               "  --root DIR           walk requests are relative to DIR and stay below it\n"
               "                       (default: relative to ., anywhere)\n"
               "  --grace SECONDS      on a signal, let answers finish this long (default 5)\n"
               "  --threads T          factorial worker threads (default: one per CPU)\n"
               "  --heartbeat MS       the timer whose lateness 'stats' reports (default 1)\n"
               "  --watchdog MS        report on stderr a callback that holds the loop longer\n"
               "  --blocking           compute each request in one callback (a lesson)\n"
               "  --steps K            factorial as the seed's optFactorial, K products per call\n"
               "  -h, --help           this help\n"
               "  -V, --version        the version\n\n"
               "A second signal aborts what still runs. Errors go to stderr; the exit status\n"
               "is 1 if the server cannot start, 2 for a usage error, 0 otherwise.\n");
}

enum {
    OPT_LISTEN = 256,
    OPT_UNIX,
    OPT_MAX,
    OPT_ROOT,
    OPT_GRACE,
    OPT_THREADS,
    OPT_HEARTBEAT,
    OPT_WATCHDOG,
    OPT_BLOCKING,
    OPT_STEPS
};

static int parse_option(int c, struct serve_cli *s)
{
    uint64_t v;
    switch (c) {
    case OPT_LISTEN:
        s->o.listen = optarg;
        return 0;
    case OPT_UNIX:
        s->o.unix_path = optarg;
        return 0;
    case OPT_ROOT:
        s->o.root = optarg;
        return 0;
    case OPT_BLOCKING:
        s->o.mode = SERVE_BLOCKING;
        return 0;
    case OPT_MAX:
        if (cli_parse_u64(optarg, 1000000, &v) && v) return s->o.max_connections = (unsigned)v, 0;
        return cli_usage_error(cmd, "--max-connections takes a whole number from 1 to 1000000");
    case OPT_GRACE:
        if (cli_parse_time(optarg, MO_SEC(1), 86400, &s->grace)) return 0;
        return cli_usage_error(cmd, "--grace takes a number of seconds from 0 to 86400");
    case OPT_THREADS:
        if (cli_parse_u64(optarg, 256, &v) && v) return s->o.threads = (unsigned)v, 0;
        return cli_usage_error(cmd, "--threads takes a whole number from 1 to 256");
    case OPT_HEARTBEAT:
        if (cli_parse_u64(optarg, 60000, &v)) return s->o.heartbeat = v ? MO_MSEC(v) : -1, 0;
        return cli_usage_error(cmd, "--heartbeat takes milliseconds from 0 (none) to 60000");
    case OPT_WATCHDOG:
        if (cli_parse_u64(optarg, 60000, &v) && v) return s->watchdog = MO_MSEC(v), 0;
        return cli_usage_error(cmd, "--watchdog takes milliseconds from 1 to 60000");
    case OPT_STEPS:
        if (cli_parse_u64(optarg, UINT32_MAX, &v) && v) {
            s->o.mode = SERVE_STEPS;
            s->o.steps = (unsigned long)v;
            return 0;
        }
        return cli_usage_error(cmd, "--steps takes a whole number from 1 to 4294967295");
    default:
        return CLI_USAGE;
    }
}

/* Returns -1 to go on, or the exit status. */
static int parse(int argc, char **argv, struct serve_cli *s)
{
    static const struct option longopts[] = {{"listen", required_argument, NULL, OPT_LISTEN},
                                             {"unix", required_argument, NULL, OPT_UNIX},
                                             {"max-connections", required_argument, NULL, OPT_MAX},
                                             {"root", required_argument, NULL, OPT_ROOT},
                                             {"grace", required_argument, NULL, OPT_GRACE},
                                             {"threads", required_argument, NULL, OPT_THREADS},
                                             {"heartbeat", required_argument, NULL, OPT_HEARTBEAT},
                                             {"watchdog", required_argument, NULL, OPT_WATCHDOG},
                                             {"blocking", no_argument, NULL, OPT_BLOCKING},
                                             {"steps", required_argument, NULL, OPT_STEPS},
                                             CLI_STD_OPTIONS,
                                             {NULL, 0, NULL, 0}};
    int c, status, modes = 0;
    optind = 1;
    while ((c = cli_getopt(cmd, serve_usage, argc, argv, "hV", longopts, &status)) != CLI_OPT_END) {
        if (c == CLI_OPT_EXIT) return status;
        modes += c == OPT_BLOCKING || c == OPT_STEPS;
        int r = parse_option(c, s);
        if (r) return r;
    }
    if (modes > 1) return cli_usage_error(cmd, "--blocking and --steps go one at a time");
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!s->o.listen && !s->o.unix_path) s->o.listen = "127.0.0.1:0";
    return -1;
}

static int serve_run(struct serve_cli *s)
{
    const char *what = "cannot create a loop";
    int err = mo_loop_new(&s->loop, 0);
    if (!err) err = serve_start(s->loop, &s->o, &s->srv, &what);
    if (!err && (err = signals_setup(s)) != 0) what = "cannot catch signals";
    if (!err && s->watchdog && (err = mo_watchdog_start(s->loop, s->watchdog, NULL, NULL)) != 0)
        what = "cannot start the watchdog";
    if (err) {
        cli_error(cmd, "%s: %s", what, mo_strerror(err));
        serve_free(s->srv);
        if (s->loop) mo_loop_run(s->loop, MO_RUN_NOWAIT);
        mo_loop_free(s->loop);
        return CLI_FAIL;
    }
    if (serve_tcp_address(s->srv)) printf("listening on %s\n", serve_tcp_address(s->srv));
    if (serve_unix_address(s->srv)) printf("listening on %s\n", serve_unix_address(s->srv));
    fflush(stdout);
    err = mo_loop_run(s->loop, MO_RUN_DEFAULT);
    serve_free(s->srv);
    mo_loop_run(s->loop, MO_RUN_DEFAULT); /* the workers' last completions */
    mo_loop_free(s->loop);
    if (err) {
        cli_error(cmd, "%s", mo_strerror(err));
        return CLI_FAIL;
    }
    return CLI_OK;
}

int cli_serve(int argc, char **argv)
{
    struct serve_cli s = {.o = {.log = stderr}, .grace = MO_SEC(5)};
    int rc = parse(argc, argv, &s);
    if (rc >= 0) return rc;
    cli_gmp_exit_on_oom(cmd);
    rc = serve_run(&s);
    if (sig_pipe[0] >= 0) {
        close(sig_pipe[0]);
        close(sig_pipe[1]);
    }
    return rc;
}
