#include "test.h"

#include <limits.h>
#include <pthread.h>
#include <string.h>
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
    if (pthread_attr_init(&attr) || pthread_attr_setstacksize(&attr, stack_size)) return -1;
    if (pthread_create(&th, &attr, fn, arg)) return -1;
    pthread_attr_destroy(&attr);
    pthread_join(th, &ret);
    return (int)(intptr_t)ret;
}

const char *mo_test_morsel(void)
{
    static char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 16);
    assert_true(n > 0);
    path[n] = '\0';
    strcpy(strrchr(path, '/') + 1, "morsel");
    /* CMake builds the tests that call this only with the CLI. */
    if (access(path, X_OK) != 0) fail_msg("no executable morsel beside the test: %s", path);
    return path;
}
