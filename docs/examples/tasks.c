/* Two cooperative tasks on one loop, sharing its 1 ms slices while a 2 ms
 * timer keeps its turn: b is paused at the start and resumed when a's
 * result arrives through a's Deferred. */
#include <morsel.h>
#include <stdio.h>

struct count {
    unsigned long long i, n, sum;
};

/* One step: a small piece of the work, then the cooperator decides. */
static int step(mo_task_t *task, void *arg)
{
    struct count *c = arg;
    for (unsigned long long end = c->i + 1000; c->i < end && c->i < c->n; c->i++) c->sum += c->i;
    return c->i < c->n ? MO_CONTINUE : mo_task_done(task, &c->sum, NULL);
}

static mo_task_t *b;

static void report(mo_result_t *r, void *arg)
{
    printf("%s: sum %llu\n", (char *)arg, *(unsigned long long *)mo_result_value(r));
    if (mo_task_state(b) == MO_TASK_PAUSED) printf("resume b\n"), mo_task_resume(b);
}

static int ticks;
static void tick(mo_loop_t *loop, void *arg)
{
    if (++ticks < 10) mo_call_later(loop, MO_MSEC(2), tick, arg, NULL);
}

int main(void)
{
    mo_loop_t *loop;
    mo_task_t *a;
    struct count ca = {0, 5000000, 0}, cb = {0, 5000000, 0};
    if (mo_loop_new(&loop, 0) != 0) return 1;
    if (mo_cooperate(loop, step, &ca, NULL, &a) || mo_cooperate(loop, step, &cb, NULL, &b))
        return 1;
    mo_deferred_t *da = mo_task_deferred(a), *db = mo_task_deferred(b);
    mo_deferred_add_callback(da, report, "a");
    mo_deferred_add_callback(db, report, "b");
    mo_call_later(loop, MO_MSEC(2), tick, NULL, NULL);
    mo_task_pause(b); /* counted: it runs again after as many resumes */
    printf("pause b\n");

    int err = mo_loop_run(loop, MO_RUN_DEFAULT);
    struct mo_task_stats st;
    mo_task_stats(a, &st);
    printf("a ran %llu steps; the 2 ms timer ticked %d times\n", (unsigned long long)st.steps,
           ticks);
    mo_deferred_unref(da);
    mo_deferred_unref(db);
    mo_task_release(a);
    mo_task_release(b);
    mo_loop_free(loop);
    return err ? 1 : 0;
}
