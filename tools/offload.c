/* offload: big pieces on the worker pool (pool.h). See offload.h. */
#include "offload.h"

#include <stdlib.h>

struct offload {
    mo_loop_t *loop;
    mo_pool_t *pool; /* our own, at MO_POOL_PRIORITY_IDLE */
};

struct offload_job {
    mo_pool_job_t job; /* zeroed by calloc */
    offload_work_fn work;
    mo_call_fn done;
    void *arg;
};

static void job_work(mo_pool_job_t *job, void *arg)
{
    (void)job;
    struct offload_job *j = arg;
    j->work(j->arg);
}

static void job_done(mo_loop_t *loop, mo_pool_job_t *job, int status, void *arg)
{
    (void)job;
    (void)status; /* never MO_ECANCELED: offload_free() lets queued jobs run */
    struct offload_job *j = arg;
    mo_call_fn done = j->done;
    void *a = j->arg;
    free(j);
    done(loop, a);
}

int offload_new(struct offload **op, mo_loop_t *loop, unsigned nthreads)
{
    struct offload *o = calloc(1, sizeof *o);
    if (!o) return MO_ENOMEM;
    o->loop = loop;
    /* SCHED_IDLE, not the default pool's nice +10: when the loop wakes, its
     * timer runs at once instead of after a worker's time slice (pool.h). */
    struct mo_pool_opts opts = {.threads = nthreads, .priority = MO_POOL_PRIORITY_IDLE};
    int err = mo_pool_new_with(&o->pool, &opts);
    if (err) {
        free(o);
        return err;
    }
    *op = o;
    return 0;
}

unsigned offload_threads(const struct offload *o)
{
    return mo_pool_threads(o->pool);
}

int offload_submit(struct offload *o, offload_work_fn work, mo_call_fn done, void *arg)
{
    struct offload_job *j = calloc(1, sizeof *j);
    if (!j) return MO_ENOMEM;
    j->work = work;
    j->done = done;
    j->arg = arg;
    int err = mo_pool_submit(o->pool, o->loop, &j->job, job_work, job_done, j);
    if (err) free(j);
    return err;
}

void offload_free(struct offload *o)
{
    if (!o) return;
    mo_pool_free(o->pool, 0);
    free(o);
}
