/* Work that cannot be cut, on worker threads: a Deferred from a pool of
 * our own at idle priority (deferToThread), and a cooperative task that
 * offloads one indivisible piece and takes its value in its next step. */
#include <morsel.h>
#include <stdio.h>
#include <stdlib.h>

/* Runs on a worker: must not touch the loop. Counts primes below *arg. */
static int count_primes(void *arg, void **valuep, mo_dtor_fn *dtorp, mo_failure_t **failurep)
{
    long n = *(long *)arg, *count = malloc(sizeof *count);
    if (!count) return MO_ENOMEM;
    if (n < 2) { /* a failure with a message, made on the worker */
        free(count);
        *failurep = mo_failure_new(MO_EDOM, "count_primes", "nothing below %ld", n);
        return MO_EDOM;
    }
    *count = 0;
    for (long i = 2; i < n; i++) {
        long d = 2;
        while (d * d <= i && i % d) d++;
        *count += d * d > i;
    }
    *valuep = count, *dtorp = free; /* the Deferred owns it from now on */
    return 0;
}

static int task_phase;
static long big = 200000, none = 1;

/* A task: cheap steps on the loop, then one piece on the pool. */
static int step(mo_task_t *task, void *arg)
{
    int *phase = arg;                                                      /* 0 the first time */
    if ((*phase)++ == 0) return mo_task_offload(task, count_primes, &big); /* MO_WAIT */
    mo_dtor_fn dtor;
    long *count = mo_task_received(task, &dtor); /* the piece's value, ours now */
    printf("task: the offloaded piece found %ld primes\n", *count);
    dtor(count);
    return MO_DONE;
}

/* Both Deferreds have fired: print them in order, then start the task. */
static void show(mo_result_t *r, void *arg)
{
    struct mo_deferred_list_result *l = mo_result_value(r);
    for (size_t i = 0; i < l->count; i++) {
        const struct mo_outcome *o = &l->items[i];
        if (o->failure)
            printf("pool: %s\n", mo_failure_message(o->failure));
        else
            printf("pool: %ld primes\n", *(long *)o->value);
    }
    struct mo_task_opts topts = {.pool = arg}; /* NULL pool: the loop's default one */
    mo_cooperate(mo_deferred_loop(mo_result_deferred(r)), step, &task_phase, &topts, NULL);
}

int main(void)
{
    mo_loop_t *loop;
    mo_pool_t *pool;
    mo_deferred_t *d[2], *both;
    struct mo_pool_opts opts = {.threads = 2, .priority = MO_POOL_PRIORITY_IDLE};
    if (mo_loop_new(&loop, 0) != 0 || mo_pool_new_with(&pool, &opts) != 0) return 1;
    if (mo_deferred_call_on_pool(pool, loop, count_primes, &big, &d[0]) != 0) return 1;
    if (mo_deferred_call_on_pool(pool, loop, count_primes, &none, &d[1]) != 0) return 1;
    if (mo_deferred_list(loop, d, 2, MO_DLIST_CONSUME_ERRORS, &both) != 0) return 1;
    mo_deferred_add_callback(both, show, pool);

    int err = mo_loop_run(loop, MO_RUN_DEFAULT); /* returns once every job's done ran */
    mo_deferred_unref(d[0]);
    mo_deferred_unref(d[1]);
    mo_deferred_unref(both);
    mo_loop_free(loop);
    mo_pool_free(pool, 0); /* after the loop: the loop waited for its jobs already */
    return err ? 1 : 0;
}
