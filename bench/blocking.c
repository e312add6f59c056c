/* What blocks a loop, measured: how long common operations hold the thread
 * that calls them, on this machine. The figures feed docs/what-is-blocking.md.
 *
 *   bench_blocking [reps]
 *
 * Each operation runs `reps` times (default 7); the median is printed, with
 * how many such operations fit in a 1 ms slice. The directory and file
 * operations use a temporary directory under /tmp (warm cache).
 */
#include "bench_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <gmp.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static char dir[64];

struct op {
    const char *name;
    long inner; /* repetitions inside one timed sample */
    void (*fn)(long n, void *arg);
    void *arg;
};

static void op_clock(long n, void *arg)
{
    (void)arg;
    int64_t sink = 0;
    for (long i = 0; i < n; i++) sink += bench_now();
    __asm__ volatile("" : : "r"(sink)); /* keep the reads */
}

static void op_syscall(long n, void *arg)
{
    (void)arg;
    for (long i = 0; i < n; i++) syscall(SYS_getppid);
}

static void op_write_null(long n, void *arg)
{
    (void)arg;
    int fd = open("/dev/null", O_WRONLY);
    char buf[4096] = {0};
    for (long i = 0; i < n; i++)
        if (write(fd, buf, sizeof(buf)) < 0) break;
    close(fd);
}

static void op_open_close(long n, void *arg)
{
    (void)arg;
    char path[128];
    snprintf(path, sizeof(path), "%s/f0", dir);
    for (long i = 0; i < n; i++) close(open(path, O_RDONLY));
}

static void op_stat(long n, void *arg)
{
    (void)arg;
    char path[128];
    struct stat st;
    snprintf(path, sizeof(path), "%s/f0", dir);
    for (long i = 0; i < n; i++) stat(path, &st);
}

static void op_list_dir(long n, void *arg)
{
    (void)arg;
    for (long i = 0; i < n; i++) {
        DIR *d = opendir(dir);
        while (d && readdir(d)) {
        }
        if (d) closedir(d);
    }
}

static void op_fsync(long n, void *arg)
{
    (void)arg;
    char path[128];
    snprintf(path, sizeof(path), "%s/sync", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    for (long i = 0; i < n; i++)
        if (write(fd, "x", 1) != 1 || fsync(fd) != 0) break;
    close(fd);
}

static void op_touch_mem(long n, void *arg)
{
    size_t bytes = (size_t)(uintptr_t)arg;
    for (long i = 0; i < n; i++) {
        char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return;
        for (size_t k = 0; k < bytes; k += 4096) p[k] = 1; /* one page fault each */
        munmap(p, bytes);
    }
}

static void op_resolve(long n, void *arg)
{
    (void)arg;
    for (long i = 0; i < n; i++) {
        struct addrinfo *res = NULL;
        if (getaddrinfo("localhost", "80", NULL, &res) == 0) freeaddrinfo(res);
    }
}

static void op_mpz_mul(long n, void *arg)
{
    unsigned long bits = (unsigned long)(uintptr_t)arg;
    mpz_t a, b, c;
    mpz_inits(a, b, c, NULL);
    mpz_setbit(a, bits);
    mpz_sub_ui(a, a, 1);
    mpz_set(b, a);
    for (long i = 0; i < n; i++) mpz_mul(c, a, b);
    mpz_clears(a, b, c, NULL);
}

static void op_mpz_get_str(long n, void *arg)
{
    unsigned long bits = (unsigned long)(uintptr_t)arg;
    mpz_t a;
    mpz_init(a);
    mpz_setbit(a, bits);
    mpz_sub_ui(a, a, 1);
    for (long i = 0; i < n; i++) free(mpz_get_str(NULL, 10, a));
    mpz_clear(a);
}

static double run_op(void *arg)
{
    const struct op *op = arg;
    int64_t t0 = bench_now();
    op->fn(op->inner, op->arg);
    return (double)(bench_now() - t0) / (double)op->inner;
}

static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/morsel-blocking-XXXXXX");
    if (!mkdtemp(dir)) exit(1);
    char path[128];
    for (int i = 0; i < 1000; i++) {
        snprintf(path, sizeof(path), "%s/f%d", dir, i);
        close(open(path, O_WRONLY | O_CREAT, 0600));
    }
}

static void remove_dir(void)
{
    char path[128];
    for (int i = 0; i < 1000; i++) {
        snprintf(path, sizeof(path), "%s/f%d", dir, i);
        unlink(path);
    }
    snprintf(path, sizeof(path), "%s/sync", dir);
    unlink(path);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    unsigned reps = argc > 1 ? (unsigned)atoi(argv[1]) : 7;
    if (reps < 1 || reps > 64) reps = 7;
    make_dir();
#define P(x) ((void *)(uintptr_t)(x))
    struct op ops[] = {
        {"clock_gettime (vDSO)", 100000, op_clock, NULL},
        {"a trivial system call", 100000, op_syscall, NULL},
        {"write 4 KiB to /dev/null", 20000, op_write_null, NULL},
        {"open + close a file", 10000, op_open_close, NULL},
        {"stat a file", 10000, op_stat, NULL},
        {"list a 1,000-entry directory", 50, op_list_dir, NULL},
        {"write 1 byte + fsync", 20, op_fsync, NULL},
        {"first touch of 1 MiB (256 faults)", 50, op_touch_mem, P(1 << 20)},
        {"first touch of 64 MiB", 3, op_touch_mem, P(64 << 20)},
        {"getaddrinfo(\"localhost\")", 20, op_resolve, NULL},
        {"mpz_mul 64 Kibit x 64 Kibit", 200, op_mpz_mul, P(1 << 16)},
        {"mpz_mul 1 Mibit x 1 Mibit", 10, op_mpz_mul, P(1 << 20)},
        {"mpz_mul 16 Mibit x 16 Mibit", 1, op_mpz_mul, P(1 << 24)},
        {"mpz_get_str of a 1 Mibit number", 2, op_mpz_get_str, P(1 << 20)},
        {"mpz_get_str of an 18.5 Mibit number (1,000,000!)", 1, op_mpz_get_str, P(18488885)},
    };
    size_t n = sizeof(ops) / sizeof(ops[0]);
    printf("%-52s %14s %16s\n", "operation", "median", "per 1 ms slice");
    for (size_t i = 0; i < n; i++) {
        struct bench_contender c = {.name = ops[i].name, .run = run_op, .arg = &ops[i]};
        for (unsigned r = 0; r < reps; r++) c.samples[r] = c.run(c.arg);
        double ns = bench_median(c.samples, reps);
        char when[32];
        if (ns < 1e3)
            snprintf(when, sizeof(when), "%.0f ns", ns);
        else if (ns < 1e6)
            snprintf(when, sizeof(when), "%.1f us", ns / 1e3);
        else
            snprintf(when, sizeof(when), "%.1f ms", ns / 1e6);
        double fit = 1e6 / ns;
        printf(fit >= 10 ? "%-52s %14s %16.0f\n" : "%-52s %14s %16.3f\n", ops[i].name, when, fit);
        fflush(stdout);
    }
    remove_dir();
    return 0;
}
