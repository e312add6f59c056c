/* Offloading indivisible pieces (DESIGN rule 13): what it buys and what it
 * costs.
 *
 *   bench_offload [pieces] [piece-ms]   (defaults 20 and 20: about 20 s)
 *
 * 1. Loop lag. A task runs `pieces` indivisible pieces of `piece-ms` of
 *    busy CPU each, while a 1 ms periodic call measures the loop's
 *    lateness: the pieces run inline in the task's steps (each step holds
 *    the loop for the whole piece: the stall the cooperator cannot cut),
 *    or offloaded with mo_task_offload() to the loop's default pool. Two
 *    baselines: the idle loop, and the idle loop while a plain thread of
 *    ours burns the same CPU time (what the offloaded pieces cost the loop
 *    on a machine without a spare core, morsel aside). Besides lateness,
 *    the longest callback the loop ran (mo_loop_stats): how long the loop
 *    itself was held. Interleaved, 9 runs each, medians.
 * 2. Round-trip cost of an empty piece: mo_task_offload() (the job is part
 *    of the task) against mo_task_wait() on mo_defer_to_thread()'s
 *    Deferred (two allocations per piece), 20,000 pieces per run,
 *    interleaved, 7 runs, medians.
 */
#include "bench_util.h"
#include "morsel.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t pct(int64_t *v, size_t n, double p)
{
    if (!n) return 0;
    qsort(v, n, sizeof(*v), cmp_i64);
    return v[(size_t)(p * (double)(n - 1))];
}

static void busy(int64_t ns)
{
    int64_t end = mo_hrtime() + ns;
    while (mo_hrtime() < end) continue;
}

/* ---- the work: pieces that cannot be cut ---- */

enum mode { IDLE, BURNER, INLINE, OFFLOAD, NMODES };

struct work {
    enum mode mode;
    int left;
    int64_t piece_ns;
    bool done;
};

static int busy_piece(void *arg, void **valuep, mo_dtor_fn *dtorp, mo_failure_t **failurep)
{
    (void)valuep;
    (void)dtorp;
    (void)failurep;
    busy(((struct work *)arg)->piece_ns);
    return 0;
}

static int work_step(mo_task_t *task, void *arg)
{
    struct work *w = arg;
    if (w->left-- <= 0) {
        w->done = true;
        return MO_DONE;
    }
    if (w->mode == OFFLOAD) return mo_task_offload(task, busy_piece, w);
    busy(w->piece_ns);
    return MO_CONTINUE;
}

/* ---- 1. loop lag ---- */

struct ticker {
    struct work *work;
    int64_t due, end; /* end: for the idle baseline */
    int64_t *late;
    size_t n, cap;
};

static void tick(mo_loop_t *loop, void *arg)
{
    struct ticker *t = arg;
    int64_t now = mo_hrtime();
    if (t->n < t->cap) t->late[t->n++] = now - t->due;
    if (t->work->mode <= BURNER ? now >= t->end : t->work->done) return;
    t->due += MO_MSEC(1);
    while (t->due < now) t->due += MO_MSEC(1); /* skipped beats count once */
    mo_loop_update_time(loop);
    mo_call_at(loop, t->due - mo_hrtime() + mo_loop_now(loop), tick, t, NULL);
}

static void *burner(void *arg)
{
    struct work *w = arg;
    busy(w->left * w->piece_ns);
    return NULL;
}

enum { P50, P99, MAX, HELD, ELAPSED, NCOLS };

static void lag_run(enum mode mode, int pieces, int64_t piece_ns, double *out)
{
    mo_loop_t *loop;
    mo_pool_t *pool;
    if (mo_loop_new(&loop, 0) != 0 || mo_loop_pool(loop, &pool) != 0) abort();
    struct work w = {mode, pieces, piece_ns, false};
    struct ticker t = {.work = &w, .cap = 100000};
    if (!(t.late = malloc(t.cap * sizeof(*t.late)))) abort();
    if (mode >= INLINE && mo_cooperate(loop, work_step, &w, NULL, NULL) != 0) abort();
    pthread_t thread;
    if (mode == BURNER && pthread_create(&thread, NULL, burner, &w) != 0) abort();
    int64_t start = mo_hrtime();
    t.due = start + MO_MSEC(1);
    t.end = start + pieces * piece_ns;
    mo_call_later(loop, MO_MSEC(1), tick, &t, NULL);
    mo_loop_run(loop, MO_RUN_DEFAULT);
    out[ELAPSED] = (mo_hrtime() - start) / 1e6;
    if (mode == BURNER) pthread_join(thread, NULL);
    struct mo_loop_stats st;
    mo_loop_stats(loop, &st);
    out[HELD] = st.callback.max / 1e6;
    out[P50] = pct(t.late, t.n, 0.5) / 1e6;
    out[P99] = pct(t.late, t.n, 0.99) / 1e6;
    out[MAX] = pct(t.late, t.n, 1) / 1e6;
    free(t.late);
    mo_loop_free(loop);
}

static void bench_lag(int pieces, int64_t piece_ns)
{
    enum { REPS = 9 };
    static const char *names[] = {"idle loop", "idle loop, a thread burns as much CPU",
                                  "pieces inline in the steps",
                                  "pieces offloaded (mo_task_offload)"};
    double r[NMODES][NCOLS][REPS], x[NCOLS];
    for (int rep = 0; rep < REPS; rep++)
        for (int m = 0; m < NMODES; m++) {
            lag_run((enum mode)m, pieces, piece_ns, x);
            for (int k = 0; k < NCOLS; k++) r[m][k][rep] = x[k];
        }
    printf("## loop lag of a 1 ms periodic call while a task runs %d pieces of %.0f ms\n", pieces,
           piece_ns / 1e6);
    printf("## (%d interleaved runs, medians; default pool of %u workers)\n", REPS,
           mo_pool_default_threads());
    printf("%-38s %8s %8s %8s %12s %10s\n", "loop", "p50 ms", "p99 ms", "max ms", "held max ms",
           "elapsed ms");
    double med[NMODES][NCOLS];
    for (int m = 0; m < NMODES; m++) {
        for (int k = 0; k < NCOLS; k++) med[m][k] = bench_median(r[m][k], REPS);
        printf("%-38s %8.3f %8.3f %8.3f %12.3f %10.1f\n", names[m], med[m][P50], med[m][P99],
               med[m][MAX], med[m][HELD], med[m][ELAPSED]);
    }
    printf("offloaded / inline: p99 lateness %.3f, loop held %.4f\n",
           med[OFFLOAD][P99] / med[INLINE][P99], med[OFFLOAD][HELD] / med[INLINE][HELD]);
    printf("offloaded / burning thread: p99 lateness %.2f\n\n",
           med[OFFLOAD][P99] / med[BURNER][P99]);
}

/* ---- 2. round trips of an empty piece ---- */

#define ROUND_TRIPS 20000

static int empty_piece(void *arg, void **valuep, mo_dtor_fn *dtorp, mo_failure_t **failurep)
{
    (void)arg;
    (void)valuep;
    (void)dtorp;
    (void)failurep;
    return 0;
}

struct trips {
    mo_loop_t *loop;
    int left;
    bool deferred;
};

static int trips_step(mo_task_t *task, void *arg)
{
    struct trips *t = arg;
    if (t->left-- <= 0) return MO_DONE;
    if (!t->deferred) return mo_task_offload(task, empty_piece, NULL);
    mo_deferred_t *d;
    if (mo_defer_to_thread(t->loop, empty_piece, NULL, &d) != 0) abort();
    return mo_task_wait(task, d);
}

static double run_trips(void *arg)
{
    mo_loop_t *loop;
    mo_pool_t *pool;
    if (mo_loop_new(&loop, 0) != 0 || mo_loop_pool(loop, &pool) != 0) abort();
    struct trips t = {loop, ROUND_TRIPS, arg != NULL};
    if (mo_cooperate(loop, trips_step, &t, NULL, NULL) != 0) abort();
    int64_t t0 = bench_now();
    mo_loop_run(loop, MO_RUN_DEFAULT);
    int64_t t1 = bench_now();
    mo_loop_free(loop);
    return (double)(t1 - t0) / ROUND_TRIPS;
}

static void bench_trips(void)
{
    static int yes;
    struct bench_contender c[] = {
        {.name = "mo_task_wait(mo_defer_to_thread)", .run = run_trips, .arg = &yes},
        {.name = "mo_task_offload", .run = run_trips, .arg = NULL},
    };
    bench_compare("round trip of an empty piece, task -> pool -> task, 20,000 per run", "ns/trip",
                  c, 2, 7);
}

int main(int argc, char **argv)
{
    int pieces = argc > 1 ? atoi(argv[1]) : 20;
    double ms = argc > 2 ? atof(argv[2]) : 20;
    if (pieces <= 0 || ms <= 0) {
        fprintf(stderr, "usage: %s [pieces] [piece-ms]\n", argv[0]);
        return 2;
    }
    bench_lag(pieces, (int64_t)(ms * 1e6));
    bench_trips();
    return 0;
}
