/* morsel — running a morsel loop inside another event loop: libuv, GLib,
 * libevent, or a hand-written epoll or poll loop (the "host").
 *
 * The host sees one file descriptor and one timeout, as with libuv's
 * uv_backend_fd() and uv_backend_timeout(), but complete:
 *
 *   - mo_embed_fd() becomes readable whenever the morsel loop has something
 *     to do that the host could not know of: a watched fd is ready, a call
 *     came from another thread (a pool job finished, mo_call_from_thread()),
 *     or a host callback queued morsel work (mo_call_soon(), an earlier
 *     mo_call_later(), a task that became runnable) while the loop was not
 *     running. So a host without a "before sleeping" hook (libevent) needs
 *     nothing but the fd and a timer re-armed after each run.
 *   - mo_embed_timeout() is how long the host may sleep before the loop
 *     needs to run: 0 while calls are ready (the cooperator is one of them
 *     while tasks are runnable), the time to the next delayed call, or -1
 *     when only the fd can bring work. The rounding that a millisecond host
 *     needs is done by mo_embed_timeout_ms(), upwards, so a host never wakes
 *     before the deadline and finds nothing to do (no busy loop).
 *   - mo_embed_run() runs one non-waiting iteration (see morsel/loop.h): the
 *     calls from threads, the due delayed calls, ready calls until
 *     io_interval (100 us by default) of them have run or a cooperator slice
 *     (1 ms by default, the whole of a run while tasks are runnable) has
 *     ended, and one poll of the watched fds with timeout 0. So one embedded
 *     run holds the host for about one slice plus one call, as one iteration
 *     of morsel's own loop holds morsel's I/O (DESIGN rule 19).
 *
 * A hand-written host loop, complete (examples/embed_epoll.c and
 * examples/embed_poll.c are the same with error handling):
 *
 *   mo_embed_attach(loop, NULL, NULL);
 *   for (;;) {
 *       int ms;
 *       mo_embed_timeout_ms(loop, &ms);          // right before sleeping
 *       struct pollfd p[] = {{mo_embed_fd(loop), POLLIN, 0}, ...host fds};
 *       poll(p, n, ms);
 *       ... the host's own work ...
 *       mo_embed_run(loop);                      // may run when not needed
 *   }
 *
 * Running when nothing is due is harmless (it costs one epoll_wait(0)); not
 * running when the fd is readable or the timeout has passed delays morsel's
 * work. An attached loop sleeps, as far as other threads are concerned,
 * whenever it is not inside mo_embed_run(): their calls then make the fd
 * readable. An idle attached loop costs the host nothing: it does not
 * become readable and its timeout is -1, so the host sleeps as long as it
 * would alone.
 *
 * Adapters for libuv, GLib and libevent are small separate libraries built
 * on these functions (morsel/uv.h, morsel/glib.h, morsel/libevent.h).
 *
 * Threads: every function here is for the loop's thread, which is the host
 * loop's thread. Calls from other threads go through mo_call_from_thread()
 * as always.
 */
#ifndef MORSEL_EMBED_H
#define MORSEL_EMBED_H

#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a host adapter tells the loop when it attaches: `detach` is called
 * when the loop lets go of the host without the adapter asking: when
 * mo_loop_close() or mo_loop_free() runs on a loop still attached, and
 * from mo_embed_detach(). It must stop the host from watching the fd and
 * from calling mo_embed_run() on this loop again (it is called after the
 * loop has forgotten the attachment: mo_embed_*() on the loop return
 * MO_EINVAL from then on). `name` names the host in messages. Both may be
 * NULL; the adapter keeps the object alive while attached. */
struct mo_embed_ops {
    const char *name;
    void (*detach)(mo_loop_t *loop, void *arg);
};

/* Attaches the loop to a host: from now on it is run by mo_embed_run()
 * only, and it counts as sleeping between runs. `ops` (may be NULL) and
 * `arg` are the adapter's; ops->detach(loop, arg) is called when the loop
 * is detached (see struct mo_embed_ops). Calls posted from threads before
 * attaching are not lost: if any are pending, the timeout is 0.
 * Errors: MO_EINVAL (NULL loop, or a virtual-clock loop: its time moves
 * only by mo_loop_advance()), MO_EBUSY (already attached, to this host or
 * another; or called while mo_loop_run() runs the loop), MO_ESHUTDOWN (the
 * loop was closed). Loop thread. */
MO_EXTERN int mo_embed_attach(mo_loop_t *loop, const struct mo_embed_ops *ops, void *arg);

/* Detaches the loop from its host: calls ops->detach(loop, arg) of the
 * attachment, then the loop is an ordinary loop again, for mo_loop_run() or
 * another attach. Nothing is lost: calls posted from threads meanwhile run
 * at its next run. `ops` must be the one given to mo_embed_attach(), so an
 * adapter never detaches another's attachment. Errors: MO_EINVAL (NULL
 * loop, not attached, or attached with other ops), MO_EBUSY (called from a
 * callback of this loop, inside mo_embed_run(): detach from a host
 * callback instead). Loop thread. */
MO_EXTERN int mo_embed_detach(mo_loop_t *loop, const struct mo_embed_ops *ops);

/* The file descriptor the host watches for readability (the loop's epoll
 * fd; level-triggered, never read or closed by the host). It stays the
 * same for the loop's lifetime. Returns the fd, or MO_EINVAL for a NULL
 * loop. Loop thread. */
MO_EXTERN int mo_embed_fd(const mo_loop_t *loop);

/* Stores in *ns how long the host may sleep before mo_embed_run() is due:
 * 0 if calls are ready, a call from a thread is pending or a delayed call is
 * due; else the nanoseconds until the next delayed call (plus the timer
 * slack, only when that merges two wake-ups: mo_loop_set_timer_slack());
 * else -1, no limit. Call it right before the host sleeps. Reads the clock.
 * Errors: MO_EINVAL (NULL loop or ns, or the loop is not attached).
 * Loop thread. */
MO_EXTERN int mo_embed_timeout(mo_loop_t *loop, int64_t *ns);

/* mo_embed_timeout() for hosts that sleep in milliseconds (libuv, GLib,
 * poll, epoll_wait): rounded up, so the host never wakes before the
 * deadline, and capped at INT32_MAX; -1 for no limit. Errors: as
 * mo_embed_timeout(). Loop thread. */
MO_EXTERN int mo_embed_timeout_ms(mo_loop_t *loop, int *ms);

/* Runs one non-waiting iteration of the attached loop (see the top of this
 * file for what it runs and how long it may take). mo_loop_stop() from one
 * of its callbacks ends it early. Returns 0, or MO_EINVAL (NULL loop, or not
 * attached), MO_EBUSY (called from one of the loop's own callbacks: the run
 * in progress is left undisturbed), or the error of the poll (e.g.
 * MO_ENOMEM from the kernel). Loop thread. */
MO_EXTERN int mo_embed_run(mo_loop_t *loop);

#ifdef __cplusplus
}
#endif
#endif /* MORSEL_EMBED_H */
