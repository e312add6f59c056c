/* The installed libuv adapter: a morsel call stops the libuv loop. */
#include <morsel/uv.h>
#include <stdio.h>

static void stop(mo_loop_t *loop, void *arg)
{
    (void)loop;
    uv_stop(arg);
}

int main(void)
{
    uv_loop_t uv;
    mo_loop_t *loop;
    if (uv_loop_init(&uv) || mo_loop_new(&loop, 0) || mo_uv_attach(loop, &uv) ||
        mo_call_later(loop, MO_MSEC(1), stop, &uv, NULL))
        return 1;
    uv_run(&uv, UV_RUN_DEFAULT);
    if (mo_uv_detach(loop)) return 1;
    uv_run(&uv, UV_RUN_DEFAULT); /* the adapter's handles close */
    int err = uv_loop_close(&uv);
    mo_loop_free(loop);
    printf("morsel inside libuv: %s\n", err ? "handles left open" : "ok");
    return err ? 1 : 0;
}
