/* Stackful execution contexts: the machine half of coroutines (coro.c).
 *
 * A context is a saved stack pointer on its own stack. mo__ctx_swap() (in
 * src/work/arch/<cpu>_switch.S) pushes the callee-saved registers on the current
 * stack, stores the stack pointer in `from`, loads `to`'s and pops its
 * registers: everything the C calling convention lets a called function
 * clobber is dead across the call anyway, so that is all a switch needs.
 * On other processors, or when built with -DMO_CTX_UCONTEXT, the switch is
 * swapcontext(), slower (it saves the signal mask with a system call) but
 * portable.
 *
 * Stacks come from mmap with a PROT_NONE guard region below them
 * (MO_CORO_GUARD_SIZE, coro.h says what it catches), so an overflow faults
 * at once instead of corrupting the neighbouring memory.
 *
 * Under AddressSanitizer and ThreadSanitizer every switch is announced to
 * the sanitizer (the fiber APIs), which otherwise would take the new stack
 * for a wild pointer or lose track of happens-before.
 *
 * Rules: a context runs `fn(arg)` from mo__ctx_make() the first time it is
 * switched to; `fn` must never return, it leaves for good through
 * mo__ctx_exit(). Switches are symmetric: the thread's own context (from
 * mo__ctx_init_thread()) must be the first to switch into a new context.
 */
#ifndef MORSEL_CORO_CTX_H
#define MORSEL_CORO_CTX_H

#include <stdbool.h>
#include <stddef.h>

#if defined(MO_CTX_UCONTEXT) || !(defined(__x86_64__) || defined(__aarch64__))
#define MO__CTX_UCONTEXT 1
#include <ucontext.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define MO__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MO__ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define MO__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MO__TSAN 1
#endif
#endif
#ifdef MO__ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef MO__TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* A mapped stack: the mapping with its guard region, and the usable part. */
struct mo__stack {
    void *map;
    size_t map_size;
    void *lo; /* lowest usable byte, just above the guard page */
    size_t size;
    unsigned valgrind_id; /* the stack as registered with valgrind, if built with its header */
};

typedef void (*mo__ctx_fn)(void *arg);

struct mo__ctx {
#ifdef MO__CTX_UCONTEXT
    ucontext_t uc;
#else
    void *sp; /* saved stack pointer, while the context is switched out */
#endif
    mo__ctx_fn fn;
    void *arg;
    /* The sanitizers' view: the stack's bounds (learned on the first switch
     * for the thread's own context), ASan's fake stack, TSan's fiber. */
    const void *stack_lo;
    size_t stack_size;
    void *asan_fake;
    void *tsan_fiber;
    bool tsan_own;
    struct mo__ctx *from; /* who switched to this context last */
};

/* Maps a stack of at least `size` usable bytes (rounded up to whole pages)
 * above a guard region of MO_CORO_GUARD_SIZE. Returns 0, MO_EINVAL (size
 * 0) or MO_ENOMEM (no memory or address space, or vm.max_map_count
 * reached). */
int mo__stack_alloc(struct mo__stack *s, size_t size);
void mo__stack_free(struct mo__stack *s);

/* Makes `ctx` stand for the calling thread's current stack. */
void mo__ctx_init_thread(struct mo__ctx *ctx);

/* Prepares `ctx` to run fn(arg) on stack `s` when first switched to.
 * Returns 0 or MO_ENOMEM (ThreadSanitizer could not make a fiber). */
int mo__ctx_make(struct mo__ctx *ctx, const struct mo__stack *s, mo__ctx_fn fn, void *arg);

/* Releases what the sanitizers keep for a context; call once it will never
 * run again (after its mo__ctx_exit(), or to drop a context suspended for
 * good). */
void mo__ctx_release(struct mo__ctx *ctx);

/* Saves the current registers in `from` and resumes `to`. Returns when
 * someone switches back to `from`. Defined in the .S file (or coro_ctx.c). */
void mo__ctx_swap(struct mo__ctx *from, struct mo__ctx *to);

/* Switches from the running context `from` to `to`, telling the sanitizers. */
static inline void mo__ctx_switch(struct mo__ctx *from, struct mo__ctx *to)
{
    to->from = from;
#ifdef MO__ASAN
    __sanitizer_start_switch_fiber(&from->asan_fake, to->stack_lo, to->stack_size);
#endif
#ifdef MO__TSAN
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
    mo__ctx_swap(from, to);
#ifdef MO__ASAN
    struct mo__ctx *prev = from->from;
    __sanitizer_finish_switch_fiber(from->asan_fake, &prev->stack_lo, &prev->stack_size);
#endif
}

/* Leaves `from` for good: like mo__ctx_switch() but never returns, and tells
 * ASan that `from`'s stack frames are dead. */
_Noreturn void mo__ctx_exit(struct mo__ctx *from, struct mo__ctx *to);

#endif /* MORSEL_CORO_CTX_H */
