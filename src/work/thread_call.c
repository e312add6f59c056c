/* Calls on the pool: the record of a mo_thread_fn call made by a worker
 * (struct mo__thread_call, which also carries mo_task_offload()'s pieces),
 * and mo_deferred_call_on_pool(), which fires a Deferred with its outcome
 * on the loop thread. */
#include "work/work_int.h"

void mo__thread_call_run(struct mo__thread_call *c)
{
    c->code = c->fn(c->arg, &c->value, &c->dtor, &c->failure);
}

mo_failure_t *mo__thread_call_take(struct mo__thread_call *c, int status, const char *origin,
                                   void **vp, mo_dtor_fn *dtorp)
{
    mo_failure_t *f = c->failure;
    *vp = c->value;
    *dtorp = c->dtor;
    c->value = NULL;
    c->dtor = NULL;
    c->failure = NULL;
    if (!status && !c->code) {
        mo_failure_unref(f);
        return NULL;
    }
    if (*dtorp) (*dtorp)(*vp);
    *vp = NULL;
    *dtorp = NULL;
    if (status) {
        mo_failure_unref(f);
        return mo_failure_new(status, origin, "the pool shut down first");
    }
    return f ? f : mo_failure_new(c->code, origin, NULL);
}

/* A call whose outcome fires a Deferred. */
struct deferred_call {
    struct mo__thread_call call;
    mo_deferred_t *d; /* the job's reference */
};

static void deferred_call_work(mo_pool_job_t *job, void *arg)
{
    (void)job;
    mo__thread_call_run(&((struct deferred_call *)arg)->call);
}

/* Fires the Deferred with what fn produced. If it was cancelled meanwhile,
 * mo_deferred_callback()/errback() answer MO_ECANCELED and destroy the
 * value or release the failure: the result is discarded safely. */
static void deferred_call_fire(mo_deferred_t *d, struct mo__thread_call *c, int status)
{
    void *value;
    mo_dtor_fn dtor;
    mo_failure_t *f = mo__thread_call_take(c, status, "mo_deferred_call_on_pool", &value, &dtor);
    if (f)
        mo_deferred_errback(d, f);
    else
        mo_deferred_callback(d, value, dtor);
}

static void deferred_call_done(mo_loop_t *loop, mo_pool_job_t *job, int status, void *arg)
{
    (void)loop;
    (void)job;
    struct deferred_call *c = arg, copy = *c;
    mo__free(c);
    deferred_call_fire(copy.d, &copy.call, status);
    mo_deferred_unref(copy.d);
}

/* The Deferred's canceller. A job still queued is taken back and the
 * Deferred errbacks with MO_ECANCELED when this returns; a running one
 * completes and deferred_call_done() discards its result. Dropping the job's
 * reference here is safe: mo_deferred_cancel() holds one meanwhile. */
static void deferred_call_cancel(mo_deferred_t *d, void *arg)
{
    struct deferred_call *c = arg;
    if (mo_pool_cancel(&c->call.job) != 0) return;
    mo__free(c);
    mo_deferred_unref(d);
}

int mo_deferred_call_on_pool(mo_pool_t *pool, mo_loop_t *loop, mo_thread_fn fn, void *arg,
                             mo_deferred_t **dp)
{
    if (!loop || !fn || !dp) return MO_EINVAL;
    struct deferred_call *c = mo__calloc(1, sizeof(*c));
    if (!c) return MO_ENOMEM;
    mo_deferred_t *d;
    int err = mo_deferred_new(loop, deferred_call_cancel, c, &d);
    if (err) {
        mo__free(c);
        return err;
    }
    c->d = mo_deferred_ref(d);
    c->call.fn = fn;
    c->call.arg = arg;
    err = mo_pool_submit(pool, loop, &c->call.job, deferred_call_work, deferred_call_done, c);
    if (err) {
        mo__free(c);
        mo_deferred_unref(d);
        mo_deferred_unref(d);
        return err;
    }
    *dp = d;
    return 0;
}

/* ---- deprecated names ---- */

int mo_defer_to_thread(mo_loop_t *loop, mo_thread_fn fn, void *arg, mo_deferred_t **dp)
{
    return mo_deferred_call_on_pool(NULL, loop, fn, arg, dp);
}

int mo_pool_defer(mo_pool_t *pool, mo_loop_t *loop, mo_thread_fn fn, void *arg, mo_deferred_t **dp)
{
    return mo_deferred_call_on_pool(pool, loop, fn, arg, dp);
}
