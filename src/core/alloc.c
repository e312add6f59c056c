/* The allocation seam: every allocation of the library goes through
 * mo__malloc() and friends, which call the functions given to
 * mo_replace_allocator() (libc's by default). */
#include "core_int.h"

#include <stdlib.h>

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

/* As libuv's uv__free(): a free never changes errno, so an error path can
 * release what it holds and still return -errno. */
void mo__free(void *ptr)
{
    int saved = errno;
    mo__allocator.free_fn(ptr);
    errno = saved;
}
