/* Loop statistics: log-linear histograms of timer lag and callback
 * durations, fed by hooks in the reactor that add no clock read per call.
 *
 * A histogram has 16 linear buckets per power of two: values 0..15 have a
 * bucket each; a value v >= 16 with highest bit e goes to bucket
 * (e - 3) * 16 + the 4 bits below the highest. So a bucket's width is 1/16
 * of its power of two and recording is a count-leading-zeros, a shift and
 * an increment.
 *
 * Durations are measured per span: the callbacks run between two clock
 * reads the loop makes anyway (iteration start, each batch of ready calls,
 * the wake-up after a blocking poll), plus one read before the loop sleeps
 * if callbacks ran since the last one. A span's callback count comes from
 * the dispatch counter the loop bumps for the watchdog.
 */
#include "core_int.h"

#include <string.h>

#define SUB_BITS 4
#define SUB      (1u << SUB_BITS)
#define NBUCKETS ((64 - SUB_BITS + 1) * SUB)
/* A span counts as holding one slow callback when it ran this much longer
 * than the previous spans' cost per call predicted. */
#define OUTLIER_FACTOR 4
#define OUTLIER_MIN    MO_USEC(10)

struct hist {
    uint64_t count;
    uint64_t sum;
    int64_t max;
    uint64_t bucket[NBUCKETS];
};

struct mo__stats {
    bool on;
    int64_t span_start;
    uint64_t span_seq;
    int64_t per_call; /* cost of a call in the last span, for outliers */
    struct hist lag;
    struct hist callback;
};

static inline unsigned bucket_of(uint64_t v)
{
    if (v < SUB) return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    return (e - SUB_BITS + 1) * SUB + (unsigned)((v >> (e - SUB_BITS)) & (SUB - 1));
}

static void bucket_bounds(unsigned i, int64_t *lo, int64_t *hi)
{
    if (i < SUB) {
        *lo = *hi = i;
        return;
    }
    unsigned shift = i / SUB - 1;
    uint64_t low = (uint64_t)(SUB + i % SUB) << shift;
    uint64_t high = low + ((uint64_t)1 << shift) - 1;
    *lo = (int64_t)low;
    *hi = high > INT64_MAX ? INT64_MAX : (int64_t)high;
}

static inline void hist_add(struct hist *h, int64_t v, uint64_t n)
{
    if (v < 0) v = 0;
    h->bucket[bucket_of((uint64_t)v)] += n;
    h->count += n;
    h->sum += (uint64_t)v * n;
    if (v > h->max) h->max = v;
}

/* The upper bound of the bucket holding rank ceil(q * count), capped by max. */
static int64_t hist_quantile(const struct hist *h, double q)
{
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999), seen = 0;
    if (rank < 1) rank = 1;
    for (unsigned i = 0; i < NBUCKETS; i++) {
        if ((seen += h->bucket[i]) < rank) continue;
        int64_t lo, hi;
        bucket_bounds(i, &lo, &hi);
        return hi < h->max ? hi : h->max;
    }
    return h->max;
}

static void summarize(const struct hist *h, struct mo_stats_summary *out)
{
    memset(out, 0, sizeof(*out));
    if (!h->count) return;
    out->count = h->count;
    out->mean = (int64_t)(h->sum / h->count);
    out->p50 = hist_quantile(h, 0.50);
    out->p99 = hist_quantile(h, 0.99);
    out->p999 = hist_quantile(h, 0.999);
    out->max = h->max;
}

/* ---- the reactor's hooks ---- */

int mo__stats_new(mo_loop_t *loop)
{
    struct mo__stats *s = mo__calloc(1, sizeof(*s));
    if (!s) return MO_ENOMEM;
    s->on = true;
    loop->stats = s;
    return 0;
}

void mo__stats_free(mo_loop_t *loop)
{
    mo__free(loop->stats);
    loop->stats = NULL;
}

void mo__stats_lag(mo_loop_t *loop, int64_t late)
{
    struct mo__stats *s = loop->stats;
    if (s->on) hist_add(&s->lag, late, 1);
}

static uint64_t dispatch_seq(const mo_loop_t *loop)
{
    return atomic_load_explicit(&loop->dispatch.seq, memory_order_relaxed);
}

void mo__stats_begin(mo_loop_t *loop, int64_t t)
{
    struct mo__stats *s = loop->stats;
    s->span_start = t;
    s->span_seq = dispatch_seq(loop);
}

/* n callbacks took d ns together. */
static void record_span(struct mo__stats *s, uint64_t n, int64_t d)
{
    if (n == 1) {
        hist_add(&s->callback, d, 1);
        s->per_call = d;
        return;
    }
    int64_t expect = s->per_call * (int64_t)n;
    if (d > OUTLIER_FACTOR * expect && d - expect > OUTLIER_MIN) {
        hist_add(&s->callback, s->per_call, n - 1);
        hist_add(&s->callback, d - s->per_call * (int64_t)(n - 1), 1);
        return;
    }
    s->per_call = d / (int64_t)n;
    hist_add(&s->callback, s->per_call, n);
}

void mo__stats_mark(mo_loop_t *loop, int64_t t)
{
    struct mo__stats *s = loop->stats;
    uint64_t seq = dispatch_seq(loop);
    if (seq != s->span_seq && s->on) record_span(s, seq - s->span_seq, t - s->span_start);
    s->span_start = t;
    s->span_seq = seq;
}

void mo__stats_end(mo_loop_t *loop)
{
    if (dispatch_seq(loop) != loop->stats->span_seq) mo__stats_mark(loop, mo_hrtime());
}

void mo__loop_idle(mo_loop_t *loop)
{
    mo__stats_end(loop);
    mo__dispatch_publish(loop, 0);
    loop->stats->span_seq = dispatch_seq(loop);
}

/* ---- the public side ---- */

int mo_loop_stats(mo_loop_t *loop, struct mo_loop_stats *out)
{
    if (!loop || !out) return MO_EINVAL;
    summarize(&loop->stats->lag, &out->lag);
    summarize(&loop->stats->callback, &out->callback);
    return 0;
}

int mo_loop_stats_reset(mo_loop_t *loop)
{
    if (!loop) return MO_EINVAL;
    struct mo__stats *s = loop->stats;
    memset(&s->lag, 0, sizeof(s->lag));
    memset(&s->callback, 0, sizeof(s->callback));
    return 0;
}

int mo_loop_stats_enable(mo_loop_t *loop, int on)
{
    if (!loop) return MO_EINVAL;
    loop->stats->on = on != 0;
    return 0;
}

int mo_loop_stats_buckets(mo_loop_t *loop, int which,
                          void (*fn)(int64_t lo, int64_t hi, uint64_t count, void *arg), void *arg)
{
    if (!loop || !fn || (which != MO_STATS_LAG && which != MO_STATS_CALLBACK)) return MO_EINVAL;
    const struct hist *h = which == MO_STATS_LAG ? &loop->stats->lag : &loop->stats->callback;
    for (unsigned i = 0; i < NBUCKETS; i++) {
        if (!h->bucket[i]) continue;
        int64_t lo, hi;
        bucket_bounds(i, &lo, &hi);
        fn(lo, hi, h->bucket[i], arg);
    }
    return 0;
}
