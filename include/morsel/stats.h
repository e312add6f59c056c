/* morsel — what the loop is doing: lag and callback-duration statistics,
 * and the watchdog that reports a callback holding the loop.
 *
 * Statistics are on by default and cheap: the loop keeps two log-linear
 * histograms (16 buckets per power of two, so about 6% resolution, from 1 ns
 * to the whole int64 range):
 * - lag: for every delayed call (mo_call_later/mo_call_at) that ran, how far
 *   past its deadline the iteration that ran it started; this is the loop's
 *   responsiveness as a timer sees it;
 * - callback durations: how long callbacks held the loop. The loop reads
 *   the clock only between batches of callbacks (about every 12 us of
 *   zero-delay calls, and around each wake-up), so a sample is exact when a
 *   batch held one callback, which is always the case for a long one after
 *   the first: the loop shrinks its batches to one call as soon as calls get
 *   long. In a batch of several, each is counted at the batch's average,
 *   except that when the batch ran far over what the previous ones predicted,
 *   the excess is put on one callback (the slow one). Durations include the
 *   loop's own work between two reads (for example a non-blocking poll).
 *
 * The watchdog is an optional thread per loop. The loop publishes which
 * callback it is about to run and a dispatch counter before every callback
 * (two relaxed stores, no clock read); the watchdog samples them four times
 * per threshold and, when the same callback has been running longer than the
 * threshold, reports it WHILE it still runs, then again when it returns.
 */
#ifndef MORSEL_STATS_H
#define MORSEL_STATS_H

#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One distribution, in ns. Percentiles are the upper bound of the bucket
 * holding that rank (never below the true value, at most ~6% above, and
 * never above max); all 0 when count is 0. */
struct mo_stats_summary {
    uint64_t count;
    int64_t mean;
    int64_t p50;
    int64_t p99;
    int64_t p999;
    int64_t max;
};

struct mo_loop_stats {
    struct mo_stats_summary lag;      /* lateness of delayed calls */
    struct mo_stats_summary callback; /* callback durations */
};

/* Which histogram, for mo_loop_stats_buckets(). */
enum mo_stats_which { MO_STATS_LAG = 0, MO_STATS_CALLBACK = 1 };

/* Fills *out with the statistics since the loop was created or last reset.
 * Cost: a walk over ~1000 buckets; do not call per callback. Errors:
 * MO_EINVAL (NULL argument). Loop thread. */
MO_EXTERN int mo_loop_stats(mo_loop_t *loop, struct mo_loop_stats *out);

/* Empties both histograms. Errors: MO_EINVAL (NULL). Loop thread. */
MO_EXTERN int mo_loop_stats_reset(mo_loop_t *loop);

/* Turns recording on (on != 0, the default) or off; the histograms keep
 * what they have. Errors: MO_EINVAL (NULL). Loop thread. */
MO_EXTERN int mo_loop_stats_enable(mo_loop_t *loop, int on);

/* Calls fn(lo, hi, count, arg) for every non-empty bucket of one histogram,
 * in increasing order: `count` samples fell in [lo, hi] ns. Errors:
 * MO_EINVAL (NULL loop or fn, unknown `which`). Loop thread. */
MO_EXTERN int mo_loop_stats_buckets(mo_loop_t *loop, int which,
                                    void (*fn)(int64_t lo, int64_t hi, uint64_t count, void *arg),
                                    void *arg);

/* ---- the watchdog ---- */

enum mo_watchdog_event {
    MO_WATCHDOG_BLOCKED = 1, /* a callback has run longer than the threshold */
    MO_WATCHDOG_RETURNED = 2 /* that callback has returned */
};

struct mo_watchdog_report {
    mo_loop_t *loop;
    int event;          /* MO_WATCHDOG_BLOCKED or MO_WATCHDOG_RETURNED */
    uintptr_t fn;       /* the callback's address */
    const char *symbol; /* its name: from dladdr() if exported, else from
                           the object's ELF symbol table (static functions
                           too, unless the file is stripped); "name+0x1f"
                           when only a preceding symbol is known; or NULL */
    const char *object; /* the file that holds it, or NULL */
    int64_t elapsed;    /* ns: so far (BLOCKED) or in total (RETURNED), as
                           sampled: exact to within an eighth of the
                           threshold, plus the watchdog thread's own
                           scheduling delay */
};

/* Receives reports ON THE WATCHDOG THREAD, not the loop's: it must not
 * touch the loop (mo_call_from_thread() is fine). The report and its
 * strings are valid during the call only. */
typedef void (*mo_watchdog_fn)(const struct mo_watchdog_report *report, void *arg);

/* Starts the loop's watchdog thread: a callback running longer than
 * `threshold` ns is reported to hook(report, arg), or, with hook NULL, as
 * one line on stderr ("morsel: watchdog: loop blocked for 12.5 ms so far in
 * fn (file, address)" and "morsel: watchdog: fn returned after 50.1 ms"). Functions are named from
 * the dynamic symbol table (dladdr()) or, failing that, from the full ELF symbol table of the
 * executable or library that holds them (static functions too), read on the watchdog thread the
 * first time it reports (the file is mapped until the watchdog stops); a stripped file names only
 * its exported functions. Errors: MO_EINVAL (NULL loop, threshold below MO_MSEC(1) or above an
 * hour), MO_EBUSY (already started), MO_ENOMEM, MO_EAGAIN (no thread could be created).
 * mo_loop_free() stops it. Loop thread. */
MO_EXTERN int mo_watchdog_start(mo_loop_t *loop, int64_t threshold, mo_watchdog_fn hook, void *arg);

/* Stops and joins the watchdog thread (a report in progress completes
 * first). Errors: MO_EINVAL (NULL), MO_EALREADY (not started).
 * Loop thread. */
MO_EXTERN int mo_watchdog_stop(mo_loop_t *loop);

#ifdef __cplusplus
}
#endif
#endif /* MORSEL_STATS_H */
