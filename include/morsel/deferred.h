/* morsel — deferred: not yet part of the API (filled in by its own issue). */
#ifndef MORSEL_DEFERRED_H
#define MORSEL_DEFERRED_H

#include "loop.h"

#endif /* MORSEL_DEFERRED_H */
