/* Delayed calls: mo_call_later() and the operations on its ids.
 *
 * Timers live in a per-loop slab (no malloc per call once it has grown) and
 * are ordered by a hierarchical timing wheel in front of a small binary heap.
 * Scheduling and cancelling a timer more than a tick away is O(1): a link
 * into a wheel slot. As time moves on, the slots that come due are emptied
 * into the heap, which orders them exactly by (deadline, seq). Each timer
 * moves at most once per wheel level, and the heap only ever holds the
 * timers of the next tick or so, which keeps it small and cache-resident.
 * The invariants are written down in core_int.h above struct mo__timers.
 */
#include "core_int.h"

#include <stdlib.h>
#include <string.h>

static inline uint64_t tick_of(int64_t deadline)
{
    return (uint64_t)deadline >> MO__TICK_SHIFT;
}

static inline struct mo__timer *timer_at(const struct mo__timers *ts, uint32_t index)
{
    return &ts->chunks[index / MO__TIMER_CHUNK][index % MO__TIMER_CHUNK];
}

static inline mo_call_id timer_id(const struct mo__timer *t)
{
    return ((uint64_t)t->gen << 32) | t->index;
}

int mo__timers_init(struct mo__timers *ts)
{
    memset(ts, 0, sizeof(*ts));
    return 0;
}

void mo__timers_destroy(struct mo__timers *ts)
{
    for (uint32_t i = 0; i < ts->nchunks; i++) mo__free(ts->chunks[i]);
    mo__free(ts->chunks);
    mo__free(ts->heap);
    mo__free(ts->free_bits);
    mo__free(ts->free_sum);
    memset(ts, 0, sizeof(*ts));
}

/* Reallocates a bitmap of `old` words to `words` words, the new ones 0. */
static int bits_resize(uint64_t **bits, size_t old, size_t words)
{
    uint64_t *b = mo__realloc(*bits, words * sizeof(*b));
    if (!b) return MO_ENOMEM;
    memset(b + old, 0, (words - old) * sizeof(*b));
    *bits = b;
    return 0;
}

static inline size_t sum_words(uint32_t slots)
{
    return (slots / 64 + 63) / 64;
}

/* Grows the heap and the free bitmaps to hold `slots` slots each,
 * geometrically, so that a growing slab does not copy them at every chunk.
 * Slot counts are multiples of MO__TIMER_CHUNK, hence of 64. */
static int timers_reserve(struct mo__timers *ts, uint32_t slots)
{
    if (slots <= ts->heap_cap) return 0;
    const uint32_t max = UINT32_MAX / 2 / MO__TIMER_CHUNK * MO__TIMER_CHUNK;
    uint32_t cap = ts->heap_cap > max / 2 ? max : ts->heap_cap * 2;
    if (cap < slots) cap = slots;
    struct mo__heap_entry *heap = mo__realloc(ts->heap, (size_t)cap * sizeof(*heap));
    if (!heap) return MO_ENOMEM;
    ts->heap = heap;
    if (bits_resize(&ts->free_bits, ts->heap_cap / 64, cap / 64) != 0 ||
        bits_resize(&ts->free_sum, sum_words(ts->heap_cap), sum_words(cap)) != 0)
        return MO_ENOMEM;
    ts->heap_cap = cap;
    return 0;
}

static void free_put(struct mo__timers *ts, uint32_t index)
{
    uint32_t w = index / 64;
    ts->free_bits[w] |= UINT64_C(1) << (index % 64);
    ts->free_sum[w / 64] |= UINT64_C(1) << (w % 64);
    if (w / 64 < ts->free_hint) ts->free_hint = w / 64;
}

/* Takes the lowest free slot; there must be one. */
static uint32_t free_take(struct mo__timers *ts)
{
    uint32_t s = ts->free_hint;
    while (!ts->free_sum[s]) s++;
    ts->free_hint = s;
    uint32_t w = s * 64 + (uint32_t)__builtin_ctzll(ts->free_sum[s]);
    uint32_t index = w * 64 + (uint32_t)__builtin_ctzll(ts->free_bits[w]);
    ts->free_bits[w] &= ts->free_bits[w] - 1;
    if (!ts->free_bits[w]) ts->free_sum[s] &= ~(UINT64_C(1) << (w % 64));
    return index;
}

/* Adds a chunk of free timers. The heap can hold every timer of the slab,
 * so that moving timers into it can never fail. */
static int timers_grow(struct mo__timers *ts)
{
    if (ts->nchunks == UINT32_MAX / 2 / MO__TIMER_CHUNK) return MO_ENOMEM;
    if (ts->nchunks == ts->chunks_cap) {
        uint32_t cap = ts->chunks_cap ? ts->chunks_cap * 2 : 8;
        struct mo__timer **chunks =
            mo__realloc(ts->chunks, cap * sizeof(*chunks)); // NOLINT(bugprone-sizeof-expression)
        if (!chunks) return MO_ENOMEM;
        ts->chunks = chunks;
        ts->chunks_cap = cap;
    }
    if (timers_reserve(ts, (ts->nchunks + 1) * MO__TIMER_CHUNK) != 0) return MO_ENOMEM;
    struct mo__timer *chunk = mo__malloc(MO__TIMER_CHUNK * sizeof(*chunk));
    if (!chunk) return MO_ENOMEM;
    uint32_t base = ts->nchunks * MO__TIMER_CHUNK;
    for (uint32_t i = 0; i < MO__TIMER_CHUNK; i++) {
        chunk[i] = (struct mo__timer){.gen = 1, .index = base + i};
        free_put(ts, base + i);
    }
    ts->chunks[ts->nchunks++] = chunk;
    return 0;
}

static struct mo__timer *timer_alloc(struct mo__timers *ts)
{
    if (ts->count == (uint64_t)ts->nchunks * MO__TIMER_CHUNK && timers_grow(ts) != 0) return NULL;
    ts->count++;
    return timer_at(ts, free_take(ts));
}

/* Returns a timer's slot to the free bitmap and retires its id. */
static void timer_release(struct mo__timers *ts, struct mo__timer *t)
{
    t->state = MO__T_FREE;
    t->fn = NULL;
    t->arg = NULL;
    if (++t->gen == 0) t->gen = 1;
    free_put(ts, t->index);
    ts->count--;
}

/* ---- the near heap ---- */

static inline bool entry_before(const struct mo__heap_entry *a, const struct mo__heap_entry *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->t->seq < b->t->seq);
}

static inline void heap_put(struct mo__timers *ts, uint32_t i, struct mo__heap_entry e)
{
    ts->heap[i] = e;
    e.t->heap_idx = i;
}

static void heap_sift_up(struct mo__timers *ts, uint32_t i)
{
    struct mo__heap_entry e = ts->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!entry_before(&e, &ts->heap[parent])) break;
        heap_put(ts, i, ts->heap[parent]);
        i = parent;
    }
    heap_put(ts, i, e);
}

static void heap_sift_down(struct mo__timers *ts, uint32_t i)
{
    struct mo__heap_entry e = ts->heap[i];
    for (;;) {
        uint32_t child = 2 * i + 1;
        if (child >= ts->heap_len) break;
        if (child + 1 < ts->heap_len && entry_before(&ts->heap[child + 1], &ts->heap[child]))
            child++;
        if (!entry_before(&ts->heap[child], &e)) break;
        heap_put(ts, i, ts->heap[child]);
        i = child;
    }
    heap_put(ts, i, e);
}

static void heap_push(struct mo__timers *ts, struct mo__timer *t)
{
    t->state = MO__T_HEAP;
    heap_put(ts, ts->heap_len++, (struct mo__heap_entry){t->deadline, t});
    heap_sift_up(ts, ts->heap_len - 1);
}

static void heap_remove(struct mo__timers *ts, uint32_t i)
{
    struct mo__heap_entry last = ts->heap[--ts->heap_len];
    if (i == ts->heap_len) return;
    heap_put(ts, i, last);
    if (i > 0 && entry_before(&last, &ts->heap[(i - 1) / 2]))
        heap_sift_up(ts, i);
    else
        heap_sift_down(ts, i);
}

/* ---- the wheel ---- */

static void wheel_link(struct mo__timers *ts, struct mo__timer *t, unsigned level, unsigned slot)
{
    /* The chain comes from the timer's address, not from a field: placing a
     * timer just allocated must not wait for its cache line to arrive. */
    unsigned chain = (unsigned)((uintptr_t)t / sizeof(*t)) % MO__WHEEL_CHAINS;
    struct mo__timer **head = &ts->wheel[level][slot].chain[chain];
    t->next = *head;
    if (*head) (*head)->pprev = &t->next;
    *head = t;
    t->pprev = head;
    t->state = MO__T_WHEEL;
    t->level = (uint8_t)level;
    t->slot = (uint8_t)slot;
    ts->bits[level] |= UINT64_C(1) << slot;
}

static bool slot_empty(const struct mo__wheel_slot *slot)
{
    uintptr_t any = 0;
    for (unsigned k = 0; k < MO__WHEEL_CHAINS; k++) any |= (uintptr_t)slot->chain[k];
    return !any;
}

static void wheel_unlink(struct mo__timers *ts, struct mo__timer *t)
{
    *t->pprev = t->next;
    if (t->next) t->next->pprev = t->pprev;
    if (slot_empty(&ts->wheel[t->level][t->slot])) ts->bits[t->level] &= ~(UINT64_C(1) << t->slot);
}

/* The level of a tick: the highest 6-bit block in which it differs from
 * the wheel's position. */
static inline unsigned wheel_level(uint64_t tick, uint64_t curr)
{
    uint64_t diff = tick ^ curr;
    return diff ? (unsigned)(63 - __builtin_clzll(diff)) / MO__WHEEL_BITS : 0;
}

/* Puts a timer where the invariants say it belongs. */
static void timer_place(struct mo__timers *ts, struct mo__timer *t)
{
    uint64_t tick = tick_of(t->deadline);
    if (tick < ts->curr) {
        heap_push(ts, t);
        return;
    }
    unsigned level = wheel_level(tick, ts->curr);
    wheel_link(ts, t, level, (unsigned)(tick >> (MO__WHEEL_BITS * level)) & (MO__WHEEL_SLOTS - 1));
}

static void timer_unplace(struct mo__timers *ts, struct mo__timer *t)
{
    if (t->state == MO__T_HEAP)
        heap_remove(ts, t->heap_idx);
    else
        wheel_unlink(ts, t);
}

/* Empties a slot and re-places its timers. Its chains are walked in step,
 * each next timer prefetched: the timers lie anywhere in the slab, and
 * following one list would wait for one cache miss after another. No timer
 * returns to the slot being emptied: the wheel has moved past it. */
static void slot_replace(struct mo__timers *ts, struct mo__wheel_slot *slot)
{
    struct mo__timer *c[MO__WHEEL_CHAINS];
    memcpy(c, slot->chain, sizeof(c));
    memset(slot->chain, 0, sizeof(c));
    for (bool more = true; more;) {
        more = false;
        for (unsigned k = 0; k < MO__WHEEL_CHAINS; k++) {
            struct mo__timer *t = c[k];
            if (!t) continue;
            c[k] = t->next;
            __builtin_prefetch(c[k], 1);
            timer_place(ts, t);
            more = true;
        }
    }
}

/* Moves the wheel's position forward to `to` and re-places every timer whose
 * place that changes: at each level up to the highest block in which `to`
 * differs from the old position, the slots at or before `to`'s slot. Levels
 * below that highest block are emptied whole: all their timers now lie
 * before `to` and go to the heap. */
static void wheel_advance(struct mo__timers *ts, uint64_t to)
{
    unsigned top = wheel_level(to, ts->curr);
    ts->curr = to;
    for (unsigned level = 0; level <= top; level++) {
        uint64_t mask = ~UINT64_C(0);
        if (level == top) {
            unsigned s = (unsigned)(to >> (MO__WHEEL_BITS * level)) & (MO__WHEEL_SLOTS - 1);
            mask = s == 63 ? ~UINT64_C(0) : (UINT64_C(2) << s) - 1;
        }
        uint64_t pend = ts->bits[level] & mask;
        while (pend) {
            unsigned s = (unsigned)__builtin_ctzll(pend);
            pend &= pend - 1;
            ts->bits[level] &= ~(UINT64_C(1) << s);
            slot_replace(ts, &ts->wheel[level][s]);
        }
    }
}

/* The start of the earliest non-empty slot at the lowest non-empty level,
 * and that level. Needs a pending wheel timer. */
static uint64_t wheel_first_slot(const struct mo__timers *ts, unsigned *levelp)
{
    unsigned level = 0;
    while (!ts->bits[level]) level++;
    unsigned shift = MO__WHEEL_BITS * level;
    uint64_t s = (uint64_t)__builtin_ctzll(ts->bits[level]);
    uint64_t base = (ts->curr >> (shift + MO__WHEEL_BITS)) << (shift + MO__WHEEL_BITS);
    *levelp = level;
    return base + (s << shift);
}

/* Moves the earliest tick's timers into the heap. A slot of a higher level
 * is first spread over the levels below (the wheel moves to its start,
 * which no timer precedes), so the heap receives one tick, never a whole
 * 64-tick slot. The wheel must not be empty. */
static void wheel_pull_tick(struct mo__timers *ts)
{
    for (;;) {
        unsigned level;
        uint64_t start = wheel_first_slot(ts, &level);
        if (level == 0) {
            wheel_advance(ts, start + 1);
            return;
        }
        wheel_advance(ts, start);
    }
}

int64_t mo__timers_next(struct mo__timers *ts)
{
    if (ts->heap_len) return ts->heap[0].deadline;
    if (!ts->count) return INT64_MAX;
    /* So the answer is exact and the loop never wakes early for a slot. */
    wheel_pull_tick(ts);
    return ts->heap[0].deadline;
}

int64_t mo__timers_second(struct mo__timers *ts, int64_t until)
{
    /* With one timer in the heap, the next tick may hold the second: pull
     * it in too, but only if it could start by `until`. */
    if (ts->heap_len == 1 && ts->count > 1 && until >= 0) {
        unsigned level;
        if (wheel_first_slot(ts, &level) <= tick_of(until)) wheel_pull_tick(ts);
    }
    if (ts->heap_len < 2) return INT64_MAX;
    int64_t second = ts->heap[1].deadline;
    if (ts->heap_len > 2 && ts->heap[2].deadline < second) second = ts->heap[2].deadline;
    return second;
}

/* Runs the heap's calls that are due and were scheduled before `limit`.
 * Returns false if it stopped at one that is not (the heap is not empty). */
static bool heap_run(mo_loop_t *loop, uint64_t limit)
{
    struct mo__timers *ts = &loop->timers;
    while (ts->heap_len) {
        struct mo__timer *t = ts->heap[0].t;
        if (ts->heap[0].deadline > loop->now || t->seq >= limit) return false;
        heap_remove(ts, 0);
        mo_call_fn fn = t->fn;
        void *arg = t->arg;
        mo__stats_lag(loop, loop->now - t->deadline);
        timer_release(ts, t);
        mo__dispatch_publish(loop, MO__FN(fn));
        fn(loop, arg);
    }
    return true;
}

/* The heap only ever receives one tick at a time, even when the loop comes
 * back late: the wheel is moved forward slot by slot, the heap emptied of
 * what is due before the next tick comes in. Ticks are disjoint ranges of
 * deadlines, so this runs the calls in the same (deadline, seq) order as
 * one heap holding them all would, with a heap of one tick's calls instead
 * of (after a 100 ms stall under 1M calls a second) a hundred thousand. */
void mo__timers_run(mo_loop_t *loop, uint64_t limit)
{
    struct mo__timers *ts = &loop->timers;
    if (!ts->count) return;
    uint64_t now_tick = tick_of(loop->now);
    while (heap_run(loop, limit) && ts->count) {
        unsigned level;
        uint64_t start = wheel_first_slot(ts, &level);
        if (start > now_tick) break;
        wheel_advance(ts, level == 0 ? start + 1 : start);
    }
    if (now_tick + 1 > ts->curr) wheel_advance(ts, now_tick + 1);
}

/* ---- the public operations ---- */

static int timer_lookup(const mo_loop_t *loop, mo_call_id id, struct mo__timer **tp)
{
    const struct mo__timers *ts = &loop->timers;
    uint32_t index = (uint32_t)id;
    uint32_t gen = (uint32_t)(id >> 32);
    if (gen == 0 || index / MO__TIMER_CHUNK >= ts->nchunks) return MO_ENOENT;
    struct mo__timer *t = timer_at(ts, index);
    if (gen == t->gen && t->state != MO__T_FREE) {
        *tp = t;
        return 0;
    }
    return gen < t->gen ? MO_EALREADY : MO_ENOENT;
}

/* A deadline already past becomes `now`, so that it orders after the calls
 * due in this iteration instead of before them. */
static int schedule(mo_loop_t *loop, int64_t deadline, mo_call_fn fn, void *arg, mo_call_id *idp)
{
    struct mo__timers *ts = &loop->timers;
    struct mo__timer *t = timer_alloc(ts);
    if (!t) return MO_ENOMEM;
    t->deadline = deadline < loop->now ? loop->now : deadline;
    t->seq = ts->seq++;
    t->fn = fn;
    t->arg = arg;
    timer_place(ts, t);
    if (idp) *idp = timer_id(t);
    /* An attached loop's host sleeps until the deadline it was told. */
    if (MO__UNLIKELY(t->deadline < loop->kick_before)) mo__embed_kick(loop);
    return 0;
}

int mo_call_later(mo_loop_t *loop, int64_t delay, mo_call_fn fn, void *arg, mo_call_id *idp)
{
    if (!loop || !fn || delay < 0) return MO_EINVAL;
    if (delay > INT64_MAX - loop->now) return MO_ERANGE;
    return schedule(loop, loop->now + delay, fn, arg, idp);
}

int mo_call_at(mo_loop_t *loop, int64_t deadline, mo_call_fn fn, void *arg, mo_call_id *idp)
{
    if (!loop || !fn || deadline < 0) return MO_EINVAL;
    return schedule(loop, deadline, fn, arg, idp);
}

int mo_call_cancel(mo_loop_t *loop, mo_call_id id)
{
    if (!loop) return MO_EINVAL;
    struct mo__timer *t;
    int err = timer_lookup(loop, id, &t);
    if (err) return err;
    timer_unplace(&loop->timers, t);
    timer_release(&loop->timers, t);
    return 0;
}

static int timer_move(mo_loop_t *loop, struct mo__timer *t, int64_t deadline)
{
    struct mo__timers *ts = &loop->timers;
    timer_unplace(ts, t);
    t->deadline = deadline < loop->now ? loop->now : deadline;
    t->seq = ts->seq++;
    timer_place(ts, t);
    if (MO__UNLIKELY(t->deadline < loop->kick_before)) mo__embed_kick(loop);
    return 0;
}

int mo_call_reset(mo_loop_t *loop, mo_call_id id, int64_t delay)
{
    if (!loop || delay < 0) return MO_EINVAL;
    struct mo__timer *t;
    int err = timer_lookup(loop, id, &t);
    if (err) return err;
    if (delay > INT64_MAX - loop->now) return MO_ERANGE;
    return timer_move(loop, t, loop->now + delay);
}

int mo_call_delay(mo_loop_t *loop, mo_call_id id, int64_t by)
{
    if (!loop) return MO_EINVAL;
    struct mo__timer *t;
    int err = timer_lookup(loop, id, &t);
    if (err) return err;
    if (by > 0 && t->deadline > INT64_MAX - by) return MO_ERANGE;
    if (t->deadline + by < 0) return MO_EINVAL;
    return timer_move(loop, t, t->deadline + by);
}

int mo_call_active(const mo_loop_t *loop, mo_call_id id)
{
    if (!loop) return 0; /* not MO_EINVAL, which would read as true */
    struct mo__timer *t;
    return timer_lookup(loop, id, &t) == 0;
}

int mo_call_time(const mo_loop_t *loop, mo_call_id id, int64_t *when)
{
    if (!loop || !when) return MO_EINVAL;
    struct mo__timer *t;
    int err = timer_lookup(loop, id, &t);
    if (err) return err;
    *when = t->deadline;
    return 0;
}

/* ---- checking the invariants (tests) ---- */

/* A slot's free bit is set iff its timer is free; the summary and the hint
 * agree with the bits. */
static void verify_free(const struct mo__timers *ts)
{
    uint32_t slots = ts->nchunks * MO__TIMER_CHUNK;
    for (uint32_t i = 0; i < slots; i++) {
        bool bit = (ts->free_bits[i / 64] >> (i % 64)) & 1;
        MO__CHECK(bit == (timer_at(ts, i)->state == MO__T_FREE), "slot %u: free bit %d", i, bit);
    }
    for (uint32_t w = 0; w < ts->heap_cap / 64; w++) {
        bool sum = (ts->free_sum[w / 64] >> (w % 64)) & 1;
        MO__CHECK(sum == (ts->free_bits[w] != 0), "free word %u: summary bit %d", w, sum);
        MO__CHECK(w * 64 < slots || !ts->free_bits[w], "free word %u beyond the slab", w);
    }
    for (uint32_t s = 0; s < ts->free_hint; s++)
        MO__CHECK(!ts->free_sum[s], "summary word %u below the hint %u", s, ts->free_hint);
}

void mo__timer_verify(const struct mo__timers *ts)
{
    uint64_t pending = 0, in_heap = 0;
    for (uint32_t i = 0; i < ts->nchunks * MO__TIMER_CHUNK; i++) {
        const struct mo__timer *t = timer_at(ts, i);
        MO__CHECK(t->index == i, "slot %u has index %u", i, t->index);
        if (t->state == MO__T_FREE) continue;
        pending++;
        uint64_t tick = tick_of(t->deadline);
        if (t->state == MO__T_HEAP) {
            in_heap++;
            MO__CHECK(t->heap_idx < ts->heap_len && ts->heap[t->heap_idx].t == t,
                      "timer %u: bad heap index", i);
            MO__CHECK(tick < ts->curr, "timer %u: heap tick %llu >= curr %llu", i,
                      (unsigned long long)tick, (unsigned long long)ts->curr);
        } else {
            MO__CHECK(t->state == MO__T_WHEEL, "timer %u: bad state %u", i, t->state);
            MO__CHECK(tick >= ts->curr, "timer %u: wheel tick before curr", i);
            unsigned level = wheel_level(tick, ts->curr);
            unsigned slot = (unsigned)(tick >> (MO__WHEEL_BITS * level)) & 63;
            MO__CHECK(t->level == level && t->slot == slot, "timer %u: misplaced", i);
            MO__CHECK(*t->pprev == t, "timer %u: broken slot list", i);
            MO__CHECK(ts->bits[level] & (UINT64_C(1) << slot), "timer %u: slot bit clear", i);
        }
    }
    verify_free(ts);
    MO__CHECK(pending == ts->count, "count %llu, found %llu", (unsigned long long)ts->count,
              (unsigned long long)pending);
    MO__CHECK(in_heap == ts->heap_len, "heap_len %u, found %llu", ts->heap_len,
              (unsigned long long)in_heap);
    for (uint32_t i = 1; i < ts->heap_len; i++)
        MO__CHECK(!entry_before(&ts->heap[i], &ts->heap[(i - 1) / 2]), "heap order at %u", i);
    for (unsigned l = 0; l < MO__WHEEL_LEVELS; l++)
        for (unsigned s = 0; s < MO__WHEEL_SLOTS; s++)
            MO__CHECK(slot_empty(&ts->wheel[l][s]) == !(ts->bits[l] & (UINT64_C(1) << s)),
                      "level %u slot %u: bit disagrees with list", l, s);
}
