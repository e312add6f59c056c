/* An echo server on a morsel loop: every line a client sends comes back.
 * It listens on 127.0.0.1 (the port given, or a free one), prints its
 * address, serves any number of clients, and exits once it has served
 * `max` connections (default 1), so that it can be tried and then ends:
 *
 *   $ example_echo_server 0 2 &
 *   listening on 127.0.0.1:40123
 *   $ printf 'hello\n' | nc -N 127.0.0.1 40123
 *   hello
 *
 * Lines of up to 1 KiB: a longer one is an error for that client only.
 * The stream's watermarks keep a client that sends without reading from
 * making the server buffer its answers without bound: reading stops while
 * the answers wait (the kernel then stops the client). */
#include <morsel.h>
#include <stdio.h>
#include <stdlib.h>

struct server {
    mo_listener_t *l;
    int served, open, max;
};

static void on_line(mo_stream_t *s, char *line, size_t len, void *arg)
{
    (void)arg;
    mo_stream_write_copy(s, line, len);
    mo_stream_write_copy(s, "\n", 1);
    if (!mo_stream_writable(s)) mo_stream_read_stop(s); /* until the client reads */
}

static void on_error(mo_stream_t *s, int err, void *arg)
{
    (void)err, (void)arg;
    mo_stream_write_copy(s, "error: line too long\n", 21);
    mo_stream_close(s);
}

static void on_lost(mo_stream_t *s, const mo_failure_t *reason, void *arg)
{
    (void)s;
    struct server *sv = arg;
    char why[160] = "closed";
    if (reason) mo_failure_format(reason, why, sizeof why);
    printf("a connection ended: %s\n", why);
    if (--sv->open == 0 && sv->served == sv->max) { /* nothing left: the loop ends */
        mo_listener_close(sv->l);
        sv->l = NULL;
    }
}

/* Reading resumes when the answers have drained to the low mark. */
static void resume_reading(mo_stream_t *s, void *arg)
{
    (void)arg;
    mo_stream_read_start(s);
}

static void on_accept(mo_listener_t *l, mo_stream_t *s, void *arg)
{
    struct server *sv = arg;
    static const struct mo_stream_callbacks cbs = {on_line, NULL, on_lost, on_error};
    mo_stream_set_callbacks(s, &cbs, sv);
    mo_stream_set_framing(s, MO_FRAME_LINE, 1024);
    mo_stream_set_producer(s, NULL, resume_reading, NULL);
    mo_stream_read_start(s);
    sv->open++;
    if (++sv->served == sv->max) mo_listener_pause(l);
}

int main(int argc, char **argv)
{
    char text[64];
    snprintf(text, sizeof text, "127.0.0.1:%s", argc > 1 ? argv[1] : "0");
    struct server sv = {NULL, 0, 0, argc > 2 ? atoi(argv[2]) : 1};
    mo_loop_t *loop;
    mo_addr_t addr;
    if (sv.max < 1 || mo_loop_new(&loop, 0) != 0) return 1;
    int err = mo_addr_parse(&addr, text);
    if (!err) err = mo_listen(loop, &addr, NULL, on_accept, &sv, &sv.l);
    if (err) {
        fprintf(stderr, "cannot listen on %s: %s\n", text, mo_strerror(err));
        mo_loop_free(loop);
        return 1;
    }
    mo_listener_addr(sv.l, &addr);
    mo_addr_format(&addr, text, sizeof text);
    printf("listening on %s\n", text);
    fflush(stdout);
    err = mo_loop_run(loop, MO_RUN_DEFAULT);
    mo_loop_free(loop);
    return err ? 1 : 0;
}
