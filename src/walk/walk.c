/* The asynchronous directory walk (DESIGN rules 16–17): the sequential
 * engine, and the life cycle both engines share (a cooperator task whose
 * steps run units of work, the end, cancelling, the Deferred).
 *
 * A sequential walk is a stack of frames, one per directory from `top` down
 * to the one being read. The top frame goes through four phases: open
 * (openat relative to its parent's descriptor), read (one getdents64 batch
 * per unit of work), visit (the user's callback), then descend: each
 * directory left in its listing is pushed in turn; when none is left the
 * frame is popped. Every unit of work is short (one system call, or a scan
 * of at most WALK_SCAN names) and is one step of a cooperator task
 * (task.c), which batches steps into turns of the walk's slice: the loop is
 * never held much longer than one slice.
 *
 * Invariants of the frame stack:
 * - frames[0, depth) are the directories from top to the current one; each
 *   frame's path is path[0, pathlen) and extends its parent's.
 * - The top frame's fd is open once its open phase succeeded. A frame below
 *   the top is in its descend phase (its listing is read and visited).
 * - The frames with an open fd are a run at the top of the stack, at most
 *   max_fds long (MO_WALK_MAX_FDS, less once the process ran out of
 *   descriptors): pushing frame i closes frame i - max_fds after recording
 *   its id; popping to a closed frame re-opens it and checks its id.
 * - With MO_WALK_FOLLOW or MO_WALK_XDEV, every frame's id is recorded when
 *   it is opened.
 * - A frame's names[0, count) point into its listing's records; names[0,
 *   next) have been considered for descent; with MO_WALK_PIECES,
 *   names[0, shown) have been given to visit() and their records start
 *   before piece_from.
 */
#include "walk/walk_int.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#define WALK_BUF  ((size_t)8 * 1024)   /* bytes per getdents64 batch: ~60 us of ext4 */
#define WALK_STEP MO_USEC(100)         /* work per cooperator step */
#define WALK_SCAN 8192                 /* names scanned for subdirectories per unit */
#define WALK_KEEP ((size_t)256 * 1024) /* a popped frame keeps buffers up to this size */

enum frame_phase { PH_OPEN, PH_READ, PH_VISIT, PH_DESCEND };

struct frame {
    int fd;
    uint8_t phase; /* enum frame_phase */
    struct mo__walk_id id;
    size_t pathlen;
    struct mo__walk_list list;
    size_t next;
    size_t shown;      /* MO_WALK_PIECES: names given to visit() */
    size_t piece_from; /* MO_WALK_PIECES: where the records not shown yet start */
    size_t marked;     /* names not shown yet marked with an error */
    size_t dirs;       /* subdirectories listed */
};

static inline struct frame *top_frame(struct mo__walk *w)
{
    return &w->frames[w->depth - 1];
}

void mo_walk_names_remove(mo_walk_names *names, size_t i)
{
    if (!names || i >= names->count) return;
    memmove(&names->names[i], &names->names[i + 1], (names->count - i - 1) * sizeof(mo_walk_name));
    names->count--;
}

/* ---- buffers ---- */

int mo__walk_realloc(void **p, size_t *cap, size_t need, size_t size)
{
    size_t n = *cap ? *cap : 16;
    while (n < need) n *= 2;
    if (n > SIZE_MAX / size) return MO_ENOMEM;
    void *q = mo__realloc(*p, n * size);
    if (!q) return MO_ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}

static void frame_close(struct frame *f)
{
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
}

/* ---- errors and visits ---- */

int mo__walk_fatal(struct mo__walk *w, const char *path, int err)
{
    size_t n = strlen(path) + 1;
    mo__free(w->err_path);
    w->err_path = mo__malloc(n);
    if (w->err_path) memcpy(w->err_path, path, n);
    return err;
}

int mo__walk_fail(struct mo__walk *w, const char *path, int err)
{
    if (w->on_error) {
        w->totals.errors++;
        w->on_error(w->arg, path, err);
        return 0;
    }
    return mo__walk_fatal(w, path, err);
}

/* Reports the errors marked in names[0, *count) on the names' paths; a
 * loop is taken out of the listing, another name stays, untyped. */
static int report_marked(struct mo__walk *w, const char *dir, mo_walk_name *names, size_t *count)
{
    size_t k = 0, dlen = strlen(dir);
    for (size_t i = 0; i < *count; i++) {
        mo_walk_name *e = &names[i];
        int code = e->type >= MO__WALK_MARK ? mo__walk_marked_err(e->type) : 0;
        if (code) {
            size_t n = mo__walk_join_len(dir, dlen, e->len);
            int err = mo__walk_grow((void **)&w->mark_path, &w->mark_cap, n + 1, 1);
            if (err) return mo__walk_fatal(w, dir, err);
            mo__walk_join(w->mark_path, dir, dlen, e->name, e->len);
            if ((err = mo__walk_fail(w, w->mark_path, code)) != 0) return err;
            if (w->cancelled) return MO_ECANCELED;
            e->type = MO_WALK_UNKNOWN;
        }
        if (code != MO_ELOOP) names[k++] = *e;
    }
    *count = k;
    return 0;
}

int mo__walk_visit(struct mo__walk *w, const char *dir, mo_walk_name *names, size_t *count,
                   size_t marked, bool more, size_t depth)
{
    int err = marked ? report_marked(w, dir, names, count) : 0;
    if (err) return err;
    mo_walk_names list = {names, *count, more, depth};
    w->totals.dirs += !more;
    w->totals.names += list.count;
    w->visit(w->arg, dir, &list);
    if (w->cancelled) return MO_ECANCELED;
    if (list.count < *count) *count = list.count;
    return 0;
}

/* The two on the current path of the sequential walk. */
static int walk_fatal(struct mo__walk *w, int err)
{
    return mo__walk_fatal(w, w->path, err);
}

static int walk_fail(struct mo__walk *w, int err)
{
    return mo__walk_fail(w, w->path, err);
}

/* ---- descriptors ---- */

/* Whether frames[0, n) hold the directory `id`. */
static bool frames_hold(const struct mo__walk *w, size_t n, const struct mo__walk_id *id)
{
    for (size_t i = 0; i < n; i++)
        if (mo__walk_id_eq(&w->frames[i].id, id)) return true;
    return false;
}

/* MO_WALK_FOLLOW, for mo__walk_list_parse(): whether a directory is on the
 * current path, the directory being listed included. */
static bool on_path(const void *ctx, const struct mo__walk_id *id)
{
    const struct mo__walk *w = ctx;
    return frames_hold(w, w->depth, id);
}

/* The process is out of descriptors: closes the oldest frame's (not
 * `keep`) after recording its id, and keeps as many as were open, one of
 * them for the open that failed, from then on. False if none is left. */
static bool walk_shed(struct mo__walk *w, int keep)
{
    size_t open = 0;
    struct frame *oldest = NULL;
    for (size_t i = 0; i < w->depth; i++) {
        struct frame *f = &w->frames[i];
        if (f->fd < 0) continue;
        open++;
        if (!oldest && f->fd != keep) oldest = f;
    }
    if (!oldest || !mo__walk_evict(&oldest->fd, &oldest->id)) return false;
    w->max_fds = open;
    return true;
}

/* openat() relative to dfd, giving descriptors back (walk_shed) for as long
 * as the process has none left; find goes on the same way. */
static int walk_openat(struct mo__walk *w, int dfd, const char *name)
{
    for (;;) {
        int fd = openat(dfd, name, w->oflags);
        if (fd >= 0 || !mo__walk_starved(-errno) || !walk_shed(w, dfd)) return fd;
    }
}

/* Closes the descriptor max_fds frames above frame i, after recording which
 * directory it was, so that at most that many are open however deep the
 * tree is. */
static void evict_ancestor(struct mo__walk *w, size_t i)
{
    if (i < w->max_fds) return;
    struct frame *old = &w->frames[i - w->max_fds];
    mo__walk_evict(&old->fd, &old->id);
}

/* Re-opens frame k by its path from `top` (relative to the working
 * directory if `top` is): the frames above it are closed too, as the open
 * ones are a run at the top of the stack. */
static int frame_reopen_by_path(struct mo__walk *w, size_t k)
{
    return mo__walk_reopen(AT_FDCWD, w->path, w->frames[k].pathlen, w->oflags, &w->frames[k].id);
}

/* Climbing from the top frame into its parent, whose descriptor was closed:
 * re-opens it as ".." of the top frame, or, if that is another directory
 * (the top frame was entered through a symlink, or the tree moved) or there
 * is no descriptor for it, by its path. */
static int frame_reopen_parent(struct mo__walk *w)
{
    struct frame *f = top_frame(w), *parent = f - 1;
    int fd = walk_openat(w, f->fd, "..");
    struct mo__walk_id id = {0, 0};
    if (fd >= 0 && mo__walk_id_of(fd, &id) == 0 && mo__walk_id_eq(&id, &parent->id)) {
        parent->fd = fd;
        return 0;
    }
    if (fd >= 0) close(fd);
    frame_close(f); /* one more descriptor for the way by path */
    fd = frame_reopen_by_path(w, w->depth - 2);
    parent->fd = fd >= 0 ? fd : -1;
    return fd >= 0 ? 0 : fd;
}

/* ---- the frame stack ---- */

/* Makes frames[depth] the top frame, named by path[0, pathlen), empty. */
static int frame_new(struct mo__walk *w, size_t pathlen)
{
    int err = mo__walk_grow((void **)&w->frames, &w->fcap, w->depth + 1, sizeof(struct frame));
    if (err) return err;
    if (w->depth == w->finit) {
        memset(&w->frames[w->depth], 0, sizeof(struct frame));
        w->finit++;
    }
    struct frame *f = &w->frames[w->depth++];
    f->fd = -1;
    f->phase = PH_READ;
    f->pathlen = pathlen;
    f->list.used = f->list.count = 0;
    f->next = f->shown = f->piece_from = f->marked = f->dirs = 0;
    return 0;
}

/* Pops the top frame, re-opening the parent if its descriptor was closed.
 * Returns MO__WALK_END when the walk is over. */
static int walk_pop(struct mo__walk *w)
{
    int err = 0;
    if (w->depth > 1 && top_frame(w)[-1].fd < 0) err = frame_reopen_parent(w);
    struct frame *f = top_frame(w);
    frame_close(f);
    mo__walk_list_reset(&f->list, WALK_KEEP);
    if (--w->depth == 0) return MO__WALK_END;
    w->path[top_frame(w)->pathlen] = '\0';
    /* Without its descriptor the parent cannot go on, even with on_error. */
    return err ? walk_fatal(w, err) : MO__WALK_GO;
}

/* Reports an error on the top frame's directory, which then is left. */
static int walk_skip(struct mo__walk *w, int err)
{
    err = walk_fail(w, err);
    return err ? err : walk_pop(w);
}

/* A frame just opened (MO_WALK_FOLLOW, MO_WALK_XDEV): records its id;
 * leaves it if it is on another file system, or already on the path (a
 * loop that came another way than a symlink: a bind mount). */
static int frame_check(struct mo__walk *w, struct frame *f)
{
    int err = mo__walk_id_of(f->fd, &f->id);
    if (err) return walk_skip(w, err);
    if (w->depth == 1) w->top_dev = f->id.dev;
    if ((w->flags & MO_WALK_XDEV) && f->id.dev != w->top_dev) return walk_pop(w);
    if ((w->flags & MO_WALK_FOLLOW) && frames_hold(w, w->depth - 1, &f->id))
        return walk_skip(w, MO_ELOOP);
    return MO__WALK_GO;
}

/* A symlink met where a directory was to be opened (O_NOFOLLOW's ELOOP) is
 * not a directory to enter. */
static int open_error(const struct mo__walk *w, int err)
{
    return err == MO_ELOOP && !(w->flags & MO_WALK_FOLLOW) ? MO_ENOTDIR : err;
}

/* Pushes the subdirectory `name` of the top frame and opens it relative to
 * the top frame's descriptor. If that fails, reports and pops it again. */
static int walk_push(struct mo__walk *w, const mo_walk_name *name)
{
    size_t plen = top_frame(w)->pathlen;
    size_t n = mo__walk_join_len(w->path, plen, name->len);
    int err = mo__walk_grow((void **)&w->path, &w->pcap, n + 1, 1);
    if (!err) err = frame_new(w, mo__walk_join(w->path, w->path, plen, name->name, name->len));
    if (err) return err;
    evict_ancestor(w, w->depth - 1);
    struct frame *f = top_frame(w);
    f->fd = walk_openat(w, f[-1].fd, name->name);
    if (f->fd < 0) return walk_skip(w, open_error(w, -errno));
    return w->flags & (MO_WALK_FOLLOW | MO_WALK_XDEV) ? frame_check(w, f) : MO__WALK_GO;
}

/* ---- the phases of the top frame ---- */

/* Gives visit() the names not shown yet; `more`: more pieces follow. */
static int walk_visit(struct mo__walk *w, struct frame *f, bool more)
{
    size_t n = f->list.count - f->shown;
    int err =
        mo__walk_visit(w, w->path, f->list.names + f->shown, &n, f->marked, more, w->depth - 1);
    f->marked = 0;
    f->list.count = f->shown + n;
    return err;
}

/* MO_WALK_PIECES, after a piece was visited: only its subdirectories matter
 * from now on. If it has none, its records' bytes are reused: the batch
 * read after them (from `from` on, not parsed yet) moves down over them,
 * so that a huge flat directory needs one batch's worth of buffer. Returns
 * where that batch starts. */
static size_t piece_forget(struct frame *f, size_t from)
{
    struct mo__walk_list *l = &f->list;
    size_t k = f->shown;
    for (size_t i = f->shown; i < l->count; i++)
        if (l->names[i].type == MO_WALK_DIR) l->names[k++] = l->names[i];
    bool kept = k > f->shown;
    l->count = f->shown = k;
    if (kept) return f->piece_from = from;
    memmove(l->buf + f->piece_from, l->buf + from, l->used - from);
    l->used -= from - f->piece_from;
    return f->piece_from;
}

/* Types the records from `from` on as names of the top frame. */
static int walk_parse(struct mo__walk *w, struct frame *f, size_t from)
{
    struct mo__walk_scan scan = {.dfd = f->fd, .flags = w->flags, .ancestor = on_path, .ctx = w};
    int err = mo__walk_list_parse(&f->list, from, &scan);
    f->marked += scan.marked;
    f->dirs += scan.dirs;
    return err ? walk_fatal(w, err) : MO__WALK_GO;
}

/* Reads one batch. At the end of the listing, or after a read error the
 * caller chose to skip, the frame moves on to its visit. */
static int phase_read(struct mo__walk *w, struct frame *f)
{
    size_t from = f->list.used;
    long n = mo__walk_list_read(&f->list, f->fd, WALK_BUF);
    if (n <= 0) {
        f->phase = PH_VISIT;
        return n < 0 ? walk_fail(w, (int)n) : MO__WALK_GO;
    }
    if ((w->flags & MO_WALK_PIECES) && f->shown < f->list.count) {
        int err = walk_visit(w, f, true);
        if (err) return err;
        from = piece_forget(f, from);
    }
    return walk_parse(w, f, from);
}

/* The listing is visited: on to its subdirectories. A frame that has some
 * stays while the walk goes below it: it gives back its unused buffer. */
static int phase_visit(struct mo__walk *w, struct frame *f)
{
    int err = walk_visit(w, f, false);
    f->phase = PH_DESCEND;
    if (f->dirs) mo__walk_list_fit(&f->list);
    return err;
}

/* Opens `top`: the only directory not opened relative to its parent. */
static int phase_open(struct mo__walk *w, struct frame *f)
{
    f->fd = openat(AT_FDCWD, w->path, w->oflags);
    if (f->fd < 0) return walk_skip(w, open_error(w, -errno));
    f->phase = PH_READ;
    return w->flags & (MO_WALK_FOLLOW | MO_WALK_XDEV) ? frame_check(w, f) : MO__WALK_GO;
}

/* Enters the next subdirectory left in the listing, scanning at most
 * WALK_SCAN names; pops the frame when none is left. */
static int phase_descend(struct mo__walk *w, struct frame *f)
{
    size_t count = f->list.count;
    size_t end = count - f->next > WALK_SCAN ? f->next + WALK_SCAN : count;
    for (size_t i = f->next; i < end; i++) {
        if (f->list.names[i].type != MO_WALK_DIR) continue;
        f->next = i + 1;
        return walk_push(w, &f->list.names[i]);
    }
    f->next = end;
    return end == count ? walk_pop(w) : MO__WALK_GO;
}

/* One unit of work: a system call or a bounded scan. Returns an enum
 * mo__walk_unit, or the error that stops the walk. */
static int walk_unit(struct mo__walk *w)
{
    struct frame *f = top_frame(w);
    switch ((enum frame_phase)f->phase) {
    case PH_OPEN:
        return phase_open(w, f);
    case PH_READ:
        return phase_read(w, f);
    case PH_VISIT:
        return phase_visit(w, f);
    case PH_DESCEND:
        break;
    }
    return phase_descend(w, f);
}

/* ---- life cycle ---- */

static void walk_close_all(struct mo__walk *w)
{
    for (size_t i = 0; i < w->depth; i++) frame_close(&w->frames[i]);
    if (w->par) mo__walk_par_stop(w);
}

static void walk_free(struct mo__walk *w)
{
    walk_close_all(w);
    for (size_t i = 0; i < w->finit; i++) mo__walk_list_free(&w->frames[i].list);
    if (w->par) mo__walk_par_free(w);
    mo__free(w->frames);
    mo__free(w->path);
    mo__free(w->mark_path);
    mo__free(w->err_path);
    mo_task_release(w->task);
    mo__free(w);
}

void mo__walk_maybe_free(struct mo__walk *w)
{
    if (w->task_over && !w->in_step && !(w->par && mo__walk_par_busy(w))) walk_free(w);
}

static void walk_end(struct mo__walk *w, int err)
{
    walk_close_all(w);
    w->ended = true;
    w->done(w->done_arg, err, err && err != MO_ECANCELED ? w->err_path : NULL, &w->totals);
}

void mo__walk_abort(struct mo__walk *w, int err)
{
    if (w->ended) return;
    w->cancelled = true;
    walk_end(w, err);
    mo_task_stop(w->task); /* last: it may free the walk */
}

/* One unit of either engine: an enum mo__walk_unit, or the error that
 * stops the walk. */
static int walk_any_unit(struct mo__walk *w)
{
    return w->par ? mo__walk_par_unit(w) : walk_unit(w);
}

/* The task's step: units of work for about WALK_STEP. Units cost from a
 * microsecond (a pop) to a hundred (a batch of a huge directory); the
 * cooperator sizes its batches of steps from their measured cost, which is
 * only reliable if steps cost about the same: hence steps of about equal
 * time rather than one unit each. */
static int walk_task_step(mo_task_t *task, void *arg)
{
    struct mo__walk *w = arg;
    if (w->ended) return MO_DONE;
    w->in_step = true;
    int64_t end = mo_hrtime() + WALK_STEP;
    int r;
    /* A visit() may pause the task (mo_walk_pause()): stop at once. */
    do r = walk_any_unit(w);
    while (r == MO__WALK_GO && !w->cancelled && !task->pauses && mo_hrtime() < end);
    w->in_step = false;
    if (w->task_over) { /* cancelled from visit(), and the task stopped */
        mo__walk_maybe_free(w);
        return MO_DONE;
    }
    if (r == MO__WALK_WAIT && !w->cancelled) { /* a job's completion resumes the task */
        w->paused = true;
        mo_task_pause(task);
        return MO_CONTINUE;
    }
    if (r == MO__WALK_GO && !w->cancelled) return MO_CONTINUE;
    if (!w->ended) walk_end(w, r == MO__WALK_END ? 0 : r);
    return MO_DONE;
}

/* The task is over: done, stopped by a cancel, or stopped from outside
 * (mo_cooperator_stop(), or mo_loop_free() in the middle of the walk),
 * which ends the walk as a cancel would, so that done() still runs and
 * releases what it holds (mo_walk()'s reference to its Deferred). The
 * walk's memory goes once nothing runs it. */
static void walk_task_over(mo_result_t *result, void *arg)
{
    struct mo__walk *w = arg;
    mo_result_set(result, NULL, NULL); /* MO_ECANCELED from a stop: handled */
    if (!w->ended) {
        w->cancelled = true;
        walk_end(w, MO_ECANCELED);
    }
    w->task_over = true;
    mo__walk_maybe_free(w);
}

int mo__walk_cancel(struct mo__walk *w)
{
    if (!w) return MO_EINVAL;
    if (w->ended) return MO_EALREADY;
    mo__walk_abort(w, MO_ECANCELED);
    return 0;
}

/* Starts the walk's task; on error the walk is freed. */
static int walk_go(struct mo__walk *w)
{
    struct mo_task_opts topts = {.slice = w->slice};
    int err = mo_cooperate(w->loop, walk_task_step, w, &topts, &w->task);
    if (err) {
        walk_free(w);
        return err;
    }
    mo_deferred_t *d = mo_task_deferred(w->task);
    err = mo_deferred_add_both(d, walk_task_over, w);
    mo_deferred_unref(d);
    if (err) { /* cannot happen with the inline callback pairs; stay safe */
        mo_task_stop(w->task);
        return err;
    }
    return 0;
}

/* Allocates what the engine needs once `top` is in w->path. */
static int walk_setup(struct mo__walk *w, const char *top)
{
    size_t len = strlen(top);
    int err = mo__walk_grow((void **)&w->path, &w->pcap, len + 1, 1);
    if (err) return err;
    memcpy(w->path, top, len + 1);
    if (w->flags & MO_WALK_PARALLEL) return mo__walk_par_new(w);
    if ((err = frame_new(w, len)) != 0) return err;
    w->frames[0].phase = PH_OPEN;
    return 0;
}

/* Makes a walk, not started yet. */
static int walk_new(mo_loop_t *loop, const char *top, mo_walk_visit_fn visit, void *arg,
                    const mo_walk_opts *opts, struct mo__walk **wp)
{
    mo_walk_opts o = opts ? *opts : (mo_walk_opts){0};
    unsigned known = MO_WALK_PIECES | MO_WALK_PARALLEL | MO_WALK_FOLLOW | MO_WALK_XDEV;
    if (!loop || !top || !visit || o.slice < 0 || (o.flags & ~known)) return MO_EINVAL;
    struct mo__walk *w = mo__calloc(1, sizeof(*w));
    if (!w) return MO_ENOMEM;
    *w = (struct mo__walk){.loop = loop,
                           .visit = visit,
                           .arg = arg,
                           .on_error = o.on_error,
                           .flags = o.flags,
                           .oflags = mo__walk_oflags(o.flags),
                           .max_fds = MO_WALK_MAX_FDS,
                           .slice = o.slice};
    int err = walk_setup(w, top);
    if (err) {
        walk_free(w);
        return err;
    }
    *wp = w;
    return 0;
}

int mo__walk_start(mo_loop_t *loop, const char *top, mo_walk_visit_fn visit, void *arg,
                   const mo_walk_opts *opts, mo__walk_done_fn done, void *done_arg,
                   struct mo__walk **wp)
{
    struct mo__walk *w;
    if (!done) return MO_EINVAL;
    int err = walk_new(loop, top, visit, arg, opts, &w);
    if (err) return err;
    w->done = done;
    w->done_arg = done_arg;
    if ((err = walk_go(w)) != 0) return err;
    if (wp) *wp = w;
    return 0;
}

/* ---- the Deferred ---- */

/* Fires the Deferred and drops the walk's reference to it. A cancel fires
 * it too: from mo_deferred_cancel()'s canceller (which then has nothing
 * left to do), or when the walk's task was stopped from outside. */
static void walk_deferred_done(void *arg, int err, const char *path, const mo_walk_totals *totals)
{
    mo_deferred_t *d = arg;
    if (err == MO_ECANCELED) {
        mo_deferred_fail(d, err, "mo_walk", NULL);
    } else if (err) {
        mo_deferred_fail(d, err, "mo_walk", "%s", path ? path : "");
    } else {
        mo_walk_totals *t = mo__malloc(sizeof(*t));
        if (t) *t = *totals;
        if (t)
            mo_deferred_callback(d, t, mo__free);
        else
            mo_deferred_fail(d, MO_ENOMEM, "mo_walk", "%s", "");
    }
    mo_deferred_unref(d);
}

static void walk_canceller(mo_deferred_t *d, void *arg)
{
    (void)d;
    mo__walk_cancel(arg);
}

int mo_walk(mo_loop_t *loop, const char *top, mo_walk_visit_fn visit, void *arg,
            const mo_walk_opts *opts, mo_deferred_t **dp)
{
    struct mo__walk *w;
    mo_deferred_t *d;
    if (!dp) return MO_EINVAL;
    int err = walk_new(loop, top, visit, arg, opts, &w);
    if (err) return err;
    if ((err = mo_deferred_new(loop, walk_canceller, w, &d)) != 0) {
        walk_free(w);
        return err;
    }
    w->done = walk_deferred_done;
    w->done_arg = mo_deferred_ref(d); /* the walk's own reference */
    if ((err = walk_go(w)) != 0) {
        mo_deferred_unref(d);
        mo_deferred_unref(d);
        return err;
    }
    *dp = d;
    return 0;
}

/* The walk behind a Deferred that mo_walk() gave, if it is still running. */
static int walk_of(mo_deferred_t *d, struct mo__walk **wp)
{
    if (!d || d->canceller != walk_canceller) return MO_EINVAL;
    if (mo_deferred_fired(d)) return MO_EALREADY; /* it fires when the walk ends */
    *wp = d->canceller_arg;
    return 0;
}

int mo_walk_pause(mo_deferred_t *d)
{
    struct mo__walk *w;
    int err = walk_of(d, &w);
    return err ? err : mo_task_pause(w->task);
}

int mo_walk_resume(mo_deferred_t *d)
{
    struct mo__walk *w;
    int err = walk_of(d, &w);
    return err ? err : mo_task_resume(w->task);
}
