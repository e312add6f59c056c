/* Listeners: a listening socket on the loop that accepts connections as
 * streams. Out of descriptors (EMFILE, ENFILE), the connection is accepted
 * with the loop's spare descriptor and closed, so that a level-triggered
 * listener does not spin; without a spare, and on ENOMEM/ENOBUFS, the
 * listener stops watching for 100 ms. */
#include "stream_int.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct mo_listener {
    struct mo__snode node; /* first: the loop's list of listeners */
    mo_loop_t *loop;
    struct mo__streams *ctx;
    int fd;
    bool tcp;
    bool paused;   /* by mo_listener_pause() */
    bool backoff;  /* by an error, until backoff_id runs */
    bool closing;  /* mo_listener_close() from one of its callbacks */
    unsigned busy; /* its callbacks running now */
    mo_io_id rid;
    mo_call_id backoff_id;
    mo_accept_fn on_accept;
    mo_listener_error_fn on_error;
    void *arg;
    struct mo_stream_opts sopts;
    mo_addr_t addr;
    dev_t dev; /* the Unix socket's file, removed on close if still it */
    ino_t ino;
    struct mo_listener_stats stats;
};

static void on_acceptable(mo_loop_t *loop, int fd, unsigned events, void *arg);

/* Watches the socket iff neither the user nor an error paused it. */
static int listener_sync(mo_listener_t *l)
{
    bool want = !l->paused && !l->backoff && !l->closing;
    if (want && !l->rid) {
        int err = mo_io_start(l->loop, l->fd, MO_READABLE, on_acceptable, l, &l->rid);
        if (err) l->rid = 0;
        return err;
    }
    if (!want && l->rid) {
        mo_io_stop(l->loop, l->rid);
        l->rid = 0;
    }
    return 0;
}

static void listener_free(mo_listener_t *l);

static void report(mo_listener_t *l, int err)
{
    l->stats.errors++;
    l->busy++;
    if (l->on_error) l->on_error(l, err, l->arg);
    l->busy--;
}

/* After a callback: true if the listener was closed from it, and is now
 * freed (the caller must not touch it). */
static bool gone(mo_listener_t *l)
{
    if (!l->closing || l->busy) return false;
    listener_free(l);
    return true;
}

static void backoff_end(mo_loop_t *loop, void *arg)
{
    (void)loop;
    mo_listener_t *l = arg;
    l->backoff = false;
    l->backoff_id = 0;
    if (listener_sync(l)) {
        report(l, MO_ENOMEM);
        gone(l);
    }
}

/* Stops watching for a while: the condition (no descriptors, no memory)
 * may pass; watching a listener that cannot accept would spin. */
static void back_off(mo_listener_t *l)
{
    if (l->backoff) return;
    l->backoff = true;
    listener_sync(l);
    if (mo_call_later(l->loop, MO__ACCEPT_BACKOFF, backoff_end, l, &l->backoff_id) != 0) {
        l->backoff = false; /* cannot schedule the end: keep watching */
        listener_sync(l);
    }
}

/* Out of descriptors: accept with the spare one and close the connection.
 * True if it did (the caller goes on accepting). */
static bool accept_and_close(mo_listener_t *l)
{
    struct mo__streams *c = l->ctx;
    if (c->spare_fd < 0 && mo__streams_spare(c) != 0) return false;
    close(c->spare_fd);
    c->spare_fd = -1;
    int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0) close(fd);
    mo__streams_spare(c); /* may fail until a descriptor is free: then we back off next time */
    if (fd < 0) return false;
    l->stats.dropped++;
    return true;
}

/* An accept failed with err: true to go on accepting. */
static bool accept_failed(mo_listener_t *l, int err)
{
    switch (err) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
        return false;
    case EINTR:
    case ECONNABORTED: /* the peer went before we took it */
    case EPROTO:
        return true;
    case EMFILE:
    case ENFILE: {
        bool dropped = accept_and_close(l);
        report(l, -err);
        if (!dropped) back_off(l);
        return dropped;
    }
    default: /* ENOMEM, ENOBUFS, and what we do not expect */
        report(l, -err);
        back_off(l);
        return false;
    }
}

static void on_acceptable(mo_loop_t *loop, int lfd, unsigned events, void *arg)
{
    (void)loop;
    (void)lfd;
    (void)events;
    mo_listener_t *l = arg;
    for (unsigned i = 0; i < MO__ACCEPT_BURST && l->rid; i++) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            bool more = accept_failed(l, errno);
            if (gone(l) || !more) return;
            continue;
        }
        mo_stream_t *s;
        if (mo__stream_new(l->ctx, fd, l->tcp, &l->sopts, &s) != 0) {
            report(l, MO_ENOMEM);
            if (gone(l)) return;
            continue;
        }
        l->stats.accepted++;
        l->busy++;
        l->on_accept(l, s, l->arg);
        l->busy--;
        if (gone(l)) return;
    }
}

/* The socket, bound and listening. */
static int listen_socket(const mo_addr_t *addr, const struct mo_listen_opts *o, int *fdp)
{
    int family = addr->u.sa.sa_family;
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return mo__errno();
    int one = 1, err = 0;
    if (family != AF_UNIX) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if ((o->flags & MO_LISTEN_REUSEPORT) &&
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one))
            err = mo__errno();
        if (!err && family == AF_INET6 && (o->flags & MO_LISTEN_V6ONLY) &&
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one))
            err = mo__errno();
    }
    if (!err && bind(fd, &addr->u.sa, addr->len)) err = mo__errno();
    if (!err && listen(fd, o->backlog ? o->backlog : SOMAXCONN)) err = mo__errno();
    if (err) {
        close(fd);
        return err;
    }
    *fdp = fd;
    return 0;
}

static int listen_check(const mo_addr_t *addr, const struct mo_listen_opts *o)
{
    int family = addr->u.sa.sa_family;
    if (addr->len == 0 || addr->len > sizeof addr->u) return MO_EINVAL;
    if (family != AF_INET && family != AF_INET6 && family != AF_UNIX) return MO_EINVAL;
    if (o->backlog < 0 || (o->flags & ~(unsigned)(MO_LISTEN_V6ONLY | MO_LISTEN_REUSEPORT)))
        return MO_EINVAL;
    return 0;
}

static void listener_free(mo_listener_t *l)
{
    if (l->rid) mo_io_stop(l->loop, l->rid);
    if (l->backoff_id) mo_call_cancel(l->loop, l->backoff_id);
    struct stat st;
    if (!l->tcp && l->addr.u.un.sun_path[0] && stat(l->addr.u.un.sun_path, &st) == 0 &&
        st.st_dev == l->dev && st.st_ino == l->ino)
        unlink(l->addr.u.un.sun_path);
    close(l->fd);
    mo__snode_remove(&l->node);
    mo__free(l);
}

int mo_listen(mo_loop_t *loop, const mo_addr_t *addr, const struct mo_listen_opts *opts,
              mo_accept_fn on_accept, void *arg, mo_listener_t **lp)
{
    static const struct mo_listen_opts none;
    const struct mo_listen_opts *o = opts ? opts : &none;
    if (!loop || !addr || !on_accept || !lp) return MO_EINVAL;
    struct mo_stream_opts sopts;
    int err = listen_check(addr, o);
    if (!err) err = mo__stream_opts(&o->stream, &sopts);
    struct mo__streams *c = NULL;
    if (!err) err = mo__streams_get(loop, &c);
    if (err) return err;
    mo__streams_spare(c); /* best effort: without it, EMFILE backs off instead */
    mo_listener_t *l = mo__calloc(1, sizeof *l);
    if (!l) return MO_ENOMEM;
    *l = (mo_listener_t){.loop = loop,
                         .ctx = c,
                         .tcp = addr->u.sa.sa_family != AF_UNIX,
                         .on_accept = on_accept,
                         .on_error = o->on_error,
                         .arg = arg,
                         .sopts = sopts,
                         .addr = *addr};
    if ((err = listen_socket(addr, o, &l->fd)) != 0) {
        mo__free(l);
        return err;
    }
    struct stat st;
    if (!l->tcp && l->addr.u.un.sun_path[0] && stat(l->addr.u.un.sun_path, &st) == 0) {
        l->dev = st.st_dev;
        l->ino = st.st_ino;
    }
    if (l->tcp) {
        l->addr.len = sizeof l->addr.u;
        getsockname(l->fd, &l->addr.u.sa, &l->addr.len);
    }
    mo__snode_insert(&c->listeners, &l->node);
    if ((err = listener_sync(l)) != 0) {
        listener_free(l);
        return err;
    }
    *lp = l;
    return 0;
}

int mo_listener_addr(const mo_listener_t *l, mo_addr_t *addr)
{
    if (!l || !addr) return MO_EINVAL;
    *addr = l->addr;
    return 0;
}

int mo_listener_pause(mo_listener_t *l)
{
    if (!l) return MO_EINVAL;
    l->paused = true;
    return listener_sync(l);
}

int mo_listener_resume(mo_listener_t *l)
{
    if (!l) return MO_EINVAL;
    l->paused = false;
    return listener_sync(l);
}

int mo_listener_stats(const mo_listener_t *l, struct mo_listener_stats *out)
{
    if (!l || !out) return MO_EINVAL;
    *out = l->stats;
    return 0;
}

void mo_listener_close(mo_listener_t *l)
{
    if (!l || l->closing) return;
    if (!l->busy) {
        listener_free(l);
        return;
    }
    /* From its own callback: stop now, free when the callback returns. */
    l->closing = true;
    listener_sync(l);
    if (l->backoff_id) mo_call_cancel(l->loop, l->backoff_id);
    l->backoff_id = 0;
}

void mo__listener_free_now(mo_listener_t *l)
{
    listener_free(l);
}
