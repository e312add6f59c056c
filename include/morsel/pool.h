/* morsel — the worker pool: run work that cannot be cut into pieces (one
 * huge multiplication, a blocking system call) on other threads, and get
 * the result back on the loop thread.
 *
 * A pool is a set of worker threads and one queue of jobs. Any number of
 * loops may share one pool; each loop also has a default pool, created on
 * first use (mo_loop_pool()) with one worker per online CPU and freed by
 * mo_loop_free().
 *
 * A job's life: mo_pool_submit() queues it from a loop thread; a worker runs
 * work(job, arg); then done(loop, job, status, arg) runs on that loop's
 * thread, posted like mo_call_from_thread() (after the calls work() posted
 * with it) but through a node inside the job: handing a job back needs no
 * memory, so under lasting out-of-memory every done still runs and the
 * loop still ends. While a loop has jobs outstanding it holds itself alive
 * (mo_loop_run() does not return for lack of work).
 * Workers take cheap jobs in batches and hand their completions back in
 * batches, so a burst of tiny jobs costs a few atomic operations per batch,
 * not per job; a job that runs long is taken alone, so the jobs behind it
 * stay queued (and cancellable) until a worker is free for them.
 *
 * Idle workers spin briefly (bounded, one worker at a time) before sleeping
 * on a futex, and a loop that waits only for its jobs spins briefly before
 * it sleeps in epoll: a job that completes within that window costs no
 * system call on either side. An idle pool uses no CPU.
 */
#ifndef MORSEL_POOL_H
#define MORSEL_POOL_H

#include "deferred.h"
#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mo_pool mo_pool_t;
typedef struct mo_pool_job mo_pool_job_t;

/* Runs on a worker thread. It must not touch the loop (other than through
 * mo_call_from_thread()); the job and arg are its own until it returns. */
typedef void (*mo_pool_work_fn)(mo_pool_job_t *job, void *arg);

/* Runs on the loop thread once the job is over. status is 0 when work ran,
 * or MO_ECANCELED when the pool was freed with MO_POOL_CANCEL_QUEUED before
 * a worker took the job (work did not run). From the start of this call the
 * job's memory belongs to the caller again: done may free it or submit it
 * anew. */
typedef void (*mo_pool_done_fn)(mo_loop_t *loop, mo_pool_job_t *job, int status, void *arg);

/* A job, allocated by the caller (embed it in your own struct and use
 * container_of, or pass arg). Its fields are private. Zero it before its
 * first submission (`mo_pool_job_t job = {0};`, calloc): a job whose done
 * has run, or that was cancelled, is zero-ready again. It must stay valid
 * and untouched from mo_pool_submit() until done runs, or until
 * mo_pool_cancel() returns 0. */
struct mo_pool_job {
    struct mo_pool_job *next_; /* completion list */
    mo_loop_t *loop_;
    mo_pool_done_fn done_;
    void *arg_;
    struct mo_pool *pool_;
    int state_;
    int status_;
    union { /* one cache line in all */
        struct {
            mo_pool_work_fn work_;
            uint64_t pos_;     /* position in the pool's queue while queued */
        } run_;                /* until work has run */
        struct mo_post_ post_; /* then: hands the job back, no allocation */
    } u_;
};

/* Limits on the number of worker threads of one pool. */
#define MO_POOL_MAX_THREADS 1024

/* Creates a pool of `nthreads` workers (1 to MO_POOL_MAX_THREADS; see
 * mo_pool_default_threads()) at the creating thread's priority
 * (MO_POOL_PRIORITY_NORMAL; mo_pool_new_with() chooses another) and stores
 * it in *poolp. The caller owns it and
 * frees it with mo_pool_free(), before or after the loops using it: a loop
 * freed first waits in mo_loop_close() for its jobs on this pool, so none
 * completes into a freed loop.
 * Errors: MO_EINVAL (NULL poolp, nthreads 0 or above MO_POOL_MAX_THREADS),
 * MO_ENOMEM, MO_EAGAIN (the system refused to create a thread; no pool is
 * created). Any thread. */
MO_EXTERN int mo_pool_new(mo_pool_t **poolp, unsigned nthreads);

/* How a pool's workers are scheduled relative to the thread that creates
 * the pool (whose priority and policy new threads inherit). */
enum mo_pool_priority {
    /* As the creating thread: jobs compete with the loop for the CPU. */
    MO_POOL_PRIORITY_NORMAL = 0,
    /* Nice value 10 above the creating thread's (capped at 19): when the
     * loop wakes with every core busy, the scheduler favours it, though a
     * worker may still finish its time slice first (milliseconds). The
     * loop's default pool (mo_loop_pool()) runs at this priority. */
    MO_POOL_PRIORITY_LOW = 1,
    /* SCHED_IDLE: the workers get only the CPU time nobody else wants, so a
     * loop thread that wakes runs at once (a 1 ms heartbeat with CPU-bound
     * pieces on every core: p99 2.0 ms at LOW, 0.24 ms at IDLE, on 2
     * cores). The price: on a machine busy with other work the jobs may
     * wait a long time. Falls back to LOW if the system refuses the policy. */
    MO_POOL_PRIORITY_IDLE = 2
};

/* Options of mo_pool_new_with(); NULL options mean all defaults (zeroes). */
struct mo_pool_opts {
    unsigned threads; /* workers, up to MO_POOL_MAX_THREADS; 0: mo_pool_default_threads() */
    int priority;     /* an enum mo_pool_priority; 0: MO_POOL_PRIORITY_NORMAL */
};

/* mo_pool_new() with options: the number of workers and their priority.
 * Each worker sets its priority itself when it starts (best effort: a
 * refused change leaves it as the creator's, or LOW for a refused IDLE).
 * Errors: MO_EINVAL (NULL poolp, threads above MO_POOL_MAX_THREADS, an
 * unknown priority), MO_ENOMEM, MO_EAGAIN (as mo_pool_new()). Any thread. */
MO_EXTERN int mo_pool_new_with(mo_pool_t **poolp, const struct mo_pool_opts *opts);

/* The number of online CPUs (at least 1): the default pool's size. */
MO_EXTERN unsigned mo_pool_default_threads(void);

/* The number of workers of a pool, or 0 for NULL. Any thread. */
MO_EXTERN unsigned mo_pool_threads(const mo_pool_t *pool);

enum mo_pool_free_flags {
    /* Jobs no worker has taken yet do not run: their done runs with
     * MO_ECANCELED instead. Without it, mo_pool_free() lets every queued job
     * run first. */
    MO_POOL_CANCEL_QUEUED = 1
};

/* Shuts the pool down and frees it: further mo_pool_submit() calls return
 * MO_ESHUTDOWN. Jobs in flight: queued jobs run (or, with
 * MO_POOL_CANCEL_QUEUED, are cancelled: their done gets MO_ECANCELED);
 * running jobs finish; the workers are joined. Every job's done is then
 * posted to its loop and runs there, on the loop's thread, in its next
 * iteration (or in mo_loop_close()/mo_loop_free()): none is dropped, and
 * none runs here. (A loop cannot close while it
 * has jobs out: mo_loop_close() waits for them.) Blocks until
 * running jobs return. Returns 0, MO_EINVAL (NULL or unknown flags), or
 * MO_EDEADLK (called from one of the pool's own workers: nothing is done).
 * Any thread but the pool's workers. */
MO_EXTERN int mo_pool_free(mo_pool_t *pool, unsigned flags);

/* The loop's default pool, created on the first call with
 * mo_pool_default_threads() workers; mo_loop_close(), and so mo_loop_free(),
 * frees it, finishing its jobs first (and waits for the loop's jobs on
 * other pools too). Its workers run at MO_POOL_PRIORITY_LOW, below the
 * loop thread, so that CPU-bound jobs on every core do not delay the loop
 * much; for IDLE, submit to a pool of your own (mo_pool_new_with()).
 * Stores it in *poolp.
 * Errors: MO_EINVAL (NULL argument), MO_ENOMEM, MO_EAGAIN (no thread could be created),
 * MO_ESHUTDOWN (the loop is closed and has no default pool). Loop
 * thread. */
MO_EXTERN int mo_loop_pool(mo_loop_t *loop, mo_pool_t **poolp);

/* Queues a job: a worker runs work(job, arg), then done(loop, job, status,
 * arg) runs on `loop`'s thread. pool NULL means the loop's default pool.
 * The loop stays alive until done has run. No allocation unless the queue
 * must grow. Errors (done will not run): MO_EINVAL (NULL loop, job, work or
 * done), MO_EBUSY (the job is already queued or running), MO_ESHUTDOWN (the
 * pool is being freed, or the loop is closed), MO_ENOMEM, MO_EAGAIN (the
 * default pool could not start). Loop thread of `loop`. */
MO_EXTERN int mo_pool_submit(mo_pool_t *pool, mo_loop_t *loop, mo_pool_job_t *job,
                             mo_pool_work_fn work, mo_pool_done_fn done, void *arg);

/* Takes a queued job back before any worker has taken it: work and done
 * will not run, and the job's memory is the caller's again at once.
 * Errors: MO_EINVAL (NULL), MO_EBUSY (a worker has taken it: it runs, and
 * done runs as usual), MO_EALREADY (not queued: never submitted, done
 * already ran, or already cancelled). Loop thread of the job's loop. */
MO_EXTERN int mo_pool_cancel(mo_pool_job_t *job);

/* ---- Deferreds from worker threads (Twisted's deferToThread) ---- */

/* Work for mo_deferred_call_on_pool(), run on a worker thread; it must not touch
 * the loop. To succeed, return 0, optionally storing a result in *valuep
 * and its destructor in *dtorp (both start NULL): the Deferred then owns
 * the value. To fail, return a non-zero code (a negative MO_E* or an
 * application code), optionally storing a failure in *failurep
 * (mo_failure_new() works on any thread; the Deferred takes that
 * reference): the Deferred errbacks with it, or with a failure of that code
 * if none was stored. What the function stores on the other path (a value
 * with a failure code, a failure with 0) is destroyed. */
typedef int (*mo_thread_fn)(void *arg, void **valuep, mo_dtor_fn *dtorp, mo_failure_t **failurep);

/* Calls fn(arg, ...) on a worker of `pool` (NULL: the loop's default pool,
 * see mo_loop_pool()) and gives its outcome as a Deferred (Twisted's
 * deferToThread): stores in *dp a Deferred, with one reference for the
 * caller, that fires on the loop thread with fn's value or failure.
 * Cancelling the Deferred (mo_deferred_cancel) before a worker has taken
 * the job takes the job back: fn never runs, and the Deferred errbacks with
 * MO_ECANCELED. Cancelling it while fn runs errbacks it with MO_ECANCELED
 * at once; fn completes, and its value is destroyed (or its failure
 * released) when it does. If the pool is freed with MO_POOL_CANCEL_QUEUED
 * before fn ran, the Deferred errbacks with MO_ECANCELED. The loop stays
 * alive until fn has returned. One allocation besides the Deferred, made
 * here: once this returned 0, the outcome reaches the loop whatever memory
 * is left (if memory runs out on the worker's side, the Deferred errbacks
 * with MO_ENOMEM). Errors (fn will not run, nothing is stored): MO_EINVAL
 * (NULL loop, fn or dp), MO_ESHUTDOWN (the loop is closed, or the pool is
 * being freed), MO_ENOMEM, MO_EAGAIN (the default pool could not start).
 * Loop thread. */
MO_EXTERN int mo_deferred_call_on_pool(mo_pool_t *pool, mo_loop_t *loop, mo_thread_fn fn, void *arg,
                                       mo_deferred_t **dp);

/* Deprecated names, kept for one release (CHANGELOG.md). */
MO_EXTERN int mo_defer_to_thread(mo_loop_t *loop, mo_thread_fn fn, void *arg, mo_deferred_t **dp)
    MO_DEPRECATED("use mo_deferred_call_on_pool(NULL, ...)");
MO_EXTERN int mo_pool_defer(mo_pool_t *pool, mo_loop_t *loop, mo_thread_fn fn, void *arg,
                            mo_deferred_t **dp) MO_DEPRECATED("renamed mo_deferred_call_on_pool()");

#ifdef __cplusplus
}
#endif
#endif /* MORSEL_POOL_H */
