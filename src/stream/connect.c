/* Connecting: a numeric address is connected at once (non-blocking
 * connect, then "writable" and SO_ERROR); a host name is first resolved
 * with getaddrinfo() on the loop's default pool, since it blocks, and its
 * addresses are tried in order. The Deferred fires with the stream. A
 * connect is a node on the loop's list until it settles, so that freeing
 * the loop gives it up. */
#include "stream_int.h"

#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct mo__connect {
    struct mo__snode node; /* first: the loop's list of connects */
    mo_loop_t *loop;
    struct mo__streams *ctx;
    mo_deferred_t *d; /* our reference, until it settles */
    mo_pool_job_t job;
    bool resolving;      /* the job is out */
    bool given_up;       /* cancelled while the job ran: free when it is back */
    int gai;             /* the job's getaddrinfo() result */
    int sys_err;         /* its errno, for EAI_SYSTEM */
    bool tcp;            /* the socket being connected is not a Unix one */
    struct addrinfo *ai; /* the job's addresses */
    struct addrinfo *next_ai;
    int fd;
    mo_io_id wid;
    int last_err;
    struct mo_stream_opts opts;
    char host[256];
    char port[8];
    char target[]; /* for the failure's message */
};

static void connect_free(struct mo__connect *k)
{
    if (k->wid) mo_io_stop(k->loop, k->wid);
    if (k->fd >= 0) close(k->fd);
    if (k->ai) freeaddrinfo(k->ai);
    mo__snode_remove(&k->node);
    mo__free(k);
}

static void stream_dtor(void *s)
{
    mo_stream_abort(s);
}

/* Settles: fires the Deferred with the stream, or fails it with code. */
static void settle(struct mo__connect *k, mo_stream_t *s, int code)
{
    mo_deferred_t *d = k->d;
    mo_failure_t *f = s ? NULL : mo_failure_new(code, "mo_connect", "%s", k->target);
    k->d = NULL;
    connect_free(k);
    if (s)
        mo_deferred_callback(d, s, stream_dtor);
    else
        mo_deferred_errback(d, f);
    mo_deferred_unref(d);
}

static void connected(struct mo__connect *k)
{
    if (k->wid) mo_io_stop(k->loop, k->wid);
    k->wid = 0;
    int fd = k->fd;
    k->fd = -1;
    mo_stream_t *s;
    int err = mo__stream_new(k->ctx, fd, k->tcp, &k->opts, &s);
    settle(k, err ? NULL : s, err);
}

static void try_next(struct mo__connect *k);

static void on_connect_ready(mo_loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)events;
    struct mo__connect *k = arg;
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0) soerr = errno;
    if (soerr == 0) return connected(k);
    mo_io_stop(k->loop, k->wid);
    k->wid = 0;
    close(k->fd);
    k->fd = -1;
    k->last_err = -soerr;
    try_next(k);
}

/* Starts connecting to one address: 1 if connected at once, 0 if in
 * progress (watching), or a negative error. */
static int connect_one(struct mo__connect *k, const struct sockaddr *sa, socklen_t len)
{
    k->tcp = sa->sa_family != AF_UNIX;
    k->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (k->fd < 0) return mo__errno();
    int r;
    do r = connect(k->fd, sa, len);
    while (r != 0 && errno == EINTR);
    int err = r == 0 ? 0 : errno == EINPROGRESS ? 1 : mo__errno();
    if (err == 1) err = mo_io_start(k->loop, k->fd, MO_WRITABLE, on_connect_ready, k, &k->wid);
    if (err < 0) {
        close(k->fd);
        k->fd = -1;
        return err;
    }
    return r == 0;
}

/* Tries the remaining resolved addresses until one connects or is in
 * progress; with none left, fails with the last error. */
static void try_next(struct mo__connect *k)
{
    while (k->next_ai) {
        struct addrinfo *a = k->next_ai;
        k->next_ai = a->ai_next;
        int r = connect_one(k, a->ai_addr, a->ai_addrlen);
        if (r == 1) return connected(k);
        if (r == 0) return;
        k->last_err = r;
    }
    settle(k, NULL, k->last_err ? k->last_err : MO_EAI_NONAME);
}

static int gai_code(int gai)
{
    switch (gai) {
    case EAI_AGAIN:
        return MO_EAI_AGAIN;
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
        return MO_EAI_NONAME;
    case EAI_MEMORY:
        return MO_ENOMEM;
    case EAI_SERVICE:
    case EAI_FAMILY:
    case EAI_SOCKTYPE:
    case EAI_BADFLAGS:
        return MO_EINVAL;
    default:
        return MO_EAI_FAIL;
    }
}

/* On a worker: the blocking part. */
static void resolve_work(mo_pool_job_t *job, void *arg)
{
    (void)job;
    struct mo__connect *k = arg;
    /* No AI_ADDRCONFIG: it hides "localhost" on a host with only loopback. */
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    k->gai = getaddrinfo(k->host, k->port, &hints, &k->ai);
    if (k->gai == EAI_SYSTEM) k->sys_err = errno ? -errno : MO_EIO;
}

static void resolve_done(mo_loop_t *loop, mo_pool_job_t *job, int status, void *arg)
{
    (void)loop;
    (void)job;
    struct mo__connect *k = arg;
    k->resolving = false;
    if (k->given_up) return connect_free(k);
    int code = status;
    if (!code && k->gai) code = k->gai == EAI_SYSTEM ? k->sys_err : gai_code(k->gai);
    if (!code && k->ctx->closing) code = MO_ECANCELED;
    if (code) return settle(k, NULL, code);
    k->next_ai = k->ai;
    try_next(k);
}

/* The Deferred was cancelled: stop; the Deferred errbacks with
 * MO_ECANCELED once this returns. */
static void connect_cancel(mo_deferred_t *d, void *arg)
{
    struct mo__connect *k = arg;
    k->d = NULL;
    mo_deferred_unref(d); /* ours; the caller's keeps it for the errback */
    if (k->resolving && mo_pool_cancel(&k->job) == MO_EBUSY) {
        k->given_up = true; /* freed when the job is back */
        if (k->wid) mo_io_stop(k->loop, k->wid);
        k->wid = 0;
        return;
    }
    connect_free(k);
}

void mo__connect_free_now(struct mo__connect *k)
{
    if (k->given_up) { /* the loop waited for the job: it is back */
        connect_free(k);
        return;
    }
    settle(k, NULL, MO_ECANCELED);
}

static int connect_new(mo_loop_t *loop, const char *target, const struct mo_stream_opts *opts,
                       struct mo__connect **kp)
{
    struct mo_stream_opts o;
    struct mo__streams *c;
    int err = mo__stream_opts(opts, &o);
    if (!err) err = mo__streams_get(loop, &c);
    if (err) return err;
    size_t tlen = strlen(target);
    struct mo__connect *k = mo__calloc(1, sizeof *k + tlen + 1);
    if (!k) return MO_ENOMEM;
    k->loop = loop;
    k->ctx = c;
    k->fd = -1;
    k->opts = o;
    memcpy(k->target, target, tlen + 1);
    k->node.next = k->node.prev = &k->node;
    if ((err = mo_deferred_new(loop, connect_cancel, k, &k->d)) != 0) {
        mo__free(k);
        return err;
    }
    mo__snode_insert(&c->connects, &k->node);
    *kp = k;
    return 0;
}

/* Starts the attempt on a numeric address or the resolution of a name;
 * the Deferred may have settled when this returns. */
static int connect_start(struct mo__connect *k, int kind, const mo_addr_t *addr)
{
    if (kind == 3) {
        int err = mo_pool_submit(NULL, k->loop, &k->job, resolve_work, resolve_done, k);
        if (err) return err;
        k->resolving = true;
        return 0;
    }
    int r = connect_one(k, &addr->u.sa, addr->len);
    if (r == 1) connected(k);
    if (r < 0) settle(k, NULL, r);
    return 0;
}

static int connect_run(mo_loop_t *loop, const char *target, int kind, const mo_addr_t *addr,
                       const char *host, const char *port, const struct mo_stream_opts *opts,
                       mo_deferred_t **dp)
{
    struct mo__connect *k;
    int err = connect_new(loop, target, opts, &k);
    if (err) return err;
    if (host) {
        snprintf(k->host, sizeof k->host, "%s", host);
        snprintf(k->port, sizeof k->port, "%s", port);
    }
    mo_deferred_t *d = mo_deferred_ref(k->d);
    if ((err = connect_start(k, kind, addr)) != 0) {
        mo_deferred_unref(k->d); /* no canceller will run: nothing was fired */
        k->d = NULL;
        connect_free(k);
        mo_deferred_unref(d);
        return err;
    }
    *dp = d;
    return 0;
}

int mo_connect(mo_loop_t *loop, const char *target, const struct mo_stream_opts *opts,
               mo_deferred_t **dp)
{
    if (!loop || !target || !dp) return MO_EINVAL;
    mo_addr_t addr;
    char host[256], port[8];
    int kind = mo__addr_target(target, &addr, host, sizeof host, port, sizeof port);
    if (kind < 0) return kind;
    return connect_run(loop, target, kind, &addr, kind == 3 ? host : NULL, port, opts, dp);
}

int mo_connect_addr(mo_loop_t *loop, const mo_addr_t *addr, const struct mo_stream_opts *opts,
                    mo_deferred_t **dp)
{
    if (!loop || !addr || !dp || addr->len == 0 || addr->len > sizeof addr->u) return MO_EINVAL;
    char text[sizeof addr->u.un.sun_path + 16];
    if (mo_addr_format(addr, text, sizeof text) < 0) return MO_EINVAL;
    return connect_run(loop, text, 2, addr, NULL, NULL, opts, dp);
}
