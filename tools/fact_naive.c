/* fact_naive: the seed's optFactorial; its adaptive mode is a cooperator
 * task whose step is one multiplication, batched by the cooperator. */
#include "fact_naive.h"

#include <stdbool.h>
#include <stdlib.h>

struct naive {
    mpz_t acc; /* first: the Deferred's value is a pointer to it */
    unsigned long n, steps;
    bool cancelled;
    mo_task_t *task;  /* adaptive mode: the cooperator's task */
    mo_deferred_t *d; /* our reference, until the end */
};

static void naive_free(void *value)
{
    struct naive *f = value;
    mpz_clear(f->acc);
    free(f);
}

/* Fires the Deferred (or fails it with err), and lets go of everything but
 * the value, which the Deferred now owns. */
static void naive_finish(struct naive *f, int err)
{
    mo_deferred_t *d = f->d;
    mo_task_release(f->task);
    f->task = NULL;
    if (f->cancelled) {
        naive_free(f);
    } else if (err) {
        naive_free(f);
        mo_deferred_fail(d, err, "fact_naive", "cannot schedule the next chunk");
    } else {
        mo_deferred_callback(d, f, naive_free);
    }
    mo_deferred_unref(d);
}

/* The seed's loop body: `steps` multiplications, then call again later. */
static void naive_chunk(mo_loop_t *loop, void *arg)
{
    struct naive *f = arg;
    if (f->cancelled) return naive_finish(f, 0);
    for (unsigned long i = 0; i < f->steps; i++) {
        if (f->n <= 1) return naive_finish(f, 0);
        mpz_mul_ui(f->acc, f->acc, f->n--);
    }
    int err = mo_call_soon(loop, naive_chunk, f);
    if (err) naive_finish(f, err);
}

/* Adaptive: one multiplication per step; the cooperator sizes the batches. */
static int naive_step(mo_task_t *task, void *arg)
{
    (void)task;
    struct naive *f = arg;
    if (f->n <= 1) {
        naive_finish(f, 0);
        return MO_DONE;
    }
    mpz_mul_ui(f->acc, f->acc, f->n--);
    return MO_CONTINUE;
}

static void naive_canceller(mo_deferred_t *d, void *arg)
{
    (void)d;
    struct naive *f = arg;
    f->cancelled = true;
    if (f->task) { /* stopped now; the chunked mode stops at its next call */
        mo_task_stop(f->task);
        naive_finish(f, 0);
    }
}

/* The task's own Deferred is not ours to report: our Deferred is. */
static void naive_ignore_failure(mo_result_t *result, void *arg)
{
    (void)arg;
    mo_result_set(result, NULL, NULL);
}

static int naive_start_task(mo_loop_t *loop, struct naive *f)
{
    int err = mo_cooperate(loop, naive_step, f, NULL, &f->task);
    if (err) return err;
    mo_deferred_t *td = mo_task_deferred(f->task);
    err = mo_deferred_add_errback(td, naive_ignore_failure, NULL);
    mo_deferred_unref(td);
    if (err) mo_task_stop(f->task);
    return err;
}

int fact_naive(mo_loop_t *loop, unsigned long n, unsigned long steps, mo_deferred_t **dp)
{
    if (!loop || !dp) return MO_EINVAL;
    struct naive *f = calloc(1, sizeof *f);
    if (!f) return MO_ENOMEM;
    mpz_init_set_ui(f->acc, 1);
    f->n = n;
    f->steps = steps;
    int err = mo_deferred_new(loop, naive_canceller, f, &f->d);
    if (!err) err = steps ? mo_call_soon(loop, naive_chunk, f) : naive_start_task(loop, f);
    if (err) {
        mo_task_release(f->task);
        mo_deferred_unref(f->d);
        naive_free(f);
        return err;
    }
    *dp = mo_deferred_ref(f->d);
    return 0;
}
