/* The morsel command under faults, as a hostile user meets it: output that
 * cannot be written (/dev/full, a closed stdout, a reader that goes away),
 * options it does not know, a walk that cannot start, a signal in the
 * middle of `factorial -o FILE`. Every command is run as a program.
 *
 * The SIGPIPE convention is find's and coreutils': a command whose reader
 * has gone dies of SIGPIPE, silently (status 141 from the shell); if
 * SIGPIPE was ignored when it started, it reports "Broken pipe" and exits
 * 1 instead. */
#include "test.h"

#include "walk_tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

static const char *morsel; /* the binary beside this test's */

/* A temporary file name for a command's stderr or stdout. */
static void tmpname(char *buf, size_t size, const char *what)
{
    snprintf(buf, size, "/tmp/morsel-faults-%ld-%s", (long)getpid(), what);
}

/* Runs `morsel ARGS REDIRECT` with stderr to a file; returns the status
 * and stores stderr (caller frees). */
static int run_err(const char *args, const char *redirect, char **err)
{
    char path[128];
    tmpname(path, sizeof path, "err");
    int rc = mo_test_sh("'%s' %s %s 2>'%s'", morsel, args, redirect, path);
    *err = mo_test_slurp(path, NULL);
    unlink(path);
    return rc;
}

/* Expects exit 1 and exactly one line on stderr, "morsel: CMD: ..." with
 * `reason` in it. */
static void expect_write_error(const char *args, const char *redirect, const char *cmd,
                               const char *reason)
{
    char *err, prefix[64];
    int rc = run_err(args, redirect, &err);
    snprintf(prefix, sizeof prefix, "morsel: %s%s", cmd, *cmd ? ": " : "");
    if (rc != 1) fail_msg("'morsel %s %s' exited %d, not 1; stderr: %s", args, redirect, rc, err);
    if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, reason) ||
        strchr(err, '\n') != err + strlen(err) - 1)
        fail_msg("'morsel %s %s': stderr is '%s', expected one line '%s...%s...'", args, redirect,
                 err, prefix, reason);
    free(err);
}

/* ---- issue 16.1: a walk that cannot start ---- */

/* With one process allowed to its user, the parallel walk's pool cannot
 * start a thread: mo_walk() fails, and the command must say so and exit 1
 * (it used to drop a reference to a Deferred it never had). Root is not
 * held to RLIMIT_NPROC: the walk runs as nobody. */
static void walk_that_cannot_start_is_reported(void **state)
{
    (void)state;
    morsel = mo_test_program("morsel");
    char root[256], err[128];
    tree_tmpdir(root, sizeof root);
    assert_int_equal(chmod(root, 0755), 0);
    tree_dir(root, "d");
    tmpname(err, sizeof err, "err");
    const char *drop = mo_test_unprivileged();
    /* (LeakSanitizer needs a thread of its own at exit: not with one
     * process allowed.) */
    int rc = mo_test_sh("%s prlimit --nproc=1 env ASAN_OPTIONS=detect_leaks=0 '%s' walk -p '%s' "
                        ">/dev/null 2>'%s'",
                        drop, morsel, root, err);
    char *s = mo_test_slurp(err, NULL);
    char want[512];
    snprintf(want, sizeof want, "morsel: walk: '%s': cannot start the walk: %s\n", root,
             strerror(EAGAIN));
    if (rc != 1 || strcmp(s, want) != 0)
        fail_msg("exit %d, stderr '%s'; expected 1 and '%s'", rc, s, want);
    free(s);
    unlink(err);
    tree_rm(root);
}

/* ---- issue 16.4: standard descriptors closed at start ---- */

static void closed_stdout_is_a_bad_file_descriptor(void **state)
{
    (void)state;
    morsel = mo_test_program("morsel");
    char root[256], args[512];
    tree_tmpdir(root, sizeof root);
    tree_many(root, "", 100);
    snprintf(args, sizeof args, "walk '%s'", root);
    const char *reason = strerror(EBADF);
    expect_write_error(args, ">&-", "walk", reason);
    expect_write_error("factorial 100000", ">&-", "factorial", reason);
    expect_write_error("factorial --naive 100", ">&-", "factorial", reason);
    expect_write_error("lag --period 5 --report 20 --count 1", ">&-", "lag", reason);
    expect_write_error("--version", ">&-", "", reason);
    expect_write_error("walk --help", ">&-", "walk", reason);
    /* Closed stdin or stderr: the command still works. */
    assert_int_equal(mo_test_sh("'%s' factorial 10 <&- | grep -qx 3628800", morsel), 0);
    assert_int_equal(mo_test_sh("'%s' walk '%s' 2>&- | grep -c . | grep -qx 101", morsel, root), 0);
    /* With stderr closed an error cannot be told, but the status says it. */
    assert_int_equal(mo_test_sh("'%s' walk /nonexistent 2>&- >/dev/null", morsel), 1);
    tree_rm(root);
}

/* ---- issue 16.5: every write checked ---- */

static void full_device_fails_every_command(void **state)
{
    (void)state;
    morsel = mo_test_program("morsel");
    char root[256], args[512];
    tree_tmpdir(root, sizeof root);
    tree_many(root, "", 100);
    const char *reason = strerror(ENOSPC);
    snprintf(args, sizeof args, "walk '%s'", root);
    expect_write_error(args, ">/dev/full", "walk", reason);
    snprintf(args, sizeof args, "walk -c '%s'", root);
    expect_write_error(args, ">/dev/full", "walk", reason);
    snprintf(args, sizeof args, "walk -p -0 '%s'", root);
    expect_write_error(args, ">/dev/full", "walk", reason);
    expect_write_error("factorial 100", ">/dev/full", "factorial", reason);
    expect_write_error("factorial 200000", ">/dev/full", "factorial", reason);
    expect_write_error("factorial --naive 100", ">/dev/full", "factorial", reason);
    expect_write_error("factorial -o /dev/full 100", "", "factorial", reason);
    expect_write_error("lag --period 5 --report 20 --count 1", ">/dev/full", "lag", reason);
    /* Without --count, lag must stop at the first failed report, not
     * write into the void forever (timeout would exit 124). */
    expect_write_error("lag --period 5 --report 20", ">/dev/full", "lag", reason);
    const char *info[] = {"--version",  "--help",        "walk --help",      "walk --version",
                          "lag --help", "lag --version", "factorial --help", "factorial --version"};
    for (size_t i = 0; i < sizeof info / sizeof info[0]; i++) {
        const char *cmd = strchr(info[i], ' ') ? info[i] : "";
        char name[32] = "";
        if (*cmd)
            snprintf(name, sizeof name, "%.*s", (int)(strchr(info[i], ' ') - info[i]), info[i]);
        expect_write_error(info[i], ">/dev/full", name, reason);
    }
    tree_rm(root);
}

/* ---- issue 16.6: --version everywhere, the tool's own usage errors ---- */

static void version_and_unknown_options_on_every_command(void **state)
{
    (void)state;
    morsel = mo_test_program("morsel");
    const char *cmds[] = {"walk", "lag", "factorial"};
    char want[128], args[128];
    snprintf(want, sizeof want, "| grep -qx 'morsel %s'", mo_version_string());
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        for (int s = 0; s < 2; s++) {
            if (mo_test_sh("'%s' %s %s %s", morsel, cmds[i], s ? "-V" : "--version", want) != 0)
                fail_msg("%s %s: no version", cmds[i], s ? "-V" : "--version");
        }
        /* An unknown option: the tool's message and a one-line hint,
         * status 2, nothing on stdout. */
        char *err, expect[256];
        snprintf(args, sizeof args, "%s --bogus", cmds[i]);
        assert_int_equal(run_err(args, ">/dev/null", &err), 2);
        snprintf(expect, sizeof expect,
                 "morsel: %s: unknown option '--bogus'\n"
                 "Try 'morsel %s --help' for more information.\n",
                 cmds[i], cmds[i]);
        assert_string_equal(err, expect);
        free(err);
        snprintf(args, sizeof args, "%s -Z", cmds[i]);
        assert_int_equal(run_err(args, ">/dev/null", &err), 2);
        snprintf(expect, sizeof expect,
                 "morsel: %s: unknown option '-Z'\n"
                 "Try 'morsel %s --help' for more information.\n",
                 cmds[i], cmds[i]);
        assert_string_equal(err, expect);
        free(err);
        assert_int_equal(
            mo_test_sh("'%s' %s --bogus 2>/dev/null | wc -c | grep -qx 0", morsel, cmds[i]), 0);
    }
    char *err;
    assert_int_equal(run_err("lag --period", ">/dev/null", &err), 2);
    assert_string_equal(err, "morsel: lag: option '--period' needs an argument\n"
                             "Try 'morsel lag --help' for more information.\n");
    free(err);
    assert_int_equal(run_err("--bogus", ">/dev/null", &err), 2);
    assert_string_equal(err, "morsel: unknown option '--bogus'\n"
                             "Try 'morsel --help' for more information.\n");
    free(err);
}

/* ---- issue 16.8 and 14: factorial -o FILE never leaves a partial file ---- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* The names in dir, one per line, sorted (caller frees). */
static char *listing(const char *dir)
{
    char out[128];
    tmpname(out, sizeof out, "ls");
    assert_int_equal(mo_test_sh("ls -A '%s' > '%s'", dir, out), 0);
    char *s = mo_test_slurp(out, NULL);
    unlink(out);
    return s;
}

/* A failed write (a file size limit: EFBIG) leaves FILE as it was and no
 * temporary file beside it; success replaces it whole, mode kept. */
static void output_file_replaced_only_on_success(void **state)
{
    (void)state;
    morsel = mo_test_program("morsel");
    char dir[256], file[300];
    tree_tmpdir(dir, sizeof dir);
    snprintf(file, sizeof file, "%s/out", dir);
    write_file(file, "old contents\n");
    assert_int_equal(chmod(file, 0640), 0);
    /* 20000! has 77,338 digits, more than 8 blocks of 512 bytes. */
    assert_int_equal(
        mo_test_sh("trap '' XFSZ; ulimit -f 8; '%s' factorial -o '%s' 20000 2>/dev/null", morsel,
                   file),
        1);
    char *s = mo_test_slurp(file, NULL);
    assert_string_equal(s, "old contents\n");
    free(s);
    s = listing(dir);
    assert_string_equal(s, "out\n");
    free(s);
    assert_int_equal(mo_test_sh("'%s' factorial -o '%s' 10", morsel, file), 0);
    s = mo_test_slurp(file, NULL);
    assert_string_equal(s, "3628800\n");
    free(s);
    struct stat st;
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    s = listing(dir);
    assert_string_equal(s, "out\n");
    free(s);
    /* A new file gets 0666 less the umask. */
    snprintf(file, sizeof file, "%s/new", dir);
    assert_int_equal(mo_test_sh("umask 027; '%s' factorial -o '%s' 5", morsel, file), 0);
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    /* Not a regular file: written in place, never replaced. */
    assert_int_equal(mo_test_sh("'%s' factorial -o /dev/null 1000", morsel), 0);
    assert_int_equal(stat("/dev/null", &st), 0);
    assert_true(S_ISCHR(st.st_mode));
    tree_rm(dir);
}

/* Ctrl-C in the middle of a long `factorial -o FILE`: the command dies of
 * SIGINT as a Unix tool does, FILE keeps its old contents and the
 * temporary file is gone. */
static void interrupt_leaves_no_partial_file(void **state)
{
    (void)state;
    morsel = mo_test_program("morsel");
    char dir[256], file[300];
    tree_tmpdir(dir, sizeof dir);
    snprintf(file, sizeof file, "%s/out", dir);
    write_file(file, "old contents\n");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGINT, SIG_DFL);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, STDERR_FILENO);
        execl(morsel, "morsel", "factorial", "-o", file, "20000000", (char *)NULL);
        _exit(127);
    }
    /* Wait until the temporary file is there (the run is well under way),
     * at most 10 s, then interrupt. */
    for (int i = 0; i < 1000; i++) {
        char *s = listing(dir);
        bool tmp = strcmp(s, "out\n") != 0;
        free(s);
        if (tmp) break;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    nanosleep(&(struct timespec){0, 200 * 1000 * 1000}, NULL);
    assert_int_equal(kill(pid, SIGINT), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGINT)
        fail_msg("morsel did not die of SIGINT: status 0x%x", status);
    char *s = mo_test_slurp(file, NULL);
    assert_string_equal(s, "old contents\n");
    free(s);
    s = listing(dir);
    assert_string_equal(s, "out\n");
    free(s);
    tree_rm(dir);
}

/* ---- issue 14: one SIGPIPE convention for every command ---- */

/* Runs `morsel ARGS | head -c 1` and returns morsel's own status as the
 * shell gives it; stores its stderr. With `ignore`, SIGPIPE is ignored
 * when morsel starts. */
static int piped(const char *args, bool ignore, char **err)
{
    char st[128], e[128];
    tmpname(st, sizeof st, "status");
    tmpname(e, sizeof e, "err");
    int rc = mo_test_sh("%s { '%s' %s 2>'%s'; echo $? > '%s'; } | head -c 1 > /dev/null",
                        ignore ? "trap '' PIPE;" : "", morsel, args, e, st);
    assert_int_equal(rc, 0);
    char *s = mo_test_slurp(st, NULL);
    int status = atoi(s);
    free(s);
    *err = mo_test_slurp(e, NULL);
    unlink(st);
    unlink(e);
    return status;
}

static void reader_gone_means_sigpipe(void **state)
{
    (void)state;
    morsel = mo_test_program("morsel");
    char root[256], walk[300], walkp[300];
    tree_tmpdir(root, sizeof root);
    tree_many(root, "", 20000); /* far more than a pipe holds */
    snprintf(walk, sizeof walk, "walk '%s'", root);
    snprintf(walkp, sizeof walkp, "walk -p '%s'", root);
    const char *args[] = {walk, walkp, "factorial 200000", "factorial --naive 30000",
                          "lag --period 1 --report 5"};
    const char *names[] = {"walk", "walk", "factorial", "factorial", "lag"};
    for (size_t i = 0; i < sizeof args / sizeof args[0]; i++) {
        char *err;
        int st = piped(args[i], false, &err);
        if (st != 128 + SIGPIPE || *err)
            fail_msg("morsel %s | head: status %d, stderr '%s'; expected 141, silent", args[i], st,
                     err);
        free(err);
        /* SIGPIPE ignored by whoever started it: "Broken pipe", exit 1. */
        st = piped(args[i], true, &err);
        char want[128];
        snprintf(want, sizeof want, "morsel: %s: ", names[i]);
        if (st != 1 || strncmp(err, want, strlen(want)) != 0 || !strstr(err, strerror(EPIPE)))
            fail_msg("morsel %s | head, SIGPIPE ignored: status %d, stderr '%s'", args[i], st, err);
        free(err);
    }
    tree_rm(root);
}

MO_TEST_MAIN(cmocka_unit_test(walk_that_cannot_start_is_reported),
             cmocka_unit_test(closed_stdout_is_a_bad_file_descriptor),
             cmocka_unit_test(full_device_fails_every_command),
             cmocka_unit_test(version_and_unknown_options_on_every_command),
             cmocka_unit_test(output_file_replaced_only_on_success),
             cmocka_unit_test(interrupt_leaves_no_partial_file),
             cmocka_unit_test(reader_gone_means_sigpipe))
