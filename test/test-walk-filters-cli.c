/* `morsel walk`'s filters against find, as programs, on a hostile tree:
 * names with spaces, newlines, leading dashes and bytes that are not
 * UTF-8; links to directories, to files, to nothing, to themselves and
 * back up the tree; a FIFO and a socket; an unreadable directory, one that
 * can be listed but not entered, one that can be entered but not listed;
 * a chain deeper than the walk keeps descriptors for; a file system
 * mounted inside (when the tests may mount). Each option is compared with
 * the corresponding find expression, byte for byte after sorting, with
 * newlines and with -0 / -print0, sequential and --parallel, both run as
 * an unprivileged user (root reads through permission bits), and with the
 * same exit status. */
#include "test.h"

#include "walk_tree.h"

#include <stdbool.h>
#include <sys/mount.h>

static const char *morsel;
static char root[256];
static bool mounted;

/* Root reads through permission bits: the walks run as nobody. */
static const char *drop(void)
{
    return mo_test_unprivileged();
}

static void make_hostile_tree(void)
{
    tree_tmpdir(root, sizeof root);
    assert_int_equal(chmod(root, 0755), 0);
    const char *dirs[] = {
        "a",       "a/b",    "a/b/c",    "with space", "new\nline",     "bad\xff\xfeutf8", "-dash",
        ".hidden", "locked", "listonly", "enteronly",  "enteronly/sub", "listonly/sub",    "mnt",
        "deep"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) tree_dir(root, dirs[i]);
    const char *files[] = {"a/x.h",
                           "a/b/y.H",
                           "a/b/c/z.c",
                           "UPPER.H",
                           "with space/s.h",
                           "new\nline/in\nside.h",
                           "bad\xff\xfeutf8/\xe9t\xe9.h",
                           "\xc3\xa9t\xc3\xa9.h", /* été.h in UTF-8 */
                           "-dash/-n",
                           "-dash/-name x",
                           ".hidden/.h",
                           "listonly/f.h",
                           "enteronly/e.h",
                           "locked/secret.h",
                           "a/b/c/-print"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) tree_file(root, files[i]);
    tree_link(root, "a", "link-to-dir");
    tree_link(root, "a/x.h", "link-to-file.h");
    tree_link(root, "nowhere", "broken.h");
    tree_link(root, "loop", "loop");
    tree_link(root, "..", "a/up");
    tree_link(root, "../../..", "a/b/c/up3");
    tree_fifo(root, "fifo");
    tree_socket(root, "sock.h");
    tree_deep(root, "deep", 3 * 32 + 5);
    char p[400];
    snprintf(p, sizeof p, "%s/mnt", root);
    mounted = getuid() == 0 && mount("morsel-test", p, "tmpfs", 0, "size=1m") == 0;
    if (mounted) {
        tree_dir(root, "mnt/inner");
        tree_file(root, "mnt/inner/m.h");
        tree_link(root, "mnt", "link-to-mnt");
    }
    /* Last: as root we could still create in them, but nobody cannot. */
    snprintf(p, sizeof p, "%s/locked", root);
    assert_int_equal(chmod(p, 0), 0);
    snprintf(p, sizeof p, "%s/listonly", root);
    assert_int_equal(chmod(p, 0444), 0);
    snprintf(p, sizeof p, "%s/enteronly", root);
    assert_int_equal(chmod(p, 0111), 0);
}

static void remove_tree(void)
{
    if (mounted) {
        char p[400];
        snprintf(p, sizeof p, "%s/mnt", root);
        umount(p);
    }
    tree_rm(root);
}

/* One comparison: `morsel walk MOPTS ROOT` against `find FPRE ROOT FEXPR`
 * in `mode` (0: newlines, 1: -0, 2: --parallel), under the locale `lc`. */
static void compare(const char *mopts, const char *fpre, const char *fexpr, int mode,
                    const char *lc)
{
    char m[300], f[300];
    snprintf(m, sizeof m, "%s.m", root);
    snprintf(f, sizeof f, "%s.f", root);
    const char *zsort = mode == 1 ? "sort -z" : "sort";
    mo_test_sh("%s env LC_ALL=%s '%s' walk --no-progress %s %s %s 2>/dev/null | LC_ALL=C %s > '%s'",
               drop(), lc, morsel,
               mode == 1   ? "-0"
               : mode == 2 ? "--parallel"
                           : "",
               mopts, root, zsort, m);
    mo_test_sh("%s env LC_ALL=%s find %s %s %s 2>/dev/null | LC_ALL=C %s > '%s'", drop(), lc, fpre,
               root, fexpr, zsort, f);
    size_t lm, lf;
    char *x = mo_test_slurp(m, &lm), *y = mo_test_slurp(f, &lf);
    if (lm != lf || memcmp(x, y, lm) != 0) {
        /* What differs, on stderr (NULs shown as newlines). */
        mo_test_sh("cmp '%s' '%s' >&2; tr '\\0' '\\n' < '%s' > '%s.t'; tr '\\0' '\\n' < '%s' > "
                   "'%s.t'; diff -a '%s.t' '%s.t' | head -20 >&2; rm -f '%s.t' '%s.t'",
                   m, f, m, m, f, f, m, f, m, f);
        fail_msg("walk %s (mode %d, LC_ALL=%s) differs from find %s ROOT %s (< morsel, > find)",
                 mopts, mode, lc, fpre, fexpr);
    }
    free(x);
    free(y);
    /* The exit status too: 1 here, for the unreadable directories. */
    int ms = mo_test_sh("%s '%s' walk --no-progress %s %s %s >/dev/null 2>&1", drop(), morsel,
                        mode == 2 ? "--parallel" : "", mopts, root);
    int fs = mo_test_sh("%s find %s %s %s >/dev/null 2>&1", drop(), fpre, root, fexpr);
    if (ms != fs)
        fail_msg("walk %s exits %d, find %s ROOT %s exits %d", mopts, ms, fpre, fexpr, fs);
    unlink(m);
    unlink(f);
}

/* Each option of walk, and the find expression it stands for. */
static const struct {
    const char *walk, *find_pre, *find_expr;
} cases[] = {
    {"", "", ""},
    {"--max-depth 2", "", "-maxdepth 2"},
    {"--max-depth 0", "", "-maxdepth 0"},
    {"--min-depth 2", "", "-mindepth 2"},
    {"--min-depth 1 --max-depth 3", "", "-mindepth 1 -maxdepth 3"},
    {"--type f", "", "-type f"},
    {"--type d --type l", "", "\\( -type d -o -type l \\)"},
    {"-t p -t s -t b -t c", "", "\\( -type p -o -type s -o -type b -o -type c \\)"},
    {"--name '*.h'", "", "-name '*.h'"},
    {"--name '*.h' --name '-*'", "", "\\( -name '*.h' -o -name '-*' \\)"},
    {"--name 'UPPER.H'", "", "-name 'UPPER.H'"},
    {"--name 'a*'", "", "-name 'a*'"},
    {"--name '?.[hH]'", "", "-name '?.[hH]'"},
    {"--name '?t?.h'", "", "-name '?t?.h'"}, /* one character or two bytes */
    {"--name '*[[:space:]]*'", "", "-name '*[[:space:]]*'"},
    {"--iname '*.h'", "", "-iname '*.h'"},
    {"--name 'x*' --iname 'upper*'", "", "\\( -name 'x*' -o -iname 'upper*' \\)"},
    {"--type f --name '*.h' --max-depth 3", "", "-maxdepth 3 -type f -name '*.h'"},
    {"--exclude a", "", "\\( ! -path ROOT -name a -prune \\) -o PRINT"},
    {"--exclude '*space*' --exclude '.*' --type f", "",
     "\\( ! -path ROOT \\( -name '*space*' -o -name '.*' \\) -prune \\) -o -type f PRINT"},
    {"-L", "-L", ""},
    {"--follow --type d", "-L", "-type d"},
    {"-L --type l", "-L", "-type l"},
    {"-L --name '*.h' --max-depth 4", "-L", "-maxdepth 4 -name '*.h'"},
    {"--xdev", "", "-xdev"},
    {"--xdev -L --name '*.h'", "-L", "-xdev -name '*.h'"},
};

/* The find expression with ROOT replaced by the tree's path, and the
 * action: PRINT where the expression says, else at the end. */
static const char *expand(const char *expr, int mode, char *buf, size_t size)
{
    const char *print = mode == 1 ? "-print0" : "-print";
    const char *r = strstr(expr, "ROOT"), *p = strstr(expr, "PRINT");
    if (!r) {
        snprintf(buf, size, "%s %s", expr, print);
        return buf;
    }
    snprintf(buf, size, "%.*s'%s'%.*s%s%s", (int)(r - expr), expr, root, (int)(p - r - 4), r + 4,
             print, p + 5);
    return buf;
}

static void run_cases(int mode, const char *lc)
{
    morsel = mo_test_program("morsel");
    make_hostile_tree();
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char buf[1024];
        compare(cases[i].walk, cases[i].find_pre, expand(cases[i].find_expr, mode, buf, sizeof buf),
                mode, lc);
    }
    remove_tree();
}

static void filters_equal_find(void **state)
{
    (void)state;
    run_cases(0, "C");
}

static void filters_equal_find_with_nul(void **state)
{
    (void)state;
    run_cases(1, "C");
}

static void filters_equal_find_in_parallel(void **state)
{
    (void)state;
    run_cases(2, "C");
}

/* In a UTF-8 locale fnmatch matches characters ("?" is one é), as find's
 * does; the fast shapes must agree with it. */
static void filters_equal_find_in_utf8(void **state)
{
    (void)state;
    run_cases(0, "C.UTF-8");
}

/* --count counts what the filters let through; --json. */
static void count_with_filters(void **state)
{
    (void)state;
    morsel = mo_test_program("morsel");
    make_hostile_tree();
    char want[64];
    FILE *p;
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "%s find '%s' -type f -name '*.h' -print0 2>/dev/null | tr -dc '\\0' | wc -c", drop(),
             root);
    p = popen(cmd, "r");
    assert_non_null(p);
    long n = -1;
    assert_int_equal(fscanf(p, "%ld", &n), 1);
    pclose(p);
    assert_true(n > 5);
    snprintf(want, sizeof want, "%ld paths, ", n);
    assert_int_equal(mo_test_sh("%s '%s' walk -c --type f --name '*.h' '%s' 2>/dev/null | grep -q "
                                "'^%s'",
                                drop(), morsel, root, want),
                     0);
    snprintf(want, sizeof want, "{\"paths\":%ld,\"dirs\":", n);
    assert_int_equal(mo_test_sh("%s '%s' walk -c --json --type f --name '*.h' '%s' 2>/dev/null | "
                                "grep -q '^%s[0-9]*,\"errors\":[1-9][0-9]*}$'",
                                drop(), morsel, root, want),
                     0);
    remove_tree();
}

/* Usage errors name the option and the value. */
static void filter_usage_errors(void **state)
{
    (void)state;
    morsel = mo_test_program("morsel");
    const char *bad[] = {"--type x .",      "--type ff .", "--max-depth -1 .",
                         "--min-depth x .", "--name",      "--max-depth 99999999999 ."};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (mo_test_sh("'%s' walk %s >/dev/null 2>&1", morsel, bad[i]) != 2)
            fail_msg("walk %s did not exit 2", bad[i]);
        if (mo_test_sh("'%s' walk %s 2>&1 >/dev/null | grep -q '^morsel: walk: '", morsel,
                       bad[i]) != 0)
            fail_msg("walk %s: no 'morsel: walk: ' message", bad[i]);
    }
    assert_int_equal(mo_test_sh("'%s' walk --type x . 2>&1 | grep -qx \"morsel: walk: --type "
                                "takes one of f d l p s b c, not 'x'\"",
                                morsel),
                     0);
}

MO_TEST_MAIN(cmocka_unit_test(filters_equal_find), cmocka_unit_test(filters_equal_find_with_nul),
             cmocka_unit_test(filters_equal_find_in_parallel),
             cmocka_unit_test(filters_equal_find_in_utf8), cmocka_unit_test(count_with_filters),
             cmocka_unit_test(filter_usage_errors))
