/* morsel walk: find, on the event loop. Prints every path under each DIR,
 * DIR included, as `find DIR` prints it, while a loop keeps running: the
 * walk is sliced so that timers on the same loop (the progress line, the
 * --stats heartbeat) stay on time. Output is built in a large buffer and
 * written in blocks. */
#include "cli.h"

#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OUT_SIZE (1024 * 1024)
#define BEAT     MO_MSEC(1)
/* The walk's slice: half the heartbeat's period, so that a timer due
 * during a slice is late by well under a millisecond. */
#define SLICE        MO_USEC(500)
#define PROGRESS_GAP MO_MSEC(250)

struct walk_cli {
    mo_loop_t *loop;
    char **tops;
    int ntops, next_top;
    char sep;
    bool count_only, fail_fast, parallel, stats, progress;
    int status;
    bool finished;
    uint64_t paths, dirs, errors;
    char *out;
    size_t outlen;
    char *prefix; /* the directory being printed, with its "/" */
    size_t prefix_cap;
    /* --stats: the heartbeat's lateness, one sample per beat. */
    int64_t beat_due;
    mo_call_id beat_id, progress_id;
    int64_t *lags;
    size_t nlags, lags_cap;
};

/* ---- output ---- */

static void out_flush(struct walk_cli *c)
{
    for (size_t off = 0; off < c->outlen;) {
        ssize_t n = write(STDOUT_FILENO, c->out + off, c->outlen - off);
        if (n < 0) {
            cli_error("walk", "cannot write: %s", strerror(errno));
            exit(CLI_FAIL);
        }
        off += (size_t)n;
    }
    c->outlen = 0;
}

/* Appends prefix (len plen), name and the separator. */
static void out_path(struct walk_cli *c, const char *prefix, size_t plen, const char *name,
                     size_t len)
{
    if (c->count_only) return;
    if (c->outlen + plen + len + 1 > OUT_SIZE) {
        out_flush(c);
        if (plen + len + 1 > OUT_SIZE) { /* a path longer than the buffer */
            if (write(STDOUT_FILENO, prefix, plen) < 0 || write(STDOUT_FILENO, name, len) < 0 ||
                write(STDOUT_FILENO, &c->sep, 1) < 0)
                exit(CLI_FAIL);
            return;
        }
    }
    memcpy(c->out + c->outlen, prefix, plen);
    memcpy(c->out + c->outlen + plen, name, len);
    c->outlen += plen + len;
    c->out[c->outlen++] = c->sep;
}

/* find's style: "morsel: walk: 'path': Permission denied". */
static void report(struct walk_cli *c, const char *path, int err)
{
    out_flush(c);
    if (c->progress) fputs("\r\033[K", stderr);
    cli_error("walk", "'%s': %s", path, strerror(-err));
    c->status = CLI_FAIL;
    c->errors++;
}

/* ---- the walk ---- */

static void on_visit(void *arg, const char *dirname, mo_walk_names *names)
{
    struct walk_cli *c = arg;
    size_t plen = strlen(dirname);
    /* The prefix of every name: dirname, and "/" unless it ends with one. */
    if (plen + 2 > c->prefix_cap) {
        char *p = realloc(c->prefix, plen + 2);
        if (!p) {
            cli_error("walk", "out of memory");
            exit(CLI_FAIL);
        }
        c->prefix = p;
        c->prefix_cap = plen + 2;
    }
    memcpy(c->prefix, dirname, plen);
    if (plen && dirname[plen - 1] != '/') c->prefix[plen++] = '/';
    for (size_t i = 0; i < names->count; i++)
        out_path(c, c->prefix, plen, names->names[i].name, names->names[i].len);
    c->paths += names->count;
    if (!names->more) c->dirs++;
}

static void on_error(void *arg, const char *path, int err)
{
    report(arg, path, err);
}

static void walk_next(struct walk_cli *c);

static void on_walked(mo_result_t *result, void *arg)
{
    struct walk_cli *c = arg;
    mo_failure_t *f = mo_result_failure(result);
    if (f) {
        report(c, mo_failure_message(f), mo_failure_code(f));
        mo_result_set(result, NULL, NULL); /* handled */
        c->next_top = c->ntops;            /* --fail-fast: stop everything */
    }
    walk_next(c);
}

/* Starts the walk of the next DIR, or ends. Each DIR is printed first, as
 * find does; only a directory is walked (a symlink given as DIR is not
 * followed unless it ends with "/"). */
static void walk_next(struct walk_cli *c)
{
    while (c->next_top < c->ntops) {
        const char *top = c->tops[c->next_top++];
        struct stat st;
        if (fstatat(AT_FDCWD, top, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            report(c, top, -errno);
            if (c->fail_fast) break;
            continue;
        }
        out_path(c, top, strlen(top), "", 0);
        c->paths++;
        if (!S_ISDIR(st.st_mode)) continue;
        mo_walk_opts opts = {
            .flags = MO_WALK_PIECES, .on_error = c->fail_fast ? NULL : on_error, .slice = SLICE};
        mo_deferred_t *d;
        int err = mo_walk(c->loop, top, on_visit, c, &opts, &d);
        if (!err) err = mo_deferred_add_callbacks(d, on_walked, on_walked, c);
        mo_deferred_unref(d);
        if (!err) return;
        report(c, top, err);
        break;
    }
    c->finished = true;
    if (c->beat_id) mo_call_cancel(c->loop, c->beat_id);
    if (c->progress_id) mo_call_cancel(c->loop, c->progress_id);
    if (c->progress) fputs("\r\033[K", stderr);
}

/* ---- the heartbeat and the progress line ---- */

static void beat(mo_loop_t *loop, void *arg)
{
    struct walk_cli *c = arg;
    if (c->nlags == c->lags_cap) {
        size_t cap = c->lags_cap ? c->lags_cap * 2 : 4096;
        int64_t *v = realloc(c->lags, cap * sizeof(*v));
        if (!v) return;
        c->lags = v;
        c->lags_cap = cap;
    }
    int64_t now = mo_hrtime();
    c->lags[c->nlags++] = now - c->beat_due;
    /* A fixed schedule: lateness does not accumulate into the next beat. */
    do c->beat_due += BEAT;
    while (c->beat_due <= now);
    if (mo_call_at(loop, c->beat_due, beat, c, &c->beat_id) != 0) c->beat_id = 0;
}

static void progress(mo_loop_t *loop, void *arg)
{
    struct walk_cli *c = arg;
    fprintf(stderr, "\r\033[K%llu paths, %llu directories...", (unsigned long long)c->paths,
            (unsigned long long)c->dirs);
    if (mo_call_later(loop, PROGRESS_GAP, progress, c, &c->progress_id) != 0) c->progress_id = 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void print_stats(struct walk_cli *c)
{
    char a[32], b[32], m[32];
    if (!c->nlags) {
        fprintf(stderr, "lag: no beats (the walk took less than 1 ms)\n");
        return;
    }
    qsort(c->lags, c->nlags, sizeof(*c->lags), cmp_i64);
    fprintf(stderr, "lag of a 1 ms heartbeat: %zu beats  p50 %s  p99 %s  max %s\n", c->nlags,
            cli_duration(c->lags[c->nlags / 2], a, sizeof a),
            cli_duration(c->lags[c->nlags * 99 / 100], b, sizeof b),
            cli_duration(c->lags[c->nlags - 1], m, sizeof m));
}

/* ---- the command ---- */

static void walk_usage(FILE *out)
{
    fprintf(out, "usage: morsel walk [options] [DIR...]\n\n"
                 "Prints every path under each DIR (default: .), DIR included, one per line,\n"
                 "as `find DIR` does, walking on an event loop that stays responsive.\n\n"
                 "  -0, --null        end each path with NUL instead of a newline\n"
                 "  -p, --parallel    read directories on the worker pool (order not kept)\n"
                 "      --fail-fast   stop at the first error (default: report and go on)\n"
                 "  -c, --count       print only the totals\n"
                 "      --stats       print the lag of a 1 ms heartbeat on stderr at the end\n"
                 "  -h, --help        this help\n"
                 "  -V, --version     the version\n\n"
                 "Errors go to stderr; the exit status is then 1. Usage errors exit with 2.\n"
                 "Default order: os.path.walk's (a directory's listing, then its\n"
                 "subdirectories). A progress line is shown on stderr when it is a terminal.\n");
}

enum { OPT_FAIL_FAST = 256, OPT_STATS };

/* Returns -1 to go on, or the exit status. */
static int parse(struct walk_cli *c, int argc, char **argv)
{
    static const struct option opts[] = {{"null", no_argument, NULL, '0'},
                                         {"parallel", no_argument, NULL, 'p'},
                                         {"fail-fast", no_argument, NULL, OPT_FAIL_FAST},
                                         {"count", no_argument, NULL, 'c'},
                                         {"stats", no_argument, NULL, OPT_STATS},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "0pchV", opts, NULL)) != -1) {
        switch (o) {
        case '0':
            c->sep = '\0';
            break;
        case 'p':
            c->parallel = true;
            break;
        case OPT_FAIL_FAST:
            c->fail_fast = true;
            break;
        case 'c':
            c->count_only = true;
            break;
        case OPT_STATS:
            c->stats = true;
            break;
        case 'h':
            walk_usage(stdout);
            return CLI_OK;
        case 'V':
            printf("morsel %s\n", mo_version_string());
            return CLI_OK;
        default:
            walk_usage(stderr);
            return CLI_USAGE;
        }
    }
    static char *dot[] = {"."};
    c->tops = optind < argc ? argv + optind : dot;
    c->ntops = optind < argc ? argc - optind : 1;
    return -1;
}

static int walk_run(struct walk_cli *c)
{
    int err = mo_loop_new(&c->loop, 0);
    if (err) {
        cli_error("walk", "cannot create a loop: %s", mo_strerror(err));
        return CLI_FAIL;
    }
    if ((err = mo_cooperator_set_slice(c->loop, SLICE)) != 0) {
        cli_error("walk", "cannot set the slice: %s", mo_strerror(err));
        mo_loop_free(c->loop);
        return CLI_FAIL;
    }
    if (c->stats) {
        c->beat_due = mo_loop_now(c->loop) + BEAT;
        if (mo_call_at(c->loop, c->beat_due, beat, c, &c->beat_id) != 0) c->beat_id = 0;
    }
    if (c->progress && mo_call_later(c->loop, PROGRESS_GAP, progress, c, &c->progress_id) != 0)
        c->progress_id = 0;
    walk_next(c);
    err = mo_loop_run(c->loop, MO_RUN_DEFAULT);
    if (c->stats) {
        struct mo_cooperator_stats cs;
        char a[32];
        if (mo_cooperator_stats(c->loop, &cs) == 0)
            fprintf(stderr, "cooperator: %llu slices, longest %s, %llu steps longer than a slice\n",
                    (unsigned long long)cs.slices, cli_duration(cs.max_ns, a, sizeof a),
                    (unsigned long long)cs.overlong);
    }
    mo_loop_free(c->loop);
    if (err) {
        cli_error("walk", "%s", mo_strerror(err));
        return CLI_FAIL;
    }
    return c->status;
}

int cli_walk(int argc, char **argv)
{
    struct walk_cli c = {.sep = '\n'};
    int status = parse(&c, argc, argv);
    if (status >= 0) return status;
    if (c.parallel) {
        cli_error("walk", "--parallel needs the worker pool, not built yet");
        return CLI_FAIL;
    }
    c.progress = isatty(STDERR_FILENO) && !c.count_only;
    if (!(c.out = malloc(OUT_SIZE))) {
        cli_error("walk", "out of memory");
        return CLI_FAIL;
    }
    status = walk_run(&c);
    out_flush(&c);
    if (c.count_only)
        printf("%llu paths, %llu directories, %llu errors\n", (unsigned long long)c.paths,
               (unsigned long long)c.dirs, (unsigned long long)c.errors);
    if (c.stats) print_stats(&c);
    free(c.out);
    free(c.prefix);
    free(c.lags);
    return status;
}
