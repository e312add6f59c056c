/* The installed GLib adapter: a morsel call quits the GLib main loop. */
#include <morsel/glib.h>
#include <stdio.h>

static void quit(mo_loop_t *loop, void *arg)
{
    (void)loop;
    g_main_loop_quit(arg);
}

int main(void)
{
    GMainLoop *main_loop = g_main_loop_new(NULL, FALSE);
    mo_loop_t *loop;
    if (mo_loop_new(&loop, 0) || mo_glib_attach(loop, NULL, G_PRIORITY_DEFAULT) ||
        mo_call_later(loop, MO_MSEC(1), quit, main_loop, NULL))
        return 1;
    g_main_loop_run(main_loop);
    int err = mo_glib_detach(loop);
    mo_loop_free(loop);
    g_main_loop_unref(main_loop);
    printf("morsel inside GLib: %s\n", err ? "detach failed" : "ok");
    return err ? 1 : 0;
}
