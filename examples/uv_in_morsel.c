/* The other direction: a program whose loop is morsel's uses a library
 * built on libuv, and drives libuv's loop from the morsel loop
 * (mo_uv_drive in morsel/uv.h: libuv's backend fd is watched by morsel,
 * uv_backend_timeout() becomes a morsel delayed call, and libuv runs with
 * UV_RUN_NOWAIT when it has something to do).
 *
 * The "library" here is three libuv calls: uv_getaddrinfo() and uv_fs_stat()
 * (both on libuv's thread pool) and a uv_timer_t ticking every 10 ms five
 * times. Meanwhile a morsel cooperative task counts primes. mo_loop_run()
 * returns when both loops have nothing left to do.
 *
 *   usage: example_uv_in_morsel */
#include <stdio.h>

#include "morsel/uv.h"

static void resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    (void)req;
    printf("libuv: localhost %s\n", status == 0 ? "resolves" : uv_strerror(status));
    uv_freeaddrinfo(res);
}

static void statted(uv_fs_t *req)
{
    printf("libuv: stat / -> %s, mode %o\n",
           req->result == 0 ? "ok" : uv_strerror((int)req->result), (unsigned)req->statbuf.st_mode);
    uv_fs_req_cleanup(req);
}

static void ticked(uv_timer_t *timer)
{
    int *ticks = timer->data;
    printf("libuv: tick %d\n", ++*ticks);
    if (*ticks == 5) uv_close((uv_handle_t *)timer, NULL);
}

struct primes {
    unsigned long n, found;
};

static int prime_step(mo_task_t *task, void *arg)
{
    (void)task;
    struct primes *p = arg;
    unsigned long n = ++p->n, d = 2;
    while (d * d <= n && n % d) d++;
    if (n > 1 && d * d > n) p->found++;
    if (p->n < 2000000) return MO_CONTINUE;
    printf("morsel: %lu primes below %lu\n", p->found, p->n);
    return MO_DONE;
}

int main(void)
{
    uv_loop_t uv;
    mo_loop_t *loop;
    mo_uv_driver_t *driver;
    if (uv_loop_init(&uv) != 0 || mo_loop_new(&loop, 0) != 0) return 1;

    /* Calls into the libuv-based library, before the loops run. */
    uv_getaddrinfo_t gai;
    uv_fs_t stat_req;
    uv_timer_t timer;
    int ticks = 0;
    uv_getaddrinfo(&uv, &gai, resolved, "localhost", NULL, NULL);
    uv_fs_stat(&uv, &stat_req, "/", statted);
    uv_timer_init(&uv, &timer);
    timer.data = &ticks;
    uv_timer_start(&timer, ticked, 10, 10);

    struct primes p = {0, 0};
    if (mo_uv_drive(loop, &uv, &driver) != 0 || mo_cooperate(loop, prime_step, &p, NULL, NULL))
        return 1;
    mo_loop_run(loop, MO_RUN_DEFAULT); /* both loops' work, on this thread */

    mo_uv_drive_stop(driver);
    int closed = uv_loop_close(&uv) == 0;
    mo_loop_free(loop);
    return closed && ticks == 5 && p.found == 148933 ? 0 : 1;
}
