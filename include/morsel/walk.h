/* morsel — walk: not yet part of the API (filled in by its own issue). */
#ifndef MORSEL_WALK_H
#define MORSEL_WALK_H

#include "loop.h"

#endif /* MORSEL_WALK_H */
