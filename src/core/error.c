/* Error names and descriptions: one list (MO_ERRNO_MAP in common.h) feeds
 * the MO_E* codes, mo_strerror() and mo_err_name(). */
#include "core_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

const char *mo_strerror(int err)
{
    if (err > 0) err = -err;
    switch (err) {
    case 0:
        return "success";
#define MO__ERR_MSG(name, value, msg)                                                              \
    case MO_##name:                                                                                \
        return msg;
        MO_ERRNO_MAP(MO__ERR_MSG)
#undef MO__ERR_MSG
    default:
        return "unknown error";
    }
}

const char *mo_err_name(int err)
{
    if (err > 0) err = -err;
    switch (err) {
    case 0:
        return "OK";
#define MO__ERR_NAME(name, value, msg)                                                             \
    case MO_##name:                                                                                \
        return #name;
        MO_ERRNO_MAP(MO__ERR_NAME)
#undef MO__ERR_NAME
    default:
        return "UNKNOWN";
    }
}

void mo__check_failed(const char *where, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "morsel: internal check failed in %s: ", where);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}
