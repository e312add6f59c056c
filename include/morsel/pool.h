/* morsel — pool: not yet part of the API (filled in by its own issue). */
#ifndef MORSEL_POOL_H
#define MORSEL_POOL_H

#include "loop.h"

#endif /* MORSEL_POOL_H */
