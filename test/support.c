#include "test.h"

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
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

const char *mo_test_program(const char *name)
{
    static char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    assert_true(n > 0);
    path[n] = '\0';
    char *slash = strrchr(path, '/');
    assert_non_null(slash);
    size_t len = strlen(name);
    if ((size_t)(slash + 1 - path) + len + 1 > sizeof path) fail_msg("path too long");
    memcpy(slash + 1, name, len + 1);
    /* CMake builds these tests only with the programs: absence is a failure. */
    if (access(path, X_OK) != 0) fail_msg("no executable %s beside the test: %s", name, path);
    return path;
}

int mo_test_sh(const char *fmt, ...)
{
    char cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof cmd) fail_msg("command too long: %.100s...", cmd);
    signal(SIGPIPE, SIG_DFL); /* whatever the test runner set, as in a terminal */
    int status = system(cmd);
    if (status == -1) fail_msg("cannot run the shell: %s", cmd);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

const char *mo_test_unprivileged(void)
{
    if (getuid() != 0) return "";
    if (mo_test_sh("command -v setpriv > /dev/null") != 0) fail_msg("no setpriv (util-linux)");
    return "setpriv --reuid=65534 --regid=65534 --clear-groups";
}

char *mo_test_slurp(const char *path, size_t *lenp)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    do {
        if (len + 4096 + 1 > cap) {
            cap = (len + 4096 + 1) * 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        n = fread(buf + len, 1, 4096, f);
        len += n;
    } while (n > 0);
    fclose(f);
    buf[len] = '\0';
    if (lenp) *lenp = len;
    return buf;
}
