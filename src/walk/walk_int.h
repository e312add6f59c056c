/* The walk layer's internals: the engines under the Deferred-returning
 * mo_walk(). walk.c holds the sequential engine and the life cycle both
 * engines share; walk_par.c the parallel one. Uses the layers below
 * (core, deferred, work). */
#ifndef MORSEL_WALK_INT_H
#define MORSEL_WALK_INT_H

#include "morsel/walk.h"
#include "work/work_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>

#include <sys/types.h>

struct mo__walk_par;
struct frame;

/* What one unit of work of either engine returns, or the negative MO_E*
 * code of the error that stops the walk. */
enum mo__walk_unit {
    MO__WALK_GO = 0,  /* more to do */
    MO__WALK_END = 1, /* the walk is over: every directory was visited */
    MO__WALK_WAIT = 2 /* parallel mode: nothing to do until a job completes */
};

/* Called once when a walk ends: err is 0, MO_ECANCELED, or the error that
 * stopped it with `path` the directory it concerns (NULL if none, or if
 * copying the path ran out of memory); totals is valid during the call. */
typedef void (*mo__walk_done_fn)(void *arg, int err, const char *path,
                                 const mo_walk_totals *totals);

/* A directory's identity: what a re-opened directory and a loop are
 * recognised by. */
struct mo__walk_id {
    dev_t dev;
    ino_t ino;
};

/* A listing being read: getdents64 records as the kernel writes them, read
 * straight into `buf`, and the names that point into them (a name is the
 * record's d_name, so no name is copied). */
struct mo__walk_list {
    char *buf;
    size_t used, cap;
    mo_walk_name *names;
    size_t count, ncap;
};

/* What parsing a listing needs to know beyond the records. Loop thread or
 * a job's worker: ancestor() must only read what does not change during
 * the walk. */
struct mo__walk_scan {
    int dfd;        /* the directory being listed: names are typed relative to it */
    unsigned flags; /* the walk's (MO_WALK_FOLLOW) */
    /* MO_WALK_FOLLOW: whether a directory is on the path from top to the
     * one being listed, that one included. */
    bool (*ancestor)(const void *ctx, const struct mo__walk_id *id);
    const void *ctx;
    size_t dirs;   /* out: names typed MO_WALK_DIR */
    size_t marked; /* out: names marked with an error (mo__walk_mark) */
};

/* A walk. Owned by its cooperator task: it is freed once the task is over,
 * no step is running, and (parallel mode) no job of it is on a worker. */
struct mo__walk {
    mo_loop_t *loop;
    mo_walk_visit_fn visit;
    void *arg;
    mo_walk_error_fn on_error;
    unsigned flags;
    int oflags; /* how directories are opened (mo__walk_oflags) */
    int64_t slice;
    dev_t top_dev; /* MO_WALK_XDEV: top's device, once top is open */
    /* The sequential engine (walk.c). */
    struct frame *frames; /* frames[0, finit) have been initialised */
    size_t depth, finit, fcap;
    size_t max_fds; /* frames with an open descriptor at most */
    char *path;     /* the top frame's path, NUL-terminated; `top` in parallel mode */
    size_t pcap;
    /* The parallel engine (walk_par.c), or NULL. */
    struct mo__walk_par *par;
    char *err_path;
    char *mark_path; /* a marked name's path, made to report it */
    size_t mark_cap;
    bool cancelled; /* the walk was stopped: its descriptors are closed */
    bool ended;     /* done() was called */
    bool in_step;   /* walk_task_step() is running */
    bool task_over; /* the task is over: free the walk as soon as nothing runs */
    bool paused;    /* parallel mode: the task waits for a job */
    mo_task_t *task;
    mo_walk_totals totals;
    mo__walk_done_fn done;
    void *done_arg;
};

/* Starts a walk driven by the loop; done() runs once at the end (never
 * from within this call). Errors: MO_EINVAL (NULL loop, top or visit,
 * negative slice, unknown flags), MO_ENOMEM, and in parallel mode MO_EAGAIN
 * (the loop's pool could not start). */
int mo__walk_start(mo_loop_t *loop, const char *top, mo_walk_visit_fn visit, void *arg,
                   const mo_walk_opts *opts, mo__walk_done_fn done, void *done_arg,
                   struct mo__walk **wp);

/* Stops a walk that has not ended: closes every descriptor it holds on the
 * loop thread at once (parallel mode: those of reads in progress on workers
 * when each read returns) and calls done(MO_ECANCELED) before returning;
 * the walk's memory is freed then or, from visit() or on_error(), when
 * they return. The walk must not be used after done() ran. */
int mo__walk_cancel(struct mo__walk *w);

/* ---- shared by the two engines: the life cycle (walk.c) ---- */

/* Reports an error on `path`: 0 if the walk goes on (on_error was called),
 * else `err`, recorded as the error that stops the walk. */
int mo__walk_fail(struct mo__walk *w, const char *path, int err);

/* Records `err` on `path` as the error that stops the walk; returns err. */
int mo__walk_fatal(struct mo__walk *w, const char *path, int err);

/* Gives visit() the listing names[0, *count) of `dir`, at `depth`, after
 * reporting the errors marked in it (`marked` of them; loops are taken
 * out, other names stay as MO_WALK_UNKNOWN); `more`: more pieces follow.
 * On return *count is what visit() left. Returns 0, MO_ECANCELED
 * (cancelled from visit or on_error), or the error that stops the walk (a
 * marked error without on_error, MO_ENOMEM). */
int mo__walk_visit(struct mo__walk *w, const char *dir, mo_walk_name *names, size_t *count,
                   size_t marked, bool more, size_t depth);

/* Frees the walk if nothing runs it any more (see struct mo__walk). */
void mo__walk_maybe_free(struct mo__walk *w);

/* Ends a walk from outside a step (a job's completion): done(err), then
 * the task stops. */
void mo__walk_abort(struct mo__walk *w, int err);

/* Grows *p (an array of *cap elements of `size` bytes) to hold at least
 * `need`, doubling. MO_ENOMEM leaves it as it was. Loop thread or a job's
 * own worker: it touches only what it is given. */
int mo__walk_realloc(void **p, size_t *cap, size_t need, size_t size);

static inline int mo__walk_grow(void **p, size_t *cap, size_t need, size_t size)
{
    return need <= *cap ? 0 : mo__walk_realloc(p, cap, need, size);
}

/* Frees *p if it grew past `keep` bytes (a huge directory made it large);
 * the next use grows it again. */
static inline void mo__walk_shrink(void **p, size_t *cap, size_t size, size_t keep)
{
    if (*cap * size <= keep) return;
    mo__free(*p);
    *p = NULL;
    *cap = 0;
}

/* ---- shared by the two engines: directories (listing.c) ----
 * Each of these touches only what it is given: loop thread or a worker. */

/* How the walk opens directories: without following a symlink unless it
 * follows them (MO_WALK_FOLLOW). */
static inline int mo__walk_oflags(unsigned flags)
{
    return O_RDONLY | O_DIRECTORY | O_CLOEXEC | (flags & MO_WALK_FOLLOW ? 0 : O_NOFOLLOW);
}

/* MO_WALK_FOLLOW: a listed name whose stat() failed carries its errno in
 * its type until mo__walk_visit() reports it (MO_ELOOP: a loop, never
 * listed; another error: listed as MO_WALK_UNKNOWN, as find -L lists it).
 * No DT_* value reaches MO__WALK_MARK. */
#define MO__WALK_MARK 0x80

static inline uint8_t mo__walk_mark(int err)
{
    return (uint8_t)(MO__WALK_MARK | (-err < 0x7f ? -err : EIO));
}

static inline int mo__walk_marked_err(uint8_t type)
{
    return -(int)(type & 0x7f);
}

/* Whether an open(2) error means the process is out of descriptors. */
static inline bool mo__walk_starved(int err)
{
    return err == MO_EMFILE || err == MO_ENFILE;
}

/* Stores fd's identity. Returns 0 or the negative errno of fstat(). */
int mo__walk_id_of(int fd, struct mo__walk_id *id);

static inline bool mo__walk_id_eq(const struct mo__walk_id *a, const struct mo__walk_id *b)
{
    return a->dev == b->dev && a->ino == b->ino;
}

/* Closes *fd (set to -1) after recording its identity in *id, so that it
 * can be re-opened and recognised later. Leaves it open if fstat() fails
 * (returns false then). */
bool mo__walk_evict(int *fd, struct mo__walk_id *id);

/* Re-opens the directory `id` at rel[0, len) ("/"-separated names, not
 * empty) relative to `base` (a directory fd, or AT_FDCWD), in pieces
 * shorter than PATH_MAX however long rel is (rel is modified during the
 * call and restored). Returns the new fd, or MO_ENOENT if what is there now
 * is another directory (it was moved), or the open error. */
int mo__walk_reopen(int base, char *rel, size_t len, int oflags, const struct mo__walk_id *id);

/* The length of dir[0, dlen) joined with a name of `len` bytes, as
 * os.path.join does ("/" between them unless dir is empty or ends with
 * one). */
static inline size_t mo__walk_join_len(const char *dir, size_t dlen, size_t len)
{
    return dlen + (dlen && dir[dlen - 1] != '/') + len;
}

/* Writes dir[0, dlen) joined with name[0, len), NUL-terminated, to dst,
 * which has room for mo__walk_join_len() + 1 bytes (dir may be dst itself).
 * Returns the joined length. */
size_t mo__walk_join(char *dst, const char *dir, size_t dlen, const char *name, size_t len);

/* Reads one getdents64 batch of up to `want` bytes from fd, appended to the
 * listing's records (the names follow if the buffer moves). Returns the
 * bytes read, 0 at the end of the directory, or a negative MO_E* code. */
long mo__walk_list_read(struct mo__walk_list *l, int fd, size_t want);

/* Appends the names of the records buf[from, used), "." and ".." left out,
 * typed (see struct mo__walk_scan; MO_WALK_FOLLOW may mark names with an
 * error: mo__walk_mark).
 * Returns 0 or MO_ENOMEM (no name appended). */
int mo__walk_list_parse(struct mo__walk_list *l, size_t from, struct mo__walk_scan *scan);

/* Unused room past which mo__walk_list_fit() gives a listing's buffer back. */
#define MO__WALK_SLACK 4096

/* Gives back the listing's unused buffer if it is large (at least
 * MO__WALK_SLACK): for a listing kept while the walk goes deeper. */
void mo__walk_list_fit(struct mo__walk_list *l);

/* Empties the listing, freeing its buffers if they grew past `keep`
 * bytes. */
void mo__walk_list_reset(struct mo__walk_list *l, size_t keep);

void mo__walk_list_free(struct mo__walk_list *l);

/* ---- the parallel engine (walk_par.c) ---- */

/* Sets up w->par; w->path holds `top`. Errors: MO_ENOMEM, MO_EAGAIN. */
int mo__walk_par_new(struct mo__walk *w);

/* One unit of work on the loop thread: an enum mo__walk_unit, or the
 * error that stops the walk. */
int mo__walk_par_unit(struct mo__walk *w);

/* Takes queued jobs back, closes every descriptor the loop thread holds,
 * and marks the jobs on workers so that their results are discarded. */
void mo__walk_par_stop(struct mo__walk *w);

/* Whether jobs of the walk are still on workers (the walk cannot be freed). */
bool mo__walk_par_busy(const struct mo__walk *w);

void mo__walk_par_free(struct mo__walk *w);

/* For tests: keeps at most max_fds parent descriptors instead of
 * MO_WALK_MAX_FDS, so that a small tree exercises their eviction. */
void mo__walk_par_limit_fds(struct mo__walk *w, size_t max_fds);

#endif /* MORSEL_WALK_INT_H */
