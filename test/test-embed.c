/* The embedding: a loop run by a host loop through one fd, one timeout and
 * a non-waiting run (DESIGN rule 19). The host here is the hand-written
 * poll() loop of morsel/embed.h: the tests below use the API directly, and
 * the same loop with a timer of its own passes the tests every adapter
 * passes (embed_host.h). MO_TEST_LABEL_THREADS */
#include "embed_host.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- a hand-written host: poll() on the loop's fd, and one timer ---- */

struct poll_host {
    int64_t timer_at; /* 0: no timer */
    int ms;
    void (*fn)(void *arg);
    void *arg;
    mo_loop_t *loop; /* attached */
};

/* The loop let go of this host (detached, closed or freed). */
static void ph_detached(mo_loop_t *loop, void *arg)
{
    (void)loop;
    ((struct poll_host *)arg)->loop = NULL;
}

static const struct mo_embed_ops poll_ops = {"poll", ph_detached};

static void *ph_create(void)
{
    struct poll_host *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    return h;
}

static void ph_destroy(void *host)
{
    free(host);
}

static int ph_attach(mo_loop_t *loop, void *host)
{
    int err = mo_embed_attach(loop, &poll_ops, host);
    if (!err) ((struct poll_host *)host)->loop = loop;
    return err;
}

static int ph_detach(mo_loop_t *loop)
{
    return mo_embed_detach(loop, &poll_ops);
}

/* Sleeps for the earlier of morsel's timeout and the host's timer, then
 * runs the timer if due and the loop. */
static void ph_iterate(void *host, bool block)
{
    struct poll_host *h = host;
    int ms = -1;
    if (h->loop) assert_ok(mo_embed_timeout_ms(h->loop, &ms));
    if (h->timer_at) {
        int64_t left = h->timer_at - mo_hrtime();
        int t = left <= 0 ? 0 : (int)((left + MO_MSEC(1) - 1) / MO_MSEC(1));
        if (ms < 0 || t < ms) ms = t;
    }
    struct pollfd p = {.fd = h->loop ? mo_embed_fd(h->loop) : -1, .events = POLLIN};
    poll(&p, 1, block ? ms : 0);
    if (h->timer_at && mo_hrtime() >= h->timer_at) {
        h->timer_at = mo_hrtime() + MO_MSEC(h->ms);
        h->fn(h->arg);
    }
    if (h->loop) mo_embed_run(h->loop);
}

static void ph_timer_start(void *host, int ms, void (*fn)(void *arg), void *arg)
{
    struct poll_host *h = host;
    *h = (struct poll_host){mo_hrtime() + MO_MSEC(ms), ms, fn, arg, h->loop};
}

static void ph_timer_stop(void *host)
{
    ((struct poll_host *)host)->timer_at = 0;
}

static const struct host_ops host_ops = {
    ph_create,      ph_destroy,    ph_attach, ph_detach, ph_iterate,
    ph_timer_start, ph_timer_stop, false,     NULL,      NULL};

/* ---- the API, directly ---- */

/* Whether the embedding fd becomes readable within ms milliseconds. */
static int fd_readable(mo_loop_t *loop, int ms)
{
    struct pollfd p = {.fd = mo_embed_fd(loop), .events = POLLIN};
    int n = poll(&p, 1, ms);
    assert_true(n >= 0);
    return n;
}

/* One pass of a host: sleeps as told (at most cap_ms), then runs the loop.
 * Returns 1 if the fd woke it, 0 if the timeout did, -1 if the cap did
 * while the loop said it had no deadline. */
static int host_pass(mo_loop_t *loop, int cap_ms)
{
    int ms;
    assert_ok(mo_embed_timeout_ms(loop, &ms));
    int wait = ms < 0 || ms > cap_ms ? cap_ms : ms;
    int r = fd_readable(loop, wait);
    assert_ok(mo_embed_run(loop));
    return r ? 1 : ms < 0 || ms > cap_ms ? -1 : 0;
}

static void count_cb(mo_loop_t *loop, void *arg)
{
    (void)loop;
    (*(int *)arg)++;
}

static int64_t timeout_of(mo_loop_t *loop)
{
    int64_t ns = -2;
    assert_ok(mo_embed_timeout(loop, &ns));
    return ns;
}

/* An idle attached loop: timeout -1, fd quiet. Work queued by the host
 * between runs (a "kick") makes the fd readable and the timeout 0, and one
 * run runs it and leaves the fd quiet again. */
static void test_fd_timeout_and_run(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    int ran = 0;
    assert_true(mo_embed_fd(loop) >= 0);
    assert_ok(mo_embed_attach(loop, NULL, NULL));
    assert_int_equal(timeout_of(loop), -1);
    assert_int_equal(fd_readable(loop, 0), 0);
    assert_ok(mo_call_soon(loop, count_cb, &ran));
    assert_int_equal(timeout_of(loop), 0);
    assert_int_equal(fd_readable(loop, 0), 1);
    assert_ok(mo_embed_run(loop));
    assert_int_equal(ran, 1);
    assert_int_equal(timeout_of(loop), -1);
    assert_int_equal(fd_readable(loop, 0), 0);
    assert_ok(mo_embed_detach(loop, NULL));
    mo_loop_free(loop);
}

/* A delayed call: the timeout counts down to it, the millisecond form is
 * rounded up, so a host following it never wakes before the call is due
 * and wakes only a few times for it (no busy loop). */
static void test_timer_timeout_never_early(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    int ran = 0;
    assert_ok(mo_embed_attach(loop, NULL, NULL));
    mo_loop_update_time(loop); /* the delay counts from the cached time */
    int64_t start = mo_loop_now(loop);
    assert_ok(mo_call_later(loop, MO_USEC(24500), count_cb, &ran, NULL));
    int64_t ns = timeout_of(loop);
    if (!(ns > 0 && ns <= MO_USEC(24500))) fail_msg("timeout %lld ns", (long long)ns);
    int ms;
    assert_ok(mo_embed_timeout_ms(loop, &ms));
    assert_true(ms >= 1 && ms <= 25); /* up to 25, less as time passes */
    int passes = 0;
    while (!ran && passes < 1000) {
        assert_int_not_equal(host_pass(loop, 1000), -1);
        passes++;
    }
    assert_int_equal(ran, 1);
    assert_true(mo_hrtime() - start >= MO_USEC(24500));
    assert_true(passes <= 3);
    assert_int_equal(timeout_of(loop), -1);
    mo_loop_free(loop);
}

/* A delayed call scheduled by the host between runs kicks the fd only if
 * it is due before the deadline the host sleeps for. */
static void test_kick_only_for_earlier_calls(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    int ran = 0;
    mo_call_id far;
    assert_ok(mo_call_later(loop, MO_SEC(10), count_cb, &ran, &far));
    assert_ok(mo_embed_attach(loop, NULL, NULL));
    assert_ok(mo_call_later(loop, MO_SEC(20), count_cb, &ran, NULL));
    assert_int_equal(fd_readable(loop, 0), 0);
    assert_ok(mo_call_later(loop, MO_MSEC(1), count_cb, &ran, NULL));
    assert_int_equal(fd_readable(loop, 0), 1);
    assert_ok(mo_embed_run(loop)); /* consumes the kick; the 1 ms call waits */
    assert_int_equal(fd_readable(loop, 0), 0);
    /* Moving a call earlier kicks too. */
    assert_ok(mo_call_reset(loop, far, 0));
    assert_int_equal(fd_readable(loop, 0), 1);
    assert_int_equal(timeout_of(loop), 0);
    for (int i = 0; i < 100 && ran < 2; i++) host_pass(loop, 100);
    assert_int_equal(ran, 2);
    mo_loop_free(loop);
}

struct poster {
    mo_loop_t *loop;
    int delay_us;
    int *flag;
};

static void *post_later(void *arg)
{
    struct poster *p = arg;
    usleep((useconds_t)p->delay_us);
    assert_ok(mo_call_from_thread(p->loop, count_cb, p->flag));
    return NULL;
}

/* A call from another thread makes the fd of a loop asleep in its host
 * readable, and the run that follows runs it. */
static void test_thread_call_makes_fd_readable(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    int ran = 0;
    assert_ok(mo_embed_attach(loop, NULL, NULL));
    for (int round = 0; round < 20; round++) {
        struct poster p = {loop, round * 100, &ran};
        pthread_t th;
        assert_int_equal(timeout_of(loop), -1);
        assert_int_equal(pthread_create(&th, NULL, post_later, &p), 0);
        assert_int_equal(host_pass(loop, 10000), 1);
        pthread_join(th, NULL);
        assert_int_equal(ran, round + 1);
    }
    mo_loop_free(loop);
}

/* A call posted while the loop is inside its run (not sleeping: no eventfd
 * write) is seen by the timeout afterwards. */
static void post_now_cb(mo_loop_t *loop, void *arg)
{
    struct poster p = {loop, 0, arg};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, post_later, &p), 0);
    pthread_join(th, NULL);
}

static void test_call_posted_during_run_gives_timeout_zero(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    int ran = 0;
    assert_ok(mo_embed_attach(loop, NULL, NULL));
    assert_ok(mo_call_soon(loop, post_now_cb, &ran));
    assert_ok(mo_embed_run(loop));
    assert_int_equal(ran, 0);
    assert_int_equal(timeout_of(loop), 0);
    assert_ok(mo_embed_run(loop));
    assert_int_equal(ran, 1);
    assert_int_equal(timeout_of(loop), -1);
    mo_loop_free(loop);
}

/* Calls posted while detached are not lost when the loop is attached
 * again: the timeout says 0 at once. */
static void test_calls_posted_before_attach_run(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    int ran = 0;
    assert_ok(mo_call_from_thread(loop, count_cb, &ran));
    assert_ok(mo_embed_attach(loop, NULL, NULL));
    assert_int_equal(timeout_of(loop), 0);
    assert_ok(mo_embed_run(loop));
    assert_int_equal(ran, 1);
    /* And the other way: posted while attached, run after detaching. */
    assert_ok(mo_call_from_thread(loop, count_cb, &ran));
    assert_ok(mo_embed_detach(loop, NULL));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(ran, 2);
    mo_loop_free(loop);
}

/* fd readiness of a watcher makes the embedding fd readable. */
static void read_cb(mo_loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)events;
    char c;
    assert_int_equal(read(fd, &c, 1), 1);
    (*(int *)arg)++;
}

static void test_io_readiness_wakes_host(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    int pfd[2], got = 0;
    assert_int_equal(pipe(pfd), 0);
    mo_io_id id;
    assert_ok(mo_io_start(loop, pfd[0], MO_READABLE, read_cb, &got, &id));
    assert_ok(mo_embed_attach(loop, NULL, NULL));
    assert_int_equal(host_pass(loop, 20), -1); /* quiet: capped */
    assert_int_equal(write(pfd[1], "x", 1), 1);
    assert_int_equal(host_pass(loop, 10000), 1);
    assert_int_equal(got, 1);
    assert_int_equal(fd_readable(loop, 0), 0);
    assert_ok(mo_io_stop(loop, id));
    close(pfd[0]);
    close(pfd[1]);
    mo_loop_free(loop);
}

/* Runnable cooperative tasks keep the timeout at 0; one run holds the host
 * for about one slice (1 ms: about 50 steps of 20 us), however long the
 * tasks' work is (2 x 1000 steps). Counted in steps, not time: a loaded
 * machine only makes runs hold fewer. */
struct spinner {
    uint64_t steps;
};

static uint64_t all_steps;

static int spin_step(mo_task_t *task, void *arg)
{
    (void)task;
    struct spinner *s = arg;
    int64_t end = mo_hrtime() + MO_USEC(20);
    while (mo_hrtime() < end) {
    }
    all_steps++;
    return ++s->steps < 1000 ? MO_CONTINUE : MO_DONE;
}

static void test_tasks_keep_timeout_zero_and_runs_short(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct spinner s[2] = {{0}, {0}};
    all_steps = 0;
    for (int i = 0; i < 2; i++) assert_ok(mo_cooperate(loop, spin_step, &s[i], NULL, NULL));
    assert_ok(mo_embed_attach(loop, NULL, NULL));
    uint64_t most = 0;
    int runs = 0;
    while (mo_loop_alive(loop) && runs < 100000) {
        assert_int_equal(timeout_of(loop), 0);
        uint64_t before = all_steps;
        assert_ok(mo_embed_run(loop));
        if (all_steps - before > most) most = all_steps - before;
        runs++;
    }
    assert_true(s[0].steps == 1000 && s[1].steps == 1000);
    if (most > 200) fail_msg("one run took %llu steps of 20 us", (unsigned long long)most);
    assert_true(runs >= 10);
    assert_int_equal(timeout_of(loop), -1);
    mo_loop_free(loop);
}

/* A pool job's completion arrives through the fd; while it runs the
 * timeout is -1, not a spin. */
static void slow_work(mo_pool_job_t *job, void *arg)
{
    (void)job;
    (void)arg;
    usleep(30000);
}

static void job_done(mo_loop_t *loop, mo_pool_job_t *job, int status, void *arg)
{
    (void)loop;
    (void)job;
    assert_ok(status);
    (*(int *)arg)++;
}

static void test_pool_completion_wakes_host(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    mo_pool_t *pool;
    mo_pool_job_t job = {0};
    int done = 0;
    assert_ok(mo_loop_pool(loop, &pool));
    assert_ok(mo_embed_attach(loop, NULL, NULL));
    assert_ok(mo_pool_submit(pool, loop, &job, slow_work, job_done, &done));
    int passes = 0;
    while (!done && passes < 10) {
        assert_int_equal(timeout_of(loop), -1);
        assert_int_not_equal(host_pass(loop, 10000), -1);
        passes++;
    }
    assert_int_equal(done, 1);
    assert_true(passes <= 2);
    mo_loop_free(loop);
}

/* Allocation failure, each allocation in turn, for the work that reaches
 * an attached loop through its fd: a pool job's completion and a call
 * posted by another thread. Every run ends in 0 or MO_ENOMEM, what was
 * accepted runs exactly once (the host is woken for it), nothing leaks. */
struct oom_thread {
    mo_loop_t *loop;
    int ran;
    int rc;
};

static void oom_count(mo_loop_t *loop, void *arg)
{
    (void)loop;
    ((struct oom_thread *)arg)->ran++;
}

static void *oom_post(void *arg)
{
    struct oom_thread *t = arg;
    t->rc = mo_call_from_thread(t->loop, oom_count, t);
    return NULL;
}

static int thread_work_scenario(void *arg)
{
    (void)arg;
    mo_loop_t *loop;
    int rc = mo_loop_new(&loop, 0);
    if (rc) return rc;
    void *host = ph_create();
    assert_ok(ph_attach(loop, host));
    mo_pool_t *pool;
    mo_pool_job_t job = {0};
    int done = 0;
    rc = mo_loop_pool(loop, &pool);
    if (!rc) rc = mo_pool_submit(pool, loop, &job, slow_work, job_done, &done);
    int want = rc == 0;
    struct oom_thread t = {loop, 0, 1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, oom_post, &t), 0);
    pthread_join(th, NULL);
    int64_t give_up = mo_hrtime() + MO_SEC(10);
    while ((done < want || (t.rc == 0 && t.ran == 0)) && mo_hrtime() < give_up)
        ph_iterate(host, true);
    if (done != want || t.ran != (t.rc == 0)) rc = MO_ENOTRECOVERABLE;
    if (!rc) rc = t.rc;
    assert_ok(ph_detach(loop));
    ph_destroy(host);
    mo_loop_free(loop);
    return rc;
}

static void test_thread_work_each_allocation_in_turn(void **state)
{
    (void)state;
    mo_test_alloc_install();
    long n = mo_test_oom_sweep(thread_work_scenario, NULL, 3);
    printf("pool job and thread call into an attached loop: %ld allocations\n", n);
}

/* ---- bad input ---- */

struct detach_log {
    int calls;
    mo_loop_t *loop;
};

static void log_detach(mo_loop_t *loop, void *arg)
{
    struct detach_log *d = arg;
    d->calls++;
    d->loop = loop;
    /* The loop forgot the attachment before telling the adapter. */
    int64_t ns;
    assert_mo(MO_EINVAL, mo_embed_timeout(loop, &ns));
}

static const struct mo_embed_ops ops_a = {"a", log_detach};
static const struct mo_embed_ops ops_b = {"b", log_detach};

static void test_attach_twice_and_detach_unattached(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct detach_log d = {0};
    assert_mo(MO_EINVAL, mo_embed_detach(loop, &ops_a));
    assert_mo(MO_EINVAL, mo_embed_detach(loop, NULL));
    assert_ok(mo_embed_attach(loop, &ops_a, &d));
    assert_mo(MO_EBUSY, mo_embed_attach(loop, &ops_a, &d));
    assert_mo(MO_EBUSY, mo_embed_attach(loop, &ops_b, &d));
    assert_mo(MO_EINVAL, mo_embed_detach(loop, &ops_b)); /* not its attachment */
    assert_int_equal(d.calls, 0);
    assert_ok(mo_embed_detach(loop, &ops_a));
    assert_int_equal(d.calls, 1);
    assert_ptr_equal(d.loop, loop);
    assert_mo(MO_EINVAL, mo_embed_detach(loop, &ops_a));
    assert_int_equal(d.calls, 1);
    mo_loop_free(loop);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    int64_t ns;
    int ms;
    assert_mo(MO_EINVAL, mo_embed_attach(NULL, NULL, NULL));
    assert_mo(MO_EINVAL, mo_embed_fd(NULL));
    assert_mo(MO_EINVAL, mo_embed_timeout(NULL, &ns));
    assert_mo(MO_EINVAL, mo_embed_timeout_ms(NULL, &ms));
    assert_mo(MO_EINVAL, mo_embed_run(NULL));
    mo_loop_t *loop = mo_test_loop();
    assert_mo(MO_EINVAL, mo_embed_timeout(loop, &ns)); /* not attached */
    assert_mo(MO_EINVAL, mo_embed_timeout_ms(loop, &ms));
    assert_mo(MO_EINVAL, mo_embed_run(loop));
    assert_ok(mo_embed_attach(loop, NULL, NULL));
    assert_mo(MO_EINVAL, mo_embed_timeout(loop, NULL));
    assert_mo(MO_EINVAL, mo_embed_timeout_ms(loop, NULL));
    /* An attached loop runs only through its host. */
    assert_mo(MO_EBUSY, mo_loop_run(loop, MO_RUN_NOWAIT));
    mo_loop_free(loop);
    mo_loop_t *virt = mo_test_virtual_loop();
    assert_mo(MO_EINVAL, mo_embed_attach(virt, NULL, NULL));
    mo_loop_free(virt);
    mo_loop_t *closed = mo_test_loop();
    assert_ok(mo_loop_close(closed));
    assert_mo(MO_ESHUTDOWN, mo_embed_attach(closed, NULL, NULL));
    mo_loop_free(closed);
}

/* Running or detaching the loop from its own callback is refused, and the
 * run in progress goes on undisturbed. */
struct reentry {
    int run_err, detach_err, attach_err;
};

static void reenter_cb(mo_loop_t *loop, void *arg)
{
    struct reentry *r = arg;
    r->run_err = mo_embed_run(loop);
    r->detach_err = mo_embed_detach(loop, NULL);
    r->attach_err = mo_embed_attach(loop, NULL, NULL);
}

static void test_run_from_own_callback(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct reentry r = {1, 1, 1};
    int ran = 0;
    assert_ok(mo_embed_attach(loop, NULL, NULL));
    assert_ok(mo_call_soon(loop, reenter_cb, &r));
    assert_ok(mo_call_soon(loop, count_cb, &ran));
    assert_ok(mo_embed_run(loop));
    assert_mo(MO_EBUSY, r.run_err);
    assert_mo(MO_EBUSY, r.detach_err);
    assert_mo(MO_EBUSY, r.attach_err);
    assert_int_equal(ran, 1);
    assert_ok(mo_embed_detach(loop, NULL)); /* still attached */
    mo_loop_free(loop);
}

/* Attaching from a callback of mo_loop_run() is refused: that run would
 * leave the loop awake in the host's eyes. */
static void attach_cb(mo_loop_t *loop, void *arg)
{
    *(int *)arg = mo_embed_attach(loop, NULL, NULL);
}

static void test_attach_while_running_refused(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    int err = 1;
    assert_ok(mo_call_soon(loop, attach_cb, &err));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_mo(MO_EBUSY, err);
    mo_loop_free(loop);
}

/* Freeing (or closing) a loop still attached detaches it first: the
 * adapter's detach runs once, before the loop goes. */
static void test_free_while_attached_detaches(void **state)
{
    (void)state;
    struct detach_log d = {0};
    mo_loop_t *loop = mo_test_loop();
    int ran = 0;
    assert_ok(mo_embed_attach(loop, &ops_a, &d));
    assert_ok(mo_call_later(loop, MO_SEC(5), count_cb, &ran, NULL));
    mo_loop_free(loop);
    assert_int_equal(d.calls, 1);
    assert_int_equal(ran, 0);

    d = (struct detach_log){0};
    loop = mo_test_loop();
    assert_ok(mo_embed_attach(loop, &ops_a, &d));
    assert_ok(mo_loop_close(loop));
    assert_int_equal(d.calls, 1);
    assert_mo(MO_EINVAL, mo_embed_run(loop));
    mo_loop_free(loop);
    assert_int_equal(d.calls, 1);
}

/* mo_loop_stop() from a callback ends the embedded run after the current
 * pass; the next run goes on. */
static void stop_cb(mo_loop_t *loop, void *arg)
{
    assert_ok(mo_loop_stop(loop));
    assert_ok(mo_call_soon(loop, count_cb, arg)); /* a later pass */
}

static void test_stop_ends_run(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    int ran = 0;
    assert_ok(mo_embed_attach(loop, NULL, NULL));
    assert_ok(mo_call_soon(loop, stop_cb, &ran));
    assert_ok(mo_embed_run(loop));
    assert_int_equal(ran, 0);
    assert_int_equal(timeout_of(loop), 0);
    assert_ok(mo_embed_run(loop));
    assert_int_equal(ran, 1);
    mo_loop_free(loop);
}

MO_TEST_MAIN(EMBED_HOST_TESTS, cmocka_unit_test(test_fd_timeout_and_run),
             cmocka_unit_test(test_timer_timeout_never_early),
             cmocka_unit_test(test_kick_only_for_earlier_calls),
             cmocka_unit_test(test_thread_call_makes_fd_readable),
             cmocka_unit_test(test_call_posted_during_run_gives_timeout_zero),
             cmocka_unit_test(test_calls_posted_before_attach_run),
             cmocka_unit_test(test_io_readiness_wakes_host),
             cmocka_unit_test(test_tasks_keep_timeout_zero_and_runs_short),
             cmocka_unit_test(test_pool_completion_wakes_host),
             cmocka_unit_test(test_thread_work_each_allocation_in_turn),
             cmocka_unit_test(test_attach_twice_and_detach_unattached),
             cmocka_unit_test(test_bad_arguments), cmocka_unit_test(test_run_from_own_callback),
             cmocka_unit_test(test_attach_while_running_refused),
             cmocka_unit_test(test_free_while_attached_detaches),
             cmocka_unit_test(test_stop_ends_run))
