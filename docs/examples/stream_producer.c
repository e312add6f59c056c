/* Backpressure: the server sends 1 MiB in 16 KiB pieces as a producer
 * that writes only while the stream is writable; the stream pauses it
 * above the high watermark and resumes it at the low one, so the queue
 * never holds more than the high mark plus one piece. */
#include <morsel.h>
#include <stdio.h>
#include <sys/socket.h>

#define TOTAL (1024 * 1024)
#define PIECE (16 * 1024)
static char piece[PIECE]; /* static: valid as long as any write holds it */
static size_t sent, got;
static struct mo_stream_stats st;
static mo_listener_t *listener;

static void produce(mo_loop_t *loop, void *arg)
{
    (void)loop;
    mo_stream_t *s = arg;
    while (sent < TOTAL && mo_stream_writable(s) == 1) {
        if (mo_stream_write(s, piece, PIECE, NULL, NULL) != 0)
            return; /* no dtor: not ours to free */
        sent += PIECE;
    }
    if (sent == TOTAL) mo_stream_stats(s, &st), mo_stream_close(s);
}

/* The pause callback may be NULL: produce() sees mo_stream_writable() == 0. */
static void on_resume(mo_stream_t *s, void *arg)
{
    (void)arg;
    if (sent < TOTAL) mo_call_soon(mo_stream_loop(s), produce, s);
}

static void on_accept(mo_listener_t *l, mo_stream_t *s, void *arg)
{
    (void)arg;
    int small = 16 * 1024; /* a small kernel buffer, so that the queue fills */
    setsockopt(mo_stream_fd(s), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    mo_stream_set_producer(s, NULL, on_resume, NULL);
    mo_call_soon(mo_stream_loop(s), produce, s);
    mo_listener_pause(l); /* one client only; closing it must wait: not from its own callback */
}

static void client_read(mo_stream_t *s, char *data, size_t len, void *arg)
{
    (void)s, (void)data, (void)arg;
    got += len; /* the server's close ends the stream after this: on_eof NULL */
}

static void connected(mo_result_t *r, void *arg)
{
    (void)arg;
    mo_stream_t *s = mo_result_take(r, NULL);
    struct mo_stream_callbacks cbs = {.on_read = client_read};
    mo_stream_set_callbacks(s, &cbs, NULL);
    mo_stream_read_start(s);
}

int main(void)
{
    mo_loop_t *loop;
    mo_addr_t addr;
    mo_deferred_t *d;
    if (mo_loop_new(&loop, 0) != 0 || mo_addr_parse(&addr, "127.0.0.1:0") != 0) return 1;
    if (mo_listen(loop, &addr, NULL, on_accept, NULL, &listener) != 0) return 1;
    mo_listener_addr(listener, &addr);
    if (mo_connect_addr(loop, &addr, NULL, &d) != 0) return 1;
    mo_deferred_add_callback(d, connected, NULL);
    int err = mo_loop_run(loop, MO_RUN_DEFAULT);
    mo_deferred_unref(d);
    mo_listener_close(listener);
    mo_loop_free(loop);
    printf("client got %zu bytes; producer paused %s; queue stayed under %s\n", got,
           st.pauses > 0 ? "yes" : "no",
           st.max_queued <= MO_STREAM_HIGH_WATER + PIECE ? "high + piece" : "NO");
    return err || got != TOTAL;
}
