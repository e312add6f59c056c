/* Stackful coroutines as cooperative tasks. The task's step switches into
 * the coroutine, which runs until its batch of yields is used up, it awaits
 * a Deferred, or it returns; coro_ctx.h does the switching. */
#include "work/coro_ctx.h"
#include "work/work_int.h"

struct mo_coro {
    struct mo__ctx ctx;    /* the coroutine's own */
    struct mo__ctx caller; /* the loop thread's, while the coroutine runs */
    struct mo__stack stack;
    mo_task_t *task;
    mo_coro_fn fn;
    void *arg;
    mo_failure_t *failure; /* of the last failed mo_await() */
    int status;            /* what the step reports when the coroutine switches out */
    bool running;
    bool returned; /* fn returned: the stack is no longer needed */
};

/* Runs on the coroutine's stack. */
static void coro_main(void *arg)
{
    mo_coro_t *co = arg;
    int rc = co->fn(co, co->arg);
    co->returned = true;
    if (rc == 0) {
        co->status = MO_DONE;
    } else if (co->failure && mo_failure_code(co->failure) == rc) {
        co->status = mo_task_fail(co->task, co->failure);
        co->failure = NULL;
    } else {
        co->status = mo_task_fail(co->task, mo_failure_new(rc, "coroutine", NULL));
    }
    mo__ctx_exit(&co->ctx, &co->caller);
}

static void coro_unmap(mo_coro_t *co)
{
    if (!co->stack.map) return;
    mo__ctx_release(&co->ctx);
    mo__stack_free(&co->stack);
}

/* The task's step: resume the coroutine for one batch. */
static int coro_step(mo_task_t *task, void *arg)
{
    (void)task;
    mo_coro_t *co = arg;
    if (co->returned) return MO_DONE;
    mo__ctx_init_thread(&co->caller);
    co->status = MO_CONTINUE;
    co->running = true;
    mo__ctx_switch(&co->caller, &co->ctx);
    co->running = false;
    if (co->returned) coro_unmap(co);
    return co->status;
}

static void coro_free(void *arg)
{
    mo_coro_t *co = arg;
    coro_unmap(co);
    mo_failure_unref(co->failure);
    mo__free(co);
}

/* Back to the loop; returns when the cooperator resumes the coroutine. */
static void coro_suspend(mo_coro_t *co, int status)
{
    co->status = status;
    mo__ctx_switch(&co->ctx, &co->caller);
}

int mo_yield(mo_coro_t *co)
{
    if (!co || !co->running) return MO_EINVAL;
    mo_task_t *t = co->task;
    if (--t->budget == 0 || t->pauses) coro_suspend(co, MO_CONTINUE);
    return mo__task_finished(t) ? MO_ECANCELED : 0;
}

/* Hands the awaited value over, or destroys it. */
static void coro_receive(mo_coro_t *co, void **valuep, mo_dtor_fn *dtorp)
{
    mo_dtor_fn dtor = NULL;
    void *v = mo_task_received(co->task, &dtor);
    if (valuep) {
        *valuep = v;
        *dtorp = dtor;
    } else if (dtor) {
        dtor(v);
    }
}

/* Back from a wait (mo_await, mo_coro_offload): what it gave. */
static int coro_resumed(mo_coro_t *co, void **valuep, mo_dtor_fn *dtorp)
{
    mo_task_t *t = co->task;
    if (mo__task_finished(t)) return MO_ECANCELED;
    if (t->failure) {
        mo_failure_unref(co->failure);
        co->failure = t->failure;
        t->failure = NULL;
        return mo_failure_code(co->failure);
    }
    coro_receive(co, valuep, dtorp);
    return 0;
}

int mo_await(mo_coro_t *co, mo_deferred_t *d, void **valuep, mo_dtor_fn *dtorp)
{
    if (!co || !d || !co->running || !valuep != !dtorp) {
        mo_deferred_unref(d);
        return MO_EINVAL;
    }
    mo_task_t *t = co->task;
    if (mo__task_finished(t)) {
        mo_deferred_unref(d);
        return MO_ECANCELED;
    }
    mo_task_wait(t, d);
    if (t->budget) t->budget--;
    coro_suspend(co, MO_WAIT);
    return coro_resumed(co, valuep, dtorp);
}

int mo_coro_offload(mo_coro_t *co, mo_thread_fn fn, void *arg, void **valuep, mo_dtor_fn *dtorp)
{
    if (!co || !fn || !co->running || !valuep != !dtorp) return MO_EINVAL;
    mo_task_t *t = co->task;
    if (mo__task_finished(t)) return MO_ECANCELED;
    int err = mo__task_offload(t, fn, arg);
    if (err) return err;
    if (t->budget) t->budget--;
    coro_suspend(co, MO_WAIT);
    return coro_resumed(co, valuep, dtorp);
}

const mo_failure_t *mo_coro_failure(const mo_coro_t *co)
{
    return co ? co->failure : NULL;
}

int mo_coro_return(mo_coro_t *co, void *value, mo_dtor_fn dtor)
{
    if (!co) {
        if (dtor) dtor(value);
        return MO_EINVAL;
    }
    mo_task_done(co->task, value, dtor);
    return 0;
}

int mo_coro_fail(mo_coro_t *co, mo_failure_t *f)
{
    if (!co || !f) {
        mo_failure_unref(f);
        return MO_EINVAL;
    }
    mo_failure_unref(co->failure);
    co->failure = f;
    return mo_failure_code(f);
}

mo_task_t *mo_coro_task(mo_coro_t *co)
{
    return co ? co->task : NULL;
}

bool mo__coro_inside(const mo_coro_t *co)
{
    return co && co->running;
}

static int coro_new(mo_coro_fn fn, void *arg, size_t stack_size, mo_coro_t **cop)
{
    mo_coro_t *co = mo__calloc(1, sizeof(*co));
    if (!co) return MO_ENOMEM;
    co->fn = fn;
    co->arg = arg;
    int err = mo__stack_alloc(&co->stack, stack_size ? stack_size : MO_CORO_STACK_DEFAULT);
    if (!err) err = mo__ctx_make(&co->ctx, &co->stack, coro_main, co);
    if (err) {
        coro_free(co);
        return err;
    }
    *cop = co;
    return 0;
}

int mo_coro_spawn(mo_loop_t *loop, mo_coro_fn fn, void *arg, const struct mo_coro_opts *opts,
                  mo_task_t **taskp)
{
    if (!loop || !fn || (opts && opts->slice < 0)) return MO_EINVAL;
    mo_coro_t *co;
    int err = coro_new(fn, arg, opts ? opts->stack_size : 0, &co);
    if (err) return err;
    struct mo_task_opts topts = {.slice = opts ? opts->slice : 0, .pool = opts ? opts->pool : NULL};
    mo_task_t *t;
    err = mo__task_start(loop, coro_step, co, &topts, true, coro_free, &t);
    if (err) {
        coro_free(co);
        return err;
    }
    co->task = t;
    t->name = MO__FN(fn); /* the watchdog names the coroutine, not coro_step */
    if (taskp)
        *taskp = t;
    else
        mo__task_unref(t);
    return 0;
}
