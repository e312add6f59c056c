/* morsel — cooperative tasks: long work cut into steps that share the loop.
 *
 * A task is a step function the cooperator calls again and again, each call
 * doing a small piece of the work (the seed's optFactorial loop body). Each
 * loop has one cooperator. In every loop iteration it runs one *time slice*
 * (default 1 ms, mo_cooperator_set_slice()) as one ready-queue call, shared
 * round-robin by the tasks that are ready; then the loop polls I/O and runs
 * its timers before the next slice. A task's turn within a slice is its own
 * slice if it has one (struct mo_task_opts), else an equal share of the
 * loop's slice (at least an eighth of it: with many tasks, the turns carry
 * on in the next slices, the round-robin order kept).
 *
 * Batching: the cooperator measures each task's step cost and runs steps in
 * batches between two clock reads, each half of what the turn has left at
 * the learnt cost, so that a turn ends within about half a step of its end:
 * the seed's `steps=10` chosen per task and
 * adjusted as the cost changes. Tiny steps cost about what calling the
 * function in a plain loop costs. A single step that takes longer than the
 * loop's slice cannot be cut by the cooperator: it is counted in the task's
 * and the cooperator's stats, and the watchdog (stats.h), if running,
 * reports it by the step function's name once it holds the loop past the
 * threshold (the cooperator publishes each task's step, or a coroutine's
 * fn, as the running callback when its turn begins). Offload such a step:
 * mo_task_offload() runs it on the worker pool while the loop goes on.
 *
 * The round: the ready tasks form a queue. A turn sends the task that had it
 * to the back; a task that becomes ready again (resumed, or woken by what
 * it waited on) joins at the back, after every task that was ready before
 * it; a task that leaves the round mid-way (paused, waiting, finished)
 * never makes another lose its turn.
 *
 * Outcome: every task has a Deferred (mo_task_deferred()) that fires with
 * the task's result when a step returns MO_DONE, errbacks with the task's
 * failure when a step fails, and errbacks with MO_ECANCELED when the task
 * or the cooperator is stopped, or the loop freed.
 *
 * Unobserved outcomes (DESIGN rule 20): a task's Deferred is dropped when
 * the task and every handle to it are released. If it then holds a failure
 * nobody handled, that failure goes to the loop's error hook
 * (mo_loop_set_error_hook(), stderr by default), like any Deferred's; this
 * happens at the latest when the loop is freed. A stop's MO_ECANCELED is
 * the exception: stopping work nobody watches is not an error, so it is
 * never reported (a different failure a callback makes of it still is).
 *
 * Handles: mo_cooperate() gives the caller a task handle, valid until
 * mo_task_release() (even after the task finished: operations on a finished
 * task return MO_EALREADY) and never after mo_loop_free().
 *
 * Tasks do not keep mo_loop_run() going by themselves while paused or
 * waiting: what will resume them (a timer, a thread, an fd) does.
 *
 * Threads: everything here is loop-thread only.
 */
#ifndef MORSEL_TASK_H
#define MORSEL_TASK_H

#include "deferred.h"
#include "loop.h"
#include "pool.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mo_task mo_task_t;

/* What a step returns: one of these, or a negative MO_E* / errno code,
 * which fails the task with a failure of that code. */
enum mo_step_status {
    MO_CONTINUE = 0, /* call me again */
    MO_DONE = 1,     /* finished: the Deferred fires with mo_task_done()'s value (or NULL) */
    MO_WAIT = 2,     /* sleep until the Deferred given to mo_task_wait() fires */
    MO_FAIL = 3      /* failed with the failure given to mo_task_fail() */
};

/* A step: does one small piece of the work and says how things stand.
 * `task` is the task being run, `arg` the one given to mo_cooperate(). */
typedef int (*mo_step_fn)(mo_task_t *task, void *arg);

/* Options of one task; NULL options mean all defaults (zeroes). */
struct mo_task_opts {
    /* The longest this task runs in one turn, in ns; 0: an equal share of
     * the loop's slice. Larger than the loop's slice counts as the slice. */
    int64_t slice;
    /* The pool that runs its mo_task_offload() pieces; NULL: the loop's
     * default pool (mo_loop_pool()). A pool of your own must outlive the
     * task's pieces: free the loop only after its pieces returned. */
    mo_pool_t *pool;
};

/* Starts a task: step(task, arg) will be called from the loop's next
 * slices on. Stores a handle in *taskp (NULL: no handle is wanted; the
 * outcome is then reachable only through the step's own means). Errors
 * (nothing started): MO_EINVAL (NULL loop or step, negative slice),
 * MO_ENOMEM. Loop thread. */
MO_EXTERN int mo_cooperate(mo_loop_t *loop, mo_step_fn step, void *arg,
                           const struct mo_task_opts *opts, mo_task_t **taskp);

/* The task's outcome Deferred, with a new reference for the caller (drop it
 * with mo_deferred_unref()). NULL for NULL task. Loop thread. */
MO_EXTERN mo_deferred_t *mo_task_deferred(mo_task_t *task);

/* Drops the handle mo_cooperate() gave. The task goes on running; its
 * Deferred still fires. NULL is ignored. Loop thread. */
MO_EXTERN void mo_task_release(mo_task_t *task);

/* From a step: sets the value the task's Deferred fires with (taken in
 * every case, destroyed with dtor if not NULL) and returns MO_DONE, so a
 * step can `return mo_task_done(task, value, dtor);`. A later call
 * replaces the value. Returns MO_EINVAL for NULL task (value destroyed). */
MO_EXTERN int mo_task_done(mo_task_t *task, void *value, mo_dtor_fn dtor);

/* From a step: makes the task sleep until `d` fires, taking the caller's
 * reference to d, and returns MO_WAIT: `return mo_task_wait(task, d);`.
 * If d succeeds, the task wakes and its next step can take d's value with
 * mo_task_received(); if d fails, the task fails with d's failure (which
 * then counts as handled in d). Returns MO_EINVAL for NULL task or d, and
 * MO_EBUSY when this step offloaded a piece (mo_task_offload(): the task
 * waits for that); the reference is released in both cases. */
MO_EXTERN int mo_task_wait(mo_task_t *task, mo_deferred_t *d);

/* From a step after a wait (or an offload): takes the value the awaited
 * Deferred fired with (or the offloaded piece returned), storing its destructor in *dtorp (may be
 * NULL only if the caller knows there is none). NULL if there is none or it was taken; a value not
 * taken during that step is destroyed after it. Loop thread. */
MO_EXTERN void *mo_task_received(mo_task_t *task, mo_dtor_fn *dtorp);

/* From a step: runs one piece of work that cannot be cut (DESIGN rule 13)
 * on the task's pool, fn(arg, ...) on a worker thread (see mo_thread_fn in
 * pool.h for how it returns a value or a failure), and returns MO_WAIT, so a
 * step can `return mo_task_offload(task, fn, arg);`. The loop keeps running
 * meanwhile; the task is MO_TASK_WAITING, not run, until fn returned. Then,
 * on the loop thread: if fn succeeded, the task becomes ready and its next
 * step takes fn's value with mo_task_received() (exactly as after
 * mo_task_wait()); if fn failed, the task fails with fn's failure (or one
 * of fn's code, origin "mo_task_offload"); if the pool was freed with
 * MO_POOL_CANCEL_QUEUED before fn ran, the task fails with MO_ECANCELED.
 * One piece at a time; the job is part of the task: no allocation (unless
 * the pool's queue must grow).
 *
 * Whatever the step then returns, the task waits for the piece, unless the
 * return finishes it (MO_DONE, MO_FAIL, an error): that, mo_task_stop() and
 * mo_cooperator_stop() take a piece still queued back (fn never runs) and
 * let a running one return in its own time, its value destroyed with its
 * destructor (or its failure released) on the loop thread. Either way the
 * task is kept in memory until then; `arg` must stay valid until fn
 * returned (the task's Deferred may fire before that).
 *
 * Errors (nothing submitted): MO_EINVAL (NULL task or fn; a coroutine's
 * task: use mo_coro_offload(); not called from this task's own step),
 * MO_EALREADY (the task finished, e.g. its step stopped it), MO_EBUSY (a
 * piece is already out: this step offloaded already), MO_ESHUTDOWN (the
 * loop is closed or the pool is being freed), MO_ENOMEM, MO_EAGAIN (the
 * default pool could not start). A step may handle these (run the piece
 * itself, say) or return them, which fails the task. Loop thread. */
MO_EXTERN int mo_task_offload(mo_task_t *task, mo_thread_fn fn, void *arg);

/* From a step: sets the failure the task fails with, taking the caller's
 * reference, and returns MO_FAIL: `return mo_task_fail(task, f);`. Returns
 * MO_EINVAL for NULL task or failure (f is released). */
MO_EXTERN int mo_task_fail(mo_task_t *task, mo_failure_t *failure);

/* Pauses a task: it is not run until resumed as many times as it was
 * paused. A task paused while waiting still takes its Deferred's outcome
 * when that fires, and goes on once resumed. A step may pause its own task:
 * the step returns normally and is not called again until then. Errors:
 * MO_EINVAL (NULL), MO_EALREADY (the task finished). Loop thread. */
MO_EXTERN int mo_task_pause(mo_task_t *task);

/* Undoes one mo_task_pause(). The last one makes the task ready again (if
 * it does not wait): it joins the round at the back. Errors: MO_EINVAL
 * (NULL, or not paused),
 * MO_EALREADY (the task finished), MO_ENOMEM (the cooperator's slice could
 * not be scheduled; the task stays paused). Loop thread. */
MO_EXTERN int mo_task_resume(mo_task_t *task);

/* Stops a task: its step is not called again and its Deferred errbacks
 * with MO_ECANCELED before this returns. A Deferred it waits on is
 * cancelled (as inlineCallbacks does); a piece it offloaded is taken back
 * if still queued, else its result is discarded when it returns. A step may stop its own task; what
 * the step then returns is ignored (a value given to mo_task_done() is
 * destroyed). A coroutine's task stops the same way; the coroutine then
 * unwinds (see coro.h). The MO_ECANCELED is quiet: reported by nobody if
 * nobody handles it (see above). Errors: MO_EINVAL (NULL), MO_EALREADY (the
 * task finished). Loop thread. */
MO_EXTERN int mo_task_stop(mo_task_t *task);

/* Where a task stands. */
enum mo_task_state {
    MO_TASK_READY = 0,   /* runs in the coming slices */
    MO_TASK_WAITING = 1, /* sleeps on a Deferred or an offloaded piece */
    MO_TASK_PAUSED = 2,  /* paused (possibly also waiting) */
    MO_TASK_DONE = 3     /* finished: done, failed or stopped */
};

/* The task's state, or MO_EINVAL for NULL. Loop thread. */
MO_EXTERN int mo_task_state(const mo_task_t *task);

/* What the cooperator learnt about a task. */
struct mo_task_stats {
    uint64_t steps;    /* steps run (for a coroutine: yields) */
    uint64_t turns;    /* turns it was given */
    uint64_t overlong; /* single steps longer than the loop's slice */
    double step_ns;    /* the current estimate of one step's cost */
    uint32_t batch;    /* the largest batch of its last turn: steps between two clock reads */
};

/* Fills *stats. Works on a finished task too. Errors: MO_EINVAL (NULL
 * argument). Loop thread. */
MO_EXTERN int mo_task_stats(const mo_task_t *task, struct mo_task_stats *stats);

/* Sets the loop's slice: the time the cooperator runs tasks in each loop
 * iteration (default MO_MSEC(1)). Takes effect at the next slice. Errors:
 * MO_EINVAL (NULL loop, ns <= 0), MO_ENOMEM. Loop thread. */
MO_EXTERN int mo_cooperator_set_slice(mo_loop_t *loop, int64_t ns);

/* Stops every task of the loop's cooperator, in the order they were
 * started, as mo_task_stop() does: each Deferred errbacks with
 * MO_ECANCELED, quietly. Tasks started afterwards run normally. A task that
 * had failed before is not stopped (it has finished): its failure is
 * reported if nobody handles it. Returns how many
 * tasks were stopped, or MO_EINVAL (NULL loop). Loop thread. */
MO_EXTERN int mo_cooperator_stop(mo_loop_t *loop);

/* The cooperator's record, since the loop was created. */
struct mo_cooperator_stats {
    uint64_t slices;   /* slices run */
    uint64_t steps;    /* steps run, all tasks */
    uint64_t overlong; /* single steps longer than the slice */
    int64_t last_ns;   /* length of the last slice */
    int64_t max_ns;    /* longest slice */
    uint32_t tasks;    /* tasks alive now (ready, waiting or paused) */
};

/* Fills *stats (all zero if no task ever ran). Errors: MO_EINVAL (NULL
 * argument). Loop thread. */
MO_EXTERN int mo_cooperator_stats(const mo_loop_t *loop, struct mo_cooperator_stats *stats);

#ifdef __cplusplus
}
#endif
#endif /* MORSEL_TASK_H */
