/* The directory walk: os.path.walk order, pruning, types, symlinks not
 * followed (and followed, with loops reported, with MO_WALK_FOLLOW), one
 * file system (MO_WALK_XDEV), deep and huge trees, errors, cancellation,
 * slicing. */
#include "test.h"

#include "walk/walk_int.h"
#include "walk_tree.h"

#include <dirent.h>
#include <grp.h>
#include <sys/mount.h>
#include <sys/wait.h>

/* ---- a growable text log ---- */

struct text {
    char *s;
    size_t len, cap;
};

static void text_add(struct text *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->s = realloc(t->s, t->cap);
        assert_non_null(t->s);
    }
    memcpy(t->s + t->len, s, n);
    t->len += n;
    t->s[t->len] = '\0';
}

static void text_line(struct text *t, char kind, const char *s, int type)
{
    char head[16];
    snprintf(head, sizeof head, "%c%d ", kind, type);
    text_add(t, head, strlen(head));
    text_add(t, s, strlen(s));
    text_add(t, "\n", 1);
}

/* ---- what a walk saw ---- */

struct seen {
    struct text log;
    struct text errors;
    int done_err;
    char done_path[4200];
    int done_calls;
    long dirs, names, pieces;
    int max_fds;
    const char *prune;      /* a name visit removes */
    int cancel_after;       /* cancel from visit at this directory (1-based), 0: never */
    const char *remove_dir; /* removed (rm -rf) by visit before the walk enters it */
    struct mo__walk *walk;
    mo_loop_t *loop;
    void *later; /* queued with cancel_later() at the 5th directory */
};

static void cancel_later(mo_loop_t *loop, void *arg);

static void seen_visit(void *arg, const char *dirname, mo_walk_names *names)
{
    struct seen *s = arg;
    s->dirs++;
    s->pieces++;
    text_line(&s->log, 'D', dirname, 0);
    for (size_t i = 0; i < names->count; i++) {
        if (s->prune && !strcmp(names->names[i].name, s->prune)) {
            mo_walk_names_remove(names, i--);
            continue;
        }
        assert_int_equal(strlen(names->names[i].name), names->names[i].len);
        text_line(&s->log, 'N', names->names[i].name, names->names[i].type);
        s->names++;
    }
    if (s->dirs % 16 == 0) { /* counting descriptors costs 4096 system calls */
        int fds = tree_open_fds();
        if (fds > s->max_fds) s->max_fds = fds;
    }
    if (s->remove_dir) {
        char cmd[4300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->remove_dir);
        assert_int_equal(system(cmd), 0);
        s->remove_dir = NULL;
    }
    if (s->cancel_after && s->dirs == s->cancel_after) assert_ok(mo__walk_cancel(s->walk));
    if (s->later && s->dirs == 5) assert_ok(mo_call_soon(s->loop, cancel_later, s->later));
}

static void seen_error(void *arg, const char *path, int err)
{
    struct seen *s = arg;
    text_line(&s->errors, 'E', path, -err);
}

static void seen_done(void *arg, int err, const char *path, const mo_walk_totals *totals)
{
    struct seen *s = arg;
    (void)totals;
    s->done_calls++;
    s->done_err = err;
    snprintf(s->done_path, sizeof s->done_path, "%s", path ? path : "");
}

/* Walks `top` to the end on a real-clock loop. */
static void walk_run(struct seen *s, const char *top, const mo_walk_opts *opts)
{
    mo_loop_t *loop = mo_test_loop();
    s->loop = loop;
    s->done_err = 1;
    assert_ok(mo__walk_start(loop, top, seen_visit, s, opts, seen_done, s, &s->walk));
    assert_int_equal(s->done_calls, 0);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(s->done_calls, 1);
    mo_loop_free(loop);
}

static void seen_free(struct seen *s)
{
    free(s->log.s);
    free(s->errors.s);
}

/* ---- the reference: os.path.walk with opendir/readdir ---- */

static int ref_type(int dfd, const struct dirent *d)
{
    struct stat st;
    if (d->d_type != DT_UNKNOWN) return d->d_type;
    return fstatat(dfd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? (int)IFTODT(st.st_mode) : 0;
}

static void ref_walk(struct text *t, const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    assert_true(fd >= 0);
    DIR *d = fdopendir(fd);
    assert_non_null(d);
    char **subs = NULL;
    size_t nsubs = 0;
    text_line(t, 'D', dir, 0);
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        int type = ref_type(dirfd(d), e);
        text_line(t, 'N', e->d_name, type);
        if (type != DT_DIR) continue;
        subs = realloc(subs, (nsubs + 1) * sizeof(*subs));
        size_t n = strlen(dir) + strlen(e->d_name) + 2;
        subs[nsubs] = malloc(n);
        snprintf(subs[nsubs++], n, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/",
                 e->d_name);
    }
    closedir(d);
    for (size_t i = 0; i < nsubs; i++) {
        ref_walk(t, subs[i]);
        free(subs[i]);
    }
    free(subs);
}

/* A small tree with a bit of everything. */
static void make_mixed(const char *root)
{
    tree_dir(root, "a");
    tree_dir(root, "a/b");
    tree_dir(root, "a/b/c");
    tree_file(root, "a/b/c/leaf");
    tree_dir(root, "a/empty");
    tree_file(root, "a/f1");
    tree_file(root, "a/f2");
    tree_dir(root, "z");
    tree_file(root, "z/f");
    tree_dir(root, "e1");
    tree_dir(root, "e2");
    tree_file(root, "top-file");
    tree_link(root, "a", "link-to-dir");
    tree_link(root, "loop", "loop");
    tree_link(root, "..", "z/up");
    tree_fifo(root, "fifo");
    tree_socket(root, "sock");
}

/* ---- tests ---- */

static void test_order_matches_os_path_walk(void **state)
{
    (void)state;
    char root[256];
    tree_tmpdir(root, sizeof root);
    make_mixed(root);
    struct seen s = {0};
    walk_run(&s, root, NULL);
    assert_int_equal(s.done_err, 0);
    struct text ref = {0};
    ref_walk(&ref, root);
    assert_string_equal(s.log.s, ref.s);
    assert_int_equal(s.dirs, 8); /* root a b c empty z e1 e2 */
    free(ref.s);
    seen_free(&s);
    tree_rm(root);
}

static int has_line(const struct text *t, const char *line)
{
    return t->s && strstr(t->s, line) != NULL;
}

static void test_types_and_symlinks_not_followed(void **state)
{
    (void)state;
    char root[256];
    tree_tmpdir(root, sizeof root);
    make_mixed(root);
    struct seen s = {0};
    walk_run(&s, root, NULL);
    assert_true(has_line(&s.log, "\nN10 link-to-dir\n"));
    assert_true(has_line(&s.log, "\nN10 loop\n"));
    assert_true(has_line(&s.log, "\nN10 up\n"));
    assert_true(has_line(&s.log, "\nN1 fifo\n"));
    assert_true(has_line(&s.log, "\nN12 sock\n"));
    assert_true(has_line(&s.log, "\nN8 top-file\n"));
    assert_true(has_line(&s.log, "\nN4 a\n"));
    char p[300];
    snprintf(p, sizeof p, "D0 %s/link-to-dir\n", root);
    assert_false(has_line(&s.log, p));
    seen_free(&s);
    tree_rm(root);
}

static void test_prune_by_removing_names(void **state)
{
    (void)state;
    char root[256], p[300];
    tree_tmpdir(root, sizeof root);
    make_mixed(root);
    struct seen s = {.prune = "b"};
    walk_run(&s, root, NULL);
    assert_int_equal(s.done_err, 0);
    snprintf(p, sizeof p, "D0 %s/a/b\n", root);
    assert_false(has_line(&s.log, p));
    snprintf(p, sizeof p, "D0 %s/a/empty\n", root);
    assert_true(has_line(&s.log, p));
    assert_int_equal(s.dirs, 6);
    seen_free(&s);
    tree_rm(root);
}

static void test_names_remove_bounds(void **state)
{
    (void)state;
    mo_walk_name v[3] = {{"a", 1, 8}, {"b", 1, 8}, {"c", 1, 8}};
    mo_walk_names names = {v, 3, 0};
    mo_walk_names_remove(&names, 3); /* out of range: ignored */
    mo_walk_names_remove(NULL, 0);
    assert_int_equal(names.count, 3);
    mo_walk_names_remove(&names, 1);
    assert_int_equal(names.count, 2);
    assert_string_equal(v[1].name, "c");
}

static void test_empty_directory_and_trailing_slash(void **state)
{
    (void)state;
    char root[256], top[300];
    tree_tmpdir(root, sizeof root);
    tree_dir(root, "sub");
    snprintf(top, sizeof top, "%s/", root);
    struct seen s = {0};
    walk_run(&s, top, NULL);
    assert_int_equal(s.done_err, 0);
    char want[700];
    snprintf(want, sizeof want, "D0 %s/\nN4 sub\nD0 %s/sub\n", root, root);
    assert_string_equal(s.log.s, want);
    seen_free(&s);
    tree_rm(root);
}

static void test_top_errors(void **state)
{
    (void)state;
    char root[256], p[300];
    tree_tmpdir(root, sizeof root);
    tree_file(root, "file");
    tree_dir(root, "dir");
    tree_link(root, "dir", "link");
    struct {
        const char *rel;
        int err;
    } cases[] = {{"nope", MO_ENOENT}, {"file", MO_ENOTDIR}, {"link", MO_ENOTDIR}};
    for (size_t i = 0; i < 3; i++) {
        struct seen s = {0};
        snprintf(p, sizeof p, "%s/%s", root, cases[i].rel);
        walk_run(&s, p, NULL);
        assert_mo(cases[i].err, s.done_err);
        assert_string_equal(s.done_path, p);
        assert_int_equal(s.dirs, 0);
        seen_free(&s);
    }
    /* With a trailing slash, the link names its directory, as for find. */
    struct seen s = {0};
    snprintf(p, sizeof p, "%s/link/", root);
    walk_run(&s, p, NULL);
    assert_int_equal(s.done_err, 0);
    assert_int_equal(s.dirs, 1);
    seen_free(&s);
    tree_rm(root);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct seen s = {0};
    struct mo__walk *w;
    mo_walk_opts bad_flags = {.flags = 0x100}, bad_slice = {.slice = -1};
    assert_mo(MO_EINVAL, mo__walk_start(NULL, "/", seen_visit, &s, NULL, seen_done, &s, &w));
    assert_mo(MO_EINVAL, mo__walk_start(loop, NULL, seen_visit, &s, NULL, seen_done, &s, &w));
    assert_mo(MO_EINVAL, mo__walk_start(loop, "/", NULL, &s, NULL, seen_done, &s, &w));
    assert_mo(MO_EINVAL, mo__walk_start(loop, "/", seen_visit, &s, &bad_flags, seen_done, &s, &w));
    assert_mo(MO_EINVAL, mo__walk_start(loop, "/", seen_visit, &s, &bad_slice, seen_done, &s, &w));
    assert_mo(MO_EINVAL, mo__walk_cancel(NULL));
    assert_int_equal(mo_loop_alive(loop), 0);
    mo_loop_free(loop);
}

static void test_deep_tree_bounded_descriptors(void **state)
{
    (void)state;
    char root[256];
    tree_tmpdir(root, sizeof root);
    tree_deep(root, "", 10000);
    tree_file(root, "f");
    int before = tree_open_fds();
    struct seen s = {0};
    walk_run(&s, root, NULL);
    assert_int_equal(s.done_err, 0);
    assert_int_equal(s.dirs, 10001);
    assert_int_equal(s.names, 10001);
    /* The loop's own descriptors plus at most MO_WALK_MAX_FDS of the walk. */
    assert_in_range(s.max_fds, before, before + 3 + MO_WALK_MAX_FDS);
    assert_int_equal(tree_open_fds(), before);
    seen_free(&s);
    tree_rm(root);
}

/* A directory removed after its parent was listed, before the walk enters
 * it: the walk stops with ENOENT and that path; with on_error it goes on. */
static void test_directory_removed_during_walk(void **state)
{
    (void)state;
    char root[256], gone[300];
    for (int keep_going = 0; keep_going < 2; keep_going++) {
        tree_tmpdir(root, sizeof root);
        make_mixed(root);
        snprintf(gone, sizeof gone, "%s/a", root);
        struct seen s = {.remove_dir = gone};
        mo_walk_opts opts = {.on_error = keep_going ? seen_error : NULL};
        walk_run(&s, root, &opts);
        char want[400];
        snprintf(want, sizeof want, "E%d %s\n", ENOENT, gone);
        if (keep_going) {
            assert_int_equal(s.done_err, 0);
            assert_string_equal(s.errors.s, want);
            assert_int_equal(s.dirs, 4); /* root z e1 e2 */
        } else {
            assert_mo(MO_ENOENT, s.done_err);
            assert_string_equal(s.done_path, gone);
            assert_null(s.errors.s);
        }
        seen_free(&s);
        tree_rm(root);
    }
}

static void test_cancel_from_visit_closes_descriptors(void **state)
{
    (void)state;
    char root[256];
    tree_tmpdir(root, sizeof root);
    tree_deep(root, "", 100);
    int before = tree_open_fds();
    struct seen s = {.cancel_after = 50};
    walk_run(&s, root, NULL);
    assert_mo(MO_ECANCELED, s.done_err);
    assert_int_equal(s.dirs, 50);
    assert_string_equal(s.done_path, "");
    assert_int_equal(tree_open_fds(), before);
    seen_free(&s);
    tree_rm(root);
}

struct later {
    struct seen *s;
    int fds_before;
};

static void cancel_later(mo_loop_t *loop, void *arg)
{
    (void)loop;
    struct later *l = arg;
    assert_int_equal(l->s->done_calls, 0);
    assert_true(tree_open_fds() > l->fds_before); /* the walk holds descriptors */
    assert_ok(mo__walk_cancel(l->s->walk));
    assert_mo(MO_ECANCELED, l->s->done_err);
    assert_int_equal(tree_open_fds(), l->fds_before);
}

/* A cancel between two slices: the walk has started, not finished. */
static void test_cancel_between_slices(void **state)
{
    (void)state;
    char root[256];
    tree_tmpdir(root, sizeof root);
    tree_deep(root, "", 300);
    mo_loop_t *loop = mo_test_loop();
    struct seen s = {.done_err = 1, .loop = loop};
    struct later l = {&s, tree_open_fds()};
    s.later = &l;
    mo_walk_opts opts = {.slice = 1}; /* the shortest turn the cooperator gives */
    assert_ok(mo__walk_start(loop, root, seen_visit, &s, &opts, seen_done, &s, &s.walk));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(s.done_calls, 1);
    assert_in_range(s.dirs, 5, 300);
    mo_loop_free(loop);
    seen_free(&s);
    tree_rm(root);
}

/* Odd names: spaces, a newline, invalid UTF-8, a leading dash, dots. */
static void test_odd_names(void **state)
{
    (void)state;
    char root[256];
    tree_tmpdir(root, sizeof root);
    const char *names[] = {"with space", "new\nline", "bad\xff\xfeutf8", "-dash", "...", ".hidden"};
    for (size_t i = 0; i < 6; i++) tree_dir(root, names[i]);
    tree_file(root, "new\nline/in\nside");
    struct seen s = {0};
    walk_run(&s, root, NULL);
    struct text ref = {0};
    ref_walk(&ref, root);
    assert_string_equal(s.log.s, ref.s);
    assert_int_equal(s.dirs, 7);
    free(ref.s);
    seen_free(&s);
    tree_rm(root);
}

/* As root, permission bits do not stop reads: a child process drops to
 * nobody, walks a tree with an unreadable directory, and reports. */
static int walk_as_nobody(const char *root, int keep_going, char *path_out, size_t size)
{
    struct seen s = {0};
    mo_walk_opts opts = {.on_error = keep_going ? seen_error : NULL};
    walk_run(&s, root, &opts);
    int err =
        keep_going ? (s.errors.s && strstr(s.errors.s, "/locked\n") ? EACCES : 0) : -s.done_err;
    size_t n = strnlen(s.done_path, size - 1);
    memcpy(path_out, s.done_path, n);
    path_out[n] = '\0';
    if (keep_going && s.dirs != 3) err = 99;
    seen_free(&s);
    return err;
}

static void test_unreadable_directory(void **state)
{
    (void)state;
    char root[256], want[300];
    tree_tmpdir(root, sizeof root);
    assert_int_equal(chmod(root, 0755), 0);
    tree_dir(root, "open");
    tree_dir(root, "locked");
    tree_dir(root, "locked/inner");
    tree_dir(root, "z");
    snprintf(want, sizeof want, "%s/locked", root);
    assert_int_equal(chmod(want, 0), 0);
    for (int keep_going = 0; keep_going < 2; keep_going++) {
        int pipefd[2];
        assert_int_equal(pipe(pipefd), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            char path[300] = "";
            close(pipefd[0]);
            if (getuid() == 0 && (setgroups(0, NULL) || setgid(65534) || setuid(65534))) _exit(98);
            int err = walk_as_nobody(root, keep_going, path, sizeof path);
            if (write(pipefd[1], path, strlen(path)) < 0) _exit(97);
            _exit(err);
        }
        close(pipefd[1]);
        char got[300] = "";
        ssize_t n = read(pipefd[0], got, sizeof got - 1);
        got[n > 0 ? n : 0] = '\0';
        close(pipefd[0]);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), EACCES);
        assert_string_equal(got, keep_going ? "" : want);
    }
    tree_rm(root);
}

/* A huge directory, read in pieces: each piece arrives in its own call,
 * and pruning a piece's subdirectory works. */
static void test_pieces_of_a_large_directory(void **state)
{
    (void)state;
    char root[256], p[300];
    tree_tmpdir(root, sizeof root);
    tree_many(root, "", 20000);
    tree_dir(root, "b");
    tree_dir(root, "b/inner");
    tree_dir(root, "keep");
    struct seen s = {.prune = "b"};
    mo_walk_opts opts = {.flags = MO_WALK_PIECES};
    walk_run(&s, root, &opts);
    assert_int_equal(s.done_err, 0);
    assert_int_equal(s.names, 20001);
    assert_true(s.pieces > 3); /* 20,000 names do not fit one 64 KiB batch */
    snprintf(p, sizeof p, "D0 %s/keep\n", root);
    assert_true(has_line(&s.log, p));
    snprintf(p, sizeof p, "D0 %s/b/inner\n", root);
    assert_false(has_line(&s.log, p));
    seen_free(&s);
    tree_rm(root);
}

/* ---- the public API: mo_walk() and its Deferred ---- */

struct outcome {
    int fired;
    mo_walk_totals totals;
    int code;
    char message[4200];
};

static void outcome_cb(mo_result_t *result, void *arg)
{
    struct outcome *o = arg;
    mo_failure_t *f = mo_result_failure(result);
    o->fired++;
    if (f) {
        o->code = mo_failure_code(f);
        snprintf(o->message, sizeof o->message, "%s", mo_failure_message(f));
        mo_result_set(result, NULL, NULL);
    } else {
        o->totals = *(mo_walk_totals *)mo_result_value(result);
    }
}

static void count_visit(void *arg, const char *dirname, mo_walk_names *names)
{
    (void)dirname;
    *(size_t *)arg += names->count;
}

static void test_deferred_fires_with_totals(void **state)
{
    (void)state;
    char root[256];
    tree_tmpdir(root, sizeof root);
    make_mixed(root);
    mo_loop_t *loop = mo_test_loop();
    mo_deferred_t *d;
    size_t seen = 0;
    struct outcome o = {0};
    assert_ok(mo_walk(loop, root, count_visit, &seen, NULL, &d));
    assert_ok(mo_deferred_add_both(d, outcome_cb, &o));
    assert_int_equal(o.fired, 0); /* the walk starts in a later pass */
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(o.fired, 1);
    assert_int_equal(o.code, 0);
    assert_int_equal(o.totals.dirs, 8);
    assert_int_equal(o.totals.names, seen);
    assert_int_equal(o.totals.errors, 0);
    mo_deferred_unref(d);
    mo_loop_free(loop);
    tree_rm(root);
}

static void test_deferred_failure_has_code_and_path(void **state)
{
    (void)state;
    char root[256], p[300];
    tree_tmpdir(root, sizeof root);
    snprintf(p, sizeof p, "%s/missing", root);
    mo_loop_t *loop = mo_test_loop();
    mo_deferred_t *d;
    size_t seen = 0;
    struct outcome o = {0};
    assert_ok(mo_walk(loop, p, count_visit, &seen, NULL, &d));
    assert_ok(mo_deferred_add_both(d, outcome_cb, &o));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(o.fired, 1);
    assert_mo(MO_ENOENT, o.code);
    assert_string_equal(o.message, p);
    mo_deferred_unref(d);
    mo_loop_free(loop);
    tree_rm(root);
}

struct cancel_ctx {
    mo_deferred_t *d;
    int fds_before;
    int visits;
};

static void cancel_visit(void *arg, const char *dirname, mo_walk_names *names)
{
    (void)dirname;
    (void)names;
    struct cancel_ctx *c = arg;
    if (++c->visits == 30) {
        assert_ok(mo_deferred_cancel(c->d));
        assert_int_equal(tree_open_fds(), c->fds_before); /* closed before cancel returns */
    }
}

static void test_deferred_cancel_stops_and_closes(void **state)
{
    (void)state;
    char root[256];
    tree_tmpdir(root, sizeof root);
    tree_deep(root, "", 100);
    mo_loop_t *loop = mo_test_loop();
    struct cancel_ctx c = {.fds_before = tree_open_fds()};
    struct outcome o = {0};
    assert_ok(mo_walk(loop, root, cancel_visit, &c, NULL, &c.d));
    assert_ok(mo_deferred_add_both(c.d, outcome_cb, &o));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(c.visits, 30);
    assert_int_equal(o.fired, 1);
    assert_mo(MO_ECANCELED, o.code);
    assert_mo(MO_EALREADY, mo_deferred_cancel(c.d));
    mo_deferred_unref(c.d);
    mo_loop_free(loop);
    tree_rm(root);
}

static void test_walk_bad_arguments(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    mo_deferred_t *d = NULL;
    size_t seen = 0;
    mo_walk_opts bad = {.flags = 0x80};
    assert_mo(MO_EINVAL, mo_walk(NULL, "/", count_visit, &seen, NULL, &d));
    assert_mo(MO_EINVAL, mo_walk(loop, NULL, count_visit, &seen, NULL, &d));
    assert_mo(MO_EINVAL, mo_walk(loop, "/", NULL, &seen, NULL, &d));
    assert_mo(MO_EINVAL, mo_walk(loop, "/", count_visit, &seen, NULL, NULL));
    assert_mo(MO_EINVAL, mo_walk(loop, "/", count_visit, &seen, &bad, &d));
    assert_null(d);
    assert_int_equal(mo_loop_alive(loop), 0);
    mo_loop_free(loop);
}

/* The loop runs other calls between two pieces of one directory: a call
 * queued by the first piece's visit runs before the last piece arrives. */
struct between {
    mo_loop_t *loop;
    int pieces;
    int ran;
    int ran_at_piece;
};

static void between_cb(mo_loop_t *loop, void *arg)
{
    (void)loop;
    ((struct between *)arg)->ran = 1;
}

static void between_visit(void *arg, const char *dirname, mo_walk_names *names)
{
    (void)dirname;
    struct between *b = arg;
    if (++b->pieces == 1) assert_ok(mo_call_soon(b->loop, between_cb, b));
    if (!names->more && !b->ran_at_piece) b->ran_at_piece = b->ran ? b->pieces : -1;
}

static void test_loop_runs_between_pieces(void **state)
{
    (void)state;
    char root[256];
    tree_tmpdir(root, sizeof root);
    tree_many(root, "", 5000); /* several 32 KiB batches */
    struct between b = {.loop = mo_test_loop()};
    mo_walk_opts opts = {.flags = MO_WALK_PIECES, .slice = 1}; /* one unit per pass */
    mo_deferred_t *d;
    assert_ok(mo_walk(b.loop, root, between_visit, &b, &opts, &d));
    assert_ok(mo_loop_run(b.loop, MO_RUN_DEFAULT));
    assert_true(b.pieces >= 3);
    assert_true(b.ran_at_piece > 1); /* ran, and before the last piece */
    assert_int_equal(mo_deferred_fired(d), 1);
    mo_deferred_unref(d);
    mo_loop_free(b.loop);
    tree_rm(root);
}

/* Pausing from visit() stops the walk at once, in both modes: no visit
 * until the resume, however long the loop runs; then it finishes. */
struct pauser {
    mo_deferred_t *d;
    int visits;
    int paused_at; /* the visit that paused */
    int after;     /* visits while paused */
    bool paused;
};

static void pause_visit(void *arg, const char *dirname, mo_walk_names *names)
{
    (void)dirname, (void)names;
    struct pauser *p = arg;
    p->visits++;
    if (p->paused) p->after++;
    if (p->visits == 3) {
        assert_ok(mo_walk_pause(p->d));
        p->paused = true;
        p->paused_at = p->visits;
    }
}

static void noop_call(mo_loop_t *loop, void *arg)
{
    (void)loop, (void)arg;
}

static void test_pause_and_resume(void **state)
{
    (void)state;
    char root[256];
    tree_tmpdir(root, sizeof root);
    tree_deep(root, "", 50);
    for (unsigned flags = 0; flags <= MO_WALK_PARALLEL; flags += MO_WALK_PARALLEL) {
        mo_loop_t *loop = mo_test_loop();
        struct pauser p = {0};
        mo_walk_opts opts = {.flags = flags};
        struct outcome o = {0};
        assert_ok(mo_walk(loop, root, pause_visit, &p, &opts, &p.d));
        assert_ok(mo_deferred_add_both(p.d, outcome_cb, &o));
        /* A timer keeps the loop turning while the walk is paused. */
        for (int i = 0; i < 50; i++) {
            assert_ok(mo_call_later(loop, MO_MSEC(1), noop_call, NULL, NULL));
            assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
        }
        assert_true(p.paused);
        assert_int_equal(p.after, 0);
        assert_int_equal(o.fired, 0);
        assert_ok(mo_walk_resume(p.d));
        assert_mo(MO_EINVAL, mo_walk_resume(p.d)); /* not paused any more */
        assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
        assert_int_equal(o.fired, 1);
        assert_int_equal(o.code, 0);
        assert_int_equal(p.visits, 51);
        assert_mo(MO_EALREADY, mo_walk_pause(p.d));
        assert_mo(MO_EINVAL, mo_walk_pause(NULL));
        mo_deferred_t *other;
        assert_ok(mo_deferred_new(loop, NULL, NULL, &other));
        assert_mo(MO_EINVAL, mo_walk_pause(other));
        mo_deferred_unref(other);
        mo_deferred_unref(p.d);
        mo_loop_free(loop);
    }
    tree_rm(root);
}

/* ---- MO_WALK_FOLLOW and MO_WALK_XDEV, in every mode of both engines ---- */

static const unsigned engine_modes[] = {0, MO_WALK_PIECES, MO_WALK_PARALLEL,
                                        MO_WALK_PARALLEL | MO_WALK_PIECES};

/* How many lines of t are exactly `line` (without its newline). */
static int count_lines(const struct text *t, const char *line)
{
    int n = 0;
    size_t len = strlen(line);
    for (const char *p = t->s; p && (p = strstr(p, line)) != NULL; p += len)
        n += (p == t->s || p[-1] == '\n') && p[len] == '\n';
    return n;
}

static void test_follow_links_reports_each_loop_once(void **state)
{
    (void)state;
    char root[256], line[400];
    tree_tmpdir(root, sizeof root);
    make_mixed(root); /* link-to-dir -> a, loop -> loop, z/up -> .. */
    tree_link(root, "nowhere", "broken");
    tree_link(root, "top-file", "link-to-file");
    tree_link(root, "../..", "a/b/up2"); /* back to root from two levels down */
    for (size_t m = 0; m < sizeof engine_modes / sizeof *engine_modes; m++) {
        struct seen s = {0};
        mo_walk_opts opts = {.flags = engine_modes[m] | MO_WALK_FOLLOW, .on_error = seen_error};
        walk_run(&s, root, &opts);
        assert_int_equal(s.done_err, 0);
        /* Links typed by their targets; a broken one stays a link. */
        assert_int_equal(count_lines(&s.log, "N4 link-to-dir"), 1);
        assert_int_equal(count_lines(&s.log, "N8 link-to-file"), 1);
        assert_int_equal(count_lines(&s.log, "N10 broken"), 1);
        /* The directory behind the link is walked, under the link's path. */
        snprintf(line, sizeof line, "D0 %s/link-to-dir/b/c", root);
        assert_int_equal(count_lines(&s.log, line), 1);
        /* Loops are neither listed nor entered: one error each time the
         * walk reaches one, MO_ELOOP, on the path it was reached by. */
        assert_int_equal(count_lines(&s.log, "N10 loop"), 0);
        assert_int_equal(count_lines(&s.log, "N4 up"), 0);
        assert_int_equal(count_lines(&s.log, "N4 up2"), 0);
        const char *loops[] = {"loop", "z/up", "a/b/up2", "link-to-dir/b/up2"};
        for (size_t i = 0; i < sizeof loops / sizeof *loops; i++) {
            snprintf(line, sizeof line, "E%d %s/%s", ELOOP, root, loops[i]);
            if (count_lines(&s.errors, line) != 1)
                fail_msg("mode %u: '%s' reported %d times; errors:\n%s", engine_modes[m], line,
                         count_lines(&s.errors, line), s.errors.s);
        }
        size_t nerr = 0;
        for (const char *p = s.errors.s; p && *p; p = strchr(p, '\n') + 1) nerr++;
        assert_int_equal(nerr, 4);
        seen_free(&s);
    }
    /* Without on_error, the first loop stops the walk with MO_ELOOP. */
    struct seen s = {0};
    mo_walk_opts opts = {.flags = MO_WALK_FOLLOW};
    walk_run(&s, root, &opts);
    assert_int_equal(s.done_err, MO_ELOOP);
    seen_free(&s);
    tree_rm(root);
}

/* A tree deeper than MO_WALK_MAX_FDS reached through a link: the walk
 * climbs back through evicted ancestors, which ".." cannot reach (it leads
 * to the link target's parent), so they are re-opened by name. */
static void test_follow_deep_through_a_link(void **state)
{
    (void)state;
    char root[256], top[300], line[400];
    tree_tmpdir(root, sizeof root);
    tree_dir(root, "real");
    tree_deep(root, "real", 3 * MO_WALK_MAX_FDS);
    tree_dir(root, "top");
    tree_dir(root, "top/x"); /* the link's parent: evicted, and ".." of real is not it */
    tree_link(root, "../../real", "top/x/link");
    tree_file(root, "top/x/after");
    snprintf(top, sizeof top, "%s/top", root);
    for (size_t m = 0; m < sizeof engine_modes / sizeof *engine_modes; m++) {
        struct seen s = {0};
        mo_walk_opts opts = {.flags = engine_modes[m] | MO_WALK_FOLLOW, .on_error = seen_error};
        walk_run(&s, top, &opts);
        if (s.done_err || s.errors.s)
            fail_msg("mode %u: error %d, errors %s", engine_modes[m], s.done_err, s.errors.s);
        assert_int_equal(count_lines(&s.log, "N4 link"), 1);
        assert_int_equal(count_lines(&s.log, "N4 d"), 3 * MO_WALK_MAX_FDS);
        snprintf(line, sizeof line, "D0 %s/x/link/d", top);
        assert_int_equal(count_lines(&s.log, line), 1);
        /* Bounded: the loop's, MO_WALK_MAX_FDS and the top's, a few more. */
        if (!(engine_modes[m] & MO_WALK_PARALLEL))
            assert_in_range(s.max_fds, 0, 3 + MO_WALK_MAX_FDS + 8);
        seen_free(&s);
    }
    tree_rm(root);
}

/* A file system mounted inside the tree: listed, not entered. Needs to
 * mount (root, as the tests run here and in CI); skipped otherwise. */
static void test_xdev_stays_on_one_file_system(void **state)
{
    (void)state;
    char root[256], mnt[300], line[400];
    tree_tmpdir(root, sizeof root);
    tree_dir(root, "m");
    tree_dir(root, "d");
    tree_file(root, "d/f");
    snprintf(mnt, sizeof mnt, "%s/m", root);
    if (mount("morsel-test", mnt, "tmpfs", 0, "size=1m") != 0) {
        tree_rm(root);
        skip();
    }
    tree_dir(root, "m/inner");
    tree_file(root, "m/inner/f");
    tree_link(root, "m", "link-to-mount");
    for (size_t m = 0; m < sizeof engine_modes / sizeof *engine_modes; m++) {
        for (int follow = 0; follow < 2; follow++) {
            struct seen s = {0};
            unsigned flags = engine_modes[m] | MO_WALK_XDEV | (follow ? MO_WALK_FOLLOW : 0);
            mo_walk_opts opts = {.flags = flags, .on_error = seen_error};
            walk_run(&s, root, &opts);
            assert_int_equal(s.done_err, 0);
            assert_null(s.errors.s);
            assert_int_equal(count_lines(&s.log, "N4 m"), 1);
            assert_int_equal(count_lines(&s.log, "N4 inner"), 0);
            snprintf(line, sizeof line, "D0 %s/d", root);
            assert_int_equal(count_lines(&s.log, line), 1);
            assert_int_equal(count_lines(&s.log, follow ? "N4 link-to-mount" : "N10 link-to-mount"),
                             1);
            seen_free(&s);
        }
        /* Without it, the mount is walked. */
        struct seen s = {0};
        mo_walk_opts opts = {.flags = engine_modes[m]};
        walk_run(&s, root, &opts);
        assert_int_equal(count_lines(&s.log, "N4 inner"), 1);
        seen_free(&s);
    }
    assert_int_equal(umount(mnt), 0);
    tree_rm(root);
}

MO_TEST_MAIN(
    cmocka_unit_test(test_pause_and_resume), cmocka_unit_test(test_order_matches_os_path_walk),
    cmocka_unit_test(test_types_and_symlinks_not_followed),
    cmocka_unit_test(test_prune_by_removing_names), cmocka_unit_test(test_names_remove_bounds),
    cmocka_unit_test(test_empty_directory_and_trailing_slash), cmocka_unit_test(test_top_errors),
    cmocka_unit_test(test_bad_arguments), cmocka_unit_test(test_deep_tree_bounded_descriptors),
    cmocka_unit_test(test_directory_removed_during_walk),
    cmocka_unit_test(test_cancel_from_visit_closes_descriptors),
    cmocka_unit_test(test_cancel_between_slices), cmocka_unit_test(test_odd_names),
    cmocka_unit_test(test_unreadable_directory), cmocka_unit_test(test_pieces_of_a_large_directory),
    cmocka_unit_test(test_deferred_fires_with_totals),
    cmocka_unit_test(test_deferred_failure_has_code_and_path),
    cmocka_unit_test(test_deferred_cancel_stops_and_closes),
    cmocka_unit_test(test_walk_bad_arguments), cmocka_unit_test(test_loop_runs_between_pieces),
    cmocka_unit_test(test_follow_links_reports_each_loop_once),
    cmocka_unit_test(test_follow_deep_through_a_link),
    cmocka_unit_test(test_xdev_stays_on_one_file_system))
