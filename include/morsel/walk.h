/* morsel — walk: the asynchronous directory walk (os.path.walk, DESIGN rules
 * 16–17).
 *
 * mo_walk() visits every directory under `top`, top-down, calling
 * visit(arg, dirname, names) on the loop thread for each one. The walk reads
 * in slices, as a cooperator task (task.h): no pass of it holds the loop
 * longer than its slice (the cooperator's, 1 ms by default), however large
 * a directory is, so timers and I/O on the same loop keep running while it
 * goes.
 *
 * The order is os.path.walk's: a directory's whole listing is visited, then
 * each of its subdirectories, in listing order, depth first. Names come in
 * the order the file system lists them (getdents order); "." and ".." are
 * never listed.
 *
 * Symbolic links are not followed, not even `top` itself, unless the walk
 * is asked to (MO_WALK_FOLLOW, below): a symlink to a directory is listed
 * with type MO_WALK_LNK and not entered, so a walk cannot loop. (As with
 * find, a `top` that ends in "/" names the directory the link points to.)
 * Directories are opened relative to their parent's descriptor (openat with
 * O_NOFOLLOW), read with large getdents64 batches and typed from d_type; a
 * no-follow fstatat is made only for a file system that gives no type. The
 * walk keeps at most MO_WALK_MAX_FDS descriptors open however deep the tree
 * is: past that depth an ancestor's descriptor is closed after its device
 * and inode are recorded, and re-opened when the walk climbs back (as ".."
 * of its child, or, when that is another directory or there is no
 * descriptor for it, by its path from `top`, relative to the working
 * directory if `top` is); if the re-opened directory is not the same one
 * (the tree was moved under the walk), that is an MO_ENOENT error on the
 * ancestor's path.
 * When the process runs out of descriptors (EMFILE, ENFILE), the walk closes
 * the oldest ones it holds the same way, keeps fewer from then on, and goes
 * on, as find does: it needs two free descriptors (parallel mode: three)
 * to make progress, and fails with MO_EMFILE only when it has no more to
 * give back.
 *
 * Following symbolic links (MO_WALK_FOLLOW) is find -L's walk: `top` and
 * every listed symlink are resolved; a symlink is listed with its target's
 * type (MO_WALK_DIR for a link to a directory, which the walk then enters,
 * unless visit() removes it), and only a dangling one keeps type
 * MO_WALK_LNK. A symlink whose resolution fails with ELOOP (a link to
 * itself, a cycle of links) and a link to a directory that is already on
 * the path from `top` to the one being listed (a file system loop: a link
 * to an ancestor or to the directory itself, or a directory below such a
 * link that is its own ancestor) are not listed: each is an MO_ELOOP error
 * on its path (reported to on_error, or stopping the walk), once per path
 * where it is met, and never entered. A directory on the current path
 * reached another way (a bind mount of an ancestor) is the same MO_ELOOP
 * error, found when it is entered. A symlink that cannot be examined for
 * another reason (EACCES: where it leads is not searchable) is an error on
 * its path too, reported before its directory's visit(), and stays listed,
 * as MO_WALK_UNKNOWN (find -L prints it and complains). Staying on one file system
 * (MO_WALK_XDEV) is find -xdev's walk: a directory whose device differs
 * from `top`'s is listed in its parent but not entered (no visit(), no
 * error). Each costs one fstat() per directory entered; MO_WALK_FOLLOW
 * also one stat() per listed symlink and subdirectory (find -L stats every
 * name).
 *
 * Parallel mode (MO_WALK_PARALLEL) reads directories on the loop's worker
 * pool (pool.h, mo_loop_pool()), several at once, and calls visit() on the
 * loop thread, one directory at a time, in no promised order (a directory is
 * still visited before anything below it). A job reads a few sibling
 * directories (up to 16; fewer when few are pending, so that every worker
 * gets some): a worker opens each with openat (O_NOFOLLOW unless the walk
 * follows links) relative to the parent's descriptor, which the loop thread
 * keeps open (and never closes) while a job uses it, reads its whole listing
 * with 64 KiB getdents64 calls into a buffer the job owns (with
 * MO_WALK_PIECES: up to 32 KiB per job per round, each piece visited before
 * the next is read), and types the names; the loop thread only visits
 * listings and hands out the subdirectories left in them. Bounds: at most
 * MO_WALK_MAX_DIRS directories in flight (queued, being read, or read and
 * waiting for visit()), so at most that many listings buffered; descriptors:
 * at most MO_WALK_MAX_FDS parents' kept, plus at most two per directory in
 * flight and one per job. Past MO_WALK_MAX_FDS, the oldest parent's
 * descriptor is closed after its device and inode are recorded, and a job
 * that needs it opens it again by the names from the nearest ancestor still
 * open (the top's descriptor stays open if it can), and checks (dev, ino): a
 * mismatch is MO_ENOENT on the directories being opened. When descriptors
 * run out, the walk keeps fewer parents' descriptors and runs fewer, smaller
 * jobs at once from then on; a job that could open nothing waits, holding no
 * descriptor, for another to end. Pruning works as in sequential mode: a
 * subdirectory removed from `names` is never opened. Errors, on_error and
 * cancelling work as in sequential mode, except that the first error
 * *processed* stops the walk (reads finish in any order), and descriptors
 * held by a read running on a worker at that time are closed when that read
 * returns (mo_loop_run() returns only after that).
 */
#ifndef MORSEL_WALK_H
#define MORSEL_WALK_H

#include "deferred.h"
#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Descriptors one sequential walk keeps open at most; in parallel mode,
 * parent descriptors kept. Fewer once the process ran out of them. */
#define MO_WALK_MAX_FDS 32

/* Parallel mode: directories in flight (queued, being read, or read and
 * waiting for visit()) at most. */
#define MO_WALK_MAX_DIRS 256

/* The type of a listed name: the values of <dirent.h>'s DT_* constants. */
enum mo_walk_type {
    MO_WALK_UNKNOWN = 0, /* the file vanished before it could be typed */
    MO_WALK_FIFO = 1,
    MO_WALK_CHR = 2,
    MO_WALK_DIR = 4,
    MO_WALK_BLK = 6,
    MO_WALK_REG = 8,
    MO_WALK_LNK = 10,
    MO_WALK_SOCK = 12
};

/* One listed name. `name` is NUL-terminated, `len` is strlen(name). */
typedef struct mo_walk_name {
    const char *name;
    uint32_t len;
    uint8_t type; /* enum mo_walk_type */
} mo_walk_name;

/* A directory's listing, as visit() receives it. visit may edit it to prune
 * the walk: remove entries by moving later ones down and lowering `count`
 * (mo_walk_names_remove() does this for one entry); the directories left in
 * names[0, count) are the ones the walk enters. visit may reorder entries.
 * It must not add entries or change the strings. The array and the strings
 * belong to the walk and are valid only during the call. */
typedef struct mo_walk_names {
    mo_walk_name *names;
    size_t count;
    /* MO_WALK_PIECES only: 1 if more pieces of this directory follow. */
    int more;
    /* The directory's depth: 0 for `top`, 1 for its subdirectories, ...;
     * its names are at depth + 1 (find's -maxdepth counts the same way).
     * (Added in 0.2; the fields above keep their place.) */
    size_t depth;
} mo_walk_names;

/* Removes names->names[i], keeping the others in order. O(count); to remove
 * many, compact the array in one pass instead. Out-of-range i is ignored. */
MO_EXTERN void mo_walk_names_remove(mo_walk_names *names, size_t i);

/* Called on the loop thread for each directory: `dirname` is its path, made
 * as os.path.join does (top, then "/" and each name; no "/" is added after
 * a path that ends with one). `dirname` is valid only during the call. */
typedef void (*mo_walk_visit_fn)(void *arg, const char *dirname, mo_walk_names *names);

/* Called on the loop thread for each error when the caller asked the walk to
 * go on after errors: `path` is the directory that could not be opened or
 * read, `err` the negative MO_E* code. The walk then skips what it could not
 * read and continues. */
typedef void (*mo_walk_error_fn)(void *arg, const char *path, int err);

enum mo_walk_flags {
    /* visit() receives each directory's listing in pieces, one per read
     * batch, as soon as each is read (names->more says whether more follow):
     * for a visit that does per-name work on huge directories, so that no
     * single call takes long. The order of directories is unchanged. */
    MO_WALK_PIECES = 1,
    /* Read directories on the loop's worker pool, several at once; visit()
     * still runs on the loop thread, one directory at a time, in no
     * promised order. See the top of this file. */
    MO_WALK_PARALLEL = 2,
    /* Follow symbolic links, `top` included, with loop detection by device
     * and inode (find -L). See the top of this file. */
    MO_WALK_FOLLOW = 4,
    /* Do not enter directories on another file system than `top`'s (find
     * -xdev). See the top of this file. */
    MO_WALK_XDEV = 8
};

/* Options of a walk; zero-initialise, then set what you need. */
typedef struct mo_walk_opts {
    unsigned flags;            /* enum mo_walk_flags */
    mo_walk_error_fn on_error; /* NULL: the first error stops the walk */
    /* The longest the walk runs in one turn, in ns: a cooperator task's
     * slice (task.h); 0: its share of the loop's slice (default 1 ms). */
    int64_t slice;
} mo_walk_opts;

/* What a walk that ran to the end fires its Deferred with (a
 * mo_walk_totals *, owned by the Deferred). */
typedef struct mo_walk_totals {
    uint64_t dirs;   /* directories visited */
    uint64_t names;  /* names given to visit(), before any pruning */
    uint64_t errors; /* errors reported to on_error() */
} mo_walk_totals;

/* Walks the tree under `top` (see the top of this file) and stores in *dp a
 * Deferred, with one reference for the caller, that fires when the walk
 * ends:
 * - with a mo_walk_totals * when every directory was visited (errors
 *   reported to opts->on_error do not fail the walk);
 * - with a failure when an error stopped it: its code is the negative errno
 *   (MO_ENOENT: a directory vanished, or an ancestor was moved away under a
 *   deep walk; MO_EACCES: unreadable; MO_ENOTDIR: `top`, or an entry listed
 *   as a directory, is not one (a symlink counts as not one, unless the walk
 *   follows them); MO_ELOOP: a loop met with MO_WALK_FOLLOW, the path being
 *   the link's; MO_EMFILE: the walk had no descriptor left to give back;
 *   MO_ENOMEM, ...), its origin "mo_walk", and its message exactly the full
 *   path of the directory concerned, as visit() would name it;
 * - with MO_ECANCELED when it is cancelled (mo_deferred_cancel()): the walk
 *   stops at once, closes every descriptor it holds before the cancel
 *   returns (parallel mode: those of reads running on workers when they
 *   return), and never calls visit() or on_error() again. visit() and
 *   on_error() may cancel it too.
 * All file-system errors, even on `top`, come through the Deferred, never
 * from this call; the walk starts in a later pass of the loop. `top` is
 * copied. The walk holds its own reference to the Deferred until it ends;
 * mo_loop_run() returns only after the Deferred fired. If the loop is freed
 * (or its cooperator stopped) in the middle of a walk, the walk ends as if
 * cancelled: its Deferred errbacks with MO_ECANCELED and the walk drops its
 * reference; the caller must drop its own before mo_loop_free(). Errors
 * (nothing started, visit never called): MO_EINVAL (NULL loop, top, visit
 * or dp, unknown flags, negative slice), MO_ENOMEM, MO_EAGAIN (parallel
 * mode: the loop's pool could not start a thread). Loop thread. */
MO_EXTERN int mo_walk(mo_loop_t *loop, const char *top, mo_walk_visit_fn visit, void *arg,
                      const mo_walk_opts *opts, mo_deferred_t **dp);

/* Pauses the walk whose Deferred mo_walk() gave: visit() is not called
 * and no directory is read on the loop until mo_walk_resume() (a step in
 * progress stops at once, even from inside visit()); in parallel mode,
 * reads already on workers finish and are kept. Pauses are counted: the
 * walk goes on after as many resumes. For a consumer that cannot keep up,
 * such as a stream's producer (stream.h). Errors: MO_EINVAL (NULL, not a
 * walk's Deferred; resume without a pause), MO_EALREADY (the walk has
 * ended: its Deferred has fired), MO_ENOMEM (resume: the cooperator could
 * not schedule it; still paused). Loop thread. */
MO_EXTERN int mo_walk_pause(mo_deferred_t *d);
MO_EXTERN int mo_walk_resume(mo_deferred_t *d);

#ifdef __cplusplus
}
#endif
#endif /* MORSEL_WALK_H */
