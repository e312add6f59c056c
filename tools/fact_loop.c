/* fact_loop: a fact plan on a morsel loop. See fact_loop.h.
 *
 * The small pieces are the steps of one cooperator task, one piece per
 * step: the cooperator runs as many as fit its time slice, then lets the
 * loop poll and run its timers. When no small piece is ready, the task
 * pauses until a worker brings back a piece that readies some. */
#include "fact_loop.h"

#include <stdlib.h>

struct piece_job {
    struct fact_run *run;
    int piece;
    int err;
};

struct fact_run {
    mo_loop_t *loop;
    struct offload *workers;
    struct fact_plan *plan;
    mo_deferred_t *d; /* our own reference until it fires */
    fact_progress_fn progress;
    void *arg;
    mo_task_t *task;        /* runs the small pieces */
    bool paused;            /* the task waits for a worker, or for fact_loop_resume() */
    bool held;              /* fact_loop_hold(): no new piece starts */
    bool all_on_workers;    /* FACT_LOOP_ALL_ON_WORKERS */
    struct piece_job *jobs; /* one per piece */
    int *small;             /* small pieces ready, FIFO (taken in priority order) */
    size_t small_head, small_tail;
    int *big; /* big pieces ready, waiting for a worker */
    size_t nbig;
    unsigned on_workers; /* pieces out on workers */
    int err;             /* first failure, or MO_ECANCELED */
};

static void run_free(struct fact_run *r)
{
    fact_plan_free(r->plan);
    free(r->jobs);
    free(r->small);
    free(r->big);
    free(r);
}

static void plan_dtor(void *plan)
{
    fact_plan_free(plan);
}

/* Ends the task (if it still runs) and lets go of its handle. */
static void task_end(struct fact_run *r)
{
    if (!r->task) return;
    if (mo_task_state(r->task) != MO_TASK_DONE) mo_task_stop(r->task);
    mo_task_release(r->task);
    r->task = NULL;
}

/* Big numbers are freed on a worker (fact_plan_set_release()): freeing
 * 30 MB on the loop thread held it for up to 20 ms at N = 10^7. */
#define RELEASE_MIN ((size_t)1 << 20)

static void free_work(void *arg)
{
    mpz_t *z = arg;
    mpz_clear(*z);
    free(z);
}

static void free_done(mo_loop_t *loop, void *arg)
{
    (void)loop, (void)arg;
}

static void release_big(mpz_t *z, void *arg)
{
    if (offload_submit(arg, free_work, free_done, z) != 0) free_work(z);
}

/* Once every piece has run, or after a failure once the workers are back:
 * fires or fails the Deferred and frees the run. True if it did. */
static bool run_settle(struct fact_run *r)
{
    if (r->on_workers) return false;
    if (!r->err && !fact_plan_finished(r->plan)) return false;
    mo_deferred_t *d = r->d;
    task_end(r);
    fact_plan_set_release(r->plan, 0, NULL, NULL); /* the plan outlives the run */
    if (!r->err) {
        struct fact_plan *plan = r->plan;
        r->plan = NULL;
        run_free(r);
        mo_deferred_callback(d, plan, plan_dtor);
    } else {
        if (r->err != MO_ECANCELED) mo_deferred_fail(d, r->err, "factorial", "a piece failed");
        run_free(r);
    }
    mo_deferred_unref(d);
    return true;
}

static void big_done(mo_loop_t *loop, void *arg);

static void work_big(void *arg)
{
    struct piece_job *j = arg;
    j->err = fact_piece_run(j->run->plan, j->piece);
}

/* The most urgent waiting big piece (lowest id) goes first. */
static int pop_big(struct fact_run *r)
{
    size_t best = 0;
    for (size_t i = 1; i < r->nbig; i++)
        if (r->big[i] < r->big[best]) best = i;
    int id = r->big[best];
    r->big[best] = r->big[--r->nbig];
    return id;
}

/* Sorts the ready pieces: small ones to the task, big ones to the workers
 * while one is free (so the most urgent goes first when one frees up). */
static int dispatch(struct fact_run *r)
{
    for (int id; (id = fact_plan_take(r->plan)) >= 0;) {
        if (r->all_on_workers || fact_piece_big(r->plan, id))
            r->big[r->nbig++] = id;
        else
            r->small[r->small_tail++] = id;
    }
    while (r->nbig && !r->held && r->on_workers < offload_threads(r->workers)) {
        int id = pop_big(r);
        int err = offload_submit(r->workers, work_big, big_done, &r->jobs[id]);
        if (err) return err;
        r->on_workers++;
    }
    if (r->paused && !r->held && r->small_head < r->small_tail) {
        r->paused = false;
        return mo_task_resume(r->task);
    }
    return 0;
}

/* Records a piece's outcome; true if the run is over (and freed). */
static bool piece_finished(struct piece_job *j)
{
    struct fact_run *r = j->run;
    if (!r->err) r->err = j->err;
    if (!r->err) {
        fact_piece_done(r->plan, j->piece);
        if (r->progress) r->progress(r->plan, r->arg);
        r->err = dispatch(r);
    }
    return run_settle(r);
}

static void big_done(mo_loop_t *loop, void *arg)
{
    (void)loop;
    struct piece_job *j = arg;
    j->run->on_workers--;
    piece_finished(j);
}

/* A step runs small pieces until STEP_NS has passed. Pieces cost from a
 * microsecond to a third of a millisecond; one piece per step would let the
 * cooperator size its batches from the cheap ones and then run a batch of
 * dear ones (we measured 8 ms turns). Steps of at least STEP_NS keep the
 * cost of a step within a few times its estimate. */
#define STEP_NS MO_USEC(100)

static int run_step(mo_task_t *task, void *arg)
{
    struct fact_run *r = arg;
    if (r->small_head == r->small_tail || r->held) { /* wait for the workers, or the consumer */
        r->paused = true;
        mo_task_pause(task);
        return MO_CONTINUE;
    }
    int64_t end = mo_hrtime() + STEP_NS;
    do {
        struct piece_job *j = &r->jobs[r->small[r->small_head++]];
        j->err = fact_piece_run(r->plan, j->piece);
        if (piece_finished(j)) return MO_CONTINUE; /* r is gone; ignored after a stop */
    } while (!r->err && !r->held && r->small_head < r->small_tail && mo_hrtime() < end);
    return MO_CONTINUE;
}

static void run_cancel(mo_deferred_t *d, void *arg)
{
    (void)d;
    struct fact_run *r = arg;
    if (!r->err) r->err = MO_ECANCELED;
    task_end(r);
    /* The Deferred errbacks when this returns; the run goes away now, or
     * when the pieces on workers are back. */
    run_settle(r);
}

/* The task's own Deferred is not reported: the run's Deferred is. */
static void run_ignore_failure(mo_result_t *result, void *arg)
{
    (void)arg;
    mo_result_set(result, NULL, NULL);
}

static int run_start_task(struct fact_run *r)
{
    /* Turns of half a millisecond: a 1 ms timer is then never more than
     * about that late because of us. */
    /* A step runs pieces for >= 100 us and a piece can take ~0.3 ms, so a
     * 250 us slice keeps turns near 1 ms (at 500 us the heartbeat's p99
     * was 1.06 ms; at 250 us 0.97-1.00 ms). */
    const struct mo_task_opts opts = {.slice = MO_USEC(250)};
    int err = mo_cooperate(r->loop, run_step, r, &opts, &r->task);
    if (err) return err;
    mo_deferred_t *td = mo_task_deferred(r->task);
    err = mo_deferred_add_errback(td, run_ignore_failure, NULL);
    mo_deferred_unref(td);
    return err;
}

void fact_loop_hold(struct fact_run *r)
{
    r->held = true;
}

void fact_loop_resume(struct fact_run *r)
{
    if (!r->held) return;
    r->held = false;
    if (!r->err) r->err = dispatch(r);
    run_settle(r);
}

int fact_loop_start(mo_loop_t *loop, struct offload *workers, struct fact_plan *plan,
                    unsigned flags, fact_progress_fn progress, void *arg, mo_deferred_t **dp)
{
    return fact_loop_start_run(loop, workers, plan, flags, progress, arg, NULL, dp);
}

int fact_loop_start_run(mo_loop_t *loop, struct offload *workers, struct fact_plan *plan,
                        unsigned flags, fact_progress_fn progress, void *arg,
                        struct fact_run **runp, mo_deferred_t **dp)
{
    size_t n = fact_plan_piece_count(plan);
    struct fact_run *r = calloc(1, sizeof *r);
    if (!r) {
        fact_plan_free(plan);
        return MO_ENOMEM;
    }
    *r = (struct fact_run){.loop = loop,
                           .workers = workers,
                           .plan = plan,
                           .progress = progress,
                           .arg = arg,
                           .all_on_workers = flags & FACT_LOOP_ALL_ON_WORKERS};
    r->jobs = malloc(n * sizeof *r->jobs);
    r->small = malloc(n * sizeof *r->small);
    r->big = malloc(n * sizeof *r->big);
    int err = !r->jobs || !r->small || !r->big ? MO_ENOMEM : 0;
    if (!err) err = mo_deferred_new(loop, run_cancel, r, &r->d);
    if (!err) err = run_start_task(r);
    if (err) {
        task_end(r);
        mo_deferred_unref(r->d);
        run_free(r);
        return err;
    }
    for (size_t i = 0; i < n; i++) r->jobs[i] = (struct piece_job){r, (int)i, 0};
    fact_plan_set_release(plan, RELEASE_MIN, release_big, workers);
    *dp = mo_deferred_ref(r->d);
    if (runp) *runp = r;
    r->err = dispatch(r);
    run_settle(r);
    return 0;
}
