/* morsel-glib: a morsel loop inside a GLib main context (the tests of
 * embed_host.h). MO_TEST_LABEL_THREADS */
#include "morsel/glib.h"

#include "embed_host.h"

struct glib_host {
    GMainContext *ctx;
    GSource *timer;
    void (*fn)(void *arg);
    void *arg;
};

static void *gh_create(void)
{
    struct glib_host *h = g_new0(struct glib_host, 1);
    h->ctx = g_main_context_new();
    return h;
}

static void gh_destroy(void *host)
{
    struct glib_host *h = host;
    while (g_main_context_iteration(h->ctx, FALSE)) {
    }
    g_main_context_unref(h->ctx);
    g_free(h);
}

static int gh_attach(mo_loop_t *loop, void *host)
{
    return mo_glib_attach(loop, ((struct glib_host *)host)->ctx, G_PRIORITY_DEFAULT);
}

static void gh_iterate(void *host, bool block)
{
    g_main_context_iteration(((struct glib_host *)host)->ctx, block);
}

static gboolean gh_tick(gpointer data)
{
    struct glib_host *h = data;
    h->fn(h->arg);
    return G_SOURCE_CONTINUE;
}

static void gh_timer_start(void *host, int ms, void (*fn)(void *arg), void *arg)
{
    struct glib_host *h = host;
    h->fn = fn;
    h->arg = arg;
    h->timer = g_timeout_source_new((guint)ms);
    g_source_set_callback(h->timer, gh_tick, h, NULL);
    g_source_attach(h->timer, h->ctx);
}

static void gh_timer_stop(void *host)
{
    struct glib_host *h = host;
    g_source_destroy(h->timer);
    g_source_unref(h->timer);
    h->timer = NULL;
}

static const struct host_ops host_ops = {
    gh_create,      gh_destroy,    gh_attach, mo_glib_detach, gh_iterate,
    gh_timer_start, gh_timer_stop, false,     NULL,           NULL};

/* The default context (NULL) works as well. */
static void test_glib_default_context(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    int ran = 0;
    assert_ok(mo_glib_attach(loop, NULL, G_PRIORITY_DEFAULT));
    assert_ok(mo_call_later(loop, MO_MSEC(2), eh_count, &ran, NULL));
    while (!ran) g_main_context_iteration(NULL, TRUE);
    assert_ok(mo_glib_detach(loop));
    mo_loop_free(loop);
}

MO_TEST_MAIN(EMBED_HOST_TESTS, cmocka_unit_test(test_glib_default_context))
