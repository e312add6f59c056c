/* The directory walk when resources run out, against the public API only
 * (walk.h). Memory: fail each allocation in turn, in sequential, piecewise
 * and parallel mode. Every run must end in a clean documented error (mo_walk()
 * returning MO_ENOMEM, or its Deferred failing with MO_ENOMEM, origin
 * "mo_walk"), free everything, visit no directory twice, and otherwise
 * visit the whole tree. */
/* MO_TEST_LABEL_THREADS (parallel mode reads on the pool's threads) */
#include "test.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { TOP_DIRS = 5, SUB_DIRS = 3, BIG_FILES = 3000 };
#define TREE_DIRS (1 + TOP_DIRS + TOP_DIRS * SUB_DIRS + 1)

static char root[256];

static void make(const char *path, int dir)
{
    if (dir) {
        assert_int_equal(mkdir(path, 0755), 0);
    } else {
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        close(fd);
    }
}

/* root/a0..a4/{b0..b2, f0..f4}, root/big/ with BIG_FILES files. */
static void tree_build(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/morsel-walk-oom-XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(root));
    char p[512];
    for (int a = 0; a < TOP_DIRS; a++) {
        snprintf(p, sizeof p, "%s/a%d", root, a);
        make(p, 1);
        for (int b = 0; b < SUB_DIRS; b++) {
            snprintf(p, sizeof p, "%s/a%d/b%d", root, a, b);
            make(p, 1);
        }
        for (int f = 0; f < 5; f++) {
            snprintf(p, sizeof p, "%s/a%d/f%d", root, a, f);
            make(p, 0);
        }
    }
    snprintf(p, sizeof p, "%s/big", root);
    make(p, 1);
    for (int f = 0; f < BIG_FILES; f++) {
        snprintf(p, sizeof p, "%s/big/file-with-a-longish-name-%05d", root, f);
        make(p, 0);
    }
}

static void tree_remove(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

struct seen {
    unsigned flags;
    char *dirs[TREE_DIRS + 1];
    int ndirs;
    int twice; /* a directory visited twice */
};

static void visit(void *arg, const char *dirname, mo_walk_names *names)
{
    struct seen *s = arg;
    if (names->more) return; /* MO_WALK_PIECES: one directory, several pieces */
    for (int i = 0; i < s->ndirs; i++) s->twice |= strcmp(s->dirs[i], dirname) == 0;
    if (s->ndirs <= TREE_DIRS) s->dirs[s->ndirs++] = strdup(dirname); /* libc, not the seam */
}

static int walk_scenario(void *arg)
{
    struct seen s = {.flags = *(unsigned *)arg};
    mo_loop_t *loop;
    int rc = mo_loop_new(&loop, 0);
    if (rc) return rc;
    mo_deferred_t *d = NULL;
    mo_walk_opts opts = {.flags = s.flags};
    rc = mo_walk(loop, root, visit, &s, &opts, &d);
    if (rc && (rc != MO_ENOMEM || d)) return MO_ENOTRECOVERABLE; /* nothing stored on error */
    if (mo_loop_run(loop, MO_RUN_DEFAULT) != 0) return MO_ENOTRECOVERABLE;
    if (!rc) {
        void *v = NULL;
        const mo_failure_t *f = NULL;
        if (mo_deferred_result(d, &v, &f) != 0) return MO_ENOTRECOVERABLE;
        if (f) {
            if (mo_failure_code(f) != MO_ENOMEM || strcmp(mo_failure_origin(f), "mo_walk") != 0)
                return MO_ENOTRECOVERABLE;
            rc = MO_ENOMEM;
            mo_deferred_t *keep = d;
            mo_failure_t *taken = NULL;
            mo_dtor_fn dtor;
            if (mo_deferred_take(keep, &v, &dtor, &taken) != 0) return MO_ENOTRECOVERABLE;
            mo_failure_unref(taken); /* handled */
        } else {
            const mo_walk_totals *t = v;
            if (t->dirs != TREE_DIRS || s.ndirs != TREE_DIRS) return MO_ENOTRECOVERABLE;
        }
        mo_deferred_unref(d);
    }
    mo_loop_free(loop);
    for (int i = 0; i < s.ndirs; i++) free(s.dirs[i]);
    return s.twice || s.ndirs > TREE_DIRS ? MO_ENOTRECOVERABLE : rc;
}

static void sweep(unsigned flags, const char *mode)
{
    mo_test_alloc_install();
    tree_build();
    long n = mo_test_oom_sweep(walk_scenario, &flags, 5);
    printf("walk, %s: %ld allocations, each failed in turn\n", mode, n);
    tree_remove();
}

static void test_sequential_each_allocation_in_turn(void **state)
{
    (void)state;
    sweep(0, "sequential");
}

static void test_pieces_each_allocation_in_turn(void **state)
{
    (void)state;
    sweep(MO_WALK_PIECES, "sequential, in pieces");
}

static void test_parallel_each_allocation_in_turn(void **state)
{
    (void)state;
    sweep(MO_WALK_PARALLEL, "parallel");
}

/* mo_walk_resume() when the cooperator cannot schedule the walk's slice:
 * MO_ENOMEM, and the walk stays paused (no visit) until a resume that
 * succeeds; then it visits the whole tree. */
struct pausing {
    mo_deferred_t *d;
    int visits;
};

static void pause_first(void *arg, const char *dirname, mo_walk_names *names)
{
    (void)dirname;
    (void)names;
    struct pausing *p = arg;
    if (p->visits++ == 0) assert_ok(mo_walk_pause(p->d));
}

static void nothing(mo_loop_t *loop, void *arg)
{
    (void)loop;
    (void)arg;
}

static void test_resume_out_of_memory_stays_paused(void **state)
{
    (void)state;
    mo_test_alloc_install();
    tree_build();
    mo_loop_t *loop;
    assert_ok(mo_loop_new(&loop, 0));
    struct pausing p = {0};
    assert_ok(mo_walk(loop, root, pause_first, &p, NULL, &p.d));
    while (p.visits == 0) assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT));
    for (int i = 0; i < 5; i++) assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT));
    assert_int_equal(p.visits, 1);
    mo_test_alloc_fail_at(1, 1);
    int err;
    while ((err = mo_call_soon(loop, nothing, NULL)) == 0) {
    }
    assert_mo(MO_ENOMEM, err); /* the ready queue is full */
    assert_mo(MO_ENOMEM, mo_walk_resume(p.d));
    mo_test_alloc_fail_at(0, 0);
    for (int i = 0; i < 5; i++) assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT));
    assert_int_equal(p.visits, 1); /* still paused */
    assert_ok(mo_walk_resume(p.d));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(p.visits, TREE_DIRS);
    const mo_failure_t *f = NULL;
    void *v = NULL;
    assert_ok(mo_deferred_result(p.d, &v, &f));
    assert_null(f);
    mo_deferred_unref(p.d);
    mo_loop_free(loop);
    assert_int_equal(mo_test_alloc_live(), 0);
    tree_remove();
}

/* Threads: a parallel walk whose pool cannot start says MO_EAGAIN and
 * starts nothing. */
static int parallel_without_threads(void *arg)
{
    (void)arg;
    mo_test_refuse_threads();
    mo_loop_t *loop;
    if (mo_loop_new(&loop, 0) != 0) return 1;
    mo_deferred_t *d = NULL;
    mo_walk_opts opts = {.flags = MO_WALK_PARALLEL};
    if (mo_walk(loop, "/", visit, NULL, &opts, &d) != MO_EAGAIN || d) return 2;
    if (mo_loop_alive(loop)) return 3;
    mo_loop_free(loop);
    return 0;
}

static void test_parallel_without_threads(void **state)
{
    (void)state;
    assert_int_equal(mo_test_child(parallel_without_threads, NULL), 0);
}

MO_TEST_MAIN(cmocka_unit_test(test_sequential_each_allocation_in_turn),
             cmocka_unit_test(test_pieces_each_allocation_in_turn),
             cmocka_unit_test(test_parallel_each_allocation_in_turn),
             cmocka_unit_test(test_parallel_without_threads),
             cmocka_unit_test(test_resume_out_of_memory_stays_paused))
