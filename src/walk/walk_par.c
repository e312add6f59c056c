/* The parallel walk (DESIGN rule 17): directories are opened and read on
 * the worker pool, several at once; the loop thread visits the listings,
 * one at a time, and hands the subdirectories left in them to new jobs.
 *
 * A job reads a few sibling directories (up to the walk's batch, fewer when
 * few are pending, so that every worker gets some): a worker opens each
 * relative to their parent's descriptor, reads its listing (whole, or with
 * MO_WALK_PIECES up to the job's PAR_PIECE bytes, the rest in later rounds
 * of the same job) into the job's buffer with getdents64 and types the
 * names (listing.c); its completion queues the job for visit() on the loop
 * thread, one directory per unit of work. Batching siblings makes the
 * pool's hand-offs (a queue lock, a wake-up, a completion) cost per few
 * directories rather than per directory. A worker touches only its job,
 * and reads (never writes) the nodes it holds.
 *
 * A directory whose listing has subdirectories gets a node, which keeps
 * what their jobs need: its descriptor, its path, the names of the
 * subdirectories not handed out yet, and its parent (to re-open it by its
 * names if its descriptor was evicted).
 *
 * Invariants (all on the loop thread):
 * - A node's refs count its child nodes, the jobs whose parent it is, and
 *   one while it is active (a job still reads it, or names are pending).
 *   At 0 the node is freed and drops its parent.
 * - A node's fd is open while it is active, or used by a job (`users`: a
 *   job opens relative to it, directly or at the start of a chain), or it
 *   is the top's (kept until the top node is freed, so that a chain can
 *   usually start somewhere; else it starts from the working directory with
 *   the top's path). Open node fds are linked in `fds`, oldest first; there
 *   are at most max_fds unless all others are in use. A node may have no
 *   fd from the start (none was left for it): its id is then known.
 * - A node's id and parent never change once it is made if it is `known`
 *   (MO_WALK_FOLLOW, MO_WALK_XDEV): workers read the ids of their job's
 *   ancestors to find loops.
 * - The nodes with pending names are on `stack`, newest on top. Jobs are
 *   handed out from the top: depth first, so few nodes are active at once.
 * - A job is FREE, QUEUED (with the pool: a worker may own it, and the loop
 *   thread touches none of its fields but `discard` and the pool's), READY
 *   (read: in the ready list, its directories being visited), or PARKED
 *   (the process ran out of descriptors: it waits for another job to be
 *   over). `inflight` counts the jobs not FREE, at most max_inflight unless
 *   that was lowered; `running` the QUEUED ones. A job's entries are the
 *   directories it has not finished: each NEW (not opened yet) or OPEN
 *   (more to read, MO_WALK_PIECES).
 */
#include "walk/walk_int.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#define PAR_BUF ((size_t)64 * 1024) /* bytes per getdents64 call */
/* MO_WALK_PIECES: bytes of records per job round, read in one getdents64
 * call for a large directory: about 0.3 ms of a worker's CPU, so that a
 * round does not hold a CPU the loop thread may need for long (woken by
 * a timer, the loop thread often waits for the worker's CPU). */
#define PAR_PIECE ((size_t)32 * 1024)
#define PAR_KEEP  ((size_t)512 * 1024) /* a job keeps buffers up to this size */
#define PAR_BATCH 16                   /* directories per job at most */

struct pnode {
    struct pnode *parent; /* one reference */
    struct pnode *fd_prev, *fd_next;
    uint32_t refs, users;
    int fd;
    bool active, on_stack, root, reading;
    bool known;            /* id was recorded when the node was made */
    struct mo__walk_id id; /* else recorded when the fd is evicted */
    size_t depth;
    char *path; /* while active */
    char *subs; /* pending subdirectory names, NUL-separated */
    size_t subs_len, subs_cap, subs_next, npending;
    size_t namelen;
    char name[]; /* its name in its parent (the top's: its path) */
};

/* Where one directory of a job is. */
enum ent_state {
    ENT_NEW,    /* not opened yet */
    ENT_OPEN,   /* open, with more of its listing to read (MO_WALK_PIECES) */
    ENT_READ,   /* read to the end, or its read failed: visited, then released */
    ENT_FAILED, /* not opened (or a loop): only its error is reported */
    ENT_SKIPPED /* on another file system (MO_WALK_XDEV): not entered */
};

/* One directory of a job. */
struct pent {
    size_t pathoff, pathlen, nameoff; /* in the job's paths; name at pathoff + nameoff */
    size_t first, n;                  /* its names in this round: names[first, first + n) */
    size_t marked;                    /* names marked with an error among them */
    size_t depth;
    int fd, node_fd, err;
    uint8_t state; /* enum ent_state */
    bool in_round; /* read (or failed) in this round: to visit */
    bool known;    /* id is recorded */
    struct mo__walk_id id;
    struct pnode *node; /* the loop thread's, once it has one */
};

enum job_state { JOB_FREE, JOB_QUEUED, JOB_READY, JOB_PARKED };

struct pjob {
    mo_pool_job_t pj;
    struct mo__walk *w;
    struct pjob *next; /* the free, ready or parked list */
    uint8_t state;     /* enum job_state */
    bool discard;      /* the walk stopped while a worker had it */
    unsigned flags;    /* the walk's */
    int oflags;
    /* Set by the loop thread before submitting. */
    dev_t top_dev;
    struct pnode *parent; /* NULL for the top (one reference) */
    struct pnode *base;   /* the node base_fd belongs to (one use), or NULL */
    int base_fd;
    char *chain; /* "/"-separated names from base down to the evicted parent */
    size_t chain_len, chain_cap;
    struct mo__walk_id pid; /* the evicted parent's */
    char *paths;            /* the entries' paths, NUL-terminated */
    size_t plen, pcap;
    struct pent ent[PAR_BATCH];
    size_t nent, vis; /* entries; the next one to visit */
    /* Filled by the worker. */
    struct mo__walk_list list;
    size_t ran;         /* entries read (or failed) in this round */
    bool starved;       /* out of descriptors: entries left NEW for a later round */
    uint64_t closed_at; /* the walk's `closed` when the job was submitted */
};

_Static_assert(sizeof(uintptr_t) == sizeof(struct pnode *), "the stack is sized in uintptr_t");

struct mo__walk_par {
    mo_pool_t *pool;
    struct pjob *jobs, *free, *ready, *ready_tail, *parked;
    struct pjob *current; /* the job whose entries are being visited */
    size_t njobs, inflight, running, nparked, max_inflight, batch, nthreads;
    struct pnode **stack;
    size_t nstack, stack_cap;
    struct pnode *fds, *fds_tail;
    size_t nfds, max_fds;
    uint64_t closed; /* descriptors the loop thread closed */
    bool started, stopped;
    bool unpark; /* a job was released: a parked one may run */
};

static inline const char *ent_path(const struct pjob *j, const struct pent *e)
{
    return j->paths + e->pathoff;
}

/* ---- on a worker ---- */

/* Opens the parent into *fdp: base_fd, or, if the parent's fd was evicted,
 * the parent re-opened by its names from the base and checked to be the
 * directory it was. Returns 0 or an error. */
static int parent_open(struct pjob *j, int *fdp)
{
    *fdp = j->base_fd;
    if (!j->chain_len) return 0;
    int fd = mo__walk_reopen(j->base_fd, j->chain, j->chain_len, j->oflags, &j->pid);
    if (fd < 0) return fd;
    *fdp = fd;
    return 0;
}

/* Whether the node or one of its ancestors is the directory `id`. */
static bool chain_holds(const struct pnode *n, const struct mo__walk_id *id)
{
    for (; n; n = n->parent)
        if (mo__walk_id_eq(&n->id, id)) return true;
    return false;
}

struct ent_ctx {
    const struct pjob *j;
    const struct pent *e;
};

/* MO_WALK_FOLLOW, for mo__walk_list_parse(): whether a directory is on the
 * path from top to the entry, the entry included (its ancestors' nodes are
 * known: their ids do not change). */
static bool ent_on_path(const void *ctx, const struct mo__walk_id *id)
{
    const struct ent_ctx *c = ctx;
    return mo__walk_id_eq(&c->e->id, id) || chain_holds(c->j->parent, id);
}

/* Ends an entry on an error: one not opened is only reported; one opened
 * is visited with what was read. */
static void ent_fail(struct pent *e, int err)
{
    e->err = err;
    e->state = e->state == ENT_NEW ? ENT_FAILED : ENT_READ;
}

/* Closes an opened entry that is not to be read: ENT_FAILED or ENT_SKIPPED. */
static void ent_drop(struct pent *e, enum ent_state state, int err)
{
    close(e->fd);
    e->fd = -1;
    e->state = (uint8_t)state;
    e->err = err;
}

/* MO_WALK_FOLLOW, MO_WALK_XDEV: records the entry's id; a directory on
 * another file system is skipped, one already on the path is a loop.
 * Returns whether it is to be read. */
static bool ent_check(struct pjob *j, struct pent *e)
{
    if (!(j->flags & (MO_WALK_FOLLOW | MO_WALK_XDEV))) return true;
    int err = mo__walk_id_of(e->fd, &e->id);
    if (err) {
        ent_drop(e, ENT_FAILED, err);
        return false;
    }
    e->known = true;
    if (!e->depth) return true;
    if ((j->flags & MO_WALK_XDEV) && e->id.dev != j->top_dev)
        ent_drop(e, ENT_SKIPPED, 0);
    else if ((j->flags & MO_WALK_FOLLOW) && chain_holds(j->parent, &e->id))
        ent_drop(e, ENT_FAILED, MO_ELOOP);
    return e->state == ENT_OPEN;
}

/* Opens a new entry relative to its parent (pfd, or the error perr met
 * opening the parent). Returns whether it is to be read: not if it failed
 * or is skipped, nor when the process is out of descriptors (then it stays
 * NEW for a later round, and the job is starved). */
static bool ent_open(struct pjob *j, struct pent *e, int pfd, int perr)
{
    int fd = perr ? -1 : openat(pfd, j->paths + e->pathoff + e->nameoff, j->oflags);
    int err = perr ? perr : fd < 0 ? -errno : 0;
    if (mo__walk_starved(err)) {
        j->starved = true;
        return false;
    }
    e->in_round = true;
    if (err) {
        /* A symlink (O_NOFOLLOW: ELOOP) is not a directory to walk. */
        ent_fail(e, err == MO_ELOOP && !(j->flags & MO_WALK_FOLLOW) ? MO_ENOTDIR : err);
        return false;
    }
    e->fd = fd;
    e->state = ENT_OPEN;
    return ent_check(j, e);
}

/* Reads the entry's listing on from list.used: to its end, or, with
 * pieces, until the job's round has PAR_PIECE bytes. */
static void ent_read(struct pjob *j, struct pent *e)
{
    bool pieces = j->flags & MO_WALK_PIECES;
    while (!pieces || j->list.used < PAR_PIECE) {
        long n = mo__walk_list_read(&j->list, e->fd, pieces ? PAR_PIECE : PAR_BUF);
        if (n > 0) continue;
        e->err = (int)n;
        e->state = ENT_READ;
        return;
    }
}

/* Types the records from `from` on as the entry's names. Returns whether
 * they have subdirectories. */
static bool ent_parse(struct pjob *j, struct pent *e, size_t from)
{
    struct ent_ctx ctx = {j, e};
    struct mo__walk_scan scan = {
        .dfd = e->fd, .flags = j->flags, .ancestor = ent_on_path, .ctx = &ctx};
    if (mo__walk_list_parse(&j->list, from, &scan) != 0) ent_fail(e, MO_ENOMEM);
    e->marked = scan.marked;
    return scan.dirs > 0;
}

/* An entry that reads on keeps its fd and gives its node a duplicate. Out
 * of descriptors, the node goes without one: its id is recorded so that
 * its subdirectories' jobs re-open it by its path. */
static void ent_dup_fd(struct pjob *j, struct pent *e)
{
    if ((e->node_fd = fcntl(e->fd, F_DUPFD_CLOEXEC, 0)) >= 0) return;
    int err = -errno;
    if (!mo__walk_starved(err)) {
        ent_fail(e, err);
        return;
    }
    j->starved = true;
    if (!e->known && mo__walk_id_of(e->fd, &e->id) == 0) e->known = true;
}

/* Gives the node a descriptor, once, when the listing has subdirectories:
 * the entry's own at the end of its listing, else a duplicate (it reads
 * on). Without subdirectories the entry's own is closed at the end. */
static void ent_hand_fd(struct pjob *j, struct pent *e, bool dirs)
{
    if (dirs && e->node_fd < 0 && !e->node) {
        if (e->state != ENT_OPEN) {
            e->node_fd = e->fd;
            e->fd = -1;
        } else {
            ent_dup_fd(j, e);
        }
    }
    if (e->state != ENT_OPEN && e->fd >= 0) {
        close(e->fd);
        e->fd = -1;
    }
}

/* Reads and parses one open entry. */
static void ent_work(struct pjob *j, struct pent *e)
{
    e->in_round = true;
    e->first = j->list.count;
    size_t from = j->list.used;
    ent_read(j, e);
    bool dirs = ent_parse(j, e, from);
    e->n = j->list.count - e->first;
    ent_hand_fd(j, e, dirs);
}

static void job_work(mo_pool_job_t *pj, void *arg)
{
    (void)pj;
    struct pjob *j = arg;
    int pfd = -1, perr = 0; /* the parent, opened on first need */
    bool have_pfd = false;
    j->list.used = j->list.count = 0;
    j->ran = 0;
    j->starved = false;
    for (size_t i = 0; i < j->nent; i++) {
        struct pent *e = &j->ent[i];
        e->in_round = false;
        e->n = e->marked = 0;
        if ((j->flags & MO_WALK_PIECES) && j->list.used >= PAR_PIECE) continue; /* next round */
        if (e->state == ENT_NEW) {
            if (j->starved) continue;
            if (!have_pfd) {
                perr = parent_open(j, &pfd);
                have_pfd = true;
            }
            if (!ent_open(j, e, pfd, perr)) continue;
        }
        ent_work(j, e);
    }
    for (size_t i = 0; i < j->nent; i++) j->ran += j->ent[i].in_round;
    if (have_pfd && !perr && pfd != j->base_fd) close(pfd);
}

/* ---- nodes ---- */

static void fds_add(struct mo__walk_par *p, struct pnode *n)
{
    n->fd_prev = p->fds_tail;
    if (p->fds_tail)
        p->fds_tail->fd_next = n;
    else
        p->fds = n;
    p->fds_tail = n;
    p->nfds++;
}

/* Takes the node, whose fd was just closed, off the list of open ones. */
static void fds_remove(struct mo__walk_par *p, struct pnode *n)
{
    if (n->fd_prev)
        n->fd_prev->fd_next = n->fd_next;
    else
        p->fds = n->fd_next;
    if (n->fd_next)
        n->fd_next->fd_prev = n->fd_prev;
    else
        p->fds_tail = n->fd_prev;
    n->fd_prev = n->fd_next = NULL;
    p->nfds--;
}

/* Closes a descriptor on the loop thread, counting it: a job starved of
 * descriptors tries again if any was closed since it ran (job_starved). */
static void par_close(struct mo__walk_par *p, int *fd)
{
    if (*fd < 0) return;
    close(*fd);
    *fd = -1;
    p->closed++;
}

static void node_close(struct mo__walk_par *p, struct pnode *n)
{
    if (n->fd < 0) return;
    par_close(p, &n->fd);
    fds_remove(p, n);
}

/* Closes the node's fd once nothing needs it (see the invariants). */
static void node_maybe_close(struct mo__walk_par *p, struct pnode *n)
{
    if (!n->users && (p->stopped || (!n->active && !n->root))) node_close(p, n);
}

/* Drops a reference; frees the node and, in turn, ancestors left without
 * any (iteratively: trees can be 10,000 deep). */
static void node_unref(struct mo__walk_par *p, struct pnode *n)
{
    while (n && --n->refs == 0) {
        struct pnode *parent = n->parent;
        node_close(p, n);
        mo__free(n->path);
        mo__free(n->subs);
        mo__free(n);
        n = parent;
    }
}

/* Retires a node once no job reads it and its names are all handed out:
 * it keeps only what its descendants' jobs need (name, parent, fd). */
static void node_maybe_retire(struct mo__walk_par *p, struct pnode *n)
{
    if (!n->active || n->reading || n->on_stack) return;
    n->active = false;
    mo__free(n->path);
    mo__free(n->subs);
    n->path = n->subs = NULL;
    n->subs_len = n->subs_cap = n->subs_next = n->npending = 0;
    node_maybe_close(p, n);
    node_unref(p, n);
}

static void node_unuse(struct mo__walk_par *p, struct pnode *n)
{
    if (!n) return;
    n->users--;
    node_maybe_close(p, n);
}

/* Past max_fds, closes the oldest fds nothing uses, after recording which
 * directories they were (unless that is known already: workers may be
 * reading it). */
static void fds_evict(struct mo__walk_par *p)
{
    struct pnode *next;
    for (struct pnode *n = p->fds; n && p->nfds > p->max_fds; n = next) {
        next = n->fd_next;
        if (n->root || n->users) continue;
        if (n->known || mo__walk_id_of(n->fd, &n->id) == 0) node_close(p, n);
    }
}

/* Makes the node of an entry's directory, with the descriptor the worker
 * handed over (or none, its id known). */
static int node_new(struct mo__walk_par *p, struct pjob *j, struct pent *e)
{
    const char *path = ent_path(j, e);
    size_t namelen = e->pathlen - e->nameoff;
    struct pnode *n = mo__calloc(1, sizeof(*n) + namelen + 1);
    if (n) n->path = mo__malloc(e->pathlen + 1);
    if (!n || !n->path) {
        mo__free(n);
        return MO_ENOMEM;
    }
    memcpy(n->path, path, e->pathlen + 1);
    memcpy(n->name, path + e->nameoff, namelen + 1);
    n->namelen = namelen;
    n->parent = j->parent;
    if (n->parent) n->parent->refs++;
    n->root = !n->parent;
    n->refs = 1; /* active */
    n->active = n->reading = true;
    n->depth = e->depth;
    n->known = e->known;
    n->id = e->id;
    n->fd = e->node_fd;
    e->node_fd = -1;
    e->node = n;
    if (n->fd >= 0) fds_add(p, n);
    fds_evict(p);
    return 0;
}

/* Appends a subdirectory to the node's pending names. */
static int node_add_sub(struct pnode *n, const mo_walk_name *e)
{
    if (mo__walk_grow((void **)&n->subs, &n->subs_cap, n->subs_len + e->len + 1, 1) != 0)
        return MO_ENOMEM;
    memcpy(n->subs + n->subs_len, e->name, e->len + 1);
    n->subs_len += e->len + 1;
    n->npending++;
    return 0;
}

/* Puts a node with pending names on the stack. */
static int node_push(struct mo__walk_par *p, struct pnode *n)
{
    if (n->on_stack || n->subs_next == n->subs_len) return 0;
    if (mo__walk_grow((void **)&p->stack, &p->stack_cap, p->nstack + 1, sizeof(uintptr_t)) != 0)
        return MO_ENOMEM;
    p->stack[p->nstack++] = n;
    n->on_stack = true;
    return 0;
}

/* ---- jobs, on the loop thread ---- */

/* Closes an entry's descriptors; its node goes on without it. */
static void ent_release(struct mo__walk_par *p, struct pent *e)
{
    par_close(p, &e->fd);
    par_close(p, &e->node_fd);
    if (e->node) {
        e->node->reading = false;
        node_maybe_retire(p, e->node);
        e->node = NULL;
    }
}

static void job_drop_base(struct mo__walk_par *p, struct pjob *j)
{
    node_unuse(p, j->base);
    j->base = NULL;
}

/* Gives a job back to the free list with everything it holds; a parked
 * job may run now. Its buffers stay: visit() may be reading the names (a
 * cancel from visit). */
static void job_release(struct mo__walk_par *p, struct pjob *j)
{
    for (size_t i = 0; i < j->nent; i++) ent_release(p, &j->ent[i]);
    j->nent = 0;
    job_drop_base(p, j);
    node_unref(p, j->parent);
    j->parent = NULL;
    j->state = JOB_FREE;
    j->next = p->free;
    p->free = j;
    p->inflight--;
    p->unpark = p->nparked > 0;
}

/* Whether an entry has yet to be opened: the job still needs its parent. */
static bool job_needs_parent(const struct pjob *j)
{
    for (size_t i = 0; i < j->nent; i++)
        if (j->ent[i].state == ENT_NEW) return true;
    return false;
}

/* The pool was freed before a worker took the job: its entries fail. */
static void job_fail_unread(struct pjob *j, int status)
{
    j->list.count = 0;
    for (size_t i = 0; i < j->nent; i++) {
        struct pent *e = &j->ent[i];
        e->in_round = true;
        e->n = e->marked = 0;
        if (e->state == ENT_NEW || e->state == ENT_OPEN) ent_fail(e, status);
    }
}

static void ready_push(struct mo__walk_par *p, struct pjob *j)
{
    j->state = JOB_READY;
    j->vis = 0;
    j->next = NULL;
    if (p->ready_tail)
        p->ready_tail->next = j;
    else
        p->ready = j;
    p->ready_tail = j;
}

/* A job's completion wakes a walk that waits for one. */
static void par_resume(struct mo__walk *w, struct pjob *j)
{
    if (!w->paused) return;
    w->paused = false;
    int err = mo_task_resume(w->task);
    if (err) mo__walk_abort(w, mo__walk_fatal(w, ent_path(j, &j->ent[0]), err));
}

static void job_done(mo_loop_t *loop, mo_pool_job_t *pj, int status, void *arg)
{
    (void)loop;
    (void)pj;
    struct pjob *j = arg;
    struct mo__walk *w = j->w;
    struct mo__walk_par *p = w->par;
    p->running--;
    if (status) job_fail_unread(j, status);
    if (!job_needs_parent(j)) job_drop_base(p, j);
    if (j->discard || w->ended) {
        job_release(p, j);
        mo__walk_maybe_free(w);
        return;
    }
    ready_push(p, j);
    par_resume(w, j);
}

static int job_submit(struct mo__walk_par *p, struct pjob *j)
{
    int err = mo_pool_submit(p->pool, j->w->loop, &j->pj, job_work, job_done, j);
    if (err) return err;
    j->closed_at = p->closed;
    j->state = JOB_QUEUED;
    p->running++;
    return 0;
}

/* Submits a job with entries left; an error stops the walk. */
static int job_resubmit(struct mo__walk *w, struct pjob *j)
{
    int err = job_submit(w->par, j);
    return err ? mo__walk_fatal(w, ent_path(j, &j->ent[0]), err) : MO__WALK_GO;
}

static struct pjob *job_get(struct mo__walk_par *p)
{
    struct pjob *j = p->free;
    p->free = j->next;
    p->inflight++;
    mo__walk_list_reset(&j->list, PAR_KEEP);
    j->next = NULL;
    j->discard = false;
    j->nent = j->vis = j->plen = j->chain_len = 0;
    return j;
}

/* Adds the entry dir joined with name, as os.path.join does. */
static int job_add(struct pjob *j, const char *dir, const char *name, size_t depth)
{
    size_t dlen = strlen(dir), len = strlen(name);
    size_t n = mo__walk_join_len(dir, dlen, len);
    int err = mo__walk_grow((void **)&j->paths, &j->pcap, j->plen + n + 1, 1);
    if (err) return err;
    struct pent *e = &j->ent[j->nent++];
    *e = (struct pent){.pathoff = j->plen,
                       .pathlen = n,
                       .nameoff = n - len,
                       .depth = depth,
                       .fd = -1,
                       .node_fd = -1};
    mo__walk_join(j->paths + j->plen, dir, dlen, name, len);
    j->plen += n + 1;
    return 0;
}

/* The parent's fd was evicted (or it never had one): the job re-opens it
 * from the nearest ancestor with one, through the names in between; from
 * the working directory through the top's path if no ancestor has one
 * (*basep is NULL then). */
static int job_chain(struct pjob *j, struct pnode *parent, struct pnode **basep)
{
    size_t len = 0;
    struct pnode *b = parent;
    for (; b && b->fd < 0; b = b->parent) len += b->namelen + 1;
    int err = mo__walk_grow((void **)&j->chain, &j->chain_cap, len, 1);
    if (err) return err;
    j->chain_len = len - 1;
    for (struct pnode *n = parent; n != b; n = n->parent) {
        len -= n->namelen + 1;
        memcpy(j->chain + len, n->name, n->namelen);
        j->chain[len + n->namelen] = '/';
    }
    j->chain[j->chain_len] = '\0';
    j->pid = parent->id;
    *basep = b;
    return 0;
}

/* Sets where the job opens its parent n from: n's fd, or, if it has
 * none, a chain of names from an ancestor's (job_chain). */
static int job_base(struct pjob *j, struct pnode *n)
{
    struct pnode *base = n;
    j->chain_len = 0;
    int err = n && n->fd < 0 ? job_chain(j, n, &base) : 0;
    if (err) return err;
    j->base = base;
    if (base) base->users++;
    j->base_fd = base ? base->fd : AT_FDCWD;
    return 0;
}

/* Prepares and submits a job for the next pending names of node n: its
 * share of them for one worker, at most the walk's batch. */
static int job_for(struct mo__walk *w, struct pnode *n, struct pjob *j)
{
    struct mo__walk_par *p = w->par;
    size_t k = (n->npending + p->nthreads - 1) / p->nthreads;
    if (k > p->batch) k = p->batch;
    for (size_t i = 0; i < k && n->subs_next < n->subs_len; i++) {
        const char *name = n->subs + n->subs_next;
        int err = job_add(j, n->path, name, n->depth + 1);
        if (err) return err;
        n->subs_next += strlen(name) + 1;
        n->npending--;
    }
    j->parent = n;
    n->refs++;
    int err = job_base(j, n);
    if (err) return err;
    j->top_dev = w->top_dev;
    return job_submit(p, j);
}

/* Pops the nodes whose names are all handed out. */
static struct pnode *stack_top(struct mo__walk_par *p)
{
    while (p->nstack) {
        struct pnode *n = p->stack[p->nstack - 1];
        if (n->subs_next < n->subs_len) return n;
        p->nstack--;
        n->on_stack = false;
        node_maybe_retire(p, n);
    }
    return NULL;
}

/* Parks a job until another is released. It holds no descriptor
 * meanwhile: its parent's may be evicted, and it finds it again when it
 * runs (par_unpark). */
static void job_park(struct mo__walk_par *p, struct pjob *j)
{
    struct pnode *n = j->parent;
    /* A retired node's fd is closed once no job uses it: the job will need
     * to recognise its parent. (Workers read ids only when they are known
     * from the start, so this write races with none.) */
    if (n && n->fd >= 0 && !n->known) n->known = mo__walk_id_of(n->fd, &n->id) == 0;
    job_drop_base(p, j);
    j->state = JOB_PARKED;
    j->next = p->parked;
    p->parked = j;
    p->nparked++;
    fds_evict(p);
}

/* Runs a parked job again, now that another was released. */
static int par_unpark(struct mo__walk *w)
{
    struct mo__walk_par *p = w->par;
    struct pjob *j = p->parked;
    p->unpark = false;
    if (!j) return 0;
    p->parked = j->next;
    p->nparked--;
    int err = job_base(j, j->parent);
    return err ? mo__walk_fatal(w, ent_path(j, &j->ent[0]), err) : job_resubmit(w, j);
}

/* Hands out pending names while jobs are free. Returns 0 or the error that
 * stops the walk. */
static int par_submit(struct mo__walk *w)
{
    struct mo__walk_par *p = w->par;
    int err = p->unpark ? par_unpark(w) : 0;
    struct pnode *n;
    while (!err && p->free && p->inflight < p->max_inflight && (n = stack_top(p)) != NULL) {
        struct pjob *j = job_get(p);
        if ((err = job_for(w, n, j)) != 0) {
            err = mo__walk_fatal(w, n->path, err);
            job_release(p, j);
        }
    }
    return err;
}

static int par_start(struct mo__walk *w)
{
    struct mo__walk_par *p = w->par;
    struct pjob *j = job_get(p);
    p->started = true;
    int err = job_add(j, "", w->path, 0);
    j->base_fd = AT_FDCWD;
    if (!err) err = job_submit(p, j);
    if (err) {
        job_release(p, j);
        return mo__walk_fatal(w, w->path, err);
    }
    return 0;
}

/* Keeps the subdirectories left in the entry's listing names[0, n) for new
 * jobs, in the entry's node (made at the first one). If the worker could
 * neither keep a descriptor nor an id for it (an error it reported), they
 * are skipped. */
static int ent_keep_subdirs(struct mo__walk_par *p, struct pjob *j, struct pent *e, size_t n)
{
    const mo_walk_name *names = j->list.names + e->first;
    for (size_t i = 0; i < n; i++) {
        if (names[i].type != MO_WALK_DIR) continue;
        if (!e->node && e->node_fd < 0 && !e->known) return 0;
        int err = e->node ? 0 : node_new(p, j, e);
        if (!err) err = node_add_sub(e->node, &names[i]);
        if (err) return err;
    }
    return e->node ? node_push(p, e->node) : 0;
}

/* Visits one entry's listing (after reporting its error, if any) and
 * keeps its subdirectories for new jobs. */
static int ent_visit(struct mo__walk *w, struct pjob *j, struct pent *e)
{
    const char *path = ent_path(j, e);
    int err = e->err ? mo__walk_fail(w, path, e->err) : 0;
    e->err = 0;
    if (err || w->cancelled) return err ? err : MO_ECANCELED;
    if (e->state == ENT_FAILED || e->state == ENT_SKIPPED) return MO__WALK_GO;
    if (!e->depth && e->known) w->top_dev = e->id.dev;
    bool more = e->state == ENT_OPEN;
    size_t n = e->n;
    err = mo__walk_visit(w, path, j->list.names + e->first, &n, e->marked, more, e->depth);
    if (err) return err;
    if ((err = ent_keep_subdirs(w->par, j, e, n)) != 0) return mo__walk_fatal(w, path, err);
    if (!more) ent_release(w->par, e);
    return MO__WALK_GO;
}

/* Nothing can give a descriptor back: the entries the job could not open
 * fail with MO_EMFILE. */
static int job_give_up(struct mo__walk *w, struct pjob *j)
{
    for (size_t i = 0; i < j->nent; i++) {
        int err = mo__walk_fail(w, ent_path(j, &j->ent[i]), MO_EMFILE);
        if (err || w->cancelled) return err ? err : MO_ECANCELED;
    }
    job_release(w->par, j);
    return MO__WALK_GO;
}

/* The worker ran out of descriptors (EMFILE, ENFILE): from now on the walk
 * keeps fewer parents' descriptors and runs fewer, smaller jobs at once.
 * The job runs again at once if it got somewhere in this round or the walk
 * has closed descriptors since it was submitted, else once another job is
 * over (parked); with no other job to wait for, its entries fail with
 * MO_EMFILE. */
static int job_starved(struct mo__walk *w, struct pjob *j)
{
    struct mo__walk_par *p = w->par;
    p->max_fds = p->nfds > 2 ? p->nfds / 2 : 1;
    p->max_inflight = p->inflight > 2 ? p->inflight / 2 : 1;
    p->batch = p->batch > 2 ? p->batch / 2 : 1;
    fds_evict(p);
    if (j->ran || p->closed != j->closed_at) return job_resubmit(w, j);
    if (p->inflight == p->nparked + 1) return job_give_up(w, j);
    job_park(p, j);
    return MO__WALK_GO;
}

/* After the job's last entry of a round: the entries not finished (not
 * opened yet, or read on with pieces) go in another round, else the job
 * goes. */
static int job_next_round(struct mo__walk *w, struct pjob *j)
{
    struct mo__walk_par *p = w->par;
    size_t k = 0;
    for (size_t i = 0; i < j->nent; i++) {
        if (j->ent[i].state == ENT_NEW || j->ent[i].state == ENT_OPEN)
            j->ent[k++] = j->ent[i];
        else
            ent_release(p, &j->ent[i]);
    }
    j->nent = k;
    if (!k) {
        job_release(p, j);
        return MO__WALK_GO;
    }
    return j->starved ? job_starved(w, j) : job_resubmit(w, j);
}

/* Visits the job's next entry read in this round; after the last, the
 * job reads on or goes. */
static int job_visit(struct mo__walk *w, struct pjob *j)
{
    while (j->vis < j->nent && !j->ent[j->vis].in_round) j->vis++;
    if (j->vis < j->nent) return ent_visit(w, j, &j->ent[j->vis++]);
    w->par->current = NULL;
    return job_next_round(w, j);
}

int mo__walk_par_unit(struct mo__walk *w)
{
    struct mo__walk_par *p = w->par;
    int err = p->started ? par_submit(w) : par_start(w);
    if (err) return err;
    if (!p->current && p->ready) {
        p->current = p->ready;
        p->ready = p->ready->next;
        if (!p->ready) p->ready_tail = NULL;
    }
    if (p->current) return job_visit(w, p->current);
    return p->inflight ? MO__WALK_WAIT : MO__WALK_END;
}

/* ---- life cycle ---- */

int mo__walk_par_new(struct mo__walk *w)
{
    struct mo__walk_par *p = mo__calloc(1, sizeof(*p));
    if (!p) return MO_ENOMEM;
    w->par = p;
    p->max_fds = MO_WALK_MAX_FDS;
    int err = mo_loop_pool(w->loop, &p->pool);
    if (err) return err;
    p->nthreads = mo_pool_threads(p->pool);
    size_t n = 4 * p->nthreads;
    p->njobs = p->max_inflight = n < 8 ? 8 : n > 64 ? 64 : n;
    p->batch = MO_WALK_MAX_DIRS / p->njobs;
    if (p->batch > PAR_BATCH) p->batch = PAR_BATCH;
    if (!(p->jobs = mo__calloc(p->njobs, sizeof(*p->jobs)))) return MO_ENOMEM;
    for (size_t i = p->njobs; i-- > 0;) {
        p->jobs[i].w = w;
        p->jobs[i].flags = w->flags;
        p->jobs[i].oflags = w->oflags;
        p->jobs[i].next = p->free;
        p->free = &p->jobs[i];
    }
    return 0;
}

void mo__walk_par_stop(struct mo__walk *w)
{
    struct mo__walk_par *p = w->par;
    if (!p || !p->jobs) return;
    p->stopped = true;
    p->ready = p->ready_tail = p->current = p->parked = NULL;
    p->nparked = 0;
    for (size_t i = 0; i < p->njobs; i++) {
        struct pjob *j = &p->jobs[i];
        if (j->state == JOB_QUEUED && !j->discard) {
            if (mo_pool_cancel(&j->pj) != 0) {
                j->discard = true; /* on a worker: job_done() releases it */
                continue;
            }
            p->running--;
        }
        if (j->state != JOB_FREE && !j->discard) job_release(p, j);
    }
    while (p->nstack) {
        struct pnode *n = p->stack[--p->nstack];
        n->subs_next = n->subs_len;
        n->npending = 0;
        n->on_stack = false;
        node_maybe_retire(p, n);
    }
    struct pnode *next;
    for (struct pnode *n = p->fds; n; n = next) {
        next = n->fd_next;
        node_maybe_close(p, n);
    }
}

void mo__walk_par_limit_fds(struct mo__walk *w, size_t max_fds)
{
    if (w->par) w->par->max_fds = max_fds;
}

bool mo__walk_par_busy(const struct mo__walk *w)
{
    return w->par && w->par->running > 0;
}

void mo__walk_par_free(struct mo__walk *w)
{
    struct mo__walk_par *p = w->par;
    for (size_t i = 0; p->jobs && i < p->njobs; i++) {
        mo__walk_list_free(&p->jobs[i].list);
        mo__free(p->jobs[i].paths);
        mo__free(p->jobs[i].chain);
    }
    mo__free(p->jobs);
    mo__free(p->stack);
    mo__free(p);
    w->par = NULL;
}
