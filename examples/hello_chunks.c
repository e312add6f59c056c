/* The README's example: a long count cut into bite-size pieces with
 * mo_call_soon(), while a timer keeps ticking on the same loop. */
#include <morsel.h>
#include <stdio.h>

struct job {
    long i, n, sum;
};

static void piece(mo_loop_t *loop, void *arg)
{
    struct job *j = arg;
    for (long end = j->i + 10000; j->i < end && j->i < j->n; j->i++) j->sum += j->i;
    if (j->i < j->n)
        mo_call_soon(loop, piece, j); /* hand the loop back, go on later */
    else
        printf("sum = %ld\n", j->sum);
}

static void tick(mo_loop_t *loop, void *arg)
{
    (void)loop, (void)arg;
    printf("tick: the timer ran while the sum was still going\n");
}

int main(void)
{
    mo_loop_t *loop;
    if (mo_loop_new(&loop, 0) != 0) return 1;
    struct job j = {0, 300000000, 0};
    mo_call_soon(loop, piece, &j);
    mo_call_later(loop, MO_MSEC(50), tick, NULL, NULL);
    int err = mo_loop_run(loop, MO_RUN_DEFAULT);
    mo_loop_free(loop);
    return err ? 1 : 0;
}
