/* fact_loop: runs a fact plan (fact.h) on a morsel loop. Pieces that fit a
 * slice run on the loop thread as the steps of a cooperator task (task.h),
 * one piece per step, within the cooperator's time slices; pieces too large
 * for one are offloaded to worker threads, at most one per worker at a time
 * and the most urgent first, so the loop never blocks on a multiplication
 * and the workers never wait on the loop. */
#ifndef MORSEL_TOOLS_FACT_LOOP_H
#define MORSEL_TOOLS_FACT_LOOP_H

#include "fact.h"
#include "offload.h"

/* Called on the loop thread after each piece has run, with the plan
 * (borrowed): for streaming the text chunks as they become ready. It may
 * be called from within a cooperator step. */
typedef void (*fact_progress_fn)(struct fact_plan *plan, void *arg);

/* Flags of fact_loop_start(). */
enum fact_loop_flags {
    /* Every piece goes to a worker, the small ones too; the loop thread only
     * hands them out. On a machine whose cores are all busy, a loop thread
     * that stays asleep gets the CPU back sooner when a timer is due than
     * one that computes (see BENCHMARKS.md, "Factorial"). */
    FACT_LOOP_ALL_ON_WORKERS = 1
};

/* Starts running `plan`, taking ownership of it, and stores in *dp a
 * Deferred (one reference for the caller) that fires once every piece has
 * run (possibly from within a cooperator step), with the plan as its value (destroyed with
 * fact_plan_free() unless taken out with mo_result_take()). It errbacks with MO_ENOMEM if a piece
 * ran out of memory, and with MO_ECANCELED when cancelled; pieces running
 * on workers then finish first, and the plan is freed after them. Errors
 * (the plan has been freed, nothing runs): MO_ENOMEM, or those of
 * mo_deferred_new() and mo_cooperate(). Loop thread. */
int fact_loop_start(mo_loop_t *loop, struct offload *workers, struct fact_plan *plan,
                    unsigned flags, fact_progress_fn progress, void *arg, mo_deferred_t **dp);

/* fact_loop_start(), also storing in *runp the run, for pausing it; the
 * handle is valid until the Deferred has fired (or was cancelled). */
struct fact_run;
int fact_loop_start_run(mo_loop_t *loop, struct offload *workers, struct fact_plan *plan,
                        unsigned flags, fact_progress_fn progress, void *arg,
                        struct fact_run **runp, mo_deferred_t **dp);

/* Holds the run: no new piece starts, on the loop or on a worker, until
 * fact_loop_resume(); pieces already on workers finish. A consumer that
 * cannot keep up with the text holds the run so that the text waiting for
 * it stays bounded. Both may be called from the progress callback.
 * Loop thread. */
void fact_loop_hold(struct fact_run *r);
void fact_loop_resume(struct fact_run *r);

#endif
