/* morsel — Deferreds and failures: the results of asynchronous work.
 *
 * A Deferred (Twisted's Deferred) is a promise of one result that arrives
 * later, plus a chain of callback pairs that process it in order. It is
 * fired once, with a value (mo_deferred_callback) or a failure
 * (mo_deferred_errback); each pair then runs in turn: its callback if the
 * current outcome is a value, its errback if it is a failure. A callback
 * can keep the outcome, replace it, turn it into a failure, or hand back
 * another Deferred to wait on: the chain pauses until that one fires, and
 * its outcome flows on. An errback that sets a value returns the chain to the
 * callback path.
 *
 * Ownership:
 * - A Deferred is reference-counted. A function that gives out a Deferred
 *   (mo_deferred_new*, mo_deferred_call_*, mo_deferred_list, and every other morsel
 *   function returning one) hands the caller one reference, released with
 *   mo_deferred_unref(). A Deferred keeps running its callbacks after the
 *   caller dropped its reference: whoever will fire it holds its own.
 * - A value is a void * plus an optional destructor, owned by the Deferred
 *   holding it; the destructor runs when the value is replaced or the
 *   Deferred is freed. The functions that give a Deferred a value or a
 *   failure take it in every case: if they return an error, they have
 *   already destroyed it (GTask's rule; a producer never leaks on a lost
 *   race).
 * - A failure (mo_failure_t) is immutable and reference-counted with atomic
 *   counts, so it may be created on any thread and handed to the loop.
 *
 * Unhandled failures: when the last reference to a Deferred is dropped and
 * its chain ended in a failure that nothing took, the failure is passed to
 * the loop's error hook (mo_loop_set_error_hook), which by default writes
 * one line on stderr.
 *
 * Chains run iteratively, never recursively: a callback returning a Deferred,
 * mo_deferred_chain() links, and Deferred lists all resume through one loop,
 * so a chain a million links deep fires in constant C stack. Callbacks added
 * to a Deferred while its chain runs (from one of its callbacks, or further
 * down a chain it feeds) are run by that same loop, after the ones before
 * them.
 *
 * Threads: a Deferred belongs to its loop and is used only on the loop's
 * thread, like everything else on the loop. The mo_failure_* functions may
 * be called from any thread. Free every Deferred before its loop.
 *
 * Bad input: NULL where a Deferred, callback or failure is required is
 * MO_EINVAL. Using a Deferred after its last reference was dropped is the
 * caller's error (AddressSanitizer reports it); releasing a reference of a
 * Deferred that is being freed (e.g. from its value's destructor) is caught
 * with a message on stderr and otherwise ignored.
 */
#ifndef MORSEL_DEFERRED_H
#define MORSEL_DEFERRED_H

#include <stdarg.h>

#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MO_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define MO_PRINTF(fmt_index, first_arg)
#endif

typedef struct mo_deferred mo_deferred_t;
typedef struct mo_failure mo_failure_t;
typedef struct mo_result mo_result_t;

/* Destroys a value when the Deferred that owns it is done with it. */
typedef void (*mo_dtor_fn)(void *value);

/* ------------------------------------------------------------------------
 * Failures
 *
 * A failure carries an error code (a negative MO_E* / errno value or any
 * non-zero application code), a message, and its origin: the function that
 * failed, possibly prefixed by a short context chain ("walk: read_dir").
 * One allocation holds all three. Failure creation never fails: when memory
 * runs out it returns a shared, immortal failure whose code is MO_ENOMEM, so
 * an error path never needs an error path of its own. Any thread.
 * ------------------------------------------------------------------------ */

/* Creates a failure with one reference, owned by the caller. `code` must be
 * non-zero (0 is stored as MO_EINVAL, so a failure never reads as success).
 * `origin` (may be NULL) is copied, typically __func__. `fmt` (may be NULL
 * for no message) is a printf format for the message. Never returns NULL;
 * out of memory gives the shared MO_ENOMEM failure. Any thread. */
MO_EXTERN mo_failure_t *mo_failure_new(int code, const char *origin, const char *fmt, ...)
    MO_PRINTF(3, 4);
MO_EXTERN mo_failure_t *mo_failure_newv(int code, const char *origin, const char *fmt, va_list ap)
    MO_PRINTF(3, 0);

/* Adds a reference and returns f. NULL is returned as NULL. Any thread. */
MO_EXTERN mo_failure_t *mo_failure_ref(mo_failure_t *f);

/* Drops a reference; the last one frees the failure. NULL is ignored.
 * Any thread. */
MO_EXTERN void mo_failure_unref(mo_failure_t *f);

/* Adds context: returns a failure with f's code and message whose origin is
 * "context: <f's origin>". Takes the caller's reference to f and gives one
 * to the result. If memory runs out, returns f itself unchanged (the context
 * is lost, the error is not). NULL f gives NULL; NULL context gives f.
 * Any thread. */
MO_EXTERN mo_failure_t *mo_failure_wrap(mo_failure_t *f, const char *context);

/* The failure's code; 0 for NULL. Any thread. */
MO_EXTERN int mo_failure_code(const mo_failure_t *f);

/* The message and the origin, owned by f; "" when absent or for NULL, never
 * NULL. Any thread. */
MO_EXTERN const char *mo_failure_message(const mo_failure_t *f);
MO_EXTERN const char *mo_failure_origin(const mo_failure_t *f);

/* Writes one line (no newline) into buf, always NUL-terminated when size >
 * 0, in one of four forms:
 *   "origin: message (NAME: description)"  an MO_E* code, with a message;
 *   "origin: description (NAME)"           an MO_E* code, no message;
 *   "origin: message (code N)"             any other code, with a message;
 *   "origin: code N"                       any other code, no message;
 * for example "read_dir: cannot open /x (EACCES: permission denied)",
 * "i/o error (EIO)", "app: code 9". Without an origin, "origin: " is left
 * out. Returns the length the full line needs, like snprintf (truncated if
 * >= size), or MO_EINVAL for NULL f, or NULL buf with size > 0.
 * Any thread. */
MO_EXTERN int mo_failure_format(const mo_failure_t *f, char *buf, size_t size);

/* ------------------------------------------------------------------------
 * The error hook
 * ------------------------------------------------------------------------ */

/* Receives each unhandled failure of a Deferred on `loop` (borrowed: take a
 * reference to keep it). Runs on the loop thread, from mo_deferred_unref()
 * or from the chain that dropped the last reference. */
typedef void (*mo_error_hook_fn)(mo_loop_t *loop, const mo_failure_t *failure, void *arg);

/* Sets where the loop reports unhandled failures. fn NULL restores the
 * default: one line on stderr, "morsel: unhandled error in Deferred: " and
 * the failure as mo_failure_format() writes it. The first hook set on a
 * loop allocates a few bytes, freed with the loop. Errors: MO_EINVAL (NULL
 * loop), MO_ENOMEM (the first hook, out of memory: the default stays).
 * Loop thread. */
MO_EXTERN int mo_loop_set_error_hook(mo_loop_t *loop, mo_error_hook_fn fn, void *arg);

/* ------------------------------------------------------------------------
 * Callbacks and their result handle
 * ------------------------------------------------------------------------ */

/* A callback or errback. `result` is the Deferred's current outcome, valid
 * only during the call; leave it alone to pass the outcome on unchanged, or
 * use the mo_result_* functions below to change it. A callback added with
 * mo_deferred_add_both() tells which path it is on by mo_result_failure(). */
typedef void (*mo_deferred_fn)(mo_result_t *result, void *arg);

/* Called by mo_deferred_cancel() on an unfired Deferred; it may fire d (with
 * a value or a failure of its choice) or not. Loop thread. */
typedef void (*mo_canceller_fn)(mo_deferred_t *d, void *arg);

/* The current value, borrowed; NULL when the outcome is a failure.
 * NULL result gives NULL. */
MO_EXTERN void *mo_result_value(const mo_result_t *result);

/* The current failure, borrowed (mo_failure_ref() to keep it); NULL when
 * the outcome is a value. NULL result gives NULL. */
MO_EXTERN mo_failure_t *mo_result_failure(const mo_result_t *result);

/* The Deferred whose chain is running, borrowed. */
MO_EXTERN mo_deferred_t *mo_result_deferred(const mo_result_t *result);

/* Replaces the outcome with `value` (owned from now on, destroyed with dtor
 * unless NULL); the old value is destroyed, or the old failure released.
 * From an errback, this recovers: the next pair runs its callback.
 * Errors: MO_EINVAL (NULL result; value is then destroyed). */
MO_EXTERN int mo_result_set(mo_result_t *result, void *value, mo_dtor_fn dtor);

/* Takes the current value out: returns it, stores its destructor in *dtorp
 * (the destructor may be NULL; dtorp may be NULL too, when the caller
 * knows it), and leaves NULL (no destructor) as the outcome. Returns
 * NULL, leaving everything as it is, when the outcome is a failure or
 * result is NULL. */
MO_EXTERN void *mo_result_take(mo_result_t *result, mo_dtor_fn *dtorp);

/* Replaces the outcome with a new failure (see mo_failure_new(); out of
 * memory gives the MO_ENOMEM failure): the next pair runs its errback.
 * Errors: MO_EINVAL (NULL result; nothing changes). */
MO_EXTERN int mo_result_fail(mo_result_t *result, int code, const char *origin, const char *fmt,
                             ...) MO_PRINTF(4, 5);

/* Replaces the outcome with `failure`, taking the caller's reference.
 * Errors: MO_EINVAL (NULL result or failure; the failure is released). */
MO_EXTERN int mo_result_set_failure(mo_result_t *result, mo_failure_t *failure);

/* Hands back another Deferred to wait on, taking the caller's reference to
 * it: when this callback returns, the current outcome is dropped and the
 * chain pauses until `d` fires, then goes on with d's outcome (which d gives
 * up: d's own later callbacks see NULL). If d has already settled (fired,
 * not waiting, not running its callbacks), its outcome is taken at once.
 * mo_deferred_cancel() on the waiting Deferred cancels d. A later
 * mo_result_set*() or mo_result_fail() in the same callback cancels the
 * wait. The wait does not keep d alive: whoever will fire d holds its own
 * reference; if d is freed unfired, the waiting Deferred never resumes (and
 * is freed with its last reference). Errors, after which the reference is
 * released and the outcome is unchanged: MO_EINVAL (NULL result or d, d is
 * the Deferred whose chain runs, or d belongs to another loop), MO_ENOMEM
 * (no room in d for the link that resumes us). Waiting in a cycle (a waits
 * on b, b on a) never fires: the caller's error. */
MO_EXTERN int mo_result_wait(mo_result_t *result, mo_deferred_t *d);

/* ------------------------------------------------------------------------
 * Deferreds
 * ------------------------------------------------------------------------ */

/* Creates an unfired Deferred on `loop` and stores it in *dp, with one
 * reference for the caller. `canceller` (may be NULL) is called by
 * mo_deferred_cancel() with canceller_arg. One allocation, which also holds
 * the first few callback pairs. Errors: MO_EINVAL (NULL loop or dp),
 * MO_ENOMEM. Loop thread. */
MO_EXTERN int mo_deferred_new(mo_loop_t *loop, mo_canceller_fn canceller, void *canceller_arg,
                              mo_deferred_t **dp);

/* Adds a reference and returns d (NULL gives NULL). Loop thread. */
MO_EXTERN mo_deferred_t *mo_deferred_ref(mo_deferred_t *d);

/* Drops a reference. The last one frees d: an unfired Deferred's callbacks
 * never run (their args are not touched); a value it holds is destroyed; a
 * failure it holds goes to the loop's error hook. NULL is ignored.
 * Loop thread. */
MO_EXTERN void mo_deferred_unref(mo_deferred_t *d);

/* The loop d belongs to; NULL for NULL. Loop thread. */
MO_EXTERN mo_loop_t *mo_deferred_loop(const mo_deferred_t *d);

/* Fires d with `value` (owned by d from now on) and runs its callbacks
 * before returning. Errors, after which value has been destroyed with dtor:
 * MO_EINVAL (NULL d), MO_ECANCELED (mo_deferred_cancel() was called
 * before d fired, and d has fired since: the producer lost the race, not a
 * bug), MO_EALREADY (d has already fired otherwise). Loop thread. */
MO_EXTERN int mo_deferred_callback(mo_deferred_t *d, void *value, mo_dtor_fn dtor);

/* Fires d with `failure`, taking the caller's reference, and runs its
 * errbacks. Errors, after which the failure has been released: MO_EINVAL
 * (NULL d or failure), MO_ECANCELED, MO_EALREADY (as mo_deferred_callback).
 * Loop thread. */
MO_EXTERN int mo_deferred_errback(mo_deferred_t *d, mo_failure_t *failure);

/* mo_deferred_errback() with mo_failure_new(code, origin, fmt, ...).
 * Errors: MO_EINVAL (NULL d, code 0), MO_ECANCELED, MO_EALREADY. Out of
 * memory fires d with the shared MO_ENOMEM failure and returns 0.
 * Loop thread. */
MO_EXTERN int mo_deferred_fail(mo_deferred_t *d, int code, const char *origin, const char *fmt, ...)
    MO_PRINTF(4, 5);

/* Appends a callback pair: cb runs if the outcome reaching this pair is a
 * value, eb if it is a failure; each gets `arg`. Either may be NULL (that
 * path passes the outcome through), not both. A pair never sees the other
 * half's outcome: if cb fails, eb of the same pair does not run. If d has
 * fired and its chain is not running or waiting, the pair runs before this
 * returns; if the chain is running, the running loop runs it in turn.
 * Errors (nothing was added, nothing runs): MO_EINVAL (NULL d, both
 * NULL), MO_ENOMEM (pairs beyond the inline ones could not be stored).
 * Loop thread. */
MO_EXTERN int mo_deferred_add_callbacks(mo_deferred_t *d, mo_deferred_fn cb, mo_deferred_fn eb,
                                        void *arg);

/* add_callbacks(d, cb, NULL, arg); MO_EINVAL for NULL cb. */
MO_EXTERN int mo_deferred_add_callback(mo_deferred_t *d, mo_deferred_fn cb, void *arg);

/* add_callbacks(d, NULL, eb, arg); MO_EINVAL for NULL eb. */
MO_EXTERN int mo_deferred_add_errback(mo_deferred_t *d, mo_deferred_fn eb, void *arg);

/* add_callbacks(d, fn, fn, arg): runs on either path (finally). */
MO_EXTERN int mo_deferred_add_both(mo_deferred_t *d, mo_deferred_fn fn, void *arg);

/* Twisted's chainDeferred: appends a pair to d that fires `other` with d's
 * outcome at that point, moving it (d's next pairs then see a NULL value:
 * the failure, if any, counts as handled by other). d holds a reference to
 * other until then; the caller keeps its own references. If other has
 * fired by the time the pair runs, d's outcome becomes an MO_EALREADY
 * failure, as in Twisted. Cancelling other does not cancel d. Errors
 * (nothing added): MO_EINVAL (NULL d or other, d == other, other on another
 * loop), MO_EALREADY (other has already fired), MO_ENOMEM. Loop thread. */
MO_EXTERN int mo_deferred_chain(mo_deferred_t *d, mo_deferred_t *other);

/* Cancels d. If d has not fired: calls its canceller, then, if d has still
 * not fired, errbacks it with an MO_ECANCELED failure; a later
 * mo_deferred_callback()/errback() by the producer returns MO_ECANCELED.
 * If d is waiting on a Deferred a callback handed back, cancels that one
 * instead (its failure then flows into d). Returns 0 when it did that,
 * MO_EALREADY when d has fired and waits on nothing (nothing happens), or
 * MO_EINVAL for NULL. Loop thread. */
MO_EXTERN int mo_deferred_cancel(mo_deferred_t *d);

/* 1 if d has fired (by callback, errback or cancel), even if it now waits
 * on another Deferred; 0 if not, and 0 for NULL. Loop thread. */
MO_EXTERN int mo_deferred_fired(const mo_deferred_t *d);

/* Reads a settled Deferred's outcome without a callback: stores the value
 * (borrowed, owned by d) in *valuep and the failure (borrowed) in *failurep
 * — exactly one is meaningful, the other is NULL; either pointer may be
 * NULL. Settled means fired, not waiting on another Deferred, and not
 * running its callbacks. Reading does not count as handling a failure (see
 * mo_deferred_take). Errors: MO_EINVAL (NULL d), MO_EAGAIN (not settled).
 * Loop thread. */
MO_EXTERN int mo_deferred_result(const mo_deferred_t *d, void **valuep,
                                 const mo_failure_t **failurep);

/* Like mo_deferred_result(), but takes the outcome: the value and its
 * destructor (stored in *dtorp) or the failure's reference pass to the
 * caller, and d's outcome becomes NULL, so a failure taken is handled.
 * valuep, dtorp and failurep must not be NULL. Errors: MO_EINVAL (a NULL
 * argument), MO_EAGAIN (not settled). Loop thread. */
MO_EXTERN int mo_deferred_take(mo_deferred_t *d, void **valuep, mo_dtor_fn *dtorp,
                               mo_failure_t **failurep);

/* Creates a Deferred that has already succeeded with `value` (taken in
 * every case, as by mo_deferred_callback): Twisted's succeed(). Errors:
 * MO_EINVAL (NULL loop or dp), MO_ENOMEM. Loop thread. */
MO_EXTERN int mo_deferred_new_succeeded(mo_loop_t *loop, void *value, mo_dtor_fn dtor,
                                        mo_deferred_t **dp);

/* Creates a Deferred that has already failed with `failure` (its reference
 * taken in every case): Twisted's fail(). Errors: MO_EINVAL (NULL loop,
 * failure or dp), MO_ENOMEM. Loop thread. */
MO_EXTERN int mo_deferred_new_failed(mo_loop_t *loop, mo_failure_t *failure, mo_deferred_t **dp);

/* Calls fn `delay` ns from now and gives its outcome as a Deferred
 * (Twisted's deferLater): the Deferred runs fn(result, arg) as its first
 * callback, with a NULL value as the outcome; fn sets the value, fails, or
 * waits on another Deferred as any callback does. Cancelling it before
 * then cancels the delayed call and errbacks with MO_ECANCELED; fn never
 * runs. The delayed call holds a reference to the Deferred until it runs
 * (free the loop only after it did). Errors: MO_EINVAL (NULL loop, fn or
 * dp, delay < 0), MO_ERANGE, MO_ENOMEM. Loop thread. */
MO_EXTERN int mo_deferred_call_later(mo_loop_t *loop, int64_t delay, mo_deferred_fn fn, void *arg,
                                     mo_deferred_t **dp);

/* ------------------------------------------------------------------------
 * Deferred lists (Twisted's DeferredList)
 * ------------------------------------------------------------------------ */

enum mo_deferred_list_flags {
    /* Fire with the first member's value (its index in the result). */
    MO_DLIST_FIRE_ON_ONE_CALLBACK = 1,
    /* Errback on the first member's failure; the list's failure has that
     * failure's code and message, its origin prefixed "mo_deferred_list",
     * and mo_deferred_list_error_index() tells the member. */
    MO_DLIST_FIRE_ON_ONE_ERRBACK = 2,
    /* Members' failures count as handled: never reported unhandled. */
    MO_DLIST_CONSUME_ERRORS = 4
};

/* One member's outcome in a list's result. */
struct mo_outcome {
    void *value;           /* owned by the list's result; NULL on failure */
    mo_dtor_fn dtor;       /* the value's destructor, or NULL */
    mo_failure_t *failure; /* a reference owned by the list's result, or NULL */
};

/* The value a list fires with, owned by the list Deferred (take values out
 * by copying them and setting value and dtor to NULL). items[i] is member
 * i's outcome, in input order. With MO_DLIST_FIRE_ON_ONE_CALLBACK, index
 * is the member whose value fired the list: items[index] holds it, and the
 * items of members that failed before it hold their failures (if every
 * member failed, index is count and all are filled); otherwise index is
 * count. A member that fires after the list has fired keeps its own
 * outcome. */
struct mo_deferred_list_result {
    size_t index;
    size_t count;
    struct mo_outcome items[];
};

/* Creates a Deferred that fires when the members have: with flags 0, with
 * every member's outcome once all have fired (a failing member does not
 * fail the list). The list takes each member's value as the member fires
 * (the member's next callbacks see NULL) and shares its failure (the member
 * keeps it too, and it counts as unhandled there unless
 * MO_DLIST_CONSUME_ERRORS). The list does not take the caller's references
 * to the members, nor keep members alive: a member nobody can fire any
 * more never fires. Cancelling the list cancels every unfired member. An
 * empty list fires at once, in every mode (Twisted's fireOnOneCallback
 * list never would). ds may be NULL if n is 0. Errors (no callback was
 * added to any member): MO_EINVAL (NULL loop or dp, NULL ds with n > 0, a
 * NULL member or one of another loop, unknown flags), MO_ENOMEM.
 * Loop thread. */
MO_EXTERN int mo_deferred_list(mo_loop_t *loop, mo_deferred_t *const *ds, size_t n, unsigned flags,
                               mo_deferred_t **dp);

/* For a failure a list errbacked with under MO_DLIST_FIRE_ON_ONE_ERRBACK,
 * stores the failing member's index in *indexp. Errors: MO_EINVAL (NULL
 * argument, or f is not such a failure). Any thread. */
MO_EXTERN int mo_deferred_list_error_index(const mo_failure_t *f, size_t *indexp);

/* ------------------------------------------------------------------------
 * Deprecated names, kept for one release (CHANGELOG.md)
 * ------------------------------------------------------------------------ */

MO_EXTERN int mo_defer_succeed(mo_loop_t *loop, void *value, mo_dtor_fn dtor, mo_deferred_t **dp)
    MO_DEPRECATED("renamed mo_deferred_new_succeeded()");
MO_EXTERN int mo_defer_fail(mo_loop_t *loop, mo_failure_t *failure, mo_deferred_t **dp)
    MO_DEPRECATED("renamed mo_deferred_new_failed()");
MO_EXTERN int mo_defer_later(mo_loop_t *loop, int64_t delay, mo_deferred_fn fn, void *arg,
                             mo_deferred_t **dp) MO_DEPRECATED("renamed mo_deferred_call_later()");

#ifdef __cplusplus
}
#endif
#endif /* MORSEL_DEFERRED_H */
