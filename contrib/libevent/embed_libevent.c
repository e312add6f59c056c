/* morsel-libevent: a morsel loop as a read event and a timer of an
 * event_base. Public APIs of both only. */
#include "morsel/libevent.h"

#include <stdlib.h>

struct mo_ev {
    mo_loop_t *loop;
    struct event *read;
    struct event *timer;
};

static void event_detached(mo_loop_t *loop, void *arg);
static const struct mo_embed_ops event_ops = {"libevent", event_detached};

/* Sets the timer to morsel's timeout. Re-adding the timer also takes it off
 * libevent's active list if it had fired in this iteration, so a run from
 * the fd is never followed by a stale run from the timer. event_add() can
 * fail when libevent's timer heap cannot grow (out of memory): then the
 * timer is made active at once instead, which needs no memory, so that the
 * loop runs in the base's next iteration and arms again, rather than
 * sleeping past its deadline (a delayed call would never run). */
static void ev_arm(struct mo_ev *e)
{
    int64_t ns = -1;
    (void)mo_embed_timeout(e->loop, &ns);
    if (ns < 0) {
        event_del(e->timer);
        return;
    }
    int64_t us = (ns + 999) / 1000; /* up: never wake before the deadline */
    struct timeval tv = {.tv_sec = us / 1000000, .tv_usec = us % 1000000};
    if (event_add(e->timer, &tv) != 0) event_active(e->timer, EV_TIMEOUT, 0);
}

static void ev_run(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mo_ev *e = arg;
    (void)mo_embed_run(e->loop);
    ev_arm(e);
}

static void ev_free(struct mo_ev *e)
{
    if (e->read) event_free(e->read);
    if (e->timer) event_free(e->timer);
    free(e);
}

/* The morsel loop let go (mo_event_detach, mo_loop_close, mo_loop_free). */
static void event_detached(mo_loop_t *loop, void *arg)
{
    (void)loop;
    ev_free(arg);
}

int mo_event_attach(mo_loop_t *loop, struct event_base *base)
{
    if (!loop || !base) return MO_EINVAL;
    struct mo_ev *e = calloc(1, sizeof(*e));
    if (!e) return MO_ENOMEM;
    e->loop = loop;
    int err = mo_embed_attach(loop, &event_ops, e);
    if (err) {
        free(e);
        return err;
    }
    e->read = event_new(base, mo_embed_fd(loop), EV_READ | EV_PERSIST, ev_run, e);
    e->timer = evtimer_new(base, ev_run, e);
    if (!e->read || !e->timer || event_add(e->read, NULL) != 0) {
        mo_embed_detach(loop, &event_ops); /* frees e */
        return MO_ENOMEM;
    }
    ev_arm(e);
    return 0;
}

int mo_event_detach(mo_loop_t *loop)
{
    return mo_embed_detach(loop, &event_ops);
}
