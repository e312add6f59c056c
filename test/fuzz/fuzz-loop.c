/* Fuzz target: a virtual-clock loop driven by a byte string read as a
 * sequence of API operations, against a model of what the headers promise.
 *
 * Operations: delayed calls (later, at, cancel, reset, delay, queries),
 * moving the clock, calls soon and from "another" thread, Deferreds (new,
 * callback pairs of several kinds, fire, fail, cancel, chain, a callback
 * that hands back another Deferred, lists, drop, defer_later, succeed/fail),
 * tasks (start, pause, resume, stop, a step that waits or pauses itself),
 * the cooperator (stop, slice), coroutines (yield, await, return), and
 * failing the n-th next allocation. Callbacks, steps and coroutines carry a
 * few bytes of their own and run one operation from inside (with a depth
 * that runs out), so re-entrancy is fuzzed too.
 *
 * Checked after each step and at the end:
 * - a delayed call runs at most once, never after it was cancelled, never
 *   before its deadline, and as the earliest (deadline, order) of the calls
 *   due when the iteration began; every call due then has run when the
 *   iteration ends; cancel/reset/delay/time/active answer as the model;
 * - calls soon, and calls from the thread, run exactly once, FIFO;
 * - a Deferred's callback pairs run at most once, in the order added, on
 *   the right path; a Deferred fires once (firing again is MO_EALREADY or
 *   MO_ECANCELED, a cancelled one is fired); defer_later's function never
 *   runs after cancel nor before its time; a list fires with its members;
 * - a task's step never runs while paused, waiting on an unfired Deferred,
 *   or after the task ended; its Deferred fires once, MO_ECANCELED by the
 *   time mo_task_stop() returns; a coroutine's mo_yield() returns 0 until
 *   its task is stopped, MO_ECANCELED after;
 * - no function returns MO_ENOMEM unless an allocation failed under it;
 * - nothing leaks: every allocation the library made is freed by
 *   mo_loop_free() (a counting allocator), every value handed to a
 *   Deferred is destroyed exactly once.
 *
 * Public API only. Built for libFuzzer (-fsanitize=fuzzer) and, with
 * replay.c's main(), as a plain program that replays the corpus.
 */
#include "morsel.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CHECK(cond) ((cond) ? (void)0 : fz_fail(__LINE__, #cond))

/* FUZZ_LOOP_TRACE=1 in the environment prints each operation. */
static int fz_trace;
#define TRACE(...) (fz_trace ? (void)fprintf(stderr, __VA_ARGS__) : (void)0)

static void fz_fail(int line, const char *what)
{
    fprintf(stderr, "fuzz-loop: invariant broken (line %d): %s\n", line, what);
    abort();
}

/* ---- the counting, failing allocator ---- */

static long fz_blocks;    /* blocks the library holds */
static long fz_countdown; /* the allocation that fails when this reaches 0; <0: none */
static long fz_injected;  /* allocations failed so far */

static bool fz_inject(void)
{
    if (fz_countdown < 0 || fz_countdown-- > 0) return false;
    fz_injected++;
    return true;
}

static void *fz_malloc(size_t n)
{
    void *p = fz_inject() ? NULL : malloc(n);
    fz_blocks += p != NULL;
    return p;
}

static void *fz_calloc(size_t k, size_t n)
{
    void *p = fz_inject() ? NULL : calloc(k, n);
    fz_blocks += p != NULL;
    return p;
}

static void *fz_realloc(void *p, size_t n)
{
    if (!p) return fz_malloc(n);
    if (n == 0) {
        free(p);
        fz_blocks--;
        return NULL;
    }
    return fz_inject() ? NULL : realloc(p, n);
}

static void fz_free(void *p)
{
    fz_blocks -= p != NULL;
    free(p);
}

/* ---- values handed to Deferreds ---- */

#define TOK_MAGIC 0x70c3e5a1u
static long fz_tokens; /* tokens alive */

struct tok {
    uint32_t magic;
};

static void *tok_new(void)
{
    struct tok *t = malloc(sizeof(*t));
    if (!t) abort();
    t->magic = TOK_MAGIC;
    fz_tokens++;
    return t;
}

static void tok_free(void *p)
{
    struct tok *t = p;
    FZ_CHECK(t && t->magic == TOK_MAGIC);
    t->magic = 0;
    fz_tokens--;
    free(t);
}

static void value_drop(void *v, mo_dtor_fn dtor)
{
    if (v && dtor) dtor(v);
}

/* ---- the harness's model ---- */

enum { N_CALLS = 256, N_SOONS = 256, N_DEFS = 64, N_PAIRS = 384, N_TASKS = 12, N_OPS = 1500 };
enum { ACT = 4 };                    /* bytes of a nested operation */
enum { TTL = 2, NESTED_MAX = 4000 }; /* nesting depth; nested operations per input */
#define MAX_DELAY_SHIFT 44           /* delays below 2^48 ns: time never nears INT64_MAX */

enum call_state { C_PENDING = 1, C_RAN, C_CANCELLED };

struct fz_call {
    mo_call_id id;
    int64_t deadline;
    uint64_t seq;
    uint8_t state, ttl;
    uint8_t act[ACT];
};

struct fz_soon {
    uint64_t seq;
    bool from_thread, ran;
    uint8_t ttl;
    uint8_t act[ACT];
};

enum def_kind { D_PLAIN, D_LIST, D_TASK, D_LATER };

struct fz_def {
    mo_deferred_t *d;   /* the harness's reference; NULL once dropped */
    mo_deferred_t *raw; /* identity, for mo_result_deferred() */
    uint32_t pairs_added, pairs_ran;
    int64_t last_pos; /* the last pair that ran (pairs of the other path are skipped) */
    uint8_t kind;
    bool fired_seen;     /* mo_deferred_fired() said 1 */
    bool cancel_unfired; /* the harness cancelled it before it fired */
    bool later_ran;
    bool user_fired; /* fired by the harness or a chain, not by its producer */
    bool waited_on;  /* something waited on it (see op_def_drop) */
    bool observed;   /* its first pair is the P_OBSERVE one */
    int64_t later_due;
    size_t list_n;
    unsigned list_flags;
    struct fz_task *task; /* D_TASK: whose Deferred */
    uint8_t ttl;
    uint8_t act[ACT];
};

enum pair_kind { P_PASS, P_SET, P_FAIL, P_RECOVER, P_TAKE, P_WAIT, P_NESTED, P_OBSERVE, P_KINDS };
enum pair_half { H_CB, H_EB, H_BOTH };

struct fz_pair {
    struct fz_def *def;
    uint32_t pos;
    uint8_t kind, half, arg, ttl;
    bool ran;
    uint8_t act[ACT];
};

enum task_end { E_DONE, E_CODE, E_FAILURE, E_WAIT, E_PAUSE, E_ENDS };

struct fz_task {
    mo_task_t *t;
    struct fz_def *done; /* the slot holding its Deferred, observed */
    mo_deferred_t *waiting;
    uint32_t budget, steps, act_at;
    uint8_t end, arg, ttl;
    uint8_t act[ACT];
    int pauses;
    bool fired;         /* its Deferred fired (the task may go on: cancelling the
                         * Deferred does not stop it, as in Twisted) */
    bool stopping;      /* a stop that may stop it is under way (or done) */
    bool stopped;       /* mo_task_stop/mo_cooperator_stop returned: it is stopped */
    bool explicit_stop; /* inside mo_task_stop() of this very task */
    bool coro, returned;
    uint8_t script[8];
};

struct fz_in {
    const uint8_t *p;
    size_t n;
};

struct fz {
    mo_loop_t *loop;
    struct fz_call calls[N_CALLS];
    struct fz_soon soons[N_SOONS];
    struct fz_def defs[N_DEFS];
    struct fz_pair pairs[N_PAIRS];
    struct fz_task tasks[N_TASKS];
    size_t ncalls, nsoons, ndefs, npairs, ntasks;
    uint64_t seq;                    /* the model's order of delayed calls */
    uint64_t limit;                  /* calls with seq >= limit wait for the next iteration */
    bool in_iter;                    /* inside mo_loop_advance/mo_loop_run */
    uint64_t soon_next, thread_next; /* FIFO: the next seq expected to run */
    uint64_t soon_seq, thread_seq;
    long nested;
    long unhandled;
    bool closing; /* tearing down: no new tasks */
    int depth;    /* nested operations under way (inside callbacks) */
};

static struct fz H;

static uint8_t in_u8(struct fz_in *in)
{
    if (!in->n) return 0;
    in->n--;
    return *in->p++;
}

static uint16_t in_u16(struct fz_in *in)
{
    uint16_t lo = in_u8(in);
    return (uint16_t)(lo | in_u8(in) << 8);
}

static void in_act(struct fz_in *in, uint8_t *act)
{
    for (int i = 0; i < ACT; i++) act[i] = in_u8(in);
}

/* A delay: 0, a few ns, or a 16-bit value shifted up to hours or days,
 * which reaches every level of the timing wheel. */
static int64_t in_delay(struct fz_in *in)
{
    uint8_t shift = in_u8(in);
    uint16_t v = in_u16(in);
    if (shift % 8 == 0) return 0;
    return (int64_t)v << (shift % (MAX_DELAY_SHIFT - 15));
}

static int fz_run(struct fz *h, int64_t ns);
static void do_op(struct fz *h, struct fz_in *in, uint8_t ttl);

/* Runs a stored nested operation (`len` bytes) if the depth allows. */
static void nested(struct fz *h, const uint8_t *act, size_t len, uint8_t ttl)
{
    if (!ttl || h->nested >= NESTED_MAX) return;
    h->nested++;
    h->depth++;
    struct fz_in in = {act, len};
    do_op(h, &in, (uint8_t)(ttl - 1));
    h->depth--;
}

/* "No MO_ENOMEM unless an allocation failed under it." */
static void check_nomem(int rc, long injected_before)
{
    if (rc == MO_ENOMEM) FZ_CHECK(fz_injected != injected_before);
}

/* ---- delayed calls ---- */

/* The call that must run next among those due in this iteration. */
static struct fz_call *next_due(struct fz *h)
{
    struct fz_call *best = NULL;
    int64_t now = mo_loop_now(h->loop);
    for (size_t i = 0; i < h->ncalls; i++) {
        struct fz_call *c = &h->calls[i];
        if (c->state != C_PENDING || c->deadline > now || c->seq >= h->limit) continue;
        if (!best || c->deadline < best->deadline ||
            (c->deadline == best->deadline && c->seq < best->seq))
            best = c;
    }
    return best;
}

static void call_cb(mo_loop_t *loop, void *arg)
{
    struct fz *h = &H;
    struct fz_call *c = arg;
    FZ_CHECK(loop == h->loop && h->in_iter);
    FZ_CHECK(c->state == C_PENDING);
    FZ_CHECK(c->deadline <= mo_loop_now(loop));
    FZ_CHECK(next_due(h) == c);
    c->state = C_RAN;
    FZ_CHECK(mo_call_active(loop, c->id) == 0);
    FZ_CHECK(mo_call_cancel(loop, c->id) == MO_EALREADY);
    nested(h, c->act, ACT, c->ttl);
}

static void op_schedule(struct fz *h, struct fz_in *in, bool at, uint8_t ttl)
{
    int64_t now = mo_loop_now(h->loop), delay = in_delay(in);
    bool back = in_u8(in) & 1; /* mo_call_at: a deadline in the past */
    struct fz_call tmp = {.ttl = ttl};
    in_act(in, tmp.act);
    if (h->ncalls == N_CALLS) return;
    struct fz_call *c = &h->calls[h->ncalls];
    *c = tmp;
    int64_t deadline = at && back ? (delay > now ? 0 : now - delay) : now + delay;
    long inj = fz_injected;
    int rc = at ? mo_call_at(h->loop, deadline, call_cb, c, &c->id)
                : mo_call_later(h->loop, delay, call_cb, c, &c->id);
    check_nomem(rc, inj);
    if (rc) {
        FZ_CHECK(rc == MO_ENOMEM);
        return;
    }
    c->deadline = deadline < now ? now : deadline;
    c->seq = h->seq++;
    c->state = C_PENDING;
    h->ncalls++;
    int64_t when = -1;
    FZ_CHECK(mo_call_time(h->loop, c->id, &when) == 0 && when == c->deadline);
}

/* The expected answer of cancel/reset/delay for a call in this state. */
static int expect_for(const struct fz_call *c)
{
    return c->state == C_PENDING ? 0 : MO_EALREADY;
}

static void op_call_change(struct fz *h, struct fz_in *in, int what)
{
    uint8_t k = in_u8(in);
    int64_t delay = in_delay(in);
    bool back = in_u8(in) & 1;
    if (!h->ncalls) {
        /* An id never given out. */
        FZ_CHECK(mo_call_cancel(h->loop, (mo_call_id)0xfffffff0u << 32 | k) == MO_ENOENT);
        return;
    }
    struct fz_call *c = &h->calls[k % h->ncalls];
    int64_t now = mo_loop_now(h->loop);
    int want = expect_for(c), rc;
    switch (what) {
    case 0:
        rc = mo_call_cancel(h->loop, c->id);
        FZ_CHECK(rc == want);
        if (!rc) c->state = C_CANCELLED;
        return;
    case 1:
        rc = mo_call_reset(h->loop, c->id, delay);
        FZ_CHECK(rc == want);
        if (rc) return;
        c->deadline = now + delay;
        break;
    default: {
        int64_t by = back ? -delay : delay;
        if (want == 0 && c->deadline + by < 0) want = MO_EINVAL;
        rc = mo_call_delay(h->loop, c->id, by);
        FZ_CHECK(rc == want);
        if (rc) return;
        c->deadline = c->deadline + by < now ? now : c->deadline + by;
        break;
    }
    }
    c->seq = h->seq++;
    int64_t when = -1;
    FZ_CHECK(mo_call_time(h->loop, c->id, &when) == 0 && when == c->deadline);
}

static void op_call_query(struct fz *h, struct fz_in *in)
{
    uint8_t k = in_u8(in);
    if (!h->ncalls) return;
    struct fz_call *c = &h->calls[k % h->ncalls];
    int64_t when = -1;
    FZ_CHECK(mo_call_active(h->loop, c->id) == (c->state == C_PENDING));
    int rc = mo_call_time(h->loop, c->id, &when);
    FZ_CHECK(rc == expect_for(c));
    if (!rc) FZ_CHECK(when == c->deadline);
}

/* ---- calls soon, and from the thread ---- */

static void soon_cb(mo_loop_t *loop, void *arg)
{
    struct fz *h = &H;
    struct fz_soon *s = arg;
    FZ_CHECK(loop == h->loop && h->in_iter && !s->ran);
    uint64_t *next = s->from_thread ? &h->thread_next : &h->soon_next;
    FZ_CHECK(s->seq == *next);
    ++*next;
    s->ran = true;
    nested(h, s->act, ACT, s->ttl);
}

static void op_soon(struct fz *h, struct fz_in *in, bool from_thread, uint8_t ttl)
{
    struct fz_soon tmp = {.from_thread = from_thread, .ttl = ttl};
    in_act(in, tmp.act);
    if (h->nsoons == N_SOONS) return;
    struct fz_soon *s = &h->soons[h->nsoons];
    *s = tmp;
    long inj = fz_injected;
    int rc =
        from_thread ? mo_call_from_thread(h->loop, soon_cb, s) : mo_call_soon(h->loop, soon_cb, s);
    check_nomem(rc, inj);
    if (rc) {
        FZ_CHECK(rc == MO_ENOMEM);
        return;
    }
    s->seq = from_thread ? h->thread_seq++ : h->soon_seq++;
    h->nsoons++;
}

/* ---- Deferreds ---- */

static struct fz_def *def_pick(struct fz *h, uint8_t k)
{
    if (!h->ndefs) return NULL;
    struct fz_def *x = &h->defs[k % h->ndefs];
    return x->d ? x : NULL;
}

/* Checks what mo_deferred_fired() says against what was seen before. */
/* `d` is x's Deferred, held by the caller: callbacks run by the operation
 * may drop the harness's reference (x->d). */
static int def_fired(struct fz_def *x, mo_deferred_t *d)
{
    int f = mo_deferred_fired(d);
    FZ_CHECK(f == 0 || f == 1);
    if (x->fired_seen) FZ_CHECK(f == 1);
    if (f) x->fired_seen = true;
    return f;
}

static struct fz_def *def_add(struct fz *h, mo_deferred_t *d, uint8_t kind)
{
    struct fz_def *x = &h->defs[h->ndefs++];
    *x = (struct fz_def){.d = d, .raw = d, .kind = kind, .last_pos = -1};
    return x;
}

static void pair_run(struct fz *h, struct fz_pair *p, mo_result_t *result, bool eb);

static void pair_cb(mo_result_t *result, void *arg)
{
    pair_run(&H, arg, result, false);
}

static void pair_eb(mo_result_t *result, void *arg)
{
    pair_run(&H, arg, result, true);
}

/* Whether the task finished (done, failed or stopped). */
static bool task_ended(const struct fz_task *t)
{
    int st = mo_task_state(t->t);
    FZ_CHECK(st >= MO_TASK_READY && st <= MO_TASK_DONE);
    return st == MO_TASK_DONE;
}

/* The first pair on a task's Deferred: it fires once. */
static void observe_task(struct fz_task *t, mo_result_t *result)
{
    FZ_CHECK(!t->fired);
    t->fired = true;
    mo_failure_t *f = mo_result_failure(result);
    if (f)
        TRACE("  task outcome: %s (%s)\n", mo_err_name(mo_failure_code(f)), mo_failure_origin(f));
    if (t->explicit_stop && f && !t->done->user_fired)
        FZ_CHECK(mo_failure_code(f) == MO_ECANCELED || mo_failure_code(f) == MO_ENOMEM);
}

/* The first pair on a list: what it fired with. */
static void observe_list(struct fz_def *x, mo_result_t *result)
{
    if (x->user_fired) return;
    mo_failure_t *f = mo_result_failure(result);
    if (f) {
        size_t index;
        if (mo_deferred_list_error_index(f, &index) == 0) {
            FZ_CHECK(x->list_flags & MO_DLIST_FIRE_ON_ONE_ERRBACK);
            FZ_CHECK(index < x->list_n);
        }
        return;
    }
    const struct mo_deferred_list_result *r = mo_result_value(result);
    FZ_CHECK(r && r->count == x->list_n && r->index <= r->count);
    if (!(x->list_flags & MO_DLIST_FIRE_ON_ONE_CALLBACK)) FZ_CHECK(r->index == r->count);
    for (size_t i = 0; i < r->count; i++) FZ_CHECK(!r->items[i].failure || !r->items[i].value);
}

static void pair_wait(struct fz *h, struct fz_pair *p, mo_result_t *result)
{
    /* Only on an older Deferred: references then go one way, no cycle. */
    size_t own = (size_t)(p->def - h->defs);
    if (!own) return;
    struct fz_def *y = &h->defs[p->arg % own];
    if (!y->d) return;
    long inj = fz_injected;
    y->waited_on = true;
    int rc = mo_result_wait(result, mo_deferred_ref(y->d));
    check_nomem(rc, inj);
    FZ_CHECK(rc == 0 || rc == MO_ENOMEM);
}

static void pair_run(struct fz *h, struct fz_pair *p, mo_result_t *result, bool eb)
{
    struct fz_def *x = p->def;
    mo_failure_t *f = mo_result_failure(result);
    FZ_CHECK(!p->ran);
    FZ_CHECK((int64_t)p->pos > x->last_pos);
    x->last_pos = p->pos;
    FZ_CHECK(mo_result_deferred(result) == x->raw);
    FZ_CHECK(eb == (f != NULL));
    FZ_CHECK(p->half == H_BOTH || p->half == (eb ? H_EB : H_CB));
    p->ran = true;
    x->pairs_ran++;
    switch (p->kind) {
    case P_SET:
        FZ_CHECK(mo_result_set(result, tok_new(), tok_free) == 0);
        break;
    case P_FAIL:
        FZ_CHECK(mo_result_fail(result, -(1 + p->arg % 120), "fuzz", "pair %u", p->pos) == 0);
        break;
    case P_RECOVER:
        if (eb) FZ_CHECK(mo_result_set(result, NULL, NULL) == 0);
        break;
    case P_TAKE: {
        mo_dtor_fn dtor = NULL;
        void *v = mo_result_take(result, &dtor);
        if (f) FZ_CHECK(v == NULL);
        value_drop(v, dtor);
        break;
    }
    case P_WAIT:
        if (!eb) pair_wait(h, p, result);
        break;
    case P_NESTED:
        nested(h, p->act, ACT, p->ttl);
        break;
    case P_OBSERVE:
        if (x->task) observe_task(x->task, result);
        if (x->kind == D_LIST) observe_list(x, result);
        break;
    default:
        break;
    }
}

static int pair_add(struct fz *h, struct fz_def *x, uint8_t kind, uint8_t half, uint8_t arg,
                    const uint8_t *act, uint8_t ttl)
{
    if (h->npairs == N_PAIRS) return MO_ENOMEM;
    /* Counted before the add: the pair may run (and add more) inside it. */
    struct fz_pair *p = &h->pairs[h->npairs++];
    *p = (struct fz_pair){
        .def = x, .pos = x->pairs_added++, .kind = kind, .half = half, .arg = arg, .ttl = ttl};
    if (act) memcpy(p->act, act, ACT);
    if (kind == P_OBSERVE) x->observed = true;
    const mo_failure_t *f = NULL;
    mo_deferred_t *d = mo_deferred_ref(x->d);
    bool settled = mo_deferred_result(d, NULL, &f) == 0;
    bool runs = half == H_BOTH || (half == H_EB) == (f != NULL);
    long inj = fz_injected;
    int rc = half == H_CB   ? mo_deferred_add_callback(d, pair_cb, p)
             : half == H_EB ? mo_deferred_add_errback(d, pair_eb, p)
                            : mo_deferred_add_callbacks(d, pair_cb, pair_eb, p);
    mo_deferred_unref(d);
    check_nomem(rc, inj);
    if (rc) {
        /* Nothing was added and nothing ran: take the slot back. */
        FZ_CHECK(rc == MO_ENOMEM && h->npairs == (size_t)(p - h->pairs) + 1);
        h->npairs--;
        x->pairs_added--;
        if (kind == P_OBSERVE) x->observed = false;
        return rc;
    }
    /* On a settled Deferred a pair of the outcome's path runs before the
     * add returns; one of the other path never runs. */
    if (settled) FZ_CHECK(p->ran == runs);
    return 0;
}

static void canceller(mo_deferred_t *d, void *arg)
{
    struct fz_def *x = arg;
    FZ_CHECK(d == x->raw);
    switch (x->act[0] % 4) {
    case 1:
        FZ_CHECK(mo_deferred_callback(d, tok_new(), tok_free) == 0);
        break;
    case 2:
        FZ_CHECK(mo_deferred_fail(d, MO_ETIMEDOUT, "canceller", NULL) == 0);
        break;
    case 3:
        nested(&H, x->act + 1, ACT - 1, x->ttl);
        break;
    default:
        break;
    }
}

static void op_def_new(struct fz *h, struct fz_in *in, uint8_t ttl)
{
    uint8_t how = in_u8(in);
    uint8_t act[ACT];
    in_act(in, act);
    if (h->ndefs == N_DEFS) return;
    struct fz_def *x = &h->defs[h->ndefs];
    *x = (struct fz_def){.ttl = ttl, .last_pos = -1};
    memcpy(x->act, act, ACT);
    mo_deferred_t *d = NULL;
    long inj = fz_injected;
    int rc;
    switch (how % 4) {
    case 0:
        rc = mo_deferred_new(h->loop, how & 4 ? canceller : NULL, x, &d);
        break;
    case 1:
        rc = mo_deferred_new_succeeded(h->loop, tok_new(), tok_free, &d);
        break;
    case 2:
        rc = mo_deferred_new_failed(h->loop,
                                    mo_failure_new(-(1 + how % 100), "fuzz", "made failed"), &d);
        break;
    default:
        rc = mo_deferred_new(h->loop, canceller, x, &d);
        break;
    }
    check_nomem(rc, inj);
    if (rc) {
        FZ_CHECK(rc == MO_ENOMEM && !d);
        return;
    }
    h->ndefs++;
    x->d = x->raw = d;
    x->kind = D_PLAIN;
    FZ_CHECK(def_fired(x, d) == (how % 4 == 1 || how % 4 == 2));
}

static void op_def_add(struct fz *h, struct fz_in *in, uint8_t ttl)
{
    uint8_t k = in_u8(in), kind = in_u8(in), arg = in_u8(in);
    uint8_t act[ACT];
    in_act(in, act);
    struct fz_def *x = def_pick(h, k);
    if (!x) return;
    uint8_t half = kind / P_KINDS % 3;
    kind %= P_KINDS;
    if (kind == P_OBSERVE) kind = P_PASS;
    TRACE("  pair kind %u half %u arg %u on slot %zu\n", kind, half, arg, (size_t)(x - h->defs));
    pair_add(h, x, kind, half, arg, act, ttl);
}

static void op_def_fire(struct fz *h, struct fz_in *in)
{
    uint8_t k = in_u8(in), how = in_u8(in);
    struct fz_def *x = def_pick(h, k);
    if (!x) return;
    mo_deferred_t *d = mo_deferred_ref(x->d);
    int before = def_fired(x, d), rc;
    if (!before) x->user_fired = true; /* its callbacks run now */
    long inj = fz_injected;
    switch (how % 3) {
    case 0:
        rc = mo_deferred_callback(d, tok_new(), tok_free);
        break;
    case 1:
        rc = mo_deferred_errback(d, mo_failure_new(-(1 + how % 90), "fuzz", "fired %u", how));
        break;
    default:
        rc = mo_deferred_fail(d, MO_EIO, "fuzz", NULL);
        break;
    }
    check_nomem(rc, inj);
    if (!before) {
        FZ_CHECK(rc == 0);
    } else if (x->cancel_unfired) {
        FZ_CHECK(rc == MO_ECANCELED);
    } else {
        FZ_CHECK(rc == MO_EALREADY || rc == MO_ECANCELED);
    }
    FZ_CHECK(def_fired(x, d) == 1);
    mo_deferred_unref(d);
}

static void op_def_cancel(struct fz *h, struct fz_in *in)
{
    struct fz_def *x = def_pick(h, in_u8(in));
    if (!x) return;
    mo_deferred_t *d = mo_deferred_ref(x->d);
    int before = def_fired(x, d);
    bool settled = mo_deferred_result(d, NULL, NULL) == 0;
    if (!before) x->cancel_unfired = true; /* its callbacks run now */
    int rc = mo_deferred_cancel(d);
    if (!before) {
        FZ_CHECK(rc == 0);
        FZ_CHECK(def_fired(x, d) == 1);
    } else if (settled) {
        FZ_CHECK(rc == MO_EALREADY);
    } else {
        FZ_CHECK(rc == 0 || rc == MO_EALREADY);
    }
    mo_deferred_unref(d);
}

static void op_def_chain(struct fz *h, struct fz_in *in)
{
    uint8_t a = in_u8(in), b = in_u8(in);
    if (h->ndefs < 2) return;
    size_t i = a % h->ndefs, j = b % h->ndefs;
    if (i == j) {
        if (h->defs[i].d) FZ_CHECK(mo_deferred_chain(h->defs[i].d, h->defs[i].d) == MO_EINVAL);
        return;
    }
    if (i > j) { /* the older holds the newer: references go one way */
        size_t t = i;
        i = j;
        j = t;
    }
    struct fz_def *x = &h->defs[i], *y = &h->defs[j];
    if (!x->d || !y->d) return;
    mo_deferred_t *dx = mo_deferred_ref(x->d), *dy = mo_deferred_ref(y->d);
    int other_fired = def_fired(y, dy);
    long inj = fz_injected;
    bool was = y->user_fired;
    y->user_fired = true; /* if x has fired, y fires now */
    int rc = mo_deferred_chain(dx, dy);
    mo_deferred_unref(dx);
    mo_deferred_unref(dy);
    check_nomem(rc, inj);
    if (rc) y->user_fired = was;
    if (other_fired)
        FZ_CHECK(rc == MO_EALREADY);
    else
        FZ_CHECK(rc == 0 || rc == MO_ENOMEM);
}

static void op_def_list(struct fz *h, struct fz_in *in)
{
    uint8_t n = in_u8(in) % 5, flags = in_u8(in) % 8;
    mo_deferred_t *ds[4];
    size_t got = 0;
    for (uint8_t i = 0; i < n; i++) {
        struct fz_def *x = def_pick(h, in_u8(in));
        if (x) ds[got++] = x->d;
    }
    if (h->ndefs == N_DEFS) return;
    mo_deferred_t *d = NULL;
    long inj = fz_injected;
    TRACE("  list of %zu, flags %u\n", got, flags);
    int rc = mo_deferred_list(h->loop, got ? ds : NULL, got, flags, &d);
    check_nomem(rc, inj);
    if (rc) {
        FZ_CHECK(rc == MO_ENOMEM);
        return;
    }
    struct fz_def *x = def_add(h, d, D_LIST);
    x->list_n = got;
    x->list_flags = flags;
    pair_add(h, x, P_OBSERVE, H_BOTH, 0, NULL, 0);
    if (!got) FZ_CHECK(def_fired(x, d) == 1);
}

/* Drops the harness's reference. One that something waited on is fired
 * first if it has not: a Deferred freed unfired leaves whatever waits on it
 * paused for good, and a task stopped while waiting on such a Deferred (one
 * its cancel fired, whose later callback then waited on the dropped one)
 * is kept alive by it, in a cycle nothing breaks: a leak, known, reported,
 * left to the design of waits on abandoned Deferreds. */
static void def_release(struct fz_def *x)
{
    mo_deferred_t *d = x->d;
    x->d = NULL;
    if (x->waited_on && !mo_deferred_fired(d)) {
        x->user_fired = true;
        FZ_CHECK(mo_deferred_callback(d, tok_new(), tok_free) == 0);
    }
    mo_deferred_unref(d);
}

static void op_def_drop(struct fz *h, struct fz_in *in)
{
    struct fz_def *x = def_pick(h, in_u8(in));
    if (!x) return;
    if (in_u8(in) & 1) { /* take the outcome first, if settled */
        void *v = NULL;
        mo_dtor_fn dtor = NULL;
        mo_failure_t *f = NULL;
        int rc = mo_deferred_take(x->d, &v, &dtor, &f);
        FZ_CHECK(rc == 0 || rc == MO_EAGAIN);
        if (rc == 0) FZ_CHECK(!(v && f) && def_fired(x, x->d) == 1);
        value_drop(v, dtor);
        mo_failure_unref(f);
    }
    def_release(x);
}

static void later_fn(mo_result_t *result, void *arg)
{
    struct fz *h = &H;
    struct fz_def *x = arg;
    FZ_CHECK(!x->later_ran && !x->cancel_unfired);
    /* Unless someone else fired it first (not its producer: a misuse, which
     * runs fn early with that outcome). */
    if (!x->user_fired) {
        FZ_CHECK(mo_loop_now(h->loop) >= x->later_due);
        FZ_CHECK(x->pairs_ran == 0 && mo_result_failure(result) == NULL);
    }
    x->later_ran = true;
    if (x->act[0] & 1) FZ_CHECK(mo_result_set(result, tok_new(), tok_free) == 0);
    nested(h, x->act + 1, ACT - 1, x->ttl);
}

static void op_def_later(struct fz *h, struct fz_in *in, uint8_t ttl)
{
    int64_t delay = in_delay(in);
    uint8_t act[ACT];
    in_act(in, act);
    if (h->ndefs == N_DEFS) return;
    struct fz_def *x = &h->defs[h->ndefs];
    *x = (struct fz_def){
        .kind = D_LATER, .ttl = ttl, .last_pos = -1, .later_due = mo_loop_now(h->loop) + delay};
    memcpy(x->act, act, ACT);
    mo_deferred_t *d = NULL;
    long inj = fz_injected;
    int rc = mo_deferred_call_later(h->loop, delay, later_fn, x, &d);
    check_nomem(rc, inj);
    if (rc) {
        FZ_CHECK(rc == MO_ENOMEM);
        return;
    }
    h->ndefs++;
    x->d = x->raw = d;
}

/* ---- tasks and coroutines ---- */

static struct fz_task *task_pick(struct fz *h, uint8_t k)
{
    return h->ntasks ? &h->tasks[k % h->ntasks] : NULL;
}

/* A step or a coroutine body begins: the task is running. A coroutine
 * stopped before it ever ran may be started to unwind at once. */
static void task_enter(struct fz_task *t)
{
    FZ_CHECK(!t->returned);
    if (!(t->coro && t->stopping)) FZ_CHECK(!task_ended(t) && t->pauses == 0);
    if (t->waiting) {
        FZ_CHECK(mo_deferred_fired(t->waiting) == 1);
        mo_deferred_unref(t->waiting);
        t->waiting = NULL;
    }
}

static int step_end(struct fz *h, struct fz_task *t, mo_task_t *task)
{
    switch (t->end) {
    case E_DONE:
        return mo_task_done(task, tok_new(), tok_free);
    case E_CODE:
        return -(1 + t->arg % 120);
    case E_FAILURE:
        return mo_task_fail(task, mo_failure_new(MO_ENXIO, "step", "failed at %u", t->steps));
    case E_WAIT: {
        size_t own = (size_t)(t->done ? t->done - h->defs : (long)h->ndefs);
        struct fz_def *x = own ? &h->defs[t->arg % own] : NULL;
        t->budget += 1 + t->arg % 4;
        t->end = E_DONE;
        if (!x || !x->d) return MO_CONTINUE;
        x->waited_on = true;
        t->waiting = mo_deferred_ref(x->d);
        int rc = mo_task_wait(task, mo_deferred_ref(x->d));
        FZ_CHECK(rc == MO_WAIT);
        return rc;
    }
    default: /* pause itself, then go on when resumed */
        FZ_CHECK(mo_task_pause(task) == 0);
        t->pauses++;
        t->budget += 1 + t->arg % 4;
        t->end = E_DONE;
        return MO_CONTINUE;
    }
}

static int step_fn(mo_task_t *task, void *arg)
{
    struct fz *h = &H;
    struct fz_task *t = arg;
    FZ_CHECK(task == t->t || !t->t);
    task_enter(t);
    mo_dtor_fn dtor = NULL;
    void *v = mo_task_received(task, &dtor);
    value_drop(v, dtor);
    t->steps++;
    if (t->steps == t->act_at) nested(h, t->act, ACT, t->ttl);
    if (task_ended(t)) return MO_CONTINUE; /* stopped from inside: ignored */
    return t->steps < t->budget ? MO_CONTINUE : step_end(h, t, task);
}

static int coro_await(struct fz *h, struct fz_task *t, mo_coro_t *co, uint8_t k)
{
    size_t own = (size_t)(t->done ? t->done - h->defs : (long)h->ndefs);
    struct fz_def *x = own ? &h->defs[k % own] : NULL;
    if (!x || !x->d) return 0;
    x->waited_on = true;
    void *v = NULL;
    mo_dtor_fn dtor = NULL;
    /* Its answer may be the Deferred's failure's code: MO_ENOMEM included. */
    TRACE("  await slot %zu (fired %d)\n", (size_t)(x - h->defs), mo_deferred_fired(x->d));
    int rc = mo_await(co, mo_deferred_ref(x->d), &v, &dtor);
    TRACE("  await slot %zu -> %s\n", (size_t)(x - h->defs), mo_err_name(rc));
    value_drop(v, dtor);
    /* Running again: the task cannot be paused, nor ended unless stopped
     * or failed meanwhile (out of memory setting up the wait), which
     * mo_await() tells as MO_ECANCELED. */
    if (task_ended(t))
        FZ_CHECK(rc == MO_ECANCELED);
    else
        FZ_CHECK(t->pauses == 0);
    return rc;
}

static int coro_fn(mo_coro_t *co, void *arg)
{
    struct fz *h = &H;
    struct fz_task *t = arg;
    task_enter(t);
    for (int i = 0; i < 8; i++) {
        uint8_t s = t->script[i];
        int rc = 0;
        switch (s % 5) {
        case 0:
        case 1:
            rc = mo_yield(co);
            if (rc == 0) FZ_CHECK(!t->stopped && t->pauses == 0 && !task_ended(t));
            break;
        case 2:
            rc = coro_await(h, t, co, s / 5);
            break;
        case 3:
            nested(h, t->act, ACT, t->ttl);
            break;
        default:
            if (s & 8) {
                bool ended = task_ended(t);
                rc = mo_task_pause(mo_coro_task(co));
                FZ_CHECK(rc == (ended ? MO_EALREADY : 0));
                if (rc == 0) t->pauses++;
                rc = mo_yield(co);
                if (rc == 0) FZ_CHECK(t->pauses == 0);
            } else {
                FZ_CHECK(mo_coro_return(co, tok_new(), tok_free) == 0);
            }
            break;
        }
        if (rc == MO_ECANCELED && (t->stopping || task_ended(t))) break;
        if (t->stopped) FZ_CHECK(mo_yield(co) == MO_ECANCELED);
        if (t->stopped) break;
    }
    t->returned = true;
    return t->script[7] & 0x80 ? MO_EPIPE : 0;
}

static void op_task_start(struct fz *h, struct fz_in *in, bool coro, uint8_t ttl)
{
    struct fz_task tmp = {.ttl = ttl, .coro = coro};
    tmp.budget = 1 + in_u8(in) % 40;
    tmp.end = in_u8(in) % E_ENDS;
    tmp.arg = in_u8(in);
    tmp.act_at = in_u8(in) % 48;
    in_act(in, tmp.act);
    if (coro)
        for (int i = 0; i < 8; i++) tmp.script[i] = in_u8(in);
    if (h->ntasks == N_TASKS || h->ndefs == N_DEFS) return;
    struct fz_task *t = &h->tasks[h->ntasks];
    *t = tmp;
    mo_task_t *task = NULL;
    long inj = fz_injected;
    int rc;
    if (coro) {
        struct mo_coro_opts opts = {.stack_size = 128 * 1024};
        rc = mo_coro_spawn(h->loop, coro_fn, t, &opts, &task);
    } else {
        rc = mo_cooperate(h->loop, step_fn, t, NULL, &task);
    }
    check_nomem(rc, inj);
    if (rc) {
        FZ_CHECK(rc == MO_ENOMEM && !task);
        return;
    }
    h->ntasks++;
    t->t = task;
    mo_deferred_t *d = mo_task_deferred(task);
    FZ_CHECK(d != NULL);
    struct fz_def *x = def_add(h, d, D_TASK);
    x->task = t;
    t->done = x;
    pair_add(h, x, P_OBSERVE, H_BOTH, 0, NULL, 0);
}

/* What pause/resume/stop must answer: MO_EALREADY once the task ended. */
static void op_task_ctl(struct fz *h, struct fz_in *in, int what)
{
    struct fz_task *t = task_pick(h, in_u8(in));
    if (!t) return;
    bool observed = t->done->observed; /* the observer pair is there */
    bool ended = task_ended(t);
    int rc;
    long inj = fz_injected;
    switch (what) {
    case 0:
        rc = mo_task_pause(t->t);
        FZ_CHECK(rc == (ended ? MO_EALREADY : 0));
        if (rc == 0) t->pauses++;
        break;
    case 1:
        rc = mo_task_resume(t->t);
        check_nomem(rc, inj);
        if (ended) FZ_CHECK(rc == MO_EALREADY || (rc == MO_EINVAL && !t->pauses));
        if (!ended && !t->pauses) FZ_CHECK(rc == MO_EINVAL);
        if (!ended && t->pauses) FZ_CHECK(rc == 0 || rc == MO_ENOMEM);
        if (rc == 0) t->pauses--;
        break;
    default:
        t->stopping = t->explicit_stop = true;
        rc = mo_task_stop(t->t);
        t->explicit_stop = false;
        FZ_CHECK(rc == (ended ? MO_EALREADY : 0));
        if (rc == 0) {
            t->stopped = true;
            FZ_CHECK(task_ended(t));
            if (observed) FZ_CHECK(t->fired); /* before mo_task_stop() returned */
        }
        break;
    }
}

static void op_coop_stop(struct fz *h)
{
    /* Tasks started from callbacks meanwhile may run normally. */
    size_t before = h->ntasks;
    for (size_t i = 0; i < before; i++) h->tasks[i].stopping = true;
    int n = mo_cooperator_stop(h->loop);
    FZ_CHECK(n >= 0);
    for (size_t i = 0; i < before; i++) {
        struct fz_task *t = &h->tasks[i];
        t->stopped = true;
        /* From inside a callback, a task the outer frame is finishing (its
         * stop cancelled what it waited on, which ran us) has its Deferred
         * fired by that frame, later. */
        FZ_CHECK(task_ended(t) && (!t->done->observed || t->fired || h->depth));
    }
}

/* ---- the operations ---- */

enum {
    OP_LATER,
    OP_AT,
    OP_CANCEL,
    OP_RESET,
    OP_DELAY,
    OP_QUERY,
    OP_ADVANCE,
    OP_RUN,
    OP_SOON,
    OP_THREAD,
    OP_DNEW,
    OP_DADD,
    OP_DFIRE,
    OP_DCANCEL,
    OP_DCHAIN,
    OP_DLIST,
    OP_DDROP,
    OP_DLATER,
    OP_TASK,
    OP_PAUSE,
    OP_RESUME,
    OP_STOP,
    OP_COOPSTOP,
    OP_CORO,
    OP_OOM,
    OP_SLICE,
    OP_COUNT
};

/* One iteration of the loop after moving the clock by `ns`. */
static int fz_run(struct fz *h, int64_t ns)
{
    h->limit = h->seq;
    h->in_iter = true;
    long inj = fz_injected;
    int rc = ns < 0 ? mo_loop_run(h->loop, MO_RUN_NOWAIT) : mo_loop_advance(h->loop, ns);
    h->in_iter = false;
    check_nomem(rc, inj);
    FZ_CHECK(rc == 0 || rc == MO_ENOMEM);
    FZ_CHECK(next_due(h) == NULL); /* everything due when it began has run */
    return rc;
}

static const char *const op_names[OP_COUNT] = {
    "later",  "at",    "cancel", "reset", "delay",    "query",  "advance", "run",   "soon",
    "thread", "dnew",  "dadd",   "dfire", "dcancel",  "dchain", "dlist",   "ddrop", "dlater",
    "task",   "pause", "resume", "stop",  "coopstop", "coro",   "oom",     "slice"};

static void do_op(struct fz *h, struct fz_in *in, uint8_t ttl)
{
    uint8_t op = in_u8(in) % OP_COUNT;
    bool inside = h->in_iter;
    TRACE("%*s%s (now %lld, ttl %u)\n", 2 * (TTL - ttl), "", op_names[op],
          (long long)mo_loop_now(h->loop), ttl);
    switch (op) {
    case OP_LATER:
    case OP_AT:
        op_schedule(h, in, op == OP_AT, ttl);
        break;
    case OP_CANCEL:
    case OP_RESET:
    case OP_DELAY:
        op_call_change(h, in, op - OP_CANCEL);
        break;
    case OP_QUERY:
        op_call_query(h, in);
        break;
    case OP_ADVANCE:
    case OP_RUN: {
        int64_t ns = op == OP_RUN ? -1 : in_delay(in);
        if (inside) {
            FZ_CHECK(mo_loop_advance(h->loop, ns < 0 ? 0 : ns) == MO_EBUSY);
            FZ_CHECK(mo_loop_run(h->loop, MO_RUN_NOWAIT) == MO_EBUSY);
        } else {
            fz_run(h, ns);
        }
        break;
    }
    case OP_SOON:
    case OP_THREAD:
        op_soon(h, in, op == OP_THREAD, ttl);
        break;
    case OP_DNEW:
        op_def_new(h, in, ttl);
        break;
    case OP_DADD:
        op_def_add(h, in, ttl);
        break;
    case OP_DFIRE:
        op_def_fire(h, in);
        break;
    case OP_DCANCEL:
        op_def_cancel(h, in);
        break;
    case OP_DCHAIN:
        op_def_chain(h, in);
        break;
    case OP_DLIST:
        op_def_list(h, in);
        break;
    case OP_DDROP:
        op_def_drop(h, in);
        break;
    case OP_DLATER:
        op_def_later(h, in, ttl);
        break;
    case OP_TASK:
    case OP_CORO:
        if (!h->closing) op_task_start(h, in, op == OP_CORO, ttl);
        break;
    case OP_PAUSE:
    case OP_RESUME:
    case OP_STOP:
        op_task_ctl(h, in, op - OP_PAUSE);
        break;
    case OP_COOPSTOP:
        op_coop_stop(h);
        break;
    case OP_OOM:
        fz_countdown = in_u8(in) % 32;
        break;
    default: {
        uint8_t s = in_u8(in);
        long inj = fz_injected;
        int rc = mo_cooperator_set_slice(h->loop, s ? MO_USEC(s) * 50 : MO_SEC(1));
        check_nomem(rc, inj);
        FZ_CHECK(rc == 0 || rc == MO_ENOMEM);
        break;
    }
    }
}

static void on_unhandled(mo_loop_t *loop, const mo_failure_t *f, void *arg)
{
    (void)loop;
    (void)f;
    ((struct fz *)arg)->unhandled++;
}

/* Runs the loop until nothing is left: what is due, then ever later. */
static void drain(struct fz *h)
{
    for (int round = 0; round < 64 && mo_loop_alive(h->loop) == 1; round++)
        fz_run(h, round < 4 ? 0 : (int64_t)1 << (MAX_DELAY_SHIFT + 4));
    FZ_CHECK(mo_loop_alive(h->loop) == 0);
}

/* Ends the input: stop the tasks, run everything still due, drop every
 * reference, run again what that started, free the loop; then nothing may
 * be left. */
static void teardown(struct fz *h)
{
    fz_countdown = -1;
    h->closing = true;
    op_coop_stop(h);
    drain(h);
    /* Callbacks run by the drain may make new Deferreds: until none is left. */
    for (bool any = true; any;) {
        any = false;
        for (size_t i = 0; i < h->ndefs; i++) {
            if (!h->defs[i].d) continue;
            def_release(&h->defs[i]);
            any = true;
        }
        drain(h);
    }
    for (size_t i = 0; i < h->ncalls; i++) FZ_CHECK(h->calls[i].state != C_PENDING);
    for (size_t i = 0; i < h->nsoons; i++) FZ_CHECK(h->soons[i].ran);
    for (size_t i = 0; i < h->ntasks; i++) {
        struct fz_task *t = &h->tasks[i];
        FZ_CHECK(task_ended(t) && (!t->done->observed || t->fired));
        mo_deferred_unref(t->waiting);
        t->waiting = NULL;
        mo_task_release(t->t);
    }
    drain(h);
    mo_loop_free(h->loop);
    h->loop = NULL;
    /* FUZZ_LOOP_LSAN=1 leaves leaks to LeakSanitizer, which names them. */
    if (!getenv("FUZZ_LOOP_LSAN")) FZ_CHECK(fz_blocks == 0);
    FZ_CHECK(fz_tokens == 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (mo_replace_allocator(fz_malloc, fz_realloc, fz_calloc, fz_free) != 0) abort();
    const char *trace = getenv("FUZZ_LOOP_TRACE");
    fz_trace = trace && *trace && *trace != '0';
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz *h = &H;
    memset(h, 0, sizeof(*h));
    fz_countdown = -1;
    fz_blocks = 0;
    fz_tokens = 0;
    if (mo_loop_new(&h->loop, MO_LOOP_VIRTUAL_CLOCK) != 0) abort();
    /* Determinism: ready calls run until the queue is empty (their budget
     * is real time), the cooperator's slice is long. */
    FZ_CHECK(mo_loop_set_io_interval(h->loop, MO_SEC(3600)) == 0);
    FZ_CHECK(mo_cooperator_set_slice(h->loop, MO_SEC(1)) == 0);
    FZ_CHECK(mo_loop_set_error_hook(h->loop, on_unhandled, h) == 0);
    struct fz_in in = {data, size};
    for (int i = 0; i < N_OPS && in.n; i++) do_op(h, &in, TTL);
    teardown(h);
    return 0;
}
