/* morsel-libevent: a morsel loop inside a libevent event_base (the tests
 * of embed_host.h). MO_TEST_LABEL_THREADS */
#include "morsel/libevent.h"

#include "embed_host.h"

#include <stdlib.h>

struct ev_host {
    struct event_base *base;
    struct event *timer;
    void (*fn)(void *arg);
    void *arg;
};

static void *evh_create(void)
{
    struct ev_host *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    h->base = event_base_new();
    assert_non_null(h->base);
    return h;
}

/* As evh_create, but NULL when libevent runs out of memory. */
static void *evh_try_create(void)
{
    struct ev_host *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    h->base = event_base_new();
    if (!h->base) {
        free(h);
        return NULL;
    }
    return h;
}

/* libevent's allocations through the tests' fault-injecting allocator. */
static void evh_alloc_install(void)
{
    event_set_mem_functions(mo_test_alloc_malloc, mo_test_alloc_realloc, mo_test_alloc_free);
}

static void evh_destroy(void *host)
{
    struct ev_host *h = host;
    event_base_free(h->base);
    free(h);
}

static int evh_attach(mo_loop_t *loop, void *host)
{
    return mo_event_attach(loop, host ? ((struct ev_host *)host)->base : NULL);
}

static void evh_iterate(void *host, bool block)
{
    event_base_loop(((struct ev_host *)host)->base, block ? EVLOOP_ONCE : EVLOOP_NONBLOCK);
}

static void evh_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct ev_host *h = arg;
    h->fn(h->arg);
}

static void evh_timer_start(void *host, int ms, void (*fn)(void *arg), void *arg)
{
    struct ev_host *h = host;
    h->fn = fn;
    h->arg = arg;
    h->timer = event_new(h->base, -1, EV_PERSIST, evh_tick, h);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    assert_int_equal(event_add(h->timer, &tv), 0);
}

static void evh_timer_stop(void *host)
{
    struct ev_host *h = host;
    event_free(h->timer);
    h->timer = NULL;
}

static const struct host_ops host_ops = {
    evh_create,      evh_destroy,    evh_attach, mo_event_detach, evh_iterate,
    evh_timer_start, evh_timer_stop, true,       evh_try_create,  evh_alloc_install};

MO_TEST_MAIN(EMBED_HOST_TESTS)
