/* morsel: keep an event loop responsive while long work runs.
 *
 * The whole public API. Names are prefixed mo_ / MO_. Each function's comment
 * in the headers below says who owns what, which thread may call it, and
 * what each error means. Start with morsel/loop.h.
 */
#ifndef MORSEL_H
#define MORSEL_H

#include "morsel/common.h"
#include "morsel/loop.h"
#include "morsel/embed.h"
#include "morsel/deferred.h"
#include "morsel/stats.h"
#include "morsel/pool.h"
#include "morsel/task.h"
#include "morsel/coro.h"
#include "morsel/stream.h"
#include "morsel/walk.h"

#endif /* MORSEL_H */
