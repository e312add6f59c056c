/* Loop statistics: timer lag and callback-duration histograms. */
/* MO_TEST_LABEL_THREADS */
#include "test.h"

#include <pthread.h>
#include <time.h>

static void nothing_cb(mo_loop_t *loop, void *arg)
{
    (void)loop;
    (void)arg;
}

static void busy_for(int64_t ns)
{
    int64_t until = mo_hrtime() + ns;
    while (mo_hrtime() < until) {
    }
}

static void test_bad_input(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct mo_loop_stats st;
    assert_mo(MO_EINVAL, mo_loop_stats(NULL, &st));
    assert_mo(MO_EINVAL, mo_loop_stats(loop, NULL));
    assert_mo(MO_EINVAL, mo_loop_stats_reset(NULL));
    assert_mo(MO_EINVAL, mo_loop_stats_enable(NULL, 1));
    assert_mo(MO_EINVAL, mo_loop_stats_buckets(NULL, MO_STATS_LAG, NULL, NULL));
    assert_mo(MO_EINVAL, mo_loop_stats_buckets(loop, 7, NULL, NULL));
    assert_mo(MO_EINVAL, mo_loop_stats_buckets(loop, MO_STATS_LAG, NULL, NULL));
    assert_ok(mo_loop_stats(loop, &st));
    assert_int_equal(st.lag.count, 0);
    assert_int_equal(st.callback.count, 0);
    assert_int_equal(st.lag.p99, 0);
    mo_loop_free(loop);
}

/* 100 timers due at 1..100 ms, run at 200 ms: lags 100..199 ms. */
static void test_lag_percentiles_on_virtual_clock(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    for (int i = 1; i <= 100; i++)
        assert_ok(mo_call_later(loop, MO_MSEC(i), nothing_cb, NULL, NULL));
    assert_ok(mo_loop_advance(loop, MO_MSEC(200)));
    struct mo_loop_stats st;
    assert_ok(mo_loop_stats(loop, &st));
    assert_int_equal(st.lag.count, 100);
    assert_int_equal(st.lag.max, MO_MSEC(199));
    assert_int_equal(st.lag.mean, MO_USEC(149500));
    /* Percentiles: the bucket's upper bound, within 1/16 above the value. */
    assert_in_range(st.lag.p50, MO_MSEC(149), MO_MSEC(149) + MO_MSEC(149) / 16);
    assert_in_range(st.lag.p99, MO_MSEC(198), MO_MSEC(199));
    assert_int_equal(st.lag.p999, MO_MSEC(199));
    assert_true(st.callback.count >= 100);
    mo_loop_free(loop);
}

static void test_on_time_timer_has_zero_lag(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    assert_ok(mo_call_later(loop, MO_MSEC(5), nothing_cb, NULL, NULL));
    assert_ok(mo_loop_advance(loop, MO_MSEC(5)));
    struct mo_loop_stats st;
    assert_ok(mo_loop_stats(loop, &st));
    assert_int_equal(st.lag.count, 1);
    assert_int_equal(st.lag.max, 0);
    mo_loop_free(loop);
}

struct chain {
    int left;
    int slow_at;
};

static void chain_cb(mo_loop_t *loop, void *arg)
{
    struct chain *c = arg;
    if (c->left == c->slow_at) busy_for(MO_MSEC(5));
    if (--c->left > 0) assert_ok(mo_call_soon(loop, chain_cb, c));
}

/* One slow call among many fast ones in the same batch is still seen as
 * one slow call, not spread over the batch. */
static void test_slow_call_in_a_batch_is_found(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct chain c = {.left = 20000, .slow_at = 10000};
    assert_ok(mo_call_soon(loop, chain_cb, &c));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    struct mo_loop_stats st;
    assert_ok(mo_loop_stats(loop, &st));
    assert_true(st.callback.count >= 20000);
    assert_in_range(st.callback.max, MO_USEC(4500), MO_MSEC(500));
    assert_true(st.callback.p99 < MO_MSEC(1)); /* the others stay fast */
    mo_loop_free(loop);
}

static void slow_cb(mo_loop_t *loop, void *arg)
{
    (void)loop;
    busy_for(*(int64_t *)arg);
}

static void test_idle_time_is_not_a_callback(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    int64_t busy = MO_MSEC(2);
    assert_ok(mo_call_soon(loop, slow_cb, &busy));
    assert_ok(mo_call_later(loop, MO_MSEC(30), nothing_cb, NULL, NULL)); /* the loop sleeps */
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    struct mo_loop_stats st;
    assert_ok(mo_loop_stats(loop, &st));
    assert_int_equal(st.callback.count, 2);
    assert_in_range(st.callback.max, MO_MSEC(2), MO_MSEC(20));
    assert_int_equal(st.lag.count, 1);
    mo_loop_free(loop);
}

struct poster {
    mo_loop_t *loop;
};

static void release_cb(mo_loop_t *loop, void *arg)
{
    (void)arg;
    assert_ok(mo_loop_release(loop));
}

static void *poster_main(void *arg)
{
    struct poster *p = arg;
    nanosleep(&(struct timespec){.tv_nsec = 30000000}, NULL);
    return (void *)(intptr_t)mo_call_from_thread(p->loop, release_cb, NULL);
}

/* A call from a thread wakes the loop; the sleep
 * before it is not part of the call's duration. */
static void test_wakeup_does_not_count_sleep(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct poster p = {loop};
    pthread_t th;
    assert_ok(mo_loop_hold(loop));
    assert_int_equal(pthread_create(&th, NULL, poster_main, &p), 0);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    void *ret;
    pthread_join(th, &ret);
    assert_int_equal((intptr_t)ret, 0);
    struct mo_loop_stats st;
    assert_ok(mo_loop_stats(loop, &st));
    assert_int_equal(st.callback.count, 1);
    assert_true(st.callback.max < MO_MSEC(10));
    mo_loop_free(loop);
}

struct bucket_walk {
    uint64_t total;
    int64_t last_hi;
    int bad;
};

static void bucket_cb(int64_t lo, int64_t hi, uint64_t count, void *arg)
{
    struct bucket_walk *w = arg;
    if (lo > hi || lo <= w->last_hi || count == 0) w->bad++;
    w->last_hi = hi;
    w->total += count;
}

static void test_enable_reset_and_buckets(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    for (int i = 0; i < 50; i++)
        assert_ok(mo_call_later(loop, MO_USEC(i * 37), nothing_cb, NULL, NULL));
    assert_ok(mo_loop_advance(loop, MO_MSEC(3)));
    struct bucket_walk w = {0, -1, 0};
    assert_ok(mo_loop_stats_buckets(loop, MO_STATS_LAG, bucket_cb, &w));
    assert_int_equal(w.bad, 0);
    assert_int_equal(w.total, 50);
    struct mo_loop_stats st;
    assert_ok(mo_loop_stats_reset(loop));
    assert_ok(mo_loop_stats(loop, &st));
    assert_int_equal(st.lag.count, 0);
    assert_int_equal(st.callback.count, 0);
    assert_ok(mo_loop_stats_enable(loop, 0));
    assert_ok(mo_call_later(loop, 0, nothing_cb, NULL, NULL));
    assert_ok(mo_loop_advance(loop, MO_MSEC(1)));
    assert_ok(mo_loop_stats(loop, &st));
    assert_int_equal(st.lag.count, 0);
    assert_int_equal(st.callback.count, 0);
    assert_ok(mo_loop_stats_enable(loop, 1));
    assert_ok(mo_call_later(loop, 0, nothing_cb, NULL, NULL));
    assert_ok(mo_loop_advance(loop, MO_MSEC(1)));
    assert_ok(mo_loop_stats(loop, &st));
    assert_int_equal(st.lag.count, 1);
    assert_int_equal(st.lag.max, MO_MSEC(1));
    mo_loop_free(loop);
}

MO_TEST_MAIN(cmocka_unit_test(test_bad_input),
             cmocka_unit_test(test_lag_percentiles_on_virtual_clock),
             cmocka_unit_test(test_on_time_timer_has_zero_lag),
             cmocka_unit_test(test_slow_call_in_a_batch_is_found),
             cmocka_unit_test(test_idle_time_is_not_a_callback),
             cmocka_unit_test(test_wakeup_does_not_count_sleep),
             cmocka_unit_test(test_enable_reset_and_buckets))
