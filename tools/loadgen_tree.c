/* loadgen: what the answers must be (N! from GMP, a walk's lines from nftw)
 * and the generated tree the walk requests list. */
#include "loadgen.h"

#include <fcntl.h>
#include <ftw.h>
#include <gmp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_ENTRIES 200000
#define DEFAULT_FILES   200
#define LEVELS          2 /* levels of subdirectories below the top */

int loadgen_factorial_digits(unsigned long n, char **digitsp, size_t *lenp)
{
    mpz_t f;
    mpz_init(f);
    mpz_fac_ui(f, n);
    size_t cap = mpz_sizeinbase(f, 10) + 2;
    char *digits = malloc(cap);
    if (!digits) {
        mpz_clear(f);
        return MO_ENOMEM;
    }
    mpz_get_str(digits, 10, f);
    mpz_clear(f);
    *lenp = strlen(digits);
    *digitsp = digits;
    return 0;
}

/* FNV-1a, then splitmix64's finaliser so that sums of hashes of similar
 * lines do not cancel out. */
static uint64_t line_hash(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 0x100000001b3u;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9u;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebu;
    return h ^ (h >> 31);
}

void loadgen_walk_sum_line(struct loadgen_walk_sum *sum, const char *line, size_t len)
{
    sum->count++;
    sum->hash += line_hash(line, len);
}

size_t loadgen_escape(const char *path, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (path[i] == '\n' || path[i] == '\\') {
            out[o++] = '\\';
            out[o++] = path[i] == '\n' ? 'n' : '\\';
        } else {
            out[o++] = path[i];
        }
    }
    out[o] = '\0';
    return o;
}

/* nftw passes no argument to its callback: the walk in progress is the
 * thread's. */
static _Thread_local struct sum_walk {
    struct loadgen_walk_sum *sum;
    const char *top;
    int err;
} * sum_walk;

static int sum_visit(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    struct sum_walk *w = sum_walk;
    if (flag == FTW_DNR || flag == FTW_NS) {
        w->err = -(errno ? errno : EACCES);
        return 1;
    }
    /* nftw drops a trailing "/" from the top; the protocol keeps DIR as given. */
    const char *p = ftw->level == 0 ? w->top : path;
    size_t len = strlen(p);
    char stackbuf[2 * PATH_MAX + 1], *esc = stackbuf;
    if (2 * len + 1 > sizeof stackbuf && !(esc = malloc(2 * len + 1))) {
        w->err = MO_ENOMEM;
        return 1;
    }
    loadgen_walk_sum_line(w->sum, esc, loadgen_escape(p, len, esc));
    if (esc != stackbuf) free(esc);
    return 0;
}

int loadgen_walk_sum_dir(const char *dir, struct loadgen_walk_sum *out)
{
    struct stat st;
    if (lstat(dir, &st) != 0) return -errno;
    if (!S_ISDIR(st.st_mode)) return MO_ENOTDIR;
    struct loadgen_walk_sum sum = {0, 0};
    struct sum_walk w = {&sum, dir, 0};
    sum_walk = &w;
    errno = 0;
    int rc = nftw(dir, sum_visit, 32, FTW_PHYS);
    sum_walk = NULL;
    if (w.err) return w.err;
    if (rc != 0) return -(errno ? errno : EIO);
    *out = sum;
    return 0;
}

/* ---- the tree ---- */

struct tree {
    uint64_t left;  /* entries still to make */
    unsigned files; /* per directory */
    unsigned fan;   /* subdirectories per directory above the last level */
    uint64_t rng;
    atomic_int *cancel;
};

static unsigned tree_rand(struct tree *t, unsigned n)
{
    t->rng = t->rng * 6364136223846793005u + 1442695040888963407u;
    return (unsigned)((t->rng >> 33) % n);
}

/* The smallest fan-out whose three levels of directories hold `entries`:
 * fan + fan^2 directories below the top, `files` files in each of the
 * 1 + fan + fan^2 directories. */
static unsigned tree_fan(uint64_t entries, unsigned files)
{
    for (uint64_t b = 0;; b++) {
        uint64_t dirs = b + b * b;
        if (dirs + files * (1 + dirs) >= entries) return (unsigned)b;
    }
}

static int tree_entry(struct tree *t, int dfd, const char *name, bool dir)
{
    if (t->left == 0) return 0;
    if (t->cancel && atomic_load(t->cancel)) return MO_ECANCELED;
    t->left--;
    if (dir) return mkdirat(dfd, name, 0755) == 0 ? 0 : -errno;
    int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return -errno;
    close(fd);
    return 0;
}

/* One directory's own entries: its subdirectories (above the last level),
 * then its files, named with varied lengths. */
static int tree_fill(struct tree *t, int dfd, int level)
{
    char name[64];
    int err = 0;
    for (unsigned i = 0; !err && level < LEVELS && i < t->fan; i++) {
        snprintf(name, sizeof name, "d%03u", i);
        err = tree_entry(t, dfd, name, true);
    }
    for (unsigned i = 0; !err && i < t->files; i++) {
        snprintf(name, sizeof name, "file%05u%.*s.dat", i, (int)tree_rand(t, 24),
                 "-abcdefghijklmnopqrstuvw");
        err = tree_entry(t, dfd, name, false);
    }
    return err;
}

/* Fills the directory at `rel` (relative to the top's fd) if it exists. */
static int tree_fill_at(struct tree *t, int top, const char *rel, int level)
{
    if (t->left == 0) return 0;
    int dfd = openat(top, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return errno == ENOENT ? 0 : -errno; /* never made: entries ran out */
    int err = tree_fill(t, dfd, level);
    close(dfd);
    return err;
}

/* Names the protocol must escape or that trip naive code, and a symbolic
 * link to a directory that a walk must list but not enter. */
static int tree_special(int top)
{
    static const char *const files[] = {"new\nline", "back\\slash", "name with  spaces",
                                        "dir\nwith\\both/f", "-starts-with-dash"};
    if (mkdirat(top, "dir\nwith\\both", 0755) != 0) return -errno;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        int fd = openat(top, files[i], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0) return -errno;
        close(fd);
    }
    return symlinkat(".", top, "link-to-top") == 0 ? 0 : -errno;
}

static int tree_build(struct tree *t, int top)
{
    char rel[32];
    int err = tree_fill(t, top, 0);
    for (unsigned i = 0; !err && i < t->fan; i++) {
        snprintf(rel, sizeof rel, "d%03u", i);
        err = tree_fill_at(t, top, rel, 1);
    }
    for (unsigned i = 0; !err && i < t->fan; i++)
        for (unsigned j = 0; !err && j < t->fan; j++) {
            snprintf(rel, sizeof rel, "d%03u/d%03u", i, j);
            err = tree_fill_at(t, top, rel, 2);
        }
    return err;
}

int loadgen_tree_make(const char *parent, const struct loadgen_tree_opts *opts, char *path,
                      size_t size)
{
    if (!opts || !path) return MO_EINVAL;
    if (!parent) parent = getenv("TMPDIR");
    if (!parent || !*parent) parent = "/tmp";
    if ((size_t)snprintf(path, size, "%s/morsel-e2e-tree-XXXXXX", parent) >= size)
        return MO_ENAMETOOLONG;
    if (!mkdtemp(path)) return -errno;
    struct tree t = {opts->entries ? opts->entries : DEFAULT_ENTRIES,
                     opts->files_per_dir ? opts->files_per_dir : DEFAULT_FILES, 0, 42,
                     opts->cancel};
    t.fan = tree_fan(t.left, t.files);
    int top = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int err = top < 0 ? -errno : tree_build(&t, top);
    if (!err && opts->special) err = tree_special(top);
    if (top >= 0) close(top);
    if (err) loadgen_tree_remove(path);
    return err;
}

static _Thread_local int remove_err;

static int remove_visit(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    if (remove(path) != 0 && !remove_err) remove_err = -errno;
    return 0;
}

int loadgen_tree_remove(const char *path)
{
    remove_err = 0;
    if (nftw(path, remove_visit, 32, FTW_DEPTH | FTW_PHYS) != 0 && !remove_err)
        remove_err = -(errno ? errno : EIO);
    return remove_err;
}
