/* A line server and its client on 127.0.0.1: the server answers each line
 * in capitals, handing its buffer over to the stream; the client connects,
 * sends two lines, reads two answers and closes; then the server ends. */
#include <ctype.h>
#include <morsel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static mo_listener_t *listener;
static int answers;

static void server_read(mo_stream_t *s, char *line, size_t len, void *arg)
{
    (void)arg;
    char *out = malloc(len + 1); /* `line` is the stream's, valid during this call only */
    if (!out) return (void)mo_stream_abort(s);
    for (size_t i = 0; i < len; i++) out[i] = (char)toupper((unsigned char)line[i]);
    out[len] = '\n';
    mo_stream_write(s, out, len + 1, free, out); /* the stream owns out now, even on error */
}

static void server_lost(mo_stream_t *s, const mo_failure_t *reason, void *arg)
{
    (void)s, (void)arg;
    printf("server: client gone (%s)\n", reason ? mo_failure_message(reason) : "clean end");
    mo_listener_close(listener); /* nothing left to serve: mo_loop_run() returns */
}

static void on_accept(mo_listener_t *l, mo_stream_t *s, void *arg)
{
    (void)l;
    struct mo_stream_callbacks cbs = {.on_read = server_read, .on_lost = server_lost};
    mo_stream_set_callbacks(s, &cbs, arg);
    mo_stream_set_framing(s, MO_FRAME_LINE, 1024);
    mo_stream_read_start(s);
}

static void client_read(mo_stream_t *s, char *line, size_t len, void *arg)
{
    (void)arg;
    printf("client: %.*s\n", (int)len, line);
    if (++answers == 2) mo_stream_close(s); /* after the queue drained */
}

static void connected(mo_result_t *r, void *arg)
{
    (void)arg;
    mo_stream_t *s = mo_result_take(r, NULL); /* ours to close now */
    struct mo_stream_callbacks cbs = {.on_read = client_read};
    mo_stream_set_callbacks(s, &cbs, NULL);
    mo_stream_set_framing(s, MO_FRAME_LINE, 1024);
    mo_stream_read_start(s);
    mo_stream_write_copy(s, "hello\nworld\n", 12); /* copied: the literal stays ours */
}

int main(void)
{
    mo_loop_t *loop;
    mo_addr_t addr;
    mo_deferred_t *d;
    char text[64];
    if (mo_loop_new(&loop, 0) != 0 || mo_addr_parse(&addr, "127.0.0.1:0") != 0) return 1;
    if (mo_listen(loop, &addr, NULL, on_accept, NULL, &listener) != 0) return 1;
    mo_listener_addr(listener, &addr); /* the port the kernel chose */
    mo_addr_format(&addr, text, sizeof text);
    if (mo_connect(loop, text, NULL, &d) != 0) return 1;
    mo_deferred_add_callback(d, connected, NULL);
    int err = mo_loop_run(loop, MO_RUN_DEFAULT);
    mo_deferred_unref(d);
    mo_loop_free(loop);
    printf("answers: %d\n", answers);
    return err || answers != 2;
}
