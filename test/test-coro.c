/* Coroutines: the context switch underneath them (coro_ctx.h), then the
 * public API (coro.h), offloading pieces to the pool, and the watchdog
 * naming a coroutine. */
/* MO_TEST_LABEL_THREADS (offloaded pieces run on pool threads) */
#include "test.h"

#include "work/coro_ctx.h"
#include "work/work_int.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include <signal.h>
#include <string.h>
#include <sys/mman.h>
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

/* Every register a callee must preserve survives switches both ways: each
 * side holds ten integers and eight doubles read from memory (so the
 * compiler cannot recompute them) across its switches, more than fit
 * anywhere but the callee-saved registers (x19-x28 and d8-d15 on aarch64,
 * rbx, rbp and r12-r15 on x86-64), and the other side fills the same
 * registers with its own values meanwhile. Meaningful in optimised builds,
 * where the values live in registers; a Debug build keeps them on the
 * stack. */
struct regs_run {
    struct mo__ctx main, co;
    volatile long ints[2][10];
    volatile double dbls[2][8];
    long bad[2];
};

enum { REGS_ROUNDS = 4 };

static __attribute__((noinline)) long hold_across(struct mo__ctx *self, struct mo__ctx *other,
                                                  const volatile long *in,
                                                  const volatile double *fl)
{
    long a0 = in[0], a1 = in[1], a2 = in[2], a3 = in[3], a4 = in[4];
    long a5 = in[5], a6 = in[6], a7 = in[7], a8 = in[8], a9 = in[9];
    double f0 = fl[0], f1 = fl[1], f2 = fl[2], f3 = fl[3];
    double f4 = fl[4], f5 = fl[5], f6 = fl[6], f7 = fl[7];
    for (int i = 0; i < REGS_ROUNDS; i++) mo__ctx_switch(self, other);
    long bad = (a0 != in[0]) + (a1 != in[1]) + (a2 != in[2]) + (a3 != in[3]) + (a4 != in[4]) +
               (a5 != in[5]) + (a6 != in[6]) + (a7 != in[7]) + (a8 != in[8]) + (a9 != in[9]);
    bad += (f0 != fl[0]) + (f1 != fl[1]) + (f2 != fl[2]) + (f3 != fl[3]) + (f4 != fl[4]) +
           (f5 != fl[5]) + (f6 != fl[6]) + (f7 != fl[7]);
    return bad;
}

static void regs_body(void *arg)
{
    struct regs_run *r = arg;
    r->bad[1] = hold_across(&r->co, &r->main, r->ints[1], r->dbls[1]);
    mo__ctx_exit(&r->co, &r->main);
}

static void test_ctx_keeps_callee_saved_registers(void **state)
{
    (void)state;
    struct regs_run *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    for (int side = 0; side < 2; side++) {
        for (int i = 0; i < 10; i++) r->ints[side][i] = (side + 1) * 0x1111111 + i * 7919;
        for (int i = 0; i < 8; i++) r->dbls[side][i] = (side + 1) * 1000.25 + i * 3.5;
    }
    r->bad[0] = r->bad[1] = -1;
    struct mo__stack st;
    assert_ok(mo__stack_alloc(&st, 64 * 1024));
    mo__ctx_init_thread(&r->main);
    assert_ok(mo__ctx_make(&r->co, &st, regs_body, r));
    /* Each side switches REGS_ROUNDS times inside hold_across(), main
     * first: main's checks run after the coroutine's last switch back, and
     * one more switch lets the coroutine check and exit. */
    r->bad[0] = hold_across(&r->main, &r->co, r->ints[0], r->dbls[0]);
    assert_int_equal(r->bad[0], 0);
    mo__ctx_switch(&r->main, &r->co);
    assert_int_equal(r->bad[1], 0);
    mo__ctx_release(&r->co);
    mo__stack_free(&st);
    free(r);
}

/* Floating-point control state belongs to the context that set it. The
 * tests link no libm, so the rounding mode is read and set directly: the
 * SSE MXCSR on x86-64, the FPCR on aarch64. */
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
#elif defined(__aarch64__)
static unsigned get_round(void)
{
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    return (unsigned)(fpcr >> 22) & 3;
}

static void set_round(unsigned mode)
{
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    fpcr = (fpcr & ~(UINT64_C(3) << 22)) | (uint64_t)mode << 22;
    __asm__ volatile("msr fpcr, %0" : : "r"(fpcr));
}

enum { RND_NEAREST = 0, RND_UP = 1, RND_DOWN = 2 };
#endif

#if defined(__x86_64__) || defined(__aarch64__)
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

/* A new context starts with its creator's rounding mode. */
static void fp_first_body(void *arg)
{
    struct fp_run *f = arg;
    f->seen_inside = get_round();
    mo__ctx_exit(&f->co, &f->main);
}

static void test_ctx_starts_with_creators_fp_control(void **state)
{
    (void)state;
    struct fp_run f = {0};
    struct mo__stack st;
    assert_ok(mo__stack_alloc(&st, 64 * 1024));
    mo__ctx_init_thread(&f.main);
    set_round(RND_DOWN);
    assert_ok(mo__ctx_make(&f.co, &st, fp_first_body, &f));
    set_round(RND_NEAREST);
    mo__ctx_switch(&f.main, &f.co);
    assert_int_equal(f.seen_inside, RND_DOWN);
    assert_int_equal(get_round(), RND_NEAREST);
    mo__ctx_release(&f.co);
    mo__stack_free(&st);
}
#else
static void test_ctx_keeps_fp_control_per_context(void **state)
{
    (void)state;
    skip(); /* the check reads the x86-64 MXCSR or the aarch64 FPCR */
}

static void test_ctx_starts_with_creators_fp_control(void **state)
{
    (void)state;
    skip();
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
    assert_int_equal(st.map_size, MO_CORO_GUARD_SIZE + page);
    assert_ptr_equal((char *)st.map + MO_CORO_GUARD_SIZE, st.lo);
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

/* In a death test's child: SIGSEGV goes to `handler`, on a stack of its
 * own (the faulting stack is unusable). */
static void catch_segv(void (*handler)(int, siginfo_t *, void *))
{
    static char altstack[64 * 1024];
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof(altstack)};
    struct sigaction sa = {.sa_sigaction = handler, .sa_flags = SA_SIGINFO | SA_ONSTACK};
    if (sigaltstack(&ss, NULL) != 0 || sigaction(SIGSEGV, &sa, NULL) != 0) _exit(3);
}

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

static int overflow_child(void *arg)
{
    (void)arg;
    struct overflow_run o;
    catch_segv(on_segv);
    if (mo__stack_alloc(&overflow_stack, 64 * 1024) != 0) _exit(3);
    mo__ctx_init_thread(&o.main);
    if (mo__ctx_make(&o.co, &overflow_stack, overflow_body, &o) != 0) _exit(3);
    mo__ctx_switch(&o.main, &o.co);
    _exit(0);
}

static void test_stack_overflow_faults_on_guard(void **state)
{
    (void)state;
    assert_int_equal(mo_test_child(overflow_child, NULL), 42);
}

/* The guard region is MO_CORO_GUARD_SIZE, not one page: a write 48 KiB
 * below the stack (where a 64 KiB local array on a 16 KiB stack begins)
 * faults instead of landing in the mapping below. Before the fix the guard
 * was one page, and the write went into the neighbour. The neighbour is
 * mapped right below on purpose, as the next coroutine's stack would be. */
static char *volatile far_write_target; /* read by the handler */

static void on_far_segv(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    _exit((char *)si->si_addr == far_write_target ? 42 : 43);
}

/* Whether nothing is mapped in [p, p + n): mincore() fails with ENOMEM on
 * an unmapped page. (MAP_FIXED_NOREPLACE would say it in one call, but
 * valgrind does not know that flag.) */
static bool range_unmapped(char *p, size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    unsigned char v;
    for (size_t off = 0; off < n; off += page)
        if (mincore(p + off, page, &v) == 0 || errno != ENOMEM) return false;
    return true;
}

static int far_write_child(void *arg)
{
    (void)arg;
    catch_segv(on_far_segv);
    struct mo__stack st;
    size_t n = 256 * 1024;
    char *below = MAP_FAILED;
    /* A stack with room below it for the neighbour; a stack whose room is
     * taken (by the sanitizers' mappings, say) stays mapped, so the next
     * one comes lower. */
    for (int tries = 0; below == MAP_FAILED && tries < 64; tries++) {
        if (mo__stack_alloc(&st, 16 * 1024) != 0) _exit(3);
        char *want = (char *)st.map - n;
        below = range_unmapped(want, n) ? mmap(want, n, PROT_READ | PROT_WRITE,
                                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)
                                        : MAP_FAILED;
    }
    far_write_target = (char *)st.lo - 48 * 1024;
    /* The target lies in the stack's own mapping, in its guard region. */
    if (far_write_target < (char *)st.map) _exit(5);
    /* Under an emulator (qemu-user places the guest's mappings itself) no
     * room may be found: the write must still fault, at the target. */
    if (below == (char *)st.map - n) memset(below, 0x5a, n);
    *(volatile char *)far_write_target = 1;
    _exit(*far_write_target == 1 ? 44 : 45); /* it landed in the neighbour */
}

static void test_far_write_below_the_stack_faults(void **state)
{
    (void)state;
    assert_int_equal(mo_test_child(far_write_child, NULL), 42); /* 44: the neighbour was written */
}

/* Through the public API: a coroutine with a 16 KiB stack that declares a
 * 64 KiB array faults (the child's handler exits 42) rather than writing
 * into the coroutine mapped below it, whose stack keeps its pattern. */
static volatile char *idle_pattern; /* the neighbour's stack, checked by the handler */

static int big_frame(mo_coro_t *co, void *arg)
{
    (void)arg;
    while (!idle_pattern) /* the neighbour first writes its pattern */
        if (mo_yield(co) != 0) return MO_ECANCELED;
    volatile char buf[64 * 1024];
    buf[0] = 1; /* the lowest byte first: far below a 16 KiB stack */
    for (size_t i = 1; i < sizeof(buf); i++) buf[i] = buf[i - 1];
    return buf[sizeof(buf) - 1] == 1 ? 0 : MO_EIO;
}

static int idle_coro(mo_coro_t *co, void *arg)
{
    volatile char pattern[4096];
    (void)arg;
    memset((char *)pattern, 0x5a, sizeof(pattern));
    idle_pattern = pattern;
    while (mo_yield(co) == 0) {
    }
    for (size_t i = 0; i < sizeof(pattern); i++)
        if (pattern[i] != 0x5a) _exit(44); /* corrupted by the neighbour */
    return 0;
}

static void on_frame_segv(int sig, siginfo_t *si, void *uc)
{
    (void)sig, (void)si, (void)uc;
    for (size_t i = 0; idle_pattern && i < 4096; i++)
        if (idle_pattern[i] != 0x5a) _exit(44); /* faulted, but only after writing into it */
    _exit(42);
}

static int big_frame_child(void *arg)
{
    (void)arg;
    catch_segv(on_frame_segv);
    mo_loop_t *loop;
    if (mo_loop_new(&loop, MO_LOOP_VIRTUAL_CLOCK) != 0) _exit(3);
    mo_task_t *idle;
    struct mo_coro_opts small = {.stack_size = 16 * 1024};
    /* Mapped first, so the next mapping (the idle one) lands below it. */
    if (mo_coro_spawn(loop, big_frame, NULL, &small, NULL) != 0) _exit(3);
    if (mo_coro_spawn(loop, idle_coro, NULL, NULL, &idle) != 0) _exit(3);
    mo_loop_run(loop, MO_RUN_NOWAIT);
    mo_task_stop(idle);
    mo_loop_run(loop, MO_RUN_DEFAULT);
    _exit(0); /* no fault, no corruption seen: the overflow went elsewhere */
}

static void test_big_frame_on_small_stack_faults(void **state)
{
    (void)state;
    assert_int_equal(mo_test_child(big_frame_child, NULL),
                     42); /* 44: the neighbour's stack was written */
}

/* ---- coroutines ---- */

struct fake_clock {
    int64_t now;
};

static int64_t fake_read(void *arg)
{
    return ((struct fake_clock *)arg)->now;
}

struct counter {
    struct fake_clock *clock;
    struct mo_test_log *log;
    int tag;
    int n;
    int got;
};

static int count_up(mo_coro_t *co, void *arg)
{
    struct counter *c = arg;
    for (int i = 0; i < c->n; i++) {
        if (c->log) c->log->tags[c->log->len++] = c->tag;
        if (c->clock) c->clock->now += MO_MSEC(1);
        c->got++;
        int err = mo_yield(co);
        if (err) return err;
    }
    return mo_coro_return(co, c, NULL);
}

/* The outcome of a task's Deferred: 1 value, -code failure, 0 unfired. */
static int outcome(mo_task_t *t, void **valuep, const char **msgp)
{
    mo_deferred_t *d = mo_task_deferred(t);
    mo__coop_verify(mo_deferred_loop(d)); /* the task states agree with the ring and the list */
    void *v = NULL;
    const mo_failure_t *f = NULL;
    int err = mo_deferred_result(d, &v, &f);
    int r = err == MO_EAGAIN ? 0 : f ? -abs(mo_failure_code(f)) : 1;
    if (valuep) *valuep = v;
    if (msgp) *msgp = f ? mo_failure_message(f) : NULL;
    mo_deferred_unref(d);
    return r;
}

static void test_coro_runs_and_returns_value(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct counter c = {.n = 1000};
    mo_task_t *t;
    assert_ok(mo_coro_spawn(loop, count_up, &c, NULL, &t));
    assert_int_equal(c.got, 0); /* starts in a later slice */
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(c.got, 1000);
    void *v;
    assert_int_equal(outcome(t, &v, NULL), 1);
    assert_ptr_equal(v, &c);
    struct mo_task_stats st;
    assert_ok(mo_task_stats(t, &st));
    assert_int_equal(st.steps, 1000);
    mo_task_release(t);
    mo_loop_free(loop);
}

/* Two coroutines whose every step costs a whole slice alternate, one
 * step per loop pass. */
static void test_coros_alternate_per_slice(void **state)
{
    (void)state;
    struct fake_clock clock = {0};
    mo_loop_t *loop = mo_test_virtual_loop();
    assert_ok(mo__coop_set_clock(loop, fake_read, &clock));
    struct mo_test_log log = {0};
    struct counter a = {.clock = &clock, .log = &log, .tag = 'A', .n = 3};
    struct counter b = {.clock = &clock, .log = &log, .tag = 'B', .n = 3};
    assert_ok(mo_coro_spawn(loop, count_up, &a, NULL, NULL));
    assert_ok(mo_coro_spawn(loop, count_up, &b, NULL, NULL));
    assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT));
    assert_int_equal(log.len, 1);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    const char *want = "ABABAB";
    assert_int_equal(log.len, 6);
    for (int i = 0; i < 6; i++) assert_int_equal(log.tags[i], want[i]);
    mo_loop_free(loop);
}

/* The seed's walk in miniature: recursion with a yield at every level, and
 * the loop gets control between them. */
struct tree {
    struct fake_clock *clock;
    int visited;
    int max_depth;
};

static int visit_tree(mo_coro_t *co, struct tree *t, int depth)
{
    t->visited++;
    t->clock->now += MO_USEC(400);
    int err = mo_yield(co);
    if (err) return err;
    if (depth == t->max_depth) return 0;
    for (int i = 0; i < 2; i++)
        if ((err = visit_tree(co, t, depth + 1)) != 0) return err;
    return 0;
}

static int walk_tree(mo_coro_t *co, void *arg)
{
    return visit_tree(co, arg, 0);
}

static void tick(mo_loop_t *loop, void *arg)
{
    (void)loop;
    ++*(int *)arg;
}

static void test_coro_recursion_yields_from_depth(void **state)
{
    (void)state;
    struct fake_clock clock = {0};
    mo_loop_t *loop = mo_test_virtual_loop();
    assert_ok(mo__coop_set_clock(loop, fake_read, &clock));
    struct tree tr = {.clock = &clock, .max_depth = 9};
    mo_task_t *t;
    assert_ok(mo_coro_spawn(loop, walk_tree, &tr, NULL, &t));
    int passes = 0, ticks = 0;
    while (mo_task_state(t) != MO_TASK_DONE) {
        assert_ok(mo_call_soon(loop, tick, &ticks));
        assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT));
        passes++;
    }
    assert_int_equal(tr.visited, 1023);
    /* 400 us steps in 1 ms slices: two or three per pass. */
    assert_true(passes >= 1023 / 3 && passes <= 1023 / 2 + 1);
    /* The loop polled after every slice: each pass ran the tick queued in
     * the pass before (the last one is still queued). */
    assert_int_equal(ticks, passes - 1);
    assert_int_equal(outcome(t, NULL, NULL), 1);
    mo_task_release(t);
    mo_loop_free(loop);
}

/* Recursion deeper than the default stack allows, with a bigger stack. */
static int deep_coro(mo_coro_t *co, void *arg)
{
    (void)co;
    *(int *)arg = deep(3000, NULL); /* about 1.5 MiB of frames */
    return 0;
}

static void test_coro_stack_size_option(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    int result = 0;
    struct mo_coro_opts opts = {.stack_size = 8 << 20};
    assert_ok(mo_coro_spawn(loop, deep_coro, &result, &opts, NULL));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(result, 3001);
    mo_loop_free(loop);
}

/* inlineCallbacks: await a Deferred that fires later. */
struct awaiter {
    mo_loop_t *loop;
    int fail_code;
    bool handle;
    int await_rc;
    void *value;
    bool unwound;
    int64_t delay;
};

static void later_value(mo_result_t *result, void *arg)
{
    struct awaiter *a = arg;
    if (a->fail_code)
        mo_result_fail(result, a->fail_code, "later_value", "it broke");
    else
        mo_result_set(result, a, NULL);
}

static int await_later(mo_coro_t *co, void *arg)
{
    struct awaiter *a = arg;
    mo_deferred_t *d;
    assert_ok(mo_deferred_call_later(a->loop, a->delay, later_value, a, &d));
    mo_dtor_fn dtor = NULL;
    a->await_rc = mo_await(co, d, &a->value, &dtor);
    a->unwound = true;
    if (a->await_rc && !a->handle) return a->await_rc;
    return 0;
}

static void test_await_gets_value(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct awaiter a = {.loop = loop, .delay = MO_MSEC(5)};
    mo_task_t *t;
    assert_ok(mo_coro_spawn(loop, await_later, &a, NULL, &t));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(mo_task_state(t), MO_TASK_WAITING);
    assert_false(a.unwound);
    assert_ok(mo_loop_advance(loop, MO_MSEC(5)));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(a.await_rc, 0);
    assert_ptr_equal(a.value, &a);
    assert_int_equal(outcome(t, NULL, NULL), 1);
    mo_task_release(t);
    mo_loop_free(loop);
}

static void test_await_failure_unhandled_fails_task(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct awaiter a = {.loop = loop, .delay = MO_MSEC(1), .fail_code = MO_EACCES};
    mo_task_t *t;
    assert_ok(mo_coro_spawn(loop, await_later, &a, NULL, &t));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_ok(mo_loop_advance(loop, MO_MSEC(1)));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(a.await_rc, MO_EACCES);
    const char *msg;
    assert_int_equal(outcome(t, NULL, &msg), MO_EACCES);
    assert_string_equal(msg, "it broke"); /* the awaited failure itself */
    mo_deferred_t *d = mo_task_deferred(t);
    void *v;
    mo_dtor_fn dt;
    mo_failure_t *f;
    assert_ok(mo_deferred_take(d, &v, &dt, &f));
    mo_failure_unref(f);
    mo_deferred_unref(d);
    mo_task_release(t);
    mo_loop_free(loop);
}

static void test_await_failure_handled(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct awaiter a = {.loop = loop, .delay = 0, .fail_code = 1234, .handle = true};
    mo_task_t *t;
    assert_ok(mo_coro_spawn(loop, await_later, &a, NULL, &t));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(a.await_rc, 1234); /* application codes pass as they are */
    assert_int_equal(outcome(t, NULL, NULL), 1);
    mo_task_release(t);
    mo_loop_free(loop);
}

static int return_code(mo_coro_t *co, void *arg)
{
    (void)co;
    return *(int *)arg;
}

static void test_coro_error_code_fails_task(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    int code = MO_ENOSPC;
    mo_task_t *t;
    assert_ok(mo_coro_spawn(loop, return_code, &code, NULL, &t));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(outcome(t, NULL, NULL), MO_ENOSPC);
    mo_deferred_t *d = mo_task_deferred(t);
    void *v;
    mo_dtor_fn dt;
    mo_failure_t *f;
    assert_ok(mo_deferred_take(d, &v, &dt, &f));
    mo_failure_unref(f);
    mo_deferred_unref(d);
    mo_task_release(t);
    mo_loop_free(loop);
}

static void test_stop_while_awaiting_unwinds(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct awaiter a = {.loop = loop, .delay = MO_SEC(60)};
    mo_task_t *t;
    assert_ok(mo_coro_spawn(loop, await_later, &a, NULL, &t));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_ok(mo_task_stop(t));
    assert_int_equal(outcome(t, NULL, NULL), MO_ECANCELED);
    assert_false(a.unwound);                      /* it unwinds in the next slice */
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT)); /* the 60 s timer was cancelled */
    assert_true(a.unwound);
    assert_int_equal(a.await_rc, MO_ECANCELED);
    assert_mo(MO_EALREADY, mo_task_stop(t));
    struct mo_cooperator_stats cs;
    assert_ok(mo_cooperator_stats(loop, &cs));
    assert_int_equal(cs.tasks, 0);
    mo_task_release(t);
    mo_loop_free(loop);
}

static void test_stop_while_yielding_unwinds(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct counter c = {.n = 1 << 30};
    mo_task_t *t;
    assert_ok(mo_coro_spawn(loop, count_up, &c, NULL, &t));
    assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT));
    assert_true(c.got > 0);
    assert_ok(mo_task_stop(t));
    int got = c.got;
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(c.got, got); /* its yield returned MO_ECANCELED: it returned */
    assert_int_equal(outcome(t, NULL, NULL), MO_ECANCELED);
    mo_task_release(t);
    mo_loop_free(loop);
}

static void test_loop_free_drops_suspended_coro(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct awaiter a = {.loop = loop, .delay = MO_SEC(60)};
    struct counter c = {.n = 1 << 30};
    assert_ok(mo_coro_spawn(loop, await_later, &a, NULL, NULL));
    assert_ok(mo_coro_spawn(loop, count_up, &c, NULL, NULL));
    assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT));
    mo_loop_free(loop); /* ASan and valgrind check that nothing leaks */
}

static int pause_self(mo_coro_t *co, void *arg)
{
    int *phase = arg;
    *phase = 1;
    assert_ok(mo_task_pause(mo_coro_task(co)));
    assert_ok(mo_yield(co));
    *phase = 2;
    return 0;
}

static void test_coro_pauses_itself(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    int phase = 0;
    mo_task_t *t;
    assert_ok(mo_coro_spawn(loop, pause_self, &phase, NULL, &t));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(phase, 1);
    assert_int_equal(mo_task_state(t), MO_TASK_PAUSED);
    assert_ok(mo_task_resume(t));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(phase, 2);
    mo_task_release(t);
    mo_loop_free(loop);
}

static mo_coro_t *leaked_co;

static int bad_calls(mo_coro_t *co, void *arg)
{
    mo_loop_t *loop = arg;
    mo_deferred_t *d;
    void *v;
    assert_mo(MO_EINVAL, mo_await(co, NULL, NULL, NULL));
    assert_ok(mo_deferred_new_succeeded(loop, NULL, NULL, &d));
    assert_mo(MO_EINVAL, mo_await(co, d, &v, NULL)); /* d released */
    assert_ok(mo_deferred_new_succeeded(loop, NULL, NULL, &d));
    assert_ok(mo_await(co, d, NULL, NULL));
    leaked_co = co;
    return 0;
}

static void test_coro_bad_input(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct mo_coro_opts bad = {.slice = -1};
    assert_mo(MO_EINVAL, mo_coro_spawn(NULL, return_code, NULL, NULL, NULL));
    assert_mo(MO_EINVAL, mo_coro_spawn(loop, NULL, NULL, NULL, NULL));
    assert_mo(MO_EINVAL, mo_coro_spawn(loop, return_code, NULL, &bad, NULL));
    assert_mo(MO_EINVAL, mo_yield(NULL));
    assert_mo(MO_EINVAL, mo_coro_return(NULL, NULL, NULL));
    assert_null(mo_coro_task(NULL));
    assert_null(mo_coro_failure(NULL));
    assert_mo(MO_EINVAL, mo_coro_fail(NULL, mo_failure_new(MO_EIO, "x", NULL))); /* released */
    mo_task_t *t;
    assert_ok(mo_coro_spawn(loop, bad_calls, loop, NULL, &t));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(outcome(t, NULL, NULL), 1);
    mo_task_release(t);
    mo_loop_free(loop);
}

/* mo_yield() and mo_await() from outside their coroutine. */
struct handle_keeper {
    struct fake_clock clock;
    mo_coro_t *co;
};

static int keep_handle(mo_coro_t *co, void *arg)
{
    struct handle_keeper *k = arg;
    k->co = co;
    do k->clock.now += MO_MSEC(1);
    while (mo_yield(co) == 0);
    return 0;
}

static void test_yield_outside_coro_einval(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct handle_keeper k = {{0}, NULL};
    assert_ok(mo__coop_set_clock(loop, fake_read, &k.clock));
    mo_task_t *t;
    assert_ok(mo_coro_spawn(loop, keep_handle, &k, NULL, &t));
    assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT)); /* one step: suspended in its first yield */
    mo_coro_t *co = k.co;
    assert_non_null(co);
    assert_mo(MO_EINVAL, mo_yield(co));
    mo_deferred_t *d;
    assert_ok(mo_deferred_new_succeeded(loop, NULL, NULL, &d));
    assert_mo(MO_EINVAL, mo_await(co, d, NULL, NULL));
    assert_ok(mo_task_stop(t));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    mo_task_release(t);
    mo_loop_free(loop);
}

/* ---- offloading pieces to the worker pool ---- */

static atomic_int values_freed;
static void value_free(void *p)
{
    atomic_fetch_add(&values_freed, 1);
    free(p);
}

/* A piece: input squared, in a fresh int, or a failure; it can hold until
 * released. */
struct piece {
    atomic_int started, go, ran;
    int hold;
    int input;
    int fail_code;
    int with_failure;
};

static int piece_fn(void *arg, void **valuep, mo_dtor_fn *dtorp, mo_failure_t **failurep)
{
    struct piece *p = arg;
    atomic_store(&p->started, 1);
    while (p->hold && !atomic_load(&p->go)) sched_yield();
    int *v = malloc(sizeof(*v));
    if (!v) return MO_ENOMEM;
    *v = p->input * p->input;
    *valuep = v;
    *dtorp = value_free;
    if (p->with_failure) *failurep = mo_failure_new(p->fail_code, "piece_fn", "bad piece");
    atomic_fetch_add(&p->ran, 1);
    return p->fail_code;
}

/* Squares 1..5 on workers, its arguments on its own stack; the last value
 * is dropped (valuep and dtorp NULL). */
struct squarer {
    int sum;
    int dropped_rc;
};

static int square_all(mo_coro_t *co, void *arg)
{
    struct squarer *s = arg;
    for (int i = 1; i <= 5; i++) {
        struct piece p = {.input = i};
        void *v;
        mo_dtor_fn dtor;
        int rc = mo_coro_offload(co, piece_fn, &p, &v, &dtor);
        if (rc) return rc;
        s->sum += *(int *)v;
        dtor(v);
    }
    struct piece last = {.input = 9};
    s->dropped_rc = mo_coro_offload(co, piece_fn, &last, NULL, NULL);
    return 0;
}

static void test_coro_offload_values(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct squarer s = {0, -1};
    mo_task_t *t;
    atomic_store(&values_freed, 0);
    assert_ok(mo_coro_spawn(loop, square_all, &s, NULL, &t));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(s.sum, 1 + 4 + 9 + 16 + 25);
    assert_ok(s.dropped_rc);
    assert_int_equal(atomic_load(&values_freed), 6);
    assert_int_equal(outcome(t, NULL, NULL), 1);
    mo_task_release(t);
    mo_loop_free(loop);
}

/* While the piece holds, the loop runs a timer, which sees the coroutine's
 * task waiting and releases the piece. */
struct holder {
    mo_loop_t *loop;
    struct piece piece;
    mo_task_t *task;
    int ticks;
    int state;
    int rc;
    int value;
};

static int offload_held(mo_coro_t *co, void *arg)
{
    struct holder *h = arg;
    void *v;
    mo_dtor_fn dtor;
    h->rc = mo_coro_offload(co, piece_fn, &h->piece, &v, &dtor);
    if (h->rc) return h->rc;
    h->value = *(int *)v;
    dtor(v);
    return 0;
}

static void holder_tick(mo_loop_t *loop, void *arg)
{
    struct holder *h = arg;
    if (atomic_load(&h->piece.started) && ++h->ticks >= 3) {
        h->state = mo_task_state(h->task);
        atomic_store(&h->piece.go, 1);
        return;
    }
    assert_ok(mo_call_later(loop, MO_MSEC(1), holder_tick, h, NULL));
}

static void test_coro_offload_loop_runs_meanwhile(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct holder h = {.piece = {.hold = 1, .input = 8}, .rc = -1};
    assert_ok(mo_coro_spawn(loop, offload_held, &h, NULL, &h.task));
    assert_ok(mo_call_later(loop, MO_MSEC(1), holder_tick, &h, NULL));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(h.ticks, 3);
    assert_int_equal(h.state, MO_TASK_WAITING);
    assert_ok(h.rc);
    assert_int_equal(h.value, 64);
    assert_int_equal(outcome(h.task, NULL, NULL), 1);
    mo_task_release(h.task);
    mo_loop_free(loop);
}

/* A failed piece comes back as its code, with its failure; passed up, it
 * fails the task with that failure. */
struct failing {
    int rc1, rc2;
    char msg1[32];
};

static int offload_failing(mo_coro_t *co, void *arg)
{
    struct failing *f = arg;
    struct piece p1 = {.input = 1, .fail_code = MO_EIO, .with_failure = 1};
    struct piece p2 = {.input = 2, .fail_code = MO_ERANGE};
    void *v = NULL;
    mo_dtor_fn dtor = NULL;
    f->rc1 = mo_coro_offload(co, piece_fn, &p1, &v, &dtor);
    snprintf(f->msg1, sizeof(f->msg1), "%s", mo_failure_message(mo_coro_failure(co)));
    f->rc2 = mo_coro_offload(co, piece_fn, &p2, &v, &dtor);
    return f->rc2;
}

static void test_coro_offload_failures(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct failing f = {0};
    mo_task_t *t;
    atomic_store(&values_freed, 0);
    assert_ok(mo_coro_spawn(loop, offload_failing, &f, NULL, &t));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_mo(MO_EIO, f.rc1);
    assert_string_equal(f.msg1, "bad piece");
    assert_mo(MO_ERANGE, f.rc2);
    assert_int_equal(atomic_load(&values_freed), 2); /* stored beside the failures */
    mo_deferred_t *d = mo_task_deferred(t);
    const mo_failure_t *fl = NULL;
    assert_ok(mo_deferred_result(d, NULL, &fl));
    assert_mo(MO_ERANGE, mo_failure_code(fl));
    assert_string_equal(mo_failure_origin(fl), "mo_task_offload"); /* passed up as is */
    mo_deferred_unref(d);
    mo_task_release(t);
    mo_loop_free(loop);
}

/* Stopped while its piece runs on its stack's data: the outcome is out at
 * once, but the coroutine unwinds only once the piece returned. */
struct stack_piece {
    struct piece *_Atomic piece; /* on the coroutine's stack, published */
    int rc;
    int unwound;
};

static int offload_from_stack(mo_coro_t *co, void *arg)
{
    struct stack_piece *s = arg;
    struct piece p = {.hold = 1, .input = 3};
    atomic_store(&s->piece, &p);
    void *v;
    mo_dtor_fn dtor;
    s->rc = mo_coro_offload(co, piece_fn, &p, &v, &dtor);
    s->unwound = 1;
    return s->rc;
}

static void test_coro_stop_while_offload_runs(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct stack_piece s = {.rc = -1};
    mo_task_t *t;
    assert_ok(mo_coro_spawn(loop, offload_from_stack, &s, NULL, &t));
    assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT));
    struct piece *p = atomic_load(&s.piece);
    assert_non_null(p);
    while (!atomic_load(&p->started)) sched_yield();
    assert_ok(mo_task_stop(t));
    assert_int_equal(outcome(t, NULL, NULL), MO_ECANCELED);
    assert_int_equal(mo_task_state(t), MO_TASK_DONE);
    for (int i = 0; i < 3; i++) assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT));
    assert_false(s.unwound); /* the piece still runs on its stack's data */
    atomic_store(&values_freed, 0);
    atomic_store(&p->go, 1);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_true(s.unwound);
    assert_mo(MO_ECANCELED, s.rc);
    assert_int_equal(atomic_load(&values_freed), 1); /* the result, discarded */
    struct mo_cooperator_stats cs;
    assert_ok(mo_cooperator_stats(loop, &cs));
    assert_int_equal(cs.tasks, 0);
    mo_task_release(t);
    mo_loop_free(loop);
}

/* Stopped while its piece is queued behind a held one (one worker): the
 * piece is taken back and the coroutine unwinds at once. */
static int held_thread_fn(void *arg, void **valuep, mo_dtor_fn *dtorp, mo_failure_t **failurep)
{
    (void)valuep;
    (void)dtorp;
    (void)failurep;
    struct piece *p = arg;
    atomic_store(&p->started, 1);
    while (!atomic_load(&p->go)) sched_yield();
    return 0;
}

static void test_coro_stop_while_offload_queued(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    mo_pool_t *pool;
    assert_ok(mo_pool_new(&pool, 1));
    struct piece blocker = {0};
    mo_deferred_t *d;
    assert_ok(mo_deferred_call_on_pool(pool, loop, held_thread_fn, &blocker, &d));
    while (!atomic_load(&blocker.started)) sched_yield();
    struct holder h = {.piece = {.input = 4}, .rc = -1};
    struct mo_coro_opts opts = {.pool = pool};
    assert_ok(mo_coro_spawn(loop, offload_held, &h, &opts, &h.task));
    assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT));
    assert_int_equal(mo_task_state(h.task), MO_TASK_WAITING);
    assert_ok(mo_task_stop(h.task));
    assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT)); /* it unwinds */
    assert_mo(MO_ECANCELED, h.rc);
    assert_int_equal(atomic_load(&h.piece.started), 0);
    atomic_store(&blocker.go, 1);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(atomic_load(&h.piece.started), 0); /* never ran */
    mo_deferred_unref(d);
    assert_ok(mo_pool_free(pool, 0));
    mo_task_release(h.task);
    mo_loop_free(loop);
}

/* mo_await() on mo_deferred_call_on_pool()'s Deferred: the same, with
 * allocations, and a Deferred the coroutine could cancel. */
static int await_thread(mo_coro_t *co, void *arg)
{
    struct holder *h = arg;
    mo_deferred_t *d;
    int rc = mo_deferred_call_on_pool(NULL, h->loop, piece_fn, &h->piece, &d);
    if (rc) return rc;
    void *v;
    mo_dtor_fn dtor;
    h->rc = mo_await(co, d, &v, &dtor);
    if (h->rc) return h->rc;
    h->value = *(int *)v;
    dtor(v);
    return 0;
}

static void test_coro_await_defer_to_thread(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct holder h = {.loop = loop, .piece = {.input = 5}, .rc = -1};
    assert_ok(mo_coro_spawn(loop, await_thread, &h, NULL, &h.task));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_ok(h.rc);
    assert_int_equal(h.value, 25);
    assert_int_equal(outcome(h.task, NULL, NULL), 1);
    mo_task_release(h.task);
    mo_loop_free(loop);
}

/* Bad input from inside: what each call answers. */
struct offload_misuse {
    int null_fn, half_out, after_stop;
};

static int offload_misuse(mo_coro_t *co, void *arg)
{
    struct offload_misuse *m = arg;
    struct piece p = {.input = 1};
    void *v;
    mo_dtor_fn dtor;
    m->null_fn = mo_coro_offload(co, NULL, &p, &v, &dtor);
    m->half_out = mo_coro_offload(co, piece_fn, &p, &v, NULL);
    assert_ok(mo_task_stop(mo_coro_task(co)));
    m->after_stop = mo_coro_offload(co, piece_fn, &p, &v, &dtor);
    return m->after_stop;
}

static void test_coro_offload_bad_input(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    struct piece p = {.input = 1};
    assert_mo(MO_EINVAL, mo_coro_offload(NULL, piece_fn, &p, NULL, NULL));
    struct offload_misuse m = {0};
    mo_task_t *t;
    assert_ok(mo_coro_spawn(loop, offload_misuse, &m, NULL, &t));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_mo(MO_EINVAL, m.null_fn);
    assert_mo(MO_EINVAL, m.half_out);
    assert_mo(MO_ECANCELED, m.after_stop);
    assert_int_equal(atomic_load(&p.started), 0);
    mo_task_release(t);
    /* From outside its coroutine. */
    struct handle_keeper k = {{0}, NULL};
    assert_ok(mo__coop_set_clock(loop, fake_read, &k.clock));
    assert_ok(mo_coro_spawn(loop, keep_handle, &k, NULL, &t));
    assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT));
    assert_mo(MO_EINVAL, mo_coro_offload(k.co, piece_fn, &p, NULL, NULL));
    assert_ok(mo_task_stop(t));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(atomic_load(&p.started), 0);
    mo_task_release(t);
    mo_loop_free(loop);
}

/* ---- the watchdog names the coroutine ---- */

/* Reports that came while the coroutine was busy: the others (under
 * valgrind, translating code can hold the loop too) do not count. */
struct wd_seen {
    pthread_mutex_t mutex;
    atomic_int busy;
    int blocked;
    char symbol[128];
};

static void wd_hook(const struct mo_watchdog_report *r, void *arg)
{
    struct wd_seen *s = arg;
    pthread_mutex_lock(&s->mutex);
    if (r->event == MO_WATCHDOG_BLOCKED && atomic_load(&s->busy) && !s->blocked++)
        snprintf(s->symbol, sizeof(s->symbol), "%s", r->symbol ? r->symbol : "(none)");
    pthread_mutex_unlock(&s->mutex);
}

/* Not static: dladdr() names only functions in the dynamic symbol table.
 * Holds the loop for 60 ms between two yields. */
int mo_test_busy_coro(mo_coro_t *co, void *arg);
int mo_test_busy_coro(mo_coro_t *co, void *arg)
{
    struct wd_seen *s = arg;
    int rc = mo_yield(co);
    if (rc) return rc;
    atomic_store(&s->busy, 1);
    int64_t start = mo_hrtime();
    while (mo_hrtime() - start < MO_MSEC(60)) sched_yield();
    atomic_store(&s->busy, 0);
    return mo_yield(co);
}

static void test_watchdog_names_coroutine(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct wd_seen s = {.mutex = PTHREAD_MUTEX_INITIALIZER};
    mo_task_t *t;
    assert_ok(mo_coro_spawn(loop, mo_test_busy_coro, &s, NULL, &t));
    assert_ok(mo_watchdog_start(loop, MO_MSEC(10), wd_hook, &s));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_ok(mo_watchdog_stop(loop));
    assert_int_equal(s.blocked, 1);
    assert_string_equal(s.symbol, "mo_test_busy_coro");
    struct mo_task_stats ts;
    assert_ok(mo_task_stats(t, &ts));
    assert_true(ts.overlong >= 1); /* under valgrind, its first step may be one too */
    mo_task_release(t);
    mo_loop_free(loop);
}

/* ---- stopping is quiet (DESIGN rule 20) ---- */

static void count_reports(mo_loop_t *loop, const mo_failure_t *f, void *arg)
{
    (void)loop, (void)f;
    ++*(int *)arg;
}

static int yield_forever(mo_coro_t *co, void *arg)
{
    (void)arg;
    while (mo_yield(co) == 0) {
    }
    return MO_ECANCELED; /* passes the stop up, as a coroutine usually does */
}

static int fail_eio(mo_coro_t *co, void *arg)
{
    (void)co, (void)arg;
    return MO_EIO;
}

/* Coroutines nobody watches, stopped by mo_task_stop(), mo_cooperator_stop()
 * or the loop's free: nothing reported, although each returns MO_ECANCELED
 * while it unwinds. One that failed: reported once. */
static void test_stopping_unobserved_coroutines_is_quiet(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_virtual_loop();
    int reports = 0;
    assert_ok(mo_loop_set_error_hook(loop, count_reports, &reports));
    mo_task_t *t;
    assert_ok(mo_coro_spawn(loop, yield_forever, NULL, NULL, &t));
    assert_ok(mo_coro_spawn(loop, yield_forever, NULL, NULL, NULL));
    assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT));
    assert_ok(mo_task_stop(t));
    mo_task_release(t);
    assert_int_equal(mo_cooperator_stop(loop), 1);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT)); /* they unwind */
    assert_int_equal(reports, 0);
    assert_ok(mo_coro_spawn(loop, fail_eio, NULL, NULL, NULL));
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT));
    assert_int_equal(reports, 1);
    assert_ok(mo_coro_spawn(loop, yield_forever, NULL, NULL, NULL));
    assert_ok(mo_loop_run(loop, MO_RUN_NOWAIT));
    mo_loop_free(loop); /* stops it: still quiet */
    assert_int_equal(reports, 1);
}

/* ---- allocation failure: every allocation in turn ---- */

static void oom_set(mo_result_t *r, void *arg)
{
    mo_result_set(r, arg, NULL);
}

struct oom_c {
    mo_loop_t *loop;
    int sum;
};

/* Yields, awaits a delayed Deferred, offloads a piece to the default pool,
 * and returns what it got; each failure it meets is passed up as its
 * result (MO_ENOMEM is the one allowed). */
static int oom_coro(mo_coro_t *co, void *arg)
{
    struct oom_c *c = arg;
    for (int i = 0; i < 3; i++)
        if (mo_yield(co)) return MO_ECANCELED;
    mo_deferred_t *d;
    int rc = mo_deferred_call_later(c->loop, MO_USEC(10), oom_set, c, &d);
    if (rc) return rc;
    void *v;
    mo_dtor_fn dtor;
    if ((rc = mo_await(co, d, &v, &dtor)) != 0) return rc;
    if (v != c) return MO_ENOTRECOVERABLE;
    struct piece p = {.input = 4};
    if ((rc = mo_coro_offload(co, piece_fn, &p, &v, &dtor)) != 0) return rc;
    c->sum += *(int *)v;
    dtor(v);
    return mo_coro_return(co, c, NULL);
}

static void oom_hook(mo_loop_t *loop, const mo_failure_t *f, void *arg)
{
    (void)loop;
    if (mo_failure_code(f) != MO_ENOMEM) ++*(int *)arg; /* only out of memory may go unhandled */
}

static int coro_oom_scenario(void *arg)
{
    (void)arg;
    mo_loop_t *loop;
    int rc = mo_loop_new(&loop, 0), failed = 0, bad = 0;
    if (rc) return rc;
    rc = mo_loop_set_error_hook(loop, oom_hook, &bad);
    if (rc == MO_ENOMEM) { /* the default hook would print the expected reports */
        mo_loop_free(loop);
        return rc;
    }
    struct oom_c c[3] = {{loop, 0}, {loop, 0}, {loop, 0}};
    mo_task_t *t[3] = {NULL};
    struct mo_coro_opts small = {.stack_size = 16 * 1024};
    for (int i = 0; i < 3; i++) {
        /* The third without a handle: nobody can watch it. */
        rc = mo_coro_spawn(loop, oom_coro, &c[i], i ? &small : NULL, i < 2 ? &t[i] : NULL);
        if (rc == MO_ENOMEM)
            failed = 1;
        else if (rc)
            return MO_ENOTRECOVERABLE;
    }
    if (mo_loop_run(loop, MO_RUN_DEFAULT) != 0) return MO_ENOTRECOVERABLE;
    mo__coop_verify(loop);
    for (int i = 0; i < 2; i++) {
        if (!t[i]) continue;
        void *v = NULL;
        int r = outcome(t[i], &v, NULL);
        if (r == MO_ENOMEM)
            failed = 1;
        else if (r != 1 || v != &c[i] || c[i].sum != 16)
            return MO_ENOTRECOVERABLE;
        mo_task_release(t[i]);
    }
    mo_loop_free(loop);
    return bad ? MO_ENOTRECOVERABLE : failed ? MO_ENOMEM : 0;
}

static void test_out_of_memory_each_allocation_in_turn(void **state)
{
    (void)state;
    mo_test_alloc_install();
    long n = mo_test_oom_sweep(coro_oom_scenario, NULL, 8);
    printf("coroutines: %ld allocations, each failed in turn\n", n);
}

MO_TEST_MAIN(
    cmocka_unit_test(test_ctx_switch_alternates), cmocka_unit_test(test_ctx_deep_recursion),
    cmocka_unit_test(test_ctx_keeps_fp_control_per_context),
    cmocka_unit_test(test_ctx_keeps_callee_saved_registers),
    cmocka_unit_test(test_ctx_starts_with_creators_fp_control),
    cmocka_unit_test(test_stack_alloc_rounds_and_rejects_zero),
    cmocka_unit_test(test_stack_overflow_faults_on_guard),
    cmocka_unit_test(test_far_write_below_the_stack_faults),
    cmocka_unit_test(test_big_frame_on_small_stack_faults),
    cmocka_unit_test(test_coro_runs_and_returns_value),
    cmocka_unit_test(test_coros_alternate_per_slice),
    cmocka_unit_test(test_coro_recursion_yields_from_depth),
    cmocka_unit_test(test_coro_stack_size_option), cmocka_unit_test(test_await_gets_value),
    cmocka_unit_test(test_await_failure_unhandled_fails_task),
    cmocka_unit_test(test_await_failure_handled), cmocka_unit_test(test_coro_error_code_fails_task),
    cmocka_unit_test(test_stop_while_awaiting_unwinds),
    cmocka_unit_test(test_stop_while_yielding_unwinds),
    cmocka_unit_test(test_loop_free_drops_suspended_coro),
    cmocka_unit_test(test_coro_pauses_itself), cmocka_unit_test(test_coro_bad_input),
    cmocka_unit_test(test_yield_outside_coro_einval), cmocka_unit_test(test_coro_offload_values),
    cmocka_unit_test(test_coro_offload_loop_runs_meanwhile),
    cmocka_unit_test(test_coro_offload_failures),
    cmocka_unit_test(test_coro_stop_while_offload_runs),
    cmocka_unit_test(test_coro_stop_while_offload_queued),
    cmocka_unit_test(test_coro_await_defer_to_thread),
    cmocka_unit_test(test_coro_offload_bad_input), cmocka_unit_test(test_watchdog_names_coroutine),
    cmocka_unit_test(test_out_of_memory_each_allocation_in_turn),
    cmocka_unit_test(test_stopping_unobserved_coroutines_is_quiet))
