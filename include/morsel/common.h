/* morsel — common definitions: export macro, error codes, time units, version,
 * and the allocation seam.
 *
 * Every morsel function that can fail returns an int: 0 on success or a
 * negative MO_E* code. The codes are negated errno values, so a system error
 * passes through unchanged; mo_strerror() and mo_err_name() describe any of
 * them. A function that returns an error never calls the callback it was given.
 */
#ifndef MORSEL_COMMON_H
#define MORSEL_COMMON_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#if defined(MO_BUILDING_SHARED)
#define MO_EXTERN __attribute__((visibility("default")))
#else
#define MO_EXTERN
#endif

/* Marks a public name kept for one release after it was renamed: using it
 * warns, naming the replacement (CHANGELOG.md lists each). */
#if defined(__GNUC__)
#define MO_DEPRECATED(msg) __attribute__((deprecated(msg)))
#else
#define MO_DEPRECATED(msg)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The error list: one table feeds the constants, mo_strerror() and
 * mo_err_name(). XX(name, errno value, message). The resolver's errors
 * (MO_EAI_*), which have no errno, take values above every errno (libuv's
 * numbers). */
#define MO_ERRNO_MAP(XX)                                                                           \
    XX(EPERM, EPERM, "operation not permitted")                                                    \
    XX(ENOENT, ENOENT, "no such file, directory or handle")                                        \
    XX(ESRCH, ESRCH, "no such process")                                                            \
    XX(EINTR, EINTR, "interrupted system call")                                                    \
    XX(EIO, EIO, "i/o error")                                                                      \
    XX(ENXIO, ENXIO, "no such device or address")                                                  \
    XX(E2BIG, E2BIG, "argument list too long")                                                     \
    XX(EBADF, EBADF, "bad file descriptor")                                                        \
    XX(EAGAIN, EAGAIN, "resource temporarily unavailable")                                         \
    XX(ENOMEM, ENOMEM, "not enough memory")                                                        \
    XX(EACCES, EACCES, "permission denied")                                                        \
    XX(EFAULT, EFAULT, "bad address")                                                              \
    XX(EBUSY, EBUSY, "resource busy or locked")                                                    \
    XX(EEXIST, EEXIST, "already exists")                                                           \
    XX(EXDEV, EXDEV, "cross-device link not permitted")                                            \
    XX(ENODEV, ENODEV, "no such device")                                                           \
    XX(ENOTDIR, ENOTDIR, "not a directory")                                                        \
    XX(EISDIR, EISDIR, "is a directory")                                                           \
    XX(EINVAL, EINVAL, "invalid argument")                                                         \
    XX(ENFILE, ENFILE, "file table overflow")                                                      \
    XX(EMFILE, EMFILE, "too many open files")                                                      \
    XX(ENOSPC, ENOSPC, "no space left on device")                                                  \
    XX(EROFS, EROFS, "read-only file system")                                                      \
    XX(EPIPE, EPIPE, "broken pipe")                                                                \
    XX(EDOM, EDOM, "argument out of domain")                                                       \
    XX(ERANGE, ERANGE, "result out of range")                                                      \
    XX(EDEADLK, EDEADLK, "resource deadlock would occur")                                          \
    XX(ENAMETOOLONG, ENAMETOOLONG, "name too long")                                                \
    XX(ENOSYS, ENOSYS, "function not implemented")                                                 \
    XX(ENOTEMPTY, ENOTEMPTY, "directory not empty")                                                \
    XX(ELOOP, ELOOP, "too many symbolic links encountered")                                        \
    XX(EOVERFLOW, EOVERFLOW, "value too large for defined data type")                              \
    XX(ENOTSUP, ENOTSUP, "operation not supported")                                                \
    XX(ESHUTDOWN, ESHUTDOWN, "loop is closed or shutting down")                                    \
    XX(ETIMEDOUT, ETIMEDOUT, "operation timed out")                                                \
    XX(EALREADY, EALREADY, "already done: the call ran, was cancelled or fired")                   \
    XX(ESTALE, ESTALE, "stale handle")                                                             \
    XX(ECANCELED, ECANCELED, "operation canceled")                                                 \
    XX(ENOTRECOVERABLE, ENOTRECOVERABLE, "state not recoverable")                                  \
    XX(ENOTSOCK, ENOTSOCK, "socket operation on non-socket")                                       \
    XX(EMSGSIZE, EMSGSIZE, "message too long")                                                     \
    XX(EAFNOSUPPORT, EAFNOSUPPORT, "address family not supported")                                 \
    XX(EADDRINUSE, EADDRINUSE, "address already in use")                                           \
    XX(EADDRNOTAVAIL, EADDRNOTAVAIL, "address not available")                                      \
    XX(ENETUNREACH, ENETUNREACH, "network is unreachable")                                         \
    XX(ECONNABORTED, ECONNABORTED, "connection aborted")                                           \
    XX(ECONNRESET, ECONNRESET, "connection reset by peer")                                         \
    XX(ENOBUFS, ENOBUFS, "no buffer space available")                                              \
    XX(ENOTCONN, ENOTCONN, "socket is not connected")                                              \
    XX(ECONNREFUSED, ECONNREFUSED, "connection refused")                                           \
    XX(EHOSTUNREACH, EHOSTUNREACH, "host is unreachable")                                          \
    XX(EAI_AGAIN, 3001, "temporary failure in name resolution")                                    \
    XX(EAI_FAIL, 3006, "permanent failure in name resolution")                                     \
    XX(EAI_NONAME, 3008, "unknown host or service")

enum {
#define MO__ERR_ENUM(name, value, msg) MO_##name = -(value),
    MO_ERRNO_MAP(MO__ERR_ENUM)
#undef MO__ERR_ENUM
};

/* Describes an error code (negative, as morsel returns it; a positive errno
 * value is accepted too). Never NULL; the string is static. Any thread. */
MO_EXTERN const char *mo_strerror(int err);

/* The symbolic name of an error code, "EINVAL" for MO_EINVAL, or "UNKNOWN".
 * Never NULL; the string is static. Any thread. */
MO_EXTERN const char *mo_err_name(int err);

/* Time in morsel is int64_t nanoseconds of CLOCK_MONOTONIC. */
#define MO_NSEC(x) ((int64_t)(x))
#define MO_USEC(x) ((int64_t)(x)*INT64_C(1000))
#define MO_MSEC(x) ((int64_t)(x)*INT64_C(1000000))
#define MO_SEC(x)  ((int64_t)(x)*INT64_C(1000000000))

/* Reads CLOCK_MONOTONIC now, in nanoseconds. Any thread. */
MO_EXTERN int64_t mo_hrtime(void);

#define MO_VERSION_MAJOR 0
#define MO_VERSION_MINOR 1
#define MO_VERSION_PATCH 0

/* The library's version as (major << 16) | (minor << 8) | patch, and as a
 * static "major.minor.patch" string. Any thread. */
MO_EXTERN unsigned mo_version(void);
MO_EXTERN const char *mo_version_string(void);

/* The allocation seam. Every allocation morsel makes goes through these four
 * functions; they default to the C library's. Call mo_replace_allocator()
 * once, before any other morsel call, from one thread: replacing it later
 * would let memory from one allocator be freed by another. Returns
 * MO_EINVAL if any function is NULL. This is the library's only process-wide
 * setting. */
typedef void *(*mo_malloc_fn)(size_t size);
typedef void *(*mo_realloc_fn)(void *ptr, size_t size);
typedef void *(*mo_calloc_fn)(size_t count, size_t size);
typedef void (*mo_free_fn)(void *ptr);
MO_EXTERN int mo_replace_allocator(mo_malloc_fn malloc_fn, mo_realloc_fn realloc_fn,
                                   mo_calloc_fn calloc_fn, mo_free_fn free_fn);

#ifdef __cplusplus
}
#endif
#endif /* MORSEL_COMMON_H */
