/* The walk on a directory of a million entries (DESIGN rule 16: no single
 * directory holds the loop longer than a slice). The entries are made on
 * tmpfs when there is one (/dev/shm: ~12 s to make and remove, against
 * minutes on a disk); the walk reads them with the same getdents64 path.
 * Still the slowest test, so it is labelled large: scripts/test runs it in
 * one build only. MO_TEST_LABEL_LARGE */
#include "test.h"

#include "walk_tree.h"

#include <stdlib.h>
#include <unistd.h>

#define ENTRIES 1000000

struct large {
    mo_loop_t *loop;
    long names;
    long pieces;
    int64_t last_beat, worst_gap;
    int walking;
};

static void large_visit(void *arg, const char *dirname, mo_walk_names *names)
{
    (void)dirname;
    struct large *l = arg;
    l->names += (long)names->count;
    l->pieces++;
}

/* A 1 ms heartbeat: the longest gap between two beats is how long the
 * loop was held. */
static void beat_cb(mo_loop_t *loop, void *arg)
{
    struct large *l = arg;
    int64_t now = mo_hrtime();
    if (l->last_beat && now - l->last_beat > l->worst_gap) l->worst_gap = now - l->last_beat;
    l->last_beat = now;
    if (l->walking) assert_ok(mo_call_later(loop, MO_MSEC(1), beat_cb, l, NULL));
}

static void done_cb(mo_result_t *result, void *arg)
{
    struct large *l = arg;
    assert_null(mo_result_failure(result));
    l->walking = 0;
}

static void test_million_entry_directory(void **state)
{
    (void)state;
    char root[256];
    if (access("/dev/shm", W_OK) == 0) setenv("TMPDIR", "/dev/shm", 1);
    tree_tmpdir(root, sizeof root);
    tree_many(root, "", ENTRIES);
    for (int parallel = 0; parallel <= 1; parallel++) {
        struct large l = {.loop = mo_test_loop(), .walking = 1};
        mo_walk_opts opts = {.flags = MO_WALK_PIECES | (parallel ? MO_WALK_PARALLEL : 0)};
        mo_deferred_t *d;
        assert_ok(mo_walk(l.loop, root, large_visit, &l, &opts, &d));
        assert_ok(mo_deferred_add_both(d, done_cb, &l));
        assert_ok(mo_call_later(l.loop, MO_MSEC(1), beat_cb, &l, NULL));
        assert_ok(mo_loop_run(l.loop, MO_RUN_DEFAULT));
        assert_int_equal(l.walking, 0);
        assert_int_equal(l.names, ENTRIES);
        assert_true(l.pieces > 100); /* read in batches, across passes */
        /* Read in one go, the listing holds a thread ~250 ms (bench_blocking);
         * sliced, the loop is held about a millisecond. Generous bound. */
        if (l.worst_gap >= MO_MSEC(150))
            fail_msg("the loop was held %lld ns", (long long)l.worst_gap);
        mo_deferred_unref(d);
        mo_loop_free(l.loop);
    }
    tree_rm(root);
}

MO_TEST_MAIN(cmocka_unit_test(test_million_entry_directory))
