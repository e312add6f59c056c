/* The worker pool: jobs run on workers, done runs on the loop thread,
 * cancellation, shutdown, bad input. */
/* MO_TEST_LABEL_THREADS */
#include "test.h"

#include "internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

struct job {
    mo_pool_job_t job;
    pthread_t loop_thread;
    atomic_int worked;       /* work ran (count) */
    atomic_int on_loop;      /* work ran on the loop thread (must stay 0) */
    int done;                /* done ran (count) */
    int status;              /* done's status */
    int done_off_loop;       /* done ran off the loop thread (must stay 0) */
    atomic_int started;      /* blocking work: it began */
    atomic_int go;           /* blocking work: it may return */
    mo_pool_t *wait_closing; /* blocking work: return once this pool closes */
    int free_err;            /* work that tries mo_pool_free() on its pool */
    mo_pool_t *free_pool;
};

static void work_count(mo_pool_job_t *pj, void *arg)
{
    struct job *j = arg;
    assert_ptr_equal(pj, &j->job);
    if (pthread_equal(pthread_self(), j->loop_thread)) atomic_fetch_add(&j->on_loop, 1);
    atomic_fetch_add(&j->worked, 1);
}

static void work_block(mo_pool_job_t *pj, void *arg)
{
    struct job *j = arg;
    work_count(pj, arg);
    atomic_store(&j->started, 1);
    while (!atomic_load(&j->go) && !(j->wait_closing && mo__pool_closing(j->wait_closing)))
        sched_yield();
}

static void work_free_own_pool(mo_pool_job_t *pj, void *arg)
{
    struct job *j = arg;
    work_count(pj, arg);
    j->free_err = mo_pool_free(j->free_pool, 0);
}

static void done_record(mo_loop_t *loop, mo_pool_job_t *pj, int status, void *arg)
{
    (void)loop;
    struct job *j = arg;
    assert_ptr_equal(pj, &j->job);
    if (!pthread_equal(pthread_self(), j->loop_thread)) j->done_off_loop++;
    j->done++;
    j->status = status;
}

static struct job *jobs_new(size_t n)
{
    struct job *j = calloc(n, sizeof(*j));
    assert_non_null(j);
    for (size_t i = 0; i < n; i++) j[i].loop_thread = pthread_self();
    return j;
}

static void wait_started(struct job *j)
{
    while (!atomic_load(&j->started)) sched_yield();
}

static void test_new_free_bad_input(void **state)
{
    (void)state;
    mo_pool_t *pool = NULL;
    assert_mo(MO_EINVAL, mo_pool_new(NULL, 1));
    assert_mo(MO_EINVAL, mo_pool_new(&pool, 0));
    assert_mo(MO_EINVAL, mo_pool_new(&pool, MO_POOL_MAX_THREADS + 1));
    assert_mo(MO_EINVAL, mo_pool_new(&pool, UINT32_MAX));
    assert_null(pool);
    assert_ok(mo_pool_new(&pool, 3));
    assert_int_equal(mo_pool_threads(pool), 3);
    assert_int_equal(mo_pool_threads(NULL), 0);
    assert_true(mo_pool_default_threads() >= 1);
    assert_mo(MO_EINVAL, mo_pool_free(NULL, 0));
    assert_mo(MO_EINVAL, mo_pool_free(pool, 0x100));
    assert_ok(mo_pool_free(pool, 0));
}

static void test_jobs_run_on_workers_done_on_loop(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    mo_pool_t *pool;
    assert_ok(mo_pool_new(&pool, 2));
    enum { N = 10000 };
    struct job *j = jobs_new(N);
    for (int i = 0; i < N; i++)
        assert_ok(mo_pool_submit(pool, loop, &j[i].job, work_count, done_record, &j[i]));
    assert_int_equal(mo_loop_alive(loop), 1); /* outstanding jobs hold the loop */
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    for (int i = 0; i < N; i++) {
        assert_int_equal(atomic_load(&j[i].worked), 1);
        assert_int_equal(atomic_load(&j[i].on_loop), 0);
        assert_int_equal(j[i].done, 1);
        assert_int_equal(j[i].done_off_loop, 0);
        assert_int_equal(j[i].status, 0);
    }
    assert_int_equal(mo_loop_alive(loop), 0);
    assert_ok(mo_pool_free(pool, 0));
    mo_loop_free(loop);
    free(j);
}

static void test_submit_bad_input(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    mo_pool_t *pool;
    assert_ok(mo_pool_new(&pool, 1));
    struct job *j = jobs_new(2);
    assert_mo(MO_EINVAL, mo_pool_submit(pool, NULL, &j->job, work_count, done_record, j));
    assert_mo(MO_EINVAL, mo_pool_submit(pool, loop, NULL, work_count, done_record, j));
    assert_mo(MO_EINVAL, mo_pool_submit(pool, loop, &j->job, NULL, done_record, j));
    assert_mo(MO_EINVAL, mo_pool_submit(pool, loop, &j->job, work_count, NULL, j));
    /* A job in flight cannot be submitted again, to this pool or another. */
    assert_ok(mo_pool_submit(pool, loop, &j->job, work_block, done_record, j));
    assert_mo(MO_EBUSY, mo_pool_submit(pool, loop, &j->job, work_count, done_record, j));
    assert_mo(MO_EBUSY, mo_pool_submit(NULL, loop, &j->job, work_count, done_record, j));
    atomic_store(&j->go, 1);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(j->done, 1);
    /* Once done ran, the job may be submitted again. */
    assert_ok(mo_pool_submit(pool, loop, &j->job, work_count, done_record, j));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(j->done, 2);
    assert_ok(mo_pool_free(pool, 0));
    /* A closed loop takes no jobs. */
    assert_ok(mo_loop_close(loop));
    assert_mo(MO_ESHUTDOWN, mo_pool_submit(NULL, loop, &j[1].job, work_count, done_record, &j[1]));
    mo_loop_free(loop);
    assert_int_equal(j[1].done, 0);
    free(j);
}

struct free_thread {
    mo_pool_t *pool;
    unsigned flags;
    int err;
};

static void *free_main(void *arg)
{
    struct free_thread *t = arg;
    t->err = mo_pool_free(t->pool, t->flags);
    return NULL;
}

static void test_submit_during_shutdown(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    mo_pool_t *pool;
    assert_ok(mo_pool_new(&pool, 1));
    struct job *j = jobs_new(2);
    assert_ok(mo_pool_submit(pool, loop, &j[0].job, work_block, done_record, &j[0]));
    wait_started(&j[0]);
    /* Another thread frees the pool; it waits for the blocked job. */
    struct free_thread ft = {pool, 0, -1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, free_main, &ft), 0);
    while (!mo__pool_closing(pool)) sched_yield();
    assert_mo(MO_ESHUTDOWN, mo_pool_submit(pool, loop, &j[1].job, work_count, done_record, &j[1]));
    atomic_store(&j[0].go, 1);
    pthread_join(th, NULL);
    assert_ok(ft.err);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(j[0].done, 1);
    assert_int_equal(j[1].done, 0);
    assert_int_equal(atomic_load(&j[1].worked), 0);
    mo_loop_free(loop);
    free(j);
}

static void test_cancel_queued_and_running(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    mo_pool_t *pool;
    assert_ok(mo_pool_new(&pool, 1));
    struct job *j = jobs_new(4);
    assert_ok(mo_pool_submit(pool, loop, &j[0].job, work_block, done_record, &j[0]));
    wait_started(&j[0]);
    assert_ok(mo_pool_submit(pool, loop, &j[1].job, work_count, done_record, &j[1]));
    assert_ok(mo_pool_submit(pool, loop, &j[2].job, work_count, done_record, &j[2]));
    assert_ok(mo_pool_cancel(&j[1].job));              /* queued: taken back */
    assert_mo(MO_EALREADY, mo_pool_cancel(&j[1].job)); /* twice */
    assert_mo(MO_EBUSY, mo_pool_cancel(&j[0].job));    /* running */
    assert_mo(MO_EALREADY, mo_pool_cancel(&j[3].job)); /* never submitted */
    assert_mo(MO_EINVAL, mo_pool_cancel(NULL));
    atomic_store(&j[0].go, 1);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(j[0].done, 1);
    assert_int_equal(j[1].done, 0);
    assert_int_equal(atomic_load(&j[1].worked), 0);
    assert_int_equal(j[2].done, 1);
    assert_mo(MO_EALREADY, mo_pool_cancel(&j[2].job)); /* done already ran */
    /* A cancelled job can be submitted again. */
    assert_ok(mo_pool_submit(pool, loop, &j[1].job, work_count, done_record, &j[1]));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(j[1].done, 1);
    assert_ok(mo_pool_free(pool, 0));
    mo_loop_free(loop);
    free(j);
}

static void test_free_finishes_queued_jobs(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    mo_pool_t *pool;
    assert_ok(mo_pool_new(&pool, 1));
    enum { N = 100 };
    struct job *j = jobs_new(N);
    for (int i = 0; i < N; i++)
        assert_ok(mo_pool_submit(pool, loop, &j[i].job, work_count, done_record, &j[i]));
    assert_ok(mo_pool_free(pool, 0)); /* before the loop ran at all */
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    for (int i = 0; i < N; i++) {
        assert_int_equal(atomic_load(&j[i].worked), 1);
        assert_int_equal(j[i].done, 1);
        assert_int_equal(j[i].status, 0);
    }
    mo_loop_free(loop);
    free(j);
}

static void test_free_cancel_queued_reports_them(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    mo_pool_t *pool;
    assert_ok(mo_pool_new(&pool, 1));
    struct job *j = jobs_new(3);
    j[0].wait_closing = pool; /* returns once the free below has begun */
    assert_ok(mo_pool_submit(pool, loop, &j[0].job, work_block, done_record, &j[0]));
    wait_started(&j[0]);
    assert_ok(mo_pool_submit(pool, loop, &j[1].job, work_count, done_record, &j[1]));
    assert_ok(mo_pool_submit(pool, loop, &j[2].job, work_count, done_record, &j[2]));
    assert_ok(mo_pool_free(pool, MO_POOL_CANCEL_QUEUED));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(j[0].done, 1);
    assert_int_equal(j[0].status, 0);
    for (int i = 1; i < 3; i++) {
        assert_int_equal(j[i].done, 1);
        assert_mo(MO_ECANCELED, j[i].status);
        assert_int_equal(atomic_load(&j[i].worked), 0);
    }
    mo_loop_free(loop);
    free(j);
}

static void test_free_from_worker_is_refused(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    mo_pool_t *pool;
    assert_ok(mo_pool_new(&pool, 1));
    struct job *j = jobs_new(1);
    j->free_pool = pool;
    assert_ok(mo_pool_submit(pool, loop, &j->job, work_free_own_pool, done_record, j));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_mo(MO_EDEADLK, j->free_err);
    assert_int_equal(j->done, 1);
    assert_ok(mo_pool_free(pool, 0));
    mo_loop_free(loop);
    free(j);
}

static void test_default_pool_lazy_and_freed_with_loop(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    mo_pool_t *a, *b;
    assert_mo(MO_EINVAL, mo_loop_pool(NULL, &a));
    assert_mo(MO_EINVAL, mo_loop_pool(loop, NULL));
    struct job *j = jobs_new(50);
    for (int i = 0; i < 50; i++)
        assert_ok(mo_pool_submit(NULL, loop, &j[i].job, work_count, done_record, &j[i]));
    assert_ok(mo_loop_pool(loop, &a));
    assert_ok(mo_loop_pool(loop, &b));
    assert_ptr_equal(a, b);
    assert_int_equal(mo_pool_threads(a), mo_pool_default_threads());
    /* Freed without running: every job still completes, in the close. */
    mo_loop_free(loop);
    for (int i = 0; i < 50; i++) assert_int_equal(j[i].done, 1);
    free(j);
}

struct pingpong {
    mo_pool_job_t job;
    mo_pool_t *pool;
    int left;
};

static void work_nothing(mo_pool_job_t *job, void *arg)
{
    (void)job;
    (void)arg;
}

static void pingpong_done(mo_loop_t *loop, mo_pool_job_t *job, int status, void *arg)
{
    struct pingpong *pp = arg;
    assert_ok(status);
    if (--pp->left > 0)
        assert_ok(mo_pool_submit(pp->pool, loop, job, work_nothing, pingpong_done, pp));
}

static void test_resubmit_from_done(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct pingpong pp = {.left = 2000};
    assert_ok(mo_pool_new(&pp.pool, 2));
    assert_ok(mo_pool_submit(pp.pool, loop, &pp.job, work_nothing, pingpong_done, &pp));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(pp.left, 0);
    assert_ok(mo_pool_free(pp.pool, 0));
    mo_loop_free(loop);
}

struct sharer {
    mo_pool_t *pool;
    struct job *jobs;
    int n;
    int err;
};

static void *sharer_main(void *arg)
{
    struct sharer *s = arg;
    mo_loop_t *loop;
    if ((s->err = mo_loop_new(&loop, 0)) != 0) return NULL;
    for (int i = 0; i < s->n && !s->err; i++) {
        s->jobs[i].loop_thread = pthread_self();
        s->err =
            mo_pool_submit(s->pool, loop, &s->jobs[i].job, work_count, done_record, &s->jobs[i]);
    }
    if (!s->err) s->err = mo_loop_run(loop, MO_RUN_DEFAULT);
    mo_loop_free(loop);
    return NULL;
}

static void test_pool_shared_by_loops_on_threads(void **state)
{
    (void)state;
    mo_pool_t *pool;
    assert_ok(mo_pool_new(&pool, 2));
    enum { LOOPS = 3, N = 2000 };
    struct sharer s[LOOPS];
    pthread_t th[LOOPS];
    for (int i = 0; i < LOOPS; i++) {
        s[i] = (struct sharer){pool, jobs_new(N), N, 0};
        assert_int_equal(pthread_create(&th[i], NULL, sharer_main, &s[i]), 0);
    }
    for (int i = 0; i < LOOPS; i++) {
        pthread_join(th[i], NULL);
        assert_ok(s[i].err);
        for (int k = 0; k < N; k++) {
            assert_int_equal(s[i].jobs[k].done, 1);
            assert_int_equal(s[i].jobs[k].done_off_loop, 0);
        }
        free(s[i].jobs);
    }
    assert_ok(mo_pool_free(pool, 0));
}

MO_TEST_MAIN(cmocka_unit_test(test_new_free_bad_input),
             cmocka_unit_test(test_jobs_run_on_workers_done_on_loop),
             cmocka_unit_test(test_submit_bad_input), cmocka_unit_test(test_submit_during_shutdown),
             cmocka_unit_test(test_cancel_queued_and_running),
             cmocka_unit_test(test_free_finishes_queued_jobs),
             cmocka_unit_test(test_free_cancel_queued_reports_them),
             cmocka_unit_test(test_free_from_worker_is_refused),
             cmocka_unit_test(test_default_pool_lazy_and_freed_with_loop),
             cmocka_unit_test(test_resubmit_from_done),
             cmocka_unit_test(test_pool_shared_by_loops_on_threads))
