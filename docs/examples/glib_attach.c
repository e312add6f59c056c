/* morsel inside GLib (morsel/glib.h): a morsel task that is always ready
 * runs in 1 ms slices, and a GLib 2 ms timeout still gets its turns; after
 * five ticks the task ends, and its Deferred quits the GMainLoop. GTK
 * programs attach the same way. */
#include <morsel/glib.h>
#include <stdio.h>

static unsigned long long sum, steps;
static int ticks;

/* A task that is always ready: without the host's turns it would never end. */
static int step(mo_task_t *task, void *arg)
{
    (void)task, (void)arg;
    for (unsigned k = 0; k < 100000; k++) sum += k; /* a piece of work */
    steps++;
    return ticks < 5 ? MO_CONTINUE : MO_DONE;
}

static void done(mo_result_t *r, void *arg)
{
    (void)r;
    g_main_loop_quit(arg);
}

static gboolean tick(gpointer arg)
{
    (void)arg;
    ticks++;
    return G_SOURCE_CONTINUE;
}

int main(void)
{
    mo_loop_t *loop;
    mo_task_t *task;
    GMainLoop *main_loop = g_main_loop_new(NULL, FALSE);
    if (mo_loop_new(&loop, 0) != 0) return 1;
    if (mo_glib_attach(loop, NULL, G_PRIORITY_DEFAULT) != 0) return 1; /* the default context */
    guint timer = g_timeout_add(2, tick, NULL);
    if (mo_cooperate(loop, step, NULL, NULL, &task) != 0) return 1;
    mo_deferred_t *d = mo_task_deferred(task);
    mo_deferred_add_callback(d, done, main_loop);

    g_main_loop_run(main_loop);
    printf("GLib's 2 ms timeout ticked %d times while a morsel task ran %s\n", ticks,
           steps > 1 ? "in many steps" : "in one step");

    g_source_remove(timer);
    mo_deferred_unref(d);
    mo_task_release(task);
    mo_glib_detach(loop); /* the GSource is destroyed at once */
    mo_loop_free(loop);
    g_main_loop_unref(main_loop);
    return 0;
}
