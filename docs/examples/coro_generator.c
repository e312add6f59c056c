/* The seed's generator, as a coroutine: a recursive function that yields
 * from any depth (here, over a binary tree of 2^16 - 1 nodes kept in an
 * implicit array), and awaits a Deferred first, as inlineCallbacks does. */
#include <morsel.h>
#include <stdio.h>

struct job {
    mo_loop_t *loop;
    unsigned long long sum;
};

static long start = 0;

static void give(mo_result_t *r, void *arg)
{
    mo_result_set(r, arg, NULL);
}

/* Visits node i of a complete binary tree (children 2i+1, 2i+2) and below. */
static int visit(mo_coro_t *co, unsigned i, unsigned n, struct job *job)
{
    if (i >= n) return 0;
    job->sum += i;
    int err = mo_yield(co); /* the seed's `yield None`: most yields do not even switch */
    if (!err) err = visit(co, 2 * i + 1, n, job);
    if (!err) err = visit(co, 2 * i + 2, n, job);
    return err; /* MO_ECANCELED once the task was stopped: unwind */
}

static int body(mo_coro_t *co, void *arg)
{
    struct job *job = arg;
    mo_deferred_t *d; /* a value that arrives later: in 5 ms */
    void *value;
    mo_dtor_fn dtor;
    int err = mo_deferred_call_later(job->loop, MO_MSEC(5), give, &start, &d);
    if (!err) err = mo_await(co, d, &value, &dtor); /* the loop runs on meanwhile */
    if (err) return err;
    printf("awaited the root index, %ld; walking\n", *(long *)value);
    if ((err = visit(co, (unsigned)*(long *)value, 65535, job)) != 0) return err;
    return mo_coro_return(co, &job->sum, NULL); /* the task's Deferred fires with it */
}

static void report(mo_result_t *r, void *arg)
{
    struct mo_task_stats st;
    mo_task_stats(arg, &st);
    printf("sum %llu after %llu yields\n", *(unsigned long long *)mo_result_value(r),
           (unsigned long long)st.steps);
}

int main(void)
{
    struct job job = {0};
    mo_task_t *task;
    if (mo_loop_new(&job.loop, 0) != 0) return 1;
    if (mo_coro_spawn(job.loop, body, &job, NULL, &task) != 0) return 1;
    mo_deferred_t *d = mo_task_deferred(task);
    mo_deferred_add_callback(d, report, task);
    int err = mo_loop_run(job.loop, MO_RUN_DEFAULT);
    mo_deferred_unref(d);
    mo_task_release(task);
    mo_loop_free(job.loop);
    return err ? 1 : 0;
}
