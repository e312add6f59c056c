/* The server of `morsel serve`: the line protocol of docs/protocol.md on a
 * morsel loop (ping, factorial N, walk DIR, stats), reusable in process:
 * `morsel serve` runs one on its main thread, `morsel demo` on a thread of
 * its own. Everything here is for the loop's thread; to stop a server from
 * another thread, post serve_stop() with mo_call_from_thread(). */
#ifndef MORSEL_TOOLS_SERVE_H
#define MORSEL_TOOLS_SERVE_H

#include <stdio.h>

#include "morsel.h"

/* How requests are computed. */
enum serve_mode {
    /* Sliced: factorial as fact_loop.c runs it (small pieces on the loop,
     * big ones on workers), its digits streamed with backpressure; walk
     * as a sliced mo_walk(), paused while the client does not read. */
    SERVE_SLICED = 0,
    /* Each request computed in the callback that read it, which never
     * yields (mpz_fac_ui and mpz_get_str; a recursive readdir): what the
     * loop looks like when nothing is cut into pieces. */
    SERVE_BLOCKING = 1,
    /* factorial as the seed's optFactorial: `steps` multiplications per
     * zero-delay call (fact_naive.c), the digits converted on a worker;
     * walk as in SERVE_SLICED. */
    SERVE_STEPS = 2
};

struct serve_opts {
    const char *listen;       /* TCP address, e.g. "127.0.0.1:0"; NULL: none */
    const char *unix_path;    /* a Unix socket to listen on too; NULL: none */
    unsigned max_connections; /* 0: no limit; beyond it: an error line, then closed */
    const char *root;         /* walk requests are relative to it and confined below it;
                                 NULL: relative to ".", not confined */
    int mode;                 /* enum serve_mode */
    unsigned long steps;      /* SERVE_STEPS: multiplications per call (>= 1) */
    unsigned threads;         /* factorial workers; 0: one per CPU */
    int64_t heartbeat;        /* the period of the call whose lateness `stats` reports;
                                 0: 1 ms; negative: none */
    int64_t slice;            /* the loop's cooperator slice (mo_cooperator_set_slice):
                                 how long answers in pieces run before I/O is looked
                                 at again; 0: 250 us */
    FILE *log;                /* one line per connection when it ends; NULL: none */
};

struct server;

/* Starts listening and serving on `loop`. Errors (nothing runs): MO_EINVAL
 * (no listener asked for, bad options, a --root that is not a directory),
 * the listeners' errors (MO_EADDRINUSE, ...), MO_ENOMEM. *msg (if not NULL)
 * is set to a static description of what failed ("cannot listen on TCP"). */
int serve_start(mo_loop_t *loop, const struct serve_opts *o, struct server **sp, const char **msg);

/* The addresses listened on, as text ("127.0.0.1:40123", "unix:/x.sock"),
 * or NULL when there is no such listener. Owned by the server. */
const char *serve_tcp_address(const struct server *s);
const char *serve_unix_address(const struct server *s);

/* Stops serving: the listeners close, idle connections are closed, and
 * answers in progress go on for up to `grace` ns (then their connections
 * are aborted). done(arg) runs (never from within this call) once every
 * connection has ended. A second call shortens the grace. */
void serve_stop(struct server *s, int64_t grace, void (*done)(void *arg), void *arg);

/* Frees the server (after done ran, or at any time: open connections are
 * aborted). Worker threads are joined; their last completions are posted
 * to the loop: run it once more before freeing it. NULL is ignored. */
void serve_free(struct server *s);

#endif
