/* fact_loop: a fact plan on a morsel loop. See fact_loop.h. */
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
    struct piece_job *jobs; /* one per piece */
    int *big;         /* big pieces ready, waiting for a worker */
    size_t nbig;
    unsigned on_workers;
    size_t outstanding; /* pieces on workers or queued as calls */
    int err;            /* first failure, or MO_ECANCELED */
};

static void run_free(struct fact_run *r)
{
    fact_plan_free(r->plan);
    free(r->jobs);
    free(r->big);
    free(r);
}

static void plan_dtor(void *plan)
{
    fact_plan_free(plan);
}

/* Fires or fails the Deferred once nothing is out any more. */
static void run_settle(struct fact_run *r)
{
    if (r->outstanding) return;
    if (!r->err && !fact_plan_finished(r->plan)) return;
    mo_deferred_t *d = r->d;
    r->d = NULL;
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
}

static void piece_finished(struct piece_job *j);

static void run_small(mo_loop_t *loop, void *arg)
{
    (void)loop;
    struct piece_job *j = arg;
    if (!j->run->err) j->err = fact_piece_run(j->run->plan, j->piece);
    piece_finished(j);
}

static void work_big(void *arg)
{
    struct piece_job *j = arg;
    j->err = fact_piece_run(j->run->plan, j->piece);
}

static void big_done(mo_loop_t *loop, void *arg)
{
    (void)loop;
    struct piece_job *j = arg;
    j->run->on_workers--;
    piece_finished(j);
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

static int dispatch(struct fact_run *r)
{
    for (int id; !r->err && (id = fact_plan_take(r->plan)) >= 0;) {
        if (fact_piece_big(r->plan, id)) {
            r->big[r->nbig++] = id;
            continue;
        }
        int err = mo_call_soon(r->loop, run_small, &r->jobs[id]);
        if (err) return err;
        r->outstanding++;
    }
    while (!r->err && r->nbig && r->on_workers < offload_threads(r->workers)) {
        int id = pop_big(r);
        int err = offload_submit(r->workers, work_big, big_done, &r->jobs[id]);
        if (err) return err;
        r->on_workers++;
        r->outstanding++;
    }
    return 0;
}

static void piece_finished(struct piece_job *j)
{
    struct fact_run *r = j->run;
    r->outstanding--;
    if (!r->err) r->err = j->err;
    if (!r->err) {
        fact_piece_done(r->plan, j->piece);
        if (r->progress) r->progress(r->plan, r->arg);
        r->err = dispatch(r);
    }
    run_settle(r);
}

static void run_cancel(mo_deferred_t *d, void *arg)
{
    (void)d;
    struct fact_run *r = arg;
    if (!r->err) r->err = MO_ECANCELED;
    /* The Deferred errbacks when this returns; the run goes away once the
     * pieces already handed out are back (outstanding > 0 while unfired). */
}

int fact_loop_start(mo_loop_t *loop, struct offload *workers, struct fact_plan *plan,
                    fact_progress_fn progress, void *arg, mo_deferred_t **dp)
{
    size_t n = fact_plan_piece_count(plan);
    struct fact_run *r = calloc(1, sizeof *r);
    if (!r) {
        fact_plan_free(plan);
        return MO_ENOMEM;
    }
    *r = (struct fact_run){
        .loop = loop, .workers = workers, .plan = plan, .progress = progress, .arg = arg};
    r->jobs = malloc(n * sizeof *r->jobs);
    r->big = malloc(n * sizeof *r->big);
    if (!r->jobs || !r->big) {
        run_free(r);
        return MO_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) r->jobs[i] = (struct piece_job){r, (int)i, 0};
    int err = mo_deferred_new(loop, run_cancel, r, &r->d);
    if (err) {
        run_free(r);
        return err;
    }
    *dp = mo_deferred_ref(r->d);
    r->err = dispatch(r);
    run_settle(r);
    return 0;
}
