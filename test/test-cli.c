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

/* --json: one object per report, the units in the field names; checked
 * with Debian's python3 as a script would read it. */
static void test_lag_json(void **state)
{
    (void)state;
    morsel = mo_test_program("morsel");
    assert_int_equal(
        run("lag --json --period 5 --report 60 --count 3",
            "| /usr/bin/python3 -c 'import json, sys\n"
            "lines = sys.stdin.read().splitlines()\n"
            "assert len(lines) == 3, lines\n"
            "for l in lines:\n"
            "    r = json.loads(l)\n"
            "    assert r[\"beats\"] > 0 and r[\"max_us\"] >= r[\"avg_us\"] >= r[\"min_us\"] >= 0\n"
            "    for k in (\"loop_lag\", \"callbacks\"):\n"
            "        s = r[k]\n"
            "        assert set(s) == {\"count\", \"p50_us\", \"p99_us\", \"p999_us\", "
            "\"max_us\"}, s\n"
            "        assert s[\"p50_us\"] <= s[\"p99_us\"] <= s[\"p999_us\"] <= s[\"max_us\"]\n"
            "    assert sum(h[\"count\"] for h in r[\"histogram\"]) == r[\"loop_lag\"][\"count\"]\n"
            "    assert all(h[\"to_us\"] > h[\"from_us\"] for h in r[\"histogram\"])\n"
            "'"),
        0);
}

/* walk --stats --json: one object, the last line of stderr. */
static void test_walk_stats_json(void **state)
{
    (void)state;
    morsel = mo_test_program("morsel");
    for (int parallel = 0; parallel < 2; parallel++) {
        char args[64];
        snprintf(args, sizeof args, "walk --stats --json %s /usr/include", parallel ? "-p" : "");
        assert_int_equal(run(args,
                             "2>&1 >/dev/null | tail -1 | /usr/bin/python3 -c 'import json, sys\n"
                             "r = json.loads(sys.stdin.read())\n"
                             "for k in (\"paths\", \"dirs\", \"errors\", \"entries\", "
                             "\"elapsed_us\", \"beats\", \"loop_lag\", \"callbacks\", "
                             "\"cooperator\"):\n"
                             "    assert k in r, k\n"
                             "assert r[\"paths\"] == r[\"entries\"] + 1 and r[\"errors\"] == 0\n"
                             "assert set(r[\"cooperator\"]) == {\"slices\", \"max_slice_us\", "
                             "\"overlong\"}\n"
                             "assert r[\"beats\"] == 0 or r[\"beat_lag_max_us\"] >= "
                             "r[\"beat_lag_p50_us\"]\n"
                             "'"),
                         0);
    }
}

MO_TEST_MAIN(cmocka_unit_test(test_help_version_and_unknown), cmocka_unit_test(test_lag_json),
             cmocka_unit_test(test_walk_stats_json), cmocka_unit_test(test_lag_reports_and_stops),
             cmocka_unit_test(test_lag_block_shows_in_max), cmocka_unit_test(test_lag_usage_errors))
