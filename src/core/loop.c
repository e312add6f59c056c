/* The reactor: run/stop, one cached `now` per iteration, the ready queue
 * (mo_call_soon), the poll timeout, and the re-entrancy rules.
 *
 * The ready queue is a power-of-two ring of (fn, arg) indexed by two
 * free-running counters. A pass runs the calls between `head` and the
 * `tail` it saw when it began, so calls queued during a pass wait for a
 * later one. Passes repeat within one iteration until the queue is empty or
 * io_interval of callback time has passed; the clock is read only once per
 * batch of calls, the batch sized from the measured cost of a call so that
 * the interval is overrun by about an eighth at most. That is what lets a
 * chain of zero-delay calls run without a system call per call while I/O
 * still gets polled every io_interval.
 */
#include "core_int.h"

#include <string.h>
#include <sys/epoll.h>

#define MO__READY_INITIAL 256
/* At most this many calls run between two clock reads. A clock read costs
 * about 25 ns, a cheap call 3-5 ns: at 256 the reads cost 0.1 ns a call,
 * and if calls suddenly become slow the interval is overrun by at most 256
 * of them before the batch adapts. */
#define MO__BATCH_MAX       256
#define MO__IO_INTERVAL_DEF MO_USEC(100)
/* libev and libuv round their sleeps up to whole milliseconds; an exact
 * sleep wakes for every microsecond-apart deadline, which costs a wake-up
 * (and the caches the neighbours take meanwhile) per call: 1M calls due
 * within a second ran 1.6-1.9x libev's speed per CPU-second exact, about
 * 2.2x with 100 us of slack, 2.5x with 250 us. The slack is only taken when
 * another call is due within it, so it merges wake-ups and never delays a
 * lone call. */
#define MO__TIMER_SLACK_DEF MO_USEC(250)

static int ready_grow(struct mo__ready *q)
{
    uint64_t cap = (q->mask + 1) * 2;
    if (cap > SIZE_MAX / sizeof(struct mo__cell)) return MO_ENOMEM;
    struct mo__cell *ring = mo__malloc(cap * sizeof(*ring));
    if (!ring) return MO_ENOMEM;
    for (uint64_t i = q->head; i != q->tail; i++) ring[i & (cap - 1)] = q->ring[i & q->mask];
    mo__free(q->ring);
    q->ring = ring;
    q->mask = cap - 1;
    return 0;
}

int mo_call_soon(mo_loop_t *loop, mo_call_fn fn, void *arg)
{
    if (MO__UNLIKELY(!loop || !fn)) return MO_EINVAL;
    struct mo__ready *q = &loop->ready;
    if (MO__UNLIKELY(q->tail - q->head > q->mask) && ready_grow(q) != 0) return MO_ENOMEM;
    q->ring[q->tail & q->mask] = (struct mo__cell){fn, arg};
    q->tail++;
    /* A host callback queued work for an attached loop: tell the host. */
    if (MO__UNLIKELY(loop->kick_before != INT64_MIN)) mo__embed_kick(loop);
    return 0;
}

/* Sizes the next batch so that about eight clock reads fall in one
 * io_interval, given that the last `batch` calls took `spent` ns. */
static uint32_t next_batch(const mo_loop_t *loop, int64_t spent)
{
    int64_t per_call = spent / loop->batch;
    if (per_call < 1) per_call = 1;
    int64_t n = loop->io_interval / 8 / per_call;
    return n < 1 ? 1 : n > MO__BATCH_MAX ? MO__BATCH_MAX : (uint32_t)n;
}

/* Runs passes of the ready queue until it is empty, the loop is stopping,
 * or io_interval of work has been done. On a virtual clock no time passes
 * while callbacks run, and the real clock would make what one iteration
 * runs depend on the machine's speed: there an iteration runs one pass,
 * the calls queued when it began (loop.h). */
static void run_ready(mo_loop_t *loop)
{
    struct mo__ready *q = &loop->ready;
    if (q->head == q->tail) return;
    int64_t start = mo_hrtime(), last = start;
    mo__stats_mark(loop, start);
    uint32_t left = loop->batch;
    for (bool first = true; q->head != q->tail && !loop->stop; first = false) {
        if (!first && loop->virtual_clock) return;
        uint64_t end = q->tail;
        while (q->head != end) {
            struct mo__cell c = q->ring[q->head & q->mask];
            q->head++;
            mo__dispatch_publish(loop, MO__FN(c.fn));
            c.fn(loop, c.arg);
            if (MO__UNLIKELY(loop->poll_now)) {
                loop->poll_now = false;
                loop->last_poll = 0; /* the next poll may not be skipped */
                return;
            }
            if (--left) continue;
            int64_t t = mo_hrtime();
            mo__stats_mark(loop, t);
            loop->batch = next_batch(loop, t - last);
            if (t - start >= loop->io_interval && !loop->virtual_clock) return;
            left = loop->batch;
            last = t;
        }
    }
}

int mo_loop_new(mo_loop_t **loopp, unsigned flags)
{
    if (!loopp || (flags & ~(unsigned)MO_LOOP_VIRTUAL_CLOCK)) return MO_EINVAL;
    void *raw = mo__malloc(sizeof(mo_loop_t) + MO__CACHELINE);
    if (!raw) return MO_ENOMEM;
    /* The loop holds cache-line-aligned members: align it by hand, since the
     * allocation seam promises only malloc's alignment. */
    mo_loop_t *loop =
        (mo_loop_t *)(((uintptr_t)raw + MO__CACHELINE) & ~(uintptr_t)(MO__CACHELINE - 1));
    memset(loop, 0, sizeof(*loop));
    ((void **)loop)[-1] = raw;
    loop->flags = flags;
    loop->virtual_clock = (flags & MO_LOOP_VIRTUAL_CLOCK) != 0;
    loop->now = loop->virtual_clock ? 0 : mo_hrtime();
    loop->io_interval = MO__IO_INTERVAL_DEF;
    loop->batch = 16;
    loop->spin = MO__SPIN_MAX;
    loop->timer_slack = MO__TIMER_SLACK_DEF;
    loop->kick_before = INT64_MIN;
    loop->io.epfd = -1;
    loop->wake.efd = -1;
    int err = MO_ENOMEM;
    loop->ready.ring = mo__malloc(MO__READY_INITIAL * sizeof(struct mo__cell));
    if (!loop->ready.ring) goto fail;
    loop->ready.mask = MO__READY_INITIAL - 1;
    mo__timers_init(&loop->timers);
    if ((err = mo__stats_new(loop)) != 0) goto fail;
    if ((err = mo__io_init(&loop->io)) != 0) goto fail;
    if ((err = mo__wake_init(&loop->wake)) != 0) goto fail;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = loop->wake.efd};
    if (epoll_ctl(loop->io.epfd, EPOLL_CTL_ADD, loop->wake.efd, &ev) != 0) {
        err = -errno;
        goto fail;
    }
    *loopp = loop;
    return 0;
fail:
    loop->closed = true;
    mo_loop_free(loop);
    return err;
}

int mo_loop_close(mo_loop_t *loop)
{
    if (!loop) return MO_EINVAL;
    if (loop->running) return MO_EBUSY;
    if (loop->closed) return 0;
    mo__embed_close(loop); /* the host must not run a closed loop */
    loop->closed = true;
    /* Callbacks run by the final drain must not re-enter mo_loop_run(). */
    loop->running = true;
    mo__loop_hooks_close(loop); /* the default pool's workers post their last completions */
    /* Jobs on other pools are drained too: once this returns no thread
     * posts into the loop again, so freeing it is safe (DESIGN rule 20). */
    while (loop->expected) mo__wake_wait(loop);
    mo__wake_close(loop);
    loop->running = false;
    return 0;
}

void mo_loop_free(mo_loop_t *loop)
{
    if (!loop) return;
    mo_loop_close(loop);
    mo__loop_hooks_free(loop);
    mo__stats_free(loop);
    mo__wake_destroy(&loop->wake);
    mo__io_destroy(&loop->io);
    mo__timers_destroy(&loop->timers);
    mo__free(loop->ready.ring);
    mo__free(((void **)loop)[-1]);
}

/* Whether mo_loop_run(MO_RUN_DEFAULT) should go on. A virtual clock never
 * moves by itself, so there a delayed call keeps the loop going only once
 * it is due. */
static bool loop_has_work(mo_loop_t *loop)
{
    if (loop->ready.head != loop->ready.tail || loop->io.active || loop->holds || loop->expected)
        return true;
    if (mo__wake_pending(&loop->wake)) return true;
    if (!loop->timers.count) return false;
    return !loop->virtual_clock || mo__timers_next(&loop->timers) <= loop->now;
}

int mo_loop_alive(const mo_loop_t *loop)
{
    if (!loop) return 0; /* not MO_EINVAL, which would read as true */
    mo_loop_t *l = (mo_loop_t *)loop;
    return l->ready.head != l->ready.tail || l->io.active || l->holds || l->expected ||
           l->timers.count || mo__wake_pending(&l->wake);
}

int64_t mo__loop_timeout(mo_loop_t *loop)
{
    if (loop->ready.head != loop->ready.tail || mo__wake_pending(&loop->wake)) return 0;
    int64_t next = mo__timers_next(&loop->timers);
    if (loop->virtual_clock || next == INT64_MAX) return next <= loop->now ? 0 : -1;
    int64_t left = next - mo_hrtime();
    if (left <= 0) return 0;
    /* Slack only where it merges wake-ups: another call due within it. A
     * lone periodic call still wakes exactly on time. */
    int64_t until = next > INT64_MAX - loop->timer_slack ? INT64_MAX : next + loop->timer_slack;
    if (loop->timer_slack && mo__timers_second(&loop->timers, until) <= until)
        left += loop->timer_slack;
    return left;
}

/* How long the poll may block: 0 when work is ready, else until the next
 * delayed call, else without limit if something could still wake us.
 * MO_RUN_ONCE waits only if no callback ran yet in this iteration (`seq`
 * is the dispatch count when it began): it returns once something ran. */
static int64_t poll_timeout(mo_loop_t *loop, int mode, uint64_t seq)
{
    if (mode == MO_RUN_NOWAIT || loop->stop) return 0;
    if (mode == MO_RUN_ONCE &&
        atomic_load_explicit(&loop->dispatch.seq, memory_order_relaxed) != seq)
        return 0;
    int64_t timeout = mo__loop_timeout(loop);
    if (timeout >= 0) return timeout;
    bool waitable = loop->io.active || loop->holds || loop->expected;
    return waitable ? -1 : 0;
}

/* Whether a zero-timeout poll can be left out: in MO_RUN_DEFAULT, while
 * work is ready (due timers, queued calls), rule 1 asks for a poll only
 * once per io_interval. With a timer due every microsecond this saves a
 * system call per iteration; the other modes promise one poll per call,
 * and so does a virtual clock, whose iterations must not depend on the
 * machine's speed. */
static bool poll_skippable(mo_loop_t *loop, int64_t timeout, int mode)
{
    if (timeout != 0 || mode != MO_RUN_DEFAULT || loop->stop || loop->virtual_clock) return false;
    return mo_hrtime() - loop->last_poll < loop->io_interval;
}

static int loop_poll(mo_loop_t *loop, int64_t timeout, int mode)
{
    if (poll_skippable(loop, timeout, mode)) return 0;
    if (timeout != 0) mo__loop_idle(loop);
    if (timeout != 0 && loop->expected) mo__wake_spin(loop, timeout);
    if (timeout != 0 && mo__wake_prepare_sleep(&loop->wake)) timeout = 0;
    int n = mo__io_poll(loop, timeout);
    mo__wake_after_sleep(&loop->wake);
    loop->last_poll = mo_hrtime();
    return n < 0 ? n : 0;
}

static void loop_update(mo_loop_t *loop)
{
    if (!loop->virtual_clock) loop->now = mo_hrtime();
}

/* Calls from threads and due timers: the start of every iteration. A
 * delayed call scheduled by any of them (seq >= limit) waits for the next
 * iteration, even if it is due now: rule 1. */
static void run_due(mo_loop_t *loop)
{
    uint64_t limit = loop->timers.seq;
    if (mo__wake_pending(&loop->wake)) mo__wake_drain(loop, loop->io_interval);
    if (!loop->stop) mo__timers_run(loop, limit);
}

int mo__loop_iterate(mo_loop_t *loop, int mode)
{
    uint64_t seq = atomic_load_explicit(&loop->dispatch.seq, memory_order_relaxed);
    loop_update(loop);
    mo__stats_mark(loop, loop->virtual_clock ? mo_hrtime() : loop->now);
    run_due(loop);
    run_ready(loop);
    int err = loop_poll(loop, poll_timeout(loop, mode, seq), mode);
    if (mode == MO_RUN_ONCE && !loop->stop) {
        /* As libuv does: what the wait was for runs in this same call. */
        loop_update(loop);
        run_due(loop);
    }
    return err;
}

int mo_loop_run(mo_loop_t *loop, int mode)
{
    if (!loop || mode < MO_RUN_DEFAULT || mode > MO_RUN_NOWAIT) return MO_EINVAL;
    if (loop->running || loop->embed.attached) return MO_EBUSY;
    if (loop->closed) return MO_ESHUTDOWN;
    loop->running = true;
    loop->stop = false;
    int err;
    do {
        err = mo__loop_iterate(loop, mode);
    } while (!err && mode == MO_RUN_DEFAULT && !loop->stop && loop_has_work(loop));
    mo__loop_idle(loop);
    loop->running = false;
    loop->stop = false;
    return err;
}

int mo_loop_stop(mo_loop_t *loop)
{
    if (!loop || !loop->running) return MO_EINVAL;
    loop->stop = true;
    return 0;
}

static void stop_cb(mo_loop_t *loop, void *arg)
{
    (void)arg;
    loop->stop = true;
}

int mo_loop_stop_from_thread(mo_loop_t *loop)
{
    return mo_call_from_thread(loop, stop_cb, NULL);
}

int64_t mo_loop_now(const mo_loop_t *loop)
{
    return loop ? loop->now : 0;
}

void mo_loop_update_time(mo_loop_t *loop)
{
    if (loop) loop_update(loop);
}

int mo_loop_advance(mo_loop_t *loop, int64_t ns)
{
    if (!loop || ns < 0 || !loop->virtual_clock) return MO_EINVAL;
    if (loop->running) return MO_EBUSY;
    if (ns > INT64_MAX - loop->now) return MO_ERANGE;
    loop->now += ns;
    return mo_loop_run(loop, MO_RUN_NOWAIT);
}

int mo_loop_set_io_interval(mo_loop_t *loop, int64_t ns)
{
    if (!loop || ns < 0) return MO_EINVAL;
    loop->io_interval = ns;
    return 0;
}

int mo_loop_set_timer_slack(mo_loop_t *loop, int64_t ns)
{
    if (!loop || ns < 0) return MO_EINVAL;
    loop->timer_slack = ns;
    return 0;
}

int mo_loop_hold(mo_loop_t *loop)
{
    if (!loop) return MO_EINVAL;
    loop->holds++;
    return 0;
}

int mo_loop_release(mo_loop_t *loop)
{
    if (!loop || !loop->holds) return MO_EINVAL;
    loop->holds--;
    return 0;
}
