/* morsel demo's judgement, apart so that the tests can give it results
 * made by hand (a wrong answer, a slow phase) without a server. */
#ifndef MORSEL_TOOLS_DEMO_H
#define MORSEL_TOOLS_DEMO_H

#include <stddef.h>
#include <stdint.h>

#include "loadgen.h"

/* The phases, in the order they run. */
enum { DEMO_IDLE, DEMO_MORSEL, DEMO_BLOCKING, DEMO_STEPS, DEMO_PHASES };

/* Whether a run passed: every phase ran (the seed's-steps phase may be cut
 * at its time limit: its unfinished answers are not errors), every answer
 * that came was right, and the responsive phase (DEMO_MORSEL) kept its
 * ping p99 during the work under `limit` ns. Returns 0, or 1 with the
 * first reason in why[size] ("phase 2 morsel: factorial: digit 7 of 5566
 * is '3', expected '4'"). */
int demo_verdict(const struct loadgen_result res[DEMO_PHASES], int64_t limit, char *why,
                 size_t size);

/* Whether phase `i` (DEMO_STEPS only) stopped at its time limit with
 * answers unfinished: a cut, not a failure. */
int demo_phase_cut(const struct loadgen_result *res, int i);

#endif
