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

/* The path of the morsel binary beside the test program; fails the test
 * if there is none. */
const char *mo_test_morsel(void);

#endif
