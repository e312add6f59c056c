/* The parallel walk (MO_WALK_PARALLEL): the same (dirname, name, type)
 * set as the sequential walk on generated trees, with and without pieces,
 * with parent descriptors evicted and re-opened; pruning; errors; cancel
 * and descriptors; freeing the loop in the middle of a walk.
 * MO_TEST_LABEL_THREADS */
#include "test.h"

#include "walk/walk_int.h"
#include "walk_tree.h"

#include <dirent.h>
#include <grp.h>
#include <sys/wait.h>

/* The descriptors this process has open, as /proc/self/fd lists them (not
 * counting the one that reads it). */
static int proc_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n - 1;
}

/* ---- what a walk saw: one record per directory and per name ---- */

struct recs {
    char **v;
    size_t n, cap;
};

static void recs_add(struct recs *r, char kind, const char *dir, const char *name, int type)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 256;
        r->v = realloc(r->v, r->cap * sizeof(*r->v));
        assert_non_null(r->v);
    }
    size_t len = strlen(dir) + strlen(name) + 16;
    r->v[r->n] = malloc(len);
    assert_non_null(r->v[r->n]);
    snprintf(r->v[r->n++], len, "%c%d %s//%s", kind, type, dir, name);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void recs_free(struct recs *r)
{
    for (size_t i = 0; i < r->n; i++) free(r->v[i]);
    free(r->v);
}

/* The two sets are equal (sorted in place). */
static void recs_assert_equal(struct recs *a, struct recs *b)
{
    if (a->n) qsort(a->v, a->n, sizeof(*a->v), cmp_str); /* v is NULL when empty */
    if (b->n) qsort(b->v, b->n, sizeof(*b->v), cmp_str);
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) assert_string_equal(a->v[i], b->v[i]);
}

struct seen {
    struct recs recs;
    struct recs errors;
    long dirs, names, pieces;
    int done_err, done_calls;
    char done_path[4200];
    const char *prune;      /* a name visit removes */
    int cancel_after;       /* cancel from visit at this directory (1-based) */
    const char *remove_dir; /* removed by visit at the first directory */
    int max_fds, fds_before;
    struct mo__walk *walk;
    size_t limit_fds; /* 0: the default */
    bool after_cancel;
};

static void seen_visit(void *arg, const char *dirname, mo_walk_names *names)
{
    struct seen *s = arg;
    assert_false(s->after_cancel);
    s->pieces++;
    s->dirs += !names->more;
    if (s->pieces == 1 || !names->more) recs_add(&s->recs, 'D', dirname, "", 0);
    for (size_t i = 0; i < names->count; i++) {
        if (s->prune && !strcmp(names->names[i].name, s->prune)) {
            mo_walk_names_remove(names, i--);
            continue;
        }
        assert_int_equal(strlen(names->names[i].name), names->names[i].len);
        recs_add(&s->recs, 'N', dirname, names->names[i].name, names->names[i].type);
        s->names++;
    }
    if (s->pieces % 8 == 0) {
        int fds = tree_open_fds();
        if (fds > s->max_fds) s->max_fds = fds;
    }
    if (s->remove_dir) {
        char cmd[4300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->remove_dir);
        assert_int_equal(system(cmd), 0);
        s->remove_dir = NULL;
    }
    if (s->cancel_after && s->dirs == s->cancel_after) {
        assert_ok(mo__walk_cancel(s->walk));
        s->after_cancel = true;
    }
}

static void seen_error(void *arg, const char *path, int err)
{
    recs_add(&((struct seen *)arg)->errors, 'E', path, "", -err);
}

static void seen_done(void *arg, int err, const char *path, const mo_walk_totals *totals)
{
    struct seen *s = arg;
    (void)totals;
    s->done_calls++;
    s->done_err = err;
    snprintf(s->done_path, sizeof s->done_path, "%s", path ? path : "");
}

/* Walks `top` to the end; in parallel mode if flags say so. */
static void walk_run(struct seen *s, const char *top, unsigned flags, mo_walk_error_fn on_error)
{
    s->fds_before = tree_open_fds();
    mo_loop_t *loop = mo_test_loop();
    mo_walk_opts opts = {.flags = flags, .on_error = on_error};
    s->done_err = 1;
    assert_ok(mo__walk_start(loop, top, seen_visit, s, &opts, seen_done, s, &s->walk));
    if (s->limit_fds) mo__walk_par_limit_fds(s->walk, s->limit_fds);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(s->done_calls, 1);
    mo_loop_free(loop);
    assert_int_equal(tree_open_fds(), s->fds_before);
}

static void seen_free(struct seen *s)
{
    recs_free(&s->recs);
    recs_free(&s->errors);
}

/* ---- trees ---- */

/* A bit of everything: odd names, links, special files, a deep chain, a
 * large directory, and a wide part. */
static void make_tree(const char *root)
{
    const char *dirs[] = {"a",     "a/b",        "a/b/c",     "a/empty",
                          "z",     "with space", "new\nline", "bad\xff\xfeutf8",
                          "-dash", ".hidden",    "wide"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) tree_dir(root, dirs[i]);
    tree_file(root, "a/b/c/leaf");
    tree_file(root, "new\nline/in\nside");
    tree_link(root, "a", "link-to-dir");
    tree_link(root, "loop", "loop");
    tree_link(root, "..", "z/up");
    tree_fifo(root, "fifo");
    tree_socket(root, "sock");
    tree_deep(root, "a/b", 200);
    tree_many(root, "z", 3000);
    char p[64];
    for (int i = 0; i < 30; i++) {
        snprintf(p, sizeof p, "wide/w%02d", i);
        tree_dir(root, p);
        for (int k = 0; k < 5; k++) {
            snprintf(p, sizeof p, "wide/w%02d/s%d", i, k);
            tree_dir(root, p);
            tree_file(root, p);
            snprintf(p, sizeof p, "wide/w%02d/s%d/f", i, k);
            tree_file(root, p);
        }
    }
}

/* ---- tests ---- */

/* `flags` (MO_WALK_FOLLOW, MO_WALK_XDEV) go to both walks; with
 * MO_WALK_FOLLOW the errors (the loops) must be the same too. */
static void same_set_with(unsigned flags, unsigned pflags, size_t limit_fds)
{
    char root[256];
    tree_tmpdir(root, sizeof root);
    make_tree(root);
    struct seen seq = {0}, par = {.limit_fds = limit_fds};
    mo_walk_error_fn on_error = flags & MO_WALK_FOLLOW ? seen_error : NULL;
    walk_run(&seq, root, flags, on_error);
    walk_run(&par, root, MO_WALK_PARALLEL | pflags | flags, on_error);
    assert_int_equal(seq.done_err, 0);
    assert_int_equal(par.done_err, 0);
    assert_int_equal(par.dirs, seq.dirs);
    assert_int_equal(par.names, seq.names);
    recs_assert_equal(&par.recs, &seq.recs);
    recs_assert_equal(&par.errors, &seq.errors);
    assert_int_equal(seq.errors.n, flags & MO_WALK_FOLLOW ? 2 : 0); /* loop, z/up */
    /* Descriptors stay bounded: the loop's, parents', two per job. */
    assert_in_range(par.max_fds, par.fds_before,
                    par.fds_before + 4 + MO_WALK_MAX_FDS + 3 * MO_WALK_MAX_DIRS);
    seen_free(&seq);
    seen_free(&par);
    tree_rm(root);
}

static void same_set(unsigned pflags, size_t limit_fds)
{
    same_set_with(0, pflags, limit_fds);
}

/* Links followed: the same names and the same loops reported, also with
 * every parent evicted (re-opened through the links by name). */
static void test_same_set_following_links(void **state)
{
    (void)state;
    same_set_with(MO_WALK_FOLLOW | MO_WALK_XDEV, 0, 0);
    same_set_with(MO_WALK_FOLLOW, MO_WALK_PIECES, 1);
}

static void test_same_set_as_sequential(void **state)
{
    (void)state;
    same_set(0, 0);
}

static void test_same_set_with_pieces(void **state)
{
    (void)state;
    same_set(MO_WALK_PIECES, 0);
}

/* Every parent descriptor but the top's evicted at once: each job re-opens
 * its parent one name at a time. */
static void test_same_set_with_evicted_parents(void **state)
{
    (void)state;
    same_set(0, 1);
}

static void test_pieces_of_a_large_directory(void **state)
{
    (void)state;
    char root[256];
    tree_tmpdir(root, sizeof root);
    tree_many(root, "", 20000);
    tree_dir(root, "sub");
    tree_file(root, "sub/f");
    struct seen s = {0};
    walk_run(&s, root, MO_WALK_PARALLEL | MO_WALK_PIECES, NULL);
    assert_int_equal(s.done_err, 0);
    assert_int_equal(s.dirs, 2);
    assert_int_equal(s.names, 20002);
    assert_true(s.pieces > s.dirs); /* 20,000 names (640 KB) do not fit one piece */
    seen_free(&s);
    tree_rm(root);
}

static void test_deep_tree(void **state)
{
    (void)state;
    char root[256];
    tree_tmpdir(root, sizeof root);
    tree_deep(root, "", 10000);
    struct seen s = {0};
    walk_run(&s, root, MO_WALK_PARALLEL, NULL);
    assert_int_equal(s.done_err, 0);
    assert_int_equal(s.dirs, 10001);
    assert_int_equal(s.names, 10000);
    assert_in_range(s.max_fds, s.fds_before,
                    s.fds_before + 4 + MO_WALK_MAX_FDS + 3 * MO_WALK_MAX_DIRS);
    seen_free(&s);
    tree_rm(root);
}

static bool has(const struct recs *r, const char *rec)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->v[i], rec)) return true;
    return false;
}

/* A pruned subdirectory is never entered, nor anything below it. */
static void test_prune(void **state)
{
    (void)state;
    char root[256], rec[400];
    tree_tmpdir(root, sizeof root);
    make_tree(root);
    struct seen s = {.prune = "b"};
    walk_run(&s, root, MO_WALK_PARALLEL, NULL);
    assert_int_equal(s.done_err, 0);
    snprintf(rec, sizeof rec, "D0 %s/a//", root);
    assert_true(has(&s.recs, rec));
    for (size_t i = 0; i < s.recs.n; i++) assert_null(strstr(s.recs.v[i], "/a/b"));
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
        walk_run(&s, p, MO_WALK_PARALLEL, NULL);
        assert_mo(cases[i].err, s.done_err);
        assert_string_equal(s.done_path, p);
        assert_int_equal(s.dirs, 0);
        seen_free(&s);
    }
    tree_rm(root);
}

/* A directory removed after its parent was listed: ENOENT on its path;
 * with on_error the walk goes on and visits everything else. */
static void test_directory_removed_during_walk(void **state)
{
    (void)state;
    char root[256], gone[300], rec[400];
    for (int keep_going = 0; keep_going < 2; keep_going++) {
        tree_tmpdir(root, sizeof root);
        make_tree(root);
        snprintf(gone, sizeof gone, "%s/a", root);
        struct seen s = {.remove_dir = gone};
        walk_run(&s, root, MO_WALK_PARALLEL, keep_going ? seen_error : NULL);
        if (keep_going) {
            assert_int_equal(s.done_err, 0);
            assert_int_equal(s.errors.n, 1);
            snprintf(rec, sizeof rec, "E%d %s//", ENOENT, gone);
            assert_string_equal(s.errors.v[0], rec);
            snprintf(rec, sizeof rec, "D0 %s/wide/w29/s4//", root);
            assert_true(has(&s.recs, rec));
        } else {
            assert_mo(MO_ENOENT, s.done_err);
            assert_string_equal(s.done_path, gone);
            assert_int_equal(s.errors.n, 0);
        }
        seen_free(&s);
        tree_rm(root);
    }
}

/* As root, permission bits do not stop reads: the walk runs in a child
 * that drops to nobody; its exit status says what it saw. */
static void test_unreadable_directory(void **state)
{
    (void)state;
    char root[256], locked[300];
    tree_tmpdir(root, sizeof root);
    assert_int_equal(chmod(root, 0755), 0);
    tree_dir(root, "open");
    tree_dir(root, "locked");
    tree_dir(root, "locked/inner");
    snprintf(locked, sizeof locked, "%s/locked", root);
    assert_int_equal(chmod(locked, 0), 0);
    for (int keep_going = 0; keep_going < 2; keep_going++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            if (getuid() == 0 && (setgroups(0, NULL) || setgid(65534) || setuid(65534))) _exit(98);
            struct seen s = {0};
            walk_run(&s, root, MO_WALK_PARALLEL, keep_going ? seen_error : NULL);
            if (keep_going) _exit(s.done_err == 0 && s.errors.n == 1 && s.dirs == 2 ? 0 : 1);
            _exit(s.done_err == MO_EACCES && !strcmp(s.done_path, locked) ? 0 : 1);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    tree_rm(root);
}

/* Cancelled from visit() while jobs are queued and on workers: visit is
 * not called again, and every descriptor is closed by the time the loop
 * returns (walk_run checks /proc/self/fd's count before and after). */
static void test_cancel_from_visit(void **state)
{
    (void)state;
    char root[256];
    tree_tmpdir(root, sizeof root);
    make_tree(root);
    int before = proc_fds();
    for (int at = 1; at <= 40; at += 13) {
        struct seen s = {.cancel_after = at};
        walk_run(&s, root, MO_WALK_PARALLEL, NULL);
        assert_mo(MO_ECANCELED, s.done_err);
        assert_int_equal(s.dirs, at);
        assert_int_equal(proc_fds(), before);
        seen_free(&s);
    }
    tree_rm(root);
}

/* Cancelled through its Deferred from a timer, between two slices. */
struct timed_cancel {
    mo_deferred_t *d;
    int fired, code;
};

static void cancel_timer(mo_loop_t *loop, void *arg)
{
    (void)loop;
    struct timed_cancel *t = arg;
    if (!mo_deferred_fired(t->d)) assert_ok(mo_deferred_cancel(t->d));
}

static void record_outcome(mo_result_t *result, void *arg)
{
    struct timed_cancel *t = arg;
    mo_failure_t *f = mo_result_failure(result);
    t->fired++;
    t->code = f ? mo_failure_code(f) : 0;
    mo_result_set(result, NULL, NULL);
}

static void count_visit(void *arg, const char *dirname, mo_walk_names *names)
{
    (void)dirname;
    *(size_t *)arg += names->count;
}

static void test_deferred_cancel_from_timer(void **state)
{
    (void)state;
    char root[256];
    tree_tmpdir(root, sizeof root);
    make_tree(root);
    mo_loop_t *loop = mo_test_loop();
    int before = tree_open_fds(), listed = proc_fds();
    struct timed_cancel t = {0};
    size_t names = 0;
    mo_walk_opts opts = {.flags = MO_WALK_PARALLEL, .slice = 1};
    assert_ok(mo_walk(loop, root, count_visit, &names, &opts, &t.d));
    assert_ok(mo_deferred_add_both(t.d, record_outcome, &t));
    assert_ok(mo_call_later(loop, MO_USEC(500), cancel_timer, &t, NULL));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(t.fired, 1);
    assert_mo(MO_ECANCELED, t.code);
    assert_int_equal(tree_open_fds(), before);
    assert_int_equal(proc_fds(), listed);
    mo_deferred_unref(t.d);
    mo_loop_free(loop);
    tree_rm(root);
}

/* The loop freed in the middle of a walk: the walk ends as if cancelled,
 * its Deferred errbacks with MO_ECANCELED, and it drops its reference
 * (ASan's leak check fails the test otherwise). Both modes. */
struct stopper {
    mo_loop_t *loop;
    int visits;
};

static void stop_visit(void *arg, const char *dirname, mo_walk_names *names)
{
    (void)dirname;
    (void)names;
    struct stopper *s = arg;
    if (++s->visits == 3) assert_ok(mo_loop_stop(s->loop));
}

static void test_loop_freed_mid_walk(void **state)
{
    (void)state;
    char root[256];
    tree_tmpdir(root, sizeof root);
    make_tree(root);
    int before = tree_open_fds();
    for (unsigned flags = 0; flags <= MO_WALK_PARALLEL; flags += MO_WALK_PARALLEL) {
        struct stopper s = {.loop = mo_test_loop()};
        struct timed_cancel t = {0};
        mo_walk_opts opts = {.flags = flags, .slice = 1}; /* short turns */
        mo_deferred_t *d;
        assert_ok(mo_walk(s.loop, root, stop_visit, &s, &opts, &d));
        assert_ok(mo_deferred_add_both(d, record_outcome, &t));
        assert_ok(mo_loop_run(s.loop, MO_RUN_DEFAULT));
        assert_true(s.visits >= 3);
        assert_int_equal(t.fired, 0); /* stopped, not finished */
        mo_deferred_unref(d);
        mo_loop_free(s.loop);
        assert_int_equal(t.fired, 1);
        assert_mo(MO_ECANCELED, t.code);
        assert_int_equal(tree_open_fds(), before);
    }
    tree_rm(root);
}

static void test_flags(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    mo_deferred_t *d = NULL;
    size_t n = 0;
    mo_walk_opts bad = {.flags = MO_WALK_PARALLEL | 0x100};
    assert_mo(MO_EINVAL, mo_walk(loop, "/", count_visit, &n, &bad, &d));
    assert_null(d);
    mo_walk_opts both = {.flags = MO_WALK_PARALLEL | MO_WALK_PIECES};
    assert_ok(mo_walk(loop, "/nonexistent-morsel-dir", count_visit, &n, &both, &d));
    struct timed_cancel t = {0};
    assert_ok(mo_deferred_add_both(d, record_outcome, &t));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_mo(MO_ENOENT, t.code);
    mo_deferred_unref(d);
    mo_loop_free(loop);
}

MO_TEST_MAIN(cmocka_unit_test(test_same_set_as_sequential),
             cmocka_unit_test(test_same_set_with_pieces),
             cmocka_unit_test(test_same_set_with_evicted_parents),
             cmocka_unit_test(test_same_set_following_links),
             cmocka_unit_test(test_pieces_of_a_large_directory), cmocka_unit_test(test_deep_tree),
             cmocka_unit_test(test_prune), cmocka_unit_test(test_top_errors),
             cmocka_unit_test(test_directory_removed_during_walk),
             cmocka_unit_test(test_unreadable_directory), cmocka_unit_test(test_cancel_from_visit),
             cmocka_unit_test(test_deferred_cancel_from_timer),
             cmocka_unit_test(test_loop_freed_mid_walk), cmocka_unit_test(test_flags))
