/* The reactor: run/stop, passes of the ready queue, re-entrancy, bad input. */
#include "test.h"

#include "core/core_int.h"

#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

static void count_cb(mo_loop_t *loop, void *arg)
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

/* A call queued from a callback runs in a later pass: after every call that
 * was queued before it, even those queued after the callback began. */
struct pass_probe {
    struct mo_test_log *log;
    struct mo_test_tag later;
};

static void queue_later_cb(mo_loop_t *loop, void *arg)
{
    struct pass_probe *p = arg;
    p->log->tags[p->log->len++] = 1;
    assert_ok(mo_call_soon(loop, mo_test_log_cb, &p->later));
}

static void test_zero_delay_runs_in_later_pass(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct mo_test_log log = {0};
    struct pass_probe p = {&log, {&log, 3}};
    struct mo_test_tag two = {&log, 2};
    assert_ok(mo_call_soon(loop, queue_later_cb, &p));
    assert_ok(mo_call_soon(loop, mo_test_log_cb, &two));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(log.len, 3);
    assert_int_equal(log.tags[0], 1);
    assert_int_equal(log.tags[1], 2);
    assert_int_equal(log.tags[2], 3);
    mo_loop_free(loop);
}

/* An endless chain of zero-delay calls: NOWAIT still returns (after about
 * io_interval), so the loop can poll. */
static void forever_cb(mo_loop_t *loop, void *arg)
{
    ++*(uint64_t *)arg;
    assert_ok(mo_call_soon(loop, forever_cb, arg));
}

static void test_endless_chain_yields_to_poll(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    uint64_t n = 0;
    assert_ok(mo_call_soon(loop, forever_cb, &n));
    assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT));
    assert_true(n > 0);
    uint64_t first = n;
    assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT));
    assert_true(n > first);
    mo_loop_free(loop);
}

/* I/O is not starved by a chain: a pipe made readable is serviced while the
 * chain goes on, and so is a timer. The test hangs (and times out) if not. */
struct starve {
    uint64_t chain;
    int read_seen;
    int timer_seen;
    mo_io_id watcher;
};

static void starve_chain_cb(mo_loop_t *loop, void *arg)
{
    struct starve *s = arg;
    s->chain++;
    if (s->read_seen && s->timer_seen) {
        assert_ok(mo_loop_stop(loop));
        return;
    }
    assert_ok(mo_call_soon(loop, starve_chain_cb, s));
}

static void starve_read_cb(mo_loop_t *loop, int fd, unsigned events, void *arg)
{
    struct starve *s = arg;
    char c;
    assert_int_equal(events & MO_READABLE, MO_READABLE);
    assert_int_equal(read(fd, &c, 1), 1);
    s->read_seen = 1;
    assert_ok(mo_io_stop(loop, s->watcher));
}

static void starve_timer_cb(mo_loop_t *loop, void *arg)
{
    (void)loop;
    ((struct starve *)arg)->timer_seen = 1;
}

static void test_chain_does_not_starve_io_or_timers(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    struct starve s = {0};
    assert_ok(mo_io_start(loop, fds[0], MO_READABLE, starve_read_cb, &s, &s.watcher));
    assert_ok(mo_call_soon(loop, starve_chain_cb, &s));
    assert_ok(mo_call_later(loop, MO_MSEC(5), starve_timer_cb, &s, NULL));
    assert_int_equal(write(fds[1], "x", 1), 1);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_true(s.read_seen && s.timer_seen);
    assert_true(s.chain > 10);
    close(fds[0]);
    close(fds[1]);
    mo_loop_free(loop);
}

/* The same with a chain of zero-delay *timers*: each iteration has a due
 * call, so zero-timeout polls are skipped within io_interval, but never
 * for longer. */
static void timer_chain_cb(mo_loop_t *loop, void *arg)
{
    struct starve *s = arg;
    s->chain++;
    if (s->read_seen) {
        assert_ok(mo_loop_stop(loop));
        return;
    }
    assert_ok(mo_call_later(loop, 0, timer_chain_cb, s, NULL));
}

static void test_timer_chain_does_not_starve_io(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    struct starve s = {0};
    assert_ok(mo_io_start(loop, fds[0], MO_READABLE, starve_read_cb, &s, &s.watcher));
    assert_ok(mo_call_later(loop, 0, timer_chain_cb, &s, NULL));
    assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT)); /* the chain is going */
    assert_int_equal(write(fds[1], "x", 1), 1);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_true(s.read_seen);
    assert_true(s.chain > 1);
    close(fds[0]);
    close(fds[1]);
    mo_loop_free(loop);
}

/* Stop: the current pass finishes, later passes wait for the next run. */
static void stop_cb(mo_loop_t *loop, void *arg)
{
    (void)arg;
    assert_ok(mo_loop_stop(loop));
    assert_ok(mo_loop_stop(loop)); /* idempotent while running */
}

static void test_stop_finishes_pass(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    int n = 0;
    uint64_t chain = 0;                       /* outlives the pending chain call below */
    assert_mo(MO_EINVAL, mo_loop_stop(loop)); /* not running */
    assert_mo(MO_EINVAL, mo_loop_stop(NULL));
    assert_ok(mo_call_soon(loop, stop_cb, NULL));
    assert_ok(mo_call_soon(loop, count_cb, &n));
    assert_ok(mo_call_soon(loop, forever_cb, &chain));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(n, 1);                   /* same pass as the stop: it ran */
    assert_int_equal(mo_loop_alive(loop), 1); /* the chain's next call waits */
    mo_loop_free(loop);
}

struct reentry {
    int run, advance, close;
};

static void reenter_cb(mo_loop_t *loop, void *arg)
{
    struct reentry *r = arg;
    r->run = mo_loop_run(loop, MO_RUN_NOWAIT);
    r->advance = mo_loop_advance(loop, 1);
    r->close = mo_loop_close(loop);
}

static void test_reentry_is_busy(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct reentry r = {0};
    assert_ok(mo_call_soon(loop, reenter_cb, &r));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_mo(MO_EBUSY, r.run);
    assert_mo(MO_EBUSY, r.advance);
    assert_mo(MO_EBUSY, r.close);
    mo_loop_free(loop);
}

static void test_bad_input(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    mo_loop_t *real = mo_test_loop();
    assert_mo(MO_EINVAL, mo_call_soon(NULL, count_cb, NULL));
    assert_mo(MO_EINVAL, mo_call_soon(loop, NULL, NULL));
    assert_mo(MO_EINVAL, mo_loop_run(NULL, MO_RUN_DEFAULT));
    assert_mo(MO_EINVAL, mo_loop_run(loop, 3));
    assert_mo(MO_EINVAL, mo_loop_run(loop, -1));
    assert_mo(MO_EINVAL, mo_loop_advance(real, 1)); /* not virtual */
    assert_mo(MO_EINVAL, mo_loop_advance(loop, -1));
    assert_mo(MO_EINVAL, mo_loop_advance(NULL, 1));
    assert_ok(mo_loop_advance(loop, INT64_MAX - 10));
    assert_mo(MO_ERANGE, mo_loop_advance(loop, 11));
    assert_mo(MO_EINVAL, mo_loop_set_io_interval(loop, -1));
    assert_mo(MO_EINVAL, mo_loop_set_io_interval(NULL, 1));
    assert_ok(mo_loop_set_io_interval(loop, 0));
    assert_mo(MO_EINVAL, mo_loop_release(loop)); /* no hold */
    assert_mo(MO_EINVAL, mo_loop_hold(NULL));
    assert_int_equal(mo_loop_alive(NULL), 0); /* not MO_EINVAL: that reads as true */
    assert_mo(MO_EINVAL, mo_loop_close(NULL));
    assert_int_equal(mo_loop_now(NULL), 0);
    assert_mo(MO_EINVAL, mo_loop_release(NULL));
    assert_mo(MO_EINVAL, mo_loop_set_timer_slack(NULL, 0));
    mo_loop_update_time(NULL); /* ignored */
    mo_loop_free(real);
    mo_loop_free(loop);
}

static void test_closed_loop_refuses_run(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    assert_ok(mo_loop_close(loop));
    assert_ok(mo_loop_close(loop)); /* idempotent */
    assert_mo(MO_ESHUTDOWN, mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_mo(MO_ESHUTDOWN, mo_call_from_thread(loop, count_cb, NULL));
    assert_mo(MO_ESHUTDOWN, mo_loop_stop_from_thread(loop));
    mo_loop_free(loop);
}

static void release_cb(mo_loop_t *loop, void *arg)
{
    ++*(int *)arg;
    assert_ok(mo_loop_release(loop));
}

/* A hold keeps the loop running with nothing else to do. */
static void test_hold_keeps_loop_alive(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    int released = 0;
    assert_ok(mo_loop_hold(loop));
    assert_int_equal(mo_loop_alive(loop), 1);
    int64_t t0 = mo_loop_now(loop); /* delays count from the cached time */
    assert_ok(mo_call_later(loop, MO_MSEC(20), release_cb, &released, NULL));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(released, 1);
    assert_true(mo_hrtime() - t0 >= MO_MSEC(20));
    assert_int_equal(mo_loop_alive(loop), 0);
    mo_loop_free(loop);
}

/* RUN_ONCE waits for the next timer and runs it in the same call;
 * RUN_NOWAIT does not wait. */
static void test_run_modes(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    int n = 0;
    int64_t t0 = mo_loop_now(loop);
    assert_ok(mo_call_later(loop, MO_MSEC(10), count_cb, &n, NULL));
    assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT));
    assert_int_equal(n, 0);
    assert_ok(mo_loop_run(loop, MO_RUN_ONCE));
    assert_int_equal(n, 1);
    assert_true(mo_hrtime() - t0 >= MO_MSEC(10));
    mo_loop_free(loop);
}

/* On a virtual clock, mo_loop_run() never waits for time: with only future
 * calls left it returns, and advancing runs them. */
static void test_virtual_clock_does_not_wait(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    int n = 0;
    assert_int_equal(mo_loop_now(loop), 0);
    assert_ok(mo_call_later(loop, MO_SEC(1000), count_cb, &n, NULL));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_ok(mo_loop_run(loop, MO_RUN_ONCE));
    assert_int_equal(n, 0);
    assert_int_equal(mo_loop_alive(loop), 1);
    assert_ok(mo_loop_advance(loop, MO_SEC(1000)));
    assert_int_equal(n, 1);
    assert_true(mo_loop_now(loop) == MO_SEC(1000));
    mo_loop_free(loop);
}

/* On a virtual clock an iteration runs one pass of the ready queue, however
 * long its calls take on the real clock: here 50 calls of 20 us each, ten
 * times io_interval. Before the fix an advance cut them after about 100 us
 * of real time, so how many ran depended on the machine's speed. */
struct slow_chain {
    int ran, queued;
};

static void slow_cb(mo_loop_t *loop, void *arg)
{
    struct slow_chain *c = arg;
    int64_t until = mo_hrtime() + MO_USEC(20);
    while (mo_hrtime() < until) {
    }
    c->ran++;
    if (c->queued < 60) { /* and one more for a later pass */
        c->queued++;
        assert_ok(mo_call_soon(loop, slow_cb, c));
    }
}

static void test_virtual_clock_iteration_independent_of_speed(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct slow_chain c = {.queued = 50};
    for (int i = 0; i < 50; i++) assert_ok(mo_call_soon(loop, slow_cb, &c));
    assert_ok(mo_loop_advance(loop, 0));
    assert_int_equal(c.ran, 50); /* all of the first pass, none of the next */
    assert_ok(mo_loop_advance(loop, 0));
    assert_int_equal(c.ran, 60);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(c.ran, 60);
    mo_loop_free(loop);
}

/* MO_RUN_ONCE returns once the iteration ran something: here a call posted
 * from a thread, run at the iteration's start. Before the fix it then
 * blocked in epoll (the hold keeps the loop waitable), until an fd, a
 * timer or another thread woke it: forever here. */
static void test_run_once_returns_after_posted_calls(void **state)
{
    (void)state;
    alarm(30); /* a hang fails here rather than at ctest's timeout */
    mo_loop_t *loop = mo_test_loop();
    int n = 0;
    assert_ok(mo_loop_hold(loop));
    assert_ok(mo_call_from_thread(loop, count_cb, &n));
    assert_ok(mo_loop_run(loop, MO_RUN_ONCE));
    assert_int_equal(n, 1);
    /* A due timer counts too. */
    assert_ok(mo_call_later(loop, 0, count_cb, &n, NULL));
    assert_ok(mo_loop_run(loop, MO_RUN_ONCE));
    assert_int_equal(n, 2);
    assert_ok(mo_loop_release(loop));
    mo_loop_free(loop);
    alarm(0);
}

/* mo_loop_new() passes the system's errors on: out of descriptors, the
 * epoll instance cannot be made (MO_EMFILE). In a child: the limit is the
 * process's. */
static int new_without_fds(void *arg)
{
    (void)arg;
    struct rlimit three = {3, 3}; /* stdin, stdout, stderr: no room for more */
    for (int fd = 3; fd < 1024; fd++) close(fd);
    if (setrlimit(RLIMIT_NOFILE, &three) != 0) {
        /* valgrind keeps the limit for itself: fill the table instead. */
        for (long i = 0; dup(0) >= 0; i++)
            if (i > 1 << 20) return 1;
        if (errno != EMFILE) return 1;
    }
    mo_loop_t *loop = NULL;
    return mo_loop_new(&loop, 0) == MO_EMFILE && !loop ? 0 : 2;
}

static void test_new_out_of_descriptors(void **state)
{
    (void)state;
    assert_int_equal(mo_test_child(new_without_fds, NULL), 0);
}

/* One list feeds the codes, mo_strerror() and mo_err_name(); a positive
 * errno value is accepted; what is not on the list is "unknown". */
static void test_error_names(void **state)
{
    (void)state;
    assert_string_equal(mo_err_name(MO_EINVAL), "EINVAL");
    assert_string_equal(mo_err_name(EINVAL), "EINVAL");
    assert_string_equal(mo_strerror(MO_ENOMEM), "not enough memory");
    assert_string_equal(mo_strerror(ENOMEM), "not enough memory");
    assert_string_equal(mo_err_name(0), "OK");
    assert_string_equal(mo_strerror(0), "success");
    assert_string_equal(mo_err_name(-4000), "UNKNOWN");
    assert_string_equal(mo_strerror(-4000), "unknown error");
    assert_int_equal(mo_version(),
                     (MO_VERSION_MAJOR << 16) | (MO_VERSION_MINOR << 8) | MO_VERSION_PATCH);
    char v[32];
    snprintf(v, sizeof v, "%d.%d.%d", MO_VERSION_MAJOR, MO_VERSION_MINOR, MO_VERSION_PATCH);
    assert_string_equal(mo_version_string(), v);
    assert_true(mo_hrtime() > 0);
}

/* Many queued calls make the ring grow; order is kept across the growth,
 * including growth that happens while a pass runs. */
static void grow_cb(mo_loop_t *loop, void *arg)
{
    struct mo_test_tag *t = arg;
    mo_test_log_cb(loop, t);
}

static void test_ready_queue_grows(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    static struct mo_test_log log;
    static struct mo_test_tag tags[4000];
    for (int i = 0; i < 4000; i++) {
        tags[i] = (struct mo_test_tag){&log, i};
        assert_ok(mo_call_soon(loop, grow_cb, &tags[i]));
    }
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(log.len, 4000);
    for (int i = 0; i < 4000; i++) assert_int_equal(log.tags[i], i);
    mo_loop_free(loop);
}

/* ---- out of memory: fail each allocation in turn ---- */
static void test_out_of_memory(void **state)
{
    (void)state;
    assert_mo(MO_EINVAL, mo_replace_allocator(NULL, realloc, calloc, free));
    mo_test_alloc_install();
    /* mo_loop_new: every failing allocation gives MO_ENOMEM, nothing leaks. */
    int succeeded = 0;
    for (long k = 0; k < 20 && !succeeded; k++) {
        mo_loop_t *loop = NULL;
        mo_test_alloc_fail_at(k + 1, 1);
        int err = mo_loop_new(&loop, 0);
        if (err == 0) {
            succeeded = 1;
            mo_loop_free(loop);
        } else {
            assert_mo(MO_ENOMEM, err);
        }
    }
    assert_true(succeeded);
    /* The ready queue and the timer slab: growth failures are reported and
     * leave what was queued intact. */
    mo_test_alloc_fail_at(0, 0);
    mo_loop_t *loop = mo_test_virtual_loop();
    /* One mo_loop_advance() must run every queued call, however slow the
     * machine: the ready calls' budget is real time, even here. */
    assert_ok(mo_loop_set_io_interval(loop, MO_SEC(10)));
    int n = 0, queued = 0, timers = 0, err;
    mo_test_alloc_fail_at(1, 1);
    while ((err = mo_call_soon(loop, count_cb, &n)) == 0) queued++;
    assert_mo(MO_ENOMEM, err);
    assert_mo(MO_ENOMEM, mo_call_later(loop, 5, count_cb, &n, NULL));
    assert_mo(MO_ENOMEM, mo_call_at(loop, 5, count_cb, &n, NULL));
    mo_test_alloc_fail_at(0, 0);
    for (; timers < 600; timers++) assert_ok(mo_call_later(loop, 5, count_cb, &n, NULL));
    mo_test_alloc_fail_at(1, 1);
    assert_mo(MO_ENOMEM, mo_call_from_thread(loop, count_cb, &n));
    mo_test_alloc_fail_at(0, 0);
    assert_ok(mo_loop_advance(loop, 5));
    assert_int_equal(n, queued + timers);
    mo_loop_free(loop);
}

/* Once the queues and the slab have grown, scheduling, cancelling and
 * running calls allocate nothing. */
static void steady_round(mo_loop_t *loop, int *n)
{
    mo_call_id ids[1000];
    for (int i = 0; i < 1000; i++) {
        assert_ok(mo_call_soon(loop, count_cb, n));
        assert_ok(mo_call_later(loop, MO_MSEC(i % 50), count_cb, n, &ids[i]));
        assert_ok(mo_call_from_thread(loop, count_cb, n));
    }
    for (int i = 0; i < 1000; i += 2) assert_ok(mo_call_cancel(loop, ids[i]));
    assert_ok(mo_loop_advance(loop, MO_MSEC(50)));
}

static void test_no_allocation_in_steady_state(void **state)
{
    (void)state;
    mo_test_alloc_install();
    mo_loop_t *loop = mo_test_virtual_loop();
    /* Each advance must drain the whole queue, however slow the machine
     * (valgrind): otherwise leftovers pile up and the queue grows. */
    assert_ok(mo_loop_set_io_interval(loop, MO_SEC(3600)));
    int n = 0;
    steady_round(loop, &n); /* warm-up: the structures grow */
    steady_round(loop, &n);
    long before = mo_test_alloc_calls();
    for (int r = 0; r < 20; r++) steady_round(loop, &n);
    assert_int_equal(mo_test_alloc_calls() - before, 0);
    assert_int_equal(n, 22 * 2500);
    mo_loop_free(loop);
}

/* ---- the hooks the layers above core attach through ---- */

struct hook_log {
    char order[16];
    int n;
};

struct hook_state {
    struct hook_log *log;
    char tag;
};

static void hook_close(mo_loop_t *loop, void *state)
{
    (void)loop;
    struct hook_state *h = state;
    h->log->order[h->log->n++] = h->tag;
}

static void hook_free(mo_loop_t *loop, void *state)
{
    struct hook_state *h = state;
    /* A free hook runs once, and its own state is still found meanwhile. */
    assert_non_null(loop);
    h->log->order[h->log->n++] = (char)(h->tag - 'a' + 'A');
}

static const struct mo__hooks hooks_low = {"low", 1, hook_close, hook_free};
static const struct mo__hooks hooks_mid1 = {"mid1", 2, hook_close, hook_free};
static const struct mo__hooks hooks_mid2 = {"mid2", 2, NULL, hook_free};
static const struct mo__hooks hooks_gone = {"gone", 3, hook_close, hook_free};

/* Close hooks, then free hooks, run from the highest layer down and, within
 * a layer, the latest attached first; a detached state gets no call; a
 * freed state is no longer found. */
static void test_hooks_run_by_layer(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct hook_log log = {{0}, 0};
    struct hook_state low = {&log, 'a'}, mid1 = {&log, 'b'}, mid2 = {&log, 'c'}, gone = {&log, 'd'};
    assert_ok(mo__loop_attach(loop, &hooks_low, &low));
    assert_ok(mo__loop_attach(loop, &hooks_mid1, &mid1));
    assert_ok(mo__loop_attach(loop, &hooks_gone, &gone));
    assert_ok(mo__loop_attach(loop, &hooks_mid2, &mid2));
    assert_mo(MO_EBUSY, mo__loop_attach(loop, &hooks_mid1, &mid1));
    assert_ptr_equal(mo__loop_state(loop, &hooks_mid2), &mid2);
    assert_ptr_equal(mo__loop_detach(loop, &hooks_gone), &gone);
    assert_null(mo__loop_state(loop, &hooks_gone));
    assert_null(mo__loop_detach(loop, &hooks_gone));
    assert_ptr_equal(mo__loop_state(loop, &hooks_mid2), &mid2);
    assert_ok(mo_loop_close(loop));
    assert_string_equal(log.order, "ba");
    mo_loop_free(loop);
    assert_string_equal(log.order, "baCBA");
}

/* Every slot taken is MO_ENOMEM, not a crash. */
static void test_hooks_slots_bounded(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    static struct mo__hooks many[MO__LOOP_SLOTS + 1];
    int dummy;
    for (int i = 0; i < MO__LOOP_SLOTS; i++) assert_ok(mo__loop_attach(loop, &many[i], &dummy));
    assert_mo(MO_ENOMEM, mo__loop_attach(loop, &many[MO__LOOP_SLOTS], &dummy));
    mo_loop_free(loop);
}

MO_TEST_MAIN(cmocka_unit_test(test_no_allocation_in_steady_state),
             cmocka_unit_test(test_hooks_run_by_layer), cmocka_unit_test(test_hooks_slots_bounded),
             cmocka_unit_test(test_new_free_and_bad_flags),
             cmocka_unit_test(test_call_soon_runs_fifo),
             cmocka_unit_test(test_zero_delay_runs_in_later_pass),
             cmocka_unit_test(test_endless_chain_yields_to_poll),
             cmocka_unit_test(test_chain_does_not_starve_io_or_timers),
             cmocka_unit_test(test_timer_chain_does_not_starve_io),
             cmocka_unit_test(test_stop_finishes_pass), cmocka_unit_test(test_reentry_is_busy),
             cmocka_unit_test(test_bad_input), cmocka_unit_test(test_closed_loop_refuses_run),
             cmocka_unit_test(test_hold_keeps_loop_alive), cmocka_unit_test(test_run_modes),
             cmocka_unit_test(test_virtual_clock_does_not_wait),
             cmocka_unit_test(test_virtual_clock_iteration_independent_of_speed),
             cmocka_unit_test(test_run_once_returns_after_posted_calls),
             cmocka_unit_test(test_new_out_of_descriptors), cmocka_unit_test(test_error_names),
             cmocka_unit_test(test_ready_queue_grows), cmocka_unit_test(test_out_of_memory))
