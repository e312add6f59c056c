/* Context switch for x86-64 (System V ABI), used by src/coro_ctx.h.
 *
 * void mo__ctx_swap(struct mo__ctx *from, struct mo__ctx *to)
 *   rdi = from, rsi = to; the saved stack pointer is the struct's first member.
 *
 * Saves only what a callee must preserve: rbx, rbp, r12-r15, the SSE control
 * and status register (mxcsr) and the x87 control word. Everything else is
 * caller-saved, so the compiler has already spilled what it needs around
 * the call. The frame on the suspended stack, from the saved sp upwards:
 *   +0 mxcsr (4 bytes), +4 x87 control word (2 bytes, 2 padding)
 *   +8 r15, +16 r14, +24 r13, +32 r12, +40 rbx, +48 rbp, +56 return address
 * coro_ctx.c builds the same frame for a new context, with the return
 * address pointing at mo__ctx_boot, r12 = argument and r13 = function.
 */
/* Built with -DMO_CTX_UCONTEXT, the portable switch in coro_ctx.c is used. */
#ifndef MO_CTX_UCONTEXT

#if defined(__CET__) && (__CET__ & 1)
#define MO_ENDBR endbr64
#else
#define MO_ENDBR
#endif

    .text
    .globl  mo__ctx_swap
    .hidden mo__ctx_swap
    .type   mo__ctx_swap, @function
    .p2align 4
mo__ctx_swap:
    .cfi_startproc
    MO_ENDBR
    pushq   %rbp
    pushq   %rbx
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    subq    $8, %rsp
    stmxcsr (%rsp)
    fnstcw  4(%rsp)
    movq    %rsp, (%rdi)
    movq    (%rsi), %rsp
    ldmxcsr (%rsp)
    fldcw   4(%rsp)
    addq    $8, %rsp
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbx
    popq    %rbp
    ret
    .cfi_endproc
    .size   mo__ctx_swap, .-mo__ctx_swap

/* The first code a new context runs: mo__ctx_swap "returns" here with
 * r12 = argument, r13 = function and a 16-byte aligned stack. The function
 * never returns (it leaves through mo__ctx_exit); if it did, trap. The
 * return address is marked undefined so that debuggers and unwinders stop
 * here instead of walking off the stack. */
    .globl  mo__ctx_boot
    .hidden mo__ctx_boot
    .type   mo__ctx_boot, @function
    .p2align 4
mo__ctx_boot:
    .cfi_startproc
    .cfi_undefined rip
    MO_ENDBR
    movq    %r12, %rdi
    callq   *%r13
    ud2
    .cfi_endproc
    .size   mo__ctx_boot, .-mo__ctx_boot

#endif /* MO_CTX_UCONTEXT */

    .section .note.GNU-stack, "", @progbits
