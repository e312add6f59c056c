/* morsel — task: not yet part of the API (filled in by its own issue). */
#ifndef MORSEL_TASK_H
#define MORSEL_TASK_H

#include "loop.h"

#endif /* MORSEL_TASK_H */
