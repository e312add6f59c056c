/* The worker pool against libuv's uv_queue_work, side by side:
 *   burst:     1M trivial jobs submitted at once, until the last completion
 *              ran on the loop thread (ns per job; jobs/s = 1e9 / that);
 *   ping-pong: submit one job, and the next from its completion (ns per
 *              round trip);
 *   idle:      CPU time the process uses over 1 s with both pools alive and
 *              idle, and over 1 s of a morsel loop sleeping with its pool.
 * Each pool has its library's default size: morsel one worker per online
 * CPU, libuv 4 (or UV_THREADPOOL_SIZE from the environment).
 * Usage: bench_pool [reps] [burst-jobs]. */
#include "bench_util.h"

#include <morsel.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <uv.h>

#define PINGPONG_ROUNDS 20000

static size_t n_jobs = 1000000;

/* ---- morsel ---- */

static mo_loop_t *mo_lp;
static mo_pool_t *mo_pl;
static mo_pool_job_t *mo_jobs;
static unsigned mo_done_count;
static unsigned mo_pp_left;

static void mo_work(mo_pool_job_t *job, void *arg)
{
    (void)job;
    (void)arg;
}

static void mo_done(mo_loop_t *loop, mo_pool_job_t *job, int status, void *arg)
{
    (void)loop, (void)job, (void)status, (void)arg;
    mo_done_count++;
}

static double mo_burst(void *arg)
{
    (void)arg;
    mo_done_count = 0;
    int64_t t0 = bench_now();
    for (size_t i = 0; i < n_jobs; i++)
        if (mo_pool_submit(mo_pl, mo_lp, &mo_jobs[i], mo_work, mo_done, NULL)) abort();
    mo_loop_run(mo_lp, MO_RUN_DEFAULT);
    if (mo_done_count != n_jobs) abort();
    return (double)(bench_now() - t0) / (double)n_jobs;
}

static void mo_pp_done(mo_loop_t *loop, mo_pool_job_t *job, int status, void *arg)
{
    (void)status;
    if (--mo_pp_left && mo_pool_submit(mo_pl, loop, job, mo_work, mo_pp_done, arg)) abort();
}

static double mo_pingpong(void *arg)
{
    (void)arg;
    mo_pp_left = PINGPONG_ROUNDS;
    int64_t t0 = bench_now();
    if (mo_pool_submit(mo_pl, mo_lp, &mo_jobs[0], mo_work, mo_pp_done, NULL)) abort();
    mo_loop_run(mo_lp, MO_RUN_DEFAULT);
    return (double)(bench_now() - t0) / PINGPONG_ROUNDS;
}

/* ---- libuv ---- */

static uv_loop_t uv_lp;
static uv_work_t *uv_reqs;
static unsigned uv_done_count;
static unsigned uv_pp_left;

static void uv_work(uv_work_t *req)
{
    (void)req;
}

static void uv_done(uv_work_t *req, int status)
{
    (void)req, (void)status;
    uv_done_count++;
}

static double uv_burst(void *arg)
{
    (void)arg;
    uv_done_count = 0;
    int64_t t0 = bench_now();
    for (size_t i = 0; i < n_jobs; i++)
        if (uv_queue_work(&uv_lp, &uv_reqs[i], uv_work, uv_done)) abort();
    uv_run(&uv_lp, UV_RUN_DEFAULT);
    if (uv_done_count != n_jobs) abort();
    return (double)(bench_now() - t0) / (double)n_jobs;
}

static void uv_pp_done(uv_work_t *req, int status)
{
    (void)status;
    if (--uv_pp_left && uv_queue_work(&uv_lp, req, uv_work, uv_pp_done)) abort();
}

static double uv_pingpong(void *arg)
{
    (void)arg;
    uv_pp_left = PINGPONG_ROUNDS;
    int64_t t0 = bench_now();
    if (uv_queue_work(&uv_lp, &uv_reqs[0], uv_work, uv_pp_done)) abort();
    uv_run(&uv_lp, UV_RUN_DEFAULT);
    return (double)(bench_now() - t0) / PINGPONG_ROUNDS;
}

/* ---- idle ---- */

static void stop_cb(mo_loop_t *loop, void *arg)
{
    (void)arg;
    mo_loop_stop(loop);
}

static void idle_report(void)
{
    int64_t c0 = bench_cpu();
    nanosleep(&(struct timespec){.tv_sec = 1}, NULL);
    int64_t c1 = bench_cpu();
    /* A loop asleep in epoll with its pool alive, held open. */
    mo_loop_hold(mo_lp);
    mo_call_later(mo_lp, MO_SEC(1), stop_cb, NULL, NULL);
    mo_loop_run(mo_lp, MO_RUN_DEFAULT);
    mo_loop_release(mo_lp);
    int64_t c2 = bench_cpu();
    printf("## idle CPU (both pools alive, after the runs above)\n");
    printf("process CPU over 1 s idle:                 %.3f ms (%.4f%% of a core)\n",
           (c1 - c0) / 1e6, (c1 - c0) / 1e7);
    printf("process CPU over 1 s of a sleeping loop:   %.3f ms (%.4f%% of a core)\n",
           (c2 - c1) / 1e6, (c2 - c1) / 1e7);
}

int main(int argc, char **argv)
{
    unsigned reps = argc > 1 ? (unsigned)atoi(argv[1]) : 7;
    if (argc > 2) n_jobs = (size_t)atol(argv[2]);
    if (mo_loop_new(&mo_lp, 0) || mo_pool_new(&mo_pl, mo_pool_default_threads())) return 1;
    if (uv_loop_init(&uv_lp)) return 1;
    mo_jobs = calloc(n_jobs, sizeof(*mo_jobs));
    uv_reqs = calloc(n_jobs, sizeof(*uv_reqs));
    if (!mo_jobs || !uv_reqs) return 1;
    const char *uv_size = getenv("UV_THREADPOOL_SIZE");
    printf("morsel workers: %u, libuv workers: %s, burst of %zu jobs\n", mo_pool_threads(mo_pl),
           uv_size ? uv_size : "4 (default)", n_jobs);
    /* Warm both up: threads started, job arrays faulted in. */
    mo_burst(NULL);
    uv_burst(NULL);
    struct bench_contender burst[] = {{"morsel mo_pool_submit", mo_burst, NULL, {0}},
                                      {"libuv uv_queue_work", uv_burst, NULL, {0}}};
    bench_compare("burst of trivial jobs", "ns/job", burst, 2, reps);
    printf("jobs/s: morsel %.2fM, libuv %.2fM\n", 1e3 / bench_median(burst[0].samples, reps),
           1e3 / bench_median(burst[1].samples, reps));
    struct bench_contender pp[] = {{"morsel mo_pool_submit", mo_pingpong, NULL, {0}},
                                   {"libuv uv_queue_work", uv_pingpong, NULL, {0}}};
    bench_compare("ping-pong round trip", "ns/round", pp, 2, reps);
    idle_report();
    mo_pool_free(mo_pl, 0);
    mo_loop_free(mo_lp);
    uv_loop_close(&uv_lp);
    free(mo_jobs);
    free(uv_reqs);
    return 0;
}
