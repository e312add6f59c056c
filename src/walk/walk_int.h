/* The walk layer's internals: the engines under the Deferred-returning
 * mo_walk(). walk.c holds the sequential engine and the life cycle both
 * engines share; walk_par.c the parallel one. Uses the layers below
 * (core, deferred, work). */
#ifndef MORSEL_WALK_INT_H
#define MORSEL_WALK_INT_H

#include "morsel/walk.h"
#include "work/work_int.h"

#include <stdbool.h>
#include <sys/stat.h>

struct mo__walk_par;
struct frame;

/* Called once when a walk ends: err is 0, MO_ECANCELED, or the error that
 * stopped it with `path` the directory it concerns (NULL if none, or if
 * copying the path ran out of memory); totals is valid during the call. */
typedef void (*mo__walk_done_fn)(void *arg, int err, const char *path,
                                 const mo_walk_totals *totals);

/* A walk. Owned by its cooperator task: it is freed once the task is over,
 * no step is running, and (parallel mode) no job of it is on a worker. */
struct mo__walk {
    mo_loop_t *loop;
    mo_walk_visit_fn visit;
    void *arg;
    mo_walk_error_fn on_error;
    unsigned flags;
    int64_t slice;
    /* The sequential engine (walk.c). */
    struct frame *frames; /* frames[0, finit) have been initialised */
    size_t depth, finit, fcap;
    char *path; /* the top frame's path, NUL-terminated; `top` in parallel mode */
    size_t pcap;
    char *buf; /* the getdents64 batch */
    /* The parallel engine (walk_par.c), or NULL. */
    struct mo__walk_par *par;
    char *err_path;
    char *epath; /* MO_WALK_FOLLOW: the path of a name that could not be followed */
    size_t epcap;
    dev_t top_dev;  /* MO_WALK_XDEV: top's file system */
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

/* ---- shared by the two engines ---- */

/* Reports an error on `path`: 0 if the walk goes on (on_error was called),
 * else `err`, recorded as the error that stops the walk. */
int mo__walk_fail(struct mo__walk *w, const char *path, int err);

/* Records `err` on `path` as the error that stops the walk; returns err. */
int mo__walk_fatal(struct mo__walk *w, const char *path, int err);

/* Frees the walk if nothing runs it any more (see struct mo__walk). */
void mo__walk_maybe_free(struct mo__walk *w);

/* Ends a walk from outside a step (a job's completion): done(err), then
 * the task stops. */
void mo__walk_abort(struct mo__walk *w, int err);

/* MO_WALK_FOLLOW: a listed name that could not be followed has this bit
 * set in its type, and the errno in the bits below (127 at most); the
 * engines report such names before visit() sees the listing
 * (mo__walk_drop_errors()). */
#define MO__WALK_TYPE_ERR 0x80

/* The open flags of a directory: O_NOFOLLOW unless the walk follows links. */
int mo__walk_open_flags(unsigned flags);

/* MO_WALK_FOLLOW: the type of what the listed name (of type `type`, in the
 * directory dirfd) leads to, following symbolic links, as find -L types
 * it: a broken link stays MO_WALK_LNK; a name that cannot be followed
 * otherwise (a link loop, EACCES) is marked MO__WALK_TYPE_ERR. *st holds
 * the target's status when the result is MO_WALK_DIR. Other types as
 * given, except MO_WALK_UNKNOWN, which is typed. Any thread. */
uint8_t mo__walk_follow_type(int dirfd, const char *name, uint8_t type, struct stat *st);

/* The error-marked name, for a directory found again below itself. */
static inline uint8_t mo__walk_type_err(int err)
{
    int e = -err;
    return (uint8_t)(MO__WALK_TYPE_ERR | (e > 0 && e < 128 ? e : 5 /* EIO */));
}

/* Reports each error-marked name of names[0, *count), as `dir` joined
 * with the name, with mo__walk_fail(), then takes out those of a loop
 * (MO_ELOOP) and lists the others as MO_WALK_UNKNOWN, keeping the order.
 * Returns 0, or the error that stops the walk. */
int mo__walk_drop_errors(struct mo__walk *w, const char *dir, mo_walk_name *names, size_t *count);

/* ---- the parallel engine (walk_par.c) ---- */

/* Sets up w->par; w->path holds `top`. Errors: MO_ENOMEM, MO_EAGAIN. */
int mo__walk_par_new(struct mo__walk *w);

/* One unit of work on the loop thread: 0 to go on, 1 when the walk is
 * over, 2 when it must wait for a job (the task is to pause), or the error
 * that stops it. */
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

/* Grows *p (an array of *cap elements of `size` bytes) to hold at least
 * `need`, doubling. MO_ENOMEM leaves it as it was. Loop thread or a job's
 * own worker: it touches only what it is given. */
int mo__walk_grow(void **p, size_t *cap, size_t need, size_t size);

/* Frees *p if it grew past `keep` bytes (a huge directory made it large);
 * the next use grows it again. */
void mo__walk_shrink(void **p, size_t *cap, size_t size, size_t keep);

#endif /* MORSEL_WALK_INT_H */
