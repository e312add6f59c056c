/* Shared by the tests: cmocka, a main that runs one named test (CTest gives
 * each test its own process and timeout), and assertion helpers that print
 * both sides. */
#ifndef MORSEL_TEST_H
#define MORSEL_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "morsel.h"

/* Runs the tests given, or only the one named by argv[1]; MO_TEST_SKIP=PATTERN
 * (cmocka's wildcards) leaves out the tests it matches (scripts/test: the
 * stack-fault death tests under valgrind, which lays out the address space
 * itself). */
#define MO_TEST_MAIN(...)                                                                          \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        const struct CMUnitTest tests[] = {__VA_ARGS__};                                           \
        if (argc > 1) cmocka_set_test_filter(argv[1]);                                             \
        if (getenv("MO_TEST_SKIP")) cmocka_set_skip_filter(getenv("MO_TEST_SKIP"));                \
        return cmocka_run_group_tests(tests, NULL, NULL);                                          \
    }

/* Asserts that a morsel call returned `expected`, naming both codes. */
#define assert_mo(expected, expr)                                                                  \
    do {                                                                                           \
        int mo_t_got_ = (expr);                                                                    \
        int mo_t_want_ = (expected);                                                               \
        if (mo_t_got_ != mo_t_want_)                                                               \
            fail_msg("%s returned %d (%s), expected %d (%s)", #expr, mo_t_got_,                    \
                     mo_err_name(mo_t_got_), mo_t_want_, mo_err_name(mo_t_want_));                 \
    } while (0)
#define assert_ok(expr) assert_mo(0, expr)

/* A loop on the virtual clock, freed by the caller. */
mo_loop_t *mo_test_virtual_loop(void);
mo_loop_t *mo_test_loop(void);

/* Records the order of calls: each call appends its tag. */
struct mo_test_log {
    int tags[4096];
    size_t len;
};
void mo_test_log_cb(mo_loop_t *loop, void *arg); /* arg: struct mo_test_tag * */
struct mo_test_tag {
    struct mo_test_log *log;
    int tag;
};

/* The tests' one fault-injecting allocator, installed with
 * mo_replace_allocator() by mo_test_alloc_install() (before the test's first
 * morsel call: each test runs in its own process). It counts allocations
 * (malloc, calloc, realloc) and live blocks, and fails the k-th allocation
 * counted from the last mo_test_alloc_fail_at() — or, with `lasting`, that
 * one and every later one (memory that stays exhausted). Any thread. */
void mo_test_alloc_install(void);
/* The allocator's functions, for libraries that take their own (libevent's
 * event_set_mem_functions, libuv's uv_replace_allocator): their
 * allocations are then counted and failed with morsel's. */
void *mo_test_alloc_malloc(size_t n);
void *mo_test_alloc_realloc(void *p, size_t n);
void *mo_test_alloc_calloc(size_t c, size_t n);
void mo_test_alloc_free(void *p);
/* Restarts the count; allocation k (1-based) fails; 0: none fails. */
void mo_test_alloc_fail_at(long k, int lasting);
/* Allocations since the last mo_test_alloc_fail_at() (or install). */
long mo_test_alloc_calls(void);
/* Blocks allocated through the seam and not freed. */
long mo_test_alloc_live(void);
/* Allocations that were made to fail so far. */
long mo_test_alloc_failed(void);

/* A fail-the-k-th-allocation sweep. Runs scenario(arg) with allocation k
 * failing, for k = 1, 2, ... until a run makes fewer than k allocations
 * (it ran without a failure; it must then return 0). Each run must return
 * 0 or MO_ENOMEM (its own clean, documented error; the scenario checks
 * anything finer), free everything it allocated (the live count returns to
 * where it began), and not crash. Fails the test otherwise, naming k.
 * Returns the number of allocations the scenario makes without a failure;
 * fails the test if that is below `min` (a scenario that allocates nothing
 * proves nothing). */
long mo_test_oom_sweep(int (*scenario)(void *arg), void *arg, long min);

/* Runs fn(arg) in a forked child process and returns what it returned (its
 * exit status, 0-255), or 128 + the signal that killed it: for tests that
 * change process-wide limits or must survive a fault. The child leaves
 * with _exit(), running no atexit handlers. */
int mo_test_child(int (*fn)(void *arg), void *arg);

/* In a child (mo_test_child): makes the system refuse to create threads,
 * as when a user is out of processes: as a user other than root (root
 * changes to "nobody"), with RLIMIT_NPROC at 1. Fails the test if it
 * cannot. */
void mo_test_refuse_threads(void);

/* Runs fn(arg) on a new thread with a stack of `stack_size` bytes and waits
 * for it; returns the thread's exit code or a negative error. */
int mo_test_run_on_small_stack(size_t stack_size, void *(*fn)(void *), void *arg);

/* ---- for the tests that run programs (the CLI, the examples) ---- */

/* The path of the program `name` built beside the running test (the build
 * directory), e.g. "morsel"; fails the test if it is not there. The string
 * is static, overwritten by the next call. */
const char *mo_test_program(const char *name);

/* Runs a command line (printf-style) with /bin/sh, SIGPIPE at its default
 * disposition as in a terminal's shell; returns its exit status, or 128 +
 * the number of the signal that killed the shell, as a shell reports it. */
int mo_test_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* What to put before a command line to run it as an unprivileged user:
 * "setpriv ..." (nobody) when the tests run as root, which reads through
 * permission bits, else "". Fails the test if root has no setpriv. */
const char *mo_test_unprivileged(void);

/* Reads a whole file into a NUL-terminated buffer the caller frees; stores
 * its length in *lenp if lenp is not NULL. Fails the test if it cannot. */
char *mo_test_slurp(const char *path, size_t *lenp);

#endif
