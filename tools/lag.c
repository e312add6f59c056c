/* morsel lag: a heartbeat. A call runs every --period on a fixed schedule;
 * how late each one starts is the loop's lag. Once a second (or every
 * --report) one line sums it up. */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

struct lag {
    int64_t period;
    int64_t report;
    uint64_t reports_left; /* 0: forever */
    int64_t next_deadline;
    int64_t next_report;
    uint64_t n;
    int64_t sum, min, max;
};

static void lag_reset(struct lag *g)
{
    g->n = 0;
    g->sum = 0;
    g->min = INT64_MAX;
    g->max = 0;
}

static void lag_print(struct lag *g)
{
    char a[32], b[32], c[32];
    printf("lag: %llu beats  min %s  avg %s  max %s\n", (unsigned long long)g->n,
           cli_duration(g->min, a, sizeof a),
           cli_duration(g->n ? g->sum / (int64_t)g->n : 0, b, sizeof b),
           cli_duration(g->max, c, sizeof c));
    fflush(stdout);
}

static void lag_beat(mo_loop_t *loop, void *arg)
{
    struct lag *g = arg;
    int64_t late = mo_hrtime() - g->next_deadline;
    g->n++;
    g->sum += late;
    if (late < g->min) g->min = late;
    if (late > g->max) g->max = late;
    if (g->next_deadline >= g->next_report) {
        lag_print(g);
        lag_reset(g);
        g->next_report += g->report;
        if (g->reports_left && --g->reports_left == 0) return;
    }
    g->next_deadline += g->period;
    int err = mo_call_at(loop, g->next_deadline, lag_beat, g, NULL);
    if (err) cli_error("lag", "cannot schedule: %s", mo_strerror(err));
}

static void lag_usage(FILE *out)
{
    fprintf(out, "usage: morsel lag [--period MS] [--report MS] [--count N]\n\n"
                 "Runs a call every --period milliseconds (default 10) and prints, every\n"
                 "--report milliseconds (default 1000), how late those calls started.\n"
                 "Stops after --count reports (default: never; Ctrl-C ends it).\n");
}

int cli_lag(int argc, char **argv)
{
    static const struct option opts[] = {{"period", required_argument, NULL, 'p'},
                                         {"report", required_argument, NULL, 'r'},
                                         {"count", required_argument, NULL, 'n'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    struct lag g = {.period = MO_MSEC(10), .report = MO_SEC(1)};
    uint64_t v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "p:r:n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
        case 'r':
            if (!cli_parse_u64(optarg, 3600000, &v) || v == 0) {
                cli_error("lag", "--%s takes a whole number of milliseconds from 1 to 3600000",
                          c == 'p' ? "period" : "report");
                return CLI_USAGE;
            }
            *(c == 'p' ? &g.period : &g.report) = MO_MSEC(v);
            break;
        case 'n':
            if (!cli_parse_u64(optarg, UINT64_MAX, &g.reports_left) || !g.reports_left) {
                cli_error("lag", "--count takes a whole number above 0");
                return CLI_USAGE;
            }
            break;
        case 'h':
            lag_usage(stdout);
            return CLI_OK;
        default:
            lag_usage(stderr);
            return CLI_USAGE;
        }
    }
    if (optind < argc) {
        cli_error("lag", "unexpected argument '%s'", argv[optind]);
        return CLI_USAGE;
    }
    mo_loop_t *loop;
    int err = mo_loop_new(&loop, 0);
    if (err) {
        cli_error("lag", "cannot create a loop: %s", mo_strerror(err));
        return CLI_FAIL;
    }
    lag_reset(&g);
    g.next_deadline = mo_loop_now(loop) + g.period;
    g.next_report = mo_loop_now(loop) + g.report;
    err = mo_call_at(loop, g.next_deadline, lag_beat, &g, NULL);
    if (!err) err = mo_loop_run(loop, MO_RUN_DEFAULT);
    mo_loop_free(loop);
    if (err) {
        cli_error("lag", "%s", mo_strerror(err));
        return CLI_FAIL;
    }
    return CLI_OK;
}
