#include "test.h"

#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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

/* ---- the fault-injecting allocator ---- */

static struct {
    atomic_long calls, live, failed;
    atomic_long fail_at; /* 0: never */
    atomic_int lasting;
} alloc;

static bool alloc_fails(void)
{
    long n = atomic_fetch_add(&alloc.calls, 1) + 1, k = atomic_load(&alloc.fail_at);
    bool fail = k && (n == k || (n > k && atomic_load(&alloc.lasting)));
    if (fail) atomic_fetch_add(&alloc.failed, 1);
    return fail;
}

static void *alloc_malloc(size_t n)
{
    if (alloc_fails()) return NULL;
    void *p = malloc(n);
    if (p) atomic_fetch_add(&alloc.live, 1);
    return p;
}

static void *alloc_calloc(size_t c, size_t n)
{
    if (alloc_fails()) return NULL;
    void *p = calloc(c, n);
    if (p) atomic_fetch_add(&alloc.live, 1);
    return p;
}

static void *alloc_realloc(void *p, size_t n)
{
    if (alloc_fails()) return NULL;
    void *q = realloc(p, n);
    if (q && !p) atomic_fetch_add(&alloc.live, 1);
    return q;
}

static void alloc_free(void *p)
{
    if (p) atomic_fetch_sub(&alloc.live, 1);
    free(p);
}

void *mo_test_alloc_malloc(size_t n)
{
    return alloc_malloc(n);
}

void *mo_test_alloc_realloc(void *p, size_t n)
{
    return alloc_realloc(p, n);
}

void *mo_test_alloc_calloc(size_t c, size_t n)
{
    return alloc_calloc(c, n);
}

void mo_test_alloc_free(void *p)
{
    alloc_free(p);
}

void mo_test_alloc_install(void)
{
    assert_ok(mo_replace_allocator(alloc_malloc, alloc_realloc, alloc_calloc, alloc_free));
}

void mo_test_alloc_fail_at(long k, int lasting)
{
    atomic_store(&alloc.fail_at, 0);
    atomic_store(&alloc.calls, 0);
    atomic_store(&alloc.lasting, lasting);
    atomic_store(&alloc.fail_at, k);
}

long mo_test_alloc_calls(void)
{
    return atomic_load(&alloc.calls);
}

long mo_test_alloc_live(void)
{
    return atomic_load(&alloc.live);
}

long mo_test_alloc_failed(void)
{
    return atomic_load(&alloc.failed);
}

long mo_test_oom_sweep(int (*scenario)(void *arg), void *arg, long min)
{
    for (long k = 1;; k++) {
        long live = mo_test_alloc_live();
        mo_test_alloc_fail_at(k, 0);
        int rc = scenario(arg);
        long calls = mo_test_alloc_calls();
        mo_test_alloc_fail_at(0, 0);
        if (rc != 0 && rc != MO_ENOMEM)
            fail_msg("allocation %ld failing: the scenario gave %d (%s), not 0 or MO_ENOMEM", k, rc,
                     mo_err_name(rc));
        if (mo_test_alloc_live() != live)
            fail_msg("allocation %ld failing: %ld block(s) leaked", k, mo_test_alloc_live() - live);
        if (calls >= k) continue;
        if (rc != 0) fail_msg("without a failure the scenario gave %s", mo_err_name(rc));
        if (calls < min) fail_msg("the scenario made %ld allocations, fewer than %ld", calls, min);
        return calls;
    }
}

int mo_test_child(int (*fn)(void *arg), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(fn(arg));
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    int code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
    if (getenv("MO_TEST_CHILD_DEBUG")) fprintf(stderr, "child: %d\n", code);
    return code;
}

void mo_test_refuse_threads(void)
{
    if (geteuid() == 0) {
        const struct passwd *pw = getpwnam("nobody");
        if (!pw || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) _exit(120);
    }
    struct rlimit one = {1, 1};
    if (setrlimit(RLIMIT_NPROC, &one) != 0) _exit(121);
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
