/* morsel — streams: TCP and Unix sockets on the loop, with write queues,
 * backpressure (Twisted's producers and consumers) and framing.
 *
 * A stream is one connected socket: accepted by a listener (mo_listen) or
 * made by mo_connect(). Bytes that arrive go to a read callback while the
 * stream is reading (mo_stream_read_start/stop: Twisted's resumeProducing
 * and pauseProducing of the transport). Bytes to send go into a write
 * queue, without a copy when the caller hands a buffer over with a
 * destructor (mo_stream_write), or copied (mo_stream_write_copy); the queue
 * is sent with one sendmsg per readiness, gathering up to 64 buffers (a
 * writev with MSG_NOSIGNAL). Writes made from inside a read callback are
 * gathered until it returns, so the answers to requests that came in one
 * read go out in one system call; other writes to an empty queue are sent
 * at once.
 *
 * Backpressure (DESIGN rule 18): a stream has a high and a low watermark
 * (64 KiB and 16 KiB unless set). When a write takes the queue above the
 * high mark, the stream's producer is paused: a callback
 * (mo_stream_set_producer), a cooperative task (mo_stream_set_producer_task)
 * or a coroutine waiting in mo_stream_await_writable(); when the queue
 * drains to the low mark, it is resumed. A producer that writes one piece
 * at a time while mo_stream_writable() says so never has more than the high
 * mark plus one piece queued.
 *
 * Life cycle. A stream is open until it ends, and it ends once, in one of
 * these ways: mo_stream_close() once the queue has drained (clean), the
 * peer's end of file when no on_eof callback is set (clean, after the
 * queue drained), mo_stream_abort() (at once), or a failure (the peer
 * reset the connection, a write found it broken, an error on the socket).
 * When it ends, its socket is closed at once, the buffers still queued are
 * destroyed (their destructors run), a paused producer is resumed (its
 * writes now fail with MO_EPIPE) and coroutines waiting for it to be
 * writable wake with the failure's code. Then, in a later pass of the loop
 * (never from inside a call of yours), on_lost(s, reason, arg) runs with
 * reason NULL for a clean end or a failure saying why (MO_ECONNRESET,
 * MO_EPIPE, MO_ECONNABORTED for an abort, MO_ETIMEDOUT, ...), and the
 * stream is freed when on_lost returns. Until then every function here
 * still accepts the stream: writes answer MO_EPIPE, the others do nothing
 * or answer as documented. After on_lost returned, the stream must not be
 * used.
 *
 * Peers never kill the process: no SIGPIPE is ever raised (MSG_NOSIGNAL),
 * EAGAIN only means "later", and ECONNRESET and EPIPE become the stream's
 * failure. A listener that runs out of descriptors (EMFILE, ENFILE) does
 * not spin: it accepts the connection with a spare descriptor kept for
 * that, closes it, and reports MO_EMFILE to its error callback.
 *
 * Memory: a stream takes 280 bytes (plus the kernel's socket buffers and
 * the loop's 56-byte record of its descriptor); a listener about 300.
 * Reads use one buffer per loop (64 KiB), so an idle connection costs no
 * read buffer; a stream with framing keeps a buffer for its partial frame,
 * up to the frame's maximum plus one read. Write records and the chunks
 * that hold copied bytes come from per-loop free lists: no allocation per
 * read or write in steady state. A copy written from a read callback of
 * the bytes it was given (an echo) is not even copied unless the kernel
 * cannot take it before the callback's writes are flushed.
 *
 * Freeing the loop (mo_loop_free) with streams open aborts them: the
 * buffers still queued are destroyed, on_lost runs with an MO_ECANCELED
 * failure and the stream is freed; listeners are closed and freed, and
 * connects in progress errback with MO_ECANCELED. Nothing leaks.
 *
 * Threads: everything here is loop-thread only, except mo_addr_parse(),
 * mo_addr_format() and mo_addr_port(), which any thread may call.
 */
#ifndef MORSEL_STREAM_H
#define MORSEL_STREAM_H

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "coro.h"
#include "deferred.h"
#include "loop.h"
#include "task.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mo_stream mo_stream_t;
typedef struct mo_listener mo_listener_t;

/* ------------------------------------------------------------------------
 * Addresses
 * ------------------------------------------------------------------------ */

/* A socket address: IPv4, IPv6 or Unix; len 0 means none. A value: copy it
 * freely. */
typedef struct mo_addr {
    socklen_t len;
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
        struct sockaddr_un un;
        struct sockaddr_storage ss;
    } u;
} mo_addr_t;

/* Parses a numeric address: "127.0.0.1:8080", "[::1]:8080", "unix:PATH",
 * or a PATH that starts with "/" or "./" (a Unix socket). The port is 0 to
 * 65535 (0: any free port, for listening). Host names are not resolved
 * here (see mo_connect()). Errors: MO_EINVAL (NULL argument, not such an
 * address, bad port), MO_ENAMETOOLONG (a Unix path longer than a
 * sockaddr_un holds). Any thread. */
MO_EXTERN int mo_addr_parse(mo_addr_t *addr, const char *text);

/* Writes an address as mo_addr_parse() reads it ("127.0.0.1:8080",
 * "[::1]:8080", "unix:/run/x.sock"; "unix:" for an unnamed Unix socket)
 * into buf, NUL-terminated when size > 0. Returns the length the whole
 * text needs, like snprintf (truncated if >= size), or MO_EINVAL (NULL
 * addr, NULL buf with size > 0, an unknown family). Any thread. */
MO_EXTERN int mo_addr_format(const mo_addr_t *addr, char *buf, size_t size);

/* The port of an IPv4 or IPv6 address, or MO_EINVAL (NULL, another
 * family). Any thread. */
MO_EXTERN int mo_addr_port(const mo_addr_t *addr);

/* ------------------------------------------------------------------------
 * Stream options and callbacks
 * ------------------------------------------------------------------------ */

#define MO_STREAM_HIGH_WATER ((size_t)64 * 1024) /* Twisted's bufferSize */
#define MO_STREAM_LOW_WATER  ((size_t)16 * 1024)

enum mo_stream_flags {
    MO_STREAM_NODELAY = 1,  /* TCP_NODELAY: no Nagle delay for small writes */
    MO_STREAM_KEEPALIVE = 2 /* SO_KEEPALIVE with the kernel's timings */
};

/* Options of a stream; zero-initialise, then set what you need. */
struct mo_stream_opts {
    size_t high_water; /* 0: MO_STREAM_HIGH_WATER */
    size_t low_water;  /* 0: MO_STREAM_LOW_WATER, or high_water / 4 if that is smaller */
    unsigned flags;    /* enum mo_stream_flags (ignored on Unix sockets) */
};

/* Bytes read: `data` (len > 0 bytes; a whole frame when framing is on)
 * belongs to the stream and is valid only during the call; copy what you
 * keep. The callback may do anything with the stream, close it included. */
typedef void (*mo_stream_read_fn)(mo_stream_t *s, char *data, size_t len, void *arg);

/* An event of a stream (end of file, producer pause or resume). */
typedef void (*mo_stream_fn)(mo_stream_t *s, void *arg);

/* The stream has ended (see the top of this file): reason is NULL for a
 * clean end, else the failure (borrowed; mo_failure_ref() to keep it).
 * The stream is freed when this returns. */
typedef void (*mo_stream_lost_fn)(mo_stream_t *s, const mo_failure_t *reason, void *arg);

/* A framing error: err is MO_EMSGSIZE (a frame longer than the maximum).
 * The stream has stopped reading; it is still open for writing. */
typedef void (*mo_stream_error_fn)(mo_stream_t *s, int err, void *arg);

/* What a stream calls; any may be NULL. */
struct mo_stream_callbacks {
    mo_stream_read_fn on_read;
    /* The peer shut down its writing side: no more bytes will come. The
     * stream stops reading and stays open for writing (half-close); close
     * it when done. NULL: the stream is closed once its queue drained. */
    mo_stream_fn on_eof;
    mo_stream_lost_fn on_lost;
    /* NULL: the stream is closed (after its queue drained). */
    mo_stream_error_fn on_error;
};

/* Sets the callbacks (copied) and their arg. A stream starts with none.
 * Errors: MO_EINVAL (NULL s or cbs). Loop thread. */
MO_EXTERN int mo_stream_set_callbacks(mo_stream_t *s, const struct mo_stream_callbacks *cbs,
                                      void *arg);

/* ------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------ */

/* Starts calling on_read with the bytes that arrive (Twisted's
 * resumeProducing). Frames already read and kept while the stream was
 * stopped are delivered first, from a later pass of the loop. Starting a
 * stream that reads is a no-op. Errors: MO_EINVAL (NULL), MO_EPIPE (the
 * stream is closing or has ended, or the peer's end of file was seen),
 * MO_ENOMEM (frames are kept and the pass that delivers them could not be
 * scheduled: the stream stays stopped). Loop thread. */
MO_EXTERN int mo_stream_read_start(mo_stream_t *s);

/* Stops reading (pauseProducing): on_read is not called again until
 * mo_stream_read_start(), not even for frames of a read already made
 * (they are kept). The kernel's receive buffer then fills and the peer's
 * sending stops: backpressure towards the peer. Errors: MO_EINVAL (NULL).
 * Loop thread. */
MO_EXTERN int mo_stream_read_stop(mo_stream_t *s);

/* Framing of what on_read receives (Twisted's LineReceiver and
 * Int32StringReceiver). */
enum mo_framing {
    MO_FRAME_NONE = 0, /* the bytes as they come */
    /* Lines: each call is one line without its "\n" (and without a "\r"
     * just before it). A line longer than `max` bytes before its "\n" is an
     * error as soon as max + 1 bytes of it have arrived. Bytes after the
     * last "\n" at the end of file are dropped. */
    MO_FRAME_LINE = 1,
    /* A 4-byte big-endian length, then that many bytes: each call is one
     * frame's bytes (a zero-length frame is called with len 0). A length
     * above `max` is an error when its header arrives. */
    MO_FRAME_U32 = 2
};

/* Sets the stream's framing and the longest frame, in bytes (1 to 2^31).
 * Bytes already kept are framed anew. On a frame that is too long, the
 * stream stops reading and calls on_error(MO_EMSGSIZE), or closes. Memory
 * held for partial frames is at most max plus one read (64 KiB). Errors:
 * MO_EINVAL (NULL, unknown framing, max 0 or above 2^31). Loop thread. */
MO_EXTERN int mo_stream_set_framing(mo_stream_t *s, int framing, size_t max);

/* ------------------------------------------------------------------------
 * Writing
 * ------------------------------------------------------------------------ */

/* Queues len bytes at data, without copying: the stream owns the buffer
 * from now on and calls dtor(owner) (if dtor is not NULL) once the kernel
 * has every byte, or once the stream dropped them (it ended). data must
 * stay valid and unchanged until then. The buffer is taken in every case:
 * on an error dtor has run before this returns, and it may run before this
 * returns on success too (everything was sent at once). Writes go out in
 * the order they were made. Errors: MO_EINVAL (NULL s, NULL data with len
 * > 0), MO_EPIPE (the stream was shut down or closed, or has ended: nothing
 * was queued), MO_ENOMEM (no record for the buffer), MO_ECONNRESET or
 * MO_EPIPE or another socket error (the connection broke on this write:
 * the stream has ended, on_lost comes later). Loop thread. */
MO_EXTERN int mo_stream_write(mo_stream_t *s, const void *data, size_t len, mo_dtor_fn dtor,
                              void *owner);

/* Like mo_stream_write(), but copies what cannot be sent at once into
 * buffers of the stream's loop (16 KiB chunks, recycled). Errors: those of
 * mo_stream_write(); on MO_ENOMEM nothing was queued, but if the kernel had
 * taken part of the bytes already (the queue was empty), the stream has
 * ended (the rest cannot follow: on_lost comes with MO_ENOMEM). Loop
 * thread. */
MO_EXTERN int mo_stream_write_copy(mo_stream_t *s, const void *data, size_t len);

/* Queues one MO_FRAME_U32 frame: a 4-byte big-endian length (copied), then
 * data as mo_stream_write() takes it. Both or neither are queued: on
 * MO_ENOMEM nothing was and the stream goes on. Errors: those of
 * mo_stream_write(), and MO_EMSGSIZE for len above 2^32 - 1 (data
 * destroyed). Loop thread. */
MO_EXTERN int mo_stream_write_frame(mo_stream_t *s, const void *data, size_t len, mo_dtor_fn dtor,
                                    void *owner);

/* Bytes queued and not yet handed to the kernel; 0 for NULL. Loop thread. */
MO_EXTERN size_t mo_stream_queued(const mo_stream_t *s);

/* Sets the watermarks (see struct mo_stream_opts; low < high). A paused
 * producer is resumed at once if the queue is now at or below the new low
 * mark. Errors: MO_EINVAL (NULL, high 0, low >= high). Loop thread. */
MO_EXTERN int mo_stream_set_watermarks(mo_stream_t *s, size_t high, size_t low);

/* Half-close: once the queue has drained, shuts down the writing side
 * (the peer reads its end of file); the stream keeps reading. Later
 * writes answer MO_EPIPE. Idempotent. Errors: MO_EINVAL (NULL), MO_EPIPE
 * (the stream is closing or has ended). Loop thread. */
MO_EXTERN int mo_stream_shutdown(mo_stream_t *s);

/* Closes after flushing: stops reading, lets the queue drain, then closes
 * the socket; on_lost follows with reason NULL (or a failure if the
 * connection broke first). Later writes answer MO_EPIPE. A stream whose
 * peer never reads never drains: abort it after a time of your choosing.
 * Idempotent; a no-op on a stream that has ended. Errors: MO_EINVAL
 * (NULL). Loop thread. */
MO_EXTERN int mo_stream_close(mo_stream_t *s);

/* Ends the stream at once: drops the queue (destructors run), closes the
 * socket, and on_lost follows with an MO_ECONNABORTED failure. A no-op on
 * a stream that has ended. Errors: MO_EINVAL (NULL). Loop thread. */
MO_EXTERN int mo_stream_abort(mo_stream_t *s);

/* ------------------------------------------------------------------------
 * Producers (backpressure)
 * ------------------------------------------------------------------------ */

/* 1 if a producer may write (the stream is not paused: the queue has not
 * gone above the high mark, or has since drained to the low mark), 0 if
 * it should wait, MO_EPIPE if the stream no longer takes writes,
 * MO_EINVAL for NULL. Loop thread. */
MO_EXTERN int mo_stream_writable(const mo_stream_t *s);

/* Registers a callback producer (Twisted's registerProducer with a
 * streaming producer): pause(s, arg) runs when a write takes the queue
 * above the high mark, resume(s, arg) when it has drained to the low mark,
 * and once more, if paused, when the stream ends (writes then fail: end
 * the production). Either may be NULL. Replaces the previous producer,
 * which is not called again (a task the stream had paused is resumed);
 * pause and resume NULL unregister it. If the stream is paused now, pause
 * runs before this returns. Errors: MO_EINVAL (NULL s). Loop thread. */
MO_EXTERN int mo_stream_set_producer(mo_stream_t *s, mo_stream_fn pause, mo_stream_fn resume,
                                     void *arg);

/* Registers a cooperative task as the producer: the stream pauses it
 * (mo_task_pause) above the high mark and resumes it at the low mark, and
 * resumes it if the stream ends while it is paused. The stream holds a
 * reference to the task until the stream ends or another producer is set;
 * a task that finishes first is simply no longer paused. NULL task
 * unregisters. If the stream is paused now, the task is paused before this
 * returns. Errors: MO_EINVAL (NULL s). Loop thread. */
MO_EXTERN int mo_stream_set_producer_task(mo_stream_t *s, mo_task_t *task);

/* Stores in *dp a Deferred (one reference for the caller) that fires with
 * a NULL value when the stream is writable (at once if it is now), or
 * errbacks with the stream's failure code (or MO_EPIPE) if it ends or
 * stops taking writes first. Cancelling it is allowed. Errors: MO_EINVAL
 * (NULL argument), MO_ENOMEM. Loop thread. */
MO_EXTERN int mo_stream_when_writable(mo_stream_t *s, mo_deferred_t **dp);

/* From inside coroutine co: returns 0 at once if the stream is writable,
 * else suspends co until it is (the loop runs on meanwhile). Returns
 * MO_EPIPE (or the stream's failure code) if the stream ended or stopped
 * taking writes, MO_ECANCELED if the task was stopped, MO_ENOMEM, or
 * MO_EINVAL (NULL argument, not called from inside co). Loop thread. */
MO_EXTERN int mo_stream_await_writable(mo_stream_t *s, mo_coro_t *co);

/* ------------------------------------------------------------------------
 * Socket options, addresses, statistics
 * ------------------------------------------------------------------------ */

/* TCP_NODELAY on (1) or off (0). Errors: MO_EINVAL (NULL), MO_ENOTSUP (not
 * a TCP stream), MO_EPIPE (ended), a setsockopt errno. Loop thread. */
MO_EXTERN int mo_stream_set_nodelay(mo_stream_t *s, int on);

/* SO_KEEPALIVE on or off; with idle_s > 0, the first probe after that many
 * seconds of silence (TCP_KEEPIDLE) and the next every idle_s too.
 * Errors: as mo_stream_set_nodelay(), MO_EINVAL for idle_s < 0.
 * Loop thread. */
MO_EXTERN int mo_stream_set_keepalive(mo_stream_t *s, int on, int idle_s);

/* The peer's and the local address. Errors: MO_EINVAL (NULL), MO_EPIPE
 * (the stream has ended), a getpeername/getsockname errno (MO_ENOTCONN).
 * Loop thread. */
MO_EXTERN int mo_stream_peer_addr(const mo_stream_t *s, mo_addr_t *addr);
MO_EXTERN int mo_stream_local_addr(const mo_stream_t *s, mo_addr_t *addr);

/* The socket's descriptor (for options morsel does not wrap; do not read,
 * write or close it), or MO_EPIPE once the stream has ended, MO_EINVAL for
 * NULL. Loop thread. */
MO_EXTERN int mo_stream_fd(const mo_stream_t *s);

/* The loop the stream belongs to; NULL for NULL. */
MO_EXTERN mo_loop_t *mo_stream_loop(const mo_stream_t *s);

struct mo_stream_stats {
    uint64_t bytes_read;    /* bytes received */
    uint64_t bytes_written; /* bytes handed to the kernel */
    size_t queued;          /* bytes queued now */
    size_t max_queued;      /* the most bytes ever queued at once */
    uint64_t pauses;        /* times the producer was paused */
};

/* Fills *out. Errors: MO_EINVAL (NULL argument). Loop thread. */
MO_EXTERN int mo_stream_stats(const mo_stream_t *s, struct mo_stream_stats *out);

/* ------------------------------------------------------------------------
 * Listening
 * ------------------------------------------------------------------------ */

/* A new connection: s is the caller's from now on (set its callbacks,
 * start reading, or close it). It does not read until told to. */
typedef void (*mo_accept_fn)(mo_listener_t *l, mo_stream_t *s, void *arg);

/* An accept that failed: MO_EMFILE or MO_ENFILE (out of descriptors: the
 * connection was accepted with the spare descriptor and closed at once, or,
 * if there was no spare, the listener pauses for 100 ms), MO_ENOMEM or
 * MO_ENOBUFS (the listener pauses for 100 ms). The listener goes on. */
typedef void (*mo_listener_error_fn)(mo_listener_t *l, int err, void *arg);

enum mo_listen_flags {
    MO_LISTEN_V6ONLY = 1,   /* an IPv6 listener takes IPv6 only (IPV6_V6ONLY) */
    MO_LISTEN_REUSEPORT = 2 /* SO_REUSEPORT: several listeners share the port */
};

/* Options of a listener; zero-initialise, then set what you need. */
struct mo_listen_opts {
    int backlog;                   /* 0: SOMAXCONN */
    unsigned flags;                /* enum mo_listen_flags */
    struct mo_stream_opts stream;  /* applied to every accepted stream */
    mo_listener_error_fn on_error; /* NULL: errors are only counted */
};

/* Listens on `addr` (TCP on IPv4 or IPv6 with SO_REUSEADDR, or a Unix
 * socket, whose file is created here and removed by
 * mo_listener_close()) and calls on_accept(l, s, arg) for every connection.
 * Stores the listener, the caller's to close, in *lp. opts may be NULL.
 * Accepting goes on up to 64 connections per loop iteration, so a storm of
 * connections does not starve the rest of the loop. Errors (nothing
 * listens): MO_EINVAL (NULL loop, addr, on_accept or lp, an empty address,
 * negative backlog, unknown flags, bad watermarks), MO_EADDRINUSE (the
 * port or the Unix path is taken), MO_EACCES, MO_EADDRNOTAVAIL, MO_EMFILE,
 * MO_ENOMEM, MO_ESHUTDOWN (the loop is closed), another socket/bind/listen
 * errno. Loop thread. */
MO_EXTERN int mo_listen(mo_loop_t *loop, const mo_addr_t *addr, const struct mo_listen_opts *opts,
                        mo_accept_fn on_accept, void *arg, mo_listener_t **lp);

/* The address the listener is bound to (with the port the kernel chose for
 * port 0). Errors: MO_EINVAL (NULL argument). Loop thread. */
MO_EXTERN int mo_listener_addr(const mo_listener_t *l, mo_addr_t *addr);

/* Stops accepting for a while (connections wait in the backlog) and
 * starts again. Idempotent. Errors: MO_EINVAL (NULL); resume: the error of
 * epoll_ctl() when the kernel refuses to watch the socket again (MO_ENOMEM,
 * MO_ENOSPC: still not accepting; resume again later). Loop thread. */
MO_EXTERN int mo_listener_pause(mo_listener_t *l);
MO_EXTERN int mo_listener_resume(mo_listener_t *l);

struct mo_listener_stats {
    uint64_t accepted; /* connections handed to on_accept */
    uint64_t dropped;  /* connections accepted and closed for lack of descriptors */
    uint64_t errors;   /* accept errors reported */
};

/* Fills *out. Errors: MO_EINVAL (NULL argument). Loop thread. */
MO_EXTERN int mo_listener_stats(const mo_listener_t *l, struct mo_listener_stats *out);

/* Stops listening, closes the socket (removes a Unix socket's file if it is
 * still the one created) and frees the listener. Streams it accepted are
 * not affected. NULL is ignored. Loop thread; also from the listener's own
 * callbacks (on_accept, on_error): it stops accepting at once and is freed
 * when the callback returns (the stream just accepted is the caller's). */
MO_EXTERN void mo_listener_close(mo_listener_t *l);

/* ------------------------------------------------------------------------
 * Connecting
 * ------------------------------------------------------------------------ */

/* Connects to `target`: "HOST:PORT" (HOST a name, or a numeric IPv4
 * address), "[IPV6]:PORT", "unix:PATH" or a PATH that starts with "/" or
 * "./". A numeric address is connected at once; a name is resolved with
 * getaddrinfo() on the loop's worker pool (it blocks; the loop must not),
 * and its addresses are tried in order until one connects. Stores in *dp a
 * Deferred (one reference for the caller) that fires with the connected
 * mo_stream_t *, or errbacks with a failure whose code says why:
 * MO_ECONNREFUSED (nothing listens), MO_EAI_NONAME (the name does not
 * resolve), MO_EAI_AGAIN, MO_ENOENT (no such Unix socket), MO_ETIMEDOUT,
 * MO_EHOSTUNREACH, ... (origin "mo_connect", message the target). The
 * stream is the Deferred's value: take it (mo_result_take(), or mo_await()
 * with valuep) and it is yours to close; left in the Deferred, it is
 * aborted when the Deferred is freed. Cancelling the Deferred gives up the
 * attempt. opts (may be NULL) apply to the stream. Errors (nothing
 * starts): MO_EINVAL (NULL loop, target or dp, a target without a port,
 * bad watermarks), MO_ENAMETOOLONG, MO_ENOMEM, MO_ESHUTDOWN (the loop is
 * closed). Loop thread. */
MO_EXTERN int mo_connect(mo_loop_t *loop, const char *target, const struct mo_stream_opts *opts,
                         mo_deferred_t **dp);

/* Connects to a numeric address (no resolution), as mo_connect() does.
 * Errors: as mo_connect(). Loop thread. */
MO_EXTERN int mo_connect_addr(mo_loop_t *loop, const mo_addr_t *addr,
                              const struct mo_stream_opts *opts, mo_deferred_t **dp);

#ifdef __cplusplus
}
#endif
#endif /* MORSEL_STREAM_H */
