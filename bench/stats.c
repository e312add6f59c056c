/* The cost of the loop statistics (on by default), side by side in one run:
 *   zero-delay chain: each call schedules the next with mo_call_soon();
 *   timer chain:      each call schedules the next with mo_call_later(0),
 *                     which runs in the next iteration, after a poll;
 * with statistics on and off (mo_loop_stats_enable). The dispatch stores the
 * watchdog reads are made in both cases; their cost shows only against a
 * build without them (see BENCHMARKS.md). Usage: bench_stats [reps]. */
#include "bench_util.h"

#include <morsel.h>
#include <stdio.h>
#include <stdlib.h>

#define SOON_CALLS  5000000
#define TIMER_CALLS 300000

static long left;

static void soon_cb(mo_loop_t *loop, void *arg)
{
    if (--left > 0 && mo_call_soon(loop, soon_cb, arg)) abort();
}

static void timer_cb(mo_loop_t *loop, void *arg)
{
    if (--left > 0 && mo_call_later(loop, 0, timer_cb, arg, NULL)) abort();
}

static double mo_chain(int on, mo_call_fn fn, long calls)
{
    mo_loop_t *loop;
    if (mo_loop_new(&loop, 0) || mo_loop_stats_enable(loop, on)) abort();
    left = calls;
    int64_t t0 = bench_now();
    if (fn == soon_cb ? mo_call_soon(loop, fn, NULL) : mo_call_later(loop, 0, fn, NULL, NULL))
        abort();
    mo_loop_run(loop, MO_RUN_DEFAULT);
    double ns = (double)(bench_now() - t0) / (double)calls;
    struct mo_loop_stats st;
    mo_loop_stats(loop, &st);
    if (on && (st.callback.count < (uint64_t)calls || (fn == timer_cb && !st.lag.count))) abort();
    mo_loop_free(loop);
    return ns;
}

static double soon_on(void *arg)
{
    (void)arg;
    return mo_chain(1, soon_cb, SOON_CALLS);
}

static double soon_off(void *arg)
{
    (void)arg;
    return mo_chain(0, soon_cb, SOON_CALLS);
}

static double timer_on(void *arg)
{
    (void)arg;
    return mo_chain(1, timer_cb, TIMER_CALLS);
}

static double timer_off(void *arg)
{
    (void)arg;
    return mo_chain(0, timer_cb, TIMER_CALLS);
}

int main(int argc, char **argv)
{
    unsigned reps = argc > 1 ? (unsigned)atoi(argv[1]) : 9;
    struct bench_contender soon[] = {{"morsel, stats on", soon_on, NULL, {0}},
                                     {"morsel, stats off", soon_off, NULL, {0}}};
    bench_compare("zero-delay chain (mo_call_soon)", "ns/call", soon, 2, reps);
    struct bench_contender timers[] = {{"morsel, stats on", timer_on, NULL, {0}},
                                       {"morsel, stats off", timer_off, NULL, {0}}};
    bench_compare("timer chain (delay 0)", "ns/call", timers, 2, reps);
    return 0;
}
