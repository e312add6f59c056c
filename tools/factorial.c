/* morsel factorial: N! on a morsel loop, printed in decimal (or hex).
 *
 * The fast path runs the piece DAG of fact.c with fact_loop.c: small pieces
 * as zero-delay calls on the loop, big ones on worker threads; the text is
 * written chunk by chunk, in order, as the chunks become ready, and the
 * writes themselves are offloaded (a pipe or a slow disk must not stall the
 * loop). --naive runs the seed's optFactorial (fact_naive.c) instead. */
#include "cli.h"

#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fact_loop.h"
#include "fact_naive.h"

struct opts {
    unsigned long n;
    bool naive, hex, progress, offload_all;
    unsigned long steps; /* 0: adaptive */
    unsigned threads;
    const char *output;
};

struct out {
    mo_loop_t *loop;
    struct offload *workers;
    struct opts *o;
    int fd;
    struct fact_plan *plan; /* borrowed while running, owned once fired */
    bool computed;          /* the Deferred fired */
    bool writing;
    size_t next; /* next text chunk to write */
    char *bytes; /* the chunk being written, ours */
    size_t len;
    int err;       /* first error (negative errno); loop thread only */
    int write_err; /* a write job's outcome: the only field a worker writes */
    mo_call_id progress_id;
    int64_t started;
    mpz_t naive; /* --naive: the result */
};

static const char *const cmd = "factorial";

/* ---- writing, offloaded, one chunk at a time, in order ---- */

static int write_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -errno;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static void write_work(void *arg)
{
    static const char zeros[65536] = {0};
    static char zero_text[sizeof zeros];
    struct out *s = arg;
    int err = 0;
    if (s->bytes) {
        err = write_all(s->fd, s->bytes, s->len);
    } else { /* the trailing zeros, then the newline */
        if (!zero_text[0]) memset(zero_text, '0', sizeof zero_text);
        for (size_t left = s->len; !err && left;) {
            size_t k = left < sizeof zeros ? left : sizeof zeros;
            err = write_all(s->fd, zero_text, k);
            left -= k;
        }
        if (!err) err = write_all(s->fd, "\n", 1);
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
    if (!s->err) s->err = s->write_err;
    s->writing = false;
    s->next++;
    write_next(s);
    if (s->err || s->next == fact_text_count(s->plan)) progress_stop(s);
}

static void write_next(struct out *s)
{
    if (s->writing || s->err || !s->plan || s->next >= fact_text_count(s->plan)) return;
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

/* ---- --progress ---- */

static void progress_tick(mo_loop_t *loop, void *arg)
{
    struct out *s = arg;
    char t[32];
    const char *took = cli_duration(mo_hrtime() - s->started, t, sizeof t);
    if (s->plan && !s->computed)
        fprintf(stderr, "\rmorsel: factorial: %zu/%zu pieces, %s ", fact_plan_done_count(s->plan),
                fact_plan_piece_count(s->plan), took);
    else if (s->plan)
        fprintf(stderr, "\rmorsel: factorial: writing %zu/%zu chunks, %s ", s->next,
                fact_text_count(s->plan), took);
    else
        fprintf(stderr, "\rmorsel: factorial: %s %s ", s->computed ? "writing" : "multiplying",
                took);
    if (mo_call_later(loop, MO_MSEC(100), progress_tick, s, &s->progress_id)) s->progress_id = 0;
}

static void progress_stop(struct out *s)
{
    if (!s->progress_id) return;
    mo_call_cancel(s->loop, s->progress_id);
    s->progress_id = 0;
    fprintf(stderr, "\r\033[K");
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

/* --naive: the seed's algorithm, then one offloaded mpz_out_str. */
static void naive_write_work(void *arg)
{
    struct out *s = arg;
    FILE *f = fdopen(dup(s->fd), "w");
    if (!f) {
        s->write_err = -errno;
        return;
    }
    mpz_out_str(f, s->o->hex ? 16 : 10, s->naive);
    fputc('\n', f);
    if (fclose(f)) s->write_err = -errno;
}

static void naive_written(mo_loop_t *loop, void *arg)
{
    (void)loop;
    struct out *s = arg;
    if (!s->err) s->err = s->write_err;
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
    fprintf(
        f,
        "usage: morsel factorial [--hex] [-o FILE] [--progress] [--threads T] [--offload-all] N\n"
        "       morsel factorial --naive [--steps K|auto] [--hex] [-o FILE] N\n\n"
        "Prints N! in decimal (exactly as Python's str(math.factorial(N))) and a\n"
        "newline, computed on an event loop that never blocks: small pieces run on\n"
        "the loop, big multiplications and conversions on worker threads.\n\n"
        "  --hex          lowercase hexadecimal instead, without a 0x prefix\n"
        "  -o, --output FILE  write to FILE instead of standard output\n"
        "  --progress     show progress on standard error, if it is a terminal\n"
        "  --threads T    worker threads (default: one per CPU)\n"
        "  --offload-all  small pieces to the workers too (default: run on the loop)\n"
        "  --naive        the seed's optFactorial: acc *= n, n-1, ... in chunks\n"
        "  --steps K      multiplications per chunk for --naive (default 10);\n"
        "                 'auto': the cooperator batches them into its 1 ms slices\n");
}

enum { OPT_HEX = 256, OPT_PROGRESS, OPT_NAIVE, OPT_STEPS, OPT_THREADS, OPT_OFFLOAD_ALL };

static int parse_option(int c, char **argv, struct opts *o, bool *steps_given)
{
    uint64_t v;
    switch (c) {
    case OPT_HEX:
        o->hex = true;
        return 0;
    case OPT_PROGRESS:
        o->progress = true;
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
        cli_error(cmd, "--steps takes a whole number from 1 to 4294967295, or 'auto'");
        return CLI_USAGE;
    case OPT_THREADS:
        if (cli_parse_u64(optarg, 256, &v) && v) {
            o->threads = (unsigned)v;
            return 0;
        }
        cli_error(cmd, "--threads takes a whole number from 1 to 256");
        return CLI_USAGE;
    case ':':
        cli_error(cmd, "%s needs an argument", argv[optind - 1]);
        return CLI_USAGE;
    default:
        if (optopt >= '0' && optopt <= '9')
            cli_error(cmd, "N must be a whole number from 0 to %lu", ULONG_MAX);
        else
            cli_error(cmd, "unknown option '%s' (see 'morsel factorial --help')", argv[optind - 1]);
        return CLI_USAGE;
    }
}

static int parse(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {{"hex", no_argument, NULL, OPT_HEX},
                                             {"output", required_argument, NULL, 'o'},
                                             {"progress", no_argument, NULL, OPT_PROGRESS},
                                             {"naive", no_argument, NULL, OPT_NAIVE},
                                             {"steps", required_argument, NULL, OPT_STEPS},
                                             {"threads", required_argument, NULL, OPT_THREADS},
                                             {"offload-all", no_argument, NULL, OPT_OFFLOAD_ALL},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    bool steps_given = false;
    int c, err;
    optind = 1;
    opterr = 0; /* our own messages, in the tool's format */
    while ((c = getopt_long(argc, argv, ":o:h", longopts, NULL)) != -1) {
        if (c == 'h') {
            factorial_usage(stdout);
            return -1;
        }
        if ((err = parse_option(c, argv, o, &steps_given))) return err;
    }
    if (steps_given && !o->naive) {
        cli_error(cmd, "--steps goes with --naive");
        return CLI_USAGE;
    }
    if (optind + 1 != argc) {
        cli_error(cmd, optind == argc ? "N is missing" : "one N only, got '%s' too",
                  argv[optind + 1 < argc ? optind + 1 : 0]);
        return CLI_USAGE;
    }
    uint64_t n;
    if (!cli_parse_u64(argv[optind], ULONG_MAX, &n)) {
        cli_error(cmd, "N must be a whole number from 0 to %lu, not '%s'", ULONG_MAX, argv[optind]);
        return CLI_USAGE;
    }
    o->n = (unsigned long)n;
    return 0;
}

static int open_output(struct out *s)
{
    s->fd = STDOUT_FILENO;
    if (!s->o->output) return 0;
    s->fd = open(s->o->output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (s->fd >= 0) return 0;
    cli_error(cmd, "cannot open '%s': %s", s->o->output, strerror(errno));
    return CLI_FAIL;
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
    if (!err && s->o->progress && isatty(STDERR_FILENO)) progress_tick(s->loop, s);
    s->started = mo_hrtime();
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
    if (rc) return rc < 0 ? CLI_OK : rc;
    if ((rc = check_size(&o))) return rc;
    cli_gmp_exit_on_oom(cmd);
    struct out s = {.o = &o};
    mpz_init(s.naive);
    if ((rc = open_output(&s))) return rc;
    int err = run(&s);
    if (s.plan) fact_plan_free(s.plan);
    mpz_clear(s.naive);
    if (s.fd != STDOUT_FILENO && close(s.fd) && !err) err = -errno;
    if (err) {
        cli_error(cmd, "%s", mo_strerror(err));
        return CLI_FAIL;
    }
    return CLI_OK;
}
