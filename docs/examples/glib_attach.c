/* morsel inside GLib (morsel/glib.h): a GLib 2 ms timeout keeps its pace
 * while a morsel task sums in 1 ms slices; the task's Deferred quits the
 * GMainLoop. GTK programs attach the same way. */
#include <morsel/glib.h>
#include <stdio.h>

static unsigned long long i, sum;
static int ticks;

static int step(mo_task_t *task, void *arg)
{
    (void)task, (void)arg;
    for (unsigned long long end = i + 100000; i < end && i < 30000000; i++) sum += i;
    return i < 30000000 ? MO_CONTINUE : MO_DONE;
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
    printf("sum = %llu; GLib's timeout ran while morsel worked: %s\n", sum,
           ticks > 0 ? "yes" : "no");

    g_source_remove(timer);
    mo_deferred_unref(d);
    mo_task_release(task);
    mo_glib_detach(loop); /* the GSource is destroyed at once */
    mo_loop_free(loop);
    g_main_loop_unref(main_loop);
    return 0;
}
