/* Failures: fields, formatting, context chains, reference counting, out of
 * memory, and use from several threads. */
/* MO_TEST_LABEL_THREADS */
#include "test.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static void test_fields_and_format(void **state)
{
    (void)state;
    char buf[256];
    mo_failure_t *f = mo_failure_new(MO_EACCES, "read_dir", "cannot open %s", "/root/x");
    assert_int_equal(mo_failure_code(f), MO_EACCES);
    assert_string_equal(mo_failure_message(f), "cannot open /root/x");
    assert_string_equal(mo_failure_origin(f), "read_dir");
    int n = mo_failure_format(f, buf, sizeof(buf));
    assert_string_equal(buf, "read_dir: cannot open /root/x (EACCES: permission denied)");
    assert_int_equal(n, (int)strlen(buf));
    mo_failure_unref(f);

    f = mo_failure_new(MO_EIO, NULL, NULL);
    assert_string_equal(mo_failure_origin(f), "");
    assert_string_equal(mo_failure_message(f), "");
    mo_failure_format(f, buf, sizeof(buf));
    assert_string_equal(buf, "i/o error (EIO)");
    mo_failure_unref(f);

    f = mo_failure_new(42, "app", "bad widget");
    mo_failure_format(f, buf, sizeof(buf));
    assert_string_equal(buf, "app: bad widget (code 42)");
    mo_failure_unref(f);
}

/* The four forms deferred.h lists, with and without an origin. */
static void test_format_every_documented_form(void **state)
{
    (void)state;
    static const struct {
        int code;
        const char *origin, *message, *line;
    } forms[] = {
        {MO_EACCES, "read_dir", "cannot open /x",
         "read_dir: cannot open /x (EACCES: permission denied)"},
        {MO_EIO, "origin", NULL, "origin: i/o error (EIO)"},
        {9, "app", "bad widget", "app: bad widget (code 9)"},
        {9, "app", NULL, "app: code 9"},
        {MO_EIO, NULL, "message", "message (EIO: i/o error)"},
        {MO_EIO, NULL, NULL, "i/o error (EIO)"},
        {-4000, NULL, "odd", "odd (code -4000)"},
        {9, NULL, NULL, "code 9"},
    };
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        char buf[128];
        mo_failure_t *f = forms[i].message ? mo_failure_new(forms[i].code, forms[i].origin, "%s",
                                                            forms[i].message)
                                           : mo_failure_new(forms[i].code, forms[i].origin, NULL);
        assert_int_equal(mo_failure_format(f, buf, sizeof(buf)), (int)strlen(forms[i].line));
        assert_string_equal(buf, forms[i].line);
        mo_failure_unref(f);
    }
}

static void test_format_truncates_like_snprintf(void **state)
{
    (void)state;
    char buf[8];
    mo_failure_t *f = mo_failure_new(MO_EIO, "origin", "message");
    int n = mo_failure_format(f, buf, sizeof(buf));
    assert_int_equal(n, (int)strlen("origin: message (EIO: i/o error)"));
    assert_string_equal(buf, "origin:");
    assert_int_equal(mo_failure_format(f, NULL, 0), n);
    mo_failure_unref(f);
}

static void test_bad_input(void **state)
{
    (void)state;
    char buf[8];
    size_t idx;
    mo_failure_t *f = mo_failure_new(0, "x", NULL); /* 0 never reads as success */
    assert_int_equal(mo_failure_code(f), MO_EINVAL);
    assert_mo(MO_EINVAL, mo_failure_format(NULL, buf, sizeof(buf)));
    assert_mo(MO_EINVAL, mo_failure_format(f, NULL, 4));
    assert_mo(MO_EINVAL, mo_deferred_list_error_index(f, &idx));
    assert_mo(MO_EINVAL, mo_deferred_list_error_index(NULL, &idx));
    assert_mo(MO_EINVAL, mo_deferred_list_error_index(f, NULL));
    assert_int_equal(mo_failure_code(NULL), 0);
    assert_string_equal(mo_failure_message(NULL), "");
    assert_string_equal(mo_failure_origin(NULL), "");
    assert_null(mo_failure_ref(NULL));
    assert_null(mo_failure_wrap(NULL, "ctx"));
    assert_ptr_equal(mo_failure_wrap(f, NULL), f);
    mo_failure_unref(NULL);
    mo_failure_unref(f);
}

static void test_wrap_prepends_context(void **state)
{
    (void)state;
    char buf[128];
    mo_failure_t *f = mo_failure_new(MO_ENOENT, "read_dir", "gone: %d", 7);
    f = mo_failure_wrap(f, "walk");
    f = mo_failure_wrap(f, "index");
    assert_string_equal(mo_failure_origin(f), "index: walk: read_dir");
    assert_string_equal(mo_failure_message(f), "gone: 7");
    assert_int_equal(mo_failure_code(f), MO_ENOENT);
    mo_failure_format(f, buf, sizeof(buf));
    assert_string_equal(
        buf, "index: walk: read_dir: gone: 7 (ENOENT: no such file, directory or handle)");
    mo_failure_unref(f);
    f = mo_failure_wrap(mo_failure_new(MO_EIO, NULL, NULL), "ctx");
    assert_string_equal(mo_failure_origin(f), "ctx");
    mo_failure_unref(f);
}

static void test_references(void **state)
{
    (void)state;
    mo_failure_t *f = mo_failure_new(MO_EIO, "x", "y");
    assert_ptr_equal(mo_failure_ref(f), f);
    mo_failure_unref(f);
    assert_int_equal(mo_failure_code(f), MO_EIO); /* still alive: one reference left */
    mo_failure_unref(f);                          /* freed: ASan would see a leak otherwise */
}

/* ---- out of memory ---- */
static void test_out_of_memory_gives_shared_enomem(void **state)
{
    (void)state;
    mo_test_alloc_install();
    mo_failure_t *ok = mo_failure_new(MO_EIO, "before", NULL);
    mo_test_alloc_fail_at(1, 1);
    mo_failure_t *f = mo_failure_new(MO_EIO, "x", "message %d", 1);
    assert_non_null(f);
    assert_int_equal(mo_failure_code(f), MO_ENOMEM);
    assert_ptr_equal(mo_failure_new(MO_EPERM, NULL, NULL), f); /* shared */
    assert_ptr_equal(mo_failure_ref(f), f);
    mo_failure_unref(f);
    mo_failure_unref(f);
    mo_failure_unref(f); /* immortal: never freed, whatever the count */
    assert_int_equal(mo_failure_code(f), MO_ENOMEM);
    /* Wrapping without memory keeps the error, loses only the context. */
    assert_ptr_equal(mo_failure_wrap(ok, "ctx"), ok);
    assert_string_equal(mo_failure_origin(ok), "before");
    mo_test_alloc_fail_at(0, 0);
    mo_failure_unref(ok);
}

/* ---- threads: created on one, counted on several, freed on another ---- */
static void *ref_unref_many(void *arg)
{
    for (int i = 0; i < 100000; i++) {
        mo_failure_ref(arg);
        mo_failure_unref(arg);
    }
    return NULL;
}

static void *make_failure(void *arg)
{
    (void)arg;
    return mo_failure_new(MO_ETIMEDOUT, "worker", "took %d s", 3);
}

static void test_threads_share_failures(void **state)
{
    (void)state;
    pthread_t a, b;
    void *made = NULL;
    assert_int_equal(pthread_create(&a, NULL, make_failure, NULL), 0);
    pthread_join(a, &made);
    mo_failure_t *f = made;
    assert_string_equal(mo_failure_message(f), "took 3 s");
    assert_int_equal(pthread_create(&a, NULL, ref_unref_many, f), 0);
    assert_int_equal(pthread_create(&b, NULL, ref_unref_many, f), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    assert_int_equal(mo_failure_code(f), MO_ETIMEDOUT);
    mo_failure_unref(f);
}

MO_TEST_MAIN(cmocka_unit_test(test_fields_and_format),
             cmocka_unit_test(test_format_every_documented_form),
             cmocka_unit_test(test_format_truncates_like_snprintf),
             cmocka_unit_test(test_bad_input), cmocka_unit_test(test_wrap_prepends_context),
             cmocka_unit_test(test_references),
             cmocka_unit_test(test_out_of_memory_gives_shared_enomem),
             cmocka_unit_test(test_threads_share_failures))
