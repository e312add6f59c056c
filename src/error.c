/* Error descriptions, version, clock and the allocation seam: the small
 * things every other file uses. */
#include "internal.h"

#include <stdlib.h>
#include <time.h>

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

int64_t mo_hrtime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * INT64_C(1000000000) + ts.tv_nsec;
}

unsigned mo_version(void)
{
    return (MO_VERSION_MAJOR << 16) | (MO_VERSION_MINOR << 8) | MO_VERSION_PATCH;
}

#define MO__STR_(x) #x
#define MO__STR(x)  MO__STR_(x)

const char *mo_version_string(void)
{
    return MO__STR(MO_VERSION_MAJOR) "." MO__STR(MO_VERSION_MINOR) "." MO__STR(MO_VERSION_PATCH);
}

/* The one process-wide setting, documented in common.h. */
static struct {
    mo_malloc_fn malloc_fn;
    mo_realloc_fn realloc_fn;
    mo_calloc_fn calloc_fn;
    mo_free_fn free_fn;
} mo__allocator = {malloc, realloc, calloc, free};

int mo_replace_allocator(mo_malloc_fn malloc_fn, mo_realloc_fn realloc_fn, mo_calloc_fn calloc_fn,
                         mo_free_fn free_fn)
{
    if (!malloc_fn || !realloc_fn || !calloc_fn || !free_fn) return MO_EINVAL;
    mo__allocator.malloc_fn = malloc_fn;
    mo__allocator.realloc_fn = realloc_fn;
    mo__allocator.calloc_fn = calloc_fn;
    mo__allocator.free_fn = free_fn;
    return 0;
}

void *mo__malloc(size_t size)
{
    return mo__allocator.malloc_fn(size);
}

void *mo__realloc(void *ptr, size_t size)
{
    return mo__allocator.realloc_fn(ptr, size);
}

void *mo__calloc(size_t count, size_t size)
{
    return mo__allocator.calloc_fn(count, size);
}

void mo__free(void *ptr)
{
    mo__allocator.free_fn(ptr);
}
