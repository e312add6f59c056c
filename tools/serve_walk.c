/* `walk DIR` for the server: every path under DIR, DIR first, one per line
 * as `find DIR` prints them (DIR as the client wrote it, then "/" and the
 * names below it), then an empty line. DIR is taken relative to the
 * server's root, or as an absolute path, and must resolve (symbolic links
 * included) to the root or below it. The walk is mo_walk() in pieces,
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

struct walk_ans {
    struct conn *c;
    mo_deferred_t *d; /* our reference */
    const char *dir;  /* as requested: into text[] */
    size_t full_len;  /* the length of the path walked, which prefixes every dirname */
    char text[];      /* dir, NUL, the full path, NUL */
};

/* The printed form of a path under the walked one: dir, then the part of
 * path after the full path. */
static void write_path(struct conn *c, const char *dir, const char *rest, const char *name,
                       size_t nlen)
{
    size_t dlen = strlen(dir), rlen = strlen(rest);
    serve_write_escaped(c, dir, dlen);
    serve_write_escaped(c, rest, rlen);
    if (name) {
        bool slash = (rlen ? rest[rlen - 1] : dlen ? dir[dlen - 1] : '/') == '/';
        if (!slash) mo_stream_write_copy(c->s, "/", 1);
        serve_write_escaped(c, name, nlen);
    }
    mo_stream_write_copy(c->s, "\n", 1);
}

static void walk_error(struct conn *c, const char *dir, const char *rest, int err)
{
    mo_stream_write_copy(c->s, "error: walk: '", 14);
    serve_write_escaped(c, dir, strlen(dir));
    serve_write_escaped(c, rest, strlen(rest));
    serve_reply(c, "': %s", strerror(-err));
}

/* ---- sliced, with mo_walk() ---- */

static void visit(void *arg, const char *dirname, mo_walk_names *names)
{
    struct walk_ans *a = arg;
    const char *rest = dirname + a->full_len;
    for (size_t i = 0; i < names->count; i++)
        write_path(a->c, a->dir, rest, names->names[i].name, names->names[i].len);
}

static void walk_free(struct walk_ans *a)
{
    mo_deferred_unref(a->d);
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
        walk_error(c, a->dir, strlen(path) >= a->full_len ? path + a->full_len : "",
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
    int err;
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

/* Lists path, then walks its subdirectories (os.path.walk's order, as the
 * sliced walk). Returns 0 or the first error (written). */
static int bw_dir(struct bwalk *b)
{
    DIR *d = opendir(b->path);
    if (!d) {
        walk_error(b->c, b->dir, b->path + b->full_len, -errno);
        return -1;
    }
    char **subs = NULL;
    size_t nsubs = 0, cap = 0;
    int err = 0;
    for (struct dirent *e; !err && (e = readdir(d)) != NULL;) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        write_path(b->c, b->dir, b->path + b->full_len, e->d_name, strlen(e->d_name));
        bool is_dir = e->d_type == DT_DIR;
        struct stat st;
        if (e->d_type == DT_UNKNOWN && fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
            is_dir = S_ISDIR(st.st_mode);
        if (!is_dir) continue;
        if (nsubs == cap) {
            cap = cap ? 2 * cap : 16;
            char **s = realloc(subs, cap * sizeof *s);
            if (!s)
                err = -1;
            else
                subs = s;
        }
        if (!err && !(subs[nsubs++] = strdup(e->d_name))) err = -1;
    }
    closedir(d);
    size_t len = b->len;
    for (size_t i = 0; i < nsubs; i++) {
        if (!err && bw_push(b, subs[i])) err = bw_dir(b);
        b->len = len;
        b->path[len] = '\0';
        free(subs[i]);
    }
    free(subs);
    return err;
}

static void walk_blocking(struct conn *c, const char *dir, const char *full)
{
    struct bwalk b = {c, dir, strlen(full), NULL, 0, 0, 0};
    if (!bw_push(&b, full)) { /* on the empty path: just full */
        serve_reply(c, "error: walk: %s", mo_strerror(MO_ENOMEM));
        return;
    }
    if (bw_dir(&b) == 0) mo_stream_write_copy(c->s, "\n", 1);
    free(b.path);
}

/* ---- the request ---- */

/* The path to walk for dir, confined below the root: 0, or an error line
 * has been written. */
static int confine(struct conn *c, const char *dir, char *full, size_t size)
{
    const char *root = c->srv->root;
    int n =
        dir[0] == '/' ? snprintf(full, size, "%s", dir) : snprintf(full, size, "%s/%s", root, dir);
    if (n < 0 || (size_t)n >= size) {
        walk_error(c, dir, "", MO_ENAMETOOLONG);
        return -1;
    }
    char real[PATH_MAX];
    if (!realpath(full, real)) {
        walk_error(c, dir, "", -errno);
        return -1;
    }
    size_t rl = strlen(root);
    bool inside =
        !strcmp(root, "/") || (!strncmp(real, root, rl) && (real[rl] == '\0' || real[rl] == '/'));
    if (!inside) {
        mo_stream_write_copy(c->s, "error: walk: '", 14);
        serve_write_escaped(c, dir, strlen(dir));
        serve_reply(c, "' is outside the root");
        return -1;
    }
    return 0;
}

void serve_walk(struct conn *c, const char *dir)
{
    char full[PATH_MAX];
    if (confine(c, dir, full, sizeof full)) return;
    /* DIR itself first, as find prints it; only a directory is walked (a
     * symbolic link is not followed unless DIR ends with "/"). */
    struct stat st;
    if (fstatat(AT_FDCWD, full, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        walk_error(c, dir, "", -errno);
        return;
    }
    write_path(c, dir, "", NULL, 0);
    if (!S_ISDIR(st.st_mode)) {
        mo_stream_write_copy(c->s, "\n", 1);
        return;
    }
    if (c->srv->o.mode == SERVE_BLOCKING)
        walk_blocking(c, dir, full);
    else
        walk_sliced(c, dir, full);
}
