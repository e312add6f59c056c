/* morsel-glib: a morsel loop as a GSource. Public APIs of both only. */
#include "morsel/glib.h"

struct mo_gsource {
    GSource source;
    mo_loop_t *loop;
    gpointer tag; /* of the loop's fd, from g_source_add_unix_fd() */
};

static void glib_detached(mo_loop_t *loop, void *arg);
static const struct mo_embed_ops glib_ops = {"glib", glib_detached};

static gboolean gs_prepare(GSource *source, gint *timeout)
{
    struct mo_gsource *s = (struct mo_gsource *)source;
    int ms = -1;
    (void)mo_embed_timeout_ms(s->loop, &ms);
    *timeout = ms;
    return ms == 0;
}

static gboolean gs_check(GSource *source)
{
    struct mo_gsource *s = (struct mo_gsource *)source;
    if (g_source_query_unix_fd(source, s->tag) & G_IO_IN) return TRUE;
    int64_t ns = -1;
    return mo_embed_timeout(s->loop, &ns) == 0 && ns == 0;
}

static gboolean gs_dispatch(GSource *source, GSourceFunc callback, gpointer data)
{
    (void)callback;
    (void)data;
    (void)mo_embed_run(((struct mo_gsource *)source)->loop);
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs gs_funcs = {gs_prepare, gs_check, gs_dispatch, NULL, NULL, NULL};

/* The morsel loop let go (mo_glib_detach, mo_loop_close, mo_loop_free). */
static void glib_detached(mo_loop_t *loop, void *arg)
{
    (void)loop;
    GSource *source = arg;
    g_source_destroy(source);
    g_source_unref(source);
}

int mo_glib_attach(mo_loop_t *loop, GMainContext *context, int priority)
{
    if (!loop) return MO_EINVAL;
    GSource *source = g_source_new(&gs_funcs, sizeof(struct mo_gsource));
    struct mo_gsource *s = (struct mo_gsource *)source;
    s->loop = loop;
    int err = mo_embed_attach(loop, &glib_ops, source);
    if (err) {
        g_source_unref(source);
        return err;
    }
    s->tag = g_source_add_unix_fd(source, mo_embed_fd(loop), G_IO_IN);
    g_source_set_name(source, "morsel");
    g_source_set_priority(source, priority);
    g_source_attach(source, context);
    return 0;
}

int mo_glib_detach(mo_loop_t *loop)
{
    return mo_embed_detach(loop, &glib_ops);
}
