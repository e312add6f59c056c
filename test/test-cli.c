/* The morsel command: --help, --version, exit codes, and `morsel lag`. */
#include "test.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *morsel; /* the binary beside this test's */

/* Runs `morsel ARGS` through the shell with `redirect` appended; returns
 * the exit status. */
static int run(const char *args, const char *redirect)
{
    return mo_test_sh("'%s' %s %s", morsel, args, redirect);
}

static void test_help_version_and_unknown(void **state)
{
    (void)state;
    morsel = mo_test_program("morsel");
    assert_int_equal(run("--help", "| grep -q '^usage: morsel'"), 0);
    assert_int_equal(run("--help", "| grep -q ' lag '"), 0);
    char want[64];
    snprintf(want, sizeof want, "| grep -qx 'morsel %s'", mo_version_string());
    assert_int_equal(run("--version", want), 0);
    /* Errors go to stderr, with status 2 for usage; stdout stays empty. */
    assert_int_equal(run("frobnicate", "2>/dev/null | wc -c | grep -qx 0"), 0);
    assert_int_equal(
        run("frobnicate", "2>&1 >/dev/null | grep -q \"unknown command 'frobnicate'\""), 0);
    assert_int_equal(run("frobnicate", ">/dev/null 2>&1"), 2);
    assert_int_equal(run("", ">/dev/null 2>&1"), 2);
}

static void test_lag_reports_and_stops(void **state)
{
    (void)state;
    morsel = mo_test_program("morsel");
    char out[] = "/tmp/morsel-lag-XXXXXX";
    int fd = mkstemp(out);
    assert_true(fd >= 0);
    close(fd);
    char redirect[128];
    snprintf(redirect, sizeof redirect, "> %s", out);
    assert_int_equal(run("lag --period 5 --report 100 --count 3", redirect), 0);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "test $(grep -c '^lag: ' %s) -eq 3", out);
    assert_int_equal(system(cmd), 0);
    unlink(out);
}

/* --block makes one callback hold the loop for 60 ms: a beat due during it
 * starts at least 60 - 5 ms (one period) late, so the maximum is >= 50 ms;
 * without the block it is well under a millisecond. */
static void test_lag_block_shows_in_max(void **state)
{
    (void)state;
    morsel = mo_test_program("morsel");
    assert_int_equal(run("lag --period 5 --report 400 --count 1 --block 60",
                         "| grep '^lag: ' | grep -Eq 'max ([5-9][0-9]|[0-9]{3,})\\.[0-9]+ms'"),
                     0);
}

static void test_lag_usage_errors(void **state)
{
    (void)state;
    morsel = mo_test_program("morsel");
    const char *bad[] = {"lag --count 0",
                         "lag --count x",
                         "lag --period 0",
                         "lag --period -5",
                         "lag --report 99999999999",
                         "lag --slack -1",
                         "lag --slack 2000000",
                         "lag --bogus",
                         "lag extra"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (run(bad[i], ">/dev/null 2>&1") != 2) fail_msg("'morsel %s' did not exit 2", bad[i]);
        if (run(bad[i], "2>/dev/null | wc -c | grep -qx 0") != 0)
            fail_msg("'morsel %s' wrote to stdout", bad[i]);
    }
    assert_int_equal(run("lag --help", "| grep -q '^usage: morsel lag'"), 0);
}

MO_TEST_MAIN(cmocka_unit_test(test_help_version_and_unknown),
             cmocka_unit_test(test_lag_reports_and_stops),
             cmocka_unit_test(test_lag_block_shows_in_max), cmocka_unit_test(test_lag_usage_errors))
