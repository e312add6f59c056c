/* morsel — stats: not yet part of the API (filled in by its own issue). */
#ifndef MORSEL_STATS_H
#define MORSEL_STATS_H

#include "loop.h"

#endif /* MORSEL_STATS_H */
