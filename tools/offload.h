/* offload: runs indivisible pieces of work on worker threads and reports
 * each back on the loop thread: a thin layer over the worker pool
 * (morsel/pool.h) with a private pool whose workers run under SCHED_IDLE
 * (MO_POOL_PRIORITY_IDLE), below the loop thread, so the loop is scheduled
 * first when its timers are due. */
#ifndef MORSEL_TOOLS_OFFLOAD_H
#define MORSEL_TOOLS_OFFLOAD_H

#include "morsel.h"

struct offload;

/* Runs on a worker thread. */
typedef void (*offload_work_fn)(void *arg);

/* Creates a pool of `nthreads` workers (0: one per online CPU) for `loop`.
 * Returns 0 or an error of mo_pool_new() (MO_ENOMEM, MO_EAGAIN, MO_EINVAL
 * above MO_POOL_MAX_THREADS). Loop thread. */
int offload_new(struct offload **op, mo_loop_t *loop, unsigned nthreads);

/* The number of workers. */
unsigned offload_threads(const struct offload *o);

/* Runs work(arg) on a worker, then done(loop, arg) on the loop thread. The
 * loop stays alive until done has run. Errors (nothing runs): MO_ENOMEM, or
 * those of mo_pool_submit(). Loop thread. */
int offload_submit(struct offload *o, offload_work_fn work, mo_call_fn done, void *arg);

/* Lets the queued jobs run, joins the workers and frees. Their `done` calls
 * are posted to the loop: run it until they have run. NULL is ignored.
 * Loop thread. */
void offload_free(struct offload *o);

#endif
