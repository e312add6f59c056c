/* e2e_libuv: the line protocol of docs/protocol.md on libuv, written the
 * way a libuv user would: uv_tcp + uv_read_start/uv_write, the factorial on
 * the thread pool (uv_queue_work: GMP's mpz_fac_ui + mpz_get_str, written
 * back with one uv_write), the walk with uv_fs_scandir (each directory
 * listed on the thread pool, up to 4 at once, its lines written as soon as
 * it is listed; no new listing while more than 4 MiB wait to be written).
 * A 10 ms uv_timer heartbeat measures the loop's lag for `stats`.
 *
 *   e2e_libuv [--listen 127.0.0.1:PORT]     (default 127.0.0.1:0)
 *
 * Prints "listening on 127.0.0.1:PORT" first; exits 0 on SIGTERM/SIGINT. */
#include <errno.h>
#include <gmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#define MAX_LINE    4096
#define IN_CAP      (MAX_LINE + 1 + 16384)
#define BEAT_MS     10
#define LAG_SAMPLES 65536
#define WALK_WIDTH  4
#define WALK_QUEUED (4u << 20)

static uv_loop_t *loop;

/* ---- stats: the heartbeat's lateness, the last LAG_SAMPLES beats ---- */

static struct {
    uv_timer_t timer;
    uint64_t due;
    uint64_t v[LAG_SAMPLES];
    size_t n;
} lag;

static void beat(uv_timer_t *t)
{
    uint64_t now = uv_hrtime();
    lag.v[lag.n++ % LAG_SAMPLES] = now > lag.due ? now - lag.due : 0;
    lag.due = now + BEAT_MS * 1000000ull;
    uv_timer_start(t, beat, BEAT_MS, 0);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int format_stats(char *out, size_t size)
{
    size_t n = lag.n < LAG_SAMPLES ? lag.n : LAG_SAMPLES;
    uint64_t *v = malloc((n ? n : 1) * sizeof *v), p50 = 0, p99 = 0, max = 0;
    if (v && n) {
        memcpy(v, lag.v, n * sizeof *v);
        qsort(v, n, sizeof *v, cmp_u64);
        p50 = v[(n * 50 + 99) / 100 - 1];
        p99 = v[(n * 99 + 99) / 100 - 1];
        max = v[n - 1];
    }
    free(v);
    return snprintf(out, size, "lag p50_us=%llu p99_us=%llu max_us=%llu\n",
                    (unsigned long long)(p50 / 1000), (unsigned long long)(p99 / 1000),
                    (unsigned long long)(max / 1000));
}

/* ---- connections ---- */

typedef struct client {
    uv_tcp_t tcp;
    char in[IN_CAP];
    size_t inlen;
    int refs;  /* the handle, and each piece of work in flight */
    bool busy; /* an answer is being made: later requests wait */
    bool reading, eof, closing, closed;
    struct walk *walk;
} client_t;

typedef struct {
    uv_write_t req;
    char *data;
} write_req_t;

static void process(client_t *c);
static void walk_step(struct walk *w);

static void client_unref(client_t *c)
{
    if (--c->refs == 0) free(c);
}

static void on_close(uv_handle_t *h)
{
    client_t *c = h->data;
    c->closed = true;
    client_unref(c);
}

static void client_close(client_t *c)
{
    if (c->closing) return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_written(uv_write_t *req, int status)
{
    write_req_t *wr = (write_req_t *)req;
    client_t *c = req->data;
    free(wr->data);
    free(wr);
    if (status < 0) client_close(c);
    if (c->walk && !c->closing) walk_step(c->walk);
    client_unref(c);
}

/* Queues `data` (malloc'd, owned from here on) for the client. */
static void send_owned(client_t *c, char *data, size_t len)
{
    write_req_t *wr = malloc(sizeof *wr);
    if (c->closing || !wr) {
        free(data);
        free(wr);
        return;
    }
    wr->data = data;
    wr->req.data = c;
    uv_buf_t buf = uv_buf_init(data, (unsigned)len);
    c->refs++;
    if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written) != 0) {
        free(data);
        free(wr);
        c->refs--;
        client_close(c);
    }
}

static void send_copy(client_t *c, const char *s, size_t len)
{
    char *data = malloc(len);
    if (data) memcpy(data, s, len);
    if (data) send_owned(c, data, len);
}

static void send_str(client_t *c, const char *s)
{
    send_copy(c, s, strlen(s));
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    client_close(req->data);
    free(req);
}

/* Closes once every queued answer has been written. */
static void finish_connection(client_t *c)
{
    uv_shutdown_t *req = malloc(sizeof *req);
    if (c->reading) uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
    c->busy = true; /* nothing more is answered */
    if (!req || uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        free(req);
        client_close(c);
        return;
    }
    req->data = c;
}

/* An answer is complete: the next request may go. */
static void answered(client_t *c)
{
    c->busy = false;
    if (!c->closing) process(c);
}

/* ---- factorial on the thread pool ---- */

typedef struct {
    uv_work_t req;
    client_t *c;
    unsigned long n;
    char *digits;
    size_t len;
} fac_t;

static void fac_work(uv_work_t *req)
{
    fac_t *f = req->data;
    mpz_t r;
    mpz_init(r);
    mpz_fac_ui(r, f->n);
    f->digits = malloc(mpz_sizeinbase(r, 10) + 2);
    if (f->digits) {
        mpz_get_str(f->digits, 10, r);
        f->len = strlen(f->digits);
        f->digits[f->len++] = '\n';
    }
    mpz_clear(r);
}

static void fac_done(uv_work_t *req, int status)
{
    fac_t *f = req->data;
    client_t *c = f->c;
    if (status == 0 && f->digits && !c->closing) {
        send_owned(c, f->digits, f->len);
        f->digits = NULL;
    } else if (!c->closing) {
        send_str(c, "error: factorial: out of memory\n");
    }
    free(f->digits);
    free(f);
    answered(c);
    client_unref(c);
}

static bool parse_n(const char *s, unsigned long *n)
{
    if (!*s) return false;
    unsigned long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return false;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > 100000000ul) return false;
    }
    *n = v;
    return true;
}

static void factorial(client_t *c, const char *arg)
{
    unsigned long n;
    if (!parse_n(arg, &n)) {
        send_str(c, "error: factorial: N must be 0 to 100000000\n");
        return;
    }
    fac_t *f = calloc(1, sizeof *f);
    if (!f) {
        send_str(c, "error: factorial: out of memory\n");
        return;
    }
    f->c = c;
    f->n = n;
    f->req.data = f;
    c->busy = true;
    c->refs++;
    uv_queue_work(loop, &f->req, fac_work, fac_done);
}

/* ---- walk with uv_fs_scandir ---- */

struct walk {
    client_t *c;
    char **todo; /* directories to list, a stack */
    size_t ntodo, cap;
    int inflight; /* listings (and the first lstat) running */
    bool failed;
};

typedef struct {
    uv_fs_t req;
    struct walk *w;
    char *path;
} scan_t;

static size_t escape(const char *s, char *out)
{
    size_t o = 0;
    for (; *s; s++) {
        if (*s == '\n' || *s == '\\') {
            out[o++] = '\\';
            out[o++] = *s == '\n' ? 'n' : '\\';
        } else {
            out[o++] = *s;
        }
    }
    return o;
}

static char *join(const char *dir, const char *name)
{
    size_t dl = strlen(dir), size = dl + strlen(name) + 2;
    char *p = malloc(size);
    if (p) snprintf(p, size, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", name);
    return p;
}

static bool push(struct walk *w, char *path)
{
    if (w->ntodo == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 64;
        char **t = realloc(w->todo, cap * sizeof *t);
        if (!t) return false;
        w->todo = t;
        w->cap = cap;
    }
    w->todo[w->ntodo++] = path;
    return true;
}

static void walk_fail(struct walk *w, const char *path, int err)
{
    if (w->failed) return;
    w->failed = true;
    char *msg = malloc(strlen(path) * 2 + 128);
    if (!msg) return;
    size_t n = (size_t)sprintf(msg, "error: walk: ");
    n += escape(path, msg + n);
    n += (size_t)sprintf(msg + n, ": %s\n", strerror(-err));
    send_owned(w->c, msg, n);
}

static void walk_free(struct walk *w)
{
    for (size_t i = 0; i < w->ntodo; i++) free(w->todo[i]);
    free(w->todo);
    free(w);
}

static void on_scandir(uv_fs_t *req);

/* Starts listings while fewer than WALK_WIDTH run and the client keeps up;
 * ends the walk when nothing is left. */
static void walk_step(struct walk *w)
{
    client_t *c = w->c;
    while (!w->failed && !c->closing && w->ntodo && w->inflight < WALK_WIDTH &&
           c->tcp.write_queue_size < WALK_QUEUED) {
        scan_t *s = malloc(sizeof *s);
        if (!s) {
            walk_fail(w, w->todo[w->ntodo - 1], UV_ENOMEM);
            break;
        }
        s->w = w;
        s->path = w->todo[--w->ntodo];
        s->req.data = s;
        w->inflight++;
        int err = uv_fs_scandir(loop, &s->req, s->path, 0, on_scandir);
        if (err) {
            w->inflight--;
            walk_fail(w, s->path, err);
            free(s->path);
            free(s);
        }
    }
    if (w->inflight || (w->ntodo && !w->failed && !c->closing)) return;
    if (!w->failed && !c->closing) send_str(c, "\n");
    c->walk = NULL;
    walk_free(w);
    answered(c);
    client_unref(c);
}

/* Appends a path's line to *out (grown as needed); false when out of
 * memory. */
static bool add_line(char **out, size_t *len, size_t *cap, const char *path)
{
    size_t need = 2 * strlen(path) + 2;
    if (*len + need > *cap) {
        size_t bigger = 2 * (*len + need);
        char *p = realloc(*out, bigger);
        if (!p) return false;
        *out = p;
        *cap = bigger;
    }
    *len += escape(path, *out + *len);
    (*out)[(*len)++] = '\n';
    return true;
}

static bool is_dir(const char *path, uv_dirent_type_t type)
{
    if (type != UV_DIRENT_UNKNOWN) return type == UV_DIRENT_DIR;
    uv_fs_t st; /* a file system without d_type */
    bool dir = uv_fs_lstat(NULL, &st, path, NULL) == 0 && S_ISDIR(st.statbuf.st_mode);
    uv_fs_req_cleanup(&st);
    return dir;
}

/* One listed directory: its lines, in one write; its subdirectories onto
 * the stack. */
static void listing(struct walk *w, scan_t *s)
{
    uv_dirent_t ent;
    size_t cap = 65536, len = 0;
    char *out = malloc(cap);
    if (!out) {
        walk_fail(w, s->path, UV_ENOMEM);
        return;
    }
    while (uv_fs_scandir_next(&s->req, &ent) != UV_EOF) {
        char *path = join(s->path, ent.name);
        bool ok = path && add_line(&out, &len, &cap, path);
        if (ok && is_dir(path, ent.type)) {
            ok = push(w, path);
            if (ok) path = NULL;
        }
        free(path);
        if (!ok) {
            free(out);
            walk_fail(w, s->path, UV_ENOMEM);
            return;
        }
    }
    if (len)
        send_owned(w->c, out, len);
    else
        free(out);
}

static void on_scandir(uv_fs_t *req)
{
    scan_t *s = req->data;
    struct walk *w = s->w;
    w->inflight--;
    if (req->result < 0)
        walk_fail(w, s->path, (int)req->result);
    else if (!w->failed && !w->c->closing)
        listing(w, s);
    uv_fs_req_cleanup(req);
    free(s->path);
    free(s);
    walk_step(w);
}

typedef struct {
    uv_fs_t req;
    struct walk *w;
    char *top;
} top_t;

static void on_top(uv_fs_t *req)
{
    top_t *t = req->data;
    struct walk *w = t->w;
    int err = (int)req->result;
    w->inflight--;
    if (err == 0 && !S_ISDIR(req->statbuf.st_mode)) err = UV_ENOTDIR;
    uv_fs_req_cleanup(req);
    if (err) {
        walk_fail(w, t->top, err);
        free(t->top);
    } else {
        char *line = malloc(2 * strlen(t->top) + 2);
        size_t n = line ? escape(t->top, line) : 0;
        if (line) line[n++] = '\n';
        if (line) send_owned(w->c, line, n);
        if (!push(w, t->top)) {
            walk_fail(w, t->top, UV_ENOMEM);
            free(t->top);
        }
    }
    free(t);
    walk_step(w);
}

static void walk(client_t *c, const char *dir)
{
    struct walk *w = calloc(1, sizeof *w);
    top_t *t = malloc(sizeof *t);
    char *top = strdup(dir);
    if (!*dir || !w || !t || !top) {
        send_str(c, *dir ? "error: walk: out of memory\n" : "error: walk: no directory\n");
        free(w), free(t), free(top);
        return;
    }
    w->c = c;
    w->inflight = 1; /* the lstat of the top */
    t->w = w;
    t->top = top;
    t->req.data = t;
    c->walk = w;
    c->busy = true;
    c->refs++;
    int err = uv_fs_lstat(loop, &t->req, top, on_top);
    if (err) {
        w->inflight = 0;
        walk_fail(w, top, err);
        free(top);
        free(t);
        walk_step(w);
    }
}

/* ---- requests ---- */

static void handle(client_t *c, char *line)
{
    char buf[128];
    if (!strcmp(line, "ping"))
        send_str(c, "pong\n");
    else if (!strcmp(line, "stats"))
        send_copy(c, buf, (size_t)format_stats(buf, sizeof buf));
    else if (!strncmp(line, "factorial ", 10))
        factorial(c, line + 10);
    else if (!strncmp(line, "walk ", 5))
        walk(c, line + 5);
    else
        send_str(c, "error: unknown request\n");
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

static void process(client_t *c)
{
    while (!c->busy && !c->closing) {
        char *nl = memchr(c->in, '\n', c->inlen < MAX_LINE + 1 ? c->inlen : MAX_LINE + 1);
        if (!nl) {
            if (c->inlen > MAX_LINE) {
                send_str(c, "error: line too long\n");
                finish_connection(c);
            } else if (c->eof) {
                finish_connection(c);
            } else if (!c->reading) {
                c->reading = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0;
            }
            return;
        }
        char line[MAX_LINE + 1];
        size_t len = (size_t)(nl - c->in);
        memcpy(line, c->in, len);
        line[len > 0 && line[len - 1] == '\r' ? len - 1 : len] = '\0';
        memmove(c->in, nl + 1, c->inlen - len - 1);
        c->inlen -= len + 1;
        handle(c, line);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    client_t *c = h->data;
    *buf = uv_buf_init(c->in + c->inlen, (unsigned)(IN_CAP - c->inlen));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    client_t *c = stream->data;
    if (nread == UV_EOF) {
        c->eof = true;
        uv_read_stop(stream);
        c->reading = false;
    } else if (nread < 0) {
        client_close(c);
        return;
    } else {
        c->inlen += (size_t)nread;
    }
    /* While an answer is being made, requests wait in the buffer; stop
     * reading before it fills. */
    if (c->busy && c->reading && IN_CAP - c->inlen < MAX_LINE + 1) {
        uv_read_stop(stream);
        c->reading = false;
    }
    process(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0) return;
    client_t *c = calloc(1, sizeof *c);
    if (!c) return;
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    c->refs = 1;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        client_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    process(c); /* starts reading */
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    uv_stop(s->loop);
}

int main(int argc, char **argv)
{
    const char *listen = "127.0.0.1:0";
    if (argc == 3 && !strcmp(argv[1], "--listen"))
        listen = argv[2];
    else if (argc != 1) {
        fprintf(stderr, "usage: e2e_libuv [--listen HOST:PORT]\n");
        return 2;
    }
    char host[64];
    int port;
    const char *colon = strrchr(listen, ':');
    if (!colon || colon - listen >= (int)sizeof host || sscanf(colon + 1, "%d", &port) != 1) {
        fprintf(stderr, "e2e_libuv: bad --listen %s\n", listen);
        return 2;
    }
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
    signal(SIGPIPE, SIG_IGN);
    loop = uv_default_loop();
    uv_tcp_t server;
    struct sockaddr_in addr;
    uv_tcp_init(loop, &server);
    int err = uv_ip4_addr(host, port, &addr);
    if (!err) err = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (!err) err = uv_listen((uv_stream_t *)&server, 511, on_connection);
    if (err) {
        fprintf(stderr, "e2e_libuv: cannot listen on %s: %s\n", listen, uv_strerror(err));
        return 1;
    }
    struct sockaddr_in bound;
    int blen = sizeof bound;
    uv_tcp_getsockname(&server, (struct sockaddr *)&bound, &blen);
    printf("listening on %s:%d\n", host, ntohs(bound.sin_port));
    fflush(stdout);
    uv_signal_t sigterm, sigint;
    uv_signal_init(loop, &sigterm);
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_timer_init(loop, &lag.timer);
    lag.due = uv_hrtime() + BEAT_MS * 1000000ull;
    uv_timer_start(&lag.timer, beat, BEAT_MS, 0);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
