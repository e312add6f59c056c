/* morsel lag: a heartbeat. A call runs every --period on a fixed schedule;
 * how late each one starts is the loop's lag. Once a second (or every
 * --report) one line sums it up, followed by the loop's own statistics
 * (mo_loop_stats) and a histogram of the lag in the terminal. --block MS
 * makes one callback per report hold the loop that long, to show what a
 * blocking callback does to the numbers; --watchdog MS reports it as it
 * happens. --json prints each report as one JSON object on one line. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define HIST_ROWS  40 /* rows of powers of two, from 1 us */
#define HIST_WIDTH 40

struct lag {
    mo_loop_t *loop;
    int64_t period;
    int64_t report;
    int64_t block;         /* 0: no blocking callback */
    int64_t watchdog;      /* 0: no watchdog */
    uint64_t reports_left; /* 0: forever */
    bool json;
    int status;
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

static void hist_row(int64_t lo, int64_t hi, uint64_t count, void *arg)
{
    (void)hi;
    uint64_t *rows = arg;
    int row = 0;
    for (int64_t us = lo / MO_USEC(1); us > 0 && row < HIST_ROWS - 1; us >>= 1) row++;
    rows[row] += count;
}

/* Row i of the histogram holds [from, to): [0, 1us), [1us, 2us), ... */
static int64_t row_from(int i)
{
    return i ? MO_USEC(1) << (i - 1) : 0;
}

/* One row per power of two; [*first, *last] the rows with samples. */
static uint64_t hist_rows(mo_loop_t *loop, uint64_t rows[HIST_ROWS], int *first, int *last)
{
    uint64_t most = 0;
    *first = *last = -1;
    mo_loop_stats_buckets(loop, MO_STATS_LAG, hist_row, rows);
    for (int i = 0; i < HIST_ROWS; i++) {
        if (!rows[i]) continue;
        if (*first < 0) *first = i;
        *last = i;
        if (rows[i] > most) most = rows[i];
    }
    return most;
}

static void hist_print(mo_loop_t *loop)
{
    uint64_t rows[HIST_ROWS] = {0};
    int first, last;
    uint64_t most = hist_rows(loop, rows, &first, &last);
    for (int i = first; i >= 0 && i <= last; i++) {
        char lo[32], hi[32], bar[HIST_WIDTH + 1];
        int64_t from = row_from(i), to = row_from(i + 1);
        int len = (int)((rows[i] * HIST_WIDTH + most - 1) / most);
        memset(bar, '#', (size_t)len);
        bar[len] = 0;
        printf("  %8s .. %-8s |%-*s %llu\n", cli_duration(from, lo, sizeof lo),
               cli_duration(to, hi, sizeof hi), HIST_WIDTH, bar, (unsigned long long)rows[i]);
    }
}

static void summary_print(const char *name, const struct mo_stats_summary *s, const char *unit)
{
    char a[32], b[32], c[32], d[32];
    printf("  %-10s p50 %-8s p99 %-8s p99.9 %-8s max %-8s (%llu %s)\n", name,
           cli_duration(s->p50, a, sizeof a), cli_duration(s->p99, b, sizeof b),
           cli_duration(s->p999, c, sizeof c), cli_duration(s->max, d, sizeof d),
           (unsigned long long)s->count, unit);
}

/* One report as one line of JSON (the field names are in morsel(1)). */
static void lag_print_json(struct lag *g)
{
    bool first = true;
    printf("{");
    cli_json_u64(stdout, &first, "beats", g->n);
    cli_json_us(stdout, &first, "min_us", g->n ? g->min : 0);
    cli_json_us(stdout, &first, "avg_us", g->n ? g->sum / (int64_t)g->n : 0);
    cli_json_us(stdout, &first, "max_us", g->max);
    struct mo_loop_stats st;
    if (mo_loop_stats(g->loop, &st) == 0) {
        cli_json_summary(stdout, "loop_lag", &st.lag);
        cli_json_summary(stdout, "callbacks", &st.callback);
        uint64_t rows[HIST_ROWS] = {0};
        int lo, hi;
        hist_rows(g->loop, rows, &lo, &hi);
        printf(",\"histogram\":[");
        for (int i = lo; i >= 0 && i <= hi; i++) {
            bool f = true;
            printf("%s{", i == lo ? "" : ",");
            cli_json_us(stdout, &f, "from_us", row_from(i));
            cli_json_us(stdout, &f, "to_us", row_from(i + 1));
            cli_json_u64(stdout, &f, "count", rows[i]);
            printf("}");
        }
        printf("]");
        mo_loop_stats_reset(g->loop);
    }
    printf("}\n");
}

static void lag_print(struct lag *g)
{
    char a[32], b[32], c[32];
    printf("lag: %llu beats  min %s  avg %s  max %s\n", (unsigned long long)g->n,
           cli_duration(g->min, a, sizeof a),
           cli_duration(g->n ? g->sum / (int64_t)g->n : 0, b, sizeof b),
           cli_duration(g->max, c, sizeof c));
    struct mo_loop_stats st;
    if (mo_loop_stats(g->loop, &st) == 0) {
        summary_print("loop lag", &st.lag, "timers");
        summary_print("callbacks", &st.callback, "calls");
        hist_print(g->loop);
        mo_loop_stats_reset(g->loop);
    }
}

/* Prints a report; false if stdout failed (reported; the run must end). */
static bool lag_report(struct lag *g)
{
    if (g->json)
        lag_print_json(g);
    else
        lag_print(g);
    if (fflush(stdout) == 0 && !ferror(stdout)) return true;
    cli_write_failed("lag", NULL, errno ? errno : EIO);
    return false;
}

/* Holds the loop for --block ms, once per report, halfway between two. */
static void lag_block(mo_loop_t *loop, void *arg)
{
    struct lag *g = arg;
    int64_t start = mo_hrtime();
    while (mo_hrtime() - start < g->block) {
    }
    int err = mo_call_later(loop, g->report, lag_block, g, NULL);
    if (err) cli_error("lag", "cannot schedule: %s", mo_strerror(err));
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
        errno = 0;
        if (!lag_report(g)) {
            g->status = CLI_FAIL;
            mo_loop_stop(loop);
            return;
        }
        lag_reset(g);
        g->next_report += g->report;
        if (g->reports_left && --g->reports_left == 0) {
            mo_loop_stop(loop);
            return;
        }
    }
    g->next_deadline += g->period;
    int err = mo_call_at(loop, g->next_deadline, lag_beat, g, NULL);
    if (err) cli_error("lag", "cannot schedule: %s", mo_strerror(err));
}

static void lag_usage(FILE *out)
{
    fprintf(out, "usage: morsel lag [--period MS] [--report MS] [--count N] [--block MS]\n"
                 "                 [--watchdog MS] [--slack US] [--json]\n\n"
                 "Runs a call every --period milliseconds and prints, every --report\n"
                 "milliseconds, how late those calls started, the loop's lag and\n"
                 "callback-duration percentiles, and a histogram of the lag.\n\n"
                 "  -p, --period MS    the heartbeat's period (default 10)\n"
                 "  -r, --report MS    time between reports (default 1000)\n"
                 "  -n, --count N      stop after N reports (default: never; Ctrl-C ends it)\n"
                 "  -b, --block MS     one callback per report holds the loop MS milliseconds\n"
                 "  -w, --watchdog MS  report on stderr, while it runs, any callback holding\n"
                 "                     the loop longer than MS milliseconds\n"
                 "  -s, --slack US     let the loop sleep up to US microseconds past a deadline,\n"
                 "                     as loops do by default (250); here the default is 0, so\n"
                 "                     that the lag shown is what the loop and the machine add\n"
                 "      --json         each report as one JSON object per line (fields in\n"
                 "                     morsel(1); times in microseconds, named *_us)\n"
                 "  -h, --help         this help\n"
                 "  -V, --version      the version\n");
}

/* --period, --report, --block, --watchdog: milliseconds, 1 to an hour. */
static bool lag_parse_ms(struct lag *g, int opt, const char *text)
{
    static const char *const names[] = {"period", "report", "block", "watchdog"};
    int64_t *fields[] = {&g->period, &g->report, &g->block, &g->watchdog};
    int i = opt == 'p' ? 0 : opt == 'r' ? 1 : opt == 'b' ? 2 : 3;
    uint64_t v;
    if (!cli_parse_u64(text, 3600000, &v) || v == 0) {
        cli_usage_error("lag", "--%s takes a whole number of milliseconds from 1 to 3600000",
                        names[i]);
        return false;
    }
    *fields[i] = MO_MSEC(v);
    return true;
}

enum { OPT_JSON = 256 };

/* Returns -1 to go on, or the exit status. */
static int lag_parse(struct lag *g, uint64_t *slack_us, int argc, char **argv)
{
    static const struct option opts[] = {{"period", required_argument, NULL, 'p'},
                                         {"report", required_argument, NULL, 'r'},
                                         {"count", required_argument, NULL, 'n'},
                                         {"block", required_argument, NULL, 'b'},
                                         {"watchdog", required_argument, NULL, 'w'},
                                         {"slack", required_argument, NULL, 's'},
                                         {"json", no_argument, NULL, OPT_JSON},
                                         CLI_STD_OPTIONS,
                                         {NULL, 0, NULL, 0}};
    int c, status;
    optind = 1;
    while ((c = cli_getopt("lag", lag_usage, argc, argv, "p:r:n:b:w:s:hV", opts, &status)) !=
           CLI_OPT_END) {
        switch (c) {
        case CLI_OPT_EXIT:
            return status;
        case 'p':
        case 'r':
        case 'b':
        case 'w':
            if (!lag_parse_ms(g, c, optarg)) return CLI_USAGE;
            break;
        case 's':
            if (!cli_parse_u64(optarg, 1000000, slack_us))
                return cli_usage_error(
                    "lag", "--slack takes a whole number of microseconds from 0 to 1000000");
            break;
        case 'n':
            if (!cli_parse_u64(optarg, UINT64_MAX, &g->reports_left) || !g->reports_left)
                return cli_usage_error("lag", "--count takes a whole number above 0");
            break;
        case OPT_JSON:
            g->json = true;
            break;
        }
    }
    if (optind < argc) return cli_usage_error("lag", "unexpected argument '%s'", argv[optind]);
    return -1;
}

int cli_lag(int argc, char **argv)
{
    struct lag g = {.period = MO_MSEC(10), .report = MO_SEC(1)};
    uint64_t slack_us = 0;
    int status = lag_parse(&g, &slack_us, argc, argv);
    if (status >= 0) return status;
    mo_loop_t *loop;
    int err = mo_loop_new(&loop, 0);
    if (err) {
        cli_error("lag", "cannot create a loop: %s", mo_strerror(err));
        return CLI_FAIL;
    }
    g.loop = loop;
    (void)mo_loop_set_timer_slack(loop, MO_USEC(slack_us)); /* in range: cannot fail */
    lag_reset(&g);
    g.next_deadline = mo_loop_now(loop) + g.period;
    g.next_report = mo_loop_now(loop) + g.report;
    err = mo_call_at(loop, g.next_deadline, lag_beat, &g, NULL);
    if (!err && g.block) err = mo_call_later(loop, g.report / 2, lag_block, &g, NULL);
    if (!err && g.watchdog) err = mo_watchdog_start(loop, g.watchdog, NULL, NULL);
    if (!err) err = mo_loop_run(loop, MO_RUN_DEFAULT);
    mo_loop_free(loop);
    if (err) {
        cli_error("lag", "%s", mo_strerror(err));
        return CLI_FAIL;
    }
    return g.status;
}
