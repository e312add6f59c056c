/* The asynchronous directory walk (DESIGN rules 16–17).
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
 * - At most MO_WALK_MAX_FDS frames have an open fd: pushing frame i closes
 *   frame i - MO_WALK_MAX_FDS after recording its (dev, ino); popping to a
 *   closed frame re-opens it as ".." of its child and checks (dev, ino).
 *   With MO_WALK_FOLLOW, ".." is not the way back through a link: the top
 *   frame keeps its fd, and a closed frame is re-opened name by name from
 *   its nearest open ancestor.
 * - With MO_WALK_FOLLOW or MO_WALK_XDEV every frame's (dev, ino) is
 *   recorded when it is opened: the ancestors a followed directory is
 *   checked against (a loop), and top's file system.
 * - A frame's names[0, count) point into its arena; names[0, next) have been
 *   considered for descent.
 */
#include "walk/walk_int.h"

#include <dirent.h>

#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define WALK_BUF  (8 * 1024)                      /* bytes per getdents64 batch: ~60 us of ext4 */
#define WALK_STEP MO_USEC(100)                    /* work per cooperator step */
#define WALK_SCAN 8192                            /* names scanned for subdirectories per unit */
#define WALK_KEEP (256 * 1024)                    /* a popped frame keeps buffers up to this size */
#define WALK_IDS  (MO_WALK_FOLLOW | MO_WALK_XDEV) /* modes that record (dev, ino) */

/* The kernel's record, as getdents64 writes it. */
struct kdirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

enum { PH_OPEN, PH_READ, PH_VISIT, PH_DESCEND };

struct frame {
    int fd;
    uint8_t phase;
    bool visited; /* visit() has seen (a piece of) its listing */
    bool has_err; /* MO_WALK_FOLLOW: names[shown, count) has error-marked names */
    dev_t dev;    /* identity, recorded when fd is closed early (or opened: WALK_IDS) */
    ino_t ino;
    size_t pathlen;
    mo_walk_name *names;
    size_t count, cap, next;
    size_t shown;      /* MO_WALK_PIECES: names already given to visit */
    size_t piece_used; /* MO_WALK_PIECES: arena bytes before the last batch */
    char *arena;
    size_t used, acap;
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

int mo__walk_grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 16;
    while (n < need) n *= 2;
    if (n > SIZE_MAX / size) return MO_ENOMEM;
    void *q = mo__realloc(*p, n * size);
    if (!q) return MO_ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}

void mo__walk_shrink(void **p, size_t *cap, size_t size, size_t keep)
{
    if (*cap * size <= keep) return;
    mo__free(*p);
    *p = NULL;
    *cap = 0;
}

/* Makes room for `bytes` more bytes of names and `n` more entries. Names
 * already stored follow the arena if it moves. */
static int frame_reserve(struct frame *f, size_t bytes, size_t n)
{
    uintptr_t old = (uintptr_t)f->arena;
    int err = mo__walk_grow((void **)&f->names, &f->cap, f->count + n, sizeof(mo_walk_name));
    if (!err) err = mo__walk_grow((void **)&f->arena, &f->acap, f->used + bytes, 1);
    if (err || (uintptr_t)f->arena == old) return err;
    for (size_t i = 0; i < f->count; i++)
        f->names[i].name = f->arena + ((uintptr_t)f->names[i].name - old);
    return 0;
}

/* Drops a popped frame's buffers if a huge directory made them large. */
static void frame_trim(struct frame *f)
{
    mo__walk_shrink((void **)&f->arena, &f->acap, 1, WALK_KEEP);
    mo__walk_shrink((void **)&f->names, &f->cap, sizeof(mo_walk_name), WALK_KEEP);
}

static void frame_close(struct frame *f)
{
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
}

/* Sets the path to path[0, plen) joined with `name` as os.path.join does. */
static int path_join(struct mo__walk *w, size_t plen, const char *name, size_t len, size_t *out)
{
    bool slash = plen && w->path[plen - 1] != '/';
    size_t n = plen + slash + len;
    int err = mo__walk_grow((void **)&w->path, &w->pcap, n + 1, 1);
    if (err) return err;
    if (slash) w->path[plen] = '/';
    memcpy(w->path + plen + slash, name, len);
    w->path[n] = '\0';
    *out = n;
    return 0;
}

/* ---- errors ---- */

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

/* The two on the current path of the sequential walk. */
static int walk_fatal(struct mo__walk *w, int err)
{
    return mo__walk_fatal(w, w->path, err);
}

static int walk_fail(struct mo__walk *w, int err)
{
    return mo__walk_fail(w, w->path, err);
}

/* ---- following links (MO_WALK_FOLLOW), shared by both engines ---- */

int mo__walk_open_flags(unsigned flags)
{
    int nofollow = flags & MO_WALK_FOLLOW ? 0 : O_NOFOLLOW;
    return O_RDONLY | O_DIRECTORY | O_CLOEXEC | nofollow;
}

uint8_t mo__walk_follow_type(int dirfd, const char *name, uint8_t type, struct stat *st)
{
    if (type != MO_WALK_LNK && type != MO_WALK_DIR && type != MO_WALK_UNKNOWN) return type;
    if (fstatat(dirfd, name, st, 0) == 0) return (uint8_t)IFTODT(st->st_mode);
    int err = -errno;
    /* A link to nothing is listed as the link it is, as find -L does. */
    if (err == MO_ENOENT && fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW) == 0)
        return (uint8_t)IFTODT(st->st_mode);
    return err == MO_ENOENT ? MO_WALK_UNKNOWN : mo__walk_type_err(err);
}

int mo__walk_drop_errors(struct mo__walk *w, const char *dir, mo_walk_name *names, size_t *count)
{
    size_t k = 0, dlen = strlen(dir);
    bool slash = dlen && dir[dlen - 1] != '/';
    for (size_t i = 0; i < *count; i++) {
        if (!(names[i].type & MO__WALK_TYPE_ERR)) {
            names[k++] = names[i];
            continue;
        }
        int code = -(names[i].type & ~MO__WALK_TYPE_ERR);
        int err = mo__walk_grow((void **)&w->epath, &w->epcap, dlen + slash + names[i].len + 1, 1);
        if (err) return mo__walk_fatal(w, dir, err);
        memcpy(w->epath, dir, dlen);
        if (slash) w->epath[dlen] = '/';
        memcpy(w->epath + dlen + slash, names[i].name, names[i].len + 1);
        err = mo__walk_fail(w, w->epath, code);
        if (err || w->cancelled) return err ? err : MO_ECANCELED;
        if (code == MO_ELOOP) continue;
        names[k] = names[i]; /* cannot be examined, but is there: listed, untyped */
        names[k++].type = MO_WALK_UNKNOWN;
    }
    *count = k;
    return 0;
}

/* ---- the frame stack ---- */

/* Closes the descriptor MO_WALK_MAX_FDS frames above frame i, after
 * recording which directory it was, so that at most that many are open
 * however deep the tree is. */
static void evict_ancestor(struct mo__walk *w, size_t i)
{
    if (i < MO_WALK_MAX_FDS) return;
    if (i == MO_WALK_MAX_FDS && (w->flags & MO_WALK_FOLLOW)) return; /* the top stays */
    struct frame *old = &w->frames[i - MO_WALK_MAX_FDS];
    struct stat st;
    if (old->fd < 0) return;
    if (!(w->flags & WALK_IDS)) { /* else recorded when opened */
        if (fstat(old->fd, &st) != 0) return;
        old->dev = st.st_dev;
        old->ino = st.st_ino;
    }
    frame_close(old);
}

/* WALK_IDS: records the identity of the top frame, just opened. Returns 1
 * if it is on another file system than top's (MO_WALK_XDEV: not entered),
 * else 0, or an error. */
static int frame_identify(struct mo__walk *w, struct frame *f)
{
    struct stat st;
    if (!(w->flags & WALK_IDS)) return 0;
    if (fstat(f->fd, &st) != 0) return -errno;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    if (w->depth == 1) w->top_dev = st.st_dev;
    return (w->flags & MO_WALK_XDEV) && st.st_dev != w->top_dev;
}

/* MO_WALK_FOLLOW: whether (dev, ino) is the top frame's directory or one
 * of its ancestors on the walk's path (a loop through links). */
static bool is_ancestor(const struct mo__walk *w, const struct stat *st)
{
    for (size_t i = w->depth; i-- > 0;)
        if (w->frames[i].ino == st->st_ino && w->frames[i].dev == st->st_dev) return true;
    return false;
}

/* MO_WALK_FOLLOW: re-opens frames[k], whose fd was evicted, name by name
 * from its nearest open ancestor (the top's stays open), through the
 * links the walk followed, and checks that it is the same directory. */
static int reopen_by_names(struct mo__walk *w, size_t k)
{
    size_t j = k;
    while (w->frames[j].fd < 0) j--; /* frames[0] is open */
    int fd = w->frames[j].fd;
    char name[NAME_MAX + 1];
    for (size_t m = j + 1; m <= k; m++) {
        size_t from = w->frames[m - 1].pathlen;
        from += from && w->path[from - 1] != '/';
        size_t len = w->frames[m].pathlen - from;
        if (len > NAME_MAX) len = NAME_MAX; /* cannot happen: a listed name */
        memcpy(name, w->path + from, len);
        name[len] = '\0';
        int next = openat(fd, name, mo__walk_open_flags(w->flags));
        int e = errno;
        if (fd != w->frames[j].fd) close(fd);
        if (next < 0) return -e;
        fd = next;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_dev != w->frames[k].dev || st.st_ino != w->frames[k].ino) {
        close(fd);
        return MO_ENOENT;
    }
    w->frames[k].fd = fd;
    return 0;
}

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
    f->visited = false;
    f->has_err = false;
    f->pathlen = pathlen;
    f->count = f->next = f->shown = f->used = 0;
    return 0;
}

/* Pops the top frame. Climbing into an ancestor whose descriptor was
 * evicted re-opens it as ".." of the frame being popped, and checks that it
 * is the same directory. Returns 1 when the walk is over. */
static int walk_pop(struct mo__walk *w)
{
    struct frame *f = top_frame(w);
    int err = 0;
    if (w->depth > 1 && f[-1].fd < 0 && (w->flags & MO_WALK_FOLLOW)) {
        err = reopen_by_names(w, w->depth - 2);
    } else if (w->depth > 1 && f[-1].fd < 0 && f->fd >= 0) {
        struct stat st;
        int fd = openat(f->fd, "..", mo__walk_open_flags(0));
        if (fd >= 0 && (fstat(fd, &st) != 0 || st.st_dev != f[-1].dev || st.st_ino != f[-1].ino)) {
            close(fd);
            fd = -1;
            errno = ENOENT;
        }
        f[-1].fd = fd;
        if (fd < 0) err = -errno;
    }
    frame_close(f);
    frame_trim(f);
    if (--w->depth == 0) return 1;
    w->path[top_frame(w)->pathlen] = '\0';
    /* Without its descriptor the parent cannot go on, even with on_error. */
    return err ? walk_fatal(w, err) : 0;
}

/* Pushes the subdirectory `name` of the top frame and opens it relative to
 * the top frame's descriptor. If that fails, reports and pops it again. */
static int walk_push(struct mo__walk *w, const mo_walk_name *name)
{
    struct frame *parent = top_frame(w);
    size_t pathlen;
    int err = path_join(w, parent->pathlen, name->name, name->len, &pathlen);
    if (!err) err = frame_new(w, pathlen);
    if (err) return err;
    parent = top_frame(w) - 1; /* frame_new() may have moved the frames */
    evict_ancestor(w, w->depth - 1);
    struct frame *f = top_frame(w);
    f->fd = openat(parent->fd, name->name, mo__walk_open_flags(w->flags));
    /* A symlink put in the directory's place: not a directory to enter. */
    err = f->fd >= 0 ? frame_identify(w, f) : -errno;
    if (err == MO_ELOOP && !(w->flags & MO_WALK_FOLLOW)) err = MO_ENOTDIR;
    if (err == 1) return walk_pop(w); /* MO_WALK_XDEV: another file system */
    if (!err) return 0;
    err = walk_fail(w, err);
    return err ? err : walk_pop(w);
}

/* ---- the phases of the top frame ---- */

/* Gives visit() the names not shown yet; `more` says whether more follow.
 * Returns 0, or the error that stops the walk. */
static int walk_visit(struct mo__walk *w, struct frame *f, int more)
{
    if (f->has_err) {
        size_t n = f->count - f->shown;
        int err = mo__walk_drop_errors(w, w->path, f->names + f->shown, &n);
        if (err) return err;
        f->count = f->shown + n;
        f->has_err = false;
    }
    mo_walk_names names = {f->names + f->shown, f->count - f->shown, more};
    w->totals.dirs += !f->visited;
    f->visited = true;
    w->totals.names += names.count;
    w->visit(w->arg, w->path, &names);
    if (w->cancelled) return MO_ECANCELED;
    if (names.count > f->count - f->shown) names.count = f->count - f->shown;
    f->count = f->shown + names.count;
    if (!(w->flags & MO_WALK_PIECES)) return 0;
    /* Only the subdirectories of a piece matter from now on; if it has none,
     * its names' bytes are free again, so a huge flat directory reuses one
     * batch's worth of arena. */
    size_t k = f->shown;
    for (size_t i = f->shown; i < f->count; i++)
        if (f->names[i].type == MO_WALK_DIR) f->names[k++] = f->names[i];
    if (k == f->shown) f->used = f->piece_used;
    f->count = f->shown = k;
    return 0;
}

/* Stores the batch of n bytes in w->buf as names of the top frame. */
static int walk_parse(struct mo__walk *w, struct frame *f, size_t n)
{
    /* A record is at least 24 bytes and holds its name and NUL. */
    int err = frame_reserve(f, n, n / 24 + 1);
    if (err) return err;
    f->piece_used = f->used;
    for (size_t off = 0; off < n;) {
        struct kdirent64 *d = (struct kdirent64 *)(w->buf + off);
        off += d->d_reclen;
        const char *s = d->d_name;
        if (s[0] == '.' && (s[1] == '\0' || (s[1] == '.' && s[2] == '\0'))) continue;
        size_t len = strlen(s);
        uint8_t type = d->d_type;
        struct stat st;
        if (w->flags & MO_WALK_FOLLOW) {
            type = mo__walk_follow_type(f->fd, s, type, &st);
            if (type == MO_WALK_DIR && is_ancestor(w, &st)) type = mo__walk_type_err(MO_ELOOP);
            f->has_err |= (type & MO__WALK_TYPE_ERR) != 0;
        } else if (type == DT_UNKNOWN && fstatat(f->fd, s, &st, AT_SYMLINK_NOFOLLOW) == 0) {
            type = (uint8_t)IFTODT(st.st_mode);
        }
        char *dst = f->arena + f->used;
        memcpy(dst, s, len + 1);
        f->used += len + 1;
        f->names[f->count++] = (mo_walk_name){dst, (uint32_t)len, type};
    }
    return 0;
}

/* Reads one batch. At the end of the listing, or after a read error the
 * caller chose to skip, the frame moves on to its visit. */
static int phase_read(struct mo__walk *w, struct frame *f)
{
    long n = syscall(SYS_getdents64, f->fd, w->buf, WALK_BUF);
    if (n <= 0) {
        f->phase = PH_VISIT;
        return n < 0 ? walk_fail(w, -errno) : 0;
    }
    if ((w->flags & MO_WALK_PIECES) && f->shown < f->count) {
        int err = walk_visit(w, f, 1);
        if (err) return err;
    }
    return walk_parse(w, f, (size_t)n);
}

/* Opens `top`: the only directory not opened relative to its parent. */
static int phase_open(struct mo__walk *w, struct frame *f)
{
    f->fd = openat(AT_FDCWD, w->path, mo__walk_open_flags(w->flags));
    int err = f->fd >= 0 ? frame_identify(w, f) : -errno;
    if (!err) {
        f->phase = PH_READ;
        return 0;
    }
    /* O_NOFOLLOW on a symlink answers ELOOP: to the caller it is not a
     * directory that can be walked. */
    if (err == MO_ELOOP && !(w->flags & MO_WALK_FOLLOW)) err = MO_ENOTDIR;
    err = walk_fail(w, err);
    return err ? err : walk_pop(w);
}

/* Enters the next subdirectory left in the listing, scanning at most
 * WALK_SCAN names; pops the frame when none is left. */
static int phase_descend(struct mo__walk *w, struct frame *f)
{
    size_t end = f->count - f->next > WALK_SCAN ? f->next + WALK_SCAN : f->count;
    for (size_t i = f->next; i < end; i++) {
        if (f->names[i].type != MO_WALK_DIR) continue;
        f->next = i + 1;
        return walk_push(w, &f->names[i]);
    }
    f->next = end;
    return end == f->count ? walk_pop(w) : 0;
}

/* One unit of work: a system call or a bounded scan. Returns 0 to go on, 1
 * when the walk is over, or the error that stops it. */
static int walk_unit(struct mo__walk *w)
{
    struct frame *f = top_frame(w);
    switch (f->phase) {
    case PH_OPEN:
        return phase_open(w, f);
    case PH_READ:
        return phase_read(w, f);
    case PH_VISIT:
        f->phase = PH_DESCEND;
        return walk_visit(w, f, 0);
    default:
        return phase_descend(w, f);
    }
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
    for (size_t i = 0; i < w->finit; i++) {
        mo__free(w->frames[i].names);
        mo__free(w->frames[i].arena);
    }
    if (w->par) mo__walk_par_free(w);
    mo__free(w->frames);
    mo__free(w->path);
    mo__free(w->buf);
    mo__free(w->err_path);
    mo__free(w->epath);
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

/* One unit of either engine: 0 to go on, 1 when over, 2 to wait (parallel
 * mode), or the error that stops the walk. */
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
    while (r == 0 && !w->cancelled && !task->pauses && mo_hrtime() < end);
    w->in_step = false;
    if (w->task_over) { /* cancelled from visit(), and the task stopped */
        mo__walk_maybe_free(w);
        return MO_DONE;
    }
    if (r == 2 && !w->cancelled) { /* a job's completion resumes the task */
        w->paused = true;
        mo_task_pause(task);
        return MO_CONTINUE;
    }
    if (r == 0 && !w->cancelled) return MO_CONTINUE;
    if (!w->ended) walk_end(w, r == 1 ? 0 : r);
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
    if (!(w->buf = mo__malloc(WALK_BUF))) return MO_ENOMEM;
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
