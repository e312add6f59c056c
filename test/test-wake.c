/* Calls from other threads: order per producer, nothing lost, wake-ups
 * coalesced, shutdown. MO_TEST_LABEL_THREADS */
#include "test.h"

#include "core/core_int.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define PRODUCERS    4
#define PER_PRODUCER 50000

struct fifo {
    mo_loop_t *loop;
    uint32_t next[PRODUCERS];
    uint64_t received;
    uint64_t expected;
    int disorder;
};

struct producer {
    struct fifo *f;
    uint32_t id;
    uint32_t count;
    atomic_long accepted;
};

static struct fifo *the_fifo;

static void arrive_cb(mo_loop_t *loop, void *arg)
{
    struct fifo *f = the_fifo;
    uintptr_t v = (uintptr_t)arg;
    uint32_t producer = (uint32_t)(v >> 24), seq = (uint32_t)(v & 0xffffff);
    if (seq != f->next[producer]) f->disorder++;
    f->next[producer] = seq + 1;
    if (++f->received == f->expected) assert_ok(mo_loop_release(loop));
}

static void *produce(void *arg)
{
    struct producer *p = arg;
    for (uint32_t i = 0; i < p->count; i++) {
        void *v = (void *)(((uintptr_t)p->id << 24) | i);
        if (mo_call_from_thread(p->f->loop, arrive_cb, v) == 0) atomic_fetch_add(&p->accepted, 1);
    }
    return NULL;
}

static void test_fifo_per_producer_none_lost(void **state)
{
    (void)state;
    struct fifo f = {.loop = mo_test_loop(), .expected = PRODUCERS * PER_PRODUCER};
    the_fifo = &f;
    struct producer p[PRODUCERS];
    pthread_t th[PRODUCERS];
    assert_ok(mo_loop_hold(f.loop));
    for (uint32_t i = 0; i < PRODUCERS; i++) {
        p[i] = (struct producer){.f = &f, .id = i, .count = PER_PRODUCER};
        assert_int_equal(pthread_create(&th[i], NULL, produce, &p[i]), 0);
    }
    assert_ok(mo_loop_run(f.loop, MO_RUN_DEFAULT));
    for (int i = 0; i < PRODUCERS; i++) pthread_join(th[i], NULL);
    assert_int_equal(f.received, f.expected);
    assert_int_equal(f.disorder, 0);
    for (int i = 0; i < PRODUCERS; i++) {
        assert_int_equal(f.next[i], PER_PRODUCER);
        assert_int_equal(atomic_load(&p[i].accepted), PER_PRODUCER);
    }
    mo_loop_free(f.loop);
}

/* A loop asleep in epoll with nothing else to do is woken by a call. */
static void release_cb(mo_loop_t *loop, void *arg)
{
    *(int *)arg = 1;
    assert_ok(mo_loop_release(loop));
}

struct late_post {
    mo_loop_t *loop;
    int ran;
};

static void *post_late(void *arg)
{
    struct late_post *lp = arg;
    nanosleep(&(struct timespec){0, 30 * 1000 * 1000}, NULL);
    assert_ok(mo_call_from_thread(lp->loop, release_cb, &lp->ran));
    return NULL;
}

static void test_wakes_sleeping_loop(void **state)
{
    (void)state;
    struct late_post lp = {.loop = mo_test_loop()};
    pthread_t th;
    assert_ok(mo_loop_hold(lp.loop));
    assert_int_equal(pthread_create(&th, NULL, post_late, &lp), 0);
    assert_ok(mo_loop_run(lp.loop, MO_RUN_DEFAULT));
    pthread_join(th, NULL);
    assert_int_equal(lp.ran, 1);
    mo_loop_free(lp.loop);
}

static void *stop_late(void *arg)
{
    nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    assert_ok(mo_loop_stop_from_thread(arg));
    return NULL;
}

static void test_stop_from_thread(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    pthread_t th;
    assert_ok(mo_loop_hold(loop)); /* would run forever */
    assert_int_equal(pthread_create(&th, NULL, stop_late, loop), 0);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    pthread_join(th, NULL);
    assert_int_equal(mo_loop_alive(loop), 1); /* stopped, not finished */
    assert_mo(MO_EINVAL, mo_loop_stop_from_thread(NULL));
    mo_loop_free(loop);
}

/* However many calls are posted while the loop sleeps, one wake-up is
 * written. */
struct burst {
    mo_loop_t *loop;
    int n;
};

static void count_cb(mo_loop_t *loop, void *arg)
{
    (void)loop;
    ++*(int *)arg;
}

static void *post_burst(void *arg)
{
    struct burst *b = arg;
    for (int i = 0; i < 1000; i++) assert_ok(mo_call_from_thread(b->loop, count_cb, &b->n));
    return NULL;
}

static void test_wakeups_coalesce(void **state)
{
    (void)state;
    struct burst b = {.loop = mo_test_loop()};
    struct mo__wake *w = &b.loop->wake;
    assert_false(mo__wake_prepare_sleep(w)); /* announce: about to sleep */
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, post_burst, &b), 0);
    pthread_join(th, NULL);
    uint64_t writes = 0;
    assert_int_equal(read(w->efd, &writes, sizeof(writes)), (ssize_t)sizeof(writes));
    assert_int_equal(writes, 1);
    mo__wake_after_sleep(w);
    /* A loop that is awake gets no eventfd write at all. */
    assert_int_equal(mo__wake_drain(b.loop, -1), 1000);
    assert_int_equal(pthread_create(&th, NULL, post_burst, &b), 0);
    pthread_join(th, NULL);
    assert_int_equal(read(w->efd, &writes, sizeof(writes)), -1);
    assert_ok(mo_loop_run(b.loop, MO_RUN_DEFAULT));
    assert_int_equal(b.n, 2000);
    mo_loop_free(b.loop);
}

/* Producers post without pause while the loop runs, stops and closes:
 * every call accepted ran exactly once, every refused one said so. */
struct storm {
    mo_loop_t *loop;
    atomic_long accepted;
    atomic_int refused_seen;
    atomic_long ran;
};

static void storm_cb(mo_loop_t *loop, void *arg)
{
    (void)loop;
    atomic_fetch_add_explicit(&((struct storm *)arg)->ran, 1, memory_order_relaxed);
}

static void *storm_post(void *arg)
{
    struct storm *s = arg;
    for (;;) {
        /* A bounded backlog: where threads are serialized (valgrind) the
         * producers would otherwise queue gigabytes before the close. */
        while (atomic_load(&s->accepted) - atomic_load(&s->ran) > 100000) sched_yield();
        int err = mo_call_from_thread(s->loop, storm_cb, s);
        if (err == MO_ESHUTDOWN) break;
        assert_int_equal(err, 0);
        atomic_fetch_add(&s->accepted, 1);
    }
    atomic_fetch_add(&s->refused_seen, 1);
    return NULL;
}

static void stop_now_cb(mo_loop_t *loop, void *arg)
{
    (void)arg;
    assert_ok(mo_loop_release(loop));
    assert_ok(mo_loop_stop(loop));
}

static void test_close_loses_nothing(void **state)
{
    (void)state;
    struct storm s = {.loop = mo_test_loop()};
    pthread_t th[3];
    assert_ok(mo_loop_hold(s.loop));
    for (int i = 0; i < 3; i++) assert_int_equal(pthread_create(&th[i], NULL, storm_post, &s), 0);
    assert_ok(mo_call_later(s.loop, MO_MSEC(30), stop_now_cb, NULL, NULL));
    assert_ok(mo_loop_run(s.loop, MO_RUN_DEFAULT));
    assert_ok(mo_loop_close(s.loop)); /* runs what was accepted */
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&s.refused_seen), 3);
    assert_true(atomic_load(&s.ran) > 0);
    assert_int_equal(atomic_load(&s.ran), atomic_load(&s.accepted));
    mo_loop_free(s.loop);
}

static void test_from_loop_thread_and_bad_input(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    int n = 0;
    assert_mo(MO_EINVAL, mo_call_from_thread(NULL, count_cb, &n));
    assert_mo(MO_EINVAL, mo_call_from_thread(loop, NULL, &n));
    assert_ok(mo_call_from_thread(loop, count_cb, &n));
    assert_int_equal(mo_loop_alive(loop), 1);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(n, 1);
    /* Accepted but never run by a loop: mo_loop_free() runs it (through
     * close), so it is not lost. */
    assert_ok(mo_call_from_thread(loop, count_cb, &n));
    mo_loop_free(loop);
    assert_int_equal(n, 2);
}

/* A backlog of calls from a thread is run io_interval at a time, across
 * iterations, so that a timer due meanwhile runs before the backlog is
 * through (found by the 8-producer stress test: its 200 us timer ran 3
 * times in 300 ms, each iteration running millions of calls). */
struct backlog {
    mo_loop_t *loop;
    long received;
    long at_timer; /* received when the timer ran; -1 before */
    long iterations;
};

static struct backlog *the_backlog;

static void backlog_cb(mo_loop_t *loop, void *arg)
{
    (void)loop;
    struct backlog *b = the_backlog;
    assert_int_equal((long)(intptr_t)arg, b->received); /* order kept */
    b->received++;
}

static void backlog_timer(mo_loop_t *loop, void *arg)
{
    (void)loop;
    struct backlog *b = arg;
    b->at_timer = b->received;
}

enum { BACKLOG = 1000000 };

static void *post_backlog(void *arg)
{
    struct backlog *b = arg;
    for (long i = 0; i < BACKLOG; i++)
        assert_ok(mo_call_from_thread(b->loop, backlog_cb, (void *)(intptr_t)i));
    return NULL;
}

static void test_backlog_does_not_hold_the_loop(void **state)
{
    (void)state;
    struct backlog b = {.loop = mo_test_loop(), .at_timer = -1};
    the_backlog = &b;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, post_backlog, &b), 0);
    pthread_join(th, NULL);
    /* A million calls take milliseconds; the interval is 100 us. */
    assert_ok(mo_call_later(b.loop, 0, backlog_timer, &b, NULL));
    while (b.received < BACKLOG) {
        assert_ok(mo_loop_run(b.loop, MO_RUN_NOWAIT));
        b.iterations++;
    }
    assert_true(b.at_timer >= 0 && b.at_timer < BACKLOG);
    assert_true(b.iterations > 1);
    mo_loop_free(b.loop);
}

MO_TEST_MAIN(cmocka_unit_test(test_fifo_per_producer_none_lost),
             cmocka_unit_test(test_backlog_does_not_hold_the_loop),
             cmocka_unit_test(test_wakes_sleeping_loop), cmocka_unit_test(test_stop_from_thread),
             cmocka_unit_test(test_wakeups_coalesce), cmocka_unit_test(test_close_loses_nothing),
             cmocka_unit_test(test_from_loop_thread_and_bad_input))
