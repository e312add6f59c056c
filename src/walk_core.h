/* The walk's engine, under the Deferred-returning mo_walk(): internal to the
 * library and its tests. */
#ifndef MORSEL_WALK_CORE_H
#define MORSEL_WALK_CORE_H

#include "morsel.h"

struct mo__walk;

/* Called once when a walk ends: err is 0, MO_ECANCELED, or the error that
 * stopped it with `path` the directory it concerns (NULL if none, or if
 * copying the path ran out of memory); totals is valid during the call. */
typedef void (*mo__walk_done_fn)(void *arg, int err, const char *path,
                                 const mo_walk_totals *totals);

/* Starts a walk driven by the loop; done() runs once at the end (never
 * from within this call). Errors: MO_EINVAL (NULL loop, top or visit,
 * negative slice, unknown flags), MO_ENOMEM. */
int mo__walk_start(mo_loop_t *loop, const char *top, mo_walk_visit_fn visit, void *arg,
                   const mo_walk_opts *opts, mo__walk_done_fn done, void *done_arg,
                   struct mo__walk **wp);

/* Stops a walk that has not ended: closes every descriptor at once and
 * calls done(MO_ECANCELED) before returning; the walk's memory is freed
 * then or, from visit() or on_error(), when they return. The walk must not
 * be used after done() ran. */
int mo__walk_cancel(struct mo__walk *w);

#endif
