/* The core layer's internals: the loop, delayed calls, fd watchers, calls
 * from threads, statistics, the allocation seam, and the hooks through
 * which the layers above attach their per-loop state. Core calls nothing
 * outside itself; this header sees only the public headers core
 * implements. Non-static names are mo__ and hidden from the shared
 * library. */
#ifndef MORSEL_CORE_INT_H
#define MORSEL_CORE_INT_H

#include "morsel/common.h"
#include "morsel/embed.h"
#include "morsel/loop.h"
#include "morsel/stats.h"

#include <errno.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#define MO__LIKELY(x)   __builtin_expect(!!(x), 1)
#define MO__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MO__CACHELINE   64

#define mo__container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* ---- internal invariants (error.c) ----
 * MO__CHECK is for the mo__*_verify() functions the tests call: always on.
 * MO__ASSERT guards an invariant inside the library in debug builds (no
 * NDEBUG: the Debug and sanitizer builds of the tests); release builds
 * compile it out. Either prints where and what, then aborts: a failed check
 * is a bug in morsel, never a caller's error (those are MO_E* returns). */
_Noreturn void mo__check_failed(const char *where, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
#define MO__CHECK(cond, ...) ((cond) ? (void)0 : mo__check_failed(__func__, __VA_ARGS__))
#ifdef NDEBUG
#define MO__ASSERT(cond, ...) ((void)0) /* what only it uses is #ifndef NDEBUG too */
#else
#define MO__ASSERT(cond, ...) MO__CHECK(cond, __VA_ARGS__)
#endif

/* ---- allocation seam (alloc.c) ----
 * Every allocation of the library goes through these. mo__free() keeps
 * errno, so an error path may free before it returns -errno. */
void *mo__malloc(size_t size);
void *mo__realloc(void *ptr, size_t size);
void *mo__calloc(size_t count, size_t size);
void mo__free(void *ptr);

/* ---- delayed calls (timer.c) ----
 *
 * Invariants of the timer store, checked by mo__timer_verify():
 * - Every pending timer is in exactly one place: the near heap or one slot
 *   of the wheel. `where` says which (MO__T_HEAP with heap_idx, or the
 *   wheel level and slot).
 * - The wheel is hierarchical: 8 levels of 64 slots over ticks of
 *   2^MO__TICK_SHIFT ns. A timer of tick t sits at the level of the highest
 *   6-bit block in which t differs from `curr`, in the slot given by t's
 *   block at that level; every wheel timer has t >= curr. Hence every timer
 *   of level L is earlier than every timer of level L+1, and within a level
 *   lower slots are earlier.
 * - Every heap timer has a tick below `curr`, so every heap timer is due no
 *   later than every wheel timer: the heap's minimum is the next call.
 * - The heap is a binary min-heap on (deadline, seq); seq is unique and
 *   grows with every scheduling, which makes equal deadlines FIFO.
 * - bits[L] has bit s set iff slot s of level L is non-empty.
 * - A slot is MO__WHEEL_CHAINS lists; which one a timer is on does not
 *   matter (it is chosen from the timer's address).
 *   Several chains let a cascade follow them in step, so the cache misses of
 *   walking one list overlap those of the others instead of queueing.
 */
#define MO__TICK_SHIFT   20 /* ~1.05 ms per tick */
#define MO__WHEEL_BITS   6
#define MO__WHEEL_SLOTS  64
#define MO__WHEEL_LEVELS 8 /* 8 * 6 + 20 > 63 bits: every int64 deadline fits */
#define MO__WHEEL_CHAINS 8 /* lists per slot: one cache line of heads */
#define MO__TIMER_CHUNK  512

enum { MO__T_FREE = 0, MO__T_HEAP = 1, MO__T_WHEEL = 2 };

struct mo__timer {
    struct mo__timer *next;   /* wheel slot list */
    struct mo__timer **pprev; /* wheel slot list */
    int64_t deadline;
    uint64_t seq;
    mo_call_fn fn;
    void *arg;
    uint32_t gen;   /* equals the generation of the id given out for it */
    uint8_t state;  /* MO__T_* */
    uint8_t level;  /* wheel level, when state == MO__T_WHEEL */
    uint8_t slot;   /* wheel slot, when state == MO__T_WHEEL */
    uint32_t index; /* this timer's slab index */
    uint32_t heap_idx;
};

struct mo__heap_entry {
    int64_t deadline;
    struct mo__timer *t;
};

/* A wheel slot: MO__WHEEL_CHAINS list heads, one cache line. */
struct mo__wheel_slot {
    struct mo__timer *chain[MO__WHEEL_CHAINS];
};

struct mo__timers {
    struct mo__timer **chunks; /* slab: chunk i holds indices [i*CHUNK, (i+1)*CHUNK) */
    uint32_t nchunks;
    uint32_t chunks_cap;
    /* Free slots, a bitmap (bit set: free) with a summary (bit w set:
     * free_bits[w] has a free slot); every free_sum word below free_hint is
     * 0. The lowest free slot is taken: the address of the next timer is
     * known without reading the last one, so allocations do not wait on each
     * other's cache misses, and the slots in use stay packed at the bottom of
     * the slab, in address order when it has emptied. */
    uint64_t *free_bits;
    uint64_t *free_sum;
    uint32_t free_hint;
    uint64_t seq;
    uint64_t count; /* pending timers */
    uint64_t curr;  /* wheel position, in ticks */
    uint64_t bits[MO__WHEEL_LEVELS];
    _Alignas(MO__CACHELINE) struct mo__wheel_slot wheel[MO__WHEEL_LEVELS][MO__WHEEL_SLOTS];
    struct mo__heap_entry *heap;
    uint32_t heap_len;
    uint32_t heap_cap; /* slots the heap and the bitmaps can hold, >= the slab's */
};

int mo__timers_init(struct mo__timers *ts);
void mo__timers_destroy(struct mo__timers *ts);
/* Runs every timer due at `now` whose order is below `limit` (the timers'
 * `seq` when the iteration began: later ones wait for the next). */
void mo__timers_run(mo_loop_t *loop, uint64_t limit);
/* The earliest deadline, or INT64_MAX if there is no timer. */
int64_t mo__timers_next(struct mo__timers *ts);
/* The second-earliest deadline if it is no later than `until`, or some
 * later value (INT64_MAX if unknown). Call after mo__timers_next(); may pull
 * one more tick into the heap. */
int64_t mo__timers_second(struct mo__timers *ts, int64_t until);
void mo__timer_verify(const struct mo__timers *ts);

/* ---- fd watchers (io.c) ---- */
struct mo__io_dir {
    mo_io_fn fn;
    void *arg;
    uint32_t gen;
    uint8_t active;
};

struct mo__fdrec {
    struct mo__io_dir dir[2]; /* [0] readable, [1] writable */
    uint32_t registered;      /* epoll events currently registered for the fd */
};

struct mo__io {
    int epfd;
    struct mo__fdrec *fds; /* indexed by fd; grows; re-read after callbacks */
    uint32_t nfds;
    uint32_t active; /* active watchers */
    bool no_pwait2;  /* the kernel (or valgrind) lacks epoll_pwait2 */
};

int mo__io_init(struct mo__io *io);
void mo__io_destroy(struct mo__io *io);
/* Polls with a timeout in ns (-1: none) and runs the watchers that fired. */
int mo__io_poll(mo_loop_t *loop, int64_t timeout);

/* ---- calls from threads (wake.c) ----
 *
 * One lane per hash of the posting thread: producers hashing to a lane take
 * its spinlock, append to its chunk list and publish `tail`; the loop thread
 * is the lane's only consumer. A producer always uses the same lane, so its
 * calls stay in order. `pending` coalesces wake-ups: the producer that sets
 * it from 0 to 1 writes the eventfd, and only if the loop said it sleeps.
 */
#define MO__LANES       32
#define MO__CHUNK_CELLS 255
#define MO__SPARE_MAX   16 /* recycled chunks kept per lane: 64 KiB */

struct mo__cell {
    mo_call_fn fn;
    void *arg;
};

struct mo__chunk {
    struct mo__chunk *_Atomic next;
    struct mo__cell cell[];
};

struct mo__lane {
    /* Producer side, under `lock`. */
    _Alignas(MO__CACHELINE) atomic_int lock;
    struct mo__chunk *tail_chunk;
    uint32_t tail_pos;
    uint64_t tail_count;
    /* Published by producers, read by the consumer. */
    _Alignas(MO__CACHELINE) _Atomic uint64_t tail;
    struct mo__chunk *_Atomic first; /* the lane's first chunk, set once */
    /* Recycled chunks: a stack pushed by the consumer and popped only by the
     * producer holding the lock (one popper: no ABA). */
    struct mo__chunk *_Atomic spare;
    atomic_uint nspare;
    /* Consumer side. */
    _Alignas(MO__CACHELINE) struct mo__chunk *head_chunk;
    uint32_t head_pos;
    uint64_t head;
};

struct mo__wake {
    int efd;
    /* Calls posted without allocating (mo__post_from_thread): a stack of
     * nodes, pushed by any thread, taken whole by the loop. */
    _Alignas(MO__CACHELINE) struct mo_post_ *posts;
    _Alignas(MO__CACHELINE) atomic_int pending;
    atomic_int sleeping;
    atomic_int closed;
    _Atomic uint32_t lanes_used;
    unsigned first_lane; /* where the next drain starts: after the lane last cut short */
    struct mo__lane lanes[MO__LANES];
};

int mo__wake_init(struct mo__wake *w);
void mo__wake_destroy(struct mo__wake *w);
/* Runs the calls posted so far, for at most `budget` ns (checked every few
 * calls; negative: all of them). What is left stays pending, in order, for
 * the next drain. Returns how many ran. */
size_t mo__wake_drain(mo_loop_t *loop, int64_t budget);
/* Before a blocking poll: returns true if calls are pending (do not sleep). */
bool mo__wake_prepare_sleep(struct mo__wake *w);
void mo__wake_after_sleep(struct mo__wake *w);
void mo__wake_read(struct mo__wake *w);
/* Posts fn(loop, post) from any thread like mo_call_from_thread(), without
 * allocating, so it cannot fail: the caller gives the node (fn gets it as
 * its arg) and has it back once fn runs. Only for a completion the loop expects (mo__loop_expect),
 * which keeps the loop from closing before it ran. A call made earlier by
 * the same thread with mo_call_from_thread() runs before it. */
void mo__post_from_thread(mo_loop_t *loop, struct mo_post_ *post, mo_call_fn fn);
/* Refuses further calls and runs every call accepted before. */
void mo__wake_close(mo_loop_t *loop);
/* Blocks until calls from threads are pending, then runs them: how
 * mo_loop_close() waits for the completions it expects. */
void mo__wake_wait(mo_loop_t *loop);
static inline bool mo__wake_pending(struct mo__wake *w)
{
    return atomic_load_explicit(&w->pending, memory_order_relaxed) != 0;
}

/* ---- the loop (loop.c) ---- */
struct mo__ready {
    struct mo__cell *ring; /* power-of-two ring of calls */
    uint64_t mask;
    uint64_t head; /* next to run */
    uint64_t tail; /* next free */
};

/* What the loop runs, published for the watchdog thread (watchdog.c): the
 * callback about to run (0 while idle) and a counter bumped before every
 * callback and on going idle. Written only by the loop thread, with relaxed
 * stores; the watchdog samples them. stats.c counts callbacks with `seq`. */
struct mo__dispatch {
    _Alignas(MO__CACHELINE) _Atomic uintptr_t fn;
    _Atomic uint64_t seq;
};

/* An upper layer's per-loop state, attached with mo__loop_attach(): core
 * calls `close` from mo_loop_close() (before calls from threads are
 * refused: the layer finishes work that posts back, as the default pool
 * does) and `free` from mo_loop_free(), after which the state is detached;
 * either may be NULL. Hooks run
 * from the highest `layer` down (1 deferred, 2 work, 3 stream and walk),
 * so a layer may still use the layers below while it closes; within a
 * layer, the latest attached first. The hooks are a static object of the
 * layer; its address is the key that mo__loop_state() looks up. */
struct mo__hooks {
    const char *name;
    unsigned layer;
    void (*close)(mo_loop_t *loop, void *state);
    void (*free)(mo_loop_t *loop, void *state);
};

#define MO__LOOP_SLOTS 8 /* deferred, pool, cooperator, watchdog, stream, ... */

struct mo__slot {
    const struct mo__hooks *hooks;
    void *state;
};

/* The host a loop is attached to (embed.c). */
struct mo__embed {
    const struct mo_embed_ops *ops;
    void *arg;
    bool attached;
};

struct mo_loop {
    int64_t now;
    struct mo__ready ready;
    /* While attached to a host and outside mo_embed_run(): new work the
     * host was not told of makes the embedding fd readable (a "kick"): a
     * ready call, or a delayed call due before this. INT64_MIN otherwise
     * (never attached, running, or kicked already). Next to `ready`, since
     * mo_call_soon() reads it. */
    int64_t kick_before;
    int64_t io_interval;
    uint32_t batch; /* calls between two clock reads, adapted */
    unsigned flags;
    bool running;
    bool stop;
    bool closed;
    bool virtual_clock;
    bool poll_now;       /* mo__loop_request_poll(): end the batch after this call */
    int64_t last_poll;   /* real clock at the end of the last poll */
    int64_t timer_slack; /* a sleep for a timer may overshoot it this much */
    uint64_t holds;
    /* Calls from threads the loop waits for (mo__loop_expect()): each keeps
     * the loop alive, makes it spin a little before sleeping, and is waited
     * for by mo_loop_close(). */
    uint64_t expected;
    int64_t spin; /* the spin's adaptive budget, ns (wake.c) */
    struct mo__stats *stats;
    struct mo__slot slots[MO__LOOP_SLOTS]; /* the upper layers' state */
    struct mo__timers timers;
    struct mo__io io;
    struct mo__wake wake;
    struct mo__dispatch dispatch;
    struct mo__embed embed;
};

/* ---- the loop's iteration, for the embedding (loop.c) ---- */

/* One iteration in the given mode (mo_loop_run() without its checks). */
int mo__loop_iterate(mo_loop_t *loop, int mode);
/* The poll timeout in ns if the loop were to sleep now: 0 when work is
 * ready, else the time to the next delayed call (with the slack that
 * merges wake-ups), else -1. */
int64_t mo__loop_timeout(mo_loop_t *loop);

/* ---- the embedding (embed.c) ---- */

/* Makes the embedding fd readable: the host learns of work queued while
 * the attached loop was not running. */
void mo__embed_kick(mo_loop_t *loop);
/* mo_loop_close() on an attached loop: detaches it first. */
void mo__embed_close(mo_loop_t *loop);

/* ---- dispatch, statistics and the watchdog (stats.c, watchdog.c) ---- */

/* Before each callback: fn is the callback's address. */
static inline void mo__dispatch_publish(mo_loop_t *loop, uintptr_t fn)
{
    struct mo__dispatch *d = &loop->dispatch;
    atomic_store_explicit(&d->fn, fn, memory_order_relaxed);
    uint64_t seq = atomic_load_explicit(&d->seq, memory_order_relaxed);
    /* Release: a watchdog that sees this seq sees this fn. */
    atomic_store_explicit(&d->seq, seq + 1, memory_order_release);
}
#define MO__FN(f) ((uintptr_t)(f))

int mo__stats_new(mo_loop_t *loop);
void mo__stats_free(mo_loop_t *loop);
/* A due delayed call runs `late` ns after its deadline (timer.c). */
void mo__stats_lag(mo_loop_t *loop, int64_t late);
/* The clock read `t` begins a span of callbacks (iteration start, wake-up). */
void mo__stats_begin(mo_loop_t *loop, int64_t t);
/* The clock read `t` ends the span: the callbacks run since its beginning
 * took t - begin, and a new span begins. */
void mo__stats_mark(mo_loop_t *loop, int64_t t);
/* Ends the span with a clock read of its own, if callbacks ran in it. */
void mo__stats_end(mo_loop_t *loop);
/* The loop is about to sleep or leave mo_loop_run(): ends the span and
 * tells the watchdog that no callback runs. */
void mo__loop_idle(mo_loop_t *loop);

/* Makes the ready queue stop after the current callback so the loop polls
 * I/O and runs timers before the next call: the cooperator asks for this
 * after every slice (DESIGN rule 1). */
static inline void mo__loop_request_poll(mo_loop_t *loop)
{
    loop->poll_now = true;
}

/* ---- hooks for the layers above (hooks.c) ---- */

/* Attaches `state` under `hooks` (the key). Loop thread. A state attached
 * to a closed loop gets no close call: a layer whose state must be closed
 * refuses closed loops itself (the default pool does). Errors: MO_EBUSY
 * (already attached), MO_ENOMEM (every slot taken: a bug, not a run-time
 * condition). */
int mo__loop_attach(mo_loop_t *loop, const struct mo__hooks *hooks, void *state);

/* The state attached under `hooks`, or NULL. */
void *mo__loop_state(const mo_loop_t *loop, const struct mo__hooks *hooks);

/* Forgets the state attached under `hooks` without calling its hooks (the
 * layer freed it itself). Returns the state, or NULL if none. */
void *mo__loop_detach(mo_loop_t *loop, const struct mo__hooks *hooks);

/* Runs the close hooks, then the free hooks, in reverse order (loop.c). */
void mo__loop_hooks_close(mo_loop_t *loop);
void mo__loop_hooks_free(mo_loop_t *loop);

/* A completion from another thread is coming (+1) or has run or been
 * taken back (-1): see `expected`. Loop thread. */
static inline void mo__loop_expect(mo_loop_t *loop, int delta)
{
    loop->expected += (uint64_t)(int64_t)delta;
}

#define MO__SPIN_MAX    MO_USEC(50) /* the longest spin before a sleep */
#define MO__SPIN_PAUSES 32          /* spin steps that only pause (about 1 us) */

/* Before the loop sleeps while completions are expected: spins a little
 * (at most `timeout` ns if >= 0) in case one arrives at once (wake.c). */
void mo__wake_spin(mo_loop_t *loop, int64_t timeout);

/* One pause of a spin-wait. */
static inline void mo__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif /* MORSEL_CORE_INT_H */
