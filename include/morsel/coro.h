/* morsel — coroutines: a cooperative task written as straight-line code.
 *
 * mo_coro_spawn() runs fn(co, arg) on a stack of its own as a task of the
 * loop's cooperator (see task.h). Inside, mo_yield() marks a step boundary:
 * the cooperator decides whether the slice allows going on at once (then
 * mo_yield() returns without any switch, which is what makes a yield in a
 * tight loop cheap) or whether to switch back to the loop. mo_await()
 * suspends the coroutine until a Deferred fires and gives back its value or
 * its failure's code: Twisted's inlineCallbacks, in C. mo_coro_offload()
 * runs one piece that cannot be cut on the worker pool and suspends until
 * it returned (deferToThread inside inlineCallbacks). fn may recurse and
 * yield, await or offload from any depth, like the seed's generator-based
 * walk. The watchdog (stats.h) names a coroutine that holds the loop by
 * its fn.
 *
 * The task's Deferred fires with the value given to mo_coro_return() (or
 * NULL) when fn returns 0. When fn returns a non-zero code it errbacks: with
 * the failure of the last failed mo_await() if that has the same code (so a
 * failure passed up keeps its message and origin), else with a new failure
 * of that code.
 *
 * Stopping the task (mo_task_stop(), mo_cooperator_stop()) errbacks its
 * Deferred with MO_ECANCELED at once and cancels a Deferred it awaits (or
 * takes back a piece it offloaded that no worker took yet); the coroutine
 * is then resumed so that it can unwind: its pending and every later
 * mo_await() and mo_coro_offload() returns MO_ECANCELED without waiting,
 * and mo_yield() returns MO_ECANCELED. It must then return soon. If a
 * worker is running its piece, the coroutine is resumed only once the
 * piece returned (its result is discarded), so a piece may use the
 * coroutine's stack. A coroutine still
 * suspended when the loop is freed is dropped without unwinding.
 *
 * Stacks: each coroutine's stack is its own mapping, with a guard region of
 * MO_CORO_GUARD_SIZE (64 KiB) below it that may not be touched. What an
 * overflow does:
 * - Caught at once (SIGSEGV, the usual stack-overflow death): every
 *   overflow by frames no larger than the guard, however deep the
 *   recursion, since each one lands in the guard before anything below it;
 *   and every overflow in code compiled with -fstack-clash-protection
 *   (which touches a large frame page by page as it grows), whatever its
 *   frames. morsel itself, its tests, examples and CLI are compiled with
 *   it where the compiler supports it (gcc >= 8; clang >= 11 on x86-64);
 *   compile your coroutines' code with it too, or keep their
 *   frames below 64 KiB (-Wframe-larger-than=65536 warns).
 * - Not caught: one frame larger than the guard in code compiled without
 *   stack-clash protection may start past the guard and write into
 *   whatever is mapped below: another coroutine's stack, say.
 * A coroutine's stack is unmapped as soon as fn returns.
 *
 * How many coroutines fit: each stack costs two entries of the process's
 * memory map (the stack and its guard), and Linux allows vm.max_map_count
 * of them, 65530 by default: about 32,700 coroutines alive at once, minus
 * what the rest of the process maps. Past that, mo_coro_spawn() fails with
 * MO_ENOMEM (nothing started, the others unaffected). To hold more, raise
 * the limit: `sysctl -w vm.max_map_count=262144` (as root; 100,000
 * coroutines need 200,000 entries plus the process's own). Memory is
 * MO_CORO_STACK_DEFAULT of address space each, but only the pages a
 * coroutine touches (usually one or two) cost RAM.
 *
 * Threads: loop thread only; mo_yield() and mo_await() only from inside the
 * coroutine they name.
 */
#ifndef MORSEL_CORO_H
#define MORSEL_CORO_H

#include "deferred.h"
#include "loop.h"
#include "pool.h"
#include "task.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mo_coro mo_coro_t;

/* A coroutine's body: returns 0 on success or a non-zero error code. */
typedef int (*mo_coro_fn)(mo_coro_t *co, void *arg);

/* The default stack size: 256 KiB (mapped lazily by the kernel: only the
 * pages touched cost memory). */
#define MO_CORO_STACK_DEFAULT ((size_t)256 * 1024)

/* The inaccessible region below every coroutine stack: an overflow into it
 * faults (see above for what that catches). Address space only, no RAM. */
#define MO_CORO_GUARD_SIZE ((size_t)64 * 1024)

/* Options of one coroutine; NULL means all defaults (zeroes). */
struct mo_coro_opts {
    size_t stack_size; /* usable bytes, rounded up to pages; 0: MO_CORO_STACK_DEFAULT */
    int64_t slice;     /* as struct mo_task_opts */
    mo_pool_t *pool;   /* as struct mo_task_opts: runs mo_coro_offload() pieces */
};

/* Starts fn(co, arg) as a coroutine task; it first runs in one of the
 * loop's next slices. Stores the task's handle in *taskp if not NULL (see
 * task.h for handles and the outcome Deferred). Errors (nothing started):
 * MO_EINVAL (NULL loop or fn, negative slice), MO_ENOMEM (out of memory, or
 * a stack that could not be mapped: address space, or vm.max_map_count
 * reached, see above). Loop thread. */
MO_EXTERN int mo_coro_spawn(mo_loop_t *loop, mo_coro_fn fn, void *arg,
                            const struct mo_coro_opts *opts, mo_task_t **taskp);

/* A step boundary: returns at once while the cooperator's batch for this
 * coroutine has steps left, else switches to the loop and returns when the
 * coroutine's next turn comes. Returns 0, MO_ECANCELED (the task was
 * stopped: unwind and return), or MO_EINVAL (NULL, or not called from
 * inside co). */
MO_EXTERN int mo_yield(mo_coro_t *co);

/* Suspends co until `d` fires, taking the caller's reference to d. On
 * success returns 0 and passes d's value to the caller: stored in *valuep
 * with its destructor in *dtorp (the caller owns it now); with valuep and
 * dtorp both NULL the value is destroyed. On failure returns the failure's
 * code (non-zero; mo_coro_failure() gives the failure) and the failure
 * counts as handled in d. Errors (d released, nothing awaited): MO_EINVAL
 * (NULL co or d, only one of valuep/dtorp NULL, not called from inside
 * co), MO_ECANCELED (the task was stopped, or has ended: when memory runs
 * out for the link to d, the task fails with MO_ENOMEM and this returns
 * MO_ECANCELED). */
MO_EXTERN int mo_await(mo_coro_t *co, mo_deferred_t *d, void **valuep, mo_dtor_fn *dtorp);

/* Runs fn(arg, ...) on a worker thread of the coroutine's pool (see
 * mo_thread_fn in pool.h; the loop's default pool unless the options gave
 * one) and suspends co until it returned; the loop keeps running, and the
 * task is MO_TASK_WAITING meanwhile. On success returns 0 and passes fn's
 * value to the caller: stored in *valuep with its destructor in *dtorp
 * (the caller owns it now); with valuep and dtorp both NULL the value is
 * destroyed. On failure returns the failure's code (non-zero;
 * mo_coro_failure() gives fn's failure, or one of fn's code), as mo_await()
 * does; MO_ECANCELED if the pool was freed with MO_POOL_CANCEL_QUEUED
 * before fn ran. No allocation: the job is part of the task.
 * `mo_await(co, d, ...)` on a Deferred from mo_deferred_call_on_pool() does the
 * same with two allocations, and lets the caller cancel the Deferred.
 * Errors (nothing submitted, co not suspended): MO_EINVAL (NULL co or fn,
 * only one of valuep/dtorp NULL, not called from inside co), MO_ECANCELED
 * (the task was stopped), MO_ESHUTDOWN (the loop is closed or the pool is
 * being freed), MO_ENOMEM, MO_EAGAIN (the default pool could not start).
 * arg must stay valid until fn returned. Loop thread, inside co. */
MO_EXTERN int mo_coro_offload(mo_coro_t *co, mo_thread_fn fn, void *arg, void **valuep,
                              mo_dtor_fn *dtorp);

/* The failure of co's last failed mo_await() or mo_coro_offload(),
 * borrowed (valid until the next of these or the coroutine's end); NULL if
 * none. */
MO_EXTERN const mo_failure_t *mo_coro_failure(const mo_coro_t *co);

/* Sets the value the task's Deferred fires with if fn returns 0 (taken in
 * every case, destroyed with dtor if not NULL; a later call replaces it).
 * Errors: MO_EINVAL (NULL co; value destroyed). */
MO_EXTERN int mo_coro_return(mo_coro_t *co, void *value, mo_dtor_fn dtor);

/* For `return mo_coro_fail(co, f);` from fn: makes f (the caller's
 * reference, taken) the failure the task fails with, and returns its code,
 * so the failure keeps its message and origin. Returns MO_EINVAL for NULL
 * co or f (f is released). */
MO_EXTERN int mo_coro_fail(mo_coro_t *co, mo_failure_t *f);

/* The coroutine's task (borrowed: valid while the coroutine runs), for
 * mo_task_pause() and the like from inside it. NULL for NULL. */
MO_EXTERN mo_task_t *mo_coro_task(mo_coro_t *co);

#ifdef __cplusplus
}
#endif
#endif /* MORSEL_CORO_H */
