/* morsel-libevent — a morsel loop inside a libevent event_base.
 *
 * Link with -lmorsel-libevent (pkg-config morsel-libevent, or CMake's
 * morsel::libevent).
 *
 * libevent 2.1 has no hook that runs before it sleeps, so the adapter
 * needs none: a persistent read event on the morsel loop's fd and a timer
 * set to morsel's timeout after every run. Work that a libevent callback
 * queues on the morsel loop makes its fd readable (morsel/embed.h), and a
 * timeout of 0 is a zero-delay timer, which libevent runs after polling
 * its I/O once: every embedded run (one cooperator slice, 1 ms by default,
 * plus one call) is followed by libevent's own I/O.
 *
 * The read event stays added while the loop is attached, so
 * event_base_dispatch() keeps running until event_base_loopexit() or
 * event_base_loopbreak(), or until the loop is detached.
 *
 * Threads: the thread that runs the event_base and the morsel loop.
 */
#ifndef MORSEL_LIBEVENT_H
#define MORSEL_LIBEVENT_H

#include <event2/event.h>
#include <morsel.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Attaches `loop` to the event_base `base`: from now on the base's
 * iterations run it (mo_loop_run() on it returns MO_EBUSY). Errors:
 * MO_EINVAL (NULL argument, or a virtual-clock loop), MO_EBUSY (`loop` is
 * attached already, to this or another host), MO_ESHUTDOWN (`loop` was
 * closed), MO_ENOMEM (libevent could not create or add an event). On error
 * nothing is attached. */
MO_EXTERN int mo_event_attach(mo_loop_t *loop, struct event_base *base);

/* Detaches `loop` from its event_base: its events are freed at once. The
 * morsel loop is then an ordinary one; nothing posted to it from other
 * threads is lost. mo_loop_close() and mo_loop_free() on an attached loop
 * detach it the same way. Errors: MO_EINVAL (NULL, or not attached by
 * mo_event_attach()), MO_EBUSY (called from one of the morsel loop's
 * callbacks: detach from another libevent callback, or after the base's
 * loop returns). */
MO_EXTERN int mo_event_detach(mo_loop_t *loop);

#ifdef __cplusplus
}
#endif
#endif /* MORSEL_LIBEVENT_H */
