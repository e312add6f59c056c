/* Calls from threads: 2 producer threads post N calls each (default 1M) to a
 * running loop; wall time from the producers' start to the last call's
 * arrival, per call.
 *
 *   bench_threads [reps] [calls-per-producer]
 *
 * reps (default 5) interleaved repetitions, medians.
 *
 * Every call is counted on arrival: its argument carries (producer, sequence
 * number), and the callback checks that each producer's numbers arrive as
 * 0, 1, 2, ... with no gap (lost), no repeat (duplicated) and no reordering.
 * Any deviation aborts the benchmark; a loop still waiting 60 s after start
 * reports how many calls arrived and exits.
 *
 * Contenders:
 *   morsel           mo_call_from_thread().
 *   libuv vector     what a careful libuv user writes: a mutex-protected
 *                    growable array of (fn, arg), swapped out whole by the
 *                    uv_async callback (no malloc per call in steady state);
 *                    uv_async_send() after each push (libuv coalesces them).
 *   libuv list       what most libuv code does: a malloc'd node per call on
 *                    a mutex-protected list, freed by the loop thread.
 *   ceiling          not a peer: per-producer rings and a spinning consumer,
 *                    no wake-up protocol at all; what no real loop can beat
 *                    on this machine (see run_spsc()).
 */
#include "bench_util.h"

#include <morsel.h>

#include <uv.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PRODUCERS 2

typedef void (*call_fn)(void *ctx, uintptr_t tag);

struct count {
    uint64_t expected[PRODUCERS];
    uint64_t total, target;
};

static uintptr_t make_tag(unsigned p, uint64_t seq)
{
    return ((uintptr_t)(p + 1) << 40) | (uintptr_t)seq;
}

/* Checks one arrival; aborts on a lost, duplicated or reordered call. */
static void count_arrival(struct count *c, uintptr_t tag)
{
    unsigned p = (unsigned)(tag >> 40) - 1;
    uint64_t seq = tag & ((UINT64_C(1) << 40) - 1);
    if (p >= PRODUCERS || seq != c->expected[p]) {
        fprintf(stderr, "producer %u: got call %llu, expected %llu (%s)\n", p,
                (unsigned long long)seq, (unsigned long long)c->expected[p],
                seq < c->expected[p] ? "duplicated or reordered" : "lost or reordered");
        abort();
    }
    c->expected[p]++;
    c->total++;
}

struct producer {
    pthread_t thread;
    unsigned id;
    uint64_t n;
    void *ctx;
    int (*post)(void *ctx, uintptr_t tag);
};

static void *producer_main(void *arg)
{
    struct producer *p = arg;
    for (uint64_t i = 0; i < p->n; i++) {
        if (p->post(p->ctx, make_tag(p->id, i)) != 0) {
            fprintf(stderr, "producer %u: post failed at %llu\n", p->id, (unsigned long long)i);
            abort();
        }
    }
    return NULL;
}

static void start_producers(struct producer *ps, uint64_t n, void *ctx,
                            int (*post)(void *, uintptr_t))
{
    for (unsigned i = 0; i < PRODUCERS; i++) {
        ps[i] = (struct producer){.id = i, .n = n, .ctx = ctx, .post = post};
        if (pthread_create(&ps[i].thread, NULL, producer_main, &ps[i]) != 0) abort();
    }
}

static void join_producers(struct producer *ps)
{
    for (unsigned i = 0; i < PRODUCERS; i++) pthread_join(ps[i].thread, NULL);
}

static void report_stuck(const struct count *c)
{
    fprintf(stderr, "still waiting after 60 s: %llu of %llu calls arrived\n",
            (unsigned long long)c->total, (unsigned long long)c->target);
    exit(1);
}

/* ---- morsel ---- */

struct mo_ctx {
    mo_loop_t *loop;
    struct count count;
    mo_call_id guard;
};

static void mo_arrive(mo_loop_t *loop, void *arg);

static int mo_post(void *ctx, uintptr_t tag)
{
    struct mo_ctx *m = ctx;
    return mo_call_from_thread(m->loop, mo_arrive, (void *)tag);
}

/* The tag travels as the call's argument, so the callback finds its counter
 * here (the benchmark's only static; one morsel run at a time). */
static struct mo_ctx *mo_current;

static void mo_arrive(mo_loop_t *loop, void *arg)
{
    struct mo_ctx *m = mo_current;
    count_arrival(&m->count, (uintptr_t)arg);
    if (m->count.total == m->count.target) {
        mo_call_cancel(loop, m->guard);
        mo_loop_release(loop);
    }
}

static void mo_stuck(mo_loop_t *loop, void *arg)
{
    (void)loop;
    report_stuck(&((struct mo_ctx *)arg)->count);
}

static double run_morsel(void *arg)
{
    uint64_t n = *(uint64_t *)arg;
    struct mo_ctx m = {.count = {.target = n * PRODUCERS}};
    struct producer ps[PRODUCERS];
    if (mo_loop_new(&m.loop, 0) != 0) abort();
    mo_current = &m;
    mo_loop_hold(m.loop);
    mo_call_later(m.loop, MO_SEC(60), mo_stuck, &m, &m.guard);
    int64_t t0 = bench_now();
    start_producers(ps, n, &m, mo_post);
    mo_loop_run(m.loop, MO_RUN_DEFAULT);
    double r = (double)(bench_now() - t0) / (double)m.count.target;
    join_producers(ps);
    mo_loop_free(m.loop);
    return r;
}

/* ---- libuv: async + mutex + swapped vector ---- */

struct uv_cell {
    call_fn fn;
    uintptr_t tag;
};

struct uvq {
    uv_loop_t loop;
    uv_async_t async;
    uv_timer_t guard;
    uv_mutex_t mu;
    struct uv_cell *items; /* under mu */
    size_t len, cap;
    struct uv_cell *spare; /* loop thread */
    size_t spare_cap;
    struct count count;
};

static void uvq_arrive(void *ctx, uintptr_t tag)
{
    struct uvq *q = ctx;
    count_arrival(&q->count, tag);
    if (q->count.total == q->count.target) {
        uv_close((uv_handle_t *)&q->async, NULL);
        uv_close((uv_handle_t *)&q->guard, NULL);
    }
}

static int uvq_post(void *ctx, uintptr_t tag)
{
    struct uvq *q = ctx;
    uv_mutex_lock(&q->mu);
    if (q->len == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 256;
        struct uv_cell *items = realloc(q->items, cap * sizeof(*items));
        if (!items) {
            uv_mutex_unlock(&q->mu);
            return -1;
        }
        q->items = items;
        q->cap = cap;
    }
    q->items[q->len++] = (struct uv_cell){uvq_arrive, tag};
    uv_mutex_unlock(&q->mu);
    return uv_async_send(&q->async);
}

static void uvq_drain(uv_async_t *a)
{
    struct uvq *q = a->data;
    uv_mutex_lock(&q->mu);
    struct uv_cell *items = q->items;
    size_t len = q->len, cap = q->cap;
    q->items = q->spare;
    q->cap = q->spare_cap;
    q->len = 0;
    uv_mutex_unlock(&q->mu);
    for (size_t i = 0; i < len; i++) items[i].fn(q, items[i].tag);
    q->spare = items;
    q->spare_cap = cap;
}

static void uv_stuck(uv_timer_t *t)
{
    report_stuck(&((struct uvq *)t->data)->count);
}

static void uv_setup(uv_loop_t *loop, uv_async_t *async, uv_async_cb cb, uv_timer_t *guard,
                     void *data)
{
    uv_loop_init(loop);
    uv_async_init(loop, async, cb);
    async->data = data;
    uv_timer_init(loop, guard);
    guard->data = data;
}

static double run_libuv_vector(void *arg)
{
    uint64_t n = *(uint64_t *)arg;
    struct uvq *q = calloc(1, sizeof(*q));
    if (!q) abort();
    q->count.target = n * PRODUCERS;
    uv_mutex_init(&q->mu);
    uv_setup(&q->loop, &q->async, uvq_drain, &q->guard, q);
    uv_timer_start(&q->guard, uv_stuck, 60000, 0);
    struct producer ps[PRODUCERS];
    int64_t t0 = bench_now();
    start_producers(ps, n, q, uvq_post);
    uv_run(&q->loop, UV_RUN_DEFAULT);
    double r = (double)(bench_now() - t0) / (double)q->count.target;
    join_producers(ps);
    uv_loop_close(&q->loop);
    uv_mutex_destroy(&q->mu);
    free(q->items);
    free(q->spare);
    free(q);
    return r;
}

/* ---- libuv: async + mutex + malloc'd list ---- */

struct uv_node {
    struct uv_node *next;
    call_fn fn;
    uintptr_t tag;
};

struct uvl {
    uv_loop_t loop;
    uv_async_t async;
    uv_timer_t guard;
    uv_mutex_t mu;
    struct uv_node *head, **tailp; /* under mu */
    struct count count;
};

static void uvl_arrive(void *ctx, uintptr_t tag)
{
    struct uvl *l = ctx;
    count_arrival(&l->count, tag);
    if (l->count.total == l->count.target) {
        uv_close((uv_handle_t *)&l->async, NULL);
        uv_close((uv_handle_t *)&l->guard, NULL);
    }
}

static int uvl_post(void *ctx, uintptr_t tag)
{
    struct uvl *l = ctx;
    struct uv_node *node = malloc(sizeof(*node));
    if (!node) return -1;
    *node = (struct uv_node){NULL, uvl_arrive, tag};
    uv_mutex_lock(&l->mu);
    *l->tailp = node;
    l->tailp = &node->next;
    uv_mutex_unlock(&l->mu);
    return uv_async_send(&l->async);
}

static void uvl_drain(uv_async_t *a)
{
    struct uvl *l = a->data;
    uv_mutex_lock(&l->mu);
    struct uv_node *node = l->head;
    l->head = NULL;
    l->tailp = &l->head;
    uv_mutex_unlock(&l->mu);
    while (node) {
        struct uv_node *next = node->next;
        node->fn(l, node->tag);
        free(node);
        node = next;
    }
}

static void uvl_stuck(uv_timer_t *t)
{
    report_stuck(&((struct uvl *)t->data)->count);
}

static double run_libuv_list(void *arg)
{
    uint64_t n = *(uint64_t *)arg;
    struct uvl *l = calloc(1, sizeof(*l));
    if (!l) abort();
    l->count.target = n * PRODUCERS;
    l->tailp = &l->head;
    uv_mutex_init(&l->mu);
    uv_setup(&l->loop, &l->async, uvl_drain, &l->guard, l);
    uv_timer_start(&l->guard, uvl_stuck, 60000, 0);
    struct producer ps[PRODUCERS];
    int64_t t0 = bench_now();
    start_producers(ps, n, l, uvl_post);
    uv_run(&l->loop, UV_RUN_DEFAULT);
    double r = (double)(bench_now() - t0) / (double)l->count.target;
    join_producers(ps);
    uv_loop_close(&l->loop);
    uv_mutex_destroy(&l->mu);
    free(l);
    return r;
}

/* ---- reference: the machine's ceiling ---- */

/* Not a peer: a bound on what any design can reach here. Each producer has
 * its own ring, large enough for all its calls and touched before the clock
 * starts; it publishes with one release store and never checks whether the
 * consumer sleeps, because the consumer never does: it spins on the rings.
 * No wake-up protocol, no allocation, no lock, no fence. */
struct ring {
    _Alignas(64) _Atomic uint64_t tail;
    struct uv_cell *cells;
};

struct spsc {
    struct ring ring[PRODUCERS];
    struct count count;
};

static int spsc_post(void *ctx, uintptr_t tag)
{
    struct spsc *q = ctx;
    unsigned p = (unsigned)(tag >> 40) - 1;
    struct ring *r = &q->ring[p];
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    r->cells[t] = (struct uv_cell){NULL, tag};
    atomic_store_explicit(&r->tail, t + 1, memory_order_release);
    return 0;
}

static double run_spsc(void *arg)
{
    uint64_t n = *(uint64_t *)arg;
    struct spsc *q = calloc(1, sizeof(*q));
    if (!q) abort();
    q->count.target = n * PRODUCERS;
    for (unsigned p = 0; p < PRODUCERS; p++) {
        q->ring[p].cells = malloc(n * sizeof(struct uv_cell));
        if (!q->ring[p].cells) abort();
        memset(q->ring[p].cells, 0, n * sizeof(struct uv_cell));
    }
    uint64_t head[PRODUCERS] = {0};
    struct producer ps[PRODUCERS];
    int64_t t0 = bench_now();
    start_producers(ps, n, q, spsc_post);
    while (q->count.total < q->count.target) {
        for (unsigned p = 0; p < PRODUCERS; p++) {
            uint64_t tail = atomic_load_explicit(&q->ring[p].tail, memory_order_acquire);
            while (head[p] < tail) count_arrival(&q->count, q->ring[p].cells[head[p]++].tag);
        }
    }
    double r = (double)(bench_now() - t0) / (double)q->count.target;
    join_producers(ps);
    for (unsigned p = 0; p < PRODUCERS; p++) free(q->ring[p].cells);
    free(q);
    return r;
}

int main(int argc, char **argv)
{
    unsigned reps = argc > 1 ? (unsigned)atoi(argv[1]) : 5;
    uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000;
    if (reps < 1 || reps > 64 || n < 1 || n >= (UINT64_C(1) << 40)) {
        fprintf(stderr, "usage: %s [reps 1..64] [calls per producer]\n", argv[0]);
        return 2;
    }
    struct bench_contender cs[] = {
        {"morsel mo_call_from_thread", run_morsel, &n, {0}},
        {"libuv async+mutex+vector", run_libuv_vector, &n, {0}},
        {"libuv async+mutex+malloc", run_libuv_list, &n, {0}},
        {"ceiling: spin on SPSC rings", run_spsc, &n, {0}},
    };
    char title[128];
    snprintf(title, sizeof(title), "calls from %d threads, %llu each, all counted on arrival",
             PRODUCERS, (unsigned long long)n);
    bench_compare(title, "ns/call", cs, sizeof(cs) / sizeof(cs[0]), reps);
    double m = bench_median(cs[0].samples, reps);
    printf("vs libuv vector: %.1fx, vs libuv malloc: %.1fx (target >= 10x)\n",
           bench_median(cs[1].samples, reps) / m, bench_median(cs[2].samples, reps) / m);
    printf("ceiling (no wake-ups, consumer spins, rings pre-faulted): %.1fx libuv vector\n",
           bench_median(cs[1].samples, reps) / bench_median(cs[3].samples, reps));
    printf("none lost, none duplicated, FIFO per producer: checked on every call\n");
    return 0;
}
