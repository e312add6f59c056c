/* Calls from other threads: mo_call_from_thread().
 *
 * Producers are spread over MO__LANES lanes by a hash of their thread, so
 * two threads posting at once rarely touch the same cache lines. A lane is
 * a list of fixed-size chunks: producers on it append under a spinlock that
 * is uncontended unless two threads share the lane, and publish a count;
 * the loop thread, the only consumer, reads up to that count without any
 * lock. A thread always maps to the same lane, so its calls run in order.
 *
 * Wake-ups are coalesced by `pending`: only the producer that raises it from
 * 0 writes the eventfd, and only when the loop announced (`sleeping`) that
 * it is about to block. The two sides form a Dekker pair: the producer
 * publishes its call, then reads `sleeping`; the loop publishes `sleeping`,
 * then reads `pending`; sequentially consistent fences between each store and
 * load guarantee that at least one of them sees the other, so a call is
 * never left waiting for a loop that sleeps.
 */
#include "core_int.h"

#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static size_t chunk_size(void)
{
    return sizeof(struct mo__chunk) + MO__CHUNK_CELLS * sizeof(struct mo__cell);
}

int mo__wake_init(struct mo__wake *w)
{
    memset(w, 0, sizeof(*w));
    w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return w->efd < 0 ? -errno : 0;
}

void mo__wake_destroy(struct mo__wake *w)
{
    for (unsigned i = 0; i < MO__LANES; i++) {
        struct mo__lane *lane = &w->lanes[i];
        /* Chunks before the consumer's position were recycled already. */
        struct mo__chunk *c = lane->head_chunk ? lane->head_chunk : atomic_load(&lane->first);
        while (c) {
            struct mo__chunk *next = atomic_load(&c->next);
            mo__free(c);
            c = next;
        }
        for (c = atomic_load(&lane->spare); c;) {
            struct mo__chunk *next = atomic_load(&c->next);
            mo__free(c);
            c = next;
        }
    }
    if (w->efd >= 0) close(w->efd);
    w->efd = -1;
}

static inline unsigned lane_of_thread(void)
{
    uint64_t h = (uint64_t)(uintptr_t)pthread_self() * UINT64_C(0x9E3779B97F4A7C15);
    return (unsigned)(h >> 59) & (MO__LANES - 1);
}

static void lane_lock(struct mo__lane *lane)
{
    for (unsigned spins = 0;; spins++) {
        if (!atomic_exchange_explicit(&lane->lock, 1, memory_order_acquire)) return;
        while (atomic_load_explicit(&lane->lock, memory_order_relaxed))
            if (++spins > 64) sched_yield();
    }
}

static void lane_unlock(struct mo__lane *lane)
{
    atomic_store_explicit(&lane->lock, 0, memory_order_release);
}

/* Takes a recycled chunk, or allocates one. The lane is locked, so this is
 * the stack's only popper. */
static struct mo__chunk *chunk_get(struct mo__lane *lane)
{
    struct mo__chunk *c = atomic_load_explicit(&lane->spare, memory_order_acquire);
    while (c && !atomic_compare_exchange_weak_explicit(
                    &lane->spare, &c, atomic_load_explicit(&c->next, memory_order_relaxed),
                    memory_order_acquire, memory_order_acquire)) {
    }
    if (c) {
        atomic_fetch_sub_explicit(&lane->nspare, 1, memory_order_relaxed);
        return c;
    }
    return mo__malloc(chunk_size());
}

/* Gives a drained chunk back for reuse, or frees it past MO__SPARE_MAX. */
static void chunk_put(struct mo__lane *lane, struct mo__chunk *c)
{
    if (atomic_load_explicit(&lane->nspare, memory_order_relaxed) >= MO__SPARE_MAX) {
        mo__free(c);
        return;
    }
    atomic_fetch_add_explicit(&lane->nspare, 1, memory_order_relaxed);
    struct mo__chunk *top = atomic_load_explicit(&lane->spare, memory_order_relaxed);
    do atomic_store_explicit(&c->next, top, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&lane->spare, &top, c, memory_order_release,
                                                  memory_order_relaxed));
}

/* Appends a call; the lane is locked. */
static int lane_push(struct mo__lane *lane, mo_call_fn fn, void *arg)
{
    if (!lane->tail_chunk || lane->tail_pos == MO__CHUNK_CELLS) {
        struct mo__chunk *c = chunk_get(lane);
        if (!c) return MO_ENOMEM;
        atomic_store_explicit(&c->next, NULL, memory_order_relaxed);
        if (lane->tail_chunk)
            atomic_store_explicit(&lane->tail_chunk->next, c, memory_order_release);
        else
            atomic_store_explicit(&lane->first, c, memory_order_release);
        lane->tail_chunk = c;
        lane->tail_pos = 0;
    }
    lane->tail_chunk->cell[lane->tail_pos++] = (struct mo__cell){fn, arg};
    atomic_store_explicit(&lane->tail, ++lane->tail_count, memory_order_release);
    return 0;
}

static void wake_notify(struct mo__wake *w)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&w->pending, memory_order_relaxed)) return;
    if (atomic_exchange_explicit(&w->pending, 1, memory_order_seq_cst)) return;
    if (atomic_load_explicit(&w->sleeping, memory_order_seq_cst)) {
        uint64_t one = 1;
        /* EAGAIN means the counter is already signalled: nothing to add. */
        ssize_t r = write(w->efd, &one, sizeof(one));
        (void)r;
    }
}

/* A Treiber stack: pushes race only with each other and with the loop
 * taking the whole stack, so there is no ABA (a node is pushed again only
 * after its call ran). Release: the loop sees what the poster wrote. */
void mo__post_from_thread(mo_loop_t *loop, struct mo_post_ *post, mo_call_fn fn)
{
    struct mo__wake *w = &loop->wake;
    post->fn_ = fn;
    struct mo_post_ *top = __atomic_load_n(&w->posts, __ATOMIC_RELAXED);
    do post->next_ = top;
    while (!__atomic_compare_exchange_n(&w->posts, &top, post, true, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED));
    wake_notify(w);
}

/* Runs the posts taken from the stack, oldest first: reversed, the stack
 * is the order of posting, per poster. */
static size_t run_posts(mo_loop_t *loop, struct mo_post_ *top)
{
    struct mo_post_ *fifo = NULL;
    while (top) {
        struct mo_post_ *next = top->next_;
        top->next_ = fifo;
        fifo = top;
        top = next;
    }
    size_t ran = 0;
    while (fifo) {
        struct mo_post_ *p = fifo;
        fifo = p->next_; /* read first: the node is the caller's once fn runs */
        ran++;
        mo__dispatch_publish(loop, MO__FN(p->fn_));
        p->fn_(loop, p);
    }
    return ran;
}

int mo_call_from_thread(mo_loop_t *loop, mo_call_fn fn, void *arg)
{
    if (!loop || !fn) return MO_EINVAL;
    struct mo__wake *w = &loop->wake;
    unsigned i = lane_of_thread();
    struct mo__lane *lane = &w->lanes[i];
    lane_lock(lane);
    /* Checked under the lock: mo_loop_close() passes through every lane's
     * lock after setting `closed`, so a call is either in before the final
     * drain or refused. */
    if (atomic_load_explicit(&w->closed, memory_order_acquire)) {
        lane_unlock(lane);
        return MO_ESHUTDOWN;
    }
    int err = lane_push(lane, fn, arg);
    lane_unlock(lane);
    if (err) return err;
    if (!(atomic_load_explicit(&w->lanes_used, memory_order_relaxed) & (1u << i)))
        atomic_fetch_or_explicit(&w->lanes_used, 1u << i, memory_order_release);
    wake_notify(w);
    return 0;
}

/* Runs the calls of one lane published so far. */
/* Runs a lane's calls published when it began, until `end` (read every 64
 * calls; negative: no end). Returns how many ran; sets *cut if it stopped
 * with calls left. */
static size_t lane_drain(mo_loop_t *loop, struct mo__lane *lane, int64_t end, bool *cut)
{
    uint64_t tail = atomic_load_explicit(&lane->tail, memory_order_acquire);
    size_t ran = 0;
    while (lane->head != tail) {
        if (end >= 0 && ran % 64 == 63 && mo_hrtime() >= end) {
            *cut = true;
            break;
        }
        if (!lane->head_chunk) {
            lane->head_chunk = atomic_load_explicit(&lane->first, memory_order_acquire);
            lane->head_pos = 0;
        } else if (lane->head_pos == MO__CHUNK_CELLS) {
            struct mo__chunk *old = lane->head_chunk;
            lane->head_chunk = atomic_load_explicit(&old->next, memory_order_acquire);
            lane->head_pos = 0;
            chunk_put(lane, old);
        }
        struct mo__cell cell = lane->head_chunk->cell[lane->head_pos++];
        lane->head++;
        ran++;
        mo__dispatch_publish(loop, MO__FN(cell.fn));
        cell.fn(loop, cell.arg);
    }
    return ran;
}

/* A backlog is run `budget` at a time (rule 1: a flood of calls from
 * threads must not hold the loop either); the lanes take turns being
 * first, so that one busy producer does not starve the others. */
size_t mo__wake_drain(mo_loop_t *loop, int64_t budget)
{
    struct mo__wake *w = &loop->wake;
    atomic_store_explicit(&w->pending, 0, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    /* The posts are taken first and run last: a call a thread made with
     * mo_call_from_thread() before its post is then in a lane already, and
     * runs first. */
    struct mo_post_ *posts = NULL;
    if (__atomic_load_n(&w->posts, __ATOMIC_RELAXED)) /* no atomic write when there are none */
        posts = __atomic_exchange_n(&w->posts, NULL, __ATOMIC_ACQUIRE);
    uint32_t used = atomic_load_explicit(&w->lanes_used, memory_order_acquire);
    int64_t now = budget < 0 ? 0 : mo_hrtime();
    int64_t end = budget < 0 || budget > INT64_MAX - now ? -1 : now + budget;
    unsigned first = w->first_lane;
    /* The lanes from `first` on, then those before it. */
    uint32_t order[2] = {used & (UINT32_MAX << first), used & ~(UINT32_MAX << first)};
    size_t ran = 0;
    bool cut = false;
    for (int k = 0; k < 2 && !cut; k++) {
        while (order[k] && !cut) {
            unsigned i = (unsigned)__builtin_ctz(order[k]);
            order[k] &= order[k] - 1;
            ran += lane_drain(loop, &w->lanes[i], end, &cut);
            if (cut) w->first_lane = (i + 1) % MO__LANES;
        }
    }
    /* What is left runs in the next iteration: the poll must not sleep. */
    if (cut) atomic_store_explicit(&w->pending, 1, memory_order_relaxed);
    return ran + run_posts(loop, posts);
}

bool mo__wake_prepare_sleep(struct mo__wake *w)
{
    atomic_store_explicit(&w->sleeping, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    return atomic_load_explicit(&w->pending, memory_order_relaxed) != 0;
}

void mo__wake_after_sleep(struct mo__wake *w)
{
    atomic_store_explicit(&w->sleeping, 0, memory_order_relaxed);
}

void mo__wake_read(struct mo__wake *w)
{
    uint64_t value;
    ssize_t r = read(w->efd, &value, sizeof(value));
    (void)r;
}

/* Called by mo_loop_close(): refuse new calls, wait out producers that are
 * inside the lock, then run what was accepted until nothing remains. */
void mo__wake_close(mo_loop_t *loop)
{
    struct mo__wake *w = &loop->wake;
    atomic_store_explicit(&w->closed, 1, memory_order_seq_cst);
    for (unsigned i = 0; i < MO__LANES; i++) {
        lane_lock(&w->lanes[i]);
        lane_unlock(&w->lanes[i]);
    }
    while (mo__wake_drain(loop, -1) > 0) {
    }
}

void mo__wake_wait(mo_loop_t *loop)
{
    struct mo__wake *w = &loop->wake;
    if (!mo__wake_prepare_sleep(w)) {
        struct pollfd p = {.fd = w->efd, .events = POLLIN};
        while (poll(&p, 1, -1) < 0 && errno == EINTR) {
        }
        mo__wake_read(w);
    }
    mo__wake_after_sleep(w);
    mo__wake_drain(loop, -1);
}

/* Before the loop sleeps while completions are expected: spinning a little
 * catches one without a sleep and wake-up (the ping-pong case), but when
 * the workers run long CPU-bound jobs a yield hands them the core and the
 * loop gets it back only at the next scheduler tick (~4 ms). So the budget
 * adapts: doubled when a completion arrived during the spin, halved when
 * none did. Below a microsecond the spin only pauses and never yields. */
void mo__wake_spin(mo_loop_t *loop, int64_t timeout)
{
    int64_t budget = loop->spin;
    if (timeout >= 0 && timeout < budget) budget = timeout;
    int64_t until = mo_hrtime() + budget;
    for (unsigned i = 1; !mo__wake_pending(&loop->wake); i++) {
        if (i < MO__SPIN_PAUSES) {
            mo__cpu_relax();
            continue;
        }
        if (mo_hrtime() > until) {
            loop->spin /= 2;
            return;
        }
        sched_yield();
    }
    loop->spin = loop->spin * 2 + MO_USEC(1);
    if (loop->spin > MO__SPIN_MAX) loop->spin = MO__SPIN_MAX;
}
