/* The factorial: the piece DAG of tools/fact.c against GMP's mpz_fac_ui,
 * its text output, its driver on a loop with worker threads, the naive
 * optFactorial, and the `morsel factorial` CLI and example as programs.
 * MO_TEST_LABEL_THREADS: the driver's pieces run on worker threads. */
#include "test.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* These live in tools/ (GMP stays out of the library), in the tools' internal
 * library that this test links. */
#include "fact.h"
#include "fact_loop.h"
#include "fact_naive.h"
#include "offload.h"

/* ---- the module ---- */

static void assert_fac(mpz_srcptr got, unsigned long n)
{
    mpz_t want;
    mpz_init(want);
    mpz_fac_ui(want, n);
    if (mpz_cmp(got, want)) fail_msg("%lu! differs from mpz_fac_ui", n);
    mpz_clear(want);
}

static void every_n_to_3000(void **state)
{
    (void)state;
    mpz_t f;
    mpz_init(f);
    for (unsigned long n = 0; n <= 3000; n++) {
        assert_ok(fact_compute(f, n));
        assert_fac(f, n);
    }
    mpz_clear(f);
}

/* Leaf and level boundaries (LEAF_SPAN = 2^17), chunked products (large N),
 * and a handful of big N up to 2,000,000. */
static void sampled_n_to_2000000(void **state)
{
    (void)state;
    static const unsigned long ns[] = {3001,   4093,   65536,   131074,  131075, 262147,
                                       524288, 999983, 1000000, 1500007, 2000000};
    mpz_t f;
    mpz_init(f);
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        assert_ok(fact_compute(f, ns[i]));
        assert_fac(f, ns[i]);
    }
    mpz_clear(f);
}

/* Runs a plan in the opposite order from the one it suggests: the most
 * recently readied piece first. Any order the DAG allows must work. */
static void run_lifo(struct fact_plan *p)
{
    int *stack = malloc(fact_plan_piece_count(p) * sizeof *stack);
    size_t n = 0;
    assert_non_null(stack);
    for (;;) {
        for (int id; (id = fact_plan_take(p)) >= 0;) stack[n++] = id;
        if (!n) break;
        int id = stack[--n];
        assert_ok(fact_piece_run(p, id));
        fact_piece_done(p, id);
    }
    assert_true(fact_plan_finished(p));
    free(stack);
}

static void any_order_gives_the_same_value(void **state)
{
    (void)state;
    static const unsigned long ns[] = {0, 1, 2, 3, 77, 5000, 300000};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        struct fact_plan *p;
        assert_ok(fact_plan_new(&p, ns[i], FACT_VALUE));
        run_lifo(p);
        mpz_t f;
        mpz_init(f);
        fact_plan_result(p, f);
        assert_fac(f, ns[i]);
        mpz_clear(f);
        fact_plan_free(p);
    }
}

/* The whole text of a finished plan, as one string (caller frees). */
static char *plan_text(struct fact_plan *p)
{
    size_t cap = 1, len = 0;
    char *all = malloc(cap);
    for (size_t i = 0; i < fact_text_count(p); i++) {
        char *bytes = NULL;
        size_t n = 0;
        assert_true(fact_text_take(p, i, &bytes, &n));
        all = realloc(all, cap += n);
        assert_non_null(all);
        if (bytes)
            memcpy(all + len, bytes, n);
        else
            memset(all + len, '0', n);
        len += n;
        free(bytes);
    }
    all[len] = '\0';
    return all;
}

static void assert_text(unsigned long n, enum fact_output out, bool lifo)
{
    struct fact_plan *p;
    assert_ok(fact_plan_new(&p, n, out));
    if (lifo) {
        run_lifo(p);
    } else {
        for (int id; (id = fact_plan_take(p)) >= 0; fact_piece_done(p, id))
            assert_ok(fact_piece_run(p, id));
    }
    char *got = plan_text(p);
    mpz_t f;
    mpz_init(f);
    mpz_fac_ui(f, n);
    char *want = mpz_get_str(NULL, out == FACT_HEX ? 16 : 10, f);
    if (strcmp(got, want))
        fail_msg("%lu! in base %d: got %zu chars '%.20s...', want %zu chars '%.20s...'", n,
                 out == FACT_HEX ? 16 : 10, strlen(got), got, strlen(want), want);
    free(want);
    free(got);
    mpz_clear(f);
    fact_plan_free(p);
}

static void decimal_text_is_exact(void **state)
{
    (void)state;
    static const unsigned long ns[] = {0, 1, 2, 3, 4, 5, 9, 10, 24, 25, 100, 1000, 4321};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) assert_text(ns[i], FACT_DECIMAL, false);
    /* Above DEC_LEAF_DIGITS the text is split by powers of ten and padded. */
    assert_text(200000, FACT_DECIMAL, false);
    assert_text(250003, FACT_DECIMAL, true);
}

/* The plan's text is GMP's digits of n!. */
static void assert_plan_text(struct fact_plan *plan, unsigned long n)
{
    char *got = plan_text(plan);
    mpz_t f;
    mpz_init(f);
    mpz_fac_ui(f, n);
    char *want = mpz_get_str(NULL, 10, f);
    assert_true(strcmp(got, want) == 0);
    free(got);
    free(want);
    mpz_clear(f);
}

/* The release hook receives the inputs nobody needs any more, to free
 * elsewhere; the text is the same. */
static void count_release(mpz_t *z, void *arg)
{
    (*(size_t *)arg)++;
    mpz_clear(*z);
    free(z);
}

static void release_hook_frees_inputs(void **state)
{
    (void)state;
    struct fact_plan *p;
    size_t released = 0;
    assert_ok(fact_plan_new(&p, 200000, FACT_DECIMAL));
    fact_plan_set_release(p, 4096, count_release, &released);
    for (int id; (id = fact_plan_take(p)) >= 0; fact_piece_done(p, id))
        assert_ok(fact_piece_run(p, id));
    assert_true(released > 0);
    assert_plan_text(p, 200000);
    fact_plan_free(p);
}

static void hex_text_is_exact(void **state)
{
    (void)state;
    static const unsigned long ns[] = {0, 1, 2, 3, 4, 5, 15, 16, 17, 100, 1000};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) assert_text(ns[i], FACT_HEX, false);
    /* Several HEX_LIMBS chunks: the lower ones are zero-padded. */
    assert_text(300000, FACT_HEX, true);
}

static void text_known_values(void **state)
{
    (void)state;
    struct fact_plan *p;
    assert_ok(fact_plan_new(&p, 25, FACT_DECIMAL));
    for (int id; (id = fact_plan_take(p)) >= 0; fact_piece_done(p, id))
        assert_ok(fact_piece_run(p, id));
    char *s = plan_text(p);
    assert_string_equal(s, "15511210043330985984000000");
    free(s);
    /* A chunk is handed over once. */
    char *bytes;
    size_t len;
    assert_false(fact_text_take(p, 0, &bytes, &len));
    fact_plan_free(p);
}

static void text_not_ready_before_its_pieces(void **state)
{
    (void)state;
    struct fact_plan *p;
    char *bytes;
    size_t len;
    assert_ok(fact_plan_new(&p, 1000, FACT_DECIMAL));
    assert_false(fact_text_take(p, 0, &bytes, &len));
    assert_false(fact_text_take(p, fact_text_count(p) - 1, &bytes, &len));
    fact_plan_free(p); /* unfinished: frees everything */
}

static void bad_plans(void **state)
{
    (void)state;
    struct fact_plan *p = NULL;
    assert_int_equal(fact_plan_new(&p, 10, (enum fact_output)7), -EINVAL);
    assert_int_equal(fact_plan_new(&p, ULONG_MAX, FACT_VALUE), -EOVERFLOW);
    assert_int_equal(fact_plan_new(&p, ULONG_MAX / 2, FACT_DECIMAL), -EOVERFLOW);
    assert_null(p);
    fact_plan_free(NULL);
}

static void big_pieces_are_marked(void **state)
{
    (void)state;
    struct fact_plan *p;
    assert_ok(fact_plan_new(&p, 1000000, FACT_VALUE));
    size_t big = 0;
    for (size_t i = 0; i < fact_plan_piece_count(p); i++) big += fact_piece_big(p, (int)i);
    assert_true(big > 0);
    assert_true(big < fact_plan_piece_count(p)); /* leaves are small */
    assert_false(fact_piece_big(p, 0));
    fact_plan_free(p);
    /* A small N has nothing to offload. */
    assert_ok(fact_plan_new(&p, 1000, FACT_DECIMAL));
    for (size_t i = 0; i < fact_plan_piece_count(p); i++) assert_false(fact_piece_big(p, (int)i));
    fact_plan_free(p);
}

static void estimate_grows_with_n(void **state)
{
    (void)state;
    double a = fact_estimate_bytes(1000, FACT_DECIMAL),
           b = fact_estimate_bytes(1000000, FACT_DECIMAL);
    assert_true(b > a);
    /* 10^12! needs terabytes: the CLI refuses it from this figure. */
    assert_true(fact_estimate_bytes(1000000000000UL, FACT_VALUE) > 1e13);
}

/* ---- the driver on a loop ---- */

struct outcome {
    struct fact_plan *plan;
    mpz_t *value;
    int code;
    size_t progress;
};

static void took_plan(mo_result_t *result, void *arg)
{
    struct outcome *o = arg;
    mo_dtor_fn dtor;
    o->plan = mo_result_take(result, &dtor);
}

static void took_failure(mo_result_t *result, void *arg)
{
    struct outcome *o = arg;
    o->code = mo_failure_code(mo_result_failure(result));
    mo_result_set(result, NULL, NULL);
}

static void count_progress(struct fact_plan *plan, void *arg)
{
    (void)plan;
    ((struct outcome *)arg)->progress++;
}

static void loop_driver_text(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct offload *w = NULL;
    struct fact_plan *p;
    mo_deferred_t *d;
    struct outcome o = {0};
    assert_ok(offload_new(&w, loop, 2));
    assert_ok(fact_plan_new(&p, 250003, FACT_DECIMAL));
    size_t pieces = fact_plan_piece_count(p);
    assert_ok(fact_loop_start(loop, w, p, 0, count_progress, &o, &d));
    assert_ok(mo_deferred_add_callbacks(d, took_plan, took_failure, &o));
    mo_deferred_unref(d);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_non_null(o.plan);
    assert_int_equal(o.progress, pieces);
    assert_plan_text(o.plan, 250003);
    fact_plan_free(o.plan);
    offload_free(w);
    mo_loop_free(loop);
}

/* fact_loop_hold(): no piece runs until fact_loop_resume(), however long
 * the loop turns; then the run finishes with the exact text. */
struct holder {
    struct fact_run *run;
    size_t progress, held_at;
};

static void hold_progress(struct fact_plan *plan, void *arg)
{
    (void)plan;
    struct holder *h = arg;
    if (++h->progress == 5) {
        fact_loop_hold(h->run);
        h->held_at = h->progress;
    }
}

static void noop_call(mo_loop_t *loop, void *arg)
{
    (void)loop, (void)arg;
}

static void loop_driver_hold(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct offload *w = NULL;
    struct fact_plan *p;
    mo_deferred_t *d;
    struct outcome o = {0};
    struct holder h = {0};
    assert_ok(offload_new(&w, loop, 2));
    assert_ok(fact_plan_new(&p, 250003, FACT_DECIMAL));
    size_t pieces = fact_plan_piece_count(p);
    assert_ok(fact_loop_start_run(loop, w, p, 0, hold_progress, &h, &h.run, &d));
    assert_ok(mo_deferred_add_callbacks(d, took_plan, took_failure, &o));
    mo_deferred_unref(d);
    for (int i = 0; i < 100; i++) { /* pieces already on workers come back */
        assert_ok(mo_call_later(loop, MO_MSEC(1), noop_call, NULL, NULL));
        assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    }
    assert_null(o.plan);
    size_t held = h.progress;
    assert_true(held < pieces);
    assert_true(held <= h.held_at + 2); /* at most the pieces out on the two workers */
    for (int i = 0; i < 20; i++) {
        assert_ok(mo_call_later(loop, MO_MSEC(1), noop_call, NULL, NULL));
        assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    }
    assert_int_equal(h.progress, held);
    fact_loop_resume(h.run);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_non_null(o.plan);
    assert_int_equal(h.progress, pieces);
    assert_plan_text(o.plan, 250003);
    fact_plan_free(o.plan);
    offload_free(w);
    mo_loop_free(loop);
}

static void loop_driver_value(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct offload *w = NULL;
    struct fact_plan *p;
    mo_deferred_t *d;
    struct outcome o = {0};
    assert_ok(offload_new(&w, loop, 0));
    assert_ok(fact_plan_new(&p, 1000000, FACT_VALUE));
    assert_ok(fact_loop_start(loop, w, p, FACT_LOOP_ALL_ON_WORKERS, NULL, NULL, &d));
    assert_ok(mo_deferred_add_callbacks(d, took_plan, took_failure, &o));
    mo_deferred_unref(d);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_non_null(o.plan);
    mpz_t f;
    mpz_init(f);
    fact_plan_result(o.plan, f);
    assert_fac(f, 1000000);
    mpz_clear(f);
    fact_plan_free(o.plan);
    offload_free(w);
    mo_loop_free(loop);
}

static void cancel_soon(mo_loop_t *loop, void *arg)
{
    (void)loop;
    assert_ok(mo_deferred_cancel(arg));
}

static void loop_driver_cancel(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct offload *w = NULL;
    struct fact_plan *p;
    mo_deferred_t *d;
    struct outcome o = {0};
    assert_ok(offload_new(&w, loop, 2));
    assert_ok(fact_plan_new(&p, 2000000, FACT_DECIMAL));
    assert_ok(fact_loop_start(loop, w, p, 0, NULL, NULL, &d));
    assert_ok(mo_deferred_add_callbacks(d, took_plan, took_failure, &o));
    assert_ok(mo_call_later(loop, MO_MSEC(20), cancel_soon, d, NULL));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT)); /* returns once the workers are back */
    assert_null(o.plan);
    assert_int_equal(o.code, MO_ECANCELED);
    mo_deferred_unref(d);
    offload_free(w);
    mo_loop_free(loop);
}

/* ---- the naive optFactorial ---- */

static void took_mpz(mo_result_t *result, void *arg)
{
    mpz_swap(*(mpz_t *)arg, *(mpz_t *)mo_result_value(result));
}

static void naive_is_exact(void **state)
{
    (void)state;
    static const unsigned long steps[] = {1, 2, 7, 10, 1000, 0};
    static const unsigned long ns[] = {0, 1, 2, 10, 777, 20000};
    mo_loop_t *loop = mo_test_loop();
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
            mpz_t f;
            mpz_init_set_ui(f, 12345); /* must be replaced */
            mo_deferred_t *d;
            assert_ok(fact_naive(loop, ns[k], steps[i], &d));
            assert_int_equal(mo_deferred_fired(d), 0); /* nothing runs before the loop */
            assert_ok(mo_deferred_add_callback(d, took_mpz, &f));
            assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
            assert_int_equal(mo_deferred_fired(d), 1);
            mo_deferred_unref(d);
            assert_fac(f, ns[k]);
            mpz_clear(f);
        }
    }
    mo_loop_free(loop);
}

/* Each chunk is one loop callback: with steps = 1, N multiplications take
 * N passes; a delayed call due meanwhile runs before the result. */
static void record_tick(mo_loop_t *loop, void *arg)
{
    (void)loop;
    (*(int *)arg)++;
}

static void seen_ticks(mo_result_t *result, void *arg)
{
    (void)result;
    int *ticks = arg;
    ticks[1] = ticks[0];
}

static void naive_yields_between_chunks(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    int ticks[2] = {0, -1};
    mo_deferred_t *d;
    assert_ok(fact_naive(loop, 50, 1, &d));
    assert_ok(mo_call_later(loop, 0, record_tick, &ticks[0], NULL));
    assert_ok(mo_deferred_add_callback(d, seen_ticks, ticks));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(ticks[1], 1); /* the timer ran before the Deferred fired */
    mo_deferred_unref(d);
    mo_loop_free(loop);
}

static void naive_cancel(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    for (unsigned long steps = 0; steps < 2; steps++) { /* the cooperator's task, then chunks */
        mo_deferred_t *d;
        struct outcome o = {0};
        assert_ok(fact_naive(loop, 400000, steps, &d)); /* ~20 s to the end */
        assert_ok(mo_deferred_add_errback(d, took_failure, &o));
        assert_ok(mo_call_later(loop, MO_MSEC(5), cancel_soon, d, NULL));
        int64_t t0 = mo_hrtime();
        assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
        assert_int_equal(o.code, MO_ECANCELED);
        assert_true(mo_hrtime() - t0 < MO_SEC(10)); /* stopped, not run to the end */
        mo_deferred_unref(d);
    }
    mo_loop_free(loop);
}

static void naive_bad_arguments(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    mo_deferred_t *d;
    assert_int_equal(fact_naive(NULL, 5, 1, &d), MO_EINVAL);
    assert_int_equal(fact_naive(loop, 5, 1, NULL), MO_EINVAL);
    mo_loop_free(loop);
}

/* ---- the programs: `morsel factorial` and example_opt_factorial ---- */

/* Runs a program of the build directory with `args` through the shell,
 * after the shell commands `prefix` (e.g. a ulimit); stderr is dropped
 * unless args redirect it ("2>&1"). Returns the exit status and stores the
 * standard output (caller frees). */
static int run_program(const char *prefix, const char *prog, const char *args, char **out)
{
    char cmd[PATH_MAX + 512];
    snprintf(cmd, sizeof cmd, "%s '%s' 2>/dev/null %s", prefix, mo_test_program(prog), args);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    size_t len = 0, cap = 1 << 16;
    char *buf = malloc(cap);
    for (size_t r; (r = fread(buf + len, 1, cap - len - 1, f)) > 0;) {
        len += r;
        if (cap - len < 2) buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    int status = pclose(f);
    *out = buf;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void assert_cli(const char *args, int rc, const char *want)
{
    char *out;
    int got = run_program("", "morsel", args, &out);
    if (got != rc) fail_msg("morsel %s: exit %d, expected %d", args, got, rc);
    if (want && strcmp(out, want))
        fail_msg("morsel %s: printed '%s', expected '%s'", args, out, want);
    free(out);
}

static void cli_usage_errors(void **state)
{
    (void)state;
    assert_cli("factorial", 2, "");
    assert_cli("factorial -5", 2, "");
    assert_cli("factorial abc", 2, "");
    assert_cli("factorial 12x", 2, "");
    assert_cli("factorial ''", 2, "");
    assert_cli("factorial 18446744073709551616", 2, "");
    assert_cli("factorial 1 2", 2, "");
    assert_cli("factorial --bogus 5", 2, "");
    assert_cli("factorial --steps 3 5", 2, "");
    assert_cli("factorial --naive --steps 0 5", 2, "");
    assert_cli("factorial --naive --steps x 5", 2, "");
    assert_cli("factorial --threads 0 5", 2, "");
}

static void cli_exact_output(void **state)
{
    (void)state;
    assert_cli("factorial 0", 0, "1\n");
    assert_cli("factorial 1", 0, "1\n");
    assert_cli("factorial 5", 0, "120\n");
    assert_cli("factorial 25", 0, "15511210043330985984000000\n");
    assert_cli("factorial --hex 25", 0, "cd4a0619fb0907bc00000\n");
    assert_cli("factorial --hex 0", 0, "1\n");
    assert_cli("factorial 10 --hex", 0, "375f00\n"); /* options after N too */
    assert_cli("factorial --offload-all 25", 0, "15511210043330985984000000\n");
    assert_cli("factorial --naive 25", 0, "15511210043330985984000000\n");
    assert_cli("factorial --naive --steps 1 --hex 25", 0, "cd4a0619fb0907bc00000\n");
    assert_cli("factorial --naive --steps auto 25", 0, "15511210043330985984000000\n");
    assert_cli("factorial --threads 1 20", 0, "2432902008176640000\n");
    assert_cli("factorial --help", 0, NULL);
}

static void cli_large_output_matches_gmp(void **state)
{
    (void)state;
    mpz_t f;
    mpz_init(f);
    mpz_fac_ui(f, 123457);
    char *want = mpz_get_str(NULL, 10, f);
    size_t n = strlen(want);
    want = realloc(want, n + 2);
    strcpy(want + n, "\n");
    assert_cli("factorial 123457", 0, want);
    free(want);
    mpz_clear(f);
}

static void cli_output_file(void **state)
{
    (void)state;
    char path[] = "/tmp/morsel-test-factorial-XXXXXX", args[128];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    snprintf(args, sizeof args, "factorial -o '%s' 10", path);
    assert_cli(args, 0, "");
    char buf[32] = {0};
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_true(fread(buf, 1, sizeof buf - 1, f) > 0);
    fclose(f);
    unlink(path);
    assert_string_equal(buf, "3628800\n");
    assert_cli("factorial -o /nonexistent-dir/x 10", 1, "");
}

static void cli_refuses_what_cannot_fit(void **state)
{
    (void)state;
    assert_cli("factorial 1000000000000", 1, ""); /* about 29 TB */
    assert_cli("factorial 18446744073709551615", 1, "");
    /* Under a memory limit: refused early with a message, not an abort.
     * (Not under AddressSanitizer: its shadow memory needs terabytes of
     * address space, so the program cannot start under a ulimit -v.) */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    skip();
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    skip();
#endif
#endif
    char *out;
    assert_int_equal(run_program("ulimit -v 100000;", "morsel", "factorial 20000000 2>&1", &out),
                     1);
    assert_non_null(strstr(out, "memory"));
    free(out);
}

static void example_prints_the_factorial(void **state)
{
    (void)state;
    char *out;
    assert_int_equal(run_program("", "example_opt_factorial", "25 3", &out), 0);
    assert_string_equal(out, "15511210043330985984000000\n");
    free(out);
    assert_int_equal(run_program("", "example_opt_factorial", "0", &out), 0);
    assert_string_equal(out, "1\n");
    free(out);
}

MO_TEST_MAIN(cmocka_unit_test(every_n_to_3000), cmocka_unit_test(sampled_n_to_2000000),
             cmocka_unit_test(any_order_gives_the_same_value),
             cmocka_unit_test(decimal_text_is_exact), cmocka_unit_test(release_hook_frees_inputs),
             cmocka_unit_test(hex_text_is_exact), cmocka_unit_test(text_known_values),
             cmocka_unit_test(text_not_ready_before_its_pieces), cmocka_unit_test(bad_plans),
             cmocka_unit_test(big_pieces_are_marked), cmocka_unit_test(estimate_grows_with_n),
             cmocka_unit_test(loop_driver_text), cmocka_unit_test(loop_driver_hold),
             cmocka_unit_test(loop_driver_value), cmocka_unit_test(loop_driver_cancel),
             cmocka_unit_test(naive_is_exact), cmocka_unit_test(naive_yields_between_chunks),
             cmocka_unit_test(naive_cancel), cmocka_unit_test(naive_bad_arguments),
             cmocka_unit_test(cli_usage_errors), cmocka_unit_test(cli_exact_output),
             cmocka_unit_test(cli_large_output_matches_gmp), cmocka_unit_test(cli_output_file),
             cmocka_unit_test(cli_refuses_what_cannot_fit),
             cmocka_unit_test(example_prints_the_factorial))
