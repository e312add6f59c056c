/* The installed library: a loop, a delayed call, a cooperative task. */
#include <morsel.h>
#include <stdio.h>

static int count(mo_task_t *task, void *arg)
{
    (void)task;
    return ++*(int *)arg < 1000 ? MO_CONTINUE : MO_DONE;
}

static void later(mo_loop_t *loop, void *arg)
{
    (void)loop;
    *(int *)arg = 1;
}

int main(void)
{
    mo_loop_t *loop;
    int steps = 0, ran = 0;
    if (mo_loop_new(&loop, 0) || mo_cooperate(loop, count, &steps, NULL, NULL) ||
        mo_call_later(loop, MO_MSEC(1), later, &ran, NULL) || mo_loop_run(loop, MO_RUN_DEFAULT))
        return 1;
    mo_loop_free(loop);
    printf("morsel %s: %d steps, delayed call %s\n", mo_version_string(), steps,
           ran ? "ran" : "did not run");
    return steps == 1000 && ran ? 0 : 1;
}
