/* The work layer's internals: the worker pool (pool.c), calls made on it
 * with their outcome kept for the loop (thread_call.c), the cooperator
 * (task.c), coroutines (coro.c, with coro_ctx.c and arch/), and the
 * watchdog (watchdog.c). Uses core and deferred.
 *
 * The cooperator's invariants, checked by mo__coop_verify():
 * - A task's life is its `state` (enum mo__task_state), changed only by
 *   task_move() in task.c, which checks the move: READY -> WAITING |
 *   OFFLOADED | UNWINDING | DONE; WAITING and OFFLOADED -> READY |
 *   UNWINDING | DONE; UNWINDING -> DONE. UNWINDING and DONE are "finished"
 *   (the outcome has fired); only a coroutine's task passes through
 *   UNWINDING. Besides the state: `pauses` (a count), `piece_out` (a pool
 *   job holds the task and uses its `off`), and `coro` (fixed at start).
 * - OFFLOADED implies piece_out. piece_out outside OFFLOADED only when
 *   finished: the piece runs on, its result is discarded when it returns.
 *   A stopped coroutine unwinds only once its piece returned (the piece may
 *   use the coroutine's stack).
 * - A task is in the ready ring (`next` not NULL) iff it is runnable: READY
 *   and not paused, or UNWINDING without a piece out.
 * - The ring is a circular queue: `cursor` is its head, the task whose
 *   turn comes next. A turn moves the cursor on, which sends the task that
 *   had it to the back; a task made ready is inserted just before the
 *   cursor: at the back. Removing the cursor's task moves the cursor to its
 *   successor, so no other task loses its turn.
 * - The cooperator holds one reference to each task on its `all` list
 *   (`all_next` not NULL): from mo_cooperate() until the task is DONE. The
 *   caller's handle is another; a callback registered on an awaited
 *   Deferred is a third; a running turn holds one too; so does a piece out.
 * - `scheduled` is true iff one slice call is queued on the loop; it is
 *   queued whenever the ring is non-empty (outside the slice itself).
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
 * thread: the one record behind mo_deferred_call_on_pool() and mo_task_offload().
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

/* ---- naming code addresses (symtab.c) ---- */

#define MO__SYMTAB_OBJECTS 8

struct mo__symobj {
    char path[256];
    const unsigned char *map; /* the whole file, read-only */
    size_t size;
};

/* The ELF objects mapped so far, by one thread (the watchdog's). Zero it
 * to start; mo__symtab_free() unmaps. */
struct mo__symtab {
    struct mo__symobj objs[MO__SYMTAB_OBJECTS];
    unsigned n;
};

/* The name of the function that holds `addr`, from the .symtab of the
 * object loaded there (which names static functions too), with addr's
 * offset into it in *offp; NULL if the object has no such table (stripped)
 * or no function there. The name lives until mo__symtab_free(). Maps the
 * object's file on first use; never allocates through the seam. */
const char *mo__symtab_lookup(struct mo__symtab *t, uintptr_t addr, uintptr_t *offp);
void mo__symtab_free(struct mo__symtab *t);

/* ---- the cooperator (task.c) ---- */

/* Where a task is in its life; see the invariants above. */
enum mo__task_state {
    MO__TASK_READY,     /* runs in its turns, unless paused */
    MO__TASK_WAITING,   /* sleeps until wait_d fires */
    MO__TASK_OFFLOADED, /* sleeps until its piece returns */
    MO__TASK_UNWINDING, /* finished; a coroutine resumed once more to unwind */
    MO__TASK_DONE       /* finished for good: the cooperator let go of it */
};

struct mo_task {
    struct mo_task *next, *prev;         /* the ready ring; NULL when out of it */
    struct mo_task *all_next, *all_prev; /* the cooperator's tasks; NULL once let go */
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
    uint8_t state;  /* enum mo__task_state */
    bool coro;      /* a coroutine's task */
    bool piece_out; /* a pool job holds the task (its `off`) */
    uint64_t steps, turns, overlong;
    uint64_t seq; /* start order */
};

/* Whether the task's outcome has fired (it is UNWINDING or DONE). */
static inline bool mo__task_finished(const mo_task_t *t)
{
    return t->state >= MO__TASK_UNWINDING;
}

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

/* Tests: checks the invariants above for the loop's cooperator (if it has
 * one) and each of its tasks; prints the first broken one and aborts.
 * Call it between loop runs, not from a callback. */
void mo__coop_verify(mo_loop_t *loop);

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

/* True if the caller runs on co's stack (inside the coroutine): for the
 * upper layers' functions that suspend a coroutine they are given. */
bool mo__coro_inside(const mo_coro_t *co);

/* Submits fn(arg, ...) to the task's pool; the task then waits until the
 * piece returned. For mo_task_offload() and mo_coro_offload(), which check
 * that the task is the one running. Errors: MO_EBUSY (a piece is already
 * out), mo_pool_submit()'s. */
int mo__task_offload(mo_task_t *t, mo_thread_fn fn, void *arg);

#endif /* MORSEL_WORK_INT_H */
