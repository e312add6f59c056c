/* The cooperator: slices, round-robin turns, batching, pause/resume/stop,
 * waiting on Deferreds, offloading pieces to the pool, the watchdog naming
 * steps, outcomes, bad input. Timing runs on a fake clock injected into the
 * cooperator (steps advance it), on a virtual-clock loop; offloaded pieces
 * run on real pool threads. */
/* MO_TEST_LABEL_THREADS (offloaded pieces run on pool threads; the
 * watchdog is a thread) */
#include "test.h"

#include "work/work_int.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <signal.h>

/* ---- helpers ---- */

struct fake_clock {
    int64_t now;
    uint64_t reads;
};

static int64_t fake_read(void *arg)
{
    struct fake_clock *c = arg;
    c->reads++;
    return c->now;
}

/* A step that logs its tag, advances the fake clock by `cost`, and is done
 * after `limit` steps (0: never). */
struct stepper {
    struct fake_clock *clock;
    struct mo_test_log *log;
    int tag;
    int64_t cost;
    int calls;
    int limit;
    int result; /* returned at the limit */
};

static int stepper_step(mo_task_t *task, void *arg)
{
    (void)task;
    struct stepper *s = arg;
    if (s->log) s->log->tags[s->log->len++] = s->tag;
    if (s->clock) s->clock->now += s->cost;
    s->calls++;
    if (s->limit && s->calls >= s->limit) return s->result;
    return MO_CONTINUE;
}

static mo_loop_t *clocked_loop(struct fake_clock *clock, int64_t slice)
{
    mo_loop_t *loop = mo_test_virtual_loop();
    assert_ok(mo__coop_set_clock(loop, fake_read, clock));
    assert_ok(mo_cooperator_set_slice(loop, slice));
    return loop;
}

/* One loop iteration: exactly one slice when tasks are ready. */
static void one_pass(mo_loop_t *loop)
{
    assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT));
    mo__coop_verify(loop);
}

/* The outcome of a task's Deferred: 1 value, -code failure, 0 unfired. */
static int outcome(mo_task_t *t, void **valuep)
{
    mo_deferred_t *d = mo_task_deferred(t);
    mo__coop_verify(mo_deferred_loop(d)); /* the task states agree with the ring and the list */
    void *v = NULL;
    const mo_failure_t *f = NULL;
    int err = mo_deferred_result(d, &v, &f);
    int r = err == MO_EAGAIN ? 0 : f ? -abs(mo_failure_code(f)) : 1;
    if (valuep) *valuep = v;
    mo_deferred_unref(d);
    return r;
}

/* ---- bad input ---- */

static int freed_count;
static void count_free(void *p)
{
    (void)p;
    freed_count++;
}

static void test_bad_input(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    mo_task_t *t = NULL;
    struct stepper s = {0};
    struct mo_task_opts bad = {.slice = -1};
    assert_mo(MO_EINVAL, mo_cooperate(NULL, stepper_step, &s, NULL, &t));
    assert_mo(MO_EINVAL, mo_cooperate(loop, NULL, &s, NULL, &t));
    assert_mo(MO_EINVAL, mo_cooperate(loop, stepper_step, &s, &bad, &t));
    assert_null(t);
    assert_mo(MO_EINVAL, mo_task_pause(NULL));
    assert_mo(MO_EINVAL, mo_task_resume(NULL));
    assert_mo(MO_EINVAL, mo_task_stop(NULL));
    assert_mo(MO_EINVAL, mo_task_state(NULL));
    assert_mo(MO_EINVAL, mo_task_stats(NULL, &(struct mo_task_stats){0}));
    assert_mo(MO_EINVAL, mo_cooperator_set_slice(NULL, 1));
    assert_mo(MO_EINVAL, mo_cooperator_set_slice(loop, 0));
    assert_mo(MO_EINVAL, mo_cooperator_set_slice(loop, -5));
    assert_mo(MO_EINVAL, mo_cooperator_stop(NULL));
    assert_mo(MO_EINVAL, mo_cooperator_stats(loop, NULL));
    assert_null(mo_task_deferred(NULL));
    freed_count = 0;
    assert_mo(MO_EINVAL, mo_task_done(NULL, &s, count_free));
    assert_int_equal(freed_count, 1); /* the value is taken even on error */
    assert_mo(MO_EINVAL, mo_task_wait(NULL, NULL));
    assert_mo(MO_EINVAL, mo_task_fail(NULL, mo_failure_new(MO_EIO, "t", NULL)));
    assert_null(mo_task_received(NULL, NULL));
    mo_task_release(NULL);
    /* resume of a task that is not paused */
    assert_ok(mo_cooperate(loop, stepper_step, &s, NULL, &t));
    assert_mo(MO_EINVAL, mo_task_resume(t));
    assert_ok(mo_task_stop(t));
    mo_task_release(t);
    mo_loop_free(loop);
}

/* ---- outcomes ---- */

static int done_after_three(mo_task_t *task, void *arg)
{
    int *n = arg;
    if (++*n < 3) return MO_CONTINUE;
    return mo_task_done(task, n, NULL);
}

static void test_done_fires_deferred_with_value(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    int n = 0;
    mo_task_t *t;
    assert_ok(mo_cooperate(loop, done_after_three, &n, NULL, &t));
    assert_int_equal(mo_task_state(t), MO_TASK_READY);
    assert_int_equal(outcome(t, NULL), 0);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    void *v;
    assert_int_equal(outcome(t, &v), 1);
    assert_ptr_equal(v, &n);
    assert_int_equal(n, 3);
    assert_int_equal(mo_task_state(t), MO_TASK_DONE);
    /* Operations on a finished task. */
    assert_mo(MO_EALREADY, mo_task_pause(t));
    assert_mo(MO_EALREADY, mo_task_resume(t));
    assert_mo(MO_EALREADY, mo_task_stop(t));
    struct mo_task_stats st;
    assert_ok(mo_task_stats(t, &st));
    assert_int_equal(st.steps, 3);
    mo_task_release(t);
    mo_loop_free(loop);
}

static void test_error_code_fails_task(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct stepper s = {.limit = 2, .result = MO_EIO};
    mo_task_t *t;
    assert_ok(mo_cooperate(loop, stepper_step, &s, NULL, &t));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(outcome(t, NULL), MO_EIO);
    assert_int_equal(s.calls, 2);
    mo_task_release(t);
    mo_loop_free(loop);
}

static int fail_with_message(mo_task_t *task, void *arg)
{
    (void)arg;
    return mo_task_fail(task, mo_failure_new(MO_ERANGE, "fail_with_message", "too big: %d", 7));
}

static void test_fail_keeps_failure(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    mo_task_t *t;
    assert_ok(mo_cooperate(loop, fail_with_message, NULL, NULL, &t));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    mo_deferred_t *d = mo_task_deferred(t);
    const mo_failure_t *f = NULL;
    assert_ok(mo_deferred_result(d, NULL, &f));
    assert_int_equal(mo_failure_code(f), MO_ERANGE);
    assert_string_equal(mo_failure_message(f), "too big: 7");
    assert_string_equal(mo_failure_origin(f), "fail_with_message");
    mo_deferred_fail(d, MO_EIO, NULL, NULL); /* already fired: no effect */
    mo_failure_t *taken = NULL;
    void *v;
    mo_dtor_fn dt;
    assert_ok(mo_deferred_take(d, &v, &dt, &taken)); /* handled: no report */
    mo_failure_unref(taken);
    mo_deferred_unref(d);
    mo_task_release(t);
    mo_loop_free(loop);
}

static int bad_status(mo_task_t *task, void *arg)
{
    (void)task;
    (void)arg;
    return 42;
}

static int wait_without_deferred(mo_task_t *task, void *arg)
{
    (void)task;
    (void)arg;
    return MO_WAIT;
}

static void test_unknown_status_fails_einval(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    mo_task_t *a, *b;
    assert_ok(mo_cooperate(loop, bad_status, NULL, NULL, &a));
    assert_ok(mo_cooperate(loop, wait_without_deferred, NULL, NULL, &b));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(outcome(a, NULL), MO_EINVAL);
    assert_int_equal(outcome(b, NULL), MO_EINVAL);
    mo_task_release(a);
    mo_task_release(b);
    mo_loop_free(loop);
}

/* ---- slices and turns ---- */

/* A slice is one loop pass; with 3 tasks of 100 µs steps in a 1 ms slice,
 * each takes a third: 3 steps, round-robin, then the loop polls. */
static void test_slice_shared_round_robin(void **state)
{
    (void)state;
    struct fake_clock clock = {0};
    mo_loop_t *loop = clocked_loop(&clock, MO_MSEC(1));
    struct mo_test_log log = {0};
    struct stepper s[3];
    mo_task_t *t[3];
    for (int i = 0; i < 3; i++) {
        s[i] = (struct stepper){.clock = &clock, .log = &log, .tag = 'A' + i, .cost = MO_USEC(100)};
        assert_ok(mo_cooperate(loop, stepper_step, &s[i], NULL, &t[i]));
    }
    one_pass(loop); /* 900 us gone; A's next turn gets what is left */
    assert_int_equal(log.len, 10);
    const int want[] = {'A', 'A', 'A', 'B', 'B', 'B', 'C', 'C', 'C', 'A'};
    assert_memory_equal(log.tags, want, sizeof(want));
    struct mo_cooperator_stats cs;
    assert_ok(mo_cooperator_stats(loop, &cs));
    assert_int_equal(cs.slices, 1);
    assert_int_equal(cs.tasks, 3);
    assert_true(cs.last_ns >= MO_USEC(900) && cs.last_ns <= MO_USEC(1100));
    one_pass(loop);
    assert_int_equal(log.tags[10], 'B'); /* the round goes on where it was */
    assert_ok(mo_cooperator_stats(loop, &cs));
    assert_int_equal(cs.slices, 2);
    assert_int_equal(mo_cooperator_stop(loop), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(outcome(t[i], NULL), MO_ECANCELED);
        mo_task_release(t[i]);
    }
    mo_loop_free(loop);
}

/* Between two slices the loop runs its due timers: rule 1. */
static void timer_mark(mo_loop_t *loop, void *arg)
{
    (void)loop;
    struct stepper *s = arg;
    s->log->tags[s->log->len++] = 'T';
}

static void test_timers_run_between_slices(void **state)
{
    (void)state;
    struct fake_clock clock = {0};
    mo_loop_t *loop = clocked_loop(&clock, MO_MSEC(1));
    struct mo_test_log log = {0};
    struct stepper s = {.clock = &clock,
                        .log = &log,
                        .tag = 'A',
                        .cost = MO_MSEC(1),
                        .limit = 3,
                        .result = MO_DONE};
    assert_ok(mo_cooperate(loop, stepper_step, &s, NULL, NULL));
    assert_ok(mo_call_later(loop, 0, timer_mark, &s, NULL));
    one_pass(loop); /* the timer was due first, then one slice: one 1 ms step */
    assert_ok(mo_call_later(loop, 0, timer_mark, &s, NULL));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    const int want[] = {'T', 'A', 'T', 'A', 'A'};
    assert_int_equal(log.len, 5);
    assert_memory_equal(log.tags, want, sizeof(want));
    mo_loop_free(loop);
}

/* With 1 ms steps and a 1 ms slice, each slice runs one step of one task:
 * the order of turns is visible step by step. */
static mo_loop_t *one_step_per_slice(struct fake_clock *clock, struct mo_test_log *log,
                                     struct stepper *s, mo_task_t **t, int n)
{
    mo_loop_t *loop = clocked_loop(clock, MO_MSEC(1));
    for (int i = 0; i < n; i++) {
        s[i] = (struct stepper){.clock = clock, .log = log, .tag = 'A' + i, .cost = MO_MSEC(1)};
        assert_ok(mo_cooperate(loop, stepper_step, &s[i], NULL, &t[i]));
    }
    return loop;
}

static void test_finishing_mid_round_skips_nobody(void **state)
{
    (void)state;
    struct fake_clock clock = {0};
    struct mo_test_log log = {0};
    struct stepper s[4];
    mo_task_t *t[4];
    mo_loop_t *loop = one_step_per_slice(&clock, &log, s, t, 4);
    s[0].limit = 2; /* A finishes at its second turn */
    s[0].result = MO_DONE;
    for (int i = 0; i < 11; i++) one_pass(loop);
    const char *want = "ABCDABCDBCD";
    assert_int_equal(log.len, strlen(want));
    for (size_t i = 0; i < log.len; i++) assert_int_equal(log.tags[i], want[i]);
    assert_int_equal(mo_cooperator_stop(loop), 3);
    for (int i = 0; i < 4; i++) mo_task_release(t[i]);
    mo_loop_free(loop);
}

/* B stops C during B's turn, and later stops A just before A's turn: the
 * task after the removed one still gets its turn at once. */
struct stopper {
    struct stepper s;
    mo_task_t **victims;
    int at_call[2];
};

static int stopper_step(mo_task_t *task, void *arg)
{
    struct stopper *st = arg;
    stepper_step(task, &st->s);
    for (int i = 0; i < 2; i++)
        if (st->s.calls == st->at_call[i]) assert_ok(mo_task_stop(st->victims[i]));
    return MO_CONTINUE;
}

static void test_stopping_others_mid_round_skips_nobody(void **state)
{
    (void)state;
    struct fake_clock clock = {0};
    struct mo_test_log log = {0};
    struct stepper s[4];
    mo_task_t *t[4];
    mo_loop_t *loop = clocked_loop(&clock, MO_MSEC(1));
    struct stopper b = {.s = {.clock = &clock, .log = &log, .tag = 'B', .cost = MO_MSEC(1)},
                        .at_call = {1, 2}};
    mo_task_t *victims[2];
    b.victims = victims;
    s[0] = (struct stepper){.clock = &clock, .log = &log, .tag = 'A', .cost = MO_MSEC(1)};
    s[2] = (struct stepper){.clock = &clock, .log = &log, .tag = 'C', .cost = MO_MSEC(1)};
    s[3] = (struct stepper){.clock = &clock, .log = &log, .tag = 'D', .cost = MO_MSEC(1)};
    assert_ok(mo_cooperate(loop, stepper_step, &s[0], NULL, &t[0]));
    assert_ok(mo_cooperate(loop, stopper_step, &b, NULL, &t[1]));
    assert_ok(mo_cooperate(loop, stepper_step, &s[2], NULL, &t[2]));
    assert_ok(mo_cooperate(loop, stepper_step, &s[3], NULL, &t[3]));
    victims[0] = t[2]; /* at B's first step: C, next in line */
    victims[1] = t[0]; /* at B's second step: A */
    for (int i = 0; i < 7; i++) one_pass(loop);
    const char *want = "ABDABDB";
    assert_int_equal(log.len, strlen(want));
    for (size_t i = 0; i < log.len; i++) assert_int_equal(log.tags[i], want[i]);
    assert_int_equal(outcome(t[2], NULL), MO_ECANCELED);
    assert_int_equal(outcome(t[0], NULL), MO_ECANCELED);
    assert_int_equal(mo_cooperator_stop(loop), 2);
    for (int i = 0; i < 4; i++) mo_task_release(t[i]);
    mo_loop_free(loop);
}

/* The ready tasks form a queue: a turn sends its task to the back, and a
 * task made ready joins the back. */
static void test_new_task_joins_queue_end(void **state)
{
    (void)state;
    struct fake_clock clock = {0};
    struct mo_test_log log = {0};
    struct stepper s[3];
    mo_task_t *t[3];
    mo_loop_t *loop = one_step_per_slice(&clock, &log, s, t, 2);
    one_pass(loop); /* A ran: the queue is B, A */
    s[2] = (struct stepper){.clock = &clock, .log = &log, .tag = 'C', .cost = MO_MSEC(1)};
    assert_ok(mo_cooperate(loop, stepper_step, &s[2], NULL, &t[2]));
    for (int i = 0; i < 5; i++) one_pass(loop); /* B, A, C, B, A */
    const char *want = "ABACBA";
    assert_int_equal(log.len, strlen(want));
    for (size_t i = 0; i < log.len; i++) assert_int_equal(log.tags[i], want[i]);
    assert_int_equal(mo_cooperator_stop(loop), 3);
    for (int i = 0; i < 3; i++) mo_task_release(t[i]);
    mo_loop_free(loop);
}

/* ---- batching ---- */

/* Tiny steps (10 ns on the fake clock): the batch grows so the clock is
 * read a few dozen times per slice, not once per step, and the slice still
 * ends within 10% of its target. */
static void test_batching_reads_clock_rarely(void **state)
{
    (void)state;
    struct fake_clock clock = {0};
    mo_loop_t *loop = clocked_loop(&clock, MO_MSEC(1));
    struct stepper s = {.clock = &clock, .cost = 10};
    mo_task_t *t;
    assert_ok(mo_cooperate(loop, stepper_step, &s, NULL, &t));
    for (int i = 0; i < 5; i++) one_pass(loop);
    uint64_t reads = clock.reads;
    int calls = s.calls;
    one_pass(loop);
    struct mo_cooperator_stats cs;
    assert_ok(mo_cooperator_stats(loop, &cs));
    int per_slice = s.calls - calls;
    assert_true(per_slice >= 90000 && per_slice <= 100000);
    assert_true(clock.reads - reads <= 40);
    assert_true(cs.last_ns >= MO_USEC(900) && cs.last_ns <= MO_USEC(1100));
    struct mo_task_stats ts;
    assert_ok(mo_task_stats(t, &ts));
    assert_true(ts.step_ns > 9.9 && ts.step_ns < 10.1);
    assert_true(ts.batch >= 16);
    assert_ok(mo_task_stop(t));
    mo_task_release(t);
    mo_loop_free(loop);
}

/* Steps of a tenth of the slice: slices stay within 10%. */
static void test_slice_accuracy_with_coarse_steps(void **state)
{
    (void)state;
    struct fake_clock clock = {0};
    mo_loop_t *loop = clocked_loop(&clock, MO_MSEC(1));
    struct stepper s = {.clock = &clock, .cost = MO_USEC(100)};
    mo_task_t *t;
    assert_ok(mo_cooperate(loop, stepper_step, &s, NULL, &t));
    struct mo_cooperator_stats cs;
    for (int i = 0; i < 20; i++) {
        one_pass(loop);
        assert_ok(mo_cooperator_stats(loop, &cs));
        if (i > 0) assert_true(cs.last_ns >= MO_USEC(900) && cs.last_ns <= MO_USEC(1100));
    }
    assert_ok(mo_task_stop(t));
    mo_task_release(t);
    mo_loop_free(loop);
}

static void test_overlong_step_counted(void **state)
{
    (void)state;
    struct fake_clock clock = {0};
    mo_loop_t *loop = clocked_loop(&clock, MO_MSEC(1));
    struct stepper s = {.clock = &clock, .cost = MO_MSEC(3), .limit = 2, .result = MO_DONE};
    mo_task_t *t;
    assert_ok(mo_cooperate(loop, stepper_step, &s, NULL, &t));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    struct mo_task_stats ts;
    struct mo_cooperator_stats cs;
    assert_ok(mo_task_stats(t, &ts));
    assert_ok(mo_cooperator_stats(loop, &cs));
    assert_int_equal(ts.overlong, 2);
    assert_int_equal(cs.overlong, 2);
    assert_int_equal(cs.slices, 2); /* one step per slice, however long */
    mo_task_release(t);
    mo_loop_free(loop);
}

/* A task's own slice caps its turn; the other takes the rest of the slice. */
static void test_per_task_slice(void **state)
{
    (void)state;
    struct fake_clock clock = {0};
    mo_loop_t *loop = clocked_loop(&clock, MO_MSEC(1));
    struct mo_test_log log = {0};
    struct stepper a = {.clock = &clock, .log = &log, .tag = 'A', .cost = MO_USEC(100)};
    struct stepper b = {.clock = &clock, .log = &log, .tag = 'B', .cost = MO_USEC(100)};
    mo_task_t *ta, *tb;
    struct mo_task_opts small = {.slice = MO_USEC(200)};
    assert_ok(mo_cooperate(loop, stepper_step, &a, &small, &ta));
    assert_ok(mo_cooperate(loop, stepper_step, &b, NULL, &tb));
    one_pass(loop); /* A 2 steps, B its share (5), A 2, B 1 (what is left) */
    assert_int_equal(a.calls, 4);
    assert_int_equal(b.calls, 6);
    assert_int_equal(mo_cooperator_stop(loop), 2);
    mo_task_release(ta);
    mo_task_release(tb);
    mo_loop_free(loop);
}

/* ---- pause, resume, stop ---- */

static void test_pause_resume_counted(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct stepper s = {0};
    mo_task_t *t;
    assert_ok(mo_cooperate(loop, stepper_step, &s, NULL, &t));
    assert_ok(mo_task_pause(t));
    assert_ok(mo_task_pause(t));
    assert_int_equal(mo_task_state(t), MO_TASK_PAUSED);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT)); /* nothing ready: returns */
    assert_int_equal(s.calls, 0);
    assert_ok(mo_task_resume(t));
    assert_int_equal(mo_task_state(t), MO_TASK_PAUSED);
    assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT));
    assert_int_equal(s.calls, 0);
    assert_ok(mo_task_resume(t));
    assert_int_equal(mo_task_state(t), MO_TASK_READY);
    assert_mo(MO_EINVAL, mo_task_resume(t));
    assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT));
    assert_true(s.calls > 0);
    assert_ok(mo_task_stop(t));
    assert_int_equal(outcome(t, NULL), MO_ECANCELED);
    assert_mo(MO_EALREADY, mo_task_stop(t));
    assert_mo(MO_EALREADY, mo_task_pause(t));
    assert_mo(MO_EALREADY, mo_task_resume(t));
    mo_task_release(t);
    mo_loop_free(loop);
}

static int self_pause(mo_task_t *task, void *arg)
{
    int *calls = arg;
    ++*calls;
    assert_ok(mo_task_pause(task));
    return MO_CONTINUE;
}

static void test_step_pauses_own_task(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    int calls = 0;
    mo_task_t *t;
    assert_ok(mo_cooperate(loop, self_pause, &calls, NULL, &t));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(calls, 1); /* not called again in the same batch */
    assert_ok(mo_task_resume(t));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(calls, 2);
    assert_ok(mo_task_stop(t));
    mo_task_release(t);
    mo_loop_free(loop);
}

static int self_stop(mo_task_t *task, void *arg)
{
    int *calls = arg;
    ++*calls;
    assert_ok(mo_task_stop(task));
    return mo_task_done(task, calls, count_free); /* ignored and destroyed */
}

static void test_step_stops_own_task(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    int calls = 0;
    mo_task_t *t;
    freed_count = 0;
    assert_ok(mo_cooperate(loop, self_stop, &calls, NULL, &t));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(calls, 1);
    assert_int_equal(outcome(t, NULL), MO_ECANCELED);
    mo_task_release(t);
    assert_int_equal(freed_count, 1);
    mo_loop_free(loop);
}

static void test_release_handle_task_runs_on(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    int n = 0;
    mo_task_t *t;
    assert_ok(mo_cooperate(loop, done_after_three, &n, NULL, &t));
    mo_deferred_t *d = mo_task_deferred(t);
    mo_task_release(t);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(n, 3);
    assert_int_equal(mo_deferred_fired(d), 1);
    mo_deferred_unref(d);
    mo_loop_free(loop);
}

static void test_stop_cooperator_fails_all_then_runs_new(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct stepper s[3] = {{0}};
    mo_task_t *t[3];
    for (int i = 0; i < 3; i++) assert_ok(mo_cooperate(loop, stepper_step, &s[i], NULL, &t[i]));
    assert_ok(mo_task_pause(t[1]));
    assert_int_equal(mo_cooperator_stop(loop), 3);
    for (int i = 0; i < 3; i++) assert_int_equal(outcome(t[i], NULL), MO_ECANCELED);
    assert_int_equal(mo_cooperator_stop(loop), 0);
    int n = 0;
    mo_task_t *fresh;
    assert_ok(mo_cooperate(loop, done_after_three, &n, NULL, &fresh));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(outcome(fresh, NULL), 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s[i].calls, 0);
        mo_task_release(t[i]);
    }
    mo_task_release(fresh);
    mo_loop_free(loop);
}

/* Freeing the loop fails the tasks still held. */
static void test_loop_free_fails_tasks(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct stepper s = {0};
    assert_ok(mo_cooperate(loop, stepper_step, &s, NULL, NULL));
    mo_loop_free(loop); /* ASan/valgrind: nothing leaks */
    assert_int_equal(s.calls, 0);
}

/* ---- stopping is quiet; failing is not (DESIGN rule 20) ---- */

static void count_reports(mo_loop_t *loop, const mo_failure_t *f, void *arg)
{
    (void)loop;
    int *n = arg;
    *n += mo_failure_code(f) == MO_ECANCELED ? 1 : 100; /* which kind, in one number */
}

static int fails_eio(mo_task_t *task, void *arg)
{
    (void)task;
    (void)arg;
    return MO_EIO;
}

static void fail_with_eio(mo_result_t *r, void *arg)
{
    (void)arg;
    mo_result_fail(r, MO_EIO, "errback", NULL);
}

/* mo_task_stop(), mo_cooperator_stop() and mo_loop_free() on tasks nobody
 * watches say nothing: cancelling work nobody observes is not an error.
 * Before the fix each printed "unhandled error in Deferred: ...
 * operation canceled". */
static void test_stopping_unobserved_tasks_is_quiet(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    int reports = 0;
    assert_ok(mo_loop_set_error_hook(loop, count_reports, &reports));
    struct stepper s[4] = {{0}};
    mo_task_t *t;
    assert_ok(mo_cooperate(loop, stepper_step, &s[0], NULL, &t)); /* no callback on its Deferred */
    assert_ok(mo_task_stop(t));
    mo_task_release(t);
    assert_ok(mo_cooperate(loop, stepper_step, &s[1], NULL, NULL)); /* cannot be watched */
    assert_ok(mo_cooperate(loop, stepper_step, &s[2], NULL, NULL));
    one_pass(loop);
    assert_int_equal(mo_cooperator_stop(loop), 2);
    one_pass(loop);
    assert_int_equal(reports, 0);
    assert_ok(mo_cooperate(loop, stepper_step, &s[3], NULL, NULL));
    mo_loop_free(loop); /* stops it */
    assert_int_equal(reports, 0);
}

/* A task that failed with nobody watching is still reported, once, when
 * its Deferred goes; so is a failure a callback makes of the stop. */
static void test_unobserved_failures_are_reported(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    int reports = 0;
    assert_ok(mo_loop_set_error_hook(loop, count_reports, &reports));
    assert_ok(mo_cooperate(loop, fails_eio, NULL, NULL, NULL));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(reports, 100);
    struct stepper s = {0};
    mo_task_t *t;
    assert_ok(mo_cooperate(loop, stepper_step, &s, NULL, &t));
    mo_deferred_t *d = mo_task_deferred(t);
    assert_ok(mo_deferred_add_errback(d, fail_with_eio, NULL));
    assert_ok(mo_task_stop(t));
    mo_deferred_unref(d);
    mo_task_release(t);
    assert_int_equal(reports, 200);
    /* A task that failed before the loop is freed is reported by the free. */
    assert_ok(mo_cooperate(loop, fails_eio, NULL, NULL, &t));
    one_pass(loop);
    assert_int_equal(mo_task_state(t), MO_TASK_DONE);
    mo_task_release(t);
    assert_int_equal(reports, 300);
    mo_loop_free(loop);
}

/* mo__coop_verify() is not a check that cannot fail: a task whose pause
 * count disagrees with the ring makes it abort. */
static int break_the_ring(void *arg)
{
    mo_task_t *t = arg;
    fclose(stderr); /* the child's message is expected */
    t->pauses = 1;  /* paused behind the cooperator's back: still in the ring */
    mo__coop_verify(t->coop->loop);
    return 0;
}

static void test_verify_catches_a_broken_ring(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct stepper s = {0};
    mo_task_t *t;
    assert_ok(mo_cooperate(loop, stepper_step, &s, NULL, &t));
    mo__coop_verify(loop);
    assert_int_equal(mo_test_child(break_the_ring, t), 128 + SIGABRT);
    mo_task_release(t);
    mo_loop_free(loop);
}

/* ---- waiting on Deferreds ---- */

struct waiter {
    mo_loop_t *loop;
    int phase;
    int64_t delay;
    int fail_code;
    void *received;
    mo_deferred_t *awaited; /* a reference kept by the test */
};

static void later_value(mo_result_t *result, void *arg)
{
    struct waiter *w = arg;
    if (w->fail_code)
        mo_result_fail(result, w->fail_code, "later_value", "no luck");
    else
        mo_result_set(result, w, NULL);
}

static int waiter_step(mo_task_t *task, void *arg)
{
    struct waiter *w = arg;
    if (w->phase++ == 0) {
        mo_deferred_t *d;
        assert_ok(mo_deferred_call_later(w->loop, w->delay, later_value, w, &d));
        w->awaited = mo_deferred_ref(d);
        return mo_task_wait(task, d);
    }
    mo_dtor_fn dtor = NULL;
    w->received = mo_task_received(task, &dtor);
    return MO_DONE;
}

static void test_wait_sleeps_until_deferred_fires(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct waiter w = {.loop = loop, .delay = MO_MSEC(5)};
    mo_task_t *t;
    assert_ok(mo_cooperate(loop, waiter_step, &w, NULL, &t));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(w.phase, 1);
    assert_int_equal(mo_task_state(t), MO_TASK_WAITING);
    assert_ok(mo_loop_advance(loop, MO_MSEC(4)));
    assert_int_equal(w.phase, 1);
    assert_ok(mo_loop_advance(loop, MO_MSEC(1)));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(w.phase, 2);
    assert_ptr_equal(w.received, &w);
    assert_int_equal(outcome(t, NULL), 1);
    mo_deferred_unref(w.awaited);
    mo_task_release(t);
    mo_loop_free(loop);
}

static void test_wait_failure_fails_task(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct waiter w = {.loop = loop, .delay = MO_MSEC(1), .fail_code = MO_ENOENT};
    mo_task_t *t;
    assert_ok(mo_cooperate(loop, waiter_step, &w, NULL, &t));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_ok(mo_loop_advance(loop, MO_MSEC(1)));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(w.phase, 1); /* never stepped again */
    mo_deferred_t *d = mo_task_deferred(t);
    const mo_failure_t *f;
    assert_ok(mo_deferred_result(d, NULL, &f));
    assert_int_equal(mo_failure_code(f), MO_ENOENT);
    assert_string_equal(mo_failure_message(f), "no luck");
    /* The awaited Deferred's failure was taken over: handled there. */
    assert_ok(mo_deferred_result(w.awaited, NULL, &f));
    assert_null(f);
    mo_failure_t *taken;
    void *v;
    mo_dtor_fn dt;
    assert_ok(mo_deferred_take(d, &v, &dt, &taken));
    mo_failure_unref(taken);
    mo_deferred_unref(d);
    mo_deferred_unref(w.awaited);
    mo_task_release(t);
    mo_loop_free(loop);
}

static void test_stop_while_waiting_cancels_awaited(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct waiter w = {.loop = loop, .delay = MO_SEC(10)};
    mo_task_t *t;
    assert_ok(mo_cooperate(loop, waiter_step, &w, NULL, &t));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(mo_task_state(t), MO_TASK_WAITING);
    assert_ok(mo_task_stop(t));
    assert_int_equal(outcome(t, NULL), MO_ECANCELED);
    assert_int_equal(mo_deferred_fired(w.awaited), 1); /* cancelled: the timer is gone */
    assert_int_equal(mo_loop_alive(loop), 0);
    mo_deferred_unref(w.awaited);
    mo_task_release(t);
    mo_loop_free(loop);
}

/* Waiting on a Deferred that has already fired goes on at the next turn. */
struct fired {
    mo_loop_t *loop;
    int phase;
};

static int wait_fired(mo_task_t *task, void *arg)
{
    struct fired *f = arg;
    if (f->phase++ == 0) {
        mo_deferred_t *d;
        assert_ok(mo_deferred_new_succeeded(f->loop, f, NULL, &d));
        return mo_task_wait(task, d);
    }
    mo_dtor_fn dtor;
    assert_ptr_equal(mo_task_received(task, &dtor), f);
    return MO_DONE;
}

static void test_wait_on_fired_deferred(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct fired f = {loop, 0};
    mo_task_t *t;
    assert_ok(mo_cooperate(loop, wait_fired, &f, NULL, &t));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(f.phase, 2);
    assert_int_equal(outcome(t, NULL), 1);
    mo_task_release(t);
    mo_loop_free(loop);
}

/* ---- offloading pieces to the worker pool ---- */

static atomic_int values_freed;
static void value_free(void *p)
{
    atomic_fetch_add(&values_freed, 1);
    free(p);
}

/* A piece: input squared, in a fresh int; or a failure. It can hold until
 * released (go), or until its pool starts closing, to be caught queued or
 * running. */
struct piece {
    atomic_int started, go, ran;
    int hold;
    mo_pool_t *until_closing;
    int input;
    int fail_code;    /* returned, with a value that must be destroyed */
    int with_failure; /* also store a failure of our own */
    pthread_t thread; /* where it ran; read on the loop after done */
};

static int piece_fn(void *arg, void **valuep, mo_dtor_fn *dtorp, mo_failure_t **failurep)
{
    struct piece *p = arg;
    p->thread = pthread_self();
    atomic_store(&p->started, 1);
    while (p->hold && !atomic_load(&p->go) &&
           !(p->until_closing && mo__pool_closing(p->until_closing)))
        sched_yield();
    atomic_fetch_add(&p->ran, 1);
    int *v = malloc(sizeof(*v));
    if (!v) return MO_ENOMEM;
    *v = p->input * p->input;
    *valuep = v;
    *dtorp = value_free;
    if (p->with_failure) *failurep = mo_failure_new(p->fail_code, "piece_fn", "piece %d", p->input);
    return p->fail_code;
}

static void wait_piece_started(struct piece *p)
{
    while (!atomic_load(&p->started)) sched_yield();
}

/* Offloads its piece in its first step, takes the value in the second. */
struct offloader {
    struct piece *piece;
    int phase;
    int result; /* the value received; -1 if none */
    int received_dtor_ok;
};

static int offload_step(mo_task_t *task, void *arg)
{
    struct offloader *o = arg;
    if (o->phase++ == 0) return mo_task_offload(task, piece_fn, o->piece);
    mo_dtor_fn dtor = NULL;
    int *v = mo_task_received(task, &dtor);
    o->result = v ? *v : -1;
    o->received_dtor_ok = dtor == value_free;
    if (dtor) dtor(v);
    return mo_task_done(task, NULL, NULL);
}

/* A timer that ticks every ms while the piece is out, then releases it. */
struct ticker {
    mo_task_t *task;
    struct piece *piece;
    int ticks;
    int state; /* the task's, seen while the piece was out */
};

static void tick_cb(mo_loop_t *loop, void *arg)
{
    struct ticker *k = arg;
    if (atomic_load(&k->piece->started) && ++k->ticks >= 3) {
        k->state = mo_task_state(k->task);
        atomic_store(&k->piece->go, 1);
        return;
    }
    assert_ok(mo_call_later(loop, MO_MSEC(1), tick_cb, k, NULL));
}

/* The piece runs on a worker while the loop goes on running timers; the
 * task waits, then its next step takes the piece's value. */
static void test_offload_resumes_with_value(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct piece p = {.hold = 1, .input = 7};
    struct offloader o = {.piece = &p};
    mo_task_t *t;
    assert_ok(mo_cooperate(loop, offload_step, &o, NULL, &t));
    struct ticker k = {.task = t, .piece = &p};
    assert_ok(mo_call_later(loop, MO_MSEC(1), tick_cb, &k, NULL));
    atomic_store(&values_freed, 0);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(k.ticks, 3); /* the loop ran timers while the piece held */
    assert_int_equal(k.state, MO_TASK_WAITING);
    assert_int_equal(atomic_load(&p.ran), 1);
    assert_false(pthread_equal(p.thread, pthread_self()));
    assert_int_equal(o.phase, 2);
    assert_int_equal(o.result, 49);
    assert_true(o.received_dtor_ok);
    assert_int_equal(atomic_load(&values_freed), 1);
    assert_int_equal(outcome(t, NULL), 1);
    mo_task_release(t);
    mo_loop_free(loop);
}

static void assert_failed_with(mo_task_t *t, int code, const char *origin, const char *msg)
{
    mo_deferred_t *d = mo_task_deferred(t);
    const mo_failure_t *f = NULL;
    assert_ok(mo_deferred_result(d, NULL, &f));
    assert_non_null(f);
    assert_mo(code, mo_failure_code(f));
    assert_string_equal(mo_failure_origin(f), origin);
    if (msg) assert_string_equal(mo_failure_message(f), msg);
    mo_deferred_unref(d);
}

/* A failed piece fails the task: with its own failure, or one of its code;
 * a value it stored on the failure path is destroyed. */
static void test_offload_failure_fails_task(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct piece p1 = {.input = 3, .fail_code = MO_EIO, .with_failure = 1};
    struct piece p2 = {.input = 4, .fail_code = MO_ERANGE};
    struct offloader o1 = {.piece = &p1}, o2 = {.piece = &p2};
    mo_task_t *t1, *t2;
    assert_ok(mo_cooperate(loop, offload_step, &o1, NULL, &t1));
    assert_ok(mo_cooperate(loop, offload_step, &o2, NULL, &t2));
    atomic_store(&values_freed, 0);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(o1.phase, 1); /* never resumed */
    assert_int_equal(o2.phase, 1);
    assert_failed_with(t1, MO_EIO, "piece_fn", "piece 3");
    assert_failed_with(t2, MO_ERANGE, "mo_task_offload", NULL);
    assert_int_equal(atomic_load(&values_freed), 2);
    mo_task_release(t1);
    mo_task_release(t2);
    mo_loop_free(loop);
}

/* A pool of one worker, held by task a's piece (until released, or until
 * the pool closes): task b's piece stays queued behind it. */
static mo_pool_t *one_worker_two_pieces(mo_loop_t *loop, struct offloader *a, struct offloader *b,
                                        mo_task_t **ta, mo_task_t **tb)
{
    mo_pool_t *pool;
    assert_ok(mo_pool_new(&pool, 1));
    a->piece->hold = 1;
    a->piece->until_closing = pool;
    struct mo_task_opts opts = {.pool = pool};
    /* A slice long enough for both first steps even on a slow machine or
     * an emulator (qemu translating the code the first time through). */
    assert_ok(mo_cooperator_set_slice(loop, MO_SEC(10)));
    assert_ok(mo_cooperate(loop, offload_step, a, &opts, ta));
    assert_ok(mo_cooperate(loop, offload_step, b, &opts, tb));
    one_pass(loop); /* both steps offload in this slice */
    assert_int_equal(mo_task_state(*ta), MO_TASK_WAITING);
    assert_int_equal(mo_task_state(*tb), MO_TASK_WAITING);
    wait_piece_started(a->piece);
    return pool;
}

/* Stopping a task whose piece is queued takes the piece back: it never
 * runs. */
static void test_stop_while_queued_cancels_piece(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct piece pa = {.input = 2}, pb = {.input = 3};
    struct offloader a = {.piece = &pa}, b = {.piece = &pb};
    mo_task_t *ta, *tb;
    mo_pool_t *pool = one_worker_two_pieces(loop, &a, &b, &ta, &tb);
    assert_ok(mo_task_stop(tb));
    assert_int_equal(outcome(tb, NULL), MO_ECANCELED);
    assert_int_equal(mo_task_state(tb), MO_TASK_DONE);
    mo_task_release(tb); /* nothing else holds it now */
    atomic_store(&pa.go, 1);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(a.result, 4);
    assert_int_equal(atomic_load(&pb.started), 0);
    assert_int_equal(atomic_load(&pb.ran), 0);
    assert_int_equal(b.phase, 1);
    assert_ok(mo_pool_free(pool, 0));
    mo_task_release(ta);
    mo_loop_free(loop);
}

/* Stopping a task whose piece runs: the outcome is out at once, the piece
 * returns in its own time and its value is destroyed; the loop lives until
 * then, and the task's memory too (the handle is released first). */
static void test_stop_while_running_discards_result(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct piece p = {.hold = 1, .input = 5};
    struct offloader o = {.piece = &p};
    mo_task_t *t;
    assert_ok(mo_cooperate(loop, offload_step, &o, NULL, &t));
    one_pass(loop);
    wait_piece_started(&p);
    assert_ok(mo_task_stop(t));
    assert_int_equal(outcome(t, NULL), MO_ECANCELED);
    assert_mo(MO_EALREADY, mo_task_stop(t));
    mo_task_release(t);
    atomic_store(&values_freed, 0);
    atomic_store(&p.go, 1);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT)); /* returns once done ran */
    assert_int_equal(atomic_load(&p.ran), 1);
    assert_int_equal(atomic_load(&values_freed), 1);
    assert_int_equal(o.phase, 1);
    mo_loop_free(loop);
}

/* A pool freed with MO_POOL_CANCEL_QUEUED before the piece ran fails the
 * task with MO_ECANCELED. */
static void test_pool_cancel_queued_fails_task(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct piece pa = {.input = 2}, pb = {.input = 3};
    struct offloader a = {.piece = &pa}, b = {.piece = &pb};
    mo_task_t *ta, *tb;
    mo_pool_t *pool = one_worker_two_pieces(loop, &a, &b, &ta, &tb);
    assert_ok(mo_pool_free(pool, MO_POOL_CANCEL_QUEUED)); /* a's piece returns on closing */
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(atomic_load(&pb.ran), 0);
    assert_int_equal(a.result, 4);
    assert_failed_with(tb, MO_ECANCELED, "mo_task_offload", NULL);
    mo_task_release(ta);
    mo_task_release(tb);
    mo_loop_free(loop);
}

static int coro_offloader(mo_coro_t *co, void *arg)
{
    struct piece *p = arg;
    void *v;
    mo_dtor_fn dtor;
    int rc = mo_coro_offload(co, piece_fn, p, &v, &dtor);
    if (!rc) dtor(v);
    return rc;
}

/* Freeing the loop while pieces run: closing the loop frees its default
 * pool, which lets them finish (they return once it closes); their values
 * are destroyed, the task and the coroutine fail, nothing leaks (ASan). */
static void test_loop_free_with_pieces_out(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    mo_pool_t *pool;
    assert_ok(mo_loop_pool(loop, &pool));
    struct piece p1 = {.hold = 1, .input = 2, .until_closing = pool};
    struct piece p2 = {.hold = 1, .input = 3, .until_closing = pool};
    struct offloader o = {.piece = &p1};
    mo_task_t *t1, *t2;
    assert_ok(mo_cooperate(loop, offload_step, &o, NULL, &t1));
    assert_ok(mo_coro_spawn(loop, coro_offloader, &p2, NULL, &t2));
    while (mo_task_state(t1) != MO_TASK_WAITING || mo_task_state(t2) != MO_TASK_WAITING)
        one_pass(loop); /* one pass, unless valgrind makes the first turn use the slice */
    mo_task_release(t1);
    mo_task_release(t2);
    wait_piece_started(&p1); /* p2 runs too, or is queued (one worker) */
    atomic_store(&values_freed, 0);
    mo_loop_free(loop);
    assert_int_equal(atomic_load(&p1.ran) + atomic_load(&p2.ran), 2);
    assert_int_equal(atomic_load(&values_freed), 2);
    assert_int_equal(o.phase, 1);
}

/* A task paused while its piece is out takes the value when resumed. */
static void test_pause_while_offloaded(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct piece p = {.hold = 1, .input = 6};
    struct offloader o = {.piece = &p};
    mo_task_t *t;
    assert_ok(mo_cooperate(loop, offload_step, &o, NULL, &t));
    one_pass(loop);
    assert_ok(mo_task_pause(t));
    atomic_store(&p.go, 1);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT)); /* the piece's done ran */
    assert_int_equal(atomic_load(&p.ran), 1);
    assert_int_equal(mo_task_state(t), MO_TASK_PAUSED);
    assert_int_equal(o.phase, 1);
    assert_ok(mo_task_resume(t));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(o.result, 36);
    assert_int_equal(outcome(t, NULL), 1);
    mo_task_release(t);
    mo_loop_free(loop);
}

/* Bad input, from a step: what each call answers. */
struct offload_misuse {
    mo_loop_t *loop;
    struct piece *piece;
    int phase;
    int null_fn, second, wait_after, again_after_stop;
};

static int misuse_step(mo_task_t *task, void *arg)
{
    struct offload_misuse *m = arg;
    if (m->phase++ == 0) {
        m->null_fn = mo_task_offload(task, NULL, m->piece);
        int st = mo_task_offload(task, piece_fn, m->piece);
        m->second = mo_task_offload(task, piece_fn, m->piece);
        mo_deferred_t *d;
        assert_ok(mo_deferred_new(m->loop, NULL, NULL, &d));
        m->wait_after = mo_task_wait(task, d); /* d is released */
        return st;
    }
    mo_dtor_fn dtor;
    void *v = mo_task_received(task, &dtor);
    if (dtor) dtor(v);
    assert_ok(mo_task_stop(task));
    m->again_after_stop = mo_task_offload(task, piece_fn, m->piece);
    return MO_CONTINUE;
}

static int coro_idle(mo_coro_t *co, void *arg)
{
    (void)co;
    (void)arg;
    return 0;
}

static void test_offload_bad_input(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct piece p = {.input = 1};
    assert_mo(MO_EINVAL, mo_task_offload(NULL, piece_fn, &p));
    struct offload_misuse m = {.loop = loop, .piece = &p};
    mo_task_t *t, *co;
    assert_ok(mo_cooperate(loop, misuse_step, &m, NULL, &t));
    assert_mo(MO_EINVAL, mo_task_offload(t, piece_fn, &p)); /* not from its step */
    assert_ok(mo_coro_spawn(loop, coro_idle, NULL, NULL, &co));
    assert_mo(MO_EINVAL, mo_task_offload(co, piece_fn, &p)); /* mo_coro_offload() */
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(m.phase, 2);
    assert_mo(MO_EINVAL, m.null_fn);
    assert_mo(MO_EBUSY, m.second);
    assert_mo(MO_EBUSY, m.wait_after);
    assert_mo(MO_EALREADY, m.again_after_stop);
    assert_int_equal(atomic_load(&p.ran), 1);
    assert_int_equal(outcome(t, NULL), MO_ECANCELED);
    assert_mo(MO_EALREADY, mo_task_offload(t, piece_fn, &p)); /* finished */
    mo_task_release(t);
    mo_task_release(co);
    mo_loop_free(loop);
}

/* The job is part of the task: after a first round warms the pool and the
 * loop up, offloads allocate nothing. Each test runs in its own process,
 * so the allocator can be replaced before first use. */
struct rounds {
    struct piece piece;
    int left;
};

static int rounds_step(mo_task_t *task, void *arg)
{
    struct rounds *r = arg;
    mo_dtor_fn dtor;
    void *v = mo_task_received(task, &dtor);
    if (dtor) dtor(v);
    if (!r->left) return MO_DONE;
    r->left--;
    return mo_task_offload(task, piece_fn, &r->piece);
}

static void test_offload_allocates_nothing(void **state)
{
    (void)state;
    mo_test_alloc_install();
    mo_loop_t *loop = mo_test_loop();
    /* One worker: its completions always come through the same lane of
     * mo_call_from_thread(), whose first chunk the warm-up allocates. */
    mo_pool_t *pool;
    assert_ok(mo_pool_new(&pool, 1));
    struct mo_task_opts opts = {.pool = pool};
    struct rounds r = {.piece = {.input = 2}, .left = 50};
    mo_task_t *t;
    assert_ok(mo_cooperate(loop, rounds_step, &r, &opts, &t));
    while (r.left > 40) assert_ok(mo_loop_run(loop, MO_RUN_ONCE));
    long before = mo_test_alloc_calls();
    while (r.left > 0) assert_ok(mo_loop_run(loop, MO_RUN_ONCE));
    assert_int_equal(mo_test_alloc_calls() - before, 0);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(outcome(t, NULL), 1);
    assert_ok(mo_pool_free(pool, 0));
    mo_task_release(t);
    mo_loop_free(loop);
}

/* ---- errors no other test shows ---- */

static void *free_pool_main(void *arg)
{
    return (void *)(intptr_t)mo_pool_free(arg, 0);
}

struct to_closing {
    struct piece piece;
    int rc;
};

static int offload_to_closing(mo_task_t *task, void *arg)
{
    struct to_closing *c = arg;
    c->rc = mo_task_offload(task, piece_fn, &c->piece);
    return MO_DONE; /* a step may handle the error itself */
}

static int coro_offload_to_closing(mo_coro_t *co, void *arg)
{
    struct to_closing *c = arg;
    c->rc = mo_coro_offload(co, piece_fn, &c->piece, NULL, NULL);
    return 0;
}

/* A piece offloaded to a pool that is being freed: MO_ESHUTDOWN, nothing
 * submitted, for a task and for a coroutine. */
static void test_offload_to_pool_being_freed(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    mo_pool_t *pool;
    assert_ok(mo_pool_new(&pool, 1));
    struct piece blocker = {.hold = 1, .input = 1};
    mo_deferred_t *d;
    assert_ok(mo_deferred_call_on_pool(pool, loop, piece_fn, &blocker, &d));
    wait_piece_started(&blocker);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, free_pool_main, pool), 0);
    while (!mo__pool_closing(pool)) sched_yield();
    struct to_closing task = {.rc = 1}, coro = {.rc = 1};
    struct mo_task_opts topts = {.pool = pool};
    struct mo_coro_opts copts = {.pool = pool};
    assert_ok(mo_cooperate(loop, offload_to_closing, &task, &topts, NULL));
    assert_ok(mo_coro_spawn(loop, coro_offload_to_closing, &coro, &copts, NULL));
    while (task.rc == 1 || coro.rc == 1) assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT));
    assert_mo(MO_ESHUTDOWN, task.rc);
    assert_mo(MO_ESHUTDOWN, coro.rc);
    atomic_store(&blocker.go, 1);
    void *freed;
    pthread_join(th, &freed);
    assert_ok((int)(intptr_t)freed);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(atomic_load(&task.piece.ran) + atomic_load(&coro.piece.ran), 0);
    mo_deferred_unref(d);
    mo_loop_free(loop);
}

static void nothing(mo_loop_t *loop, void *arg)
{
    (void)loop, (void)arg;
}

/* Resuming needs the cooperator's slice scheduled: when the ready queue
 * cannot grow for it, MO_ENOMEM, and the task stays paused. */
static void test_resume_out_of_memory_stays_paused(void **state)
{
    (void)state;
    mo_test_alloc_install();
    mo_loop_t *loop = mo_test_virtual_loop();
    struct stepper s = {0};
    mo_task_t *t;
    assert_ok(mo_cooperate(loop, stepper_step, &s, NULL, &t));
    assert_ok(mo_task_pause(t));
    one_pass(loop); /* the slice ran; nothing is scheduled now */
    mo_test_alloc_fail_at(1, 1);
    int err;
    while ((err = mo_call_soon(loop, nothing, NULL)) == 0) {
    }
    assert_mo(MO_ENOMEM, err); /* the queue is full */
    assert_mo(MO_ENOMEM, mo_task_resume(t));
    mo_test_alloc_fail_at(0, 0);
    assert_int_equal(mo_task_state(t), MO_TASK_PAUSED);
    assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT)); /* the queue drains */
    mo__coop_verify(loop);
    assert_ok(mo_task_resume(t));
    assert_int_equal(mo_task_state(t), MO_TASK_READY);
    assert_mo(MO_EINVAL, mo_task_stats(t, NULL));
    assert_mo(MO_EINVAL, mo_cooperator_stats(NULL, &(struct mo_cooperator_stats){0}));
    assert_ok(mo_task_stop(t));
    mo_task_release(t);
    mo_loop_free(loop);
}

/* ---- allocation failure: every allocation in turn ---- */

struct oom_waiter {
    mo_loop_t *loop;
    int phase;
};

static void oom_later(mo_result_t *r, void *arg)
{
    mo_result_set(r, arg, NULL);
}

/* Waits on a delayed Deferred, then is done with its value. */
static int oom_wait_step(mo_task_t *task, void *arg)
{
    struct oom_waiter *w = arg;
    if (w->phase++ == 0) {
        mo_deferred_t *d;
        int rc = mo_deferred_call_later(w->loop, MO_USEC(10), oom_later, w, &d);
        return rc ? rc : mo_task_wait(task, d);
    }
    mo_dtor_fn dtor;
    return mo_task_done(task, mo_task_received(task, &dtor), NULL);
}

static void oom_hook(mo_loop_t *loop, const mo_failure_t *f, void *arg)
{
    (void)loop;
    if (mo_failure_code(f) != MO_ENOMEM) ++*(int *)arg; /* only out of memory may go unhandled */
}

/* 0 if the task's Deferred fired with `want`, 1 if it failed with
 * MO_ENOMEM, -1 otherwise. */
static int oom_outcome(mo_task_t *t, void *want)
{
    mo_deferred_t *d = mo_task_deferred(t);
    void *v = NULL;
    const mo_failure_t *f = NULL;
    int r = mo_deferred_result(d, &v, &f) != 0     ? -1
            : f && mo_failure_code(f) == MO_ENOMEM ? 1
            : f || v != want                       ? -1
                                                   : 0;
    mo_deferred_unref(d);
    return r;
}

/* Every allocating call of the cooperator in one scenario: tasks that step,
 * pause and resume, wait on a delayed Deferred, offload a piece to the
 * default pool (created then), and one started without a handle. */
static int task_oom_scenario(void *arg)
{
    (void)arg;
    mo_loop_t *loop;
    int rc = mo_loop_new(&loop, 0), failed = 0, bad = 0;
#define STEP(expr)                                                                                 \
    do {                                                                                           \
        rc = (expr);                                                                               \
        if (rc == MO_ENOMEM)                                                                       \
            failed = 1;                                                                            \
        else if (rc)                                                                               \
            return MO_ENOTRECOVERABLE;                                                             \
    } while (0)
    if (rc) return rc;
    STEP(mo_loop_set_error_hook(loop, oom_hook, &bad));
    STEP(mo_cooperator_set_slice(loop, MO_MSEC(2)));
    int n = 0, loose = 0;
    struct oom_waiter w = {loop, 0};
    struct piece piece = {.input = 3};
    struct offloader off = {.piece = &piece, .result = -1};
    mo_task_t *t[3] = {NULL};
    STEP(mo_cooperate(loop, done_after_three, &n, NULL, &t[0]));
    STEP(mo_cooperate(loop, oom_wait_step, &w, NULL, &t[1]));
    STEP(mo_cooperate(loop, offload_step, &off, NULL, &t[2]));
    STEP(mo_cooperate(loop, done_after_three, &loose, NULL, NULL));
    if (t[0]) {
        STEP(mo_task_pause(t[0]));
        STEP(mo_task_resume(t[0]));
    }
    if (mo_loop_run(loop, MO_RUN_DEFAULT) != 0) return MO_ENOTRECOVERABLE;
    mo__coop_verify(loop);
    void *want[3] = {&n, &w, NULL};
    for (int i = 0; i < 3; i++) {
        if (!t[i]) continue;
        int r = oom_outcome(t[i], want[i]);
        if (r < 0) return MO_ENOTRECOVERABLE;
        failed |= r;
        mo_task_release(t[i]);
    }
    if (t[2] && off.result != -1 && off.result != 9) return MO_ENOTRECOVERABLE;
    mo_loop_free(loop);
#undef STEP
    return bad ? MO_ENOTRECOVERABLE : failed ? MO_ENOMEM : 0;
}

static void test_out_of_memory_each_allocation_in_turn(void **state)
{
    (void)state;
    mo_test_alloc_install();
    long n = mo_test_oom_sweep(task_oom_scenario, NULL, 8);
    printf("tasks and the cooperator: %ld allocations, each failed in turn\n", n);
}

/* ---- the watchdog names the step ---- */

struct wd_seen {
    pthread_mutex_t mutex;
    int blocked, returned;
    int named; /* BLOCKED reports that name mo_test_long_step */
    char symbol[128];
};

static void wd_hook(const struct mo_watchdog_report *r, void *arg)
{
    struct wd_seen *s = arg;
    pthread_mutex_lock(&s->mutex);
    if (r->event == MO_WATCHDOG_BLOCKED) {
        if (!s->blocked++)
            snprintf(s->symbol, sizeof(s->symbol), "%s", r->symbol ? r->symbol : "(none)");
        s->named += r->symbol && strcmp(r->symbol, "mo_test_long_step") == 0;
    } else {
        s->returned++;
    }
    pthread_mutex_unlock(&s->mutex);
}

/* Not static: dladdr() names only functions in the dynamic symbol table
 * (the tests link with -rdynamic). Busy for *arg ns in one step, once;
 * sched_yield() holds the loop just the same and lets the watchdog run
 * under valgrind. */
int mo_test_long_step(mo_task_t *task, void *arg);
int mo_test_long_step(mo_task_t *task, void *arg)
{
    (void)task;
    int64_t ns = *(int64_t *)arg, start = mo_hrtime();
    while (mo_hrtime() - start < ns) sched_yield();
    return MO_DONE;
}

int mo_test_short_step(mo_task_t *task, void *arg);
int mo_test_short_step(mo_task_t *task, void *arg)
{
    (void)task;
    int *left = arg;
    int64_t start = mo_hrtime();
    while (mo_hrtime() - start < MO_USEC(100)) sched_yield();
    return --*left > 0 ? MO_CONTINUE : MO_DONE;
}

/* A step that alone holds the loop past the watchdog's threshold is
 * reported while it runs, by the step's name, and counted as overlong. The
 * slice call began with another task's turn of 15 ms, longer than the
 * watchdog's sampling period (10 ms): the watchdog first saw that task
 * published, and must name the step that runs when it reports, not the
 * cooperator's slice call nor the task whose turn came first. */
static void test_watchdog_names_long_step(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct wd_seen s = {.mutex = PTHREAD_MUTEX_INITIALIZER};
    int64_t busy = MO_MSEC(100);
    int shorts = 300; /* 30 ms of 100 us steps */
    mo_task_t *t;
    assert_ok(mo_cooperator_set_slice(loop, MO_MSEC(30)));
    assert_ok(mo_cooperate(loop, mo_test_short_step, &shorts, NULL, NULL));
    assert_ok(mo_cooperate(loop, mo_test_long_step, &busy, NULL, &t));
    assert_ok(mo_watchdog_start(loop, MO_MSEC(40), wd_hook, &s));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_ok(mo_watchdog_stop(loop)); /* reports the return, if not yet */
    /* The long step is named, once. On a loaded machine a 30 ms slice of
     * short steps can also pass 40 ms of wall time and be reported too:
     * that is right, so only the pairing of reports is required of it. */
    assert_int_equal(s.named, 1);
    assert_true(s.blocked >= 1);
    assert_int_equal(s.returned, s.blocked);
    struct mo_task_stats ts;
    assert_ok(mo_task_stats(t, &ts));
    assert_int_equal(ts.overlong, 1);
    assert_int_equal(shorts, 0);
    mo_task_release(t);
    mo_loop_free(loop);
}

MO_TEST_MAIN(
    cmocka_unit_test(test_bad_input), cmocka_unit_test(test_done_fires_deferred_with_value),
    cmocka_unit_test(test_error_code_fails_task), cmocka_unit_test(test_fail_keeps_failure),
    cmocka_unit_test(test_unknown_status_fails_einval),
    cmocka_unit_test(test_slice_shared_round_robin),
    cmocka_unit_test(test_timers_run_between_slices),
    cmocka_unit_test(test_finishing_mid_round_skips_nobody),
    cmocka_unit_test(test_stopping_others_mid_round_skips_nobody),
    cmocka_unit_test(test_new_task_joins_queue_end),
    cmocka_unit_test(test_batching_reads_clock_rarely),
    cmocka_unit_test(test_slice_accuracy_with_coarse_steps),
    cmocka_unit_test(test_overlong_step_counted), cmocka_unit_test(test_per_task_slice),
    cmocka_unit_test(test_pause_resume_counted), cmocka_unit_test(test_step_pauses_own_task),
    cmocka_unit_test(test_step_stops_own_task), cmocka_unit_test(test_release_handle_task_runs_on),
    cmocka_unit_test(test_stop_cooperator_fails_all_then_runs_new),
    cmocka_unit_test(test_loop_free_fails_tasks),
    cmocka_unit_test(test_stopping_unobserved_tasks_is_quiet),
    cmocka_unit_test(test_unobserved_failures_are_reported),
    cmocka_unit_test(test_verify_catches_a_broken_ring),
    cmocka_unit_test(test_wait_sleeps_until_deferred_fires),
    cmocka_unit_test(test_wait_failure_fails_task),
    cmocka_unit_test(test_stop_while_waiting_cancels_awaited),
    cmocka_unit_test(test_wait_on_fired_deferred),
    cmocka_unit_test(test_offload_resumes_with_value),
    cmocka_unit_test(test_offload_failure_fails_task),
    cmocka_unit_test(test_stop_while_queued_cancels_piece),
    cmocka_unit_test(test_stop_while_running_discards_result),
    cmocka_unit_test(test_pool_cancel_queued_fails_task),
    cmocka_unit_test(test_pause_while_offloaded), cmocka_unit_test(test_loop_free_with_pieces_out),
    cmocka_unit_test(test_offload_bad_input), cmocka_unit_test(test_offload_allocates_nothing),
    cmocka_unit_test(test_watchdog_names_long_step),
    cmocka_unit_test(test_out_of_memory_each_allocation_in_turn),
    cmocka_unit_test(test_offload_to_pool_being_freed),
    cmocka_unit_test(test_resume_out_of_memory_stays_paused))
