/* `walk DIR` for the server: every path under DIR, DIR first, one per line
 * as `find DIR` prints them (DIR as the client wrote it, then "/" and the
 * names below it), then an empty line. DIR is taken relative to the
 * server's root (--root, else its working directory), or as an absolute
 * path; with --root it must resolve (symbolic links included) to the root
 * or below it. The walk is mo_walk() in pieces,
 * paused while the client does not read (the stream's producer); in the
 * blocking mode, a recursive readdir in the read callback. The first
 * error ends the answer with its error line, after the paths so far. */
#include "serve_int.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The walk's slice: a quarter of a millisecond, so that pings on other
 * connections wait little for it. */
#define WALK_SLICE MO_USEC(250)

/* The text of an answer, built a directory's listing at a time and
 * written with one write: a system call per listing, not per path. */
struct out {
    char *p;
    size_t len, cap;
    bool failed; /* out of memory */
};

static void out_add(struct out *o, const char *s, size_t n)
{
    if (o->failed) return;
    if (o->len + n > o->cap) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap < o->len + n) cap *= 2;
        char *p = realloc(o->p, cap);
        if (!p) {
            o->failed = true;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

/* Text with "\n" and "\\" written as two characters each. */
static void out_escaped(struct out *o, const char *s, size_t n)
{
    for (size_t i = 0, run = 0; i <= n; i++) {
        if (i < n && s[i] != '\n' && s[i] != '\\') continue;
        out_add(o, s + run, i - run);
        if (i < n) out_add(o, s[i] == '\n' ? "\\n" : "\\\\", 2);
        run = i + 1;
    }
}

/* One path: dir, the part of the walked path after the full path, and a
 * name joined with "/" as os.path.join does (none if name is NULL). */
static void out_path(struct out *o, const char *dir, const char *rest, const char *name,
                     size_t nlen)
{
    size_t dlen = strlen(dir), rlen = strlen(rest);
    out_escaped(o, dir, dlen);
    out_escaped(o, rest, rlen);
    if (name) {
        char last = rlen ? rest[rlen - 1] : dlen ? dir[dlen - 1] : '/';
        if (last != '/') out_add(o, "/", 1);
        out_escaped(o, name, nlen);
    }
    out_add(o, "\n", 1);
}

/* Writes what was built; the stream copies what the kernel does not take. */
static void out_flush(struct out *o, struct conn *c)
{
    if (o->failed)
        serve_reply(c, "error: walk: %s", mo_strerror(MO_ENOMEM));
    else if (o->len)
        mo_stream_write_copy(c->s, o->p, o->len);
    o->len = 0;
}

static void out_error(struct out *o, struct conn *c, const char *dir, const char *rest, int err)
{
    out_add(o, "error: walk: ", 13);
    out_escaped(o, dir, strlen(dir));
    out_escaped(o, rest, strlen(rest));
    out_add(o, ": ", 2);
    const char *msg = strerror(-err);
    out_add(o, msg, strlen(msg));
    out_add(o, "\n", 1);
    out_flush(o, c);
}

struct walk_ans {
    struct conn *c;
    mo_deferred_t *d; /* our reference */
    const char *dir;  /* as requested: into text[] */
    size_t full_len;  /* the length of the path walked, which prefixes every dirname */
    struct out out;
    char text[]; /* dir, NUL, the full path, NUL */
};

/* ---- sliced, with mo_walk() ---- */

static void visit(void *arg, const char *dirname, mo_walk_names *names)
{
    struct walk_ans *a = arg;
    const char *rest = dirname + a->full_len;
    for (size_t i = 0; i < names->count; i++)
        out_path(&a->out, a->dir, rest, names->names[i].name, names->names[i].len);
    out_flush(&a->out, a->c);
}

static void walk_free(struct walk_ans *a)
{
    mo_deferred_unref(a->d);
    free(a->out.p);
    free(a);
}

static void walk_over(mo_result_t *result, void *arg)
{
    struct walk_ans *a = arg;
    struct conn *c = a->c;
    mo_failure_t *f = mo_result_failure(result);
    if (f && mo_failure_code(f) == MO_ECANCELED) { /* the connection went */
        mo_result_set(result, NULL, NULL);
        return;
    }
    if (f) {
        const char *path = mo_failure_message(f);
        out_error(&a->out, c, a->dir, strlen(path) >= a->full_len ? path + a->full_len : "",
                  mo_failure_code(f));
        mo_result_set(result, NULL, NULL); /* handled */
    } else {
        mo_stream_write_copy(c->s, "\n", 1);
    }
    mo_stream_set_producer(c->s, NULL, NULL, NULL);
    walk_free(a);
    serve_answer_done(c);
}

static void walk_cancel(struct conn *c)
{
    struct walk_ans *a = c->ans.state;
    mo_deferred_cancel(a->d); /* walk_over runs now, and lets it be */
    walk_free(a);
}

static void pause_walk(mo_stream_t *s, void *arg)
{
    (void)s;
    struct walk_ans *a = arg;
    mo_walk_pause(a->d);
}

static void resume_walk(mo_stream_t *s, void *arg)
{
    (void)s;
    struct walk_ans *a = arg;
    mo_walk_resume(a->d); /* MO_EALREADY once it has ended: nothing to do */
}

static void walk_sliced(struct conn *c, const char *dir, const char *full)
{
    size_t dlen = strlen(dir), flen = strlen(full);
    struct walk_ans *a = calloc(1, sizeof *a + dlen + flen + 2);
    if (!a) {
        serve_reply(c, "error: walk: %s", mo_strerror(MO_ENOMEM));
        return;
    }
    a->c = c;
    memcpy(a->text, dir, dlen + 1);
    memcpy(a->text + dlen + 1, full, flen + 1);
    a->dir = a->text;
    a->full_len = flen;
    mo_walk_opts opts = {.flags = MO_WALK_PIECES, .slice = WALK_SLICE};
    int err = mo_walk(c->srv->loop, a->text + dlen + 1, visit, a, &opts, &a->d);
    if (err) {
        free(a);
        serve_reply(c, "error: walk: %s", mo_strerror(err));
        return;
    }
    c->ans = (struct answer){walk_cancel, a};
    mo_stream_set_producer(c->s, pause_walk, resume_walk, a);
    mo_deferred_add_callbacks(a->d, walk_over, walk_over, a);
}

/* ---- blocking: a recursive readdir ---- */

struct bwalk {
    struct conn *c;
    const char *dir;
    size_t full_len;
    char *path; /* the directory being read */
    size_t len, cap;
    struct out out;
};

static bool bw_push(struct bwalk *b, const char *name)
{
    size_t n = strlen(name);
    if (b->len + n + 2 > b->cap) {
        size_t cap = (b->len + n + 2) * 2;
        char *p = realloc(b->path, cap);
        if (!p) return false;
        b->path = p;
        b->cap = cap;
    }
    if (b->len && b->path[b->len - 1] != '/') b->path[b->len++] = '/';
    memcpy(b->path + b->len, name, n + 1);
    b->len += n;
    return true;
}

/* The subdirectories of a directory being listed. */
struct subdirs {
    char **v;
    size_t n, cap;
};

static bool subdirs_add(struct subdirs *sd, const char *name)
{
    if (sd->n == sd->cap) {
        size_t cap = sd->cap ? 2 * sd->cap : 16;
        char **v = realloc(sd->v, cap * sizeof(char *));
        if (!v) return false;
        sd->v = v;
        sd->cap = cap;
    }
    char *copy = strdup(name);
    if (copy) sd->v[sd->n++] = copy;
    return copy != NULL;
}

static bool is_subdir(DIR *d, const struct dirent *e)
{
    struct stat st;
    if (e->d_type != DT_UNKNOWN) return e->d_type == DT_DIR;
    return fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

/* Lists path, then walks its subdirectories (os.path.walk's order, as the
 * sliced walk). Returns 0, or -1 once the first error is written. */
static int bw_dir(struct bwalk *b)
{
    DIR *d = opendir(b->path);
    if (!d) {
        out_error(&b->out, b->c, b->dir, b->path + b->full_len, -errno);
        return -1;
    }
    struct subdirs sd = {0};
    int err = 0;
    for (struct dirent *e; !err && (e = readdir(d)) != NULL;) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        out_path(&b->out, b->dir, b->path + b->full_len, e->d_name, strlen(e->d_name));
        if (b->out.len >= 65536) out_flush(&b->out, b->c);
        /* sd is freed below; the analyzer loses it in the recursion. */
        if (is_subdir(d, e) && !subdirs_add(&sd, e->d_name)) // NOLINT(clang-analyzer-unix.Malloc)
            err = MO_ENOMEM;
    }
    closedir(d);
    out_flush(&b->out, b->c);
    size_t len = b->len;
    for (size_t i = 0; i < sd.n; i++) {
        if (!err && !bw_push(b, sd.v[i])) err = MO_ENOMEM;
        if (!err) err = bw_dir(b);
        b->len = len;
        b->path[len] = '\0';
        free(sd.v[i]);
    }
    free(sd.v);
    if (err == MO_ENOMEM) out_error(&b->out, b->c, b->dir, b->path + b->full_len, err);
    return err ? -1 : 0;
}

static void walk_blocking(struct conn *c, const char *dir, const char *full)
{
    struct bwalk b = {c, dir, strlen(full), NULL, 0, 0, {0}};
    if (!bw_push(&b, full)) { /* on the empty path: just full */
        serve_reply(c, "error: walk: %s", mo_strerror(MO_ENOMEM));
        return;
    }
    if (bw_dir(&b) == 0) mo_stream_write_copy(c->s, "\n", 1);
    free(b.path);
    free(b.out.p);
}

/* ---- the request ---- */

/* The path to walk for dir (relative to the root), confined below the
 * root if one was given: 0, or an error line has been written. */
static int confine(struct conn *c, const char *dir, char *full, size_t size)
{
    const char *root = c->srv->root;
    int n =
        dir[0] == '/' ? snprintf(full, size, "%s", dir) : snprintf(full, size, "%s/%s", root, dir);
    struct out o = {0};
    char real[PATH_MAX];
    int err = n < 0 || (size_t)n >= size ? MO_ENAMETOOLONG : realpath(full, real) ? 0 : -errno;
    if (err) {
        out_error(&o, c, dir, "", err);
        free(o.p);
        return -1;
    }
    size_t rl = strlen(root);
    bool inside = !c->srv->o.root || !strcmp(root, "/") ||
                  (!strncmp(real, root, rl) && (real[rl] == '\0' || real[rl] == '/'));
    if (!inside) {
        out_add(&o, "error: walk: ", 13);
        out_escaped(&o, dir, strlen(dir));
        out_add(&o, ": outside the root\n", 19);
        out_flush(&o, c);
        free(o.p);
        return -1;
    }
    return 0;
}

void serve_walk(struct conn *c, const char *dir)
{
    char full[PATH_MAX];
    if (confine(c, dir, full, sizeof full)) return;
    /* DIR must be a directory (a symbolic link is not one, unless DIR ends
     * with "/"); it is the first line, as find prints it. */
    struct stat st;
    struct out o = {0};
    int err = fstatat(AT_FDCWD, full, &st, AT_SYMLINK_NOFOLLOW) ? -errno
              : !S_ISDIR(st.st_mode)                            ? MO_ENOTDIR
                                                                : 0;
    if (err)
        out_error(&o, c, dir, "", err);
    else
        out_path(&o, dir, "", NULL, 0);
    out_flush(&o, c);
    free(o.p);
    if (err) return;
    if (c->srv->o.mode == SERVE_BLOCKING)
        walk_blocking(c, dir, full);
    else
        walk_sliced(c, dir, full);
}
