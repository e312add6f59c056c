/* morsel-uv: a morsel loop inside libuv (the tests of embed_host.h), and
 * libuv driven from a morsel loop. MO_TEST_LABEL_THREADS */
#include "morsel/uv.h"

#include "embed_host.h"

#include <stdlib.h>
#include <sys/socket.h>

struct uv_host {
    uv_loop_t uv;
    uv_timer_t timer;
    void (*fn)(void *arg);
    void *arg;
};

static void *uvh_create(void)
{
    struct uv_host *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    assert_int_equal(uv_loop_init(&h->uv), 0);
    assert_int_equal(uv_timer_init(&h->uv, &h->timer), 0);
    return h;
}

static void uvh_destroy(void *host)
{
    struct uv_host *h = host;
    uv_close((uv_handle_t *)&h->timer, NULL);
    uv_run(&h->uv, UV_RUN_NOWAIT); /* the close callbacks */
    /* Every handle of the adapter was closed: libuv agrees. */
    assert_int_equal(uv_loop_close(&h->uv), 0);
    free(h);
}

static int uvh_attach(mo_loop_t *loop, void *host)
{
    return mo_uv_attach(loop, &((struct uv_host *)host)->uv);
}

static void uvh_iterate(void *host, bool block)
{
    uv_run(&((struct uv_host *)host)->uv, block ? UV_RUN_ONCE : UV_RUN_NOWAIT);
}

static void uvh_tick(uv_timer_t *timer)
{
    struct uv_host *h = timer->data;
    h->fn(h->arg);
}

static void uvh_timer_start(void *host, int ms, void (*fn)(void *arg), void *arg)
{
    struct uv_host *h = host;
    h->fn = fn;
    h->arg = arg;
    h->timer.data = h;
    assert_int_equal(uv_timer_start(&h->timer, uvh_tick, (uint64_t)ms, (uint64_t)ms), 0);
}

static void uvh_timer_stop(void *host)
{
    uv_timer_stop(&((struct uv_host *)host)->timer);
}

static const struct host_ops host_ops = {
    uvh_create,      uvh_destroy,    uvh_attach, mo_uv_detach, uvh_iterate,
    uvh_timer_start, uvh_timer_stop, false,      NULL,         NULL};

/* uv_run(UV_RUN_DEFAULT) runs while the loop is attached, until a morsel
 * callback stops it; once detached, libuv has nothing of ours left. */
static void stop_uv(mo_loop_t *loop, void *arg)
{
    (void)loop;
    uv_stop(arg);
}

static void test_uv_run_until_stopped(void **state)
{
    (void)state;
    struct uv_host *h = uvh_create();
    mo_loop_t *loop = mo_test_loop();
    assert_ok(mo_uv_attach(loop, &h->uv));
    mo_loop_update_time(loop);
    int64_t t0 = mo_loop_now(loop);
    assert_ok(mo_call_later(loop, MO_MSEC(3), stop_uv, &h->uv, NULL));
    assert_int_not_equal(uv_run(&h->uv, UV_RUN_DEFAULT), 0);
    assert_true(mo_hrtime() - t0 >= MO_MSEC(3));
    assert_ok(mo_uv_detach(loop));
    uv_run(&h->uv, UV_RUN_DEFAULT); /* closes the adapter's handles */
    assert_int_equal(uv_loop_alive(&h->uv), 0);
    uvh_destroy(h);
    mo_loop_free(loop);
}

/* An attach that libuv refuses (the loop's fd is polled in that libuv
 * loop already) leaves nothing attached and nothing open. */
static void never_polled(uv_poll_t *poll, int status, int events)
{
    (void)poll;
    (void)status;
    (void)events;
}

static void test_uv_attach_refused_by_libuv(void **state)
{
    (void)state;
    struct uv_host *h = uvh_create();
    mo_loop_t *loop = mo_test_loop();
    uv_poll_t poll;
    assert_int_equal(uv_poll_init(&h->uv, &poll, mo_embed_fd(loop)), 0);
    assert_int_equal(uv_poll_start(&poll, UV_READABLE, never_polled), 0);
    assert_mo(MO_EEXIST, mo_uv_attach(loop, &h->uv));
    assert_mo(MO_EINVAL, mo_uv_attach(loop, NULL));
    assert_mo(MO_EINVAL, mo_uv_detach(loop));
    assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT)); /* not attached */
    uv_close((uv_handle_t *)&poll, NULL);
    uvh_destroy(h);
    mo_loop_free(loop);
}

/* ---- libuv inside morsel ---- */

struct drive {
    uv_loop_t uv;
    uv_timer_t timer;
    uv_poll_t poll;
    uv_async_t async;
    int sv[2];
    int timer_fired, polled, async_fired;
    mo_uv_driver_t *driver;
};

static void dr_async(uv_async_t *async)
{
    struct drive *d = async->data;
    d->async_fired++;
    uv_close((uv_handle_t *)async, NULL);
}

static void dr_polled(uv_poll_t *poll, int status, int events)
{
    struct drive *d = poll->data;
    assert_int_equal(status, 0);
    assert_true(events & UV_READABLE);
    char c;
    assert_int_equal(read(d->sv[0], &c, 1), 1);
    d->polled++;
    uv_close((uv_handle_t *)poll, NULL);
}

static void *dr_send_async(void *arg)
{
    usleep(10000);
    assert_int_equal(uv_async_send(arg), 0);
    return NULL;
}

/* The libuv timer's callback starts a uv_poll: libuv registers it only at
 * its next run, which the driver must see to. */
static void dr_timer(uv_timer_t *timer)
{
    struct drive *d = timer->data;
    d->timer_fired++;
    d->poll.data = d;
    assert_int_equal(uv_poll_init(&d->uv, &d->poll, d->sv[0]), 0);
    assert_int_equal(uv_poll_start(&d->poll, UV_READABLE, dr_polled), 0);
    uv_close((uv_handle_t *)timer, NULL);
}

static void dr_write(mo_loop_t *loop, void *arg)
{
    (void)loop;
    struct drive *d = arg;
    assert_int_equal(write(d->sv[1], "x", 1), 1);
}

static void test_drive_libuv_from_morsel(void **state)
{
    (void)state;
    struct drive d = {0};
    mo_loop_t *loop = mo_test_loop();
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, d.sv), 0);
    assert_int_equal(uv_loop_init(&d.uv), 0);
    uv_timer_init(&d.uv, &d.timer);
    d.timer.data = &d;
    uv_timer_start(&d.timer, dr_timer, 5, 0);
    uv_async_init(&d.uv, &d.async, dr_async);
    d.async.data = &d;
    assert_ok(mo_uv_drive(loop, &d.uv, &d.driver));
    mo_loop_update_time(loop);
    int64_t t0 = mo_loop_now(loop);
    assert_ok(mo_call_later(loop, MO_MSEC(30), dr_write, &d, NULL));
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, dr_send_async, &d.async), 0);
    /* Returns when libuv has nothing left (every handle closed) and morsel
     * neither. */
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    pthread_join(th, NULL);
    assert_int_equal(d.timer_fired, 1);
    assert_int_equal(d.polled, 1);
    assert_int_equal(d.async_fired, 1);
    assert_true(mo_hrtime() - t0 >= MO_MSEC(30));
    assert_ok(mo_uv_drive_stop(d.driver));
    assert_int_equal(uv_loop_close(&d.uv), 0);
    close(d.sv[0]);
    close(d.sv[1]);
    mo_loop_free(loop);
}

/* libuv work started from a morsel callback runs after
 * mo_uv_drive_update(). */
struct later {
    uv_loop_t uv;
    uv_timer_t timer;
    mo_uv_driver_t *driver;
    int fired;
};

static void lt_fired(uv_timer_t *timer)
{
    struct later *l = timer->data;
    l->fired++;
    uv_close((uv_handle_t *)timer, NULL);
}

static void lt_start(mo_loop_t *loop, void *arg)
{
    (void)loop;
    struct later *l = arg;
    uv_timer_init(&l->uv, &l->timer);
    l->timer.data = l;
    uv_timer_start(&l->timer, lt_fired, 2, 0);
    assert_ok(mo_uv_drive_update(l->driver));
}

static int dr_stop_err;

static void lt_stop_inside(uv_timer_t *timer)
{
    struct later *l = timer->data;
    dr_stop_err = mo_uv_drive_stop(l->driver); /* in use: refused */
    lt_fired(timer);
}

static void test_drive_update_after_morsel_starts_libuv_work(void **state)
{
    (void)state;
    struct later l = {0};
    mo_loop_t *loop = mo_test_loop();
    assert_int_equal(uv_loop_init(&l.uv), 0);
    assert_ok(mo_uv_drive(loop, &l.uv, &l.driver));
    assert_ok(mo_call_later(loop, MO_MSEC(5), lt_start, &l, NULL));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(l.fired, 1);
    /* Bad input: stopping from a libuv callback the driver runs. */
    uv_timer_init(&l.uv, &l.timer);
    l.timer.data = &l;
    uv_timer_start(&l.timer, lt_stop_inside, 1, 0);
    assert_ok(mo_uv_drive_update(l.driver));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_mo(MO_EBUSY, dr_stop_err);
    assert_int_equal(l.fired, 2);
    assert_mo(MO_EINVAL, mo_uv_drive(NULL, &l.uv, &l.driver));
    assert_mo(MO_EINVAL, mo_uv_drive_update(NULL));
    assert_mo(MO_EINVAL, mo_uv_drive(loop, NULL, &l.driver));
    assert_mo(MO_EINVAL, mo_uv_drive(loop, &l.uv, NULL));
    assert_ok(mo_uv_drive_stop(NULL)); /* ignored */
    assert_ok(mo_uv_drive_stop(l.driver));
    assert_int_equal(uv_loop_close(&l.uv), 0);
    mo_loop_free(loop);
}

MO_TEST_MAIN(EMBED_HOST_TESTS, cmocka_unit_test(test_uv_run_until_stopped),
             cmocka_unit_test(test_uv_attach_refused_by_libuv),
             cmocka_unit_test(test_drive_libuv_from_morsel),
             cmocka_unit_test(test_drive_update_after_morsel_starts_libuv_work))
