/* The stream layer's internals: streams (stream.c), their write queues and
 * producers (write.c), framing (framing.c), listeners (listen.c),
 * connecting (connect.c), addresses (addr.c), and the per-loop state they
 * share (streams.c). Uses core, deferred and work (the resolver runs on
 * the pool; producers may be tasks and coroutines). */
#ifndef MORSEL_STREAM_INT_H
#define MORSEL_STREAM_INT_H

#include "morsel/stream.h"
#include "work/work_int.h"

#define MO__READ_SIZE      ((size_t)64 * 1024) /* the loop's read buffer */
#define MO__READS_MAX      4                   /* reads per readiness while the buffer fills */
#define MO__SBUF_SIZE      ((size_t)16 * 1024) /* a chunk of copied bytes */
#define MO__SBUF_KEEP      64                  /* spare chunks kept per loop: 1 MiB */
#define MO__WREC_SLAB      64                  /* write records allocated at once */
#define MO__IOV_MAX        64                  /* buffers gathered per sendmsg */
#define MO__ACCEPT_BURST   64                  /* accepts per readiness */
#define MO__ACCEPT_BACKOFF MO_MSEC(100)        /* pause after an accept error without a spare */

/* A queued buffer: `len` bytes at `data` are still to be sent; dtor(owner)
 * runs once they are (or dropped). Records come from the loop's free list. */
struct mo__wrec {
    struct mo__wrec *next;
    const char *data;
    size_t len;
    mo_dtor_fn dtor;
    void *owner;
};

/* A chunk of copied bytes: one or more records of one stream point into
 * data[0, used); it goes back to the loop's spare list when the last of
 * them is sent (refs). */
struct mo__sbuf {
    struct mo__sbuf *next; /* the spare list */
    struct mo__streams *ctx;
    size_t used;
    uint32_t refs;
    char data[];
};

/* A slab of write records, kept until the loop is freed. */
struct mo__wslab {
    struct mo__wslab *next;
    struct mo__wrec recs[MO__WREC_SLAB];
};

/* A node of the loop's lists of streams, listeners and connects, so that
 * freeing the loop ends them all. */
struct mo__snode {
    struct mo__snode *next, *prev;
};

/* The stream layer's state on one loop (attached through core's hooks). */
struct mo__streams {
    mo_loop_t *loop;
    char *rbuf;                /* the read buffer every stream of the loop reads into */
    struct mo__wrec *free_rec; /* spare write records */
    struct mo__wslab *slabs;
    struct mo__sbuf *free_sbuf; /* spare chunks, at most MO__SBUF_KEEP */
    unsigned nfree_sbuf;
    int spare_fd; /* kept for accept-and-close when out of descriptors; -1 if none */
    bool closing; /* mo_loop_close() has begun: no new connects */
    struct mo__snode streams, listeners, connects; /* circular lists with a head */
};

/* The loop's state, created on first use. Errors: MO_ENOMEM, MO_ESHUTDOWN
 * (the loop is closed). */
int mo__streams_get(mo_loop_t *loop, struct mo__streams **cp);
/* The loop's read buffer, allocated on first use; NULL if out of memory. */
char *mo__streams_rbuf(struct mo__streams *c);
struct mo__wrec *mo__wrec_get(struct mo__streams *c);
void mo__wrec_put(struct mo__streams *c, struct mo__wrec *r);
struct mo__sbuf *mo__sbuf_get(struct mo__streams *c);
void mo__sbuf_release(void *sbuf); /* a record's dtor: one reference less */
/* Re-opens the spare descriptor if it was used; 0 or a negative errno. */
int mo__streams_spare(struct mo__streams *c);

static inline void mo__snode_insert(struct mo__snode *head, struct mo__snode *n)
{
    n->next = head->next;
    n->prev = head;
    head->next->prev = n;
    head->next = n;
}

static inline void mo__snode_remove(struct mo__snode *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = n;
}

/* ---- streams (stream.c) ----
 *
 * Invariants:
 * - `fd` >= 0 iff the stream has not ended (state < MO__S_DEAD). Once
 *   dead, the queue is empty, no watcher is active, and one call to
 *   stream_lost is queued on the loop (`lost_queued`), which calls on_lost
 *   and frees the stream; until then it stays on the loop's list.
 * - The read watcher is active iff `reading` and not `rd_eof` and no
 *   framing error, and the stream is open.
 * - The write watcher is active iff the queue is not empty and nothing
 *   holds the writes back (`corked`: a read callback runs).
 * - queued == the sum of the records' len; `paused` (the producer is
 *   paused) becomes true when queued > high after a write and false when
 *   queued <= low after a send, or when the stream ends.
 */
enum { MO__S_OPEN = 0, MO__S_DEAD = 1 };

struct mo_stream {
    struct mo__snode node; /* first: the loop's list of streams */
    mo_loop_t *loop;
    struct mo__streams *ctx;
    int fd;
    uint8_t state;
    bool tcp;
    bool reading;      /* the user wants bytes */
    bool rd_eof;       /* the peer's end of file was read */
    bool corked;       /* writes wait until the read callback returns */
    bool want_shut;    /* mo_stream_shutdown(): shut down once drained */
    bool wr_shut;      /* the writing side is shut down */
    bool want_close;   /* mo_stream_close(): close once drained */
    bool paused;       /* the producer is paused */
    bool lost_queued;  /* the call that runs on_lost is queued */
    bool frame_err;    /* framing failed: no more reading */
    bool drain_queued; /* a call to deliver kept frames is queued */
    mo_io_id rid, wid; /* the watchers, 0 when stopped */
    struct mo_stream_callbacks cb;
    void *arg;
    /* The write queue. */
    struct mo__wrec *head, *tail;
    size_t queued, high, low;
    uint32_t borrowed; /* records whose bytes are in the loop's read buffer */
    /* The producer. */
    mo_stream_fn p_pause, p_resume;
    void *p_arg;
    mo_task_t *p_task;       /* a reference */
    mo_deferred_t **waiters; /* mo_stream_when_writable() Deferreds (references) */
    uint32_t nwaiters, waiters_cap;
    /* Framing (framing.c): kept bytes are fbuf[fpos, flen). */
    uint8_t framing;
    uint32_t fmax;
    char *fbuf;
    size_t fpos, flen, fcap;
    mo_failure_t *reason; /* why it ended; NULL: cleanly */
    struct mo_stream_stats stats;
};

/* Makes a stream of a connected, non-blocking socket (taken in every
 * case: closed on error). Errors: MO_ENOMEM. */
int mo__stream_new(struct mo__streams *c, int fd, bool tcp, const struct mo_stream_opts *opts,
                   mo_stream_t **sp);
/* Ends the stream with `code` (0: cleanly) and `what` as the failure's
 * message; nothing if it has ended. */
void mo__stream_end(mo_stream_t *s, int code, const char *what);
/* The loop is being freed: ends the stream with MO_ECANCELED and runs
 * on_lost now, then frees it. */
void mo__stream_free_now(mo_stream_t *s);
/* Starts or stops the watchers as the invariants above say. */
void mo__stream_sync_read(mo_stream_t *s);
/* Checks the options: MO_EINVAL for bad watermarks. Fills in defaults. */
int mo__stream_opts(const struct mo_stream_opts *in, struct mo_stream_opts *out);
/* Applies the flags of the options to the socket (best effort). */
void mo__stream_apply(mo_stream_t *s, const struct mo_stream_opts *o);

/* ---- the write queue (write.c) ---- */

/* Sends what the queue holds until it is empty or the kernel is full;
 * ends the stream on an error; handles the watermarks, the half-close and
 * the close that wait for the queue to drain. */
void mo__stream_flush(mo_stream_t *s);
/* The marker destructor of a record that borrows the loop's read buffer
 * (a copy written from a read callback); never does anything. */
void mo__wrec_borrowed(void *owner);
/* After a read callback's writes were flushed: copies the borrowed bytes
 * still queued, before the read buffer is read into again. */
void mo__stream_unborrow(mo_stream_t *s);
/* Drops the queue, running the destructors. */
void mo__stream_drop_queue(mo_stream_t *s);
/* The stream ended: resumes a paused producer, fails the waiters, lets go
 * of the producer. */
void mo__stream_release_producer(mo_stream_t *s);
/* Starts or stops the write watcher as the invariants say. */
void mo__stream_sync_write(mo_stream_t *s);

/* ---- framing (framing.c) ---- */

/* Hands `len` bytes just read to the user, framed or not. */
void mo__frame_input(mo_stream_t *s, char *data, size_t len);
/* Delivers the frames kept while the stream was stopped, now (with the
 * writes corked), as long as it reads. */
void mo__frame_kept(mo_stream_t *s);
/* The same from a later pass of the loop. Errors: MO_ENOMEM (that pass
 * could not be scheduled). */
int mo__frame_drain(mo_stream_t *s);
/* True if kept bytes hold at least one whole frame. */
bool mo__frame_ready(const mo_stream_t *s);

/* ---- listeners and connects (listen.c, connect.c) ---- */

struct mo__connect;
void mo__listener_free_now(mo_listener_t *l);
void mo__connect_free_now(struct mo__connect *k);

/* ---- addresses (addr.c) ---- */

/* Splits a connect target: a Unix path into addr (returns 1), a numeric
 * address into addr (returns 2), or a host name and port copied into
 * host/port (returns 3). Errors: MO_EINVAL, MO_ENAMETOOLONG. */
int mo__addr_target(const char *text, mo_addr_t *addr, char *host, size_t hostsz, char *port,
                    size_t portsz);

/* A failure for a socket error: the negative errno `code`, origin, and
 * message `what`. */
static inline int mo__errno(void)
{
    return errno ? -errno : MO_EIO;
}

#endif /* MORSEL_STREAM_INT_H */
