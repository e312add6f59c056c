/* The monotonic clock every timestamp of the library comes from, and the
 * library's version. */
#include "core_int.h"

#include <time.h>

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
