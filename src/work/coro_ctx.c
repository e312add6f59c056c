/* Stackful execution contexts: stacks with guard pages, and the first frame
 * of a new context. The switch itself is in src/work/arch/<cpu>_switch.S, or
 * swapcontext() below where there is no assembly version. */
#include "work/work_int.h"

#include "work/coro_ctx.h"

#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef MO__ASAN
#include <sanitizer/asan_interface.h>
#endif
/* Valgrind's client requests are inline no-ops outside valgrind; telling it
 * about each stack keeps it from mistaking a switch for a stack overflow. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define MO__VALGRIND 1
#endif
#endif

static size_t page_size(void)
{
    long n = sysconf(_SC_PAGESIZE);
    return n > 0 ? (size_t)n : 4096;
}

int mo__stack_alloc(struct mo__stack *s, size_t size)
{
    size_t page = page_size();
    size_t guard = (MO_CORO_GUARD_SIZE + page - 1) & ~(page - 1);
    if (size == 0) return MO_EINVAL;
    if (size > SIZE_MAX - guard - page) return MO_ENOMEM;
    size = (size + page - 1) & ~(page - 1);
    /* One mapping, then the guard made inaccessible: two map entries in
     * all (vm.max_map_count, coro.h). The guard costs address space only. */
    void *map = mmap(NULL, guard + size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (map == MAP_FAILED) return MO_ENOMEM;
    /* The stack grows down: the guard is below it. */
    if (mprotect(map, guard, PROT_NONE) != 0) {
        munmap(map, guard + size);
        return MO_ENOMEM;
    }
    *s = (struct mo__stack){map, guard + size, (char *)map + guard, size, 0};
#ifdef MO__VALGRIND
    s->valgrind_id = VALGRIND_STACK_REGISTER((char *)s->lo, (char *)s->lo + size);
#endif
    return 0;
}

void mo__stack_free(struct mo__stack *s)
{
    if (!s->map) return;
#ifdef MO__VALGRIND
    VALGRIND_STACK_DEREGISTER(s->valgrind_id);
#endif
#ifdef MO__ASAN
    /* Frames of a context dropped while suspended leave poisoned redzones
     * in the shadow; a later mapping at this address must not inherit them. */
    __asan_unpoison_memory_region(s->lo, s->size);
#endif
    munmap(s->map, s->map_size);
    s->map = NULL;
}

void mo__ctx_init_thread(struct mo__ctx *ctx)
{
    *ctx = (struct mo__ctx){0};
#ifdef MO__TSAN
    ctx->tsan_fiber = __tsan_get_current_fiber();
#endif
}

/* Runs on the new stack: finish the sanitizer's switch, then the body. */
static void ctx_start(void *p)
{
    struct mo__ctx *ctx = p;
#ifdef MO__ASAN
    struct mo__ctx *prev = ctx->from;
    __sanitizer_finish_switch_fiber(NULL, &prev->stack_lo, &prev->stack_size);
#endif
    ctx->fn(ctx->arg);
}

#ifdef MO__CTX_UCONTEXT
/* makecontext() passes int arguments: the pointer travels in two halves. */
static void ctx_start_uc(unsigned hi, unsigned lo)
{
    ctx_start((void *)(((uintptr_t)hi << 16 << 16) | (uintptr_t)lo));
}

static int ctx_frame(struct mo__ctx *ctx, const struct mo__stack *s)
{
    if (getcontext(&ctx->uc) != 0) return MO_ENOMEM;
    ctx->uc.uc_stack.ss_sp = s->lo;
    ctx->uc.uc_stack.ss_size = s->size;
    ctx->uc.uc_link = NULL;
    uintptr_t p = (uintptr_t)ctx;
    makecontext(&ctx->uc, (void (*)(void))ctx_start_uc, 2, (unsigned)(p >> 16 >> 16),
                (unsigned)(p & 0xffffffffu));
    return 0;
}

void mo__ctx_swap(struct mo__ctx *from, struct mo__ctx *to)
{
    swapcontext(&from->uc, &to->uc);
}
#else
_Static_assert(offsetof(struct mo__ctx, sp) == 0, "the .S files expect sp first");

void mo__ctx_boot(void); /* in the .S file */

#if defined(__x86_64__)
/* The frame mo__ctx_swap pops (see x86_64_switch.S), with the caller's
 * floating-point control state, so a coroutine computes like its creator. */
static int ctx_frame(struct mo__ctx *ctx, const struct mo__stack *s)
{
    uintptr_t top = ((uintptr_t)s->lo + s->size) & ~(uintptr_t)15;
    uint64_t *f = (uint64_t *)(top - 16) - 8;
    uint32_t mxcsr;
    uint16_t fpucw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpucw));
    f[0] = mxcsr | (uint64_t)fpucw << 32;
    f[1] = f[2] = f[5] = f[6] = 0;  /* r15, r14, rbx, rbp */
    f[3] = (uintptr_t)ctx_start;    /* r13: the function */
    f[4] = (uintptr_t)ctx;          /* r12: its argument */
    f[7] = (uintptr_t)mo__ctx_boot; /* return address */
    f[8] = f[9] = 0;                /* where mo__ctx_boot's frame ends */
    ctx->sp = f;
    return 0;
}
#elif defined(__aarch64__)
/* The frame mo__ctx_swap pops (see aarch64_switch.S), with the caller's
 * floating-point control register, so a coroutine computes like its
 * creator. */
static int ctx_frame(struct mo__ctx *ctx, const struct mo__stack *s)
{
    uintptr_t top = ((uintptr_t)s->lo + s->size) & ~(uintptr_t)15;
    uint64_t *f = (uint64_t *)top - 22;
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    for (int i = 0; i < 22; i++) f[i] = 0;
    f[8] = (uintptr_t)ctx;           /* x19: the argument */
    f[9] = (uintptr_t)ctx_start;     /* x20: the function */
    f[19] = (uintptr_t)mo__ctx_boot; /* x30 */
    f[20] = fpcr;
    ctx->sp = f;
    return 0;
}
#endif
#endif

int mo__ctx_make(struct mo__ctx *ctx, const struct mo__stack *s, mo__ctx_fn fn, void *arg)
{
    *ctx = (struct mo__ctx){0};
    ctx->fn = fn;
    ctx->arg = arg;
    ctx->stack_lo = s->lo;
    ctx->stack_size = s->size;
    int err = ctx_frame(ctx, s);
    if (err) return err;
#ifdef MO__TSAN
    ctx->tsan_fiber = __tsan_create_fiber(0);
    if (!ctx->tsan_fiber) return MO_ENOMEM;
    ctx->tsan_own = true;
#endif
    return 0;
}

void mo__ctx_release(struct mo__ctx *ctx)
{
#ifdef MO__TSAN
    if (ctx->tsan_own) __tsan_destroy_fiber(ctx->tsan_fiber);
#endif
    ctx->tsan_own = false;
    ctx->tsan_fiber = NULL;
}

void mo__ctx_exit(struct mo__ctx *from, struct mo__ctx *to)
{
    to->from = from;
#ifdef MO__ASAN
    __sanitizer_start_switch_fiber(NULL, to->stack_lo, to->stack_size);
#endif
#ifdef MO__TSAN
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
    mo__ctx_swap(from, to);
    __builtin_unreachable();
}
