/* Coroutine switch: one yield + resume round trip (two context switches),
 * morsel's assembly switch against swapcontext(3), side by side.
 *
 *   bench_coro_switch [round-trips-per-run]   (default 2000000)
 */
#include "bench_util.h"
#include "work/coro_ctx.h"

#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>

static long trips = 2000000;

/* ---- morsel ---- */
struct mo_pair {
    struct mo__ctx main, co;
    long count;
};

static void mo_body(void *arg)
{
    struct mo_pair *p = arg;
    for (;;) {
        p->count++;
        mo__ctx_switch(&p->co, &p->main);
    }
}

static double run_morsel(void *arg)
{
    (void)arg;
    struct mo_pair p = {0};
    struct mo__stack st;
    if (mo__stack_alloc(&st, 64 * 1024) != 0) abort();
    mo__ctx_init_thread(&p.main);
    if (mo__ctx_make(&p.co, &st, mo_body, &p) != 0) abort();
    mo__ctx_switch(&p.main, &p.co); /* start it outside the timing */
    int64_t t0 = bench_now();
    for (long i = 0; i < trips; i++) mo__ctx_switch(&p.main, &p.co);
    int64_t t1 = bench_now();
    if (p.count != trips + 1) abort();
    /* The body never finishes: drop it suspended, as a stopped coroutine is. */
    mo__ctx_release(&p.co);
    mo__stack_free(&st);
    return (double)(t1 - t0) / (double)trips;
}

/* ---- swapcontext ---- */
struct uc_pair {
    ucontext_t main, co;
    long count;
};

static struct uc_pair *uc_current; /* makecontext passes ints only; bench-local */

static void uc_body(void)
{
    struct uc_pair *p = uc_current;
    for (;;) {
        p->count++;
        swapcontext(&p->co, &p->main);
    }
}

static double run_swapcontext(void *arg)
{
    (void)arg;
    struct uc_pair p = {0};
    struct mo__stack st;
    if (mo__stack_alloc(&st, 64 * 1024) != 0) abort();
    uc_current = &p;
    getcontext(&p.co);
    p.co.uc_stack.ss_sp = st.lo;
    p.co.uc_stack.ss_size = st.size;
    makecontext(&p.co, uc_body, 0);
    swapcontext(&p.main, &p.co);
    int64_t t0 = bench_now();
    for (long i = 0; i < trips; i++) swapcontext(&p.main, &p.co);
    int64_t t1 = bench_now();
    if (p.count != trips + 1) abort();
    mo__stack_free(&st);
    return (double)(t1 - t0) / (double)trips;
}

int main(int argc, char **argv)
{
    if (argc > 1) trips = atol(argv[1]);
    if (trips <= 0) {
        fprintf(stderr, "usage: %s [round-trips-per-run]\n", argv[0]);
        return 2;
    }
    struct bench_contender c[] = {
        {.name = "swapcontext (glibc)", .run = run_swapcontext},
        {.name = "morsel ctx switch", .run = run_morsel},
    };
    bench_compare("yield + resume round trip", "ns/trip", c, 2, 11);
    double uc = bench_median(c[0].samples, 11), mo = bench_median(c[1].samples, 11);
    printf("morsel is %.1fx faster than swapcontext (target >= 10x)\n", uc / mo);
    return 0;
}
