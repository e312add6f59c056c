/* The parallel walk (MO_WALK_PARALLEL): the same (dirname, name, type)
 * set as the sequential walk on generated trees, with and without pieces,
 * with parent descriptors evicted and re-opened; pruning; errors; cancel
 * and descriptors; freeing the loop in the middle of a walk.
 * MO_TEST_LABEL_THREADS */
#include "walk_harness.h"

/* Walks `top` to the end; in parallel mode if flags say so. */
static void walk_run_flags(struct walk_seen *s, const char *top, unsigned flags,
                           mo_walk_error_fn on_error)
{
    mo_walk_opts opts = {.flags = flags, .on_error = on_error};
    walk_run(s, top, &opts);
}

/* ---- tests ---- */

static void same_set(unsigned pflags, size_t limit_fds)
{
    char root[256];
    tree_tmpdir(root, sizeof root);
    make_tree(root);
    struct walk_seen seq = {0}, par = {.limit_fds = limit_fds};
    walk_run_flags(&seq, root, 0, NULL);
    walk_run_flags(&par, root, MO_WALK_PARALLEL | pflags, NULL);
    assert_int_equal(seq.done_err, 0);
    assert_int_equal(par.done_err, 0);
    assert_int_equal(par.dirs, seq.dirs);
    assert_int_equal(par.names, seq.names);
    recs_assert_same_set(&par.recs, &seq.recs);
    /* Descriptors stay bounded: the loop's, parents', two per job. */
    assert_in_range(par.max_fds, par.fds_before,
                    par.fds_before + 4 + MO_WALK_MAX_FDS + 3 * MO_WALK_MAX_DIRS);
    seen_free(&seq);
    seen_free(&par);
    tree_rm(root);
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
    struct walk_seen s = {0};
    walk_run_flags(&s, root, MO_WALK_PARALLEL | MO_WALK_PIECES, NULL);
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
    struct walk_seen s = {0};
    walk_run_flags(&s, root, MO_WALK_PARALLEL, NULL);
    assert_int_equal(s.done_err, 0);
    assert_int_equal(s.dirs, 10001);
    assert_int_equal(s.names, 10000);
    assert_in_range(s.max_fds, s.fds_before,
                    s.fds_before + 4 + MO_WALK_MAX_FDS + 3 * MO_WALK_MAX_DIRS);
    seen_free(&s);
    tree_rm(root);
}

/* A pruned subdirectory is never entered, nor anything below it. */
static void test_prune(void **state)
{
    (void)state;
    char root[256];
    tree_tmpdir(root, sizeof root);
    make_tree(root);
    struct walk_seen s = {.prune = "b"};
    walk_run_flags(&s, root, MO_WALK_PARALLEL, NULL);
    assert_int_equal(s.done_err, 0);
    assert_true(recs_has(&s.recs, "D0 %s/a//", root));
    for (size_t i = 0; i < s.recs.n; i++) assert_null(strstr(s.recs.v[i], "/a/b"));
    seen_free(&s);
    tree_rm(root);
}

static void test_top_errors(void **state)
{
    (void)state;
    check_top_errors(MO_WALK_PARALLEL);
}

/* A directory removed after its parent was listed: ENOENT on its path;
 * with on_error the walk goes on and visits everything else. */
static void test_directory_removed_during_walk(void **state)
{
    (void)state;
    check_removed_during_walk(MO_WALK_PARALLEL);
}

/* As root, permission bits do not stop reads: the walk runs as nobody. */
static void test_unreadable_directory(void **state)
{
    (void)state;
    check_unreadable(MO_WALK_PARALLEL);
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
        struct walk_seen s = {.cancel_after = at};
        walk_run_flags(&s, root, MO_WALK_PARALLEL, NULL);
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

/* ---- few descriptors (issue 16, item 9) ---- */

/* With only a few descriptors, the parallel walk keeps fewer parents'
 * descriptors and runs fewer, smaller jobs, and completes: the same
 * records as a walk with many, down to the documented three. */
static void test_few_descriptors(void **state)
{
    (void)state;
    check_few_descriptors(MO_WALK_PARALLEL, 3);
    check_few_descriptors(MO_WALK_PARALLEL, 10);
}

/* Descriptors run out while jobs are in flight: the walk waits for the
 * jobs that hold some, gives parents' back, and goes on. */
static void test_descriptors_run_out_mid_walk(void **state)
{
    (void)state;
    check_descriptors_run_out(MO_WALK_PARALLEL, 10, 150, 0);
}

/* With no descriptor to give back, MO_EMFILE on `top`; with on_error, the
 * error is reported and the walk ends. */
static void test_no_descriptor_left(void **state)
{
    (void)state;
    check_no_descriptor_left(MO_WALK_PARALLEL);
}

/* ---- following links, one file system (issue 15) ---- */

/* MO_WALK_FOLLOW in parallel mode is find -L on a hostile tree too (the
 * ancestors a worker checks are its job's nodes); with every parent
 * descriptor but the top's evicted, jobs re-open parents through links by
 * their names and see what the sequential walk sees. */
static void test_follow_like_find(void **state)
{
    (void)state;
    check_follow_like_find(MO_WALK_PARALLEL);
    char root[256];
    tree_tmpdir(root, sizeof root);
    make_links(root);
    struct walk_seen evicted = {.limit_fds = 1}, seq = {0};
    mo_walk_opts follow = {.flags = MO_WALK_PARALLEL | MO_WALK_FOLLOW, .on_error = seen_error};
    mo_walk_opts seq_follow = {.flags = MO_WALK_FOLLOW, .on_error = seen_error};
    walk_run(&evicted, root, &follow);
    walk_run(&seq, root, &seq_follow);
    recs_assert_same_set(&evicted.recs, &seq.recs);
    recs_assert_same_set(&evicted.errors, &seq.errors);
    seen_free(&evicted);
    seen_free(&seq);
    tree_rm(root);
}

/* Without on_error, the first loop stops the walk: MO_ELOOP on the link. */
static void test_follow_loop_stops_walk(void **state)
{
    (void)state;
    check_follow_loop_stops(MO_WALK_PARALLEL);
}

/* MO_WALK_XDEV in parallel mode is find -xdev (-L -xdev with
 * MO_WALK_FOLLOW): a mounted file system is listed, not entered. */
static void test_xdev_like_find(void **state)
{
    (void)state;
    check_xdev_like_find(MO_WALK_PARALLEL);
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
             cmocka_unit_test(test_pieces_of_a_large_directory), cmocka_unit_test(test_deep_tree),
             cmocka_unit_test(test_prune), cmocka_unit_test(test_top_errors),
             cmocka_unit_test(test_directory_removed_during_walk),
             cmocka_unit_test(test_unreadable_directory), cmocka_unit_test(test_cancel_from_visit),
             cmocka_unit_test(test_deferred_cancel_from_timer),
             cmocka_unit_test(test_loop_freed_mid_walk), cmocka_unit_test(test_flags),
             cmocka_unit_test(test_few_descriptors),
             cmocka_unit_test(test_descriptors_run_out_mid_walk),
             cmocka_unit_test(test_no_descriptor_left), cmocka_unit_test(test_follow_like_find),
             cmocka_unit_test(test_follow_loop_stops_walk), cmocka_unit_test(test_xdev_like_find))
