/* File-descriptor watchers: readiness, stop, hang-up, bad input. */
#include "test.h"

#include "core/core_int.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

struct seen {
    int calls;
    unsigned events;
    int fd;
    mo_io_id self;
    mo_io_id other; /* stopped by this callback, if set */
    int stop_self;
};

static void seen_cb(mo_loop_t *loop, int fd, unsigned events, void *arg)
{
    struct seen *s = arg;
    s->calls++;
    s->events = events;
    s->fd = fd;
    if (s->other) assert_ok(mo_io_stop(loop, s->other));
    if (s->stop_self) assert_ok(mo_io_stop(loop, s->self));
}

static void test_readable_and_stop(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    struct seen s = {0};
    assert_ok(mo_io_start(loop, fds[0], MO_READABLE, seen_cb, &s, &s.self));
    assert_int_equal(mo_loop_alive(loop), 1);
    assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT));
    assert_int_equal(s.calls, 0); /* nothing to read yet */
    assert_int_equal(write(fds[1], "ab", 2), 2);
    assert_ok(mo_loop_run(loop, MO_RUN_ONCE));
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.events, MO_READABLE);
    assert_int_equal(s.fd, fds[0]);
    /* Level-triggered: still readable, called again. */
    assert_ok(mo_loop_run(loop, MO_RUN_ONCE));
    assert_int_equal(s.calls, 2);
    assert_ok(mo_io_stop(loop, s.self));
    assert_mo(MO_EALREADY, mo_io_stop(loop, s.self));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT)); /* nothing keeps it alive */
    assert_int_equal(s.calls, 2);
    close(fds[0]);
    close(fds[1]);
    mo_loop_free(loop);
}

static void test_both_directions_and_duplicates(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct seen r = {0}, w = {0};
    assert_ok(mo_io_start(loop, sv[0], MO_WRITABLE, seen_cb, &w, &w.self));
    assert_mo(MO_EEXIST, mo_io_start(loop, sv[0], MO_WRITABLE, seen_cb, &w, NULL));
    assert_ok(mo_io_start(loop, sv[0], MO_READABLE, seen_cb, &r, &r.self));
    assert_mo(MO_EEXIST, mo_io_start(loop, sv[0], MO_READABLE, seen_cb, &r, NULL));
    w.stop_self = 1;
    assert_ok(mo_loop_run(loop, MO_RUN_ONCE));
    assert_int_equal(w.calls, 1);
    assert_int_equal(w.events, MO_WRITABLE);
    assert_int_equal(r.calls, 0);
    assert_int_equal(write(sv[1], "x", 1), 1);
    r.stop_self = 1;
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.events, MO_READABLE);
    /* Restarting after stop works, with a fresh id. */
    mo_io_id again;
    assert_ok(mo_io_start(loop, sv[0], MO_READABLE, seen_cb, &r, &again));
    assert_int_not_equal(again, r.self);
    assert_mo(MO_EALREADY, mo_io_stop(loop, r.self));
    assert_ok(mo_io_stop(loop, again));
    close(sv[0]);
    close(sv[1]);
    mo_loop_free(loop);
}

/* A callback that stops another watcher whose fd is ready in the same
 * iteration: the stopped one must not run. */
static void test_stop_other_in_same_iteration(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    int a[2], b[2];
    assert_int_equal(pipe(a), 0);
    assert_int_equal(pipe(b), 0);
    struct seen sa = {0}, sb = {0};
    assert_ok(mo_io_start(loop, a[0], MO_READABLE, seen_cb, &sa, &sa.self));
    assert_ok(mo_io_start(loop, b[0], MO_READABLE, seen_cb, &sb, &sb.self));
    sa.other = sb.self;
    sb.other = sa.self;
    sa.stop_self = sb.stop_self = 1;
    assert_int_equal(write(a[1], "x", 1), 1);
    assert_int_equal(write(b[1], "x", 1), 1);
    assert_ok(mo_loop_run(loop, MO_RUN_ONCE));
    /* Exactly one ran: it stopped the other and itself. */
    assert_int_equal(sa.calls + sb.calls, 1);
    assert_int_equal(mo_loop_alive(loop), 0);
    close(a[0]), close(a[1]), close(b[0]), close(b[1]);
    mo_loop_free(loop);
}

static void test_hangup(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    struct seen s = {0};
    s.stop_self = 1;
    assert_ok(mo_io_start(loop, fds[0], MO_READABLE, seen_cb, &s, &s.self));
    close(fds[1]);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.events & MO_HANGUP, MO_HANGUP);
    close(fds[0]);
    mo_loop_free(loop);
}

static void test_bad_input(void **state)
{
    (void)state;
    mo_test_alloc_install();
    mo_loop_t *loop = mo_test_loop();
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    assert_mo(MO_EINVAL, mo_io_start(NULL, fds[0], MO_READABLE, seen_cb, NULL, NULL));
    assert_mo(MO_EINVAL, mo_io_start(loop, fds[0], MO_READABLE, NULL, NULL, NULL));
    assert_mo(MO_EINVAL, mo_io_start(loop, -1, MO_READABLE, seen_cb, NULL, NULL));
    assert_mo(MO_EINVAL, mo_io_start(loop, fds[0], 0, seen_cb, NULL, NULL));
    assert_mo(MO_EINVAL, mo_io_start(loop, fds[0], MO_READABLE | MO_WRITABLE, seen_cb, NULL, NULL));
    assert_mo(MO_EINVAL, mo_io_start(loop, fds[0], MO_HANGUP, seen_cb, NULL, NULL));
    /* An fd that is not open. */
    int closed = dup(fds[0]);
    close(closed);
    assert_mo(MO_EBADF, mo_io_start(loop, closed, MO_READABLE, seen_cb, NULL, NULL));
    /* A regular file cannot be polled. */
    char path[] = "/tmp/morsel-io-XXXXXX";
    int file = mkstemp(path);
    assert_true(file >= 0);
    unlink(path);
    assert_mo(MO_EPERM, mo_io_start(loop, file, MO_READABLE, seen_cb, NULL, NULL));
    close(file);
    /* The watcher table grows with the fd's number: out of memory. */
    int high = fcntl(fds[0], F_DUPFD_CLOEXEC, 900);
    assert_true(high >= 900);
    mo_test_alloc_fail_at(1, 1);
    assert_mo(MO_ENOMEM, mo_io_start(loop, high, MO_READABLE, seen_cb, NULL, NULL));
    mo_test_alloc_fail_at(0, 0);
    close(high);
    /* Failed starts leave nothing active. */
    assert_int_equal(mo_loop_alive(loop), 0);
    assert_mo(MO_EINVAL, mo_io_stop(NULL, 1));
    assert_mo(MO_ENOENT, mo_io_stop(loop, 0));
    assert_mo(MO_ENOENT, mo_io_stop(loop, UINT64_MAX));
    assert_mo(MO_ENOENT, mo_io_stop(loop, (UINT64_C(1) << 32) | ((uint64_t)fds[0] << 1)));
    close(fds[0]);
    close(fds[1]);
    mo_loop_free(loop);
}

/* Large fd numbers make the table grow; a callback that starts a watcher on
 * a far larger fd (growing the table under the dispatcher) is safe. */
struct grow {
    int big_fd;
    struct seen far;
    mo_io_id self;
};

static void grow_cb(mo_loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)fd, (void)events;
    struct grow *g = arg;
    assert_ok(mo_io_stop(loop, g->self));
    assert_ok(mo_io_start(loop, g->big_fd, MO_WRITABLE, seen_cb, &g->far, &g->far.self));
    g->far.stop_self = 1;
}

static void test_table_grows_under_dispatch(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct grow g = {.big_fd = 900};
    assert_int_equal(dup2(sv[1], g.big_fd), g.big_fd);
    assert_ok(mo_io_start(loop, sv[0], MO_WRITABLE, grow_cb, &g, &g.self));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(g.far.calls, 1);
    assert_int_equal(g.far.fd, g.big_fd);
    close(g.big_fd);
    close(sv[0]);
    close(sv[1]);
    mo_loop_free(loop);
}

/* The fd was closed before its watcher was stopped: stopping still works. */
static void test_stop_after_close(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    mo_io_id id;
    assert_ok(mo_io_start(loop, fds[0], MO_READABLE, seen_cb, NULL, &id));
    close(fds[0]);
    close(fds[1]);
    assert_ok(mo_io_stop(loop, id));
    assert_int_equal(mo_loop_alive(loop), 0);
    mo_loop_free(loop);
}

MO_TEST_MAIN(cmocka_unit_test(test_readable_and_stop),
             cmocka_unit_test(test_both_directions_and_duplicates),
             cmocka_unit_test(test_stop_other_in_same_iteration), cmocka_unit_test(test_hangup),
             cmocka_unit_test(test_bad_input), cmocka_unit_test(test_table_grows_under_dispatch),
             cmocka_unit_test(test_stop_after_close))
