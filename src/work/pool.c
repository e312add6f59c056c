/* The worker pool: jobs run on worker threads, their completions run on
 * the loop thread that submitted them.
 *
 * Invariants of a pool, all under `lock`:
 * - The queue is a power-of-two ring of job pointers between the free-running
 *   counters `head` and `tail`. A slot is NULL when its job was cancelled
 *   (a tombstone); workers skip those. A queued job's `pos_` is its absolute
 *   position, which survives the ring growing.
 * - A job is IDLE (not the pool's), QUEUED (in the ring), or TAKEN (a worker
 *   owns it until it posts it back to the loop, whose completion callback
 *   makes it IDLE again before calling done).
 * - A worker is running, spinning (at most one: `spinning`), or asleep on its
 *   own futex word and linked in the `idle` stack. While the queue is not
 *   empty, some worker is running or has been woken: a worker goes idle only
 *   after seeing the queue empty under the lock, and whoever makes the queue
 *   non-empty (a submitter) or leaves jobs behind (a worker taking a batch)
 *   kicks the spinner or wakes a sleeper. So a submit onto a non-empty queue
 *   needs nothing but the lock: no fence, no system call.
 *
 * Workers take cheap jobs in batches sized by how long the previous batch's
 * jobs took: 2, 4, ... up to MO__POOL_BATCH at a time; a job of microseconds
 * or more goes alone, so the jobs behind a long one stay queued (and
 * cancellable). A worker never takes more than its share of the queue, and
 * wakes another worker when it leaves jobs behind, whatever its history says
 * about their cost: the pool is work-conserving. It posts a batch's
 * completions as one call per loop.
 */
#include "work/work_int.h"

#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <unistd.h>

#define MO__POOL_RING_INITIAL 1024
#define MO__POOL_BATCH        256
#define MO__POOL_SPIN_NS      MO_USEC(50)
#define MO__POOL_CHEAP_NS     MO_USEC(2)

enum { JOB_IDLE = 0, JOB_QUEUED = 1, JOB_TAKEN = 2 };

_Static_assert(sizeof(uintptr_t) == sizeof(mo_pool_job_t *), "the ring is sized in uintptr_t");
_Static_assert(sizeof(mo_pool_job_t) <= MO__CACHELINE, "a job is one cache line (bench_pool)");

struct mo__worker {
    _Alignas(MO__CACHELINE) _Atomic uint32_t awake; /* futex word: 0 asleep, 1 woken */
    struct mo__worker *next_idle;
    struct mo_pool *pool;
    pthread_t thread;
};

struct mo_pool {
    /* Under lock. */
    _Alignas(MO__CACHELINE) atomic_int lock;
    mo_pool_job_t **ring;
    uint64_t mask;
    uint64_t head;
    uint64_t tail;
    struct mo__worker *idle; /* sleeping workers */
    bool spinning;
    atomic_bool closing; /* written under lock; read without by tests */
    /* Read without the lock. */
    _Alignas(MO__CACHELINE) atomic_int kick; /* the spinner watches this line only */
    _Alignas(MO__CACHELINE) atomic_bool cancel_queued;
    unsigned nthreads; /* set before any worker starts */
    int priority;      /* enum mo_pool_priority, set before any worker starts */
    unsigned nstarted;
    struct mo__worker *workers;
};

static void pool_lock(struct mo_pool *p)
{
    for (unsigned spins = 0;; spins++) {
        if (!atomic_exchange_explicit(&p->lock, 1, memory_order_acquire)) return;
        while (atomic_load_explicit(&p->lock, memory_order_relaxed))
            if (++spins > 64) sched_yield();
    }
}

static void pool_unlock(struct mo_pool *p)
{
    atomic_store_explicit(&p->lock, 0, memory_order_release);
}

/* One step of a bounded spin: true once `until` has passed. The first
 * steps only pause; later ones yield the CPU, so that on a machine with
 * more runnable threads than cores the thread we wait for (a worker, or
 * the loop) gets to run instead of being starved by our spinning. */
static bool spin_step(unsigned i, int64_t until)
{
    if (i < MO__SPIN_PAUSES) {
        mo__cpu_relax();
        return false;
    }
    sched_yield();
    return mo_hrtime() > until;
}

/* ---- sleeping and waking ---- */

static void futex_wait(_Atomic uint32_t *word, uint32_t seen)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *word)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Under lock, when jobs wait: kicks the spinner, or picks a sleeper for
 * wake_worker() to wake once the lock is released. */
static struct mo__worker *need_worker(struct mo_pool *p)
{
    if (p->spinning) {
        if (!atomic_load_explicit(&p->kick, memory_order_relaxed))
            atomic_store_explicit(&p->kick, 1, memory_order_relaxed);
        return NULL;
    }
    struct mo__worker *w = p->idle;
    if (w) p->idle = w->next_idle;
    return w;
}

static void wake_worker(struct mo__worker *w)
{
    if (!w) return;
    atomic_store_explicit(&w->awake, 1, memory_order_release);
    futex_wake(&w->awake);
}

/* Under lock, the queue empty: spins once (if no one else does), else
 * sleeps until woken. Returns with the lock held. */
static void idle_wait(struct mo_pool *p, struct mo__worker *self, bool *spun)
{
    if (!p->spinning && !*spun) {
        p->spinning = true;
        *spun = true;
        atomic_store_explicit(&p->kick, 0, memory_order_relaxed);
        pool_unlock(p);
        int64_t until = mo_hrtime() + MO__POOL_SPIN_NS;
        for (unsigned i = 1; !atomic_load_explicit(&p->kick, memory_order_relaxed); i++)
            if (spin_step(i, until)) break;
        pool_lock(p);
        p->spinning = false;
        return;
    }
    *spun = false;
    atomic_store_explicit(&self->awake, 0, memory_order_relaxed);
    self->next_idle = p->idle;
    p->idle = self;
    pool_unlock(p);
    while (!atomic_load_explicit(&self->awake, memory_order_acquire)) futex_wait(&self->awake, 0);
    pool_lock(p);
}

/* ---- the queue ---- */

static int ring_grow(struct mo_pool *p)
{
    uint64_t cap = (p->mask + 1) * 2;
    if (cap > SIZE_MAX / sizeof(uintptr_t)) return MO_ENOMEM;
    mo_pool_job_t **ring = mo__malloc(cap * sizeof(uintptr_t)); /* pointers */
    if (!ring) return MO_ENOMEM;
    for (uint64_t i = p->head; i != p->tail; i++) ring[i & (cap - 1)] = p->ring[i & p->mask];
    mo__free(p->ring);
    p->ring = ring;
    p->mask = cap - 1;
    return 0;
}

/* Under lock: appends a job. */
static int ring_push(struct mo_pool *p, mo_pool_job_t *job)
{
    if (p->tail - p->head > p->mask && ring_grow(p) != 0) return MO_ENOMEM;
    p->ring[p->tail & p->mask] = job;
    job->u_.run_.pos_ = p->tail++;
    job->state_ = JOB_QUEUED;
    return 0;
}

/* Under lock: takes up to `want` jobs, no more than this worker's share. */
static unsigned ring_take(struct mo_pool *p, mo_pool_job_t **out, unsigned want)
{
    uint64_t share = (p->tail - p->head + p->nthreads - 1) / p->nthreads;
    if (want > share) want = (unsigned)share;
    unsigned n = 0;
    while (p->head != p->tail && n < want) {
        mo_pool_job_t *job = p->ring[p->head++ & p->mask];
        if (!job) continue; /* cancelled */
        job->state_ = JOB_TAKEN;
        out[n++] = job;
    }
    return n;
}

/* ---- the workers ---- */

/* On the loop thread: a batch's completions, linked through next_ from the
 * job whose post node is `arg`. */
static void jobs_done(mo_loop_t *loop, void *arg)
{
    mo_pool_job_t *next;
    for (mo_pool_job_t *job = mo__container_of(arg, mo_pool_job_t, u_.post_); job; job = next) {
        next = job->next_;
        mo_pool_done_fn done = job->done_;
        job->state_ = JOB_IDLE;
        job->pool_ = NULL;
        job->next_ = NULL;
        mo__loop_expect(loop, -1);
        mo__dispatch_publish(loop, MO__FN(done));
        done(loop, job, job->status_, job->arg_);
    }
}

/* Posts a batch, one call per run of jobs of the same loop. */
static void post_batch(mo_pool_job_t **batch, unsigned n)
{
    for (unsigned i = 0; i < n;) {
        unsigned j = i;
        while (j + 1 < n && batch[j + 1]->loop_ == batch[i]->loop_) {
            batch[j]->next_ = batch[j + 1];
            j++;
        }
        batch[j]->next_ = NULL;
        /* Through the first job's own node: a completion needs no memory,
         * so it reaches the loop even when none is left (the loop, which
         * expects it, cannot close before). */
        mo__post_from_thread(batch[i]->loop_, &batch[i]->u_.post_, jobs_done);
        i = j + 1;
    }
}

/* Takes the next batch, waiting for one; 0 when the pool is closing and
 * its queue is empty. */
static unsigned worker_take(struct mo__worker *self, mo_pool_job_t **batch, unsigned want)
{
    struct mo_pool *p = self->pool;
    bool spun = false;
    pool_lock(p);
    for (;;) {
        unsigned n = ring_take(p, batch, want);
        if (n) {
            /* Jobs left behind: another worker should see to them. */
            struct mo__worker *w = p->head != p->tail ? need_worker(p) : NULL;
            pool_unlock(p);
            wake_worker(w);
            return n;
        }
        if (atomic_load_explicit(&p->closing, memory_order_relaxed)) {
            pool_unlock(p);
            return 0;
        }
        idle_wait(p, self, &spun);
    }
}

static void run_batch(struct mo_pool *p, mo_pool_job_t **batch, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        mo_pool_job_t *job = batch[i];
        if (atomic_load_explicit(&p->cancel_queued, memory_order_relaxed)) {
            job->status_ = MO_ECANCELED;
            continue;
        }
        job->status_ = 0;
        job->u_.run_.work_(job, job->arg_);
    }
}

/* How far below its creator a LOW worker runs. */
#define MO__POOL_LOW_NICE 10

/* The worker lowers its own priority (pool.h); best effort: without the
 * right to change it the pool still works. On Linux the nice value is per
 * thread, and a new thread starts with its creator's. */
static void worker_set_priority(int priority)
{
    if (priority == MO_POOL_PRIORITY_IDLE &&
        pthread_setschedparam(pthread_self(), SCHED_IDLE, &(struct sched_param){0}) == 0)
        return;
    if (priority == MO_POOL_PRIORITY_NORMAL) return;
    id_t tid = (id_t)gettid();
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, tid);
    if (nice == -1 && errno) return;
    nice = nice + MO__POOL_LOW_NICE > 19 ? 19 : nice + MO__POOL_LOW_NICE;
    (void)setpriority(PRIO_PROCESS, tid, nice);
}

static void *worker_main(void *arg)
{
    struct mo__worker *self = arg;
    struct mo_pool *p = self->pool;
    worker_set_priority(p->priority);
    mo_pool_job_t *batch[MO__POOL_BATCH];
    unsigned want = 1, n;
    while ((n = worker_take(self, batch, want)) != 0) {
        int64_t start = mo_hrtime();
        run_batch(p, batch, n);
        int64_t per_job = (mo_hrtime() - start) / n;
        post_batch(batch, n);
        if (per_job >= MO__POOL_CHEAP_NS)
            want = 1;
        else if (want < MO__POOL_BATCH)
            want *= 2;
    }
    return NULL;
}

/* ---- creating and freeing ---- */

/* The pool and its workers have cache-line-aligned members; the allocation
 * seam promises only malloc's alignment, so align by hand (as loop.c does)
 * and keep the raw pointer just before the block. */
static void *aligned_zalloc(size_t size)
{
    void *raw = mo__calloc(1, size + MO__CACHELINE);
    if (!raw) return NULL;
    void **block = (void **)(((uintptr_t)raw + MO__CACHELINE) & ~(uintptr_t)(MO__CACHELINE - 1));
    block[-1] = raw;
    return block;
}

static void aligned_free(void *block)
{
    if (block) mo__free(((void **)block)[-1]);
}

unsigned mo_pool_default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MO_POOL_MAX_THREADS ? MO_POOL_MAX_THREADS : (unsigned)n;
}

unsigned mo_pool_threads(const mo_pool_t *pool)
{
    return pool ? pool->nthreads : 0;
}

/* Workers block every signal: signals are the application's threads'. */
static int start_workers(struct mo_pool *p)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = 0;
    for (; p->nstarted < p->nthreads; p->nstarted++) {
        struct mo__worker *w = &p->workers[p->nstarted];
        w->pool = p;
        if ((err = pthread_create(&w->thread, NULL, worker_main, w)) != 0) break;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return err == 0 ? 0 : err == ENOMEM ? MO_ENOMEM : MO_EAGAIN;
}

static void pool_destroy(struct mo_pool *p)
{
    aligned_free(p->workers);
    mo__free(p->ring);
    aligned_free(p);
}

static void stop_workers(struct mo_pool *p)
{
    pool_lock(p);
    atomic_store_explicit(&p->closing, true, memory_order_relaxed);
    atomic_store_explicit(&p->kick, 1, memory_order_relaxed);
    struct mo__worker *sleepers = p->idle;
    p->idle = NULL;
    pool_unlock(p);
    for (struct mo__worker *w = sleepers, *next; w; w = next) {
        next = w->next_idle;
        wake_worker(w);
    }
    for (unsigned i = 0; i < p->nstarted; i++) pthread_join(p->workers[i].thread, NULL);
}

static int pool_create(mo_pool_t **poolp, unsigned nthreads, int priority)
{
    if (!poolp || nthreads == 0 || nthreads > MO_POOL_MAX_THREADS) return MO_EINVAL;
    if (priority < MO_POOL_PRIORITY_NORMAL || priority > MO_POOL_PRIORITY_IDLE) return MO_EINVAL;
    struct mo_pool *p = aligned_zalloc(sizeof(*p));
    if (!p) return MO_ENOMEM;
    p->priority = priority;
    p->ring = mo__malloc(MO__POOL_RING_INITIAL * sizeof(uintptr_t)); /* pointers */
    p->workers = aligned_zalloc(nthreads * sizeof(*p->workers));
    if (!p->ring || !p->workers) {
        pool_destroy(p);
        return MO_ENOMEM;
    }
    p->mask = MO__POOL_RING_INITIAL - 1;
    p->nthreads = nthreads;
    int err = start_workers(p);
    if (err) {
        stop_workers(p);
        pool_destroy(p);
        return err;
    }
    *poolp = p;
    return 0;
}

static bool on_worker(const struct mo_pool *p)
{
    for (unsigned i = 0; i < p->nstarted; i++)
        if (pthread_equal(p->workers[i].thread, pthread_self())) return true;
    return false;
}

int mo_pool_free(mo_pool_t *pool, unsigned flags)
{
    if (!pool || (flags & ~(unsigned)MO_POOL_CANCEL_QUEUED)) return MO_EINVAL;
    if (on_worker(pool)) return MO_EDEADLK;
    if (flags & MO_POOL_CANCEL_QUEUED)
        atomic_store_explicit(&pool->cancel_queued, true, memory_order_relaxed);
    stop_workers(pool);
    pool_destroy(pool);
    return 0;
}

int mo_pool_new(mo_pool_t **poolp, unsigned nthreads)
{
    return pool_create(poolp, nthreads, MO_POOL_PRIORITY_NORMAL);
}

int mo_pool_new_with(mo_pool_t **poolp, const struct mo_pool_opts *opts)
{
    struct mo_pool_opts o = opts ? *opts : (struct mo_pool_opts){0};
    return pool_create(poolp, o.threads ? o.threads : mo_pool_default_threads(), o.priority);
}

/* The default pool serves one loop whose responsiveness is the point, so
 * its workers run below the loop thread's priority: with CPU-bound pieces
 * on every core, the loop gets a core back when it wakes instead of
 * queueing behind them (offloaded 20 ms pieces: heartbeat p99 3 ms at
 * equal priority). LOW, not IDLE: the default pool must not starve when
 * the machine is busy with other work. */

static const struct mo__hooks default_pool_hooks;

/* mo_loop_close() frees the default pool, finishing its jobs: their
 * completions are posted before calls from threads are refused. */
static void default_pool_close(mo_loop_t *loop, void *state)
{
    mo__loop_detach(loop, &default_pool_hooks);
    mo_pool_free(state, 0);
}

static const struct mo__hooks default_pool_hooks = {"default pool", 2, default_pool_close, NULL};

int mo_loop_pool(mo_loop_t *loop, mo_pool_t **poolp)
{
    if (!loop || !poolp) return MO_EINVAL;
    mo_pool_t *pool = mo__loop_state(loop, &default_pool_hooks);
    if (!pool) {
        if (loop->closed) return MO_ESHUTDOWN;
        int err = pool_create(&pool, mo_pool_default_threads(), MO_POOL_PRIORITY_LOW);
        if (err) return err;
        if ((err = mo__loop_attach(loop, &default_pool_hooks, pool)) != 0) {
            mo_pool_free(pool, 0);
            return err;
        }
    }
    *poolp = pool;
    return 0;
}

/* ---- submitting and cancelling ---- */

int mo_pool_submit(mo_pool_t *pool, mo_loop_t *loop, mo_pool_job_t *job, mo_pool_work_fn work,
                   mo_pool_done_fn done, void *arg)
{
    if (!loop || !job || !work || !done) return MO_EINVAL;
    if (loop->closed) return MO_ESHUTDOWN;
    if (job->pool_) return MO_EBUSY; /* only this thread sets and clears it */
    int err = pool ? 0 : mo_loop_pool(loop, &pool);
    if (err) return err;
    job->loop_ = loop;
    job->u_.run_.work_ = work;
    job->done_ = done;
    job->arg_ = arg;
    struct mo__worker *w = NULL;
    pool_lock(pool);
    if (atomic_load_explicit(&pool->closing, memory_order_relaxed)) {
        err = MO_ESHUTDOWN;
    } else if ((err = ring_push(pool, job)) == 0) {
        job->pool_ = pool;
        if (pool->tail - pool->head == 1) w = need_worker(pool);
    }
    pool_unlock(pool);
    if (err) return err;
    wake_worker(w);
    mo__loop_expect(loop, 1);
    return 0;
}

int mo_pool_cancel(mo_pool_job_t *job)
{
    if (!job) return MO_EINVAL;
    struct mo_pool *p = job->pool_;
    if (!p) return MO_EALREADY;
    pool_lock(p);
    int state = job->state_;
    if (state == JOB_QUEUED) {
        p->ring[job->u_.run_.pos_ & p->mask] = NULL;
        job->state_ = JOB_IDLE;
        job->pool_ = NULL;
    }
    pool_unlock(p);
    if (state != JOB_QUEUED) return state == JOB_TAKEN ? MO_EBUSY : MO_EALREADY;
    mo__loop_expect(job->loop_, -1);
    return 0;
}

bool mo__pool_closing(mo_pool_t *pool)
{
    return atomic_load_explicit(&pool->closing, memory_order_acquire) ||
           atomic_load_explicit(&pool->cancel_queued, memory_order_acquire);
}
