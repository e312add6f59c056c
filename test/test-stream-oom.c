/* Streams when memory runs out, against the public API only (stream.h):
 * every allocation fails in turn while a listener accepts, a client
 * connects (a numeric address, a Unix path, a name resolved on the pool),
 * writes of each kind queue behind a full socket, framing keeps partial
 * and stopped frames, and streams close and abort. Every run must end in
 * a clean documented error (MO_ENOMEM from a call, an accept error, a
 * connect Deferred or a stream lost with MO_ENOMEM), free everything,
 * leave nothing half done (a write refused with MO_ENOMEM queued nothing
 * and destroyed its buffer exactly once), and otherwise do the whole
 * exchange. MO_TEST_LABEL_THREADS: names are resolved on the pool. */
#include "test.h"

#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- one exchange: a server, a client, what happened to them ---- */

enum { LINES = 200, LINE_LEN = 300 }; /* the framing scenario's */

struct end {
    mo_stream_t *s;
    size_t inlen;  /* bytes (or frames' bytes) received */
    int frames;    /* frames received (framing scenario) */
    int lost;      /* on_lost calls */
    int lost_code; /* 0: clean */
};

struct world {
    mo_loop_t *loop;
    mo_listener_t *l;
    char target[160]; /* the server's address as mo_connect() takes it */
    struct end srv, cli;
    int accepts;
    bool echo;       /* the server echoes */
    bool nomem;      /* memory ran out somewhere, cleanly */
    bool bad;        /* something not documented happened */
    bool connected;  /* the client's Deferred fired */
    bool frame_stop; /* the framing server stops reading every 40 frames */
    const char *msg; /* what the client sends once connected */
    size_t msglen;
};

/* Something not documented happened: says where. */
static void set_bad(struct world *w, int line)
{
    fprintf(stderr, "line %d: not as documented\n", line);
    w->bad = true;
}

/* Notes the outcome of a call made inside the exchange: MO_ENOMEM is
 * clean (the stream concerned is aborted so that the run ends), anything
 * else but 0 is not. */
static void note(struct world *w, int rc, mo_stream_t *s)
{
    if (rc == 0) return;
    if (rc == MO_ENOMEM) {
        w->nomem = true;
        if (s) mo_stream_abort(s);
        return;
    }
    fprintf(stderr, "unexpected %s\n", mo_err_name(rc));
    set_bad(w, __LINE__);
}

static void lost_note(struct world *w, struct end *e, const mo_failure_t *reason)
{
    e->lost++;
    e->lost_code = mo_failure_code(reason);
    e->s = NULL;
    if (e->lost_code == MO_ENOMEM) w->nomem = true;
}

static void srv_read(mo_stream_t *s, char *data, size_t len, void *arg)
{
    struct world *w = arg;
    w->srv.inlen += len;
    w->srv.frames++;
    if (w->echo) note(w, mo_stream_write_copy(s, data, len), s);
    if (w->frame_stop && w->srv.frames % 40 == 0 && w->srv.frames < LINES)
        note(w, mo_stream_read_stop(s), s);
}

static void srv_lost(mo_stream_t *s, const mo_failure_t *reason, void *arg)
{
    (void)s;
    struct world *w = arg;
    lost_note(w, &w->srv, reason);
}

static const struct mo_stream_callbacks srv_cbs = {srv_read, NULL, srv_lost, NULL};

static void on_accept(mo_listener_t *l, mo_stream_t *s, void *arg)
{
    (void)l;
    struct world *w = arg;
    if (w->accepts++) {
        set_bad(w, __LINE__); /* one client only */
        mo_stream_abort(s);
        return;
    }
    w->srv.s = s;
    note(w, mo_stream_set_callbacks(s, &srv_cbs, w), s);
    if (w->frame_stop) note(w, mo_stream_set_framing(s, MO_FRAME_LINE, 4096), s);
    if (w->srv.s) note(w, mo_stream_read_start(s), s);
}

static void on_listen_error(mo_listener_t *l, int err, void *arg)
{
    (void)l;
    note(arg, err, NULL);
}

static void cli_read(mo_stream_t *s, char *data, size_t len, void *arg)
{
    (void)data;
    struct world *w = arg;
    w->cli.inlen += len;
    if (w->cli.inlen == w->msglen) note(w, mo_stream_close(s), s);
}

static void cli_lost(mo_stream_t *s, const mo_failure_t *reason, void *arg)
{
    (void)s;
    struct world *w = arg;
    lost_note(w, &w->cli, reason);
}

static const struct mo_stream_callbacks cli_cbs = {cli_read, NULL, cli_lost, NULL};

static void connected(mo_result_t *r, void *arg)
{
    struct world *w = arg;
    mo_dtor_fn dtor;
    mo_stream_t *s = mo_result_take(r, &dtor);
    w->connected = true;
    w->cli.s = s;
    note(w, mo_stream_set_callbacks(s, &cli_cbs, w), s);
    if (w->cli.s) note(w, mo_stream_read_start(s), s);
    if (w->cli.s && w->msglen) note(w, mo_stream_write_copy(s, w->msg, w->msglen), s);
}

static void connect_failed(mo_result_t *r, void *arg)
{
    struct world *w = arg;
    w->connected = true;
    note(w, mo_failure_code(mo_result_failure(r)), NULL);
    mo_result_set(r, NULL, NULL); /* handled */
}

/* One non-waiting pass of the loop, and a short sleep. */
static void spin(struct world *w)
{

    if (mo_loop_run(w->loop, MO_RUN_NOWAIT) != 0) set_bad(w, __LINE__);
    usleep(200);
}

/* Spins until cond holds or the run is over (bad, or 10 s: bad too). */
#define SPIN_UNTIL(w, cond)                                                                        \
    do {                                                                                           \
        int64_t end_ = mo_hrtime() + MO_SEC(10);                                                   \
        while (!(cond) && !(w)->bad) {                                                             \
            if (mo_hrtime() > end_) {                                                              \
                fprintf(stderr,                                                                    \
                        "timed out waiting for %s (accepts %d srv %zu/%d/%d cli %zu/%d/%d nomem "  \
                        "%d connected %d)\n",                                                      \
                        #cond, (w)->accepts, (w)->srv.inlen, (w)->srv.lost, (w)->srv.lost_code,    \
                        (w)->cli.inlen, (w)->cli.lost, (w)->cli.lost_code, (w)->nomem,             \
                        (w)->connected);                                                           \
                set_bad((w), __LINE__);                                                            \
            }                                                                                      \
            spin(w);                                                                               \
        }                                                                                          \
    } while (0)

static bool is_lost(const struct end *e, bool existed)
{
    return !existed || e->lost;
}

/* A new loop with a listener on `addr`; 0 or the error of either. */
static int world_open(struct world *w, const char *addr)
{
    int rc = mo_loop_new(&w->loop, 0);
    if (rc) return rc;
    mo_addr_t a;
    assert_ok(mo_addr_parse(&a, addr));
    struct mo_listen_opts o = {.on_error = on_listen_error};
    rc = mo_listen(w->loop, &a, &o, on_accept, w, &w->l);
    if (rc) {
        if (w->l) set_bad(w, __LINE__); /* nothing stored on error */
        mo_loop_free(w->loop);
        return rc;
    }
    mo_addr_t bound;
    assert_ok(mo_listener_addr(w->l, &bound));
    assert_true(mo_addr_format(&bound, w->target, sizeof w->target) > 0);
    return 0;
}

/* Ends what is left (aborting streams still open: their on_lost runs),
 * frees the loop and says how the run went. `complete`: the exchange did
 * all it should. Losses other than clean ones are fine only after memory
 * ran out (the other end of an aborted stream is reset). */
static int world_close(struct world *w, bool complete)
{
    bool had_srv = w->accepts > 0, had_cli = w->cli.s || w->cli.lost;
    if (w->srv.s) mo_stream_abort(w->srv.s);
    if (w->cli.s) mo_stream_abort(w->cli.s);
    SPIN_UNTIL(w, is_lost(&w->srv, had_srv) && is_lost(&w->cli, had_cli));
    mo_listener_close(w->l);
    mo_loop_free(w->loop);
    if (w->srv.lost > 1 || w->cli.lost > 1) set_bad(w, __LINE__);
    if (w->bad) return MO_ENOTRECOVERABLE;
    if (w->nomem) return MO_ENOMEM;
    if (!complete || w->srv.lost_code || w->cli.lost_code) {
        fprintf(stderr, "incomplete: srv %zu/%d/%d cli %zu/%d/%d\n", w->srv.inlen, w->srv.lost,
                w->srv.lost_code, w->cli.inlen, w->cli.lost, w->cli.lost_code);
        return MO_ENOTRECOVERABLE;
    }
    return 0;
}

/* ---- accepting: a raw client, an echoing server ---- */

/* A blocking socket connected to the listener (libc only: no allocation
 * of morsel's). */
static int raw_client(const mo_listener_t *l)
{
    mo_addr_t a;
    assert_ok(mo_listener_addr(l, &a));
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, &a.u.sa, a.len), 0);
    return fd;
}

static const char hello[] = "hello, morsel, are you there?\n";

static int accept_scenario(void *arg)
{
    (void)arg;
    struct world w = {.echo = true};
    int rc = world_open(&w, "127.0.0.1:0");
    if (rc) return w.bad ? MO_ENOTRECOVERABLE : rc;
    int fd = raw_client(w.l);
    assert_int_equal(send(fd, hello, sizeof hello - 1, MSG_NOSIGNAL), (ssize_t)(sizeof hello - 1));
    /* Read the echo until it is whole or the server went away. */
    size_t got = 0;
    bool eof = false;
    int64_t end = mo_hrtime() + MO_SEC(10);
    while (got < sizeof hello - 1 && !eof && !w.bad && mo_hrtime() < end) {
        spin(&w);
        char buf[256];
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) got += (size_t)n;
        if (n == 0 || (n < 0 && errno != EAGAIN)) eof = true;
    }
    close(fd); /* the server reads its end of file and closes */
    if (got == sizeof hello - 1) SPIN_UNTIL(&w, w.srv.lost);
    return world_close(&w, got == sizeof hello - 1 && w.srv.lost);
}

static void test_listen_and_accept_each_allocation_in_turn(void **state)
{
    (void)state;
    mo_test_alloc_install();
    long n = mo_test_oom_sweep(accept_scenario, NULL, 5);
    printf("listen and accept: %ld allocations, each failed in turn\n", n);
}

/* ---- connecting: a stream client, an echoing server ---- */

static int connect_scenario(void *arg)
{
    const char *kind = arg;
    char path[128] = "127.0.0.1:0";
    if (strcmp(kind, "unix") == 0) {
        snprintf(path, sizeof path, "unix:/tmp/morsel-stream-oom-%d.sock", (int)getpid());
        unlink(path + 5);
    }
    struct world w = {.echo = true, .msg = hello, .msglen = sizeof hello - 1};
    int rc = world_open(&w, path);
    if (rc) return w.bad ? MO_ENOTRECOVERABLE : rc;
    char target[200];
    if (strcmp(kind, "name") == 0)
        snprintf(target, sizeof target, "localhost%s", strrchr(w.target, ':'));
    else
        snprintf(target, sizeof target, "%s", w.target);
    mo_deferred_t *d = NULL;
    rc = mo_connect(w.loop, target, NULL, &d);
    if (rc) {
        if (d) set_bad(&w, __LINE__);
        note(&w, rc, NULL);
        return world_close(&w, false);
    }
    rc = mo_deferred_add_callbacks(d, connected, connect_failed, &w);
    mo_deferred_unref(d); /* a stream left in it is aborted */
    note(&w, rc, NULL);
    if (!rc) SPIN_UNTIL(&w, w.connected);
    if (w.cli.s) SPIN_UNTIL(&w, w.cli.lost && (w.srv.lost || w.nomem));
    return world_close(&w, w.cli.inlen == w.msglen && w.cli.lost && w.srv.lost);
}

static void test_connect_each_allocation_in_turn(void **state)
{
    (void)state;
    mo_test_alloc_install();
    long n = mo_test_oom_sweep(connect_scenario, "tcp", 5);
    printf("connect, numeric: %ld allocations, each failed in turn\n", n);
    n = mo_test_oom_sweep(connect_scenario, "unix", 5);
    printf("connect, unix: %ld allocations, each failed in turn\n", n);
}

static void test_connect_resolving_each_allocation_in_turn(void **state)
{
    (void)state;
    mo_test_alloc_install();
    long n = mo_test_oom_sweep(connect_scenario, "name", 5);
    printf("connect, resolved on the pool: %ld allocations, each failed in turn\n", n);
}

/* ---- writes of each kind queued behind a full socket ---- */

static char pattern[300 * 1024];

enum { FRAMES = 150 }; /* two write records each: more than two slabs of 64 */

struct owned {
    int runs;
};

static void owned_dtor(void *arg)
{
    ((struct owned *)arg)->runs++;
}

/* The Deferred of mo_stream_when_writable(): fires with NULL once the
 * queue drained, or fails when the stream ended first. */
static void writable_fired(mo_result_t *r, void *arg)
{
    struct world *w = arg;
    mo_failure_t *f = mo_result_failure(r);
    int code = mo_failure_code(f);
    if (f && code != MO_ENOMEM && !w->nomem && code != MO_ECANCELED) set_bad(w, __LINE__);
    mo_result_set(r, NULL, NULL); /* handled */
}

/* One write of each kind (and a wait for "writable") on the client while
 * the server does not read: they queue. A write refused with MO_ENOMEM has
 * destroyed its buffer once and queued nothing, unless it had sent part
 * and ended the stream. Then the server reads everything accepted. */
static int writes_scenario(void *arg)
{
    (void)arg;
    struct world w = {0};
    int rc = world_open(&w, "127.0.0.1:0");
    if (rc) return w.bad ? MO_ENOTRECOVERABLE : rc;
    mo_deferred_t *d = NULL;
    rc = mo_connect(w.loop, w.target, NULL, &d);
    if (rc) {
        note(&w, rc, NULL);
        return world_close(&w, false);
    }
    rc = mo_deferred_add_callbacks(d, connected, connect_failed, &w);
    mo_deferred_unref(d);
    note(&w, rc, NULL);
    if (!rc) SPIN_UNTIL(&w, w.connected && (w.accepts || w.nomem));
    if (w.srv.s) note(&w, mo_stream_read_stop(w.srv.s), NULL);
    mo_stream_t *s = w.cli.s;
    struct owned o[1] = {{0}}, frames[FRAMES];
    memset(frames, 0, sizeof frames);
    bool tried0 = false;
    int tried = 0; /* frames handed over */
    size_t expected = 0;
    mo_deferred_t *wd = NULL;
    if (s && w.srv.s && !w.nomem) {
        int v = 8192;
        setsockopt(mo_stream_fd(s), SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
        /* Only the sender's buffer is small: a small receive window makes
         * the kernel send in 200 ms steps (window probes). */
        for (int op = 0; op < 5 && !w.nomem && !w.bad; op++) {
            size_t before = mo_stream_queued(s), len = 0;
            switch (op) {
            case 0:
                len = 256 * 1024;
                tried0 = true;
                rc = mo_stream_write(s, pattern, len, owned_dtor, &o[0]);
                break;
            case 1:
                len = 100 * 1024;
                rc = mo_stream_write_copy(s, pattern, len);
                break;
            case 2: /* frames enough to need new write records and chunks */
                rc = 0;
                for (int f = 0; f < FRAMES && rc == 0; f++) {
                    before = mo_stream_queued(s);
                    rc = mo_stream_write_frame(s, pattern, 700, owned_dtor, &frames[f]);
                    tried = f + 1;
                    if (rc == 0) len += 704;
                    if (rc == MO_ENOMEM && frames[f].runs != 1) set_bad(&w, __LINE__);
                }
                expected += rc ? len : 0;
                break;
            case 3:
                rc = mo_stream_when_writable(s, &wd);
                if (rc && wd) set_bad(&w, __LINE__);
                if (!rc) note(&w, mo_deferred_add_both(wd, writable_fired, &w), NULL);
                break;
            default:
                len = 10;
                rc = mo_stream_write_copy(s, pattern, len);
            }
            if (rc == 0) {
                expected += len;
                continue;
            }
            if (rc != MO_ENOMEM) {
                note(&w, rc, NULL);
                break;
            }
            w.nomem = true;
            if (op == 0 && o[0].runs != 1) set_bad(&w, __LINE__); /* destroyed once, at once */
            bool ended = mo_stream_writable(s) == MO_EPIPE;
            if (mo_stream_queued(s) != before && !ended)
                set_bad(&w, __LINE__); /* queued in part, and the stream goes on: garbled */
            /* A refused write or frame has changed nothing: the stream goes
             * on (write_copy may have sent part: then it has ended). */
            if ((op == 0 || op == 2) && ended) set_bad(&w, __LINE__);
        }
        if (!w.bad && mo_stream_writable(s) >= 0 && w.srv.s) {
            note(&w, mo_stream_read_start(w.srv.s), w.srv.s);
            SPIN_UNTIL(&w, w.srv.inlen >= expected || w.srv.lost || w.cli.lost);
            /* What was accepted arrives whole, a refused write or not. */
            if (!w.srv.lost && !w.cli.lost && w.srv.inlen != expected) set_bad(&w, __LINE__);
            if (w.cli.s) note(&w, mo_stream_close(w.cli.s), w.cli.s);
            SPIN_UNTIL(&w, (w.srv.lost && w.cli.lost) || w.nomem);
        }
    }
    if (wd) {
        /* Fired by now (the queue drained, or the stream ended), or fails
         * when the loop is freed; not before. */
        mo_deferred_unref(wd);
    }
    bool complete = w.srv.inlen == expected && expected > 0;
    int out = world_close(&w, complete);
    /* Every buffer handed over was destroyed exactly once (the loop is freed). */
    if (o[0].runs != tried0) out = MO_ENOTRECOVERABLE;
    for (int f = 0; f < FRAMES; f++)
        if (frames[f].runs != (f < tried)) out = MO_ENOTRECOVERABLE;
    return out;
}

static void test_writes_each_allocation_in_turn(void **state)
{
    (void)state;
    mo_test_alloc_install();
    memset(pattern, 'w', sizeof pattern);
    long n = mo_test_oom_sweep(writes_scenario, NULL, 5);
    printf("writes: %ld allocations, each failed in turn\n", n);
}

/* ---- framing: partial lines kept, stopped frames kept ---- */

static void restart_reading(mo_loop_t *loop, void *arg)
{
    (void)loop;
    struct world *w = arg;
    if (w->srv.s) note(w, mo_stream_read_start(w->srv.s), w->srv.s);
}

/* A raw client sends LINES lines in 97-byte pieces (partial frames are
 * kept); the server stops reading every 40 lines and starts again from a
 * delayed call (frames read meanwhile are kept and delivered first). */
static int framing_scenario(void *arg)
{
    (void)arg;
    struct world w = {.frame_stop = true};
    int rc = world_open(&w, "127.0.0.1:0");
    if (rc) return w.bad ? MO_ENOTRECOVERABLE : rc;
    int fd = raw_client(w.l);
    static char text[LINES * LINE_LEN];
    for (int i = 0; i < LINES; i++) {
        memset(text + i * LINE_LEN, 'a' + i % 26, LINE_LEN - 1);
        text[i * LINE_LEN + LINE_LEN - 1] = '\n';
    }
    size_t off = 0;
    int last_frames = 0;
    int64_t end = mo_hrtime() + MO_SEC(10);
    while (w.srv.frames < LINES && !w.bad && !w.nomem && !w.srv.lost && mo_hrtime() < end) {
        if (off < sizeof text) {
            size_t k = sizeof text - off < 97 ? sizeof text - off : 97;
            ssize_t n = send(fd, text + off, k, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) off += (size_t)n;
        }
        spin(&w);
        if (w.srv.frames != last_frames && w.srv.frames % 40 == 0 && w.srv.frames < LINES &&
            w.srv.s) {
            last_frames = w.srv.frames;
            note(&w, mo_call_later(w.loop, MO_MSEC(1), restart_reading, &w, NULL), w.srv.s);
        }
    }
    if (mo_hrtime() >= end) {
        fprintf(stderr, "framing: %d frames after 10 s\n", w.srv.frames);
        set_bad(&w, __LINE__);
    }
    close(fd);
    bool complete = w.srv.frames == LINES && w.srv.inlen == (size_t)LINES * (LINE_LEN - 1);
    if (complete) SPIN_UNTIL(&w, w.srv.lost);
    return world_close(&w, complete);
}

static void test_framing_each_allocation_in_turn(void **state)
{
    (void)state;
    mo_test_alloc_install();
    long n = mo_test_oom_sweep(framing_scenario, NULL, 5);
    printf("framing: %ld allocations, each failed in turn\n", n);
}

/* ---- frames kept while stopped, and no memory to deliver them ---- */

struct kept {
    int frames;
    char last[8];
};

static void stop_after_one(mo_stream_t *s, char *data, size_t len, void *arg)
{
    struct kept *k = arg;
    k->frames++;
    snprintf(k->last, sizeof k->last, "%.*s", (int)len, data);
    assert_ok(mo_stream_read_stop(s));
}

static void nothing(mo_loop_t *loop, void *arg)
{
    (void)loop;
    (void)arg;
}

static void on_accept_keep(mo_listener_t *l, mo_stream_t *s, void *arg)
{
    (void)l;
    *(mo_stream_t **)arg = s;
}

/* Frames read and kept while the stream was stopped are delivered from a
 * later pass after mo_stream_read_start(). When that pass cannot be
 * scheduled (no memory for a call), read_start says MO_ENOMEM and the
 * stream stays stopped; it used to say 0 and leave the frames kept until
 * the peer sent more, which a peer waiting for an answer never does. */
static void test_read_start_without_memory_keeps_frames(void **state)
{
    (void)state;
    mo_test_alloc_install();
    mo_loop_t *loop;
    assert_ok(mo_loop_new(&loop, 0));
    mo_addr_t a;
    assert_ok(mo_addr_parse(&a, "127.0.0.1:0"));
    mo_stream_t *srv = NULL;
    mo_listener_t *l;
    assert_ok(mo_listen(loop, &a, NULL, on_accept_keep, &srv, &l));
    int fd = raw_client(l);
    while (!srv) assert_ok(mo_loop_run(loop, MO_RUN_ONCE));
    struct kept k = {0};
    struct mo_stream_callbacks cbs = {.on_read = stop_after_one};
    assert_ok(mo_stream_set_callbacks(srv, &cbs, &k));
    assert_ok(mo_stream_set_framing(srv, MO_FRAME_LINE, 100));
    assert_ok(mo_stream_read_start(srv));
    assert_int_equal(send(fd, "a\nb\nc\n", 6, 0), 6);
    while (k.frames == 0) assert_ok(mo_loop_run(loop, MO_RUN_ONCE));
    assert_string_equal(k.last, "a"); /* "b" and "c" are kept */
    /* No memory for one more call, soon or later. */
    mo_test_alloc_fail_at(1, 1);
    while (mo_call_soon(loop, nothing, NULL) == 0) {
    }
    while (mo_call_later(loop, MO_SEC(60), nothing, NULL, NULL) == 0) {
    }
    int err = mo_stream_read_start(srv);
    mo_test_alloc_fail_at(0, 0);
    assert_mo(MO_ENOMEM, err);
    for (int i = 0; i < 5; i++) assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT));
    assert_int_equal(k.frames, 1); /* still stopped */
    assert_ok(mo_stream_read_start(srv));
    for (int i = 0; i < 5 && k.frames < 2; i++) assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT));
    assert_int_equal(k.frames, 2);
    assert_string_equal(k.last, "b");
    close(fd);
    mo_listener_close(l);
    mo_loop_free(loop);
    assert_int_equal(mo_test_alloc_live(), 0);
}

MO_TEST_MAIN(cmocka_unit_test(test_listen_and_accept_each_allocation_in_turn),
             cmocka_unit_test(test_connect_each_allocation_in_turn),
             cmocka_unit_test(test_connect_resolving_each_allocation_in_turn),
             cmocka_unit_test(test_writes_each_allocation_in_turn),
             cmocka_unit_test(test_framing_each_allocation_in_turn),
             cmocka_unit_test(test_read_start_without_memory_keeps_frames))
