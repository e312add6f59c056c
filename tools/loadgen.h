/* loadgen: the load client of `morsel demo` and bench/e2e, on a morsel loop.
 *
 * It speaks the line protocol of docs/protocol.md to one server. It keeps
 * `ping_conns` connections sending `ping` on a fixed timetable (connection
 * i at start + i * period / conns + k * period), whether or not the previous
 * pong came back: a ping is sent when its time comes, pipelined behind any
 * still unanswered, and its round trip is measured from the time it was
 * scheduled, not sent. So a server that stalls for 500 ms shows 50 late
 * pongs per connection, not one (no coordinated omission). Every round trip
 * is kept with its scheduled time, for a chart over time.
 *
 * Alongside, a phase may run work connections, each asking one request and
 * timing it to the last byte: `factorial N` (digits compared byte by byte
 * with GMP's), `walk DIR` (paths counted and hashed, compared with a sum
 * made locally with nftw), and `stats` (the server's own lag line).
 *
 * Threads: a loadgen owns a morsel loop and belongs to the thread that made
 * it: call loadgen_run() and loadgen_free() from that thread. The loop runs
 * only inside loadgen_run(). loadgen_spawn() runs a list of phases on a new
 * thread. The cancel flag in the options may be set from any thread or a
 * signal handler. Every function returns 0 or a negative MO_E* code.
 *
 * Bounds: every phase ends by its timeout (the work unfinished then is an
 * error); a connection holds at most LOADGEN_MAX_OUTSTANDING unanswered
 * pings (more is an error: the server stopped answering); an answer line of
 * a walk is at most LOADGEN_MAX_LINE bytes. */
#ifndef MORSEL_LOADGEN_H
#define MORSEL_LOADGEN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "morsel.h"

#define LOADGEN_MAX_OUTSTANDING 4096
#define LOADGEN_MAX_LINE        16384
#define LOADGEN_MAX_JOBS        33 /* 16 factorial + 16 walk + 1 stats */

/* One round trip: when the ping was due (ns since the loadgen was made) and
 * how long after that its pong arrived (ns). */
struct loadgen_sample {
    int64_t sched;
    int64_t rtt;
};

/* A distribution of round trips, in ns; nearest-rank percentiles. */
struct loadgen_summary {
    size_t count;
    int64_t p50, p99, max;
};

/* A set of walk answer lines, order-independent: how many, and the sum
 * mod 2^64 of a 64-bit hash of each line as sent (escaped). */
struct loadgen_walk_sum {
    uint64_t count;
    uint64_t hash;
};

enum loadgen_job_kind { LOADGEN_FACTORIAL = 1, LOADGEN_WALK = 2, LOADGEN_STATS = 3 };

/* One work request and what came of it. Times are ns since the loadgen was
 * made; 0 when it did not happen. */
struct loadgen_job {
    int kind; /* enum loadgen_job_kind */
    bool done, ok;
    int64_t sent, first_byte, last_byte;
    uint64_t bytes; /* answer bytes received */
    uint64_t paths; /* walk: paths received */
    char answer[128];
    char error[256]; /* why !ok */
};

struct loadgen_opts {
    const char *host;        /* a numeric IPv4 or IPv6 address; NULL: 127.0.0.1 */
    unsigned port;           /* the server's */
    unsigned ping_conns;     /* 0: 16 */
    int64_t ping_period;     /* per connection; 0: 10 ms */
    int64_t connect_timeout; /* 0: 5 s */
    atomic_int *cancel;      /* optional: nonzero stops the phase (any thread, signals) */
};

struct loadgen_progress {
    int64_t elapsed;               /* since the phase began */
    size_t samples;                /* round trips so far in the phase */
    struct loadgen_summary recent; /* the round trips of the last second */
    const struct loadgen_job *jobs;
    unsigned njobs;
};
typedef void (*loadgen_progress_fn)(const struct loadgen_progress *progress, void *arg);

/* One phase: pings for at least `duration`, and until every work request
 * has its answer. */
struct loadgen_phase {
    int64_t duration;
    int64_t timeout; /* 0: 120 s */
    unsigned factorial_jobs;
    unsigned long factorial_n;
    const char *factorial_digits; /* what N! must be: loadgen_factorial_digits() */
    size_t factorial_len;
    unsigned walk_jobs;
    const char *walk_dir;
    struct loadgen_walk_sum walk_expect; /* loadgen_walk_sum_dir() */
    bool ask_stats;                      /* after the rest: one `stats` request */
    loadgen_progress_fn progress;        /* optional, on the loadgen's thread */
    void *progress_arg;
    int64_t progress_period; /* 0: 100 ms */
};

/* What a phase measured. Times are ns since the loadgen was made. */
struct loadgen_result {
    int status;                     /* 0, or the first error: MO_ETIMEDOUT, MO_ECANCELED, ... */
    char error[320];                /* why, for people */
    int64_t start, end;             /* the phase */
    int64_t work_start, work_end;   /* first request sent, last answer's last byte */
    struct loadgen_sample *samples; /* owned: loadgen_result_free() */
    size_t nsamples;
    struct loadgen_summary ping;      /* every round trip of the phase */
    struct loadgen_summary ping_work; /* those due in [work_start, work_end] */
    struct loadgen_job jobs[LOADGEN_MAX_JOBS];
    unsigned njobs;
    uint64_t pings_sent;
    int64_t client_late_max; /* how late the client's own sends ran */
};

struct loadgen;

/* Makes a loadgen and connects its ping connections (waiting at most
 * connect_timeout). *lgp is owned by the caller: loadgen_free(). Errors:
 * MO_EINVAL (bad options or address), MO_ENOMEM, MO_ETIMEDOUT, or the
 * negated errno of socket()/connect() (-ECONNREFUSED: nothing listens). */
int loadgen_new(struct loadgen **lgp, const struct loadgen_opts *opts);

/* Runs one phase on the calling thread (the loadgen's) and fills *res,
 * which the caller frees with loadgen_result_free() whatever this returns.
 * Returns res->status: 0 when the phase ran and every answer was correct;
 * a wrong answer is MO_EIO (res->error and the job's error say which);
 * MO_ETIMEDOUT, MO_ECANCELED, a connection's errno. After an error other
 * than a wrong answer, the loadgen's ping connections may be broken: later
 * runs return MO_ESHUTDOWN. MO_EINVAL: bad phase. */
int loadgen_run(struct loadgen *lg, const struct loadgen_phase *phase, struct loadgen_result *res);

void loadgen_result_free(struct loadgen_result *res);

/* Closes the connections and frees the loadgen. NULL is ignored. */
void loadgen_free(struct loadgen *lg);

/* Summarises the round trips due in [from, to] (ns since the loadgen was
 * made). Errors: MO_ENOMEM (it sorts a copy). */
int loadgen_summarize(const struct loadgen_sample *samples, size_t n, int64_t from, int64_t to,
                      struct loadgen_summary *out);

/* Runs loadgen_new(), then each phase in turn (stopping at the first error
 * other than a wrong answer), then loadgen_free(), on a new thread.
 * results[i] is phase i's; all must stay valid until loadgen_join(), which
 * waits for the thread and returns the first error (or the error of
 * loadgen_new()). A phase not run has status MO_ECANCELED ("not run"); when
 * loadgen_new() failed, every result has its error. The caller frees each
 * result with loadgen_result_free(). Errors of spawn: MO_ENOMEM, MO_EAGAIN. */
struct loadgen_thread;
int loadgen_spawn(struct loadgen_thread **tp, const struct loadgen_opts *opts,
                  const struct loadgen_phase *phases, size_t nphases,
                  struct loadgen_result *results);
int loadgen_join(struct loadgen_thread *t);

/* loadgen_spawn(), and finished(arg) called on the new thread once every
 * phase has run and the loadgen is freed, the last thing before the thread
 * ends: to wake the thread that will loadgen_join() (with
 * mo_call_from_thread(), say) instead of blocking it. */
int loadgen_spawn_notify(struct loadgen_thread **tp, const struct loadgen_opts *opts,
                         const struct loadgen_phase *phases, size_t nphases,
                         struct loadgen_result *results, void (*finished)(void *arg), void *arg);

/* ---- checking answers (loadgen_tree.c) ---- */

/* N! in decimal, as malloc'd bytes without terminator (the caller frees),
 * computed with GMP. Errors: MO_ENOMEM. */
int loadgen_factorial_digits(unsigned long n, char **digitsp, size_t *lenp);

/* Checks the next n bytes of a `factorial N` answer, of which *matched
 * bytes matched already, against `want` (the len digits of N!, from
 * loadgen_factorial_digits()) and the "\n" that ends them; *matched grows.
 * Returns LOADGEN_CHECK_MORE (right so far, the answer goes on),
 * LOADGEN_CHECK_DONE (the digits and the "\n", nothing after), or
 * LOADGEN_CHECK_WRONG with why in err ("digit 7 of 5566 is '3', expected
 * '4'", "the answer goes on after the 5566 expected digits"). */
enum { LOADGEN_CHECK_MORE = 0, LOADGEN_CHECK_DONE = 1, LOADGEN_CHECK_WRONG = -1 };
int loadgen_factorial_check(const char *want, size_t len, size_t *matched, const char *p, size_t n,
                            char *err, size_t errsize);

/* Adds one walk answer line (without its "\n") to a sum. */
void loadgen_walk_sum_line(struct loadgen_walk_sum *sum, const char *line, size_t len);

/* The sum of the lines `walk DIR` must answer, made with nftw (symbolic
 * links not followed), each path escaped as docs/protocol.md says. Errors:
 * the errno of the first path that cannot be read; MO_ENOTDIR when DIR is
 * not a directory. */
int loadgen_walk_sum_dir(const char *dir, struct loadgen_walk_sum *out);

/* Escapes a path as the protocol sends it ("\n" -> "\\n", "\\" -> "\\\\")
 * into out (size at least 2 * len + 1, NUL-terminated); returns its length. */
size_t loadgen_escape(const char *path, size_t len, char *out);

/* ---- a generated tree to walk (loadgen_tree.c) ---- */

struct loadgen_tree_opts {
    uint64_t entries;       /* paths below the top; 0: 200,000 */
    unsigned files_per_dir; /* 0: 200 */
    bool special;           /* add names with "\n", "\\", spaces and a symlink */
    atomic_int *cancel;     /* optional: nonzero stops (and removes the tree) */
};

/* Makes a fresh directory under `parent` (NULL: $TMPDIR or /tmp), writes
 * its path to path[size], and fills it with a deterministic tree:
 * `files_per_dir` files in every directory, and B subdirectories in each of
 * the top and its B children (three levels), B the smallest that holds
 * `entries`; directories are filled in order until exactly `entries` paths
 * exist. File names vary in length. Errors: the errno of the file system
 * (the partial tree is removed), MO_ECANCELED, MO_EINVAL, MO_ENAMETOOLONG. */
int loadgen_tree_make(const char *parent, const struct loadgen_tree_opts *opts, char *path,
                      size_t size);

/* Removes a tree (rm -rf, never following links). Errors: the first errno. */
int loadgen_tree_remove(const char *path);

#endif
