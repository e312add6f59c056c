/* Hooks through which the layers above core attach their per-loop state
 * (the cooperator, the default pool, the watchdog, the error hook, ...),
 * so that the loop can close and free them without naming them.
 *
 * A loop has MO__LOOP_SLOTS slots, filled from the bottom in attachment
 * order; an empty slot has NULL hooks and only the slots above the last
 * used one are empty. Lookups are a scan of a handful of slots: they are
 * made when a layer first touches a loop, not per call.
 */
#include "core_int.h"

int mo__loop_attach(mo_loop_t *loop, const struct mo__hooks *hooks, void *state)
{
    for (unsigned i = 0; i < MO__LOOP_SLOTS; i++) {
        struct mo__slot *s = &loop->slots[i];
        if (s->hooks == hooks) return MO_EBUSY;
        if (s->hooks) continue;
        *s = (struct mo__slot){hooks, state};
        return 0;
    }
    return MO_ENOMEM;
}

void *mo__loop_state(const mo_loop_t *loop, const struct mo__hooks *hooks)
{
    for (unsigned i = 0; i < MO__LOOP_SLOTS && loop->slots[i].hooks; i++)
        if (loop->slots[i].hooks == hooks) return loop->slots[i].state;
    return NULL;
}

void *mo__loop_detach(mo_loop_t *loop, const struct mo__hooks *hooks)
{
    for (unsigned i = 0; i < MO__LOOP_SLOTS && loop->slots[i].hooks; i++) {
        if (loop->slots[i].hooks != hooks) continue;
        void *state = loop->slots[i].state;
        /* Keep the used slots packed, in attachment order. */
        for (; i + 1 < MO__LOOP_SLOTS; i++) loop->slots[i] = loop->slots[i + 1];
        loop->slots[MO__LOOP_SLOTS - 1] = (struct mo__slot){NULL, NULL};
        return state;
    }
    return NULL;
}

/* The slot whose hook runs next: the highest layer first (an upper layer
 * may still use the ones below while it closes), the latest attached first
 * within a layer; NULL when every hook in `done` has run. The hooks may
 * attach or detach state themselves (a close hook that frees its state
 * detaches it), so each choice re-reads the slots. */
static struct mo__slot *next_slot(mo_loop_t *loop, const struct mo__hooks **done, unsigned ndone)
{
    struct mo__slot *best = NULL;
    for (unsigned i = 0; i < MO__LOOP_SLOTS && loop->slots[i].hooks; i++) {
        struct mo__slot *s = &loop->slots[i];
        bool seen = false;
        for (unsigned k = 0; k < ndone; k++) seen = seen || done[k] == s->hooks;
        if (!seen && (!best || s->hooks->layer >= best->hooks->layer)) best = s;
    }
    return best;
}

static void run_hooks(mo_loop_t *loop, bool closing)
{
    const struct mo__hooks *done[MO__LOOP_SLOTS];
    unsigned ndone = 0;
    struct mo__slot *s;
    while (ndone < MO__LOOP_SLOTS && (s = next_slot(loop, done, ndone)) != NULL) {
        const struct mo__hooks *h = s->hooks;
        done[ndone++] = h;
        void (*fn)(mo_loop_t *, void *) = closing ? h->close : h->free;
        if (fn) fn(loop, s->state);
        /* A freed state is gone: no later hook may find it. */
        if (!closing) mo__loop_detach(loop, h);
    }
}

void mo__loop_hooks_close(mo_loop_t *loop)
{
    run_hooks(loop, true);
}

void mo__loop_hooks_free(mo_loop_t *loop)
{
    run_hooks(loop, false);
}
