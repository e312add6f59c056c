/* The watchdog: a callback holding the loop is reported while it runs,
 * by name, and again when it returns. */
/* MO_TEST_LABEL_THREADS */
#include "test.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct seen {
    pthread_mutex_t mutex;
    int blocked, returned;
    int64_t blocked_at; /* mo_hrtime() when the BLOCKED report came */
    int64_t blocked_elapsed, returned_elapsed;
    char symbol[128];
    atomic_int flag; /* set by a BLOCKED report, polled by the callback */
};

static void hook(const struct mo_watchdog_report *r, void *arg)
{
    struct seen *s = arg;
    pthread_mutex_lock(&s->mutex);
    if (r->event == MO_WATCHDOG_BLOCKED) {
        s->blocked++;
        s->blocked_at = mo_hrtime();
        s->blocked_elapsed = r->elapsed;
        snprintf(s->symbol, sizeof(s->symbol), "%s", r->symbol ? r->symbol : "(none)");
        atomic_store(&s->flag, 1);
    } else {
        s->returned++;
        s->returned_elapsed = r->elapsed;
    }
    pthread_mutex_unlock(&s->mutex);
}

struct busy {
    int64_t ns;
    int64_t started;
    int saw_report_while_running;
    struct seen *seen;
};

/* Not static: dladdr() names only functions in the dynamic symbol table
 * (the tests link with -rdynamic). */
void mo_test_busy_callback(mo_loop_t *loop, void *arg);
void mo_test_busy_callback(mo_loop_t *loop, void *arg)
{
    (void)loop;
    struct busy *b = arg;
    b->started = mo_hrtime();
    /* sched_yield() holds the loop just the same, and lets the watchdog run
     * under valgrind, which runs one thread at a time. */
    while (mo_hrtime() - b->started < b->ns) {
        if (b->seen && atomic_load(&b->seen->flag)) b->saw_report_while_running = 1;
        sched_yield();
    }
}

static void nothing_cb(mo_loop_t *loop, void *arg)
{
    (void)loop;
    (void)arg;
}

static void test_bad_input(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    assert_mo(MO_EINVAL, mo_watchdog_start(NULL, MO_MSEC(10), NULL, NULL));
    assert_mo(MO_EINVAL, mo_watchdog_start(loop, 0, NULL, NULL));
    assert_mo(MO_EINVAL, mo_watchdog_start(loop, MO_USEC(999), NULL, NULL));
    assert_mo(MO_EINVAL, mo_watchdog_start(loop, -MO_MSEC(10), NULL, NULL));
    assert_mo(MO_EINVAL, mo_watchdog_start(loop, MO_SEC(3601), NULL, NULL));
    assert_mo(MO_EINVAL, mo_watchdog_stop(NULL));
    assert_mo(MO_EALREADY, mo_watchdog_stop(loop));
    assert_ok(mo_watchdog_start(loop, MO_MSEC(10), NULL, NULL));
    assert_mo(MO_EBUSY, mo_watchdog_start(loop, MO_MSEC(10), NULL, NULL));
    assert_ok(mo_watchdog_stop(loop));
    assert_mo(MO_EALREADY, mo_watchdog_stop(loop));
    assert_ok(mo_watchdog_start(loop, MO_MSEC(10), NULL, NULL));
    mo_loop_free(loop); /* stops it */
}

static void test_blocking_callback_reported_while_running(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct seen s = {.mutex = PTHREAD_MUTEX_INITIALIZER};
    struct busy b = {.ns = MO_MSEC(200), .seen = &s};
    assert_ok(mo_watchdog_start(loop, MO_MSEC(10), hook, &s));
    assert_ok(mo_call_soon(loop, mo_test_busy_callback, &b));
    /* Idle a while afterwards, so the watchdog sees the callback return. */
    assert_ok(mo_call_later(loop, MO_MSEC(20), nothing_cb, NULL, NULL));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_ok(mo_watchdog_stop(loop));
    assert_int_equal(s.blocked, 1);
    assert_true(b.saw_report_while_running);
    assert_string_equal(s.symbol, "mo_test_busy_callback");
    /* The design reports within two sampling periods (5 ms) of the
     * threshold being crossed, and the report came while the callback still
     * ran (checked above). The bounds here are generous: on a loaded
     * machine, or under a sanitizer, the watchdog thread wakes up late. */
    int64_t crossed = b.started + MO_MSEC(10);
    assert_in_range(s.blocked_at - crossed, 0, MO_MSEC(150));
    assert_in_range(s.blocked_elapsed, MO_MSEC(10), MO_MSEC(160));
    assert_int_equal(s.returned, 1);
    /* Sampled every 2.5 ms, so exact to about 1.3 ms; wide for the same
     * reason. */
    assert_in_range(s.returned_elapsed, MO_MSEC(190), MO_MSEC(400));
    mo_loop_free(loop);
}

struct many {
    int left;
};

static void short_cb(mo_loop_t *loop, void *arg)
{
    struct many *m = arg;
    struct busy b = {.ns = MO_USEC(200)};
    mo_test_busy_callback(loop, &b);
    if (--m->left > 0) assert_ok(mo_call_soon(loop, short_cb, m));
}

/* Many short callbacks back to back, and idle time, are not blocking. The
 * threshold is long so that a loaded machine preempting the loop thread in
 * one callback (which the watchdog rightly reports) does not fail it. */
static void test_no_report_for_short_callbacks_or_idle(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct seen s = {.mutex = PTHREAD_MUTEX_INITIALIZER};
    struct many m = {.left = 4000}; /* 800 ms of 200 us calls: more than the threshold in all */
    /* 500 ms: a loaded machine (sanitizers, two cores, other suites) can
     * preempt a 200 us callback for tens of milliseconds, which a watchdog
     * rightly cannot tell from blocking. */
    assert_ok(mo_watchdog_start(loop, MO_MSEC(500), hook, &s));
    assert_ok(mo_call_soon(loop, short_cb, &m));
    assert_ok(mo_call_later(loop, MO_MSEC(350), nothing_cb, NULL, NULL));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    usleep(600000); /* not running at all is not blocking either */
    assert_ok(mo_watchdog_stop(loop));
    assert_int_equal(m.left, 0);
    assert_int_equal(s.blocked, 0);
    assert_int_equal(s.returned, 0);
    mo_loop_free(loop);
}

/* A static function is not in the dynamic symbol table, so dladdr() cannot
 * name it: the watchdog reads the executable's .symtab. Before, the report
 * named it after the exported function before it ("name+0x...") or "an
 * unnamed function". */
__attribute__((noinline)) static void static_busy_callback(mo_loop_t *loop, void *arg)
{
    (void)loop;
    struct busy *b = arg;
    b->started = mo_hrtime();
    while (mo_hrtime() - b->started < b->ns) sched_yield();
}

static void test_static_callback_is_named(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct seen s = {.mutex = PTHREAD_MUTEX_INITIALIZER};
    struct busy b = {.ns = MO_MSEC(40)};
    assert_ok(mo_watchdog_start(loop, MO_MSEC(10), hook, &s));
    assert_ok(mo_call_soon(loop, static_busy_callback, &b));
    assert_ok(mo_call_later(loop, MO_MSEC(20), nothing_cb, NULL, NULL));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_ok(mo_watchdog_stop(loop));
    assert_int_equal(s.blocked, 1);
    assert_string_equal(s.symbol, "static_busy_callback");
    mo_loop_free(loop);
}

/* The watchdog's thread refused: MO_EAGAIN, nothing started. */
static int watchdog_without_threads(void *arg)
{
    (void)arg;
    mo_test_refuse_threads();
    mo_loop_t *loop;
    if (mo_loop_new(&loop, 0) != 0) return 1;
    if (mo_watchdog_start(loop, MO_MSEC(10), NULL, NULL) != MO_EAGAIN) return 2;
    if (mo_watchdog_stop(loop) != MO_EALREADY) return 3;
    mo_loop_free(loop);
    return 0;
}

static void test_start_refused_thread_or_memory(void **state)
{
    (void)state;
    mo_test_alloc_install();
    assert_int_equal(mo_test_child(watchdog_without_threads, NULL), 0);
    mo_loop_t *loop = mo_test_loop();
    mo_test_alloc_fail_at(1, 1);
    assert_mo(MO_ENOMEM, mo_watchdog_start(loop, MO_MSEC(10), NULL, NULL));
    mo_test_alloc_fail_at(0, 0);
    assert_mo(MO_EALREADY, mo_watchdog_stop(loop));
    mo_loop_free(loop);
}

/* With no hook, reports go to stderr. */
static void test_default_hook_writes_stderr(void **state)
{
    (void)state;
    char path[] = "/tmp/morsel-watchdog-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    mo_loop_t *loop = mo_test_loop();
    struct busy b = {.ns = MO_MSEC(30)};
    assert_ok(mo_watchdog_start(loop, MO_MSEC(5), NULL, NULL));
    assert_ok(mo_call_soon(loop, mo_test_busy_callback, &b));
    assert_ok(mo_call_later(loop, MO_MSEC(15), nothing_cb, NULL, NULL));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    mo_loop_free(loop);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char text[2048] = {0};
    ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
    close(fd);
    unlink(path);
    assert_true(n > 0);
    assert_non_null(strstr(text, "morsel: watchdog: loop blocked for"));
    assert_non_null(strstr(text, "mo_test_busy_callback"));
    assert_non_null(strstr(text, "returned after"));
}

MO_TEST_MAIN(cmocka_unit_test(test_bad_input),
             cmocka_unit_test(test_blocking_callback_reported_while_running),
             cmocka_unit_test(test_no_report_for_short_callbacks_or_idle),
             cmocka_unit_test(test_default_hook_writes_stderr),
             cmocka_unit_test(test_static_callback_is_named),
             cmocka_unit_test(test_start_refused_thread_or_memory))
