/* Delayed calls: order, ids, cancel/reset/delay, bad input, and a
 * randomized comparison of the wheel-and-heap store against a plain model. */
#include "test.h"

#include "core/core_int.h"

#include <stdlib.h>
#include <string.h>

static void test_same_deadline_fifo(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct mo_test_log log = {0};
    struct mo_test_tag tags[300];
    for (int i = 0; i < 300; i++) {
        tags[i] = (struct mo_test_tag){&log, i};
        /* Three deadlines, interleaved: each group must keep its order. */
        assert_ok(mo_call_later(loop, MO_MSEC(10 * (i % 3)), mo_test_log_cb, &tags[i], NULL));
    }
    assert_ok(mo_loop_advance(loop, MO_SEC(1)));
    assert_int_equal(log.len, 300);
    for (int k = 0; k < 300; k++) {
        int group = k / 100, pos = k % 100;
        assert_int_equal(log.tags[k], pos * 3 + group);
    }
    mo_loop_free(loop);
}

static void test_runs_only_what_is_due(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct mo_test_log log = {0};
    struct mo_test_tag a = {&log, 1}, b = {&log, 2};
    mo_call_id ida, idb;
    assert_ok(mo_call_later(loop, MO_MSEC(5), mo_test_log_cb, &a, &ida));
    assert_ok(mo_call_later(loop, MO_SEC(3600), mo_test_log_cb, &b, &idb));
    assert_ok(mo_loop_advance(loop, MO_MSEC(4)));
    assert_int_equal(log.len, 0);
    assert_int_equal(mo_call_active(loop, ida), 1);
    assert_ok(mo_loop_advance(loop, MO_MSEC(1)));
    assert_int_equal(log.len, 1);
    assert_int_equal(mo_call_active(loop, ida), 0);
    assert_ok(mo_loop_advance(loop, MO_SEC(3599))); /* now 3599.005 s */
    assert_int_equal(log.len, 1);
    assert_ok(mo_loop_advance(loop, MO_MSEC(995)));
    assert_int_equal(log.len, 2);
    assert_int_equal(mo_loop_alive(loop), 0);
    mo_loop_free(loop);
}

static void test_bad_input(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    mo_call_id id = 0;
    int64_t when;
    assert_mo(MO_EINVAL, mo_call_later(NULL, 0, mo_test_log_cb, NULL, &id));
    assert_mo(MO_EINVAL, mo_call_later(loop, 0, NULL, NULL, &id));
    assert_mo(MO_EINVAL, mo_call_later(loop, -1, mo_test_log_cb, NULL, &id));
    assert_mo(MO_EINVAL, mo_call_at(loop, -5, mo_test_log_cb, NULL, &id));
    assert_ok(mo_loop_advance(loop, MO_SEC(1)));
    assert_mo(MO_ERANGE, mo_call_later(loop, INT64_MAX, mo_test_log_cb, NULL, &id));
    assert_int_equal(id, 0); /* failed calls leave the id alone */
    assert_mo(MO_ENOENT, mo_call_cancel(loop, 0));
    assert_mo(MO_ENOENT, mo_call_cancel(loop, UINT64_MAX));
    assert_mo(MO_ENOENT, mo_call_cancel(loop, (UINT64_C(1) << 32) | 7)); /* never given out */
    assert_mo(MO_EINVAL, mo_call_cancel(NULL, 1));
    assert_mo(MO_EINVAL, mo_call_time(loop, 1, NULL));
    assert_int_equal(mo_call_active(NULL, 1), 0); /* not MO_EINVAL: that reads as true */
    assert_int_equal(mo_call_active(loop, 12345), 0);
    /* The largest delay that fits is accepted and never runs. */
    assert_ok(mo_call_later(loop, INT64_MAX - mo_loop_now(loop), mo_test_log_cb, NULL, &id));
    assert_ok(mo_call_time(loop, id, &when));
    assert_true(when == INT64_MAX);
    assert_mo(MO_ERANGE, mo_call_delay(loop, id, 1));
    assert_mo(MO_EINVAL, mo_call_reset(loop, id, -1));
    assert_mo(MO_EINVAL, mo_call_delay(loop, id, INT64_MIN));
    assert_ok(mo_call_cancel(loop, id));
    /* Each operation on an id: NULL loop, an id never given out. */
    mo_call_id never = (UINT64_C(1) << 32) | 7;
    assert_mo(MO_EINVAL, mo_call_reset(NULL, 1, 0));
    assert_mo(MO_EINVAL, mo_call_delay(NULL, 1, 0));
    assert_mo(MO_EINVAL, mo_call_time(NULL, 1, &when));
    assert_mo(MO_ENOENT, mo_call_reset(loop, never, 0));
    assert_mo(MO_ENOENT, mo_call_delay(loop, never, 0));
    assert_mo(MO_ENOENT, mo_call_time(loop, never, &when));
    assert_ok(mo_call_later(loop, 5, mo_test_log_cb, NULL, &id));
    assert_mo(MO_ERANGE, mo_call_reset(loop, id, INT64_MAX));
    assert_ok(mo_call_cancel(loop, id));
    mo_loop_free(loop);
}

static void test_stale_ids(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct mo_test_log log = {0};
    struct mo_test_tag a = {&log, 1};
    mo_call_id first, second;
    int64_t when;
    assert_ok(mo_call_later(loop, MO_MSEC(1), mo_test_log_cb, &a, &first));
    assert_ok(mo_call_cancel(loop, first));
    assert_mo(MO_EALREADY, mo_call_cancel(loop, first));
    assert_mo(MO_EALREADY, mo_call_reset(loop, first, 5));
    assert_mo(MO_EALREADY, mo_call_delay(loop, first, 5));
    assert_mo(MO_EALREADY, mo_call_time(loop, first, &when));
    /* The slot is reused, but the old id stays dead. */
    assert_ok(mo_call_later(loop, MO_MSEC(1), mo_test_log_cb, &a, &second));
    assert_int_not_equal(first, second);
    assert_mo(MO_EALREADY, mo_call_cancel(loop, first));
    assert_int_equal(mo_call_active(loop, second), 1);
    assert_ok(mo_loop_advance(loop, MO_MSEC(1)));
    assert_int_equal(log.len, 1);
    assert_mo(MO_EALREADY, mo_call_cancel(loop, second));
    mo_loop_free(loop);
}

struct canceller {
    mo_call_id target;
    mo_call_id self;
    int self_result;
    int target_result;
    int ran;
};

static void cancel_other_cb(mo_loop_t *loop, void *arg)
{
    struct canceller *c = arg;
    c->ran++;
    c->target_result = mo_call_cancel(loop, c->target);
    c->self_result = mo_call_cancel(loop, c->self);
}

static void test_cancel_from_callback(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct mo_test_log log = {0};
    struct mo_test_tag victim = {&log, 7};
    struct canceller c = {0};
    /* Both due in the same iteration; the first cancels the second. */
    assert_ok(mo_call_later(loop, MO_MSEC(2), cancel_other_cb, &c, &c.self));
    assert_ok(mo_call_later(loop, MO_MSEC(2), mo_test_log_cb, &victim, &c.target));
    assert_ok(mo_loop_advance(loop, MO_MSEC(2)));
    assert_int_equal(c.ran, 1);
    assert_mo(0, c.target_result);
    assert_mo(MO_EALREADY, c.self_result); /* a running call is no longer pending */
    assert_int_equal(log.len, 0);
    assert_int_equal(mo_loop_alive(loop), 0);
    mo_loop_free(loop);
}

static void test_reset_and_delay(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct mo_test_log log = {0};
    struct mo_test_tag a = {&log, 1}, b = {&log, 2};
    mo_call_id ida, idb;
    int64_t when;
    assert_ok(mo_call_later(loop, MO_SEC(10), mo_test_log_cb, &a, &ida));
    assert_ok(mo_call_later(loop, MO_SEC(5), mo_test_log_cb, &b, &idb));
    assert_ok(mo_call_reset(loop, ida, MO_SEC(1))); /* sooner */
    assert_ok(mo_call_time(loop, ida, &when));
    assert_true(when == MO_SEC(1));
    assert_ok(mo_call_delay(loop, idb, MO_SEC(20))); /* later: 25 s */
    assert_ok(mo_call_time(loop, idb, &when));
    assert_true(when == MO_SEC(25));
    assert_ok(mo_loop_advance(loop, MO_SEC(1)));
    assert_int_equal(log.len, 1);
    assert_int_equal(log.tags[0], 1);
    assert_ok(mo_loop_advance(loop, MO_SEC(23)));
    assert_int_equal(log.len, 1);
    assert_ok(mo_call_delay(loop, idb, -MO_SEC(10))); /* into the past: due now */
    assert_ok(mo_loop_advance(loop, 0));
    assert_int_equal(log.len, 2);
    mo_loop_free(loop);
}

/* A zero-delay call scheduled by a due call waits for the next iteration. */
static void reschedule_zero_cb(mo_loop_t *loop, void *arg)
{
    struct mo_test_tag *t = arg;
    mo_test_log_cb(loop, t);
    if (t->tag < 3) {
        t->tag++;
        assert_ok(mo_call_later(loop, 0, reschedule_zero_cb, t, NULL));
    }
}

static void test_zero_delay_from_callback_runs_next_iteration(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct mo_test_log log = {0};
    struct mo_test_tag t = {&log, 0};
    assert_ok(mo_call_later(loop, 0, reschedule_zero_cb, &t, NULL));
    for (size_t i = 1; i <= 4; i++) {
        assert_ok(mo_loop_advance(loop, 0));
        assert_int_equal(log.len, i);
    }
    mo_loop_free(loop);
}

/* The same from a call posted with mo_call_from_thread(), which runs at
 * the start of an iteration, before the delayed calls: its zero-delay call
 * also waits for the next iteration. (Found by the fuzzer: it ran in the
 * same one, the timers' cut-off being taken after the thread calls.) */
static void schedule_zero_cb(mo_loop_t *loop, void *arg)
{
    assert_ok(mo_call_later(loop, 0, mo_test_log_cb, arg, NULL));
}

static void test_zero_delay_from_thread_call_runs_next_iteration(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct mo_test_log log = {0};
    struct mo_test_tag t = {&log, 1};
    assert_ok(mo_call_from_thread(loop, schedule_zero_cb, &t));
    assert_ok(mo_loop_advance(loop, 0));
    assert_int_equal(log.len, 0);
    assert_ok(mo_loop_advance(loop, 0));
    assert_int_equal(log.len, 1);
    mo_loop_free(loop);
}

static void test_call_at_past_is_due_now(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct mo_test_log log = {0};
    struct mo_test_tag a = {&log, 1}, b = {&log, 2};
    assert_ok(mo_loop_advance(loop, MO_SEC(5)));
    assert_ok(mo_call_later(loop, 0, mo_test_log_cb, &a, NULL));
    assert_ok(mo_call_at(loop, MO_SEC(1), mo_test_log_cb, &b, NULL));
    assert_ok(mo_loop_advance(loop, 0));
    assert_int_equal(log.len, 2);
    assert_int_equal(log.tags[0], 1); /* scheduled first, runs first */
    mo_loop_free(loop);
}

/* Cancelled calls must not shorten the poll timeout: the next deadline the
 * loop would sleep until ignores them. */
static void test_cancelled_calls_do_not_wake(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    mo_call_id ids[1000];
    for (int i = 0; i < 1000; i++)
        assert_ok(mo_call_later(loop, MO_MSEC(1 + i), mo_test_log_cb, NULL, &ids[i]));
    mo_call_id keep;
    struct mo_test_log log = {0};
    struct mo_test_tag t = {&log, 1};
    assert_ok(mo_call_later(loop, MO_SEC(30), mo_test_log_cb, &t, &keep));
    for (int i = 0; i < 1000; i++) assert_ok(mo_call_cancel(loop, ids[i]));
    assert_true(mo__timers_next(&loop->timers) == MO_SEC(30));
    mo__timer_verify(&loop->timers);
    mo_loop_free(loop);
}

/* Slack: a call never runs early; two calls due within the slack share one
 * wake-up (they see the same cached now: one iteration); a lone call does
 * not wait for the slack. */
struct stamp {
    int64_t at;  /* real clock when it ran */
    int64_t now; /* the loop's cached time when it ran */
};

static void stamp_cb(mo_loop_t *loop, void *arg)
{
    struct stamp *st = arg;
    st->at = mo_hrtime();
    st->now = mo_loop_now(loop);
}

static void test_timer_slack(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    assert_mo(MO_EINVAL, mo_loop_set_timer_slack(NULL, 0));
    assert_mo(MO_EINVAL, mo_loop_set_timer_slack(loop, -1));
    /* Two calls 5 ms apart, slack 50 ms: one wake-up runs both. The first
     * is 100 ms away, so that a slow first iteration (an emulator
     * translating the code) does not find it due already. */
    struct stamp a = {0}, b = {0};
    assert_ok(mo_loop_set_timer_slack(loop, MO_MSEC(50)));
    mo_loop_update_time(loop);
    int64_t deadline = mo_loop_now(loop) + MO_MSEC(100);
    assert_ok(mo_call_at(loop, deadline, stamp_cb, &a, NULL));
    assert_ok(mo_call_at(loop, deadline + MO_MSEC(5), stamp_cb, &b, NULL));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_true(a.at >= deadline && b.at >= deadline + MO_MSEC(5));
    assert_true(a.now == b.now);
    /* With no slack: two wake-ups. The calls are 200 ms apart so that a
     * wake-up late by a few milliseconds (a loaded machine, an emulator)
     * cannot run both at once. */
    assert_ok(mo_loop_set_timer_slack(loop, 0));
    mo_loop_update_time(loop);
    deadline = mo_loop_now(loop) + MO_MSEC(10);
    assert_ok(mo_call_at(loop, deadline, stamp_cb, &a, NULL));
    assert_ok(mo_call_at(loop, deadline + MO_MSEC(200), stamp_cb, &b, NULL));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_true(a.at >= deadline && b.now > a.now);
    /* A lone call with a huge slack is not held back by it (generous bound:
     * the slack is 2 s, scheduling noise is far less). */
    assert_ok(mo_loop_set_timer_slack(loop, MO_SEC(2)));
    mo_loop_update_time(loop);
    deadline = mo_loop_now(loop) + MO_MSEC(10);
    assert_ok(mo_call_at(loop, deadline, stamp_cb, &a, NULL));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_true(a.at >= deadline);
    assert_true(a.at - deadline < MO_SEC(1));
    mo_loop_free(loop);
}

/* ---- randomized comparison with a model ---- */

struct model_call {
    mo_call_id id;
    int64_t deadline;
    uint64_t order; /* the model's own scheduling counter */
    int live;
};

struct model {
    struct model_call calls[4000];
    size_t n;
    uint64_t order;
    int fired[4000];
    size_t nfired;
    mo_loop_t *loop;
};

static struct model *the_model;

static void model_cb(mo_loop_t *loop, void *arg)
{
    (void)loop;
    struct model *m = the_model;
    size_t i = (size_t)(uintptr_t)arg;
    assert_true(m->calls[i].live);
    assert_true(m->calls[i].deadline <= mo_loop_now(loop));
    m->calls[i].live = 0;
    m->fired[m->nfired++] = (int)i;
}

static uint64_t rng_state = 88172645463325252ULL;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int64_t random_delay(void)
{
    switch (rng() % 6) {
    case 0:
        return 0;
    case 1:
        return (int64_t)(rng() % MO_MSEC(2)); /* within a tick or two */
    case 2:
        return (int64_t)(rng() % MO_SEC(1));
    case 3:
        return (int64_t)(rng() % MO_SEC(100));
    case 4:
        return (int64_t)(rng() % (MO_SEC(86400) * 400)); /* up to 400 days */
    default:
        return MO_MSEC(3) * (int64_t)(rng() % 4); /* shared deadlines */
    }
}

/* The calls that the model says must fire when time reaches `now`, in
 * (deadline, order) order, compared with what the loop fired. */
static void model_check_fired(struct model *m, size_t before, int64_t now)
{
    /* Every call still live must not be due yet (fired ones were marked
     * dead by model_cb, which also checked they were due). */
    for (size_t i = 0; i < m->n; i++)
        if (m->calls[i].live) assert_true(m->calls[i].deadline > now);
    for (size_t k = before; k + 1 < m->nfired; k++) {
        const struct model_call *a = &m->calls[m->fired[k]], *b = &m->calls[m->fired[k + 1]];
        assert_true(a->deadline < b->deadline ||
                    (a->deadline == b->deadline && a->order < b->order));
    }
}

static void test_random_operations_match_model(void **state)
{
    (void)state;
    struct model *m = calloc(1, sizeof(*m));
    the_model = m;
    m->loop = mo_test_virtual_loop();
    for (int round = 0; round < 3000; round++) {
        uint64_t op = rng() % 10;
        if (op < 5 && m->n < 4000) {
            struct model_call *c = &m->calls[m->n];
            int64_t d = random_delay();
            assert_ok(mo_call_later(m->loop, d, model_cb, (void *)(uintptr_t)m->n, &c->id));
            c->deadline = mo_loop_now(m->loop) + d;
            c->order = m->order++;
            c->live = 1;
            m->n++;
        } else if (op < 7 && m->n) {
            struct model_call *c = &m->calls[rng() % m->n];
            int err = mo_call_cancel(m->loop, c->id);
            assert_mo(c->live ? 0 : MO_EALREADY, err);
            c->live = 0;
        } else if (op < 8 && m->n) {
            struct model_call *c = &m->calls[rng() % m->n];
            int64_t d = random_delay();
            int err = mo_call_reset(m->loop, c->id, d);
            assert_mo(c->live ? 0 : MO_EALREADY, err);
            if (c->live) {
                c->deadline = mo_loop_now(m->loop) + d;
                c->order = m->order++;
            }
        } else {
            size_t before = m->nfired;
            int64_t step = rng() % 4 == 0 ? random_delay() : (int64_t)(rng() % MO_MSEC(5));
            assert_ok(mo_loop_advance(m->loop, step));
            model_check_fired(m, before, mo_loop_now(m->loop));
        }
        mo__timer_verify(&m->loop->timers);
        for (size_t i = 0; i < m->n; i += 97)
            assert_int_equal(mo_call_active(m->loop, m->calls[i].id), m->calls[i].live);
    }
    /* Run everything out: every live call fires exactly once, in order. */
    size_t before = m->nfired;
    assert_ok(mo_loop_advance(m->loop, INT64_MAX - mo_loop_now(m->loop)));
    model_check_fired(m, before, INT64_MAX);
    for (size_t i = 0; i < m->n; i++) assert_false(m->calls[i].live);
    assert_int_equal(mo_loop_alive(m->loop), 0);
    mo_loop_free(m->loop);
    free(m);
}

/* A loop that comes back late runs every due call in (deadline, seq) order,
 * one tick at a time, while the callbacks cancel calls due later in the same
 * iteration and schedule new ones (which wait for the next iteration). The
 * heap never holds more than a tick or so of calls. */
struct late {
    struct mo_test_log log;
    mo_call_id ids[2000];
    uint32_t heap_max;
    int added;
};

static struct late *the_late;

static void late_cb(mo_loop_t *loop, void *arg)
{
    struct late *l = the_late;
    int i = (int)(uintptr_t)arg;
    l->log.tags[l->log.len++] = i;
    if (loop->timers.heap_len > l->heap_max) l->heap_max = loop->timers.heap_len;
    if (i % 10 == 0 && i + 5 < 1000) assert_ok(mo_call_cancel(loop, l->ids[i + 5]));
    if (i < 1000 && i % 100 == 0) {
        assert_ok(mo_call_later(loop, 0, late_cb, (void *)(uintptr_t)(1000 + l->added), NULL));
        l->added++;
    }
}

static void test_late_iteration_runs_tick_by_tick(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct late *l = calloc(1, sizeof(*l));
    the_late = l;
    /* 1000 calls over ~500 ms, i.e. ~480 ticks and two level-1 slots, in
     * reverse order of scheduling. */
    for (int i = 999; i >= 0; i--)
        assert_ok(
            mo_call_later(loop, MO_USEC(500) * i + 1, late_cb, (void *)(uintptr_t)i, &l->ids[i]));
    assert_ok(mo_loop_advance(loop, MO_SEC(1)));
    int expect = 0;
    size_t k = 0;
    for (; k < l->log.len && l->log.tags[k] < 1000; k++) {
        if (expect % 10 == 5) expect++;
        assert_int_equal(l->log.tags[k], expect++);
    }
    assert_int_equal(expect, 1000);
    assert_int_equal(k, 900);          /* the 100 cancelled ones never ran */
    assert_int_equal(l->log.len, 900); /* the new ones wait for the next iteration */
    assert_true(l->heap_max <= 8);
    mo__timer_verify(&loop->timers);
    assert_ok(mo_loop_advance(loop, 0));
    assert_int_equal(l->log.len, 910);
    for (int j = 0; j < 10; j++) assert_int_equal(l->log.tags[900 + j], 1000 + j);
    assert_int_equal(mo_loop_alive(loop), 0);
    mo_loop_free(loop);
    free(l);
}

/* The slab grows in chunks and recycles slots: many calls, half of them run,
 * the rest are dropped by mo_loop_free() without leaking (ASan checks). */
static void count_cb(mo_loop_t *loop, void *arg)
{
    (void)loop;
    ++*(int *)arg;
}

static void test_many_calls(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    int fired = 0;
    for (int i = 0; i < 20000; i++)
        assert_ok(mo_call_later(loop, MO_USEC(50) * i, count_cb, &fired, NULL));
    mo__timer_verify(&loop->timers);
    assert_ok(mo_loop_advance(loop, MO_USEC(50) * 9999));
    assert_int_equal(fired, 10000);
    mo__timer_verify(&loop->timers);
    mo_loop_free(loop);
}

MO_TEST_MAIN(cmocka_unit_test(test_same_deadline_fifo),
             cmocka_unit_test(test_late_iteration_runs_tick_by_tick),
             cmocka_unit_test(test_runs_only_what_is_due), cmocka_unit_test(test_bad_input),
             cmocka_unit_test(test_stale_ids), cmocka_unit_test(test_cancel_from_callback),
             cmocka_unit_test(test_reset_and_delay),
             cmocka_unit_test(test_zero_delay_from_callback_runs_next_iteration),
             cmocka_unit_test(test_zero_delay_from_thread_call_runs_next_iteration),
             cmocka_unit_test(test_call_at_past_is_due_now),
             cmocka_unit_test(test_cancelled_calls_do_not_wake), cmocka_unit_test(test_timer_slack),
             cmocka_unit_test(test_random_operations_match_model),
             cmocka_unit_test(test_many_calls))
