/* morsel demo: what morsel is for, in figures. A `morsel serve` runs in
 * this process on a thread of its own; the load client (loadgen.c) on
 * another keeps 16 connections sending `ping` on a fixed timetable and
 * measures every round trip from its scheduled time. Four phases:
 *   1 idle      pings alone: the baseline;
 *   2 morsel    the pings, while other connections ask `factorial N` (the
 *               digits checked against GMP's) and `walk` of a generated
 *               tree (the paths checked against nftw's), all at once;
 *   3 blocking  the same, the server computing each answer in one callback
 *               (serve --blocking);
 *   4 steps     the same, the factorial as the seed's optFactorial (serve
 *               --steps 10): fixed chunks, a product one by one, O(n^2):
 *               the phase is cut at its time limit (not an error).
 * Each mode gets a fresh server. Prints one table, then a histogram of the
 * round trips per phase; --json the figures, --svg a chart. While it runs,
 * a live panel on a terminal (plain lines otherwise). Exit status 0 when
 * phase 2 kept its ping p99 under --p99-limit (5 ms) and every answer was
 * right; 1 with the reason otherwise; 2 usage. SIGINT, SIGTERM and SIGHUP
 * stop it: the threads end, the temporary tree is removed, then it dies of
 * the signal (the shell says 130 for Ctrl-C).
 *
 * Threads: the main thread runs a small loop (the panel, the sequence of
 * phases, the preparation on its pool); the server's loop and the load
 * client's run on threads of their own, started with the termination
 * signals blocked so that these reach the main thread only. */
#include "demo.h"

#include "cli.h"
#include "progress.h"
#include "serve.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const cmd = "demo";

#define PING_CONNS  16
#define PING_PERIOD MO_MSEC(10)
#define SEED_STEPS  10 /* the seed's optFactorial: 10 multiplications a call */
#define HIST_ROWS   17
#define HIST_BAR    8
#define SVG_W       960
#define SVG_H       420
#define SVG_LEFT    64
#define SVG_RIGHT   16
#define SVG_TOP     62
#define SVG_BOTTOM  40
#define STEPS_CUT   MO_SEC(2)  /* the steps phase's time limit beyond its duration */
#define IDLE_SLACK  MO_SEC(30) /* the idle phase's time limit beyond its duration */

static const char *const phase_names[DEMO_PHASES] = {"idle", "morsel", "blocking", "steps"};
static const char *const phase_titles[DEMO_PHASES] = {"1 idle", "2 morsel", "3 blocking",
                                                      "4 seed steps"};
static const char *const mode_names[] = {"sliced", "blocking", "steps"};

/* The servers, one per mode, each for a run of consecutive phases. */
static const struct {
    int mode;
    unsigned first, count;
} groups[] = {
    {SERVE_SLICED, DEMO_IDLE, 2}, {SERVE_BLOCKING, DEMO_BLOCKING, 1}, {SERVE_STEPS, DEMO_STEPS, 1}};
#define NGROUPS (sizeof groups / sizeof groups[0])

/* ---- the judgement (demo.h) ---- */

int demo_phase_cut(const struct loadgen_result *res, int i)
{
    if (i != DEMO_STEPS || res->status != MO_ETIMEDOUT) return 0;
    for (unsigned j = 0; j < res->njobs; j++)
        if (!res->jobs[j].done) return 1;
    return 0;
}

int demo_verdict(const struct loadgen_result res[DEMO_PHASES], int64_t limit, char *why,
                 size_t size)
{
    for (int i = 0; i < DEMO_PHASES; i++) {
        const struct loadgen_result *r = &res[i];
        for (unsigned j = 0; j < r->njobs; j++) {
            const struct loadgen_job *job = &r->jobs[j];
            if (job->done && !job->ok) {
                snprintf(why, size, "phase %s: wrong answer: %s", phase_titles[i], r->error);
                return CLI_FAIL;
            }
        }
        if (r->status && !demo_phase_cut(r, i)) {
            snprintf(why, size, "phase %s: %s", phase_titles[i],
                     r->error[0] ? r->error : mo_strerror(r->status));
            return CLI_FAIL;
        }
    }
    const struct loadgen_summary *p = &res[DEMO_MORSEL].ping_work;
    if (p->count == 0) {
        snprintf(why, size, "phase %s: no round trip during the work", phase_titles[DEMO_MORSEL]);
        return CLI_FAIL;
    }
    if (p->p99 >= limit) {
        char a[32], b[32];
        snprintf(why, size, "phase %s: ping p99 %s during the work, not under the limit of %s",
                 phase_titles[DEMO_MORSEL], cli_duration(p->p99, a, sizeof a),
                 cli_duration(limit, b, sizeof b));
        return CLI_FAIL;
    }
    return CLI_OK;
}

/* ---- state ---- */

/* Set by the termination signals; the load client, the tree maker and the
 * sequence of phases watch it. */
static atomic_int demo_cancel;
static volatile sig_atomic_t demo_signal;

struct demo_server {
    pthread_t tid;
    bool running;
    struct serve_opts o;
    mo_loop_t *loop;
    struct server *srv;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool ready;
    int err;
    const char *what;
    unsigned port;
};

struct demo;

struct phase_ctx {
    struct demo *d;
    int i;
};

struct demo {
    /* options */
    int64_t idle, duration, limit;
    unsigned jobs;
    unsigned long n;
    uint64_t entries;
    bool quick, json, no_progress;
    const char *svg;
    /* the run */
    mo_loop_t *loop;
    int status; /* CLI_OK until something fails */
    char failure[512];
    bool prepared, finished;
    char tree[PATH_MAX];
    bool have_tree;
    char *digits;
    size_t ndigits;
    struct loadgen_walk_sum walk_sum;
    mo_pool_job_t job_digits, job_tree;
    int err_digits, err_tree;
    unsigned prep_left;
    int64_t prep_start;
    struct loadgen_phase phases[DEMO_PHASES];
    struct loadgen_result results[DEMO_PHASES];
    struct phase_ctx ctx[DEMO_PHASES];
    bool ran[DEMO_PHASES];
    int begun, ended; /* the plain lines told of the phases before these */
    unsigned group;
    struct loadgen_thread *lg;
    atomic_int lg_done;
    mo_call_id watch;
    struct demo_server server;
    /* the panel: a copy of the load client's last progress */
    struct cli_progress *panel;
    bool plain;
    pthread_mutex_t mu;
    int snap_phase; /* -1: preparing */
    struct loadgen_progress snap;
    struct loadgen_job snap_jobs[LOADGEN_MAX_JOBS];
};

static void demo_fail(struct demo *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void demo_fail(struct demo *d, const char *fmt, ...)
{
    if (d->status == CLI_OK) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->failure, sizeof d->failure, fmt, ap);
        va_end(ap);
    }
    d->status = CLI_FAIL;
}

/* Blocks the termination signals on this thread, for the threads it is
 * about to start to inherit (then signals_restore(old)): they reach the
 * main thread only. */
static void signals_block(sigset_t *old)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, old);
}

static void signals_restore(const sigset_t *old)
{
    pthread_sigmask(SIG_SETMASK, old, NULL);
}

/* Starts a thread with the termination signals blocked in it. */
static int spawn_quiet(pthread_t *tid, void *(*fn)(void *), void *arg)
{
    sigset_t old;
    signals_block(&old);
    int err = pthread_create(tid, NULL, fn, arg);
    signals_restore(&old);
    return -err;
}

/* ---- the server, on a thread of its own ---- */

static void *server_main(void *arg)
{
    struct demo_server *s = arg;
    const char *what = "cannot create a loop";
    int err = mo_loop_new(&s->loop, 0);
    if (!err) err = serve_start(s->loop, &s->o, &s->srv, &what);
    pthread_mutex_lock(&s->mu);
    s->err = err;
    s->what = what;
    if (!err) {
        const char *addr = serve_tcp_address(s->srv);
        const char *colon = addr ? strrchr(addr, ':') : NULL;
        s->port = colon ? (unsigned)strtoul(colon + 1, NULL, 10) : 0;
    }
    s->ready = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (!err) mo_loop_run(s->loop, MO_RUN_DEFAULT);
    serve_free(s->srv);
    s->srv = NULL;
    if (s->loop) mo_loop_run(s->loop, MO_RUN_DEFAULT); /* the workers' last completions */
    mo_loop_free(s->loop);
    s->loop = NULL;
    return NULL;
}

/* Starts a server in `mode` and waits until it listens. */
static int server_start(struct demo_server *s, int mode)
{
    s->o = (struct serve_opts){
        .listen = "127.0.0.1:0", .mode = mode, .steps = SEED_STEPS, .heartbeat = -1};
    s->ready = false;
    s->port = 0;
    int err = spawn_quiet(&s->tid, server_main, s);
    if (err) return err;
    s->running = true;
    pthread_mutex_lock(&s->mu);
    while (!s->ready) pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    return s->err;
}

/* Stops the server's loop (serve_free() then aborts what still runs) and
 * joins its thread. */
static void server_end(struct demo_server *s)
{
    if (!s->running) return;
    if (!s->err) {
        while (mo_loop_stop_from_thread(s->loop) != 0) { /* out of memory: wait for some */
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    pthread_join(s->tid, NULL);
    s->running = false;
}

/* ---- the live panel and the plain lines ---- */

static double job_fraction(const struct demo *d, const struct loadgen_job *job)
{
    if (job->done) return 1;
    if (job->kind == LOADGEN_FACTORIAL) return (double)job->bytes / (double)(d->ndigits + 1);
    return d->walk_sum.count ? (double)job->paths / (double)d->walk_sum.count : 0;
}

/* On the load client's thread. */
static void on_progress(const struct loadgen_progress *p, void *arg)
{
    struct phase_ctx *ctx = arg;
    struct demo *d = ctx->d;
    pthread_mutex_lock(&d->mu);
    d->snap_phase = ctx->i;
    d->snap = *p;
    d->snap.njobs = p->njobs < LOADGEN_MAX_JOBS ? p->njobs : LOADGEN_MAX_JOBS;
    memcpy(d->snap_jobs, p->jobs, d->snap.njobs * sizeof *p->jobs);
    d->snap.jobs = d->snap_jobs;
    pthread_mutex_unlock(&d->mu);
}

static void draw(void *arg, char *buf, size_t size, int width, int64_t elapsed)
{
    struct demo *d = arg;
    char t[32], p99[32];
    pthread_mutex_lock(&d->mu);
    int ph = d->snap_phase;
    if (ph < 0) {
        snprintf(buf, size, "morsel: demo: preparing %lu! and a tree of %llu paths  %s", d->n,
                 (unsigned long long)d->entries, cli_progress_time(t, sizeof t, elapsed));
        pthread_mutex_unlock(&d->mu);
        return;
    }
    int len = snprintf(buf, size, "morsel: demo: phase %-12s %s  ping p99 %s", phase_titles[ph],
                       cli_progress_time(t, sizeof t, d->snap.elapsed),
                       cli_duration(d->snap.recent.p99, p99, sizeof p99));
    unsigned n = d->snap.njobs;
    int room = width - len - 2;
    int cols = n ? room / (int)n - 2 : 0; /* " f" before each bar */
    if (cols > 20) cols = 20;
    for (unsigned i = 0; i < n && len > 0 && (size_t)len < size; i++) {
        const struct loadgen_job *job = &d->snap.jobs[i];
        char bar[64];
        double f = job_fraction(d, job);
        if (cols >= 8)
            cli_progress_bar(bar, sizeof bar, f, cols);
        else
            snprintf(bar, sizeof bar, "%d%%", (int)(f * 100));
        len += snprintf(buf + len, size - (size_t)len, "%s%c %s", i ? " " : "  ",
                        job->kind == LOADGEN_FACTORIAL ? 'f' : 'w', bar);
    }
    pthread_mutex_unlock(&d->mu);
}

static void plain(struct demo *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void plain(struct demo *d, const char *fmt, ...)
{
    if (!d->plain) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap); /* no panel is shown: nothing to erase */
    va_end(ap);
    fputc('\n', stderr);
}

/* ---- figures ---- */

/* The round trips the table shows: those due while the work ran (the
 * whole phase when it had no work). */
static const struct loadgen_summary *ping_of(const struct loadgen_result *r)
{
    return r->work_start ? &r->ping_work : &r->ping;
}

/* The longest time to the last byte of the jobs of one kind; 0: none. */
static int64_t job_time(const struct loadgen_result *r, int kind, bool *cut)
{
    int64_t t = 0;
    *cut = false;
    for (unsigned i = 0; i < r->njobs; i++) {
        const struct loadgen_job *job = &r->jobs[i];
        if (job->kind != kind) continue;
        int64_t end = job->done ? job->last_byte : r->end;
        if (!job->done) *cut = true;
        if (job->sent && end - job->sent > t) t = end - job->sent;
    }
    return t;
}

static unsigned answers(const struct loadgen_result *r, unsigned *right)
{
    unsigned n = 0;
    *right = 0;
    for (unsigned i = 0; i < r->njobs; i++) {
        if (r->jobs[i].kind == LOADGEN_STATS) continue;
        n++;
        *right += r->jobs[i].done && r->jobs[i].ok;
    }
    return n;
}

static double requests_per_s(const struct loadgen_result *r)
{
    unsigned right;
    (void)answers(r, &right);
    double secs = (double)(r->end - r->start) / 1e9;
    return secs > 0 ? ((double)r->nsamples + right) / secs : 0;
}

/* Histogram rows: below 50us, 100us, 200us, 500us, 1ms, ... 5s, then the rest. */
static int64_t hist_edge(int row)
{
    static const int64_t mantissa[] = {1, 2, 5};
    int k = row + 2; /* 50us is 5 x 10us */
    int64_t e = MO_USEC(10);
    for (int i = 0; i < k / 3; i++) e *= 10;
    return e * mantissa[k % 3];
}

static int hist_row(int64_t rtt)
{
    int row = 0;
    while (row < HIST_ROWS - 1 && rtt >= hist_edge(row)) row++;
    return row;
}

static void histogram(const struct loadgen_result *r, uint64_t rows[HIST_ROWS], uint64_t *total)
{
    int64_t from = r->work_start ? r->work_start : r->start;
    int64_t to = r->work_start ? r->work_end : r->end;
    memset(rows, 0, HIST_ROWS * sizeof *rows);
    *total = 0;
    for (size_t i = 0; i < r->nsamples; i++) {
        if (r->samples[i].sched < from || r->samples[i].sched > to) continue;
        rows[hist_row(r->samples[i].rtt)]++;
        (*total)++;
    }
}

/* ---- the table ---- */

static void cell_duration(char *buf, size_t size, int64_t ns, bool ran)
{
    if (!ran)
        snprintf(buf, size, "-");
    else
        cli_duration(ns, buf, (unsigned)size);
}

static void table_row(const char *label, char cells[DEMO_PHASES][40])
{
    printf("%-17s", label);
    for (int i = 0; i < DEMO_PHASES; i++) printf("%-14s", cells[i]);
    printf("\n");
}

static void print_table(const struct demo *d)
{
    char cells[DEMO_PHASES][40];
    printf("morsel demo: %d connections send 'ping' every %lld ms each; the loaded phases add\n"
           "%u x 'factorial %lu' and %u x 'walk' of a %llu-path tree, all at once\n\n",
           PING_CONNS, (long long)(PING_PERIOD / MO_MSEC(1)), d->jobs, d->n, d->jobs,
           (unsigned long long)d->entries);
    for (int i = 0; i < DEMO_PHASES; i++)
        snprintf(cells[i], sizeof cells[i], "%s", phase_titles[i]);
    table_row("", cells);
    static const char *const what[] = {"ping p50", "ping p99", "ping max"};
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < DEMO_PHASES; i++) {
            const struct loadgen_summary *s = ping_of(&d->results[i]);
            int64_t v = k == 0 ? s->p50 : k == 1 ? s->p99 : s->max;
            cell_duration(cells[i], sizeof cells[i], v, d->ran[i] && s->count);
        }
        table_row(what[k], cells);
    }
    static const char *const times[] = {"work time", "factorial", "walk"};
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < DEMO_PHASES; i++) {
            const struct loadgen_result *r = &d->results[i];
            bool cut = false;
            int64_t v = 0;
            if (k == 0) {
                v = r->work_end - r->work_start;
                for (unsigned j = 0; j < r->njobs; j++) cut |= !r->jobs[j].done;
            } else {
                v = job_time(r, k == 1 ? LOADGEN_FACTORIAL : LOADGEN_WALK, &cut);
            }
            char t[32];
            if (!d->ran[i] || !r->work_start)
                snprintf(cells[i], sizeof cells[i], "-");
            else
                snprintf(cells[i], sizeof cells[i], "%s%s", cut ? ">" : "",
                         cli_duration(v, t, sizeof t));
        }
        table_row(times[k], cells);
    }
    for (int i = 0; i < DEMO_PHASES; i++) {
        if (d->ran[i])
            snprintf(cells[i], sizeof cells[i], "%.0f", requests_per_s(&d->results[i]));
        else
            snprintf(cells[i], sizeof cells[i], "-");
    }
    table_row("requests/s", cells);
    for (int i = 0; i < DEMO_PHASES; i++) {
        unsigned right, n = answers(&d->results[i], &right);
        if (!d->ran[i] || !n)
            snprintf(cells[i], sizeof cells[i], "-");
        else
            snprintf(cells[i], sizeof cells[i], "%u/%u%s", right, n,
                     demo_phase_cut(&d->results[i], i) ? " (cut)" : "");
    }
    table_row("answers right", cells);
    char lim[32];
    printf("\nping: round trips from each ping's scheduled time, of the pings due while the\n"
           "work ran (idle: the whole phase). work time: first request to last answer's\n"
           "last byte. '>': cut at the phase's time limit (the seed's product one by one is\n"
           "O(n^2)). Limit for phase 2's p99: %s.\n",
           cli_duration(d->limit, lim, sizeof lim));
}

static void print_histogram(const struct demo *d)
{
    uint64_t rows[DEMO_PHASES][HIST_ROWS], total[DEMO_PHASES];
    int first = HIST_ROWS, last = -1;
    for (int i = 0; i < DEMO_PHASES; i++) {
        histogram(&d->results[i], rows[i], &total[i]);
        for (int r = 0; r < HIST_ROWS; r++) {
            if (!rows[i][r]) continue;
            if (r < first) first = r;
            if (r > last) last = r;
        }
    }
    printf("\nround trips %5s", "");
    for (int i = 0; i < DEMO_PHASES; i++) printf("%-16s", phase_titles[i]);
    printf("\n");
    for (int r = first; r <= last; r++) {
        char edge[32], label[40];
        if (r < HIST_ROWS - 1)
            snprintf(label, sizeof label, "  < %s", cli_duration(hist_edge(r), edge, sizeof edge));
        else
            snprintf(label, sizeof label, "  >= %s",
                     cli_duration(hist_edge(r - 1), edge, sizeof edge));
        printf("%-17s", label);
        for (int i = 0; i < DEMO_PHASES; i++) {
            char bar[HIST_BAR + 1] = "", pct[16] = "";
            if (total[i] && rows[i][r]) {
                double f = (double)rows[i][r] / (double)total[i];
                int len = (int)ceil(f * HIST_BAR);
                memset(bar, '#', (size_t)len);
                bar[len] = '\0';
                if (f < 0.001)
                    snprintf(pct, sizeof pct, "<0.1%%");
                else
                    snprintf(pct, sizeof pct, "%.1f%%", f * 100);
            }
            printf("%-*s%6s  ", HIST_BAR, bar, pct);
        }
        printf("\n");
    }
}

static void print_json(const struct demo *d, const char *why)
{
    bool first = true;
    printf("{");
    cli_json_u64(stdout, &first, "factorial_n", d->n);
    cli_json_u64(stdout, &first, "tree_entries", d->entries);
    cli_json_u64(stdout, &first, "jobs", d->jobs);
    cli_json_u64(stdout, &first, "ping_connections", PING_CONNS);
    cli_json_us(stdout, &first, "ping_period_us", PING_PERIOD);
    cli_json_us(stdout, &first, "p99_limit_us", d->limit);
    printf(",\"ok\":%s,\"reason\":\"", d->status == CLI_OK ? "true" : "false");
    for (const unsigned char *p = (const unsigned char *)why; *p; p++) {
        if (*p < 0x20) /* a server's answer may be quoted in it */
            printf("\\u%04x", *p);
        else if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else
            putchar(*p);
    }
    printf("\",\"phases\":[");
    for (int i = 0; i < DEMO_PHASES; i++) {
        const struct loadgen_result *r = &d->results[i];
        const struct loadgen_summary *s = ping_of(r);
        bool f = true, cut;
        unsigned right, n = answers(r, &right);
        printf("%s{\"name\":\"%s\",\"mode\":\"%s\",\"ran\":%s,\"cut\":%s,", i ? "," : "",
               phase_names[i], mode_names[i ? i - 1 : 0], d->ran[i] ? "true" : "false",
               demo_phase_cut(r, i) ? "true" : "false");
        printf("\"ping\":{");
        cli_json_u64(stdout, &f, "count", s->count);
        cli_json_us(stdout, &f, "p50_us", s->p50);
        cli_json_us(stdout, &f, "p99_us", s->p99);
        cli_json_us(stdout, &f, "max_us", s->max);
        printf("},\"ping_all\":{");
        f = true;
        cli_json_u64(stdout, &f, "count", r->ping.count);
        cli_json_us(stdout, &f, "p50_us", r->ping.p50);
        cli_json_us(stdout, &f, "p99_us", r->ping.p99);
        cli_json_us(stdout, &f, "max_us", r->ping.max);
        printf("}");
        cli_json_us(stdout, &f, "duration_us", r->end - r->start);
        cli_json_us(stdout, &f, "work_us", r->work_end - r->work_start);
        cli_json_us(stdout, &f, "factorial_us", job_time(r, LOADGEN_FACTORIAL, &cut));
        cli_json_us(stdout, &f, "walk_us", job_time(r, LOADGEN_WALK, &cut));
        printf(",\"requests_per_s\":%.1f", requests_per_s(r));
        cli_json_u64(stdout, &f, "answers", n);
        cli_json_u64(stdout, &f, "answers_right", right);
        cli_json_us(stdout, &f, "client_late_max_us", r->client_late_max);
        uint64_t rows[HIST_ROWS], total;
        histogram(r, rows, &total);
        printf(",\"histogram\":[");
        for (int k = 0; k < HIST_ROWS; k++) {
            bool g = true;
            printf("%s{", k ? "," : "");
            if (k < HIST_ROWS - 1)
                cli_json_us(stdout, &g, "below_us", hist_edge(k));
            else
                printf("\"below_us\":null"), g = false;
            cli_json_u64(stdout, &g, "count", rows[k]);
            printf("}");
        }
        printf("]}");
    }
    printf("]}\n");
}

/* ---- the chart ---- */

static double svg_y(int64_t rtt, double lo, double hi)
{
    double v = log10(rtt > 0 ? (double)rtt : 1);
    if (v < lo) v = lo;
    if (v > hi) v = hi;
    return SVG_TOP + (hi - v) / (hi - lo) * (SVG_H - SVG_TOP - SVG_BOTTOM);
}

static void svg_write(const struct demo *d, FILE *f)
{
    static const char *const fills[] = {"#eef3f8", "#e6f4ea", "#fbe9e7", "#fff4e0"};
    int64_t total = 0, maxrtt = MO_MSEC(1);
    for (int i = 0; i < DEMO_PHASES; i++) {
        const struct loadgen_result *r = &d->results[i];
        if (!d->ran[i]) continue;
        total += r->end - r->start;
        if (r->ping.max > maxrtt) maxrtt = r->ping.max;
    }
    if (total <= 0) total = 1;
    double lo = 4, hi = ceil(log10((double)maxrtt)); /* 10 us to the decade above the max */
    double plot_w = SVG_W - SVG_LEFT - SVG_RIGHT;
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
            "<title>morsel demo: ping round trips, phase by phase</title>\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text x=\"%d\" y=\"20\" font-size=\"14\">morsel demo: round trip of every ping "
            "(log scale), %lu! and a %llu-path walk in each loaded phase</text>\n",
            SVG_W, SVG_H, SVG_W, SVG_H, SVG_LEFT, d->n, (unsigned long long)d->entries);
    double x = SVG_LEFT;
    for (int i = 0; i < DEMO_PHASES; i++) {
        const struct loadgen_result *r = &d->results[i];
        if (!d->ran[i]) continue;
        double w = plot_w * (double)(r->end - r->start) / (double)total;
        char p99[32];
        fprintf(f,
                "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>\n"
                "<text x=\"%.1f\" y=\"%d\">%s</text>\n"
                "<text x=\"%.1f\" y=\"%d\" fill=\"#555\">p99 %s</text>\n",
                x, SVG_TOP, w, SVG_H - SVG_TOP - SVG_BOTTOM, fills[i], x + 4, SVG_TOP - 18,
                phase_titles[i], x + 4, SVG_TOP - 4,
                cli_duration(ping_of(r)->p99, p99, sizeof p99));
        /* the largest round trip due in each column of pixels */
        int cols = (int)w;
        if (cols < 1) cols = 1;
        int64_t *col = calloc((size_t)cols, sizeof *col);
        if (col) {
            for (size_t k = 0; k < r->nsamples; k++) {
                int c = (int)((double)(r->samples[k].sched - r->start) /
                              (double)(r->end - r->start + 1) * cols);
                if (c < 0) c = 0;
                if (c >= cols) c = cols - 1;
                if (r->samples[k].rtt > col[c]) col[c] = r->samples[k].rtt;
            }
            fprintf(f, "<polyline fill=\"none\" stroke=\"#c0392b\" stroke-width=\"1\" points=\"");
            for (int c = 0; c < cols; c++)
                if (col[c]) fprintf(f, "%.1f,%.1f ", x + c + 0.5, svg_y(col[c], lo, hi));
            fprintf(f, "\"/>\n");
            free(col);
        }
        x += w;
    }
    for (int e = (int)lo; e <= (int)hi; e++) { /* decades (lo and hi are whole) */
        char t[32];
        double y = svg_y((int64_t)pow(10, e), lo, hi);
        fprintf(f,
                "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#bbb\" "
                "stroke-width=\"0.5\"/>\n<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                SVG_LEFT, y, SVG_W - SVG_RIGHT, y, SVG_LEFT - 6, y + 4,
                cli_duration((int64_t)pow(10, e), t, sizeof t));
    }
    char lim[32];
    double ly = svg_y(d->limit, lo, hi);
    fprintf(f,
            "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#2c3e50\" "
            "stroke-dasharray=\"6 4\"/>\n<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" "
            "fill=\"#2c3e50\">limit %s</text>\n",
            SVG_LEFT, ly, SVG_W - SVG_RIGHT, ly, SVG_W - SVG_RIGHT - 4, ly - 4,
            cli_duration(d->limit, lim, sizeof lim));
    fprintf(f,
            "<text x=\"%d\" y=\"%d\" fill=\"#555\">time, each phase in turn (width: its "
            "duration); red: the largest round trip at each moment</text>\n</svg>\n",
            SVG_LEFT, SVG_H - 12);
}

/* Writes the chart; false (reported) when the file cannot be written. */
static bool svg_save(const struct demo *d)
{
    FILE *f = fopen(d->svg, "w");
    if (!f) {
        cli_write_failed(cmd, d->svg, errno);
        return false;
    }
    errno = 0;
    svg_write(d, f);
    int err = ferror(f) ? (errno ? errno : EIO) : 0;
    if (fclose(f) != 0 && !err) err = errno ? errno : EIO;
    if (err) cli_write_failed(cmd, d->svg, err);
    return err == 0;
}

/* ---- the sequence ---- */

static void finish(struct demo *d)
{
    if (d->finished) return;
    d->finished = true;
    if (d->watch) mo_call_cancel(d->loop, d->watch);
    d->watch = 0;
    cli_progress_stop(d->panel);
    d->panel = NULL;
    mo_loop_release(d->loop);
}

static void group_start(struct demo *d);

static void plain_phase(struct demo *d, int i)
{
    const struct loadgen_result *r = &d->results[i];
    unsigned right, n = answers(r, &right);
    char a[32], b[32];
    /* NOLINTBEGIN(clang-analyzer-core.CallAndMessage): i < DEMO_PHASES. The
     * analyzer follows group_done() with d->group == NGROUPS, reading
     * groups[] past its end; group_done() runs only while d->group <
     * NGROUPS (finish() ends the sequence when it reaches NGROUPS). */
    if (!n)
        plain(d, "demo: phase %s: ping p99 %s", phase_titles[i],
              cli_duration(ping_of(r)->p99, a, sizeof a));
    else
        plain(d, "demo: phase %s: %u/%u answers right%s, work %s, ping p99 %s", phase_titles[i],
              right, n, demo_phase_cut(r, i) ? " (cut at the time limit)" : "",
              cli_duration(r->work_end - r->work_start, a, sizeof a),
              cli_duration(ping_of(r)->p99, b, sizeof b));
    /* NOLINTEND(clang-analyzer-core.CallAndMessage) */
}

/* Whether a phase's outcome lets the next ones run: a wrong answer does
 * (the run fails at the end, with every figure), a cut does. */
static bool phase_goes_on(const struct loadgen_result *r, int i)
{
    return r->status == 0 || r->status == MO_EIO || demo_phase_cut(r, i);
}

/* The load client of a group has ended: its server goes, the next comes.
 * What went wrong is told at the end by demo_verdict(). */
static void group_done(struct demo *d)
{
    (void)loadgen_join(d->lg);
    d->lg = NULL;
    server_end(&d->server);
    bool go_on = !atomic_load(&demo_cancel);
    for (unsigned i = groups[d->group].first; i < groups[d->group].first + groups[d->group].count;
         i++) {
        const struct loadgen_result *r = &d->results[i];
        d->ran[i] = r->status != MO_ECANCELED && r->end > r->start;
        if (d->ran[i] && (int)i >= d->ended) plain_phase(d, (int)i);
        go_on &= phase_goes_on(r, (int)i);
    }
    d->begun = d->ended = (int)(groups[d->group].first + groups[d->group].count);
    if (!go_on || ++d->group == NGROUPS)
        finish(d);
    else
        group_start(d);
}

/* Every 50 ms: the plain lines, and whether the load client has ended (it
 * says so with an atomic flag: no allocation, nothing to lose). */
static void watch(mo_loop_t *loop, void *arg)
{
    struct demo *d = arg;
    d->watch = 0;
    /* The plain lines: a phase has begun, the one before it is over (its
     * result is complete once the client reports on the next phase: the
     * mutex orders the two). */
    pthread_mutex_lock(&d->mu);
    int now = d->snap_phase;
    pthread_mutex_unlock(&d->mu);
    if (d->lg && now >= d->ended) {
        for (; d->ended < now; d->ended++) plain_phase(d, d->ended);
        for (; d->begun <= now; d->begun++)
            plain(d, "demo: phase %s: running", phase_titles[d->begun]);
    }
    if (d->lg && atomic_load(&d->lg_done)) {
        atomic_store(&d->lg_done, 0);
        group_done(d);
    }
    if (!d->finished && mo_call_later(loop, MO_MSEC(50), watch, d, &d->watch) != 0) {
        demo_fail(d, "cannot schedule: out of memory");
        atomic_store(&demo_cancel, 1); /* the client stops within a few ms */
        if (d->lg)
            group_done(d); /* waits for it, then finishes */
        else
            finish(d);
    }
}

static void lg_finished(void *arg)
{
    struct demo *d = arg;
    atomic_store(&d->lg_done, 1);
}

static void group_start(struct demo *d)
{
    unsigned first = groups[d->group].first, count = groups[d->group].count;
    int err = server_start(&d->server, groups[d->group].mode);
    if (err) {
        server_end(&d->server);
        demo_fail(d, "cannot start the server: %s: %s", d->server.what, mo_strerror(err));
        finish(d);
        return;
    }
    struct loadgen_opts o = {
        .port = d->server.port, .ping_conns = PING_CONNS, .ping_period = PING_PERIOD};
    o.cancel = &demo_cancel;
    sigset_t old;
    signals_block(&old); /* the client's thread inherits it */
    err = loadgen_spawn_notify(&d->lg, &o, &d->phases[first], count, &d->results[first],
                               lg_finished, d);
    signals_restore(&old);
    if (err) {
        d->lg = NULL;
        server_end(&d->server);
        demo_fail(d, "cannot start the load client: %s", mo_strerror(err));
        finish(d);
    }
}

/* ---- preparing: N!'s digits, the tree and its sum, on the pool ---- */

static void work_digits(mo_pool_job_t *job, void *arg)
{
    (void)job;
    struct demo *d = arg;
    d->err_digits = loadgen_factorial_digits(d->n, &d->digits, &d->ndigits);
}

/* Where the tree goes: $TMPDIR; without it /dev/shm, in memory, when it is
 * a directory we may write in (200,000 empty files take 30 s on a busy
 * disk, 1 s there; what is measured is the loop, not the disk); else
 * /tmp. */
static const char *tree_parent(void)
{
    const char *tmp = getenv("TMPDIR");
    if (tmp && *tmp) return tmp;
    struct stat st;
    if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK | X_OK) == 0)
        return "/dev/shm";
    return "/tmp";
}

static void work_tree(mo_pool_job_t *job, void *arg)
{
    (void)job;
    struct demo *d = arg;
    struct loadgen_tree_opts o = {.entries = d->entries, .cancel = &demo_cancel};
    d->err_tree = loadgen_tree_make(tree_parent(), &o, d->tree, sizeof d->tree);
    if (d->err_tree) return;
    d->have_tree = true;
    d->err_tree = loadgen_walk_sum_dir(d->tree, &d->walk_sum);
}

static void phases_setup(struct demo *d)
{
    for (int i = 0; i < DEMO_PHASES; i++) {
        struct loadgen_phase *ph = &d->phases[i];
        d->ctx[i] = (struct phase_ctx){d, i};
        *ph = (struct loadgen_phase){.progress = on_progress, .progress_arg = &d->ctx[i]};
        if (i == DEMO_IDLE) {
            ph->duration = d->idle;
            ph->timeout = d->idle + IDLE_SLACK;
            continue;
        }
        ph->duration = d->duration;
        ph->factorial_jobs = ph->walk_jobs = d->jobs;
        ph->factorial_n = d->n;
        ph->factorial_digits = d->digits;
        ph->factorial_len = d->ndigits;
        ph->walk_dir = d->tree;
        ph->walk_expect = d->walk_sum;
        /* the seed's O(n^2) product would take minutes for 1000000!: cut
         * (100000! takes about a second and a half) */
        if (i == DEMO_STEPS) ph->timeout = d->duration + STEPS_CUT;
    }
}

static void prep_done(mo_loop_t *loop, mo_pool_job_t *job, int status, void *arg)
{
    (void)loop, (void)job;
    struct demo *d = arg;
    if (status) demo_fail(d, "cannot prepare: %s", mo_strerror(status));
    if (--d->prep_left) return;
    if (d->finished || atomic_load(&demo_cancel)) {
        finish(d);
        return;
    }
    if (d->err_digits) demo_fail(d, "cannot compute %lu!: %s", d->n, mo_strerror(d->err_digits));
    if (d->err_tree)
        demo_fail(d, "cannot make the tree to walk%s%s: %s", d->have_tree ? " " : "",
                  d->have_tree ? d->tree : "", mo_strerror(d->err_tree));
    if (d->status) {
        finish(d);
        return;
    }
    char t[32];
    plain(d, "demo: prepared %lu! (%zu digits) and %s (%llu paths) in %s", d->n, d->ndigits,
          d->tree, (unsigned long long)d->walk_sum.count,
          cli_duration(mo_hrtime() - d->prep_start, t, sizeof t));
    phases_setup(d);
    d->prepared = true;
    group_start(d);
}

/* ---- signals ---- */

static void on_signal(int sig)
{
    if (!demo_signal) demo_signal = sig;
    atomic_store(&demo_cancel, 1);
}

static void signals_catch(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old, sa = {.sa_handler = on_signal};
        sigemptyset(&sa.sa_mask);
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
        sigaction(sigs[i], &sa, NULL);
    }
}

/* After the clean-up: dies of the signal that stopped the run, as if it
 * had had no handler (the shell sees 128 + its number). */
static void die_of_signal(int sig)
{
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);
}

/* ---- options ---- */

static void demo_usage(FILE *f)
{
    fprintf(f,
            "usage: morsel demo [--quick] [--duration S] [--jobs N] [--json] [--svg FILE]\n"
            "                   [--p99-limit MS] [--no-progress]\n\n"
            "Shows what morsel is for: a server on a morsel loop (in this process) answers\n"
            "16 connections' pings every 10 ms while other connections ask it for\n"
            "'factorial 1000000' (the digits checked against GMP's) and a 'walk' of a\n"
            "200,000-path temporary tree, all at once; then the same served the blocking way,\n"
            "then the seed's way (10 multiplications per call). Prints the round trips, work\n"
            "times and requests per second of each phase side by side, and a histogram.\n"
            "The tree goes in $TMPDIR, or /dev/shm (in memory) if unset and writable, or /tmp.\n\n"
            "  --quick          small work (factorial 100000, 20,000 paths, 1 s phases):\n"
            "                   the whole run in seconds, what CI runs\n"
            "  --duration S     pings go on at least S seconds in each loaded phase\n"
            "                   (default 3; --quick 1)\n"
            "  --jobs N         N factorial and N walk requests per loaded phase, 1 to 16\n"
            "                   (default 1)\n"
            "  --json           the figures as one JSON object (times in microseconds,\n"
            "                   named *_us) instead of the table\n"
            "  --svg FILE       also write a chart of every round trip over time (SVG)\n"
            "  --p99-limit MS   the ping p99 phase 2 must stay under (default 5)\n"
            "  --no-progress    no live panel (shown when stderr is a terminal) and no\n"
            "                   progress lines (otherwise)\n"
            "  -h, --help       this help\n"
            "  -V, --version    the version\n\n"
            "Exit status: 0 when phase 2 kept ping p99 under the limit and every answer\n"
            "was right; 1 otherwise (the reason on stderr); 2 for a usage error. On\n"
            "SIGINT, SIGTERM or SIGHUP it removes its temporary tree and dies of the signal.\n");
}

enum { OPT_QUICK = 256, OPT_DURATION, OPT_JOBS, OPT_JSON, OPT_SVG, OPT_LIMIT, OPT_NO_PROGRESS };

/* Returns -1 to go on, or the exit status. */
static int demo_parse(struct demo *d, int argc, char **argv)
{
    static const struct option longopts[] = {{"quick", no_argument, NULL, OPT_QUICK},
                                             {"duration", required_argument, NULL, OPT_DURATION},
                                             {"jobs", required_argument, NULL, OPT_JOBS},
                                             {"json", no_argument, NULL, OPT_JSON},
                                             {"svg", required_argument, NULL, OPT_SVG},
                                             {"p99-limit", required_argument, NULL, OPT_LIMIT},
                                             {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
                                             CLI_STD_OPTIONS,
                                             {NULL, 0, NULL, 0}};
    int c, status;
    int64_t duration = -1;
    uint64_t v;
    optind = 1;
    while ((c = cli_getopt(cmd, demo_usage, argc, argv, "hV", longopts, &status)) != CLI_OPT_END) {
        switch (c) {
        case CLI_OPT_EXIT:
            return status;
        case OPT_QUICK:
            d->quick = true;
            break;
        case OPT_DURATION:
            if (!cli_parse_time(optarg, MO_SEC(1), 3600, &duration) || duration < MO_MSEC(100))
                return cli_usage_error(cmd, "--duration takes seconds from 0.1 to 3600");
            break;
        case OPT_JOBS:
            if (!cli_parse_u64(optarg, 16, &v) || !v)
                return cli_usage_error(cmd, "--jobs takes a whole number from 1 to 16");
            d->jobs = (unsigned)v;
            break;
        case OPT_JSON:
            d->json = true;
            break;
        case OPT_SVG:
            if (!*optarg) return cli_usage_error(cmd, "--svg takes a file name");
            d->svg = optarg;
            break;
        case OPT_LIMIT:
            if (!cli_parse_time(optarg, MO_MSEC(1), 60000, &d->limit) || d->limit < MO_USEC(1))
                return cli_usage_error(cmd, "--p99-limit takes milliseconds from 0.001 to 60000");
            break;
        case OPT_NO_PROGRESS:
            d->no_progress = true;
            break;
        default:
            return CLI_USAGE;
        }
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    d->n = d->quick ? 100000 : 1000000;
    d->entries = d->quick ? 20000 : 200000;
    d->idle = d->quick ? MO_SEC(1) : MO_SEC(3);
    d->duration = duration >= 0 ? duration : d->idle;
    return -1;
}

/* ---- the command ---- */

static int demo_run(struct demo *d)
{
    int err = mo_loop_new(&d->loop, 0);
    if (err) {
        cli_error(cmd, "cannot create a loop: %s", mo_strerror(err));
        return CLI_FAIL;
    }
    mo_loop_hold(d->loop);
    bool wanted = cli_progress_wanted(d->no_progress);
    d->plain = !d->no_progress && !wanted;
    d->panel = cli_progress_start(d->loop, wanted, draw, d);
    d->prep_start = mo_hrtime();
    plain(d, "demo: preparing %lu! with GMP and a tree of %llu paths", d->n,
          (unsigned long long)d->entries);
    mo_pool_t *pool = NULL;
    sigset_t old;
    signals_block(&old); /* the pool's threads inherit it */
    err = mo_loop_pool(d->loop, &pool);
    if (!err) err = mo_pool_submit(pool, d->loop, &d->job_digits, work_digits, prep_done, d);
    if (!err) d->prep_left++;
    if (!err) err = mo_pool_submit(pool, d->loop, &d->job_tree, work_tree, prep_done, d);
    if (!err) d->prep_left++;
    signals_restore(&old);
    if (!err) err = mo_call_later(d->loop, MO_MSEC(50), watch, d, &d->watch);
    if (err) { /* what was submitted ends, then the loop */
        demo_fail(d, "cannot start: %s", mo_strerror(err));
        finish(d);
    }
    err = mo_loop_run(d->loop, MO_RUN_DEFAULT);
    if (err) demo_fail(d, "the loop: %s", mo_strerror(err));
    finish(d);
    mo_loop_free(d->loop);
    return 0;
}

int cli_demo(int argc, char **argv)
{
    static struct demo d; /* large (the results), and the signal's flag is here too */
    d = (struct demo){.jobs = 1, .limit = MO_MSEC(5), .snap_phase = -1};
    int status = demo_parse(&d, argc, argv);
    if (status >= 0) return status;
    cli_gmp_exit_on_oom(cmd);
    pthread_mutex_init(&d.mu, NULL);
    pthread_mutex_init(&d.server.mu, NULL);
    pthread_cond_init(&d.server.cv, NULL);
    atomic_store(&demo_cancel, 0);
    demo_signal = 0;
    signals_catch();
    demo_run(&d);
    if (d.have_tree) {
        int err = loadgen_tree_remove(d.tree);
        if (err && !demo_signal)
            demo_fail(&d, "cannot remove the tree %s: %s", d.tree, mo_strerror(err));
    }
    free(d.digits);
    if (demo_signal) {
        for (int i = 0; i < DEMO_PHASES; i++) loadgen_result_free(&d.results[i]);
        die_of_signal(demo_signal);
        return CLI_FAIL;
    }
    char why[512] = "";
    if (d.status)
        snprintf(why, sizeof why, "%s", d.failure);
    else if (demo_verdict(d.results, d.limit, why, sizeof why) != CLI_OK)
        d.status = CLI_FAIL;
    bool some = false;
    for (int i = 0; i < DEMO_PHASES; i++) some |= d.ran[i];
    if (some && d.json)
        print_json(&d, why);
    else if (some) {
        print_table(&d);
        print_histogram(&d);
    }
    if (some && d.svg && !svg_save(&d)) d.status = CLI_FAIL;
    for (int i = 0; i < DEMO_PHASES; i++) loadgen_result_free(&d.results[i]);
    if (why[0]) {
        fflush(stdout);
        cli_error(cmd, "%s", why);
    }
    pthread_mutex_destroy(&d.mu);
    pthread_mutex_destroy(&d.server.mu);
    pthread_cond_destroy(&d.server.cv);
    if (demo_signal) die_of_signal(demo_signal); /* it came while printing */
    return d.status;
}
