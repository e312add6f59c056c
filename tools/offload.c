/* offload: big pieces on the worker pool (pool.h). See offload.h. */
#include "offload.h"

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

enum { OFFLOAD_NICE = 10 };

struct offload {
    mo_loop_t *loop;
    mo_pool_t *pool; /* our own: its workers run below the loop's priority */
};

struct offload_job {
    mo_pool_job_t job; /* zeroed by calloc */
    offload_work_fn work;
    mo_call_fn done;
    void *arg;
};

/* Below the loop thread, so that when the loop wakes its timer runs at once
 * instead of after a worker's time slice. SCHED_IDLE does that; nice +10
 * did not (N = 10^6 on a quiet 2-core machine: heartbeat p99 2.0 ms at nice
 * +10, 0.24 ms with SCHED_IDLE and every piece on a worker, same time to
 * the result). The price: on a machine busy with other work, these workers
 * get only the CPU nobody else wants. Once per worker (the pool is ours
 * alone); best effort, nice +10 if the policy is refused. */
static void lower_priority(void)
{
    static _Thread_local bool done;
    if (done) return;
    done = true;
    struct sched_param sp = {0};
    if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) != 0)
        (void)setpriority(PRIO_PROCESS, (id_t)gettid(), OFFLOAD_NICE);
}

static void job_work(mo_pool_job_t *job, void *arg)
{
    (void)job;
    struct offload_job *j = arg;
    lower_priority();
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
    int err = mo_pool_new(&o->pool, nthreads ? nthreads : mo_pool_default_threads());
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
