#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int64_t bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t bench_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_compare(const char *title, const char *unit, struct bench_contender *c, size_t n,
                   unsigned reps)
{
    if (reps > 64) reps = 64;
    for (unsigned r = 0; r < reps; r++)
        for (size_t i = 0; i < n; i++) c[i].samples[r] = c[i].run(c[i].arg);
    double med[16];
    for (size_t i = 0; i < n && i < 16; i++) med[i] = bench_median(c[i].samples, reps);
    printf("## %s (median of %u interleaved runs)\n", title, reps);
    printf("%-28s %14s %12s\n", "contender", unit, "vs first");
    for (size_t i = 0; i < n && i < 16; i++)
        printf("%-28s %14.2f %11.2fx\n", c[i].name, med[i], med[i] / med[0]);
    fflush(stdout);
}
