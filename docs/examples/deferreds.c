/* Deferreds: a chain that transforms a value, fails and recovers, and a
 * callback that hands back another Deferred for the chain to wait on. */
#include <morsel.h>
#include <stdio.h>
#include <stdlib.h>

static long fallback = -1, answer = 42;

static void doubled(mo_result_t *r, void *arg)
{
    (void)arg;
    long *v = mo_result_value(r); /* borrowed: the Deferred owns it */
    *v *= 2;
}

static void refuse(mo_result_t *r, void *arg)
{
    long *v = mo_result_value(r), *divisor = arg;
    if (*v % *divisor)
        mo_result_fail(r, MO_EDOM, "refuse", "%ld is not a multiple of %ld", *v, *divisor);
}

static void recover(mo_result_t *r, void *arg)
{
    char line[128];
    mo_failure_format(mo_result_failure(r), line, sizeof line);
    printf("errback saw: %s\n", line);
    mo_result_set(r, arg, NULL); /* a value again: the next callback runs */
}

static void give_answer(mo_result_t *r, void *arg)
{
    mo_result_set(r, arg, NULL);
}

static void wait_on_later(mo_result_t *r, void *arg)
{
    mo_deferred_t *later; /* fires in 5 ms; the chain pauses until then */
    mo_loop_t *loop = mo_deferred_loop(mo_result_deferred(r));
    if (mo_deferred_call_later(loop, MO_MSEC(5), give_answer, arg, &later) == 0)
        mo_result_wait(r, later); /* takes our reference */
}

static void show(mo_result_t *r, void *arg)
{
    printf("%s: %ld\n", (char *)arg, *(long *)mo_result_value(r));
}

int main(void)
{
    mo_loop_t *loop;
    mo_deferred_t *d, *w;
    long *v = malloc(sizeof *v), divisor = 4;
    if (!v || mo_loop_new(&loop, 0) != 0) return 1;
    *v = 3;
    mo_deferred_new(loop, NULL, NULL, &d);
    mo_deferred_add_callback(d, doubled, NULL);     /* 3 -> 6 */
    mo_deferred_add_callback(d, refuse, &divisor);  /* 6 is no multiple of 4: a failure */
    mo_deferred_add_errback(d, recover, &fallback); /* back to a value: -1 */
    mo_deferred_add_callback(d, show, "chain");
    mo_deferred_callback(d, v, free); /* runs the chain before returning; d owns v now */

    mo_deferred_new_succeeded(loop, NULL, NULL, &w);
    mo_deferred_add_callback(w, wait_on_later, &answer);
    mo_deferred_add_callback(w, show, "waited"); /* runs 5 ms later, from the loop */
    printf("before the loop runs\n");

    int err = mo_loop_run(loop, MO_RUN_DEFAULT);
    mo_deferred_unref(d);
    mo_deferred_unref(w);
    mo_loop_free(loop);
    return err ? 1 : 0;
}
