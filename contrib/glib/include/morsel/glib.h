/* morsel-glib — a morsel loop inside a GLib main context (so GTK programs
 * get it too).
 *
 * Link with -lmorsel-glib (pkg-config morsel-glib, or CMake's
 * morsel::glib).
 *
 * The morsel loop becomes a GSource: its prepare callback reports morsel's
 * timeout (rounded up to milliseconds, so GLib never wakes early), the
 * loop's fd is added with g_source_add_unix_fd(), check sees it readable or
 * the time come, and dispatch runs the morsel loop once (one cooperator
 * slice, 1 ms by default, plus one call). GLib dispatches the ready sources
 * of the highest priority only: a source of priority P that is always ready
 * starves the sources of lower priority (higher numbers). Attach at
 * G_PRIORITY_DEFAULT to share the loop with timeouts and I/O; a GTK program
 * whose morsel tasks are long and CPU-bound may prefer
 * G_PRIORITY_DEFAULT_IDLE, so that they never delay redrawing (priority
 * 120) — then GTK's own work delays morsel's timers instead.
 *
 * Threads: the thread that owns the GMainContext and runs the morsel loop.
 */
#ifndef MORSEL_GLIB_H
#define MORSEL_GLIB_H

#include <glib.h>
#include <morsel.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Attaches `loop` to the GMainContext `context` (NULL: the global default
 * context) as a GSource of the given priority: from now on the context's
 * iterations run it (mo_loop_run() on it returns MO_EBUSY). Errors:
 * MO_EINVAL (NULL loop, or a virtual-clock loop), MO_EBUSY (`loop` is
 * attached already, to this or another host), MO_ESHUTDOWN (`loop` was
 * closed). On error nothing is attached. */
MO_EXTERN int mo_glib_attach(mo_loop_t *loop, GMainContext *context, int priority);

/* Detaches `loop` from its context: its GSource is destroyed at once. The
 * morsel loop is then an ordinary one; nothing posted to it from other
 * threads is lost. mo_loop_close() and mo_loop_free() on an attached loop
 * detach it the same way. Errors: MO_EINVAL (NULL, or not attached by
 * mo_glib_attach()), MO_EBUSY (called from one of the morsel loop's
 * callbacks: detach from another GLib callback, or after the main loop
 * returns). */
MO_EXTERN int mo_glib_detach(mo_loop_t *loop);

#ifdef __cplusplus
}
#endif
#endif /* MORSEL_GLIB_H */
