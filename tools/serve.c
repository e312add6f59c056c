/* The server of `morsel serve`: listeners, connections, and the line
 * protocol (docs/protocol.md). A connection reads one request line at a
 * time: while an answer is produced, it stops reading (the lines behind
 * wait in its framing buffer and the kernel's), so answers come in request
 * order and a client that pipelines cannot make the server buffer without
 * bound. Answers that take long (factorial, walk) are in serve_fact.c and
 * serve_walk.c. */
#include "serve_int.h"

#include "cli.h"

#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- replies ---- */

void serve_reply(struct conn *c, const char *fmt, ...)
{
    char line[SERVE_LINE_MAX + 256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n > sizeof line - 2) n = (int)sizeof line - 2;
    line[n++] = '\n';
    mo_stream_write_copy(c->s, line, (size_t)n); /* a broken stream is reported by on_lost */
}

/* ---- the end of a connection ---- */

static void server_maybe_done(struct server *srv);

static void conn_log(struct conn *c, const mo_failure_t *reason)
{
    FILE *log = c->srv->o.log;
    if (!log) return;
    struct mo_stream_stats st;
    mo_stream_stats(c->s, &st);
    char why[160] = "closed";
    if (reason) snprintf(why, sizeof why, "%s", mo_err_name(mo_failure_code(reason)));
    fprintf(log,
            "serve: conn=%llu peer=%s requests=%llu bytes_in=%llu bytes_out=%llu max_queued=%zu "
            "duration_ms=%.1f end=%s%s\n",
            (unsigned long long)c->id, c->peer, (unsigned long long)c->requests,
            (unsigned long long)st.bytes_read, (unsigned long long)st.bytes_written, st.max_queued,
            (mo_hrtime() - c->started) / 1e6, why,
            c->refused ? " refused=too-many-connections" : "");
    fflush(log);
}

static void on_lost(mo_stream_t *s, const mo_failure_t *reason, void *arg)
{
    (void)s;
    struct conn *c = arg;
    struct server *srv = c->srv;
    if (c->ans.cancel) c->ans.cancel(c); /* gives back what the answer reserved */
    conn_log(c, reason);
    c->prev->next = c->next;
    c->next->prev = c->prev;
    srv->nconns--;
    free(c);
    server_maybe_done(srv);
}

/* ---- requests ---- */

void serve_answer_done(struct conn *c)
{
    c->ans = (struct answer){NULL, NULL};
    c->busy = false;
    if (c->srv->stopping)
        mo_stream_close(c->s);
    else
        mo_stream_read_start(c->s); /* the next line, if one is kept, in a later pass */
}

static void answer_stats(struct conn *c)
{
    struct mo_loop_stats st;
    mo_loop_stats(c->srv->loop, &st);
    serve_reply(c, "lag p50_us=%lld p99_us=%lld max_us=%lld", (long long)(st.lag.p50 / 1000),
                (long long)(st.lag.p99 / 1000), (long long)(st.lag.max / 1000));
}

/* The first word of the line, and what follows it after one space. */
static const char *split(char *line, const char **rest)
{
    char *sp = strchr(line, ' ');
    *rest = sp ? sp + 1 : NULL;
    if (sp) *sp = '\0';
    return line;
}

/* One or more ASCII digits (leading zeros allowed), at most 100000000. */
static bool parse_n(const char *text, unsigned long *n)
{
    if (!text || *text < '0' || *text > '9') return false;
    while (text[0] == '0' && text[1]) text++;
    if (strlen(text) > 9) return false;
    char *end;
    unsigned long v = strtoul(text, &end, 10);
    if (*end || v > SERVE_FACT_MAX) return false;
    *n = v;
    return true;
}

static void request(struct conn *c, char *line)
{
    const char *rest;
    const char *cmd = split(line, &rest);
    unsigned long n;
    c->requests++;
    if (!*cmd && !rest) {
        serve_reply(c, "error: empty request");
    } else if (!strcmp(cmd, "ping") || !strcmp(cmd, "stats")) {
        if (rest)
            serve_reply(c, "error: %s takes no argument", cmd);
        else if (cmd[0] == 'p')
            mo_stream_write_copy(c->s, "pong\n", 5);
        else
            answer_stats(c);
    } else if (!strcmp(cmd, "factorial")) {
        if (!parse_n(rest, &n))
            serve_reply(c, "error: factorial: N must be a whole number from 0 to %lu",
                        SERVE_FACT_MAX);
        else
            serve_fact(c, n);
    } else if (!strcmp(cmd, "walk")) {
        if (!rest || !*rest)
            serve_reply(c, "error: walk: DIR is missing");
        else
            serve_walk(c, rest);
    } else {
        serve_reply(c, "error: unknown request '%.64s'", cmd);
    }
}

static void on_line(mo_stream_t *s, char *data, size_t len, void *arg)
{
    (void)s;
    struct conn *c = arg;
    char line[SERVE_LINE_MAX + 1];
    memcpy(line, data, len);
    line[len] = '\0';
    if (memchr(data, '\0', len)) {
        c->requests++;
        serve_reply(c, "error: a request is text without NUL bytes");
        return;
    }
    /* An answer that takes time is produced with reading stopped, so
     * requests are answered one at a time, in order; one answered at once
     * lets the next line of the same read go on. */
    c->busy = true;
    request(c, line);
    if (c->ans.cancel)
        mo_stream_read_stop(c->s);
    else
        c->busy = false;
}

static void on_frame_error(mo_stream_t *s, int err, void *arg)
{
    (void)err;
    struct conn *c = arg;
    c->requests++;
    serve_reply(c, "error: line too long");
    mo_stream_close(s);
}

/* NULL on_eof: the peer's end of file closes once the answers are out. */
static const struct mo_stream_callbacks conn_cbs = {on_line, NULL, on_lost, on_frame_error};

/* ---- accepting ---- */

static void on_accept(mo_listener_t *l, mo_stream_t *s, void *arg)
{
    (void)l;
    struct server *srv = arg;
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        mo_stream_abort(s);
        return;
    }
    c->srv = srv;
    c->s = s;
    c->id = ++srv->next_id;
    c->started = mo_hrtime();
    mo_addr_t peer;
    if (mo_stream_peer_addr(s, &peer) != 0 || mo_addr_format(&peer, c->peer, sizeof c->peer) < 0)
        snprintf(c->peer, sizeof c->peer, "?");
    if (!strcmp(c->peer, "unix:")) snprintf(c->peer, sizeof c->peer, "unix");
    c->next = &srv->conns;
    c->prev = srv->conns.prev;
    c->prev->next = c;
    srv->conns.prev = c;
    srv->nconns++;
    mo_stream_set_callbacks(s, &conn_cbs, c);
    if (srv->o.max_connections && srv->nconns > srv->o.max_connections) {
        c->refused = true;
        serve_reply(c, "error: too many connections");
        mo_stream_close(s);
        return;
    }
    mo_stream_set_framing(s, MO_FRAME_LINE, SERVE_LINE_MAX);
    mo_stream_read_start(s);
}

static void on_listen_error(mo_listener_t *l, int err, void *arg)
{
    struct server *srv = arg;
    if (srv->o.log)
        fprintf(srv->o.log, "serve: accept on %s: %s\n",
                l == srv->tcp ? srv->tcp_addr : srv->unix_addr, mo_strerror(err));
}

static int listen_on(struct server *srv, const char *text, mo_listener_t **lp, char *addr,
                     size_t size)
{
    mo_addr_t a;
    int err = mo_addr_parse(&a, text);
    if (err) return err;
    struct mo_listen_opts lo = {.on_error = on_listen_error};
    if ((err = mo_listen(srv->loop, &a, &lo, on_accept, srv, lp)) != 0) return err;
    mo_listener_addr(*lp, &a);
    mo_addr_format(&a, addr, size);
    return 0;
}

/* ---- the heartbeat that `stats` reports on ---- */

static void beat(mo_loop_t *loop, void *arg)
{
    struct server *srv = arg;
    int64_t now = mo_hrtime();
    do srv->beat_due += srv->o.heartbeat;
    while (srv->beat_due <= now);
    if (mo_call_at(loop, srv->beat_due, beat, srv, &srv->beat_id) != 0) srv->beat_id = 0;
}

/* ---- the server ---- */

static int server_setup(struct server *srv, const char **msg)
{
    char real[PATH_MAX];
    struct stat st;
    *msg = "cannot use the --root directory";
    if (!realpath(srv->o.root ? srv->o.root : ".", real)) return -errno;
    if (stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) return MO_ENOTDIR;
    if (!(srv->root = strdup(real))) return MO_ENOMEM;
    *msg = "cannot start the worker threads";
    int err = offload_new(&srv->workers, srv->loop, srv->o.threads);
    if (err) return err;
    *msg = "cannot listen on TCP";
    if (srv->o.listen &&
        (err = listen_on(srv, srv->o.listen, &srv->tcp, srv->tcp_addr, sizeof srv->tcp_addr)))
        return err;
    *msg = "cannot listen on the Unix socket";
    if (srv->o.unix_path &&
        (err = listen_on(srv, srv->o.unix_path, &srv->unx, srv->unix_addr, sizeof srv->unix_addr)))
        return err;
    *msg = "cannot set the cooperator's slice";
    if ((err = mo_cooperator_set_slice(srv->loop, srv->o.slice))) return err;
    *msg = "cannot start the heartbeat";
    if (srv->o.heartbeat > 0) {
        srv->beat_due = mo_loop_now(srv->loop) + srv->o.heartbeat;
        if ((err = mo_call_at(srv->loop, srv->beat_due, beat, srv, &srv->beat_id))) return err;
    }
    *msg = NULL;
    return 0;
}

int serve_start(mo_loop_t *loop, const struct serve_opts *o, struct server **sp, const char **msg)
{
    static const char *ignored;
    if (!msg) msg = &ignored;
    *msg = "bad options";
    if (!loop || !o || !sp || (!o->listen && !o->unix_path) || o->mode < SERVE_SLICED ||
        o->mode > SERVE_STEPS || (o->mode == SERVE_STEPS && !o->steps) || o->slice < 0)
        return MO_EINVAL;
    struct server *srv = calloc(1, sizeof *srv);
    if (!srv) return MO_ENOMEM;
    srv->loop = loop;
    srv->o = *o;
    if (!srv->o.heartbeat) srv->o.heartbeat = MO_MSEC(1);
    /* A quarter of a millisecond: a ping waits for at most about that much
     * of a factorial's or a walk's pieces (the default, 1 ms, lets two
     * answers in progress hold the loop a millisecond between polls). */
    if (!srv->o.slice) srv->o.slice = MO_USEC(250);
    srv->conns.next = srv->conns.prev = &srv->conns;
    srv->mem_limit = cli_memory_limit() * 0.8;
    int err = server_setup(srv, msg);
    if (err) {
        serve_free(srv);
        return err;
    }
    *sp = srv;
    return 0;
}

const char *serve_tcp_address(const struct server *s)
{
    return s && s->tcp ? s->tcp_addr : NULL;
}

const char *serve_unix_address(const struct server *s)
{
    return s && s->unx ? s->unix_addr : NULL;
}

static void done_call(mo_loop_t *loop, void *arg)
{
    (void)loop;
    struct server *srv = arg;
    void (*done)(void *) = srv->done;
    srv->done = NULL;
    if (done) done(srv->done_arg);
}

static void server_maybe_done(struct server *srv)
{
    if (!srv->stopping || srv->nconns || !srv->done) return;
    if (srv->grace_id) mo_call_cancel(srv->loop, srv->grace_id);
    srv->grace_id = 0;
    if (mo_call_soon(srv->loop, done_call, srv) != 0) done_call(srv->loop, srv);
}

/* The grace is over: what still runs is aborted. */
static void grace_over(mo_loop_t *loop, void *arg)
{
    (void)loop;
    struct server *srv = arg;
    srv->grace_id = 0;
    for (struct conn *c = srv->conns.next; c != &srv->conns; c = c->next) mo_stream_abort(c->s);
}

void serve_stop(struct server *s, int64_t grace, void (*done)(void *arg), void *arg)
{
    if (s->grace_id) mo_call_cancel(s->loop, s->grace_id);
    s->grace_id = 0;
    s->stopping = true;
    s->done = done;
    s->done_arg = arg;
    mo_listener_close(s->tcp);
    mo_listener_close(s->unx);
    s->tcp = s->unx = NULL;
    if (s->beat_id) mo_call_cancel(s->loop, s->beat_id);
    s->beat_id = 0;
    for (struct conn *c = s->conns.next; c != &s->conns; c = c->next)
        if (!c->busy) mo_stream_close(c->s);
    if (mo_call_later(s->loop, grace > 0 ? grace : 0, grace_over, s, &s->grace_id) != 0)
        grace_over(s->loop, s);
    server_maybe_done(s);
}

void serve_free(struct server *s)
{
    if (!s) return;
    mo_listener_close(s->tcp);
    mo_listener_close(s->unx);
    if (s->beat_id) mo_call_cancel(s->loop, s->beat_id);
    if (s->grace_id) mo_call_cancel(s->loop, s->grace_id);
    /* Connections still open: their answers are given up now, and the
     * streams aborted; on_lost, which frees each, runs in a later pass. */
    for (struct conn *c = s->conns.next; c != &s->conns; c = c->next) {
        mo_stream_set_callbacks(c->s, &(struct mo_stream_callbacks){0}, NULL);
        mo_stream_set_producer(c->s, NULL, NULL, NULL); /* it is about to go */
        mo_stream_abort(c->s);
        if (c->ans.cancel) c->ans.cancel(c);
        c->ans.cancel = NULL;
    }
    for (struct conn *c = s->conns.next, *next; c != &s->conns; c = next) {
        next = c->next;
        free(c);
    }
    offload_free(s->workers);
    free(s->root);
    free(s);
}
