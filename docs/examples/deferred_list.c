/* A Deferred list that gathers three outcomes in input order, one of them
 * a failure, and a cancel: the canceller runs, the chain errbacks with
 * MO_ECANCELED, and the producer that fires later learns it lost. */
#include <morsel.h>
#include <stdio.h>

static void show_list(mo_result_t *r, void *arg)
{
    (void)arg;
    struct mo_deferred_list_result *l = mo_result_value(r);
    for (size_t i = 0; i < l->count; i++) {
        const struct mo_outcome *o = &l->items[i];
        printf("list[%zu]: %s\n", i,
               o->failure ? mo_failure_message(o->failure) : (char *)o->value);
    }
}

static void canceller(mo_deferred_t *d, void *arg)
{
    (void)d; /* it could fire d itself; here it only stops what would fire it */
    printf("canceller: %s\n", (char *)arg);
}

static void cancelled(mo_result_t *r, void *arg)
{
    (void)arg;
    printf("errback: %s\n", mo_err_name(mo_failure_code(mo_result_failure(r))));
    mo_result_set(r, NULL, NULL); /* handled: nothing is reported when d is freed */
}

int main(void)
{
    mo_loop_t *loop;
    mo_deferred_t *m[3], *list, *c;
    if (mo_loop_new(&loop, 0) != 0) return 1;
    for (int i = 0; i < 3; i++)
        if (mo_deferred_new(loop, NULL, NULL, &m[i]) != 0) return 1;
    if (mo_deferred_list(loop, m, 3, MO_DLIST_CONSUME_ERRORS, &list) != 0) return 1;
    mo_deferred_add_callback(list, show_list, NULL);
    mo_deferred_callback(m[2], "two", NULL); /* static strings: no destructor */
    mo_deferred_fail(m[1], MO_EIO, "main", "member one broke");
    mo_deferred_callback(m[0], "zero", NULL); /* the last member: the list fires now */

    if (mo_deferred_new(loop, canceller, "nothing to undo", &c) != 0) return 1;
    mo_deferred_add_errback(c, cancelled, NULL);
    mo_deferred_cancel(c);
    printf("the producer fires late: %s\n", mo_err_name(mo_deferred_callback(c, NULL, NULL)));

    for (int i = 0; i < 3; i++) mo_deferred_unref(m[i]);
    mo_deferred_unref(list);
    mo_deferred_unref(c);
    mo_loop_free(loop);
    return 0;
}
