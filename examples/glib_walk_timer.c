/* A GLib program whose 1 ms timer stays on time while morsel walks a
 * directory tree (morsel/glib.h).
 *
 * The GLib side is the default main context with a g_timeout_add(1, ...)
 * heartbeat, iterated until the walk is over. The morsel loop is attached to the same main context
 * as one GSource; mo_walk() reads the tree on morsel's worker pool and visits it here in slices of
 * at most 1 ms, so between two slices GLib runs its timer. At the end the program prints what the
 * walk found and how late the heartbeat ran (each beat is expected 1 ms
 * after the one before).
 *
 *   usage: example_glib_walk_timer [DIR]   (default /usr) */
#include <stdio.h>
#include <stdlib.h>

#include "morsel/glib.h"

struct beats {
    int64_t last;
    int64_t *late;
    size_t count, cap;
};

static gboolean heartbeat(gpointer data)
{
    struct beats *b = data;
    int64_t now = mo_hrtime();
    if (b->last && b->count < b->cap) b->late[b->count++] = now - b->last - MO_MSEC(1);
    b->last = now;
    return G_SOURCE_CONTINUE;
}

static void count_names(void *arg, const char *dirname, mo_walk_names *names)
{
    (void)dirname;
    *(uint64_t *)arg += names->count;
}

static void walk_done(mo_result_t *result, void *arg)
{
    mo_failure_t *f = mo_result_failure(result);
    if (f)
        fprintf(stderr, "walk: %s: %s\n", mo_failure_message(f), mo_strerror(mo_failure_code(f)));
    else
        printf("walked %llu directories\n",
               (unsigned long long)((mo_walk_totals *)mo_result_value(result))->dirs);
    *(int *)arg = f ? 1 : 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The lateness of rank i, in ms (the beats are sorted). */
static double late_ms(const struct beats *b, size_t i)
{
    return (double)b->late[i] / 1e6;
}

int main(int argc, char **argv)
{
    static int64_t late[1000000];
    const char *top = argc > 1 ? argv[1] : "/usr";
    struct beats b = {0, late, 0, sizeof late / sizeof late[0]};
    mo_loop_t *loop;
    mo_deferred_t *walk;
    uint64_t names = 0;
    int status = 1;
    /* Parallel: directories are read on morsel's worker pool, so a cold
     * disk never blocks this thread in getdents(); visits still run here. */
    mo_walk_opts opts = {.flags = MO_WALK_PARALLEL};
    if (mo_loop_new(&loop, 0) != 0 || mo_glib_attach(loop, NULL, G_PRIORITY_DEFAULT) != 0 ||
        mo_walk(loop, top, count_names, &names, &opts, &walk) != 0)
        return 1;
    mo_deferred_add_both(walk, walk_done, &status);
    g_timeout_add(1, heartbeat, &b);
    while (!mo_deferred_fired(walk)) g_main_context_iteration(NULL, TRUE);
    mo_deferred_unref(walk);

    printf("%llu names under %s\n", (unsigned long long)names, top);
    if (b.count) {
        qsort(b.late, b.count, sizeof(int64_t), cmp_i64);
        printf("1 ms heartbeat: %zu beats, late p50 %.3f ms, p99 %.3f ms, max %.3f ms\n", b.count,
               late_ms(&b, b.count / 2), late_ms(&b, b.count * 99 / 100), late_ms(&b, b.count - 1));
    }
    mo_glib_detach(loop);
    mo_loop_free(loop);
    return status;
}
