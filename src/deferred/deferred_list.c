/* Deferred lists (Twisted's DeferredList): one list Deferred waiting on
 * many members. The list's state lives in the same allocation, after the
 * Deferred. Each member gets a LIST link holding a reference to the list;
 * the list points to its members weakly (entry.member, cleared when the
 * member's link runs or the member is freed), only to cancel them. */
#include "deferred/deferred_int.h"

#include <string.h>

struct dlist_entry {
    mo_deferred_t *list;
    mo_deferred_t *member; /* weak; NULL once settled or freed */
    size_t index;
};

struct dlist {
    unsigned flags;
    size_t n;
    size_t remaining;                       /* members not yet settled */
    struct mo_deferred_list_result *result; /* owned here until the list fires */
    struct dlist_entry entries[];
};

#define MO__DLIST_FLAGS                                                                            \
    (MO_DLIST_FIRE_ON_ONE_CALLBACK | MO_DLIST_FIRE_ON_ONE_ERRBACK | MO_DLIST_CONSUME_ERRORS)

static inline struct dlist *state(mo_deferred_t *list)
{
    return (struct dlist *)(list + 1);
}

static void list_result_free(void *p)
{
    struct mo_deferred_list_result *r = p;
    for (size_t i = 0; i < r->count; i++) {
        if (r->items[i].dtor) r->items[i].dtor(r->items[i].value);
        mo_failure_unref(r->items[i].failure);
    }
    mo__free(r);
}

void mo__dlist_fini(mo_deferred_t *list)
{
    struct dlist *st = state(list);
    if (st->result) list_result_free(st->result);
    st->result = NULL;
}

/* Marks the list fired with `res` without running it: the caller pushes it
 * on its run stack (or runs it). */
static mo_deferred_t *fire_list(mo_deferred_t *list, struct mo_result res)
{
    list->fired = 1;
    list->res = res;
    return list;
}

static mo_deferred_t *fire_with_result(mo_deferred_t *list, struct dlist *st)
{
    struct mo_result res = {.value = st->result, .dtor = list_result_free};
    st->result = NULL;
    return fire_list(list, res);
}

/* Records member i's outcome `mr` (taking its value); returns the list if
 * that fired it. */
static mo_deferred_t *settle(mo_deferred_t *list, size_t i, struct mo_result *mr)
{
    struct dlist *st = state(list);
    struct mo_outcome *o = &st->result->items[i];
    if (mr->failure) {
        if (st->flags & MO_DLIST_FIRE_ON_ONE_ERRBACK) {
            mo_failure_t *f = mo__failure_with_index(mr->failure, "mo_deferred_list", i);
            return fire_list(list, (struct mo_result){.failure = f});
        }
        o->failure = mo_failure_ref(mr->failure);
    } else {
        o->value = mr->value;
        o->dtor = mr->dtor;
        mr->value = NULL;
        mr->dtor = NULL;
        if (st->flags & MO_DLIST_FIRE_ON_ONE_CALLBACK) {
            st->result->index = i;
            return fire_with_result(list, st);
        }
    }
    if (--st->remaining == 0) return fire_with_result(list, st);
    return NULL;
}

mo_deferred_t *mo__dlist_member_fired(mo_deferred_t *member, void *entry, mo_deferred_t **release)
{
    struct dlist_entry *e = entry;
    mo_deferred_t *list = e->list;
    mo_deferred_t *next = NULL;
    e->member = NULL;
    if (!list->fired) next = settle(list, e->index, &member->res);
    if (member->res.failure && (state(list)->flags & MO_DLIST_CONSUME_ERRORS)) {
        mo_failure_unref(member->res.failure);
        member->res.failure = NULL;
    }
    if (!next) *release = list; /* else the link's reference goes to the run stack */
    return next;
}

mo_deferred_t *mo__dlist_member_dropped(void *entry)
{
    struct dlist_entry *e = entry;
    e->member = NULL;
    return e->list;
}

static void list_cancel(mo_deferred_t *list, void *arg)
{
    (void)arg;
    struct dlist *st = state(list);
    for (size_t i = 0; i < st->n; i++) {
        mo_deferred_t *m = st->entries[i].member;
        if (!m) continue;
        mo_deferred_ref(m);
        mo_deferred_cancel(m);
        mo_deferred_unref(m);
    }
}

static int check_args(mo_loop_t *loop, mo_deferred_t *const *ds, size_t n, unsigned flags,
                      mo_deferred_t **dp)
{
    if (!loop || !dp || (!ds && n) || (flags & ~(unsigned)MO__DLIST_FLAGS)) return MO_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!ds[i] || ds[i]->loop != loop) return MO_EINVAL;
    if (n > (SIZE_MAX - sizeof(struct dlist)) / sizeof(struct mo_outcome) / 2) return MO_ENOMEM;
    return 0;
}

/* Makes room in every member for its LIST links (a member may be listed
 * more than once), so that adding them cannot fail half-way. */
static int reserve_members(mo_deferred_t *const *ds, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) ds[i]->scratch = 0;
    for (size_t i = 0; i < n; i++) ds[i]->scratch++;
    for (size_t i = 0; i < n; i++) {
        if (ds[i]->scratch && !rc) rc = mo__deferred_reserve(ds[i], ds[i]->scratch);
        ds[i]->scratch = 0;
    }
    return rc;
}

static int list_alloc(mo_loop_t *loop, size_t n, unsigned flags, mo_deferred_t **dp)
{
    struct mo_deferred_list_result *r = mo__calloc(1, sizeof(*r) + n * sizeof(r->items[0]));
    if (!r) return MO_ENOMEM;
    mo_deferred_t *list;
    if (mo__deferred_alloc(loop, sizeof(struct dlist) + n * sizeof(struct dlist_entry), &list)) {
        mo__free(r);
        return MO_ENOMEM;
    }
    struct dlist *st = state(list);
    *st = (struct dlist){.flags = flags, .n = n, .remaining = n, .result = r};
    r->count = n;
    r->index = n;
    list->is_list = 1;
    list->canceller = list_cancel;
    *dp = list;
    return 0;
}

/* Adds member i's link. If a member's own callbacks, run meanwhile, used
 * the room reserved for it, the member counts as failed with MO_ENOMEM. */
static void add_member(mo_deferred_t *list, mo_deferred_t *m, size_t i)
{
    struct dlist_entry *e = &state(list)->entries[i];
    *e = (struct dlist_entry){.list = list, .member = m, .index = i};
    list->refs++;
    if (mo__deferred_add(m, &(struct mo__link){.u.kind = MO__LINK_LIST, .arg = e}) == 0) return;
    list->refs--;
    e->member = NULL;
    if (list->fired) return;
    struct mo_result r = {.failure = mo_failure_new(MO_ENOMEM, "mo_deferred_list", NULL)};
    if (settle(list, i, &r)) mo__deferred_run(list);
    mo_failure_unref(r.failure);
}

int mo_deferred_list(mo_loop_t *loop, mo_deferred_t *const *ds, size_t n, unsigned flags,
                     mo_deferred_t **dp)
{
    int rc = check_args(loop, ds, n, flags, dp);
    if (rc) return rc;
    mo_deferred_t *list;
    if ((rc = list_alloc(loop, n, flags, &list))) return rc;
    if ((rc = reserve_members(ds, n))) {
        mo_deferred_unref(list);
        return rc;
    }
    if (n == 0) fire_with_result(list, state(list));
    for (size_t i = 0; i < n; i++) add_member(list, ds[i], i);
    *dp = list;
    return 0;
}
