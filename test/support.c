#include "test.h"

#include <pthread.h>
#include <unistd.h>

mo_loop_t *mo_test_virtual_loop(void)
{
    mo_loop_t *loop = NULL;
    assert_ok(mo_loop_new(&loop, MO_LOOP_VIRTUAL_CLOCK));
    return loop;
}

mo_loop_t *mo_test_loop(void)
{
    mo_loop_t *loop = NULL;
    assert_ok(mo_loop_new(&loop, 0));
    return loop;
}

void mo_test_log_cb(mo_loop_t *loop, void *arg)
{
    (void)loop;
    struct mo_test_tag *t = arg;
    assert_true(t->log->len < sizeof(t->log->tags) / sizeof(t->log->tags[0]));
    t->log->tags[t->log->len++] = t->tag;
}

int mo_test_run_on_small_stack(size_t stack_size, void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    pthread_t th;
    void *ret = NULL;
    /* Some targets have a larger minimum (aarch64 glibc: 128 KiB, for its
     * 64 KiB pages); the smallest stack the system takes is still small. */
    long min = sysconf(_SC_THREAD_STACK_MIN);
    if (min > 0 && stack_size < (size_t)min) stack_size = (size_t)min;
    if (pthread_attr_init(&attr) || pthread_attr_setstacksize(&attr, stack_size)) return -1;
    if (pthread_create(&th, &attr, fn, arg)) return -1;
    pthread_attr_destroy(&attr);
    pthread_join(th, &ret);
    return (int)(intptr_t)ret;
}
