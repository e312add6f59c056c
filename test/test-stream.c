/* Streams: TCP (IPv4, IPv6) and Unix listeners and connects, reading,
 * zero-copy and copied writes, half-close, close after flush, abort,
 * backpressure with callback, task and coroutine producers, framing, and
 * the faults a peer can cause. Everything runs on one loop in this
 * process: the clients are streams too, or raw sockets. SIGPIPE keeps its
 * default action, so a write that raised it would kill the test.
 * MO_TEST_LABEL_THREADS: host names are resolved on the pool. */
#include "test.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- running the loop until something happened ---- */

static void noop(mo_loop_t *loop, void *arg)
{
    (void)loop;
    (void)arg;
}

/* One iteration, waiting at most 5 ms. */
static void spin_once(mo_loop_t *loop)
{
    mo_call_id tick;
    mo_loop_update_time(loop); /* the test's own work between iterations took time */
    assert_ok(mo_call_later(loop, MO_MSEC(5), noop, NULL, &tick));
    assert_ok(mo_loop_run(loop, MO_RUN_ONCE));
    mo_call_cancel(loop, tick);
}

#define RUN_UNTIL(loop, expr)                                                                      \
    do {                                                                                           \
        int64_t end_ = mo_hrtime() + MO_SEC(20);                                                   \
        while (!(expr)) {                                                                          \
            if (mo_hrtime() > end_) fail_msg("timed out waiting for %s", #expr);                   \
            spin_once(loop);                                                                       \
        }                                                                                          \
    } while (0)

/* Runs the loop for about ms milliseconds. */
static void run_for(mo_loop_t *loop, int ms)
{
    int64_t end = mo_hrtime() + MO_MSEC(ms);
    while (mo_hrtime() < end) spin_once(loop);
}

/* ---- one end of a connection, recording what happens to it ---- */

struct peer {
    mo_stream_t *s;
    char *in; /* bytes (or frames, each followed by '|') received */
    size_t inlen, incap;
    int reads, eofs, lost, errors, err;
    int lost_code; /* 0: clean */
    bool echo, close_in_read, abort_in_read, stop_in_read, answer_eof;
    int writes_after_close; /* the code a write from on_lost's neighbourhood got */
};

static void append(struct peer *p, const char *data, size_t len)
{
    if (p->inlen + len + 1 > p->incap) {
        p->incap = (p->inlen + len + 1) * 2;
        p->in = realloc(p->in, p->incap);
        assert_non_null(p->in);
    }
    memcpy(p->in + p->inlen, data, len);
    p->inlen += len;
    p->in[p->inlen] = '\0';
}

static void peer_read(mo_stream_t *s, char *data, size_t len, void *arg)
{
    struct peer *p = arg;
    p->reads++;
    append(p, data, len);
    if (p->echo) assert_ok(mo_stream_write_copy(s, data, len));
    if (p->close_in_read) assert_ok(mo_stream_close(s));
    if (p->abort_in_read) assert_ok(mo_stream_abort(s));
    if (p->stop_in_read) assert_ok(mo_stream_read_stop(s));
}

static void frame_read(mo_stream_t *s, char *data, size_t len, void *arg)
{
    struct peer *p = arg;
    peer_read(s, data, len, arg);
    append(p, "|", 1);
}

static void peer_eof(mo_stream_t *s, void *arg)
{
    struct peer *p = arg;
    p->eofs++;
    if (p->answer_eof) {
        assert_ok(mo_stream_write_copy(s, "bye", 3));
        assert_ok(mo_stream_close(s));
    }
}

static void peer_lost(mo_stream_t *s, const mo_failure_t *reason, void *arg)
{
    struct peer *p = arg;
    assert_ptr_equal(s, p->s);
    p->lost++;
    p->lost_code = mo_failure_code(reason);
    p->s = NULL;
}

static void peer_error(mo_stream_t *s, int err, void *arg)
{
    struct peer *p = arg;
    p->errors++;
    p->err = err;
    assert_ok(mo_stream_write_copy(s, "error: too long\n", 16));
    assert_ok(mo_stream_close(s));
}

static const struct mo_stream_callbacks peer_cbs = {peer_read, peer_eof, peer_lost, peer_error};
static const struct mo_stream_callbacks frame_cbs = {frame_read, peer_eof, peer_lost, peer_error};

static void peer_attach(struct peer *p, mo_stream_t *s, bool start)
{
    p->s = s;
    assert_ok(mo_stream_set_callbacks(s, &peer_cbs, p));
    if (start) assert_ok(mo_stream_read_start(s));
}

static void peer_clear(struct peer *p)
{
    free(p->in);
    memset(p, 0, sizeof *p);
}

/* ---- a server: accepted streams become peers ---- */

#define MAX_PEERS 16

struct server {
    mo_loop_t *loop;
    mo_listener_t *l;
    mo_addr_t addr;
    char text[128]; /* the address as mo_connect() takes it */
    struct peer peers[MAX_PEERS];
    int n;
    bool echo, start; /* what accepted peers do */
    int errors, last_err;
};

static void on_accept(mo_listener_t *l, mo_stream_t *s, void *arg)
{
    (void)l;
    struct server *sv = arg;
    assert_true(sv->n < MAX_PEERS);
    struct peer *p = &sv->peers[sv->n++];
    p->echo = sv->echo;
    peer_attach(p, s, sv->start);
}

static void on_listen_error(mo_listener_t *l, int err, void *arg)
{
    (void)l;
    struct server *sv = arg;
    sv->errors++;
    sv->last_err = err;
}

static void server_start(struct server *sv, mo_loop_t *loop, const char *addr)
{
    memset(sv, 0, sizeof *sv);
    sv->loop = loop;
    sv->echo = sv->start = true;
    mo_addr_t a;
    assert_ok(mo_addr_parse(&a, addr));
    struct mo_listen_opts o = {.on_error = on_listen_error};
    assert_ok(mo_listen(loop, &a, &o, on_accept, sv, &sv->l));
    assert_ok(mo_listener_addr(sv->l, &sv->addr));
    assert_true(mo_addr_format(&sv->addr, sv->text, sizeof sv->text) > 0);
}

static void server_stop(struct server *sv)
{
    mo_listener_close(sv->l);
    for (int i = 0; i < sv->n; i++) {
        if (sv->peers[i].s) mo_stream_abort(sv->peers[i].s);
    }
    for (int i = 0; i < sv->n; i++) {
        RUN_UNTIL(sv->loop, sv->peers[i].lost);
        peer_clear(&sv->peers[i]);
    }
}

/* ---- a client through mo_connect() ---- */

struct dial {
    struct peer *p;
    int done;
    int code; /* the failure's code, 0 on success */
};

static void dialed(mo_result_t *r, void *arg)
{
    struct dial *d = arg;
    mo_dtor_fn dtor;
    mo_stream_t *s = mo_result_take(r, &dtor);
    assert_non_null(s);
    peer_attach(d->p, s, true);
    d->done = 1;
}

static void dial_failed(mo_result_t *r, void *arg)
{
    struct dial *d = arg;
    d->code = mo_failure_code(mo_result_failure(r));
    d->done = 1;
    mo_result_set(r, NULL, NULL);
}

/* Connects p to target; returns the failure's code (0 when connected). */
static int dial(mo_loop_t *loop, const char *target, struct peer *p)
{
    struct dial d = {p, 0, 0};
    mo_deferred_t *df;
    assert_ok(mo_connect(loop, target, NULL, &df));
    assert_ok(mo_deferred_add_callbacks(df, dialed, dial_failed, &d));
    mo_deferred_unref(df);
    RUN_UNTIL(loop, d.done);
    return d.code;
}

/* A blocking raw client socket connected to addr. */
static int raw_connect(const mo_addr_t *addr)
{
    int fd = socket(addr->u.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, &addr->u.sa, addr->len), 0);
    return fd;
}

/* Reads what is there without blocking, appending to p->in. */
static void raw_drain(int fd, struct peer *p)
{
    char buf[65536];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0) append(p, buf, (size_t)n);
    if (n == 0) p->eofs++;
    if (n < 0 && errno != EAGAIN) p->err = -errno;
}

/* Small kernel buffers on both ends, so that a few hundred kilobytes
 * fill them and the write queue has to hold the rest. */
static void small_buffers(mo_stream_t *a, mo_stream_t *b)
{
    int v = 16384;
    assert_int_equal(setsockopt(mo_stream_fd(a), SOL_SOCKET, SO_SNDBUF, &v, sizeof v), 0);
    assert_int_equal(setsockopt(mo_stream_fd(b), SOL_SOCKET, SO_RCVBUF, &v, sizeof v), 0);
}

/* ---- a loop, a server and one client connected to it ---- */

/* Fills *loop, *sv and *c: a new loop, a server on 127.0.0.1 (echoing if
 * `echo`) and a client connected to it, accepted as sv->peers[0]. */
static void pair_open(mo_loop_t **loop, struct server *sv, struct peer *c, bool echo)
{
    *loop = mo_test_loop();
    server_start(sv, *loop, "127.0.0.1:0");
    sv->echo = echo;
    memset(c, 0, sizeof *c);
    assert_int_equal(dial(*loop, sv->text, c), 0);
    RUN_UNTIL(*loop, sv->n == 1);
}

/* Ends the client (if still open), the server's peers and the loop. */
static void pair_close(mo_loop_t *loop, struct server *sv, struct peer *c)
{
    if (c->s) mo_stream_abort(c->s);
    RUN_UNTIL(loop, c->lost);
    server_stop(sv);
    peer_clear(c);
    mo_loop_free(loop);
}

/* ---- addresses ---- */

static void test_addr_parse_and_format(void **state)
{
    (void)state;
    mo_addr_t a;
    char buf[128];
    assert_ok(mo_addr_parse(&a, "127.0.0.1:8080"));
    assert_int_equal(mo_addr_port(&a), 8080);
    assert_int_equal(mo_addr_format(&a, buf, sizeof buf), 14);
    assert_string_equal(buf, "127.0.0.1:8080");
    assert_ok(mo_addr_parse(&a, "[::1]:0"));
    assert_int_equal(a.u.sa.sa_family, AF_INET6);
    mo_addr_format(&a, buf, sizeof buf);
    assert_string_equal(buf, "[::1]:0");
    assert_ok(mo_addr_parse(&a, "unix:/tmp/x.sock"));
    mo_addr_format(&a, buf, sizeof buf);
    assert_string_equal(buf, "unix:/tmp/x.sock");
    assert_ok(mo_addr_parse(&a, "./rel.sock"));
    assert_int_equal(a.u.sa.sa_family, AF_UNIX);
    assert_mo(MO_EINVAL, mo_addr_port(&a));
    /* Truncation reports the length needed, as snprintf does. */
    assert_ok(mo_addr_parse(&a, "10.1.2.3:65535"));
    assert_int_equal(mo_addr_format(&a, buf, 4), 14);
    assert_string_equal(buf, "10.");
    static const char *const bad[] = {
        "",       "localhost:80", "1.2.3.4",      "1.2.3.4:", "1.2.3.4:x", "1.2.3.4:65536",
        "::1:80", "[::1]80",      "[1.2.3.4]:80", "unix:",    "1.2.3.4:-1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (mo_addr_parse(&a, bad[i]) != MO_EINVAL) fail_msg("'%s' parsed", bad[i]);
    char longpath[300];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    assert_mo(MO_ENAMETOOLONG, mo_addr_parse(&a, longpath));
    assert_mo(MO_EINVAL, mo_addr_parse(NULL, "1.2.3.4:1"));
    assert_mo(MO_EINVAL, mo_addr_format(NULL, buf, sizeof buf));
}

/* ---- connections ---- */

/* Echo over a family: the client writes, the server echoes, both close
 * cleanly; addresses match each other. */
static void echo_round_trip(const char *listen_addr)
{
    mo_loop_t *loop = mo_test_loop();
    struct server sv;
    server_start(&sv, loop, listen_addr);
    struct peer c = {0};
    assert_int_equal(dial(loop, sv.text, &c), 0);
    assert_ok(mo_stream_write_copy(c.s, "hello", 5));
    RUN_UNTIL(loop, c.inlen == 5);
    assert_string_equal(c.in, "hello");
    assert_int_equal(sv.n, 1);
    /* The client's peer address is the listener's; the server's peer is
     * the client's local address. */
    mo_addr_t cp, cl, sp;
    char a[128], b[128];
    assert_ok(mo_stream_peer_addr(c.s, &cp));
    assert_ok(mo_stream_local_addr(c.s, &cl));
    assert_ok(mo_stream_peer_addr(sv.peers[0].s, &sp));
    mo_addr_format(&cp, a, sizeof a);
    assert_string_equal(a, sv.text);
    mo_addr_format(&cl, a, sizeof a);
    mo_addr_format(&sp, b, sizeof b);
    assert_string_equal(a, b);
    if (sv.addr.u.sa.sa_family == AF_UNIX) assert_mo(MO_ENOTSUP, mo_stream_set_nodelay(c.s, 1));
    /* The client closes: the server reads its end of file; with an on_eof
     * that does not close, it stays open until it closes too. */
    assert_ok(mo_stream_close(c.s));
    RUN_UNTIL(loop, c.lost && sv.peers[0].eofs);
    assert_int_equal(c.lost_code, 0);
    assert_non_null(sv.peers[0].s);
    assert_ok(mo_stream_close(sv.peers[0].s));
    RUN_UNTIL(loop, sv.peers[0].lost);
    assert_int_equal(sv.peers[0].lost_code, 0);
    pair_close(loop, &sv, &c);
}

static void test_echo_tcp4(void **state)
{
    (void)state;
    echo_round_trip("127.0.0.1:0");
}

static void test_echo_tcp6(void **state)
{
    (void)state;
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    mo_addr_t a;
    assert_ok(mo_addr_parse(&a, "[::1]:0"));
    bool have = fd >= 0 && bind(fd, &a.u.sa, a.len) == 0;
    if (fd >= 0) close(fd);
    if (!have) skip(); /* no IPv6 loopback here */
    echo_round_trip("[::1]:0");
}

static void test_echo_unix_and_file_removed(void **state)
{
    (void)state;
    char path[64];
    snprintf(path, sizeof path, "/tmp/morsel-stream-%d.sock", (int)getpid());
    unlink(path);
    char addr[80];
    snprintf(addr, sizeof addr, "unix:%s", path);
    echo_round_trip(addr);
    struct stat st;
    assert_int_equal(stat(path, &st), -1); /* removed with the listener */
    /* A path that exists is in use. */
    mo_loop_t *loop = mo_test_loop();
    assert_int_equal(close(open(path, O_CREAT | O_WRONLY, 0600)), 0);
    mo_addr_t a;
    mo_listener_t *l;
    assert_ok(mo_addr_parse(&a, addr));
    assert_mo(MO_EADDRINUSE, mo_listen(loop, &a, NULL, on_accept, NULL, &l));
    unlink(path);
    mo_loop_free(loop);
}

/* A host name goes through the resolver on the pool. */
static void test_connect_resolves_localhost(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct server sv;
    server_start(&sv, loop, "127.0.0.1:0");
    char target[64];
    snprintf(target, sizeof target, "localhost:%d", mo_addr_port(&sv.addr));
    struct peer c = {0};
    assert_int_equal(dial(loop, target, &c), 0);
    assert_ok(mo_stream_write_copy(c.s, "x", 1));
    RUN_UNTIL(loop, c.inlen == 1);
    mo_stream_abort(c.s);
    RUN_UNTIL(loop, c.lost);
    assert_int_equal(c.lost_code, MO_ECONNABORTED);
    pair_close(loop, &sv, &c);
}

static void test_connect_refused(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    /* A port that was free a moment ago: nothing listens there. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    mo_addr_t a;
    assert_ok(mo_addr_parse(&a, "127.0.0.1:0"));
    assert_int_equal(bind(fd, &a.u.sa, a.len), 0);
    a.len = sizeof a.u;
    assert_int_equal(getsockname(fd, &a.u.sa, &a.len), 0);
    close(fd);
    char target[64];
    mo_addr_format(&a, target, sizeof target);
    struct peer c = {0};
    assert_mo(MO_ECONNREFUSED, dial(loop, target, &c));
    /* A Unix socket that does not exist. */
    assert_mo(MO_ENOENT, dial(loop, "unix:/nonexistent/morsel.sock", &c));
    assert_int_equal(c.lost, 0);
    mo_loop_free(loop);
}

static void test_connect_name_does_not_resolve(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct peer c = {0};
    /* .invalid never resolves (RFC 6761); without a name server the
     * resolver says so as a temporary failure. */
    int code = dial(loop, "no-such-host.invalid:80", &c);
    if (code != MO_EAI_NONAME && code != MO_EAI_AGAIN)
        fail_msg("got %d (%s)", code, mo_err_name(code));
    assert_string_equal(mo_err_name(MO_EAI_NONAME), "EAI_NONAME");
    mo_loop_free(loop);
}

static void test_connect_bad_input_and_cancel(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    mo_deferred_t *d;
    assert_mo(MO_EINVAL, mo_connect(NULL, "127.0.0.1:1", NULL, &d));
    assert_mo(MO_EINVAL, mo_connect(loop, NULL, NULL, &d));
    assert_mo(MO_EINVAL, mo_connect(loop, "127.0.0.1", NULL, &d));
    assert_mo(MO_EINVAL, mo_connect(loop, "[host]:1", NULL, &d));
    struct mo_stream_opts bad = {.high_water = 10, .low_water = 10};
    assert_mo(MO_EINVAL, mo_connect(loop, "127.0.0.1:1", &bad, &d));
    /* Cancelling a connect that resolves: it errbacks with MO_ECANCELED. */
    struct peer c = {0};
    struct dial dl = {&c, 0, 0};
    assert_ok(mo_connect(loop, "localhost:1", NULL, &d));
    assert_ok(mo_deferred_add_callbacks(d, dialed, dial_failed, &dl));
    assert_ok(mo_deferred_cancel(d));
    assert_int_equal(dl.done, 1);
    assert_mo(MO_ECANCELED, dl.code);
    mo_deferred_unref(d);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT)); /* the job comes back */
    mo_loop_free(loop);
}

/* mo_connect_addr() skips the text; a paused listener leaves connections
 * in the backlog until it resumes. */
static void connect_addr_done(mo_result_t *r, void *arg)
{
    dialed(r, arg);
}

static void test_connect_addr_and_listener_pause(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct server sv;
    server_start(&sv, loop, "127.0.0.1:0");
    assert_ok(mo_listener_pause(sv.l));
    assert_ok(mo_listener_pause(sv.l)); /* idempotent */
    struct peer c = {0};
    struct dial d = {&c, 0, 0};
    mo_deferred_t *df;
    assert_ok(mo_connect_addr(loop, &sv.addr, NULL, &df));
    assert_ok(mo_deferred_add_callbacks(df, connect_addr_done, dial_failed, &d));
    mo_deferred_unref(df);
    RUN_UNTIL(loop, d.done); /* the kernel completes it from the backlog */
    assert_int_equal(d.code, 0);
    run_for(loop, 20);
    assert_int_equal(sv.n, 0); /* not accepted while paused */
    assert_ok(mo_listener_resume(sv.l));
    RUN_UNTIL(loop, sv.n == 1);
    assert_ok(mo_stream_write_copy(c.s, "x", 1));
    RUN_UNTIL(loop, c.inlen == 1);
    struct mo_listener_stats st;
    assert_ok(mo_listener_stats(sv.l, &st));
    assert_int_equal(st.accepted, 1);
    assert_mo(MO_EINVAL, mo_connect_addr(loop, &(mo_addr_t){0}, NULL, &df));
    pair_close(loop, &sv, &c);
}

/* Writes made in a read callback wait until it returns, then go out
 * together; outside one, a write to an empty queue goes out at once. */
struct corked {
    int reads;
    size_t queued_in_callback;
};

static void corked_read(mo_stream_t *s, char *data, size_t len, void *arg)
{
    struct corked *k = arg;
    k->reads++;
    assert_ok(mo_stream_write_copy(s, data, len));
    assert_ok(mo_stream_write_copy(s, data, len));
    k->queued_in_callback = mo_stream_queued(s);
}

static void test_writes_in_read_callback_go_out_together(void **state)
{
    (void)state;
    mo_loop_t *loop;
    struct server sv;
    struct peer c;
    pair_open(&loop, &sv, &c, false);
    struct corked k = {0};
    static const struct mo_stream_callbacks cbs = {corked_read, NULL, NULL, NULL};
    assert_ok(mo_stream_set_callbacks(sv.peers[0].s, &cbs, &k));
    assert_ok(mo_stream_write_copy(c.s, "abc", 3));
    assert_int_equal(mo_stream_queued(c.s), 0); /* sent at once */
    RUN_UNTIL(loop, c.inlen == 6);
    assert_int_equal(k.reads, 1);
    assert_int_equal(k.queued_in_callback, 6); /* held until the callback returned */
    assert_string_equal(c.in, "abcabc");
    assert_int_equal(mo_stream_queued(sv.peers[0].s), 0);
    assert_ok(mo_stream_set_callbacks(sv.peers[0].s, &peer_cbs, &sv.peers[0]));
    pair_close(loop, &sv, &c);
}

/* An echo queues the read buffer's bytes without a copy while the read
 * callback runs; what the kernel does not take is copied before the next
 * read overwrites the buffer: every byte comes back right. */
static void test_echo_of_the_read_buffer_survives_the_next_read(void **state)
{
    (void)state;
    mo_loop_t *loop;
    struct server sv;
    struct peer c;
    pair_open(&loop, &sv, &c, true);
    small_buffers(sv.peers[0].s, c.s);
    small_buffers(c.s, sv.peers[0].s);
    assert_ok(mo_stream_read_stop(c.s));
    size_t total = 2 << 20;
    char *sent = malloc(total);
    for (size_t i = 0; i < total; i++) sent[i] = (char)(i * 7 % 251);
    assert_ok(mo_stream_write_copy(c.s, sent, total));
    run_for(loop, 50);
    struct mo_stream_stats st;
    assert_ok(mo_stream_stats(sv.peers[0].s, &st));
    assert_true(st.max_queued > 0); /* the echo had to wait, after several reads */
    assert_ok(mo_stream_read_start(c.s));
    RUN_UNTIL(loop, c.inlen == total);
    assert_memory_equal(c.in, sent, total);
    free(sent);
    pair_close(loop, &sv, &c);
}

static void test_listen_port_in_use(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct server sv;
    server_start(&sv, loop, "127.0.0.1:0");
    mo_listener_t *l2;
    assert_mo(MO_EADDRINUSE, mo_listen(loop, &sv.addr, NULL, on_accept, &sv, &l2));
    mo_addr_t empty = {0};
    assert_mo(MO_EINVAL, mo_listen(loop, &empty, NULL, on_accept, &sv, &l2));
    struct mo_listen_opts o = {.backlog = -1};
    assert_mo(MO_EINVAL, mo_listen(loop, &sv.addr, &o, on_accept, &sv, &l2));
    server_stop(&sv);
    mo_loop_free(loop);
}

/* Closing a listener from its own on_accept: no use after free (ASan,
 * valgrind), nothing more accepted, the accepted stream still works. */
struct closer {
    struct peer p;
    int accepted;
};

static void close_on_accept(mo_listener_t *l, mo_stream_t *s, void *arg)
{
    struct closer *c = arg;
    c->accepted++;
    peer_attach(&c->p, s, true);
    mo_listener_close(l);
    mo_listener_close(l); /* a second close, still inside: ignored */
}

static void test_close_listener_from_its_callback(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct closer c = {0};
    c.p.echo = true;
    mo_addr_t a, bound;
    assert_ok(mo_addr_parse(&a, "127.0.0.1:0"));
    mo_listener_t *l;
    assert_ok(mo_listen(loop, &a, NULL, close_on_accept, &c, &l));
    assert_ok(mo_listener_addr(l, &bound));
    int fd1 = raw_connect(&bound); /* both wait in the backlog: one burst */
    int fd2 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd2 >= 0);
    int c2 = connect(fd2, &bound.u.sa, bound.len);
    RUN_UNTIL(loop, c.accepted == 1);
    run_for(loop, 50);
    assert_int_equal(c.accepted, 1); /* nothing after the close */
    assert_int_equal(write(fd1, "hi", 2), 2);
    RUN_UNTIL(loop, c.p.reads == 1);
    run_for(loop, 20); /* the echo goes out */
    char buf[8];
    assert_int_equal(read(fd1, buf, sizeof buf), 2); /* the accepted stream echoes */
    if (c2 == 0) { /* the socket is closed: the second connection is refused or reset */
        ssize_t n = read(fd2, buf, sizeof buf);
        assert_true(n <= 0);
    }
    close(fd1);
    close(fd2);
    assert_ok(mo_stream_abort(c.p.s));
    RUN_UNTIL(loop, c.p.lost);
    peer_clear(&c.p);
    mo_loop_free(loop);
}

/* ---- writing ---- */

struct owned {
    char *buf;
    int freed;
};

static void owned_free(void *arg)
{
    struct owned *o = arg;
    o->freed++;
}

/* Writes a buffer of `size` bytes of `fill` on s, zero-copy, recording in
 * o when the stream lets go of it; o->buf is the caller's to free. */
static void write_big(mo_stream_t *s, size_t size, char fill, struct owned *o)
{
    *o = (struct owned){malloc(size), 0};
    assert_non_null(o->buf);
    memset(o->buf, fill, size);
    assert_ok(mo_stream_write(s, o->buf, size, owned_free, o));
}

/* Zero-copy and copied writes, mixed, arrive in order; each buffer's
 * destructor runs once, after its bytes went out. The peer does not read
 * at first, so the writes queue and go out gathered. */
static void test_writes_in_order_with_destructors(void **state)
{
    (void)state;
    mo_loop_t *loop;
    struct server sv;
    struct peer c;
    pair_open(&loop, &sv, &c, false);
    mo_stream_t *s = sv.peers[0].s;
    small_buffers(s, c.s);
    enum { N = 200, SIZE = 4096 };
    static struct owned own[N];
    static char bufs[N][SIZE];
    size_t total = 0;
    assert_ok(mo_stream_read_stop(c.s));
    for (int i = 0; i < N; i++) {
        memset(bufs[i], 'a' + i % 26, SIZE);
        own[i] = (struct owned){bufs[i], 0};
        if (i % 3 == 0) {
            assert_ok(mo_stream_write_copy(s, bufs[i], SIZE));
            own[i].freed = 1; /* copied: nothing to free */
        } else {
            assert_ok(mo_stream_write(s, bufs[i], SIZE, owned_free, &own[i]));
        }
        total += SIZE;
    }
    assert_true(mo_stream_queued(s) > 0); /* the kernel could not take it all */
    assert_ok(mo_stream_read_start(c.s));
    RUN_UNTIL(loop, c.inlen == total);
    RUN_UNTIL(loop, mo_stream_queued(s) == 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(own[i].freed, 1);
        for (size_t k = 0; k < SIZE; k += 512) assert_int_equal(c.in[i * SIZE + k], 'a' + i % 26);
    }
    struct mo_stream_stats st;
    assert_ok(mo_stream_stats(s, &st));
    assert_int_equal(st.bytes_written, total);
    assert_true(st.max_queued > 0);
    pair_close(loop, &sv, &c);
}

static void test_writes_after_close_and_bad_input(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct server sv;
    server_start(&sv, loop, "127.0.0.1:0");
    struct peer c = {0};
    assert_int_equal(dial(loop, sv.text, &c), 0);
    struct owned o = {0};
    assert_mo(MO_EINVAL, mo_stream_write(NULL, "x", 1, owned_free, &o));
    assert_int_equal(o.freed, 1); /* taken in every case */
    assert_mo(MO_EINVAL, mo_stream_write(c.s, NULL, 1, owned_free, &o));
    assert_int_equal(o.freed, 2);
    assert_ok(mo_stream_write(c.s, "", 0, owned_free, &o));
    assert_int_equal(o.freed, 3);
    assert_mo(MO_EINVAL, mo_stream_set_watermarks(c.s, 10, 10));
    assert_mo(MO_EINVAL, mo_stream_set_framing(c.s, 7, 10));
    assert_mo(MO_EINVAL, mo_stream_set_framing(c.s, MO_FRAME_LINE, 0));
    /* After a half-close, writes are refused; reading goes on. */
    assert_ok(mo_stream_shutdown(c.s));
    assert_mo(MO_EPIPE, mo_stream_write(c.s, "x", 1, owned_free, &o));
    assert_int_equal(o.freed, 4);
    assert_mo(MO_EPIPE, mo_stream_write_copy(c.s, "x", 1));
    assert_int_equal(mo_stream_writable(c.s), MO_EPIPE);
    /* After close too, and after the end, until on_lost. */
    assert_ok(mo_stream_close(c.s));
    assert_mo(MO_EPIPE, mo_stream_write_copy(c.s, "x", 1));
    assert_ok(mo_stream_close(c.s)); /* idempotent */
    mo_stream_t *s = c.s;
    assert_ok(mo_stream_abort(s));
    assert_int_equal(c.lost, 0); /* on_lost never runs inside our call */
    assert_mo(MO_EPIPE, mo_stream_write(s, "x", 1, owned_free, &o));
    assert_int_equal(o.freed, 5);
    assert_mo(MO_EPIPE, mo_stream_read_start(s));
    assert_mo(MO_EPIPE, mo_stream_fd(s));
    mo_addr_t a;
    assert_mo(MO_EPIPE, mo_stream_peer_addr(s, &a));
    RUN_UNTIL(loop, c.lost);
    assert_int_equal(c.lost_code, 0); /* the close had already ended it cleanly */
    pair_close(loop, &sv, &c);
}

/* ---- ending ---- */

/* Close after flush: a megabyte queued, then close; the peer reads all of
 * it, then its end of file; on_lost says clean. */
static void test_close_after_flush(void **state)
{
    (void)state;
    mo_loop_t *loop;
    struct server sv;
    struct peer c;
    pair_open(&loop, &sv, &c, false);
    size_t size = 1 << 20;
    struct owned o;
    write_big(sv.peers[0].s, size, 'z', &o);
    assert_ok(mo_stream_close(sv.peers[0].s));
    RUN_UNTIL(loop, c.eofs && sv.peers[0].lost);
    assert_int_equal(c.inlen, size);
    assert_int_equal(o.freed, 1);
    assert_int_equal(sv.peers[0].lost_code, 0);
    free(o.buf);
    mo_stream_close(c.s);
    RUN_UNTIL(loop, c.lost);
    pair_close(loop, &sv, &c);
}

/* Abort drops the queue (destructors run at once) and ends the stream
 * with MO_ECONNABORTED. */
static void test_abort_drops_queue(void **state)
{
    (void)state;
    mo_loop_t *loop;
    struct server sv;
    struct peer c;
    pair_open(&loop, &sv, &c, true);
    assert_ok(mo_stream_read_stop(c.s));
    size_t size = 8 << 20;
    struct owned o;
    write_big(sv.peers[0].s, size, 'q', &o);
    assert_true(mo_stream_queued(sv.peers[0].s) > 0);
    assert_int_equal(o.freed, 0);
    assert_ok(mo_stream_abort(sv.peers[0].s));
    assert_int_equal(o.freed, 1);
    RUN_UNTIL(loop, sv.peers[0].lost);
    assert_int_equal(sv.peers[0].lost_code, MO_ECONNABORTED);
    free(o.buf);
    pair_close(loop, &sv, &c);
}

/* Closing, or aborting, a stream from inside its own read callback. */
static void test_close_inside_read_callback(void **state)
{
    (void)state;
    for (int abort_it = 0; abort_it < 2; abort_it++) {
        mo_loop_t *loop;
        struct server sv;
        struct peer c;
        pair_open(&loop, &sv, &c, true);
        /* The server echoes, then closes (or aborts) in the same callback. */
        sv.peers[0].close_in_read = !abort_it;
        sv.peers[0].abort_in_read = abort_it;
        assert_ok(mo_stream_write_copy(c.s, "one", 3));
        RUN_UNTIL(loop, sv.peers[0].lost && (c.eofs || c.lost));
        assert_int_equal(sv.peers[0].reads, 1);
        assert_int_equal(sv.peers[0].lost_code, abort_it ? MO_ECONNABORTED : 0);
        if (!abort_it) assert_string_equal(c.in, "one"); /* the echo was flushed first */
        pair_close(loop, &sv, &c);
    }
}

/* Half-close both ways: our shutdown gives the peer its end of file while
 * we keep reading; the peer's shutdown gives us ours while we keep
 * writing. */
static void test_half_close(void **state)
{
    (void)state;
    mo_loop_t *loop;
    struct server sv;
    struct peer c;
    pair_open(&loop, &sv, &c, false);
    struct peer *p = &sv.peers[0];
    p->answer_eof = true; /* on the client's end of file: "bye" and close */
    assert_ok(mo_stream_write_copy(c.s, "question", 8));
    assert_ok(mo_stream_shutdown(c.s));
    RUN_UNTIL(loop, p->eofs && c.eofs);
    assert_string_equal(p->in, "question");
    assert_string_equal(c.in, "bye"); /* written after the client's half-close */
    RUN_UNTIL(loop, p->lost);
    assert_int_equal(p->lost_code, 0);
    mo_stream_close(c.s);
    RUN_UNTIL(loop, c.lost);
    assert_int_equal(c.lost_code, 0);
    pair_close(loop, &sv, &c);
}

/* The peer resets the connection while we write a lot: the stream ends
 * with MO_ECONNRESET or MO_EPIPE, the queued buffer's destructor runs, and
 * no SIGPIPE kills the process. */
static void test_peer_resets_mid_write(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct server sv;
    server_start(&sv, loop, "127.0.0.1:0");
    int fd = raw_connect(&sv.addr);
    RUN_UNTIL(loop, sv.n == 1);
    size_t size = 16 << 20;
    struct owned o;
    write_big(sv.peers[0].s, size, 'r', &o);
    assert_true(mo_stream_queued(sv.peers[0].s) > 0);
    /* Read a little, then reset: SO_LINGER 0 makes close() send RST. */
    char buf[4096];
    assert_true(recv(fd, buf, sizeof buf, 0) > 0);
    struct linger lg = {1, 0};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(fd);
    RUN_UNTIL(loop, sv.peers[0].lost);
    int code = sv.peers[0].lost_code;
    if (code != MO_ECONNRESET && code != MO_EPIPE) fail_msg("lost with %s", mo_err_name(code));
    assert_int_equal(o.freed, 1);
    free(o.buf);
    server_stop(&sv);
    mo_loop_free(loop);
}

/* ---- backpressure ---- */

struct producer {
    mo_stream_t *s;
    size_t piece, sent, total;
    char *buf;
    int pauses, resumes;
    bool paused;
    size_t max_queued;
};

static void produce(struct producer *pr)
{
    while (!pr->paused && pr->sent < pr->total) {
        assert_int_equal(mo_stream_writable(pr->s), 1);
        assert_ok(mo_stream_write(pr->s, pr->buf, pr->piece, NULL, NULL));
        pr->sent += pr->piece;
        size_t q = mo_stream_queued(pr->s);
        if (q > pr->max_queued) pr->max_queued = q;
    }
}

static void prod_pause(mo_stream_t *s, void *arg)
{
    (void)s;
    struct producer *pr = arg;
    pr->pauses++;
    pr->paused = true;
}

static void prod_resume(mo_stream_t *s, void *arg)
{
    (void)s;
    struct producer *pr = arg;
    pr->resumes++;
    pr->paused = false;
    produce(pr);
}

/* A callback producer facing a peer that does not read: it is paused above
 * the high mark and never has more than the high mark plus one piece
 * queued; when the peer reads, it is resumed at the low mark and finishes.
 * Read stop/start on the peer is its backpressure towards us. */
static void test_callback_producer_paused_and_resumed(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct server sv;
    server_start(&sv, loop, "127.0.0.1:0");
    sv.echo = false;
    struct peer c = {0};
    assert_int_equal(dial(loop, sv.text, &c), 0);
    assert_ok(mo_stream_read_stop(c.s)); /* the client that does not read */
    RUN_UNTIL(loop, sv.n == 1);
    static char piece[10000];
    memset(piece, 'p', sizeof piece);
    struct producer pr = {
        sv.peers[0].s, sizeof piece, 0, 800 * sizeof piece, piece, 0, 0, false, 0};
    small_buffers(pr.s, c.s);
    assert_ok(mo_stream_set_producer(pr.s, prod_pause, prod_resume, &pr));
    produce(&pr);
    assert_true(pr.paused);
    assert_int_equal(mo_stream_writable(pr.s), 0);
    run_for(loop, 50); /* the kernel's buffers fill; nothing more is produced */
    assert_true(pr.paused);
    assert_true(pr.sent < pr.total);
    assert_true(pr.max_queued <= MO_STREAM_HIGH_WATER + sizeof piece);
    assert_ok(mo_stream_read_start(c.s));
    RUN_UNTIL(loop, c.inlen == pr.total);
    assert_true(pr.resumes >= 1);
    assert_true(pr.max_queued <= MO_STREAM_HIGH_WATER + sizeof piece);
    struct mo_stream_stats st;
    assert_ok(mo_stream_stats(pr.s, &st));
    assert_true(st.max_queued <= MO_STREAM_HIGH_WATER + sizeof piece);
    assert_int_equal(st.pauses, (uint64_t)pr.pauses);
    pair_close(loop, &sv, &c);
}

/* A cooperative task as the producer: one piece per step. */
static int task_step(mo_task_t *task, void *arg)
{
    struct producer *pr = arg;
    if (pr->sent >= pr->total) return mo_task_done(task, NULL, NULL);
    int err = mo_stream_write(pr->s, pr->buf, pr->piece, NULL, NULL);
    if (err) return err;
    pr->sent += pr->piece;
    size_t q = mo_stream_queued(pr->s);
    if (q > pr->max_queued) pr->max_queued = q;
    return MO_CONTINUE;
}

static void test_task_producer(void **state)
{
    (void)state;
    mo_loop_t *loop;
    struct server sv;
    struct peer c;
    pair_open(&loop, &sv, &c, false);
    assert_ok(mo_stream_read_stop(c.s));
    static char piece[3000];
    memset(piece, 't', sizeof piece);
    struct producer pr = {
        sv.peers[0].s, sizeof piece, 0, 800 * sizeof piece, piece, 0, 0, false, 0};
    small_buffers(pr.s, c.s);
    mo_task_t *task;
    assert_ok(mo_cooperate(loop, task_step, &pr, NULL, &task));
    assert_ok(mo_stream_set_producer_task(pr.s, task));
    RUN_UNTIL(loop, mo_task_state(task) == MO_TASK_PAUSED);
    run_for(loop, 30);
    assert_int_equal(mo_task_state(task), MO_TASK_PAUSED);
    assert_true(pr.max_queued <= MO_STREAM_HIGH_WATER + sizeof piece);
    /* Replacing the producer undoes the stream's pause of the task; the
     * task as producer again is paused again. */
    assert_ok(mo_stream_set_producer_task(pr.s, NULL));
    assert_int_equal(mo_task_state(task), MO_TASK_READY);
    assert_ok(mo_stream_set_producer_task(pr.s, task));
    assert_int_equal(mo_task_state(task), MO_TASK_PAUSED);
    assert_ok(mo_stream_read_start(c.s));
    RUN_UNTIL(loop, mo_task_state(task) == MO_TASK_DONE && c.inlen == pr.total);
    assert_true(pr.max_queued <= MO_STREAM_HIGH_WATER + sizeof piece);
    mo_task_release(task);
    pair_close(loop, &sv, &c);
}

/* A coroutine producer that awaits "writable" between pieces. */
static int coro_produce(mo_coro_t *co, void *arg)
{
    struct producer *pr = arg;
    while (pr->sent < pr->total) {
        int err = mo_stream_await_writable(pr->s, co);
        if (err) return err;
        if ((err = mo_stream_write(pr->s, pr->buf, pr->piece, NULL, NULL)) != 0) return err;
        pr->sent += pr->piece;
        size_t q = mo_stream_queued(pr->s);
        if (q > pr->max_queued) pr->max_queued = q;
        if (mo_yield(co)) return MO_ECANCELED;
    }
    return 0;
}

static void test_coroutine_awaits_writable(void **state)
{
    (void)state;
    mo_loop_t *loop;
    struct server sv;
    struct peer c;
    pair_open(&loop, &sv, &c, false);
    assert_ok(mo_stream_read_stop(c.s));
    static char piece[5000];
    memset(piece, 'c', sizeof piece);
    struct producer pr = {
        sv.peers[0].s, sizeof piece, 0, 800 * sizeof piece, piece, 0, 0, false, 0};
    small_buffers(pr.s, c.s);
    mo_task_t *task;
    assert_ok(mo_coro_spawn(loop, coro_produce, &pr, NULL, &task));
    RUN_UNTIL(loop, mo_task_state(task) == MO_TASK_WAITING);
    size_t sent = pr.sent;
    run_for(loop, 30);
    assert_int_equal(pr.sent, sent); /* waits while the peer does not read */
    assert_true(pr.max_queued <= MO_STREAM_HIGH_WATER + sizeof piece);
    assert_ok(mo_stream_read_start(c.s));
    RUN_UNTIL(loop, mo_task_state(task) == MO_TASK_DONE && c.inlen == pr.total);
    mo_task_release(task);
    pair_close(loop, &sv, &c);
}

/* A coroutine waiting for "writable" when the peer goes away wakes with
 * the failure; a paused callback producer is resumed to notice. */
static void test_waiters_wake_when_stream_ends(void **state)
{
    (void)state;
    mo_loop_t *loop;
    struct server sv;
    struct peer c;
    pair_open(&loop, &sv, &c, false);
    assert_ok(mo_stream_read_stop(c.s));
    static char piece[5000];
    struct producer pr = {sv.peers[0].s, sizeof piece, 0, 64 << 20, piece, 0, 0, false, 0};
    mo_task_t *task;
    assert_ok(mo_coro_spawn(loop, coro_produce, &pr, NULL, &task));
    RUN_UNTIL(loop, mo_task_state(task) == MO_TASK_WAITING);
    mo_deferred_t *td = mo_task_deferred(task);
    assert_ok(mo_stream_abort(pr.s));
    RUN_UNTIL(loop, mo_task_state(task) == MO_TASK_DONE);
    const mo_failure_t *f;
    assert_ok(mo_deferred_result(td, NULL, &f));
    assert_int_equal(mo_failure_code(f), MO_ECONNABORTED);
    mo_failure_t *taken;
    void *v;
    mo_dtor_fn dt;
    assert_ok(mo_deferred_take(td, &v, &dt, &taken));
    mo_failure_unref(taken);
    mo_deferred_unref(td);
    mo_task_release(task);
    pair_close(loop, &sv, &c);
}

/* ---- framing ---- */

static void test_line_framing(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct server sv;
    server_start(&sv, loop, "127.0.0.1:0");
    sv.echo = false;
    sv.start = false;
    int fd = raw_connect(&sv.addr);
    RUN_UNTIL(loop, sv.n == 1);
    struct peer *p = &sv.peers[0];
    assert_ok(mo_stream_set_callbacks(p->s, &frame_cbs, p));
    assert_ok(mo_stream_set_framing(p->s, MO_FRAME_LINE, 8));
    assert_ok(mo_stream_read_start(p->s));
    /* Lines split across writes, several in one, "\r\n", an empty one. */
    assert_int_equal(send(fd, "ab", 2, 0), 2);
    run_for(loop, 10);
    assert_int_equal(p->inlen, 0);
    assert_int_equal(send(fd, "c\nd\r\n\nefgh", 10, 0), 10);
    RUN_UNTIL(loop, p->inlen == 7);
    assert_string_equal(p->in, "abc|d||");
    /* Stopping inside a frame's callback keeps the rest for later. */
    p->stop_in_read = true;
    assert_int_equal(send(fd, "\n1\n2\n", 5, 0), 5);
    RUN_UNTIL(loop, p->reads == 4);
    run_for(loop, 10);
    assert_string_equal(p->in, "abc|d||efgh|");
    p->stop_in_read = false;
    assert_ok(mo_stream_read_start(p->s));
    assert_int_equal(p->reads, 4); /* delivered from a later pass */
    RUN_UNTIL(loop, p->reads == 6);
    assert_string_equal(p->in, "abc|d||efgh|1|2|");
    /* A line of more than 8 bytes is an error as soon as the ninth byte is
     * there, newline or not. */
    assert_int_equal(send(fd, "123456789", 9, 0), 9);
    RUN_UNTIL(loop, p->errors);
    assert_int_equal(p->err, MO_EMSGSIZE);
    RUN_UNTIL(loop, p->lost);
    struct peer r = {0};
    RUN_UNTIL(loop, (raw_drain(fd, &r), r.eofs || r.err));
    assert_string_equal(r.in ? r.in : "", "error: too long\n");
    peer_clear(&r);
    close(fd);
    server_stop(&sv);
    mo_loop_free(loop);
}

/* Frames kept while a stream was stopped go before its end of file, even
 * when the read restarts from a cooperator slice, after which the loop
 * polls before its next pass (the server restarts reading that way). */
static int start_reading_step(mo_task_t *task, void *arg)
{
    assert_ok(mo_stream_read_start(arg));
    return mo_task_done(task, NULL, NULL);
}

static void test_kept_frames_before_eof(void **state)
{
    (void)state;
    static const struct mo_stream_callbacks no_eof_cbs = {frame_read, NULL, peer_lost, NULL};
    mo_loop_t *loop = mo_test_loop();
    struct server sv;
    server_start(&sv, loop, "127.0.0.1:0");
    sv.start = false;
    int fd = raw_connect(&sv.addr);
    RUN_UNTIL(loop, sv.n == 1);
    struct peer *p = &sv.peers[0];
    assert_ok(mo_stream_set_callbacks(p->s, &no_eof_cbs, p));
    assert_ok(mo_stream_set_framing(p->s, MO_FRAME_LINE, 100));
    p->stop_in_read = true;
    assert_ok(mo_stream_read_start(p->s));
    assert_int_equal(send(fd, "a\nb\nc\n", 6, 0), 6);
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    RUN_UNTIL(loop, p->reads == 1);
    run_for(loop, 20);
    p->stop_in_read = false;
    assert_ok(mo_cooperate(loop, start_reading_step, p->s, NULL, NULL));
    RUN_UNTIL(loop, p->lost);
    assert_string_equal(p->in, "a|b|c|"); /* then the end of file closed it */
    assert_int_equal(p->lost_code, 0);
    close(fd);
    server_stop(&sv);
    mo_loop_free(loop);
}

static void test_u32_framing(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct server sv;
    server_start(&sv, loop, "127.0.0.1:0");
    sv.echo = false;
    sv.start = false;
    struct peer c = {0};
    assert_int_equal(dial(loop, sv.text, &c), 0);
    RUN_UNTIL(loop, sv.n == 1);
    struct peer *p = &sv.peers[0];
    assert_ok(mo_stream_set_callbacks(p->s, &frame_cbs, p));
    assert_ok(mo_stream_set_framing(p->s, MO_FRAME_U32, 100000));
    assert_ok(mo_stream_read_start(p->s));
    assert_ok(mo_stream_write_frame(c.s, "hi", 2, NULL, NULL));
    assert_ok(mo_stream_write_frame(c.s, "", 0, NULL, NULL));
    static char big[70000];
    memset(big, 'b', sizeof big);
    assert_ok(mo_stream_write_frame(c.s, big, sizeof big, NULL, NULL));
    RUN_UNTIL(loop, p->reads == 3);
    assert_int_equal(p->inlen, 2 + 1 + 1 + sizeof big + 1);
    assert_memory_equal(p->in, "hi||", 4);
    /* A header announcing more than the maximum is an error at once. */
    static const char hdr[4] = {0, 0x10, 0, 0};
    assert_ok(mo_stream_write_copy(c.s, hdr, 4));
    RUN_UNTIL(loop, p->errors);
    assert_int_equal(p->err, MO_EMSGSIZE);
    mo_stream_abort(c.s);
    RUN_UNTIL(loop, c.lost && p->lost);
    pair_close(loop, &sv, &c);
}

/* A client sends a line of up to 1 GiB: the server, with lines of at most
 * 4096 bytes, gives up after a few kilobytes, without ever holding more
 * than the maximum plus one read, and the client's sending fails. */
static void test_huge_line_is_refused(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct server sv;
    server_start(&sv, loop, "127.0.0.1:0");
    sv.echo = false;
    sv.start = false;
    int fd = raw_connect(&sv.addr);
    assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    RUN_UNTIL(loop, sv.n == 1);
    struct peer *p = &sv.peers[0];
    assert_ok(mo_stream_set_callbacks(p->s, &frame_cbs, p));
    assert_ok(mo_stream_set_framing(p->s, MO_FRAME_LINE, 4096));
    assert_ok(mo_stream_read_start(p->s));
    static char chunk[1 << 16];
    memset(chunk, 'x', sizeof chunk);
    size_t sent = 0;
    int64_t end = mo_hrtime() + MO_SEC(20);
    while (sent < ((size_t)1 << 30) && mo_hrtime() < end) {
        ssize_t n = send(fd, chunk, sizeof chunk, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN) break; /* the server is gone */
        if (n > 0) sent += (size_t)n;
        spin_once(loop);
    }
    assert_int_equal(p->errors, 1);
    assert_int_equal(p->err, MO_EMSGSIZE);
    assert_true(sent < ((size_t)1 << 30));
    RUN_UNTIL(loop, p->lost);
    close(fd);
    server_stop(&sv);
    mo_loop_free(loop);
}

/* ---- options ---- */

static void test_nodelay_keepalive_and_watermarks(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct server sv;
    server_start(&sv, loop, "127.0.0.1:0");
    struct peer c = {0};
    assert_int_equal(dial(loop, sv.text, &c), 0);
    int fd = mo_stream_fd(c.s), v = 0;
    socklen_t len = sizeof v;
    assert_ok(mo_stream_set_nodelay(c.s, 1));
    assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
    assert_int_equal(v, 1);
    assert_ok(mo_stream_set_keepalive(c.s, 1, 30));
    assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, &len), 0);
    assert_int_equal(v, 1);
    assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, &len), 0);
    assert_int_equal(v, 30);
    assert_mo(MO_EINVAL, mo_stream_set_keepalive(c.s, 1, -1));
    assert_ok(mo_stream_set_watermarks(c.s, 1000, 10));
    assert_mo(MO_EINVAL, mo_stream_set_watermarks(c.s, 0, 0));
    assert_ptr_equal(mo_stream_loop(c.s), loop);
    pair_close(loop, &sv, &c);
}

/* ---- bad input, everywhere (docs/errors.md) ---- */

static void test_stream_bad_input(void **state)
{
    (void)state;
    mo_addr_t a;
    char buf[64];
    struct mo_stream_stats st;
    struct mo_listener_stats lst;
    mo_deferred_t *d = NULL;
    struct mo_stream_callbacks cbs = {0};
    struct owned o = {0};
    /* NULL streams and listeners. */
    assert_mo(MO_EINVAL, mo_stream_set_callbacks(NULL, &cbs, NULL));
    assert_mo(MO_EINVAL, mo_stream_read_start(NULL));
    assert_mo(MO_EINVAL, mo_stream_read_stop(NULL));
    assert_mo(MO_EINVAL, mo_stream_set_framing(NULL, MO_FRAME_LINE, 10));
    assert_mo(MO_EINVAL, mo_stream_write_copy(NULL, "x", 1));
    assert_mo(MO_EINVAL, mo_stream_write_frame(NULL, "x", 1, owned_free, &o));
    assert_int_equal(o.freed, 1); /* taken in every case */
    assert_int_equal(mo_stream_queued(NULL), 0);
    assert_mo(MO_EINVAL, mo_stream_set_watermarks(NULL, 10, 1));
    assert_mo(MO_EINVAL, mo_stream_shutdown(NULL));
    assert_mo(MO_EINVAL, mo_stream_close(NULL));
    assert_mo(MO_EINVAL, mo_stream_abort(NULL));
    assert_mo(MO_EINVAL, mo_stream_writable(NULL));
    assert_mo(MO_EINVAL, mo_stream_set_producer(NULL, NULL, NULL, NULL));
    assert_mo(MO_EINVAL, mo_stream_set_producer_task(NULL, NULL));
    assert_mo(MO_EINVAL, mo_stream_when_writable(NULL, &d));
    assert_mo(MO_EINVAL, mo_stream_await_writable(NULL, NULL));
    assert_mo(MO_EINVAL, mo_stream_set_nodelay(NULL, 1));
    assert_mo(MO_EINVAL, mo_stream_set_keepalive(NULL, 1, 0));
    assert_mo(MO_EINVAL, mo_stream_peer_addr(NULL, &a));
    assert_mo(MO_EINVAL, mo_stream_local_addr(NULL, &a));
    assert_mo(MO_EINVAL, mo_stream_fd(NULL));
    assert_null(mo_stream_loop(NULL));
    assert_mo(MO_EINVAL, mo_stream_stats(NULL, &st));
    assert_mo(MO_EINVAL, mo_listener_addr(NULL, &a));
    assert_mo(MO_EINVAL, mo_listener_pause(NULL));
    assert_mo(MO_EINVAL, mo_listener_resume(NULL));
    assert_mo(MO_EINVAL, mo_listener_stats(NULL, &lst));
    mo_listener_close(NULL); /* ignored */
    /* Addresses. */
    assert_mo(MO_EINVAL, mo_addr_parse(&a, NULL));
    assert_mo(MO_EINVAL, mo_addr_port(NULL));
    assert_ok(mo_addr_parse(&a, "127.0.0.1:1"));
    assert_mo(MO_EINVAL, mo_addr_format(&a, NULL, 4));
    assert_int_equal(mo_addr_format(&a, NULL, 0), 11); /* the length needed */
    mo_addr_t odd = a;
    odd.u.sa.sa_family = AF_PACKET;
    assert_mo(MO_EINVAL, mo_addr_format(&odd, buf, sizeof buf));
    assert_mo(MO_EINVAL, mo_addr_port(&odd));
    /* Listening: NULL arguments, unknown flags, bad watermarks, an unknown family. */
    mo_loop_t *loop = mo_test_loop();
    mo_listener_t *l = NULL;
    assert_mo(MO_EINVAL, mo_listen(NULL, &a, NULL, on_accept, NULL, &l));
    assert_mo(MO_EINVAL, mo_listen(loop, NULL, NULL, on_accept, NULL, &l));
    assert_mo(MO_EINVAL, mo_listen(loop, &a, NULL, NULL, NULL, &l));
    assert_mo(MO_EINVAL, mo_listen(loop, &a, NULL, on_accept, NULL, NULL));
    struct mo_listen_opts lo = {.flags = 4};
    assert_mo(MO_EINVAL, mo_listen(loop, &a, &lo, on_accept, NULL, &l));
    lo = (struct mo_listen_opts){.stream = {.high_water = 10, .low_water = 10}};
    assert_mo(MO_EINVAL, mo_listen(loop, &a, &lo, on_accept, NULL, &l));
    lo = (struct mo_listen_opts){.stream = {.flags = 8}};
    assert_mo(MO_EINVAL, mo_listen(loop, &a, &lo, on_accept, NULL, &l));
    assert_mo(MO_EINVAL, mo_listen(loop, &odd, NULL, on_accept, NULL, &l));
    assert_null(l);
    /* Connecting: NULL arguments, a name too long, a closed loop. */
    assert_mo(MO_EINVAL, mo_connect(loop, "127.0.0.1:1", NULL, NULL));
    assert_mo(MO_EINVAL, mo_connect_addr(NULL, &a, NULL, &d));
    assert_mo(MO_EINVAL, mo_connect_addr(loop, NULL, NULL, &d));
    assert_mo(MO_EINVAL, mo_connect_addr(loop, &a, NULL, NULL));
    assert_mo(MO_EINVAL, mo_connect_addr(loop, &odd, NULL, &d));
    char longname[400];
    memset(longname, 'h', sizeof longname);
    memcpy(longname + sizeof longname - 4, ":80", 4);
    assert_mo(MO_ENAMETOOLONG, mo_connect(loop, longname, NULL, &d));
    memcpy(longname, "unix:/", 6);
    assert_mo(MO_ENAMETOOLONG, mo_connect(loop, longname, NULL, &d));
    assert_null(d);
    mo_loop_t *closed = mo_test_loop();
    assert_ok(mo_loop_close(closed));
    assert_mo(MO_ESHUTDOWN, mo_connect(closed, "127.0.0.1:1", NULL, &d));
    assert_mo(MO_ESHUTDOWN, mo_connect(closed, "localhost:1", NULL, &d));
    assert_mo(MO_ESHUTDOWN, mo_connect_addr(closed, &a, NULL, &d));
    assert_null(d);
    assert_mo(MO_ESHUTDOWN, mo_listen(closed, &a, NULL, on_accept, NULL, &l));
    assert_null(l);
    mo_loop_free(closed);
    mo_loop_free(loop);
}

/* An open stream's refusals: NULL arguments, bad framing and watermarks,
 * a frame too long, and every answer of an ended stream until on_lost. */
static void test_stream_refusals_open_and_ended(void **state)
{
    (void)state;
    mo_loop_t *loop;
    struct server sv;
    struct peer c;
    pair_open(&loop, &sv, &c, false);
    mo_stream_t *s = c.s;
    struct owned o = {0};
    assert_mo(MO_EINVAL, mo_stream_set_callbacks(s, NULL, NULL));
    assert_mo(MO_EINVAL, mo_stream_set_framing(s, -1, 10));
    assert_mo(MO_EINVAL, mo_stream_set_framing(s, MO_FRAME_U32, ((size_t)1 << 31) + 1));
    assert_ok(mo_stream_set_framing(s, MO_FRAME_U32, (size_t)1 << 31));
    assert_mo(MO_EINVAL, mo_stream_write_copy(s, NULL, 1));
    assert_mo(MO_EINVAL, mo_stream_write_frame(s, NULL, 1, owned_free, &o));
    assert_int_equal(o.freed, 1);
    /* A frame longer than a u32 length: refused, destroyed, nothing queued. */
    assert_mo(MO_EMSGSIZE, mo_stream_write_frame(s, "x", (size_t)UINT32_MAX + 1, owned_free, &o));
    assert_int_equal(o.freed, 2);
    assert_int_equal(mo_stream_queued(s), 0);
    assert_mo(MO_EINVAL, mo_stream_set_watermarks(s, 10, 11));
    assert_mo(MO_EINVAL, mo_stream_when_writable(s, NULL));
    assert_mo(MO_EINVAL, mo_stream_peer_addr(s, NULL));
    assert_mo(MO_EINVAL, mo_stream_local_addr(s, NULL));
    assert_mo(MO_EINVAL, mo_stream_stats(s, NULL));
    assert_mo(MO_EINVAL, mo_listener_addr(sv.l, NULL));
    assert_mo(MO_EINVAL, mo_listener_stats(sv.l, NULL));
    /* Ended (aborted), until on_lost: writes MO_EPIPE, the rest as documented. */
    assert_ok(mo_stream_abort(s));
    assert_ok(mo_stream_abort(s)); /* a no-op on an ended stream */
    assert_ok(mo_stream_close(s));
    assert_mo(MO_EPIPE, mo_stream_write_frame(s, "x", 1, owned_free, &o));
    assert_int_equal(o.freed, 3);
    assert_mo(MO_EPIPE, mo_stream_write_copy(s, "x", 1));
    assert_mo(MO_EPIPE, mo_stream_shutdown(s));
    assert_mo(MO_EPIPE, mo_stream_writable(s));
    assert_mo(MO_EPIPE, mo_stream_set_nodelay(s, 1));
    assert_mo(MO_EPIPE, mo_stream_set_keepalive(s, 1, 0));
    mo_addr_t a;
    assert_mo(MO_EPIPE, mo_stream_local_addr(s, &a));
    assert_ok(mo_stream_read_stop(s));
    assert_ok(mo_stream_set_producer(s, NULL, NULL, NULL));
    assert_ok(mo_stream_set_producer_task(s, NULL));
    /* "Writable" on an ended stream: a Deferred that has failed with the
     * reason (here the abort's MO_ECONNABORTED). */
    mo_deferred_t *d = NULL;
    assert_ok(mo_stream_when_writable(s, &d));
    const mo_failure_t *f = NULL;
    void *v;
    assert_ok(mo_deferred_result(d, &v, &f));
    assert_mo(MO_ECONNABORTED, mo_failure_code(f));
    mo_deferred_t *keep = d;
    mo_failure_t *taken = NULL;
    mo_dtor_fn dtor;
    assert_ok(mo_deferred_take(keep, &v, &dtor, &taken));
    mo_failure_unref(taken);
    mo_deferred_unref(d);
    RUN_UNTIL(loop, c.lost);
    assert_mo(MO_ECONNABORTED, c.lost_code);
    pair_close(loop, &sv, &c);
}

/* A write that finds the connection reset answers the socket's error at
 * once (nothing queued, the buffer destroyed); the stream has ended and
 * on_lost follows with the same code. */
static void test_write_to_reset_peer_fails(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct server sv;
    server_start(&sv, loop, "127.0.0.1:0");
    sv.start = false; /* the server's stream does not read: it sees the RST on the write */
    int fd = raw_connect(&sv.addr);
    RUN_UNTIL(loop, sv.n == 1);
    struct linger lg = {1, 0};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(fd); /* RST */
    run_for(loop, 20);
    mo_stream_t *s = sv.peers[0].s;
    struct owned o = {0};
    int err = mo_stream_write(s, "x", 1, owned_free, &o);
    if (err != MO_ECONNRESET && err != MO_EPIPE) fail_msg("write gave %s", mo_err_name(err));
    assert_int_equal(o.freed, 1);
    assert_int_equal(mo_stream_queued(s), 0);
    assert_mo(MO_EPIPE, mo_stream_write_copy(s, "x", 1)); /* ended */
    RUN_UNTIL(loop, sv.peers[0].lost);
    assert_mo(err, sv.peers[0].lost_code);
    server_stop(&sv);
    mo_loop_free(loop);
}

/* mo_listen() out of descriptors: MO_EMFILE, nothing listens. */
static void test_listen_out_of_descriptors(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    mo_addr_t a;
    assert_ok(mo_addr_parse(&a, "127.0.0.1:0"));
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    int probe = dup(0); /* the lowest free descriptor: all below are open */
    assert_true(probe >= 0);
    close(probe);
    low = old;
    low.rlim_cur = (rlim_t)probe;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    mo_listener_t *l = NULL;
    int err = mo_listen(loop, &a, NULL, on_accept, NULL, &l);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_mo(MO_EMFILE, err);
    assert_null(l);
    mo_loop_free(loop);
}

/* mo_stream_await_writable() outside its coroutine is refused even when
 * the stream is writable; inside a stopped task it answers MO_ECANCELED. */
struct await_check {
    mo_stream_t *s;
    int stopped_err;
};

static int await_after_stop(mo_coro_t *co, void *arg)
{
    struct await_check *k = arg;
    assert_ok(mo_task_stop(mo_coro_task(co)));
    k->stopped_err = mo_stream_await_writable(k->s, co);
    return 0;
}

struct parked {
    mo_coro_t *co;
    bool done;
};

/* Keeps its coroutine alive, yielding, until told to end. */
static int park(mo_coro_t *co, void *arg)
{
    struct parked *p = arg;
    p->co = co;
    while (!p->done)
        if (mo_yield(co) != 0) break;
    return 0;
}

static void test_await_writable_refusals(void **state)
{
    (void)state;
    mo_loop_t *loop;
    struct server sv;
    struct peer c;
    pair_open(&loop, &sv, &c, false);
    assert_int_equal(mo_stream_writable(c.s), 1);
    mo_task_t *task;
    struct await_check k = {c.s, 1};
    /* A coroutine that is not running: the caller is not inside it. */
    struct parked p = {NULL, false};
    assert_ok(mo_coro_spawn(loop, park, &p, NULL, &task));
    RUN_UNTIL(loop, p.co != NULL);
    assert_mo(MO_EINVAL, mo_stream_await_writable(c.s, p.co));
    p.done = true;
    RUN_UNTIL(loop, mo_task_state(task) == MO_TASK_DONE);
    mo_task_release(task);
    assert_ok(mo_coro_spawn(loop, await_after_stop, &k, NULL, &task));
    RUN_UNTIL(loop, k.stopped_err != 1);
    assert_mo(MO_ECANCELED, k.stopped_err);
    mo_task_release(task);
    pair_close(loop, &sv, &c);
}

/* ---- the loop freed with streams open ---- */

/* Everything still open is ended by mo_loop_free(): destructors of queued
 * buffers run, on_lost runs with MO_ECANCELED, listeners and connects go.
 * Under valgrind this shows no leak. */
static void test_loop_freed_with_open_streams(void **state)
{
    (void)state;
    mo_loop_t *loop;
    struct server sv;
    struct peer c;
    pair_open(&loop, &sv, &c, false);
    assert_ok(mo_stream_read_stop(c.s));
    size_t size = 8 << 20;
    struct owned o;
    write_big(sv.peers[0].s, size, 'f', &o);
    assert_ok(mo_stream_set_framing(c.s, MO_FRAME_LINE, 100));
    assert_ok(mo_stream_write_copy(c.s, "partial line", 12));
    /* A stream whose on_lost is queued, and a connect in progress. */
    struct peer c2 = {0}, c3 = {0};
    assert_int_equal(dial(loop, sv.text, &c2), 0);
    mo_stream_abort(c2.s);
    struct dial d3 = {&c3, 0, 0};
    mo_deferred_t *pending;
    assert_ok(mo_connect(loop, sv.text, NULL, &pending));
    assert_ok(mo_deferred_add_callbacks(pending, dialed, dial_failed, &d3));
    mo_deferred_unref(pending);
    mo_loop_free(loop);
    assert_int_equal(d3.done, 1);
    assert_int_equal(d3.code, MO_ECANCELED);
    assert_int_equal(o.freed, 1);
    assert_int_equal(c.lost, 1);
    assert_int_equal(c.lost_code, MO_ECANCELED);
    assert_int_equal(c2.lost, 1);
    assert_int_equal(c2.lost_code, MO_ECONNABORTED);
    assert_int_equal(sv.peers[0].lost, 1);
    free(o.buf);
    peer_clear(&c);
    peer_clear(&c2);
    for (int i = 0; i < sv.n; i++) peer_clear(&sv.peers[i]);
}

/* on_lost may close the listener while the loop is freed (a server that
 * stops listening when its last client goes, as examples/echo_server.c). */
static void lost_closes_listener(mo_stream_t *s, const mo_failure_t *reason, void *arg)
{
    (void)s, (void)reason;
    mo_listener_t **l = arg;
    mo_listener_close(*l);
    *l = NULL;
}

static void test_loop_freed_on_lost_closes_listener(void **state)
{
    (void)state;
    mo_loop_t *loop;
    struct server sv;
    struct peer c;
    pair_open(&loop, &sv, &c, true);
    static const struct mo_stream_callbacks cbs = {NULL, NULL, lost_closes_listener, NULL};
    assert_ok(mo_stream_set_callbacks(sv.peers[0].s, &cbs, &sv.l));
    mo_loop_free(loop);
    assert_null(sv.l);
    peer_clear(&c);
    peer_clear(&sv.peers[0]);
}

/* ---- out of descriptors ---- */

static void test_emfile_on_accept(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct server sv;
    server_start(&sv, loop, "127.0.0.1:0");
    int first = raw_connect(&sv.addr);
    RUN_UNTIL(loop, sv.n == 1);
    /* Connections waiting in the backlog. */
    enum { K = 8 };
    int waiting[K];
    for (int i = 0; i < K; i++) waiting[i] = raw_connect(&sv.addr);
    /* No descriptor left: the limit is the lowest free one. */
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    int lowest = dup(0);
    assert_true(lowest >= 0);
    close(lowest);
    low = old;
    low.rlim_cur = (rlim_t)lowest;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    /* Valgrind keeps its own count of descriptors, which accept4() does
     * not follow: the limit cannot be tested under it. */
    const char *preload = getenv("LD_PRELOAD");
    int probe = dup(0);
    if (probe >= 0 || (preload && strstr(preload, "vgpreload"))) {
        if (probe >= 0) close(probe);
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
        for (int i = 0; i < K; i++) close(waiting[i]);
        close(first);
        server_stop(&sv);
        mo_loop_free(loop);
        skip();
    }
    RUN_UNTIL(loop, sv.errors >= K);
    int64_t until = mo_hrtime() + MO_MSEC(50);
    while (mo_hrtime() < until) spin_once(loop); /* and it does not spin */
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_int_equal(sv.last_err, MO_EMFILE);
    struct mo_listener_stats st;
    assert_ok(mo_listener_stats(sv.l, &st));
    assert_int_equal(st.dropped, K);
    assert_int_equal(st.accepted, 1);
    /* The dropped connections were closed; the first one is still served. */
    for (int i = 0; i < K; i++) {
        char b;
        assert_int_equal(recv(waiting[i], &b, 1, 0), 0);
        close(waiting[i]);
    }
    assert_int_equal(send(first, "still", 5, 0), 5);
    struct peer r = {0};
    RUN_UNTIL(loop, (raw_drain(first, &r), r.inlen == 5));
    assert_string_equal(r.in, "still");
    peer_clear(&r);
    close(first);
    /* Descriptors are back: new connections are accepted again. */
    int again = raw_connect(&sv.addr);
    RUN_UNTIL(loop, sv.n == 2);
    close(again);
    server_stop(&sv);
    mo_loop_free(loop);
}

MO_TEST_MAIN(cmocka_unit_test(test_addr_parse_and_format), cmocka_unit_test(test_echo_tcp4),
             cmocka_unit_test(test_echo_tcp6), cmocka_unit_test(test_echo_unix_and_file_removed),
             cmocka_unit_test(test_connect_resolves_localhost),
             cmocka_unit_test(test_connect_refused),
             cmocka_unit_test(test_connect_name_does_not_resolve),
             cmocka_unit_test(test_connect_bad_input_and_cancel),
             cmocka_unit_test(test_connect_addr_and_listener_pause),
             cmocka_unit_test(test_writes_in_read_callback_go_out_together),
             cmocka_unit_test(test_echo_of_the_read_buffer_survives_the_next_read),
             cmocka_unit_test(test_listen_port_in_use),
             cmocka_unit_test(test_close_listener_from_its_callback),
             cmocka_unit_test(test_writes_in_order_with_destructors),
             cmocka_unit_test(test_writes_after_close_and_bad_input),
             cmocka_unit_test(test_close_after_flush), cmocka_unit_test(test_abort_drops_queue),
             cmocka_unit_test(test_close_inside_read_callback), cmocka_unit_test(test_half_close),
             cmocka_unit_test(test_peer_resets_mid_write),
             cmocka_unit_test(test_callback_producer_paused_and_resumed),
             cmocka_unit_test(test_task_producer), cmocka_unit_test(test_coroutine_awaits_writable),
             cmocka_unit_test(test_waiters_wake_when_stream_ends),
             cmocka_unit_test(test_line_framing), cmocka_unit_test(test_kept_frames_before_eof),
             cmocka_unit_test(test_u32_framing), cmocka_unit_test(test_huge_line_is_refused),
             cmocka_unit_test(test_nodelay_keepalive_and_watermarks),
             cmocka_unit_test(test_loop_freed_with_open_streams),
             cmocka_unit_test(test_loop_freed_on_lost_closes_listener),
             cmocka_unit_test(test_emfile_on_accept), cmocka_unit_test(test_stream_bad_input),
             cmocka_unit_test(test_stream_refusals_open_and_ended),
             cmocka_unit_test(test_await_writable_refusals),
             cmocka_unit_test(test_listen_out_of_descriptors),
             cmocka_unit_test(test_write_to_reset_peer_fails))
