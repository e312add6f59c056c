/* fact: N! with GMP as a DAG of pieces. See fact.h for the method.
 *
 * Invariants of a plan, once built:
 *  - a piece's inputs are pieces created before it, so creation order is a
 *    valid running order, and the ready heap runs pieces in creation order
 *    among those ready: the builder creates them most urgent first;
 *  - `waiting` counts a piece's input edges whose piece is not done yet;
 *    `users[w]` counts the edges still to consume output w (plus one for the
 *    final result), and the output is freed when it reaches 0. */
#include "fact.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum kind { K_LEAF, K_MUL, K_CHUNK, K_GATHER, K_SHIFT, K_POW5, K_DIVMOD, K_TEXT, K_HEX };

/* Tuning, measured on the machine of BENCHMARKS.md: a product of 2 x 75k
 * bits takes ~0.2 ms, so a piece that runs on the loop stays well inside a
 * 1 ms slice; bigger ones go to workers. */
enum {
    LEAF_SPAN = 1 << 16,       /* numbers sieved by one leaf */
    BIG_MUL_BITS = 150000,     /* sum of operand bits above which a product is big */
    BIG_LINEAR_BITS = 4000000, /* copies and sums above this are big */
    BIG_CONVERT_BITS = 60000,  /* radix conversions above this are big */
    CHUNK_MIN_BITS = 32768,    /* unbalanced products cut into chunks at least this big */
    MAX_CHUNKS = 64,
    HEX_LIMBS = 1 << 14,     /* limbs per hexadecimal chunk */
    DEC_LEAF_DIGITS = 400000 /* decimal conversion stops splitting here */
};

struct ref {
    int piece;
    unsigned which;
};

struct piece {
    uint8_t kind;
    bool big;
    bool done;
    int waiting;
    int users[2];
    size_t in_off, in_cnt; /* into plan->inputs */
    unsigned long a, b, c; /* per kind: see the add_* builders */
    double bits;           /* estimated size of output 0 */
    mpz_t out[2];
};

struct text {
    char *bytes;
    size_t len;
    bool ready;
};

struct fact_plan {
    unsigned long n;
    enum fact_output output;
    bool strip5;
    struct piece *pieces;
    size_t npieces, cap;
    struct ref *inputs;
    size_t ninputs, incap;
    int *dep_off, *deps; /* dependents, CSR by piece */
    int *heap;           /* ready pieces, a min-heap of ids */
    size_t nheap;
    size_t ndone;
    unsigned *base; /* odd primes up to sqrt(n) */
    size_t nbase;
    struct text *texts;
    size_t ntexts, textcap;
    unsigned long zeros; /* trailing '0's of the text */
    struct ref result;
    int err;                                    /* first build error */
    double work_total, work_done, work_started; /* for progress: see piece_cost() */
    fact_release_fn release;                    /* frees big numbers elsewhere; NULL: mpz_clear */
    void *release_arg;
    size_t release_min; /* bytes */
};

/* ---- building ---- */

static int add_piece(struct fact_plan *p, enum kind kind, double bits)
{
    if (p->err) return -1;
    if (p->npieces == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 256;
        struct piece *np = realloc(p->pieces, cap * sizeof *np);
        if (!np) {
            p->err = -ENOMEM;
            return -1;
        }
        p->pieces = np;
        p->cap = cap;
    }
    struct piece *pc = &p->pieces[p->npieces];
    memset(pc, 0, sizeof *pc);
    pc->kind = (uint8_t)kind;
    pc->bits = bits;
    pc->in_off = p->ninputs;
    mpz_init(pc->out[0]);
    mpz_init(pc->out[1]);
    return (int)p->npieces++;
}

static void add_input(struct fact_plan *p, int id, struct ref r)
{
    if (p->err || id < 0) return;
    if (p->ninputs == p->incap) {
        size_t cap = p->incap ? 2 * p->incap : 512;
        struct ref *ni = realloc(p->inputs, cap * sizeof *ni);
        if (!ni) {
            p->err = -ENOMEM;
            return;
        }
        p->inputs = ni;
        p->incap = cap;
    }
    p->inputs[p->ninputs++] = r;
    p->pieces[id].in_cnt++;
}

static struct ref R0(int id) {
    return (struct ref){id, 0};
}

static double
ref_bits(const struct fact_plan *p, struct ref r)
{
    return r.piece < 0 ? 0 : p->pieces[r.piece].bits;
}

/* A product of two earlier outputs (the same one twice: a square). */
static struct ref add_mul(struct fact_plan *p, struct ref x, struct ref y)
{
    double bits = ref_bits(p, x) + ref_bits(p, y);
    int id = add_piece(p, K_MUL, bits);
    add_input(p, id, x);
    add_input(p, id, y);
    if (id >= 0) p->pieces[id].big = bits > BIG_MUL_BITS;
    return R0(id);
}

/* x * y for a large x and a much smaller y: x is cut into chunks of about
 * four times y's size, each chunk times y is one piece, and a gather sums them. Balanced
 * products are cheaper than GMP's single unbalanced FFT and run in parallel. */
static struct ref add_mul_unbalanced(struct fact_plan *p, struct ref x, struct ref y)
{
    double xb = ref_bits(p, x), yb = ref_bits(p, y);
    if (xb + yb <= BIG_MUL_BITS || xb < 3 * yb || yb < CHUNK_MIN_BITS) return add_mul(p, x, y);
    double cb = 4 * yb > xb / MAX_CHUNKS ? 4 * yb : xb / MAX_CHUNKS; /* measured best: 4 y */
    if (cb > xb / 2) cb = xb / 2;
    unsigned long climbs = (unsigned long)(cb / GMP_NUMB_BITS) + 1;
    unsigned long nchunks = (unsigned long)(xb / GMP_NUMB_BITS / (double)climbs) + 1;
    int first = -1;
    for (unsigned long j = 0; j < nchunks; j++) {
        int id = add_piece(p, K_CHUNK, climbs * (double)GMP_NUMB_BITS + yb);
        if (id < 0) return R0(-1);
        if (j == 0) first = id;
        add_input(p, id, x);
        add_input(p, id, y);
        struct piece *pc = &p->pieces[id];
        pc->a = j;
        pc->b = climbs;
        pc->c = j + 1 == nchunks; /* the last chunk takes whatever is left */
        pc->big = pc->bits > BIG_MUL_BITS;
    }
    int g = add_piece(p, K_GATHER, xb + yb);
    for (unsigned long j = 0; j < nchunks; j++) add_input(p, g, R0(first + (int)j));
    if (g >= 0) {
        p->pieces[g].b = climbs;
        p->pieces[g].big = xb + yb > BIG_LINEAR_BITS;
    }
    return R0(g);
}

#define LOG2_5  2.321928094887362
#define LOG2_10 3.321928094887362
#define LOG10_2 0.301029995663981
#define LOG2_E  1.442695040888963

/* log2(x) for x >= 1, without libm (the tests do not link it): the top
 * bit's position, then ln of the mantissa y in [1, 2) as 2 atanh((y-1)/(y+1)). */
static double log2_of(double x)
{
    int e = 0;
    while (x >= 2) x /= 2, e++;
    double z = (x - 1) / (x + 1), z2 = z * z, term = z, sum = 0;
    for (int k = 1; k < 40; k += 2, term *= z2) sum += term / k;
    return e + 2 * sum * LOG2_E;
}

/* log2(m!) by Stirling's series: within 1e-6 bits for m >= 8, exact below. */
static double log2_fact(unsigned long m)
{
    if (m < 8) {
        double f = 1;
        for (unsigned long k = 2; k <= m; k++) f *= (double)k;
        return log2_of(f);
    }
    double x = (double)m;
    return x * log2_of(x) - x * LOG2_E + 0.5 * log2_of(2 * 3.141592653589793 * x) +
           LOG2_E / (12 * x);
}

static unsigned long isqrt(unsigned long n)
{
    unsigned long r = n, y = (n + 1) / 2;
    if (n < 2) return n;
    while (y < r) r = y, y = (r + n / r) / 2;
    return r;
}

static struct ref add_tree(struct fact_plan *p, const int *ids, size_t n)
{
    if (n == 1) return R0(ids[0]);
    struct ref l = add_tree(p, ids, n / 2);
    struct ref r = add_tree(p, ids + n / 2, n - n / 2);
    return add_mul(p, l, r);
}

/* oddswing(m): leaves of LEAF_SPAN numbers each, multiplied in a tree. The
 * swing has about m bits, spread evenly enough over [3, m]. */
static struct ref add_swing(struct fact_plan *p, unsigned long m)
{
    size_t nleaves = m < 3 ? 1 : (m - 3) / LEAF_SPAN + 1;
    int *ids = malloc(nleaves * sizeof *ids);
    if (!ids) {
        p->err = -ENOMEM;
        return R0(-1);
    }
    for (size_t i = 0; i < nleaves; i++) {
        unsigned long lo = 3 + i * (unsigned long)LEAF_SPAN;
        unsigned long hi = m < 3 ? lo : (lo + LEAF_SPAN > m + 1 ? m + 1 : lo + LEAF_SPAN);
        ids[i] = add_piece(p, K_LEAF, (double)(hi - lo));
        if (ids[i] < 0) break;
        p->pieces[ids[i]].a = lo;
        p->pieces[ids[i]].b = hi;
        p->pieces[ids[i]].c = m;
    }
    struct ref r = p->err ? R0(-1) : add_tree(p, ids, nleaves);
    free(ids);
    return r;
}

static unsigned long v_p(unsigned long n, unsigned long q)
{
    unsigned long v = 0;
    while (n) v += (n /= q);
    return v;
}

/* The odd part of N! (without the factors 5 if p->strip5), as the chain
 * oddfac(m) = oddfac(m/2)^2 * oddswing(m) from the smallest m up. */
static struct ref add_oddfac(struct fact_plan *p)
{
    unsigned levels = 0;
    while ((p->n >> levels) >= 3) levels++;
    if (levels == 0) return add_swing(p, p->n);
    struct ref x = {-1, 0};
    for (unsigned k = levels; k-- > 0;) {
        unsigned long m = p->n >> k;
        struct ref s = add_swing(p, m);
        if (x.piece < 0) {
            x = s;
            continue;
        }
        struct ref sq = add_mul(p, x, x);
        x = add_mul_unbalanced(p, sq, s);
        double b = log2_fact(m) - (double)v_p(m, 2);
        if (p->strip5) b -= LOG2_5 * (double)v_p(m, 5);
        if (x.piece >= 0) p->pieces[x.piece].bits = b;
    }
    return x;
}

static struct ref add_shift(struct fact_plan *p, struct ref x, unsigned long bits)
{
    int id = add_piece(p, K_SHIFT, ref_bits(p, x) + (double)bits);
    add_input(p, id, x);
    if (id >= 0) {
        p->pieces[id].a = bits;
        p->pieces[id].big = p->pieces[id].bits > BIG_LINEAR_BITS;
    }
    return R0(id);
}

static int add_text(struct fact_plan *p)
{
    if (p->err) return -1;
    if (p->ntexts == p->textcap) {
        size_t cap = p->textcap ? 2 * p->textcap : 16;
        struct text *nt = realloc(p->texts, cap * sizeof *nt);
        if (!nt) {
            p->err = -ENOMEM;
            return -1;
        }
        p->texts = nt;
        p->textcap = cap;
    }
    memset(&p->texts[p->ntexts], 0, sizeof p->texts[0]);
    return (int)p->ntexts++;
}

/* 5^s, shared by every split at s digits. */
static struct ref add_pow5(struct fact_plan *p, unsigned long s)
{
    for (size_t i = 0; i < p->npieces; i++)
        if (p->pieces[i].kind == K_POW5 && p->pieces[i].a == s) return R0((int)i);
    int id = add_piece(p, K_POW5, (double)s * LOG2_5);
    if (id >= 0) {
        p->pieces[id].a = s;
        p->pieces[id].big = p->pieces[id].bits > BIG_MUL_BITS / 4.0;
    }
    return R0(id);
}

/* The decimal text of x, which has about d digits and `bits` bits; `width`
 * > 0 pads it with leading zeros to exactly that many, 0 is the top. */
static void add_decimal(struct fact_plan *p, struct ref x, double bits, unsigned long width,
                        unsigned long d)
{
    if (d <= DEC_LEAF_DIGITS) {
        int id = add_piece(p, K_TEXT, 0);
        add_input(p, id, x);
        int t = add_text(p);
        if (id < 0 || t < 0) return;
        p->pieces[id].a = width;
        p->pieces[id].b = (unsigned long)t;
        p->pieces[id].big = bits > BIG_CONVERT_BITS;
        return;
    }
    unsigned long s = d / 2;
    double lo_bits = (double)s * LOG2_10;
    struct ref pw = add_pow5(p, s);
    int id = add_piece(p, K_DIVMOD, bits - lo_bits);
    add_input(p, id, x);
    add_input(p, id, pw);
    if (id < 0) return;
    p->pieces[id].a = s;
    p->pieces[id].big = bits > BIG_CONVERT_BITS;
    add_decimal(p, R0(id), bits - lo_bits, width ? width - s : 0, d - s);
    add_decimal(p, (struct ref){id, 1}, lo_bits, s, s);
}

static void add_hex(struct fact_plan *p, struct ref x)
{
    unsigned long limbs = (unsigned long)(ref_bits(p, x) / GMP_NUMB_BITS) + 1;
    unsigned long nchunks = (limbs + HEX_LIMBS - 1) / HEX_LIMBS;
    for (unsigned long j = nchunks; j-- > 0;) {
        int id = add_piece(p, K_HEX, 0);
        add_input(p, id, x);
        int t = add_text(p);
        if (id < 0 || t < 0) return;
        p->pieces[id].a = j;
        p->pieces[id].b = (unsigned long)t;
        p->pieces[id].c = j + 1 == nchunks; /* the top chunk takes what is left */
    }
}

static int sieve_base(struct fact_plan *p)
{
    unsigned long lim = isqrt(p->n) + 2;
    unsigned char *comp = calloc(lim + 1, 1);
    p->base = malloc((lim / 2 + 2) * sizeof *p->base);
    if (!comp || !p->base) {
        free(comp);
        return -ENOMEM;
    }
    for (unsigned long i = 3; i <= lim; i += 2) {
        if (comp[i]) continue;
        p->base[p->nbase++] = (unsigned)i;
        for (unsigned long j = i * i; j <= lim; j += 2 * i) comp[j] = 1;
    }
    free(comp);
    return 0;
}

/* Dependents in CSR form, waiting counts and users, then the first ready. */
static int link_plan(struct fact_plan *p)
{
    size_t n = p->npieces;
    p->dep_off = calloc(n + 1, sizeof *p->dep_off);
    p->deps = malloc((p->ninputs + 1) * sizeof *p->deps);
    p->heap = calloc(n + 1, sizeof *p->heap);
    if (!p->dep_off || !p->deps || !p->heap) return -ENOMEM;
    for (size_t i = 0; i < p->ninputs; i++) {
        p->dep_off[p->inputs[i].piece + 1]++;
        p->pieces[p->inputs[i].piece].users[p->inputs[i].which]++;
    }
    for (size_t i = 0; i < n; i++) p->dep_off[i + 1] += p->dep_off[i];
    int *fill = calloc(n + 1, sizeof *fill); /* + 1: never calloc(0), which may give NULL */
    if (!fill) return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        struct piece *pc = &p->pieces[i];
        pc->waiting = (int)pc->in_cnt;
        for (size_t k = 0; k < pc->in_cnt; k++) {
            int src = p->inputs[pc->in_off + k].piece;
            p->deps[p->dep_off[src] + fill[src]++] = (int)i;
        }
    }
    free(fill);
    return 0;
}

/* A piece's cost for progress: about its running time, in units of the
 * time a product takes per bit times log2 of its bits. Products, chunks
 * and powers cost b log b for their output's b bits; a division or a
 * radix conversion costs more for its input's bits (the factors were
 * measured at N = 300,000 and 3,000,000 on the machine of BENCHMARKS.md);
 * copies and sums are linear. */
static double piece_cost(const struct fact_plan *p, const struct piece *pc)
{
    double b = pc->bits, k = 1;
    switch (pc->kind) {
    case K_GATHER:
    case K_SHIFT:
    case K_HEX:
        return b > 1 ? b / 8 : 1;
    case K_LEAF:
        k = 2.5;
        break;
    case K_DIVMOD:
        k = 2.5;
        b = ref_bits(p, p->inputs[pc->in_off]);
        break;
    case K_TEXT:
        k = 7;
        b = ref_bits(p, p->inputs[pc->in_off]);
        break;
    default:
        break;
    }
    if (b < 2) b = 2;
    return k * b * log2_of(b);
}

static void heap_push(struct fact_plan *p, int id)
{
    size_t i = p->nheap++;
    while (i > 0 && p->heap[(i - 1) / 2] > id) {
        p->heap[i] = p->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    p->heap[i] = id;
}

static int heap_pop(struct fact_plan *p)
{
    if (!p->nheap) return -1;
    int top = p->heap[0], last = p->heap[--p->nheap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= p->nheap) break;
        if (c + 1 < p->nheap && p->heap[c + 1] < p->heap[c]) c++;
        if (p->heap[c] >= last) break;
        p->heap[i] = p->heap[c];
        i = c;
    }
    if (p->nheap) p->heap[i] = last;
    return top;
}

double fact_estimate_bytes(unsigned long n, enum fact_output out)
{
    double bits = n < 2 ? 1 : log2_fact(n);
    /* Peak: the last product's operands, its chunk products and their sum,
     * and GMP's FFT scratch; the conversion's quotients, powers and text.
     * Measured (BENCHMARKS.md) at N = 10^6: 5.4x and 10.5x bits/8. */
    return bits / 8 * (out == FACT_DECIMAL ? 11.0 : 6.0) + (4 << 20);
}

static int build(struct fact_plan *p)
{
    int err = sieve_base(p);
    if (err) return err;
    struct ref x = add_oddfac(p);
    unsigned long v2 = v_p(p->n, 2), v5 = v_p(p->n, 5);
    if (p->output == FACT_VALUE) {
        p->result = add_shift(p, x, v2);
    } else if (p->output == FACT_HEX) {
        p->zeros = v2 / 4;
        add_hex(p, add_shift(p, x, v2 % 4));
    } else {
        p->zeros = v5;
        struct ref y = add_shift(p, x, v2 - v5);
        double digits =
            p->n < 2 ? 1 : (double)(unsigned long)(log2_fact(p->n) * LOG10_2) + 1 - (double)v5;
        add_decimal(p, y, ref_bits(p, y), 0, (unsigned long)digits);
    }
    if (!p->err && p->output != FACT_VALUE && add_text(p) < 0) return p->err;
    return p->err ? p->err : link_plan(p);
}

int fact_plan_new(struct fact_plan **planp, unsigned long n, enum fact_output out)
{
    if (out != FACT_VALUE && out != FACT_DECIMAL && out != FACT_HEX) return -EINVAL;
    /* An mpz holds at most INT_MAX limbs. */
    if (n > 1 && log2_fact(n) > (double)INT_MAX * GMP_NUMB_BITS / 2) return -EOVERFLOW;
    struct fact_plan *p = calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    p->n = n;
    p->output = out;
    p->strip5 = out == FACT_DECIMAL;
    p->result = R0(-1);
    int err = build(p);
    if (err) {
        fact_plan_free(p);
        return err;
    }
    if (p->output == FACT_VALUE) p->pieces[p->result.piece].users[0]++;
    for (size_t i = 0; i < p->npieces; i++) {
        if (!p->pieces[i].waiting) heap_push(p, (int)i);
        p->work_total += piece_cost(p, &p->pieces[i]);
    }
    *planp = p;
    return 0;
}

void fact_plan_free(struct fact_plan *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->npieces; i++) {
        mpz_clear(p->pieces[i].out[0]);
        mpz_clear(p->pieces[i].out[1]);
    }
    for (size_t i = 0; i < p->ntexts; i++) free(p->texts[i].bytes);
    free(p->texts);
    free(p->pieces);
    free(p->inputs);
    free(p->dep_off);
    free(p->deps);
    free(p->heap);
    free(p->base);
    free(p);
}

/* ---- running ---- */

static mpz_srcptr input(const struct fact_plan *p, const struct piece *pc, size_t k)
{
    struct ref r = p->inputs[pc->in_off + k];
    return p->pieces[r.piece].out[r.which];
}

/* The odd part of p^e in swing(m): e = sum of the bits (m / p^i) & 1. */
static mp_limb_t swing_power(unsigned long q, unsigned long m)
{
    if (q > m / q) return (m / q) & 1 ? q : 1;
    mp_limb_t f = 1;
    for (unsigned long t = m / q; t; t /= q)
        if (t & 1) f *= q;
    return f;
}

static void product(mpz_t out, const mp_limb_t *f, size_t n)
{
    if (n <= 16) {
        mpz_set_ui(out, n ? f[0] : 1);
        for (size_t i = 1; i < n; i++) mpz_mul_ui(out, out, f[i]);
        return;
    }
    mpz_t t;
    mpz_init(t);
    product(out, f, n / 2);
    product(t, f + n / 2, n - n / 2);
    mpz_mul(out, out, t);
    mpz_clear(t);
}

/* Sieves the odd numbers of [a, b) and multiplies their swing powers. */
static int run_leaf(const struct fact_plan *p, struct piece *pc)
{
    unsigned long a = pc->a, b = pc->b, m = pc->c, nodd = b > a ? (b - a + 1) / 2 : 0;
    unsigned char *comp = calloc(nodd + 1, 1);
    mp_limb_t *f = malloc((nodd + 1) * sizeof *f);
    if (!comp || !f) {
        free(comp);
        free(f);
        return -ENOMEM;
    }
    for (size_t i = 0; i < p->nbase && (unsigned long)p->base[i] * p->base[i] < b; i++) {
        unsigned long q = p->base[i], x = q * q;
        if (x < a) x = (a + q - 1) / q * q;
        if (!(x & 1)) x += q;
        for (; x < b; x += 2 * q) comp[(x - a) / 2] = 1;
    }
    size_t n = 0;
    mp_limb_t acc = 1;
    for (size_t i = 0; i < nodd; i++) {
        unsigned long q = a + 2 * i;
        if (comp[i] || (q == 5 && p->strip5)) continue;
        mp_limb_t e = swing_power(q, m);
        if (acc > GMP_NUMB_MAX / e) {
            f[n++] = acc;
            acc = e;
        } else {
            acc *= e;
        }
    }
    f[n++] = acc;
    product(pc->out[0], f, n);
    free(comp);
    free(f);
    return 0;
}

static void run_chunk(const struct fact_plan *p, struct piece *pc)
{
    mpz_srcptr x = input(p, pc, 0), y = input(p, pc, 1);
    size_t size = mpz_size(x), lo = pc->a * pc->b, hi = pc->c ? size : lo + pc->b;
    if (hi > size) hi = size;
    if (lo >= hi) {
        mpz_set_ui(pc->out[0], 0);
        return;
    }
    mpz_t part;
    mpz_mul(pc->out[0], mpz_roinit_n(part, mpz_limbs_read(x) + lo, (mp_size_t)(hi - lo)), y);
}

/* Sums chunk products j << (j * climbs limbs). */
static void run_gather(const struct fact_plan *p, struct piece *pc)
{
    size_t total = 1;
    for (size_t j = 0; j < pc->in_cnt; j++) {
        size_t end = j * pc->b + mpz_size(input(p, pc, j));
        if (end > total) total = end;
    }
    mp_limb_t *r = mpz_limbs_write(pc->out[0], (mp_size_t)total + 1);
    memset(r, 0, (total + 1) * sizeof *r);
    for (size_t j = 0; j < pc->in_cnt; j++) {
        mpz_srcptr c = input(p, pc, j);
        size_t off = j * pc->b, cn = mpz_size(c);
        if (!cn) continue;
        mp_limb_t carry = mpn_add_n(r + off, r + off, mpz_limbs_read(c), (mp_size_t)cn);
        if (carry) mpn_add_1(r + off + cn, r + off + cn, (mp_size_t)(total + 1 - off - cn), carry);
    }
    mpz_limbs_finish(pc->out[0], (mp_size_t)total + 1);
}

/* q = x div 10^s, r = x mod 10^s, dividing by 5^s only: q = (x >> s) div 5^s
 * and r = ((x >> s) mod 5^s) << s + (x mod 2^s). */
static void run_divmod(const struct fact_plan *p, struct piece *pc)
{
    mpz_srcptr x = input(p, pc, 0), p5 = input(p, pc, 1);
    mpz_t t;
    mpz_init(t);
    mpz_tdiv_q_2exp(t, x, pc->a);
    mpz_tdiv_qr(pc->out[0], pc->out[1], t, p5);
    mpz_mul_2exp(pc->out[1], pc->out[1], pc->a);
    mpz_tdiv_r_2exp(t, x, pc->a);
    mpz_add(pc->out[1], pc->out[1], t);
    mpz_clear(t);
}

static int run_text(struct fact_plan *p, struct piece *pc)
{
    mpz_srcptr x = input(p, pc, 0);
    size_t width = pc->a, cap = mpz_sizeinbase(x, 10) + 2;
    if (cap < width + 2) cap = width + 2;
    char *s = malloc(cap);
    if (!s) return -ENOMEM;
    size_t len = 0;
    if (mpz_sgn(x) || width) { /* a zero top is empty: the split was above it */
        mpz_get_str(s, 10, x);
        len = strlen(s);
    }
    if (len < width) {
        memmove(s + (width - len), s, len);
        memset(s, '0', width - len);
        len = width;
    }
    p->texts[pc->b].bytes = s;
    p->texts[pc->b].len = len;
    return 0;
}

static int run_hex(struct fact_plan *p, struct piece *pc)
{
    static const char digits[] = "0123456789abcdef";
    mpz_srcptr x = input(p, pc, 0);
    size_t size = mpz_size(x), lo = pc->a * (size_t)HEX_LIMBS;
    size_t hi = pc->c ? size : lo + HEX_LIMBS;
    if (hi > size) hi = size;
    size_t n = hi > lo ? hi - lo : 0;
    char *s = malloc(n * (GMP_NUMB_BITS / 4) + 2);
    if (!s) return -ENOMEM;
    const mp_limb_t *l = mpz_limbs_read(x);
    char *o = s;
    for (size_t i = hi; i-- > lo;)
        for (int sh = GMP_NUMB_BITS - 4; sh >= 0; sh -= 4) *o++ = digits[(l[i] >> sh) & 15];
    size_t len = (size_t)(o - s), skip = 0;
    if (hi == size) /* the top chunk: no leading zeros, but "0" for zero */
        while (skip + 1 < len && s[skip] == '0') skip++;
    if (hi == size && len == 0) s[len++] = '0';
    memmove(s, s + skip, len - skip);
    p->texts[pc->b].bytes = s;
    p->texts[pc->b].len = len - skip;
    return 0;
}

int fact_piece_run(struct fact_plan *p, int id)
{
    struct piece *pc = &p->pieces[id];
    switch (pc->kind) {
    case K_LEAF:
        return run_leaf(p, pc);
    case K_MUL:
        mpz_mul(pc->out[0], input(p, pc, 0), input(p, pc, 1));
        return 0;
    case K_CHUNK:
        run_chunk(p, pc);
        return 0;
    case K_GATHER:
        run_gather(p, pc);
        return 0;
    case K_SHIFT:
        mpz_mul_2exp(pc->out[0], input(p, pc, 0), pc->a);
        return 0;
    case K_POW5:
        mpz_ui_pow_ui(pc->out[0], 5, pc->a);
        return 0;
    case K_DIVMOD:
        run_divmod(p, pc);
        return 0;
    case K_TEXT:
        return run_text(p, pc);
    default:
        return run_hex(p, pc);
    }
}

int fact_plan_take(struct fact_plan *p)
{
    int id = heap_pop(p);
    if (id >= 0) p->work_started += piece_cost(p, &p->pieces[id]);
    return id;
}

bool fact_piece_big(const struct fact_plan *p, int id)
{
    return p->pieces[id].big;
}

void fact_plan_set_release(struct fact_plan *p, size_t min_bytes, fact_release_fn fn, void *arg)
{
    p->release = fn;
    p->release_arg = arg;
    p->release_min = min_bytes;
}

/* An input nobody needs any more: cleared here, or, if big, handed to the
 * release hook; z is left an empty number either way. */
static void release(struct fact_plan *p, mpz_t z)
{
    mpz_t *g = NULL;
    if (p->release && mpz_size(z) * sizeof(mp_limb_t) >= p->release_min) g = malloc(sizeof *g);
    if (g) {
        mpz_init(*g);
        mpz_swap(*g, z);
        p->release(g, p->release_arg);
    } else {
        mpz_clear(z);
        mpz_init(z);
    }
}

void fact_piece_done(struct fact_plan *p, int id)
{
    struct piece *pc = &p->pieces[id];
    pc->done = true;
    p->ndone++;
    p->work_done += piece_cost(p, pc);
    if (pc->kind == K_TEXT || pc->kind == K_HEX) p->texts[pc->b].ready = true;
    for (size_t k = 0; k < pc->in_cnt; k++) {
        struct ref r = p->inputs[pc->in_off + k];
        if (--p->pieces[r.piece].users[r.which] == 0) release(p, p->pieces[r.piece].out[r.which]);
    }
    for (int k = p->dep_off[id]; k < p->dep_off[id + 1]; k++)
        if (--p->pieces[p->deps[k]].waiting == 0) heap_push(p, p->deps[k]);
}

size_t fact_plan_done_count(const struct fact_plan *p)
{
    return p->ndone;
}

size_t fact_plan_piece_count(const struct fact_plan *p)
{
    return p->npieces;
}

double fact_plan_work_done(const struct fact_plan *p)
{
    return p->work_done;
}

double fact_plan_work_started(const struct fact_plan *p)
{
    return p->work_started;
}

double fact_plan_work_total(const struct fact_plan *p)
{
    return p->work_total;
}

double fact_text_estimate(unsigned long n, enum fact_output out)
{
    double bits = n < 2 ? 1 : log2_fact(n);
    return out == FACT_HEX ? bits / 4 + 2 : bits * LOG10_2 + 2;
}

bool fact_plan_finished(const struct fact_plan *p)
{
    return p->ndone == p->npieces;
}

void fact_plan_result(struct fact_plan *p, mpz_t out)
{
    mpz_swap(out, p->pieces[p->result.piece].out[0]);
}

size_t fact_text_count(const struct fact_plan *p)
{
    return p->ntexts;
}

bool fact_text_take(struct fact_plan *p, size_t i, char **bytes, size_t *len)
{
    if (i + 1 == p->ntexts) { /* the trailing zeros */
        *bytes = NULL;
        *len = p->zeros;
        return fact_plan_finished(p);
    }
    if (!p->texts[i].ready || !p->texts[i].bytes) return false;
    *bytes = p->texts[i].bytes;
    *len = p->texts[i].len;
    p->texts[i].bytes = NULL;
    return true;
}

int fact_compute(mpz_t out, unsigned long n)
{
    struct fact_plan *p;
    int err = fact_plan_new(&p, n, FACT_VALUE);
    if (err) return err;
    for (int id; (id = fact_plan_take(p)) >= 0; fact_piece_done(p, id))
        if ((err = fact_piece_run(p, id))) break;
    if (!err) fact_plan_result(p, out);
    fact_plan_free(p);
    return err;
}
