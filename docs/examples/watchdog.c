/* The loop's statistics and its watchdog: a heartbeat timer's lag is
 * recorded in a histogram; one callback blocks the loop for 150 ms, and
 * the watchdog thread names it while it still runs, then when it returns. */
#include <morsel.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Runs on the watchdog thread: it must not touch the loop. Keeps the name. */
static void on_report(const struct mo_watchdog_report *r, void *arg)
{
    if (r->event == MO_WATCHDOG_BLOCKED)
        snprintf(arg, 64, "%s", r->symbol ? r->symbol : "(unnamed)");
}

static void slow_callback(mo_loop_t *loop, void *arg)
{
    (void)loop, (void)arg;
    struct timespec t = {0, 150 * 1000000}; /* any blocking call holds the loop */
    nanosleep(&t, NULL);
}

static int beats;
static void heartbeat(mo_loop_t *loop, void *arg)
{
    if (++beats < 20) mo_call_later(loop, MO_MSEC(5), heartbeat, arg, NULL);
}

/* One histogram bucket: `count` samples fell in [lo, hi] ns. */
static void bucket(int64_t lo, int64_t hi, uint64_t count, void *arg)
{
    (void)hi;
    if (lo >= MO_MSEC(100)) *(uint64_t *)arg += count;
}

int main(void)
{
    mo_loop_t *loop;
    char blocker[64] = "";
    if (mo_loop_new(&loop, 0) != 0) return 1;
    if (mo_watchdog_start(loop, MO_MSEC(20), on_report, blocker) != 0) return 1;
    mo_call_later(loop, MO_MSEC(5), heartbeat, NULL, NULL);
    mo_call_later(loop, MO_MSEC(30), slow_callback, NULL, NULL);
    int err = mo_loop_run(loop, MO_RUN_DEFAULT);
    mo_watchdog_stop(loop); /* joins the thread: blocker is ours to read */

    struct mo_loop_stats st;
    mo_loop_stats(loop, &st);
    uint64_t late = 0;
    mo_loop_stats_buckets(loop, MO_STATS_LAG, bucket, &late);
    printf("%llu delayed calls ran; the blocked heartbeat was over 100 ms late: %s\n",
           (unsigned long long)st.lag.count, late > 0 ? "yes" : "no");
    printf("the watchdog named: %s\n", blocker);
    mo_loop_free(loop);
    return err || strcmp(blocker, "slow_callback") != 0;
}
