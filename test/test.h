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

#include <cmocka.h>

#include "morsel.h"

/* Runs the tests given, or only the one named by argv[1]. */
#define MO_TEST_MAIN(...)                                                                          \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        const struct CMUnitTest tests[] = {__VA_ARGS__};                                           \
        if (argc > 1) cmocka_set_test_filter(argv[1]);                                             \
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
