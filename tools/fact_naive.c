/* fact_naive: the seed's optFactorial, with an adaptive chunk size. */
#include "fact_naive.h"

#include <stdbool.h>
#include <stdlib.h>

struct naive {
    mpz_t acc; /* first: the Deferred's value is a pointer to it */
    unsigned long n, steps;
    bool adaptive, cancelled;
    mo_deferred_t *d; /* our reference, until the end */
};

static void naive_free(void *value)
{
    struct naive *f = value;
    mpz_clear(f->acc);
    free(f);
}

/* Scales steps to the target, at most doubling per chunk (a chunk that ran
 * fast because the clock is coarse must not make the next one huge). */
static void resize(struct naive *f, int64_t took)
{
    double want = (double)f->steps * (double)FACT_NAIVE_TARGET / (double)(took > 0 ? took : 1);
    if (want > 2.0 * (double)f->steps) want = 2.0 * (double)f->steps;
    f->steps = want < 1 ? 1 : (unsigned long)want;
}

static void finish(struct naive *f, int err)
{
    mo_deferred_t *d = f->d;
    if (f->cancelled)
        naive_free(f);
    else if (err)
        naive_free(f), mo_deferred_fail(d, err, "fact_naive", "cannot schedule the next chunk");
    else
        mo_deferred_callback(d, f, naive_free);
    mo_deferred_unref(d);
}

static void step(mo_loop_t *loop, void *arg)
{
    struct naive *f = arg;
    if (f->cancelled) return finish(f, 0);
    int64_t t0 = f->adaptive ? mo_hrtime() : 0;
    for (unsigned long i = 0; i < f->steps; i++) {
        if (f->n <= 1) return finish(f, 0);
        mpz_mul_ui(f->acc, f->acc, f->n--);
    }
    if (f->adaptive) resize(f, mo_hrtime() - t0);
    int err = mo_call_soon(loop, step, f);
    if (err) finish(f, err);
}

static void cancel(mo_deferred_t *d, void *arg)
{
    (void)d;
    ((struct naive *)arg)->cancelled = true;
}

int fact_naive(mo_loop_t *loop, unsigned long n, unsigned long steps, mo_deferred_t **dp)
{
    if (!loop || !dp) return MO_EINVAL;
    struct naive *f = calloc(1, sizeof *f);
    if (!f) return MO_ENOMEM;
    mpz_init_set_ui(f->acc, 1);
    f->n = n;
    f->adaptive = steps == 0;
    f->steps = steps ? steps : 1;
    int err = mo_deferred_new(loop, cancel, f, &f->d);
    if (!err) err = mo_call_soon(loop, step, f);
    if (err) {
        mo_deferred_unref(f->d);
        naive_free(f);
        return err;
    }
    *dp = mo_deferred_ref(f->d);
    return 0;
}
