/* morsel-uv — a morsel loop inside a libuv loop, and a libuv loop inside a
 * morsel loop.
 *
 * Link with -lmorsel-uv (pkg-config morsel-uv, or CMake's morsel::uv).
 *
 * morsel inside libuv (mo_uv_attach): the morsel loop's fd (morsel/embed.h)
 * is watched with a uv_poll_t; a uv_prepare_t, right before libuv sleeps,
 * sets a uv_timer_t to morsel's timeout (or starts a uv_idle_t when it is
 * 0, so libuv polls without sleeping); a uv_check_t, after libuv's I/O
 * callbacks, runs the morsel loop once if the fd was readable or its time
 * has come. So every libuv iteration is libuv's own I/O plus at most one
 * embedded run (one cooperator slice, 1 ms by default, plus one call).
 * The poll handle is referenced: uv_run(UV_RUN_DEFAULT) keeps running while
 * the loop is attached, until uv_stop() (which a morsel callback may call)
 * or until the loop is detached.
 *
 * libuv inside morsel (mo_uv_drive): libuv's backend fd (uv_backend_fd) is
 * watched by the morsel loop, and a delayed call follows
 * uv_backend_timeout(); each time libuv has something to do, the morsel
 * loop runs uv_run(uv, UV_RUN_NOWAIT) in a callback. For a library that
 * uses libuv internally, driven by a program whose loop is morsel's.
 *
 * Threads: all of these are for the thread that runs both loops.
 */
#ifndef MORSEL_UV_H
#define MORSEL_UV_H

#include <morsel.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Attaches `loop` to the libuv loop `uv`: from now on uv_run(uv, ...) runs
 * it (mo_loop_run() on it returns MO_EBUSY). The adapter's handles live in
 * `uv`. Errors: MO_EINVAL (NULL argument, or a virtual-clock loop),
 * MO_EBUSY (`loop` is attached already, to this or another host), MO_EEXIST
 * (libuv already watches the loop's fd in `uv`), MO_ESHUTDOWN (`loop` was
 * closed), MO_ENOMEM, or another error of uv_poll_init() (libuv's codes are
 * negated errno values, as morsel's). On error nothing is attached. */
MO_EXTERN int mo_uv_attach(mo_loop_t *loop, uv_loop_t *uv);

/* Detaches `loop` from its libuv loop: the adapter's handles are closed
 * (uv_close) and their memory is freed by their close callbacks, in the
 * libuv loop's next iteration: run it once more before uv_loop_close().
 * The morsel loop is then an ordinary one; nothing posted to it from other
 * threads is lost. mo_loop_close() and mo_loop_free() on an attached loop
 * detach it the same way. Errors: MO_EINVAL (NULL, or not attached by
 * mo_uv_attach()), MO_EBUSY (called from one of the morsel loop's
 * callbacks: detach from a libuv callback, or after uv_run() returns). */
MO_EXTERN int mo_uv_detach(mo_loop_t *loop);

/* ---- libuv inside morsel ---- */

typedef struct mo_uv_driver mo_uv_driver_t;

/* Makes the morsel loop `loop` drive the libuv loop `uv`: libuv's
 * callbacks run from morsel callbacks whenever libuv has something to do.
 * Stores the driver in *driverp; the caller stops it with
 * mo_uv_drive_stop() before freeing either loop. While libuv has work
 * (uv_loop_alive()), the driver's watcher on libuv's fd keeps the morsel
 * loop alive; once libuv has none, mo_loop_run() may return. After calling into libuv from a morsel
 * callback (starting a handle or a request, closing one), call mo_uv_drive_update(): libuv
 * registers new fds and timers only when it runs. Errors: MO_EINVAL (NULL argument), MO_ENOMEM, or
 * those of mo_io_start() on libuv's backend fd. Loop thread. */
MO_EXTERN int mo_uv_drive(mo_loop_t *loop, uv_loop_t *uv, mo_uv_driver_t **driverp);

/* Tells the driver that libuv's state changed outside libuv's callbacks:
 * libuv runs once soon (in a later pass of the morsel loop), which
 * registers what was started and re-reads its timeout. Errors: MO_EINVAL
 * (NULL), MO_ENOMEM. Loop thread. */
MO_EXTERN int mo_uv_drive_update(mo_uv_driver_t *driver);

/* Stops driving and frees the driver. libuv's handles are left as they
 * are; run or close the libuv loop as usual afterwards. NULL is ignored.
 * Not from a libuv callback that the driver runs (the driver is in use):
 * that returns MO_EBUSY and changes nothing. Loop thread. */
MO_EXTERN int mo_uv_drive_stop(mo_uv_driver_t *driver);

#ifdef __cplusplus
}
#endif
#endif /* MORSEL_UV_H */
