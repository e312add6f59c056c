/* Deferreds: bytes per Deferred, ns per create + add callback pair + fire +
 * release, against GLib's closest primitive (a GTask created with a
 * callback and returned: an approximate peer, since GTask always delivers
 * through its main context), and the time to fire million-link chains.
 *
 * Usage: bench_deferred [reps]   (default 15 interleaved repetitions) */
#include "bench_util.h"
#include "deferred/deferred_int.h"

#include <dlfcn.h>
#include <gio/gio.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#define BATCH 100000
#define DEEP  1000000

static void sink_cb(mo_result_t *r, void *arg)
{
    (void)r;
    ++*(long *)arg;
}

/* morsel, synchronous: create, one pair, fire, release. */
static double run_morsel_sync(void *arg)
{
    mo_loop_t *loop = arg;
    long hits = 0;
    int64_t t0 = bench_now();
    for (int i = 0; i < BATCH; i++) {
        mo_deferred_t *d;
        if (mo_deferred_new(loop, NULL, NULL, &d)) abort();
        mo_deferred_add_callbacks(d, sink_cb, sink_cb, &hits);
        mo_deferred_callback(d, &hits, NULL);
        mo_deferred_unref(d);
    }
    int64_t t1 = bench_now();
    if (hits != BATCH) abort();
    return (double)(t1 - t0) / BATCH;
}

/* morsel, delivered through the loop like GTask: fired from mo_call_soon. */
static void fire_soon(mo_loop_t *loop, void *arg)
{
    (void)loop;
    mo_deferred_callback(arg, NULL, NULL);
    mo_deferred_unref(arg);
}

static double run_morsel_loop(void *arg)
{
    mo_loop_t *loop = arg;
    long hits = 0;
    int64_t t0 = bench_now();
    for (int i = 0; i < BATCH; i++) {
        mo_deferred_t *d;
        if (mo_deferred_new(loop, NULL, NULL, &d)) abort();
        mo_deferred_add_callbacks(d, sink_cb, sink_cb, &hits);
        if (mo_call_soon(loop, fire_soon, d)) abort();
    }
    mo_loop_run(loop, MO_RUN_DEFAULT);
    int64_t t1 = bench_now();
    if (hits != BATCH) abort();
    return (double)(t1 - t0) / BATCH;
}

/* GLib: g_task_new with a callback, g_task_return_pointer, release; the
 * callback runs from the main context's next iteration. GTask lives in
 * libgio, which the bench build does not link: it is loaded here. */
static struct {
    GTask *(*task_new)(gpointer, GCancellable *, GAsyncReadyCallback, gpointer);
    void (*return_pointer)(GTask *, gpointer, GDestroyNotify);
    gpointer (*propagate_pointer)(GTask *, GError **);
    void (*object_unref)(gpointer);
} gio;

static int load_gio(void)
{
    void *h = dlopen("libgio-2.0.so.0", RTLD_NOW);
    if (!h) return -1;
    *(void **)&gio.task_new = dlsym(h, "g_task_new");
    *(void **)&gio.return_pointer = dlsym(h, "g_task_return_pointer");
    *(void **)&gio.propagate_pointer = dlsym(h, "g_task_propagate_pointer");
    *(void **)&gio.object_unref = dlsym(h, "g_object_unref");
    return gio.task_new && gio.return_pointer && gio.propagate_pointer && gio.object_unref ? 0 : -1;
}

static void gtask_cb(GObject *src, GAsyncResult *res, gpointer data)
{
    (void)src;
    gio.propagate_pointer((GTask *)res, NULL);
    ++*(long *)data;
}

static double run_gtask(void *arg)
{
    GMainContext *ctx = arg;
    long hits = 0;
    int64_t t0 = bench_now();
    for (int i = 0; i < BATCH; i++) {
        GTask *task = gio.task_new(NULL, NULL, gtask_cb, &hits);
        gio.return_pointer(task, &hits, NULL);
        gio.object_unref(task);
    }
    while (hits < BATCH) g_main_context_iteration(ctx, FALSE);
    int64_t t1 = bench_now();
    return (double)(t1 - t0) / BATCH;
}

/* ---- million-link chains ---- */

static void wait_cb(mo_result_t *r, void *arg)
{
    mo_result_wait(r, mo_deferred_ref(arg));
}

static double chain_ms(mo_loop_t *loop, int waiting)
{
    mo_deferred_t **d = malloc((DEEP + 1) * sizeof(*d));
    long hits = 0;
    for (int i = 0; i <= DEEP; i++) mo_deferred_new(loop, NULL, NULL, &d[i]);
    for (int i = 0; i < DEEP; i++) {
        if (waiting)
            mo_deferred_add_callback(d[i], wait_cb, d[i + 1]);
        else
            mo_deferred_chain(d[i], d[i + 1]);
    }
    mo_deferred_add_callback(waiting ? d[0] : d[DEEP], sink_cb, &hits);
    int64_t t0 = bench_now();
    if (waiting) {
        for (int i = 0; i < DEEP; i++) mo_deferred_callback(d[i], NULL, NULL);
        mo_deferred_callback(d[DEEP], NULL, NULL);
    } else {
        mo_deferred_callback(d[0], NULL, NULL);
    }
    int64_t t1 = bench_now();
    if (hits != 1) abort();
    for (int i = 0; i <= DEEP; i++) mo_deferred_unref(d[i]);
    free(d);
    return (double)(t1 - t0) / 1e6;
}

static double run_chain_wait(void *arg)
{
    return chain_ms(arg, 1);
}

static double run_chain_link(void *arg)
{
    return chain_ms(arg, 0);
}

int main(int argc, char **argv)
{
    unsigned reps = argc > 1 ? (unsigned)atoi(argv[1]) : 15;
    mo_loop_t *loop;
    if (mo_loop_new(&loop, 0) || load_gio()) return 1;
    mo_deferred_t *d;
    mo_deferred_new(loop, NULL, NULL, &d);
    printf("## Deferred size\nsizeof(struct mo_deferred) %zu bytes, malloc_usable_size %zu bytes,"
           " %d callback pairs inline, 1 allocation per Deferred\n\n",
           sizeof(struct mo_deferred), malloc_usable_size(d), MO__INLINE_LINKS);
    mo_deferred_unref(d);

    GMainContext *ctx = g_main_context_default();
    struct bench_contender c[] = {
        {.name = "morsel sync", .run = run_morsel_sync, .arg = loop},
        {.name = "morsel via mo_call_soon", .run = run_morsel_loop, .arg = loop},
        {.name = "glib GTask (approx. peer)", .run = run_gtask, .arg = ctx},
    };
    bench_compare("create + add pair + fire + release", "ns/Deferred", c, 3, reps);

    struct bench_contender chains[] = {
        {.name = "wait: 1M callbacks waiting", .run = run_chain_wait, .arg = loop},
        {.name = "chain: 1M chained", .run = run_chain_link, .arg = loop},
    };
    printf("\n");
    bench_compare("fire a million-link chain", "ms/chain", chains, 2, reps < 5 ? reps : 5);
    mo_loop_free(loop);
    return 0;
}
