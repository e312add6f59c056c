/* The factorial, side by side with GMP in one run.
 *
 *   bench_factorial naive [N [REPS]]  the seed's optFactorial at steps 1, 2,
 *                               10, 100, 1000 and adaptive, against the same
 *                               loop unchunked (default N = 100000, 3 reps)
 *   bench_factorial fast [N [REPS]]  time until the Deferred fires with N!,
 *                               against a blocking mpz_fac_ui (1000000, 11)
 *   bench_factorial text [N [REPS]]  the decimal text written to /dev/null,
 *                               against mpz_fac_ui + mpz_get_str (1000000, 3)
 *   bench_factorial memory [N]  peak RSS of each, in a child process apiece
 *   bench_factorial             all four
 *
 * While ours runs, a call every 1 ms on the same loop records how late it
 * starts: the loop's stall. The factorial code is the CLI's, linked from
 * the tools' internal library (GMP stays out of morsel's own library). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "morsel.h"

#include "fact.h"
#include "fact_loop.h"
#include "fact_naive.h"
#include "offload.h"

#define MAX_BEATS 200000

/* The 1 ms heartbeat: lateness of each beat, in ns. */
struct beat {
    mo_call_id id;
    int64_t next;
    size_t n;
    int64_t *late;
};

static void beat_fn(mo_loop_t *loop, void *arg)
{
    struct beat *b = arg;
    int64_t now = mo_hrtime();
    if (b->n < MAX_BEATS) b->late[b->n++] = now - b->next;
    /* On a fixed schedule, skipping beats missed entirely. */
    while (b->next <= now) b->next += MO_MSEC(1);
    mo_call_at(loop, b->next, beat_fn, b, &b->id);
}

/* The work is over: if a beat was due, it has been waiting since then. */
static void beat_stop(mo_loop_t *loop, struct beat *b)
{
    int64_t late = mo_hrtime() - b->next;
    if (late > 0 && b->n < MAX_BEATS) b->late[b->n++] = late;
    mo_call_cancel(loop, b->id);
}

static void beat_start(mo_loop_t *loop, struct beat *b)
{
    b->next = mo_hrtime() + MO_MSEC(1);
    mo_call_at(loop, b->next, beat_fn, b, &b->id);
}

/* All the lateness samples of a contender, over every run. */
struct stall {
    int64_t *late;
    size_t n, cap;
};

static void stall_add(struct stall *s, const struct beat *b)
{
    if (s->n + b->n > s->cap) {
        s->cap = (s->n + b->n) * 2;
        s->late = realloc(s->late, s->cap * sizeof *s->late);
        if (!s->late) abort();
    }
    memcpy(s->late + s->n, b->late, b->n * sizeof *b->late);
    s->n += b->n;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void stall_print(const char *name, struct stall *s)
{
    if (!s->n) {
        printf("  %-26s no beat ran\n", name);
        return;
    }
    qsort(s->late, s->n, sizeof *s->late, cmp_i64);
    printf("  %-26s beats %7zu  p50 %7.3f ms  p99 %7.3f ms  max %8.3f ms\n", name, s->n,
           (double)s->late[s->n / 2] / 1e6, (double)s->late[s->n * 99 / 100] / 1e6,
           (double)s->late[s->n - 1] / 1e6);
}

/* ---- the naive algorithm ---- */

struct naive_case {
    unsigned long n, steps; /* steps 0: adaptive; n: unchunked */
    struct stall stall;
    double wall[64];
    unsigned runs;
};

struct naive_done {
    mo_loop_t *loop;
    struct beat *beat;
    int64_t end, cpu_end;
};

static void naive_fired(mo_result_t *result, void *arg)
{
    (void)result;
    struct naive_done *d = arg;
    d->end = mo_hrtime();
    d->cpu_end = bench_cpu();
    beat_stop(d->loop, d->beat);
}

static double run_naive(void *arg)
{
    struct naive_case *c = arg;
    static int64_t late[MAX_BEATS];
    mo_loop_t *loop;
    mo_deferred_t *d;
    struct beat b = {.late = late};
    struct naive_done done = {.beat = &b};
    if (mo_loop_new(&loop, 0)) abort();
    done.loop = loop;
    beat_start(loop, &b);
    int64_t t0 = mo_hrtime(), cpu0 = bench_cpu();
    if (fact_naive(loop, c->n, c->steps, &d)) abort();
    mo_deferred_add_callback(d, naive_fired, &done);
    mo_deferred_unref(d);
    mo_loop_run(loop, MO_RUN_DEFAULT);
    mo_loop_free(loop);
    stall_add(&c->stall, &b);
    if (c->runs < 64) c->wall[c->runs++] = (double)(done.end - t0) / 1e6;
    return (double)(done.cpu_end - cpu0) / 1e6;
}

static void bench_naive(unsigned long n, unsigned reps)
{
    static struct naive_case cases[7];
    static const char *names[7] = {
        "unchunked (steps = N)", "steps=1", "steps=2", "steps=10", "steps=100", "steps=1000",
        "adaptive (cooperator)"};
    unsigned long steps[7] = {n ? n : 1, 1, 2, 10, 100, 1000, 0};
    struct bench_contender c[7];
    for (int i = 0; i < 7; i++) {
        cases[i] = (struct naive_case){.n = n, .steps = steps[i]};
        c[i] = (struct bench_contender){.name = names[i], .run = run_naive, .arg = &cases[i]};
    }
    char title[96];
    snprintf(title, sizeof title, "optFactorial, N = %lu: CPU time until the Deferred fires", n);
    bench_compare(title, "CPU ms", c, 7, reps);
    printf("wall time (median) and loop stall (lateness of a 1 ms periodic call):\n");
    for (int i = 0; i < 7; i++) {
        printf("  %-26s wall %8.1f ms (%.3fx)\n", names[i], bench_median(cases[i].wall, reps),
               bench_median(cases[i].wall, reps) / bench_median(cases[0].wall, reps));
        stall_print("", &cases[i].stall);
    }
}

/* ---- the control: the same heartbeat on an idle loop ---- */

static struct stall idle_stall;

static void idle_end(mo_loop_t *loop, void *arg)
{
    beat_stop(loop, arg);
}

/* Runs the heartbeat alone for `ms`: how late the machine itself makes a
 * 1 ms timer (other processes, the hypervisor) while nothing else runs. */
static double run_idle(void *arg)
{
    double ms = *(double *)arg;
    static int64_t late[MAX_BEATS];
    mo_loop_t *loop;
    struct beat b = {.late = late};
    if (mo_loop_new(&loop, 0)) abort();
    beat_start(loop, &b);
    mo_call_later(loop, (int64_t)(ms * 1e6), idle_end, &b, NULL);
    mo_loop_run(loop, MO_RUN_DEFAULT);
    mo_loop_free(loop);
    stall_add(&idle_stall, &b);
    return ms;
}

/* ---- the fast factorial ---- */

struct fast_case {
    int64_t max_slice; /* the cooperator's longest slice, over the runs */
    unsigned long n;
    unsigned flags; /* fact_loop_start()'s */
    struct stall stall;
    size_t bytes; /* limbs of the last result, to check both agree */
};

static double run_gmp(void *arg)
{
    struct fast_case *c = arg;
    mpz_t f;
    mpz_init(f);
    int64_t t0 = mo_hrtime();
    mpz_fac_ui(f, c->n);
    int64_t t = mo_hrtime() - t0;
    c->bytes = mpz_size(f);
    mpz_clear(f);
    return (double)t / 1e6;
}

struct fast_done {
    mo_loop_t *loop;
    struct beat *beat;
    int64_t end;
    size_t size;
};

static void fast_fired(mo_result_t *result, void *arg)
{
    struct fast_done *d = arg;
    d->end = mo_hrtime();
    beat_stop(d->loop, d->beat);
    mpz_t f;
    mpz_init(f);
    fact_plan_result(mo_result_value(result), f);
    d->size = mpz_size(f);
    mpz_clear(f);
}

static double run_ours(void *arg)
{
    struct fast_case *c = arg;
    static int64_t late[MAX_BEATS];
    mo_loop_t *loop;
    struct offload *workers;
    struct fact_plan *plan;
    mo_deferred_t *d;
    struct beat b = {.late = late};
    struct fast_done done = {.beat = &b};
    const char *threads = getenv("BENCH_THREADS"); /* default: one per CPU */
    if (mo_loop_new(&loop, 0) || offload_new(&workers, loop, threads ? (unsigned)atoi(threads) : 0))
        abort();
    done.loop = loop;
    beat_start(loop, &b);
    int64_t t0 = mo_hrtime();
    if (fact_plan_new(&plan, c->n, FACT_VALUE)) abort();
    if (fact_loop_start(loop, workers, plan, c->flags, NULL, NULL, &d)) abort();
    mo_deferred_add_callback(d, fast_fired, &done);
    mo_deferred_unref(d);
    mo_loop_run(loop, MO_RUN_DEFAULT);
    offload_free(workers);
    mo_loop_run(loop, MO_RUN_DEFAULT);
    struct mo_cooperator_stats cs;
    if (!mo_cooperator_stats(loop, &cs) && cs.max_ns > c->max_slice) c->max_slice = cs.max_ns;
    mo_loop_free(loop);
    stall_add(&c->stall, &b);
    c->bytes = done.size;
    return (double)(done.end - t0) / 1e6;
}

static void bench_fast(unsigned long n, unsigned reps)
{
    static struct fast_case gmp, ours, all;
    gmp.n = ours.n = all.n = n;
    all.flags = FACT_LOOP_ALL_ON_WORKERS;
    static double idle_ms = 150;
    idle_stall.n = 0;
    struct bench_contender c[4] = {
        {.name = "GMP mpz_fac_ui (blocking)", .run = run_gmp, .arg = &gmp},
        {.name = "morsel (Deferred fires)", .run = run_ours, .arg = &ours},
        {.name = "morsel --offload-all", .run = run_ours, .arg = &all},
        {.name = "idle loop (control)", .run = run_idle, .arg = &idle_ms}};
    char title[96];
    snprintf(title, sizeof title, "N! for N = %lu, 2 workers + the loop", n);
    bench_compare(title, "ms", c, 4, reps);
    printf("loop stall (lateness of a 1 ms periodic call):\n");
    stall_print("morsel", &ours.stall);
    stall_print("morsel --offload-all", &all.stall);
    printf("  longest cooperator slice: %.3f ms (default), %.3f ms (--offload-all)\n",
           (double)ours.max_slice / 1e6, (double)all.max_slice / 1e6);
    stall_print("idle loop (control)", &idle_stall);
    if (gmp.bytes != ours.bytes || gmp.bytes != all.bytes)
        printf("SIZE MISMATCH: %zu vs %zu limbs\n", gmp.bytes, ours.bytes);
}

/* ---- the decimal text, end to end in one process ---- */

static int devnull = -1;

static void write_or_die(const char *p, size_t len)
{
    if (write(devnull, p, len) != (ssize_t)len) abort();
}

static double run_gmp_text(void *arg)
{
    struct fast_case *c = arg;
    mpz_t f;
    mpz_init(f);
    int64_t t0 = mo_hrtime();
    mpz_fac_ui(f, c->n);
    char *s = mpz_get_str(NULL, 10, f);
    size_t len = strlen(s);
    s[len] = '\n';
    write_or_die(s, len + 1);
    int64_t t = mo_hrtime() - t0;
    c->bytes = len;
    free(s);
    mpz_clear(f);
    return (double)t / 1e6;
}

struct text_run {
    mo_loop_t *loop;
    struct beat *beat;
    struct fact_plan *plan; /* borrowed */
    size_t next, bytes;
    int64_t end;
};

/* Writes the chunks that are ready, in order (to /dev/null: instant). */
static void text_progress(struct fact_plan *plan, void *arg)
{
    struct text_run *t = arg;
    char *bytes;
    size_t len;
    t->plan = plan;
    while (t->next < fact_text_count(plan) && fact_text_take(plan, t->next, &bytes, &len)) {
        static char zeros[65536];
        if (!zeros[0]) memset(zeros, '0', sizeof zeros);
        if (bytes) write_or_die(bytes, len);
        for (size_t k = 0; !bytes && k < len; k += sizeof zeros)
            write_or_die(zeros, len - k < sizeof zeros ? len - k : sizeof zeros);
        free(bytes);
        t->bytes += len;
        if (++t->next == fact_text_count(plan)) {
            write_or_die("\n", 1);
            t->end = mo_hrtime();
            beat_stop(t->loop, t->beat);
        }
    }
}

static void text_fired(mo_result_t *result, void *arg)
{
    text_progress(mo_result_value(result), arg); /* the trailing zeros */
}

static double run_ours_text(void *arg)
{
    struct fast_case *c = arg;
    static int64_t late[MAX_BEATS];
    mo_loop_t *loop;
    struct offload *workers;
    struct fact_plan *plan;
    mo_deferred_t *d;
    struct beat b = {.late = late};
    struct text_run t = {.beat = &b};
    if (mo_loop_new(&loop, 0) || offload_new(&workers, loop, 0)) abort();
    t.loop = loop;
    beat_start(loop, &b);
    int64_t t0 = mo_hrtime();
    if (fact_plan_new(&plan, c->n, FACT_DECIMAL)) abort();
    if (fact_loop_start(loop, workers, plan, c->flags, text_progress, &t, &d)) abort();
    mo_deferred_add_callback(d, text_fired, &t);
    mo_deferred_unref(d);
    mo_loop_run(loop, MO_RUN_DEFAULT);
    offload_free(workers);
    mo_loop_run(loop, MO_RUN_DEFAULT);
    struct mo_cooperator_stats cs;
    if (!mo_cooperator_stats(loop, &cs) && cs.max_ns > c->max_slice) c->max_slice = cs.max_ns;
    mo_loop_free(loop);
    stall_add(&c->stall, &b);
    c->bytes = t.bytes;
    return (double)(t.end - t0) / 1e6;
}

static void bench_text(unsigned long n, unsigned reps)
{
    static struct fast_case gmp, ours, all;
    gmp.n = ours.n = all.n = n;
    all.flags = FACT_LOOP_ALL_ON_WORKERS;
    devnull = open("/dev/null", O_WRONLY);
    static double idle_ms = 600;
    idle_stall.n = 0;
    struct bench_contender c[4] = {
        {.name = "GMP fac + get_str + write", .run = run_gmp_text, .arg = &gmp},
        {.name = "morsel (text written)", .run = run_ours_text, .arg = &ours},
        {.name = "morsel --offload-all", .run = run_ours_text, .arg = &all},
        {.name = "idle loop (control)", .run = run_idle, .arg = &idle_ms}};
    char title[96];
    snprintf(title, sizeof title, "decimal N! for N = %lu to /dev/null, in process", n);
    bench_compare(title, "ms", c, 4, reps);
    printf("loop stall (lateness of a 1 ms periodic call):\n");
    stall_print("morsel", &ours.stall);
    stall_print("morsel --offload-all", &all.stall);
    printf("  longest cooperator slice: %.3f ms (default), %.3f ms (--offload-all)\n",
           (double)ours.max_slice / 1e6, (double)all.max_slice / 1e6);
    stall_print("idle loop (control)", &idle_stall);
    if (gmp.bytes != ours.bytes || gmp.bytes != all.bytes)
        printf("LENGTH MISMATCH: %zu vs %zu digits\n", gmp.bytes, ours.bytes);
    close(devnull);
}

/* ---- peak memory, one child process per contender ---- */

static long child_maxrss_kb(int which, unsigned long n)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        struct fast_case c = {.n = n};
        (which ? run_ours : run_gmp)(&c);
        _exit(0);
    }
    int status;
    struct rusage ru;
    if (pid < 0 || wait4(pid, &status, 0, &ru) < 0) return -1;
    return ru.ru_maxrss;
}

/* Peak RSS of a program of the build tree, run with N, stdout to /dev/null. */
static long exec_maxrss_kb(const char *rel, unsigned long n)
{
    char exe[4096], path[4200], arg[32];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) return -1;
    exe[len] = '\0';
    *strrchr(exe, '/') = '\0';
    snprintf(path, sizeof path, "%s/%s", exe, rel);
    snprintf(arg, sizeof arg, "%lu", n);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout)) _exit(127);
        if (strstr(rel, "morsel"))
            execl(path, path, "factorial", arg, (char *)NULL);
        else
            execl(path, path, arg, (char *)NULL);
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (pid < 0 || wait4(pid, &status, 0, &ru) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
        return -1;
    return ru.ru_maxrss;
}

static void bench_memory(unsigned long n)
{
    long base = child_maxrss_kb(0, 0);
    long g = child_maxrss_kb(0, n), o = child_maxrss_kb(1, n);
    printf("## peak RSS for N = %lu (child processes; baseline %ld KiB)\n", n, base);
    printf("  N! only:    GMP mpz_fac_ui %8ld KiB   morsel %8ld KiB  (%.2fx GMP's)\n", g, o,
           (double)o / (double)g);
    g = exec_maxrss_kb("bench_fac_gmp_blocking", n);
    o = exec_maxrss_kb("../morsel", n);
    printf("  end to end: GMP + out_str  %8ld KiB   morsel %8ld KiB  (%.2fx GMP's)\n", g, o,
           (double)o / (double)g);
}

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "all";
    unsigned long n = argc > 2 ? strtoul(argv[2], NULL, 10) : 0;
    unsigned reps = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 0;
    bool all = !strcmp(what, "all");
    if (all || !strcmp(what, "naive")) bench_naive(n ? n : 100000, reps ? reps : 3);
    if (all || !strcmp(what, "fast")) bench_fast(n ? n : 1000000, reps ? reps : 11);
    if (all || !strcmp(what, "text")) bench_text(n ? n : 1000000, reps ? reps : 3);
    if (all || !strcmp(what, "memory")) bench_memory(n ? n : 1000000);
    return 0;
}
