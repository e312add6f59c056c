/* morsel inside libuv (morsel/uv.h): a morsel task that is always ready
 * runs in 1 ms slices, and libuv's 2 ms timer still gets its turns; after
 * five ticks the task ends, and its Deferred stops libuv's loop. */
#include <morsel/uv.h>
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
    uv_stop(arg); /* a morsel callback may stop the host */
}

static void tick(uv_timer_t *t)
{
    (void)t;
    ticks++;
}

int main(void)
{
    uv_loop_t uv;
    uv_timer_t timer;
    mo_loop_t *loop;
    mo_task_t *task;
    if (uv_loop_init(&uv) != 0 || mo_loop_new(&loop, 0) != 0) return 1;
    if (mo_uv_attach(loop, &uv) != 0) return 1; /* mo_loop_run() would now say MO_EBUSY */
    uv_timer_init(&uv, &timer);
    uv_timer_start(&timer, tick, 2, 2);
    if (mo_cooperate(loop, step, NULL, NULL, &task) != 0) return 1;
    mo_deferred_t *d = mo_task_deferred(task);
    mo_deferred_add_callback(d, done, &uv);

    uv_run(&uv, UV_RUN_DEFAULT); /* runs until done() stops it */
    printf("libuv's 2 ms timer ticked %d times while a morsel task ran %s\n", ticks,
           steps > 1 ? "in many steps" : "in one step");

    mo_deferred_unref(d);
    mo_task_release(task);
    mo_uv_detach(loop); /* closes the adapter's handles in libuv's next iteration */
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(&uv, UV_RUN_DEFAULT); /* lets the close callbacks run */
    mo_loop_free(loop);
    return uv_loop_close(&uv) == 0 ? 0 : 1;
}
