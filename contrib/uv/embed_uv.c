/* morsel-uv: a morsel loop inside a libuv loop (mo_uv_attach), and a libuv
 * loop inside a morsel loop (mo_uv_drive). Public APIs of both only.
 *
 * Inside libuv, one libuv iteration goes: timers, idle, prepare (we set
 * the timer, or start the idle handle so that the poll does not sleep,
 * from morsel's timeout), poll (libuv's I/O callbacks; ours only notes
 * that morsel's fd is readable), check (we run morsel once if it is due).
 * So libuv's own I/O and morsel's runs alternate, one each per iteration.
 */
#include "morsel/uv.h"

#include <stdbool.h>
#include <stdlib.h>

/* ---- morsel inside libuv ---- */

struct mo_uv {
    mo_loop_t *loop;
    uv_poll_t poll;
    uv_timer_t timer;
    uv_idle_t idle;
    uv_prepare_t prepare;
    uv_check_t check;
    unsigned open; /* handles initialised and not closed yet */
    bool readable;
};

static void uv_detached(mo_loop_t *loop, void *arg);
static const struct mo_embed_ops uv_ops = {"libuv", uv_detached};

static void on_timer(uv_timer_t *timer)
{
    (void)timer; /* the check that follows sees that morsel is due */
}

static void on_idle(uv_idle_t *idle)
{
    (void)idle; /* only there so that libuv polls with timeout 0 */
}

static void on_poll(uv_poll_t *poll, int status, int events)
{
    (void)status; /* an error on the fd: run, and let morsel see it */
    (void)events;
    ((struct mo_uv *)poll->data)->readable = true;
}

/* Right before libuv polls: sleep no longer than morsel allows. */
static void on_prepare(uv_prepare_t *prepare)
{
    struct mo_uv *u = prepare->data;
    int ms = -1;
    (void)mo_embed_timeout_ms(u->loop, &ms);
    if (ms == 0) {
        uv_timer_stop(&u->timer);
        uv_idle_start(&u->idle, on_idle);
    } else {
        uv_idle_stop(&u->idle);
        if (ms > 0)
            uv_timer_start(&u->timer, on_timer, (uint64_t)ms, 0);
        else
            uv_timer_stop(&u->timer);
    }
}

/* After libuv's I/O: one morsel run if it is due. */
static void on_check(uv_check_t *check)
{
    struct mo_uv *u = check->data;
    int64_t ns = -1;
    if (!u->readable && (mo_embed_timeout(u->loop, &ns) != 0 || ns != 0)) return;
    u->readable = false;
    (void)mo_embed_run(u->loop);
}

static void on_closed(uv_handle_t *handle)
{
    struct mo_uv *u = handle->data;
    if (--u->open == 0) free(u);
}

/* The morsel loop let go (mo_uv_detach, mo_loop_close, mo_loop_free). */
static void uv_detached(mo_loop_t *loop, void *arg)
{
    (void)loop;
    struct mo_uv *u = arg;
    if (!u->open) {
        free(u);
        return;
    }
    uv_handle_t *handles[] = {(uv_handle_t *)&u->poll, (uv_handle_t *)&u->timer,
                              (uv_handle_t *)&u->idle, (uv_handle_t *)&u->prepare,
                              (uv_handle_t *)&u->check};
    for (unsigned i = 0; i < sizeof(handles) / sizeof(handles[0]); i++)
        if (handles[i]->data == u) uv_close(handles[i], on_closed);
}

/* Initialises the handles; each one initialised is counted in `open` and
 * marked by its data pointer, so that a failure closes exactly those. */
static int uv_setup(struct mo_uv *u, uv_loop_t *uv)
{
    int err = uv_poll_init(uv, &u->poll, mo_embed_fd(u->loop));
    if (err) return err;
    u->poll.data = u;
    u->open++;
    uv_timer_init(uv, &u->timer);
    uv_idle_init(uv, &u->idle);
    uv_prepare_init(uv, &u->prepare);
    uv_check_init(uv, &u->check);
    u->timer.data = u->idle.data = u->prepare.data = u->check.data = u;
    u->open += 4;
    uv_poll_start(&u->poll, UV_READABLE, on_poll);
    uv_prepare_start(&u->prepare, on_prepare);
    uv_check_start(&u->check, on_check);
    /* The poll handle keeps libuv running while the loop is attached. It
     * could be referenced only while the morsel loop has work, but work
     * queued outside libuv's callbacks (before uv_run(), from another
     * thread) would then find uv_run() returning at once, before any of
     * our callbacks could notice it. */
    uv_unref((uv_handle_t *)&u->timer);
    uv_unref((uv_handle_t *)&u->idle);
    uv_unref((uv_handle_t *)&u->prepare);
    uv_unref((uv_handle_t *)&u->check);
    return 0;
}

int mo_uv_attach(mo_loop_t *loop, uv_loop_t *uv)
{
    if (!loop || !uv) return MO_EINVAL;
    struct mo_uv *u = calloc(1, sizeof(*u));
    if (!u) return MO_ENOMEM;
    u->loop = loop;
    int err = mo_embed_attach(loop, &uv_ops, u);
    if (err) {
        free(u);
        return err;
    }
    err = uv_setup(u, uv);
    if (err) mo_embed_detach(loop, &uv_ops); /* closes what was set up */
    return err;
}

int mo_uv_detach(mo_loop_t *loop)
{
    return mo_embed_detach(loop, &uv_ops);
}

/* ---- libuv inside morsel ---- */

struct mo_uv_driver {
    mo_loop_t *loop;
    uv_loop_t *uv;
    mo_io_id io;     /* 0 while not watching libuv's fd */
    mo_call_id call; /* the next run of libuv, 0 if none */
    int64_t call_at; /* its deadline */
    bool running;    /* inside uv_run() */
};

static void drive_run(mo_loop_t *loop, void *arg);

/* Whether libuv has handles started since its last poll that it has not
 * registered with its epoll set yet: they wait for the next uv_run(). This
 * reads a private field of uv_loop_t; its first word is the queue's `next`,
 * which points back at the queue when it is empty, in every libuv 1.x. */
static bool uv_unregistered(const uv_loop_t *uv)
{
    const void *q = &uv->watcher_queue;
    return *(void *const *)q != q;
}

/* Schedules the next run of libuv `ns` from now (0: in a later pass), or
 * none for -1; an earlier run already scheduled is kept. */
static int drive_schedule(struct mo_uv_driver *d, int64_t ns)
{
    mo_loop_t *loop = d->loop;
    int64_t at = ns < 0 ? INT64_MAX : mo_loop_now(loop) + ns;
    if (d->call && mo_call_active(loop, d->call) > 0) {
        if (d->call_at <= at) return 0;
        mo_call_cancel(loop, d->call);
    }
    d->call = 0;
    if (ns < 0) return 0;
    d->call_at = at;
    return mo_call_later(loop, ns, drive_run, d, &d->call);
}

static void drive_ready(mo_loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)fd;
    (void)events;
    drive_run(loop, arg);
}

/* Watches libuv's fd while libuv has work, and follows its timeout. */
static int drive_arm(struct mo_uv_driver *d)
{
    bool alive = uv_loop_alive(d->uv) != 0;
    if (alive && !d->io) {
        int err = mo_io_start(d->loop, uv_backend_fd(d->uv), MO_READABLE, drive_ready, d, &d->io);
        if (err) return err;
    } else if (!alive && d->io) {
        mo_io_stop(d->loop, d->io);
        d->io = 0;
    }
    int64_t ms = alive ? uv_backend_timeout(d->uv) : -1;
    if (alive && uv_unregistered(d->uv)) ms = 0;
    return drive_schedule(d, ms < 0 ? -1 : MO_MSEC(ms));
}

static void drive_run(mo_loop_t *loop, void *arg)
{
    (void)loop;
    struct mo_uv_driver *d = arg;
    if (d->call && mo_call_active(d->loop, d->call) <= 0) d->call = 0;
    d->running = true;
    uv_run(d->uv, UV_RUN_NOWAIT);
    d->running = false;
    /* An error here (out of memory) leaves libuv to its fd; the next
     * readiness or mo_uv_drive_update() tries again. */
    (void)drive_arm(d);
}

int mo_uv_drive(mo_loop_t *loop, uv_loop_t *uv, mo_uv_driver_t **driverp)
{
    if (!loop || !uv || !driverp) return MO_EINVAL;
    struct mo_uv_driver *d = calloc(1, sizeof(*d));
    if (!d) return MO_ENOMEM;
    *d = (struct mo_uv_driver){.loop = loop, .uv = uv};
    int err = drive_schedule(d, 0);
    if (!err) err = drive_arm(d);
    if (err) {
        d->running = false;
        mo_uv_drive_stop(d);
        return err;
    }
    *driverp = d;
    return 0;
}

int mo_uv_drive_update(mo_uv_driver_t *d)
{
    return d ? drive_schedule(d, 0) : MO_EINVAL;
}

int mo_uv_drive_stop(mo_uv_driver_t *d)
{
    if (!d) return 0;
    if (d->running) return MO_EBUSY;
    if (d->io) mo_io_stop(d->loop, d->io);
    if (d->call) mo_call_cancel(d->loop, d->call);
    free(d);
    return 0;
}
