/* A hand-written poll() loop that runs a morsel loop inside it
 * (morsel/embed.h), and the host's work meeting morsel's: the host reads
 * lines from stdin; each line is hashed on morsel's worker pool
 * (mo_deferred_call_on_pool), and the result, back on this thread through the
 * loop's fd, is printed by a Deferred callback. A morsel heartbeat every
 * 100 ms shows delayed calls working through the timeout.
 *
 *   usage: some-command | example_embed_poll */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "morsel.h"

static int hashing; /* lines on the pool */

/* On a worker thread: FNV-1a of the line, slowly, as real work would be. */
static int hash_line(void *arg, void **valuep, mo_dtor_fn *dtorp, mo_failure_t **failurep)
{
    (void)failurep;
    const char *line = arg;
    uint64_t h = 14695981039346656037ULL;
    for (int round = 0; round < 20000; round++)
        for (const char *p = line; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    uint64_t *out = malloc(sizeof *out);
    if (!out) return MO_ENOMEM;
    *out = h;
    *valuep = out;
    *dtorp = free;
    return 0;
}

static void print_hash(mo_result_t *result, void *arg)
{
    printf("%016llx  %s\n", (unsigned long long)*(uint64_t *)mo_result_value(result), (char *)arg);
}

static void line_done(mo_result_t *result, void *arg)
{
    (void)result;
    free(arg);
    hashing--;
}

static void hash_later(mo_loop_t *loop, const char *line, size_t len)
{
    char *copy = strndup(line, len);
    mo_deferred_t *d;
    if (!copy || mo_deferred_call_on_pool(NULL, loop, hash_line, copy, &d) != 0) {
        free(copy);
        return;
    }
    hashing++;
    mo_deferred_add_callback(d, print_hash, copy);
    mo_deferred_add_both(d, line_done, copy);
    mo_deferred_unref(d);
}

static void heartbeat(mo_loop_t *loop, void *arg)
{
    fprintf(stderr, "heartbeat %d\n", ++*(int *)arg);
    mo_call_later(loop, MO_MSEC(100), heartbeat, arg, NULL);
}

int main(void)
{
    mo_loop_t *loop;
    int beats = 0, eof = 0;
    if (mo_loop_new(&loop, 0) != 0 || mo_embed_attach(loop, NULL, NULL) != 0) return 1;
    mo_call_later(loop, MO_MSEC(100), heartbeat, &beats, NULL);
    char buf[65536];
    size_t have = 0;
    while (!eof || hashing) {
        int ms;
        mo_embed_timeout_ms(loop, &ms); /* right before sleeping */
        struct pollfd p[2] = {{mo_embed_fd(loop), POLLIN, 0}, {eof ? -1 : 0, POLLIN, 0}};
        if (poll(p, 2, ms) < 0) break;
        if (!eof && p[1].revents) {
            ssize_t n = read(0, buf + have, sizeof buf - have);
            if (n <= 0) eof = 1, n = 0;
            have += (size_t)n;
            char *start = buf, *nl;
            while ((nl = memchr(start, '\n', have - (size_t)(start - buf))) != NULL) {
                hash_later(loop, start, (size_t)(nl - start));
                start = nl + 1;
            }
            have -= (size_t)(start - buf);
            memmove(buf, start, have);
            if (have == sizeof buf || (eof && have)) hash_later(loop, buf, have), have = 0;
        }
        mo_embed_run(loop); /* harmless when nothing is due */
    }
    mo_loop_free(loop);
    return 0;
}
