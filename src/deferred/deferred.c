/* Deferreds: callback chains, waiting on other Deferreds, chaining,
 * cancellation, and the loop's error hook.
 *
 * Running is iterative (Twisted's _runCallbacks, extended to
 * chainDeferred): run() keeps a stack of Deferreds threaded through their
 * `below` field. A link that hands the outcome to another Deferred (RESUME
 * of a waiting outer Deferred, CHAIN to a chained one, a list's member
 * link that fires the list) pushes that Deferred instead of calling into
 * it; when the top has no runnable link left it is popped and the one
 * below goes on. C stack use is therefore constant however deep the chain.
 * Freeing is iterative too: Deferreds whose last reference a dying one held
 * are queued on the same `below` field. */
#include "deferred/deferred_int.h"

#include <stdio.h>
#include <string.h>

static inline struct mo__link *links(mo_deferred_t *d)
{
    return d->cap > MO__INLINE_LINKS ? d->u.heap : d->u.inl;
}

static inline bool settled(const mo_deferred_t *d)
{
    return d->fired && !d->paused && !d->on_stack;
}

/* Empties an outcome. The fields are cleared before the destructor runs:
 * it is user code and may look at the Deferred. */
static void result_clear(struct mo_result *r)
{
    void *value = r->value;
    mo_dtor_fn dtor = r->dtor;
    mo_failure_t *failure = r->failure;
    r->value = NULL;
    r->dtor = NULL;
    r->failure = NULL;
    if (dtor) dtor(value);
    mo_failure_unref(failure);
}

void mo__result_move(struct mo_result *to, struct mo_result *from)
{
    to->value = from->value;
    to->dtor = from->dtor;
    to->failure = from->failure;
    from->value = NULL;
    from->dtor = NULL;
    from->failure = NULL;
}

/* ---- the error hook ---- */

/* The loop's error hook lives in a state the deferred layer attaches to
 * the loop the first time a hook is set; without one, reports go to
 * stderr. */
struct error_hook {
    mo_error_hook_fn fn;
    void *arg;
};

static void error_hook_free(mo_loop_t *loop, void *state)
{
    (void)loop;
    mo__free(state);
}

static const struct mo__hooks error_hook_hooks = {"error hook", 1, NULL, error_hook_free};

int mo_loop_set_error_hook(mo_loop_t *loop, mo_error_hook_fn fn, void *arg)
{
    if (!loop) return MO_EINVAL;
    struct error_hook *h = mo__loop_state(loop, &error_hook_hooks);
    if (!h) {
        if (!fn) return 0;
        if (!(h = mo__malloc(sizeof(*h)))) return MO_ENOMEM;
        int err = mo__loop_attach(loop, &error_hook_hooks, h);
        if (err) {
            mo__free(h);
            return err;
        }
    }
    h->fn = fn;
    h->arg = fn ? arg : NULL;
    return 0;
}

static void report_unhandled(mo_loop_t *loop, const mo_failure_t *f)
{
    const struct error_hook *h = mo__loop_state(loop, &error_hook_hooks);
    if (h && h->fn) {
        h->fn(loop, f, h->arg);
        return;
    }
    char buf[512];
    mo_failure_format(f, buf, sizeof(buf));
    fprintf(stderr, "morsel: unhandled error in Deferred: %s\n", buf);
}

/* ---- life cycle ---- */

int mo__deferred_alloc(mo_loop_t *loop, size_t extra, mo_deferred_t **dp)
{
    mo_deferred_t *d = mo__malloc(sizeof(*d) + extra);
    if (!d) return MO_ENOMEM;
    memset(d, 0, sizeof(*d));
    d->loop = loop;
    d->refs = 1;
    d->cap = MO__INLINE_LINKS;
    *dp = d;
    return 0;
}

int mo_deferred_new(mo_loop_t *loop, mo_canceller_fn canceller, void *canceller_arg,
                    mo_deferred_t **dp)
{
    if (!loop || !dp) return MO_EINVAL;
    int rc = mo__deferred_alloc(loop, 0, dp);
    if (rc) return rc;
    (*dp)->canceller = canceller;
    (*dp)->canceller_arg = canceller_arg;
    return 0;
}

mo_deferred_t *mo_deferred_ref(mo_deferred_t *d)
{
    if (d) d->refs++;
    return d;
}

mo_loop_t *mo_deferred_loop(const mo_deferred_t *d)
{
    return d ? d->loop : NULL;
}

/* Drops a reference held by a dying Deferred: queues x for freeing rather
 * than freeing it from here, so a long chain is freed without recursion. */
static void release(mo_deferred_t *x, mo_deferred_t **queue)
{
    if (--x->refs == 0) {
        x->below = *queue;
        *queue = x;
    }
}

static void drop_links(mo_deferred_t *d, mo_deferred_t **queue)
{
    for (uint32_t i = d->head; i < d->len; i++) {
        struct mo__link *l = &links(d)[i];
        mo_deferred_t *outer = l->arg;
        switch (mo__link_kind(l)) {
        case MO__LINK_RESUME:
            if (outer->waiting == d) outer->waiting = NULL;
            release(outer, queue);
            break;
        case MO__LINK_CHAIN:
            release(l->arg, queue);
            break;
        case MO__LINK_LIST:
            release(mo__dlist_member_dropped(l->arg), queue);
            break;
        case MO__LINK_USER:
            break;
        }
    }
    d->head = d->len = 0;
}

static void destroy(mo_deferred_t *d, mo_deferred_t **queue)
{
    const mo_failure_t *f = d->fired && !d->paused ? d->res.failure : NULL;
    if (f && !(d->quiet && f->code == MO_ECANCELED)) report_unhandled(d->loop, f);
    drop_links(d, queue);
    result_clear(&d->res);
    if (d->is_list) mo__dlist_fini(d);
    if (d->cap > MO__INLINE_LINKS) mo__free(d->u.heap);
    mo__free(d);
}

void mo_deferred_unref(mo_deferred_t *d)
{
    if (!d) return;
    if (MO__UNLIKELY(d->refs == 0)) {
        fprintf(stderr, "morsel: mo_deferred_unref(%p): no reference left to release\n", (void *)d);
        return;
    }
    if (--d->refs) return;
    d->below = NULL;
    while (d) {
        mo_deferred_t *queue = d->below;
        destroy(d, &queue);
        d = queue;
    }
}

/* ---- the callback runner ---- */

/* Makes room for n more links: compacts, or moves them to a bigger heap
 * array. Indices stay valid for the runner, which re-reads head. */
int mo__deferred_reserve(mo_deferred_t *d, uint32_t n)
{
    uint32_t used = d->len - d->head;
    if (d->cap - d->len >= n) return 0;
    struct mo__link *old = links(d);
    if (d->cap - used >= n) {
        memmove(old, old + d->head, used * sizeof(*old));
    } else {
        if (used > UINT32_MAX / 2 - n) return MO_ENOMEM;
        uint32_t cap = d->cap * 2 > used + n ? d->cap * 2 : used + n;
        struct mo__link *nl = mo__malloc((size_t)cap * sizeof(*nl));
        if (!nl) return MO_ENOMEM;
        memcpy(nl, old + d->head, used * sizeof(*nl));
        if (d->cap > MO__INLINE_LINKS) mo__free(old);
        d->u.heap = nl;
        d->cap = cap;
    }
    d->head = 0;
    d->len = used;
    return 0;
}

static void append(mo_deferred_t *d, struct mo__link link)
{
    links(d)[d->len++] = link;
}

/* An internal link to `arg`. */
static struct mo__link internal(enum mo__link_kind kind, void *arg)
{
    return (struct mo__link){.u.kind = kind, .arg = arg};
}

/* The callback handed back `d->res.wait`: drop the outcome and take the
 * inner one's if it has settled, else pause until it fires. */
static void take_wait(mo_deferred_t *d)
{
    mo_deferred_t *inner = d->res.wait;
    d->res.wait = NULL;
    result_clear(&d->res);
    if (settled(inner)) {
        mo__result_move(&d->res, &inner->res);
    } else if (mo__deferred_reserve(inner, 1) == 0) {
        append(inner, internal(MO__LINK_RESUME, d));
        d->refs++;
        d->paused = 1;
        d->waiting = inner;
    } else {
        d->res.failure = mo_failure_new(MO_ENOMEM, "mo_result_wait", "no room to wait");
    }
    mo_deferred_unref(inner);
}

/* A CHAIN link: fire `other` with d's outcome, or fail if it has fired.
 * Returns other, to be pushed with the link's reference, or NULL. */
static mo_deferred_t *chain_fire(mo_deferred_t *d, mo_deferred_t *other)
{
    if (other->fired) {
        mo_deferred_unref(other);
        result_clear(&d->res);
        d->res.failure =
            mo_failure_new(MO_EALREADY, "mo_deferred_chain", "the chained Deferred already fired");
        return NULL;
    }
    mo__result_move(&other->res, &d->res);
    other->fired = 1;
    return other;
}

/* An internal link: returns the Deferred it hands the outcome to, if any. */
static mo_deferred_t *run_internal(mo_deferred_t *d, const struct mo__link *l)
{
    enum mo__link_kind kind = mo__link_kind(l);
    if (kind == MO__LINK_RESUME) {
        mo_deferred_t *outer = l->arg;
        mo__result_move(&outer->res, &d->res);
        outer->paused = 0;
        outer->waiting = NULL;
        return outer;
    }
    if (kind == MO__LINK_CHAIN) return chain_fire(d, l->arg);
    mo_deferred_t *release_it = NULL;
    mo_deferred_t *next = mo__dlist_member_fired(d, l->arg, &release_it);
    mo_deferred_unref(release_it);
    return next;
}

/* Runs d's links until none is left, d pauses, or one hands the outcome on;
 * returns the Deferred to push in that last case. */
static mo_deferred_t *step(mo_deferred_t *d)
{
    while (!d->paused && d->head < d->len) {
        struct mo__link l = links(d)[d->head++];
        if (mo__link_kind(&l) != MO__LINK_USER) {
            mo_deferred_t *next = run_internal(d, &l);
            if (next) return next;
            continue;
        }
        mo_deferred_fn fn = d->res.failure ? l.u.eb : l.cb;
        if (!fn) continue;
        fn(&d->res, l.arg);
        if (d->res.wait) take_wait(d);
    }
    if (d->head == d->len) d->head = d->len = 0;
    return NULL;
}

void mo__deferred_run(mo_deferred_t *d)
{
    if (!d->fired || d->paused || d->on_stack) return; /* its runner will see */
    d->refs++;
    d->on_stack = 1;
    d->below = NULL;
    mo_deferred_t *top = d;
    while (top) {
        mo_deferred_t *next = step(top);
        if (next && !next->on_stack) {
            next->on_stack = 1;
            next->below = top;
            top = next;
            continue;
        }
        if (next) { /* cannot happen: a pushed Deferred was unfired or paused */
            mo_deferred_unref(next);
            continue;
        }
        mo_deferred_t *below = top->below;
        top->on_stack = 0;
        top->below = NULL;
        mo_deferred_unref(top);
        top = below;
    }
}

void mo__deferred_fire(mo_deferred_t *d, struct mo_result res)
{
    d->fired = 1;
    d->res = res;
    mo__deferred_run(d);
}

static int fire(mo_deferred_t *d, struct mo_result res)
{
    if (d->fired) {
        result_clear(&res);
        return d->cancelled ? MO_ECANCELED : MO_EALREADY;
    }
    mo__deferred_fire(d, res);
    return 0;
}

int mo_deferred_callback(mo_deferred_t *d, void *value, mo_dtor_fn dtor)
{
    if (!d) {
        if (dtor) dtor(value);
        return MO_EINVAL;
    }
    return fire(d, (struct mo_result){.value = value, .dtor = dtor});
}

int mo_deferred_errback(mo_deferred_t *d, mo_failure_t *failure)
{
    if (!d || !failure) {
        mo_failure_unref(failure);
        return MO_EINVAL;
    }
    return fire(d, (struct mo_result){.failure = failure});
}

int mo__deferred_errback_quiet(mo_deferred_t *d, mo_failure_t *failure)
{
    if (!d->fired) d->quiet = 1;
    return mo_deferred_errback(d, failure);
}

int mo_deferred_fail(mo_deferred_t *d, int code, const char *origin, const char *fmt, ...)
{
    if (!d || code == 0) return MO_EINVAL;
    if (d->fired) return d->cancelled ? MO_ECANCELED : MO_EALREADY;
    va_list ap;
    va_start(ap, fmt);
    mo_failure_t *f = mo_failure_newv(code, origin, fmt, ap);
    va_end(ap);
    return fire(d, (struct mo_result){.failure = f});
}

int mo__deferred_add(mo_deferred_t *d, const struct mo__link *link)
{
    int rc = mo__deferred_reserve(d, 1);
    if (rc) return rc;
    append(d, *link);
    mo__deferred_run(d);
    return 0;
}

int mo_deferred_add_callbacks(mo_deferred_t *d, mo_deferred_fn cb, mo_deferred_fn eb, void *arg)
{
    if (!d || (!cb && !eb)) return MO_EINVAL;
    return mo__deferred_add(d, &(struct mo__link){cb, {eb}, arg});
}

int mo_deferred_add_callback(mo_deferred_t *d, mo_deferred_fn cb, void *arg)
{
    if (!cb) return MO_EINVAL;
    return mo_deferred_add_callbacks(d, cb, NULL, arg);
}

int mo_deferred_add_errback(mo_deferred_t *d, mo_deferred_fn eb, void *arg)
{
    if (!eb) return MO_EINVAL;
    return mo_deferred_add_callbacks(d, NULL, eb, arg);
}

int mo_deferred_add_both(mo_deferred_t *d, mo_deferred_fn fn, void *arg)
{
    if (!fn) return MO_EINVAL;
    return mo_deferred_add_callbacks(d, fn, fn, arg);
}

int mo_deferred_chain(mo_deferred_t *d, mo_deferred_t *other)
{
    if (!d || !other || d == other || d->loop != other->loop) return MO_EINVAL;
    if (other->fired) return MO_EALREADY;
    int rc = mo__deferred_reserve(d, 1);
    if (rc) return rc;
    other->refs++;
    append(d, internal(MO__LINK_CHAIN, other));
    mo__deferred_run(d);
    return 0;
}

int mo_deferred_cancel(mo_deferred_t *d)
{
    if (!d) return MO_EINVAL;
    while (d->fired && d->paused && d->waiting) d = d->waiting;
    if (d->fired) return MO_EALREADY;
    d->refs++;
    d->cancelled = 1;
    /* A canceller runs once: cancelling d again from inside it only fires
     * d (below), instead of calling the canceller without end. */
    mo_canceller_fn canceller = d->canceller;
    d->canceller = NULL;
    if (canceller) canceller(d, d->canceller_arg);
    if (!d->fired) {
        mo_failure_t *f = mo_failure_new(MO_ECANCELED, "mo_deferred_cancel", NULL);
        mo__deferred_fire(d, (struct mo_result){.failure = f});
    }
    mo_deferred_unref(d);
    return 0;
}

int mo_deferred_fired(const mo_deferred_t *d)
{
    if (!d) return 0; /* not MO_EINVAL, which would read as true */
    return d->fired ? 1 : 0;
}

int mo_deferred_result(const mo_deferred_t *d, void **valuep, const mo_failure_t **failurep)
{
    if (!d) return MO_EINVAL;
    if (!settled(d)) return MO_EAGAIN;
    if (valuep) *valuep = d->res.failure ? NULL : d->res.value;
    if (failurep) *failurep = d->res.failure;
    return 0;
}

int mo_deferred_take(mo_deferred_t *d, void **valuep, mo_dtor_fn *dtorp, mo_failure_t **failurep)
{
    if (!d || !valuep || !dtorp || !failurep) return MO_EINVAL;
    if (!settled(d)) return MO_EAGAIN;
    struct mo_result out = {0};
    mo__result_move(&out, &d->res);
    *valuep = out.value;
    *dtorp = out.dtor;
    *failurep = out.failure;
    return 0;
}

/* ---- the result handle ---- */

void *mo_result_value(const mo_result_t *result)
{
    return result && !result->failure ? result->value : NULL;
}

mo_failure_t *mo_result_failure(const mo_result_t *result)
{
    return result ? result->failure : NULL;
}

mo_deferred_t *mo_result_deferred(const mo_result_t *result)
{
    return result ? mo__container_of(result, mo_deferred_t, res) : NULL;
}

static void drop_wait(mo_result_t *result)
{
    mo_deferred_t *w = result->wait;
    result->wait = NULL;
    mo_deferred_unref(w);
}

int mo_result_set(mo_result_t *result, void *value, mo_dtor_fn dtor)
{
    if (!result) {
        if (dtor) dtor(value);
        return MO_EINVAL;
    }
    drop_wait(result);
    if (value && value == result->value && !result->failure) result->dtor = NULL; /* same object */
    result_clear(result);
    result->value = value;
    result->dtor = dtor;
    return 0;
}

void *mo_result_take(mo_result_t *result, mo_dtor_fn *dtorp)
{
    if (dtorp) *dtorp = NULL;
    if (!result || result->failure) return NULL;
    void *value = result->value;
    if (dtorp) *dtorp = result->dtor;
    result->value = NULL;
    result->dtor = NULL;
    return value;
}

int mo_result_set_failure(mo_result_t *result, mo_failure_t *failure)
{
    if (!result || !failure) {
        mo_failure_unref(failure);
        return MO_EINVAL;
    }
    drop_wait(result);
    result_clear(result);
    result->failure = failure;
    return 0;
}

int mo_result_fail(mo_result_t *result, int code, const char *origin, const char *fmt, ...)
{
    if (!result) return MO_EINVAL;
    va_list ap;
    va_start(ap, fmt);
    mo_failure_t *f = mo_failure_newv(code, origin, fmt, ap);
    va_end(ap);
    return mo_result_set_failure(result, f);
}

int mo_result_wait(mo_result_t *result, mo_deferred_t *d)
{
    mo_deferred_t *self = mo_result_deferred(result);
    if (!result || !d || d == self || d->loop != self->loop) {
        mo_deferred_unref(d);
        return MO_EINVAL;
    }
    /* Room for the RESUME link now, so that pausing cannot fail later. */
    int rc = mo__deferred_reserve(d, 1);
    if (rc) {
        mo_deferred_unref(d);
        return rc;
    }
    drop_wait(result);
    result->wait = d;
    return 0;
}

/* ---- ready-made Deferreds ---- */

int mo_deferred_new_succeeded(mo_loop_t *loop, void *value, mo_dtor_fn dtor, mo_deferred_t **dp)
{
    int rc = loop && dp ? mo__deferred_alloc(loop, 0, dp) : MO_EINVAL;
    if (rc) {
        if (dtor) dtor(value);
        return rc;
    }
    (*dp)->fired = 1;
    (*dp)->res.value = value;
    (*dp)->res.dtor = dtor;
    return 0;
}

int mo_deferred_new_failed(mo_loop_t *loop, mo_failure_t *failure, mo_deferred_t **dp)
{
    int rc = loop && dp && failure ? mo__deferred_alloc(loop, 0, dp) : MO_EINVAL;
    if (rc) {
        mo_failure_unref(failure);
        return rc;
    }
    (*dp)->fired = 1;
    (*dp)->res.failure = failure;
    return 0;
}

/* mo_defer_later(): the delayed call holds a reference to d. Its id is kept
 * in the bytes after the Deferred: a 64-bit id does not fit canceller_arg on
 * 32-bit targets. */
static mo_call_id later_id(const mo_deferred_t *d)
{
    mo_call_id id;
    memcpy(&id, d + 1, sizeof(id));
    return id;
}

static void later_fire(mo_loop_t *loop, void *arg)
{
    (void)loop;
    mo_deferred_t *d = arg;
    d->canceller = NULL;
    mo_deferred_callback(d, NULL, NULL);
    mo_deferred_unref(d);
}

static void later_cancel(mo_deferred_t *d, void *arg)
{
    (void)arg;
    if (mo_call_cancel(d->loop, later_id(d)) == 0) d->refs--; /* the call's */
}

int mo_deferred_call_later(mo_loop_t *loop, int64_t delay, mo_deferred_fn fn, void *arg,
                           mo_deferred_t **dp)
{
    if (!loop || !fn || !dp || delay < 0) return MO_EINVAL;
    mo_deferred_t *d;
    int rc = mo__deferred_alloc(loop, sizeof(mo_call_id), &d);
    if (rc) return rc;
    append(d, (struct mo__link){fn, {NULL}, arg});
    mo_call_id id;
    rc = mo_call_later(loop, delay, later_fire, d, &id);
    if (rc) {
        mo_deferred_unref(d);
        return rc;
    }
    d->refs++;
    d->canceller = later_cancel;
    memcpy(d + 1, &id, sizeof(id));
    *dp = d;
    return 0;
}

/* ---- deprecated names ---- */

int mo_defer_succeed(mo_loop_t *loop, void *value, mo_dtor_fn dtor, mo_deferred_t **dp)
{
    return mo_deferred_new_succeeded(loop, value, dtor, dp);
}

int mo_defer_fail(mo_loop_t *loop, mo_failure_t *failure, mo_deferred_t **dp)
{
    return mo_deferred_new_failed(loop, failure, dp);
}

int mo_defer_later(mo_loop_t *loop, int64_t delay, mo_deferred_fn fn, void *arg, mo_deferred_t **dp)
{
    return mo_deferred_call_later(loop, delay, fn, arg, dp);
}
