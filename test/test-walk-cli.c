/* `morsel walk`, run as a program: its output, sorted, is byte-identical to
 * find's on generated trees (odd names included, with -0 against -print0);
 * errors go to stderr in find's style with exit status 1; usage errors
 * exit 2. The binary is the `morsel` next to this test's executable. */
#include "test.h"

#include "walk_tree.h"

#include <limits.h>
#include <sys/wait.h>

static const char *morsel; /* the binary beside this test's */

static void assert_same_file(const char *a, const char *b)
{
    size_t la, lb;
    char *x = mo_test_slurp(a, &la), *y = mo_test_slurp(b, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(x, y, la);
    assert_true(la > 0);
    free(x);
    free(y);
}

static void make_odd_tree(const char *root)
{
    tree_dir(root, "empty");
    tree_dir(root, "with space");
    tree_dir(root, "new\nline");
    tree_file(root, "new\nline/in\nside");
    tree_dir(root, "bad\xff\xfeutf8");
    tree_file(root, "bad\xff\xfeutf8/-n");
    tree_dir(root, "a");
    tree_dir(root, "a/b");
    tree_file(root, "a/b/f");
    tree_link(root, "a", "link-to-dir");
    tree_link(root, "loop", "loop");
    tree_link(root, "..", "a/up");
    tree_fifo(root, "fifo");
    tree_socket(root, "sock");
    tree_deep(root, "a", 300);
    tree_many(root, "empty/../with space", 5000);
}

static void test_sorted_output_equals_find(void **state)
{
    (void)state;
    morsel = mo_test_program("morsel");
    char root[256];
    tree_tmpdir(root, sizeof root);
    make_odd_tree(root);
    assert_int_equal(mo_test_sh("'%s' walk '%s' | LC_ALL=C sort > '%s.m'", morsel, root, root), 0);
    assert_int_equal(mo_test_sh("find '%s' | LC_ALL=C sort > '%s.f'", root, root), 0);
    char m[300], f[300];
    snprintf(m, sizeof m, "%s.m", root);
    snprintf(f, sizeof f, "%s.f", root);
    assert_same_file(m, f);
    /* NUL-separated, which keeps the names with newlines whole. */
    assert_int_equal(
        mo_test_sh("'%s' walk -0 '%s' | LC_ALL=C sort -z > '%s.m'", morsel, root, root), 0);
    assert_int_equal(mo_test_sh("find '%s' -print0 | LC_ALL=C sort -z > '%s.f'", root, root), 0);
    assert_same_file(m, f);
    /* A trailing slash, and a relative top, print as find prints them. */
    assert_int_equal(
        mo_test_sh("cd '%s' && '%s' walk a/ . | LC_ALL=C sort > '%s.m'", root, morsel, root), 0);
    assert_int_equal(mo_test_sh("cd '%s' && find a/ . | LC_ALL=C sort > '%s.f'", root, root), 0);
    assert_same_file(m, f);
    unlink(m);
    unlink(f);
    tree_rm(root);
}

/* --parallel: order not kept, but the same paths, byte for byte. */
static void test_parallel_sorted_output_equals_find(void **state)
{
    (void)state;
    morsel = mo_test_program("morsel");
    char root[256], m[300], f[300];
    tree_tmpdir(root, sizeof root);
    make_odd_tree(root);
    snprintf(m, sizeof m, "%s.m", root);
    snprintf(f, sizeof f, "%s.f", root);
    assert_int_equal(
        mo_test_sh("'%s' walk --parallel '%s' | LC_ALL=C sort > '%s'", morsel, root, m), 0);
    assert_int_equal(mo_test_sh("find '%s' | LC_ALL=C sort > '%s'", root, f), 0);
    assert_same_file(m, f);
    assert_int_equal(mo_test_sh("'%s' walk -p -0 '%s' | LC_ALL=C sort -z > '%s'", morsel, root, m),
                     0);
    assert_int_equal(mo_test_sh("find '%s' -print0 | LC_ALL=C sort -z > '%s'", root, f), 0);
    assert_same_file(m, f);
    assert_int_equal(
        mo_test_sh("cd '%s' && '%s' walk --parallel a/ . | LC_ALL=C sort > '%s'", root, morsel, m),
        0);
    assert_int_equal(mo_test_sh("cd '%s' && find a/ . | LC_ALL=C sort > '%s'", root, f), 0);
    assert_same_file(m, f);
    /* Errors as in the default mode: reported, the rest printed, exit 1. */
    assert_int_equal(
        mo_test_sh("cd '%s' && '%s' walk -p nope a 2>&1 >/dev/null | grep -qx \"morsel: walk: "
                   "'nope': No such file or directory\"",
                   root, morsel),
        0);
    assert_int_equal(mo_test_sh("cd '%s' && '%s' walk -p nope a > /dev/null 2>&1", root, morsel),
                     1);
    assert_int_equal(
        mo_test_sh(
            "cd '%s' && test \"$('%s' walk -p --count a/b)\" = '2 paths, 1 directories, 0 errors'",
            root, morsel),
        0);
    unlink(m);
    unlink(f);
    tree_rm(root);
}

/* --stats reports the loop's statistics and the heartbeat's lag. */
static void test_stats(void **state)
{
    (void)state;
    morsel = mo_test_program("morsel");
    char root[256], out[300];
    tree_tmpdir(root, sizeof root);
    make_odd_tree(root);
    snprintf(out, sizeof out, "%s.stats", root);
    for (int parallel = 0; parallel < 2; parallel++) {
        assert_int_equal(mo_test_sh("'%s' walk %s --stats '%s' > /dev/null 2> '%s'", morsel,
                                    parallel ? "--parallel" : "", root, out),
                         0);
        char *s = mo_test_slurp(out, NULL);
        assert_non_null(strstr(s, "\nloop callbacks (duration): "));
        assert_non_null(strstr(s, "loop lag (delayed calls): "));
        assert_non_null(strstr(s, "\ncooperator: "));
        assert_true(strstr(s, "\nlag of a 1 ms heartbeat: ") || strstr(s, "\nlag: no beats"));
        free(s);
        unlink(out);
    }
    tree_rm(root);
}

/* Default order: os.path.walk's, which the unsorted output shows: the
 * listing of a directory comes before anything below it. */
static void test_default_order_is_os_path_walk(void **state)
{
    (void)state;
    morsel = mo_test_program("morsel");
    char root[256], out[300];
    tree_tmpdir(root, sizeof root);
    tree_dir(root, "x");
    tree_dir(root, "x/y");
    tree_file(root, "x/y/f");
    tree_file(root, "x/g");
    snprintf(out, sizeof out, "%s.m", root);
    assert_int_equal(mo_test_sh("cd '%s' && '%s' walk x > '%s'", root, morsel, out), 0);
    char *s = mo_test_slurp(out, NULL);
    /* x, then x's listing (y and g in either order), then x/y's. */
    assert_true(!strcmp(s, "x\nx/y\nx/g\nx/y/f\n") || !strcmp(s, "x\nx/g\nx/y\nx/y/f\n"));
    free(s);
    unlink(out);
    tree_rm(root);
}

static void test_errors_and_exit_status(void **state)
{
    (void)state;
    morsel = mo_test_program("morsel");
    char root[256], err[300];
    tree_tmpdir(root, sizeof root);
    tree_dir(root, "d");
    tree_file(root, "d/f");
    snprintf(err, sizeof err, "%s.err", root);
    /* A missing DIR: reported like find, the others still printed, exit 1. */
    assert_int_equal(
        mo_test_sh("cd '%s' && '%s' walk nope d > /dev/null 2> '%s'", root, morsel, err), 1);
    char *s = mo_test_slurp(err, NULL);
    assert_string_equal(s, "morsel: walk: 'nope': No such file or directory\n");
    free(s);
    assert_int_equal(mo_test_sh("cd '%s' && '%s' walk nope d | grep -qx d/f", root, morsel), 0);
    /* --fail-fast stops at the first error. */
    assert_int_equal(
        mo_test_sh("cd '%s' && '%s' walk --fail-fast nope d 2>/dev/null | grep -q d", root, morsel),
        1);
    /* A file given as DIR is printed, like find. */
    assert_int_equal(mo_test_sh("cd '%s' && test \"$('%s' walk d/f)\" = d/f", root, morsel), 0);
    /* --count prints only totals: 2 paths, 1 directory. */
    assert_int_equal(
        mo_test_sh(
            "cd '%s' && test \"$('%s' walk --count d)\" = '2 paths, 1 directories, 0 errors'", root,
            morsel),
        0);
    unlink(err);
    tree_rm(root);
}

/* As root, permission bits do not stop reads: the walk runs as nobody. */
static void test_unreadable_directory_reported(void **state)
{
    (void)state;
    morsel = mo_test_program("morsel");
    /* Root reads through permission bits, so as root the walk runs as
     * nobody (setpriv, util-linux); otherwise as ourselves. */
    const char *drop = mo_test_unprivileged();
    char root[256];
    tree_tmpdir(root, sizeof root);
    assert_int_equal(chmod(root, 0755), 0);
    tree_dir(root, "locked");
    tree_dir(root, "open");
    tree_file(root, "open/f");
    char locked[300];
    snprintf(locked, sizeof locked, "%s/locked", root);
    assert_int_equal(chmod(locked, 0), 0);
    assert_int_equal(mo_test_sh("%s '%s' walk '%s' 2>&1 >/dev/null | grep -qx \"morsel: walk: "
                                "'%s': Permission denied\"",
                                drop, morsel, root, locked),
                     0);
    assert_int_equal(mo_test_sh("%s '%s' walk '%s' > /dev/null 2>&1", drop, morsel, root), 1);
    assert_int_equal(mo_test_sh("%s '%s' walk '%s' 2>/dev/null | grep -qx '%s/open/f'", drop,
                                morsel, root, root),
                     0);
    tree_rm(root);
}

static void test_usage(void **state)
{
    (void)state;
    morsel = mo_test_program("morsel");
    assert_int_equal(mo_test_sh("'%s' walk --bogus > /dev/null 2>&1", morsel), 2);
    assert_int_equal(mo_test_sh("'%s' walk --help | grep -q '^usage: morsel walk'", morsel), 0);
    assert_int_equal(mo_test_sh("'%s' walk --version | grep -q '^morsel '", morsel), 0);
    assert_int_equal(mo_test_sh("'%s' --help | grep -q ' walk '", morsel), 0);
}

MO_TEST_MAIN(cmocka_unit_test(test_sorted_output_equals_find),
             cmocka_unit_test(test_parallel_sorted_output_equals_find),
             cmocka_unit_test(test_stats), cmocka_unit_test(test_default_order_is_os_path_walk),
             cmocka_unit_test(test_errors_and_exit_status),
             cmocka_unit_test(test_unreadable_directory_reported), cmocka_unit_test(test_usage))
