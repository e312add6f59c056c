/* The cooperator: time-sliced cooperative tasks (DESIGN rules 10-12).
 *
 * One slice per loop iteration, run as a ready-queue call: the ready tasks
 * take turns round-robin until the slice is used, then the cooperator asks
 * the loop to poll I/O and run its timers before the next slice. Within a
 * turn, steps run in batches between two clock reads. A batch is sized to
 * half of what the turn has left, at the task's learnt cost per step, so the
 * batches shrink as the end nears and a turn ends within about half a step
 * of its end, after log2(turn / step) clock reads. See work_int.h for the
 * invariants.
 */
#include "work/work_int.h"

#define MO__SLICE_DEF MO_MSEC(1)
#define MO__BATCH_CAP (UINT32_C(1) << 20)

static void coop_slice(mo_loop_t *loop, void *arg);

static int64_t coop_clock(const struct mo__coop *c)
{
    return c->clock ? c->clock(c->clock_arg) : mo_hrtime();
}

static void coop_free(mo_loop_t *loop, void *state);

/* The cooperator is the loop's from its first task on; the loop frees it
 * (failing the tasks left) through this hook. */
static const struct mo__hooks coop_hooks = {"cooperator", 2, NULL, coop_free};

static struct mo__coop *coop_of(const mo_loop_t *loop)
{
    return mo__loop_state(loop, &coop_hooks);
}

int mo__coop_get(mo_loop_t *loop, struct mo__coop **cp)
{
    struct mo__coop *c = coop_of(loop);
    if (!c) {
        if (!(c = mo__calloc(1, sizeof(*c)))) return MO_ENOMEM;
        c->loop = loop;
        c->slice = MO__SLICE_DEF;
        int err = mo__loop_attach(loop, &coop_hooks, c);
        if (err) {
            mo__free(c);
            return err;
        }
    }
    *cp = c;
    return 0;
}

int mo__coop_set_clock(mo_loop_t *loop, int64_t (*clock)(void *arg), void *arg)
{
    struct mo__coop *c;
    int err = mo__coop_get(loop, &c);
    if (err) return err;
    c->clock = clock;
    c->clock_arg = arg;
    return 0;
}

/* ---- the ready ring ---- */

static void ring_insert(struct mo__coop *c, mo_task_t *t)
{
    if (!c->cursor) {
        t->next = t->prev = t;
        c->cursor = t;
    } else {
        t->next = c->cursor;
        t->prev = c->cursor->prev;
        t->prev->next = t;
        c->cursor->prev = t;
    }
    c->nready++;
}

static void ring_remove(struct mo__coop *c, mo_task_t *t)
{
    if (t->next == t) {
        c->cursor = NULL;
    } else {
        t->prev->next = t->next;
        t->next->prev = t->prev;
        if (c->cursor == t) c->cursor = t->next;
    }
    t->next = t->prev = NULL;
    c->nready--;
}

static int coop_schedule(struct mo__coop *c)
{
    if (c->scheduled || !c->cursor) return 0;
    int err = mo_call_soon(c->loop, coop_slice, c);
    if (err == 0) c->scheduled = true;
    return err;
}

/* ---- the task's state ---- */

static bool task_runnable(const mo_task_t *t)
{
    if (t->state == MO__TASK_READY) return !t->pauses;
    return t->state == MO__TASK_UNWINDING && !t->piece_out;
}

/* Puts the task in the ready ring or takes it out, as its state, pauses
 * and piece say; a task made ready goes last in the round. Returns 0, or
 * the error of scheduling a slice (the task is in the ring then: the caller
 * fails or drops it). */
static int task_sync(mo_task_t *t)
{
    bool in = t->next != NULL;
    if (in == task_runnable(t)) return 0;
    if (in) {
        ring_remove(t->coop, t);
        return 0;
    }
    ring_insert(t->coop, t);
    return coop_schedule(t->coop);
}

static const char *const state_names[] = {"READY", "WAITING", "OFFLOADED", "UNWINDING", "DONE"};

#ifndef NDEBUG
/* The moves a task may make (work_int.h), one bit per target state. */
#define TO(s) (1u << (s))
static const unsigned legal_moves[] = {
    [MO__TASK_READY] =
        TO(MO__TASK_WAITING) | TO(MO__TASK_OFFLOADED) | TO(MO__TASK_UNWINDING) | TO(MO__TASK_DONE),
    [MO__TASK_WAITING] = TO(MO__TASK_READY) | TO(MO__TASK_UNWINDING) | TO(MO__TASK_DONE),
    [MO__TASK_OFFLOADED] = TO(MO__TASK_READY) | TO(MO__TASK_UNWINDING) | TO(MO__TASK_DONE),
    [MO__TASK_UNWINDING] = TO(MO__TASK_DONE),
    [MO__TASK_DONE] = 0,
};
#undef TO
#endif

/* The one place a task changes state: checks the move (debug builds) and
 * keeps the ready ring in step. Returns task_sync()'s result. */
static int task_move(mo_task_t *t, enum mo__task_state to)
{
    MO__ASSERT(legal_moves[t->state] & (1u << to), "task %p: %s -> %s", (void *)t,
               state_names[t->state], state_names[to]);
    t->state = (uint8_t)to;
    return task_sync(t);
}

/* ---- lifetime ---- */

void mo__task_ref(mo_task_t *t)
{
    t->refs++;
}

static void task_free(mo_task_t *t)
{
    if (t->value_dtor) t->value_dtor(t->value);
    if (t->received_dtor) t->received_dtor(t->received);
    mo_failure_unref(t->failure);
    mo_deferred_unref(t->wait_d);
    mo_deferred_unref(t->done);
    if (t->on_free) t->on_free(t->arg);
    mo__free(t);
}

void mo__task_unref(mo_task_t *t)
{
    if (--t->refs == 0) task_free(t);
}

static void all_insert(struct mo__coop *c, mo_task_t *t)
{
    if (!c->all) {
        t->all_next = t->all_prev = t;
        c->all = t;
    } else {
        t->all_next = c->all;
        t->all_prev = c->all->all_prev;
        t->all_prev->all_next = t;
        c->all->all_prev = t;
    }
    c->ntasks++;
}

/* The cooperator lets go of a task that is DONE. */
static void coop_drop(struct mo__coop *c, mo_task_t *t)
{
    if (!t->all_next) return;
    if (t->all_next == t) {
        c->all = NULL;
    } else {
        t->all_prev->all_next = t->all_next;
        t->all_next->all_prev = t->all_prev;
        if (c->all == t) c->all = t->all_next;
    }
    t->all_next = t->all_prev = NULL;
    c->ntasks--;
    mo__task_unref(t);
}

/* A task that will not run again: out of the ring, let go of. */
static void task_end(mo_task_t *t)
{
    task_move(t, MO__TASK_DONE);
    coop_drop(t->coop, t);
}

/* ---- finishing ---- */

/* The task no longer waits for its piece: a queued piece is taken back (fn
 * never runs); a running one returns in its own time and offload_done()
 * discards its result. No user code runs. */
static void offload_abandon(mo_task_t *t)
{
    if (mo_pool_cancel(&t->off.job) != 0) return;
    t->piece_out = false;
    mo__task_unref(t); /* the job's; the caller holds another */
}

/* How a task finishes: with the outcome it produced, or stopped. */
enum finish_how { FINISH_OUTCOME, FINISH_STOP };

/* Fires the outcome: the value of mo_task_done() if f is NULL, else f (the
 * reference is taken). A coroutine stays on to unwind. A stopped task's
 * wait ends: like inlineCallbacks, what it waits on is cancelled, so a
 * timer or a thread job does not outlive the task's interest; and its
 * MO_ECANCELED is quiet (DESIGN rule 20): reported by nobody if nobody
 * looks at it. */
static void task_finish(mo_task_t *t, mo_failure_t *f, enum finish_how how)
{
    mo__task_ref(t);
    mo_deferred_t *cancel = NULL;
    if (how == FINISH_STOP && t->state == MO__TASK_OFFLOADED) offload_abandon(t);
    if (how == FINISH_STOP && t->state == MO__TASK_WAITING) cancel = t->wait_d;
    if (task_move(t, t->coro ? MO__TASK_UNWINDING : MO__TASK_DONE) != 0)
        task_move(t, MO__TASK_DONE); /* cannot be scheduled to unwind: dropped suspended */
    if (cancel) mo_deferred_cancel(cancel);
    if (f) {
        if (how == FINISH_STOP)
            mo__deferred_errback_quiet(t->done, f);
        else
            mo_deferred_errback(t->done, f);
    } else {
        void *v = t->value;
        mo_dtor_fn dtor = t->value_dtor;
        t->value = NULL;
        t->value_dtor = NULL;
        mo_deferred_callback(t->done, v, dtor);
    }
    if (t->state == MO__TASK_DONE) coop_drop(t->coop, t);
    mo__task_unref(t);
}

static void task_fail_code(mo_task_t *t, int code, const char *origin)
{
    task_finish(t, mo_failure_new(code, origin, NULL), FINISH_OUTCOME);
}

static void task_stop(mo_task_t *t, const char *origin)
{
    task_finish(t, mo_failure_new(MO_ECANCELED, origin, NULL), FINISH_STOP);
}

/* ---- what the task waited on came out ---- */

/* A value: the next step takes it with mo_task_received(). */
static void task_wait_succeeded(mo_task_t *t, void *v, mo_dtor_fn dtor, const char *origin)
{
    if (t->received_dtor) t->received_dtor(t->received);
    t->received = v;
    t->received_dtor = dtor;
    int err = task_move(t, MO__TASK_READY);
    if (err) task_fail_code(t, err, origin);
}

/* A failure (taken): a coroutine gets it back from mo_await() or
 * mo_coro_offload(); a step function's task fails with it. */
static void task_wait_failed(mo_task_t *t, mo_failure_t *f, const char *origin)
{
    if (!t->coro) {
        task_finish(t, f, FINISH_OUTCOME);
        return;
    }
    mo_failure_unref(t->failure);
    t->failure = f;
    int err = task_move(t, MO__TASK_READY);
    if (err) task_fail_code(t, err, origin);
}

/* ---- waiting on a Deferred ---- */

static void wait_cb(mo_result_t *result, void *arg)
{
    mo_task_t *t = arg;
    if (t->state == MO__TASK_WAITING) {
        mo_dtor_fn dtor;
        void *v = mo_result_take(result, &dtor);
        task_wait_succeeded(t, v, dtor, "mo_task_wait");
    }
    mo__task_unref(t);
}

static void wait_eb(mo_result_t *result, void *arg)
{
    mo_task_t *t = arg;
    mo_failure_t *f = mo_failure_ref(mo_result_failure(result));
    /* The task takes the failure over: in the awaited Deferred it counts
     * as handled. */
    mo_result_set(result, NULL, NULL);
    if (t->state == MO__TASK_WAITING)
        task_wait_failed(t, f, t->coro ? "mo_await" : "mo_task_wait");
    else
        mo_failure_unref(f);
    mo__task_unref(t);
}

static void task_begin_wait(mo_task_t *t)
{
    if (!t->wait_d) {
        task_fail_code(t, MO_EINVAL, "step returned MO_WAIT without mo_task_wait()");
        return;
    }
    task_move(t, MO__TASK_WAITING);
    mo__task_ref(t);
    int err = mo_deferred_add_callbacks(t->wait_d, wait_cb, wait_eb, t);
    if (err) {
        mo__task_unref(t);
        task_move(t, MO__TASK_READY); /* it never waited: nothing to cancel */
        task_fail_code(t, err, "mo_task_wait");
    }
}

/* ---- offloading one piece to the pool ---- */

/* On a worker thread: touches the piece's own fields only. */
static void offload_work(mo_pool_job_t *job, void *arg)
{
    (void)job;
    mo__thread_call_run(&((mo_task_t *)arg)->off);
}

/* On the loop thread, once the piece returned (or the pool shut down
 * before it ran). */
static void offload_done(mo_loop_t *loop, mo_pool_job_t *job, int status, void *arg)
{
    (void)loop;
    (void)job;
    mo_task_t *t = arg;
    void *v;
    mo_dtor_fn dtor;
    mo_failure_t *f = mo__thread_call_take(&t->off, status, "mo_task_offload", &v, &dtor);
    t->piece_out = false;
    if (mo__task_finished(t)) {
        /* Stopped while the piece ran: nobody wants its result. A stopped
         * coroutine may unwind now. */
        mo_failure_unref(f);
        if (dtor) dtor(v);
        if (task_sync(t) != 0) task_end(t); /* cannot unwind: dropped suspended */
    } else if (f) {
        task_wait_failed(t, f, "mo_task_offload");
    } else {
        task_wait_succeeded(t, v, dtor, "mo_task_offload");
    }
    mo__task_unref(t); /* the job's */
}

int mo__task_offload(mo_task_t *t, mo_thread_fn fn, void *arg)
{
    if (t->piece_out) return MO_EBUSY;
    struct mo__thread_call *o = &t->off;
    o->fn = fn;
    o->arg = arg;
    o->code = 0;
    int err = mo_pool_submit(t->pool, t->coop->loop, &o->job, offload_work, offload_done, t);
    if (err) return err;
    mo__task_ref(t);
    t->piece_out = true;
    task_move(t, MO__TASK_OFFLOADED);
    return 0;
}

/* ---- turns ---- */

/* What happens after a batch that did not end with MO_CONTINUE. */
static void task_settle(mo_task_t *t, int st)
{
    if (t->state == MO__TASK_UNWINDING) {
        if (st == MO_DONE || st < 0 || st == MO_FAIL) task_end(t); /* it has unwound */
        return;
    }
    if (mo__task_finished(t)) return; /* stopped during its step: the outcome is out */
    if (st == MO_DONE) {
        task_finish(t, NULL, FINISH_OUTCOME);
    } else if (st == MO_WAIT) {
        if (t->state == MO__TASK_READY) task_begin_wait(t); /* else it offloaded a piece */
    } else if (st == MO_FAIL && t->failure) {
        mo_failure_t *f = t->failure;
        t->failure = NULL;
        task_finish(t, f, FINISH_OUTCOME);
    } else {
        task_fail_code(t, st < 0 ? st : MO_EINVAL, "task step");
    }
}

/* Runs up to n steps; a coroutine's step runs the batch itself. */
static int run_batch(mo_task_t *t, uint32_t n, uint32_t *ran)
{
    t->budget = n;
    if (t->coro) {
        int st = t->step(t, t->arg);
        *ran = n - t->budget;
        return st;
    }
    for (uint32_t i = 0; i < n; i++) {
        int st = t->step(t, t->arg);
        if (MO__UNLIKELY(st != MO_CONTINUE || !task_runnable(t))) {
            *ran = i + 1;
            return st;
        }
    }
    *ran = n;
    return MO_CONTINUE;
}

/* Steps for the next batch: half of what is left of the turn. The first
 * batch of a turn runs at least one step; later ones stop when less than
 * half a step is left. A task of unknown cost runs one step. */
static uint32_t batch_size(const mo_task_t *t, int64_t left, bool first)
{
    if (t->cost <= 0) return 1;
    if (left < t->cost / 2) return first ? 1 : 0;
    double n = (double)left / 2 / t->cost;
    if (n < 1) return 1;
    return n > MO__BATCH_CAP ? MO__BATCH_CAP : (uint32_t)n;
}

static void learn(struct mo__coop *c, mo_task_t *t, uint32_t ran, int64_t spent)
{
    t->steps += ran;
    c->stats.steps += ran;
    if (!ran) return;
    double per = (double)spent / ran;
    t->cost = t->cost > 0 ? (t->cost + per) / 2 : (per > 0 ? per : 1);
    if (ran == 1 && spent > c->slice) {
        t->overlong++;
        c->stats.overlong++;
    }
}

static void drop_received(mo_task_t *t)
{
    if (t->received_dtor) t->received_dtor(t->received);
    t->received = NULL;
    t->received_dtor = NULL;
}

/* Names the task whose turn begins as the loop's running callback, for the
 * watchdog (DESIGN rule 15): the loop published coop_slice, and the watchdog
 * names what it finds published when it reports, so a step holding the loop
 * is named, not the slice. One relaxed store per turn and no dispatch count:
 * for the loop's statistics the slice stays one callback. */
static inline void publish_name(const struct mo__coop *c, const mo_task_t *t)
{
    atomic_store_explicit(&c->loop->dispatch.fn, t->name, memory_order_relaxed);
}

/* One task's turn, from `now` until `end` at the latest; returns the time
 * it ended. */
static int64_t task_turn(struct mo__coop *c, mo_task_t *t, int64_t now, int64_t end)
{
    mo__task_ref(t);
    c->current = t;
    publish_name(c, t);
    t->turns++;
    t->batch = 0;
    for (bool first = true; task_runnable(t); first = false) {
        uint32_t n = batch_size(t, end - now, first), ran = 0;
        if (!n) break;
        if (n > t->batch) t->batch = n;
        int st = run_batch(t, n, &ran);
        int64_t after = coop_clock(c);
        learn(c, t, ran, after - now);
        now = after;
        drop_received(t);
        if (st != MO_CONTINUE) {
            task_settle(t, st);
            break;
        }
        if (now >= end) break;
    }
    c->current = NULL;
    mo__task_unref(t);
    return now;
}

static int64_t task_quantum(const struct mo__coop *c, const mo_task_t *t, int64_t share)
{
    return t->slice > 0 && t->slice < c->slice ? t->slice : share;
}

static void coop_slice(mo_loop_t *loop, void *arg)
{
    struct mo__coop *c = arg;
    c->scheduled = false;
    int64_t start = coop_clock(c), now = start, end = start + c->slice;
    int64_t share = c->nready ? c->slice / c->nready : c->slice;
    if (share < c->slice / 8) share = c->slice / 8;
    while (c->cursor && now < end) {
        mo_task_t *t = c->cursor;
        c->cursor = t->next;
        int64_t q = task_quantum(c, t, share);
        now = task_turn(c, t, now, end - now < q ? end : now + q);
    }
    c->stats.slices++;
    c->stats.last_ns = now - start;
    if (c->stats.last_ns > c->stats.max_ns) c->stats.max_ns = c->stats.last_ns;
    int err = coop_schedule(c);
    /* Without a slice call the ready tasks would stall silently: fail them. */
    while (err && c->cursor) task_fail_code(c->cursor, err, "cooperator");
    mo__loop_request_poll(loop);
}

/* ---- the public API ---- */

int mo__task_start(mo_loop_t *loop, mo_step_fn step, void *arg, const struct mo_task_opts *opts,
                   bool coro, void (*on_free)(void *arg), mo_task_t **taskp)
{
    if (!loop || !step || (opts && opts->slice < 0)) return MO_EINVAL;
    struct mo__coop *c;
    int err = mo__coop_get(loop, &c);
    if (err) return err;
    mo_task_t *t = mo__calloc(1, sizeof(*t));
    if (!t) return MO_ENOMEM;
    err = mo_deferred_new(loop, NULL, NULL, &t->done);
    if (err) {
        mo__free(t);
        return err;
    }
    t->coop = c;
    t->step = step;
    t->arg = arg;
    t->coro = coro;
    t->name = MO__FN(step);
    t->slice = opts ? opts->slice : 0;
    t->pool = opts ? opts->pool : NULL;
    t->state = MO__TASK_READY;
    if ((err = task_sync(t)) != 0) {
        ring_remove(c, t);
        mo_deferred_unref(t->done);
        mo__free(t);
        return err;
    }
    t->on_free = on_free;
    t->refs = 1;
    t->seq = c->seq++;
    all_insert(c, t);
    if (taskp) {
        t->refs++;
        *taskp = t;
    }
    return 0;
}

int mo_cooperate(mo_loop_t *loop, mo_step_fn step, void *arg, const struct mo_task_opts *opts,
                 mo_task_t **taskp)
{
    return mo__task_start(loop, step, arg, opts, false, NULL, taskp);
}

mo_deferred_t *mo_task_deferred(mo_task_t *task)
{
    return task ? mo_deferred_ref(task->done) : NULL;
}

void mo_task_release(mo_task_t *task)
{
    if (task) mo__task_unref(task);
}

int mo_task_done(mo_task_t *task, void *value, mo_dtor_fn dtor)
{
    if (!task) {
        if (dtor) dtor(value);
        return MO_EINVAL;
    }
    if (task->value_dtor) task->value_dtor(task->value);
    task->value = value;
    task->value_dtor = dtor;
    return MO_DONE;
}

int mo_task_wait(mo_task_t *task, mo_deferred_t *d)
{
    if (!task || !d || task->piece_out) {
        mo_deferred_unref(d);
        return !task || !d ? MO_EINVAL : MO_EBUSY;
    }
    mo_deferred_unref(task->wait_d);
    task->wait_d = d;
    return MO_WAIT;
}

int mo_task_offload(mo_task_t *task, mo_thread_fn fn, void *arg)
{
    if (!task || !fn || task->coro) return MO_EINVAL;
    if (mo__task_finished(task)) return MO_EALREADY;
    if (task->coop->current != task) return MO_EINVAL; /* not from its step */
    int err = mo__task_offload(task, fn, arg);
    return err ? err : MO_WAIT;
}

void *mo_task_received(mo_task_t *task, mo_dtor_fn *dtorp)
{
    if (!task) return NULL;
    void *v = task->received;
    if (dtorp) *dtorp = task->received_dtor;
    task->received = NULL;
    task->received_dtor = NULL;
    return v;
}

int mo_task_fail(mo_task_t *task, mo_failure_t *failure)
{
    if (!task || !failure) {
        mo_failure_unref(failure);
        return MO_EINVAL;
    }
    mo_failure_unref(task->failure);
    task->failure = failure;
    return MO_FAIL;
}

int mo_task_pause(mo_task_t *task)
{
    if (!task) return MO_EINVAL;
    if (mo__task_finished(task)) return MO_EALREADY;
    task->pauses++;
    task_sync(task); /* takes it out of the ring: cannot fail */
    return 0;
}

int mo_task_resume(mo_task_t *task)
{
    if (!task) return MO_EINVAL;
    if (mo__task_finished(task)) return MO_EALREADY;
    if (!task->pauses) return MO_EINVAL;
    task->pauses--;
    int err = task_sync(task);
    if (err) {
        task->pauses++;
        task_sync(task); /* back out of the ring, paused as before */
    }
    return err;
}

int mo_task_stop(mo_task_t *task)
{
    if (!task) return MO_EINVAL;
    if (mo__task_finished(task)) return MO_EALREADY;
    task_stop(task, "mo_task_stop");
    return 0;
}

int mo_task_state(const mo_task_t *task)
{
    if (!task) return MO_EINVAL;
    if (mo__task_finished(task)) return MO_TASK_DONE;
    if (task->pauses) return MO_TASK_PAUSED;
    return task->state == MO__TASK_READY ? MO_TASK_READY : MO_TASK_WAITING;
}

int mo_task_stats(const mo_task_t *task, struct mo_task_stats *stats)
{
    if (!task || !stats) return MO_EINVAL;
    *stats =
        (struct mo_task_stats){task->steps, task->turns, task->overlong, task->cost, task->batch};
    return 0;
}

int mo_cooperator_set_slice(mo_loop_t *loop, int64_t ns)
{
    if (!loop || ns <= 0) return MO_EINVAL;
    struct mo__coop *c;
    int err = mo__coop_get(loop, &c);
    if (err) return err;
    c->slice = ns;
    return 0;
}

/* The first task from `t` on (in start order) that is not finished and
 * was started before `limit`; NULL if none. */
static mo_task_t *next_live(struct mo__coop *c, mo_task_t *t, uint64_t limit)
{
    while (t && t->seq < limit) {
        if (!mo__task_finished(t)) return t;
        t = t->all_next == c->all ? NULL : t->all_next;
    }
    return NULL;
}

/* Stops the tasks that existed when it began, in start order. Their
 * Deferreds' callbacks may start, stop or release other tasks: the next one
 * is kept alive across them, and if it left the list meanwhile the walk
 * starts again from the head. */
static int coop_stop_all(struct mo__coop *c)
{
    uint64_t limit = c->seq;
    int stopped = 0;
    mo_task_t *t = next_live(c, c->all, limit);
    while (t) {
        mo_task_t *next = t->all_next == c->all ? NULL : t->all_next;
        if (next) mo__task_ref(next);
        task_stop(t, "mo_cooperator_stop");
        stopped++;
        if (next && !next->all_next) {
            mo__task_unref(next);
            t = next_live(c, c->all, limit);
        } else {
            if (next) mo__task_unref(next); /* the list still holds it */
            t = next_live(c, next, limit);
        }
    }
    return stopped;
}

int mo_cooperator_stop(mo_loop_t *loop)
{
    if (!loop) return MO_EINVAL;
    struct mo__coop *c = coop_of(loop);
    return c ? coop_stop_all(c) : 0;
}

int mo_cooperator_stats(const mo_loop_t *loop, struct mo_cooperator_stats *stats)
{
    if (!loop || !stats) return MO_EINVAL;
    const struct mo__coop *c = coop_of(loop);
    *stats = c ? c->stats : (struct mo_cooperator_stats){0};
    stats->tasks = c ? c->ntasks : 0;
    return 0;
}

/* From mo_loop_free(): fails the tasks left, then frees the cooperator. */
static void coop_free(mo_loop_t *loop, void *state)
{
    struct mo__coop *c = state;
    coop_stop_all(c);
    /* Coroutines left unwinding are dropped suspended: the loop is going. */
    while (c->all) task_end(c->all);
    (void)loop;
    mo__free(c);
}

/* ---- checking the invariants (tests) ---- */

static void verify_task(const struct mo__coop *c, const mo_task_t *t)
{
    MO__CHECK(t->coop == c, "task %p: another cooperator's", (const void *)t);
    MO__CHECK(t->state < MO__TASK_DONE, "task %p: DONE but held", (const void *)t);
    MO__CHECK(t->state != MO__TASK_OFFLOADED || t->piece_out, "task %p: OFFLOADED, no piece",
              (const void *)t);
    MO__CHECK(!t->piece_out || t->state != MO__TASK_READY, "task %p: READY with a piece out",
              (const void *)t);
    MO__CHECK(!t->piece_out || t->state != MO__TASK_WAITING, "task %p: WAITING with a piece out",
              (const void *)t);
    MO__CHECK(t->state != MO__TASK_UNWINDING || t->coro, "task %p: UNWINDING, not a coroutine",
              (const void *)t);
    MO__CHECK((t->next != NULL) == task_runnable(t), "task %p: %s, pauses %u, piece %d, ring %d",
              (const void *)t, state_names[t->state], t->pauses, t->piece_out, t->next != NULL);
    MO__CHECK(t->refs >= 1, "task %p: held with no reference", (const void *)t);
}

void mo__coop_verify(mo_loop_t *loop)
{
    const struct mo__coop *c = coop_of(loop);
    if (!c) return;
    uint32_t ntasks = 0, nready = 0;
    const mo_task_t *t = c->all;
    for (; t; t = t->all_next == c->all ? NULL : t->all_next) {
        MO__CHECK(t->all_next->all_prev == t, "task %p: broken task list", (const void *)t);
        MO__CHECK(t->all_next == c->all || t->all_next->seq > t->seq, "task %p: start order",
                  (const void *)t);
        verify_task(c, t);
        ntasks++;
    }
    MO__CHECK(ntasks == c->ntasks, "%u tasks held, %u counted", ntasks, c->ntasks);
    for (t = c->cursor; t; t = t->next == c->cursor ? NULL : t->next) {
        MO__CHECK(t->next->prev == t, "task %p: broken ring", (const void *)t);
        MO__CHECK(t->all_next, "task %p: in the ring, not held", (const void *)t);
        nready++;
    }
    MO__CHECK(nready == c->nready, "%u tasks ready, %u in the ring", c->nready, nready);
    MO__CHECK(!c->cursor || c->scheduled, "tasks ready, no slice scheduled");
    MO__CHECK(!c->current, "verified from inside a turn");
}
