/* `factorial N` for the server, in its three modes (serve.h):
 * - sliced: the CLI's fact plan run by fact_loop.c, its decimal text
 *   written chunk by chunk, in order, as chunks become ready, while the
 *   stream is writable, by a cooperator task that writes one chunk per
 *   step (a chunk of 400,000 digits costs a few hundred microseconds to
 *   hand to the kernel: several in one callback held the loop 8-16 ms);
 *   above the high mark the run is held, so the text waiting in memory is
 *   the high mark plus one chunk and what the pieces on workers were
 *   already making;
 * - blocking: mpz_fac_ui and mpz_get_str in the read callback;
 * - steps: fact_naive.c's fixed chunks of multiplications, then the
 *   conversion on a worker, written in one piece.
 * Each reserves the memory fact_estimate_bytes() says N! needs against the
 * server's budget, and refuses N when it would not fit now. */
#include "serve_int.h"

#include <stdlib.h>
#include <string.h>

#include "fact_loop.h"
#include "fact_naive.h"

struct fact_ans {
    struct conn *c;
    mo_deferred_t *d;       /* our reference, NULL once handled */
    struct fact_run *run;   /* sliced: until d fires */
    struct fact_plan *plan; /* sliced: borrowed until d fires, then ours */
    bool owned;             /* plan is ours to free */
    bool text_done;         /* every digit and the newline are queued */
    bool cancelled;         /* the connection went: nothing more is written */
    size_t next;            /* the next text chunk */
    size_t zeros;           /* trailing zeros still to write */
    bool in_zeros;
    mo_task_t *pump; /* sliced: writes the text, one piece per step */
    bool pump_waits; /* it paused itself: nothing to write, or not writable */
    mpz_t z;         /* steps: the value */
    char *str;       /* steps: its digits, made on a worker */
};

/* Text of zeros for the trailing zeros (v5(N) of them: 25 million for
 * N = 10^8), written from one static buffer. */
static char zero_text[65536];

static void ans_free(struct fact_ans *a)
{
    mo_deferred_unref(a->d);
    mo_task_release(a->pump);
    if (a->owned) fact_plan_free(a->plan);
    mpz_clear(a->z);
    free(a->str);
    free(a);
}

static void release_memory(struct conn *c)
{
    c->srv->mem_used -= c->fact_bytes;
    c->fact_bytes = 0;
}

/* Both the text and the computation are over: the answer is complete. */
static void maybe_finish(struct fact_ans *a)
{
    if (!a->text_done || a->run) return;
    struct conn *c = a->c;
    if (a->pump) mo_task_stop(a->pump); /* after an error it may still wait */
    mo_stream_set_producer(c->s, NULL, NULL, NULL);
    release_memory(c);
    ans_free(a);
    serve_answer_done(c);
}

/* Writes the next piece of text if it is ready: a chunk, 64 KiB of the
 * trailing zeros, or the final newline. False if nothing was ready. */
static bool write_piece(struct fact_ans *a)
{
    mo_stream_t *s = a->c->s;
    if (a->in_zeros) {
        size_t k = a->zeros < sizeof zero_text ? a->zeros : sizeof zero_text;
        if (k == 0) {
            mo_stream_write_copy(s, "\n", 1);
            a->text_done = true;
        } else {
            mo_stream_write(s, zero_text, k, NULL, NULL);
            a->zeros -= k;
        }
        return true;
    }
    char *bytes;
    size_t len;
    if (!a->plan || a->next >= fact_text_count(a->plan) ||
        !fact_text_take(a->plan, a->next, &bytes, &len))
        return false;
    a->next++;
    if (bytes) {
        mo_stream_write(s, bytes, len, free, bytes);
    } else { /* the last chunk: the trailing zeros */
        a->in_zeros = true;
        a->zeros = len;
    }
    return true;
}

/* The pump: one piece per step while the stream is writable; otherwise it
 * pauses itself until the stream drains or more text is ready (wake). */
static int pump_step(mo_task_t *task, void *arg)
{
    struct fact_ans *a = arg;
    if (a->text_done) return MO_DONE;
    if (mo_stream_writable(a->c->s) != 1 || !write_piece(a)) {
        a->pump_waits = true;
        mo_task_pause(task);
        return MO_CONTINUE;
    }
    if (!a->text_done) return MO_CONTINUE;
    maybe_finish(a); /* a may be gone */
    return MO_DONE;
}

static void wake(struct fact_ans *a)
{
    if (!a->pump_waits) return;
    a->pump_waits = false;
    mo_task_resume(a->pump);
}

static void on_progress(struct fact_plan *plan, void *arg)
{
    struct fact_ans *a = arg;
    a->plan = plan;
    wake(a);
}

/* The stream's producer callbacks: hold the run while the client lags. */
static void hold(mo_stream_t *s, void *arg)
{
    (void)s;
    struct fact_ans *a = arg;
    if (a->run) fact_loop_hold(a->run);
}

static void resume(mo_stream_t *s, void *arg)
{
    (void)s;
    struct fact_ans *a = arg;
    if (a->cancelled) return;
    wake(a);
    if (a->run) fact_loop_resume(a->run); /* may fire d: computed() */
}

/* Stopping the pump is not an error anybody should hear of. */
static void pump_over(mo_result_t *result, void *arg)
{
    (void)arg;
    mo_result_set(result, NULL, NULL);
}

static int pump_start(struct fact_ans *a)
{
    const struct mo_task_opts opts = {.slice = MO_USEC(250)};
    int err = mo_cooperate(a->c->srv->loop, pump_step, a, &opts, &a->pump);
    if (err) return err;
    mo_deferred_t *d = mo_task_deferred(a->pump);
    err = mo_deferred_add_errback(d, pump_over, NULL);
    mo_deferred_unref(d);
    return err;
}

static void computed(mo_result_t *result, void *arg)
{
    struct fact_ans *a = arg;
    mo_dtor_fn dtor;
    a->run = NULL;
    a->plan = mo_result_take(result, &dtor);
    a->owned = true;
    if (a->cancelled) return;
    if (a->text_done)
        maybe_finish(a); /* the pump wrote the last piece before the run ended */
    else
        wake(a);
}

static void failed(mo_result_t *result, void *arg)
{
    struct fact_ans *a = arg;
    const mo_failure_t *f = mo_result_failure(result);
    a->run = NULL;
    a->plan = NULL; /* the run frees it */
    if (!a->cancelled) {
        /* Digits already sent end their line first. */
        serve_reply(a->c, "%serror: factorial: %s", a->next ? "\n" : "",
                    mo_strerror(mo_failure_code(f)));
        a->text_done = true;
    }
    mo_result_set(result, NULL, NULL); /* handled */
    if (!a->cancelled) maybe_finish(a);
}

/* The connection ended first: give the computation up. A conversion on a
 * worker (steps mode) cannot be: it frees the answer when it is back. */
static void fact_cancel(struct conn *c)
{
    struct fact_ans *a = c->ans.state;
    a->cancelled = true;
    release_memory(c);
    if (a->pump) mo_task_stop(a->pump); /* MO_EALREADY once it has finished */
    if (a->d && !mo_deferred_fired(a->d)) mo_deferred_cancel(a->d); /* failed() runs now */
    if (!a->run) ans_free(a);
}

static struct fact_ans *ans_new(struct conn *c)
{
    struct fact_ans *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->c = c;
    mpz_init(a->z);
    if (!zero_text[0]) memset(zero_text, '0', sizeof zero_text);
    return a;
}

static void fact_sliced(struct conn *c, unsigned long n)
{
    struct server *srv = c->srv;
    struct fact_plan *plan;
    struct fact_ans *a;
    int err = fact_plan_new(&plan, n, FACT_DECIMAL);
    if (err || !(a = ans_new(c))) {
        if (!err) fact_plan_free(plan);
        serve_reply(c, "error: factorial: %s", mo_strerror(err ? err : MO_ENOMEM));
        return;
    }
    a->run = NULL;
    err = pump_start(a);
    if (err) {
        fact_plan_free(plan);
    } else {
        a->pump_waits = true; /* until the first text is ready */
        mo_task_pause(a->pump);
        err = fact_loop_start_run(srv->loop, srv->workers, plan, 0, on_progress, a, &a->run, &a->d);
    }
    if (err) {
        if (a->pump) mo_task_stop(a->pump);
        ans_free(a);
        serve_reply(c, "error: factorial: %s", mo_strerror(err));
        return;
    }
    c->ans = (struct answer){fact_cancel, a};
    mo_stream_set_producer(c->s, hold, resume, a);
    mo_deferred_add_callbacks(a->d, computed, failed, a); /* may run now */
}

/* ---- blocking ---- */

static void fact_blocking(struct conn *c, unsigned long n)
{
    mpz_t z;
    mpz_init(z);
    mpz_fac_ui(z, n);
    char *s = mpz_get_str(NULL, 10, z);
    mpz_clear(z);
    mo_stream_write(c->s, s, strlen(s), free, s);
    mo_stream_write_copy(c->s, "\n", 1);
}

/* ---- steps ---- */

static void convert_work(void *arg)
{
    struct fact_ans *a = arg;
    a->str = mpz_get_str(NULL, 10, a->z);
}

static void converted(mo_loop_t *loop, void *arg)
{
    (void)loop;
    struct fact_ans *a = arg;
    a->run = NULL; /* the conversion was the last thing running */
    if (a->cancelled) {
        ans_free(a);
        return;
    }
    char *s = a->str;
    a->str = NULL;
    mo_stream_write(a->c->s, s, strlen(s), free, s);
    mo_stream_write_copy(a->c->s, "\n", 1);
    a->text_done = true;
    maybe_finish(a);
}

static void naive_computed(mo_result_t *result, void *arg)
{
    struct fact_ans *a = arg;
    if (a->cancelled) return;
    mpz_swap(a->z, *(mpz_t *)mo_result_value(result));
    /* a->run marks the conversion in flight (no fact_run in this mode). */
    a->run = (struct fact_run *)a;
    int err = offload_submit(a->c->srv->workers, convert_work, converted, a);
    if (err) {
        a->run = NULL;
        serve_reply(a->c, "error: factorial: %s", mo_strerror(err));
        a->text_done = true;
        maybe_finish(a);
    }
}

static void fact_steps(struct conn *c, unsigned long n)
{
    struct fact_ans *a = ans_new(c);
    int err = a ? fact_naive(c->srv->loop, n, c->srv->o.steps, &a->d) : MO_ENOMEM;
    if (err) {
        if (a) ans_free(a);
        serve_reply(c, "error: factorial: %s", mo_strerror(err));
        return;
    }
    c->ans = (struct answer){fact_cancel, a};
    mo_deferred_add_callbacks(a->d, naive_computed, failed, a);
}

void serve_fact(struct conn *c, unsigned long n)
{
    struct server *srv = c->srv;
    double need = fact_estimate_bytes(n, FACT_DECIMAL);
    if (srv->mem_used + need > srv->mem_limit) {
        serve_reply(c, "error: factorial: %lu! needs about %.3g GB, more than is free now", n,
                    need / 1e9);
        return;
    }
    srv->mem_used += need;
    c->fact_bytes = need;
    if (srv->o.mode == SERVE_BLOCKING)
        fact_blocking(c, n);
    else if (srv->o.mode == SERVE_STEPS)
        fact_steps(c, n);
    else
        fact_sliced(c, n);
    if (!c->ans.cancel) release_memory(c); /* answered at once */
}
