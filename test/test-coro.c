/* Coroutines: the context switch underneath them (coro_ctx.h), then the
 * public API (coro.h). */
#include "test.h"

#include "internal.h"

#include "coro_ctx.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- the context switch ---- */

struct pingpong {
    struct mo__ctx main, co;
    int log[64];
    int len;
    int rounds;
    volatile double keep; /* a callee-saved-register-ish value across switches */
};

static void pingpong_body(void *arg)
{
    struct pingpong *p = arg;
    double local = 1.5;
    for (int i = 0; i < p->rounds; i++) {
        p->log[p->len++] = 100 + i;
        local *= 2;
        mo__ctx_switch(&p->co, &p->main);
    }
    p->keep = local;
    mo__ctx_exit(&p->co, &p->main);
}

static void test_ctx_switch_alternates(void **state)
{
    (void)state;
    struct pingpong p = {.rounds = 5};
    struct mo__stack st;
    assert_ok(mo__stack_alloc(&st, 64 * 1024));
    mo__ctx_init_thread(&p.main);
    assert_ok(mo__ctx_make(&p.co, &st, pingpong_body, &p));
    int mine = 7;
    for (int i = 0; i <= p.rounds; i++) {
        p.log[p.len++] = i;
        mo__ctx_switch(&p.main, &p.co);
        mine += i; /* locals of this side survive the other side's run */
    }
    assert_int_equal(mine, 7 + 15);
    int want[] = {0, 100, 1, 101, 2, 102, 3, 103, 4, 104, 5};
    assert_int_equal(p.len, 11);
    assert_memory_equal(p.log, want, sizeof(want));
    assert_true(p.keep == 1.5 * 32);
    mo__ctx_release(&p.co);
    mo__stack_free(&st);
}

/* Deep recursion on a coroutine stack: about 600 KiB of frames. */
static int deep(int n, volatile char *prev)
{
    volatile char buf[512];
    buf[0] = (char)n;
    buf[511] = prev ? prev[0] : 0;
    return n == 0 ? buf[0] + buf[511] : deep(n - 1, buf) + 1;
}

struct deep_run {
    struct mo__ctx main, co;
    int result;
};

static void deep_body(void *arg)
{
    struct deep_run *d = arg;
    d->result = deep(1000, NULL);
    mo__ctx_exit(&d->co, &d->main);
}

static void test_ctx_deep_recursion(void **state)
{
    (void)state;
    struct deep_run d = {0};
    struct mo__stack st;
    assert_ok(mo__stack_alloc(&st, 4 << 20));
    mo__ctx_init_thread(&d.main);
    assert_ok(mo__ctx_make(&d.co, &st, deep_body, &d));
    mo__ctx_switch(&d.main, &d.co);
    assert_int_equal(d.result, 1001);
    mo__ctx_release(&d.co);
    mo__stack_free(&st);
}

/* Floating-point control state belongs to the context that set it. The
 * tests link no libm, so the SSE rounding mode is read and set directly. */
#if defined(__x86_64__)
static unsigned get_round(void)
{
    unsigned mx;
    __asm__ volatile("stmxcsr %0" : "=m"(mx));
    return (mx >> 13) & 3;
}

static void set_round(unsigned mode)
{
    unsigned mx;
    __asm__ volatile("stmxcsr %0" : "=m"(mx));
    mx = (mx & ~(3u << 13)) | mode << 13;
    __asm__ volatile("ldmxcsr %0" : : "m"(mx));
}

enum { RND_NEAREST = 0, RND_DOWN = 1, RND_UP = 2 };

struct fp_run {
    struct mo__ctx main, co;
    unsigned seen_inside;
};

static void fp_body(void *arg)
{
    struct fp_run *f = arg;
    set_round(RND_UP);
    mo__ctx_switch(&f->co, &f->main);
    f->seen_inside = get_round();
    mo__ctx_exit(&f->co, &f->main);
}

static void test_ctx_keeps_fp_control_per_context(void **state)
{
    (void)state;
    struct fp_run f = {0};
    struct mo__stack st;
    assert_ok(mo__stack_alloc(&st, 64 * 1024));
    mo__ctx_init_thread(&f.main);
    assert_ok(mo__ctx_make(&f.co, &st, fp_body, &f));
    set_round(RND_NEAREST);
    mo__ctx_switch(&f.main, &f.co);
#ifndef MO__CTX_UCONTEXT
    /* swapcontext() does not promise this; the assembly switch does. */
    assert_int_equal(get_round(), RND_NEAREST);
#endif
    set_round(RND_DOWN);
    mo__ctx_switch(&f.main, &f.co);
    assert_int_equal(f.seen_inside, RND_UP);
    set_round(RND_NEAREST);
    mo__ctx_release(&f.co);
    mo__stack_free(&st);
}
#else
static void test_ctx_keeps_fp_control_per_context(void **state)
{
    (void)state;
    skip(); /* the check reads the x86-64 MXCSR */
}
#endif

static void test_stack_alloc_rounds_and_rejects_zero(void **state)
{
    (void)state;
    struct mo__stack st;
    long page = sysconf(_SC_PAGESIZE);
    assert_mo(MO_EINVAL, mo__stack_alloc(&st, 0));
    assert_mo(MO_ENOMEM, mo__stack_alloc(&st, SIZE_MAX - 10));
    assert_ok(mo__stack_alloc(&st, 1));
    assert_int_equal(st.size, page);
    assert_int_equal(st.map_size, 2 * page);
    assert_ptr_equal((char *)st.map + page, st.lo);
    memset(st.lo, 0xab, st.size); /* the whole usable part is writable */
    mo__stack_free(&st);
    assert_null(st.map);
}

/* An overflow must hit the guard page: run unbounded recursion on a small
 * coroutine stack in a child process. The child's SIGSEGV handler (on an
 * alternate stack) exits 42 if the faulting address is in the guard page.
 * Under AddressSanitizer, ASan's own handler reports the overflow and the
 * child exits 1. */
static int runaway(volatile char *p, volatile int *stop)
{
    volatile char buf[256];
    buf[0] = p ? p[0] : 1;
    return *stop ? buf[0] : runaway(buf, stop) + buf[0];
}

struct overflow_run {
    struct mo__ctx main, co;
};

static struct mo__stack overflow_stack; /* read by the signal handler */

static void overflow_body(void *arg)
{
    struct overflow_run *o = arg;
    volatile int never = 0;
    runaway(NULL, &never);
    mo__ctx_exit(&o->co, &o->main);
}

static void on_segv(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    char *addr = si->si_addr, *guard = overflow_stack.map;
    _exit(addr >= guard && addr < (char *)overflow_stack.lo ? 42 : 43);
}

static void overflow_child(void)
{
    static char altstack[64 * 1024];
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof(altstack)};
    struct sigaction sa = {.sa_sigaction = on_segv, .sa_flags = SA_SIGINFO | SA_ONSTACK};
    struct overflow_run o;
    if (sigaltstack(&ss, NULL) != 0 || sigaction(SIGSEGV, &sa, NULL) != 0) _exit(3);
    if (mo__stack_alloc(&overflow_stack, 64 * 1024) != 0) _exit(3);
    mo__ctx_init_thread(&o.main);
    if (mo__ctx_make(&o.co, &overflow_stack, overflow_body, &o) != 0) _exit(3);
    mo__ctx_switch(&o.main, &o.co);
    _exit(0);
}

static void test_stack_overflow_faults_on_guard(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) overflow_child();
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 42);
}

MO_TEST_MAIN(cmocka_unit_test(test_ctx_switch_alternates),
             cmocka_unit_test(test_ctx_deep_recursion),
             cmocka_unit_test(test_ctx_keeps_fp_control_per_context),
             cmocka_unit_test(test_stack_alloc_rounds_and_rejects_zero),
             cmocka_unit_test(test_stack_overflow_faults_on_guard))
