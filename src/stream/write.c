/* A stream's write queue and its producer: buffers handed over without a
 * copy (one record each) or copied into the loop's chunks, sent with one
 * sendmsg of up to MO__IOV_MAX buffers per readiness; the high and low
 * watermarks that pause and resume the producer (a callback, a task, or
 * the coroutines and others waiting for "writable"); and what waits for
 * the queue to drain: the half-close and the close. */
#include "stream_int.h"

#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static void on_writable(mo_loop_t *loop, int fd, unsigned events, void *arg);

/* Whether the stream takes writes: open, not closing, not shut down. */
static bool takes_writes(const mo_stream_t *s)
{
    return s->state == MO__S_OPEN && !s->want_close && !s->want_shut;
}

void mo__stream_sync_write(mo_stream_t *s)
{
    bool want = s->state == MO__S_OPEN && s->head && !s->corked;
    if (want && !s->wid) {
        int err = mo_io_start(s->loop, s->fd, MO_WRITABLE, on_writable, s, &s->wid);
        if (err) {
            s->wid = 0;
            mo__stream_end(s, err, "cannot watch the socket");
        }
    } else if (!want && s->wid) {
        mo_io_stop(s->loop, s->wid);
        s->wid = 0;
    }
}

/* ---- the producer ---- */

/* Fires the Deferreds waiting for "writable": with NULL, or with a
 * failure of `code`. A callback may add waiters (they stay) or cancel
 * others (their slot is cleared). */
static void fire_waiters(mo_stream_t *s, int code)
{
    uint32_t n = s->nwaiters;
    for (uint32_t i = 0; i < n; i++) {
        mo_deferred_t *d = s->waiters[i];
        if (!d) continue;
        s->waiters[i] = NULL;
        if (code)
            mo_deferred_fail(d, code, "mo_stream", "the stream takes no more writes");
        else
            mo_deferred_callback(d, NULL, NULL);
        mo_deferred_unref(d);
    }
    uint32_t k = 0;
    for (uint32_t i = 0; i < s->nwaiters; i++)
        if (s->waiters[i]) s->waiters[k++] = s->waiters[i];
    s->nwaiters = k;
}

static void producer_pause(mo_stream_t *s)
{
    if (s->p_pause) s->p_pause(s, s->p_arg);
    if (s->p_task) mo_task_pause(s->p_task); /* MO_EALREADY once it has finished */
}

static void producer_resume(mo_stream_t *s)
{
    if (s->p_resume) s->p_resume(s, s->p_arg);
    if (s->p_task) mo_task_resume(s->p_task);
}

static void check_high(mo_stream_t *s)
{
    if (s->queued > s->stats.max_queued) s->stats.max_queued = s->queued;
    if (s->paused || s->queued <= s->high) return;
    s->paused = true;
    s->stats.pauses++;
    producer_pause(s);
}

static void check_low(mo_stream_t *s)
{
    if (!s->paused || s->queued > s->low) return;
    s->paused = false;
    producer_resume(s);
    if (s->nwaiters) fire_waiters(s, 0);
}

/* Lets go of the producer. The stream's own pause of a task is undone;
 * a paused callback producer is told to resume only when the stream ends
 * (`ending`), so that it notices. */
static void producer_clear(mo_stream_t *s, bool ending)
{
    if (s->paused && ending && s->p_resume) s->p_resume(s, s->p_arg);
    if (s->paused && s->p_task) mo_task_resume(s->p_task);
    mo_task_t *t = s->p_task;
    s->p_pause = s->p_resume = NULL;
    s->p_arg = NULL;
    s->p_task = NULL;
    if (t) mo__task_unref(t);
}

void mo__stream_release_producer(mo_stream_t *s)
{
    producer_clear(s, true);
    s->paused = false;
    if (s->nwaiters) fire_waiters(s, s->reason ? mo_failure_code(s->reason) : MO_EPIPE);
}

int mo_stream_writable(const mo_stream_t *s)
{
    if (!s) return MO_EINVAL;
    if (!takes_writes(s)) return MO_EPIPE;
    return !s->paused;
}

int mo_stream_set_producer(mo_stream_t *s, mo_stream_fn pause, mo_stream_fn resume, void *arg)
{
    if (!s) return MO_EINVAL;
    bool paused = s->paused;
    producer_clear(s, false);
    s->paused = paused;
    s->p_pause = pause;
    s->p_resume = resume;
    s->p_arg = arg;
    if (s->paused && pause) pause(s, arg);
    return 0;
}

int mo_stream_set_producer_task(mo_stream_t *s, mo_task_t *task)
{
    if (!s) return MO_EINVAL;
    bool paused = s->paused;
    producer_clear(s, false);
    s->paused = paused;
    if (!task) return 0;
    mo__task_ref(task);
    s->p_task = task;
    if (s->paused) mo_task_pause(task);
    return 0;
}

static void waiter_cancel(mo_deferred_t *d, void *arg)
{
    mo_stream_t *s = arg;
    for (uint32_t i = 0; i < s->nwaiters; i++) {
        if (s->waiters[i] != d) continue;
        s->waiters[i] = NULL;
        mo_deferred_unref(d); /* ours; the caller's keeps it until the errback */
        return;
    }
}

static int waiters_grow(mo_stream_t *s)
{
    if (s->nwaiters < s->waiters_cap) return 0;
    uint32_t cap = s->waiters_cap ? 2 * s->waiters_cap : 4;
    mo_deferred_t **w = mo__realloc(s->waiters, cap * sizeof(mo_deferred_t *));
    if (!w) return MO_ENOMEM;
    s->waiters = w;
    s->waiters_cap = cap;
    return 0;
}

int mo_stream_when_writable(mo_stream_t *s, mo_deferred_t **dp)
{
    if (!s || !dp) return MO_EINVAL;
    if (!takes_writes(s)) {
        mo_failure_t *f = s->reason ? mo_failure_ref(s->reason)
                                    : mo_failure_new(MO_EPIPE, "mo_stream", "takes no writes");
        return mo_deferred_new_failed(s->loop, f, dp);
    }
    if (!s->paused) return mo_deferred_new_succeeded(s->loop, NULL, NULL, dp);
    int err = waiters_grow(s);
    mo_deferred_t *d = NULL;
    if (!err) err = mo_deferred_new(s->loop, waiter_cancel, s, &d);
    if (err) return err;
    s->waiters[s->nwaiters++] = mo_deferred_ref(d);
    *dp = d;
    return 0;
}

int mo_stream_await_writable(mo_stream_t *s, mo_coro_t *co)
{
    /* Checked before "writable", so that a misuse is an error every time,
     * not only when the stream happens to be paused. */
    if (!s || !mo__coro_inside(co)) return MO_EINVAL;
    if (mo__task_finished(mo_coro_task(co))) return MO_ECANCELED;
    int w = mo_stream_writable(s);
    if (w != 0) return w < 0 ? w : 0;
    mo_deferred_t *d;
    int err = mo_stream_when_writable(s, &d);
    return err ? err : mo_await(co, d, NULL, NULL);
}

int mo_stream_set_watermarks(mo_stream_t *s, size_t high, size_t low)
{
    if (!s || !high || low >= high) return MO_EINVAL;
    s->high = high;
    s->low = low;
    check_low(s);
    return 0;
}

size_t mo_stream_queued(const mo_stream_t *s)
{
    return s ? s->queued : 0;
}

/* ---- the queue ---- */

static void append(mo_stream_t *s, struct mo__wrec *r)
{
    r->next = NULL;
    if (s->tail)
        s->tail->next = r;
    else
        s->head = r;
    s->tail = r;
    s->queued += r->len;
}

/* Takes the head record off the queue, gives it back to the free list and
 * runs its destructor (which may do anything, even to this stream). */
static void pop_head(mo_stream_t *s)
{
    struct mo__wrec *r = s->head;
    if (r->dtor == mo__wrec_borrowed) s->borrowed--;
    s->head = r->next;
    if (!s->head) s->tail = NULL;
    s->queued -= r->len;
    mo_dtor_fn dtor = r->dtor;
    void *owner = r->owner;
    mo__wrec_put(s->ctx, r);
    if (dtor) dtor(owner);
}

void mo__stream_drop_queue(mo_stream_t *s)
{
    while (s->head) pop_head(s);
}

/* Sends what it can of data at once: the bytes sent, or a negative error
 * (which has ended the stream). */
static ssize_t send_some(mo_stream_t *s, const void *data, size_t len)
{
    ssize_t n;
    do n = send(s->fd, data, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n >= 0) {
        s->stats.bytes_written += (uint64_t)n;
        return n;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    int err = mo__errno();
    mo__stream_end(s, err, "write");
    return err;
}

/* One sendmsg of the queue's first buffers: true if everything offered
 * was taken (there may be more to send). */
static bool send_batch(mo_stream_t *s)
{
    struct iovec iov[MO__IOV_MAX];
    int n = 0;
    size_t offered = 0;
    for (struct mo__wrec *r = s->head; r && n < MO__IOV_MAX; r = r->next, n++) {
        iov[n] = (struct iovec){(void *)r->data, r->len};
        offered += r->len;
    }
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    ssize_t sent;
    do sent = sendmsg(s->fd, &msg, MSG_NOSIGNAL);
    while (sent < 0 && errno == EINTR);
    if (sent < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) mo__stream_end(s, mo__errno(), "write");
        return false;
    }
    s->stats.bytes_written += (uint64_t)sent;
    for (size_t left = (size_t)sent; left && s->head;) {
        struct mo__wrec *r = s->head;
        if (left < r->len) {
            r->data += left;
            r->len -= left;
            s->queued -= left;
            break;
        }
        left -= r->len;
        pop_head(s); /* may end the stream: then the queue is empty */
    }
    return (size_t)sent == offered;
}

/* The queue has drained: a close or a half-close that waited goes on. */
static void drained(mo_stream_t *s)
{
    if (s->want_close) {
        mo__stream_end(s, 0, NULL);
        return;
    }
    if (s->want_shut && !s->wr_shut) {
        s->wr_shut = true;
        if (shutdown(s->fd, SHUT_WR) != 0 && errno != ENOTCONN)
            mo__stream_end(s, mo__errno(), "shutdown");
    }
}

void mo__stream_flush(mo_stream_t *s)
{
    if (s->state != MO__S_OPEN || s->corked) return;
    while (s->head && s->state == MO__S_OPEN && send_batch(s)) {
    }
    if (s->state != MO__S_OPEN) return;
    mo__stream_sync_write(s);
    check_low(s);
    if (s->state == MO__S_OPEN && !s->head) drained(s);
}

static void on_writable(mo_loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)fd;
    (void)events;
    mo__stream_flush(arg);
}

/* ---- writing ---- */

int mo_stream_write(mo_stream_t *s, const void *data, size_t len, mo_dtor_fn dtor, void *owner)
{
    int err = !s || (!data && len) ? MO_EINVAL : !takes_writes(s) ? MO_EPIPE : 0;
    struct mo__wrec *r = err || !len ? NULL : mo__wrec_get(s->ctx);
    if (!err && len && !r) err = MO_ENOMEM;
    if (err || !len) {
        if (dtor) dtor(owner);
        return err;
    }
    size_t done = 0;
    if (!s->head && !s->corked) {
        ssize_t n = send_some(s, data, len);
        if (n < 0 || (size_t)n == len) {
            mo__wrec_put(s->ctx, r);
            if (dtor) dtor(owner);
            return n < 0 ? (int)n : 0;
        }
        done = (size_t)n;
    }
    *r = (struct mo__wrec){NULL, (const char *)data + done, len - done, dtor, owner};
    append(s, r);
    mo__stream_sync_write(s);
    check_high(s);
    return 0;
}

/* The chunk the queue's last record fills, if it has room. */
static struct mo__sbuf *tail_chunk(const mo_stream_t *s)
{
    const struct mo__wrec *t = s->tail;
    if (!t || t->dtor != mo__sbuf_release) return NULL;
    struct mo__sbuf *b = t->owner;
    if (b->used == MO__SBUF_SIZE || t->data + t->len != b->data + b->used) return NULL;
    return b;
}

/* Gives back records taken for chunks that were not used. */
static void give_back(mo_stream_t *s, struct mo__wrec *recs)
{
    while (recs) {
        struct mo__wrec *x = recs;
        recs = x->next;
        struct mo__sbuf *b = x->owner;
        b->refs = 1;
        mo__sbuf_release(b);
        mo__wrec_put(s->ctx, x);
    }
}

/* Copies len bytes into the tail chunk and new ones. Every record and
 * chunk needed is taken first, so that running out of memory leaves the
 * queue as it was. */
static int copy_in(mo_stream_t *s, const char *data, size_t len)
{
    struct mo__sbuf *b = tail_chunk(s);
    size_t room = b ? MO__SBUF_SIZE - b->used : 0;
    size_t k = room < len ? room : len;
    size_t nnew = (len - k + MO__SBUF_SIZE - 1) / MO__SBUF_SIZE;
    struct mo__wrec *recs = NULL;
    for (size_t i = 0; i < nnew; i++) {
        struct mo__wrec *r = mo__wrec_get(s->ctx);
        struct mo__sbuf *nb = r ? mo__sbuf_get(s->ctx) : NULL;
        if (!nb) {
            if (r) mo__wrec_put(s->ctx, r);
            give_back(s, recs);
            return MO_ENOMEM;
        }
        r->owner = nb;
        r->next = recs;
        recs = r;
    }
    if (k) {
        memcpy(b->data + b->used, data, k);
        b->used += k;
        s->tail->len += k;
        s->queued += k;
    }
    for (size_t off = k; recs; off += MO__SBUF_SIZE) {
        struct mo__wrec *x = recs;
        recs = x->next;
        struct mo__sbuf *nb = x->owner;
        size_t n = len - off < MO__SBUF_SIZE ? len - off : MO__SBUF_SIZE;
        memcpy(nb->data, data + off, n);
        nb->used = n;
        nb->refs = 1;
        *x = (struct mo__wrec){NULL, nb->data, n, mo__sbuf_release, nb};
        append(s, x);
    }
    return 0;
}

/* ---- borrowing the read buffer ----
 *
 * A copy written from a read callback of bytes that are in the loop's read
 * buffer (an echo, a proxy) is queued without copying: the buffer is not
 * read into again before the callback's writes have been flushed. What the
 * kernel did not take by then is copied (mo__stream_unborrow). */

void mo__wrec_borrowed(void *owner)
{
    (void)owner; /* a marker: the bytes belong to the read buffer */
}

static bool in_read_buffer(const mo_stream_t *s, const void *data, size_t len)
{
    uintptr_t b = (uintptr_t)s->ctx->rbuf, p = (uintptr_t)data;
    return b && p >= b && p - b <= MO__READ_SIZE && len <= MO__READ_SIZE - (p - b);
}

static int borrow(mo_stream_t *s, const char *data, size_t len)
{
    struct mo__wrec *t = s->tail;
    if (t && t->dtor == mo__wrec_borrowed && t->data + t->len == data) {
        t->len += len; /* adjacent bytes of the same read */
        s->queued += len;
    } else {
        struct mo__wrec *r = mo__wrec_get(s->ctx);
        if (!r) return MO_ENOMEM;
        *r = (struct mo__wrec){NULL, data, len, mo__wrec_borrowed, NULL};
        append(s, r);
        s->borrowed++;
    }
    check_high(s);
    return 0;
}

/* Copies a borrowed record's bytes into chunks: the record takes the first,
 * new records after it the others. Everything is taken first, so that
 * running out of memory changes nothing. */
static int copy_out(mo_stream_t *s, struct mo__wrec *r)
{
    struct mo__sbuf *first = mo__sbuf_get(s->ctx);
    struct mo__wrec *recs = NULL; /* one more record and chunk per 16 KiB */
    for (size_t left = r->len; first && left > MO__SBUF_SIZE; left -= MO__SBUF_SIZE) {
        struct mo__wrec *x = mo__wrec_get(s->ctx);
        struct mo__sbuf *b = x ? mo__sbuf_get(s->ctx) : NULL;
        if (!b) {
            if (x) mo__wrec_put(s->ctx, x);
            give_back(s, recs);
            recs = NULL;
            first->refs = 1;
            mo__sbuf_release(first);
            first = NULL;
            break;
        }
        x->owner = b;
        x->next = recs;
        recs = x;
    }
    if (!first) return MO_ENOMEM;
    const char *src = r->data;
    size_t left = r->len;
    struct mo__wrec *after = r->next, *last = NULL, *x = r;
    do { /* r first, then the new records */
        struct mo__sbuf *b = x == r ? first : x->owner;
        size_t k = left < MO__SBUF_SIZE ? left : MO__SBUF_SIZE;
        memcpy(b->data, src, k);
        b->used = k;
        b->refs = 1;
        *x = (struct mo__wrec){NULL, b->data, k, mo__sbuf_release, b};
        if (last) last->next = x;
        last = x;
        src += k;
        left -= k;
        x = recs;
        recs = recs ? recs->next : NULL;
    } while (x);
    last->next = after;
    if (s->tail == r) s->tail = last;
    return 0;
}

void mo__stream_unborrow(mo_stream_t *s)
{
    for (struct mo__wrec *r = s->head; r && s->borrowed; r = r->next) {
        if (r->dtor != mo__wrec_borrowed) continue;
        s->borrowed--;
        if (copy_out(s, r) != 0) {
            s->borrowed++;
            mo__stream_end(s, MO_ENOMEM, "no memory for the bytes of a write");
            return;
        }
    }
}

int mo_stream_write_copy(mo_stream_t *s, const void *data, size_t len)
{
    if (!s || (!data && len)) return MO_EINVAL;
    if (!takes_writes(s)) return MO_EPIPE;
    if (s->corked && len && in_read_buffer(s, data, len)) return borrow(s, data, len);
    size_t done = 0;
    if (!s->head && !s->corked && len) {
        ssize_t n = send_some(s, data, len);
        if (n < 0) return (int)n;
        done = (size_t)n;
    }
    if (done == len) return 0;
    int err = copy_in(s, (const char *)data + done, len - done);
    if (err && done) { /* the message went out in part: the stream is garbled */
        mo__stream_end(s, err, "out of memory in the middle of a write");
        return err;
    }
    mo__stream_sync_write(s);
    check_high(s);
    return err;
}

int mo_stream_write_frame(mo_stream_t *s, const void *data, size_t len, mo_dtor_fn dtor,
                          void *owner)
{
    if (s && len > UINT32_MAX) {
        if (dtor) dtor(owner);
        return MO_EMSGSIZE;
    }
    if (!s || (!data && len) || !takes_writes(s)) return mo_stream_write(s, data, len, dtor, owner);
    /* The header's record and the body's are taken first, so that running
     * out of memory is found before anything is queued: a header queued
     * without its body would garble every later frame. Given back to the
     * free list, they are the ones the two writes take. */
    struct mo__wrec *a = mo__wrec_get(s->ctx), *b = a ? mo__wrec_get(s->ctx) : NULL;
    if (b) mo__wrec_put(s->ctx, b);
    if (a) mo__wrec_put(s->ctx, a);
    if (!b) {
        if (dtor) dtor(owner);
        return MO_ENOMEM;
    }
    unsigned char hdr[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
                            (unsigned char)(len >> 8), (unsigned char)len};
    int err = mo_stream_write_copy(s, hdr, sizeof hdr);
    if (err) {
        if (dtor) dtor(owner);
        return err;
    }
    /* The body's record is on the free list, unless a producer's pause
     * callback (run by the header's write) took it for writes of its own:
     * then, out of memory, the header must not stay alone. */
    err = mo_stream_write(s, data, len, dtor, owner);
    if (err == MO_ENOMEM) mo__stream_end(s, MO_ENOMEM, "out of memory in the middle of a frame");
    return err;
}
