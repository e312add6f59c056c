/* A libuv TCP echo server that computes factorials cooperatively through
 * morsel while it serves (morsel/uv.h).
 *
 * The server is plain libuv: uv_tcp_t, uv_read_start, uv_write. Every line
 * a client sends comes back to it. A line "fact N" also starts a morsel
 * cooperative task that multiplies N! together, one factor a step; the
 * cooperator runs it in 1 ms slices between libuv's iterations, so other
 * lines (and other clients) are echoed while it works, and when it is done
 * the client gets "N! has D digits".
 *
 *   usage: example_uv_echo_factorial [PORT]   (127.0.0.1; default 7007)
 *          example_uv_echo_factorial --check  (serves itself as a client on
 *            an ephemeral port: "fact 20000", then a ping every 2 ms; exits
 *            0 if pings were echoed while the factorial ran and its answer
 *            is right) */
#include <stdio.h> /* before gmp.h, which then declares mpz_out_str */
#include <stdlib.h>
#include <string.h>

#include <gmp.h>

#include "morsel/uv.h"

static mo_loop_t *loop;
static uv_loop_t *uv;

/* ---- a connection: lines in, lines out ---- */

struct conn {
    uv_tcp_t tcp;
    char line[256];
    size_t len;
    unsigned refs; /* the open socket, and each factorial computing for it */
    int closed;
};

static void conn_unref(struct conn *c)
{
    if (--c->refs == 0) free(c);
}

static void conn_closed(uv_handle_t *handle)
{
    conn_unref(handle->data);
}

static void conn_close(struct conn *c)
{
    c->closed = 1;
    uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

struct out {
    uv_write_t req;
    char data[];
};

static void written(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static void conn_send(struct conn *c, const char *data, size_t len)
{
    struct out *o = malloc(sizeof *o + len);
    if (c->closed || !o) {
        free(o);
        return;
    }
    memcpy(o->data, data, len);
    uv_buf_t buf = uv_buf_init(o->data, (unsigned)len);
    if (uv_write(&o->req, (uv_stream_t *)&c->tcp, &buf, 1, written) != 0) free(o);
}

/* ---- the factorial, a cooperative task ---- */

struct fact {
    mpz_t acc;
    unsigned long k, n;
    struct conn *c;
};

static int fact_step(mo_task_t *task, void *arg)
{
    (void)task;
    struct fact *f = arg;
    if (f->k < f->n) {
        mpz_mul_ui(f->acc, f->acc, ++f->k);
        return MO_CONTINUE;
    }
    /* sizeinbase is exact or one too many; compare with 10^(d-1). */
    size_t digits = mpz_sizeinbase(f->acc, 10);
    mpz_t low;
    mpz_init(low);
    mpz_ui_pow_ui(low, 10, digits - 1);
    if (mpz_cmp(f->acc, low) < 0) digits--;
    mpz_clear(low);
    char msg[80];
    int len = snprintf(msg, sizeof msg, "%lu! has %zu digits\n", f->n, digits);
    conn_send(f->c, msg, (size_t)len);
    return MO_DONE;
}

/* When the task ends, done or stopped (the server shutting down). */
static void fact_free(mo_result_t *result, void *arg)
{
    (void)result;
    struct fact *f = arg;
    conn_unref(f->c);
    mpz_clear(f->acc);
    free(f);
}

static void fact_start(struct conn *c, unsigned long n)
{
    struct fact *f = malloc(sizeof *f);
    mo_task_t *task;
    if (!f) return;
    mpz_init_set_ui(f->acc, 1);
    f->k = 1;
    f->n = n;
    f->c = c;
    c->refs++;
    if (mo_cooperate(loop, fact_step, f, NULL, &task) != 0) {
        fact_free(NULL, f);
        return;
    }
    mo_deferred_t *d = mo_task_deferred(task);
    mo_deferred_add_both(d, fact_free, f);
    mo_deferred_unref(d);
    mo_task_release(task);
}

/* ---- the server ---- */

static void on_line(struct conn *c, const char *line, size_t len)
{
    conn_send(c, line, len); /* the echo, with its newline */
    unsigned long n;
    if (sscanf(line, "fact %lu", &n) == 1) fact_start(c, n);
}

static void alloc_buf(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)handle;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void on_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = stream->data;
    for (ssize_t i = 0; i < n; i++) {
        if (c->len < sizeof c->line) c->line[c->len++] = buf->base[i];
        if (buf->base[i] == '\n' || c->len == sizeof c->line) {
            on_line(c, c->line, c->len);
            c->len = 0;
        }
    }
    free(buf->base);
    if (n < 0) conn_close(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct conn *c = calloc(1, sizeof *c);
    if (status < 0 || !c) {
        free(c);
        return;
    }
    c->refs = 1;
    c->tcp.data = c;
    uv_tcp_init(uv, &c->tcp);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, alloc_buf, on_read) != 0)
        conn_close(c);
}

/* ---- --check: a client of this same server ---- */

struct client {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_timer_t ping;
    int pongs_before_answer, answered, ok;
    char line[256];
    size_t len;
};

static void client_write(struct client *k, const char *text)
{
    struct out *o = malloc(sizeof *o + strlen(text));
    if (!o) return;
    memcpy(o->data, text, strlen(text));
    uv_buf_t buf = uv_buf_init(o->data, (unsigned)strlen(text));
    if (uv_write(&o->req, (uv_stream_t *)&k->tcp, &buf, 1, written) != 0) free(o);
}

static void client_ping(uv_timer_t *timer)
{
    client_write(timer->data, "ping\n");
}

static void client_line(struct client *k, const char *line)
{
    if (strcmp(line, "ping\n") == 0 && !k->answered) k->pongs_before_answer++;
    if (strncmp(line, "20000! has ", 11) == 0) {
        k->answered = 1;
        k->ok = strcmp(line, "20000! has 77338 digits\n") == 0;
        printf("answer: %s%d pings echoed while it was computed\n", line, k->pongs_before_answer);
        uv_stop(uv);
    }
}

static void client_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf)
{
    struct client *k = stream->data;
    for (ssize_t i = 0; i < n; i++) {
        if (k->len < sizeof k->line - 1) k->line[k->len++] = buf->base[i];
        if (buf->base[i] != '\n') continue;
        k->line[k->len] = '\0';
        k->len = 0;
        client_line(k, k->line);
    }
    free(buf->base);
}

static void client_connected(uv_connect_t *req, int status)
{
    struct client *k = req->data;
    if (status != 0) {
        uv_stop(uv);
        return;
    }
    uv_read_start((uv_stream_t *)&k->tcp, alloc_buf, client_read);
    client_write(k, "fact 20000\n");
    uv_timer_start(&k->ping, client_ping, 2, 2);
}

static void client_start(struct client *k, int port)
{
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", port, &addr);
    k->tcp.data = k->connect.data = k->ping.data = k;
    uv_tcp_init(uv, &k->tcp);
    uv_timer_init(uv, &k->ping);
    uv_tcp_connect(&k->connect, &k->tcp, (const struct sockaddr *)&addr, client_connected);
}

static uv_tcp_t server;
static struct client client;

/* At shutdown: every handle left is a connection, but for these three. */
static void close_any(uv_handle_t *handle, void *arg)
{
    (void)arg;
    if (uv_is_closing(handle)) return;
    if (handle == (uv_handle_t *)&server || handle == (uv_handle_t *)&client.tcp ||
        handle == (uv_handle_t *)&client.ping)
        uv_close(handle, NULL);
    else
        conn_close(handle->data);
}

int main(int argc, char **argv)
{
    int check = argc > 1 && strcmp(argv[1], "--check") == 0;
    int port = check ? 0 : argc > 1 ? atoi(argv[1]) : 7007;
    uv = uv_default_loop();
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", port, &addr);
    uv_tcp_init(uv, &server);
    int err = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (!err) err = uv_listen((uv_stream_t *)&server, 128, on_connection);
    if (err || mo_loop_new(&loop, 0) != 0 || mo_uv_attach(loop, uv) != 0) {
        fprintf(stderr, "example_uv_echo_factorial: %s\n", err ? uv_strerror(err) : "morsel");
        return 1;
    }
    struct sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&server, (struct sockaddr *)&bound, &len);
    port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    fprintf(stderr, "echo server on 127.0.0.1:%d; send \"fact N\" for N!\n", port);

    if (check) client_start(&client, port);
    uv_run(uv, UV_RUN_DEFAULT); /* a server runs until stopped (--check stops it) */

    /* Shutting down: stop morsel's tasks, let go of libuv, close the rest. */
    mo_cooperator_stop(loop);
    mo_uv_detach(loop);
    uv_walk(uv, close_any, NULL);
    uv_run(uv, UV_RUN_DEFAULT);
    uv_loop_close(uv);
    mo_loop_free(loop);
    if (!check) return 0;
    return client.ok && client.pongs_before_answer >= 3 ? 0 : 1;
}
