/* The installed libevent adapter: a morsel call ends the base's loop. */
#include <morsel/libevent.h>
#include <stdio.h>

static void leave(mo_loop_t *loop, void *arg)
{
    (void)loop;
    event_base_loopbreak(arg);
}

int main(void)
{
    struct event_base *base = event_base_new();
    mo_loop_t *loop;
    if (!base || mo_loop_new(&loop, 0) || mo_event_attach(loop, base) ||
        mo_call_later(loop, MO_MSEC(1), leave, base, NULL))
        return 1;
    event_base_dispatch(base);
    int err = mo_event_detach(loop);
    mo_loop_free(loop);
    event_base_free(base);
    printf("morsel inside libevent: %s\n", err ? "detach failed" : "ok");
    return err ? 1 : 0;
}
