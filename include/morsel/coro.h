/* morsel — coro: not yet part of the API (filled in by its own issue). */
#ifndef MORSEL_CORO_H
#define MORSEL_CORO_H

#include "loop.h"

#endif /* MORSEL_CORO_H */
