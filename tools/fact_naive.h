/* fact_naive: the seed's optFactorial as the CLI runs it (--naive):
 * acc *= n, n-1, ... `steps` multiplications per zero-delay call, or
 * adaptive, with the cooperator choosing. The teaching copy, without the
 * adaptive mode, is examples/opt_factorial.c. */
#ifndef MORSEL_TOOLS_FACT_NAIVE_H
#define MORSEL_TOOLS_FACT_NAIVE_H

#include <gmp.h>

#include "morsel.h"

/* Starts computing n! and stores in *dp a Deferred (one reference for the
 * caller) that fires with an `mpz_t *` holding n!, owned by the Deferred
 * (take it with mo_result_take() or mpz_swap() it out). steps > 0 is the
 * number of multiplications per zero-delay call; 0 runs it as a cooperator
 * task of one multiplication per step, which the cooperator batches into
 * its time slices (task.h). Cancelling stops it (at the next chunk).
 * Errors (nothing runs): MO_EINVAL (NULL loop or dp), MO_ENOMEM.
 * Loop thread. */
int fact_naive(mo_loop_t *loop, unsigned long n, unsigned long steps, mo_deferred_t **dp);

#endif
