/* Stress: bounded, but far beyond the unit tests' sizes. Labelled stress
 * (MO_TEST_LABEL_STRESS), so the everyday suites leave them out;
 * scripts/test runs them once, in the gcc build. Alone:
 *   ctest --test-dir build -L stress --output-on-failure
 * Each prints its figures (time, memory per call) on stdout.
 * MO_TEST_LABEL_STRESS MO_TEST_LABEL_THREADS */
#include "test.h"

#include "walk_tree.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- 10,000,000 pending delayed calls ---- */

#define NCALLS 10000000u

/* Deadlines over one second of virtual time in 1 us steps, scattered, ten
 * calls to a deadline on average: the same-deadline calls must keep the
 * order they were scheduled in. */
static int64_t deadline_of(uint32_t i)
{
    return (int64_t)((i * UINT64_C(2654435761)) % 1000000u) * 1000 + 1;
}

struct many {
    int64_t last_deadline;
    uint32_t last_i;
    uint32_t ran;
    uint32_t bad; /* cancelled ones that ran, or out of order */
};

static struct many *the_many;

static void many_cb(mo_loop_t *loop, void *arg)
{
    struct many *m = the_many;
    uint32_t i = (uint32_t)(uintptr_t)arg;
    int64_t d = deadline_of(i);
    if (i % 2 == 0) m->bad++; /* cancelled */
    if (d > mo_loop_now(loop)) m->bad++;
    if (m->ran && (d < m->last_deadline || (d == m->last_deadline && i <= m->last_i))) m->bad++;
    m->last_deadline = d;
    m->last_i = i;
    m->ran++;
}

/* Bytes the C library's malloc has handed out (heap and mmapped chunks). */
static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static void test_ten_million_delayed_calls(void **state)
{
    (void)state;
    struct many m = {0};
    the_many = &m;
    mo_call_id *ids = malloc(NCALLS * sizeof(*ids));
    assert_non_null(ids);
    size_t before = heap_in_use();
    int64_t t0 = mo_hrtime();
    mo_loop_t *loop = mo_test_virtual_loop();
    for (uint32_t i = 0; i < NCALLS; i++)
        assert_ok(mo_call_at(loop, deadline_of(i), many_cb, (void *)(uintptr_t)i, &ids[i]));
    int64_t t1 = mo_hrtime();
    size_t used = heap_in_use() - before;
    for (uint32_t i = 0; i < NCALLS; i += 2) assert_ok(mo_call_cancel(loop, ids[i]));
    int64_t t2 = mo_hrtime();
    /* Time moves in 100 steps: each iteration runs what came due. */
    for (int step = 1; step <= 100; step++) {
        assert_ok(mo_loop_advance(loop, MO_MSEC(10)));
        assert_int_equal(m.bad, 0);
    }
    int64_t t3 = mo_hrtime();
    assert_int_equal(m.ran, NCALLS / 2);
    assert_int_equal(mo_loop_alive(loop), 0);
    assert_mo(MO_EALREADY, mo_call_cancel(loop, ids[1])); /* ran */
    assert_mo(MO_EALREADY, mo_call_cancel(loop, ids[0])); /* cancelled */
    mo_loop_free(loop);
    free(ids);
    printf("stress: %u delayed calls: %.0f bytes of memory per pending call; "
           "schedule %.0f ns, cancel %.0f ns, run %.0f ns per call\n",
           NCALLS, (double)used / NCALLS, (double)(t1 - t0) / NCALLS,
           (double)(t2 - t1) / (NCALLS / 2.0), (double)(t3 - t2) / (NCALLS / 2.0));
}

/* ---- 8 producer threads x 1,000,000 calls, with timers and a task ---- */

#define PRODUCERS    8
#define PER_PRODUCER 1000000u

struct flood {
    mo_loop_t *loop;
    uint32_t next[PRODUCERS];
    uint64_t received;
    uint32_t disorder;
    uint64_t ticks, steps;
    int64_t last_tick, worst_gap;
    mo_call_id tick_id;
    mo_task_t *task;
    atomic_int refused;
};

static struct flood *the_flood;

static void flood_cb(mo_loop_t *loop, void *arg)
{
    struct flood *f = the_flood;
    uintptr_t v = (uintptr_t)arg;
    uint32_t producer = (uint32_t)(v >> 24), seq = (uint32_t)(v & 0xffffff);
    if (producer >= PRODUCERS || seq != f->next[producer]) f->disorder++;
    if (producer < PRODUCERS) f->next[producer] = seq + 1;
    if (++f->received == (uint64_t)PRODUCERS * PER_PRODUCER) {
        /* All in: the timer and the task stop, the hold goes. */
        assert_ok(mo_call_cancel(loop, f->tick_id));
        assert_ok(mo_task_stop(f->task));
        assert_ok(mo_loop_release(loop));
    }
}

static void *flood_produce(void *arg)
{
    struct flood *f = the_flood;
    uintptr_t id = (uintptr_t)arg;
    for (uint32_t i = 0; i < PER_PRODUCER; i++)
        if (mo_call_from_thread(f->loop, flood_cb, (void *)(id << 24 | i)) != 0)
            atomic_fetch_add(&f->refused, 1);
    return NULL;
}

static void tick_cb(mo_loop_t *loop, void *arg)
{
    struct flood *f = arg;
    int64_t now = mo_hrtime();
    if (f->ticks && now - f->last_tick > f->worst_gap) f->worst_gap = now - f->last_tick;
    f->last_tick = now;
    f->ticks++;
    assert_ok(mo_call_later(loop, MO_USEC(200), tick_cb, f, &f->tick_id));
}

static int flood_step(mo_task_t *task, void *arg)
{
    (void)task;
    struct flood *f = arg;
    f->steps++;
    return MO_CONTINUE;
}

static void test_eight_producers_million_calls_each(void **state)
{
    (void)state;
    struct flood f = {.loop = mo_test_loop()};
    the_flood = &f;
    assert_ok(mo_call_later(f.loop, MO_USEC(200), tick_cb, &f, &f.tick_id));
    assert_ok(mo_cooperate(f.loop, flood_step, &f, NULL, &f.task));
    assert_ok(mo_loop_hold(f.loop));
    pthread_t th[PRODUCERS];
    int64_t t0 = mo_hrtime();
    for (uintptr_t p = 0; p < PRODUCERS; p++)
        assert_int_equal(pthread_create(&th[p], NULL, flood_produce, (void *)p), 0);
    assert_ok(mo_loop_run(f.loop, MO_RUN_DEFAULT));
    int64_t t1 = mo_hrtime();
    for (int p = 0; p < PRODUCERS; p++) pthread_join(th[p], NULL);
    assert_int_equal(atomic_load(&f.refused), 0);
    assert_int_equal(f.received, (uint64_t)PRODUCERS * PER_PRODUCER);
    assert_int_equal(f.disorder, 0);
    for (int p = 0; p < PRODUCERS; p++) assert_int_equal(f.next[p], PER_PRODUCER);
    assert_true(f.ticks > 0 && f.steps > 0); /* they ran meanwhile */
    assert_int_equal(mo_task_state(f.task), MO_TASK_DONE);
    mo_task_release(f.task);
    mo_loop_free(f.loop);
    printf("stress: %d producers x %u calls in %.2f s (%.0f ns per call); meanwhile %llu ticks "
           "of a 200 us timer (longest gap %.1f ms), %llu task steps\n",
           PRODUCERS, PER_PRODUCER, (double)(t1 - t0) / 1e9,
           (double)(t1 - t0) / ((double)PRODUCERS * PER_PRODUCER), (unsigned long long)f.ticks,
           (double)f.worst_gap / 1e6, (unsigned long long)f.steps);
}

/* ---- a walk while another process renames and deletes the tree ---- */

#define TOP_DIRS 48
#define SUB_DIRS 12
#define FILES    16

static void make_tree(const char *root)
{
    char rel[256];
    for (int a = 0; a < TOP_DIRS; a++) {
        snprintf(rel, sizeof rel, "d%02d", a);
        tree_dir(root, rel);
        for (int b = 0; b < SUB_DIRS; b++) {
            snprintf(rel, sizeof rel, "d%02d/s%02d", a, b);
            tree_dir(root, rel);
            for (int c = 0; c < FILES; c++) {
                snprintf(rel, sizeof rel, "d%02d/s%02d/f%02d", a, b, c);
                tree_file(root, rel);
            }
        }
    }
}

/* The other process: renames directories back and forth, moves subtrees
 * between parents, deletes and recreates files, until killed. */
static _Noreturn void mutate(const char *root, unsigned seed)
{
    char p[4200], q[4200];
    for (;;) {
        seed = seed * 1103515245u + 12345u;
        unsigned a = (seed >> 8) % TOP_DIRS, b = (seed >> 16) % SUB_DIRS, c = (seed >> 4) % FILES;
        unsigned other = (seed >> 20) % TOP_DIRS;
        switch ((seed >> 28) % 4) {
        case 0: /* rename a top directory away and back */
            snprintf(p, sizeof p, "%s/d%02u", root, a);
            snprintf(q, sizeof q, "%s/x%02u", root, a);
            if (rename(p, q) == 0) rename(q, p);
            break;
        case 1: /* move a subtree to another parent and back */
            snprintf(p, sizeof p, "%s/d%02u/s%02u", root, a, b);
            snprintf(q, sizeof q, "%s/d%02u/m%02u-%02u", root, other, a, b);
            if (rename(p, q) == 0) rename(q, p);
            break;
        case 2: /* delete a file, make it again */
            snprintf(p, sizeof p, "%s/d%02u/s%02u/f%02u", root, a, b, c);
            if (unlink(p) == 0) {
                int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
                if (fd >= 0) close(fd);
            }
            break;
        default: /* replace a directory by a file for a moment */
            snprintf(p, sizeof p, "%s/d%02u/e%02u", root, a, b);
            if (mkdir(p, 0755) == 0) {
                rmdir(p);
                int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
                if (fd >= 0) close(fd);
                unlink(p);
            }
            break;
        }
    }
}

/* Paths seen, in an open-addressing set of their hashes' slots. */
struct seen_paths {
    char **slot;
    size_t cap, count;
    size_t dups;
    size_t errors;
    size_t bad_errors;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

static void seen_add(struct seen_paths *s, const char *path)
{
    if (s->count * 2 >= s->cap) {
        struct seen_paths bigger = {.cap = s->cap ? s->cap * 2 : 4096};
        bigger.slot = calloc(bigger.cap, sizeof(char *));
        assert_non_null(bigger.slot);
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->slot[i]) continue;
            size_t j = hash_str(s->slot[i]) & (bigger.cap - 1);
            while (bigger.slot[j]) j = (j + 1) & (bigger.cap - 1);
            bigger.slot[j] = s->slot[i];
        }
        free(s->slot);
        s->slot = bigger.slot;
        s->cap = bigger.cap;
    }
    size_t j = hash_str(path) & (s->cap - 1);
    for (; s->slot[j]; j = (j + 1) & (s->cap - 1)) {
        if (strcmp(s->slot[j], path) == 0) {
            s->dups++;
            return;
        }
    }
    s->slot[j] = strdup(path);
    assert_non_null(s->slot[j]);
    s->count++;
}

static void seen_free(struct seen_paths *s)
{
    for (size_t i = 0; i < s->cap; i++) free(s->slot[i]);
    free(s->slot);
}

static void churn_visit(void *arg, const char *dirname, mo_walk_names *names)
{
    struct seen_paths *s = arg;
    char path[4200];
    for (size_t i = 0; i < names->count; i++) {
        snprintf(path, sizeof path, "%s/%s", dirname, names->names[i].name);
        seen_add(s, path);
    }
}

static void churn_error(void *arg, const char *path, int err)
{
    struct seen_paths *s = arg;
    s->errors++;
    /* What a tree changing underneath can cause, and a path. */
    if (!path || !*path || (err != MO_ENOENT && err != MO_ENOTDIR)) s->bad_errors++;
}

static void churn_done(mo_result_t *result, void *arg)
{
    struct seen_paths *s = arg;
    mo_walk_totals *tot = mo_result_value(result);
    assert_null(mo_result_failure(result));
    assert_non_null(tot);
    assert_int_equal(tot->errors, s->errors);
}

static void test_walk_while_tree_changes(void **state)
{
    (void)state;
    char root[256];
    if (access("/dev/shm", W_OK) == 0) setenv("TMPDIR", "/dev/shm", 1);
    tree_tmpdir(root, sizeof root);
    make_tree(root);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) mutate(root, (unsigned)getpid());
    size_t errors = 0, paths = 0;
    int64_t t0 = mo_hrtime();
    /* Walks, sequential and parallel, for about two seconds each. */
    for (int parallel = 0; parallel <= 1; parallel++) {
        int64_t start = mo_hrtime();
        for (int round = 0; round == 0 || mo_hrtime() - start < MO_SEC(2); round++) {
            struct seen_paths s = {0};
            mo_loop_t *loop = mo_test_loop();
            mo_walk_opts opts = {.flags = parallel ? MO_WALK_PARALLEL : 0, .on_error = churn_error};
            mo_deferred_t *d;
            assert_ok(mo_walk(loop, root, churn_visit, &s, &opts, &d));
            assert_ok(mo_deferred_add_both(d, churn_done, &s));
            assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
            assert_int_equal(mo_deferred_fired(d), 1);
            mo_deferred_unref(d);
            mo_loop_free(loop);
            if (s.dups) fail_msg("%zu paths printed twice", s.dups);
            assert_int_equal(s.bad_errors, 0);
            errors += s.errors;
            paths += s.count;
            seen_free(&s);
        }
    }
    int64_t t1 = mo_hrtime();
    kill(child, SIGKILL);
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    tree_rm(root);
    printf("stress: walks under renames and deletes for %.1f s: %zu paths, %zu errors "
           "reported, none printed twice\n",
           (double)(t1 - t0) / 1e9, paths, errors);
}

MO_TEST_MAIN(cmocka_unit_test(test_ten_million_delayed_calls),
             cmocka_unit_test(test_eight_producers_million_calls_each),
             cmocka_unit_test(test_walk_while_tree_changes))
