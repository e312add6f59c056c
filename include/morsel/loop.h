/* morsel — the reactor: loop, zero-delay calls, delayed calls, fd watchers,
 * and calls from other threads.
 *
 * Threads: a loop and everything on it belong to the thread that runs it.
 * Unless a function's comment says "any thread", call it only from that
 * thread. The functions callable from any thread are mo_call_from_thread(),
 * mo_loop_stop_from_thread() and mo_hrtime().
 *
 * One loop iteration:
 *   1. read the clock once; every callback in this iteration sees that `now`;
 *   2. run the calls posted from other threads (mo_call_from_thread(), and
 *      the pool's completions), in order per posting thread only;
 *   3. run the delayed calls that are due, by (deadline, order of
 *      scheduling); one that these callbacks schedule waits for the next
 *      iteration, even if it is due already;
 *   4. run the ready queue (mo_call_soon) in passes: a pass runs the calls
 *      that were queued when it began; calls queued during a pass run in a
 *      later pass. Passes go on until the queue is empty or `io_interval`
 *      (default 100 µs) of running them has passed on the real clock. A
 *      cooperator slice (task.h) ends them early. On a virtual clock, where
 *      no time passes while callbacks run, an iteration runs exactly one
 *      pass, so what it runs does not depend on the machine's speed;
 *   5. poll file descriptors and run the watchers that fired. The poll's
 *      timeout is 0 when work is ready, else until the next delayed call,
 *      else without limit (see enum mo_run_mode for the other modes). In
 *      MO_RUN_DEFAULT a poll with timeout 0 is skipped while less than
 *      io_interval of real time has passed since the last poll: with a
 *      delayed call due every microsecond that saves a system call per
 *      iteration, and file descriptors are still looked at once per
 *      io_interval. Never skipped on a virtual clock, in the other modes,
 *      or after a cooperator slice.
 * So a chain of zero-delay calls never starves I/O or timers: they are
 * looked at at least once per io_interval of callback time.
 */
#ifndef MORSEL_LOOP_H
#define MORSEL_LOOP_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mo_loop mo_loop_t;

/* A pending delayed call, as a value: slot and generation. 0 is never a valid
 * id. Using an id after its call ran or was cancelled is safe: the functions
 * below answer MO_EALREADY. (A slot's generation is 32 bits: an id could be
 * mistaken for a new one only after 2^32 reuses of its slot.) */
typedef uint64_t mo_call_id;

/* An fd watcher, as a value, like mo_call_id. 0 is never valid. */
typedef uint64_t mo_io_id;

/* A call: the loop it runs on, and the caller's argument. */
typedef void (*mo_call_fn)(mo_loop_t *loop, void *arg);

/* Readiness of a file descriptor. A watcher waits for exactly one of
 * MO_READABLE or MO_WRITABLE; its callback receives that flag, plus
 * MO_HANGUP when the kernel reports an error or hang-up on the fd. */
enum mo_io_events { MO_READABLE = 1, MO_WRITABLE = 2, MO_HANGUP = 4 };
typedef void (*mo_io_fn)(mo_loop_t *loop, int fd, unsigned events, void *arg);

/* Flags for mo_loop_new(). MO_LOOP_VIRTUAL_CLOCK makes a loop whose clock
 * starts at 0 and moves only through mo_loop_advance(): Twisted's task.Clock,
 * for tests that must not sleep. */
enum mo_loop_flags { MO_LOOP_VIRTUAL_CLOCK = 1 };

/* Creates a loop owned by the caller, who frees it with mo_loop_free().
 * Stores it in *loopp. Errors: MO_EINVAL (NULL loopp or unknown flags),
 * MO_ENOMEM, or the errno of epoll_create1()/eventfd() (e.g. MO_EMFILE).
 * Any thread; the loop then belongs to the thread that runs it. */
MO_EXTERN int mo_loop_new(mo_loop_t **loopp, unsigned flags);

/* Closes the door to other threads: from now on mo_call_from_thread() on
 * this loop returns MO_ESHUTDOWN. A loop attached to a host loop
 * (morsel/embed.h) is detached first: the adapter lets go of the host.
 * Then it waits for every pool job this
 * loop submitted, on its default pool and on pools from mo_pool_new(), and
 * runs their done callbacks here (queued jobs run first; the default pool
 * is freed): after it returns no worker posts into the loop, so freeing it
 * is safe. A job whose work waits for this thread therefore deadlocks it:
 * cancel or finish such work first. Then every call accepted before runs
 * now, on the calling thread, before this returns, so none is lost.
 * Idempotent. Other pending work (delayed calls, ready calls, watchers) is
 * left as it is. Errors: MO_EINVAL (NULL), MO_EBUSY (called while the loop
 * runs). Loop thread. */
MO_EXTERN int mo_loop_close(mo_loop_t *loop);

/* Frees the loop. Closes it first if that was not done (see mo_loop_close()).
 * Jobs in flight: this blocks until every job the loop submitted, to any
 * pool, has run (queued ones run first, unless their pool is being freed
 * with MO_POOL_CANCEL_QUEUED) and its done callback has run here, on this
 * thread; no worker touches the loop afterwards. Then the layers built on
 * the loop let go of it: cooperative tasks still running are stopped
 * (their Deferreds errback with MO_ECANCELED, quietly: task.h), a watchdog
 * is stopped.
 * Delayed calls, ready calls and watchers that are still pending are dropped
 * without being called: run the loop until mo_loop_alive() is 0 first if
 * their arguments own resources. The watched file descriptors are not
 * closed. No other thread may still use the loop. NULL is ignored. Calling it
 * from a callback of this loop is undefined. Loop thread. */
MO_EXTERN void mo_loop_free(mo_loop_t *loop);

/* How mo_loop_run() runs. */
enum mo_run_mode {
    MO_RUN_DEFAULT = 0, /* until stopped or until no work remains */
    /* One iteration. It waits for work (in step 5 above) only if no
     * callback ran before: no call from a thread, no due delayed call, no
     * ready call. After a wait, steps 1-3 run once more, so what the wait
     * was for (a timer, a thread's call) runs in this same call. */
    MO_RUN_ONCE = 1,
    MO_RUN_NOWAIT = 2 /* one iteration; never waits */
};

/* Runs the loop. With MO_RUN_DEFAULT it returns when mo_loop_stop() was
 * called or when nothing is left that could make a callback run: no ready
 * or delayed calls, no active watchers, no holds (mo_loop_hold()), no calls
 * from threads waiting. On a virtual-clock loop it never waits for time to
 * pass: when nothing is due and only delayed calls remain it returns; move
 * time with mo_loop_advance(). Returns 0, or MO_EINVAL (NULL loop or bad
 * mode), MO_EBUSY (the loop is already running: mo_loop_run() from one of its
 * own callbacks; or it is attached to a host loop, which runs it through
 * mo_embed_run()), MO_ESHUTDOWN (the loop was closed). Loop thread. */
MO_EXTERN int mo_loop_run(mo_loop_t *loop, int mode);

/* Asks a running loop to stop: the current pass of calls finishes, then
 * mo_loop_run() returns. Errors: MO_EINVAL (NULL, or the loop is not
 * running). Loop thread, typically from a callback. */
MO_EXTERN int mo_loop_stop(mo_loop_t *loop);

/* Stops the loop from any thread: queued like mo_call_from_thread(), so it
 * takes effect after the calls this thread posted before it. If the loop is
 * not running, the next mo_loop_run() stops after the iteration that runs
 * it. Errors: those of mo_call_from_thread(). Any thread. */
MO_EXTERN int mo_loop_stop_from_thread(mo_loop_t *loop);

/* The loop's cached time: the monotonic clock (or virtual clock) read at the
 * start of the current iteration, in nanoseconds. Loop thread. */
MO_EXTERN int64_t mo_loop_now(const mo_loop_t *loop);

/* Reads the clock into the cached time now, outside the iteration's rhythm:
 * for a delay measured from "now" after a long piece of work. No-op on a
 * virtual clock. Loop thread. */
MO_EXTERN void mo_loop_update_time(mo_loop_t *loop);

/* Virtual clock: moves time forward by `ns` and runs one non-waiting
 * iteration, which runs every delayed call that became due in deadline order,
 * exactly as the real loop would after sleeping that long, and one pass of
 * the ready queue (step 4 above). `ns` may be 0.
 * Errors: MO_EINVAL (NULL, negative ns, or not a virtual-clock loop),
 * MO_ERANGE (time would overflow), MO_EBUSY (called from a callback).
 * Loop thread. */
MO_EXTERN int mo_loop_advance(mo_loop_t *loop, int64_t ns);

/* Sets how much callback time may pass between two polls of the file
 * descriptors while calls are ready (default MO_USEC(100)). Smaller is
 * more responsive I/O, larger is fewer system calls. The clock is read once
 * per batch of calls, the batch sized from the calls' measured cost, so the
 * interval holds for calls whose cost is steady; when calls turn slow at
 * once, a batch (at most 256 calls) may finish before the loop notices.
 * The cooperator's slices always end with a poll. A virtual-clock loop
 * does not use it (one pass per iteration, a poll every iteration).
 * Errors: MO_EINVAL (NULL loop, or ns < 0). Loop thread. */
MO_EXTERN int mo_loop_set_io_interval(mo_loop_t *loop, int64_t ns);

/* Sets how far past a delayed call's deadline the loop may sleep when it
 * sleeps for that call and another call is due within that much after it
 * (default MO_USEC(250)): calls due close together then run in one wake-up
 * instead of one each, while a lone call (a heartbeat) still wakes on time.
 * A call never runs early; it runs at most this much later than an exact
 * wake-up would run it (the kernel adds its own timer slack, 50 us by
 * default, either way). 0 wakes exactly; libev and libuv round every sleep
 * up to 1 ms. Errors: MO_EINVAL (NULL loop,
 * ns < 0). Loop thread. */
MO_EXTERN int mo_loop_set_timer_slack(mo_loop_t *loop, int64_t ns);

/* A hold keeps mo_loop_run() from returning for lack of work: take one while
 * another thread will post calls later, release it when that is over. Holds
 * are counted. mo_loop_release() without a hold returns MO_EINVAL.
 * Loop thread. */
MO_EXTERN int mo_loop_hold(mo_loop_t *loop);
MO_EXTERN int mo_loop_release(mo_loop_t *loop);

/* 1 if the loop has work that could make a callback run (see
 * mo_loop_run()), else 0; 0 for NULL (a predicate never answers with an
 * error code, which would read as true). Loop thread. */
MO_EXTERN int mo_loop_alive(const mo_loop_t *loop);

/* Queues fn(loop, arg) to run soon, after everything already queued:
 * Twisted's callLater(0). Called from a callback, fn runs in a later pass,
 * never in the current one. Not cancellable (use mo_call_later() with delay
 * 0 for a cancellable call). The queue grows as needed: no allocation per
 * call in steady state. Errors: MO_EINVAL (NULL loop or fn), MO_ENOMEM (the
 * queue could not grow; nothing was queued). Loop thread. */
MO_EXTERN int mo_call_soon(mo_loop_t *loop, mo_call_fn fn, void *arg);

/* Schedules fn(loop, arg) to run `delay` ns after mo_loop_now(). Calls due at
 * the same time run in the order they were scheduled. Stores the call's id
 * in *idp if idp is not NULL. A delay of 0 from a callback runs in a later
 * iteration. Errors: MO_EINVAL (NULL loop or fn, negative delay), MO_ERANGE
 * (now + delay overflows), MO_ENOMEM. Loop thread. */
MO_EXTERN int mo_call_later(mo_loop_t *loop, int64_t delay, mo_call_fn fn, void *arg,
                            mo_call_id *idp);

/* Like mo_call_later() with an absolute deadline on the loop's clock. A
 * deadline before mo_loop_now() is stored as mo_loop_now(): the call is
 * due at once, after the calls already due, and mo_call_time() gives that
 * time, not the deadline asked for. Errors: MO_EINVAL (NULL loop or fn,
 * negative deadline), MO_ENOMEM. Loop thread. */
MO_EXTERN int mo_call_at(mo_loop_t *loop, int64_t deadline, mo_call_fn fn, void *arg,
                         mo_call_id *idp);

/* Cancels a pending delayed call: it will not run and never wakes the loop.
 * A callback may cancel any call, including ones due in the same iteration.
 * Errors: MO_EINVAL (NULL loop), MO_EALREADY (the call already ran, is
 * running, or was cancelled), MO_ENOENT (no such id was ever given out).
 * O(1) for calls more than a tick (about 1 ms) away, O(log n) otherwise.
 * Loop thread. */
MO_EXTERN int mo_call_cancel(mo_loop_t *loop, mo_call_id id);

/* Reschedules a pending call to run `delay` ns after mo_loop_now()
 * (Twisted's DelayedCall.reset). It then orders after calls already
 * scheduled for the same time. Errors: as mo_call_cancel(), plus MO_EINVAL
 * for a negative delay and MO_ERANGE for overflow. O(log n). Loop thread. */
MO_EXTERN int mo_call_reset(mo_loop_t *loop, mo_call_id id, int64_t delay);

/* Pushes a pending call's deadline `by` ns later (or earlier if negative;
 * Twisted's DelayedCall.delay). A new deadline before mo_loop_now() is
 * stored as mo_loop_now(), as with mo_call_at(): so after
 * mo_call_delay(loop, id, -MO_SEC(4)) on a call due in 1 s, mo_call_time()
 * gives now, not the deadline minus 4 s. Then the call orders after the
 * calls already due. Errors: as mo_call_reset(), MO_EINVAL if the new
 * deadline would be negative. O(log n). Loop thread. */
MO_EXTERN int mo_call_delay(mo_loop_t *loop, mo_call_id id, int64_t by);

/* 1 if the call is pending, 0 if it ran, is running, was cancelled, or was
 * never given out, and 0 for a NULL loop. Loop thread. */
MO_EXTERN int mo_call_active(const mo_loop_t *loop, mo_call_id id);

/* Stores a pending call's deadline in *when: as stored, so a deadline that
 * was in the past when it was set reads as the loop's time then (see
 * mo_call_at(), mo_call_delay()). Errors: as mo_call_cancel(), and
 * MO_EINVAL for NULL when. Loop thread. */
MO_EXTERN int mo_call_time(const mo_loop_t *loop, mo_call_id id, int64_t *when);

/* Starts watching `fd` for one direction (MO_READABLE or MO_WRITABLE):
 * fn(loop, fd, events, arg) runs in each iteration where the fd is ready
 * (level-triggered) until the watcher is stopped. Readiness can be
 * spurious, so use non-blocking fds. Stop the watcher before closing the
 * fd. Stores the watcher's id in *idp if not NULL. Errors: MO_EINVAL (NULL
 * loop or fn, fd < 0, events not exactly one direction), MO_EEXIST (a
 * watcher for this fd and direction is active), MO_EBADF (fd is not open),
 * MO_EPERM (the fd cannot be polled, e.g. a regular file), MO_ENOMEM.
 * Loop thread. */
MO_EXTERN int mo_io_start(mo_loop_t *loop, int fd, unsigned events, mo_io_fn fn, void *arg,
                          mo_io_id *idp);

/* Stops a watcher; its callback will not run again, even for readiness
 * already reported in this iteration. Errors: MO_EINVAL (NULL loop),
 * MO_EALREADY (already stopped), MO_ENOENT (never given out).
 * Loop thread. */
MO_EXTERN int mo_io_stop(mo_loop_t *loop, mo_io_id id);

/* Queues fn(loop, arg) to run on the loop thread in its next iteration;
 * a backlog (producers faster than the loop) runs io_interval of it per
 * iteration, so timers, I/O and tasks keep their turns.
 * Calls from one thread run in the order they were posted; that is the
 * only order promised. Calls from different threads may run in any order,
 * whatever happened between the threads: a call the loop's own thread
 * posts may run before one another thread posted earlier, even one that
 * thread posted before being joined. Wakes the loop
 * if it sleeps, with at most one wake-up in flight however many calls are
 * posted. Never blocks and never loses a call: 0 means fn will run (at the
 * latest in mo_loop_close()), an error means it will not. Errors:
 * MO_EINVAL (NULL loop or fn), MO_ESHUTDOWN (the loop was closed),
 * MO_ENOMEM. Any thread, including the loop's. The loop must not have been
 * freed: join posting threads before mo_loop_free(). */
MO_EXTERN int mo_call_from_thread(mo_loop_t *loop, mo_call_fn fn, void *arg);

/* Private to morsel (its fields are not API): the node of a call posted
 * from another thread without allocating; fn_ gets the node as its arg.
 * Pool jobs embed one, so that a finished job always reaches its loop,
 * whatever memory is left. */
struct mo_post_ {
    struct mo_post_ *next_;
    mo_call_fn fn_;
};

#ifdef __cplusplus
}
#endif
#endif /* MORSEL_LOOP_H */
