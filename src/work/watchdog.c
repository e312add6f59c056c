/* The watchdog: a thread that notices, while it happens, that one callback
 * has held the loop longer than a threshold.
 *
 * The loop publishes, before each callback, the callback's address and a
 * bumped dispatch counter (mo__dispatch_publish: relaxed stores, no clock
 * read), and address 0 when it goes idle. The watchdog samples both four
 * times per threshold. A counter that has not moved for a threshold while
 * the address is not 0 means one callback has run all that time: the
 * watchdog reports it, and reports again when the counter moves. A change
 * is dated halfway between the sample that saw it and the one before, so
 * elapsed times are off by half a sampling period at most (plus the
 * watchdog thread's own scheduling delay). The address may change without
 * the counter: the cooperator stores each task's step there when its turn
 * begins, so a report names the step that holds the loop.
 */
#include "work/work_int.h"

#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>

struct mo__watchdog {
    mo_loop_t *loop;
    int64_t threshold;
    mo_watchdog_fn hook;
    void *arg;
    pthread_t thread;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    bool stop;               /* under mutex */
    struct mo__symtab names; /* the watchdog thread's */
};

/* What the watchdog last saw. */
struct sample {
    uint64_t seq;
    uintptr_t fn;
    int64_t since; /* when this seq was published, estimated */
    int64_t last;  /* when the previous sample was taken */
    bool reported;
};

static void default_hook(const struct mo_watchdog_report *r, void *arg)
{
    (void)arg;
    const char *name = r->symbol ? r->symbol : "an unnamed function";
    if (r->event == MO_WATCHDOG_BLOCKED)
        fprintf(stderr, "morsel: watchdog: loop blocked for %.1f ms so far in %s (%s, %p)\n",
                r->elapsed / 1e6, name, r->object ? r->object : "?", (void *)r->fn);
    else
        fprintf(stderr, "morsel: watchdog: %s returned after %.1f ms\n", name, r->elapsed / 1e6);
}

/* "name" or "name+0x1f" in buf. */
static const char *symbol_at(char *buf, size_t size, const char *name, uintptr_t off)
{
    if (!off) return name;
    snprintf(buf, size, "%s+0x%lx", name, (unsigned long)off);
    return buf;
}

/* Names fn: dladdr() for exported functions; the object's full symbol
 * table (symtab.c) for the rest, static ones included; else the nearest
 * exported symbol before it, with an offset. */
static void report(struct mo__watchdog *w, int event, uintptr_t fn, int64_t elapsed)
{
    struct mo_watchdog_report r = {w->loop, event, fn, NULL, NULL, elapsed};
    char buf[256];
    Dl_info info;
    bool exact = false;
    if (dladdr((void *)fn, &info)) {
        r.object = info.dli_fname;
        exact = info.dli_sname && (uintptr_t)info.dli_saddr == fn;
        if (info.dli_sname)
            r.symbol = symbol_at(buf, sizeof(buf), info.dli_sname, fn - (uintptr_t)info.dli_saddr);
    }
    uintptr_t off;
    const char *name = exact ? NULL : mo__symtab_lookup(&w->names, fn, &off);
    if (name) r.symbol = symbol_at(buf, sizeof(buf), name, off);
    (w->hook ? w->hook : default_hook)(&r, w->arg);
}

/* A change of seq happened between the previous sample and this one: the
 * midpoint is the estimate, off by half a period at most (plus the
 * watchdog thread's own wake-up delay). */
static void watch(struct mo__watchdog *w, struct sample *s)
{
    const struct mo__dispatch *d = &w->loop->dispatch;
    uint64_t seq = atomic_load_explicit(&d->seq, memory_order_acquire);
    uintptr_t fn = atomic_load_explicit(&d->fn, memory_order_relaxed);
    int64_t now = mo_hrtime(), last = s->last ? s->last : now;
    s->last = now;
    if (seq != s->seq) {
        int64_t changed = last + (now - last) / 2;
        if (s->reported) report(w, MO_WATCHDOG_RETURNED, s->fn, changed - s->since);
        *s = (struct sample){seq, fn, changed, now, false};
        return;
    }
    if (s->fn && !s->reported && now - s->since >= w->threshold) {
        /* The cooperator renames its slice call after the task whose turn
         * runs (task.c), without a new dispatch: name what runs now. */
        if (fn) s->fn = fn;
        report(w, MO_WATCHDOG_BLOCKED, s->fn, now - s->since);
        s->reported = true;
    }
}

static struct timespec deadline_after(int64_t ns)
{
    int64_t t = mo_hrtime() + ns;
    return (struct timespec){.tv_sec = t / MO_SEC(1), .tv_nsec = t % MO_SEC(1)};
}

static void *watchdog_main(void *arg)
{
    struct mo__watchdog *w = arg;
    struct sample s = {0};
    pthread_mutex_lock(&w->mutex);
    while (!w->stop) {
        struct timespec until = deadline_after(w->threshold / 4);
        while (!w->stop && pthread_cond_timedwait(&w->cond, &w->mutex, &until) == 0) {
        }
        if (w->stop) break;
        pthread_mutex_unlock(&w->mutex);
        watch(w, &s);
        pthread_mutex_lock(&w->mutex);
    }
    pthread_mutex_unlock(&w->mutex);
    /* Stopped from the loop thread: a callback reported as blocking has
     * returned by now, so say so. */
    watch(w, &s);
    return NULL;
}

static int watchdog_init(struct mo__watchdog *w)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr)) return MO_ENOMEM;
    int err = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (!err) err = pthread_cond_init(&w->cond, &attr);
    pthread_condattr_destroy(&attr);
    if (err) return MO_ENOMEM;
    if (pthread_mutex_init(&w->mutex, NULL)) {
        pthread_cond_destroy(&w->cond);
        return MO_ENOMEM;
    }
    return 0;
}

static void watchdog_destroy(struct mo__watchdog *w)
{
    mo__symtab_free(&w->names);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->mutex);
    mo__free(w);
}

/* Stops the thread and frees the watchdog. */
static void watchdog_join(struct mo__watchdog *w)
{
    pthread_mutex_lock(&w->mutex);
    w->stop = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mutex);
    pthread_join(w->thread, NULL);
    watchdog_destroy(w);
}

/* A loop freed while watched stops its watchdog. */
static void watchdog_loop_free(mo_loop_t *loop, void *state)
{
    (void)loop;
    watchdog_join(state);
}

static const struct mo__hooks watchdog_hooks = {"watchdog", 2, NULL, watchdog_loop_free};

/* The thread blocks every signal: signals are the application's threads'. */
static int watchdog_spawn(struct mo__watchdog *w)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&w->thread, NULL, watchdog_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return err == 0 ? 0 : err == ENOMEM ? MO_ENOMEM : MO_EAGAIN;
}

int mo_watchdog_start(mo_loop_t *loop, int64_t threshold, mo_watchdog_fn hook, void *arg)
{
    if (!loop || threshold < MO_MSEC(1) || threshold > MO_SEC(3600)) return MO_EINVAL;
    if (mo__loop_state(loop, &watchdog_hooks)) return MO_EBUSY;
    struct mo__watchdog *w = mo__calloc(1, sizeof(*w));
    if (!w) return MO_ENOMEM;
    *w = (struct mo__watchdog){.loop = loop, .threshold = threshold, .hook = hook, .arg = arg};
    int err = watchdog_init(w);
    if (err) {
        mo__free(w);
        return err;
    }
    if ((err = watchdog_spawn(w)) != 0) {
        watchdog_destroy(w);
        return err;
    }
    if ((err = mo__loop_attach(loop, &watchdog_hooks, w)) != 0) {
        watchdog_join(w);
        return err;
    }
    return 0;
}

int mo_watchdog_stop(mo_loop_t *loop)
{
    if (!loop) return MO_EINVAL;
    struct mo__watchdog *w = mo__loop_detach(loop, &watchdog_hooks);
    if (!w) return MO_EALREADY;
    watchdog_join(w);
    return 0;
}
