/* Failures: the immutable, reference-counted error objects that flow down
 * errback chains. One allocation holds the header, the origin and the
 * message. Creation never fails: out of memory gives the shared failure
 * below, whose reference count is never touched. */
#include "deferred/deferred_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Never written after initialisation: immortal, so no counting, no race. */
static struct mo_failure mo__nomem_failure = {
    .refs = 1,
    .code = MO_ENOMEM,
    .immortal = true,
    .message = "out of memory (creating a failure)",
    .origin = "",
};

static struct mo_failure *failure_alloc(int code, const char *origin, size_t origin_len,
                                        size_t msg_len)
{
    struct mo_failure *f = mo__malloc(sizeof(*f) + origin_len + 1 + msg_len + 1);
    if (!f) return NULL;
    atomic_init(&f->refs, 1);
    f->code = code ? code : MO_EINVAL;
    f->immortal = false;
    f->has_index = false;
    f->index = 0;
    char *o = f->data;
    memcpy(o, origin, origin_len);
    o[origin_len] = '\0';
    f->origin = o;
    f->message = o + origin_len + 1;
    return f;
}

mo_failure_t *mo_failure_newv(int code, const char *origin, const char *fmt, va_list ap)
{
    if (!origin) origin = "";
    size_t msg_len = 0;
    if (fmt) {
        va_list aq;
        va_copy(aq, ap);
        int n = vsnprintf(NULL, 0, fmt, aq);
        va_end(aq);
        if (n > 0) msg_len = (size_t)n;
    }
    struct mo_failure *f = failure_alloc(code, origin, strlen(origin), msg_len);
    if (!f) return &mo__nomem_failure;
    char *m = (char *)f->message;
    if (msg_len)
        vsnprintf(m, msg_len + 1, fmt, ap);
    else
        m[0] = '\0';
    return f;
}

mo_failure_t *mo_failure_new(int code, const char *origin, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mo_failure_t *f = mo_failure_newv(code, origin, fmt, ap);
    va_end(ap);
    return f;
}

mo_failure_t *mo_failure_ref(mo_failure_t *f)
{
    if (f && !f->immortal) atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

void mo_failure_unref(mo_failure_t *f)
{
    if (!f || f->immortal) return;
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1) mo__free(f);
}

/* A copy of f with origin "context: <f's origin>"; NULL when out of memory. */
static struct mo_failure *failure_with_context(const mo_failure_t *f, const char *context)
{
    size_t clen = strlen(context), olen = strlen(f->origin), mlen = strlen(f->message);
    size_t total = clen + (olen ? 2 + olen : 0);
    struct mo_failure *w = failure_alloc(f->code, "", 0, total + 1 + mlen);
    if (!w) return NULL;
    char *o = w->data;
    memcpy(o, context, clen);
    if (olen) {
        memcpy(o + clen, ": ", 2);
        memcpy(o + clen + 2, f->origin, olen);
    }
    o[total] = '\0';
    w->origin = o;
    w->message = o + total + 1;
    memcpy((char *)w->message, f->message, mlen + 1);
    w->has_index = f->has_index;
    w->index = f->index;
    return w;
}

mo_failure_t *mo_failure_wrap(mo_failure_t *f, const char *context)
{
    if (!f || !context) return f;
    struct mo_failure *w = failure_with_context(f, context);
    if (!w) return f;
    mo_failure_unref(f);
    return w;
}

mo_failure_t *mo__failure_with_index(mo_failure_t *f, const char *context, size_t index)
{
    struct mo_failure *w = failure_with_context(f, context);
    /* Out of memory: f itself, unless it carries an index of its own (a
     * list's failure inside a list), which would name the wrong member. */
    if (!w) return f->has_index ? &mo__nomem_failure : mo_failure_ref(f);
    w->has_index = true;
    w->index = index;
    return w;
}

int mo_failure_code(const mo_failure_t *f)
{
    return f ? f->code : 0;
}

const char *mo_failure_message(const mo_failure_t *f)
{
    return f ? f->message : "";
}

const char *mo_failure_origin(const mo_failure_t *f)
{
    return f ? f->origin : "";
}

int mo_deferred_list_error_index(const mo_failure_t *f, size_t *indexp)
{
    if (!f || !indexp || !f->has_index) return MO_EINVAL;
    *indexp = f->index;
    return 0;
}

static bool code_is_known(int code)
{
    return code < 0 && strcmp(mo_err_name(code), "UNKNOWN") != 0;
}

int mo_failure_format(const mo_failure_t *f, char *buf, size_t size)
{
    if (!f || (!buf && size > 0)) return MO_EINVAL;
    const char *sep = f->origin[0] ? ": " : "";
    int n;
    if (code_is_known(f->code) && f->message[0])
        n = snprintf(buf, size, "%s%s%s (%s: %s)", f->origin, sep, f->message, mo_err_name(f->code),
                     mo_strerror(f->code));
    else if (code_is_known(f->code))
        n = snprintf(buf, size, "%s%s%s (%s)", f->origin, sep, mo_strerror(f->code),
                     mo_err_name(f->code));
    else if (f->message[0])
        n = snprintf(buf, size, "%s%s%s (code %d)", f->origin, sep, f->message, f->code);
    else
        n = snprintf(buf, size, "%s%scode %d", f->origin, sep, f->code);
    return n < 0 ? MO_EINVAL : n;
}
