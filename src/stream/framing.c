/* Framing of what a stream reads (Twisted's LineReceiver and
 * Int32StringReceiver): whole frames go to on_read, in place in the read
 * buffer when they are whole there; the bytes of a partial frame, and the
 * frames read while the stream was told to stop, are kept in the stream's
 * own buffer, fbuf[fpos, flen). A frame longer than the maximum is an
 * error as soon as that is known, so a peer cannot make the stream hold
 * more than the maximum plus one read. */
#include "stream_int.h"

#include <string.h>

int mo_stream_set_framing(mo_stream_t *s, int framing, size_t max)
{
    if (!s || framing < MO_FRAME_NONE || framing > MO_FRAME_U32 || !max || max > ((size_t)1 << 31))
        return MO_EINVAL;
    s->framing = (uint8_t)framing;
    s->fmax = (uint32_t)max;
    return 0;
}

static bool can_deliver(const mo_stream_t *s)
{
    return s->state == MO__S_OPEN && s->reading && !s->frame_err;
}

static void frame_error(mo_stream_t *s)
{
    s->frame_err = true;
    s->fpos = s->flen = 0;
    mo__stream_sync_read(s);
    if (s->cb.on_error)
        s->cb.on_error(s, MO_EMSGSIZE, s->arg);
    else
        mo_stream_close(s);
}

static void deliver(mo_stream_t *s, char *p, size_t len)
{
    if (s->cb.on_read) s->cb.on_read(s, p, len, s->arg);
}

static uint32_t be32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

/* The length of the whole frame at p (n bytes there) with its delimiter or
 * header, 0 if it is not whole yet, or -1 if it is too long. */
static ssize_t frame_len(const mo_stream_t *s, const char *p, size_t n)
{
    if (s->framing == MO_FRAME_NONE) return (ssize_t)n;
    if (s->framing == MO_FRAME_LINE) {
        const char *nl = memchr(p, '\n', n);
        size_t len = nl ? (size_t)(nl - p) : n;
        if (len > s->fmax) return -1;
        return nl ? (ssize_t)len + 1 : 0;
    }
    if (n < 4) return 0;
    uint32_t len = be32(p);
    if (len > s->fmax) return -1;
    return n - 4 >= len ? (ssize_t)len + 4 : 0;
}

/* Delivers the whole frames at p while the stream reads; returns the
 * bytes used. */
static size_t frame_scan(mo_stream_t *s, char *p, size_t n)
{
    size_t off = 0;
    while (off < n && can_deliver(s)) {
        ssize_t k = frame_len(s, p + off, n - off);
        if (k < 0) {
            frame_error(s);
            return n;
        }
        if (k == 0) break;
        char *f = p + off;
        off += (size_t)k;
        if (s->framing == MO_FRAME_NONE) {
            deliver(s, f, (size_t)k);
        } else if (s->framing == MO_FRAME_U32) {
            deliver(s, f + 4, (size_t)k - 4);
        } else {
            size_t len = (size_t)k - 1;
            if (len && f[len - 1] == '\r') len--;
            deliver(s, f, len);
        }
    }
    return off;
}

/* Appends to the kept bytes; false if memory ran out (the stream ended). */
static bool keep(mo_stream_t *s, const char *p, size_t n)
{
    if (s->fpos && s->fpos == s->flen) s->fpos = s->flen = 0;
    if (s->flen + n > s->fcap && s->fpos) {
        memmove(s->fbuf, s->fbuf + s->fpos, s->flen - s->fpos);
        s->flen -= s->fpos;
        s->fpos = 0;
    }
    if (s->flen + n > s->fcap) {
        size_t cap = s->fcap ? s->fcap : 256;
        while (cap < s->flen + n) cap *= 2;
        char *b = mo__realloc(s->fbuf, cap);
        if (!b) {
            mo__stream_end(s, MO_ENOMEM, "no memory for a partial frame");
            return false;
        }
        s->fbuf = b;
        s->fcap = cap;
    }
    memcpy(s->fbuf + s->flen, p, n);
    s->flen += n;
    return true;
}

static void drain_kept(mo_stream_t *s)
{
    s->fpos += frame_scan(s, s->fbuf + s->fpos, s->flen - s->fpos);
    if (s->fpos >= s->flen) s->fpos = s->flen = 0;
}

void mo__frame_input(mo_stream_t *s, char *data, size_t len)
{
    if (s->fpos < s->flen) { /* behind what is kept */
        if (keep(s, data, len)) drain_kept(s);
        return;
    }
    size_t used = frame_scan(s, data, len);
    if (used < len && s->state == MO__S_OPEN && !s->frame_err) keep(s, data + used, len - used);
}

bool mo__frame_ready(const mo_stream_t *s)
{
    return s->fpos < s->flen && frame_len(s, s->fbuf + s->fpos, s->flen - s->fpos) != 0;
}

void mo__frame_kept(mo_stream_t *s)
{
    if (!can_deliver(s) || !mo__frame_ready(s)) return;
    s->corked = true;
    drain_kept(s);
    s->corked = false;
    mo__stream_flush(s);
}

static void drain_call(mo_loop_t *loop, void *arg)
{
    (void)loop;
    mo_stream_t *s = arg;
    s->drain_queued = false;
    mo__frame_kept(s);
}

int mo__frame_drain(mo_stream_t *s)
{
    if (s->drain_queued) return 0;
    /* If the ready queue cannot grow, a delayed call needs no memory but
     * its slab slot. Not waiting for the next read instead: a peer that
     * waits for the answer to what it sent never sends it. */
    if (mo_call_soon(s->loop, drain_call, s) != 0 &&
        mo_call_later(s->loop, 0, drain_call, s, NULL) != 0)
        return MO_ENOMEM;
    s->drain_queued = true;
    return 0;
}
