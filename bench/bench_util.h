/* Helpers shared by the benchmark programs: timing, medians, and the
 * interleaved side-by-side runs every comparison uses. */
#ifndef MORSEL_BENCH_UTIL_H
#define MORSEL_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Wall-clock and this process's CPU time, in ns. */
int64_t bench_now(void);
int64_t bench_cpu(void);

/* Median of n values (reorders them). */
double bench_median(double *v, size_t n);

/* One contender: run() performs the measured work once and returns the
 * figure to compare (for example ns per operation, lower is better). */
struct bench_contender {
    const char *name;
    double (*run)(void *arg);
    void *arg;
    double samples[64];
};

/* Runs the contenders interleaved (A B C, A B C, ...) `reps` times (at most
 * 64), then prints each one's median and its ratio to contender 0:
 *   name  median  ratio-to-first
 * `unit` names the figure, e.g. "ns/call". */
void bench_compare(const char *title, const char *unit, struct bench_contender *c, size_t n,
                   unsigned reps);

#endif
