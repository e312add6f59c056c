/* The directory walk: os.path.walk order, pruning, types, symlinks never
 * followed, deep and huge trees, errors, cancellation, slicing. */
#include "walk_harness.h"

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
    struct walk_seen s = {0};
    walk_run(&s, root, NULL);
    assert_int_equal(s.done_err, 0);
    struct recs ref = {0};
    ref_walk(&ref, root);
    recs_assert_same(&s.recs, &ref);
    assert_int_equal(s.dirs, 8); /* root a b c empty z e1 e2 */
    recs_free(&ref);
    seen_free(&s);
    tree_rm(root);
}

static void test_types_and_symlinks_not_followed(void **state)
{
    (void)state;
    char root[256];
    tree_tmpdir(root, sizeof root);
    make_mixed(root);
    struct walk_seen s = {0};
    walk_run(&s, root, NULL);
    assert_true(recs_has(&s.recs, "N10 %s//link-to-dir", root));
    assert_true(recs_has(&s.recs, "N10 %s//loop", root));
    assert_true(recs_has(&s.recs, "N10 %s/z//up", root));
    assert_true(recs_has(&s.recs, "N1 %s//fifo", root));
    assert_true(recs_has(&s.recs, "N12 %s//sock", root));
    assert_true(recs_has(&s.recs, "N8 %s//top-file", root));
    assert_true(recs_has(&s.recs, "N4 %s//a", root));
    assert_false(recs_has(&s.recs, "D0 %s/link-to-dir//", root));
    seen_free(&s);
    tree_rm(root);
}

static void test_prune_by_removing_names(void **state)
{
    (void)state;
    char root[256];
    tree_tmpdir(root, sizeof root);
    make_mixed(root);
    struct walk_seen s = {.prune = "b"};
    walk_run(&s, root, NULL);
    assert_int_equal(s.done_err, 0);
    assert_false(recs_has(&s.recs, "D0 %s/a/b//", root));
    assert_true(recs_has(&s.recs, "D0 %s/a/empty//", root));
    assert_int_equal(s.dirs, 6);
    seen_free(&s);
    tree_rm(root);
}

static void test_names_remove_bounds(void **state)
{
    (void)state;
    mo_walk_name v[3] = {{"a", 1, 8}, {"b", 1, 8}, {"c", 1, 8}};
    mo_walk_names names = {.names = v, .count = 3};
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
    struct walk_seen s = {0};
    walk_run(&s, top, NULL);
    assert_int_equal(s.done_err, 0);
    assert_int_equal(s.recs.n, 3);
    assert_true(recs_has(&s.recs, "D0 %s///", root));
    assert_true(recs_has(&s.recs, "N4 %s///sub", root));
    assert_true(recs_has(&s.recs, "D0 %s/sub//", root));
    seen_free(&s);
    tree_rm(root);
}

static void test_top_errors(void **state)
{
    (void)state;
    check_top_errors(0);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct walk_seen s = {0};
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
    struct walk_seen s = {0};
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
    check_removed_during_walk(0);
}

static void test_cancel_from_visit_closes_descriptors(void **state)
{
    (void)state;
    char root[256];
    tree_tmpdir(root, sizeof root);
    tree_deep(root, "", 100);
    int before = tree_open_fds();
    struct walk_seen s = {.cancel_after = 50};
    walk_run(&s, root, NULL);
    assert_mo(MO_ECANCELED, s.done_err);
    assert_int_equal(s.dirs, 50);
    assert_string_equal(s.done_path, "");
    assert_int_equal(tree_open_fds(), before);
    seen_free(&s);
    tree_rm(root);
}

struct later {
    struct walk_seen *s;
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

/* At the 5th directory: a cancel queued for a later pass of the loop. */
static void queue_cancel(struct walk_seen *s, const char *dirname, mo_walk_names *names)
{
    (void)dirname;
    (void)names;
    if (s->dirs == 5) assert_ok(mo_call_soon(s->loop, cancel_later, s->hook_arg));
}

/* A cancel between two slices: the walk has started, not finished. */
static void test_cancel_between_slices(void **state)
{
    (void)state;
    char root[256];
    tree_tmpdir(root, sizeof root);
    tree_deep(root, "", 300);
    mo_loop_t *loop = mo_test_loop();
    struct walk_seen s = {
        .done_err = 1, .loop = loop, .hook = queue_cancel, .top_len = strlen(root)};
    struct later l = {&s, tree_open_fds()};
    s.hook_arg = &l;
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
    struct walk_seen s = {0};
    walk_run(&s, root, NULL);
    struct recs ref = {0};
    ref_walk(&ref, root);
    recs_assert_same(&s.recs, &ref);
    assert_int_equal(s.dirs, 7);
    recs_free(&ref);
    seen_free(&s);
    tree_rm(root);
}

/* As root, permission bits do not stop reads: the walk runs as nobody. */
static void test_unreadable_directory(void **state)
{
    (void)state;
    check_unreadable(0);
}

/* A huge directory, read in pieces: each piece arrives in its own call,
 * and pruning a piece's subdirectory works. */
static void test_pieces_of_a_large_directory(void **state)
{
    (void)state;
    char root[256];
    tree_tmpdir(root, sizeof root);
    tree_many(root, "", 20000);
    tree_dir(root, "b");
    tree_dir(root, "b/inner");
    tree_dir(root, "keep");
    struct walk_seen s = {.prune = "b"};
    mo_walk_opts opts = {.flags = MO_WALK_PIECES};
    walk_run(&s, root, &opts);
    assert_int_equal(s.done_err, 0);
    assert_int_equal(s.names, 20001);
    assert_true(s.pieces > 3); /* 20,000 names do not fit one 64 KiB batch */
    assert_true(recs_has(&s.recs, "D0 %s/keep//", root));
    assert_false(recs_has(&s.recs, "D0 %s/b/inner//", root));
    seen_free(&s);
    tree_rm(root);
}

/* ---- few descriptors (issue 16, item 9) ---- */

/* With only a few descriptors (find runs under prlimit --nofile=16), the
 * walk gives back the ones it holds and re-opens their directories later:
 * it sees what it sees with many, down to the documented two. */
static void test_few_descriptors(void **state)
{
    (void)state;
    check_few_descriptors(0, 2);
    check_few_descriptors(0, 8);
}

/* Descriptors run out in the middle of a walk (visit() takes them while
 * the walk holds a few): it gives back the ones it holds and goes on. */
static void test_descriptors_run_out_mid_walk(void **state)
{
    (void)state;
    check_descriptors_run_out(0, 10, 150, 1);
}

/* With nothing to give back the walk fails with MO_EMFILE on the directory
 * it could not open: `top` with no descriptor free (check_no_descriptor_
 * left), its first subdirectory with one. */
static void test_no_descriptor_left(void **state)
{
    (void)state;
    check_no_descriptor_left(0);
    char root[256];
    tree_tmpdir(root, sizeof root);
    make_tree(root);
    struct walk_seen s = {.starve = true, .spare = 1};
    struct child_walk r;
    walk_in_child(&s, root, NULL, &r);
    assert_mo(MO_EMFILE, r.done_err);
    assert_int_equal(r.dirs, 1);
    size_t n = strlen(root);
    assert_memory_equal(r.done_path, root, n);
    assert_true(r.done_path[n] == '/' && !strchr(r.done_path + n + 1, '/'));
    tree_rm(root);
}

/* ---- following links, one file system (issue 15) ---- */

/* MO_WALK_FOLLOW is find -L on a hostile tree: the same paths, types and
 * loops (each reported once, as MO_ELOOP, and not listed), also from a
 * `top` that is a link; without it, find -P's. */
static void test_follow_like_find(void **state)
{
    (void)state;
    check_follow_like_find(0);
}

/* Without on_error, the first loop stops the walk: MO_ELOOP on the link. */
static void test_follow_loop_stops_walk(void **state)
{
    (void)state;
    check_follow_loop_stops(0);
}

/* MO_WALK_XDEV is find -xdev: a file system mounted in the tree is listed,
 * not entered; also through a link with MO_WALK_FOLLOW (find -L -xdev). */
static void test_xdev_like_find(void **state)
{
    (void)state;
    check_xdev_like_find(0);
}

/* ---- follow and xdev in every mode of both engines ----
 * First written against the cli branch's engine (920cdcf), kept with this
 * one. */

static const unsigned engine_modes[] = {0, MO_WALK_PIECES, MO_WALK_PARALLEL,
                                        MO_WALK_PARALLEL | MO_WALK_PIECES};

static void test_follow_links_reports_each_loop_once(void **state)
{
    (void)state;
    char root[256];
    tree_tmpdir(root, sizeof root);
    make_mixed(root); /* link-to-dir -> a, loop -> loop, z/up -> .. */
    tree_link(root, "nowhere", "broken");
    tree_link(root, "top-file", "link-to-file");
    tree_link(root, "../..", "a/b/up2"); /* back to root from two levels down */
    for (size_t m = 0; m < sizeof engine_modes / sizeof *engine_modes; m++) {
        struct walk_seen s = {0};
        mo_walk_opts opts = {.flags = engine_modes[m] | MO_WALK_FOLLOW, .on_error = seen_error};
        walk_run(&s, root, &opts);
        assert_int_equal(s.done_err, 0);
        /* Links typed by their targets; a broken one stays a link. */
        assert_int_equal(recs_count(&s.recs, "N4 %s//link-to-dir", root), 1);
        assert_int_equal(recs_count(&s.recs, "N8 %s//link-to-file", root), 1);
        assert_int_equal(recs_count(&s.recs, "N10 %s//broken", root), 1);
        /* The directory behind the link is walked, under the link's path. */
        assert_int_equal(recs_count(&s.recs, "D0 %s/link-to-dir/b/c//", root), 1);
        /* Loops are neither listed nor entered: one error each time the
         * walk reaches one, MO_ELOOP, on the path it was reached by. */
        for (size_t i = 0; i < s.recs.n; i++) {
            const char *end = s.recs.v[i] + strlen(s.recs.v[i]);
            assert_true(strcmp(end - 6, "//loop") != 0 && strcmp(end - 4, "//up") != 0 &&
                        strcmp(end - 5, "//up2") != 0);
        }
        const char *loops[] = {"loop", "z/up", "a/b/up2", "link-to-dir/b/up2"};
        for (size_t i = 0; i < sizeof loops / sizeof *loops; i++)
            assert_int_equal(recs_count(&s.errors, "E%d %s/%s//", ELOOP, root, loops[i]), 1);
        assert_int_equal(s.errors.n, 4);
        seen_free(&s);
    }
    tree_rm(root);
}

/* A tree deeper than MO_WALK_MAX_FDS reached through a link: the walk
 * climbs back through evicted ancestors, which ".." cannot reach (it leads
 * to the link target's parent), so they are re-opened by their path. */
static void test_follow_deep_through_a_link(void **state)
{
    (void)state;
    char root[256], top[300];
    tree_tmpdir(root, sizeof root);
    tree_dir(root, "real");
    tree_deep(root, "real", 3 * MO_WALK_MAX_FDS);
    tree_dir(root, "top");
    tree_dir(root, "top/x"); /* the link's parent: evicted, and ".." of real is not it */
    tree_link(root, "../../real", "top/x/link");
    tree_file(root, "top/x/after");
    snprintf(top, sizeof top, "%s/top", root);
    for (size_t m = 0; m < sizeof engine_modes / sizeof *engine_modes; m++) {
        struct walk_seen s = {0};
        mo_walk_opts opts = {.flags = engine_modes[m] | MO_WALK_FOLLOW, .on_error = seen_error};
        walk_run(&s, top, &opts);
        assert_mo(0, s.done_err);
        assert_int_equal(s.errors.n, 0);
        assert_int_equal(recs_count(&s.recs, "N4 %s/x//link", top), 1);
        assert_int_equal(recs_count(&s.recs, "D0 %s/x/link/d//", top), 1);
        size_t d = 0;
        for (size_t i = 0; i < s.recs.n; i++) {
            const char *rec = s.recs.v[i];
            d += !strncmp(rec, "N4 ", 3) && !strcmp(rec + strlen(rec) - 3, "//d");
        }
        assert_int_equal(d, 3 * MO_WALK_MAX_FDS);
        /* Bounded: the loop's, MO_WALK_MAX_FDS, a few more. */
        if (!(engine_modes[m] & MO_WALK_PARALLEL))
            assert_in_range(s.max_fds, 0, s.fds_before + MO_WALK_MAX_FDS + 4);
        seen_free(&s);
    }
    tree_rm(root);
}

/* A file system mounted inside the tree: listed, not entered, in every
 * mode, with and without following links. */
static void test_xdev_stays_on_one_file_system(void **state)
{
    (void)state;
    char root[256];
    tree_tmpdir(root, sizeof root);
    tree_dir(root, "m");
    tree_dir(root, "d");
    tree_file(root, "d/f");
    if (!mount_in_tree(root, "m")) {
        tree_rm(root);
        skip(); /* not permitted to mount here */
    }
    tree_dir(root, "m/inner");
    tree_file(root, "m/inner/f");
    tree_link(root, "m", "link-to-mount");
    for (size_t m = 0; m < sizeof engine_modes / sizeof *engine_modes; m++) {
        for (int follow = 0; follow < 2; follow++) {
            struct walk_seen s = {0};
            unsigned flags = engine_modes[m] | MO_WALK_XDEV | (follow ? MO_WALK_FOLLOW : 0);
            mo_walk_opts opts = {.flags = flags, .on_error = seen_error};
            walk_run(&s, root, &opts);
            assert_int_equal(s.done_err, 0);
            assert_int_equal(s.errors.n, 0);
            assert_int_equal(recs_count(&s.recs, "N4 %s//m", root), 1);
            assert_int_equal(recs_count(&s.recs, "N4 %s/m//inner", root), 0);
            assert_int_equal(recs_count(&s.recs, "D0 %s/d//", root), 1);
            assert_int_equal(recs_count(&s.recs, "N%d %s//link-to-mount", follow ? 4 : 10, root),
                             1);
            seen_free(&s);
        }
        /* Without it, the mount is walked. */
        struct walk_seen s = {0};
        mo_walk_opts opts = {.flags = engine_modes[m]};
        walk_run(&s, root, &opts);
        assert_int_equal(recs_count(&s.recs, "N4 %s/m//inner", root), 1);
        seen_free(&s);
    }
    unmount_in_tree(root, "m");
    tree_rm(root);
}

/* A link nobody may follow (its target's directory is not searchable) is
 * listed, untyped, and its error reported, as find -L does; both engines. */
static void test_follow_unsearchable_like_find(void **state)
{
    (void)state;
    check_follow_unsearchable_like_find(0);
    check_follow_unsearchable_like_find(MO_WALK_PARALLEL);
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
    cmocka_unit_test(test_few_descriptors), cmocka_unit_test(test_descriptors_run_out_mid_walk),
    cmocka_unit_test(test_no_descriptor_left), cmocka_unit_test(test_follow_like_find),
    cmocka_unit_test(test_follow_loop_stops_walk), cmocka_unit_test(test_xdev_like_find),
    cmocka_unit_test(test_follow_links_reports_each_loop_once),
    cmocka_unit_test(test_follow_deep_through_a_link),
    cmocka_unit_test(test_xdev_stays_on_one_file_system),
    cmocka_unit_test(test_follow_unsearchable_like_find))
