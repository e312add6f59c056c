/* Shared by the server's files: serve.c (listeners, connections, the
 * protocol), serve_fact.c (factorial answers), serve_walk.c (walk
 * answers). */
#ifndef MORSEL_TOOLS_SERVE_INT_H
#define MORSEL_TOOLS_SERVE_INT_H

#include <stdbool.h>

#include "offload.h"
#include "serve.h"

#define SERVE_LINE_MAX 4096        /* the longest request line */
#define SERVE_FACT_MAX 100000000UL /* the largest N of factorial N */

struct conn;

/* The answer in progress on a connection: its state and how to give it up
 * when the connection ends first. */
struct answer {
    void (*cancel)(struct conn *c);
    void *state;
};

struct conn {
    struct conn *next, *prev;
    struct server *srv;
    mo_stream_t *s;
    uint64_t id;
    char peer[112];
    int64_t started;
    uint64_t requests;
    bool busy;    /* an answer is being produced; reading is stopped */
    bool refused; /* over --max-connections: answered with an error, closing */
    struct answer ans;
    double fact_bytes; /* memory reserved for a factorial in progress */
};

struct server {
    mo_loop_t *loop;
    struct serve_opts o;
    mo_listener_t *tcp, *unx;
    char tcp_addr[128], unix_addr[128];
    char *root; /* the real path walk requests are confined below */
    struct offload *workers;
    struct conn conns; /* circular list head */
    unsigned nconns;
    uint64_t next_id;
    bool stopping;
    void (*done)(void *arg);
    void *done_arg;
    mo_call_id grace_id, beat_id;
    int64_t beat_due;
    double mem_limit, mem_used; /* bytes factorials may use, and reserve now */
};

/* Writes one line (fmt and a "\n") on the connection. */
void serve_reply(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The answer is complete (or failed with its error line written): the
 * next request is read, or the connection closes if the server stops. */
void serve_answer_done(struct conn *c);

/* Starts answering `factorial n` / `walk dir`; the answer ends with
 * serve_answer_done(), possibly before these return. */
void serve_fact(struct conn *c, unsigned long n);
void serve_walk(struct conn *c, const char *dir);

#endif
