/* morsel factorial: N! on a morsel loop, printed in decimal (or hex).
 *
 * The fast path runs the piece DAG of fact.c with fact_loop.c: small pieces
 * as zero-delay calls on the loop, big ones on worker threads; the text is
 * written chunk by chunk, in order, as the chunks become ready, and the
 * writes themselves are offloaded (a pipe or a slow disk must not stall the
 * loop). --naive runs the seed's optFactorial (fact_naive.c) instead.
 *
 * -o FILE never leaves a partial file: the text goes to a temporary file
 * beside FILE, renamed over it at the end; a failure or a fatal signal
 * removes it (cli.h), so FILE keeps its old contents. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fact_loop.h"
#include "fact_naive.h"
#include "progress.h"

struct opts {
    unsigned long n;
    bool naive, hex, no_progress, offload_all;
    unsigned long steps; /* 0: adaptive */
    unsigned threads;
    const char *output;
};

/* Where the text goes: stdout, a temporary file renamed to `path` at the
 * end, or (not a regular file: a device, a FIFO) `path` itself. */
struct target {
    int fd;
    const char *path; /* NULL: stdout */
    char *tmp;        /* the temporary file, or NULL */
    char *final;      /* what tmp is renamed to: path, symlinks resolved */
};

struct out {
    mo_loop_t *loop;
    struct offload *workers;
    struct opts *o;
    struct target t;
    int fd;
    struct fact_plan *plan; /* borrowed while running, owned once fired */
    bool computed;          /* the Deferred fired */
    bool writing;
    size_t next; /* next text chunk to write */
    char *bytes; /* the chunk being written, ours */
    size_t len;
    int err;           /* first error (negative MO_E* code); loop thread only */
    int werr;          /* the errno of the first failed write; loop thread only */
    int write_err;     /* a write job's errno: the only field a worker writes */
    uint64_t written;  /* bytes of text written */
    double text_total; /* bytes of text expected */
    struct cli_progress *progress;
    mpz_t naive; /* --naive: the result */
};

static const char *const cmd = "factorial";

/* ---- writing, offloaded, one chunk at a time, in order ---- */

static void write_work(void *arg)
{
    static const char zeros[65536] = {0};
    static char zero_text[sizeof zeros];
    struct out *s = arg;
    int err = 0;
    if (s->bytes) {
        err = cli_write_all(s->fd, s->bytes, s->len);
    } else { /* the trailing zeros, then the newline */
        if (!zero_text[0]) memset(zero_text, '0', sizeof zero_text);
        for (size_t left = s->len; !err && left;) {
            size_t k = left < sizeof zeros ? left : sizeof zeros;
            err = cli_write_all(s->fd, zero_text, k);
            left -= k;
        }
        if (!err) err = cli_write_all(s->fd, "\n", 1);
    }
    s->write_err = err;
}

static void write_next(struct out *s);
static void progress_stop(struct out *s);

static void write_done(mo_loop_t *loop, void *arg)
{
    (void)loop;
    struct out *s = arg;
    free(s->bytes);
    s->bytes = NULL;
    if (!s->werr) s->werr = s->write_err;
    s->written += s->len;
    s->writing = false;
    s->next++;
    write_next(s);
    if (s->err || s->werr || s->next == fact_text_count(s->plan)) progress_stop(s);
}

static void write_next(struct out *s)
{
    if (s->writing || s->err || s->werr || !s->plan || s->next >= fact_text_count(s->plan)) return;
    if (!fact_text_take(s->plan, s->next, &s->bytes, &s->len)) return;
    int err = offload_submit(s->workers, write_work, write_done, s);
    if (err) {
        free(s->bytes);
        s->bytes = NULL;
        s->err = err;
    } else {
        s->writing = true;
    }
}

static void on_progress(struct fact_plan *plan, void *arg)
{
    struct out *s = arg;
    s->plan = plan;
    write_next(s);
}

/* ---- progress (progress.h) ---- */

/* The fraction done: the pieces' cost (fact.h), a running piece counting
 * half (a big product on a worker holds the bar still otherwise), then the
 * digits written, a digit weighing what its bits weigh in a copy. */
static double fraction_done(const struct out *s)
{
    if (!s->plan) return 0;
    double per_digit = s->o->hex ? 0.5 : 0.42;
    double text = s->text_total * per_digit;
    double total = fact_plan_work_total(s->plan) + text;
    double done = (fact_plan_work_done(s->plan) + fact_plan_work_started(s->plan)) / 2;
    if (s->computed) done = fact_plan_work_total(s->plan);
    return total > 0 ? (done + (double)s->written * per_digit) / total : 0;
}

/* "[#######.......]  45%  multiplying  3.2s  ETA 4.0s" */
static void progress_draw(void *arg, char *buf, size_t size, int width, int64_t elapsed)
{
    struct out *s = arg;
    char t[16], e[16], tail[64];
    const char *phase = s->computed ? "writing" : "computing";
    cli_progress_time(t, sizeof t, elapsed);
    if (s->o->naive) { /* its steps are not weighed: no bar */
        snprintf(buf, size, "morsel: factorial: %s  %s", phase, t);
        return;
    }
    double f = fraction_done(s);
    int n;
    if (f >= 0.01 && elapsed >= MO_MSEC(500))
        n = snprintf(tail, sizeof tail, "  %s  %s  ETA %s", phase, t,
                     cli_progress_time(e, sizeof e, (int64_t)((double)elapsed * (1 - f) / f)));
    else
        n = snprintf(tail, sizeof tail, "  %s  %s", phase, t);
    int cols = width - n;
    cli_progress_bar(buf, size, f, cols > 60 ? 60 : cols);
    snprintf(buf + strlen(buf), size - strlen(buf), "%s", tail);
}

static void progress_stop(struct out *s)
{
    cli_progress_stop(s->progress);
    s->progress = NULL;
}

/* ---- the result ---- */

static void computed(mo_result_t *result, void *arg)
{
    struct out *s = arg;
    mo_dtor_fn dtor;
    s->plan = mo_result_take(result, &dtor); /* ours to free now */
    s->computed = true;
    write_next(s);
}

static void failed(mo_result_t *result, void *arg)
{
    struct out *s = arg;
    int code = mo_failure_code(mo_result_failure(result));
    s->err = code ? code : MO_EIO;
    s->plan = NULL; /* the run frees it */
    progress_stop(s);
    mo_result_set(result, NULL, NULL); /* handled: reported by the caller */
}

static int run_fast(struct out *s)
{
    struct fact_plan *plan;
    int err = fact_plan_new(&plan, s->o->n, s->o->hex ? FACT_HEX : FACT_DECIMAL);
    if (err) return err;
    mo_deferred_t *d;
    err = fact_loop_start(s->loop, s->workers, plan,
                          s->o->offload_all ? FACT_LOOP_ALL_ON_WORKERS : 0, on_progress, s, &d);
    if (err) return err;
    err = mo_deferred_add_callbacks(d, computed, failed, s);
    mo_deferred_unref(d);
    if (err) return err;
    return mo_loop_run(s->loop, MO_RUN_DEFAULT);
}

/* --naive: the seed's algorithm, then one offloaded write of its text. */
static void naive_write_work(void *arg)
{
    struct out *s = arg;
    char *text = mpz_get_str(NULL, s->o->hex ? 16 : 10, s->naive);
    size_t len = strlen(text);
    text[len] = '\n'; /* over the NUL: written as one block */
    s->write_err = cli_write_all(s->fd, text, len + 1);
    void (*gmp_free_fn)(void *, size_t);
    mp_get_memory_functions(NULL, NULL, &gmp_free_fn);
    gmp_free_fn(text, len + 1);
}

static void naive_written(mo_loop_t *loop, void *arg)
{
    (void)loop;
    struct out *s = arg;
    if (!s->werr) s->werr = s->write_err;
    progress_stop(s);
}

static void naive_computed(mo_result_t *result, void *arg)
{
    struct out *s = arg;
    mpz_swap(s->naive, *(mpz_t *)mo_result_value(result));
    s->computed = true;
    int err = offload_submit(s->workers, naive_write_work, naive_written, s);
    if (err) {
        s->err = err;
        progress_stop(s);
    }
}

static int run_naive(struct out *s)
{
    mo_deferred_t *d;
    int err = fact_naive(s->loop, s->o->n, s->o->steps, &d);
    if (err) return err;
    err = mo_deferred_add_callbacks(d, naive_computed, failed, s);
    mo_deferred_unref(d);
    if (err) return err;
    return mo_loop_run(s->loop, MO_RUN_DEFAULT);
}

/* ---- options ---- */

static void factorial_usage(FILE *f)
{
    fprintf(f, "usage: morsel factorial [--hex] [-o FILE] [--threads T] [--offload-all] N\n"
               "       morsel factorial --naive [--steps K|auto] [--hex] [-o FILE] N\n\n"
               "Prints N! in decimal (exactly as Python's str(math.factorial(N))) and a\n"
               "newline, computed on an event loop that never blocks: small pieces run on\n"
               "the loop, big multiplications and conversions on worker threads.\n\n"
               "  --hex              lowercase hexadecimal instead, without a 0x prefix\n"
               "  -o, --output FILE  write to FILE instead of standard output; FILE is\n"
               "                     replaced only once the whole text is written\n"
               "  --no-progress      no progress line (shown on stderr when it is a\n"
               "                     terminal and the text does not go to it)\n"
               "  --threads T        worker threads (default: one per CPU)\n"
               "  --offload-all      small pieces to the workers too (default: on the loop)\n"
               "  --naive            the seed's optFactorial: acc *= n, n-1, ... in chunks\n"
               "  --steps K          multiplications per chunk for --naive (default 10);\n"
               "                     'auto': the cooperator batches them into its 1 ms slices\n"
               "  -h, --help         this help\n"
               "  -V, --version      the version\n");
}

enum {
    OPT_HEX = 256,
    OPT_PROGRESS,
    OPT_NO_PROGRESS,
    OPT_NAIVE,
    OPT_STEPS,
    OPT_THREADS,
    OPT_OFFLOAD_ALL
};

/* Returns 0, or CLI_USAGE after saying why. */
static int parse_option(int c, struct opts *o, bool *steps_given)
{
    uint64_t v;
    switch (c) {
    case OPT_HEX:
        o->hex = true;
        return 0;
    case OPT_PROGRESS: /* the default on a terminal; kept for old scripts */
        return 0;
    case OPT_NO_PROGRESS:
        o->no_progress = true;
        return 0;
    case OPT_NAIVE:
        o->naive = true;
        return 0;
    case OPT_OFFLOAD_ALL:
        o->offload_all = true;
        return 0;
    case 'o':
        o->output = optarg;
        return 0;
    case OPT_STEPS:
        *steps_given = true;
        if (!strcmp(optarg, "auto")) {
            o->steps = 0;
            return 0;
        }
        if (cli_parse_u64(optarg, UINT32_MAX, &v) && v) {
            o->steps = (unsigned long)v;
            return 0;
        }
        return cli_usage_error(cmd, "--steps takes a whole number from 1 to 4294967295, or 'auto'");
    default: /* OPT_THREADS */
        if (cli_parse_u64(optarg, 256, &v) && v) {
            o->threads = (unsigned)v;
            return 0;
        }
        return cli_usage_error(cmd, "--threads takes a whole number from 1 to 256");
    }
}

/* A negative N reads as an option to getopt: say what is wrong with it. */
static int check_negative(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (argv[i][0] == '-' && argv[i][1] >= '0' && argv[i][1] <= '9')
            return cli_usage_error(cmd, "N must be a whole number from 0 to %lu, not '%s'",
                                   ULONG_MAX, argv[i]);
    return 0;
}

/* Returns -1 to go on, or the exit status. */
static int parse(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {{"hex", no_argument, NULL, OPT_HEX},
                                             {"output", required_argument, NULL, 'o'},
                                             {"progress", no_argument, NULL, OPT_PROGRESS},
                                             {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
                                             {"naive", no_argument, NULL, OPT_NAIVE},
                                             {"steps", required_argument, NULL, OPT_STEPS},
                                             {"threads", required_argument, NULL, OPT_THREADS},
                                             {"offload-all", no_argument, NULL, OPT_OFFLOAD_ALL},
                                             CLI_STD_OPTIONS,
                                             {NULL, 0, NULL, 0}};
    bool steps_given = false;
    int c, status;
    if ((status = check_negative(argc, argv))) return status;
    optind = 1;
    while ((c = cli_getopt(cmd, factorial_usage, argc, argv, "o:hV", longopts, &status)) !=
           CLI_OPT_END) {
        if (c == CLI_OPT_EXIT) return status;
        if ((status = parse_option(c, o, &steps_given))) return status;
    }
    if (steps_given && !o->naive) return cli_usage_error(cmd, "--steps goes with --naive");
    if (optind == argc) return cli_usage_error(cmd, "N is missing");
    if (optind + 1 != argc)
        return cli_usage_error(cmd, "one N only, got '%s' too", argv[optind + 1]);
    uint64_t n;
    if (!cli_parse_u64(argv[optind], ULONG_MAX, &n))
        return cli_usage_error(cmd, "N must be a whole number from 0 to %lu, not '%s'", ULONG_MAX,
                               argv[optind]);
    o->n = (unsigned long)n;
    return -1;
}

/* ---- the output file ---- */

/* The mode a new file gets from open(path, ..., 0666): 0666 less the umask. */
static mode_t new_file_mode(void)
{
    mode_t mask = umask(0);
    umask(mask);
    return 0666 & ~mask;
}

/* A temporary file beside `final` (".NAME.XXXXXX" in its directory) with
 * the mode `final` has, or would get; registered for removal on a fatal
 * signal. Returns 0 or an errno. */
static int target_tmp(struct target *t, const struct stat *old)
{
    char *dir_copy = strdup(t->final), *base_copy = strdup(t->final);
    int err = ENOMEM;
    if (dir_copy && base_copy) {
        const char *dir = dirname(dir_copy), *base = basename(base_copy);
        size_t n = strlen(dir) + strlen(base) + 16;
        if ((t->tmp = malloc(n)) != NULL) {
            snprintf(t->tmp, n, "%s/.%s.XXXXXX", dir, base);
            t->fd = mkostemp(t->tmp, O_CLOEXEC);
            err = t->fd < 0 ? errno : 0;
        }
    }
    free(dir_copy);
    free(base_copy);
    if (err) return err;
    if (!cli_cleanup_file(t->tmp)) err = ENAMETOOLONG;
    if (!err && fchmod(t->fd, old ? old->st_mode & 07777 : new_file_mode()) != 0) err = errno;
    if (!err && old && fchown(t->fd, old->st_uid, old->st_gid) != 0) {
        /* Not ours to give away (not root): the file becomes ours. */
    }
    return err;
}

static int target_close(struct target *t, bool ok);

/* Opens where the text goes. Returns 0 or CLI_FAIL after saying why. */
static int target_open(struct target *t, const char *path)
{
    *t = (struct target){.fd = STDOUT_FILENO, .path = path};
    if (!path) return 0;
    struct stat st;
    bool exists = stat(path, &st) == 0;
    int err = 0;
    if (exists && !S_ISREG(st.st_mode)) { /* a device or a FIFO: written in place */
        t->fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
        err = t->fd < 0 ? errno : 0;
    } else {
        t->final = exists ? realpath(path, NULL) : strdup(path); /* through symlinks */
        err = t->final ? target_tmp(t, exists ? &st : NULL) : errno;
    }
    if (!err) return 0;
    target_close(t, false); /* what was made of it */
    cli_error(cmd, "cannot open '%s': %s", path, strerror(err));
    return CLI_FAIL;
}

/* Ends the output: `ok` renames the temporary file over the target;
 * otherwise it is removed. Returns 0 or the errno of closing or renaming. */
static int target_close(struct target *t, bool ok)
{
    int err = 0;
    if (t->fd != STDOUT_FILENO && t->fd >= 0 && close(t->fd) != 0) err = errno;
    if (t->tmp) {
        if (ok && !err && rename(t->tmp, t->final) != 0) err = errno;
        if (!ok || err) unlink(t->tmp);
        cli_cleanup_file(NULL);
    }
    free(t->tmp);
    free(t->final);
    return err;
}

static int check_size(const struct opts *o)
{
    double need = o->naive ? fact_estimate_bytes(o->n, FACT_VALUE) * 0.6
                           : fact_estimate_bytes(o->n, o->hex ? FACT_HEX : FACT_DECIMAL);
    double have = cli_memory_limit();
    if (need <= have && need < 1e18) return 0;
    cli_error(cmd, "%lu! needs about %.3g GB of memory, more than the %.3g GB available", o->n,
              need / 1e9, have / 1e9);
    return CLI_FAIL;
}

static int run(struct out *s)
{
    int err = mo_loop_new(&s->loop, 0);
    if (!err) err = offload_new(&s->workers, s->loop, s->o->threads);
    /* Progress on the terminal, unless the text goes to it too. */
    bool wanted = cli_progress_wanted(s->o->no_progress) && (s->t.path || !isatty(s->fd));
    if (!err) s->progress = cli_progress_start(s->loop, wanted, progress_draw, s);
    if (!err) err = s->o->naive ? run_naive(s) : run_fast(s);
    progress_stop(s);
    offload_free(s->workers);
    if (s->loop) mo_loop_run(s->loop, MO_RUN_DEFAULT); /* the last thread calls */
    mo_loop_free(s->loop);
    if (!err) err = s->err;
    return err;
}

int cli_factorial(int argc, char **argv)
{
    struct opts o = {.steps = 10};
    int rc = parse(argc, argv, &o);
    if (rc >= 0) return rc;
    if ((rc = check_size(&o))) return rc;
    cli_gmp_exit_on_oom(cmd);
    struct out s = {.o = &o};
    s.text_total = fact_text_estimate(o.n, o.hex ? FACT_HEX : FACT_DECIMAL);
    if ((rc = target_open(&s.t, o.output))) return rc;
    s.fd = s.t.fd;
    mpz_init(s.naive);
    int err = run(&s);
    if (s.plan) fact_plan_free(s.plan);
    mpz_clear(s.naive);
    int close_err = target_close(&s.t, !err && !s.werr);
    if (!s.werr) s.werr = close_err;
    if (s.werr) {
        cli_write_failed(cmd, o.output, s.werr);
        return CLI_FAIL;
    }
    if (err) {
        cli_error(cmd, "%s", mo_strerror(err));
        return CLI_FAIL;
    }
    return CLI_OK;
}
