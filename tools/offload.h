/* offload: runs indivisible pieces of work on worker threads and reports
 * each back on the loop thread.
 *
 * A stand-in for the worker pool (src/pool.c, mo_defer_to_thread), which
 * has not landed yet: a fixed set of pthreads, a FIFO of jobs, and
 * mo_call_from_thread() for the way back. Everything that uses it goes
 * through offload_submit(), so switching to the pool is that one function. */
#ifndef MORSEL_TOOLS_OFFLOAD_H
#define MORSEL_TOOLS_OFFLOAD_H

#include "morsel.h"

struct offload;

/* Runs on a worker thread. */
typedef void (*offload_work_fn)(void *arg);

/* Starts `nthreads` workers (0: one per online CPU) for `loop`. Returns 0,
 * -ENOMEM or a pthread error (negated). Loop thread. */
int offload_new(struct offload **op, mo_loop_t *loop, unsigned nthreads);

/* The number of workers. */
unsigned offload_threads(const struct offload *o);

/* Runs work(arg) on a worker, then done(loop, arg) on the loop thread.
 * Holds the loop (mo_loop_hold) while the job is out. Errors: -ENOMEM,
 * or those of mo_loop_hold(). Loop thread. */
int offload_submit(struct offload *o, offload_work_fn work, mo_call_fn done, void *arg);

/* Lets the workers finish the queued jobs, joins them and frees. The loop
 * must then run until every `done` has run (they are posted as thread
 * calls). NULL is ignored. Loop thread. */
void offload_free(struct offload *o);

#endif
