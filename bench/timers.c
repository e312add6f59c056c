/* Delayed calls: churn, expiry, and memory per pending call.
 *
 *   bench_timers [reps] [calls] [churn|expiry|mem|all] [full]
 *
 * reps (default 3) interleaved repetitions, medians; calls (default 1000000);
 * `full` adds libevent to the expiry runs (4 s of CPU per run; left out by
 * default to keep the run under 30 s).
 *
 * churn   Insert `calls` delayed calls with random delays in [0, 10 s), then
 *         cancel them all (in insertion order): ns per insert+cancel pair.
 *         The loop never runs. Each peer's watcher structs are allocated and
 *         initialised before timing (libev, libuv and libevent users own that
 *         memory); morsel's slab and the peers' heaps are warm after the
 *         first repetition. GLib is timed as its users write it:
 *         g_timeout_add() and g_source_remove(), a GSource allocated per call.
 * expiry  Schedule `calls` calls due within [0, 1 s) and run the loop until
 *         all have fired: process CPU time (CLOCK_PROCESS_CPUTIME_ID) for the
 *         whole run, scheduling included, per call. GLib is left out here: its
 *         main loop walks every attached source in every iteration, O(n) per
 *         iteration, so a million pending timeouts would take minutes.
 * mem     Bytes per pending delayed call: heap in use (mallinfo2 uordblks +
 *         hblkhd) after scheduling `calls` calls minus before, on a fresh
 *         loop, divided by `calls`. For the peers this includes the watcher
 *         structs the user allocates (one array, or one event_new() each for
 *         libevent), since a pending call needs them.
 */
#include "bench_util.h"

#include <morsel.h>

#include <ev.h>
#include <event2/event.h>
#include <glib.h>
#include <uv.h>

#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct setup {
    size_t n;
    int64_t *delay; /* ns */
    uint64_t fired;
    /* Per contender, created once. */
    mo_loop_t *mo;
    mo_call_id *ids;
    struct ev_loop *ev;
    ev_timer *evt;
    uv_loop_t uv;
    uv_timer_t *uvt;
    struct event_base *base;
    struct event **lev;
    guint *gids;
};

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t rng(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static void fill_delays(struct setup *s, int64_t range)
{
    for (size_t i = 0; i < s->n; i++) s->delay[i] = (int64_t)(rng() % (uint64_t)range);
}

static double per_call(int64_t t0, int64_t t1, size_t n)
{
    return (double)(t1 - t0) / (double)n;
}

static void check_fired(struct setup *s, const char *who)
{
    if (s->fired != s->n) {
        fprintf(stderr, "%s: %llu of %zu calls fired\n", who, (unsigned long long)s->fired, s->n);
        abort();
    }
}

/* ---- callbacks ---- */

static void mo_fire(mo_loop_t *loop, void *arg)
{
    (void)loop;
    ((struct setup *)arg)->fired++;
}

static void ev_fire(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    ((struct setup *)w->data)->fired++;
}

static void uv_fire(uv_timer_t *t)
{
    ((struct setup *)t->data)->fired++;
}

static void le_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ((struct setup *)arg)->fired++;
}

static gboolean gl_fire(gpointer arg)
{
    ((struct setup *)arg)->fired++;
    return G_SOURCE_REMOVE;
}

static struct timeval to_tv(int64_t ns)
{
    return (struct timeval){.tv_sec = ns / 1000000000, .tv_usec = ns % 1000000000 / 1000};
}

/* ---- churn ---- */

static double churn_morsel(void *arg)
{
    struct setup *s = arg;
    mo_loop_update_time(s->mo);
    int64_t t0 = bench_now();
    for (size_t i = 0; i < s->n; i++)
        if (mo_call_later(s->mo, s->delay[i], mo_fire, s, &s->ids[i]) != 0) abort();
    for (size_t i = 0; i < s->n; i++)
        if (mo_call_cancel(s->mo, s->ids[i]) != 0) abort();
    return per_call(t0, bench_now(), s->n);
}

static double churn_libev(void *arg)
{
    struct setup *s = arg;
    ev_now_update(s->ev);
    int64_t t0 = bench_now();
    for (size_t i = 0; i < s->n; i++) {
        ev_timer_set(&s->evt[i], (double)s->delay[i] * 1e-9, 0.);
        ev_timer_start(s->ev, &s->evt[i]);
    }
    for (size_t i = 0; i < s->n; i++) ev_timer_stop(s->ev, &s->evt[i]);
    return per_call(t0, bench_now(), s->n);
}

static double churn_libuv(void *arg)
{
    struct setup *s = arg;
    uv_update_time(&s->uv);
    int64_t t0 = bench_now();
    for (size_t i = 0; i < s->n; i++)
        uv_timer_start(&s->uvt[i], uv_fire, (uint64_t)s->delay[i] / 1000000, 0);
    for (size_t i = 0; i < s->n; i++) uv_timer_stop(&s->uvt[i]);
    return per_call(t0, bench_now(), s->n);
}

static double churn_libevent(void *arg)
{
    struct setup *s = arg;
    int64_t t0 = bench_now();
    for (size_t i = 0; i < s->n; i++) {
        struct timeval tv = to_tv(s->delay[i]);
        evtimer_add(s->lev[i], &tv);
    }
    for (size_t i = 0; i < s->n; i++) evtimer_del(s->lev[i]);
    return per_call(t0, bench_now(), s->n);
}

static double churn_glib(void *arg)
{
    struct setup *s = arg;
    int64_t t0 = bench_now();
    for (size_t i = 0; i < s->n; i++)
        s->gids[i] = g_timeout_add((guint)(s->delay[i] / 1000000), gl_fire, s);
    for (size_t i = 0; i < s->n; i++) g_source_remove(s->gids[i]);
    return per_call(t0, bench_now(), s->n);
}

/* ---- expiry ---- */

static double expiry_morsel(void *arg)
{
    struct setup *s = arg;
    s->fired = 0;
    int64_t c0 = bench_cpu();
    mo_loop_update_time(s->mo);
    for (size_t i = 0; i < s->n; i++)
        if (mo_call_later(s->mo, s->delay[i], mo_fire, s, NULL) != 0) abort();
    mo_loop_run(s->mo, MO_RUN_DEFAULT);
    double r = per_call(c0, bench_cpu(), s->n);
    check_fired(s, "morsel");
    return r;
}

static double expiry_libev(void *arg)
{
    struct setup *s = arg;
    s->fired = 0;
    int64_t c0 = bench_cpu();
    ev_now_update(s->ev);
    for (size_t i = 0; i < s->n; i++) {
        ev_timer_set(&s->evt[i], (double)s->delay[i] * 1e-9, 0.);
        ev_timer_start(s->ev, &s->evt[i]);
    }
    ev_run(s->ev, 0);
    double r = per_call(c0, bench_cpu(), s->n);
    check_fired(s, "libev");
    return r;
}

static double expiry_libuv(void *arg)
{
    struct setup *s = arg;
    s->fired = 0;
    int64_t c0 = bench_cpu();
    uv_update_time(&s->uv);
    for (size_t i = 0; i < s->n; i++)
        uv_timer_start(&s->uvt[i], uv_fire, (uint64_t)s->delay[i] / 1000000, 0);
    uv_run(&s->uv, UV_RUN_DEFAULT);
    double r = per_call(c0, bench_cpu(), s->n);
    check_fired(s, "libuv");
    return r;
}

static double expiry_libevent(void *arg)
{
    struct setup *s = arg;
    s->fired = 0;
    int64_t c0 = bench_cpu();
    for (size_t i = 0; i < s->n; i++) {
        struct timeval tv = to_tv(s->delay[i]);
        evtimer_add(s->lev[i], &tv);
    }
    event_base_dispatch(s->base);
    double r = per_call(c0, bench_cpu(), s->n);
    check_fired(s, "libevent");
    return r;
}

/* ---- set-up and tear-down of the contenders' loops ---- */

static void setup_all(struct setup *s)
{
    if (mo_loop_new(&s->mo, 0) != 0) abort();
    s->ids = calloc(s->n, sizeof(*s->ids));
    s->ev = ev_loop_new(EVBACKEND_EPOLL);
    s->evt = calloc(s->n, sizeof(*s->evt));
    uv_loop_init(&s->uv);
    s->uvt = calloc(s->n, sizeof(*s->uvt));
    s->base = event_base_new();
    s->lev = calloc(s->n, sizeof(struct event *));
    s->gids = calloc(s->n, sizeof(*s->gids));
    if (!s->ids || !s->evt || !s->uvt || !s->lev || !s->gids) abort();
    for (size_t i = 0; i < s->n; i++) {
        ev_timer_init(&s->evt[i], ev_fire, 0., 0.);
        s->evt[i].data = s;
        uv_timer_init(&s->uv, &s->uvt[i]);
        s->uvt[i].data = s;
        s->lev[i] = evtimer_new(s->base, le_fire, s);
    }
}

static void teardown_all(struct setup *s)
{
    mo_loop_free(s->mo);
    ev_loop_destroy(s->ev);
    for (size_t i = 0; i < s->n; i++) {
        uv_close((uv_handle_t *)&s->uvt[i], NULL);
        event_free(s->lev[i]);
    }
    uv_run(&s->uv, UV_RUN_DEFAULT);
    uv_loop_close(&s->uv);
    event_base_free(s->base);
    free(s->ids);
    free(s->evt);
    free(s->uvt);
    free(s->lev);
    free(s->gids);
}

static void churn(struct setup *s, unsigned reps)
{
    fill_delays(s, 10 * INT64_C(1000000000));
    struct bench_contender cs[] = {
        {"morsel", churn_morsel, s, {0}}, {"libev", churn_libev, s, {0}},
        {"libuv", churn_libuv, s, {0}},   {"libevent", churn_libevent, s, {0}},
        {"GLib", churn_glib, s, {0}},
    };
    char title[128];
    snprintf(title, sizeof(title), "timer churn: insert %zu (random 0-10 s), cancel all", s->n);
    bench_compare(title, "ns/insert+cancel", cs, sizeof(cs) / sizeof(cs[0]), reps);
    printf("vs libev: %.2fx (target >= 2x)\n\n",
           bench_median(cs[1].samples, reps) / bench_median(cs[0].samples, reps));
}

static void expiry(struct setup *s, unsigned reps, bool full)
{
    fill_delays(s, INT64_C(1000000000));
    struct bench_contender cs[] = {
        {"morsel", expiry_morsel, s, {0}},
        {"libev", expiry_libev, s, {0}},
        {"libuv", expiry_libuv, s, {0}},
        {"libevent", expiry_libevent, s, {0}},
    };
    char title[128];
    snprintf(title, sizeof(title), "timer expiry: %zu calls due within 1 s, run until all fired",
             s->n);
    bench_compare(title, "CPU ns/call", cs, full ? 4 : 3, reps);
    printf("vs libev per CPU-second: %.2fx (target >= 2x)\n\n",
           bench_median(cs[1].samples, reps) / bench_median(cs[0].samples, reps));
}

/* ---- memory per pending call ---- */

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static double mem_morsel(struct setup *s)
{
    size_t before = heap_in_use();
    mo_loop_t *loop;
    if (mo_loop_new(&loop, 0) != 0) abort();
    for (size_t i = 0; i < s->n; i++)
        if (mo_call_later(loop, s->delay[i], mo_fire, s, NULL) != 0) abort();
    size_t after = heap_in_use();
    mo_loop_free(loop);
    return (double)(after - before) / (double)s->n;
}

static double mem_libev(struct setup *s)
{
    size_t before = heap_in_use();
    struct ev_loop *loop = ev_loop_new(EVBACKEND_EPOLL);
    ev_timer *w = malloc(s->n * sizeof(*w));
    if (!w) abort();
    for (size_t i = 0; i < s->n; i++) {
        ev_timer_init(&w[i], ev_fire, (double)s->delay[i] * 1e-9, 0.);
        ev_timer_start(loop, &w[i]);
    }
    size_t after = heap_in_use();
    ev_loop_destroy(loop);
    free(w);
    return (double)(after - before) / (double)s->n;
}

static double mem_libuv(struct setup *s)
{
    size_t before = heap_in_use();
    uv_loop_t *loop = malloc(sizeof(*loop));
    uv_timer_t *t = malloc(s->n * sizeof(*t));
    if (!loop || !t) abort();
    uv_loop_init(loop);
    for (size_t i = 0; i < s->n; i++) {
        uv_timer_init(loop, &t[i]);
        uv_timer_start(&t[i], uv_fire, (uint64_t)s->delay[i] / 1000000, 0);
    }
    size_t after = heap_in_use();
    for (size_t i = 0; i < s->n; i++) uv_close((uv_handle_t *)&t[i], NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    free(t);
    free(loop);
    return (double)(after - before) / (double)s->n;
}

static double mem_libevent(struct setup *s)
{
    size_t before = heap_in_use();
    struct event_base *base = event_base_new();
    struct event **ev = malloc(s->n * sizeof(struct event *));
    if (!ev) abort();
    for (size_t i = 0; i < s->n; i++) {
        struct timeval tv = to_tv(s->delay[i]);
        ev[i] = evtimer_new(base, le_fire, s);
        evtimer_add(ev[i], &tv);
    }
    size_t after = heap_in_use();
    for (size_t i = 0; i < s->n; i++) event_free(ev[i]);
    free(ev);
    event_base_free(base);
    return (double)(after - before) / (double)s->n;
}

static double mem_glib(struct setup *s)
{
    size_t before = heap_in_use();
    GMainContext *ctx = g_main_context_new();
    for (size_t i = 0; i < s->n; i++) {
        GSource *src = g_timeout_source_new((guint)(s->delay[i] / 1000000));
        g_source_set_callback(src, gl_fire, s, NULL);
        g_source_attach(src, ctx);
        g_source_unref(src);
    }
    size_t after = heap_in_use();
    g_main_context_unref(ctx);
    return (double)(after - before) / (double)s->n;
}

static void mem(struct setup *s)
{
    fill_delays(s, 10 * INT64_C(1000000000));
    double m[] = {mem_morsel(s), mem_libev(s), mem_libuv(s), mem_libevent(s), mem_glib(s)};
    const char *names[] = {"morsel", "libev", "libuv", "libevent", "GLib"};
    printf("## memory per pending delayed call, %zu pending (random 0-10 s)\n", s->n);
    printf("%-28s %14s %12s\n", "contender", "bytes/call", "vs first");
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
        printf("%-28s %14.1f %11.2fx\n", names[i], m[i], m[i] / m[0]);
    printf("(struct sizes: ev_timer %zu, uv_timer_t %zu, struct event %zu)\n\n", sizeof(ev_timer),
           sizeof(uv_timer_t), event_get_struct_event_size());
}

int main(int argc, char **argv)
{
    unsigned reps = argc > 1 ? (unsigned)atoi(argv[1]) : 3;
    size_t n = argc > 2 ? (size_t)strtoull(argv[2], NULL, 10) : 1000000;
    const char *what = argc > 3 ? argv[3] : "all";
    bool full = argc > 4 && strcmp(argv[4], "full") == 0;
    bool all = strcmp(what, "all") == 0;
    if (reps < 1 || reps > 64 || n < 1) {
        fprintf(stderr, "usage: %s [reps 1..64] [calls] [churn|expiry|mem|all] [full]\n", argv[0]);
        return 2;
    }
    struct setup s = {.n = n, .delay = malloc(n * sizeof(int64_t))};
    if (!s.delay) abort();
    if (all || strcmp(what, "mem") == 0) mem(&s);
    setup_all(&s);
    if (all || strcmp(what, "churn") == 0) churn(&s, reps);
    if (all || strcmp(what, "expiry") == 0) expiry(&s, reps, full);
    teardown_all(&s);
    free(s.delay);
    return 0;
}
