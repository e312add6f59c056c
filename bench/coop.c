/* The cooperator: tiny-step throughput against a plain loop, slice accuracy,
 * and loop lag under CPU-bound tasks.
 *
 *   bench_coop [seconds-per-lag-run]   (default 2)
 *
 * 1. A step of about 20 ns of work, run 20M times by a task, against the
 *    same function called 20M times in a plain for loop (interleaved, median
 *    of 7). Slices are recorded meanwhile: their p50/p99 against the 1 ms
 *    target.
 * 2. Slice accuracy with steps of 1, 10 and 100 us (a tenth of the slice):
 *    p99 slice length / target.
 * 3. Four CPU-bound tasks (10 us steps) and a 1 ms periodic call on the same
 *    loop: p50/p99/max lateness of the periodic call.
 */
#include "bench_util.h"
#include "morsel.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define TINY_STEPS 20000000L

static uint64_t sink;

/* About 20 ns of dependent arithmetic: one tiny piece of an algorithm. */
__attribute__((noinline)) static uint64_t tiny_work(uint64_t x)
{
    for (int i = 0; i < 5; i++) x = (x ^ (x >> 7)) * 0x9E3779B97F4A7C15u + (uint64_t)i;
    return x;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t pct(int64_t *v, size_t n, double p)
{
    if (!n) return 0;
    qsort(v, n, sizeof(*v), cmp_i64);
    size_t i = (size_t)(p * (double)(n - 1));
    return v[i];
}

/* ---- 1. tiny steps ---- */

struct tiny {
    uint64_t x;
    long left;
};

static int tiny_step(mo_task_t *task, void *arg)
{
    (void)task;
    struct tiny *t = arg;
    t->x = tiny_work(t->x);
    return --t->left ? MO_CONTINUE : MO_DONE;
}

static double run_plain(void *arg)
{
    (void)arg;
    uint64_t x = 1;
    int64_t t0 = bench_now();
    for (long i = 0; i < TINY_STEPS; i++) x = tiny_work(x);
    int64_t t1 = bench_now();
    sink += x;
    return (double)(t1 - t0) / TINY_STEPS;
}

/* Slice lengths: on the wall clock (what the cooperator measures; on a
 * loaded machine it includes time the thread was preempted) and in thread
 * CPU time around the pass that ran the slice (what the cooperator
 * controls). */
static int64_t slices[1 << 16], cpu_slices[1 << 16];
static size_t nslices;

static int64_t thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Runs the loop pass by pass, recording each slice's length. */
static void run_recording(mo_loop_t *loop)
{
    struct mo_cooperator_stats cs, prev = {0};
    mo_cooperator_stats(loop, &prev);
    while (mo_loop_alive(loop)) {
        int64_t c0 = thread_cpu();
        mo_loop_run(loop, MO_RUN_ONCE);
        int64_t c1 = thread_cpu();
        mo_cooperator_stats(loop, &cs);
        if (cs.slices != prev.slices && nslices < sizeof(slices) / sizeof(slices[0])) {
            cpu_slices[nslices] = c1 - c0;
            slices[nslices++] = cs.last_ns;
        }
        prev = cs;
    }
}

static double run_task(void *arg)
{
    (void)arg;
    mo_loop_t *loop;
    if (mo_loop_new(&loop, 0) != 0) abort();
    struct tiny t = {1, TINY_STEPS};
    if (mo_cooperate(loop, tiny_step, &t, NULL, NULL) != 0) abort();
    int64_t t0 = bench_now();
    run_recording(loop);
    int64_t t1 = bench_now();
    sink += t.x;
    mo_loop_free(loop);
    return (double)(t1 - t0) / TINY_STEPS;
}

static void bench_tiny(void)
{
    struct bench_contender c[] = {
        {.name = "plain for loop", .run = run_plain},
        {.name = "cooperator task", .run = run_task},
    };
    nslices = 0;
    bench_compare("tiny steps (~20 ns each), 20M steps", "ns/step", c, 2, 7);
    double plain = bench_median(c[0].samples, 7), task = bench_median(c[1].samples, 7);
    int64_t p50 = pct(slices, nslices, 0.5), p99 = pct(slices, nslices, 0.99);
    int64_t c50 = pct(cpu_slices, nslices, 0.5), c99 = pct(cpu_slices, nslices, 0.99);
    printf("task throughput = %.1f%% of the plain loop (target >= 90%%)\n", 100 * plain / task);
    printf("slices: %zu; wall p50 %.3f ms, p99 %.3f ms; thread CPU p50 %.3f ms, p99 %.3f ms "
           "(target 1 ms, within 10%%)\n\n",
           nslices, p50 / 1e6, p99 / 1e6, c50 / 1e6, c99 / 1e6);
}

/* ---- 2. slice accuracy ---- */

struct spin {
    int64_t cost;
    long left;
};

static int spin_step(mo_task_t *task, void *arg)
{
    (void)task;
    struct spin *s = arg;
    int64_t end = mo_hrtime() + s->cost;
    while (mo_hrtime() < end) continue;
    return --s->left ? MO_CONTINUE : MO_DONE;
}

static void bench_accuracy(void)
{
    static const int64_t costs[] = {MO_USEC(1), MO_USEC(10), MO_USEC(100)};
    printf("## slice accuracy, 1 ms slice, one task, 1 s of steps each\n");
    printf("%-10s %7s %9s %9s %9s %9s %12s\n", "step", "slices", "wall p50", "wall p99", "cpu p50",
           "cpu p99", "cpu p99/tgt");
    for (size_t i = 0; i < 3; i++) {
        mo_loop_t *loop;
        if (mo_loop_new(&loop, 0) != 0) abort();
        struct spin s = {costs[i], MO_SEC(1) / costs[i]};
        if (mo_cooperate(loop, spin_step, &s, NULL, NULL) != 0) abort();
        nslices = 0;
        run_recording(loop);
        mo_loop_free(loop);
        int64_t p50 = pct(slices, nslices, 0.5), p99 = pct(slices, nslices, 0.99);
        int64_t c50 = pct(cpu_slices, nslices, 0.5), c99 = pct(cpu_slices, nslices, 0.99);
        printf("%7lld us %7zu %9.3f %9.3f %9.3f %9.3f %11.3fx\n", (long long)(costs[i] / 1000),
               nslices, p50 / 1e6, p99 / 1e6, c50 / 1e6, c99 / 1e6, c99 / 1e6);
    }
    printf("(target: p99 <= 1.1x; ms columns, the target is 1 ms)\n\n");
}

/* ---- 3. loop lag ---- */

struct ticker {
    int64_t due;
    int64_t end;
    int64_t *late;
    size_t n, cap;
    mo_task_t *tasks[4];
};

static void tick(mo_loop_t *loop, void *arg)
{
    struct ticker *t = arg;
    int64_t now = mo_hrtime();
    if (t->n < t->cap) t->late[t->n++] = now - t->due;
    if (now >= t->end) {
        for (int i = 0; i < 4; i++) mo_task_stop(t->tasks[i]);
        return;
    }
    t->due += MO_MSEC(1);
    while (t->due < now) t->due += MO_MSEC(1); /* skipped beats count once */
    mo_loop_update_time(loop);
    mo_call_at(loop, t->due - mo_hrtime() + mo_loop_now(loop), tick, t, NULL);
}

/* The periodic call's lateness with `ntasks` CPU-bound tasks (0: the idle
 * loop, the baseline that shows what the machine's scheduler alone costs). */
static void lag_run(double seconds, int ntasks, int64_t *p)
{
    mo_loop_t *loop;
    if (mo_loop_new(&loop, 0) != 0) abort();
    struct spin s[4];
    struct ticker t = {.cap = 100000};
    t.late = malloc(t.cap * sizeof(*t.late));
    for (int i = 0; i < 4; i++) {
        s[i] = (struct spin){MO_USEC(10), 1L << 40};
        if (mo_cooperate(loop, spin_step, &s[i], NULL, &t.tasks[i]) != 0) abort();
        if (i >= ntasks) mo_task_stop(t.tasks[i]);
    }
    t.due = mo_hrtime() + MO_MSEC(1);
    t.end = t.due + (int64_t)(seconds * 1e9);
    mo_call_later(loop, MO_MSEC(1), tick, &t, NULL);
    mo_loop_run(loop, MO_RUN_DEFAULT);
    for (int i = 0; i < 4; i++) mo_task_release(t.tasks[i]);
    p[0] = pct(t.late, t.n, 0.5);
    p[1] = pct(t.late, t.n, 0.99);
    p[2] = pct(t.late, t.n, 1);
    free(t.late);
    mo_loop_free(loop);
}

static void bench_lag(double seconds)
{
    enum { REPS = 3 };
    double r[2][3][REPS];
    for (int rep = 0; rep < REPS; rep++)
        for (int busy = 0; busy < 2; busy++) {
            int64_t p[3];
            lag_run(seconds / REPS, busy ? 4 : 0, p);
            for (int k = 0; k < 3; k++) r[busy][k][rep] = p[k] / 1e6;
        }
    printf("## loop lag of a 1 ms periodic call, %.1f s per row in %d interleaved runs (medians)\n",
           seconds, REPS);
    printf("%-34s %9s %9s %9s\n", "loop", "p50 ms", "p99 ms", "max ms");
    for (int busy = 0; busy < 2; busy++)
        printf("%-34s %9.3f %9.3f %9.3f\n", busy ? "4 CPU-bound tasks (10 us steps)" : "idle",
               bench_median(r[busy][0], REPS), bench_median(r[busy][1], REPS),
               bench_median(r[busy][2], REPS));
    printf("(target: p99 <= 1.5 ms with the tasks)\n");
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 2;
    if (seconds <= 0) {
        fprintf(stderr, "usage: %s [seconds-per-lag-run]\n", argv[0]);
        return 2;
    }
    bench_tiny();
    bench_accuracy();
    bench_lag(seconds);
    return sink == 42; /* keep the work observable */
}
