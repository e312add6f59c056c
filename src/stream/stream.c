/* A stream: one connected socket on the loop. Its life (open, then ended
 * once, then on_lost and freed in a later pass), its read path, and its
 * options. The write queue is write.c's; framing is framing.c's. */
#include "stream_int.h"

#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

int mo__stream_opts(const struct mo_stream_opts *in, struct mo_stream_opts *out)
{
    static const struct mo_stream_opts none;
    if (!in) in = &none;
    if (in->flags & ~(unsigned)(MO_STREAM_NODELAY | MO_STREAM_KEEPALIVE)) return MO_EINVAL;
    *out = *in;
    if (!out->high_water) out->high_water = MO_STREAM_HIGH_WATER;
    if (!in->low_water) {
        out->low_water = MO_STREAM_LOW_WATER;
        if (out->low_water > out->high_water / 4) out->low_water = out->high_water / 4;
    }
    return out->low_water < out->high_water ? 0 : MO_EINVAL;
}

void mo__stream_apply(mo_stream_t *s, const struct mo_stream_opts *o)
{
    if (!s->tcp) return;
    if (o->flags & MO_STREAM_NODELAY) mo_stream_set_nodelay(s, 1);
    if (o->flags & MO_STREAM_KEEPALIVE) mo_stream_set_keepalive(s, 1, 0);
}

int mo__stream_new(struct mo__streams *c, int fd, bool tcp, const struct mo_stream_opts *opts,
                   mo_stream_t **sp)
{
    mo_stream_t *s = mo__calloc(1, sizeof *s);
    if (!s) {
        close(fd);
        return MO_ENOMEM;
    }
    s->loop = c->loop;
    s->ctx = c;
    s->fd = fd;
    s->tcp = tcp;
    s->high = opts->high_water;
    s->low = opts->low_water;
    mo__snode_insert(&c->streams, &s->node);
    mo__stream_apply(s, opts);
    *sp = s;
    return 0;
}

static void stream_free(mo_stream_t *s)
{
    mo__snode_remove(&s->node);
    mo_failure_unref(s->reason);
    mo__free(s->fbuf);
    mo__free(s->waiters);
    mo__free(s);
}

/* The later pass after the end: on_lost, then the stream goes. */
static void stream_lost(mo_loop_t *loop, void *arg)
{
    mo_stream_t *s = arg;
    if (s->drain_queued && mo_call_soon(loop, stream_lost, s) == 0) return; /* it goes first */
    if (s->cb.on_lost) s->cb.on_lost(s, s->reason, s->arg);
    stream_free(s);
}

static void stop_watchers(mo_stream_t *s)
{
    if (s->rid) mo_io_stop(s->loop, s->rid);
    if (s->wid) mo_io_stop(s->loop, s->wid);
    s->rid = s->wid = 0;
}

/* Closes the socket and lets go of what the open stream held. */
static void stream_shut(mo_stream_t *s, int code, const char *what)
{
    stop_watchers(s);
    close(s->fd);
    s->fd = -1;
    s->state = MO__S_DEAD;
    if (code) s->reason = mo_failure_new(code, "mo_stream", "%s", what ? what : "connection lost");
    mo__stream_drop_queue(s);
    mo__stream_release_producer(s);
}

void mo__stream_end(mo_stream_t *s, int code, const char *what)
{
    if (s->state == MO__S_DEAD) return;
    stream_shut(s, code, what);
    /* on_lost never runs inside a call of the user's. If the ready queue
     * cannot grow, the call is retried from a delayed call, which needs no
     * memory but its slab slot; failing that too, on_lost runs now. */
    s->lost_queued = true;
    if (mo_call_soon(s->loop, stream_lost, s) != 0 &&
        mo_call_later(s->loop, 0, stream_lost, s, NULL) != 0)
        stream_lost(s->loop, s);
}

void mo__stream_free_now(mo_stream_t *s)
{
    if (s->state != MO__S_DEAD) stream_shut(s, MO_ECANCELED, "the loop was freed");
    /* The calls queued for it are dropped with the loop's ready queue. */
    s->drain_queued = false;
    stream_lost(s->loop, s);
}

/* ---- reading ---- */

static void on_readable(mo_loop_t *loop, int fd, unsigned events, void *arg);

void mo__stream_sync_read(mo_stream_t *s)
{
    bool want =
        s->state == MO__S_OPEN && s->reading && !s->rd_eof && !s->frame_err && !s->want_close;
    if (want && !s->rid) {
        int err = mo_io_start(s->loop, s->fd, MO_READABLE, on_readable, s, &s->rid);
        if (err) {
            s->rid = 0;
            mo__stream_end(s, err, "cannot watch the socket");
        }
    } else if (!want && s->rid) {
        mo_io_stop(s->loop, s->rid);
        s->rid = 0;
    }
}

/* The peer's end of file: no more reading; on_eof, or a close. */
static void read_eof(mo_stream_t *s)
{
    s->rd_eof = true;
    mo__stream_sync_read(s);
    if (s->cb.on_eof)
        s->cb.on_eof(s, s->arg);
    else
        mo_stream_close(s);
}

/* One read into the loop's buffer: its length, 0 at the end of file, or a
 * negative error (MO_EAGAIN when nothing is there). */
static ssize_t read_once(mo_stream_t *s, char *buf)
{
    ssize_t n;
    do n = read(s->fd, buf, MO__READ_SIZE);
    while (n < 0 && errno == EINTR);
    return n < 0 ? (errno == EWOULDBLOCK ? MO_EAGAIN : mo__errno()) : n;
}

static void on_readable(mo_loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)fd;
    (void)events;
    mo_stream_t *s = arg;
    char *buf = mo__streams_rbuf(s->ctx);
    if (!buf) return mo__stream_end(s, MO_ENOMEM, "no memory for the read buffer");
    /* Frames kept while the stream was stopped go before anything newer,
     * its end of file included. */
    mo__frame_kept(s);
    for (unsigned i = 0; i < MO__READS_MAX && s->rid; i++) {
        ssize_t n = read_once(s, buf);
        if (n == MO_EAGAIN) return;
        if (n < 0) return mo__stream_end(s, (int)n, "read");
        if (n == 0) return read_eof(s);
        s->stats.bytes_read += (uint64_t)n;
        /* Writes made by the callback go out together when it returns. */
        s->corked = true;
        mo__frame_input(s, buf, (size_t)n);
        s->corked = false;
        mo__stream_flush(s);
        if (s->borrowed && s->state == MO__S_OPEN) mo__stream_unborrow(s);
        if ((size_t)n < MO__READ_SIZE) return;
    }
}

int mo_stream_read_start(mo_stream_t *s)
{
    if (!s) return MO_EINVAL;
    if (s->state != MO__S_OPEN || s->want_close || s->rd_eof) return MO_EPIPE;
    if (s->reading) return 0;
    s->reading = true;
    mo__stream_sync_read(s);
    if (s->state == MO__S_OPEN && mo__frame_ready(s) && mo__frame_drain(s) != 0) {
        s->reading = false; /* as it was: the kept frames wait for a start that works */
        mo__stream_sync_read(s);
        return MO_ENOMEM;
    }
    return 0;
}

int mo_stream_read_stop(mo_stream_t *s)
{
    if (!s) return MO_EINVAL;
    s->reading = false;
    mo__stream_sync_read(s);
    return 0;
}

int mo_stream_set_callbacks(mo_stream_t *s, const struct mo_stream_callbacks *cbs, void *arg)
{
    if (!s || !cbs) return MO_EINVAL;
    s->cb = *cbs;
    s->arg = arg;
    return 0;
}

/* ---- ending ---- */

int mo_stream_close(mo_stream_t *s)
{
    if (!s) return MO_EINVAL;
    if (s->state != MO__S_OPEN || s->want_close) return 0;
    s->want_close = true;
    s->reading = false;
    mo__stream_sync_read(s);
    mo__stream_flush(s); /* closes now if nothing is queued */
    return 0;
}

int mo_stream_abort(mo_stream_t *s)
{
    if (!s) return MO_EINVAL;
    mo__stream_end(s, MO_ECONNABORTED, "aborted");
    return 0;
}

int mo_stream_shutdown(mo_stream_t *s)
{
    if (!s) return MO_EINVAL;
    if (s->state != MO__S_OPEN || s->want_close) return MO_EPIPE;
    if (s->want_shut) return 0;
    s->want_shut = true;
    mo__stream_flush(s);
    return 0;
}

/* ---- options, addresses, statistics ---- */

static int stream_setsockopt(mo_stream_t *s, int level, int name, int value)
{
    if (s->state != MO__S_OPEN) return MO_EPIPE;
    if (!s->tcp) return MO_ENOTSUP;
    return setsockopt(s->fd, level, name, &value, sizeof value) ? mo__errno() : 0;
}

int mo_stream_set_nodelay(mo_stream_t *s, int on)
{
    if (!s) return MO_EINVAL;
    return stream_setsockopt(s, IPPROTO_TCP, TCP_NODELAY, on != 0);
}

int mo_stream_set_keepalive(mo_stream_t *s, int on, int idle_s)
{
    if (!s || idle_s < 0) return MO_EINVAL;
    int err = stream_setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, on != 0);
    if (!err && on && idle_s > 0) err = stream_setsockopt(s, IPPROTO_TCP, TCP_KEEPIDLE, idle_s);
    if (!err && on && idle_s > 0) err = stream_setsockopt(s, IPPROTO_TCP, TCP_KEEPINTVL, idle_s);
    return err;
}

static int stream_name(const mo_stream_t *s, mo_addr_t *addr, bool peer)
{
    if (!s || !addr) return MO_EINVAL;
    if (s->state != MO__S_OPEN) return MO_EPIPE;
    memset(addr, 0, sizeof *addr);
    addr->len = sizeof addr->u;
    int r = peer ? getpeername(s->fd, &addr->u.sa, &addr->len)
                 : getsockname(s->fd, &addr->u.sa, &addr->len);
    return r ? mo__errno() : 0;
}

int mo_stream_peer_addr(const mo_stream_t *s, mo_addr_t *addr)
{
    return stream_name(s, addr, true);
}

int mo_stream_local_addr(const mo_stream_t *s, mo_addr_t *addr)
{
    return stream_name(s, addr, false);
}

int mo_stream_fd(const mo_stream_t *s)
{
    if (!s) return MO_EINVAL;
    return s->state == MO__S_OPEN ? s->fd : MO_EPIPE;
}

mo_loop_t *mo_stream_loop(const mo_stream_t *s)
{
    return s ? s->loop : NULL;
}

int mo_stream_stats(const mo_stream_t *s, struct mo_stream_stats *out)
{
    if (!s || !out) return MO_EINVAL;
    *out = s->stats;
    out->queued = s->queued;
    return 0;
}
