/* morsel demo: the whole run (--quick) through the binary beside the test:
 * the table with every phase, the JSON figures, the SVG chart, usage
 * errors, and the clean-up of the temporary tree on SIGINT and SIGTERM;
 * and, in process, the judgement (demo_verdict) and the digit checker
 * (loadgen_factorial_check) on answers made wrong by hand. The runs use
 * --p99-limit 1000: on a loaded machine the 5 ms of the real demo is a
 * measurement, not a unit test's bound. MO_TEST_LABEL_THREADS */
#include "test.h"

#include "demo.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define QUICK "demo --quick --jobs 2 --p99-limit 1000 --no-progress"

static char dir[PATH_MAX]; /* a private temporary directory per test */

static void dir_make(void)
{
    snprintf(dir, sizeof dir, "/tmp/morsel-demo-test-%ld", (long)getpid());
    mkdir(dir, 0755);
}

static bool dir_empty(const char *path)
{
    DIR *d = opendir(path);
    assert_non_null(d);
    struct dirent *e;
    bool empty = true;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = false;
    closedir(d);
    return empty;
}

static void dir_remove(void)
{
    mo_test_sh("rm -rf '%s'", dir);
}

/* ---- the whole run ---- */

static void quick_run_prints_every_phase(void **state)
{
    (void)state;
    dir_make();
    int rc = mo_test_sh("TMPDIR='%s' '%s' " QUICK " --svg '%s/chart.svg' >'%s/out' 2>'%s/err'", dir,
                        mo_test_program("morsel"), dir, dir, dir);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/out", dir);
    char *out = mo_test_slurp(path, NULL);
    snprintf(path, sizeof path, "%s/err", dir);
    char *err = mo_test_slurp(path, NULL);
    if (rc != 0) fail_msg("exit %d; stderr: %s; stdout: %s", rc, err, out);
    assert_string_equal(err, ""); /* --no-progress: nothing on stderr */
    static const char *const want[] = {"1 idle",     "2 morsel",      "3 blocking",  "4 seed steps",
                                       "ping p50",   "ping p99",      "ping max",    "work time",
                                       "requests/s", "answers right", "round trips", "#"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(out, want[i])) fail_msg("no '%s' in:\n%s", want[i], out);
    snprintf(path, sizeof path, "%s/chart.svg", dir);
    char *svg = mo_test_slurp(path, NULL);
    assert_memory_equal(svg, "<svg", 4);
    assert_non_null(strstr(svg, "</svg>"));
    for (int i = 0; i < 4; i++) assert_non_null(strstr(svg, want[i]));
    free(svg);
    unlink(path);
    free(out);
    free(err);
    snprintf(path, sizeof path, "%s/out", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/err", dir);
    unlink(path);
    assert_true(dir_empty(dir)); /* the tree was removed */
    dir_remove();
}

/* The JSON parses, and its figures hang together (checked with Python's
 * json module, when there is a Python). */
static void json_figures(void **state)
{
    (void)state;
    if (access("/usr/bin/python3", X_OK) != 0) skip();
    dir_make();
    int rc = mo_test_sh("TMPDIR='%s' '%s' " QUICK " --json >'%s/out' 2>'%s/err'", dir,
                        mo_test_program("morsel"), dir, dir);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/err", dir);
    char *err = mo_test_slurp(path, NULL);
    if (rc != 0) fail_msg("exit %d; stderr: %s", rc, err);
    free(err);
    static const char check[] =
        "import json, sys\n"
        "d = json.load(open(sys.argv[1]))\n"
        "assert d['ok'] is True and d['reason'] == '', d\n"
        "assert d['factorial_n'] == 100000 and d['tree_entries'] == 20000 and d['jobs'] == 2\n"
        "assert d['p99_limit_us'] == 1000000\n"
        "ph = d['phases']\n"
        "assert [p['name'] for p in ph] == ['idle', 'morsel', 'blocking', 'steps'], ph\n"
        "for p in ph:\n"
        "    g = p['ping']\n"
        "    assert p['ran'] and g['count'] > 0, p\n"
        "    assert 0 < g['p50_us'] <= g['p99_us'] <= g['max_us'] < 60e6, p\n"
        "    assert 1000 < p['requests_per_s'] < 4000, p\n"
        "    assert sum(h['count'] for h in p['histogram']) == g['count'], p\n"
        "assert ph[0]['answers'] == 0 and ph[0]['work_us'] == 0\n"
        "for p in ph[1:]:\n"
        "    assert p['answers'] == 4 and p['work_us'] > 0, p\n"
        "    assert p['answers_right'] == 4 or (p['name'] == 'steps' and p['cut']), p\n"
        "    assert p['factorial_us'] > 0 and p['walk_us'] > 0, p\n"
        "assert ph[2]['ping']['max_us'] > ph[1]['ping']['max_us'], (ph[1], ph[2])\n";
    snprintf(path, sizeof path, "%s/check.py", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(check, f);
    assert_int_equal(fclose(f), 0);
    rc = mo_test_sh("/usr/bin/python3 '%s/check.py' '%s/out' >'%s/py' 2>&1", dir, dir, dir);
    if (rc != 0) {
        snprintf(path, sizeof path, "%s/py", dir);
        fail_msg("%s", mo_test_slurp(path, NULL));
    }
    dir_remove();
}

/* On a terminal (script(1) makes one): the panel, redrawn in place, then
 * erased before the table. */
static void panel_on_a_terminal(void **state)
{
    (void)state;
    dir_make();
    int rc = mo_test_sh("TMPDIR='%s' script -qec \"'%s' demo --quick --p99-limit 1000\" /dev/null "
                        ">'%s/tty' 2>&1 </dev/null",
                        dir, mo_test_program("morsel"), dir);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/tty", dir);
    char *s = mo_test_slurp(path, NULL);
    if (rc != 0) fail_msg("exit %d: %s", rc, s);
    assert_non_null(strstr(s, "\rmorsel: demo: phase 2 morsel "));
    assert_non_null(strstr(s, "  ping p99 "));
    assert_non_null(strstr(s, "f [")); /* a bar per request */
    assert_non_null(strstr(s, "w ["));
    const char *erased = strstr(s, "\r\033[K");
    const char *table = strstr(s, "ping p50");
    assert_non_null(erased);
    assert_non_null(table);
    assert_true(erased < table);
    assert_null(strstr(s, "demo: phase 1 idle: running")); /* no plain lines */
    free(s);
    dir_remove();
}

/* ---- usage ---- */

static void bad_options_are_usage_errors(void **state)
{
    (void)state;
    dir_make();
    static const char *const bad[] = {"--jobs 0", "--jobs 17",      "--duration x", "--duration 0",
                                      "--bogus",  "--p99-limit -1", "--svg ''",     "extra",
                                      "--json=1", "--p99-limit 1ms"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = mo_test_sh("'%s' demo %s >'%s/out' 2>'%s/err'", mo_test_program("morsel"), bad[i],
                            dir, dir);
        char path[PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/err", dir);
        char *err = mo_test_slurp(path, NULL);
        if (rc != 2 || strncmp(err, "morsel: demo: ", 14) != 0 ||
            !strstr(err, "Try 'morsel demo --help'"))
            fail_msg("'demo %s': exit %d, stderr '%s'", bad[i], rc, err);
        free(err);
        snprintf(path, sizeof path, "%s/out", dir);
        char *out = mo_test_slurp(path, NULL);
        assert_string_equal(out, "");
        free(out);
    }
    assert_int_equal(mo_test_sh("'%s' demo --help >'%s/out'", mo_test_program("morsel"), dir), 0);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/out", dir);
    char *out = mo_test_slurp(path, NULL);
    assert_non_null(strstr(out, "usage: morsel demo"));
    free(out);
    dir_remove();
}

/* ---- signals ---- */

/* Starts the quick demo with its temporary tree in `dir`, waits for a line
 * of its stderr that starts with `line`, sends `sig`, and checks that it
 * died of it and left `dir` empty. */
static void interrupt_at(const char *line, int sig)
{
    dir_make();
    const char *morsel = mo_test_program("morsel");
    int err[2];
    assert_int_equal(pipe(err), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(err[1], 2);
        close(err[0]);
        close(err[1]);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        setenv("TMPDIR", dir, 1);
        /* The demo keeps a signal ignored if it started ignored (as a
         * background job's SIGINT is): start it with the defaults, whatever
         * this process (under valgrind, say) left. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        /* Phases of at least 20 s: the signal surely lands in the phase it
         * is meant for, and ends the run early. */
        execl(morsel, morsel, "demo", "--quick", "--duration", "20", "--p99-limit", "1000",
              (char *)NULL);
        _exit(127);
    }
    close(err[1]);
    FILE *f = fdopen(err[0], "r");
    assert_non_null(f);
    char buf[1024];
    bool seen = false;
    while (!seen && fgets(buf, sizeof buf, f)) seen = strncmp(buf, line, strlen(line)) == 0;
    if (!seen) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_msg("the demo never printed '%s'", line);
    }
    kill(pid, sig);
    int status = 0;
    for (int i = 0; i < 6000 && waitpid(pid, &status, WNOHANG) != pid; i++) usleep(10000);
    if (!WIFSIGNALED(status) && !WIFEXITED(status)) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_msg("the demo did not end within 60 s of signal %d", sig);
    }
    fclose(f);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), sig);
    assert_true(dir_empty(dir));
    dir_remove();
}

static void sigint_while_serving_removes_the_tree(void **state)
{
    (void)state;
    interrupt_at("demo: phase 2 morsel: running", SIGINT);
}

static void sigterm_while_preparing_removes_the_tree(void **state)
{
    (void)state;
    interrupt_at("demo: preparing", SIGTERM);
}

/* ---- the judgement, in process ---- */

static void checker_catches_a_wrong_digit(void **state)
{
    (void)state;
    char *digits;
    size_t len;
    assert_int_equal(loadgen_factorial_digits(30, &digits, &len), 0);
    assert_int_equal(len, 33); /* 265252859812191058636308480000000 */
    char answer[64], err[160];
    memcpy(answer, digits, len);
    answer[len] = '\n';
    /* right, in pieces */
    size_t matched = 0;
    assert_int_equal(loadgen_factorial_check(digits, len, &matched, answer, 10, err, sizeof err),
                     LOADGEN_CHECK_MORE);
    assert_int_equal(
        loadgen_factorial_check(digits, len, &matched, answer + 10, len + 1 - 10, err, sizeof err),
        LOADGEN_CHECK_DONE);
    /* one digit changed */
    answer[20] = answer[20] == '7' ? '8' : '7';
    matched = 0;
    assert_int_equal(loadgen_factorial_check(digits, len, &matched, answer, 10, err, sizeof err),
                     LOADGEN_CHECK_MORE);
    assert_int_equal(
        loadgen_factorial_check(digits, len, &matched, answer + 10, len + 1 - 10, err, sizeof err),
        LOADGEN_CHECK_WRONG);
    assert_non_null(strstr(err, "digit 21 of 33"));
    /* more after the digits */
    answer[20] = digits[20];
    answer[len + 1] = '1';
    matched = 0;
    assert_int_equal(
        loadgen_factorial_check(digits, len, &matched, answer, len + 2, err, sizeof err),
        LOADGEN_CHECK_WRONG);
    assert_non_null(strstr(err, "goes on"));
    free(digits);
}

static void results_fine(struct loadgen_result r[DEMO_PHASES])
{
    memset(r, 0, DEMO_PHASES * sizeof *r);
    for (int i = 0; i < DEMO_PHASES; i++) {
        r[i].ping = r[i].ping_work =
            (struct loadgen_summary){1000, MO_USEC(100), MO_MSEC(1), MO_MSEC(2)};
        if (i == DEMO_IDLE) continue;
        r[i].njobs = 2;
        r[i].jobs[0] = (struct loadgen_job){.kind = LOADGEN_FACTORIAL, .done = true, .ok = true};
        r[i].jobs[1] = (struct loadgen_job){.kind = LOADGEN_WALK, .done = true, .ok = true};
    }
}

static void verdict_names_what_failed(void **state)
{
    (void)state;
    static struct loadgen_result r[DEMO_PHASES];
    char why[512];
    results_fine(r);
    assert_int_equal(demo_verdict(r, MO_MSEC(5), why, sizeof why), 0);
    /* a wrong digit in the blocking phase */
    r[DEMO_BLOCKING].jobs[0].ok = false;
    r[DEMO_BLOCKING].status = MO_EIO;
    snprintf(r[DEMO_BLOCKING].error, sizeof r[DEMO_BLOCKING].error,
             "factorial: digit 7 of 456574 is '3', expected '4'");
    assert_int_equal(demo_verdict(r, MO_MSEC(5), why, sizeof why), 1);
    assert_non_null(strstr(why, "3 blocking"));
    assert_non_null(strstr(why, "digit 7 of 456574"));
    /* phase 2 too slow */
    results_fine(r);
    r[DEMO_MORSEL].ping_work.p99 = MO_MSEC(6);
    assert_int_equal(demo_verdict(r, MO_MSEC(5), why, sizeof why), 1);
    assert_non_null(strstr(why, "2 morsel"));
    assert_non_null(strstr(why, "6.00ms"));
    assert_int_equal(demo_verdict(r, MO_MSEC(7), why, sizeof why), 0);
    /* the seed's steps cut at the time limit: not a failure... */
    results_fine(r);
    r[DEMO_STEPS].status = MO_ETIMEDOUT;
    r[DEMO_STEPS].jobs[0].done = r[DEMO_STEPS].jobs[0].ok = false;
    assert_int_equal(demo_verdict(r, MO_MSEC(5), why, sizeof why), 0);
    /* ...but a timeout elsewhere is */
    r[DEMO_MORSEL].status = MO_ETIMEDOUT;
    r[DEMO_MORSEL].jobs[1].done = r[DEMO_MORSEL].jobs[1].ok = false;
    snprintf(r[DEMO_MORSEL].error, sizeof r[DEMO_MORSEL].error, "timed out waiting for walk");
    assert_int_equal(demo_verdict(r, MO_MSEC(5), why, sizeof why), 1);
    assert_non_null(strstr(why, "timed out waiting for walk"));
    /* no round trip during the work */
    results_fine(r);
    r[DEMO_MORSEL].ping_work.count = 0;
    assert_int_equal(demo_verdict(r, MO_MSEC(5), why, sizeof why), 1);
}

MO_TEST_MAIN(cmocka_unit_test(checker_catches_a_wrong_digit),
             cmocka_unit_test(verdict_names_what_failed),
             cmocka_unit_test(bad_options_are_usage_errors),
             cmocka_unit_test(quick_run_prints_every_phase), cmocka_unit_test(json_figures),
             cmocka_unit_test(panel_on_a_terminal),
             cmocka_unit_test(sigint_while_serving_removes_the_tree),
             cmocka_unit_test(sigterm_while_preparing_removes_the_tree))
