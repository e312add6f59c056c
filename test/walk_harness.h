/* The harness of the walk's tests (sequential and parallel): a walk run to
 * its end on a real-clock loop through the engine's internal entry point,
 * recording what visit(), on_error() and done() saw, and the reference it
 * is compared with (os.path.walk written with opendir/readdir). */
#ifndef MORSEL_TEST_WALK_HARNESS_H
#define MORSEL_TEST_WALK_HARNESS_H

#include "test.h"

#include "walk/walk_int.h"
#include "walk_tree.h"

#include <stdbool.h>

/* Records, in the order they came: "D0 DIR//" for a directory (at its last
 * piece), "N<type> DIR//NAME" for each name, "E<errno> PATH//" for each
 * error. */
struct recs {
    char **v;
    size_t n, cap;
};

void recs_add(struct recs *r, char kind, const char *dir, const char *name, int type);
/* Adds s[0, n) as it is. */
void recs_push(struct recs *r, const char *s, size_t n);
void recs_free(struct recs *r);
/* Whether the record printf(fmt, ...) is there. */
bool recs_has(const struct recs *r, const char *fmt, ...);
/* How many records are printf(fmt, ...). */
size_t recs_count(const struct recs *r, const char *fmt, ...);
/* The two lists are equal, in order (cmocka assertions). */
void recs_assert_same(const struct recs *a, const struct recs *b);
/* The two lists hold the same records (sorted in place first). */
void recs_assert_same_set(struct recs *a, struct recs *b);

struct walk_seen;
typedef void (*walk_seen_hook)(struct walk_seen *s, const char *dirname, mo_walk_names *names);

struct walk_seen {
    struct recs recs;
    struct recs errors;
    long dirs, names, pieces;
    int done_err, done_calls;
    char done_path[4200];
    int max_fds, fds_before; /* descriptors open at most (sampled), and before */
    mo_loop_t *loop;
    struct mo__walk *walk;
    bool after_cancel;
    size_t top_len;
    /* Set by the test. */
    const char *prune;      /* a name visit removes */
    int cancel_after;       /* cancel from visit at this directory (1-based), 0: never */
    const char *remove_dir; /* removed (rm -rf) by the first visit */
    size_t limit_fds;       /* parallel mode: parent descriptors kept (0: the default) */
    walk_seen_hook hook;    /* called at the end of each visit */
    void *hook_arg;
    /* Lower RLIMIT_NOFILE once the loop is made, leaving `spare`
     * descriptors free (in a child process: see walk_in_child()). */
    bool starve;
    int spare;
    bool as_nobody; /* walk_in_child(): drops to nobody (if root) first */
};

void seen_visit(void *arg, const char *dirname, mo_walk_names *names);
void seen_error(void *arg, const char *path, int err);
void seen_done(void *arg, int err, const char *path, const mo_walk_totals *totals);

/* Walks `top` to the end on a real-clock loop (opts may be NULL), and
 * checks that no descriptor is left open afterwards. */
void walk_run(struct walk_seen *s, const char *top, const mo_walk_opts *opts);
void seen_free(struct walk_seen *s);

/* What a walk in a child process saw. */
struct child_walk {
    int done_err;
    long dirs, names, errors;
    bool same; /* its records are ref_walk(top)'s, as a set */
    char done_path[4200];
};

/* Runs walk_run(seen, top, opts) in a child process (seen->starve and
 * seen->spare: with few descriptors) and reports what it saw in *out. A
 * failed assertion in the child fails the test. */
void walk_in_child(struct walk_seen *seen, const char *top, const mo_walk_opts *opts,
                   struct child_walk *out);

/* The paths a walk listed, as find prints them: top, then each name
 * joined to its directory; only names of type `type` (top counts as a
 * directory) unless it is -1. */
void seen_paths(const struct walk_seen *s, const char *top, int type, struct recs *out);

/* The paths of the errors a walk reported. */
void seen_error_paths(const struct walk_seen *s, struct recs *out);

/* find's view: runs `LC_ALL=C find ARGS -print0` (args as the shell takes
 * them) and stores the paths it prints in *paths, and the first quoted
 * path of each line it writes on stderr (a loop, an unreadable directory)
 * in *errors. */
void find_run(const char *args, struct recs *paths, struct recs *errors);

/* A bit of everything: odd names, links, special files, a deep chain
 * (200, deeper than MO_WALK_MAX_FDS), a large directory, and a wide part. */
void make_tree(const char *root);

/* A tree of symlinks to follow: to directories (through a chain of links,
 * and one where ".." is another directory, with a chain deeper than
 * MO_WALK_MAX_FDS below), to a file, dangling, loops (to an ancestor, to
 * the directory itself, beside then up, a link to itself), and odd names
 * (a newline, a space, invalid UTF-8). */
void make_links(const char *root);

/* Walks `top` with opts (errors to seen_error) and checks that it saw what
 * `find ARGS` prints: the same paths, the same paths of each type (find's
 * -type d, f, l) and the same errors. */
void walk_like_find(const char *top, const mo_walk_opts *opts, const char *find_args);

/* Mounts a tmpfs on root/rel in a mount namespace of this process (each
 * test runs in its own process); false if that is not permitted. */
bool mount_in_tree(const char *root, const char *rel);
void unmount_in_tree(const char *root, const char *rel);

/* ---- checks made in both modes (mode: 0 or MO_WALK_PARALLEL) ---- */

/* `top` that does not exist, is a file or a symlink: the walk fails with
 * MO_ENOENT, MO_ENOTDIR, MO_ENOTDIR on it; with a trailing "/" the link
 * names its directory, as for find. */
void check_top_errors(unsigned mode);

/* A directory removed after its parent was listed: MO_ENOENT on its path;
 * with on_error, that error and everything else as it is then. */
void check_removed_during_walk(unsigned mode);

/* An unreadable directory (the walk runs as nobody in a child): MO_EACCES
 * on it; with on_error, that error and the other directories. */
void check_unreadable(unsigned mode);

/* Only `spare` descriptors free (find runs under prlimit --nofile=16): the
 * walk sees make_tree()'s records without an error, with and without
 * pieces. */
void check_few_descriptors(unsigned mode, int spare);

/* visit() takes every descriptor left but `leave` at the piece `take_at`,
 * and gives them back at `give_at`: the walk sees the whole tree. */
void check_descriptors_run_out(unsigned mode, long take_at, long give_at, int leave);

/* No descriptor free at all: MO_EMFILE on `top`; with on_error, that error
 * and nothing visited. */
void check_no_descriptor_left(unsigned mode);

/* MO_WALK_FOLLOW is find -L on make_links()'s tree (with and without
 * pieces, and from a `top` that is a link); without it, find -P. */
void check_follow_like_find(unsigned mode);

/* Following links without on_error, the first loop stops the walk with
 * MO_ELOOP on the link's path. */
void check_follow_loop_stops(unsigned mode);

/* As nobody (in a child), MO_WALK_FOLLOW is find -L where links lead into
 * a directory nobody may search: the link is listed (untyped) and its
 * error reported, as find -L does. */
void check_follow_unsearchable_like_find(unsigned mode);

/* MO_WALK_XDEV is find -xdev (-L -xdev with MO_WALK_FOLLOW) on a tree with
 * a tmpfs mounted in it; skipped where mounting is not permitted. */
void check_xdev_like_find(unsigned mode);

/* os.path.walk's order, names typed as readdir (then a no-follow stat)
 * types them, as records. */
void ref_walk(struct recs *r, const char *dir);

/* The descriptors this process has open, as /proc/self/fd lists them. */
int proc_fds(void);

#endif
