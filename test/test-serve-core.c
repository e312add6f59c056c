/* The server of `morsel serve` in process (tools/serve.h), as `morsel demo`
 * runs it: serve_stop() with answers in progress, and serve_free() while
 * answers of every kind are in flight (a factorial held by a client that
 * does not read, a walk paused the same way, a conversion on a worker in
 * --steps mode). Under ASan and valgrind these show that nothing is used
 * after it was freed and nothing leaks.
 * MO_TEST_LABEL_THREADS: factorial pieces run on worker threads. */
#include "test.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "serve_int.h"

static void noop(mo_loop_t *loop, void *arg)
{
    (void)loop, (void)arg;
}

/* Runs the loop for about ms milliseconds. */
static void run_for(mo_loop_t *loop, int ms)
{
    int64_t end = mo_hrtime() + MO_MSEC(ms);
    while (mo_hrtime() < end) {
        mo_loop_update_time(loop);
        mo_call_id t;
        assert_ok(mo_call_later(loop, MO_MSEC(5), noop, NULL, &t));
        assert_ok(mo_loop_run(loop, MO_RUN_ONCE));
        mo_call_cancel(loop, t);
    }
}

static struct server *start(mo_loop_t *loop, int mode)
{
    struct serve_opts o = {.listen = "127.0.0.1:0", .mode = mode, .steps = 50, .threads = 2};
    struct server *srv = NULL;
    const char *msg;
    assert_ok(serve_start(loop, &o, &srv, &msg));
    return srv;
}

/* A client that sends one request and never reads (a small receive
 * buffer, so that the server's queue fills soon). */
static int lazy_client(struct server *srv, const char *request)
{
    mo_addr_t a;
    assert_ok(mo_addr_parse(&a, serve_tcp_address(srv)));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    assert_int_equal(connect(fd, &a.u.sa, a.len), 0);
    assert_int_equal(send(fd, request, strlen(request), 0), (ssize_t)strlen(request));
    return fd;
}

/* Small send buffers on the server's connections, so that their queues
 * fill (and their producers pause) after a few kilobytes. */
static void small_send_buffers(mo_loop_t *loop, struct server *srv, unsigned n)
{
    for (int i = 0; i < 2000 && srv->nconns < n; i++) run_for(loop, 5);
    assert_int_equal(srv->nconns, n);
    int small = 4096;
    for (struct conn *c = srv->conns.next; c != &srv->conns; c = c->next)
        setsockopt(mo_stream_fd(c->s), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
}

/* Whether every connection's answer in progress is paused: its queue is
 * above the high mark. */
static bool all_paused(struct server *srv)
{
    for (struct conn *c = srv->conns.next; c != &srv->conns; c = c->next)
        if (c->ans.cancel && mo_stream_writable(c->s) == 1) return false;
    return true;
}

/* Runs the loop until it has nothing left (the workers' last
 * completions), at most 20 s. */
static void drain(mo_loop_t *loop)
{
    for (int i = 0; i < 4000 && mo_loop_alive(loop); i++) run_for(loop, 5);
    assert_int_equal(mo_loop_alive(loop), 0);
}

static void test_free_with_answers_in_flight(void **state)
{
    (void)state;
    cli_gmp_exit_on_oom("serve");
    mo_loop_t *loop = mo_test_loop();
    struct server *sliced = start(loop, SERVE_SLICED);
    struct server *steps = start(loop, SERVE_STEPS);
    int fds[4];
    fds[0] = lazy_client(sliced, "factorial 2000000\n");
    fds[1] = lazy_client(sliced, "walk /usr\n");
    fds[2] = lazy_client(sliced, "ping\n");
    small_send_buffers(loop, sliced, 3);
    fds[3] = lazy_client(steps, "factorial 30000\n");
    for (int i = 0; i < 4000 && !all_paused(sliced); i++) run_for(loop, 5);
    assert_true(all_paused(sliced)); /* the factorial held, the walk paused */
    serve_free(sliced);
    serve_free(steps);
    drain(loop);
    mo_loop_free(loop);
    for (int i = 0; i < 4; i++) close(fds[i]);
}

static void stopped(void *arg)
{
    (*(int *)arg)++;
}

/* serve_stop(): the listener closes, the idle connection is closed, the
 * busy one is aborted when the grace runs out; done runs once. */
static void test_stop_with_grace(void **state)
{
    (void)state;
    cli_gmp_exit_on_oom("serve");
    mo_loop_t *loop = mo_test_loop();
    struct server *srv = start(loop, SERVE_SLICED);
    int busy = lazy_client(srv, "factorial 2000000\n");
    int idle = lazy_client(srv, "ping\n");
    run_for(loop, 200);
    int done = 0;
    serve_stop(srv, MO_MSEC(100), stopped, &done);
    assert_int_equal(done, 0); /* never from within the call */
    for (int i = 0; i < 2000 && !done; i++) run_for(loop, 5);
    assert_int_equal(done, 1);
    assert_null(serve_tcp_address(srv));
    char buf[16];
    assert_int_equal(recv(idle, buf, sizeof buf, 0), 5); /* "pong\n", then the end */
    assert_int_equal(recv(idle, buf, sizeof buf, 0), 0);
    serve_free(srv);
    drain(loop);
    mo_loop_free(loop);
    close(busy);
    close(idle);
}

MO_TEST_MAIN(cmocka_unit_test(test_free_with_answers_in_flight),
             cmocka_unit_test(test_stop_with_grace))
