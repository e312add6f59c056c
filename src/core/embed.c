/* The embedding: a loop run by another event loop (the host) through one
 * fd, one timeout and a non-waiting run (morsel/embed.h).
 *
 * The fd is the loop's epoll fd: it is readable when a watched fd is ready,
 * and the wake-up eventfd of calls from threads is in its set. Producers
 * write that eventfd only when the loop says it sleeps (wake.c), and an
 * attached loop sleeps inside the host, between runs: so it announces
 * `sleeping` at the end of every run (and on attaching) and withdraws it at
 * the start of the next. The Dekker pair of wake.c then holds as it does
 * around epoll_wait(): either the producer sees `sleeping` and writes the
 * eventfd (the fd becomes readable), or the loop sees `pending` after its
 * fence and the timeout is 0.
 *
 * The host may also queue work itself, from its own callbacks, between
 * runs: mo_call_soon(), a delayed call earlier than the deadline the host
 * sleeps for. Hosts with a before-sleep hook (libuv's prepare, GLib's
 * prepare) would see it in the timeout; libevent has none. So such work
 * "kicks" the loop: one eventfd write, and no more until the next run
 * (`kick_before` is INT64_MIN while no kick is needed).
 *
 * An embedded run never sleeps, so it never spins either: the spin before
 * sleeping that catches pool completions (wake.c) belongs to the loop's own
 * blocking poll only, and the timeout reported while jobs run is that of
 * the timers (-1 without any): completions arrive through the fd.
 */
#include "core_int.h"

#include <unistd.h>

/* The end of a run or an attach: the loop sleeps from now on, and a kick
 * is needed for work that the timeout would not show. */
static void embed_rest(mo_loop_t *loop)
{
    bool pending = mo__wake_prepare_sleep(&loop->wake);
    bool ready = loop->ready.head != loop->ready.tail;
    /* With calls ready or pending the timeout is 0: no kick is needed. */
    loop->kick_before = pending || ready ? INT64_MIN : mo__timers_next(&loop->timers);
}

void mo__embed_kick(mo_loop_t *loop)
{
    loop->kick_before = INT64_MIN;
    uint64_t one = 1;
    /* EAGAIN means the counter is signalled already; the eventfd is read
     * by the next poll of the loop's epoll set. */
    ssize_t r = write(loop->wake.efd, &one, sizeof(one));
    (void)r;
}

int mo_embed_attach(mo_loop_t *loop, const struct mo_embed_ops *ops, void *arg)
{
    if (!loop || loop->virtual_clock) return MO_EINVAL;
    if (loop->embed.attached || loop->running) return MO_EBUSY;
    if (loop->closed) return MO_ESHUTDOWN;
    loop->embed = (struct mo__embed){ops, arg, true};
    embed_rest(loop);
    return 0;
}

/* Forgets the host, then lets it go: the loop is an ordinary one again, not
 * sleeping, so calls from threads wait for its next run as they would
 * between two mo_loop_run(). */
static void embed_detach(mo_loop_t *loop)
{
    struct mo__embed e = loop->embed;
    loop->embed = (struct mo__embed){NULL, NULL, false};
    loop->kick_before = INT64_MIN;
    mo__wake_after_sleep(&loop->wake);
    if (e.ops && e.ops->detach) e.ops->detach(loop, e.arg);
}

int mo_embed_detach(mo_loop_t *loop, const struct mo_embed_ops *ops)
{
    if (!loop || !loop->embed.attached || loop->embed.ops != ops) return MO_EINVAL;
    if (loop->running) return MO_EBUSY;
    embed_detach(loop);
    return 0;
}

void mo__embed_close(mo_loop_t *loop)
{
    if (loop->embed.attached) embed_detach(loop);
}

int mo_embed_fd(const mo_loop_t *loop)
{
    return loop ? loop->io.epfd : MO_EINVAL;
}

int mo_embed_timeout(mo_loop_t *loop, int64_t *ns)
{
    if (!loop || !ns || !loop->embed.attached) return MO_EINVAL;
    *ns = mo__loop_timeout(loop);
    return 0;
}

int mo_embed_timeout_ms(mo_loop_t *loop, int *ms)
{
    int64_t ns;
    if (!ms) return MO_EINVAL;
    int err = mo_embed_timeout(loop, &ns);
    if (err) return err;
    int64_t up = ns < 0 ? -1 : (ns + MO_MSEC(1) - 1) / MO_MSEC(1);
    *ms = up > INT32_MAX ? INT32_MAX : (int)up;
    return 0;
}

int mo_embed_run(mo_loop_t *loop)
{
    if (!loop || !loop->embed.attached) return MO_EINVAL;
    if (loop->running) return MO_EBUSY;
    loop->running = true;
    loop->stop = false;
    loop->kick_before = INT64_MIN; /* the run sees what it runs */
    mo__wake_after_sleep(&loop->wake);
    int err = mo__loop_iterate(loop, MO_RUN_NOWAIT);
    mo__loop_idle(loop);
    loop->running = false;
    loop->stop = false;
    embed_rest(loop);
    return err;
}
