/* morsel walk: find, on the event loop. Prints every path under each DIR,
 * DIR included, as `find DIR` prints it, while a loop keeps running: the
 * walk is sliced so that timers on the same loop (the progress line, the
 * --stats heartbeat) stay on time. With --parallel, directories are read on
 * the loop's worker pool (MO_WALK_PARALLEL) and printed in the order they
 * come back. Output is built in a large buffer and written in blocks.
 *
 * The filters (walk_filter.h) are applied as the walk goes: the visit
 * callback prints the names that pass and prunes the names list down to
 * the directories to enter, as os.path.walk's visit does; --follow and
 * --xdev are the walk's own modes (MO_WALK_FOLLOW, MO_WALK_XDEV). */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "progress.h"
#include "walk_filter.h"

#define OUT_SIZE ((size_t)1024 * 1024)
#define BEAT     MO_MSEC(1)
/* The walk's slice: half the heartbeat's period, so that a timer due
 * during a slice is late by well under a millisecond. */
#define SLICE MO_USEC(500)

static const char *const cmd = "walk";

struct walk_cli {
    mo_loop_t *loop;
    char **tops;
    int ntops, next_top;
    char sep;
    bool count_only, fail_fast, parallel, stats, json, follow, xdev, no_progress;
    struct walk_filter f;
    bool filtered; /* any filter: the visit's slow path */
    bool stopped;  /* output failed: the walk is cancelled, nothing more printed */
    int status;
    uint64_t paths, dirs, errors, entries;
    int64_t pending; /* directories to enter, not visited yet (for progress) */
    char *out;
    size_t outlen;
    char *prefix; /* the directory being printed, with its "/" */
    size_t prefix_cap;
    size_t toplen; /* the DIR being walked: its length, and whether it ends with "/" */
    bool top_slash;
    mo_deferred_t *current; /* the walk of that DIR */
    struct cli_progress *progress;
    int64_t started;
    /* --stats: the heartbeat's lateness, one sample per beat. */
    int64_t beat_due;
    mo_call_id beat_id;
    int64_t *lags;
    size_t nlags, lags_cap;
};

static void walk_stop(struct walk_cli *c);

/* ---- output ---- */

/* A write failed: reported (or died of, for SIGPIPE), and the walk ends. */
static void out_failed(struct walk_cli *c, int err)
{
    c->outlen = 0;
    if (c->stopped) return;
    cli_write_failed(cmd, NULL, err);
    walk_stop(c);
}

static void out_flush(struct walk_cli *c)
{
    int err = c->outlen ? cli_write_all(STDOUT_FILENO, c->out, c->outlen) : 0;
    c->outlen = 0;
    if (err) out_failed(c, err);
}

/* Appends prefix (len plen), name and the separator. */
static void out_path(struct walk_cli *c, const char *prefix, size_t plen, const char *name,
                     size_t len)
{
    if (c->count_only || c->stopped) return;
    if (c->outlen + plen + len + 1 > OUT_SIZE) {
        out_flush(c);
        if (plen + len + 1 > OUT_SIZE) { /* a path longer than the buffer */
            int err = cli_write_all(STDOUT_FILENO, prefix, plen);
            if (!err) err = cli_write_all(STDOUT_FILENO, name, len);
            if (!err) err = cli_write_all(STDOUT_FILENO, &c->sep, 1);
            if (err) out_failed(c, err);
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
    cli_error(cmd, "'%s': %s", path, strerror(-err));
    c->status = CLI_FAIL;
    c->errors++;
}

/* ---- visiting a directory ---- */

/* The prefix of every name: dirname, and "/" unless it ends with one.
 * Returns its length, or 0 when out of memory (reported; the walk ends). */
static size_t set_prefix(struct walk_cli *c, const char *dirname)
{
    size_t plen = strlen(dirname);
    if (plen + 2 > c->prefix_cap) {
        char *p = realloc(c->prefix, plen + 2);
        if (!p) {
            cli_error(cmd, "'%s': %s", dirname, strerror(ENOMEM));
            c->status = CLI_FAIL;
            walk_stop(c);
            return 0;
        }
        c->prefix = p;
        c->prefix_cap = plen + 2;
    }
    memcpy(c->prefix, dirname, plen);
    if (plen && dirname[plen - 1] != '/') c->prefix[plen++] = '/';
    return plen;
}

/* The depth of the names listed in dirname: 1 for top's, as find counts.
 * A name has no "/", so it is one more than the separators after top. */
static unsigned names_depth(const struct walk_cli *c, const char *dirname)
{
    unsigned d = 1;
    const char *p = dirname + c->toplen;
    if (c->top_slash && *p) d++;
    while ((p = strchr(p, '/')) != NULL) d++, p++;
    return d;
}

/* No filter: every name printed, every directory entered. */
static void visit_all(struct walk_cli *c, size_t plen, mo_walk_names *names)
{
    int64_t dirs = 0;
    for (size_t i = 0; i < names->count; i++) {
        out_path(c, c->prefix, plen, names->names[i].name, names->names[i].len);
        dirs += names->names[i].type == MO_WALK_DIR;
    }
    c->paths += names->count;
    c->pending += dirs;
}

/* The filters: prints the names that pass, keeps in `names` only the
 * directories to enter. */
static void visit_filtered(struct walk_cli *c, const char *dirname, size_t plen,
                           mo_walk_names *names)
{
    unsigned depth = c->f.min_depth || c->f.max_depth != UINT_MAX ? names_depth(c, dirname) : 1;
    bool print = depth >= c->f.min_depth, enter = depth < c->f.max_depth;
    /* A directory's entry cannot be examined if the directory cannot be
     * searched: find then knows no type for it, not even the listing's
     * "directory", and --type d does not match it. One check per
     * directory, only when it matters. */
    int searchable = -1;
    size_t keep = 0;
    for (size_t i = 0; i < names->count; i++) {
        const mo_walk_name *n = &names->names[i];
        if (walk_filter_excluded(&c->f, n->name, n->len)) continue;
        unsigned type = n->type;
        if (type == MO_WALK_DIR && (c->f.types & (1u << MO_WALK_DIR))) {
            if (searchable < 0) searchable = faccessat(AT_FDCWD, dirname, X_OK, AT_EACCESS) == 0;
            if (!searchable) type = MO_WALK_UNKNOWN;
        }
        if (print && walk_filter_match(&c->f, n->name, n->len, type)) {
            out_path(c, c->prefix, plen, n->name, n->len);
            c->paths++;
        }
        if (enter && n->type == MO_WALK_DIR) names->names[keep++] = *n;
    }
    names->count = keep;
    c->pending += (int64_t)keep;
}

static void on_visit(void *arg, const char *dirname, mo_walk_names *names)
{
    struct walk_cli *c = arg;
    c->entries += names->count;
    if (!names->more) {
        c->dirs++;
        c->pending--;
    }
    size_t plen = c->count_only ? 0 : set_prefix(c, dirname);
    if (c->stopped) {
        names->count = 0;
        return;
    }
    if (c->filtered)
        visit_filtered(c, dirname, plen, names);
    else
        visit_all(c, plen, names);
}

static void on_error(void *arg, const char *path, int err)
{
    struct walk_cli *c = arg;
    struct stat st;
    if (c->stopped) return;
    /* --follow: a link that leads back up is followable, unlike a link loop. */
    if (err == MO_ELOOP && stat(path, &st) == 0) {
        out_flush(c);
        cli_error(cmd, "'%s': file system loop: it leads back to a directory it is in", path);
        c->status = CLI_FAIL;
        c->errors++;
        return;
    }
    report(c, path, err);
    if (c->pending > 0) c->pending--;
}

/* ---- the walk of each DIR ---- */

static void walk_next(struct walk_cli *c);

static void on_walked(mo_result_t *result, void *arg)
{
    struct walk_cli *c = arg;
    mo_failure_t *f = mo_result_failure(result);
    if (f && !c->stopped) {
        report(c, mo_failure_message(f), mo_failure_code(f));
        c->next_top = c->ntops; /* --fail-fast, or a fatal error: stop everything */
    }
    if (f) mo_result_set(result, NULL, NULL); /* handled */
    mo_deferred_unref(c->current);
    c->current = NULL;
    walk_next(c);
}

/* Stops everything after a failed write: no more output, no more DIRs. */
static void walk_stop(struct walk_cli *c)
{
    c->stopped = true;
    c->status = CLI_FAIL;
    c->next_top = c->ntops;
    if (c->current) mo_deferred_cancel(c->current); /* on_walked() runs, ignores it */
}

/* Prints DIR itself if it passes the filters (depth 0; --exclude never
 * applies to it), as find does. */
static void print_top(struct walk_cli *c, const char *top, const struct stat *st)
{
    if (c->f.min_depth > 0) return;
    if (c->filtered) {
        char *base = walk_filter_base(top);
        bool match = base && walk_filter_match(&c->f, base, strlen(base), IFTODT(st->st_mode));
        free(base);
        if (!match) return;
    }
    out_path(c, top, strlen(top), "", 0);
    c->paths++;
}

/* find's view of DIR: lstat, or stat with --follow (a broken link is then
 * still listed as the link it is). */
static int stat_top(const struct walk_cli *c, const char *top, struct stat *st)
{
    if (!c->follow) return lstat(top, st) == 0 ? 0 : -errno;
    if (stat(top, st) == 0) return 0;
    int err = -errno;
    return err == MO_ENOENT && lstat(top, st) == 0 ? 0 : err;
}

/* Starts the walk of one directory DIR; false if it could not start. */
static bool walk_start(struct walk_cli *c, const char *top)
{
    unsigned flags = MO_WALK_PIECES | (c->parallel ? MO_WALK_PARALLEL : 0) |
                     (c->follow ? MO_WALK_FOLLOW : 0) | (c->xdev ? MO_WALK_XDEV : 0);
    mo_walk_opts opts = {
        .flags = flags, .on_error = c->fail_fast ? NULL : on_error, .slice = SLICE};
    c->toplen = strlen(top);
    c->top_slash = c->toplen && top[c->toplen - 1] == '/';
    c->pending++;
    mo_deferred_t *d;
    int err = mo_walk(c->loop, top, on_visit, c, &opts, &d);
    if (!err) {
        c->current = d;
        err = mo_deferred_add_callbacks(d, on_walked, on_walked, c);
        if (!err) return true;
        c->current = NULL;
        mo_deferred_cancel(d);
        mo_deferred_unref(d);
    }
    out_flush(c);
    cli_error(cmd, "'%s': cannot start the walk: %s", top, strerror(-err));
    c->status = CLI_FAIL;
    return false;
}

/* Starts the walk of the next DIR, or ends. Each DIR is printed first, as
 * find does; only a directory is walked (a symlink given as DIR is not
 * followed, without --follow, unless it ends with "/"). */
static void walk_next(struct walk_cli *c)
{
    while (c->next_top < c->ntops) {
        const char *top = c->tops[c->next_top++];
        struct stat st;
        int err = stat_top(c, top, &st);
        if (err) {
            report(c, top, err);
            if (c->fail_fast) break;
            continue;
        }
        print_top(c, top, &st);
        if (!S_ISDIR(st.st_mode) || c->f.max_depth == 0) continue;
        if (walk_start(c, top)) return;
        break;
    }
    if (c->beat_id) mo_call_cancel(c->loop, c->beat_id);
    c->beat_id = 0;
    cli_progress_stop(c->progress);
    c->progress = NULL;
}

/* ---- the progress line and the heartbeat ---- */

/* 1234567 as "1,234,567". */
static const char *grouped(uint64_t v, char *buf, size_t size)
{
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)v);
    size_t k = 0;
    for (int i = 0; i < n && k + 2 < size; i++) {
        if (i && (n - i) % 3 == 0) buf[k++] = ',';
        buf[k++] = digits[i];
    }
    buf[k] = '\0';
    return buf;
}

/* "morsel: walk: 1,234,567 entries  345,678/s  1,204 dirs pending  3.2s" */
static void progress_draw(void *arg, char *buf, size_t size, int width, int64_t elapsed)
{
    (void)width;
    struct walk_cli *c = arg;
    char e[32], r[32], p[32], t[16];
    double rate = elapsed > 0 ? (double)c->entries * 1e9 / (double)elapsed : 0;
    snprintf(buf, size, "morsel: walk: %s entries  %s/s  %s dirs pending  %s",
             grouped(c->entries, e, sizeof e), grouped((uint64_t)rate, r, sizeof r),
             grouped(c->pending > 0 ? (uint64_t)c->pending : 0, p, sizeof p),
             cli_progress_time(t, sizeof t, elapsed));
}

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

/* ---- --count and --stats ---- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void print_count(const struct walk_cli *c)
{
    if (c->json)
        printf("{\"paths\":%llu,\"dirs\":%llu,\"errors\":%llu}\n", (unsigned long long)c->paths,
               (unsigned long long)c->dirs, (unsigned long long)c->errors);
    else
        printf("%llu paths, %llu directories, %llu errors\n", (unsigned long long)c->paths,
               (unsigned long long)c->dirs, (unsigned long long)c->errors);
}

/* What --stats reports, read before the loop is freed. */
struct walk_stats {
    struct mo_loop_stats loop;
    struct mo_cooperator_stats coop;
    bool have_loop, have_coop;
    int64_t elapsed;
};

static void print_summary(const char *what, const struct mo_stats_summary *s)
{
    char a[32], b[32], m[32];
    fprintf(stderr, "%s: %llu  p50 %s  p99 %s  max %s\n", what, (unsigned long long)s->count,
            cli_duration(s->p50, a, sizeof a), cli_duration(s->p99, b, sizeof b),
            cli_duration(s->max, m, sizeof m));
}

/* The loop's statistics (stats.h), the cooperator's, and the heartbeat's
 * own lateness, as the goal states it: when each beat ran, after
 * its due time. */
static void print_stats_text(const struct walk_cli *c, const struct walk_stats *s)
{
    char a[32], b[32], m[32];
    if (s->have_loop) {
        print_summary("loop lag (delayed calls)", &s->loop.lag);
        print_summary("loop callbacks (duration)", &s->loop.callback);
    }
    if (s->have_coop)
        fprintf(stderr, "cooperator: %llu slices, longest %s, %llu steps longer than a slice\n",
                (unsigned long long)s->coop.slices, cli_duration(s->coop.max_ns, a, sizeof a),
                (unsigned long long)s->coop.overlong);
    if (!c->nlags) {
        fprintf(stderr, "lag: no beats (the walk took less than 1 ms)\n");
        return;
    }
    fprintf(stderr, "lag of a 1 ms heartbeat: %zu beats  p50 %s  p99 %s  max %s\n", c->nlags,
            cli_duration(c->lags[c->nlags / 2], a, sizeof a),
            cli_duration(c->lags[c->nlags * 99 / 100], b, sizeof b),
            cli_duration(c->lags[c->nlags - 1], m, sizeof m));
}

/* One line of JSON on stderr; the field names are in morsel(1). */
static void print_stats_json(const struct walk_cli *c, const struct walk_stats *s)
{
    bool first = true;
    fputc('{', stderr);
    cli_json_u64(stderr, &first, "paths", c->paths);
    cli_json_u64(stderr, &first, "dirs", c->dirs);
    cli_json_u64(stderr, &first, "errors", c->errors);
    cli_json_u64(stderr, &first, "entries", c->entries);
    cli_json_us(stderr, &first, "elapsed_us", s->elapsed);
    cli_json_u64(stderr, &first, "beats", c->nlags);
    if (c->nlags) {
        cli_json_us(stderr, &first, "beat_lag_p50_us", c->lags[c->nlags / 2]);
        cli_json_us(stderr, &first, "beat_lag_p99_us", c->lags[c->nlags * 99 / 100]);
        cli_json_us(stderr, &first, "beat_lag_max_us", c->lags[c->nlags - 1]);
    }
    if (s->have_loop) {
        cli_json_summary(stderr, "loop_lag", &s->loop.lag);
        cli_json_summary(stderr, "callbacks", &s->loop.callback);
    }
    if (s->have_coop) {
        fprintf(stderr, ",\"cooperator\":{");
        bool f = true;
        cli_json_u64(stderr, &f, "slices", s->coop.slices);
        cli_json_us(stderr, &f, "max_slice_us", s->coop.max_ns);
        cli_json_u64(stderr, &f, "overlong", s->coop.overlong);
        fputc('}', stderr);
    }
    fputs("}\n", stderr);
}

/* ---- the command ---- */

static void walk_usage(FILE *out)
{
    fprintf(out, "usage: morsel walk [options] [DIR...]\n\n"
                 "Prints every path under each DIR (default: .), DIR included, one per line,\n"
                 "as `find DIR` does, walking on an event loop that stays responsive.\n\n"
                 "  -0, --null          end each path with NUL instead of a newline\n"
                 "  -p, --parallel      read directories on the worker pool (order not kept)\n"
                 "      --max-depth N   descend at most N levels below DIR (find -maxdepth)\n"
                 "      --min-depth N   print nothing above level N (find -mindepth)\n"
                 "  -t, --type T        only paths of type T: f d l p s b c (find -type);\n"
                 "                      repeatable, OR'ed\n"
                 "      --name GLOB     only names matching GLOB (find -name); repeatable,\n"
                 "      --iname GLOB    OR'ed with each other and with --iname (case-blind)\n"
                 "      --exclude GLOB  neither print nor enter names matching GLOB (not DIR)\n"
                 "      --xdev          stay on DIR's file system (find -xdev)\n"
                 "  -L, --follow        follow symbolic links (find -L); loops are reported\n"
                 "      --fail-fast     stop at the first error (default: report and go on)\n"
                 "  -c, --count         print only the totals (of the paths that pass)\n"
                 "      --stats         print the loop's statistics and the lag of a 1 ms\n"
                 "                      heartbeat on stderr at the end\n"
                 "      --json          --count and --stats as one JSON object each\n"
                 "      --no-progress   no progress line (shown on stderr when it is a\n"
                 "                      terminal and the paths do not go to it)\n"
                 "  -h, --help          this help\n"
                 "  -V, --version       the version\n\n"
                 "Filters apply as the walk goes; the output equals find's with the same\n"
                 "expression. Errors go to stderr; the exit status is then 1. Usage errors\n"
                 "exit with 2. Default order: os.path.walk's (a directory's listing, then\n"
                 "its subdirectories).\n");
}

enum {
    OPT_FAIL_FAST = 256,
    OPT_STATS,
    OPT_JSON,
    OPT_MAX_DEPTH,
    OPT_MIN_DEPTH,
    OPT_NAME,
    OPT_INAME,
    OPT_EXCLUDE,
    OPT_XDEV,
    OPT_NO_PROGRESS
};

/* A filter's option; 0, or CLI_USAGE after saying why. */
static int parse_filter(struct walk_cli *c, int o, const char *arg)
{
    uint64_t v;
    switch (o) {
    case OPT_MAX_DEPTH:
    case OPT_MIN_DEPTH:
        if (!cli_parse_u64(arg, UINT_MAX - 1, &v))
            return cli_usage_error(cmd, "--%s takes a whole number, not '%s'",
                                   o == OPT_MAX_DEPTH ? "max-depth" : "min-depth", arg);
        *(o == OPT_MAX_DEPTH ? &c->f.max_depth : &c->f.min_depth) = (unsigned)v;
        return 0;
    case 't':
        if (walk_filter_add_type(&c->f, arg)) return 0;
        return cli_usage_error(cmd, "--type takes one of f d l p s b c, not '%s'", arg);
    case OPT_NAME:
    case OPT_INAME:
        if (walk_filter_add_name(&c->f, arg, o == OPT_INAME)) return 0;
        break;
    default: /* OPT_EXCLUDE */
        if (walk_filter_add_exclude(&c->f, arg)) return 0;
        break;
    }
    cli_error(cmd, "%s", strerror(ENOMEM));
    return CLI_FAIL;
}

/* A mode's option; true if `o` was one. */
static bool parse_flag(struct walk_cli *c, int o)
{
    bool *flags[] = {&c->parallel, &c->fail_fast, &c->count_only, &c->stats,
                     &c->json,     &c->xdev,      &c->follow,     &c->no_progress};
    const int opts[] = {'p',      OPT_FAIL_FAST, 'c', OPT_STATS,
                        OPT_JSON, OPT_XDEV,      'L', OPT_NO_PROGRESS};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        if (o != opts[i]) continue;
        *flags[i] = true;
        return true;
    }
    if (o != '0') return false;
    c->sep = '\0';
    return true;
}

/* Returns -1 to go on, or the exit status. */
static int parse(struct walk_cli *c, int argc, char **argv)
{
    static const struct option opts[] = {{"null", no_argument, NULL, '0'},
                                         {"parallel", no_argument, NULL, 'p'},
                                         {"fail-fast", no_argument, NULL, OPT_FAIL_FAST},
                                         {"count", no_argument, NULL, 'c'},
                                         {"stats", no_argument, NULL, OPT_STATS},
                                         {"json", no_argument, NULL, OPT_JSON},
                                         {"max-depth", required_argument, NULL, OPT_MAX_DEPTH},
                                         {"min-depth", required_argument, NULL, OPT_MIN_DEPTH},
                                         {"type", required_argument, NULL, 't'},
                                         {"name", required_argument, NULL, OPT_NAME},
                                         {"iname", required_argument, NULL, OPT_INAME},
                                         {"exclude", required_argument, NULL, OPT_EXCLUDE},
                                         {"xdev", no_argument, NULL, OPT_XDEV},
                                         {"follow", no_argument, NULL, 'L'},
                                         {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
                                         CLI_STD_OPTIONS,
                                         {NULL, 0, NULL, 0}};
    int o, status;
    optind = 1;
    while ((o = cli_getopt(cmd, walk_usage, argc, argv, "0pcLt:hV", opts, &status)) !=
           CLI_OPT_END) {
        if (o == CLI_OPT_EXIT) return status;
        if (!parse_flag(c, o) && (status = parse_filter(c, o, optarg)) != 0) return status;
    }
    static char *dot[] = {"."};
    c->tops = optind < argc ? argv + optind : dot;
    c->ntops = optind < argc ? argc - optind : 1;
    c->filtered = walk_filter_active(&c->f);
    return -1;
}

static int walk_run(struct walk_cli *c)
{
    int err = mo_loop_new(&c->loop, 0);
    if (err) {
        cli_error(cmd, "cannot create a loop: %s", mo_strerror(err));
        return CLI_FAIL;
    }
    if ((err = mo_cooperator_set_slice(c->loop, SLICE)) != 0) {
        cli_error(cmd, "cannot set the slice: %s", mo_strerror(err));
        mo_loop_free(c->loop);
        return CLI_FAIL;
    }
    if (c->stats) {
        c->beat_due = mo_loop_now(c->loop) + BEAT;
        if (mo_call_at(c->loop, c->beat_due, beat, c, &c->beat_id) != 0) c->beat_id = 0;
    }
    /* Progress on the terminal, unless the paths go to it too. */
    bool wanted = cli_progress_wanted(c->no_progress) && (c->count_only || !isatty(STDOUT_FILENO));
    c->progress = cli_progress_start(c->loop, wanted, progress_draw, c);
    c->started = mo_hrtime();
    walk_next(c);
    err = mo_loop_run(c->loop, MO_RUN_DEFAULT);
    out_flush(c);
    struct walk_stats s = {.elapsed = mo_hrtime() - c->started};
    if (c->stats) {
        s.have_loop = mo_loop_stats(c->loop, &s.loop) == 0;
        s.have_coop = mo_cooperator_stats(c->loop, &s.coop) == 0;
    }
    mo_loop_free(c->loop);
    if (err) {
        cli_error(cmd, "%s", mo_strerror(err));
        return CLI_FAIL;
    }
    if (c->count_only && !c->stopped) print_count(c);
    if (c->stats) {
        qsort(c->lags, c->nlags, sizeof(*c->lags), cmp_i64);
        (c->json ? print_stats_json : print_stats_text)(c, &s);
    }
    return c->status;
}

int cli_walk(int argc, char **argv)
{
    struct walk_cli c = {.sep = '\n'};
    walk_filter_init(&c.f);
    int status = parse(&c, argc, argv);
    if (status < 0 && !(c.out = malloc(OUT_SIZE))) {
        cli_error(cmd, "%s", strerror(ENOMEM));
        status = CLI_FAIL;
    }
    if (status < 0) status = walk_run(&c);
    free(c.out);
    free(c.prefix);
    free(c.lags);
    walk_filter_free(&c.f);
    return status;
}
