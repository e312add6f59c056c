/* The parallel walk (DESIGN rule 17): directories are opened and read on
 * the worker pool, several at once; the loop thread visits the listings,
 * one at a time, and hands the subdirectories left in them to new jobs.
 *
 * A job reads a few sibling directories (up to PAR_BATCH, fewer when few
 * are pending, so that every worker gets some): a worker opens each with
 * openat(O_NOFOLLOW) relative to their parent's descriptor, reads its
 * listing (whole, or with MO_WALK_PIECES up to the job's PAR_PIECE bytes,
 * the rest in later rounds of the same job) into the job's buffer with
 * getdents64 and types the names; its completion queues the job for
 * visit() on the loop thread, one directory per unit of work. Batching
 * siblings makes the pool's hand-offs (a queue lock, a wake-up, a
 * completion) cost per few directories rather than per directory. A
 * worker touches only its job, never the walk's other state.
 *
 * A directory whose listing has subdirectories gets a node, which keeps
 * what their jobs need: its descriptor, its path, the names of the
 * subdirectories not handed out yet, and its parent (to re-open it one
 * name at a time if its descriptor was evicted).
 *
 * Invariants (all on the loop thread):
 * - A node's refs count its child nodes, the jobs whose parent it is, and
 *   one while it is active (a job still reads it, or names are pending).
 *   At 0 the node is freed and drops its parent.
 * - A node's fd is open while it is active, or used by a job (`users`: a
 *   job opens relative to it, directly or at the start of a chain), or it
 *   is the top's (kept until the top node is freed, so that a chain can
 *   always start somewhere). Open node fds are linked in `fds`, oldest
 *   first; there are at most max_fds unless all others are in use.
 * - The nodes with pending names are on `stack`, newest on top. Jobs are
 *   handed out from the top: depth first, so few nodes are active at once.
 * - A job is FREE, QUEUED (with the pool: a worker may own it, and the loop
 *   thread touches none of its fields but `discard` and the pool's), or
 *   READY (read: in the ready list, its directories being visited).
 *   `inflight` counts the jobs not FREE, `running` the QUEUED ones. A job's
 *   entries are the directories it has not finished reading.
 * - With MO_WALK_FOLLOW or MO_WALK_XDEV (`ids`), a worker records each
 *   directory's (dev, ino) when it opens it, and a node keeps them from its
 *   creation on, never written again: a worker reads its job's chain of
 *   parent nodes (kept alive by the job's reference) to find a followed
 *   link that leads back to an ancestor (MO_WALK_FOLLOW), and compares a
 *   directory's device with top's (MO_WALK_XDEV, known from top's visit).
 */
#include "walk/walk_int.h"

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PAR_BUF (64 * 1024) /* bytes per getdents64 call */
/* MO_WALK_PIECES: bytes of records per job round, read in one getdents64
 * call for a large directory: about 0.3 ms of a worker's CPU, so that a
 * round does not hold a CPU the loop thread may need for long (woken by
 * a timer, the loop thread often waits for the worker's CPU). */
#define PAR_PIECE (32 * 1024)
#define PAR_KEEP  (512 * 1024)                    /* a job keeps buffers up to this size */
#define PAR_BATCH 16                              /* directories per job at most */
#define PAR_IDS   (MO_WALK_FOLLOW | MO_WALK_XDEV) /* modes that record (dev, ino) */

struct kdirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

struct pnode {
    struct pnode *parent; /* one reference */
    struct pnode *fd_prev, *fd_next;
    uint32_t refs, users;
    int fd;
    bool active, on_stack, root, reading;
    dev_t dev; /* recorded when the fd is evicted */
    ino_t ino;
    char *path; /* while active */
    char *subs; /* pending subdirectory names, NUL-separated */
    size_t subs_len, subs_cap, subs_next, npending;
    size_t namelen;
    char name[]; /* its name in its parent */
};

/* One directory of a job. */
struct pent {
    size_t pathoff, pathlen, nameoff; /* in the job's paths; name at pathoff + nameoff */
    size_t first, n;                  /* its names in this round: names[first, first + n) */
    int fd, node_fd, err;
    bool ran;    /* read (or failed) in this round */
    bool opened; /* fd is open, or was */
    bool eof;    /* finished: read to the end, or failed */
    bool gave_fd, had_dir;
    bool has_err;   /* MO_WALK_FOLLOW: error-marked names in this round */
    bool other_dev; /* MO_WALK_XDEV: on another file system: not read */
    dev_t dev;      /* PAR_IDS: set by the worker that opened it */
    ino_t ino;
    struct pnode *node; /* the loop thread's, once it has one */
    bool visited;
};

enum { JOB_FREE, JOB_QUEUED, JOB_READY };

struct pjob {
    mo_pool_job_t pj;
    struct mo__walk *w;
    struct pjob *next; /* the free list or the ready list */
    uint8_t state;
    bool discard; /* the walk stopped while a worker had it */
    bool pieces;
    unsigned flags; /* the walk's, for the worker */
    dev_t top_dev;  /* MO_WALK_XDEV: top's device, once known (parent != NULL) */
    /* Set by the loop thread before submitting. */
    struct pnode *parent; /* NULL for the top (one reference) */
    struct pnode *base;   /* the node base_fd belongs to (one use) */
    int base_fd;
    char *chain; /* names from base down to the evicted parent */
    size_t chain_len, chain_cap;
    dev_t pdev;
    ino_t pino;
    char *paths; /* the entries' paths, NUL-terminated */
    size_t plen, pcap;
    struct pent ent[PAR_BATCH];
    size_t nent, vis; /* entries; the next one to visit */
    /* Filled by the worker. */
    char *buf;
    size_t used, cap;
    mo_walk_name *names; /* name holds an offset into buf until the end */
    size_t count, ncap;
};

_Static_assert(sizeof(uintptr_t) == sizeof(struct pnode *), "the stack is sized in uintptr_t");

struct mo__walk_par {
    mo_pool_t *pool;
    struct pjob *jobs, *free, *ready, *ready_tail;
    struct pjob *current; /* the job whose entries are being visited */
    size_t njobs, inflight, running, batch, nthreads;
    struct pnode **stack;
    size_t nstack, stack_cap;
    struct pnode *fds, *fds_tail;
    size_t nfds, max_fds;
    dev_t top_dev; /* MO_WALK_XDEV: recorded at top's visit */
    bool ids;      /* PAR_IDS: nodes' (dev, ino) are known from their creation */
    bool started, stopped;
};

static inline const char *ent_path(const struct pjob *j, const struct pent *e)
{
    return j->paths + e->pathoff;
}

/* ---- on a worker ---- */

/* Opens the parent into *fdp: base_fd, or, if the parent's fd was evicted,
 * the parent re-opened one name at a time from the base and checked to be
 * the directory it was. Returns 0 or an error. */
static int parent_open(const struct pjob *j, int *fdp)
{
    int fd = j->base_fd;
    *fdp = fd;
    if (!j->chain_len) return 0;
    for (size_t off = 0; off < j->chain_len; off += strlen(j->chain + off) + 1) {
        int next = openat(fd, j->chain + off, mo__walk_open_flags(j->flags));
        int e = errno;
        if (fd != j->base_fd) close(fd);
        if (next < 0) return e == ELOOP && !(j->flags & MO_WALK_FOLLOW) ? MO_ENOTDIR : -e;
        fd = next;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_dev != j->pdev || st.st_ino != j->pino) {
        close(fd);
        return MO_ENOENT;
    }
    *fdp = fd;
    return 0;
}

static void ent_fail(struct pent *e, int err)
{
    e->err = err;
    e->eof = true;
}

/* Reads the entry's listing into buf from `used` on: to its end, or, with
 * pieces, until the job's round has PAR_PIECE bytes. */
static void ent_read(struct pjob *j, struct pent *e)
{
    while (!j->pieces || j->used < PAR_PIECE) {
        size_t want = j->pieces ? PAR_PIECE : PAR_BUF;
        if (mo__walk_grow((void **)&j->buf, &j->cap, j->used + want, 1) != 0) {
            ent_fail(e, MO_ENOMEM);
            return;
        }
        long n = syscall(SYS_getdents64, e->fd, j->buf + j->used, want);
        if (n <= 0) {
            if (n < 0) e->err = -errno;
            e->eof = true;
            return;
        }
        j->used += (size_t)n;
    }
}

/* MO_WALK_FOLLOW: whether the directory st is the entry's own or one of
 * its ancestors (a loop through links). The chain of nodes is immutable
 * while the job holds its parent (see the invariants). */
static bool ent_is_ancestor(const struct pjob *j, const struct pent *e, const struct stat *st)
{
    if (e->ino == st->st_ino && e->dev == st->st_dev) return true;
    for (const struct pnode *n = j->parent; n; n = n->parent)
        if (n->ino == st->st_ino && n->dev == st->st_dev) return true;
    return false;
}

/* The type of a listed name, followed if the walk follows links. */
static uint8_t ent_type(const struct pjob *j, struct pent *e, const char *s, uint8_t type)
{
    struct stat st;
    if (j->flags & MO_WALK_FOLLOW) {
        type = mo__walk_follow_type(e->fd, s, type, &st);
        if (type == MO_WALK_DIR && ent_is_ancestor(j, e, &st)) type = mo__walk_type_err(MO_ELOOP);
        e->has_err |= (type & MO__WALK_TYPE_ERR) != 0;
    } else if (type == DT_UNKNOWN && fstatat(e->fd, s, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        type = (uint8_t)IFTODT(st.st_mode);
    }
    return type;
}

/* Turns the records in buf[from, used) into the entry's names, typed; the
 * names hold offsets into buf until the round is over (buf may move). */
static void ent_parse(struct pjob *j, struct pent *e, size_t from)
{
    /* A record is at least 24 bytes and holds its name and NUL. */
    if (mo__walk_grow((void **)&j->names, &j->ncap, j->count + (j->used - from) / 24 + 1,
                      sizeof(mo_walk_name)) != 0) {
        ent_fail(e, MO_ENOMEM);
        return;
    }
    e->had_dir = false;
    for (size_t off = from; off < j->used;) {
        struct kdirent64 *d = (struct kdirent64 *)(j->buf + off);
        off += d->d_reclen;
        const char *s = d->d_name;
        if (s[0] == '.' && (s[1] == '\0' || (s[1] == '.' && s[2] == '\0'))) continue;
        uint8_t type = ent_type(j, e, s, d->d_type);
        e->had_dir |= type == DT_DIR;
        j->names[j->count++] =
            (mo_walk_name){(const char *)(uintptr_t)(s - j->buf), (uint32_t)strlen(s), type};
    }
}

/* Gives the node a descriptor, once, when the listing has subdirectories:
 * the entry's own at the end of its listing, else a duplicate (it reads
 * on). Without subdirectories the entry's own is closed at the end. */
static void ent_hand_fd(struct pent *e)
{
    if (e->had_dir && !e->gave_fd) {
        e->gave_fd = true;
        if (e->eof) {
            e->node_fd = e->fd;
            e->fd = -1;
        } else if ((e->node_fd = fcntl(e->fd, F_DUPFD_CLOEXEC, 0)) < 0) {
            ent_fail(e, -errno);
        }
    }
    if (e->eof && e->fd >= 0) {
        close(e->fd);
        e->fd = -1;
    }
}

/* PAR_IDS: records the directory's (dev, ino) once it is open. Returns
 * true if the entry is done: an error, or (MO_WALK_XDEV) a directory on
 * another file system than top's, closed unread. */
static bool ent_identify(const struct pjob *j, struct pent *e)
{
    struct stat st;
    if (!(j->flags & PAR_IDS)) return false;
    if (fstat(e->fd, &st) != 0) {
        ent_fail(e, -errno);
        return true;
    }
    e->dev = st.st_dev;
    e->ino = st.st_ino;
    if (!(j->flags & MO_WALK_XDEV) || !j->parent || st.st_dev == j->top_dev) return false;
    close(e->fd);
    e->fd = -1;
    e->other_dev = e->eof = true;
    return true;
}

/* Opens (if needed), reads and parses one entry. */
static void ent_work(struct pjob *j, struct pent *e, int pfd, int perr)
{
    e->ran = true;
    e->first = j->count;
    if (!e->opened) {
        if (perr) {
            ent_fail(e, perr);
            return;
        }
        e->fd = openat(pfd, j->paths + e->pathoff + e->nameoff, mo__walk_open_flags(j->flags));
        if (e->fd < 0) {
            /* A symlink (O_NOFOLLOW: ELOOP) is not a directory to walk. */
            bool link = errno == ELOOP && !(j->flags & MO_WALK_FOLLOW);
            ent_fail(e, link ? MO_ENOTDIR : -errno);
            return;
        }
        e->opened = true;
        if (ent_identify(j, e)) return;
    }
    size_t from = j->used;
    ent_read(j, e);
    ent_parse(j, e, from);
    e->n = j->count - e->first;
    ent_hand_fd(e);
}

static void job_work(mo_pool_job_t *pj, void *arg)
{
    (void)pj;
    struct pjob *j = arg;
    int pfd = -1, perr = 0; /* the parent, opened on first need */
    bool have_pfd = false;
    j->used = j->count = 0;
    for (size_t i = 0; i < j->nent; i++) {
        struct pent *e = &j->ent[i];
        e->ran = false;
        e->n = 0;
        e->has_err = false;
        if (j->pieces && j->used >= PAR_PIECE) continue; /* next round */
        if (!e->opened && !have_pfd) {
            perr = parent_open(j, &pfd);
            have_pfd = true;
        }
        ent_work(j, e, pfd, perr);
    }
    if (have_pfd && !perr && pfd != j->base_fd) close(pfd);
    for (size_t i = 0; i < j->count; i++) j->names[i].name = j->buf + (uintptr_t)j->names[i].name;
}

/* ---- nodes ---- */

static void fds_unlink(struct mo__walk_par *p, struct pnode *n)
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
}

static void node_close(struct mo__walk_par *p, struct pnode *n)
{
    if (n->fd < 0) return;
    close(n->fd);
    n->fd = -1;
    fds_unlink(p, n);
    p->nfds--;
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

/* Deactivates a node whose job is over and whose names are all handed out. */
static void node_check(struct mo__walk_par *p, struct pnode *n)
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

/* Past MO_WALK_MAX_FDS, closes the oldest fds nothing uses, after
 * recording which directories they were. */
static void fds_evict(struct mo__walk_par *p)
{
    struct pnode *next;
    for (struct pnode *n = p->fds; n && p->nfds > p->max_fds; n = next) {
        next = n->fd_next;
        struct stat st;
        if (n->root || n->users) continue;
        if (!p->ids) { /* else known since its creation, and read by workers */
            if (fstat(n->fd, &st) != 0) continue;
            n->dev = st.st_dev;
            n->ino = st.st_ino;
        }
        node_close(p, n);
    }
}

/* Makes the node of an entry's directory, with the descriptor the worker
 * handed over. */
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
    n->active = true;
    n->reading = true;
    n->fd = e->node_fd;
    e->node_fd = -1;
    n->dev = e->dev; /* PAR_IDS: known from now on (else recorded on eviction) */
    n->ino = e->ino;
    n->fd_prev = p->fds_tail;
    if (p->fds_tail)
        p->fds_tail->fd_next = n;
    else
        p->fds = n;
    p->fds_tail = n;
    p->nfds++;
    e->node = n;
    fds_evict(p);
    return 0;
}

/* Appends the subdirectories left in `names` to the node's pending names
 * and puts it on the stack. */
static int node_add(struct mo__walk_par *p, struct pnode *n, const mo_walk_names *names)
{
    for (size_t i = 0; i < names->count; i++) {
        const mo_walk_name *e = &names->names[i];
        if (e->type != MO_WALK_DIR) continue;
        if (mo__walk_grow((void **)&n->subs, &n->subs_cap, n->subs_len + e->len + 1, 1) != 0)
            return MO_ENOMEM;
        memcpy(n->subs + n->subs_len, e->name, e->len + 1);
        n->subs_len += e->len + 1;
        n->npending++;
    }
    if (n->on_stack || n->subs_next == n->subs_len) return 0;
    if (mo__walk_grow((void **)&p->stack, &p->stack_cap, p->nstack + 1, sizeof(uintptr_t)) != 0)
        return MO_ENOMEM;
    p->stack[p->nstack++] = n;
    n->on_stack = true;
    return 0;
}

/* ---- jobs, on the loop thread ---- */

static void job_trim(struct pjob *j)
{
    mo__walk_shrink((void **)&j->buf, &j->cap, 1, PAR_KEEP);
    mo__walk_shrink((void **)&j->names, &j->ncap, sizeof(mo_walk_name), PAR_KEEP);
}

/* Closes an entry's descriptors; its node goes on without it. */
static void ent_release(struct mo__walk_par *p, struct pent *e)
{
    if (e->fd >= 0) close(e->fd);
    if (e->node_fd >= 0) close(e->node_fd);
    e->fd = e->node_fd = -1;
    if (e->node) {
        e->node->reading = false;
        node_check(p, e->node);
        e->node = NULL;
    }
}

/* Gives a job back to the free list with everything it holds. Its
 * buffers stay: visit() may be reading the names (a cancel from visit). */
static void job_release(struct mo__walk_par *p, struct pjob *j)
{
    for (size_t i = 0; i < j->nent; i++) ent_release(p, &j->ent[i]);
    j->nent = 0;
    node_unuse(p, j->base);
    j->base = NULL;
    node_unref(p, j->parent);
    j->parent = NULL;
    j->state = JOB_FREE;
    j->next = p->free;
    p->free = j;
    p->inflight--;
}

/* Whether an entry has yet to be opened: the job still needs its parent. */
static bool job_needs_parent(const struct pjob *j)
{
    for (size_t i = 0; i < j->nent; i++)
        if (!j->ent[i].opened && !j->ent[i].eof) return true;
    return false;
}

static void job_done(mo_loop_t *loop, mo_pool_job_t *pj, int status, void *arg)
{
    (void)loop;
    (void)pj;
    struct pjob *j = arg;
    struct mo__walk *w = j->w;
    struct mo__walk_par *p = w->par;
    p->running--;
    if (status) { /* the pool was freed before a worker took it */
        j->count = 0;
        for (size_t i = 0; i < j->nent; i++) {
            j->ent[i].ran = true;
            j->ent[i].n = 0;
            if (!j->ent[i].eof) ent_fail(&j->ent[i], status);
        }
    }
    if (!job_needs_parent(j)) {
        node_unuse(p, j->base);
        j->base = NULL;
    }
    if (j->discard || w->ended) {
        job_release(p, j);
        mo__walk_maybe_free(w);
        return;
    }
    j->state = JOB_READY;
    j->vis = 0;
    j->next = NULL;
    if (p->ready_tail)
        p->ready_tail->next = j;
    else
        p->ready = j;
    p->ready_tail = j;
    if (w->paused) {
        w->paused = false;
        int err = mo_task_resume(w->task);
        if (err) mo__walk_abort(w, mo__walk_fatal(w, ent_path(j, &j->ent[0]), err));
    }
}

static int job_submit(struct mo__walk_par *p, struct pjob *j)
{
    j->pieces = (j->w->flags & MO_WALK_PIECES) != 0;
    j->flags = j->w->flags;
    j->top_dev = p->top_dev;
    int err = mo_pool_submit(p->pool, j->w->loop, &j->pj, job_work, job_done, j);
    if (err) return err;
    j->state = JOB_QUEUED;
    p->running++;
    return 0;
}

static struct pjob *job_get(struct mo__walk_par *p)
{
    struct pjob *j = p->free;
    p->free = j->next;
    p->inflight++;
    job_trim(j);
    j->next = NULL;
    j->discard = false;
    j->nent = j->vis = j->plen = j->chain_len = j->count = j->used = 0;
    return j;
}

/* Adds the entry dir joined with name, as os.path.join does. */
static int job_add(struct pjob *j, const char *dir, const char *name)
{
    size_t dlen = strlen(dir), len = strlen(name);
    bool slash = dlen && dir[dlen - 1] != '/';
    size_t need = j->plen + dlen + slash + len + 1;
    int err = mo__walk_grow((void **)&j->paths, &j->pcap, need, 1);
    if (err) return err;
    struct pent *e = &j->ent[j->nent++];
    *e = (struct pent){.pathoff = j->plen,
                       .pathlen = dlen + slash + len,
                       .nameoff = dlen + slash,
                       .fd = -1,
                       .node_fd = -1};
    char *d = j->paths + j->plen;
    memcpy(d, dir, dlen); /* NOLINT(bugprone-not-null-terminated-result): name follows */
    if (slash) d[dlen] = '/';
    memcpy(d + dlen + slash, name, len + 1);
    j->plen = need;
    return 0;
}

/* The parent's fd was evicted: the job re-opens it from the nearest
 * ancestor with one, through the names in between. */
static int job_chain(struct pjob *j, struct pnode *parent, struct pnode **basep)
{
    size_t len = 0;
    struct pnode *b = parent;
    for (; b->fd < 0 && b->parent; b = b->parent) len += b->namelen + 1;
    if (b->fd < 0) return MO_ENOENT; /* cannot happen: the top's stays open */
    int err = mo__walk_grow((void **)&j->chain, &j->chain_cap, len, 1);
    if (err) return err;
    j->chain_len = len;
    for (struct pnode *n = parent; n != b; n = n->parent) {
        len -= n->namelen + 1;
        memcpy(j->chain + len, n->name, n->namelen + 1);
    }
    j->pdev = parent->dev;
    j->pino = parent->ino;
    *basep = b;
    return 0;
}

/* Prepares and submits a job for the next pending names of node n: its
 * share of them for one worker, at most the walk's batch. */
static int job_for(struct mo__walk_par *p, struct pnode *n, struct pjob *j)
{
    size_t k = (n->npending + p->nthreads - 1) / p->nthreads;
    if (k > p->batch) k = p->batch;
    for (size_t i = 0; i < k && n->subs_next < n->subs_len; i++) {
        const char *name = n->subs + n->subs_next;
        int err = job_add(j, n->path, name);
        if (err) return err;
        n->subs_next += strlen(name) + 1;
        n->npending--;
    }
    struct pnode *base = n;
    int err = n->fd < 0 ? job_chain(j, n, &base) : 0;
    if (err) return err;
    j->parent = n;
    n->refs++;
    j->base = base;
    base->users++;
    j->base_fd = base->fd;
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
        node_check(p, n);
    }
    return NULL;
}

/* Hands out pending names while jobs are free. Returns 0 or the error that
 * stops the walk. */
static int par_submit(struct mo__walk *w)
{
    struct mo__walk_par *p = w->par;
    struct pnode *n;
    while (p->free && (n = stack_top(p)) != NULL) {
        struct pjob *j = job_get(p);
        int err = job_for(p, n, j);
        if (err) {
            err = mo__walk_fatal(w, n->path, err);
            job_release(p, j);
            return err;
        }
    }
    return 0;
}

static int par_start(struct mo__walk *w)
{
    struct mo__walk_par *p = w->par;
    struct pjob *j = job_get(p);
    p->started = true;
    int err = job_add(j, "", w->path);
    j->base_fd = AT_FDCWD;
    if (!err) err = job_submit(p, j);
    if (err) {
        job_release(p, j);
        return mo__walk_fatal(w, w->path, err);
    }
    return 0;
}

/* Visits one entry's listing (after reporting its error, if any) and
 * keeps its subdirectories for new jobs. */
static int ent_visit(struct mo__walk *w, struct pjob *j, struct pent *e)
{
    struct mo__walk_par *p = w->par;
    const char *path = ent_path(j, e);
    int err = e->err ? mo__walk_fail(w, path, e->err) : 0;
    e->err = 0;
    if (err || w->cancelled) return err ? err : MO_ECANCELED;
    if (!e->opened || e->other_dev) return 0;
    if (!j->parent) p->top_dev = e->dev; /* top's: before any child job is made */
    if (e->node_fd >= 0 && (err = node_new(p, j, e)) != 0) return mo__walk_fatal(w, path, err);
    size_t n = e->n;
    if (e->has_err && (err = mo__walk_drop_errors(w, path, j->names + e->first, &n)) != 0)
        return err;
    e->has_err = false;
    mo_walk_names names = {j->names + e->first, n, j->pieces && !e->eof};
    w->totals.dirs += !e->visited;
    w->totals.names += names.count;
    e->visited = true;
    w->visit(w->arg, path, &names);
    if (w->cancelled) return MO_ECANCELED;
    if (names.count > n) names.count = n;
    if (e->node && (err = node_add(p, e->node, &names)) != 0) return mo__walk_fatal(w, path, err);
    if (e->eof) ent_release(p, e);
    return 0;
}

/* After the job's last entry of a round: the entries not finished (with
 * pieces) are read on in another round, else the job goes. */
static int job_next_round(struct mo__walk *w, struct pjob *j)
{
    struct mo__walk_par *p = w->par;
    size_t k = 0;
    for (size_t i = 0; i < j->nent; i++) {
        if (j->ent[i].eof)
            ent_release(p, &j->ent[i]);
        else
            j->ent[k++] = j->ent[i];
    }
    j->nent = k;
    if (!k) {
        job_release(p, j);
        return 0;
    }
    int err = job_submit(p, j);
    return err ? mo__walk_fatal(w, ent_path(j, &j->ent[0]), err) : 0;
}

/* Visits the job's next entry read in this round; after the last, the
 * job reads on or goes. */
static int job_visit(struct mo__walk *w, struct pjob *j)
{
    while (j->vis < j->nent && !j->ent[j->vis].ran) j->vis++;
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
    return p->inflight ? 2 : 1;
}

/* ---- life cycle ---- */

int mo__walk_par_new(struct mo__walk *w)
{
    struct mo__walk_par *p = mo__calloc(1, sizeof(*p));
    if (!p) return MO_ENOMEM;
    w->par = p;
    p->max_fds = MO_WALK_MAX_FDS;
    p->ids = (w->flags & PAR_IDS) != 0;
    int err = mo_loop_pool(w->loop, &p->pool);
    if (err) return err;
    p->nthreads = mo_pool_threads(p->pool);
    size_t n = 4 * p->nthreads;
    p->njobs = n < 8 ? 8 : n > 64 ? 64 : n;
    p->batch = MO_WALK_MAX_DIRS / p->njobs;
    if (p->batch > PAR_BATCH) p->batch = PAR_BATCH;
    if (!(p->jobs = mo__calloc(p->njobs, sizeof(*p->jobs)))) return MO_ENOMEM;
    for (size_t i = p->njobs; i-- > 0;) {
        p->jobs[i].w = w;
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
    p->ready = p->ready_tail = p->current = NULL;
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
        node_check(p, n);
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
        mo__free(p->jobs[i].buf);
        mo__free(p->jobs[i].names);
        mo__free(p->jobs[i].paths);
        mo__free(p->jobs[i].chain);
    }
    mo__free(p->jobs);
    mo__free(p->stack);
    mo__free(p);
    w->par = NULL;
}
