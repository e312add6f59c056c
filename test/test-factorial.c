/* The factorial: the piece DAG of tools/fact.c against GMP's mpz_fac_ui,
 * its text output, the naive example, and the `morsel factorial` CLI. */
#include "test.h"

#include <stdlib.h>
#include <string.h>

/* The module lives in tools/ (GMP stays out of the library): compile it in. */
#include "../tools/fact.c"

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

MO_TEST_MAIN(cmocka_unit_test(every_n_to_3000), cmocka_unit_test(sampled_n_to_2000000),
             cmocka_unit_test(any_order_gives_the_same_value),
             cmocka_unit_test(decimal_text_is_exact), cmocka_unit_test(hex_text_is_exact),
             cmocka_unit_test(text_known_values),
             cmocka_unit_test(text_not_ready_before_its_pieces), cmocka_unit_test(bad_plans),
             cmocka_unit_test(big_pieces_are_marked), cmocka_unit_test(estimate_grows_with_n))
