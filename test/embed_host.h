/* The tests every embedding adapter passes, written once against a small
 * interface to its host loop; test/test-embed-<adapter>.c fills it in and
 * runs EMBED_HOST_TESTS (CMake reads the test names from here too, for a
 * file that includes this one). DESIGN rule 19. */
#ifndef MORSEL_TEST_EMBED_HOST_H
#define MORSEL_TEST_EMBED_HOST_H

#include "test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

/* One host loop, as the adapter's test drives it. */
struct host_ops {
    void *(*create)(void);
    /* Runs the host until the adapter's closed handles are released and
     * frees it; the loop is detached. */
    void (*destroy)(void *host);
    int (*attach)(mo_loop_t *loop, void *host);
    int (*detach)(mo_loop_t *loop);
    /* One iteration of the host; waits for an event if `block`. */
    void (*iterate)(void *host, bool block);
    /* A host timer calling fn(arg) every `ms` until stopped. */
    void (*timer_start)(void *host, int ms, void (*fn)(void *arg), void *arg);
    void (*timer_stop)(void *host);
    /* Optional: attach with a NULL host is refused (MO_EINVAL). */
    bool null_host_refused;
    /* Optional: create that returns NULL when memory runs out (NULL:
     * create cannot fail under morsel's allocator). */
    void *(*try_create)(void);
    /* Optional: routes the host library's allocations through the tests'
     * fault-injecting allocator, before its first allocation. */
    void (*alloc_install)(void);
};

/* Provided by the adapter's test file. */
static const struct host_ops host_ops;

static void eh_count(mo_loop_t *loop, void *arg)
{
    (void)loop;
    (*(int *)arg)++;
}

struct eh_late {
    int64_t due;
    int64_t ran_at;
};

static void eh_note_time(mo_loop_t *loop, void *arg)
{
    (void)loop;
    ((struct eh_late *)arg)->ran_at = mo_hrtime();
}

static int eh_steps(mo_task_t *task, void *arg)
{
    (void)task;
    return ++*(int *)arg < 50 ? MO_CONTINUE : MO_DONE;
}

/* Ready calls, delayed calls and tasks of an attached loop all run from
 * the host's iterations; the delayed call not before its time. */
static void test_host_runs_morsel_work(void **state)
{
    (void)state;
    void *host = host_ops.create();
    mo_loop_t *loop = mo_test_loop();
    int soon = 0, steps = 0;
    mo_loop_update_time(loop); /* delays count from the cached time */
    struct eh_late late = {mo_loop_now(loop) + MO_MSEC(5), 0};
    assert_ok(host_ops.attach(loop, host));
    assert_ok(mo_call_soon(loop, eh_count, &soon));
    assert_ok(mo_call_later(loop, MO_MSEC(5), eh_note_time, &late, NULL));
    assert_ok(mo_cooperate(loop, eh_steps, &steps, NULL, NULL));
    int64_t give_up = mo_hrtime() + MO_SEC(10);
    while ((!soon || !late.ran_at || steps < 50) && mo_hrtime() < give_up)
        host_ops.iterate(host, true);
    assert_int_equal(soon, 1);
    assert_int_equal(steps, 50);
    assert_true(late.ran_at >= late.due);
    assert_ok(host_ops.detach(loop));
    host_ops.destroy(host);
    mo_loop_free(loop);
}

/* A host timer keeps firing while CPU-bound tasks run in morsel: one
 * embedded run holds the host for about one slice. The tasks run until the
 * timer has fired 20 times (counted in ticks, not time, so that a loaded
 * machine makes the test slower, not wrong); a host held by morsel would
 * never get there. */
struct eh_busy {
    int stop, done;
    long steps;
};

static int eh_busy_step(mo_task_t *task, void *arg)
{
    (void)task;
    struct eh_busy *b = arg;
    int64_t end = mo_hrtime() + MO_USEC(50);
    while (mo_hrtime() < end) {
    }
    b->steps++;
    if (!b->stop) return MO_CONTINUE;
    b->done = 1;
    return MO_DONE;
}

struct eh_ticks {
    int fired;
    struct eh_busy *busy;
};

static void eh_tick(void *arg)
{
    struct eh_ticks *t = arg;
    if (++t->fired == 20) t->busy[0].stop = t->busy[1].stop = 1;
}

static void test_host_timer_fires_while_tasks_run(void **state)
{
    (void)state;
    void *host = host_ops.create();
    mo_loop_t *loop = mo_test_loop();
    struct eh_busy busy[2] = {{0, 0, 0}, {0, 0, 0}};
    struct eh_ticks ticks = {0, busy};
    assert_ok(host_ops.attach(loop, host));
    for (int i = 0; i < 2; i++) assert_ok(mo_cooperate(loop, eh_busy_step, &busy[i], NULL, NULL));
    host_ops.timer_start(host, 1, eh_tick, &ticks);
    int64_t give_up = mo_hrtime() + MO_SEC(60);
    while ((!busy[0].done || !busy[1].done) && mo_hrtime() < give_up) host_ops.iterate(host, true);
    host_ops.timer_stop(host);
    if (!busy[0].done || !busy[1].done)
        fail_msg("the host timer fired %d times in 60 s while the tasks ran", ticks.fired);
    /* Both tasks ran meanwhile, many steps each (about 20 ms of them). */
    assert_true(busy[0].steps >= 20 && busy[1].steps >= 20);
    assert_ok(host_ops.detach(loop));
    host_ops.destroy(host);
    mo_loop_free(loop);
}

/* A call from another thread wakes a host asleep for the loop, in a few
 * iterations (the host does not spin while it waits). */
struct eh_poster {
    mo_loop_t *loop;
    int *flag;
};

static void eh_release(mo_loop_t *loop, void *arg)
{
    *(int *)arg = 1;
    assert_ok(mo_loop_release(loop));
}

static void *eh_post_later(void *arg)
{
    struct eh_poster *p = arg;
    usleep(20000);
    assert_ok(mo_call_from_thread(p->loop, eh_release, p->flag));
    return NULL;
}

static void test_call_from_thread_wakes_host(void **state)
{
    (void)state;
    void *host = host_ops.create();
    mo_loop_t *loop = mo_test_loop();
    int flag = 0, iterations = 0;
    assert_ok(host_ops.attach(loop, host));
    assert_ok(mo_loop_hold(loop));
    struct eh_poster p = {loop, &flag};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, eh_post_later, &p), 0);
    while (!flag && iterations < 1000) {
        host_ops.iterate(host, true);
        iterations++;
    }
    pthread_join(th, NULL);
    assert_int_equal(flag, 1);
    assert_true(iterations <= 5);
    assert_ok(host_ops.detach(loop));
    host_ops.destroy(host);
    mo_loop_free(loop);
}

/* Work queued on the loop from a host callback runs: the adapter learns
 * of it before the host sleeps (a prepare hook, or the loop's kick). */
struct eh_queue {
    mo_loop_t *loop;
    int soon, later;
    bool queued;
};

static void eh_queue_tick(void *arg)
{
    struct eh_queue *q = arg;
    if (q->queued) return;
    q->queued = true;
    assert_ok(mo_call_soon(q->loop, eh_count, &q->soon));
    assert_ok(mo_call_later(q->loop, MO_MSEC(2), eh_count, &q->later, NULL));
}

static void test_host_callback_queues_work(void **state)
{
    (void)state;
    void *host = host_ops.create();
    mo_loop_t *loop = mo_test_loop();
    struct eh_queue q = {loop, 0, 0, false};
    int iterations = 0;
    assert_ok(host_ops.attach(loop, host));
    host_ops.timer_start(host, 5, eh_queue_tick, &q);
    while (!q.queued && iterations++ < 1000) host_ops.iterate(host, true);
    host_ops.timer_stop(host);
    /* The host has nothing of its own left: only morsel's fd and timeout
     * can wake it now. */
    assert_ok(mo_loop_hold(loop));
    iterations = 0;
    while (q.later == 0 && iterations < 1000) {
        host_ops.iterate(host, true);
        iterations++;
    }
    assert_int_equal(q.soon, 1);
    assert_int_equal(q.later, 1);
    assert_true(iterations <= 6);
    assert_ok(mo_loop_release(loop));
    assert_ok(host_ops.detach(loop));
    host_ops.destroy(host);
    mo_loop_free(loop);
}

/* An idle attached loop does not wake the host: with a host timer every
 * 20 ms, 100 ms take a handful of iterations, not thousands. */
static void eh_nothing(void *arg)
{
    (*(int *)arg)++;
}

static void test_idle_loop_costs_host_nothing(void **state)
{
    (void)state;
    void *host = host_ops.create();
    mo_loop_t *loop = mo_test_loop();
    int fired = 0, iterations = 0;
    assert_ok(mo_loop_hold(loop)); /* alive, idle */
    assert_ok(mo_call_later(loop, MO_SEC(60), eh_count, &fired, NULL));
    assert_ok(host_ops.attach(loop, host));
    host_ops.timer_start(host, 20, eh_nothing, &fired);
    int64_t end = mo_hrtime() + MO_MSEC(100);
    while (mo_hrtime() < end) {
        host_ops.iterate(host, true);
        iterations++;
    }
    host_ops.timer_stop(host);
    assert_true(fired >= 1);
    assert_true(iterations <= 3 * fired + 4);
    assert_ok(mo_loop_release(loop));
    assert_ok(host_ops.detach(loop));
    host_ops.destroy(host);
    mo_loop_free(loop);
}

/* Bad input: attaching twice (to this host or another), detaching a loop
 * not attached, and running or detaching from the loop's own callback. */
struct eh_reenter {
    int run_err, detach_err, loop_run_err;
};

static void eh_reenter_cb(mo_loop_t *loop, void *arg)
{
    struct eh_reenter *r = arg;
    r->run_err = mo_embed_run(loop);
    r->detach_err = host_ops.detach(loop);
    r->loop_run_err = mo_loop_run(loop, MO_RUN_NOWAIT);
}

static void test_bad_input(void **state)
{
    (void)state;
    void *host = host_ops.create(), *other = host_ops.create();
    mo_loop_t *loop = mo_test_loop();
    assert_mo(MO_EINVAL, host_ops.attach(NULL, host));
    if (host_ops.null_host_refused) assert_mo(MO_EINVAL, host_ops.attach(loop, NULL));
    assert_mo(MO_EINVAL, host_ops.detach(NULL));
    assert_mo(MO_EINVAL, host_ops.detach(loop));
    assert_ok(host_ops.attach(loop, host));
    assert_mo(MO_EBUSY, host_ops.attach(loop, host));
    assert_mo(MO_EBUSY, host_ops.attach(loop, other));
    assert_mo(MO_EBUSY, mo_embed_attach(loop, NULL, NULL));
    assert_mo(MO_EINVAL, mo_embed_detach(loop, NULL)); /* not the adapter's ops */
    assert_mo(MO_EBUSY, mo_loop_run(loop, MO_RUN_DEFAULT));
    struct eh_reenter r = {1, 1, 1};
    assert_ok(mo_call_soon(loop, eh_reenter_cb, &r));
    int64_t give_up = mo_hrtime() + MO_SEC(10);
    while (r.run_err == 1 && mo_hrtime() < give_up) host_ops.iterate(host, true);
    assert_mo(MO_EBUSY, r.run_err);
    assert_mo(MO_EBUSY, r.detach_err);
    assert_mo(MO_EBUSY, r.loop_run_err);
    assert_ok(host_ops.detach(loop));
    assert_mo(MO_EINVAL, host_ops.detach(loop));
    /* Detached: an ordinary loop again, or attached to another host. */
    assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT));
    assert_ok(host_ops.attach(loop, other));
    assert_ok(host_ops.detach(loop));
    /* A virtual-clock loop, a closed loop: refused, nothing left in the
     * host (destroy checks that the host has no handle of ours). */
    mo_loop_t *virt = mo_test_virtual_loop();
    assert_mo(MO_EINVAL, host_ops.attach(virt, host));
    mo_loop_free(virt);
    mo_loop_t *closed = mo_test_loop();
    assert_ok(mo_loop_close(closed));
    assert_mo(MO_ESHUTDOWN, host_ops.attach(closed, host));
    assert_mo(MO_EINVAL, host_ops.detach(closed));
    mo_loop_free(closed);
    host_ops.destroy(host);
    host_ops.destroy(other);
    mo_loop_free(loop);
}

/* Freeing a loop still attached detaches it: the host's handles go, and
 * the host runs on (and frees) cleanly without it. */
static void test_free_attached_loop(void **state)
{
    (void)state;
    void *host = host_ops.create();
    mo_loop_t *loop = mo_test_loop();
    int ran = 0, ticks = 0;
    assert_ok(host_ops.attach(loop, host));
    assert_ok(mo_call_later(loop, MO_SEC(10), eh_count, &ran, NULL));
    host_ops.iterate(host, false);
    mo_loop_free(loop);
    host_ops.timer_start(host, 1, eh_nothing, &ticks);
    while (ticks < 3) host_ops.iterate(host, true);
    host_ops.timer_stop(host);
    assert_int_equal(ran, 0);
    host_ops.destroy(host);
}

/* Threads post while the loop is attached, detached, run on its own and
 * attached again: every call runs, in order per producer. A lost wake-up
 * would leave the host asleep: the test would time out. */
#define EH_PRODUCERS    2
#define EH_PER_PRODUCER 20000

struct eh_storm {
    mo_loop_t *loop;
    uint32_t next[EH_PRODUCERS];
    atomic_uint received;
    int disorder;
};

static struct eh_storm eh_the_storm;

static void eh_storm_cb(mo_loop_t *loop, void *arg)
{
    (void)loop;
    uintptr_t v = (uintptr_t)arg;
    uint32_t producer = (uint32_t)(v >> 24), seq = (uint32_t)(v & 0xffffff);
    if (seq != eh_the_storm.next[producer]) eh_the_storm.disorder++;
    eh_the_storm.next[producer] = seq + 1;
    atomic_fetch_add(&eh_the_storm.received, 1);
}

static void *eh_storm_produce(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    for (uint32_t i = 0; i < EH_PER_PRODUCER; i++) {
        assert_ok(mo_call_from_thread(eh_the_storm.loop, eh_storm_cb, (void *)((id << 24) | i)));
        if (i % 1024 == 0) usleep(100);
    }
    return NULL;
}

static void test_nothing_lost_across_attach_detach(void **state)
{
    (void)state;
    void *host = host_ops.create();
    mo_loop_t *loop = mo_test_loop();
    eh_the_storm = (struct eh_storm){.loop = loop};
    pthread_t th[EH_PRODUCERS];
    for (uintptr_t i = 0; i < EH_PRODUCERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, eh_storm_produce, (void *)i), 0);
    const unsigned total = EH_PRODUCERS * EH_PER_PRODUCER;
    assert_ok(mo_loop_hold(loop)); /* the host waits for the loop's fd */
    for (unsigned round = 0; atomic_load(&eh_the_storm.received) < total; round++) {
        assert_ok(host_ops.attach(loop, host));
        for (int i = 0; i < 4 && atomic_load(&eh_the_storm.received) < total; i++)
            host_ops.iterate(host, true);
        assert_ok(host_ops.detach(loop));
        if (round % 2) assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT));
    }
    for (int i = 0; i < EH_PRODUCERS; i++) pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&eh_the_storm.received), total);
    assert_int_equal(eh_the_storm.disorder, 0);
    assert_ok(mo_loop_release(loop));
    host_ops.destroy(host);
    mo_loop_free(loop);
}

/* Allocation failure, each allocation in turn (morsel's, and the host
 * library's where it lets us fail them): a loop attached, a call and a
 * delayed call run from the host, detached, freed. Every run ends in 0 or
 * MO_ENOMEM; an attach that failed left the loop unattached and ordinary;
 * every call that was accepted ran exactly once; nothing leaks. */
static int eh_oom_scenario(void *arg)
{
    (void)arg;
    mo_loop_t *loop;
    int rc = mo_loop_new(&loop, 0);
    if (rc) return rc;
    void *host = host_ops.try_create ? host_ops.try_create() : host_ops.create();
    if (!host) {
        mo_loop_free(loop);
        return MO_ENOMEM;
    }
    rc = host_ops.attach(loop, host);
    if (rc) {
        int64_t ns;
        if (mo_embed_timeout(loop, &ns) != MO_EINVAL || mo_loop_run(loop, MO_RUN_NOWAIT) != 0)
            rc = MO_ENOTRECOVERABLE; /* half attached */
    } else {
        int ran = 0;
        int e1 = mo_call_soon(loop, eh_count, &ran);
        int e2 = mo_call_later(loop, MO_MSEC(1), eh_count, &ran, NULL);
        int want = (e1 == 0) + (e2 == 0);
        int64_t give_up = mo_hrtime() + MO_SEC(10);
        while (ran < want && mo_hrtime() < give_up) host_ops.iterate(host, true);
        for (int i = 0; i < 3; i++) host_ops.iterate(host, false);
        rc = ran != want ? MO_ENOTRECOVERABLE : e1 ? e1 : e2;
        if (host_ops.detach(loop) != 0) rc = MO_ENOTRECOVERABLE;
    }
    host_ops.destroy(host);
    mo_loop_free(loop);
    return rc;
}

static void test_attach_each_allocation_in_turn(void **state)
{
    (void)state;
    mo_test_alloc_install();
    if (host_ops.alloc_install) host_ops.alloc_install();
    long n = mo_test_oom_sweep(eh_oom_scenario, NULL, 3);
    printf("attached loop: %ld allocations, each failed in turn\n", n);
}

#define EMBED_HOST_TESTS                                                                           \
    cmocka_unit_test(test_host_runs_morsel_work),                                                  \
        cmocka_unit_test(test_host_timer_fires_while_tasks_run),                                   \
        cmocka_unit_test(test_call_from_thread_wakes_host),                                        \
        cmocka_unit_test(test_host_callback_queues_work),                                          \
        cmocka_unit_test(test_idle_loop_costs_host_nothing), cmocka_unit_test(test_bad_input),     \
        cmocka_unit_test(test_free_attached_loop),                                                 \
        cmocka_unit_test(test_nothing_lost_across_attach_detach),                                  \
        cmocka_unit_test(test_attach_each_allocation_in_turn)

#endif
