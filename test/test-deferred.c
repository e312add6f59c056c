/* Deferreds: Twisted's callback/errback semantics, waiting and chaining
 * (iterative, a million links on a 64 KiB stack), cancellation, unhandled
 * failures, lists, deferLater, allocation counts and out of memory. */
#include "test.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers ---- */

/* An event log: callbacks append a tag and what they saw. */
static struct {
    int tag[64];
    intptr_t seen[64]; /* the value, or the failure code */
    size_t len;
    int depth, max_depth; /* nesting of callbacks: never more than 1 */
} ev;

static void note(int tag, mo_result_t *r)
{
    assert_true(ev.len < 64);
    mo_failure_t *f = mo_result_failure(r);
    ev.tag[ev.len] = tag;
    ev.seen[ev.len++] = f ? mo_failure_code(f) : (intptr_t)mo_result_value(r);
}

/* Logs and passes the outcome on. arg: the tag. */
static void log_cb(mo_result_t *r, void *arg)
{
    note((int)(intptr_t)arg, r);
}

/* Logs, then fails with MO_EIO. */
static void fail_cb(mo_result_t *r, void *arg)
{
    note((int)(intptr_t)arg, r);
    assert_ok(mo_result_fail(r, MO_EIO, __func__, "tag %d", (int)(intptr_t)arg));
}

/* Logs, then recovers with value 77. */
static void recover_cb(mo_result_t *r, void *arg)
{
    note((int)(intptr_t)arg, r);
    assert_ok(mo_result_set(r, (void *)77, NULL));
}

#define TAG(n) ((void *)(intptr_t)(n))

static void expect_log(size_t n, const int *tags, const intptr_t *seen)
{
    assert_int_equal(ev.len, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ev.tag[i], tags[i]);
        assert_int_equal(ev.seen[i], seen[i]);
    }
}

/* Destructor that counts: the value is a pointer to an int. */
static void count_dtor(void *p)
{
    ++*(int *)p;
}

/* Captures unhandled failures through the loop's error hook. */
struct hook_log {
    int count;
    int code;
    char line[256];
};
static void capture_hook(mo_loop_t *loop, const mo_failure_t *f, void *arg)
{
    (void)loop;
    struct hook_log *h = arg;
    h->count++;
    h->code = mo_failure_code(f);
    mo_failure_format(f, h->line, sizeof(h->line));
}

/* A fresh virtual-clock loop, with the event log emptied: every test
 * starts with one, so the tests also pass when run in one process. */
static mo_loop_t *fresh_loop(void)
{
    memset(&ev, 0, sizeof(ev));
    return mo_test_virtual_loop();
}

static mo_deferred_t *new_d(mo_loop_t *loop)
{
    mo_deferred_t *d = NULL;
    assert_ok(mo_deferred_new(loop, NULL, NULL, &d));
    return d;
}

/* ---- callback / errback semantics (rule 6) ---- */

static void test_callback_runs_with_value(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    mo_deferred_t *d = new_d(loop);
    assert_int_equal(mo_deferred_fired(d), 0);
    assert_ok(mo_deferred_add_callback(d, log_cb, TAG(1)));
    assert_int_equal(ev.len, 0);
    int destroyed = 0;
    assert_ok(mo_deferred_callback(d, &destroyed, count_dtor));
    expect_log(1, (int[]){1}, (intptr_t[]){(intptr_t)&destroyed});
    assert_int_equal(mo_deferred_fired(d), 1);
    void *v = NULL;
    const mo_failure_t *f = (void *)1;
    assert_ok(mo_deferred_result(d, &v, &f));
    assert_ptr_equal(v, &destroyed);
    assert_null(f);
    assert_int_equal(destroyed, 0);
    mo_deferred_unref(d); /* the Deferred owns the value */
    assert_int_equal(destroyed, 1);
    mo_loop_free(loop);
}

static void test_callback_failure_skips_to_next_errback(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    mo_deferred_t *d = new_d(loop);
    assert_ok(mo_deferred_add_callback(d, fail_cb, TAG(1)));
    assert_ok(mo_deferred_add_callback(d, log_cb, TAG(2))); /* skipped */
    assert_ok(mo_deferred_add_errback(d, recover_cb, TAG(3)));
    assert_ok(mo_deferred_add_callback(d, log_cb, TAG(4)));
    assert_ok(mo_deferred_callback(d, (void *)5, NULL));
    expect_log(3, (int[]){1, 3, 4}, (intptr_t[]){5, MO_EIO, 77});
    mo_deferred_unref(d);
    mo_loop_free(loop);
}

static void test_errback_value_returns_to_callback_path(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    mo_deferred_t *d = new_d(loop);
    assert_ok(mo_deferred_add_callback(d, log_cb, TAG(1))); /* skipped */
    assert_ok(mo_deferred_add_errback(d, log_cb, TAG(2)));  /* passes it on */
    assert_ok(mo_deferred_add_errback(d, recover_cb, TAG(3)));
    assert_ok(mo_deferred_add_errback(d, log_cb, TAG(4))); /* skipped */
    assert_ok(mo_deferred_add_callback(d, log_cb, TAG(5)));
    assert_ok(mo_deferred_fail(d, MO_EPIPE, __func__, "x"));
    expect_log(3, (int[]){2, 3, 5}, (intptr_t[]){MO_EPIPE, MO_EPIPE, 77});
    mo_deferred_unref(d);
    mo_loop_free(loop);
}

static void test_pair_halves_never_see_each_other(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    mo_deferred_t *d = new_d(loop);
    /* cb fails: its own eb must not run, the next pair's must. */
    assert_ok(mo_deferred_add_callbacks(d, fail_cb, log_cb, TAG(1)));
    /* eb recovers: its own cb must not run, the next pair's must. */
    assert_ok(mo_deferred_add_callbacks(d, log_cb, recover_cb, TAG(2)));
    assert_ok(mo_deferred_add_callbacks(d, log_cb, log_cb, TAG(3)));
    assert_ok(mo_deferred_callback(d, (void *)9, NULL));
    expect_log(3, (int[]){1, 2, 3}, (intptr_t[]){9, MO_EIO, 77});
    mo_deferred_unref(d);
    mo_loop_free(loop);
}

static void test_add_both_runs_on_either_path(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    mo_deferred_t *d = new_d(loop);
    assert_ok(mo_deferred_add_both(d, log_cb, TAG(1)));
    assert_ok(mo_deferred_add_both(d, fail_cb, TAG(2)));
    assert_ok(mo_deferred_add_both(d, recover_cb, TAG(3)));
    assert_ok(mo_deferred_callback(d, (void *)4, NULL));
    expect_log(3, (int[]){1, 2, 3}, (intptr_t[]){4, 4, MO_EIO});
    mo_deferred_unref(d);
    mo_loop_free(loop);
}

static void test_add_to_fired_runs_at_once(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    mo_deferred_t *d = new_d(loop);
    assert_ok(mo_deferred_callback(d, (void *)3, NULL));
    assert_ok(mo_deferred_add_callback(d, log_cb, TAG(1)));
    assert_int_equal(ev.len, 1);
    assert_ok(mo_deferred_add_callback(d, fail_cb, TAG(2)));
    assert_ok(mo_deferred_add_errback(d, recover_cb, TAG(3)));
    expect_log(3, (int[]){1, 2, 3}, (intptr_t[]){3, 3, MO_EIO});
    mo_deferred_unref(d);
    mo_loop_free(loop);
}

/* Adds two callbacks to its own Deferred while running (twice): they must
 * run after this one returns, in the order added, from the same loop: the
 * nesting depth stays 1. */
static int adds_left;
static void adding_cb(mo_result_t *r, void *arg)
{
    (void)arg;
    ev.depth++;
    if (ev.depth > ev.max_depth) ev.max_depth = ev.depth;
    mo_deferred_t *d = mo_result_deferred(r);
    if (adds_left > 0) {
        int tag = 100 + adds_left--;
        assert_ok(mo_deferred_add_callback(d, adding_cb, NULL));
        assert_ok(mo_deferred_add_callback(d, log_cb, TAG(tag)));
    }
    note(0, r);
    ev.depth--;
}

static void test_callbacks_added_while_running_are_not_recursive(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    mo_deferred_t *d = new_d(loop);
    adds_left = 2;
    assert_ok(mo_deferred_add_callback(d, adding_cb, NULL));
    assert_ok(mo_deferred_callback(d, (void *)1, NULL));
    assert_int_equal(ev.max_depth, 1);
    expect_log(5, (int[]){0, 0, 102, 0, 101}, (intptr_t[]){1, 1, 1, 1, 1});
    mo_deferred_unref(d);
    mo_loop_free(loop);
}

static void test_firing_twice_is_ealready(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    mo_deferred_t *d = new_d(loop);
    int destroyed = 0;
    assert_ok(mo_deferred_callback(d, (void *)1, NULL));
    assert_mo(MO_EALREADY, mo_deferred_callback(d, &destroyed, count_dtor));
    assert_int_equal(destroyed, 1); /* taken, and destroyed, in every case */
    assert_mo(MO_EALREADY, mo_deferred_errback(d, mo_failure_new(MO_EIO, NULL, NULL)));
    assert_mo(MO_EALREADY, mo_deferred_fail(d, MO_EIO, NULL, NULL));
    void *v;
    assert_ok(mo_deferred_result(d, &v, NULL));
    assert_ptr_equal(v, (void *)1);
    mo_deferred_unref(d);
    mo_loop_free(loop);
}

static void test_bad_input_is_einval(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    mo_deferred_t *d = new_d(loop), *out = NULL;
    int destroyed = 0;
    assert_mo(MO_EINVAL, mo_deferred_new(NULL, NULL, NULL, &out));
    assert_mo(MO_EINVAL, mo_deferred_new(loop, NULL, NULL, NULL));
    assert_mo(MO_EINVAL, mo_deferred_add_callbacks(d, NULL, NULL, NULL));
    assert_mo(MO_EINVAL, mo_deferred_add_callbacks(NULL, log_cb, log_cb, NULL));
    assert_mo(MO_EINVAL, mo_deferred_add_callback(d, NULL, NULL));
    assert_mo(MO_EINVAL, mo_deferred_add_errback(d, NULL, NULL));
    assert_mo(MO_EINVAL, mo_deferred_add_both(d, NULL, NULL));
    assert_mo(MO_EINVAL, mo_deferred_callback(NULL, &destroyed, count_dtor));
    assert_int_equal(destroyed, 1);
    assert_mo(MO_EINVAL, mo_deferred_errback(d, NULL));
    assert_mo(MO_EINVAL, mo_deferred_errback(NULL, mo_failure_new(MO_EIO, NULL, NULL)));
    assert_mo(MO_EINVAL, mo_deferred_fail(d, 0, NULL, NULL));
    assert_mo(MO_EINVAL, mo_deferred_fail(NULL, MO_EIO, NULL, NULL));
    assert_mo(MO_EINVAL, mo_deferred_chain(d, NULL));
    assert_mo(MO_EINVAL, mo_deferred_chain(NULL, d));
    assert_mo(MO_EINVAL, mo_deferred_chain(d, d));
    assert_mo(MO_EINVAL, mo_deferred_cancel(NULL));
    assert_int_equal(mo_deferred_fired(NULL), 0); /* not MO_EINVAL: that reads as true */
    assert_mo(MO_EINVAL, mo_deferred_result(NULL, NULL, NULL));
    void *v;
    mo_dtor_fn dt;
    mo_failure_t *f;
    assert_mo(MO_EINVAL, mo_deferred_take(d, NULL, &dt, &f));
    assert_mo(MO_EINVAL, mo_deferred_take(NULL, &v, &dt, &f));
    assert_mo(MO_EAGAIN, mo_deferred_result(d, &v, NULL)); /* unfired */
    assert_mo(MO_EAGAIN, mo_deferred_take(d, &v, &dt, &f));
    assert_mo(MO_EINVAL, mo_deferred_new_succeeded(NULL, &destroyed, count_dtor, &out));
    assert_int_equal(destroyed, 2);
    assert_mo(MO_EINVAL, mo_deferred_new_failed(loop, NULL, &out));
    assert_mo(MO_EINVAL, mo_deferred_new_failed(NULL, mo_failure_new(MO_EIO, NULL, NULL), &out));
    assert_mo(MO_EINVAL, mo_deferred_call_later(loop, -1, log_cb, NULL, &out));
    assert_mo(MO_EINVAL, mo_deferred_call_later(loop, 0, NULL, NULL, &out));
    assert_mo(MO_EINVAL, mo_deferred_call_later(NULL, 0, log_cb, NULL, &out));
    assert_mo(MO_EINVAL, mo_deferred_call_later(loop, 0, log_cb, NULL, NULL));
    assert_mo(MO_EINVAL, mo_deferred_new_succeeded(loop, &destroyed, count_dtor, NULL));
    assert_int_equal(destroyed, 3); /* the value is taken even on error */
    assert_mo(MO_EINVAL, mo_deferred_new_failed(loop, mo_failure_new(MO_EIO, NULL, NULL), NULL));
    assert_mo(MO_EINVAL, mo_loop_set_error_hook(NULL, capture_hook, NULL));
    assert_mo(MO_EINVAL, mo_result_set(NULL, &destroyed, count_dtor));
    assert_int_equal(destroyed, 4);
    assert_mo(MO_EINVAL, mo_result_set_failure(NULL, mo_failure_new(MO_EIO, NULL, NULL)));
    assert_mo(MO_EINVAL, mo_result_fail(NULL, MO_EIO, NULL, NULL));
    assert_mo(MO_EINVAL, mo_result_wait(NULL, mo_deferred_ref(d)));
    assert_null(mo_result_take(NULL, &dt));
    assert_null(mo_result_value(NULL));
    assert_null(mo_result_failure(NULL));
    assert_null(mo_result_deferred(NULL));
    assert_null(mo_deferred_loop(NULL));
    assert_ptr_equal(mo_deferred_loop(d), loop);
    assert_null(mo_deferred_ref(NULL));
    mo_deferred_unref(NULL);
    assert_null(out);
    mo_deferred_unref(d);
    mo_loop_free(loop);
}

/* Errors of calls made from inside a callback. */
static void bad_calls_cb(mo_result_t *r, void *arg)
{
    mo_loop_t *other = arg;
    mo_deferred_t *self = mo_result_deferred(r);
    mo_deferred_t *foreign = new_d(other);
    assert_mo(MO_EINVAL, mo_result_wait(r, NULL));
    assert_mo(MO_EINVAL, mo_result_wait(r, mo_deferred_ref(self)));
    assert_mo(MO_EINVAL, mo_result_wait(r, foreign)); /* another loop; reference taken */
    assert_mo(MO_EINVAL, mo_result_set_failure(r, NULL));
    mo_dtor_fn dt = count_dtor;
    assert_ptr_equal(mo_result_take(r, &dt), (void *)8);
    assert_null(dt);
    assert_null(mo_result_value(r));
    note(1, r);
}

static void test_bad_input_inside_callbacks(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop(), *other = fresh_loop();
    mo_deferred_t *d = new_d(loop), *e = new_d(other);
    assert_mo(MO_EINVAL, mo_deferred_chain(d, e));
    assert_ok(mo_deferred_add_callback(d, bad_calls_cb, other));
    assert_ok(mo_deferred_callback(d, (void *)8, NULL));
    expect_log(1, (int[]){1}, (intptr_t[]){0});
    mo_deferred_unref(d);
    mo_deferred_unref(e);
    mo_loop_free(loop);
    mo_loop_free(other);
}

static void test_unref_below_zero_is_reported_not_fatal(void **state)
{
    (void)state;
    /* A Deferred whose value's destructor releases it once more: its count
     * is already 0 while it is being freed. */
    mo_loop_t *loop = fresh_loop();
    mo_deferred_t *d = new_d(loop);
    assert_ok(mo_deferred_callback(d, d, (mo_dtor_fn)mo_deferred_unref));
    mo_deferred_unref(d); /* prints "no reference left", frees once */
    mo_loop_free(loop);
}

/* ---- waiting on a Deferred a callback hands back (rule 7) ---- */

static void wait_on_arg_cb(mo_result_t *r, void *arg)
{
    note(0, r);
    assert_ok(mo_result_wait(r, mo_deferred_ref(arg)));
}

static void test_wait_pauses_until_inner_fires(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    mo_deferred_t *outer = new_d(loop), *inner = new_d(loop);
    int destroyed = 0;
    assert_ok(mo_deferred_add_callback(outer, wait_on_arg_cb, inner));
    assert_ok(mo_deferred_add_callback(outer, log_cb, TAG(2)));
    assert_ok(mo_deferred_callback(outer, &destroyed, count_dtor));
    assert_int_equal(destroyed, 1); /* the outcome a waiting callback drops */
    assert_int_equal(ev.len, 1);
    void *v;
    assert_mo(MO_EAGAIN, mo_deferred_result(outer, &v, NULL)); /* waiting */
    assert_int_equal(mo_deferred_fired(outer), 1);
    assert_ok(mo_deferred_add_callback(outer, log_cb, TAG(3))); /* queued, not run */
    assert_int_equal(ev.len, 1);
    assert_ok(mo_deferred_callback(inner, (void *)42, NULL));
    expect_log(3, (int[]){0, 2, 3}, (intptr_t[]){(intptr_t)&destroyed, 42, 42});
    assert_ok(mo_deferred_result(inner, &v, NULL));
    assert_null(v); /* inner gave its outcome up */
    mo_deferred_unref(outer);
    mo_deferred_unref(inner);
    mo_loop_free(loop);
}

static void test_wait_on_fired_inner_takes_its_outcome_at_once(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    struct hook_log h = {0};
    assert_ok(mo_loop_set_error_hook(loop, capture_hook, &h));
    mo_deferred_t *outer = new_d(loop), *inner = NULL;
    assert_ok(mo_deferred_new_failed(loop, mo_failure_new(MO_ERANGE, "inner", NULL), &inner));
    assert_ok(mo_deferred_add_callback(outer, wait_on_arg_cb, inner));
    assert_ok(mo_deferred_add_errback(outer, recover_cb, TAG(2)));
    assert_ok(mo_deferred_callback(outer, (void *)1, NULL));
    expect_log(2, (int[]){0, 2}, (intptr_t[]){1, MO_ERANGE});
    mo_deferred_unref(inner); /* its failure went to outer: handled there */
    mo_deferred_unref(outer);
    assert_int_equal(h.count, 0);
    mo_loop_free(loop);
}

static void test_inner_failure_flows_into_outer(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    mo_deferred_t *outer = new_d(loop), *inner = new_d(loop);
    assert_ok(mo_deferred_add_callback(outer, wait_on_arg_cb, inner));
    assert_ok(mo_deferred_add_callbacks(outer, log_cb, recover_cb, TAG(2)));
    assert_ok(mo_deferred_callback(outer, (void *)1, NULL));
    assert_ok(mo_deferred_fail(inner, MO_EBUSY, "inner", NULL));
    expect_log(2, (int[]){0, 2}, (intptr_t[]){1, MO_EBUSY});
    mo_deferred_unref(outer);
    mo_deferred_unref(inner);
    mo_loop_free(loop);
}

/* Waits, then changes its mind: the wait is cancelled. */
static void wait_then_set_cb(mo_result_t *r, void *arg)
{
    assert_ok(mo_result_wait(r, mo_deferred_ref(arg)));
    assert_ok(mo_result_set(r, (void *)6, NULL));
}

static void test_set_after_wait_cancels_the_wait(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    mo_deferred_t *outer = new_d(loop), *inner = new_d(loop);
    assert_ok(mo_deferred_add_callback(outer, wait_then_set_cb, inner));
    assert_ok(mo_deferred_add_callback(outer, log_cb, TAG(1)));
    assert_ok(mo_deferred_callback(outer, NULL, NULL));
    expect_log(1, (int[]){1}, (intptr_t[]){6});
    mo_deferred_unref(outer);
    mo_deferred_unref(inner);
    mo_loop_free(loop);
}

static void test_inner_dropped_unfired_releases_outer(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    mo_deferred_t *outer = new_d(loop), *inner = new_d(loop);
    assert_ok(mo_deferred_add_callback(outer, wait_on_arg_cb, inner));
    assert_ok(mo_deferred_callback(outer, NULL, NULL));
    mo_deferred_unref(inner); /* nobody can fire it: freed, outer waits forever */
    assert_mo(MO_EALREADY, mo_deferred_cancel(outer));
    mo_deferred_unref(outer); /* freed too: ASan reports a leak otherwise */
    mo_loop_free(loop);
}

/* ---- chainDeferred ---- */

static void test_chain_moves_outcome_to_other(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    struct hook_log h = {0};
    assert_ok(mo_loop_set_error_hook(loop, capture_hook, &h));
    mo_deferred_t *d = new_d(loop), *other = new_d(loop);
    assert_ok(mo_deferred_add_callback(d, log_cb, TAG(1)));
    assert_ok(mo_deferred_chain(d, other));
    assert_ok(mo_deferred_add_both(d, log_cb, TAG(2)));
    assert_ok(mo_deferred_add_errback(other, recover_cb, TAG(3)));
    assert_ok(mo_deferred_fail(d, MO_EXDEV, NULL, NULL));
    /* other ran its errback (3) before d went on (2) with NULL: handled. */
    expect_log(2, (int[]){3, 2}, (intptr_t[]){MO_EXDEV, 0});
    mo_deferred_t *late = new_d(loop);
    assert_mo(MO_EALREADY, mo_deferred_chain(late, other)); /* other fired */
    mo_deferred_unref(late);
    mo_deferred_unref(d);
    mo_deferred_unref(other);
    assert_int_equal(h.count, 0);
    mo_loop_free(loop);
}

static void test_chain_to_other_fired_meanwhile_fails(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    mo_deferred_t *d = new_d(loop), *other = new_d(loop);
    assert_ok(mo_deferred_chain(d, other));
    assert_ok(mo_deferred_callback(other, NULL, NULL));
    assert_ok(mo_deferred_add_errback(d, recover_cb, TAG(1)));
    assert_ok(mo_deferred_callback(d, (void *)3, NULL));
    expect_log(1, (int[]){1}, (intptr_t[]){MO_EALREADY});
    mo_deferred_unref(d);
    mo_deferred_unref(other);
    mo_loop_free(loop);
}

/* ---- a million links on a 64 KiB stack ---- */

#define DEEP 1000000
struct deep {
    mo_loop_t *loop;
    mo_deferred_t **d;
    intptr_t got;
    int ran;
};

static void deep_wait_cb(mo_result_t *r, void *arg)
{
    assert_ok(mo_result_wait(r, mo_deferred_ref(arg)));
}

static void deep_last_cb(mo_result_t *r, void *arg)
{
    struct deep *s = arg;
    s->got = (intptr_t)mo_result_value(r);
    s->ran++;
}

/* d[i]'s callback waits on d[i+1]; firing them in order pauses each, then
 * firing the last resumes the million paused Deferreds. */
static void *deep_wait_thread(void *arg)
{
    struct deep *s = arg;
    for (int i = 0; i < DEEP; i++)
        if (mo_deferred_add_callback(s->d[i], deep_wait_cb, s->d[i + 1])) return (void *)1;
    if (mo_deferred_add_callback(s->d[0], deep_last_cb, s)) return (void *)2;
    for (int i = 0; i < DEEP; i++)
        if (mo_deferred_callback(s->d[i], NULL, NULL)) return (void *)3;
    if (s->ran) return (void *)4;
    if (mo_deferred_callback(s->d[DEEP], (void *)1234, NULL)) return (void *)5;
    for (int i = 0; i <= DEEP; i++) mo_deferred_unref(s->d[i]);
    return NULL;
}

/* d[i] chains to d[i+1]; firing d[0] fires all. */
static void *deep_chain_thread(void *arg)
{
    struct deep *s = arg;
    for (int i = 0; i < DEEP; i++)
        if (mo_deferred_chain(s->d[i], s->d[i + 1])) return (void *)1;
    if (mo_deferred_add_callback(s->d[DEEP], deep_last_cb, s)) return (void *)2;
    if (mo_deferred_callback(s->d[0], (void *)99, NULL)) return (void *)3;
    for (int i = 0; i <= DEEP; i++) mo_deferred_unref(s->d[i]);
    return NULL;
}

/* The same chain, never fired, freed from its head alone. */
static void *deep_free_thread(void *arg)
{
    struct deep *s = arg;
    for (int i = 0; i < DEEP; i++)
        if (mo_deferred_chain(s->d[i], s->d[i + 1])) return (void *)1;
    for (int i = 1; i <= DEEP; i++) mo_deferred_unref(s->d[i]);
    mo_deferred_unref(s->d[0]); /* frees all, iteratively */
    return NULL;
}

static void run_deep(void *(*fn)(void *), intptr_t want)
{
    struct deep s = {.loop = fresh_loop()};
    s.d = calloc(DEEP + 1, sizeof(*s.d));
    assert_non_null(s.d);
    for (int i = 0; i <= DEEP; i++) assert_ok(mo_deferred_new(s.loop, NULL, NULL, &s.d[i]));
    assert_int_equal(mo_test_run_on_small_stack(64 * 1024, fn, &s), 0);
    assert_int_equal(s.ran, want ? 1 : 0);
    assert_int_equal(s.got, want);
    free(s.d);
    mo_loop_free(s.loop);
}

static void test_million_waiting_links_on_small_stack(void **state)
{
    (void)state;
    run_deep(deep_wait_thread, 1234);
}

static void test_million_chained_links_on_small_stack(void **state)
{
    (void)state;
    run_deep(deep_chain_thread, 99);
}

static void test_million_link_chain_freed_on_small_stack(void **state)
{
    (void)state;
    run_deep(deep_free_thread, 0);
}

/* ---- cancellation (rule 8) ---- */

struct canceller_log {
    int calls;
    int fire_with; /* 0: do not fire; else fire with this value */
};
static void test_canceller(mo_deferred_t *d, void *arg)
{
    struct canceller_log *c = arg;
    c->calls++;
    assert_int_equal(mo_deferred_fired(d), 0);
    if (c->fire_with) assert_ok(mo_deferred_callback(d, (void *)(intptr_t)c->fire_with, NULL));
}

static void test_cancel_calls_canceller_then_ecanceled(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    struct canceller_log c = {0};
    mo_deferred_t *d = NULL;
    assert_ok(mo_deferred_new(loop, test_canceller, &c, &d));
    assert_ok(mo_deferred_add_errback(d, recover_cb, TAG(1)));
    assert_ok(mo_deferred_cancel(d));
    assert_int_equal(c.calls, 1);
    expect_log(1, (int[]){1}, (intptr_t[]){MO_ECANCELED});
    int destroyed = 0; /* the producer lost the race: told so, value destroyed */
    assert_mo(MO_ECANCELED, mo_deferred_callback(d, &destroyed, count_dtor));
    assert_int_equal(destroyed, 1);
    mo_deferred_unref(d);

    /* A canceller that fires the Deferred itself: no MO_ECANCELED. */
    ev.len = 0;
    c = (struct canceller_log){.fire_with = 5};
    assert_ok(mo_deferred_new(loop, test_canceller, &c, &d));
    assert_ok(mo_deferred_add_both(d, log_cb, TAG(2)));
    assert_ok(mo_deferred_cancel(d));
    expect_log(1, (int[]){2}, (intptr_t[]){5});
    mo_deferred_unref(d);

    /* No canceller at all. */
    ev.len = 0;
    d = new_d(loop);
    assert_ok(mo_deferred_add_errback(d, recover_cb, TAG(3)));
    assert_ok(mo_deferred_cancel(d));
    expect_log(1, (int[]){3}, (intptr_t[]){MO_ECANCELED});
    mo_deferred_unref(d);
    mo_loop_free(loop);
}

/* A canceller that cancels its own Deferred (say, the operation it stops
 * reports "cancelled" at once) is not called again: the inner cancel only
 * fires the Deferred. (Found by the fuzzer: each cancel called the
 * canceller again, until the stack ran out.) */
static void recancel_canceller(mo_deferred_t *d, void *arg)
{
    int *calls = arg;
    if (++*calls > 3) return; /* before the fix: stop the recursion here */
    assert_ok(mo_deferred_cancel(d));
    assert_int_equal(mo_deferred_fired(d), 1);
}

static void test_canceller_that_cancels_runs_once(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    int calls = 0;
    mo_deferred_t *d = NULL;
    assert_ok(mo_deferred_new(loop, recancel_canceller, &calls, &d));
    assert_ok(mo_deferred_add_errback(d, recover_cb, TAG(1)));
    assert_ok(mo_deferred_cancel(d));
    assert_int_equal(calls, 1);
    expect_log(1, (int[]){1}, (intptr_t[]){MO_ECANCELED});
    assert_mo(MO_EALREADY, mo_deferred_cancel(d));
    assert_int_equal(calls, 1);
    mo_deferred_unref(d);
    mo_loop_free(loop);
}

static void test_cancel_of_fired_does_nothing(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    struct canceller_log c = {0};
    mo_deferred_t *d = NULL;
    assert_ok(mo_deferred_new(loop, test_canceller, &c, &d));
    assert_ok(mo_deferred_callback(d, (void *)1, NULL));
    assert_mo(MO_EALREADY, mo_deferred_cancel(d));
    assert_int_equal(c.calls, 0);
    assert_ok(mo_deferred_add_both(d, log_cb, TAG(1)));
    expect_log(1, (int[]){1}, (intptr_t[]){1});
    mo_deferred_unref(d);
    mo_loop_free(loop);
}

static void test_cancel_of_waiting_outer_cancels_inner(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    struct canceller_log co = {0}, ci = {0};
    mo_deferred_t *outer = NULL, *inner = NULL;
    assert_ok(mo_deferred_new(loop, test_canceller, &co, &outer));
    assert_ok(mo_deferred_new(loop, test_canceller, &ci, &inner));
    assert_ok(mo_deferred_add_callback(outer, wait_on_arg_cb, inner));
    assert_ok(mo_deferred_add_errback(outer, recover_cb, TAG(1)));
    assert_ok(mo_deferred_callback(outer, NULL, NULL));
    assert_ok(mo_deferred_cancel(outer));
    assert_int_equal(co.calls, 0); /* outer had fired */
    assert_int_equal(ci.calls, 1);
    expect_log(2, (int[]){0, 1}, (intptr_t[]){0, MO_ECANCELED});
    mo_deferred_unref(outer);
    mo_deferred_unref(inner);
    mo_loop_free(loop);
}

/* ---- unhandled failures ---- */

static void test_unhandled_failure_goes_to_error_hook(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    struct hook_log h = {0};
    assert_ok(mo_loop_set_error_hook(loop, capture_hook, &h));
    mo_deferred_t *d = new_d(loop), *kept = new_d(loop);
    assert_ok(mo_deferred_add_callback(d, fail_cb, TAG(1)));
    assert_ok(mo_deferred_callback(d, NULL, NULL));
    mo_deferred_ref(d);
    mo_deferred_unref(d);
    assert_int_equal(h.count, 0); /* not the last reference yet */
    mo_deferred_unref(d);
    assert_int_equal(h.count, 1);
    assert_int_equal(h.code, MO_EIO);
    assert_string_equal(h.line, "fail_cb: tag 1 (EIO: i/o error)");
    /* Handled failures, and failures taken, are not reported. */
    assert_ok(mo_deferred_fail(kept, MO_EPERM, NULL, NULL));
    void *v;
    mo_dtor_fn dt;
    mo_failure_t *f;
    assert_ok(mo_deferred_take(kept, &v, &dt, &f));
    assert_int_equal(mo_failure_code(f), MO_EPERM);
    mo_failure_unref(f);
    mo_deferred_unref(kept);
    assert_int_equal(h.count, 1);
    mo_loop_free(loop);
}

static void test_unhandled_failure_default_is_one_stderr_line(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    char path[] = "/tmp/mo-test-stderr-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    mo_deferred_t *d = new_d(loop);
    assert_ok(mo_deferred_fail(d, MO_ENOSPC, "writer", "disk %s", "full"));
    mo_deferred_unref(d);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char buf[256] = {0};
    assert_true(pread(fd, buf, sizeof(buf) - 1, 0) > 0);
    close(fd);
    assert_string_equal(buf, "morsel: unhandled error in Deferred: writer: disk full (ENOSPC: no "
                             "space left on device)\n");
    mo_loop_free(loop);
}

/* ---- ready-made Deferreds ---- */

static void test_defer_succeed_and_fail(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    struct hook_log h = {0};
    assert_ok(mo_loop_set_error_hook(loop, capture_hook, &h));
    mo_deferred_t *d = NULL;
    int destroyed = 0;
    assert_ok(mo_deferred_new_succeeded(loop, &destroyed, count_dtor, &d));
    assert_int_equal(mo_deferred_fired(d), 1);
    assert_ok(mo_deferred_add_callback(d, log_cb, TAG(1)));
    mo_deferred_unref(d);
    assert_int_equal(destroyed, 1);
    assert_ok(mo_deferred_new_failed(loop, mo_failure_new(MO_EIO, NULL, NULL), &d));
    assert_ok(mo_deferred_add_errback(d, log_cb, TAG(2)));
    mo_deferred_unref(d);
    expect_log(2, (int[]){1, 2}, (intptr_t[]){(intptr_t)&destroyed, MO_EIO});
    assert_int_equal(h.count, 1); /* the errback passed it on */
    mo_loop_free(loop);
}

static void later_fn(mo_result_t *r, void *arg)
{
    note((int)(intptr_t)arg, r);
    assert_ok(mo_result_set(
        r, (void *)(intptr_t)mo_loop_now(mo_deferred_loop(mo_result_deferred(r))), NULL));
}

static void test_defer_later_fires_with_fn_result(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    mo_deferred_t *d = NULL, *c = NULL;
    assert_ok(mo_deferred_call_later(loop, MO_MSEC(10), later_fn, TAG(1), &d));
    assert_ok(mo_deferred_call_later(loop, MO_MSEC(5), later_fn, TAG(2), &c));
    assert_ok(mo_deferred_add_callback(d, log_cb, TAG(3)));
    assert_ok(mo_deferred_add_errback(c, recover_cb, TAG(4)));
    assert_ok(mo_loop_advance(loop, MO_MSEC(9)));
    assert_int_equal(ev.len, 1);                   /* c's fn ran at 5 ms */
    assert_mo(MO_EALREADY, mo_deferred_cancel(c)); /* fired already */
    assert_ok(mo_loop_advance(loop, MO_MSEC(1)));
    expect_log(3, (int[]){2, 1, 3}, (intptr_t[]){0, 0, MO_MSEC(10)});
    mo_deferred_unref(d);
    mo_deferred_unref(c);
    assert_mo(MO_ERANGE, mo_deferred_call_later(loop, INT64_MAX, later_fn, NULL, &d));
    mo_loop_free(loop);
}

static void test_defer_later_cancel_never_runs_fn(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    mo_deferred_t *d = NULL;
    assert_ok(mo_deferred_call_later(loop, MO_MSEC(10), later_fn, TAG(1), &d));
    assert_ok(mo_deferred_add_errback(d, recover_cb, TAG(2)));
    assert_int_equal(mo_loop_alive(loop), 1);
    assert_ok(mo_deferred_cancel(d));
    assert_int_equal(mo_loop_alive(loop), 0); /* the delayed call is gone */
    assert_ok(mo_loop_advance(loop, MO_MSEC(20)));
    expect_log(1, (int[]){2}, (intptr_t[]){MO_ECANCELED});
    mo_deferred_unref(d); /* last reference: ASan checks the call's was released */
    mo_loop_free(loop);
}

/* ---- Deferred lists (rule 9) ---- */

static void capture_list_cb(mo_result_t *r, void *arg)
{
    *(struct mo_deferred_list_result **)arg = mo_result_value(r);
}

static mo_deferred_t *make_list(mo_loop_t *loop, mo_deferred_t **ds, size_t n, unsigned flags,
                                struct mo_deferred_list_result **res)
{
    mo_deferred_t *l = NULL;
    assert_ok(mo_deferred_list(loop, ds, n, flags, &l));
    assert_ok(mo_deferred_add_callback(l, capture_list_cb, res));
    return l;
}

static void test_list_gathers_all_in_input_order(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    struct hook_log h = {0};
    assert_ok(mo_loop_set_error_hook(loop, capture_hook, &h));
    mo_deferred_t *ds[3] = {new_d(loop), new_d(loop), new_d(loop)};
    int destroyed = 0;
    assert_ok(mo_deferred_callback(ds[1], (void *)11, NULL)); /* fired before */
    struct mo_deferred_list_result *res = NULL;
    mo_deferred_t *l = make_list(loop, ds, 3, 0, &res);
    assert_ok(mo_deferred_fail(ds[2], MO_EIO, NULL, NULL));
    assert_null(res);
    assert_ok(mo_deferred_callback(ds[0], &destroyed, count_dtor));
    assert_non_null(res);
    assert_int_equal(res->count, 3);
    assert_int_equal(res->index, 3);
    assert_ptr_equal(res->items[0].value, &destroyed);
    assert_ptr_equal(res->items[1].value, (void *)11);
    assert_null(res->items[1].failure);
    assert_null(res->items[2].value);
    assert_int_equal(mo_failure_code(res->items[2].failure), MO_EIO);
    void *v;
    assert_ok(mo_deferred_result(ds[0], &v, NULL));
    assert_null(v); /* the list took the value */
    mo_deferred_unref(l);
    assert_int_equal(destroyed, 1);
    for (int i = 0; i < 3; i++) mo_deferred_unref(ds[i]);
    assert_int_equal(h.count, 1); /* ds[2]'s failure: not consumed */
    mo_loop_free(loop);
}

static void test_list_first_result_with_index(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    mo_deferred_t *ds[3] = {new_d(loop), new_d(loop), new_d(loop)};
    struct mo_deferred_list_result *res = NULL;
    mo_deferred_t *l =
        make_list(loop, ds, 3, MO_DLIST_FIRE_ON_ONE_CALLBACK | MO_DLIST_CONSUME_ERRORS, &res);
    assert_ok(mo_deferred_fail(ds[0], MO_EIO, NULL, NULL));
    assert_null(res);
    assert_ok(mo_deferred_callback(ds[2], (void *)7, NULL));
    assert_non_null(res);
    assert_int_equal(res->index, 2);
    assert_ptr_equal(res->items[2].value, (void *)7);
    assert_int_equal(mo_failure_code(res->items[0].failure), MO_EIO);
    assert_ok(mo_deferred_callback(ds[1], (void *)8, NULL)); /* after: keeps its value */
    void *v;
    assert_ok(mo_deferred_result(ds[1], &v, NULL));
    assert_ptr_equal(v, (void *)8);
    mo_deferred_unref(l);
    for (int i = 0; i < 3; i++) mo_deferred_unref(ds[i]);
    mo_loop_free(loop);
}

static void test_list_first_error_with_index(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    struct hook_log h = {0};
    assert_ok(mo_loop_set_error_hook(loop, capture_hook, &h));
    mo_deferred_t *ds[3] = {new_d(loop), new_d(loop), new_d(loop)};
    mo_deferred_t *l = NULL;
    assert_ok(
        mo_deferred_list(loop, ds, 3, MO_DLIST_FIRE_ON_ONE_ERRBACK | MO_DLIST_CONSUME_ERRORS, &l));
    assert_ok(mo_deferred_callback(ds[0], (void *)1, NULL));
    assert_int_equal(mo_deferred_fired(l), 0);
    assert_ok(mo_deferred_fail(ds[1], MO_EACCES, "open", "denied"));
    assert_int_equal(mo_deferred_fired(l), 1);
    const mo_failure_t *f = NULL;
    assert_ok(mo_deferred_result(l, NULL, &f));
    size_t idx = 99;
    assert_ok(mo_deferred_list_error_index(f, &idx));
    assert_int_equal(idx, 1);
    assert_int_equal(mo_failure_code(f), MO_EACCES);
    assert_string_equal(mo_failure_origin(f), "mo_deferred_list: open");
    assert_ok(mo_deferred_fail(ds[2], MO_EIO, NULL, NULL)); /* consumed */
    for (int i = 0; i < 3; i++) mo_deferred_unref(ds[i]);
    assert_int_equal(h.count, 0);
    mo_deferred_unref(l); /* its own failure is unhandled */
    assert_int_equal(h.count, 1);
    assert_int_equal(h.code, MO_EACCES);
    mo_loop_free(loop);
}

static void test_list_cancel_cancels_members(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    struct canceller_log c[2] = {{0}, {0}};
    mo_deferred_t *ds[2];
    assert_ok(mo_deferred_new(loop, test_canceller, &c[0], &ds[0]));
    assert_ok(mo_deferred_new(loop, test_canceller, &c[1], &ds[1]));
    struct mo_deferred_list_result *res = NULL;
    mo_deferred_t *l = make_list(loop, ds, 2, MO_DLIST_CONSUME_ERRORS, &res);
    assert_ok(mo_deferred_cancel(l));
    assert_int_equal(c[0].calls, 1);
    assert_int_equal(c[1].calls, 1);
    assert_non_null(res);
    assert_int_equal(mo_failure_code(res->items[0].failure), MO_ECANCELED);
    assert_int_equal(mo_failure_code(res->items[1].failure), MO_ECANCELED);
    mo_deferred_unref(l);
    for (int i = 0; i < 2; i++) mo_deferred_unref(ds[i]);
    mo_loop_free(loop);
}

static void test_empty_list_fires_at_once(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    for (unsigned flags = 0; flags < 8; flags++) {
        struct mo_deferred_list_result *res = NULL;
        mo_deferred_t *l = make_list(loop, NULL, 0, flags, &res);
        assert_non_null(res);
        assert_int_equal(res->count, 0);
        mo_deferred_unref(l);
    }
    mo_deferred_t *d = new_d(loop), *l = NULL, *ds[2] = {d, NULL};
    assert_mo(MO_EINVAL, mo_deferred_list(loop, ds, 2, 0, &l));
    assert_mo(MO_EINVAL, mo_deferred_list(loop, ds, 1, 8, &l));
    assert_mo(MO_EINVAL, mo_deferred_list(loop, NULL, 1, 0, &l));
    assert_mo(MO_EINVAL, mo_deferred_list(NULL, ds, 1, 0, &l));
    assert_mo(MO_EINVAL, mo_deferred_list(loop, ds, 1, 0, NULL));
    mo_loop_t *other = fresh_loop();
    mo_deferred_t *foreign = new_d(other), *mixed[2] = {d, foreign};
    assert_mo(MO_EINVAL, mo_deferred_list(loop, mixed, 2, 0, &l)); /* a member of another loop */
    assert_null(l);
    mo_deferred_unref(foreign);
    mo_loop_free(other);
    mo_deferred_unref(d);
    mo_loop_free(loop);
}

static void test_list_member_dropped_unfired(void **state)
{
    (void)state;
    mo_loop_t *loop = fresh_loop();
    mo_deferred_t *ds[2] = {new_d(loop), new_d(loop)}, *l = NULL;
    assert_ok(mo_deferred_list(loop, ds, 2, 0, &l));
    mo_deferred_unref(ds[0]);                  /* never fires: the list forgets it */
    assert_ok(mo_deferred_cancel(l));          /* cancels ds[1] only */
    assert_int_equal(mo_deferred_fired(l), 1); /* the list's own ECANCELED */
    const mo_failure_t *f;
    assert_ok(mo_deferred_result(l, NULL, &f));
    assert_int_equal(mo_failure_code(f), MO_ECANCELED);
    void *v;
    mo_dtor_fn dt;
    mo_failure_t *tf;
    assert_ok(mo_deferred_take(l, &v, &dt, &tf));
    mo_failure_unref(tf);
    assert_ok(mo_deferred_take(ds[1], &v, &dt, &tf));
    mo_failure_unref(tf);
    mo_deferred_unref(ds[1]);
    mo_deferred_unref(l);
    mo_loop_free(loop);
}

/* ---- allocations: counted, and failed one by one ---- */

static void noop_cb(mo_result_t *r, void *arg)
{
    (void)r;
    (void)arg;
}

static void test_one_allocation_per_deferred(void **state)
{
    (void)state;
    mo_test_alloc_install();
    mo_loop_t *loop = fresh_loop();
    mo_test_alloc_fail_at(0, 0);
    long live = mo_test_alloc_live();
    mo_deferred_t *d = NULL;
    assert_ok(mo_deferred_new(loop, NULL, NULL, &d));
    assert_ok(mo_deferred_add_callbacks(d, noop_cb, noop_cb, NULL));
    assert_ok(mo_deferred_callback(d, NULL, NULL));
    mo_deferred_unref(d);
    assert_int_equal(mo_test_alloc_calls(), 1);
    assert_int_equal(mo_test_alloc_live(), live);
    /* Three pairs still fit inline. */
    assert_ok(mo_deferred_new(loop, NULL, NULL, &d));
    for (int i = 0; i < 3; i++) assert_ok(mo_deferred_add_callback(d, noop_cb, NULL));
    assert_ok(mo_deferred_callback(d, NULL, NULL));
    mo_deferred_unref(d);
    assert_int_equal(mo_test_alloc_calls(), 2);
    mo_loop_free(loop);
}

/* Every call that allocates, in one scenario; each returns 0 or MO_ENOMEM
 * and leaves nothing behind. */
static int oom_scenario(mo_loop_t *loop)
{
    mo_deferred_t *a = NULL, *b = NULL, *c = NULL, *l = NULL, *later = NULL, *s = NULL;
    int rc, failed = 0;
#define STEP(expr)                                                                                 \
    do {                                                                                           \
        rc = (expr);                                                                               \
        if (rc == MO_ENOMEM)                                                                       \
            failed++;                                                                              \
        else if (rc != 0)                                                                          \
            return rc;                                                                             \
    } while (0)
    STEP(mo_deferred_new(loop, NULL, NULL, &a));
    STEP(mo_deferred_new(loop, NULL, NULL, &b));
    STEP(mo_deferred_new_succeeded(loop, NULL, NULL, &s));
    STEP(mo_deferred_call_later(loop, MO_MSEC(1), noop_cb, NULL, &later));
    if (a) {
        for (int i = 0; i < 6; i++) STEP(mo_deferred_add_callback(a, noop_cb, NULL)); /* spills */
        if (b) STEP(mo_deferred_chain(a, b));
    }
    if (a && b) {
        mo_deferred_t *ds[2] = {a, b};
        STEP(mo_deferred_list(loop, ds, 2, MO_DLIST_CONSUME_ERRORS, &l));
    }
    if (b) STEP(mo_deferred_new(loop, NULL, NULL, &c));
    /* Failure creation never fails: it gives the shared MO_ENOMEM failure. */
    mo_failure_t *f = mo_failure_new(MO_EIO, "oom", "scenario %d", 1);
    if (mo_failure_code(f) == MO_ENOMEM) failed++;
    if (a)
        STEP(mo_deferred_errback(a, f));
    else
        mo_failure_unref(f);
    if (later) {
        const mo_failure_t *cf = NULL;
        STEP(mo_deferred_cancel(later));
        STEP(mo_deferred_result(later, NULL, &cf));
        if (mo_failure_code(cf) == MO_ENOMEM)
            failed++;
        else if (mo_failure_code(cf) != MO_ECANCELED)
            return MO_ENOTRECOVERABLE;
    }
    mo_deferred_unref(a);
    mo_deferred_unref(b);
    mo_deferred_unref(c);
    mo_deferred_unref(l);
    mo_deferred_unref(s);
    mo_deferred_unref(later);
#undef STEP
    return failed;
}

static void silent_hook(mo_loop_t *loop, const mo_failure_t *f, void *arg)
{
    (void)loop;
    (void)f;
    ++*(int *)arg;
}

static void test_out_of_memory_each_allocation_in_turn(void **state)
{
    (void)state;
    mo_test_alloc_install();
    mo_loop_t *loop = fresh_loop();
    int reported = 0;
    assert_ok(mo_loop_set_error_hook(loop, silent_hook, &reported));
    /* A warm-up run lets the loop grow its timer slab (kept until the loop
     * is freed); a second counts the allocations; then each fails in turn. */
    assert_int_equal(oom_scenario(loop), 0);
    long live = mo_test_alloc_live();
    mo_test_alloc_fail_at(0, 0);
    assert_int_equal(oom_scenario(loop), 0);
    long total = mo_test_alloc_calls();
    assert_true(total >= 8);
    assert_int_equal(mo_test_alloc_live(), live);
    for (long k = 1; k <= total; k++) {
        mo_test_alloc_fail_at(k, 0);
        int failed = oom_scenario(loop);
        mo_test_alloc_fail_at(0, 0);
        if (failed < 1)
            fail_msg("allocation %ld of %ld failed but no call said MO_ENOMEM", k, total);
        if (mo_test_alloc_live() != live)
            fail_msg("allocation %ld failing leaked %ld blocks", k, mo_test_alloc_live() - live);
    }
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    mo_loop_free(loop);
}

/* The first error hook set on a loop allocates its record: without memory
 * the default (stderr) stays. */
static void test_error_hook_out_of_memory(void **state)
{
    (void)state;
    mo_test_alloc_install();
    mo_loop_t *loop = fresh_loop();
    struct hook_log h = {0};
    mo_test_alloc_fail_at(1, 1);
    assert_mo(MO_ENOMEM, mo_loop_set_error_hook(loop, capture_hook, &h));
    mo_test_alloc_fail_at(0, 0);
    assert_ok(mo_loop_set_error_hook(loop, capture_hook, &h));
    mo_loop_free(loop);
}

/* Waiting when the inner Deferred has no room left for its RESUME link. */
static void oom_wait_cb(mo_result_t *r, void *arg)
{
    mo_test_alloc_fail_at(1, 0); /* the next allocation */
    assert_mo(MO_ENOMEM, mo_result_wait(r, mo_deferred_ref(arg)));
    mo_test_alloc_fail_at(0, 0);
    note(1, r);
}

static void test_out_of_memory_in_wait(void **state)
{
    (void)state;
    mo_test_alloc_install();
    mo_loop_t *loop = fresh_loop();
    mo_deferred_t *outer = new_d(loop), *inner = new_d(loop);
    for (int i = 0; i < 3; i++)
        assert_ok(mo_deferred_add_callback(inner, noop_cb, NULL)); /* full */
    assert_ok(mo_deferred_add_callback(outer, oom_wait_cb, inner));
    assert_ok(mo_deferred_add_callback(outer, log_cb, TAG(2)));
    assert_ok(mo_deferred_callback(outer, (void *)3, NULL));
    expect_log(2, (int[]){1, 2}, (intptr_t[]){3, 3}); /* outcome unchanged */
    mo_deferred_unref(outer);
    mo_deferred_unref(inner);
    mo_loop_free(loop);
}

/* A list whose member is a list: out of memory for the outer list's copy
 * of the failure (the one that carries its member's index) must not leave
 * the inner list's index on it, which names a member the outer list does
 * not have. (Found by the fuzzer.) */
static void test_nested_list_failure_index_under_oom(void **state)
{
    (void)state;
    mo_test_alloc_install();
    mo_loop_t *loop = fresh_loop();
    mo_deferred_t *m[3], *inner, *outer;
    for (int i = 0; i < 3; i++) m[i] = new_d(loop);
    assert_ok(mo_deferred_list(loop, m, 3, MO_DLIST_FIRE_ON_ONE_ERRBACK, &inner));
    assert_ok(mo_deferred_list(loop, &inner, 1,
                               MO_DLIST_FIRE_ON_ONE_ERRBACK | MO_DLIST_CONSUME_ERRORS, &outer));
    mo_failure_t *f = mo_failure_new(MO_EIO, "test", "member 2");
    /* The allocations from here: the inner list's copy, then the outer's. */
    mo_test_alloc_fail_at(2, 0);
    assert_ok(mo_deferred_errback(m[2], f));
    mo_test_alloc_fail_at(0, 0);
    const mo_failure_t *got = NULL;
    assert_ok(mo_deferred_result(outer, NULL, &got));
    assert_non_null(got);
    size_t idx = 99;
    if (mo_deferred_list_error_index(got, &idx) == 0) assert_int_equal(idx, 0); /* outer has one */
    assert_int_equal(mo_failure_code(got), MO_ENOMEM);
    mo_deferred_t *take = outer; /* handle both failures */
    void *v;
    mo_dtor_fn dtor;
    mo_failure_t *tf;
    assert_ok(mo_deferred_take(take, &v, &dtor, &tf));
    mo_failure_unref(tf);
    assert_ok(mo_deferred_take(inner, &v, &dtor, &tf));
    mo_failure_unref(tf);
    assert_ok(mo_deferred_take(m[2], &v, &dtor, &tf));
    mo_failure_unref(tf);
    for (int i = 0; i < 3; i++) mo_deferred_unref(m[i]);
    mo_deferred_unref(inner);
    mo_deferred_unref(outer);
    mo_loop_free(loop);
}

MO_TEST_MAIN(cmocka_unit_test(test_callback_runs_with_value),
             cmocka_unit_test(test_callback_failure_skips_to_next_errback),
             cmocka_unit_test(test_errback_value_returns_to_callback_path),
             cmocka_unit_test(test_pair_halves_never_see_each_other),
             cmocka_unit_test(test_add_both_runs_on_either_path),
             cmocka_unit_test(test_add_to_fired_runs_at_once),
             cmocka_unit_test(test_callbacks_added_while_running_are_not_recursive),
             cmocka_unit_test(test_firing_twice_is_ealready),
             cmocka_unit_test(test_bad_input_is_einval),
             cmocka_unit_test(test_bad_input_inside_callbacks),
             cmocka_unit_test(test_unref_below_zero_is_reported_not_fatal),
             cmocka_unit_test(test_wait_pauses_until_inner_fires),
             cmocka_unit_test(test_wait_on_fired_inner_takes_its_outcome_at_once),
             cmocka_unit_test(test_inner_failure_flows_into_outer),
             cmocka_unit_test(test_set_after_wait_cancels_the_wait),
             cmocka_unit_test(test_inner_dropped_unfired_releases_outer),
             cmocka_unit_test(test_nested_list_failure_index_under_oom),
             cmocka_unit_test(test_chain_moves_outcome_to_other),
             cmocka_unit_test(test_chain_to_other_fired_meanwhile_fails),
             cmocka_unit_test(test_million_waiting_links_on_small_stack),
             cmocka_unit_test(test_million_chained_links_on_small_stack),
             cmocka_unit_test(test_million_link_chain_freed_on_small_stack),
             cmocka_unit_test(test_cancel_calls_canceller_then_ecanceled),
             cmocka_unit_test(test_canceller_that_cancels_runs_once),
             cmocka_unit_test(test_cancel_of_fired_does_nothing),
             cmocka_unit_test(test_cancel_of_waiting_outer_cancels_inner),
             cmocka_unit_test(test_unhandled_failure_goes_to_error_hook),
             cmocka_unit_test(test_error_hook_out_of_memory),
             cmocka_unit_test(test_unhandled_failure_default_is_one_stderr_line),
             cmocka_unit_test(test_defer_succeed_and_fail),
             cmocka_unit_test(test_defer_later_fires_with_fn_result),
             cmocka_unit_test(test_defer_later_cancel_never_runs_fn),
             cmocka_unit_test(test_list_gathers_all_in_input_order),
             cmocka_unit_test(test_list_first_result_with_index),
             cmocka_unit_test(test_list_first_error_with_index),
             cmocka_unit_test(test_list_cancel_cancels_members),
             cmocka_unit_test(test_empty_list_fires_at_once),
             cmocka_unit_test(test_list_member_dropped_unfired),
             cmocka_unit_test(test_one_allocation_per_deferred),
             cmocka_unit_test(test_out_of_memory_each_allocation_in_turn),
             cmocka_unit_test(test_out_of_memory_in_wait))
