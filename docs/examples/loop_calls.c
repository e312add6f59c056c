/* Calls on a loop: a chain of zero-delay calls, delayed calls (one
 * cancelled, one pushed back), calls posted from another thread, and the
 * same delayed call on a virtual clock, where time moves only when told. */
#include <morsel.h>
#include <pthread.h>
#include <stdio.h>

struct state {
    mo_loop_t *loop;
    int chain, from_thread, fired;
};

static void link_cb(mo_loop_t *loop, void *arg)
{
    struct state *s = arg;
    if (++s->chain < 1000) mo_call_soon(loop, link_cb, s); /* the next piece, later */
}

static void fired_cb(mo_loop_t *loop, void *arg)
{
    (void)loop;
    ((struct state *)arg)->fired++;
}

static void posted_cb(mo_loop_t *loop, void *arg)
{
    struct state *s = arg;
    if (++s->from_thread == 3) mo_loop_release(loop); /* the thread's work is over */
}

static void *producer(void *arg)
{
    struct state *s = arg;
    for (int i = 0; i < 3; i++) mo_call_from_thread(s->loop, posted_cb, s); /* any thread */
    return NULL;
}

int main(void)
{
    struct state s = {0};
    if (mo_loop_new(&s.loop, 0) != 0) return 1;
    mo_call_id doomed, later;
    mo_call_soon(s.loop, link_cb, &s);
    mo_call_later(s.loop, MO_MSEC(5), fired_cb, &s, NULL);
    mo_call_later(s.loop, MO_MSEC(10), fired_cb, &s, &doomed);
    mo_call_later(s.loop, MO_MSEC(1), fired_cb, &s, &later);
    mo_call_cancel(s.loop, doomed);            /* never runs */
    mo_call_reset(s.loop, later, MO_MSEC(20)); /* now due in 20 ms */
    printf("cancel again: %s\n", mo_err_name(mo_call_cancel(s.loop, doomed)));

    mo_loop_hold(s.loop); /* keeps mo_loop_run() going until the thread's calls came */
    pthread_t t;
    if (pthread_create(&t, NULL, producer, &s) != 0) return 1;
    int err = mo_loop_run(s.loop, MO_RUN_DEFAULT);
    pthread_join(t, NULL);
    printf("chain %d, delayed calls run %d, from a thread %d\n", s.chain, s.fired, s.from_thread);
    mo_loop_free(s.loop);

    /* A virtual clock: the hour passes in no time, the call runs exactly then. */
    mo_loop_t *clock;
    if (err || mo_loop_new(&clock, MO_LOOP_VIRTUAL_CLOCK) != 0) return 1;
    s.fired = 0;
    mo_call_later(clock, MO_SEC(3600), fired_cb, &s, NULL);
    mo_loop_advance(clock, MO_SEC(3599));
    printf("after 3599 s: %d run;", s.fired);
    mo_loop_advance(clock, MO_SEC(1));
    printf(" after 3600 s: %d run at t=%lld s\n", s.fired,
           (long long)(mo_loop_now(clock) / MO_SEC(1)));
    mo_loop_free(clock);
    return 0;
}
