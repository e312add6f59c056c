/* The reactor: run/stop, passes of the ready queue, re-entrancy, bad input. */
#include "test.h"

#include "internal.h"

static void __attribute__((unused)) count_cb(mo_loop_t *loop, void *arg)
{
    (void)loop;
    ++*(int *)arg;
}

static void test_new_free_and_bad_flags(void **state)
{
    (void)state;
    mo_loop_t *loop = NULL;
    assert_mo(MO_EINVAL, mo_loop_new(NULL, 0));
    assert_mo(MO_EINVAL, mo_loop_new(&loop, 0x80));
    assert_null(loop);
    assert_ok(mo_loop_new(&loop, 0));
    assert_int_equal(mo_loop_alive(loop), 0);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT)); /* nothing to do: returns */
    mo_loop_free(loop);
    mo_loop_free(NULL);
}

static void test_call_soon_runs_fifo(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct mo_test_log log = {0};
    struct mo_test_tag tags[100];
    for (int i = 0; i < 100; i++) {
        tags[i] = (struct mo_test_tag){&log, i};
        assert_ok(mo_call_soon(loop, mo_test_log_cb, &tags[i]));
    }
    assert_int_equal(mo_loop_alive(loop), 1);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(log.len, 100);
    for (int i = 0; i < 100; i++) assert_int_equal(log.tags[i], i);
    mo_loop_free(loop);
}

MO_TEST_MAIN(cmocka_unit_test(test_new_free_and_bad_flags), cmocka_unit_test(test_call_soon_runs_fifo))
