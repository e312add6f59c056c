/* The work layer's internals: the worker pool (pool.c), calls made on it
 * with their outcome kept for the loop (thread_call.c), the cooperator
 * (task.c), coroutines (coro.c, with coro_ctx.c and arch/), and the
 * watchdog (watchdog.c). Uses core and deferred.
 *
 * The cooperator's invariants:
 * - A task is in the ready ring (in_ring) iff it is runnable: not finished,
 *   not waiting, not paused; or draining (a stopped coroutine unwinding).
 * - The ring is a circular queue: `cursor` is its head, the task whose
 *   turn comes next. A turn moves the cursor on, which sends the task that
 *   had it to the back; a task made ready is inserted just before the
 *   cursor: at the back. Removing the cursor's task moves the cursor to its
 *   successor, so no other task loses its turn.
 * - The cooperator holds one reference to each task on its `all` list: from
 *   mo_cooperate() until the task finished (and, for a coroutine, until it
 *   unwound). The caller's handle is another; a callback registered on an
 *   awaited Deferred is a third; a running turn holds one too; so does a
 *   piece on the pool (`offloading`), from its submission until its done
 *   ran or it was taken back.
 * - `waiting` means the task sleeps on wait_d or, when `offloading` too, on
 *   its piece. A finished task no longer waits, but may still be
 *   `offloading`: its piece runs on, and its result is discarded. A stopped
 *   coroutine unwinds only once its piece returned (the piece may use the
 *   coroutine's stack).
 * - `scheduled` is true iff one slice call is queued on the loop; it is
 *   queued whenever the ring is non-empty.
 */
#ifndef MORSEL_WORK_INT_H
#define MORSEL_WORK_INT_H

#include "deferred/deferred_int.h"
#include "morsel/pool.h"
#include "morsel/task.h"
#include "morsel/coro.h"

/* ---- the worker pool (pool.c) ---- */

/* Tests: whether mo_pool_free() has begun on this pool. Any thread. */
bool mo__pool_closing(mo_pool_t *pool);

/* ---- calls on the pool (thread_call.c) ----
 *
 * A mo_thread_fn call made by a pool worker, its outcome kept for the loop
 * thread: the one record behind mo_defer_to_thread() and mo_task_offload().
 * fn and arg are written before the submission; code, value, dtor and
 * failure by the worker, then read on the loop thread once the job's done
 * runs (the pool's hand-back orders the two). */
struct mo__thread_call {
    mo_pool_job_t job;
    mo_thread_fn fn;
    void *arg;
    int code;
    void *value;
    mo_dtor_fn dtor;
    mo_failure_t *failure;
};

/* On the worker: calls fn and keeps what it produced. */
void mo__thread_call_run(struct mo__thread_call *c);

/* On the loop thread, once done ran with the pool's `status` (MO_ECANCELED
 * if fn never ran): returns NULL and moves the value into *vp, *dtorp on
 * success; else returns the failure (what fn left on the other path is
 * destroyed), one made with `origin` if fn gave only a code. */
mo_failure_t *mo__thread_call_take(struct mo__thread_call *c, int status, const char *origin,
                                   void **vp, mo_dtor_fn *dtorp);

/* ---- the cooperator (task.c) ---- */

struct mo_task {
    struct mo_task *next, *prev;         /* the ready ring */
    struct mo_task *all_next, *all_prev; /* the cooperator's tasks */
    struct mo__coop *coop;
    mo_step_fn step;
    void *arg;
    mo_deferred_t *done;   /* the outcome, fired once */
    mo_deferred_t *wait_d; /* the Deferred waited on (kept until the next wait) */
    void *value;           /* from mo_task_done() */
    mo_dtor_fn value_dtor;
    void *received; /* the awaited Deferred's value */
    mo_dtor_fn received_dtor;
    mo_failure_t *failure;      /* from mo_task_fail() or a failed wait */
    void (*on_free)(void *arg); /* a coroutine frees itself with the task */
    uintptr_t name;             /* what the watchdog names: the step, or the coroutine's fn */
    mo_pool_t *pool;            /* for offloads; NULL: the loop's default pool */
    struct mo__thread_call off; /* mo_task_offload()'s piece: no allocation */
    int64_t slice;
    double cost;     /* learnt ns per step */
    uint32_t batch;  /* size of the last batch */
    uint32_t budget; /* steps left in the running batch (a coroutine counts down) */
    uint32_t pauses;
    uint32_t refs;
    bool in_ring, on_all, waiting, offloading, finished, draining, ended, coro;
    uint64_t steps, turns, overlong;
    uint64_t seq; /* start order */
};

struct mo__coop {
    mo_loop_t *loop;
    struct mo_task *cursor; /* next turn; NULL when no task is ready */
    struct mo_task *all;    /* every task held, in start order (circular) */
    uint32_t nready;
    uint32_t ntasks;
    uint64_t seq; /* next task's start order */
    int64_t slice;
    bool scheduled;
    int64_t (*clock)(void *arg); /* NULL: mo_hrtime() */
    void *clock_arg;
    struct mo_task *current; /* the task whose turn runs */
    struct mo_cooperator_stats stats;
};

/* The loop's cooperator in *cp, created on first use. Errors: MO_ENOMEM. */
int mo__coop_get(mo_loop_t *loop, struct mo__coop **cp);

/* Test-only: makes the cooperator read `clock(arg)` instead of the real
 * monotonic clock when it times slices and steps, so slicing can be tested
 * with steps that advance a fake clock. NULL restores the real clock.
 * Returns 0 or MO_ENOMEM. */
int mo__coop_set_clock(mo_loop_t *loop, int64_t (*clock)(void *arg), void *arg);

/* For coro.c: starts a task whose step resumes a coroutine. A coroutine's
 * step runs a whole batch itself (counting `budget` down at each yield)
 * and is resumed once more after the task is stopped, to unwind. */
int mo__task_start(mo_loop_t *loop, mo_step_fn step, void *arg, const struct mo_task_opts *opts,
                   bool coro, void (*on_free)(void *arg), mo_task_t **taskp);
void mo__task_ref(mo_task_t *t);
void mo__task_unref(mo_task_t *t);

/* Submits fn(arg, ...) to the task's pool; the task then waits until the
 * piece returned. For mo_task_offload() and mo_coro_offload(), which check
 * that the task is the one running. Errors: MO_EBUSY (a piece is already
 * out), mo_pool_submit()'s. */
int mo__task_offload(mo_task_t *t, mo_thread_fn fn, void *arg);

#endif /* MORSEL_WORK_INT_H */
