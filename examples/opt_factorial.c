/* optFactorial, the first example of the seed text, ported to morsel.
 *
 *   def optFactorial(n, steps=10, d=None, acc=1L):
 *       d = d or defer.Deferred()
 *       for i in range(steps):
 *           if n == 1:
 *               d.callback(acc); return d
 *           n, acc = n-1, acc*n
 *       reactor.callLater(0, optFactorial, n, steps, d, acc)
 *       return d
 *
 * `steps` multiplications per call, then the rest is rescheduled with a
 * zero delay (mo_call_soon), so the loop gets control back between chunks;
 * the result arrives through a Deferred. How much the chunking costs is
 * measured in BENCHMARKS.md ("Factorial").
 *
 *   usage: example_opt_factorial N [STEPS]   (prints N! in decimal) */
#include <stdio.h> /* before gmp.h, which then declares mpz_out_str */
#include <stdlib.h>

#include <gmp.h>

#include "morsel.h"

struct opt_factorial {
    mpz_t acc; /* first member: the Deferred's value points at it */
    unsigned long n, steps;
    mo_deferred_t *d;
};

static void opt_factorial_free(void *value)
{
    struct opt_factorial *f = value;
    mpz_clear(f->acc);
    free(f);
}

static void opt_factorial_step(mo_loop_t *loop, void *arg)
{
    struct opt_factorial *f = arg;
    for (unsigned long i = 0; i < f->steps; i++) {
        if (f->n <= 1) { /* the seed tests n == 1; 0! is 1 too */
            mo_deferred_callback(f->d, f, opt_factorial_free);
            mo_deferred_unref(f->d);
            return;
        }
        mpz_mul_ui(f->acc, f->acc, f->n--);
    }
    if (mo_call_soon(loop, opt_factorial_step, f)) {
        mo_deferred_fail(f->d, MO_ENOMEM, "opt_factorial", "cannot reschedule");
        mo_deferred_unref(f->d);
        opt_factorial_free(f);
    }
}

/* Returns a Deferred (the caller's reference) that fires with n! as an
 * `mpz_t *`, or NULL if it could not start. */
static mo_deferred_t *opt_factorial(mo_loop_t *loop, unsigned long n, unsigned long steps)
{
    struct opt_factorial *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    mpz_init_set_ui(f->acc, 1);
    f->n = n;
    f->steps = steps;
    if (mo_deferred_new(loop, NULL, NULL, &f->d) || mo_call_soon(loop, opt_factorial_step, f)) {
        mo_deferred_unref(f->d);
        opt_factorial_free(f);
        return NULL;
    }
    return mo_deferred_ref(f->d);
}

static void print_result(mo_result_t *result, void *arg)
{
    (void)arg;
    mpz_out_str(stdout, 10, *(mpz_t *)mo_result_value(result));
    putchar('\n');
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s N [STEPS]\n", argv[0]);
        return 2;
    }
    unsigned long n = strtoul(argv[1], NULL, 10),
                  steps = argc > 2 ? strtoul(argv[2], NULL, 10) : 10;
    mo_loop_t *loop;
    if (steps == 0 || mo_loop_new(&loop, 0)) return 1;
    mo_deferred_t *d = opt_factorial(loop, n, steps);
    if (!d) return 1;
    mo_deferred_add_callback(d, print_result, NULL);
    mo_deferred_unref(d);
    mo_loop_run(loop, MO_RUN_DEFAULT);
    mo_loop_free(loop);
    return 0;
}
