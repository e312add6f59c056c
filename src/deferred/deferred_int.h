/* The deferred layer's internals, shared by deferred.c, deferred_list.c
 * and failure.c (and the layers above): Deferreds, Deferred lists, failures.
 * Uses core only. */
#ifndef MORSEL_DEFERRED_INT_H
#define MORSEL_DEFERRED_INT_H

#include "core/core_int.h"
#include "morsel/deferred.h"

/* ---- failures (failure.c) ---- */
struct mo_failure {
    atomic_uint refs;
    int code;
    bool immortal;  /* the shared out-of-memory failure: never counted */
    bool has_index; /* a Deferred list's first error: `index` is the member */
    size_t index;
    const char *origin;  /* into data[], or static for the immortal one */
    const char *message; /* into data[], or static */
    char data[];
};

/* A copy of f (f itself is not consumed) with origin "context: ..." that
 * remembers a list member's index; out of memory gives a new reference to
 * f, without the index (or, if f has an index of its own, the shared
 * MO_ENOMEM failure). */
mo_failure_t *mo__failure_with_index(mo_failure_t *f, const char *context, size_t index);

/* ---- Deferreds (deferred.c) ----
 *
 * Invariants:
 * - The pending callback pairs are links()[head, len); cap is the array's
 *   size, MO__INLINE_LINKS while they fit inline.
 * - `fired` never goes back to 0. Exactly one of value/failure is
 *   meaningful once fired (failure != NULL means failure); `res.wait` is
 *   non-NULL only while a callback that called mo_result_wait() runs.
 * - `paused` iff a callback handed back an unsettled Deferred: the outcome
 *   is then empty, and that inner Deferred holds a RESUME link (with a
 *   reference to us) until it fires or is freed; `waiting` points to it
 *   (weakly: cleared when it is freed) .
 * - `on_stack` iff the Deferred is on a run stack (linked through `below`,
 *   which holds a reference); a Deferred is on at most one stack. Only the
 *   loop that owns a stack runs its links, so links added meanwhile are
 *   run by that loop, never recursively.
 * - A link is a user's callback pair, or an internal link whose arg is a
 *   Deferred (or list entry) it holds a reference to. mo__link_kind() tells
 *   which from an explicit kind field, never from a function's address
 *   (the kinds used to be the addresses of three empty sentinel functions,
 *   which identical-code folding may merge into one, or into a user's).
 */
#define MO__INLINE_LINKS 3

enum mo__link_kind {
    MO__LINK_USER,   /* cb/eb(result, arg), as added by mo_deferred_add_callbacks() */
    MO__LINK_RESUME, /* arg: the outer Deferred waiting on this one (mo_result_wait) */
    MO__LINK_CHAIN,  /* arg: the Deferred this one fires (mo_deferred_chain) */
    MO__LINK_LIST    /* arg: this member's entry in a Deferred list */
};

/* Three words, so that three links fit inline in a Deferred of 176 bytes.
 * An internal link has cb NULL and its kind where a pair has its errback. A
 * pair never has both functions NULL (MO_EINVAL), so one with cb NULL has
 * an errback, which is no small integer: it reads as MO__LINK_USER. */
struct mo__link {
    mo_deferred_fn cb;
    union {
        mo_deferred_fn eb; /* MO__LINK_USER */
        uintptr_t kind;    /* an internal link's enum mo__link_kind (cb NULL) */
    } u;
    void *arg;
};

static inline enum mo__link_kind mo__link_kind(const struct mo__link *l)
{
    return l->cb || l->u.kind > MO__LINK_LIST ? MO__LINK_USER : (enum mo__link_kind)l->u.kind;
}

struct mo_result {
    void *value;
    mo_dtor_fn dtor;
    mo_failure_t *failure;
    mo_deferred_t *wait;
};

struct mo_deferred {
    mo_loop_t *loop;
    uint32_t refs;
    uint32_t scratch; /* mo_deferred_list(): reservations per member */
    uint32_t head, len, cap;
    uint8_t fired, cancelled, paused, on_stack, is_list;
    uint8_t quiet; /* an MO_ECANCELED failure left unhandled is not reported */
    struct mo_result res;
    mo_canceller_fn canceller;
    void *canceller_arg;
    mo_deferred_t *waiting; /* weak: the Deferred we wait on */
    mo_deferred_t *below;   /* run stack, or the list of Deferreds to free */
    union {
        struct mo__link inl[MO__INLINE_LINKS];
        struct mo__link *heap;
    } u;
};

/* Creates a Deferred with `extra` bytes after it (for a list's state). */
int mo__deferred_alloc(mo_loop_t *loop, size_t extra, mo_deferred_t **dp);
/* Makes room for n more links without allocating later. */
int mo__deferred_reserve(mo_deferred_t *d, uint32_t n);
/* Appends a link; runs the chain if d is settled. MO_ENOMEM possible if
 * nothing was reserved. */
int mo__deferred_add(mo_deferred_t *d, const struct mo__link *link);
/* Moves d's outcome into `to` (empty), leaving d a NULL value. */
void mo__result_move(struct mo_result *to, struct mo_result *from);
/* Runs d's chain now unless d is unfired, paused, or already being run. */
void mo__deferred_run(mo_deferred_t *d);
/* Fires d (unfired, not on a stack) with `res` and runs the chain. */
void mo__deferred_fire(mo_deferred_t *d, struct mo_result res);
/* mo_deferred_errback() for a stop that nobody may be watching (a task
 * stopped; DESIGN rule 20): an MO_ECANCELED failure that ends d's chain
 * unhandled is then not reported. Any other failure a callback puts in its
 * place still is. */
int mo__deferred_errback_quiet(mo_deferred_t *d, mo_failure_t *failure);

/* ---- Deferred lists (deferred_list.c) ---- */
/* The LIST link of a member fired: settles the entry and returns the list
 * Deferred to push on the run stack if it fired it (with the link's
 * reference), else NULL (the reference is released by the caller's rules:
 * *release set to the Deferred to unref). */
mo_deferred_t *mo__dlist_member_fired(mo_deferred_t *member, void *entry, mo_deferred_t **release);
/* A member was freed with its LIST link unrun: forget it. Returns the list
 * Deferred whose reference the link held. */
mo_deferred_t *mo__dlist_member_dropped(void *entry);
/* Frees what a list Deferred owns besides the Deferred itself. */
void mo__dlist_fini(mo_deferred_t *list);

#endif
