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
 * batches between two clock reads, sized so that a turn ends within about a
 * tenth of a step of its end: the seed's `steps=10` chosen per task and
 * adjusted as the cost changes. Tiny steps cost about what calling the
 * function in a plain loop costs. A single step that takes longer than the
 * loop's slice cannot be cut by the cooperator: it is counted in the task's
 * and the cooperator's stats (the watchdog, if running, reports the slice
 * call that it held); offload such a step (mo_task_offload()).
 *
 * Outcome: every task has a Deferred (mo_task_deferred()) that fires with
 * the task's result when a step returns MO_DONE, errbacks with the task's
 * failure when a step fails, and errbacks with MO_ECANCELED when the task
 * or the cooperator is stopped.
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
 * then counts as handled in d). Returns MO_EINVAL for NULL task or d (the
 * reference is released). */
MO_EXTERN int mo_task_wait(mo_task_t *task, mo_deferred_t *d);

/* From a step after a wait: takes the value the awaited Deferred fired
 * with, storing its destructor in *dtorp (may be NULL only if the caller
 * knows there is none). NULL if there is none or it was taken; a value not
 * taken during that step is destroyed after it. Loop thread. */
MO_EXTERN void *mo_task_received(mo_task_t *task, mo_dtor_fn *dtorp);

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

/* Undoes one mo_task_pause(). Errors: MO_EINVAL (NULL, or not paused),
 * MO_EALREADY (the task finished), MO_ENOMEM (the cooperator's slice could
 * not be scheduled; the task stays paused). Loop thread. */
MO_EXTERN int mo_task_resume(mo_task_t *task);

/* Stops a task: its step is not called again and its Deferred errbacks
 * with MO_ECANCELED before this returns. A Deferred it waits on is not
 * cancelled, only no longer waited for. A step may stop its own task; what
 * the step then returns is ignored (a value given to mo_task_done() is
 * destroyed). A coroutine's task stops the same way; the coroutine then
 * unwinds (see coro.h). Errors: MO_EINVAL (NULL), MO_EALREADY (the task
 * finished). Loop thread. */
MO_EXTERN int mo_task_stop(mo_task_t *task);

/* Where a task stands. */
enum mo_task_state {
    MO_TASK_READY = 0,   /* runs in the coming slices */
    MO_TASK_WAITING = 1, /* sleeps on a Deferred */
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
 * MO_ECANCELED. Tasks started afterwards run normally. Returns how many
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
