/* e2e_client --check (check.c). */
#ifndef MORSEL_E2E_CHECK_H
#define MORSEL_E2E_CHECK_H

#include <stdatomic.h>

/* Checks docs/protocol.md against the server at host:port (host NULL:
 * 127.0.0.1), walking `tree` (made with --make-tree --special). Prints one
 * line per check; returns 0 when all passed, 1 otherwise. */
int e2e_check(const char *host, unsigned port, const char *tree, atomic_int *cancel);

#endif
