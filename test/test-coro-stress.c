/* Coroutines until the system refuses: each stack costs two entries of the
 * process's memory map (coro.h), so vm.max_map_count (65530 by default)
 * caps how many are alive at once. Creating more must fail with MO_ENOMEM,
 * leaving the others running; 100,000 alive at once where the limit allows.
 */
/* MO_TEST_LABEL_STRESS (tens of thousands of coroutines; gcc build only) */
#include "test.h"

#include <stdlib.h>

enum { WANT = 100000 };

struct crowd {
    int released; /* the coroutines may return */
    int returned;
};

static int wait_for_release(mo_coro_t *co, void *arg)
{
    struct crowd *c = arg;
    while (!c->released) {
        int err = mo_yield(co);
        if (err) return err;
    }
    c->returned++;
    return 0;
}

static long read_long(const char *path)
{
    FILE *f = fopen(path, "r");
    long v = -1;
    if (f && fscanf(f, "%ld", &v) != 1) v = -1;
    if (f) fclose(f);
    return v;
}

static long maps_in_use(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    long n = 0;
    for (int c; (c = fgetc(f)) != EOF;) n += c == '\n';
    fclose(f);
    return n;
}

static void test_coroutines_until_the_system_refuses(void **state)
{
    (void)state;
    long max_maps = read_long("/proc/sys/vm/max_map_count");
    assert_true(max_maps > 0);
    mo_loop_t *loop = mo_test_loop();
    struct crowd c = {0};
    struct mo_coro_opts opts = {.stack_size = 16 * 1024};
    /* Two map entries a coroutine; the loop's own structures take a few. */
    long room = (max_maps - maps_in_use()) / 2;
    long alive = 0;
    int err = 0;
    while (alive < WANT && (err = mo_coro_spawn(loop, wait_for_release, &c, &opts, NULL)) == 0) {
        alive++;
        if (alive % 4096 == 0) assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT)); /* they run */
    }
    printf("coroutines alive at once: %ld (vm.max_map_count %ld, room for about %ld)\n", alive,
           max_maps, room);
    if (room >= WANT + 100) {
        assert_int_equal(alive, WANT);
    } else {
        /* The limit: a clean error, near where the map count says. */
        assert_mo(MO_ENOMEM, err);
        assert_true(alive >= room - 200 && alive <= room + 10);
    }
    struct mo_cooperator_stats st;
    assert_ok(mo_cooperator_stats(loop, &st));
    assert_int_equal(st.tasks, alive);
    /* Everyone alive still runs, and finishes. */
    assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT));
    c.released = 1;
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(c.returned, alive);
    assert_ok(mo_cooperator_stats(loop, &st));
    assert_int_equal(st.tasks, 0);
    /* Their stacks went back: there is room again. */
    c.returned = 0;
    assert_ok(mo_coro_spawn(loop, wait_for_release, &c, &opts, NULL));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(c.returned, 1);
    mo_loop_free(loop);
}

MO_TEST_MAIN(cmocka_unit_test(test_coroutines_until_the_system_refuses))
