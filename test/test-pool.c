/* The worker pool: jobs run on workers, done runs on the loop thread,
 * cancellation, shutdown, bad input. */
/* MO_TEST_LABEL_THREADS */
#include "test.h"

#include "work/work_int.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

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

/* ---- the workers' priority ---- */

struct seen_sched {
    mo_pool_job_t job;
    int policy, nice;
};

static void work_read_sched(mo_pool_job_t *pj, void *arg)
{
    (void)pj;
    struct seen_sched *s = arg;
    s->policy = sched_getscheduler(0);
    errno = 0;
    s->nice = getpriority(PRIO_PROCESS, (id_t)gettid());
}

static void done_nothing(mo_loop_t *loop, mo_pool_job_t *pj, int status, void *arg)
{
    (void)loop, (void)pj, (void)status, (void)arg;
}

/* What a worker of a pool made with these options runs at. */
static struct seen_sched worker_sched(mo_loop_t *loop, const struct mo_pool_opts *opts)
{
    mo_pool_t *pool = NULL;
    struct seen_sched s = {.policy = -1};
    assert_ok(mo_pool_new_with(&pool, opts));
    assert_ok(mo_pool_submit(pool, loop, &s.job, work_read_sched, done_nothing, &s));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_ok(mo_pool_free(pool, 0));
    return s;
}

/* mo_pool_new_with(): NORMAL runs as the creator, LOW ten nice levels
 * below it, IDLE under SCHED_IDLE; the default pool is LOW. */
static void test_pool_priorities(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    int mine = getpriority(PRIO_PROCESS, (id_t)gettid());
    int low = mine + 10 > 19 ? 19 : mine + 10;
    struct seen_sched s = worker_sched(loop, NULL);
    assert_int_equal(s.policy, SCHED_OTHER);
    assert_int_equal(s.nice, mine);
    s = worker_sched(loop, &(struct mo_pool_opts){.threads = 1, .priority = MO_POOL_PRIORITY_LOW});
    assert_int_equal(s.policy, SCHED_OTHER);
    assert_int_equal(s.nice, low);
    s = worker_sched(loop, &(struct mo_pool_opts){.priority = MO_POOL_PRIORITY_IDLE});
    assert_int_equal(s.policy, SCHED_IDLE);
    /* The default pool. */
    mo_pool_t *def;
    assert_ok(mo_loop_pool(loop, &def));
    s = (struct seen_sched){.policy = -1};
    assert_ok(mo_pool_submit(def, loop, &s.job, work_read_sched, done_nothing, &s));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(s.policy, SCHED_OTHER);
    assert_int_equal(s.nice, low);
    /* Options: threads 0 is the default count; bad values are refused. */
    mo_pool_t *pool = NULL;
    assert_ok(mo_pool_new_with(&pool, &(struct mo_pool_opts){0}));
    assert_int_equal(mo_pool_threads(pool), mo_pool_default_threads());
    assert_ok(mo_pool_free(pool, 0));
    pool = NULL;
    assert_mo(MO_EINVAL, mo_pool_new_with(NULL, NULL));
    assert_mo(MO_EINVAL, mo_pool_new_with(&pool, &(struct mo_pool_opts){.priority = 3}));
    assert_mo(MO_EINVAL, mo_pool_new_with(&pool, &(struct mo_pool_opts){.priority = -1}));
    assert_mo(MO_EINVAL,
              mo_pool_new_with(&pool, &(struct mo_pool_opts){.threads = MO_POOL_MAX_THREADS + 1}));
    assert_null(pool);
    mo_loop_free(loop);
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

/* A worker that lets its job return only after mo_loop_free() has begun. */
struct release_later {
    struct job *j;
    atomic_int freeing;
};

static void *release_after_free_begins(void *arg)
{
    struct release_later *r = arg;
    while (!atomic_load(&r->freeing)) sched_yield();
    /* Give mo_loop_free() time to get past the point where it used to
     * return while the job still ran. */
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    atomic_store(&r->j->go, 1);
    return NULL;
}

/* A loop freed while its jobs run on a pool of its own (mo_pool_new): the
 * free waits for them and runs their done, so no worker posts into freed
 * memory (ASan saw a heap-use-after-free here before mo_loop_close()
 * drained jobs on every pool). */
static void test_loop_free_waits_for_jobs_on_own_pool(void **state)
{
    (void)state;
    mo_pool_t *pool;
    assert_ok(mo_pool_new(&pool, 2));
    mo_loop_t *loop = mo_test_loop();
    struct job *j = jobs_new(3);
    assert_ok(mo_pool_submit(pool, loop, &j[0].job, work_block, done_record, &j[0]));
    for (int i = 1; i < 3; i++)
        assert_ok(mo_pool_submit(pool, loop, &j[i].job, work_count, done_record, &j[i]));
    wait_started(&j[0]);
    struct release_later r = {&j[0], 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, release_after_free_begins, &r), 0);
    atomic_store(&r.freeing, 1);
    mo_loop_free(loop);
    /* Every done ran inside the free, on this thread, with success. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(j[i].done, 1);
        assert_int_equal(j[i].status, 0);
        assert_int_equal(j[i].done_off_loop, 0);
    }
    pthread_join(th, NULL);
    assert_ok(mo_pool_free(pool, 0));
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

struct pair {
    mo_pool_job_t job[2];
    atomic_int started[2];
    atomic_int partner_seen[2];
};

static void work_wait_partner(mo_pool_job_t *job, void *arg)
{
    struct pair *p = arg;
    int me = job == &p->job[1];
    atomic_store(&p->started[me], 1);
    int64_t until = mo_hrtime() + MO_SEC(10);
    while (!atomic_load(&p->started[!me]) && mo_hrtime() < until) sched_yield();
    atomic_store(&p->partner_seen[me], atomic_load(&p->started[!me]));
}

/* After a burst of cheap jobs (workers then take big batches), two jobs
 * that each wait for the other to start still run side by side: a worker
 * leaving a job behind wakes another, whatever its history. */
static void test_pool_is_work_conserving(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    mo_pool_t *pool;
    assert_ok(mo_pool_new(&pool, 2));
    enum { N = 20000 };
    struct job *j = jobs_new(N);
    for (int i = 0; i < N; i++)
        assert_ok(mo_pool_submit(pool, loop, &j[i].job, work_count, done_record, &j[i]));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    struct pair p = {0};
    for (int i = 0; i < 2; i++)
        assert_ok(mo_pool_submit(pool, loop, &p.job[i], work_wait_partner, done_nothing, &p));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(atomic_load(&p.partner_seen[0]), 1);
    assert_int_equal(atomic_load(&p.partner_seen[1]), 1);
    assert_ok(mo_pool_free(pool, 0));
    mo_loop_free(loop);
    free(j);
}

/* ---- mo_deferred_call_on_pool ---- */

struct tc {
    pthread_t loop_thread;
    atomic_int ran;
    atomic_int off_loop;
    atomic_int go; /* blocking variants wait for it */
    atomic_int started;
    int code;         /* what fn returns */
    int with_failure; /* fn stores a failure */
    int with_value;   /* fn stores a value */
};

static atomic_int dtor_calls;

static void value_dtor(void *value)
{
    atomic_fetch_add(&dtor_calls, 1);
    free(value);
}

static int thread_fn(void *arg, void **valuep, mo_dtor_fn *dtorp, mo_failure_t **failurep)
{
    struct tc *t = arg;
    atomic_store(&t->started, 1);
    while (!atomic_load(&t->go)) sched_yield();
    if (!pthread_equal(pthread_self(), t->loop_thread)) atomic_store(&t->off_loop, 1);
    atomic_fetch_add(&t->ran, 1);
    if (t->with_value) {
        int *v = malloc(sizeof(*v));
        *v = 42;
        *valuep = v;
        *dtorp = value_dtor;
    }
    if (t->with_failure) *failurep = mo_failure_new(MO_EIO, "thread_fn", "disk on fire");
    return t->code;
}

static struct tc tc_new(int code, int with_value, int with_failure, int go)
{
    return (struct tc){.loop_thread = pthread_self(),
                       .code = code,
                       .with_value = with_value,
                       .with_failure = with_failure,
                       .go = go};
}

static void test_defer_to_thread_value(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct tc t = tc_new(0, 1, 0, 1);
    mo_deferred_t *d;
    atomic_store(&dtor_calls, 0);
    assert_ok(mo_deferred_call_on_pool(NULL, loop, thread_fn, &t, &d));
    assert_int_equal(mo_deferred_fired(d), 0);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    void *value;
    const mo_failure_t *f;
    assert_ok(mo_deferred_result(d, &value, &f));
    assert_null(f);
    assert_int_equal(*(int *)value, 42);
    assert_int_equal(atomic_load(&t.off_loop), 1);
    mo_deferred_unref(d);
    assert_int_equal(atomic_load(&dtor_calls), 1); /* the Deferred owned the value */
    mo_loop_free(loop);
}

static void test_defer_to_thread_failures(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct tc plain = tc_new(MO_EIO, 0, 0, 1), rich = tc_new(-1000, 0, 1, 1);
    struct tc mixed = tc_new(MO_EPERM, 1, 0, 1); /* a value with a failure code */
    mo_deferred_t *d1, *d2, *d3;
    atomic_store(&dtor_calls, 0);
    assert_ok(mo_deferred_call_on_pool(NULL, loop, thread_fn, &plain, &d1));
    assert_ok(mo_deferred_call_on_pool(NULL, loop, thread_fn, &rich, &d2));
    assert_ok(mo_deferred_call_on_pool(NULL, loop, thread_fn, &mixed, &d3));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    const mo_failure_t *f;
    assert_ok(mo_deferred_result(d1, NULL, &f));
    assert_mo(MO_EIO, mo_failure_code(f));
    assert_ok(mo_deferred_result(d2, NULL, &f));
    assert_mo(MO_EIO, mo_failure_code(f)); /* the failure fn stored wins */
    assert_string_equal(mo_failure_message(f), "disk on fire");
    assert_ok(mo_deferred_result(d3, NULL, &f));
    assert_mo(MO_EPERM, mo_failure_code(f));
    assert_int_equal(atomic_load(&dtor_calls), 1); /* the stray value was destroyed */
    mo_failure_t *taken;
    void *v;
    mo_dtor_fn dt;
    assert_ok(mo_deferred_take(d1, &v, &dt, &taken));
    mo_failure_unref(taken);
    assert_ok(mo_deferred_take(d2, &v, &dt, &taken));
    mo_failure_unref(taken);
    assert_ok(mo_deferred_take(d3, &v, &dt, &taken));
    mo_failure_unref(taken);
    mo_deferred_unref(d1);
    mo_deferred_unref(d2);
    mo_deferred_unref(d3);
    mo_loop_free(loop);
}

static void test_defer_to_thread_cancel_queued(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    mo_pool_t *pool;
    assert_ok(mo_pool_new(&pool, 1));
    struct tc blocker = tc_new(0, 0, 0, 0), queued = tc_new(0, 1, 0, 1);
    mo_deferred_t *d1, *d2;
    atomic_store(&dtor_calls, 0);
    assert_ok(mo_deferred_call_on_pool(pool, loop, thread_fn, &blocker, &d1));
    while (!atomic_load(&blocker.started)) sched_yield();
    assert_ok(mo_deferred_call_on_pool(pool, loop, thread_fn, &queued, &d2));
    assert_ok(mo_deferred_cancel(d2));
    const mo_failure_t *f;
    assert_ok(mo_deferred_result(d2, NULL, &f)); /* errbacked at once */
    assert_mo(MO_ECANCELED, mo_failure_code(f));
    atomic_store(&blocker.go, 1);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(atomic_load(&queued.ran), 0); /* never ran */
    assert_int_equal(atomic_load(&dtor_calls), 0);
    mo_failure_t *taken;
    void *v;
    mo_dtor_fn dt;
    assert_ok(mo_deferred_take(d2, &v, &dt, &taken));
    mo_failure_unref(taken);
    mo_deferred_unref(d1);
    mo_deferred_unref(d2);
    assert_ok(mo_pool_free(pool, 0));
    mo_loop_free(loop);
}

static void test_defer_to_thread_cancel_running(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct tc t = tc_new(0, 1, 0, 0);
    mo_deferred_t *d;
    atomic_store(&dtor_calls, 0);
    assert_ok(mo_deferred_call_on_pool(NULL, loop, thread_fn, &t, &d));
    while (!atomic_load(&t.started)) sched_yield();
    assert_ok(mo_deferred_cancel(d));
    const mo_failure_t *f;
    assert_ok(mo_deferred_result(d, NULL, &f));
    assert_mo(MO_ECANCELED, mo_failure_code(f));
    mo_failure_t *taken;
    void *v;
    mo_dtor_fn dt;
    assert_ok(mo_deferred_take(d, &v, &dt, &taken));
    mo_failure_unref(taken);
    mo_deferred_unref(d); /* the job keeps its own reference */
    atomic_store(&t.go, 1);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT)); /* holds until fn returned */
    assert_int_equal(atomic_load(&t.ran), 1);
    assert_int_equal(atomic_load(&dtor_calls), 1); /* its value was discarded */
    mo_loop_free(loop);
}

static void test_defer_to_thread_pool_cancel_queued(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    mo_pool_t *pool;
    assert_ok(mo_pool_new(&pool, 1));
    struct tc blocker = tc_new(0, 0, 0, 0), queued = tc_new(0, 0, 0, 1);
    mo_deferred_t *d1, *d2;
    assert_ok(mo_deferred_call_on_pool(pool, loop, thread_fn, &blocker, &d1));
    while (!atomic_load(&blocker.started)) sched_yield();
    assert_ok(mo_deferred_call_on_pool(pool, loop, thread_fn, &queued, &d2));
    struct free_thread ft = {pool, MO_POOL_CANCEL_QUEUED, -1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, free_main, &ft), 0);
    while (!mo__pool_closing(pool)) sched_yield();
    atomic_store(&blocker.go, 1);
    pthread_join(th, NULL);
    assert_ok(ft.err);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    const mo_failure_t *f;
    assert_ok(mo_deferred_result(d1, NULL, &f));
    assert_null(f);
    assert_ok(mo_deferred_result(d2, NULL, &f));
    assert_mo(MO_ECANCELED, mo_failure_code(f));
    assert_int_equal(atomic_load(&queued.ran), 0);
    mo_failure_t *taken;
    void *v;
    mo_dtor_fn dt;
    assert_ok(mo_deferred_take(d2, &v, &dt, &taken));
    mo_failure_unref(taken);
    mo_deferred_unref(d1);
    mo_deferred_unref(d2);
    mo_loop_free(loop);
}

static void test_defer_to_thread_bad_input(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct tc t = tc_new(0, 0, 0, 1);
    mo_deferred_t *d = NULL;
    assert_mo(MO_EINVAL, mo_deferred_call_on_pool(NULL, NULL, thread_fn, &t, &d));
    assert_mo(MO_EINVAL, mo_deferred_call_on_pool(NULL, loop, NULL, &t, &d));
    assert_mo(MO_EINVAL, mo_deferred_call_on_pool(NULL, loop, thread_fn, &t, NULL));
    assert_mo(MO_EINVAL, mo_deferred_call_on_pool(NULL, NULL, thread_fn, &t, &d));
    assert_ok(mo_loop_close(loop));
    assert_mo(MO_ESHUTDOWN, mo_deferred_call_on_pool(NULL, loop, thread_fn, &t, &d));
    assert_null(d);
    assert_int_equal(atomic_load(&t.ran), 0);
    mo_loop_free(loop);
}

static void later_noop(mo_result_t *r, void *arg)
{
    (void)r, (void)arg;
}

static void handled(mo_result_t *r, void *arg)
{
    (void)arg;
    mo_result_set(r, NULL, NULL);
}

/* Under lasting out-of-memory every done still runs and the loop ends.
 * Before the fix a worker retried posting its completion through
 * mo_call_from_thread() every millisecond, forever (its lane had no chunk
 * and none could be allocated), and mo_loop_run() never returned. */
static void test_lasting_out_of_memory_completes_every_job(void **state)
{
    (void)state;
    mo_test_alloc_install();
    alarm(60); /* a hang fails here rather than at ctest's timeout */
    mo_loop_t *loop = mo_test_loop();
    mo_pool_t *pool;
    assert_ok(mo_pool_new(&pool, 2));
    enum { N = 64 };
    struct job *j = jobs_new(N);
    for (int i = 0; i < N; i++)
        assert_ok(mo_pool_submit(pool, loop, &j[i].job, work_block, done_record, &j[i]));
    struct tc ok = tc_new(0, 0, 0, 0), bad = tc_new(MO_EIO, 0, 0, 0);
    mo_deferred_t *d_ok, *d_bad;
    assert_ok(mo_deferred_call_on_pool(pool, loop, thread_fn, &ok, &d_ok));
    assert_ok(mo_deferred_call_on_pool(pool, loop, thread_fn, &bad, &d_bad));
    mo_test_alloc_fail_at(1, 1); /* from here on, every allocation fails */
    for (int i = 0; i < N; i++) atomic_store(&j[i].go, 1);
    atomic_store(&ok.go, 1);
    atomic_store(&bad.go, 1);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    for (int i = 0; i < N; i++) assert_int_equal(j[i].done, 1);
    const mo_failure_t *f = NULL;
    assert_ok(mo_deferred_result(d_ok, NULL, &f));
    assert_null(f);
    assert_ok(mo_deferred_result(d_bad, NULL, &f));
    /* fn gave only a code; the failure made for it on the loop thread is
     * the shared out-of-memory one. */
    assert_int_equal(mo_failure_code(f), MO_ENOMEM);
    assert_true(mo_test_alloc_failed() > 0);
    mo_test_alloc_fail_at(0, 0);
    assert_ok(mo_deferred_add_errback(d_bad, handled, NULL));
    mo_deferred_unref(d_ok);
    mo_deferred_unref(d_bad);
    assert_ok(mo_pool_free(pool, 0));
    mo_loop_free(loop);
    free(j);
    alarm(0);
}

/* ---- allocation failure: every allocation in turn ---- */

struct oom_pool {
    struct job *jobs; /* calloc'd by the test, not through the seam */
    struct tc calls[4];
};

static void oom_done(mo_loop_t *loop, mo_pool_job_t *pj, int status, void *arg)
{
    done_record(loop, pj, status, arg);
}

/* Submits to a pool of its own past the queue's first growth, runs
 * Deferred calls on it and on the default pool (created here), runs the
 * loop, and checks that exactly what was accepted ran, once. Returns
 * MO_ENOMEM if any call said so, 0 if none did, MO_ENOTRECOVERABLE if
 * something else went wrong. */
static int pool_oom_scenario(void *arg)
{
    struct oom_pool *o = arg;
    enum { N = 1100 }; /* the queue starts with 1024 slots */
    memset(o->jobs, 0, N * sizeof(*o->jobs));
    mo_loop_t *loop;
    mo_pool_t *pool;
    int rc = mo_loop_new(&loop, 0), failed = 0;
    if (rc) return rc;
    if ((rc = mo_pool_new(&pool, 2)) != 0) {
        mo_loop_free(loop);
        return rc;
    }
    int accepted = 0;
    for (int i = 0; i < N; i++) {
        o->jobs[i].loop_thread = pthread_self();
        rc = mo_pool_submit(pool, loop, &o->jobs[i].job, work_count, oom_done, &o->jobs[i]);
        if (rc == MO_ENOMEM)
            failed = 1;
        else if (rc)
            return MO_ENOTRECOVERABLE;
        else
            accepted++;
    }
    mo_deferred_t *d[4] = {NULL};
    for (int i = 0; i < 4; i++) {
        o->calls[i] = tc_new(0, 0, 0, 1);
        rc = mo_deferred_call_on_pool(i < 2 ? pool : NULL, loop, thread_fn, &o->calls[i], &d[i]);
        if (rc == MO_ENOMEM)
            failed = 1, d[i] = NULL;
        else if (rc)
            return MO_ENOTRECOVERABLE;
    }
    if (mo_loop_run(loop, MO_RUN_DEFAULT) != 0) return MO_ENOTRECOVERABLE;
    int ran = 0;
    for (int i = 0; i < N; i++) {
        if (o->jobs[i].done > 1 || atomic_load(&o->jobs[i].worked) != o->jobs[i].done)
            return MO_ENOTRECOVERABLE;
        ran += o->jobs[i].done;
    }
    if (ran != accepted) return MO_ENOTRECOVERABLE; /* half-done: a job lost or run twice */
    for (int i = 0; i < 4; i++) {
        const mo_failure_t *f = NULL;
        if (atomic_load(&o->calls[i].ran) != (d[i] != NULL)) return MO_ENOTRECOVERABLE;
        if (!d[i]) continue;
        if (mo_deferred_result(d[i], NULL, &f) != 0 || f) return MO_ENOTRECOVERABLE;
        mo_deferred_unref(d[i]);
    }
    if (mo_pool_free(pool, 0) != 0) return MO_ENOTRECOVERABLE;
    mo_loop_free(loop);
    return failed ? MO_ENOMEM : 0;
}

static void test_out_of_memory_each_allocation_in_turn(void **state)
{
    (void)state;
    mo_test_alloc_install();
    struct oom_pool o = {.jobs = calloc(1100, sizeof(struct job))};
    assert_non_null(o.jobs);
    long n = mo_test_oom_sweep(pool_oom_scenario, &o, 5);
    printf("pool and Deferred calls: %ld allocations, each failed in turn\n", n);
    free(o.jobs);
}

/* ---- the system refuses threads: MO_EAGAIN ---- */

static int offload_or_fail(mo_task_t *task, void *arg)
{
    return mo_task_offload(task, thread_fn, arg); /* an error fails the task */
}

static int coro_offload_rc(mo_coro_t *co, void *arg)
{
    int *rc = arg;
    *rc = mo_coro_offload(co, thread_fn, NULL, NULL, NULL);
    return 0;
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) return __LINE__ % 256 ? __LINE__ % 256 : 1;                                   \
    } while (0)

/* In a child where no thread can be created: everything that starts one
 * says MO_EAGAIN and leaves nothing behind. */
static int without_threads(void *arg)
{
    (void)arg;
    mo_test_refuse_threads();
    mo_pool_t *pool = NULL;
    CHECK(mo_pool_new(&pool, 2) == MO_EAGAIN && !pool);
    CHECK(mo_pool_new_with(&pool, &(struct mo_pool_opts){.priority = MO_POOL_PRIORITY_IDLE}) ==
              MO_EAGAIN &&
          !pool);
    mo_loop_t *loop;
    CHECK(mo_loop_new(&loop, 0) == 0);
    CHECK(mo_loop_pool(loop, &pool) == MO_EAGAIN);
    mo_deferred_t *d = NULL;
    struct tc t = tc_new(0, 0, 0, 1);
    CHECK(mo_deferred_call_on_pool(NULL, loop, thread_fn, &t, &d) == MO_EAGAIN && !d);
    mo_pool_job_t job = {0};
    CHECK(mo_pool_submit(NULL, loop, &job, work_count, done_record, NULL) == MO_EAGAIN);
    mo_task_t *task;
    CHECK(mo_cooperate(loop, offload_or_fail, &t, NULL, &task) == 0);
    int coro_rc = 0;
    CHECK(mo_coro_spawn(loop, coro_offload_rc, &coro_rc, NULL, NULL) == 0);
    CHECK(mo_loop_run(loop, MO_RUN_DEFAULT) == 0);
    d = mo_task_deferred(task);
    const mo_failure_t *f = NULL;
    CHECK(mo_deferred_result(d, NULL, &f) == 0 && mo_failure_code(f) == MO_EAGAIN);
    CHECK(coro_rc == MO_EAGAIN);
    CHECK(atomic_load(&t.ran) == 0);
    mo_failure_t *taken = NULL; /* handled: taken, and released */
    mo_deferred_take(d, &(void *){0}, &(mo_dtor_fn){0}, &taken);
    mo_failure_unref(taken);
    mo_deferred_unref(d);
    mo_task_release(task);
    mo_loop_free(loop);
    return 0;
}

static void test_thread_creation_refused(void **state)
{
    (void)state;
    assert_int_equal(mo_test_child(without_threads, NULL), 0);
}

/* mo_loop_pool() on a closed loop that never had a default pool. */
static void test_loop_pool_after_close(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    assert_ok(mo_loop_close(loop));
    mo_pool_t *pool = NULL;
    assert_mo(MO_ESHUTDOWN, mo_loop_pool(loop, &pool));
    assert_null(pool);
    mo_loop_free(loop);
}

/* The names renamed in this release still work, for one release. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static void test_deprecated_names_still_work(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct tc t = tc_new(0, 0, 0, 1);
    mo_deferred_t *d[5] = {NULL};
    assert_ok(mo_defer_to_thread(loop, thread_fn, &t, &d[0]));
    assert_ok(mo_pool_defer(NULL, loop, thread_fn, &t, &d[1]));
    assert_ok(mo_defer_succeed(loop, NULL, NULL, &d[2]));
    assert_ok(mo_defer_fail(loop, mo_failure_new(MO_EIO, "old", NULL), &d[3]));
    assert_ok(mo_defer_later(loop, 0, later_noop, NULL, &d[4]));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    for (int i = 0; i < 5; i++) {
        const mo_failure_t *f = NULL;
        assert_ok(mo_deferred_result(d[i], NULL, &f));
        assert_int_equal(mo_failure_code(f), i == 3 ? MO_EIO : 0);
        if (f) assert_ok(mo_deferred_add_errback(d[i], handled, NULL));
        mo_deferred_unref(d[i]);
    }
    mo_loop_free(loop);
}
#pragma GCC diagnostic pop

MO_TEST_MAIN(cmocka_unit_test(test_new_free_bad_input), cmocka_unit_test(test_pool_priorities),
             cmocka_unit_test(test_jobs_run_on_workers_done_on_loop),
             cmocka_unit_test(test_submit_bad_input), cmocka_unit_test(test_submit_during_shutdown),
             cmocka_unit_test(test_cancel_queued_and_running),
             cmocka_unit_test(test_free_finishes_queued_jobs),
             cmocka_unit_test(test_free_cancel_queued_reports_them),
             cmocka_unit_test(test_free_from_worker_is_refused),
             cmocka_unit_test(test_default_pool_lazy_and_freed_with_loop),
             cmocka_unit_test(test_loop_free_waits_for_jobs_on_own_pool),
             cmocka_unit_test(test_resubmit_from_done),
             cmocka_unit_test(test_pool_shared_by_loops_on_threads),
             cmocka_unit_test(test_defer_to_thread_value),
             cmocka_unit_test(test_defer_to_thread_failures),
             cmocka_unit_test(test_defer_to_thread_cancel_queued),
             cmocka_unit_test(test_defer_to_thread_cancel_running),
             cmocka_unit_test(test_defer_to_thread_pool_cancel_queued),
             cmocka_unit_test(test_defer_to_thread_bad_input),
             cmocka_unit_test(test_pool_is_work_conserving),
             cmocka_unit_test(test_deprecated_names_still_work),
             cmocka_unit_test(test_lasting_out_of_memory_completes_every_job),
             cmocka_unit_test(test_out_of_memory_each_allocation_in_turn),
             cmocka_unit_test(test_thread_creation_refused),
             cmocka_unit_test(test_loop_pool_after_close))
